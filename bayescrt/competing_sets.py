"""Competing risks under several covariate sets: every cause's HR of the exposure, its subdistribution HR and
the standardised cumulative incidence at chosen horizons, one row per set.

:func:`fit_competing_sets` is :func:`bayescrt.fit_covariate_sets` for a :class:`bayescrt.CompetingRisks` model:
every set's data and priors are checked (for the cause of interest and, with a subdistribution model, for
:class:`bayescrt.FineGray`) before the first one is sampled; each set then gets one cause-specific fit per cause
and, optionally, a Fine-Gray fit of the cause of interest. :class:`CompetingSetFits` holds them:
``table()`` (set, cause, estimand), ``incidence()`` (the difference and ratio of the standardised cumulative
incidence by exposure at the horizons), ``of_interest()`` (the cause of interest's cause-specific fits as a
:class:`~bayescrt.covariate_sets.CovariateSetFits`, with its forest plot and published comparisons) and
``plot_incidence()``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .causes import EVENT_COLUMN, event_causes
from .covariate_sets import CovariateSetFits, CovariateSets, DATA_KEYS, covariates_keyword, plan_sets, unimputed_sets
from .effects import HR_COLUMNS
from .errors import SpecError, suggest

CAUSE_SPECIFIC, SUBDISTRIBUTION = "cause-specific HR", "subdistribution HR"
# the models behind a cumulative incidence: every cause's cause-specific hazards, or one cause's Fine-Gray model
CS_MODEL, FG_MODEL = "cause-specific hazards", "Fine-Gray"
INCIDENCE_INDEX = ["covariate_set", "cause", "model", "time"]


class CompetingSetFits:
    """Per covariate set, the cause-specific fits (``fits``: set -> :class:`~bayescrt.competing.CompetingRisksFit`)
    and, if asked for, the Fine-Gray fit of the cause of interest (``subdistribution``: set -> Fit)."""

    def __init__(self, fits: dict, subdistribution: dict, *, cause: str, exposure: str, labels: dict,
                 sets: CovariateSets):
        self.fits, self.subdistribution = dict(fits), dict(subdistribution)
        self.cause, self.exposure, self.labels, self.sets = cause, exposure, dict(labels), sets
        self.causes = next(iter(self.fits.values())).causes

    def of_interest(self) -> CovariateSetFits:
        """The cause of interest's cause-specific fits, one per set, as :func:`fit_covariate_sets` returns them."""
        return CovariateSetFits({n: f.fits[self.cause] for n, f in self.fits.items()}, self.exposure, self.labels,
                                self.sets)

    def items(self):
        """``((set, cause, estimand), fit)`` for every fit: each cause's cause-specific fit, then the subdistribution."""
        for name, crf in self.fits.items():
            for cause, fit in crf.fits.items():
                yield (name, cause, CAUSE_SPECIFIC), fit
            if name in self.subdistribution:
                yield (name, self.cause, SUBDISTRIBUTION), self.subdistribution[name]

    @property
    def ok(self) -> bool:
        """Whether every fit passed its convergence diagnostics."""
        return all(fit.diagnostics().ok for _, fit in self.items())

    def table(self, prob: float = 0.95) -> pd.DataFrame:
        """The exposure's HR posterior, one row per (set, cause, estimand): the HR columns of every fit and
        ``diagnostics_ok``."""
        rows = []
        for (name, cause, estimand), fit in self.items():
            hr = fit.hazard_ratios(prob=prob).loc[self.labels[name]]
            rows.append({"covariate_set": name, "cause": cause, "estimand": estimand,
                         **{c: hr[c] for c in HR_COLUMNS}, "diagnostics_ok": fit.diagnostics().ok})
        tab = pd.DataFrame(rows).set_index(["covariate_set", "cause", "estimand"])
        tab.attrs.update(exposure=self.exposure, cause=self.cause, prob=prob)
        return tab

    def incidence(self, horizons, *, prob: float = 0.95, max_draws: int = 400, random_seed=0) -> pd.DataFrame:
        """The standardised cumulative incidence of exposure 1 against 0 at each horizon, per set, cause and model:
        the difference (``rd_*``) and ratio (``ratio_*``) of :meth:`CompetingRisksFit.cumulative_incidence_contrast`
        (``model`` ``"cause-specific hazards"``, every cause), and with a subdistribution fit the same contrast of
        the cause of interest from the Fine-Gray model (``model`` ``"Fine-Gray"``): two models of one risk, side by
        side."""
        from .competing import cumulative_incidence_contrast

        parts = {}
        for name, crf in self.fits.items():
            part = crf.cumulative_incidence_contrast(horizons, exposure=self.exposure, prob=prob, max_draws=max_draws,
                                                     random_seed=random_seed).assign(model=CS_MODEL)
            if name in self.subdistribution:
                fg = cumulative_incidence_contrast(self.subdistribution[name], horizons, exposure=self.exposure,
                                                   prob=prob, max_draws=max_draws, random_seed=random_seed)
                part = pd.concat([part, fg.assign(model=FG_MODEL)], ignore_index=True)
            part.attrs = {}  # (the draws behind each set's contrast stay with that call)
            parts[name] = part
        tab = pd.concat(parts, names=["covariate_set", None]).reset_index(level=1, drop=True)
        tab = tab.reset_index().set_index(INCIDENCE_INDEX)
        tab.attrs.update(exposure=self.exposure, prob=prob)
        return tab

    def plot_incidence(self, times=None, *, group_labels: dict | None = None, prob: float = 0.95,
                       title: str | None = None, xlabel: str = "Time", random_seed=0):
        """The standardised cumulative incidence of every cause by exposure, one row of panels per set. Returns the
        Figure."""
        import matplotlib.pyplot as plt

        from .plotting import plot_cumulative_incidence

        k, n = len(self.causes), len(self.fits)
        fig, axes = plt.subplots(n, k, figsize=(5.2 * k, 3.8 * n), sharey=True, squeeze=False)
        for row, (name, crf) in zip(axes, self.fits.items()):
            at = times if times is not None else np.linspace(0.0, crf.last_time, 60)
            tab = crf.cumulative_incidence(at, exposure=self.exposure, prob=prob, random_seed=random_seed)
            if group_labels:
                tab["group"] = tab["group"].map(lambda g: group_labels.get(g, g))
            plot_cumulative_incidence(tab, axes=row, xlabel=xlabel)
            for ax, cause in zip(row, self.causes):
                ax.set_title(f"{cause}, covariate set {name!r}", fontsize=10)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        return (f"<CompetingSetFits exposure={self.exposure!r} cause={self.cause!r}>\n"
                + self.table().to_string(float_format=lambda v: f"{v:.3f}"))


