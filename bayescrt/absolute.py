"""Effects on the absolute scale and a posterior predictive check, for any fitted PH model.

Every function here works from posterior draws of the log-HRs and of the
baseline cumulative hazard ``H0`` (:func:`bayescrt.baseline.baseline_cumhaz`),
so that a subject with covariates ``x`` in stratum ``s`` has, in draw ``d``,

    S_d(t | x) = exp(-H0_d[s, t] * exp((x - center) @ log_hr_d)).

- :func:`standardised_survival` (g-computation / direct standardisation): set
  a 0/1 exposure to each value for every subject of the fitted data and
  average ``S_d(t | x_i)`` over subjects (case weights if any), per draw.
- :func:`risk_difference`: the difference in standardised risk ``1 - S``.
- :func:`rmst_difference`: restricted mean survival time per value up to a
  horizon and their difference.
- :func:`ppc_km`: simulated Kaplan-Meier curves from the posterior predictive
  distribution, censored like the data, beside the observed Kaplan-Meier curve.

Assumptions shared by all of them: proportional hazards (fits with a
time-varying effect, a frailty or a study level are refused); the
standardisation is over the covariate distribution *of the fitted data* (the
sample average), so the posterior describes that finite population; reading
a standardised contrast as a causal effect further needs no unmeasured
confounding and positivity, which no model check can confirm.

The Cox baseline. A Cox fit samples only the log-HRs; ``baseline_cumhaz``
gives Breslow's estimator computed with each draw's log-HRs, which carries no
uncertainty of its own. Here each Breslow increment is multiplied by
``Gamma(d_k, 1) / d_k`` noise (``d_k`` the weighted events at that time in
that stratum): the posterior of the cumulative baseline hazard given the
log-HRs under a gamma-process prior in its non-informative limit (Kalbfleisch
1978, JRSS B 40:214-221; Ibrahim, Chen & Sinha 2001, section 3.2), whose
posterior mean is exactly the Breslow estimator. Without it, bands on the
absolute scale would reflect only the log-HR uncertainty and be too narrow.
This is why the functions take ``random_seed``. Parametric families sample
their baseline and take ``H0`` as it comes.

Cost. The subject average is O(draws x distinct subjects x times) exponentials,
in blocks of bounded memory; with many more times than needed (an RMST over
thousands of event times) it is computed instead from cubic Hermite
interpolation in ``H0`` of the exact average, with a proven error below
``1e-7`` (see ``_weighted_survival``), at O(draws x subjects x M), M a few
hundred. ``max_draws`` bounds the draws used.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .baseline import baseline_cumhaz, survival_data
from .effects import kaplan_meier_at
from .families import registry
from .families.base import check_marginal, draw_rows
from .summaries import central_interval
from . import validation
from .errors import DataWarning, DiagnosticsWarning, SpecError, suggest

#: elements per block of the (draws, subjects, times) tensor in the g-computation
_BLOCK = 4_000_000
#: largest error allowed, per unit of weight, when interpolating the subject-average survival in H0
_HERMITE_TOL = 1e-7


# ------------------------------------------------------------------ checks
def _exposure_column(fit, exposure) -> int:
    """Index of the exposure's column in X; it must be a single 0/1 column."""
    covs = list(fit.covariates)
    sources = list(fit.model["sources"])
    if not isinstance(exposure, str):
        raise SpecError(f"exposure={exposure!r} must be the name of a covariate of the fit: one of {covs}")
    if exposure in covs:
        j = covs.index(exposure)
    elif exposure in sources:
        mine = [k for k, s in enumerate(sources) if s == exposure]
        if len(mine) > 1:
            labels = [covs[k] for k in mine]
            raise SpecError(
                f"exposure={exposure!r} is a categorical covariate with {len(mine) + 1} levels, encoded as "
                f"{len(mine)} indicator columns {labels}; standardised effects compare two values of one 0/1 "
                f"column: recode {exposure!r} as a 0/1 indicator of the level of interest (e.g. "
                f"df['x'] = (df[{exposure!r}] == level).astype(int)), fit again and pass exposure='x'")
        j = mine[0]
    else:
        raise SpecError(f"exposure={exposure!r} is not a covariate of this fit.{suggest(exposure, covs + sources)} "
                        f"Covariates: {covs}")
    src = sources[j]
    if sum(s == src for s in sources) > 1:
        raise SpecError(
            f"exposure={exposure!r} is one indicator of the categorical covariate {src!r}, which has more than "
            f"two levels: setting it alone would leave subjects in two levels at once; recode {src!r} as a 0/1 "
            f"indicator of the level of interest, fit again and pass that column")
    col = np.asarray(fit.idata["constant_data"]["X"].values[:, j], float)
    seen = np.unique(col)
    if not np.isin(seen, (0.0, 1.0)).all():
        shown = ", ".join(f"{v:g}" for v in seen[:5]) + (", ..." if len(seen) > 5 else "")
        raise SpecError(
            f"exposure={exposure!r} must be a 0/1 column, but it takes {len(seen)} distinct values ({shown}); "
            f"recode it as a 0/1 indicator (e.g. df['x'] = (df[{src!r}] >= threshold).astype(int)), fit again "
            "and pass that column")
    return j


