"""Loading the registry of published results: one validated TOML file per study."""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd

from ..errors import suggest
from .schema import COMPARISONS, RATIO_ESTIMANDS, RegistryError, UnknownEntryError, validate


@dataclass(frozen=True)
class Result:
    """One reported result of a study, with the study's metadata where the result has none."""

    study: str
    raw: dict = field(repr=False)
    study_raw: dict = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.study}/{self.raw['id']}"

    def __getitem__(self, key):
        return self.raw[key]

    def get(self, key, default=None):
        return self.raw.get(key, default)

    @property
    def kind(self) -> str:
        return self.raw["kind"]

    @property
    def endpoint(self) -> str:
        return self.raw["endpoint"]

    @property
    def estimand(self) -> str | None:
        return self.raw.get("estimand")

    @property
    def comparison(self) -> str:
        return self.raw.get("comparison", self.study_raw["comparison"])

    @property
    def verified(self) -> bool:
        return bool(self.raw.get("verified", self.study_raw["verified"]))

    @property
    def level(self) -> float:
        return float(self.raw.get("level", 0.95))

    @property
    def n(self) -> dict:
        return {**self.study_raw.get("n", {}), **self.raw.get("n", {})}

    @property
    def on_log_scale(self) -> bool:
        return self.estimand in RATIO_ESTIMANDS

    def log_estimate(self) -> tuple[float, float]:
        """(log point estimate, SE of the log) from a ratio and its CI: the CI's log-width / (2 z)."""
        if self.kind != "estimate" or not self.on_log_scale:
            raise RegistryError(f"{self.id}: a log-scale estimate needs kind 'estimate' with a ratio estimand "
                                f"({', '.join(RATIO_ESTIMANDS)}); this result is {self.kind!r}, {self.estimand!r}.")
        from .likelihoods import se_from_ci

        return math.log(self["value"]), float(se_from_ci(self["lower"], self["upper"], self.level))

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line: endpoint, estimand and value as stored (exposed vs reference)."""
        s = self.study_raw
        if self.kind == "estimate":
            val = (f"{self.estimand} {self['value']:g} ({self.level:.0%} CI {self['lower']:g} to {self['upper']:g})")
        elif self.kind == "counts":
            ev, n = self["events"], self.n
            val = f"events {ev['exposed']}/{n.get('exposed', '?')} vs {ev['reference']}/{n.get('reference', '?')}"
        elif self.kind == "means":
            val = f"means by group at {', '.join(self['timepoints'])} ({self['unit']})"
        else:
            val = f"p = {self['p_value']:g}"
        adj = self.raw.get("adjustment")
        adj = "" if adj is None else ("; unadjusted" if not adj else f"; adjusted for {', '.join(adj)}")
        flag = "" if self.verified else "  [UNVERIFIED]"
        return f"{self.id}: {self.endpoint}, {s['exposed']} vs {s['reference']}: {val}{adj}{flag}"


@dataclass(frozen=True)
class Study:
    """A study's entry in the registry; ``results`` are keyed by result id."""

    raw: dict = field(repr=False)
    path: str = ""

    @property
    def id(self) -> str:
        return self.raw["id"]

    def __getitem__(self, key):
        return self.raw[key]

    def get(self, key, default=None):
        return self.raw.get(key, default)

    @property
    def results(self) -> dict[str, Result]:
        return {r["id"]: Result(self.id, r, self.raw) for r in self.raw["results"]}

    def result(self, result_id: str) -> Result:
        res = self.results
        if result_id not in res:
            raise UnknownEntryError(f"study {self.id!r} has no result {result_id!r}.{suggest(result_id, res)} "
                           f"Its results: {', '.join(res)}.")
        return res[result_id]

    def __str__(self) -> str:
        s = self.raw
        lines = [f"{s['id']}: {s['title']}", f"  citation:   {s['citation']}"]
        if s.get("doi"):
            lines.append(f"  doi:        {s['doi']}")
        lines += [f"  design:     {s['design']}", f"  population: {s['population']}",
                  f"  comparison: {s['exposed']} (exposed) vs {s['reference']} (reference) "
                  f"[{s['comparison']}: {COMPARISONS[s['comparison']]}]"]
        if "n" in s:
            lines.append("  patients:   " + ", ".join(f"{k} {v:,}" for k, v in s["n"].items()))
        if "follow_up" in s:
            fu = s["follow_up"]
            parts = [f"{k} {fu[k]:g}" for k in ("exposed", "reference", "overall") if k in fu]
            lines.append(f"  follow-up:  {fu.get('statistic', '')} {fu.get('unit', '')}: " + ", ".join(parts))
        lines.append(f"  provenance: {s['provenance']}; verified: {'yes' if s['verified'] else 'NO'}")
        for key in ("verification_note", "notes"):
            if s.get(key):
                lines.append(f"  {key.replace('_', ' ')}: {s[key]}")
        if s.get("baseline"):
            lines.append("  baseline:")
            for b in s["baseline"]:
                vals = ", ".join(f"{g} {b[g]:g}" for g in ("exposed", "reference", "overall") if g in b)
                lines.append(f"    {b['characteristic']} ({b['statistic']}{', ' + b['unit'] if 'unit' in b else ''}): {vals}")
        lines.append("  results:")
        for r in self.results.values():
            lines.append("    " + r.describe().split(": ", 1)[1] + f"  [{r['id']}]")
            for key in ("conclusion", "verification_note", "notes"):
                if r.get(key):
                    lines.append(f"      {key.replace('_', ' ')}: {r[key]}")
        return "\n".join(lines)


