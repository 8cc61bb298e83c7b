"""Full-likelihood proportional-hazards families: Weibull and piecewise-exponential baselines.

Both model ``h(t | x) = h0_s(t) exp((x - center) @ beta)`` with a baseline per
stratum ``s`` and the log-HRs ``beta`` shared, so ``beta`` means what it means in
the Cox model. With delayed entry (or start/stop rows: ``entry`` = start,
``time`` = stop) a row contributes ``d log h(t) - [H(t) - H(entry)]``; case
weights multiply a row's contribution.

Weibull: ``H0_s(t) = exp(alpha_s) (t / t_ref)^k_s`` with ``t_ref`` a reference
time from the data (so ``alpha`` is O(1) in any time unit, and nearly
uncorrelated with ``k`` and ``beta``: :func:`weibull_reference`); priors
``alpha_s ~ Normal(0, 3)`` and ``log k_s ~ Normal(0, 1)``. The event terms of
the log-likelihood are sums fixed by the data (events, event sums of ``log t``
and of the covariates), so each row costs one exponential per gradient.

Piecewise exponential: cut points ``0 = c_0 < c_1 < ... < c_J`` (the last
interval is open), log baseline hazard ``a_sj`` per stratum and interval with a
random-walk prior (first order: ``a_j - a_{j-1} ~ Normal(0, sigma)``; second
order: the first difference ~ Normal(0, 1), then differences of differences
~ Normal(0, sigma)), ``sigma ~ HalfNormal(0.5)`` and the
first interval's level ``Normal(log(events / exposure), 2)``. The walk is
centred when there are at least 100 events per interval and stratum on
average (data pin each interval down) and non-centred otherwise. The cumulative
hazard at any time is ``C[j(t)] + exp(a_j(t)) (t - c_j(t))`` with ``C`` the
cumulative sum over whole intervals, so each row needs two gathers: O(N + J)
per gradient, never a person-period expansion (memory does not grow with J x N).

An optional time-varying effect of one 0/1 covariate (``tv=`` column) gives
it its own log-HR per interval, ``b_j ~ Normal(0, 1)`` each: the
proportional-hazards check of that covariate (under PH the ``b_j`` agree).
"""

from __future__ import annotations

import numpy as np

from ..compiled import data_block
from ..data import SurvivalData
from .cox import _frailty, _prior_vector, _shift_scale, mle, prior_rows

RW_ORDERS = (1, 2)


def default_cuts(data: SurvivalData, n_intervals: int = 8) -> np.ndarray:
    """Interior cut points at quantiles of the event times (distinct, strictly inside the follow-up)."""
    t = data.time[data.event]
    q = np.quantile(t, np.linspace(0, 1, n_intervals + 1)[1:-1])
    q = np.unique(np.round(q, 10))
    return q[(q > 0) & (q < data.time.max())]


def _preconditioned(data, priors, precondition=True):
    p = len(data.covariates)
    m, s_ = np.zeros(p), np.ones(p)
    if precondition:
        fit = mle(data, "breslow")
        m_std = np.array(list(fit["coef"].values())) * data.scale
        s_std = np.array(list(fit["se"].values())) * data.scale
        if fit["converged"] and np.all(np.isfinite(m_std)) and np.all(np.isfinite(s_std)) and np.all(s_std > 0) \
                and np.all(np.abs(m_std) < 20) and np.all(s_std < 10):
            m, s_ = m_std, s_std
    return m, s_, [_shift_scale(rec["standardised"], m[j], s_[j]) for j, rec in enumerate(priors)]


CENTRED_EVENTS_PER_INTERVAL = 100


def _coefficients(data: SurvivalData, zpriors, m, s_, pm, pt, extra: dict | None = None, X=None):
    """Standardised log-HRs ``m + s * z``, the log-HRs in the covariates' units and the container's views.

    All from one data container (see :func:`bayescrt.compiled.data_block`): the
    priors' rows, the preconditioning, the scales, the ``extra`` per-covariate rows
    and scalars, and the design ``X`` (default: the standardised covariates) as
    ``views["X"]``."""
    views = data_block("covariate_data", {**prior_rows(zpriors), "precond_mode": m, "precond_se": s_,
                                          "x_scale": data.scale, **(extra or {}),
                                          "X": data.standardised() if X is None else X})
    z = _prior_vector(zpriors, len(zpriors), pm, pt, views)
    beta_std = views["precond_mode"] + views["precond_se"] * z
    return beta_std, beta_std / views["x_scale"], views