def _values(values, n: int | None = None) -> tuple[int, ...]:
    try:
        vals = tuple(values)
    except TypeError:
        raise SpecError(f"values={values!r} must be a tuple of exposure values, e.g. values=(0, 1)") from None
    ok = len(vals) > 0 and all(isinstance(v, (bool, int, float, np.integer, np.floating, np.bool_)) and v in (0, 1)
                               for v in vals)
    if not ok or len(set(int(v) for v in vals)) != len(vals):
        raise SpecError(f"values={values!r}: the exposure is 0/1; give distinct values among 0 and 1, "
                        "e.g. values=(0, 1)")
    if n is not None and len(vals) != n:
        raise SpecError(f"values={values!r}: a difference needs exactly two values, (reference, comparison), "
                        "e.g. values=(0, 1) for 1 vs 0")
    return tuple(int(v) for v in vals)


def _prob(prob) -> float:
    if not validation.is_number(prob) or not 0 < prob < 1:
        raise SpecError(f"prob={prob!r} must be strictly between 0 and 1, e.g. prob=0.95")
    return float(prob)


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _times(fit, times, data, name="times") -> np.ndarray:
    t_max = float(data.time.max())
    if times is None:
        return np.linspace(0.0, t_max, 201)
    t = np.atleast_1d(np.asarray(times, dtype=float)).ravel()
    if t.size == 0 or not np.isfinite(t).all() or (t < 0).any():
        raise SpecError(f"{name}={times!r} must be finite times >= 0, e.g. {name}=[1, 2, 5]")
    _follow_up(fit, t.max(), t_max, name)
    return t


def _follow_up(fit, t, t_max, name):
    if t <= t_max:
        return
    family = registry.of_fit(fit)
    if family.step_baseline:
        raise SpecError(f"{name} reaches {t:g}, past the last follow-up time {t_max:g}: a {family.family} fit's "
                        f"baseline hazard is a step function known only within the follow-up; use {name} <= {t_max:g}"
                        + ("" if family.subdistribution else " or a parametric family (which extrapolates)"))
    warnings.warn(f"{name} reaches {t:g}, past the last follow-up time {t_max:g}: the curves there are the "
                  f"{fit.model['family']} model's extrapolation, not data", DataWarning, stacklevel=4)


def _diagnostics_ok(fit) -> bool:
    """Warn, as :meth:`Fit.hazard_ratios` does, when the fit failed its convergence diagnostics."""
    rep = fit.diagnostics()
    if not rep.ok:
        warnings.warn("these absolute effects come from a fit that FAILED its convergence diagnostics and cannot "
                      "be trusted: " + "; ".join(rep.failures), DiagnosticsWarning, stacklevel=4)
    return bool(rep.ok)


# ------------------------------------------------------------------ posterior of H0
def _posterior_cumhaz(fit, data, times, max_draws, rng):
    """``(H0, log_hr)``: H0 (draws, strata, len(times)) and the log-HRs (draws, p) of the same draws.

    For Cox fits the Breslow increments get gamma-process posterior noise (see the module docstring).
    """
    beta_all = fit.log_hr_draws()
    beta = beta_all[draw_rows(len(beta_all), max_draws)]
    times = np.asarray(times, float)
    if not registry.of_fit(fit).step_baseline:
        H0 = baseline_cumhaz(fit, times, max_draws)
    else:
        ev = data.event.astype(bool)
        w = np.ones(data.n) if data.weights is None else data.weights
        knots = np.unique(data.time[ev])
        K = len(knots)
        H = baseline_cumhaz(fit, knots, max_draws)  # (D, S, K), steps at the events of each stratum
        inc = np.diff(H, axis=2, prepend=0.0)
        d = np.bincount(data.strata[ev] * K + np.searchsorted(knots, data.time[ev]), weights=w[ev],
                        minlength=data.n_strata * K).reshape(data.n_strata, K)
        has = d > 0
        noise = np.zeros(inc.shape)
        noise[:, has] = rng.standard_gamma(np.broadcast_to(d[has], (len(H), has.sum()))) / d[has]
        H = np.cumsum(inc * noise, axis=2)
        k = np.searchsorted(knots, times, side="right")
        H0 = np.concatenate([np.zeros(H.shape[:2] + (1,)), H], axis=2)[:, :, k]
    if H0.shape[0] != len(beta):
        raise RuntimeError(f"baseline_cumhaz returned {H0.shape[0]} draws for {len(beta)} log-HR draws; it must "
                           "select draws as bayescrt.families.base.draw_rows does")
    return H0, beta


