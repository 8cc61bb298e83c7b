"""Sensitivity analyses: grids of fits that resume after a crash and scale out on Dask.

A :class:`Grid` crosses priors on the exposure's log-HR, covariate sets, model
families and data subsets; every combination is a *cell*. :func:`run` fits
every cell and writes ``OUT/cells/<cell>.nc`` (a saved :class:`~bayescrt.Fit`)
and ``OUT/manifest.json`` (each cell's parameters, seed, status, time and file).

Resumable: a cell's file is written atomically (temporary file, then rename)
and carries its *fingerprint* (the hash of its parameters, seed, sampler
settings and data); a rerun keeps a cell only when its file loads, passes the
content hash that :func:`bayescrt.load` checks, and has the fingerprint the
cell has now. Everything else (never started, killed mid-cell, truncated or
corrupt file, changed settings) is fitted again. Seeds are per cell, derived
from the grid's seed and the cell's name, so a cell's draws do not depend on
which other cells exist, in which order they run, or on which machine.

Compile once: cells are grouped by model structure (family, covariate set and
the prior's distribution); a group runs in one process with one
:class:`~bayescrt.compiled.CompiledModels`, so data and prior hyperparameters
change between its cells without recompiling. The run reports the number of
compilations it made.

Scale-out: ``scheduler=`` (a ``dask.distributed`` address, or a ``Client``)
sends each group to the cluster as one task; Dask reruns the task of a worker
that dies, and the rerun skips the cells already written. Workers write into
``out`` directly, so it must be a filesystem they share. Without a scheduler,
``workers`` local processes run the groups (1: in this process).

Named priors on the exposure's log-HR (Spiegelhalter, Freedman and Parmar,
J R Stat Soc A 1994), from the clinically important HR ``h``
(``important_hr``, default 1.25):

* ``sceptical``: ``Normal(0, log(h) / 1.645)``, P(HR > h) = 5%;
* ``enthusiastic``: ``Normal(log(h), log(h) / 1.645)``, P(HR < 1) = 5%;
* ``neutral``: the analysis' default prior (weakly informative; see
  :mod:`bayescrt.priors`);
* any explicit prior dict with a ``name``, e.g.
  ``{"name": "harm", "dist": "Normal", "mu": 0.1, "sigma": 0.05}`` (original scale).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import logging
import json
import math
import os
import socket
import time as _time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .covariate_sets import CovariateSets
from .errors import DiagnosticsWarning, ResultFileError, SpecError, suggest
from . import validation
from .priors import validate_prior

FAMILIES = ("CoxPH", "WeibullPH", "PiecewiseExponentialPH")
NAMED_PRIORS = ("sceptical", "neutral", "enthusiastic")
OPERATORS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
             ">=": np.greater_equal}
Z95 = 1.6448536269514722  # one-sided 5% normal quantile
SENSITIVITY_KEYS = {"priors", "covariate_sets", "families", "subsets", "important_hr", "draws", "tune", "chains",
                    "random_seed", "confounding"}
CONFOUNDING_KEYS = {"prevalence_exposed", "prevalence_unexposed", "confounder_hr"}
TABLE_COLUMNS = ["family", "covariate_set", "prior", "subset", "n", "n_events", "hr_median", "hr_lower", "hr_upper",
                 "p_hr_gt_1", "log_hr_mean", "log_hr_sd", "prior_sensitivity", "likelihood_sensitivity",
                 "sensitivity_diagnosis", "diagnostics_ok"]


def named_prior(name: str, important_hr: float = 1.25) -> dict | None:
    """A named prior on the exposure's log-HR (original scale); ``None`` for ``neutral`` (the default prior)."""
    h = math.log(important_hr)
    sd = abs(h) / Z95
    if name == "sceptical":
        return {"dist": "Normal", "mu": 0.0, "sigma": sd, "scale": "original"}
    if name == "enthusiastic":
        return {"dist": "Normal", "mu": h, "sigma": sd, "scale": "original"}
    if name == "neutral":
        return None
    raise SpecError(f"prior {name!r} is not a named prior.{suggest(name, NAMED_PRIORS)} Named priors: "
                    f"{list(NAMED_PRIORS)}; or give a dict with 'name', 'dist' and its parameters")


@dataclass(frozen=True)
class Cell:
    """One combination of the grid."""

    family: str
    covariate_set: str
    prior: str
    subset: str

    @property
    def id(self) -> str:
        return f"{self.family}__{self.covariate_set}__{self.prior}__{self.subset}"

    def params(self) -> dict:
        return {"family": self.family, "covariate_set": self.covariate_set, "prior": self.prior,
                "subset": self.subset}


