"""Posterior summaries of effects as tidy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError
from .summaries import central_interval

HR_COLUMNS = ["log_hr_mean", "log_hr_sd", "hr_median", "hr_lower", "hr_upper", "p_hr_gt_1"]


def interval(draws: np.ndarray, prob: float = 0.95, hdi: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of a credible interval for each column of ``draws`` (draws, k).

    Equal-tailed by default; ``hdi=True`` gives the highest-density interval.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob={prob!r} must be strictly between 0 and 1, e.g. 0.95")
    draws = np.asarray(draws, dtype=float).reshape(len(draws), -1)
    if hdi:
        import arviz_stats as az  # ArviZ's statistics alone: importing arviz also loads its plots (~1 s)

        b = np.array([np.asarray(az.hdi(draws[:, j], prob=prob)) for j in range(draws.shape[1])])
        return b[:, 0], b[:, 1]
    lo, _, hi = central_interval(draws, prob)
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


def _km(time, event, weights=None, entry=None):
    """The (weighted, left-truncated) Kaplan-Meier product: distinct event times, their (weighted) events,
    the number at risk there, the survival just after each, and the at-risk function."""
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    w = np.ones(len(time)) if weights is None else np.asarray(weights, float)
    ut, inv = np.unique(time[event], return_inverse=True)
    d = np.bincount(inv.ravel(), weights=w[event], minlength=len(ut)).astype(float)

    def n_ge(x, u):  # total weight of rows with x >= u
        o = np.argsort(x, kind="stable")
        tail = np.concatenate([np.cumsum(w[o][::-1])[::-1], [0.0]])
        return tail[np.searchsorted(x[o], u, side="left")]

    def at_risk(u):
        n = n_ge(time, u)
        return n if entry is None else n - n_ge(np.asarray(entry, float), u)

    n = at_risk(ut)
    return ut, d, n, np.cumprod(1.0 - d / n), at_risk


def _km_inputs(time, event, weights, entry):
    """The arguments of :func:`kaplan_meier` as arrays, or a DataError naming each bad one and the fix."""
    arrays = {"time": time, "event": event, "weights": weights, "entry": entry}
    out, problems = {}, []
    for name, v in arrays.items():
        if v is None:
            out[name] = None
            continue
        a = np.asarray(v)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "biuf"):
            problems.append(f"{name}: give one number per row (a 1-D numeric array), got {type(v).__name__} of "
                            f"shape {a.shape} and dtype {a.dtype}")
            continue
        out[name] = a.astype(float)
    n = len(out["time"]) if out.get("time") is not None else None
    for name, a in out.items():
        if a is not None and n is not None and len(a) != n:
            problems.append(f"{name} has {len(a)} values for {n} times; give one per row")
    if not problems:
        t, e, w, en = out["time"], out["event"], out["weights"], out["entry"]
        checks = [("time", t, ~np.isfinite(t) | (t < 0), "finite and >= 0"),
                  ("event", e, ~np.isin(e, (0.0, 1.0)), "0 (censored) or 1 (event)")]
        if w is not None:
            checks.append(("weights", w, ~np.isfinite(w) | (w <= 0), "finite and > 0"))
        if en is not None:
            checks.append(("entry", en, ~np.isfinite(en) | (en < 0) | (en >= t), "finite, >= 0 and below its time"))
        for name, a, bad, want in checks:
            if bad.any():
                k = np.flatnonzero(bad)
                problems.append(f"{name} must be {want}: {len(k)} value(s) are not (row {k[0]}: {a[k[0]]:g})")
    if problems:
        raise DataError(problems)
    return out["time"], out["event"].astype(bool), out["weights"], out["entry"]


def kaplan_meier(time, event, weights=None, entry=None) -> pd.DataFrame:
    """Kaplan-Meier estimate: one row per distinct event time, with Greenwood's standard error.

    Columns ``time``, ``at_risk``, ``events``, ``survival``, ``se``; the first
    row is time 0 with survival 1. ``weights`` (case weights) and ``entry``
    (delayed entry: a row is at risk at ``u`` when ``entry < u <= time``) are optional.
    Each is one value per row; a missing, infinite or out-of-range value is a DataError naming it.
    """
    t, event, weights, entry = _km_inputs(time, event, weights, entry)
    times, deaths, at_risk, surv, _ = _km(t, event, weights, entry)
    total = len(t) if weights is None else float(np.sum(weights))  # row 0: every row, by its weight
    if weights is None and entry is None:
        at_risk = at_risk.astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        green = np.cumsum(deaths / (at_risk * (at_risk - deaths)))
    return pd.DataFrame({
        "time": np.concatenate([[0.0], times]), "at_risk": np.concatenate([[total], at_risk]),
        "events": np.concatenate([[0], deaths]), "survival": np.concatenate([[1.0], surv]),
        "se": np.concatenate([[0.0], surv * np.sqrt(green)]),
    })


def kaplan_meier_at(time, event, grid, weights=None, entry=None) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan-Meier survival at ``grid`` (right-continuous) and the number at risk there.

    For inputs already checked (a fit's data, or curves simulated from it, whose event times past the
    last grid point may be inf); :func:`kaplan_meier` checks what it is given."""
    ut, _, _, surv, at_risk = _km(time, event, weights, entry)
    return np.concatenate([[1.0], surv])[np.searchsorted(ut, grid, side="right")], at_risk(grid)
