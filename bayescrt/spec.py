"""Analysis specs: TOML files in models/ (data only), parsed and checked into an :class:`AnalysisSpec`.

A spec names its model family by a registry key (``family = "CoxPH"``), never
by an import path. Unknown keys are errors that suggest the nearest valid key.
Calibrated values live in ``<spec>.calibration.toml`` beside the spec, written
by :mod:`bayescrt.calibrate`; they are merged in on load.

This module reads and checks data only: it imports no model code (no
estimators, fits or simulator). The family and its options are checked
against the family registry (:mod:`bayescrt.families.registry`, names only),
the cohort against :mod:`bayescrt.cohort_schema`; building the estimator and
simulating the cohort are :func:`bayescrt.analysis.estimator` and
:func:`bayescrt.analysis.simulate_cohort`.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import validation
from .cohort_schema import (check_accrual, check_baseline, check_columns, check_correlation, check_covariate,
                            check_sizes, is_integer, mapping, number)
from .covariate_sets import CovariateSets
from .formula import referenced
from .errors import SpecError, suggest
from .families import registry

NAMED = {"danish": "danish_registry.toml", "example": "example_registry.toml", "competing": "example_competing.toml"}

TOP_KEYS = {"name", "title", "study", "synthetic", "time", "event", "exposure", "cohort", "data", "covariate_sets",
            "model", "priors", "sampler", "published", "sensitivity", "multiverse", "competing_risks"}
COHORT_KEYS = {"n", "n_exposed", "correlation", "accrual", "baseline", "covariates", "hazard_ratios"}
# Keys that document a cohort figure (where it comes from, whether it is assumed or checked); the simulation
# does not use them. Each [cohort.covariates.X] and [cohort.hazard_ratios.X] may carry them.
DOC_KEYS = {"source": str, "citation": str, "assumed": bool, "verified": bool}
HAZARD_RATIO_KEYS = {"hr", "bounds"}  # a fixed HR, or the bounds of a calibrated one
CALIBRATED_HR = {"af": "af_hr"}       # the covariate HRs the calibration chooses, and their parameter
# keys of the simulator that a spec's cohort must not set, because the calibration does
CALIBRATED_KEYS = {"accrual": {"trend": "accrual_trend"}, "baseline": {"scale_years": "scale_years"}}
SAMPLER_KEYS = {"draws", "tune", "chains", "random_seed"}
CALIBRATED = ("exposure_hr", "af_hr", "scale_years", "accrual_trend", "cohort_seed")
# a [data] section: the user's own data file, read with pandas' readers (no code in specs)
DATA_KEYS = {"file", "format", "description", "rename", "dates", "reference", "missing", "imputation",
             "exposure_labels", "table_one", "synthetic_note"}
DATA_FORMATS = {".csv": "csv", ".parquet": "parquet", ".dta": "stata", ".sas7bdat": "sas"}
DATES_KEYS = {"start", "event_date", "censor", "entry_date", "birth_date", "timescale", "unit", "same_day",
              "date_format", "precedence"}
IMPUTATION_KEYS = {"m", "random_seed", "columns", "max_iter"}
TABLE_ONE_KEYS = {"columns", "nonnormal", "categorical"}
# the keys of a [sensitivity] table (read by bayescrt.sensitivity.Grid.from_spec)
SENSITIVITY_KEYS = {"priors", "covariate_sets", "families", "subsets", "important_hr", "draws", "tune", "chains",
                    "random_seed", "confounding"}

# the keys of a [multiverse] table (read by bayescrt.multiverse_run): the forced covariates, the candidates
# whose every subset is a cell, the candidate that colours the vibration plot, and the sampler of the cells
MULTIVERSE_KEYS = {"always", "candidates", "color_by", "draws", "tune", "chains", "random_seed"}
MULTIVERSE_DEFAULTS = {"draws": 1000, "tune": 500, "chains": 4}
# the keys of a [competing_risks] table (read by bayescrt.reproduce.analyse): the causes the event column codes,
# the cause of interest, the label of censoring in a text column, a family per cause, the Fine-Gray model of the
# cause of interest, and the horizons of the cumulative incidence contrasts
COMPETING_KEYS = {"causes", "cause", "censored", "families", "subdistribution", "horizons"}


def models_dir() -> Path:
    """Where named specs live: $BAYESCRT_MODELS if set; else the specs shipped inside the installed
    package (``bayescrt/models/``, from a wheel); else the ``models/`` folder of the source tree
    (a checkout or an editable install, so that edits there take effect).

    The folder above the package is taken only when it is a source tree (it holds pyproject.toml):
    in a wheel install it is site-packages, whose ``models/`` may belong to something else.
    """
    env = os.environ.get("BAYESCRT_MODELS")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent
    installed = package / "models"
    if installed.is_dir():
        return installed
    source = package.parent
    if (source / "pyproject.toml").is_file() and (source / "models").is_dir():
        return source / "models"
    return installed


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

    @property
    def multiverse(self) -> dict:
        """The ``[multiverse]`` section with its defaults filled in (``random_seed`` from ``[sampler]``)."""
        if "multiverse" not in self.raw:
            raise SpecError(f"{self.path}: no [multiverse] section; add one with always = [...] and candidates = "
                            "[...] (see models/danish_registry.toml)")
        out = {**MULTIVERSE_DEFAULTS, "always": [], "color_by": None,
               "random_seed": self.raw.get("sampler", {}).get("random_seed")}
        return out | copy.deepcopy(self.raw["multiverse"])

    @property
    def competing(self) -> dict | None:
        """The ``[competing_risks]`` section with its defaults filled in, ``None`` without one."""
        if "competing_risks" not in self.raw:
            return None
        out = {"censored": "censored", "families": {}, "subdistribution": False, "horizons": []}
        return out | copy.deepcopy(self.raw["competing_risks"])

    @property
    def data(self) -> dict:
        """The ``[data]`` section (a copy), ``{}`` for a spec that simulates its cohort."""
        return copy.deepcopy(self.raw.get("data", {}))

    @property
    def data_path(self) -> Path | None:
        """The data file the spec names, relative to the spec's folder (``None`` without ``[data]``)."""
        if "data" not in self.raw:
            return None
        return self.path.parent / self.raw["data"]["file"]

    @property
    def model_options(self) -> dict:
        """The ``[model]`` table's options for the family's estimator (everything but ``family``)."""
        return {k: copy.deepcopy(v) for k, v in self.raw["model"].items() if k != "family"}

    @property
    def calibration_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".calibration.toml")

    # ----------------------------------------------------------- simulation
    def model(self):
        """Moved: ``bayescrt.analysis.estimator(spec)`` (a spec is data and builds no model)."""
        raise SpecError("AnalysisSpec.model() has moved: call bayescrt.analysis.estimator(spec)")

    def simulate(self, random_seed: int | None = None, **free):
        """Moved: ``bayescrt.analysis.simulate_cohort(spec)`` (a spec is data and runs no simulator)."""
        raise SpecError("AnalysisSpec.simulate() has moved: call bayescrt.analysis.simulate_cohort(spec, "
                        "random_seed=..., **free)")

    def simulation_kwargs(self, **free) -> dict:
        """Arguments for :func:`bayescrt.simulate.simulate`; free parameters from ``free`` or the calibration."""
        if "cohort" not in self.raw:
            raise SpecError(
                f"spec {self.name!r} ({self.path}) has no [cohort] section, so there is no cohort to simulate: add "
                "[cohort] with n and n_exposed, [cohort.accrual], [cohort.baseline] and [cohort.covariates.<name>] "
                "(models/danish_registry.toml shows the shape)"
            )
        c = self.raw["cohort"]
        hrs = c.get("hazard_ratios", {})
        calibrated_hrs = {name: CALIBRATED_HR[name] for name, h in hrs.items() if "bounds" in h}
        free_names = ["exposure_hr", *calibrated_hrs.values(), "scale_years", "accrual_trend"]
        for key in free:
            if key not in free_names:
                raise SpecError(f"spec {self.name!r}: {key!r} is not a free parameter of its cohort."
                                f"{suggest(key, free_names)} Free parameters: {free_names}")
        values = {**self.calibration.get("parameters", {}), **free}
        missing = [k for k in free_names if k not in values]
        if missing:
            raise SpecError(
                f"spec {self.name!r} has no calibrated {missing}: run `bayescrt calibrate {self.name}` "
                f"(writes {self.calibration_path.name})"
            )
        for k in free_names:
            src = "as given" if k in free else f"from {self.calibration_path.name}"
            values[k] = number(values[k], k, low=0, hint=f" ({src})")
        log_hr = {}
        for name, h in hrs.items():
            hr = values[calibrated_hrs[name]] if name in calibrated_hrs else h["hr"]
            log_hr[name] = float(np.log(hr))
        covs = {name: {k: v for k, v in spec.items() if k not in DOC_KEYS} for name, spec in c["covariates"].items()}
        return {
            "n": c["n"], "n_exposed": c["n_exposed"], "covariates": covs, "log_hr": log_hr,
            "exposure_hr": values["exposure_hr"],
            "baseline": {**c["baseline"], "scale_years": values["scale_years"]},
            "accrual": {**c["accrual"], "trend": values["accrual_trend"]},
            "exposure": self.raw["exposure"], "time": self.raw["time"], "event": self.raw["event"],
            "correlation": float(c.get("correlation", 0.0)),
        }

    def cohort_seed(self, random_seed: int | None = None) -> int | None:
        """The seed of the synthetic cohort: ``random_seed`` if given, else the calibration's recorded one."""
        seed = random_seed
        if seed is None:
            seed = self.calibration.get("parameters", {}).get("cohort_seed")
            if seed is not None and not (is_integer(seed) and seed >= 0):
                raise SpecError(f"cohort_seed={seed!r} in {self.calibration_path.name} must be an integer >= 0: "
                                f"run `bayescrt calibrate {self.name}` to rewrite it")
        return seed


