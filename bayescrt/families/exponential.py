"""The exponential proportional-hazards family: a constant baseline hazard per stratum.

``H0_s(t) = exp(alpha_s) t / t_ref``: the Weibull with its shape fixed at 1.
``t_ref`` is the Weibull's reference time at shape 1, ``exp(mean log event
time + 1)`` (weighted), so that ``alpha`` is O(1) in any time unit; the prior
is ``alpha_s ~ Normal(0, 3)`` (:data:`~bayescrt.families.parametric.LOG_SCALE_PRIOR`, shared with the Weibull). As in the Weibull,
the sampler sees the scale at the event means of the covariates, which makes
it nearly uncorrelated with the log-HRs, and the event terms of the
log-likelihood are sums fixed by the data: one exponential per row per
gradient. The maximum-likelihood twin is a Poisson GLM of the event
indicator with ``log(time - entry)`` as offset.
"""

from __future__ import annotations

import numpy as np

from ..data import SurvivalData
from .common import frailty
from .fused import exposure as fused_exposure
from .common import precondition as _precondition
from .parametric import (LOG_SCALE_PRIOR, ParametricPH, coefficients, event_means, log_scale_at_event_means,
                         row_data)

class ExponentialPH(ParametricPH):
    """Bayesian exponential proportional-hazards model; coefficients are log-HRs, as in :class:`~bayescrt.CoxPH`.

    ``h(t | x) = exp(log_scale_s) / t_ref * exp((x - center) @ beta)`` per stratum ``s``: the
    hazard is constant in time. Priors: the covariates' priors as in :class:`~bayescrt.CoxPH`;
    ``log_scale ~ Normal(0, 3)``. ``t_ref`` is recorded in the fit's ``model["baseline"]``.
    """

    family = "ExponentialPH"
    fixed_priors = {"log_scale": LOG_SCALE_PRIOR}
    baseline_vars = ("log_scale",)

    def _build(self, data, priors, hierarchy):
        return build_exponential(data, priors, frailty_prior=self.frailty_prior, centered=self.centered)

    def _text(self, info):
        return "exponential proportional hazards (constant baseline hazard), full likelihood"

    @classmethod
    def _row_hazard(cls, post, data, info, tv):
        t_ref = info["t_ref"]
        a = post["log_scale"][:, data.strata]
        exposure = data.time if data.entry is None else data.time - data.entry
        return np.exp(a) * (exposure / t_ref), a - np.log(t_ref)

    @classmethod
    def _cumhaz(cls, post, info, times):
        return np.exp(post["log_scale"])[..., None] * (times / info["t_ref"])


def reference(data: SurvivalData) -> tuple[float, np.ndarray]:
    """``t_ref`` and the per-stratum (weighted) event means of the standardised covariates."""
    wd, D, c = event_means(data)
    return float(np.exp(wd @ np.log(data.time) / D.sum() + 1.0)), c


def build_exponential(data: SurvivalData, priors: list[dict], *, frailty_prior=None, centered=False,
                      precondition=True, fused=True):
    """The exponential model; ``fused=False`` builds the exposure sum as a pytensor graph (its twin)."""
    import pymc as pm
    import pytensor.tensor as pt

    m, s_, zpriors, _ = _precondition(data, priors, enabled=precondition)
    t_ref, c = reference(data)
    S = data.n_strata
    coords = {"covariate": list(data.covariates), "stratum": [str(s) for s in data.strata_labels]}
    if data.cluster is not None:
        coords["cluster"] = [str(k) for k in data.cluster_labels]
    w = np.ones(data.n) if data.weights is None else data.weights
    wd = w * data.event
    Xc = data.standardised() - c[data.strata]  # centred at the event means of the row's stratum
    exposure = data.time if data.entry is None else data.time - data.entry
    with pm.Model(coords=coords) as model:
        events_s = np.bincount(data.strata, wd, S)
        beta_std, log_hr, per_cov = coefficients(data, zpriors, m, s_, pm, pt, extra={
            **{f"event_mean_{s}": c[s] for s in range(S)}, "event_sum": Xc.T @ wd,
            **{f"events_{s}": events_s[s] for s in range(S)}, "log_t_ref": np.log(t_ref)}, X=Xc, design=not fused)
        pm.Deterministic("log_hr", log_hr, dims="covariate")
        C = pt.stack([per_cov[f"event_mean_{s}"] for s in range(S)])  # (S, p)
        events = pt.stack([per_cov[f"events_{s}"] for s in range(S)])
        shift = (C * beta_std).sum(axis=1)
        # the scale at the event means; its prior is LOG_SCALE_PRIOR on log_scale (a shift given beta)
        a = log_scale_at_event_means(pm, shift)
        pm.Deterministic("log_scale", a - shift, dims="stratum")
        rows = row_data(data, {"exposure_ratio": exposure / t_ref}, {}, X=Xc if fused else None)
        events_ll = (events * (a - per_cov["log_t_ref"])).sum() + (per_cov["event_sum"] * beta_std).sum()
        u = None
        if data.cluster is not None:
            u = frailty(rows["cluster_code"], frailty_prior, centered, pm)
            wu = u if rows["weight"] is None else u * rows["weight"]
            events_ll = events_ll + (rows["event"] * wu).sum()
        H0 = (pt.exp(a[0]) if S == 1 else pt.exp(a)[rows["stratum_code"]]) * rows["exposure_ratio"]
        if rows["weight"] is not None:
            H0 = H0 * rows["weight"]
        if fused:
            exposure_sum = fused_exposure(beta_std, rows["XT"], u, H0)
        else:
            eta = (per_cov["X"] * beta_std).sum(axis=1) + (0.0 if u is None else u)
            exposure_sum = (H0 * pt.exp(eta)).sum()
        pm.Potential("loglik", events_ll - exposure_sum)
    return model, {"t_ref": t_ref}
