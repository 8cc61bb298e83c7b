"""The grid and its cells: named priors, the grid's checks and spec, subsets, seeds and fingerprints."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import validation
from ..covariate_sets import CovariateSets
from ..errors import SpecError, suggest
from ..families import registry
from ..priors import validate_prior
from ..spec import SENSITIVITY_KEYS  # the keys of a [sensitivity] table

NAMED_PRIORS = ("sceptical", "neutral", "enthusiastic")
OPERATORS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
             ">=": np.greater_equal}
Z95 = 1.6448536269514722  # one-sided 5% normal quantile
CONFOUNDING_KEYS = {"prevalence_exposed", "prevalence_unexposed", "confounder_hr"}


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
    ``families``: registered family names (``"CoxPH"``, ``"WeibullPH"``, ...; see bayescrt.families.registry) or
    dicts ``{"family": ..., **options}`` (e.g. ``ties`` or ``n_intervals``).
    ``subsets``: name -> list of ``[column, operator, value]`` conditions
    (all must hold); default ``{"all": []}``. ``base_priors``: priors of the
    other covariates (and ``default``), as for ``fit(priors=...)``.
    ``cause``: competing risks, with ``event`` coding the causes (``bc.event_causes``: 0 censored and 1..K,
    ``causes`` naming them, or text labels with ``censored`` the label of censoring): each cell fits the
    cause-specific hazard of ``cause``, the other causes censoring it.
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
    cause: str | None = None  # competing risks: the cause whose cause-specific hazard each cell fits
    causes: list | dict | None = None  # the names of the event codes 1..K, or the text labels (bc.event_causes)
    censored: str = "censored"  # the label of censoring in a text event column

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
        self.covariate_sets = dict(sets)  # a list of columns, or a formula (text) of the adjustment terms
        if not validation.is_number(self.important_hr) or not 0 < self.important_hr < math.inf \
                or self.important_hr == 1:
            raise SpecError(f"important_hr={self.important_hr!r} must be a positive number other than 1, e.g. 1.25")
        self.important_hr = float(self.important_hr)
        self.synthetic = validation.flag("synthetic", self.synthetic)
        self._check_cause()
        if not isinstance(self.base_priors, dict):
            raise SpecError(f"base_priors={self.base_priors!r} must be a dict of covariate (or 'default') -> prior")
        for k, p in self.base_priors.items():
            if not isinstance(p, dict):
                raise SpecError(f"base_priors[{k!r}]={p!r} must be a prior dict, e.g. {{'dist': 'Normal', 'mu': 0, "
                                "'sigma': 1}")
            validate_prior(p, f"base_priors[{k!r}]")
        if not isinstance(self.published, dict):
            raise SpecError(f"published={self.published!r} must be a dict of covariate set -> {{hr, lower, upper}}")
        from ..compare import as_published

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
                raise SpecError(f"grid family {f!r}: give a family name {registry.names(competing=False)} or a dict with 'family'")
            opts = {"family": f} if isinstance(f, str) else dict(f)
            fam = opts.pop("family", None)
            if fam in registry.COMPETING and self.cause is None:
                raise SpecError(f"grid family {f!r}: {fam} models the subdistribution hazard of one cause among "
                                "competing events; give cause= (the cause of interest) and causes= (the names of the "
                                "event codes), or a spec's [competing_risks]; without competing risks a grid's "
                                f"families model one event: {registry.names(competing=False)}")
            if fam not in registry.names():
                known = registry.names(competing=self.cause is not None)
                raise SpecError(f"grid family {f!r}: family must be one of {known}.{suggest(str(fam), known)}")
            name = validation.label("grid family", opts.pop("name", fam))
            try:  # the family's options are checked now, not when its first cell is fitted
                registry.estimator_class(fam)(**opts)
            except (TypeError, ValueError) as err:  # SpecErrors of the options too
                raise SpecError(f"grid family {f!r}: {err}") from None
            self._families[name] = (fam, opts)
        if len(self._families) != len(self.families) or not self._families:
            raise SpecError(f"grid families {self.families!r}: give at least one; name repeated families "
                            "({'family': ..., 'name': ...})")
        # a formula set's columns are known only from the data: its keys are checked when the grid runs
        formulas = any(isinstance(cols, str) for cols in self.covariate_sets.values())
        known = {"default", self.exposure,
                 *(c for cols in self.covariate_sets.values() if not isinstance(cols, str) for c in cols)}
        for key in self.base_priors or {}:
            if key not in known and not formulas:
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
        from ..fit import check_sampling

        for fam, opts in self._families.values():  # each family's sampler takes the grid's draws (the Laplace: >= 100)
            check_sampling(sampler=opts.get("sampler", "nutpie"), draws=self.draws)
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
            from ..bias import check_prior

            for k, v in self.confounding.items():
                check_prior(v, k, k == "confounder_hr", k != "confounder_hr")

    def _check_cause(self) -> None:
        """``cause``, ``causes`` and ``censored``: competing risks, or none of them."""
        if not isinstance(self.censored, str) or not self.censored:
            raise SpecError(f"censored={self.censored!r} must be the text label of censoring in the event column, "
                            "e.g. 'censored'")
        from ..causes import cause_names, check_event_role
        from ..formula import referenced

        if self.cause is None:
            if self.causes is not None:
                example = (cause_names(self.causes) or ["death"])[0]
                raise SpecError(f"causes={self.causes!r} is given without cause=: name the cause of interest, e.g. "
                                f"cause={example!r}")
            if self.censored != "censored":
                raise SpecError(f"censored={self.censored!r} applies to competing risks; give cause= too (the cause "
                                "of interest), or leave censored out")
            return
        if not isinstance(self.cause, str) or not self.cause:
            raise SpecError(f"cause={self.cause!r} must be the name of the cause of interest (text), e.g. 'death'")
        if self.causes is not None:
            names = cause_names(self.causes)
            if names is None:
                raise SpecError(f"causes={self.causes!r} must list the causes' names (the event codes 1..K in order, "
                                "or the text labels), or map codes to names, e.g. {1: 'hf_hosp', 2: 'death'}")
            if self.cause not in names:
                raise SpecError(f"cause={self.cause!r} is not one of causes={names!r}.{suggest(self.cause, names)}")
        used = [v for cols in self.covariate_sets.values()
                for v in ((referenced(cols) or []) if isinstance(cols, str) else cols)]
        check_event_role(self.event, time=self.time, exposure=self.exposure, covariates=used)

    @property
    def fit_event(self) -> str:
        """The event column the cause-specific cells fit: ``event``, or with competing risks the 0/1 column of
        ``cause``."""
        from ..causes import EVENT_COLUMN

        return self.event if self.cause is None else EVENT_COLUMN

    def subdistribution(self, cell: Cell) -> bool:
        """Whether the cell fits the subdistribution hazard of ``cause`` (a Fine-Gray family), not its
        cause-specific hazard."""
        return registry.estimator_class(self._families[cell.family][0]).subdistribution

    def event_kwargs(self, cell: Cell) -> dict:
        """The event arguments of the cell's ``fit`` and ``prepare``: the 0/1 column of :attr:`fit_event`, or for a
        subdistribution family the coded column itself with the cause of interest."""
        if self.subdistribution(cell):
            return {"event": self.event, "cause": self.cause, "causes": self.causes, "censored": self.censored}
        return {"event": self.fit_event}

    def cell_estimand(self, cell: Cell) -> str:
        """``"subdistribution HR"`` for a Fine-Gray cell, ``"cause-specific HR"`` for the others (competing risks),
        ``"HR"`` without competing risks."""
        if self.cause is None:
            return "HR"
        return "subdistribution HR" if self.subdistribution(cell) else "cause-specific HR"

    def cause_data(self, df):
        """``df`` (or each completed DataFrame of an imputation) with the 0/1 event column of ``cause`` added (a
        copy; the other causes censor it); ``df`` itself without competing risks. The codes are checked first."""
        if self.cause is None:
            return df
        if isinstance(df, list):
            return [self.cause_data(f) for f in df]
        from ..causes import with_cause_event

        return with_cause_event(df, self.event, self.cause, self.causes, self.censored)

    @property
    def estimand(self) -> str:
        """What each cell's HR is, for titles: ``HR of 'upgrade'``, or for one cause its cause-specific HR, its
        subdistribution HR, or both (a grid with Fine-Gray and cause-specific families)."""
        if self.cause is None:
            return f"HR of {self.exposure!r}"
        kinds = sorted({self.cell_estimand(c) for c in {c.family: c for c in self.cells()}.values()})
        if len(kinds) > 1:
            return f"HR of {self.exposure!r} for {self.cause!r}, cause-specific or subdistribution per cell"
        return f"{kinds[0]} of {self.exposure!r} for {self.cause!r}"

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
            from ..priors import DEFAULT_PRIOR

            base = self.base_priors or {}
            prior = base.get(self.exposure) or base.get("default") or DEFAULT_PRIOR
        return (cell.family, cell.covariate_set, prior["dist"])

    def fingerprint(self, cell: Cell, data_hash: str) -> str:
        fam, opts = self._families[cell.family]
        rec = {"cell": cell.params(), "family": fam, "options": opts, "covariates": self.covariate_sets[cell.covariate_set],
               "prior": self.prior_of(cell), "base_priors": self.base_priors, "subset": self.subsets[cell.subset],
               "exposure": self.exposure, "time": self.time, "event": self.event, "seed": self.seed_of(cell),
               # tuning is NUTS's: a Laplace cell's draws do not depend on it, so a new tune keeps its file
               "sampler": [self.draws, 0 if opts.get("sampler") == "laplace" else self.tune, self.chains],
               "data": data_hash}
        if self.cause is not None:  # only then: the fingerprints of grids of one event stay what they were
            rec.update(cause=self.cause, causes=self.causes, censored=self.censored)
        return hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()

    def to_dict(self) -> dict:
        keys = ("time", "event", "exposure", "covariate_sets", "priors", "families", "subsets", "important_hr",
                "base_priors", "draws", "tune", "chains", "random_seed", "confounding", "published", "synthetic",
                "title", "cause", "causes", "censored")
        return {k: copy.deepcopy(getattr(self, k)) for k in keys}

    @classmethod
    def from_spec(cls, spec, **overrides) -> "Grid":
        """The grid of a spec's ``[sensitivity]`` section (covariate sets, priors, published HRs from the spec)."""
        from ..spec import load_spec

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
        cr = spec.competing or {}
        # with competing risks the default family is that of the cause of interest ([competing_risks] families)
        default = cr.get("families", {}).get(cr.get("cause"), spec.raw["model"]["family"])
        for f in sec.get("families", [default]):
            # the spec's [model] options go to each grid family that takes them all (ties: CoxPH)
            if isinstance(f, str) and f in registry.REGISTRY and model and set(model) <= set(registry.options(f)):
                f = {"family": f, **model}
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
        if cr:
            kw.update(cause=cr["cause"], causes=cr["causes"], censored=cr["censored"])
        kw.update(overrides)
        return cls(**kw)


def _subset(df, conds, name: str):
    """The rows of ``df`` (a DataFrame, or each completed DataFrame of an imputation) that meet every condition."""
    if isinstance(df, list):
        for col, *_ in conds:
            if col in df[0].columns and not all(f[col].equals(df[0][col]) for f in df[1:]):
                raise SpecError(f"subset {name!r}: column {col!r} differs between the imputations (it was imputed), "
                                "so the subset would hold other rows in each; define subsets by complete columns")
        return [_subset(f, conds, name) for f in df]
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


def _data_hash(df) -> str:
    """The data's SHA-256: of the DataFrame, or of every completed DataFrame of an imputation in order."""
    if isinstance(df, list):
        return hashlib.sha256(("imputations:" + ",".join(_data_hash(f) for f in df)).encode()).hexdigest()
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()
                          + ",".join(map(str, df.columns)).encode()).hexdigest()
