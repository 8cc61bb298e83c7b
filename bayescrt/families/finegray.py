"""The Fine-Gray model: proportional subdistribution hazards of one cause among competing events.

The subdistribution hazard of cause 1 is the hazard of the improper time to a cause-1 event, at which a
subject who had a competing event stays at risk forever; its log-HR (the SHR) is an effect on the
cumulative incidence of cause 1, ``F_1(t | x) = 1 - exp(-Lambda_1(t) exp(x beta))``. Under censoring,
Fine and Gray (1999) keep a subject who had a competing event at ``T_i`` in the risk sets after ``T_i``
with the inverse-probability-of-censoring weight ``G(t-) / G(T_i-)``, where ``G`` is the Kaplan-Meier
estimate of the censoring distribution (within each stratum, with the case weights). At the time ``t``
of a cause-1 event the weighted risk set is therefore

    S(t) = sum_{T_i >= t} w_i exp(eta_i) + G(t-) * sum_{competing, T_i < t} w_i exp(eta_i) / G(T_i-),

the first sum the Cox model's (a reverse cumulative sum, :mod:`.partial_likelihood`), the second a forward
cumulative sum over the rows sorted by time. The likelihood is the Cox partial likelihood with these
risk sets and Breslow's ties, as R's ``cmprsk::crr`` computes it (and ``survival::finegray`` prepares it
for ``coxph`` by splitting each competing subject's follow-up at the censoring times; its ``G`` differs
after censorings tied with events, see :func:`censoring_survival`): the same sums, here without the split
rows, so the cost per gradient stays O(N). ``G`` is fixed before sampling (a plug-in,
as in the frequentist fit); the posterior does not carry its uncertainty.

The event column holds 0 censored and 1..K the causes (or labels; :func:`bayescrt.causes.event_causes`);
``fit(cause=...)`` names the cause whose SHRs are estimated. Delayed entry and frailty are refused: the
weights above assume no left truncation, and a shared frailty has no subdistribution counterpart here.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..causes import CENSORED, EVENT_COLUMN, check_event_role, event_causes
from ..compiled import data_block
from ..data import SurvivalData, labels_as_text
from ..errors import SpecError, suggest
from ..fit import Fit
from .base import Estimator, check_marginal, fit_data
from .cox import breslow_cumhaz
from .common import precondition, prior_rows, prior_vector
from .partial_likelihood import EVENT_INDEX, EVENT_VALUES, RiskSets, partial_loglik_terms, risk_set_sums


@dataclass(frozen=True)
class CensoringWeights:
    """What the subdistribution risk sets add to the Cox model's, per sorted row and per event."""

    competing_weight: np.ndarray  # 1 / G(T_i-) for a competing event, 0 otherwise (rows, sorted order)
    event_censoring: np.ndarray  # G(t-) at each event of the cause

    @classmethod
    def from_data(cls, data: SurvivalData, rs: RiskSets) -> "CensoringWeights":
        g_left = censoring_survival(data)
        comp = (data.status != CENSORED) & (data.status != 1)
        return cls(competing_weight=np.where(comp, 1.0 / g_left, 0.0), event_censoring=g_left[rs.event_rows])

    def sums(self, r, rs: RiskSets, xp=np):
        """The weighted risk set ``S(t)`` of every event (module docstring) of the row values ``r``."""
        q = r * self.competing_weight
        F = xp.concatenate([xp.zeros_like(q[..., :1]), xp.cumsum(q, axis=-1)], axis=-1)
        # rows before the event's tie group, in its stratum, left follow-up before t
        return risk_set_sums(r, rs, xp) + self.event_censoring * (F[..., rs.group_start] - F[..., rs.stratum_start])


def censoring_survival(data: SurvivalData) -> np.ndarray:
    """``G(T_i-)`` per sorted row: the Kaplan-Meier survival of censoring (status 0 the 'events', with the case
    weights) just before each row's time, within its stratum. At a time ``u`` every row with time ``>= u`` is at
    risk of censoring, the events at ``u`` included, as in ``cmprsk::crr`` (R's ``survival::finegray`` takes
    the events at ``u`` out of that risk set first, so the two differ a little after tied times); an event's
    own ``G(t-)`` does not see censorings at ``t`` either way."""
    w = np.ones(data.n) if data.weights is None else data.weights
    out = np.empty(data.n)
    ends = data.stratum_ends()
    start = 0
    while start < data.n:
        stop = int(ends[start])
        t, ww = data.time[start:stop], w[start:stop]
        cens = ww * (data.status[start:stop] == CENSORED)
        u, first = np.unique(t, return_index=True)  # t is sorted within the stratum
        d = np.add.reduceat(cens, first)
        at_risk = np.cumsum(np.add.reduceat(ww, first)[::-1])[::-1]
        after = np.cumprod(1.0 - d / at_risk)  # G(u) after each distinct time
        before = np.concatenate([[1.0], after[:-1]])  # G(u-)
        out[start:stop] = before[np.searchsorted(u, t)]
        start = stop
    return out