def load_spec(name_or_path) -> AnalysisSpec:
    """Load a spec by name (``"danish"``) or by path, check it, and merge its calibration."""
    if not isinstance(name_or_path, (str, os.PathLike)) or str(name_or_path).strip() == "":
        raise SpecError(f"spec {name_or_path!r}: give a spec name ({', '.join(sorted(NAMED))}) or the path of a "
                        ".toml file")
    key = str(name_or_path)
    if key in NAMED:
        path = models_dir() / NAMED[key]
    else:
        path = Path(key)
        if path.suffix != ".toml" and not path.exists():
            raise SpecError(f"no spec named {key!r}.{suggest(key, NAMED)} Named specs: {sorted(NAMED)}; "
                            "or give the path of a .toml file")
    if not path.exists():
        if key in NAMED and os.environ.get("BAYESCRT_MODELS"):
            raise SpecError(f"spec file {str(path)!r} does not exist: named specs are looked up in "
                            f"$BAYESCRT_MODELS ({os.environ['BAYESCRT_MODELS']!r}). Point it at the folder that "
                            f"holds {NAMED[key]}, unset it to use the specs installed with bayescrt, or give "
                            "the spec's path")
        if key in NAMED:
            raise SpecError(f"spec file {str(path)!r} does not exist: named specs are looked up in the specs "
                            "installed with bayescrt (bayescrt/models/), else the source tree's models/ folder. "
                            f"Reinstall bayescrt, set BAYESCRT_MODELS to the folder that holds {NAMED[key]}, "
                            "or give the spec's path")
        raise SpecError(f"spec file {str(path)!r} does not exist; give the path of an existing .toml spec")
    if path.is_dir():
        raise SpecError(f"spec {str(path)!r} is a folder; give the path of a .toml spec file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"{str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                        "save the spec as UTF-8") from None
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
    validation.label(f"{where}: spec", raw["name"])
    for key in ("time", "event", "exposure"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise SpecError(f"{where}: {key} = {raw[key]!r} must be a column name (text)")
    for key in ("covariate_sets", "model", "sampler", "priors", "published", "sensitivity", "multiverse", "cohort",
                "data", "competing_risks"):
        if key in raw and not isinstance(raw[key], dict):
            raise SpecError(f"{where}: {key} must be a table ([{key}]), got {type(raw[key]).__name__} {raw[key]!r}")
    fam = raw["model"].get("family")
    families = registry.names(competing=False)
    if fam in registry.COMPETING:
        raise SpecError(f"{where} [model]: family={fam!r} models one cause among competing events, which a spec's "
                        f"[model] does not describe; choose one of {sorted(families)}, or fit bc.{fam} in Python")
    if not isinstance(fam, str) or fam not in families:
        raise SpecError(f"{where} [model]: family={fam!r} is not known.{suggest(str(fam), families)} "
                        f"Choose one of {sorted(families)}")
    _unknown(raw["model"], {"family", *registry.options(fam)}, f"{where} [model]")
    _unknown(raw.get("sampler", {}), SAMPLER_KEYS, f"{where} [sampler]")
    for key, low in (("draws", 1), ("tune", 0), ("chains", 1)):
        if key in raw.get("sampler", {}):
            validation.integer(f"{where} [sampler] {key}", raw["sampler"][key], low=low)
    if "random_seed" in raw.get("sampler", {}):
        validation.seed(f"{where} [sampler] random_seed", raw["sampler"]["random_seed"])
    _unknown(raw.get("sensitivity", {}), SENSITIVITY_KEYS, f"{where} [sensitivity]")
    if "multiverse" in raw:
        _check_multiverse(raw, where)
    if "competing_risks" in raw:
        _check_competing(raw, where)
    try:
        CovariateSets(**raw["covariate_sets"])
    except SpecError as err:
        raise SpecError(f"{where} [covariate_sets]: {err}") from None
    if "data" in raw:
        _check_data(raw["data"], where, raw.get("competing_risks"))
    cohort = raw.get("cohort")
    if cohort is not None:
        _check_cohort(raw, where)
        covs = cohort.get("covariates", {})
        for set_name, cols in raw["covariate_sets"].items():
            if isinstance(cols, str):  # a formula: the names it refers to (unreadable ones are the fit's to report)
                cols = sorted(referenced(cols) or ())
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
    if "study" not in pub:  # inline estimates: each a table of finite positive hr, lower, upper in order
        for set_name, est in pub.items():
            if set_name == "follow_up_median_years":
                continue
            if not isinstance(est, dict):
                raise SpecError(f"{where} [published.{set_name}]: must be a table with hr, lower and upper, got {est!r}")
            for key in ("hr", "lower", "upper"):
                v = est.get(key)
                if not validation.is_number(v) or not 0 < float(v) < float("inf"):
                    raise SpecError(f"{where} [published.{set_name}] {key} = {v!r}: give a finite positive ratio")
            if not est["lower"] <= est["hr"] <= est["upper"]:
                raise SpecError(f"{where} [published.{set_name}]: lower <= hr <= upper must hold, got "
                                f"{est['lower']}, {est['hr']}, {est['upper']}")
    for set_name in pub:
        if set_name not in raw["covariate_sets"] and set_name not in ("follow_up_median_years", "study"):
            raise SpecError(f"{where} [published]: {set_name!r} is not a covariate set."
                            f"{suggest(set_name, raw['covariate_sets'])}")


def _check_multiverse(raw: dict, where: str) -> None:
    """``[multiverse]``: column names (simulated covariates where the spec has a cohort), 1-12 candidates,
    nothing both forced and a candidate, ``color_by`` a candidate, the sampler's counts."""
    from .multiverse import MAX_CANDIDATES

    mv, at = raw["multiverse"], f"{where} [multiverse]"
    _unknown(mv, MULTIVERSE_KEYS, at)
    if "candidates" not in mv:
        raise SpecError(f"{at}: missing required key 'candidates' (the covariates whose every subset is fitted)")
    always = _text_list(mv.get("always", []), f"{at} always")
    candidates = _text_list(mv["candidates"], f"{at} candidates")
    if not 1 <= len(candidates) <= MAX_CANDIDATES:
        raise SpecError(f"{at} candidates: {len(candidates)} given; give 1 to {MAX_CANDIDATES} "
                        f"({2 ** MAX_CANDIDATES:,} cells)")
    for key, cols in (("always", always), ("candidates", candidates)):
        twice = sorted({c for c in cols if cols.count(c) > 1})
        if twice:
            raise SpecError(f"{at} {key}: {twice} named twice; name each column once")
        for c in cols:
            if c in (raw["time"], raw["event"], raw["exposure"]):
                raise SpecError(f"{at} {key}: {c!r} is the time, event or exposure column; it cannot be a covariate")
    both = sorted(set(always) & set(candidates))
    if both:
        raise SpecError(f"{at}: {both} are in always and in candidates; a covariate is forced or a candidate")
    covs = raw.get("cohort", {}).get("covariates") if "data" not in raw else None
    if covs is not None:
        for c in always + candidates:
            if c not in covs:
                raise SpecError(f"{at}: {c!r} is not a simulated covariate.{suggest(c, covs)} Covariates: {list(covs)}")
    color = mv.get("color_by")
    if color is not None and color not in candidates:
        raise SpecError(f"{at} color_by = {color!r} is not a candidate.{suggest(str(color), candidates)} "
                        f"Candidates: {candidates}")
    for key, low in (("draws", 1), ("tune", 0), ("chains", 1)):
        if key in mv:
            validation.integer(f"{at} {key}", mv[key], low=low)
    if "random_seed" in mv:
        validation.seed(f"{at} random_seed", mv["random_seed"])


def _check_competing(raw: dict, where: str) -> None:
    """``[competing_risks]``: the causes (file-name labels, each once), the cause of interest among them, a known
    one-event family per cause, positive finite horizons; and the sections it does not combine with yet."""
    cr, at = raw["competing_risks"], f"{where} [competing_risks]"
    _unknown(cr, COMPETING_KEYS, at)
    if "cohort" in raw:
        raise SpecError(f"{at}: a spec with competing risks cannot have [cohort]: the synthetic cohort simulates one "
                        "event; analyse a data file with [data], e.g. one made by bc.simulate_competing")
    if "data" not in raw:
        raise SpecError(f"{at}: competing risks are analysed on a data file; add [data] with file = \"extract.csv\"")
    for key in ("causes", "cause"):
        if key not in cr:
            raise SpecError(f"{at}: missing required key {key!r} ("
                            + ("the names of the event codes 1..K, or the text labels, e.g. causes = "
                               "[\"hf_hospitalisation\", \"death\"])" if key == "causes" else
                               "the cause of interest, one of causes)") )
    causes = cr["causes"]
    if not isinstance(causes, list) or not all(isinstance(v, str) and v for v in causes):
        raise SpecError(f"{at} causes = {causes!r}: give a list of the causes' names, the event codes 1..K in order "
                        "(or the text labels), e.g. causes = [\"hf_hospitalisation\", \"death\"]")
    if len(causes) < 2:
        raise SpecError(f"{at} causes = {causes!r}: competing risks need at least two causes")
    twice = sorted({c for c in causes if causes.count(c) > 1})
    if twice:
        raise SpecError(f"{at} causes: {twice} named twice; name each cause once")
    for c in causes:
        validation.label(f"{at} cause", c)
    if cr["cause"] not in causes:
        raise SpecError(f"{at} cause = {cr['cause']!r} is not one of causes.{suggest(str(cr['cause']), causes)} "
                        f"Causes: {causes}")
    censored = cr.get("censored", "censored")
    if not isinstance(censored, str) or not censored or censored in causes:
        raise SpecError(f"{at} censored = {censored!r}: give the text label of censoring in the event column "
                        "(not a cause's name), e.g. censored = \"censored\"")
    fams = cr.get("families", {})
    if not isinstance(fams, dict):
        raise SpecError(f"{at} families = {fams!r}: give a table of cause -> family, e.g. families = "
                        "{death = \"WeibullPH\"}")
    for c, fam in fams.items():
        if c not in causes:
            raise SpecError(f"{at} families: {c!r} is not a cause.{suggest(str(c), causes)} Causes: {causes}")
        name = fam.get("family") if isinstance(fam, dict) else fam
        known = registry.names(competing=False)
        if name in registry.COMPETING:
            raise SpecError(f"{at} families.{c} = {name!r} is a subdistribution model; a cause's family models its "
                            f"cause-specific hazard ({sorted(known)}); ask for Fine-Gray with subdistribution = true")
        if not isinstance(name, str) or name not in known:
            raise SpecError(f"{at} families.{c} = {fam!r}: family must be one of {sorted(known)}."
                            f"{suggest(str(name), known)}")
        if isinstance(fam, dict):
            _unknown(fam, {"family", *registry.options(name)}, f"{at} families.{c}")
    sub = cr.get("subdistribution", False)
    if not isinstance(sub, bool):
        raise SpecError(f"{at} subdistribution = {sub!r}: give true (fit the Fine-Gray model of the cause of "
                        "interest too) or false")
    hz = cr.get("horizons", [])
    if not isinstance(hz, list) or not all(validation.is_number(h) and 0 < float(h) < float("inf") for h in hz):
        raise SpecError(f"{at} horizons = {hz!r}: give a list of positive finite times, in the time column's unit, "
                        "e.g. horizons = [1.0, 3.0]")
    if len(set(map(float, hz))) < len(hz):
        raise SpecError(f"{at} horizons = {hz!r}: a horizon is given twice; give each once")


def _check_event_dates(dates: dict, cr: dict | None, at: str) -> None:
    """``event_date``: one column of event dates, or with ``[competing_risks]`` a table of cause -> column naming
    every cause; ``precedence`` (competing risks only) lists every cause once."""
    ev = dates["event_date"]
    if cr is None or not isinstance(cr.get("causes"), list):
        if not isinstance(ev, str):
            raise SpecError(f"{at}: event_date = {ev!r} must be text (the column of event dates)"
                            + ("; a table of cause -> column needs [competing_risks] with its causes"
                               if isinstance(ev, dict) else ""))
        if "precedence" in dates:
            raise SpecError(f"{at}: precedence orders the causes of competing events; it needs [competing_risks] and "
                            "event_date as a table of cause -> column")
        return
    causes = cr["causes"]
    example = ", ".join(f"{c} = \"{c}_date\"" for c in causes)
    if not isinstance(ev, dict) or not all(isinstance(v, str) and v for v in ev.values()):
        raise SpecError(f"{at}: event_date = {ev!r}: with competing risks give each cause's column of dates, "
                        f"event_date = {{ {example} }}")
    if sorted(ev) != sorted(causes):
        unknown = [c for c in ev if c not in causes]
        missing = [c for c in causes if c not in ev]
        raise SpecError(f"{at}: event_date must name a column for each cause of [competing_risks] {causes}"
                        + (f"; {unknown} are not causes{suggest(unknown[0], causes)}" if unknown else "")
                        + (f"; {missing} have no column" if missing else ""))
    prec = dates.get("precedence")
    if prec is not None and (not isinstance(prec, list) or sorted(map(str, prec)) != sorted(causes)
                             or len(set(prec)) != len(prec)):
        raise SpecError(f"{at}: precedence = {prec!r} must list every cause once, {causes}, the one that counts when "
                        "two fall on the same day first")


def _text_list(value, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"{key} = {value!r} must be a list of column names, e.g. [\"age\", \"egfr\"]")
    return value


def exposure_label_map(labels, where: str) -> dict[int, str]:
    """Group names for the exposure's codes, ``{0: "de novo", 1: "upgrade"}``, from ``{"0": ..., "1": ...}``
    (TOML keys are text): both codes named, each once, with distinct labels, so that no group is lost or merged."""
    example = "{\"0\" = \"de novo\", \"1\" = \"upgrade\"}"
    if not isinstance(labels, dict):
        raise SpecError(f"{where}: expected exposure code -> group name pairs, e.g. {example}; got {labels!r}")
    out: dict[int, str] = {}
    for key, label in labels.items():
        code = None
        if not isinstance(key, bool):
            try:
                code = float(key)
            except (TypeError, ValueError):
                pass
        if code not in (0.0, 1.0):
            raise SpecError(f"{where}: key {key!r} is not a code of the exposure, which is coded 0/1 (1 = exposed); "
                            f"give {example}")
        if int(code) in out:
            raise SpecError(f"{where}: code {int(code)} is named twice ({list(labels)}); name each code once")
        if not isinstance(label, str) or not label.strip():
            raise SpecError(f"{where}: {key} = {label!r} must be the group's name (text), e.g. {example}")
        out[int(code)] = label
    if out and set(out) != {0, 1}:
        raise SpecError(f"{where}: only code {sorted(out)[0]} is named; name both groups, e.g. {example}")
    if len(set(out.values())) < len(out):
        raise SpecError(f"{where}: both codes are labelled {next(iter(out.values()))!r}, which would merge the groups "
                        "in the tables; give each group its own name")
    return out


def _check_data(data: dict, where: str, competing: dict | None = None) -> None:
    """A spec's [data]: the file (relative to the spec), its format, the columns' conventions. The file itself
    is read and its columns checked by :func:`bayescrt.extract.read_data`, which names these keys too."""
    sec = f"{where} [data]"
    _unknown(data, DATA_KEYS, sec)
    if not isinstance(data.get("file"), str) or not data["file"].strip():
        raise SpecError(f"{sec}: file = {data.get('file')!r} must name the data file, relative to the spec "
                        "(e.g. file = \"extract.csv\"; CSV, Parquet, Stata .dta or SAS .sas7bdat)")
    fmt = data.get("format")
    if fmt is not None and fmt not in DATA_FORMATS.values():
        raise SpecError(f"{sec}: format = {fmt!r} is not a format bayescrt reads.{suggest(str(fmt), DATA_FORMATS.values())} "
                        f"Choose one of {sorted(set(DATA_FORMATS.values()))}")
    if fmt is None and Path(data["file"]).suffix.lower() not in DATA_FORMATS:
        raise SpecError(f"{sec}: file = {data['file']!r} has no known suffix ({', '.join(DATA_FORMATS)}); rename it "
                        f"or give format = one of {sorted(set(DATA_FORMATS.values()))}")
    for key in ("rename", "dates", "reference", "imputation", "exposure_labels", "table_one"):
        if key in data and not isinstance(data[key], dict):
            raise SpecError(f"{sec}: {key} must be a table ([data.{key}]), got {data[key]!r}")
    for old, new in data.get("rename", {}).items():
        if not isinstance(new, str) or not new:
            raise SpecError(f"{where} [data.rename]: {old} = {new!r} must be the new column name (text)")
    dates = data.get("dates", {})
    _unknown(dates, DATES_KEYS, f"{where} [data.dates]")
    if dates:
        for key in ("start", "event_date"):
            if key not in dates:
                raise SpecError(f"{where} [data.dates]: missing required key {key!r} (the column of "
                                + ("time-zero dates, e.g. the implant" if key == "start" else
                                   "event dates, empty where there was no event") + ")")
        if "censor" not in dates:
            raise SpecError(f"{where} [data.dates]: missing required key 'censor': the administrative end of "
                            "follow-up (censor = \"2018-08-31\"), a column of last-seen dates, or a list of both")
        censor = dates["censor"]
        if not (isinstance(censor, str) or (isinstance(censor, list) and censor
                                            and all(isinstance(c, str) for c in censor))):
            raise SpecError(f"{where} [data.dates]: censor = {censor!r} must be a date (\"2018-08-31\"), a column "
                            "name, or a list of them")
        for key in ("start", "entry_date", "birth_date", "timescale", "unit", "date_format"):
            if key in dates and not isinstance(dates[key], str):
                raise SpecError(f"{where} [data.dates]: {key} = {dates[key]!r} must be text")
        _check_event_dates(dates, competing if isinstance(competing, dict) else None, f"{where} [data.dates]")
    for col, level in data.get("reference", {}).items():
        if not isinstance(level, (str, int)) or isinstance(level, bool):
            raise SpecError(f"{where} [data.reference]: {col} = {level!r} must be the reference level (text or an "
                            "integer), e.g. nyha = \"II\"")
    missing = data.get("missing", "error")
    if missing not in ("error", "drop"):
        raise SpecError(f"{sec}: missing = {missing!r} must be \"error\" (the default) or \"drop\"; to impute, "
                        "add [data.imputation] with m = 20 and random_seed")
    imp = data.get("imputation")
    if imp is not None:
        _unknown(imp, IMPUTATION_KEYS, f"{where} [data.imputation]")
        for key in ("m", "random_seed"):
            if key not in imp:
                raise SpecError(f"{where} [data.imputation]: missing required key {key!r} ("
                                + ("the number of imputations, e.g. m = 20" if key == "m" else
                                   "the seed of the imputations, e.g. random_seed = 1") + ")")
        validation.integer(f"{where} [data.imputation] m", imp["m"], low=2)
        validation.seed(f"{where} [data.imputation] random_seed", imp["random_seed"])
        if "max_iter" in imp:
            validation.integer(f"{where} [data.imputation] max_iter", imp["max_iter"], low=1)
        if "columns" in imp:
            _text_list(imp["columns"], f"{where} [data.imputation] columns")
            if not imp["columns"]:
                raise SpecError(f"{where} [data.imputation] columns = [] imputes nothing; list the covariates to "
                                "impute, or drop the key to impute every incomplete covariate")
        if missing == "drop":
            raise SpecError(f"{sec}: missing = \"drop\" and [data.imputation] contradict each other; keep one")
    if "exposure_labels" in data:
        exposure_label_map(data["exposure_labels"], f"{where} [data.exposure_labels]")
    t1 = data.get("table_one", {})
    _unknown(t1, TABLE_ONE_KEYS, f"{where} [data.table_one]")
    for key, value in t1.items():
        _text_list(value, f"{where} [data.table_one] {key}")
    for key in ("description", "synthetic_note"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{sec}: {key} = {data[key]!r} must be text")


def _check_cohort(raw: dict, where: str) -> None:
    """A spec's [cohort]: every key known, every number finite and in range, every date readable, no covariate
    named like a column the simulation writes, and nothing set that the calibration chooses."""
    cohort = mapping(raw["cohort"], f"{where} [cohort]", "a TOML table")
    _unknown(cohort, COHORT_KEYS, f"{where} [cohort]")
    for key in ("n", "n_exposed", "accrual", "baseline"):
        if key not in cohort:
            what = {"n": "the cohort size", "n_exposed": "the number exposed",
                    "accrual": "a table [cohort.accrual] with start and end dates",
                    "baseline": 'a table [cohort.baseline] with kind = "weibull" and shape'}[key]
            raise SpecError(f"{where} [cohort]: missing required key {key!r} ({what})")
    check_sizes(cohort["n"], cohort["n_exposed"], f"{where} [cohort]")

    covs = mapping(cohort.get("covariates", {}), f"{where} [cohort.covariates]", "a table per covariate")
    check_columns(covs, raw["exposure"], raw["time"], raw["event"], f"{where} [cohort.covariates]", top=where)
    kinds = []
    for name, cs in covs.items():
        sec = f"{where} [cohort.covariates.{name}]"
        kinds.append(check_covariate(name, cs, sec, extra=DOC_KEYS))
        _check_doc_keys(cs, sec)
    check_correlation(cohort.get("correlation", 0.0), kinds.count("binary"), f"{where} [cohort] correlation")

    for section in ("accrual", "baseline"):
        table = mapping(cohort[section], f"{where} [cohort.{section}]", "a TOML table")
        for key, param in CALIBRATED_KEYS[section].items():
            if key in table:
                raise SpecError(f"{where} [cohort.{section}]: {key!r} is calibrated, not set in the spec (it is "
                                f"{param} in the spec's .calibration.toml, written by `bayescrt calibrate`); "
                                f"remove {key} = {table[key]!r}")
    check_accrual(cohort["accrual"], f"{where} [cohort.accrual]",
                  keys=[k for k in ("start", "end", "close", "trend") if k not in CALIBRATED_KEYS["accrual"]])
    kind = cohort["baseline"].get("kind", "weibull")
    if kind != "weibull":
        raise SpecError(f"{where} [cohort.baseline]: kind={kind!r} must be 'weibull' in a spec: the calibration "
                        "chooses the Weibull scale (scale_years). For another baseline call bayescrt.simulate "
                        "directly")
    check_baseline(cohort["baseline"], f"{where} [cohort.baseline]", optional=("scale_years",))

    hrs = mapping(cohort.get("hazard_ratios", {}), f"{where} [cohort.hazard_ratios]", "a table per covariate")
    for name, h in hrs.items():
        sec = f"{where} [cohort.hazard_ratios.{name}]"
        if name not in covs:
            raise SpecError(f"{where} [cohort.hazard_ratios]: {name!r} is not a simulated covariate."
                            f"{suggest(name, covs)}")
        mapping(h, sec, "hr, or bounds for a calibrated HR")
        _unknown(h, HAZARD_RATIO_KEYS | set(DOC_KEYS), sec)
        _check_doc_keys(h, sec)
        if ("hr" in h) == ("bounds" in h):
            raise SpecError(f"{sec}: give either hr (a fixed HR) or bounds = [low, high] (an HR the calibration "
                            f"chooses), not {'both' if 'hr' in h else 'neither'}")
        if "hr" in h:
            number(h["hr"], f"{sec} hr", low=0)
            continue
        if name not in CALIBRATED_HR:
            raise SpecError(f"{sec}: bounds mark an HR the calibration chooses, and it chooses only "
                            f"{sorted(CALIBRATED_HR)}'s; give {name!r} a fixed hr")
        b = h["bounds"]
        if not (isinstance(b, list) and len(b) == 2):
            raise SpecError(f"{sec}: bounds={b!r} must be [low, high], two HRs with 0 < low < high")
        lo, hi = (number(v, f"{sec} bounds[{j}]", low=0) for j, v in enumerate(b))
        if not lo < hi:
            raise SpecError(f"{sec}: bounds={b!r} must be [low, high] with low < high")


def _check_doc_keys(table: dict, where: str) -> None:
    for key, kind in DOC_KEYS.items():
        if key in table and not isinstance(table[key], kind):
            raise SpecError(f"{where}: {key}={table[key]!r} must be {'a string' if kind is str else 'true or false'} "
                            "(it documents the figure)")