def _studies_dir() -> Path:
    return Path(str(resources.files("bayescrt.published") / "studies"))


def load_file(path: str | Path) -> Study:
    """Read and validate one study file; the ``id`` must equal the file's stem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RegistryError(f"{path.name}: not valid TOML ({err}).") from err
    validate(raw, path.name)
    if raw["id"] != path.stem:
        raise RegistryError(f"{path.name}: id {raw['id']!r} must equal the file name {path.stem!r}.")
    return Study(raw, str(path))


@cache
def _registry() -> dict[str, Study]:
    return {p.stem: load_file(p) for p in sorted(_studies_dir().glob("*.toml"))}


def studies() -> dict[str, Study]:
    """Every study in the registry, keyed by id (a deep copy: callers cannot alter the registry)."""
    return {k: Study(copy.deepcopy(v.raw), v.path) for k, v in _registry().items()}


def get(id: str) -> Study | Result:
    """A study by id (``"danish-registry-2000-2018"``) or one result (``"<study>/<result>"``)."""
    study_id, _, result_id = str(id).partition("/")
    reg = studies()
    if study_id not in reg:
        raise UnknownEntryError(f"no study {study_id!r} in the registry.{suggest(study_id, reg)} "
                       f"See bayescrt.published.list() or `bayescrt published list`.")
    return reg[study_id].result(result_id) if result_id else reg[study_id]


def table() -> pd.DataFrame:
    """One row per reported result, stored as exposed vs reference."""
    rows = []
    for study in studies().values():
        for r in study.results.values():
            n = r.n
            rows.append({
                "study": study.id, "result": r["id"], "endpoint": r.endpoint, "kind": r.kind,
                "estimand": r.estimand, "comparison": r.comparison,
                "adjustment": None if r.get("adjustment") is None else (", ".join(r["adjustment"]) or "none"),
                "value": r.get("value"), "lower": r.get("lower"), "upper": r.get("upper"),
                "level": r.level if r.kind == "estimate" else None,
                "p_value": r.get("p_value"), "p_relation": r.get("p_relation", "=" if "p_value" in r.raw else None),
                "n_exposed": n.get("exposed"), "n_reference": n.get("reference"),
                "verified": r.verified,
            })
    return pd.DataFrame(rows).set_index(["study", "result"])