@dataclass
class Grid:
    """What a sensitivity analysis crosses, and how each cell is fitted.

    ``priors``: names (``sceptical``, ``neutral``, ``enthusiastic``) or dicts
    with a ``name`` key and a prior on the exposure's log-HR. ``covariate_sets``:
    a :class:`~bayescrt.CovariateSets` or dict (the exposure is added to each).
    ``families``: ``"CoxPH"``, ``"WeibullPH"``, ``"PiecewiseExponentialPH"`` or
    dicts ``{"family": ..., **options}`` (e.g. ``ties`` or ``n_intervals``).
    ``subsets``: name -> list of ``[column, operator, value]`` conditions
    (all must hold); default ``{"all": []}``. ``base_priors``: priors of the
    other covariates (and ``default``), as for ``fit(priors=...)``.
    """

    time: str
    event: str
    exposure: str
    covariate_sets: dict
    priors: list = field(default_factory=lambda: list(NAMED_PRIORS))
    families: list = field(default_factory=lambda: ["CoxPH"])
    subsets: dict = field(default_factory=lambda: {"all": []})
    important_hr: float = 1.25
    base_priors: dict = field(default_factory=dict)
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    random_seed: int = 0
    confounding: dict | None = None
    published: dict = field(default_factory=dict)  # covariate set -> {hr, lower, upper}
    synthetic: bool = False
    title: str = ""

    def __post_init__(self):
        for key in ("time", "event", "exposure"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise SpecError(f"{key}={getattr(self, key)!r} must be a column name (text)")
        if not isinstance(self.covariate_sets, dict):
            raise SpecError(f"covariate_sets={self.covariate_sets!r} must be a dict of set name -> list of columns, "
                            "e.g. {'minimal': ['age', 'male'], 'full': ['age', 'male', 'ckd']}")
        bad = [k for k in self.covariate_sets if not isinstance(k, str)]
        if bad:
            raise SpecError(f"covariate set name {bad[0]!r} must be text, e.g. 'minimal'")
        sets = self.covariate_sets if isinstance(self.covariate_sets, CovariateSets) \
            else CovariateSets(**self.covariate_sets)
        self.covariate_sets = {k: list(v) for k, v in sets.items()}
        if not validation.is_number(self.important_hr) or not 0 < self.important_hr < math.inf \
                or self.important_hr == 1:
            raise SpecError(f"important_hr={self.important_hr!r} must be a positive number other than 1, e.g. 1.25")
        self.important_hr = float(self.important_hr)
        if not isinstance(self.synthetic, (bool, np.bool_)):
            raise SpecError(f"synthetic={self.synthetic!r} must be True or False")
        self.synthetic = bool(self.synthetic)
        if not isinstance(self.base_priors, dict):
            raise SpecError(f"base_priors={self.base_priors!r} must be a dict of covariate (or 'default') -> prior")
        for k, p in self.base_priors.items():
            if not isinstance(p, dict):
                raise SpecError(f"base_priors[{k!r}]={p!r} must be a prior dict, e.g. {{'dist': 'Normal', 'mu': 0, "
                                "'sigma': 1}")
            validate_prior(p, f"base_priors[{k!r}]")
        if not isinstance(self.published, dict):
            raise SpecError(f"published={self.published!r} must be a dict of covariate set -> {{hr, lower, upper}}")
        from .compare import as_published

        for k, p in self.published.items():
            if k not in self.covariate_sets:
                raise SpecError(f"published: {k!r} is not a covariate set of the grid.{suggest(str(k), self.covariate_sets)}"
                                f" Sets: {list(self.covariate_sets)}")
            if not isinstance(p, dict):
                raise SpecError(f"published[{k!r}]={p!r} must be a dict with hr, lower and upper")
            try:  # its numbers (a spec's entries also carry text such as the adjustment and result id)
                as_published({key: p[key] for key in ("hr", "lower", "upper", "level") if key in p})
            except SpecError as err:
                raise SpecError(f"published[{k!r}]: {err}") from None
        self._priors = {}
        if not isinstance(self.priors, (list, tuple)):
            raise SpecError(f"priors={self.priors!r} must be a list of prior names or dicts with a 'name'")
        for p in self.priors:
            if isinstance(p, str):
                self._priors[p] = named_prior(p, self.important_hr)
            elif isinstance(p, dict) and isinstance(p.get("name"), str):
                validation.label("grid prior", p["name"])
                q = {k: v for k, v in p.items() if k != "name"}
                self._priors[p["name"]] = validate_prior(q, f"grid prior {p['name']!r}")
            else:
                raise SpecError(f"grid prior {p!r}: give a name {list(NAMED_PRIORS)} or a dict with 'name', "
                                "'dist' and its parameters")
        if len(self._priors) != len(self.priors) or not self._priors:
            raise SpecError(f"grid priors {self.priors!r}: give at least one, with distinct names")
        self._families = {}
        if not isinstance(self.families, (list, tuple)):
            raise SpecError(f"families={self.families!r} must be a list of family names or dicts with 'family'")
        for f in self.families:
            if not isinstance(f, (str, dict)):
                raise SpecError(f"grid family {f!r}: give a family name {list(FAMILIES)} or a dict with 'family'")
            opts = {"family": f} if isinstance(f, str) else dict(f)
            fam = opts.pop("family", None)
            if fam not in FAMILIES:
                raise SpecError(f"grid family {f!r}: family must be one of {list(FAMILIES)}.{suggest(str(fam), FAMILIES)}")
            name = validation.label("grid family", opts.pop("name", fam))
            try:  # the family's options are checked now, not when its first cell is fitted
                _estimator(fam, opts)
            except (TypeError, ValueError) as err:  # SpecErrors of the options too
                raise SpecError(f"grid family {f!r}: {err}") from None
            self._families[name] = (fam, opts)
        if len(self._families) != len(self.families) or not self._families:
            raise SpecError(f"grid families {self.families!r}: give at least one; name repeated families "
                            "({'family': ..., 'name': ...})")
        known = {"default", self.exposure, *(c for cols in self.covariate_sets.values() for c in cols)}
        for key in self.base_priors or {}:
            if key not in known:
                raise SpecError(f"priors: {key!r} is not the exposure or a covariate of any set.{suggest(key, known)} "
                                f"Valid keys: {sorted(known)}")
        if not isinstance(self.subsets, dict) or not self.subsets:
            raise SpecError(f"subsets={self.subsets!r} must be a dict of name -> list of [column, operator, value]")
        for name, conds in self.subsets.items():
            validation.label("subset", name)
            if not isinstance(conds, (list, tuple)):
                raise SpecError(f"subset {name!r}: {conds!r} must be a list of [column, operator, value] conditions")
            for c in conds:
                if not (isinstance(c, (list, tuple)) and len(c) == 3 and c[1] in OPERATORS):
                    raise SpecError(f"subset {name!r}: condition {c!r} must be [column, operator, value] with "
                                    f"operator one of {list(OPERATORS)}")
        self.draws = validation.integer("draws", self.draws, low=1)
        self.tune = validation.integer("tune", self.tune, low=0)
        self.chains = validation.integer("chains", self.chains, low=1)
        self.random_seed = validation.integer("random_seed", self.random_seed, low=0, high=validation.SEED_MAX)
        ids = {}
        for cell in self.cells():  # one file per cell, on case-insensitive file systems too
            other = ids.setdefault(cell.id.lower(), cell.id)
            if other != cell.id:
                raise SpecError(f"cells {other!r} and {cell.id!r} differ only in upper/lower case and would share one "
                                "file on some file systems; rename a covariate set, prior, family or subset")
        if self.confounding is not None:
            extra = set(self.confounding) - CONFOUNDING_KEYS
            missing = CONFOUNDING_KEYS - set(self.confounding)
            if extra or missing:
                raise SpecError(f"confounding: needs exactly {sorted(CONFOUNDING_KEYS)}"
                                + (f"; unknown {sorted(extra)}" if extra else "")
                                + (f"; missing {sorted(missing)}" if missing else ""))
            from .bias import _check_prior

            for k, v in self.confounding.items():
                _check_prior(v, k, k == "confounder_hr", k != "confounder_hr")

    # ------------------------------------------------------------------ cells
    def cells(self) -> list[Cell]:
        return [Cell(f, s, p, d) for f in self._families for s in self.covariate_sets for p in self._priors
                for d in self.subsets]

    def prior_of(self, cell: Cell) -> dict | None:
        return self._priors[cell.prior]

    def seed_of(self, cell: Cell) -> int:
        """The cell's seed: from the grid seed and the cell's name only."""
        ss = np.random.SeedSequence([self.random_seed, zlib.crc32(cell.id.encode())])
        return int(ss.generate_state(1)[0])

    def group_of(self, cell: Cell) -> tuple:
        """Cells of one group share a model structure (and run in one process)."""
        prior = self.prior_of(cell)
        if prior is None:  # the analysis default: the exposure's own base prior, else the default, else built-in
            from .priors import DEFAULT_PRIOR

            base = self.base_priors or {}
            prior = base.get(self.exposure) or base.get("default") or DEFAULT_PRIOR
        return (cell.family, cell.covariate_set, prior["dist"])

    def fingerprint(self, cell: Cell, data_hash: str) -> str:
        fam, opts = self._families[cell.family]
        rec = {"cell": cell.params(), "family": fam, "options": opts, "covariates": self.covariate_sets[cell.covariate_set],
               "prior": self.prior_of(cell), "base_priors": self.base_priors, "subset": self.subsets[cell.subset],
               "exposure": self.exposure, "time": self.time, "event": self.event, "seed": self.seed_of(cell),
               "sampler": [self.draws, self.tune, self.chains], "data": data_hash}
        return hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()

    def to_dict(self) -> dict:
        keys = ("time", "event", "exposure", "covariate_sets", "priors", "families", "subsets", "important_hr",
                "base_priors", "draws", "tune", "chains", "random_seed", "confounding", "published", "synthetic",
                "title")
        return {k: copy.deepcopy(getattr(self, k)) for k in keys}

    @classmethod
    def from_spec(cls, spec, **overrides) -> "Grid":
        """The grid of a spec's ``[sensitivity]`` section (covariate sets, priors, published HRs from the spec)."""
        from .spec import load_spec

        if not hasattr(spec, "raw"):
            spec = load_spec(spec)
        sec = dict(spec.raw.get("sensitivity", {}))
        if not sec and not overrides:
            raise SpecError(f"spec {spec.name!r} has no [sensitivity] section; add one (see models/danish_registry.toml)")
        _unknown = [k for k in sec if k not in SENSITIVITY_KEYS]
        if _unknown:
            raise SpecError(f"[sensitivity]: unknown key {_unknown[0]!r}.{suggest(_unknown[0], SENSITIVITY_KEYS)} "
                            f"Valid keys: {sorted(SENSITIVITY_KEYS)}")
        sets = spec.covariate_sets
        chosen = sec.get("covariate_sets", list(sets))
        for s in chosen:
            if s not in sets:
                raise SpecError(f"[sensitivity] covariate_sets: {s!r} is not a covariate set of the spec."
                                f"{suggest(s, sets)} Sets: {list(sets)}")
        fams = []
        model = {k: v for k, v in spec.raw["model"].items() if k != "family"}
        for f in sec.get("families", [spec.raw["model"]["family"]]):
            if f == "CoxPH" and model:
                f = {"family": "CoxPH", **model}
            fams.append(f)
        sampler = spec.sampler
        pub = {k: v for k, v in spec.published.items() if k in chosen}
        kw = dict(time=spec.raw["time"], event=spec.raw["event"], exposure=spec.raw["exposure"],
                  covariate_sets={s: sets[s] for s in chosen}, priors=sec.get("priors", list(NAMED_PRIORS)),
                  families=fams, subsets=sec.get("subsets", {"all": []}),
                  important_hr=sec.get("important_hr", 1.25), base_priors=spec.priors,
                  draws=sec.get("draws", sampler.get("draws", 1000)), tune=sec.get("tune", sampler.get("tune", 1000)),
                  chains=sec.get("chains", sampler.get("chains", 4)),
                  random_seed=sec.get("random_seed", sampler.get("random_seed", 0)),
                  confounding=sec.get("confounding"), published=pub, synthetic=spec.synthetic,
                  title=spec.title)
        kw.update(overrides)
        return cls(**kw)


# ---------------------------------------------------------------------- cells
def _subset(df: pd.DataFrame, conds, name: str) -> pd.DataFrame:
    keep = np.ones(len(df), bool)
    for col, op, val in conds:
        if col not in df.columns:
            raise SpecError(f"subset {name!r}: column {col!r} is not in the data.{suggest(col, df.columns)}")
        if isinstance(val, (list, tuple, dict, set)) or val is None:
            raise SpecError(f"subset {name!r}: condition {[col, op, val]!r} compares with {val!r}; give one number, "
                            "bool or text value")
        if isinstance(val, (bool, np.bool_)) != pd.api.types.is_bool_dtype(df[col].dtype):  # True is not 1 here
            raise SpecError(f"subset {name!r}: condition {[col, op, val]!r} compares "
                            + (f"a bool with column {col!r} of dtype {df[col].dtype}, where True would mean 1"
                               if isinstance(val, (bool, np.bool_)) else
                               f"the bool column {col!r} with {val!r}; compare it with True or False"))
        try:
            with np.errstate(invalid="ignore"):
                hit = np.asarray(OPERATORS[op](df[col].to_numpy(), val), dtype=bool)
        except TypeError:
            raise SpecError(f"subset {name!r}: condition {[col, op, val]!r} cannot compare column {col!r} (dtype "
                            f"{df[col].dtype}) with {val!r} ({type(val).__name__}); give a value of the column's type")
        if hit.shape != (len(df),):
            raise SpecError(f"subset {name!r}: condition {[col, op, val]!r} does not give one answer per row")
        keep &= hit
    if not keep.any():
        raise SpecError(f"subset {name!r} ({conds}) selects no rows")
    return df.loc[keep]


def _estimator(fam: str, opts: dict):
    from . import estimators

    return getattr(estimators, fam)(**opts)


def _log_prior(draws: np.ndarray, prior: dict, sd: float) -> np.ndarray:
    """Log density of the exposure's prior at its log-HR draws (original scale)."""
    from scipy import stats

    p = dict(prior)
    if p.get("scale") == "standardised":  # the same prior per unit of the covariate
        from .priors import rescale

        p = rescale(p, sd, "original")
    d = p["dist"]
    if d == "Normal":
        return stats.norm.logpdf(draws, p["mu"], p["sigma"])
    if d == "StudentT":
        return stats.t.logpdf(draws, p["nu"], p["mu"], p["sigma"])
    if d == "Cauchy":
        return stats.cauchy.logpdf(draws, p["mu"], p["sigma"])
    if d == "Laplace":
        return stats.laplace.logpdf(draws, p["mu"], p["sigma"])
    return np.zeros_like(draws)  # Flat


def _cell_inputs(grid: Grid, cell: Cell, df: pd.DataFrame, check: bool = False):
    """(estimator, the subset's rows, covariates with the exposure first, priors); ``check`` validates them."""
    fam, opts = grid._families[cell.family]
    est = _estimator(fam, opts)
    data = _subset(df, grid.subsets[cell.subset], cell.subset)
    covs = [grid.exposure] + [c for c in grid.covariate_sets[cell.covariate_set] if c != grid.exposure]
    priors = dict(grid.base_priors)
    prior = grid.prior_of(cell)
    if prior is not None:
        priors[grid.exposure] = prior
    keep = {"default", *covs}
    priors = {k: v for k, v in priors.items() if k in keep}
    if check:
        from .priors import resolve_priors

        sd = est.prepare(data, time=grid.time, event=grid.event, covariates=covs)
        if sd.sources.count(grid.exposure) != 1 or sd.covariates[0] != grid.exposure:
            raise SpecError(f"exposure {grid.exposure!r} must be one 0/1 or numeric column (it expands to "
                            f"{[c for c, s in zip(sd.covariates, sd.sources) if s == grid.exposure]})")
        resolve_priors(sd.covariates, sd.sources, sd.scale, priors)
    return est, data, covs, priors


def loglik_total(fit) -> np.ndarray | None:
    """Total log-likelihood of every draw, (chain, draw), up to one constant, from the sampler's log density.

    The sampler records ``logp`` = log prior + log-likelihood at each draw. For Cox
    and Weibull fits without frailty or study levels every prior term is known in
    closed form, so the log-likelihood is ``logp`` minus them (the coefficients'
    priors on their own scale differ from the sampled parameterisation's by a
    constant Jacobian). A constant is all that power-scaling allows, as its
    weights are normalised. ``None`` for other fits.
    """
    from scipy import stats

    m = fit.model
    if m["family"] not in ("CoxPH", "WeibullPH") or "frailty" in m or "studies" in m:
        return None
    post = fit.idata["posterior"].to_dataset().transpose("chain", "draw", ...)
    beta = post["log_hr"].values
    lp = sum(_log_prior(beta[..., j], rec["given"], float(m["scale"][j])) for j, rec in enumerate(fit.priors))
    if m["family"] == "WeibullPH":  # log_scale ~ Normal(0, 3), log_shape ~ Normal(0, 1), per stratum
        lp = lp + stats.norm.logpdf(post["log_scale"].values, 0.0, 3.0).sum(-1) \
            + stats.norm.logpdf(np.log(post["shape"].values), 0.0, 1.0).sum(-1)
    return fit.idata["sample_stats"]["logp"].transpose("chain", "draw").values - lp


def fit_cell(grid: Grid, cell: Cell, df: pd.DataFrame, compiled_models=None, progress: bool = False,
             data_hash: str | None = None):
    """Fit one cell; returns the Fit with ``log_prior`` (the exposure's prior) and per-draw ``log_likelihood``."""
    import xarray as xr

    est, data, covs, priors = _cell_inputs(grid, cell, df)
    # the per-row log-likelihood is computed only for families whose total cannot come from the sampler's logp
    pointwise = est.family not in ("CoxPH", "WeibullPH")
    fit = est.fit(data, time=grid.time, event=grid.event, covariates=covs, priors=priors, draws=grid.draws,
                  tune=grid.tune, chains=grid.chains, random_seed=grid.seed_of(cell), progress=progress,
                  log_likelihood=pointwise, compiled_models=compiled_models)
    tree = fit.idata
    from .fit import Fit, changes, seal

    altered = changes(tree)
    if altered:  # the cell's file is sealed afresh below: only what the fit made may go into it
        raise ResultFileError(f"cell {cell.id}: the fit's content changed after it was made: {'; '.join(altered)}")
    post = tree["posterior"]
    dims = {"chain": post["chain"].values, "draw": post["draw"].values}
    total = None if pointwise else loglik_total(fit)
    if total is None:
        ll = tree["log_likelihood"].to_dataset()
        var = ll[next(iter(ll.data_vars))].transpose("chain", "draw", ...)
        total = var.values.reshape(var.shape[0], var.shape[1], -1).sum(-1)
    j = 0  # the exposure is the first covariate
    x = post["log_hr"].isel(covariate=j).transpose("chain", "draw").values
    lp = _log_prior(x, fit.priors[j]["given"], float(fit.model["scale"][j]))
    groups = {g: tree[g].to_dataset() for g in tree.children if g != "log_likelihood"}
    # per draw: what likelihood power-scaling needs, at 1/N of the per-row size
    groups["log_likelihood"] = xr.Dataset({"loglik_total": (("chain", "draw"), total)}, coords=dims)
    groups["log_prior"] = xr.Dataset({"exposure_prior": (("chain", "draw"), lp)}, coords=dims)
    out = xr.DataTree.from_dict(groups)
    out.attrs.update(tree.attrs)
    out.attrs["bayescrt_cell"] = json.dumps(cell.params())
    if data_hash is not None:  # what a resumed run checks the file against
        out.attrs["bayescrt_cell_fingerprint"] = grid.fingerprint(cell, data_hash)
    seal(out)
    return Fit(out)


def _valid(path: Path, fingerprint: str) -> bool:
    from .fit import load

    if not path.exists():
        return False
    try:
        fit = load(path)
    except (ResultFileError, OSError, ValueError):
        return False
    return fit.idata.attrs.get("bayescrt_cell_fingerprint") == fingerprint


def _run_group(grid_dict: dict, cells: list[dict], df: pd.DataFrame, out: str, data_hash: str, run_id: str,
               on_cell=None, compiled_models=None) -> dict:
    """Fit the cells of one group in this process, skipping those already written; returns their records.

    Each compilation is appended to the run's journal as it finishes, so that the
    count includes compilations by a worker that died before its task returned."""
    from .compiled import CompiledModels

    grid = Grid(**grid_dict)
    cache = compiled_models or CompiledModels()
    cache.on_compile = functools.partial(_journal_compilation, Path(out) / JOURNAL, run_id)
    folder = Path(out) / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for c in cells:
        cell = Cell(**c)
        path = folder / f"{cell.id}.nc"
        fp = grid.fingerprint(cell, data_hash)
        if _valid(path, fp):
            records.append({"id": cell.id, "status": "done", "reused_file": True})
            if on_cell:
                on_cell(cell)
            continue
        marker = folder / f"{cell.id}.running"
        marker.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _time.time()}))
        t0 = _time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DiagnosticsWarning)  # reported in the table, cell by cell
            fit = fit_cell(grid, cell, df, compiled_models=cache, data_hash=data_hash)
        fit.save(path)
        marker.unlink(missing_ok=True)
        s = json.loads(fit.idata.attrs["bayescrt_sampling"])
        records.append({"id": cell.id, "status": "done", "reused_file": False,
                        "seconds": round(_time.perf_counter() - t0, 3), "compiled": s.get("compiled"),
                        "compile_seconds": s.get("compile_seconds"), "sampling_seconds": s.get("sampling_seconds")})
        if on_cell:
            on_cell(cell)
    return {"records": records, "pid": os.getpid()}  # compilations: counted from the run's journal


