"""Baseline cumulative hazards per posterior draw, for every family.

``baseline_cumhaz(fit, times)`` returns ``H0`` with shape (draws, strata, times):
the cumulative hazard of a subject whose covariates sit at their centre (the
model's ``center``), so that a subject with covariates ``x`` in stratum ``s``
has ``H(t | x) = H0[s, t] * exp((x - center) @ log_hr)``.

For Cox fits it is Breslow's estimator computed with each draw's log-HRs,
``H0(t) = sum over event times <= t of (weighted events) / (risk-set sum of
w exp(eta))``, with the risk sets of the fit (strata, delayed entry) and O(N)
work per draw. Frailty and study-level fits are refused: their baseline is
conditional on cluster or study effects, and absolute effects for them are
not defined here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import SpecError


def survival_data(fit):
    """The fit's data as :class:`SurvivalData` (covariates already encoded), rebuilt from its DataTree."""
    from .data import SurvivalData

    obs, const, m = fit.idata["observed_data"], fit.idata["constant_data"], fit.model
    X = const["X"].values
    df = pd.DataFrame(X, columns=[f"x{k}" for k in range(X.shape[1])])
    df["_time"], df["_event"] = obs["time"].values, obs["event"].values.astype(int)
    kw = {}
    if "entry" in obs:
        df["_entry"], kw["entry"] = obs["entry"].values, "_entry"
    if "weights" in const:
        df["_w"], kw["weights"] = const["weights"].values, "_w"
    if "stratum" in const:
        df["_stratum"], kw["strata"] = const["stratum"].values, "_stratum"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation was reported when the fit was made
        data = SurvivalData.from_frame(df, time="_time", event="_event", covariates=list(df.columns[:X.shape[1]]),
                                       **kw)
    return data


def _check(fit):
    post = fit.idata["posterior"]
    if "frailty" in post or "study_log_hr" in post:
        raise SpecError("absolute effects are not available for fits with a frailty or a study level: their "
                        "baseline hazard is conditional on cluster or study effects")


def cox_baseline_cumhaz(fit, times, max_draws: int | None = None, chunk: int = 64) -> np.ndarray:
    """Breslow baseline cumulative hazard per draw: shape (draws, strata, len(times))."""
    from .families import cox

    _check(fit)
    data = survival_data(fit)
    rs = cox.RiskSets.from_data(data, "breslow")
    beta = fit.log_hr_draws()
    if max_draws is not None and max_draws < len(beta):
        beta = beta[np.linspace(0, len(beta) - 1, max_draws).round().astype(int)]
    center = np.asarray(fit.model["center"])
    Xc = data.X - center
    times = np.atleast_1d(np.asarray(times, float))
    ev_time = data.time[rs.event_rows]
    ev_stratum = data.strata[rs.event_rows]
    out = np.zeros((len(beta), data.n_strata, len(times)))
    w = np.ones(data.n) if data.weights is None else data.weights
    for a in range(0, len(beta), chunk):
        eta = beta[a:a + chunk] @ Xc.T
        r = w * np.exp(eta)  # centred covariates keep eta moderate
        risk = cox.risk_set_sums(r, rs)  # (chunk, events)
        inc = rs.event_weight / risk
        for s in range(data.n_strata):
            mine = ev_stratum == s
            cum = np.cumsum(inc[:, mine], axis=1)
            k = np.searchsorted(ev_time[mine], times, side="right")
            padded = np.concatenate([np.zeros((len(cum), 1)), cum], axis=1)
            out[a:a + chunk, s, :] = padded[:, k]
    return out


def baseline_cumhaz(fit, times, max_draws: int | None = None) -> np.ndarray:
    """``H0`` per draw, stratum and time for any family (see the module docstring)."""
    family = fit.model["family"]
    if family == "CoxPH":
        return cox_baseline_cumhaz(fit, times, max_draws)
    from .families import parametric

    return parametric.baseline_cumhaz(fit, times, max_draws)