# ------------------------------------------------------------------ g-computation
def _members(fit) -> list:
    """The fits whose subjects are averaged: the fit itself, or each imputation's fit of a pooled fit."""
    if not fit.model.get("imputation"):
        return [fit]
    members = getattr(fit, "imputations", None)
    if not members:
        raise SpecError("this pooled fit of imputed data was read back from its file, which holds the pooled draws "
                        "but not each imputation's fitted rows; absolute effects average over those rows: fit the "
                        "completed DataFrames again in this session, then call again")
    return members


def _standardised(fit, exposure, times, values, max_draws, random_seed, check=True, incidence=False):
    """Draws of the standardised survival, (draws, values, times), and the data; with ``incidence`` a
    subdistribution (Fine-Gray) fit is taken too, whose "survival" is one minus the cause's incidence.

    A pooled fit of imputed data: each imputation's fit standardised over its own completed rows, with
    its own share of ``max_draws`` and its own seed, and the draws mixed (as the posterior is)."""
    members = _members(fit)
    if len(members) > 1:
        max_draws = _positive_int("max_draws", max_draws)
        _exposure_column(members[0], exposure)
        if check:
            _diagnostics_ok(fit)
        per = -(-max_draws // len(members))
        seeds = np.random.SeedSequence(random_seed).spawn(len(members))
        parts = [_standardised(f, exposure, times, values, per, sd, check=False, incidence=incidence)
                 for f, sd in zip(members, seeds)]
        return (np.concatenate([p[0] for p in parts]), *parts[0][1:])
    check_marginal(fit, incidence=incidence)
    j = _exposure_column(fit, exposure)
    values = _values(values)
    max_draws = _positive_int("max_draws", max_draws)
    data = survival_data(fit)
    times = _times(fit, times, data)
    if check:
        _diagnostics_ok(fit)
    H0, beta = _posterior_cumhaz(fit, data, times, max_draws, np.random.default_rng(random_seed))
    center = np.asarray(fit.model["center"], float)
    w = np.ones(data.n) if data.weights is None else np.asarray(data.weights, float)
    designs = _formula_designs(fit, exposure, values, data)
    if designs is not None:  # the exposure is in an interaction: every row's design follows the exposure
        out = np.empty((len(beta), len(values), len(times)))
        for v_i, Xv in enumerate(designs):
            r = np.exp((Xv - center) @ beta.T).T  # (D, N)
            acc = np.zeros((len(beta), len(times)))
            for s in range(data.n_strata):
                mine = data.strata == s
                if mine.any():
                    acc += _weighted_survival(H0[:, s, :], r[:, mine], w[mine])
            out[:, v_i, :] = acc / w.sum()
        return out, values, times, data
    # identical (stratum, covariates-other-than-exposure) rows give identical curves: pool their weights
    Xc = data.X - center
    Xc[:, j] = 0.0
    key = np.column_stack([data.strata, Xc])
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    wu = np.bincount(inv, weights=w)
    su, Xu = uniq[:, 0].astype(int), uniq[:, 1:]
    eta = beta @ Xu.T  # (D, U): linear predictor with the exposure at its centre
    D, T = len(beta), len(times)
    out = np.empty((D, len(values), T))
    for v_i, v in enumerate(values):
        r = np.exp(eta + beta[:, j, None] * (v - center[j]))  # (D, U)
        acc = np.zeros((D, T))
        for s in range(data.n_strata):
            mine = su == s
            if mine.any():
                acc += _weighted_survival(H0[:, s, :], r[:, mine], wu[mine])
        out[:, v_i, :] = acc / w.sum()
    return out, values, times, data


def _formula_designs(fit, exposure, values, data):
    """For a formula fit whose exposure enters more than its own column (``upgrade:age``), the design of
    the fitted rows at each exposure value, in the data's sorted order; None otherwise."""
    info = fit.model.get("formula")
    if not info:
        return None
    involved = [c for c in info["labels"] if exposure in info["term_variables"].get(info["terms"][c], [])]
    if involved in ([], [exposure]):
        return None
    design = getattr(fit, "design", None)
    if design is None or design.rows is None:
        raise SpecError(f"exposure={exposure!r} enters the formula's terms {involved}; setting it needs the formula "
                        "and the fitted rows, which only the fit made in this session holds: refit, then call again")
    return [design.counterfactual(exposure, v)[data.order] for v in values]


def _weighted_survival(H, r, w, exact: bool = False):
    """``sum_u w_u exp(-H[d, t] r[d, u])`` for every draw d and time t: (D, T) from H (D, T), r (D, U), w (U,).

    Exact, or, when there are many more times than needed, by cubic Hermite
    interpolation in ``h`` of ``f_d(h) = sum_u w_u exp(-h r_du)`` from its
    exact values and derivatives on an even grid of ``M`` points over
    ``[0, max_t H]``. The interpolation error is at most
    ``max|f^(4)| step^4 / 384 <= step^4 sum_u w_u r_u^4 / 384``; ``M`` is chosen
    to keep that below ``_HERMITE_TOL * sum(w)``, and the exact sum is used
    whenever that would not save work. Cost O(D U min(T, 2M)).
    """
    D, T = H.shape
    U = r.shape[1]
    out = np.empty((D, T))
    hmax = H.max(axis=1)
    with np.errstate(over="ignore"):
        span = (hmax * np.average(r**4, axis=1, weights=w) ** 0.25).max() / (384 * _HERMITE_TOL) ** 0.25
    if exact or not np.isfinite(span) or 2 * (span + 2) >= T:
        step = max(1, _BLOCK // max(1, U * T))
        for a in range(0, D, step):
            e = np.multiply(H[a:a + step, :, None], -r[a:a + step, None, :])  # (chunk, T, U)
            np.exp(e, out=e)
            out[a:a + step] = e @ w
        return out
    M = int(np.ceil(span)) + 2
    dh = np.where(hmax > 0, hmax / (M - 1), 1.0)
    step = max(1, _BLOCK // max(1, U * M))
    for a in range(0, D, step):
        b = slice(a, a + step)
        e = np.multiply((dh[b, None] * np.arange(M))[:, :, None], -r[b, None, :])  # (chunk, M, U)
        np.exp(e, out=e)
        f = e @ w
        fp = -np.matmul(e, (r[b] * w)[:, :, None])[..., 0]  # f'(h)
        pos = H[b] / dh[b, None]
        i = np.clip(np.floor(pos).astype(int), 0, M - 2)
        x = pos - i
        rows = np.arange(len(f))[:, None]
        h00, h10, h01, h11 = 2 * x**3 - 3 * x**2 + 1, x**3 - 2 * x**2 + x, 3 * x**2 - 2 * x**3, x**3 - x**2
        out[b] = (h00 * f[rows, i] + h10 * dh[b, None] * fp[rows, i]
                  + h01 * f[rows, i + 1] + h11 * dh[b, None] * fp[rows, i + 1])
    return out


def standardised_survival_draws(fit, exposure: str, times, *, values=(0, 1), max_draws: int = 1000,
                                random_seed=0) -> np.ndarray:
    """Posterior draws of the standardised survival curves: array (draws, len(values), len(times)).

    The draws behind :func:`standardised_survival` (same arguments, same
    seed, same draws), for summaries of your own.
    """
    return _standardised(fit, exposure, times, values, max_draws, random_seed)[0]


def _attrs(fit, exposure, values, prob, n_draws, data, random_seed, **extra) -> dict:
    return {"exposure": exposure, "values": list(values), "prob": prob, "interval": "equal-tailed",
            "n_draws": int(n_draws), "diagnostics_ok": bool(fit.diagnostics().ok), "family": fit.model["family"],
            "n_subjects": int(data.n), "imputations": len(_members(fit)) if fit.model.get("imputation") else 0,
            "weighted": data.weights is not None, "curve": "step" if registry.of_fit(fit).step_baseline else "smooth",
            "follow_up_max": float(data.time.max()), "random_seed": random_seed,
            "baseline": _baseline_text(fit), **extra}


def _baseline_text(fit) -> str:
    """How the posterior of the baseline was drawn (see the module docstring)."""
    return ("Breslow increments with gamma-process posterior noise" if registry.of_fit(fit).step_baseline
            else "sampled parametric baseline")


def _summ(draws, prob):
    lo, med, hi = central_interval(draws, prob)
    return {"median": med, "lower": lo, "upper": hi, "mean": draws.mean(axis=0), "sd": draws.std(axis=0, ddof=1)}


def standardised_survival(fit, exposure: str, times=None, *, values=(0, 1), prob: float = 0.95,
                          max_draws: int = 1000, random_seed=0) -> pd.DataFrame:
    """Standardised (g-computation) survival curves for each value of a 0/1 exposure.

    For each posterior draw and each value ``v``: set the exposure to ``v``
    for every subject of the fitted data, keep their other covariates and
    stratum, and average ``S(t | x_i)`` over subjects (weighted by the case
    weights when the fit has them). Under randomisation (or no unmeasured
    confounding and positivity) the curve for ``v`` estimates the survival the
    fitted population would have had, all exposed to ``v``.

    Parameters
    ----------
    fit : a PH :class:`~bayescrt.fit.Fit` (Cox, Weibull or piecewise-exponential),
        without frailty or study level.
    exposure : a covariate of the fit that is a single 0/1 column (a
        two-level categorical counts; recode others as an indicator).
    times : times >= 0 at which to evaluate; ``None`` for 201 points from 0
        to the last follow-up time. Cox fits refuse times past the last
        follow-up; parametric fits warn that they extrapolate.
    values : exposure values to standardise to, e.g. ``(0, 1)``.
    prob : mass of the equal-tailed credible interval.
    max_draws : posterior draws used (evenly spaced over the chains).
    random_seed : seed of the Cox baseline's gamma-process noise (ignored by
        parametric fits).

    Returns
    -------
    DataFrame, one row per value and time: ``exposure`` (the value),
    ``time``, ``median``, ``lower``, ``upper``, ``mean``, ``sd``; ``attrs``
    record the exposure, interval, draws, family and baseline used.
    """
    prob = _prob(prob)
    draws, values, times, data = _standardised(fit, exposure, times, values, max_draws, random_seed)
    s = _summ(draws, prob)
    tab = pd.DataFrame({
        "exposure": np.repeat(values, len(times)), "time": np.tile(times, len(values)),
        **{k: v.ravel() for k, v in s.items()}})
    tab.attrs.update(_attrs(fit, exposure, values, prob, len(draws), data, random_seed,
                            estimand="standardised survival: mean over the fitted subjects of S(t | x_i, exposure "
                                     "set to value)"))
    return tab


def risk_difference(fit, exposure: str, times, *, values=(0, 1), prob: float = 0.95, max_draws: int = 1000,
                    random_seed=0) -> pd.DataFrame:
    """Difference in standardised risk, ``(1 - S_v1(t)) - (1 - S_v0(t))`` with ``values=(v0, v1)``.

    The standardised curves are those of :func:`standardised_survival` (same
    assumptions); with the default ``values=(0, 1)`` the difference is
    exposed minus unexposed, so a harmful exposure gives a positive
    difference.

    Returns
    -------
    DataFrame, one row per time: ``time``, ``risk_<v0>`` and ``risk_<v1>``
    (posterior medians of each standardised risk), ``median``, ``lower``,
    ``upper``, ``mean``, ``sd`` of the difference and ``p_gt_0``, the
    posterior probability that it is positive.
    """
    prob = _prob(prob)
    draws, values, times, data = _standardised(fit, exposure, times, _values(values, 2), max_draws, random_seed)
    risk = 1.0 - draws
    diff = risk[:, 1] - risk[:, 0]
    tab = pd.DataFrame({"time": times, f"risk_{values[0]}": np.median(risk[:, 0], axis=0),
                        f"risk_{values[1]}": np.median(risk[:, 1], axis=0), **_summ(diff, prob),
                        "p_gt_0": (diff > 0).mean(axis=0)})
    tab.attrs.update(_attrs(fit, exposure, values, prob, len(draws), data, random_seed,
                            estimand=f"standardised risk at {exposure}={values[1]} minus at {exposure}={values[0]}"))
    return tab


def rmst_difference(fit, exposure: str, horizon: float, *, values=(0, 1), prob: float = 0.95,
                    max_draws: int = 1000, n_grid: int | None = None, random_seed=0) -> pd.DataFrame:
    """Restricted mean survival time up to ``horizon`` for each value and their difference.

    ``RMST_v = integral from 0 to horizon of S_v(t) dt`` for the standardised
    curves of :func:`standardised_survival`, per draw. The integral runs over
    the union of the distinct event times before ``horizon``, an even grid of
    ``n_grid`` points and ``horizon`` itself:

    - Cox fits: the standardised curve is a right-continuous step function
      that moves only at event times, so summing ``S(t_k) (t_{k+1} - t_k)``
      over those knots is exact (``n_grid`` defaults to 0: the grid adds
      nothing; with very many knots the curve's values carry the interpolation
      error below 1e-7 described in the module docstring).
    - Parametric fits: the curve is smooth; the trapezoidal rule on the knots
      (``n_grid`` defaults to 400) has error O(horizon^2 / n_grid^2).

    The difference is ``RMST_v1 - RMST_v0`` with ``values=(v0, v1)``.

    Returns
    -------
    DataFrame indexed by ``quantity`` (``rmst_<v0>``, ``rmst_<v1>``,
    ``difference``) with ``median``, ``lower``, ``upper``, ``mean``, ``sd``
    and ``p_gt_0``; ``attrs`` hold the horizon, rule and number of knots.
    """
    prob = _prob(prob)
    if not validation.is_number(horizon) \
            or not np.isfinite(horizon) or horizon <= 0:
        raise SpecError(f"horizon={horizon!r} must be a positive time (in the units of the fit's time column), "
                        "e.g. horizon=5; the RMST integrates survival from 0 to horizon")
    horizon = float(horizon)
    first = _members(fit)[0]  # a pooled fit's imputations share time and event
    check_marginal(first)
    _exposure_column(first, exposure)
    values = _values(values, 2)
    data = survival_data(first)
    _follow_up(fit, horizon, float(data.time.max()), "horizon")
    step = registry.of_fit(fit).step_baseline
    if n_grid is None:
        n_grid = 0 if step else 400
    if isinstance(n_grid, bool) or not isinstance(n_grid, (int, np.integer)) or n_grid < 0:
        raise SpecError(f"n_grid={n_grid!r} must be an integer >= 0")
    ev_times = data.time[data.event.astype(bool)]
    knots = np.unique(np.concatenate([[0.0, horizon], ev_times[ev_times < horizon],
                                      np.linspace(0.0, horizon, n_grid) if n_grid else []]))
    draws, values, _, data = _standardised(fit, exposure, knots, values, max_draws, random_seed)
    dt = np.diff(knots)
    if step:
        rmst = (draws[..., :-1] * dt).sum(axis=-1)  # (D, 2): exact for right-continuous steps
    else:
        rmst = (0.5 * (draws[..., :-1] + draws[..., 1:]) * dt).sum(axis=-1)
    both = np.column_stack([rmst, rmst[:, 1] - rmst[:, 0]])
    s = _summ(both, prob)
    tab = pd.DataFrame({**s, "p_gt_0": (both > 0).mean(axis=0)},
                       index=pd.Index([f"rmst_{values[0]}", f"rmst_{values[1]}", "difference"], name="quantity"))
    tab.attrs.update(_attrs(fit, exposure, values, prob, len(draws), data, random_seed, horizon=horizon,
                            integration="exact sum over steps" if step else "trapezoidal", n_knots=len(knots),
                            estimand=f"RMST to {horizon:g} standardised to each value; difference "
                                     f"{exposure}={values[1]} minus {exposure}={values[0]}"))
    return tab


# ------------------------------------------------------------------ posterior predictive KM
def _km_on_grid(time, event, grid, weights=None, entry=None):
    """(Weighted, left-truncated) Kaplan-Meier survival at ``grid`` (right-continuous) and the number at risk."""
    return kaplan_meier_at(time, event, grid, weights, entry)


def _invert(H0, strata, grid, target):
    """Times t with H0[d, strata_i, t] = target[d, i], linear between grid points; inf past the grid.

    A vectorised binary search over draws and subjects: H0 (D, S, G) non-decreasing in its last axis.
    """
    D, G = H0.shape[0], H0.shape[2]
    rows = np.arange(D)[:, None]
    st = np.broadcast_to(strata, target.shape)
    lo = np.zeros(target.shape, int)  # invariant: H0[lo] < target (H0[0] = 0 < target)
    hi = np.full(target.shape, G)  # first index with H0 >= target, G if none
    while True:
        open_ = hi - lo > 1
        if not open_.any():
            break
        mid = (lo + hi) // 2
        ok = H0[rows, st, np.minimum(mid, G - 1)] >= target
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid, lo)
    past = hi >= G
    k = np.minimum(hi, G - 1)
    h_lo, h_hi = H0[rows, st, k - 1], H0[rows, st, k]
    frac = np.where(h_hi > h_lo, (target - h_lo) / np.where(h_hi > h_lo, h_hi - h_lo, 1.0), 1.0)
    t = grid[k - 1] + np.clip(frac, 0, 1) * (grid[k] - grid[k - 1])
    return np.where(past, np.inf, t)


def ppc_km(fit, *, n_sims: int = 50, random_seed=0, exposure: str | None = None, prob: float = 0.90,
           n_grid: int = 100) -> pd.DataFrame:
    """Posterior predictive check: simulated Kaplan-Meier curves, censored like the data, vs the observed one.

    For ``n_sims`` posterior draws (evenly spaced over the chains), every
    subject of the fitted data gets a new event time ``T`` by inverting
    ``H(t | x_i) = H0[s_i, t] exp((x_i - center) log_hr)`` at an Exp(1) draw
    (``H0`` on a grid of 1,024 points plus the event times, linear between
    them; a subject whose target lies past the last follow-up survives past
    it); under delayed entry ``T`` is drawn given survival to the entry time.
    Each ``T`` is censored at ``C``: a censored subject's ``C`` is their
    observed time; a subject with an observed event draws ``C`` from the
    reverse Kaplan-Meier estimate of the censoring distribution given
    ``C > their event time`` (censoring past the last observed time is the
    administrative end at the last follow-up). This keeps the simulated data
    censored as the real data were, so their Kaplan-Meier curves are
    comparable with the observed one. The Kaplan-Meier curves (weighted by
    case weights, left-truncated under delayed entry) are evaluated on a
    common grid of ``n_grid`` times from 0 to the last follow-up.

    With ``exposure`` (a 0/1 covariate) the curves are by exposure group.
    Several curves leaving the band at once point to a misfit: the baseline
    (all groups off together), the exposure's effect (groups off in opposite
    directions) or non-proportional hazards (crossing the band over time).

    Returns
    -------
    DataFrame, one row per group and grid time: ``group`` (the exposure
    value, or ``"all"``), ``time``, ``at_risk`` (observed, weighted),
    ``observed`` (the observed Kaplan-Meier), ``median``, ``lower``,
    ``upper`` (the pointwise ``prob`` band of the simulated curves),
    ``inside`` (observed within the band) and ``sim_0`` ... the simulated
    curves. ``attrs["coverage"]`` maps each group to the share of grid times
    after 0 at which the observed curve lies inside the band: a description,
    not a test (the curves are autocorrelated, so the share has no fixed
    distribution under a correct model).

    ``attrs["p_value"]`` is the test: a global rank test of the observed
    curves of all groups together against the simulated ones
    (:func:`global_rank_p_value`). At each grid time every curve has a depth
    ``min(#curves <= it, #curves >= it)`` among the ``n_sims + 1``; the
    p-value is the share of curves (the observed one included) whose mean
    depth is no larger than the observed one's. For curves that are
    exchangeable, ``P(p_value <= a) <= a`` exactly. The observed data are
    not quite exchangeable with posterior predictive ones (the posterior has
    seen the data, and the simulated censoring is drawn from the observed
    one); that reuse usually makes the test conservative (a correct model
    tends to give p near 1), though this is not guaranteed. Its smallest
    value is ``1 / (D + 1)``, D the simulations made (``attrs["n_sims"]``:
    ``n_sims``, or the number of posterior draws if fewer): to test at level
    ``a``, take ``n_sims >= 2 / a``. Being rank-based, the test is strong
    against departures that last (a baseline or an effect off over a stretch
    of follow-up) and weak against short, local ones.
    ``attrs["p_value_by_group"]`` gives the same test per group.
    """
    check_marginal(fit)
    n_sims = _positive_int("n_sims", n_sims)
    n_grid = _positive_int("n_grid", n_grid)
    prob = _prob(prob)
    data = survival_data(fit)
    j = None if exposure is None else _exposure_column(fit, exposure)
    ok = _diagnostics_ok(fit)
    rng = np.random.default_rng(random_seed)
    t_max = float(data.time.max())
    ev = data.event.astype(bool)
    hgrid = np.unique(np.concatenate([np.linspace(0.0, t_max, 1024), data.time[ev]]))
    H0, beta = _posterior_cumhaz(fit, data, hgrid, n_sims, rng)
    D = len(beta)
    r = np.exp(beta @ (data.X - np.asarray(fit.model["center"], float)).T)  # (D, N)
    target = rng.standard_exponential(r.shape) / r  # on the H0 scale
    if data.entry is not None:  # T given T > entry: H(T) = H(entry) + Exp(1)
        target = target + _interp_rows(H0, data.strata, hgrid, data.entry)
    T = _invert(H0, data.strata, hgrid, target)
    # censoring times: observed for the censored; reverse KM given C > t_i for those with an event
    C = np.broadcast_to(data.time, (D, data.n)).copy()
    w = data.weights
    c_times = np.unique(data.time[~ev])
    G, _ = _km_on_grid(data.time, ~ev, c_times, w, data.entry)  # P(C > c) at each censoring time
    G_at_event, _ = _km_on_grid(data.time, ~ev, data.time[ev], w, data.entry)
    u = rng.random((D, int(ev.sum())))
    k = np.searchsorted(-G, -(G_at_event * u), side="left")  # first censoring time with G <= u G(t_i)
    C[:, ev] = np.where(k < len(c_times), c_times[np.minimum(k, len(c_times) - 1)], t_max)
    Y = np.minimum(T, C)
    delta = T <= C

    grid = np.linspace(0.0, t_max, n_grid)
    groups = [("all", np.ones(data.n, bool))] if j is None else \
        [(v, data.X[:, j] == v) for v in (0, 1) if (data.X[:, j] == v).any()]
    parts, coverage, depths = [], {}, {}
    for g, mine in groups:
        wg = None if w is None else w[mine]
        eg = None if data.entry is None else data.entry[mine]
        obs, n_risk = _km_on_grid(data.time[mine], ev[mine], grid, wg, eg)
        sims = np.stack([_km_on_grid(Y[d, mine], delta[d, mine], grid, wg, eg)[0] for d in range(D)])
        lo, med, hi = central_interval(sims, prob)
        inside = (obs >= lo - 1e-12) & (obs <= hi + 1e-12)
        coverage[str(g)] = float(inside[grid > 0].mean())
        depths[str(g)] = _depths(np.vstack([obs, sims])[:, grid > 0])
        part = pd.DataFrame({"group": g, "time": grid, "at_risk": n_risk, "observed": obs, "median": med,
                             "lower": lo, "upper": hi, "inside": inside})
        parts.append(pd.concat([part, pd.DataFrame(sims.T, columns=[f"sim_{d}" for d in range(D)])], axis=1))
    tab = pd.concat(parts, ignore_index=True)
    tab.attrs.update(exposure=exposure, prob=prob, n_sims=D, diagnostics_ok=ok, random_seed=random_seed,
                     family=fit.model["family"], coverage=coverage,
                     p_value=_rank_p(np.hstack(list(depths.values()))),  # ranks are per column: groups side by side
                     p_value_by_group={g: _rank_p(d) for g, d in depths.items()},
                     test="global rank test: mean pointwise depth", n_subjects=int(data.n), weighted=w is not None,
                     censoring="observed time if censored; reverse Kaplan-Meier given C > event time otherwise",
                     baseline=_baseline_text(fit))
    return tab


def global_rank_p_value(curves) -> float:
    """Monte Carlo p-value of a global rank test of one observed curve against simulated ones.

    ``curves`` is an (M, K) array: row 0 the observed curve, rows 1.. the
    curves simulated under the model, each on the same K points (several
    functions are tested together by putting them side by side). Each curve's
    depth at a point is ``min(#rows <= it, #rows >= it)`` (1 for a lone lowest
    or highest; ties count for both, so tied curves are equally deep), and its
    statistic is its mean depth over the points: a curve that runs near the
    edge of the simulated ones for a long stretch is shallow; one far out at
    only a few points barely moves its mean depth, so short, local departures
    are weakly detected. Returns the share of the M rows whose mean depth is
    no larger than row 0's. The statistic treats every row alike, so when the
    rows are exchangeable ``P(p <= a) <= a``. Points where every curve agrees
    carry no information and are left out.
    """
    try:
        c = np.asarray(curves, float)
    except (TypeError, ValueError):
        raise SpecError(f"curves must be an (M, K) array of numbers (row 0 observed, rows 1.. simulated); "
                        f"got {type(curves).__name__} that does not convert to numbers") from None
    if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] < 1:
        raise SpecError(f"curves must be an (M, K) array with M >= 2 (observed + simulated) and K >= 1 points; "
                        f"got shape {c.shape}")
    if not np.isfinite(c).all():
        raise SpecError("curves contain NaN or infinite values; the test needs finite curves")
    return _rank_p(_depths(c))


def _depths(c: np.ndarray) -> np.ndarray:
    """Each row's depth ``min(#rows <= it, #rows >= it)`` at each point where the rows differ: (M, K')."""
    from scipy.stats import rankdata

    c = c[:, np.ptp(c, axis=0) > 0]
    return np.minimum(rankdata(c, method="max", axis=0), c.shape[0] + 1 - rankdata(c, method="min", axis=0))


def _rank_p(depth: np.ndarray) -> float:
    """Share of rows whose mean depth is no larger than row 0's (1 when no point tells the rows apart)."""
    if depth.shape[1] == 0:
        return 1.0
    mean = depth.mean(axis=1)  # integer depths over the same K: tied rows give identical means
    return float(np.mean(mean <= mean[0]))


def _interp_rows(H0, strata, grid, t):
    """H0 (D, S, G) at times t (one per subject, in its stratum), linear between grid points: (D, N)."""
    k = np.clip(np.searchsorted(grid, t, side="right"), 1, len(grid) - 1)
    h_lo, h_hi = H0[:, strata, k - 1], H0[:, strata, k]
    frac = np.clip((t - grid[k - 1]) / (grid[k] - grid[k - 1]), 0, 1)
    return h_lo + frac * (h_hi - h_lo)