JOURNAL = "compilations.jsonl"


def _journal_compilation(path: Path, run_id: str, structure: str, seconds: float) -> None:
    line = json.dumps({"run": run_id, "structure": structure, "seconds": round(seconds, 3), "pid": os.getpid(),
                       "host": socket.gethostname()}) + "\n"
    with open(path, "a") as fh:  # one short appended line: atomic on a local file system
        fh.write(line)


def _journaled(out: Path, run_id: str) -> list[dict]:
    """The compilations journaled by run ``run_id``."""
    path = out / JOURNAL
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut short by a kill
            continue
        if rec.get("run") == run_id:
            rows.append(rec)
    return rows


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _data_hash(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()
                          + ",".join(map(str, df.columns)).encode()).hexdigest()


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class SensitivityResult:
    """A finished grid: ``table()``, ``plot()``, ``fit(cell)``; ``compilations`` made by the last run."""

    def __init__(self, grid: Grid, out: Path, manifest: dict):
        self.grid, self.out, self.manifest = grid, Path(out), manifest

    @property
    def compilations(self) -> int:
        return int(self.manifest["last_run"]["compilations"])

    def fit(self, cell: Cell | str):
        """The saved fit of one cell of this grid (by id or Cell), checked to be the one this grid made."""
        from .fit import load

        cid = cell.id if isinstance(cell, Cell) else cell
        ids = [c.id for c in self.grid.cells()]
        if cid not in ids:
            raise SpecError(f"cell {cid!r} is not a cell of this grid.{suggest(str(cid), ids)} Cells: {ids}")
        fit = load(self.out / "cells" / f"{cid}.nc")
        expected = self.manifest["cells"][cid]["fingerprint"]
        if fit.idata.attrs.get("bayescrt_cell_fingerprint") != expected:
            raise ResultFileError(f"{self.out / 'cells' / (cid + '.nc')}: the file is not the fit of this grid's cell "
                                  f"{cid!r} (its settings, seed or data differ); run the grid again to refit it")
        return fit

    def table(self, prob: float = 0.95) -> pd.DataFrame:
        """One row per cell: the exposure's HR posterior, power-scaling sensitivity, diagnostics."""
        from arviz import psense_summary

        rows = []
        a = (1 - prob) / 2
        for cell in self.grid.cells():
            fit = self.fit(cell)
            x = fit.log_hr_draws()[:, 0]
            m = fit.model
            with warnings.catch_warnings(), _quiet("arviz_stats.psense"):  # its advice is our column and note
                warnings.simplefilter("ignore")
                ps = psense_summary(fit.idata, var_names=["log_hr"], coords={"covariate": [fit.covariates[0]]})
            lo, med, hi = np.exp(np.quantile(x, [a, 0.5, 1 - a]))
            row = {"cell": cell.id, **cell.params(), "n": m["n"], "n_events": m["n_events"], "hr_median": med,
                   "hr_lower": lo, "hr_upper": hi, "p_hr_gt_1": float(np.mean(x > 0)), "log_hr_mean": float(x.mean()),
                   "log_hr_sd": float(x.std(ddof=1)), "prior_sensitivity": float(ps["prior"].iloc[0]),
                   "likelihood_sensitivity": float(ps["likelihood"].iloc[0]),
                   "sensitivity_diagnosis": str(ps["diagnosis"].iloc[0]), "diagnostics_ok": fit.diagnostics().ok}
            if self.grid.confounding is not None:
                from .bias import unmeasured_confounding

                ba = unmeasured_confounding(fit, fit.covariates[0], prob=prob, random_seed=self.grid.seed_of(cell),
                                            **self.grid.confounding)
                t = ba.table().loc["bias-adjusted"]
                ev = ba.evalues()
                row.update(adjusted_hr_median=t["hr_median"], adjusted_hr_lower=t["hr_lower"],
                           adjusted_hr_upper=t["hr_upper"], adjusted_p_hr_gt_1=t["p_hr_gt_1"],
                           evalue_interval=float(ev.loc["interval end nearest 1", "evalue"]))
            rows.append(row)
        tab = pd.DataFrame(rows).set_index("cell")
        tab.attrs.update(prob=prob, exposure=self.grid.exposure, synthetic=self.grid.synthetic)
        return tab

    def __str__(self) -> str:
        t = self.table()
        shown = pd.DataFrame({
            "family": t["family"], "set": t["covariate_set"], "prior": t["prior"], "subset": t["subset"],
            "HR (median)": t["hr_median"].map("{:.3f}".format),
            "95% CrI": [f"{a:.3f} to {b:.3f}" for a, b in zip(t["hr_lower"], t["hr_upper"])],
            "P(HR>1)": t["p_hr_gt_1"].map("{:.3f}".format),
            "prior sens.": t["prior_sensitivity"].map("{:.3f}".format),
            "diagnosis": t["sensitivity_diagnosis"],
            "diagnostics": t["diagnostics_ok"].map({True: "ok", False: "FAILED"}),
        })
        if "adjusted_hr_median" in t:
            shown["bias-adjusted HR"] = [f"{m:.3f} ({a:.3f} to {b:.3f})" for m, a, b in
                                         zip(t["adjusted_hr_median"], t["adjusted_hr_lower"], t["adjusted_hr_upper"])]
        head = ("SYNTHETIC DATA: a simulated cohort calibrated to published tables, not patient data.\n"
                if self.grid.synthetic else "")
        notes = []
        if t["sensitivity_diagnosis"].str.contains("potential").any():
            notes.append("A 'potential' diagnosis: power-scaling sensitivity above 0.05 (Kallioinen et al., Stat Comput "
                         "2024): the prior dominates the data or conflicts with them in that cell.")
        if not t["diagnostics_ok"].all():
            notes.append("Cells marked FAILED did not pass the convergence diagnostics: their rows cannot be trusted.")
        lr = self.manifest["last_run"]
        return (f"{head}Sensitivity grid: HR of {self.grid.exposure!r} in {len(t)} cells "
                f"({_count(lr['compilations'], 'compilation')} in the last run, {_count(lr['fitted'], 'cell')} "
                f"fitted, {lr['kept']} kept from before)\n" + shown.to_string(index=False)
                + "".join("\n" + n for n in notes))

    def plot(self, ax=None, prob: float = 0.95):
        """Forest plot of the exposure HR across cells; each covariate set's published CI beside its cells."""
        from .plotting import plot_forest

        t = self.table(prob=prob)
        label = (t["family"] + " | " + t["covariate_set"] + " | " + t["prior"]
                 + np.where(t["subset"] == "all", "", " | " + t["subset"]))
        tab = t.set_index(label)[["hr_median", "hr_lower", "hr_upper", "diagnostics_ok"]]
        tab.attrs["prob"] = prob
        pub = None
        if self.grid.published:
            pub = pd.DataFrame([{k: self.grid.published.get(s, {}).get(k, np.nan) for k in ("hr", "lower", "upper")}
                                for s in t["covariate_set"]], index=tab.index)
        title = f"HR of {self.grid.exposure!r} across the sensitivity grid"
        if self.grid.synthetic:
            title += "\n(SYNTHETIC cohort calibrated to published tables)"
        return plot_forest(tab, ax=ax, published=pub, title=title)


