"""The exposure's hazard ratio under several covariate sets, side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from . import validation
from .effects import HR_COLUMNS
from .errors import SpecError, suggest
from .priors import resolve_priors

if TYPE_CHECKING:  # a type only: CovariateSets (data, read by the spec layer) needs no fitting code
    from .fit import Fit


class CovariateSets(dict):
    """Named adjustment sets, e.g. ``CovariateSets(minimal=["age", "male"], full=[...])``.

    Each set lists the covariates adjusted for, or is a formula of them
    (``"age + C(nyha) + bs(egfr, df=3)"``, read as ``formula=`` is); the exposure is
    added to every set by :func:`fit_covariate_sets`. An empty list gives the unadjusted HR.
    """

    def __init__(self, **sets):
        if not sets:
            raise SpecError("CovariateSets needs at least one named set, e.g. CovariateSets(minimal=['age'])")
        for name, cols in sets.items():
            validation.label("covariate set", name)
            if isinstance(cols, str):
                if not cols.strip() or "~" in cols:
                    raise SpecError(f"covariate set {name!r}: a formula of the adjustment terms such as "
                                    f"'age + C(nyha)' (no '~', no exposure needed), got {cols!r}")
                continue
            if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
                raise SpecError(f"covariate set {name!r} must be a list of column names, got {cols!r}")
            if len(set(cols)) != len(cols):
                raise SpecError(f"covariate set {name!r} lists a column twice: {list(cols)}")
        super().__init__({k: v.strip() if isinstance(v, str) else list(v) for k, v in sets.items()})


class CovariateSetFits:
    """One fit per covariate set; ``table()`` and ``plot_forest()`` compare the exposure across them."""

    def __init__(self, fits: dict[str, Fit], exposure: str, labels: dict[str, str], sets: CovariateSets):
        self.fits, self.exposure, self.labels, self.sets = fits, exposure, labels, sets

    def _adjusted(self, name: str) -> list[str]:
        """The variables set ``name`` adjusts for (a formula's variables, the exposure left out)."""
        cols = self.sets[name]
        if not isinstance(cols, str):
            return list(cols)
        terms = self.fits[name].model["formula"]["term_variables"]
        return sorted({v for vs in terms.values() for v in vs} - {self.exposure})

    def table(self, prob: float = 0.95, hdi: bool = False) -> pd.DataFrame:
        """The exposure's HR posterior under every set, one row per set."""
        rows = []
        for name, fit in self.fits.items():
            hr = fit.hazard_ratios(prob=prob, hdi=hdi).loc[self.labels[name]]
            rows.append({
                "covariate_set": name,
                "adjusted_for": (self.sets[name] if isinstance(self.sets[name], str)
                                 else ", ".join(self.sets[name]) or "(none)"),
                **{c: hr[c] for c in HR_COLUMNS},
                "diagnostics_ok": fit.diagnostics().ok,
            })
        tab = pd.DataFrame(rows).set_index("covariate_set")
        tab.attrs.update(exposure=self.exposure, prob=prob)
        return tab

    def plot_forest(self, *, ax=None, published=None, prob: float = 0.95, title: str | None = None):
        """Posterior medians and intervals of the exposure HR by set; ``published`` CIs beside them."""
        from .plotting import plot_forest

        return plot_forest(self.table(prob=prob), ax=ax, published=published,
                           title=title or f"HR of {self.exposure!r} by covariate set")

    def compare_published(self, study: str, results: dict[str, str] | None = None, prob: float = 0.95) -> pd.DataFrame:
        """Each set's exposure HR against the published result with the same adjustment.

        ``results`` maps set names to result ids of ``study`` (``{"minimal":
        "mortality-age-sex"}``); sets left out are matched to the study's HR
        whose adjustment set has as many covariates, and an ambiguous or
        missing match is an error that lists the candidates. One row per set;
        the ``Comparison`` objects are in ``.attrs["comparisons"]``.
        """
        from .compare import compare
        from .published import get

        if "/" in study:
            raise SpecError(f"study={study!r}: name the study only; map sets to its results with results=.")
        st = get(study)
        results = dict(results or {})
        stray = set(results) - set(self.fits)
        if stray:
            raise SpecError(f"results: {sorted(stray)} are not covariate sets; the sets are {list(self.fits)}.")
        # only results whose adjustment set is printed can be matched by it
        hrs = {rid: r for rid, r in st.results.items() if r.kind == "estimate" and r.estimand == "HR"
               and "adjustment" in r.raw}
        rows, comps = [], {}
        for name, fit in self.fits.items():
            rid = results.get(name)
            if rid is None:
                k = len(self._adjusted(name))
                match = [i for i, r in hrs.items() if len(r.get("adjustment", [])) == k]
                if len(match) != 1:
                    raise SpecError(
                        f"covariate set {name!r} ({k} covariates) matches {len(match)} HRs of {study} by the size of "
                        f"their adjustment set ({match or 'none'}); say which with results={{{name!r}: '<result id>'}}. "
                        f"Its HRs: " + "; ".join(f"{i} (adjusted for {', '.join(r.get('adjustment', [])) or 'nothing'})"
                                                 for i, r in hrs.items()))
                rid = match[0]
            comps[name] = c = compare(fit, f"{study}/{rid}", covariate=self.labels[name], prob=prob,
                                      label=f"set {name!r}")
            rows.append({"covariate_set": name, "published_result": rid, **{k: v for k, v in c.to_dict().items()
                                                                            if k not in ("posterior", "published")}})
        tab = pd.DataFrame(rows).set_index("covariate_set")
        tab.attrs["comparisons"] = comps
        return tab

    def __repr__(self) -> str:
        return f"<CovariateSetFits exposure={self.exposure!r}>\n" + self.table().to_string(
            float_format=lambda v: f"{v:.3f}")


def covariates_keyword(covs) -> dict:
    """A set's covariates as the keyword the estimators take: ``formula=`` for a formula, else ``covariates=``."""
    return {"formula": covs} if isinstance(covs, str) else {"covariates": covs}


def exposure_label(data, exposure: str, name: str) -> str:
    """The one column the exposure is in ``data`` (prepared with covariate set ``name``), or a SpecError."""
    if data.design is not None:
        inter = [c for c in data.design.columns_of(exposure) if len(data.design.term_variables[data.design.terms[c]]) > 1]
        if inter:
            raise SpecError(f"covariate set {name!r} puts the exposure {exposure!r} in the terms {inter}: its "
                            "main-effect HR would then be the HR where the other variable is 0; keep the exposure "
                            "out of the set (the exposure is added to every set) and fit effect modification on its own")
    mine = [lab for lab, src in zip(data.covariates, data.sources) if src == exposure]
    if len(mine) != 1:
        raise SpecError(
            f"exposure {exposure!r} expands to {len(mine)} columns {mine}; it must be a single binary or "
            "numeric column (recode a categorical exposure as one indicator)"
        )
    return mine[0]


def set_covariates(exposure: str, cols) -> str | list[str]:
    """A set's covariates with the exposure first: a formula ``"exposure + ..."`` or a list."""
    return f"{exposure} + {cols}" if isinstance(cols, str) else [exposure] + [c for c in cols if c != exposure]


DATA_KEYS = ("entry", "strata", "weights", "reference", "missing")  # the fit arguments that prepare() takes too


def plan_sets(model, df: pd.DataFrame, *, time: str, event: str, exposure: str, sets: CovariateSets, priors=None,
              **data_kw) -> tuple[dict, dict, dict, dict]:
    """Every set checked before any sampling: its covariates (the exposure first), the exposure's column label,
    its priors (those of ``priors`` that name its covariates, and ``"default"``) and its prepared data, each
    a dict by set. A prior that names a covariate of no set is an error."""
    priors = priors or {}
    if not isinstance(priors, dict):
        raise SpecError(f"priors must be a dict of covariate -> prior, got {type(priors).__name__}")
    plan, labels, set_priors, prepared, known = {}, {}, {}, {}, {"default"}
    for name, cols in sets.items():
        covs = set_covariates(exposure, cols)
        data = model.prepare(df, time=time, event=event, **covariates_keyword(covs), **data_kw)
        keys = {"default", *data.covariates, *data.sources}
        known |= keys
        set_priors[name] = {k: v for k, v in priors.items() if k in keys}
        resolve_priors(data.covariates, data.sources, data.scale, set_priors[name])
        plan[name], labels[name], prepared[name] = covs, exposure_label(data, exposure, name), data
    stray = [k for k in priors if k not in known]
    if stray:
        raise SpecError(
            f"priors: {stray[0]!r} is not a covariate of any set.{suggest(stray[0], known)} "
            f"Valid keys: {sorted(known)}"
        )
    return plan, labels, set_priors, prepared


def unimputed_sets(prepared: dict, frames: list, *, time: str, event: str, data_kw: dict) -> dict:
    """Set -> whether it uses no column that differs between the completed DataFrames: such a set's data are the
    same in each imputation, so it is fitted once, on the first."""
    first, same = frames[0], {}
    for name, data in prepared.items():
        used = [c for c in dict.fromkeys([*data.sources, time, event, *(v for v in data_kw.values()
                                                                       if isinstance(v, str))]) if c in first]
        same[name] = all(f[used].equals(first[used]) for f in frames[1:])
    return same


def fit_covariate_sets(model, df: pd.DataFrame | list, *, time: str, event: str, exposure: str,
                       sets: CovariateSets | dict, **fit_kwargs) -> CovariateSetFits:
    """Fit ``model`` once per covariate set, each with ``exposure`` plus the set's covariates.

    ``df``: a DataFrame, or the list of completed DataFrames of a multiple imputation: a set's fit
    pools them, as ``fit`` does, unless the set uses no column that differs between them (then its
    one data set is fitted once).

    ``fit_kwargs`` (draws, chains, random_seed, priors, strata, ...) are passed
    to every fit; the same seed is used for each set. ``priors`` may name any
    covariate of any set: each fit gets the priors of its own covariates (and
    ``"default"``); a key that belongs to no set is an error. Every set's data
    and priors are validated before the first one is sampled.
    """
    if not isinstance(sets, CovariateSets):
        sets = CovariateSets(**sets)
    frames, same = None, {}
    if isinstance(df, (list, tuple)):  # completed data sets of a multiple imputation: each set's fit pools them
        from .impute import check_frames

        df = frames = check_frames(df)
        first = df[0]  # checked here; the others when each set's fit prepares them, before it samples
    else:
        first = df
    data_kw = {k: v for k, v in fit_kwargs.items() if k in DATA_KEYS}
    plan, labels, set_priors, prepared = plan_sets(model, first, time=time, event=event, exposure=exposure, sets=sets,
                                                   priors=fit_kwargs.pop("priors", None), **data_kw)
    if frames is not None:
        same = unimputed_sets(prepared, frames, time=time, event=event, data_kw=data_kw)
    fits = {name: model.fit(first if same.get(name) else df, time=time, event=event, **covariates_keyword(covs),
                            priors=set_priors[name], **fit_kwargs)
            for name, covs in plan.items()}
    return CovariateSetFits(fits, exposure, labels, sets)