def _rows(data: SurvivalData, values: dict, index: dict):
    """Per-row numbers as two data containers, floating point (``row_values``) and integer (``row_index``).

    Always present: ``event`` (0/1 as float), ``weight`` (None when unweighted),
    ``stratum_code`` and ``cluster_code`` (None without clusters); plus ``values``
    and ``index``."""
    v = data_block("row_values", {"event": data.event.astype(float), "weight": data.weights, **values})
    v.update(data_block("row_index", {"stratum_code": data.strata, "cluster_code": data.cluster, **index}))
    return v


def _rw(name, n, order, sigma, first_mu, first_sd, pm, pt, dims=None, centered=False):
    """A random walk of ``order`` 1 or 2 over the last axis (length n).

    Non-centred (standard-normal coordinates scaled by ``sigma``) suits weakly
    informed intervals; centred (the walk's own increments as parameters) suits
    intervals each pinned down by many events, where the non-centred form turns
    into a funnel. In the second order the first slope has its own Normal(0, 1),
    so only the changes of slope shrink with ``sigma``.
    """
    shape = (dims[0], n) if dims else (n,)
    if not centered:
        z = pm.Normal(f"{name}_z", 0.0, 1.0, shape=shape)
        level = first_mu + first_sd * z[..., :1]
        if n == 1:
            return level
        incr = sigma * z[..., 1:] if order == 1 else pt.concatenate([z[..., 1:2], sigma * z[..., 2:]], axis=-1)
    else:
        level = pm.Normal(f"{name}_level", first_mu, first_sd, shape=shape[:-1] + (1,))
        if n == 1:
            return level
        if order == 1:
            incr = pm.Normal(f"{name}_steps", 0.0, sigma, shape=shape[:-1] + (n - 1,))
        else:
            first = pm.Normal(f"{name}_slope", 0.0, 1.0, shape=shape[:-1] + (1,))
            if n == 2:
                incr = first
            else:
                incr = pt.concatenate([first, pm.Normal(f"{name}_curvature", 0.0, sigma, shape=shape[:-1] + (n - 2,))],
                                      axis=-1)
    steps = incr if order == 1 else pt.cumsum(incr, axis=-1)
    return pt.concatenate([level, level + pt.cumsum(steps, axis=-1)], axis=-1)


def weibull_reference(data: SurvivalData, beta_std: np.ndarray) -> tuple[float, np.ndarray]:
    """The reference time ``t_ref`` and the per-stratum event means of the standardised covariates.

    Both make the Weibull posterior nearly uncorrelated, so NUTS takes short
    trajectories. With ``k`` the shape, a stratum's ``log_scale`` (its log
    cumulative baseline hazard at ``t_ref``, at the covariate centre) has
    curvature ``sum H_i (log(t_i / t_ref), x_i)`` against ``log k`` and the
    log-HRs; at the likelihood's mode that is zero when ``log t_ref`` is the
    (weighted) mean log event time plus ``1/k`` and when the covariates are
    centred at their event means. ``k`` is the profile-likelihood estimate of
    one shape with the log-HRs fixed at ``beta_std`` (the Cox estimate) and
    the scales profiled out per stratum. The sampler works with the scales at
    the event means; ``log_scale`` is reported at the covariate centre.
    """
    from scipy.optimize import minimize_scalar

    w = np.ones(data.n) if data.weights is None else data.weights
    wd = w * data.event
    X = data.standardised()
    S = data.n_strata
    D = np.bincount(data.strata, wd, S)
    sums = np.stack([np.bincount(data.strata, wd * X[:, j], S) for j in range(X.shape[1])], axis=-1)
    c = np.divide(sums, D[:, None], out=np.zeros_like(sums), where=D[:, None] > 0)  # no events: the centre
    t0 = float(np.median(data.time))
    lt = np.log(data.time / t0)
    le = None if data.entry is None else np.log(np.where(data.entry > 0, data.entry / t0, 1.0))
    r = w * np.exp(X @ beta_std)
    lbar = float(wd @ lt / D.sum())

    def negprofile(log_k):
        k = np.exp(log_k)
        h = np.exp(k * (lt - lbar))  # shifted by the mean log event time, for range
        if le is not None:
            h = h - (data.entry > 0) * np.exp(k * (le - lbar))
        R = np.bincount(data.strata, r * h, S)
        return -(D.sum() * log_k - D @ np.log(R))

    k = float(np.exp(minimize_scalar(negprofile, bounds=(-4.0, 4.0), method="bounded").x))
    return float(t0 * np.exp(lbar + 1.0 / k)), c