def run(grid, out, *, data: pd.DataFrame | None = None, scheduler=None, workers: int = 1,
        progress: bool = True, **overrides) -> SensitivityResult:
    """Fit every cell of ``grid`` (a :class:`Grid`, a spec name or path) into folder ``out``; resume if possible.

    ``data``: the cohort (default for a spec: its synthetic cohort). ``scheduler``:
    a ``dask.distributed`` scheduler address or Client; otherwise ``workers``
    local processes (1: this process). The caller's DataFrame is not modified.
    """
    out = validation.output_folder(out, "out")  # before the cohort is simulated or anything is fitted
    spec = None
    if not isinstance(grid, Grid):
        from .spec import load_spec

        spec = load_spec(grid)
        grid = Grid.from_spec(spec, **overrides)
    elif overrides:
        raise SpecError(f"{sorted(overrides)}: overrides apply to a spec; set them on the Grid instead")
    if data is None:
        if spec is None or "cohort" not in spec.raw:
            raise SpecError("data= is required: this grid has no spec with a synthetic cohort")
        data = spec.simulate()
    workers = validation.integer("workers", workers, low=1)
    if not isinstance(data, pd.DataFrame):
        raise SpecError(f"data= must be a pandas DataFrame, got {type(data).__name__}")
    df = data.copy()
    (out / "cells").mkdir(parents=True, exist_ok=True)
    with _lock(out):
        return _run_locked(grid, out, df, scheduler, workers, progress)