class FineGray(Estimator):
    """Bayesian Fine-Gray model: the subdistribution hazard ratios (SHR) of one cause (module docstring).

    ``bc.FineGray().fit(df, time=..., event=..., cause="hf_hosp", covariates=[...])``: ``event`` codes 0
    censored and 1..K the causes (``causes=`` names the codes, or the labels of a text column with
    ``censored=`` the label of censoring), ``cause`` is the cause whose SHRs are estimated, every other
    cause is a competing event. Strata (own baseline and own censoring distribution) and case weights work
    as in :class:`~bayescrt.CoxPH`; the prior is on the log-SHR. ``fit.hazard_ratios()`` reports SHRs in
    the columns of every fit; ``fit.model["estimand"]`` is ``"SHR"``.
    """

    family = "FineGray"
    likelihood = "subdistribution"
    subdistribution = True  # its baseline is the cause's subdistribution hazard: 1 - exp(-H) is an incidence
    loglik_var = "partial_loglik"
    step_baseline = True
    fixed_priors = {}
    diagnostic_vars = ("log_hr",)
    posterior_vars = ("log_hr",)
    loglik_chunk = 256

    def __init__(self, sampler: str = "nutpie", target_accept: float | None = None, frailty_prior=None,
                 centered: bool = False):
        super().__init__(sampler=sampler, frailty_prior=frailty_prior, centered=centered, target_accept=target_accept)
        self._cause_args = None

    def __repr__(self) -> str:
        return f"FineGray(sampler={self.sampler!r}, target_accept={self.target_accept!r})"

    def fit(self, df, *, cause=None, causes=None, censored="censored", **kwargs) -> Fit:
        """Fit the subdistribution hazards of ``cause``; every other argument as :meth:`Estimator.fit` (a list of
        completed DataFrames of a multiple imputation included: one fit per imputation, the draws pooled)."""
        est = copy.copy(self)  # the cause travels with this call only (and to each imputation's fit)
        if cause is not None or est._cause_args is None:
            est._cause_args = {"cause": cause, "causes": causes, "censored": censored}
        if isinstance(df, (list, tuple)):
            from ..impute import same_outcome

            df = same_outcome(df, kwargs.get("time"), kwargs.get("event"))
        return Estimator.fit(est, df, **kwargs)

    def prepare(self, df, *, time=None, event=None, cause=None, causes=None, censored="censored", entry=None,
                cluster=None, study=None, formula=None, **kwargs) -> SurvivalData:
        """Validate the data as ``fit`` would (the event column's causes included), without sampling."""
        if self._cause_args is not None and cause is None:
            cause, causes, censored = (self._cause_args[k] for k in ("cause", "causes", "censored"))
        if entry is not None:
            raise SpecError(f"entry={entry!r}: the Fine-Gray weights here assume no delayed entry (left truncation "
                            "needs the truncation distribution too); fit cause-specific hazards with "
                            "bc.CompetingRisks, which take entry=")
        if cluster is not None:
            raise SpecError(f"cluster={cluster!r}: FineGray has no shared frailty; drop cluster=, or fit "
                            "cause-specific hazards with bc.CompetingRisks")
        if study is not None:
            raise SpecError(f"study={study!r}: FineGray has no study level; drop study= (strata= gives each group its "
                            "own baseline and censoring distribution)")
        if formula is not None and "~" in str(formula):
            raise SpecError("formula= takes the covariates only for FineGray (no 'Surv(...) ~'): pass time=, event= "
                            "and cause=")
        if event is None:
            raise SpecError("event= is required: the column coding 0 censored and 1, 2, ... the causes")
        check_event_role(event, time=time, entry=entry, cluster=cluster, study=study,
                         **{k: kwargs.get(k) for k in ("strata", "weights", "covariates")})
        codes, names = event_causes(df, event, causes, censored)
        if cause is None or str(cause) not in names:
            raise SpecError(f"cause={cause!r} must name the cause whose subdistribution hazard is modelled, one of "
                            f"{names}." + ("" if cause is None else suggest(str(cause), names)))
        if EVENT_COLUMN in df.columns:
            raise SpecError(f"df has a column {EVENT_COLUMN!r}; rename it (the fit uses that name)")
        k = names.index(str(cause)) + 1
        status = np.where(codes == k, 1, np.where(codes == CENSORED, CENSORED, 2 + codes - (codes > k) - 1))
        frame = df.assign(**{EVENT_COLUMN: (codes == k).astype(int)})
        positional = not df.index.is_unique  # rows are found back by label, or by position
        if positional:
            frame = frame.reset_index(drop=True)
        data = super().prepare(frame, time=time, event=EVENT_COLUMN, formula=formula, **kwargs)
        rows = np.asarray(data.row_labels)
        where = np.asarray(rows, np.int64) if positional else df.index.get_indexer(pd.Index(rows, tupleize_cols=False))
        if (where < 0).any():  # every fitted row must be found back in the caller's frame
            raise SpecError("FineGray could not match the fitted rows to df's index; reset it with "
                            "df.reset_index(drop=True) and fit again")
        data = dataclasses.replace(data, status=status[where].astype(np.int64),
                                   columns={**data.columns, "event": event, "cause": str(cause),
                                            "causes": list(names)},
                                   row_labels=df.index.to_numpy()[where] if positional else data.row_labels)
        return data

    # ------------------------------------------------------------ protocol
    def _build(self, data, priors, hierarchy):
        import pymc as pm
        import pytensor.tensor as pt

        rs = RiskSets.from_data(data, "breslow")
        cw = CensoringWeights.from_data(data, rs)
        m, s_, zpriors, pre = precondition(data, priors, "breslow", risk_sets=rs, sums=cw.sums)
        p = len(data.covariates)
        with pm.Model(coords={"covariate": list(data.covariates)}) as model:
            per_cov = data_block("covariate_data", {**prior_rows(zpriors), "precond_mode": m, "precond_se": s_,
                                                    "x_scale": data.scale})
            per_event = data_block("event_index", {k: getattr(rs, k) for k in EVENT_INDEX})
            per_event.update(data_block("event_values", {**{k: getattr(rs, k) for k in EVENT_VALUES},
                                                         "event_censoring": cw.event_censoring}))
            per_row = data_block("row_values", {"weights": rs.weights, "competing_weight": cw.competing_weight,
                                                "XT": np.ascontiguousarray(data.standardised().T)})
            censoring = CensoringWeights(per_row["competing_weight"], per_event.pop("event_censoring"))
            shared = RiskSets(**per_event, weights=per_row["weights"], entry_order=None)
            z = prior_vector(zpriors, p, pm, pt, per_cov)
            beta_std = per_cov["precond_mode"] + per_cov["precond_se"] * z
            pm.Deterministic("log_hr", beta_std / per_cov["x_scale"], dims="covariate")
            eta = pt.dot(beta_std, per_row["XT"])
            pm.Potential("partial_loglik", partial_loglik_terms(eta, shared, pt, sums=censoring.sums).sum())
        return model, {"risk_sets": rs, "censoring": cw, "parameterisation": pre}

    def _describe(self, data, info):
        cause, causes = data.columns["cause"], data.columns["causes"]
        competing = [c for c in causes if c != cause]
        text = (f"Fine-Gray subdistribution hazards of {cause!r} (competing: {', '.join(map(repr, competing))}), "
                "partial likelihood with inverse-probability-of-censoring weights, ties=breslow")
        n_comp = int((data.status >= 2).sum())
        return text, {"estimand": "SHR", "cause": cause, "competing": competing, "event_column": data.columns["event"],
                      "n_competing": n_comp, "ties": "breslow"}, {"parameterisation": info["parameterisation"]}

    def _n_terms(self, data):
        return data.n_events

    def _loglik_text(self, stored):
        return "per event of the cause" if stored else "not stored"

    def _stored_order(self, data):  # per-event terms, in event order
        return None

    def _loglik_dataset(self, ll, post, data, info):
        rows = labels_as_text(data.row_labels[info["risk_sets"].event_rows])
        return xr.Dataset({"partial_loglik": (("chain", "draw", "event"), ll)},
                          coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                  "event": np.arange(len(rows)), "event_row": ("event", rows)})

    @classmethod
    def pointwise_loglik(cls, post, data, info, hierarchy=None):
        """Per-event log-likelihood terms for a batch of draws: ``(draws, events)``."""
        eta = post["log_hr"] @ (data.X - data.center).T
        return partial_loglik_terms(eta, info["risk_sets"], np, sums=info["censoring"].sums)

    @classmethod
    def baseline_cumhaz(cls, fit, times, max_draws=None):
        """The baseline cumulative subdistribution hazard of the cause per draw, (draws, strata, len(times)):
        Breslow's estimator over the censoring-weighted risk sets, ``sum over cause events <= t of w / S(t)``
        (as ``cmprsk::predict.crr``), so that ``F_1(t | x) = 1 - exp(-Lambda_1(t) exp((x - center) @ log_hr))``.
        The survival functions refuse it (:func:`~bayescrt.families.base.check_marginal`);
        :func:`bayescrt.cumulative_incidence` reads it."""
        check_marginal(fit, incidence=True)
        data = fit_data(fit)
        rs = RiskSets.from_data(data, "breslow")
        return breslow_cumhaz(fit, data, rs, times, max_draws, sums=CensoringWeights.from_data(data, rs).sums)


def finegray_mle(data: SurvivalData) -> dict:
    """The frequentist Fine-Gray fit (Newton-Raphson on the same weighted partial likelihood): ``coef``, ``se``
    (model-based, from the observed information; ``crr`` reports a robust SE), ``loglik``, ``converged``."""
    from .partial_likelihood import mle

    if data.status is None:
        raise SpecError("finegray_mle needs data prepared by FineGray().prepare(..., cause=...)")
    rs = RiskSets.from_data(data, "breslow")
    return mle(data, "breslow", risk_sets=rs, sums=CensoringWeights.from_data(data, rs).sums)