def build_weibull(data: SurvivalData, priors: list[dict], *, frailty_prior=None, centered=False,
                  precondition=True):
    import pymc as pm
    import pytensor.tensor as pt

    m, s_, zpriors = _preconditioned(data, priors, precondition)
    t_ref, c = weibull_reference(data, m)
    S = data.n_strata
    coords = {"covariate": list(data.covariates), "stratum": [str(s) for s in data.strata_labels]}
    if data.cluster is not None:
        coords["cluster"] = [str(c) for c in data.cluster_labels]
    w = np.ones(data.n) if data.weights is None else data.weights
    wd = w * data.event
    lt = np.log(data.time / t_ref)
    Xc = data.standardised() - c[data.strata]  # centred at the event means of the row's stratum
    with pm.Model(coords=coords) as model:
        # sufficient statistics of the event terms: per stratum the (weighted) events and sum of
        # log(t / t_ref) over events; per covariate the event sum of the centred design (zero up to
        # rounding); a frailty's event terms stay per row
        events_s, log_time_sum_s = np.bincount(data.strata, wd, S), np.bincount(data.strata, wd * lt, S)
        beta_std, log_hr, per_cov = _coefficients(data, zpriors, m, s_, pm, pt, extra={
            **{f"event_mean_{s}": c[s] for s in range(S)}, "event_sum": Xc.T @ wd,
            **{f"events_{s}": events_s[s] for s in range(S)},
            **{f"log_time_sum_{s}": log_time_sum_s[s] for s in range(S)},
            "log_t_ref": np.log(t_ref)}, X=Xc)
        pm.Deterministic("log_hr", log_hr, dims="covariate")
        C = pt.stack([per_cov[f"event_mean_{s}"] for s in range(S)])  # (S, p)
        events = pt.stack([per_cov[f"events_{s}"] for s in range(S)])
        log_time_sum = pt.stack([per_cov[f"log_time_sum_{s}"] for s in range(S)])
        # the scale at the event means; its prior is log_scale ~ Normal(0, 3) (a shift given beta)
        shift = (C * beta_std).sum(axis=1)
        a = pm.Normal("log_scale_at_event_means", shift, 3.0, dims="stratum")
        pm.Deterministic("log_scale", a - shift, dims="stratum")
        log_k = pm.Normal("log_shape", 0.0, 1.0, dims="stratum")
        k = pt.exp(log_k)
        pm.Deterministic("shape", k, dims="stratum")
        e = None if data.entry is None else data.entry / t_ref
        rows = _rows(data, {"log_time_ratio": lt,  # log(t / t_ref)
                            "log_entry_ratio": None if e is None else np.log(np.where(e > 0, e, 1.0)),
                            "entered_late": None if e is None else (e > 0).astype(float)}, {})
        eta = (per_cov["X"] * beta_std).sum(axis=1)
        events_ll = (events * (a + log_k - per_cov["log_t_ref"]) + (k - 1) * log_time_sum).sum() \
            + (per_cov["event_sum"] * beta_std).sum()
        if data.cluster is not None:
            u = _frailty(rows["cluster_code"], frailty_prior, centered, pm)
            eta = eta + u
            wu = u if rows["weight"] is None else u * rows["weight"]
            events_ll = events_ll + (rows["event"] * wu).sum()
        if S == 1:  # no gathers
            a_i, k_i = a[0], k[0]
        else:
            st = rows["stratum_code"]
            a_i, k_i = a[st], k[st]
        H = pt.exp(a_i + eta + k_i * rows["log_time_ratio"])
        if data.entry is not None:
            H = H - rows["entered_late"] * pt.exp(a_i + eta + k_i * rows["log_entry_ratio"])
        if rows["weight"] is not None:
            H = H * rows["weight"]
        pm.Potential("loglik", events_ll - H.sum())
    return model, {"t_ref": t_ref}


def _interval_index(t, cuts):
    """Interval of each time: j with c_j <= t < c_{j+1} (cuts are the interior points)."""
    return np.searchsorted(cuts, t, side="right")