class _lock:
    """One run per output folder: an exclusive lock on ``out/.lock``, released by the OS if the run dies."""

    def __init__(self, out: Path):
        self.path = out / ".lock"

    def __enter__(self):
        import fcntl

        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise SpecError(f"another run is writing to {str(self.path.parent)!r}; wait for it or choose another "
                            "out folder") from None
        return self

    def __exit__(self, *exc):
        self.fh.close()


def _run_locked(grid, out, df, scheduler, workers, progress):
    data_hash = _data_hash(df)
    cells = grid.cells()
    for cell in cells:  # every cell's data and priors are checked before any sampling
        _cell_inputs(grid, cell, df, check=True)
    groups: dict = {}
    for cell in cells:
        groups.setdefault(grid.group_of(cell), []).append(cell)
    done = {c.id for c in cells if _valid(out / "cells" / f"{c.id}.nc", grid.fingerprint(c, data_hash))}
    for c in cells:  # stale, truncated or corrupt files and markers of killed runs are removed before refitting
        if c.id not in done:
            for suffix in (".nc", ".nc.tmp", ".running"):
                (out / "cells" / f"{c.id}{suffix}").unlink(missing_ok=True)
    manifest_path = out / "manifest.json"
    before = {}
    if manifest_path.exists():  # keep the records (time, compilation) of cells finished by earlier runs
        try:
            before = json.loads(manifest_path.read_text()).get("cells", {})
        except (OSError, ValueError):
            before = {}
    manifest = {"grid": grid.to_dict(), "data_sha256": data_hash, "synthetic": grid.synthetic,
                "cells": {c.id: {**c.params(), "seed": grid.seed_of(c), "fingerprint": grid.fingerprint(c, data_hash),
                                 "file": f"cells/{c.id}.nc", "status": "done" if c.id in done else "pending",
                                 **({k: v for k, v in before.get(c.id, {}).items()
                                     if k in ("seconds", "compiled", "compile_seconds", "sampling_seconds")}
                                    if c.id in done else {})}
                          for c in cells}}
    _write_json(manifest_path, manifest)
    todo = [(key, [c for c in cs if c.id not in done]) for key, cs in groups.items()]
    todo = [(key, cs) for key, cs in todo if cs]
    payload = grid.to_dict()
    run_id = f"{socket.gethostname()}-{os.getpid()}-{_time.time_ns()}"
    t0 = _time.perf_counter()
    results = []
    with _Progress(len(cells), len(done), progress) as bar:
        if not todo:
            pass
        elif scheduler is not None:
            results = _run_dask(scheduler, payload, todo, df, out, data_hash, run_id, bar, manifest, manifest_path)
        elif workers == 1:
            from .compiled import CompiledModels

            cache = CompiledModels()
            for key, cs in todo:
                r = _run_group(payload, [c.params() for c in cs], df, str(out), data_hash, run_id,
                               on_cell=lambda c: bar.advance(), compiled_models=cache)
                results.append(r)
                _record(manifest, manifest_path, r)
        else:
            results = _run_processes(workers, payload, todo, df, out, data_hash, run_id, bar, manifest,
                                     manifest_path)
    fitted = [rec for r in results for rec in r["records"] if not rec.get("reused_file")]
    # from the journal: a task whose worker died compiled too, though it returned nothing
    journal = _journaled(out, run_id)
    manifest["last_run"] = {"run": run_id, "compilations": len(journal),
                            "structures": len({j["structure"] for j in journal}),
                            "fitted": len(fitted),
                            "kept": len(cells) - len(fitted), "seconds": round(_time.perf_counter() - t0, 3),
                            "groups": len(todo), "scheduler": None if scheduler is None else str(scheduler),
                            "workers": workers}
    _write_json(manifest_path, manifest)
    missing = [c.id for c in cells if not (out / "cells" / f"{c.id}.nc").exists()]
    if missing:
        raise RuntimeError(f"{len(missing)} cells have no result after the run: {missing[:5]}; run again to resume")
    return SensitivityResult(grid, out, manifest)


