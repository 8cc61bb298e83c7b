"""Posterior summaries of effects as tidy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

HR_COLUMNS = ["log_hr_mean", "log_hr_sd", "hr_median", "hr_lower", "hr_upper", "p_hr_gt_1"]


def interval(draws: np.ndarray, prob: float = 0.95, hdi: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of a credible interval for each column of ``draws`` (draws, k).

    Equal-tailed by default; ``hdi=True`` gives the highest-density interval.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob={prob!r} must be strictly between 0 and 1, e.g. 0.95")
    draws = np.asarray(draws, dtype=float).reshape(len(draws), -1)
    if hdi:
        import arviz as az

        b = np.array([np.asarray(az.hdi(draws[:, j], prob=prob)) for j in range(draws.shape[1])])
        return b[:, 0], b[:, 1]
    a = (1 - prob) / 2
    lo, hi = np.quantile(draws, [a, 1 - a], axis=0)
    return lo, hi


def hazard_ratio_table(log_hr: np.ndarray, names, prob: float = 0.95, hdi: bool = False) -> pd.DataFrame:
    """One row per covariate from log-HR draws of shape (draws, covariates).

    The interval is computed on the log-HR scale and exponentiated: for an
    equal-tailed interval this is identical to computing it on the HR scale;
    for an HDI it is the HDI of the log-HR (the scale the model is symmetric on).
    """
    log_hr = np.asarray(log_hr, dtype=float).reshape(log_hr.shape[0], -1)
    lo, hi = interval(log_hr, prob, hdi)
    tab = pd.DataFrame(
        {
            "log_hr_mean": log_hr.mean(axis=0),
            "log_hr_sd": log_hr.std(axis=0, ddof=1),
            "hr_median": np.exp(np.median(log_hr, axis=0)),
            "hr_lower": np.exp(lo),
            "hr_upper": np.exp(hi),
            "p_hr_gt_1": (log_hr > 0).mean(axis=0),
        },
        index=pd.Index(list(names), name="covariate"),
    )
    tab.attrs.update(prob=prob, interval="hdi" if hdi else "equal-tailed")
    return tab


def kaplan_meier(time, event) -> pd.DataFrame:
    """Kaplan-Meier estimate: one row per distinct event time, with Greenwood's standard error.

    Columns ``time``, ``at_risk``, ``events``, ``survival``, ``se``; the first
    row is time 0 with survival 1.
    """
    t = np.asarray(time, float)
    d = np.asarray(event, bool)
    times, inv = np.unique(t, return_inverse=True)
    deaths = np.bincount(inv, weights=d, minlength=len(times))
    leaving = np.bincount(inv, minlength=len(times))
    at_risk = len(t) - np.concatenate([[0], np.cumsum(leaving)[:-1]])
    keep = deaths > 0
    times, deaths, at_risk = times[keep], deaths[keep], at_risk[keep]
    surv = np.cumprod(1 - deaths / at_risk)
    with np.errstate(divide="ignore", invalid="ignore"):
        green = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
    return pd.DataFrame({
        "time": np.concatenate([[0.0], times]), "at_risk": np.concatenate([[len(t)], at_risk]),
        "events": np.concatenate([[0], deaths]), "survival": np.concatenate([[1.0], surv]),
        "se": np.concatenate([[0.0], surv * np.sqrt(green)]),
    })