def build_pwe(data: SurvivalData, priors: list[dict], cuts: np.ndarray, *, rw_order: int = 1, tv: int | None = None,
              frailty_prior=None, centered=False, precondition=True):
    import pymc as pm
    import pytensor.tensor as pt

    m, s_, zpriors = _preconditioned(data, priors, precondition)
    if tv is not None:  # its coordinate leaves the likelihood; a proper N(0, 1) keeps the posterior proper
        zpriors = list(zpriors)
        zpriors[tv] = {"dist": "Normal", "mu": 0.0, "sigma": 1.0}
    p, S, J = len(data.covariates), data.n_strata, len(cuts) + 1
    edges = np.concatenate([[0.0], cuts])
    width = np.diff(np.concatenate([edges, [np.inf]]))[:-1]  # whole-interval widths (J - 1 of them)
    jt = _interval_index(data.time, cuts)
    rate0 = data.event.sum() / max(float(np.sum(data.time - (0 if data.entry is None else data.entry))), 1e-12)
    coords = {"covariate": list(data.covariates), "stratum": [str(s) for s in data.strata_labels],
              "interval": [f"[{edges[j]:g}, {edges[j + 1]:g})" if j + 1 < J else f"[{edges[j]:g}, inf)"
                           for j in range(J)]}
    if data.cluster is not None:
        coords["cluster"] = [str(c) for c in data.cluster_labels]
    with pm.Model(coords=coords) as model:
        mask = np.ones(p)
        if tv is not None:
            mask[tv] = 0.0
        beta_std, log_hr, per_cov = _coefficients(data, zpriors, m, s_, pm, pt)
        X_std = per_cov["X"]
        je_np = None if data.entry is None else _interval_index(data.entry, cuts)
        rows = _rows(data, {"time_into_interval": data.time - edges[jt],  # time since the interval's start
                            "entry_into_interval": None if je_np is None else data.entry - edges[je_np],
                            "tv_covariate": None if tv is None else data.X[:, tv].astype(float),
                            "log_crude_rate": np.log(rate0)},
                     {"interval_code": jt, "entry_interval_code": je_np})
        sigma = pm.HalfNormal("rw_sd", 0.5)
        # well-informed intervals: centred walk (see _rw)
        rw_centred = data.n_events / (S * J) >= CENTRED_EVENTS_PER_INTERVAL
        a = _rw("log_hazard", J, rw_order, sigma, rows["log_crude_rate"], 2.0, pm, pt, dims=(S,),
                centered=rw_centred)
        a = pm.Deterministic("log_hazard", a, dims=("stratum", "interval"))
        eta = (X_std * (beta_std * mask)).sum(axis=1)
        if data.cluster is not None:
            eta = eta + _frailty(rows["cluster_code"], frailty_prior, centered, pm)
        st, jt, je = rows["stratum_code"], rows["interval_code"], rows["entry_interval_code"]
        into, into_e = rows["time_into_interval"], rows["entry_into_interval"]
        width = pm.Data("interval_width", width)

        if tv is None:
            # per-stratum cumulative hazard tables, gathered per row
            rates = pt.exp(a)
            whole = pt.concatenate([pt.zeros((S, 1)), pt.cumsum(rates[:, :-1] * width, axis=1)], axis=1)
            H = whole[st, jt] + rates[st, jt] * into
            if data.entry is not None:
                H = H - (whole[st, je] + rates[st, je] * into_e)
            log_h = a[st, jt] + eta
        else:
            xb = rows["tv_covariate"]
            # one log-HR per interval, each Normal(0, 1) on its own (no smoothing across intervals: the check
            # should not pull the effects together, and a shared SD would make a funnel when they are equal)
            b = pm.Normal("tv_log_hr", 0.0, 1.0, dims="interval")
            # rows with the covariate at 1 have log hazard a + b per interval, the others a
            rates0, rates1 = pt.exp(a), pt.exp(a + b[None, :])
            whole0 = pt.concatenate([pt.zeros((S, 1)), pt.cumsum(rates0[:, :-1] * width, axis=1)], axis=1)
            whole1 = pt.concatenate([pt.zeros((S, 1)), pt.cumsum(rates1[:, :-1] * width, axis=1)], axis=1)
            one = xb  # 0/1

            def H_at(j, since):
                h0 = whole0[st, j] + rates0[st, j] * since
                h1 = whole1[st, j] + rates1[st, j] * since
                return one * h1 + (1 - one) * h0

            H = H_at(jt, into)
            if data.entry is not None:
                H = H - H_at(je, into_e)
            log_h = a[st, jt] + b[jt] * xb + eta
            log_hr = pt.set_subtensor(log_hr[tv], b.mean())  # reported: the mean over intervals
        pm.Deterministic("log_hr", log_hr, dims="covariate")
        d, w = rows["event"], rows["weight"]
        ll = d * log_h - pt.exp(eta) * H
        if w is not None:
            ll = ll * w
        pm.Potential("loglik", ll.sum())
    return model, {"cuts": cuts.tolist(), "rw_order": rw_order,
                   "rw_parameterisation": "centred" if rw_centred else "non-centred"}