def _record(manifest, path, result):
    for rec in result["records"]:
        manifest["cells"][rec["id"]].update({k: v for k, v in rec.items() if k != "id"})
    _write_json(path, manifest)


class _Progress:
    """A progress bar over cells (rich), or nothing."""

    def __init__(self, total, completed, enabled):
        self.total, self.completed, self.enabled = total, completed, enabled

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("sensitivity grid"), BarColumn(), MofNCompleteColumn(), TextColumn("cells"),
                               TimeElapsedColumn())
            self._p.start()
            self._task = self._p.add_task("cells", total=self.total, completed=self.completed)
        return self

    def advance(self, n=1):
        if self.enabled:
            self._p.advance(self._task, n)

    def set(self, completed):
        if self.enabled:
            self._p.update(self._task, completed=completed)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.stop()


def _count_done(out: Path, ids) -> int:
    return sum((out / "cells" / f"{i}.nc").exists() for i in ids)


def _run_processes(workers, payload, todo, df, out, data_hash, run_id, bar, manifest, manifest_path):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ids = list(manifest["cells"])
    results = []
    # spawn: a forked child of a process holding compiler and sampler threads can deadlock
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn")) as ex:
        pending = {ex.submit(_run_group, payload, [c.params() for c in cs], df, str(out), data_hash, run_id)
                   for _, cs in todo}
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for f in finished:
                r = f.result()
                results.append(r)
                _record(manifest, manifest_path, r)
            bar.set(_count_done(out, ids))
    return results


def _run_dask(scheduler, payload, todo, df, out, data_hash, run_id, bar, manifest, manifest_path):
    try:
        from distributed import Client
    except ImportError as exc:
        raise SpecError("scheduler= needs dask.distributed: pip install 'bayescrt[dask]'") from exc
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    ids = list(manifest["cells"])
    results = []
    try:
        df_f = client.scatter(df, broadcast=True)
        futures = [client.submit(_run_group, payload, [c.params() for c in cs], df_f, str(out.resolve()), data_hash,
                                 run_id, pure=False, key=f"bayescrt-sensitivity-{'-'.join(map(str, key))}-{os.getpid()}-"
                                                 f"{_time.time_ns()}")
                   for key, cs in todo]
        pending = list(futures)
        while pending:  # poll, so that the bar moves cell by cell rather than task by task
            for f in [f for f in pending if f.done()]:
                pending.remove(f)
                r = f.result()  # a task whose worker died has been rerun by the scheduler
                results.append(r)
                _record(manifest, manifest_path, r)
            bar.set(_count_done(out, ids))
            if pending:
                _time.sleep(0.5)
    finally:
        if client is not scheduler:
            client.close()
    return results


def _count(n: int, noun: str) -> str:
    """``1 compilation``, ``2 compilations``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