def fit_competing_sets(model, df: pd.DataFrame | list, *, time: str, event: str, exposure: str, sets, cause: str,
                       causes=None, censored="censored", subdistribution=None, **fit_kwargs) -> CompetingSetFits:
    """Fit the competing-risks ``model`` (a :class:`bayescrt.CompetingRisks`) once per covariate set, each with
    ``exposure`` plus the set's covariates; ``subdistribution`` (a :class:`bayescrt.FineGray`, or None) adds
    the subdistribution hazard of ``cause`` per set.

    ``causes`` and ``censored`` read the event column as :func:`bayescrt.competing.event_causes` does; ``cause``
    must be one of its causes. ``fit_kwargs`` go to every fit as in :func:`fit_covariate_sets` (``priors`` may
    name any covariate of any set; the same seed for every set). Every set is checked before any sampling.
    ``df`` may be the completed DataFrames of a multiple imputation, as :func:`fit_covariate_sets` takes them.
    """
    from .competing import CompetingRisks
    from .families import registry

    if not isinstance(model, CompetingRisks):
        raise SpecError(f"model={model!r}: give a bc.CompetingRisks(...) (cause-specific hazards per cause)")
    if subdistribution is not None and getattr(subdistribution, "family", None) not in registry.COMPETING:
        raise SpecError(f"subdistribution={subdistribution!r}: give bc.FineGray() or None")
    frames = None
    if isinstance(df, (list, tuple)):  # completed data sets of a multiple imputation: each fit pools them
        from .impute import same_outcome

        frames = same_outcome(df, time, event, fit_kwargs.get("entry"))
        df = frames[0]  # checked here; the others when each fit prepares them, before it samples
    if not isinstance(sets, CovariateSets):
        sets = CovariateSets(**sets)
    codes, names = event_causes(df, event, causes, censored)
    if cause not in names:
        raise SpecError(f"cause={cause!r} is not a cause of {event!r}.{suggest(str(cause), names)} Causes: {names}")
    if EVENT_COLUMN in df.columns:
        raise SpecError(f"df has a column {EVENT_COLUMN!r}; rename it (each cause's fit uses that name)")
    data_kw = {k: v for k, v in fit_kwargs.items() if k in DATA_KEYS}
    priors = fit_kwargs.pop("priors", None)
    plan, labels, set_priors, prepared = None, None, None, None
    for c in names:  # every cause's family checks every set's data, and the exposure is one column in each
        frame = df.assign(**{EVENT_COLUMN: (codes == names.index(c) + 1).astype(int)})
        plan, labels, set_priors, prepared = plan_sets(model._estimator(c), frame, time=time, event=EVENT_COLUMN,
                                                       exposure=exposure, sets=sets, priors=priors, **data_kw)
    # with imputations, a set that uses no imputed column is fitted once: its data are the same in each
    same = unimputed_sets(prepared, frames, time=time, event=event, data_kw=data_kw) if frames is not None else {}
    if subdistribution is not None:
        for name, covs in plan.items():
            subdistribution.prepare(df, time=time, event=event, cause=cause, causes=causes, censored=censored,
                                    **covariates_keyword(covs), **data_kw)
    fits, sub = {}, {}
    for name, covs in plan.items():
        kw = {**fit_kwargs, **covariates_keyword(covs), "priors": set_priors[name]}
        data = df if frames is None or same[name] else frames
        fits[name] = model.fit(data, time=time, event=event, causes=causes, censored=censored, **kw)
        if subdistribution is not None:
            sub[name] = subdistribution.fit(data, time=time, event=event, cause=cause, causes=causes,
                                            censored=censored, **kw)
    return CompetingSetFits(fits, sub, cause=cause, exposure=exposure, labels=labels, sets=sets)