# ---------------------------------------------------------------- numpy twins for draws
def pointwise_loglik(fit_post, data: SurvivalData, family: str, info: dict, tv: int | None = None) -> np.ndarray:
    """Per-row log-likelihood for every draw (draws, n), rows in the data's sorted order."""
    beta = fit_post["log_hr"]
    eta = beta @ (data.X - data.center).T
    if tv is not None:
        eta = eta - np.outer(beta[:, tv], data.X[:, tv] - data.center[tv])
    if "frailty" in fit_post and data.cluster is not None:
        eta = eta + fit_post["frailty"][:, data.cluster]
    st, d = data.strata, data.event.astype(float)
    if family == "WeibullPH":
        t_ref = info["t_ref"]
        a, k = fit_post["log_scale"][:, st], fit_post["shape"][:, st]
        lt = np.log(data.time / t_ref)
        H = np.exp(a + k * lt)
        if data.entry is not None:
            e = data.entry / t_ref
            H = H - np.where(e > 0, np.exp(a + k * np.log(np.where(e > 0, e, 1.0))), 0.0)
        ll = d * (a + np.log(k) + (k - 1) * lt - np.log(t_ref) + eta) - np.exp(eta) * H
    else:
        H, log_h = _pwe_cumhaz_rows(fit_post, data, info, tv)
        ll = d * (log_h + eta) - np.exp(eta) * H
    if data.weights is not None:
        ll = ll * data.weights
    return ll


def _pwe_tables(loga, cuts):
    edges = np.concatenate([[0.0], cuts])
    width = np.diff(edges)
    rates = np.exp(loga)
    whole = np.concatenate([np.zeros(rates.shape[:-1] + (1,)), np.cumsum(rates[..., :-1] * width, axis=-1)], axis=-1)
    return edges, rates, whole


def _pwe_H(loga, cuts, t):
    """H0 at times t from log hazards (..., J): shape (..., len(t))."""
    edges, rates, whole = _pwe_tables(loga, cuts)
    j = _interval_index(t, cuts)
    return whole[..., j] + rates[..., j] * (t - edges[j])


def _pwe_cumhaz_rows(post, data, info, tv):
    cuts = np.asarray(info["cuts"], float)
    a = post["log_hazard"]  # (draws, S, J)
    D = a.shape[0]
    st = data.strata
    H = np.empty((D, data.n))
    log_h = np.empty((D, data.n))
    jt = _interval_index(data.time, cuts)
    groups = [(np.ones(data.n, bool), None)] if tv is None else [(data.X[:, tv] == 0, 0), (data.X[:, tv] == 1, 1)]
    for rows, val in groups:
        for s in range(data.n_strata):
            r = rows & (st == s)
            if not r.any():
                continue
            loga = a[:, s, :] + (post["tv_log_hr"] if val == 1 else 0.0)
            h = _pwe_H(loga, cuts, data.time[r])
            if data.entry is not None:
                h = h - _pwe_H(loga, cuts, data.entry[r])
            H[:, r] = h
            log_h[:, r] = loga[:, jt[r]] + 0.0
    return H, log_h


def baseline_cumhaz(fit, times, max_draws: int | None = None) -> np.ndarray:
    """H0 per draw, stratum and time for a Weibull or piecewise-exponential fit: (draws, strata, times)."""
    from ..errors import SpecError

    post = fit.idata["posterior"]
    if "frailty" in post:
        raise SpecError("absolute effects are not available for fits with a frailty: their baseline hazard is "
                        "conditional on the cluster effects")
    if "tv_log_hr" in post:
        raise SpecError("absolute effects need proportional hazards; this fit has a time-varying effect "
                        "(fit without tv= for absolute effects)")
    times = np.atleast_1d(np.asarray(times, float))
    info = fit.model["baseline"]

    def draws(name):
        da = post[name]
        x = da.values.reshape((-1,) + da.shape[2:])
        if max_draws is not None and max_draws < len(x):
            x = x[np.linspace(0, len(x) - 1, max_draws).round().astype(int)]
        return x

    if fit.model["family"] == "WeibullPH":
        a, k = draws("log_scale"), draws("shape")  # (D, S)
        with np.errstate(divide="ignore"):
            lt = np.log(times / info["t_ref"])
        return np.exp(a[..., None] + k[..., None] * lt)
    return _pwe_H(draws("log_hazard"), np.asarray(info["cuts"], float), times)
