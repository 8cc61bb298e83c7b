"""Analysis specs: TOML files in models/ (data only), parsed and checked into an :class:`AnalysisSpec`.

A spec names its model family by a registry key (``family = "CoxPH"``), never
by an import path. Unknown keys are errors that suggest the nearest valid key.
Calibrated values live in ``<spec>.calibration.toml`` beside the spec, written
by :mod:`bayescrt.calibrate`; they are merged in on load.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .covariate_sets import CovariateSets
from .errors import SpecError, suggest
from .estimators import CoxPH

FAMILIES = {"CoxPH": CoxPH}
NAMED = {"danish": "danish_registry.toml"}

TOP_KEYS = {"name", "title", "study", "synthetic", "time", "event", "exposure", "cohort", "covariate_sets", "model",
            "priors", "sampler", "published", "sensitivity"}
COHORT_KEYS = {"n", "n_exposed", "correlation", "accrual", "baseline", "covariates", "hazard_ratios"}
MODEL_KEYS = {"family", "ties"}
SAMPLER_KEYS = {"draws", "tune", "chains", "random_seed"}
CALIBRATED = ("exposure_hr", "af_hr", "scale_years", "accrual_trend", "cohort_seed")


def models_dir() -> Path:
    """Where named specs live: $BAYESCRT_MODELS, else the models/ folder of the source tree."""
    env = os.environ.get("BAYESCRT_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "models"


def _unknown(keys, valid, where):
    for key in keys:
        if key not in valid:
            raise SpecError(f"{where}: unknown key {key!r}.{suggest(key, valid)} Valid keys: {sorted(valid)}")


@dataclass
class AnalysisSpec:
    """A parsed, checked analysis spec."""

    name: str
    title: str
    path: Path
    raw: dict
    calibration: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- access
    @property
    def synthetic(self) -> bool:
        return bool(self.raw.get("synthetic", False))

    @property
    def columns(self) -> dict:
        return {k: self.raw[k] for k in ("time", "event", "exposure")}

    @property
    def covariate_sets(self) -> CovariateSets:
        return CovariateSets(**self.raw["covariate_sets"])

    @property
    def priors(self) -> dict:
        return copy.deepcopy(self.raw.get("priors", {}))

    @property
    def sampler(self) -> dict:
        return dict(self.raw.get("sampler", {}))

    @property
    def published(self) -> dict:
        """Published estimates by covariate set: ``{set: {hr, lower, upper, p, adjustment, result}}``.

        A spec names a registry study and, per covariate set, one of its results
        (``[published] study = "...", minimal = "<result id>"``); the numbers come
        from the registry, so they live in one place. A spec for a study outside
        the registry may give the tables inline instead.
        """
        raw = copy.deepcopy(self.raw.get("published", {}))
        if "study" not in raw:
            return raw
        from .published import get

        study = get(raw.pop("study"))
        out = {}
        for set_name, rid in raw.items():
            r = study.result(rid)
            out[set_name] = {"hr": r["value"], "lower": r["lower"], "upper": r["upper"],
                             "p": f"{'' if r.get('p_relation', '=') == '=' else r['p_relation']}{r.get('p_value', '')}",
                             "adjustment": ", ".join(r.get("adjustment", [])), "result": r.id}
        fu = study.get("follow_up", {})
        if fu.get("statistic") == "median" and fu.get("unit") == "years":
            out["follow_up_median_years"] = {"upgrade": fu["exposed"], "de_novo": fu["reference"]}
        return out

    def model(self):
        m = self.raw["model"]
        return FAMILIES[m["family"]](**{k: v for k, v in m.items() if k != "family"})

    @property
    def calibration_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".calibration.toml")

    # ----------------------------------------------------------- simulation
    def simulation_kwargs(self, **free) -> dict:
        """Arguments for :func:`bayescrt.simulate.simulate`; free parameters from ``free`` or the calibration."""
        values = {**self.calibration.get("parameters", {}), **free}
        missing = [k for k in CALIBRATED[:4] if k not in values]
        if missing:
            raise SpecError(
                f"spec {self.name!r} has no calibrated {missing}: run `bayescrt calibrate {self.name}` "
                f"(writes {self.calibration_path.name})"
            )
        c = self.raw["cohort"]
        log_hr = {}
        for name, h in c["hazard_ratios"].items():
            hr = values["af_hr"] if name == "af" else h["hr"]
            log_hr[name] = float(np.log(hr))
        covs = {}
        for name, spec in c["covariates"].items():
            covs[name] = {k: v for k, v in spec.items() if k in ("kind", "median", "spread", "prevalence", "center")}
        return {
            "n": c["n"], "n_exposed": c["n_exposed"], "covariates": covs, "log_hr": log_hr,
            "exposure_hr": float(values["exposure_hr"]),
            "baseline": {**c["baseline"], "scale_years": float(values["scale_years"])},
            "accrual": {**c["accrual"], "trend": float(values["accrual_trend"])},
            "exposure": self.raw["exposure"], "correlation": float(c.get("correlation", 0.0)),
        }

    def simulate(self, random_seed: int | None = None, **free):
        """The synthetic cohort: by default the calibrated one (the recorded cohort seed)."""
        from .simulate import simulate

        seed = self.calibration.get("parameters", {}).get("cohort_seed") if random_seed is None else random_seed
        df = simulate(**self.simulation_kwargs(**free), random_seed=None if seed is None else int(seed))
        df.attrs["spec"] = self.name
        return df


def load_spec(name_or_path) -> AnalysisSpec:
    """Load a spec by name (``"danish"``) or by path, check it, and merge its calibration."""
    key = str(name_or_path)
    if key in NAMED:
        path = models_dir() / NAMED[key]
    else:
        path = Path(key)
        if path.suffix != ".toml" and not path.exists():
            raise SpecError(f"no spec named {key!r}.{suggest(key, NAMED)} Named specs: {sorted(NAMED)}; "
                            "or give the path of a .toml file")
    if not path.exists():
        raise SpecError(f"spec file {str(path)!r} does not exist (set BAYESCRT_MODELS to the folder of specs)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{str(path)!r} is not valid TOML: {exc}") from exc
    check(raw, str(path))
    spec = AnalysisSpec(name=raw["name"], title=raw.get("title", raw["name"]), path=path, raw=raw)
    if spec.calibration_path.exists():
        spec.calibration = tomllib.loads(spec.calibration_path.read_text())
    return spec


def check(raw: dict, where: str) -> None:
    """Check a spec's structure; every error names the key and the valid choices."""
    _unknown(raw, TOP_KEYS, where)
    for key in ("name", "time", "event", "exposure", "covariate_sets", "model"):
        if key not in raw:
            raise SpecError(f"{where}: missing required key {key!r}")
    _unknown(raw["model"], MODEL_KEYS, f"{where} [model]")
    fam = raw["model"].get("family")
    if fam not in FAMILIES:
        raise SpecError(f"{where} [model]: family={fam!r} is not known.{suggest(str(fam), FAMILIES)} "
                        f"Choose one of {sorted(FAMILIES)}")
    _unknown(raw.get("sampler", {}), SAMPLER_KEYS, f"{where} [sampler]")
    from .sensitivity import SENSITIVITY_KEYS

    _unknown(raw.get("sensitivity", {}), SENSITIVITY_KEYS, f"{where} [sensitivity]")
    CovariateSets(**raw["covariate_sets"])
    cohort = raw.get("cohort")
    if cohort is not None:
        _unknown(cohort, COHORT_KEYS, f"{where} [cohort]")
        covs = cohort.get("covariates", {})
        for name in cohort.get("hazard_ratios", {}):
            if name not in covs:
                raise SpecError(f"{where} [cohort.hazard_ratios]: {name!r} is not a simulated covariate."
                                f"{suggest(name, covs)}")
        for set_name, cols in raw["covariate_sets"].items():
            for col in cols:
                if col not in covs:
                    raise SpecError(f"{where} [covariate_sets] {set_name}: {col!r} is not a simulated covariate."
                                    f"{suggest(col, covs)} Covariates: {list(covs)}")
    pub = raw.get("published", {})
    if "study" in pub:
        from .published import get

        try:
            study = get(pub["study"])
            for set_name, rid in pub.items():
                if set_name != "study":
                    r = study.result(rid)
                    if r.kind != "estimate" or not r.on_log_scale:
                        raise SpecError(f"{r.id} is a {r.kind!r} result ({r.estimand}); covariate set {set_name!r} "
                                        "needs a published ratio with its CI")
        except SpecError as err:
            raise SpecError(f"{where} [published]: {err}") from None
    for set_name in pub:
        if set_name not in raw["covariate_sets"] and set_name not in ("follow_up_median_years", "study"):
            raise SpecError(f"{where} [published]: {set_name!r} is not a covariate set."
                            f"{suggest(set_name, raw['covariate_sets'])}")
