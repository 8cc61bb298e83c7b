"""The Cox partial likelihood and its maximum, O(N) per evaluation.

The rows are sorted once (by stratum, time, events first at a tie; see
:mod:`bayescrt.data`). With ``eta = X @ beta`` and ``r = w * exp(eta - max(eta))``
the reverse cumulative sum ``R[k] = sum_{j >= k} r_j`` gives every risk-set
sum by indexing: the risk set of a tie group that starts at row ``g`` of a
stratum that ends before row ``e`` is ``R[g] - R[e]``. Delayed entry removes
the subjects that have not yet entered, found the same way in a second order
sorted by entry time; where those would be most of the sum (early event times
in a cohort of late entrants) the risk set is instead built forwards, as the
subjects entered by then minus those already gone, so that no event's risk set
is the small difference of two large sums. A few cumulative sums and gathers:
O(N) for the value and, by reverse-mode differentiation, for the gradient.
No N x N matrix and no person-time rows are ever formed.

Ties follow Efron (default) or Breslow. For a tie group with ``d`` events whose
summed risk is ``T`` and whose risk set sums to ``S``, event number ``l`` (0..d-1)
contributes ``w_i eta_i - c * log(S - l/d * T)``; Breslow is the case ``l = 0``
for every event. With case weights, ``c`` is the event's own weight under
Breslow and the mean weight of the tied events under Efron, as in R's
``survival::coxph`` and lifelines.

The same function computes the per-event terms for one parameter vector
(inside the PyMC model, with pytensor) or for a batch of posterior draws
(afterwards, with numpy): ``eta`` may have leading batch dimensions.
``mle`` is the frequentist Cox fit on the same risk sets (it preconditions the
samplers of every family).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import SurvivalData

TIES = ("efron", "breslow")
# the per-event fields of RiskSets, integer positions and floating-point values
EVENT_INDEX = ("event_rows", "group_start", "group_events_end", "stratum_end", "stratum_start", "entry_start")
EVENT_VALUES = ("tie_fraction", "event_weight", "log_weight")


@dataclass(frozen=True)
class RiskSets:
    """Index arrays describing the risk sets of one sorted data set."""

    event_rows: np.ndarray  # sorted positions of the events
    group_start: np.ndarray  # first row of each event's tie group
    group_events_end: np.ndarray  # one past the last event of the tie group
    stratum_end: np.ndarray  # one past the last row of the event's stratum
    stratum_start: np.ndarray  # first row of the event's stratum
    tie_fraction: np.ndarray  # l / d (Efron) or 0 (Breslow)
    event_weight: np.ndarray  # w_i
    log_weight: np.ndarray  # c: multiplier of the log risk-set term
    weights: np.ndarray | None  # case weights of all rows, or None
    entry_order: np.ndarray | None  # rows sorted by (stratum, entry)
    entry_start: np.ndarray | None  # first position in entry order with entry >= event time

    @classmethod
    def from_data(cls, data: SurvivalData, ties: str = "efron") -> "RiskSets":
        if ties not in TIES:
            raise ValueError(f"ties={ties!r} is not valid; choose one of {TIES}")
        ev = np.flatnonzero(data.event)
        g = data.risk_set_starts()[ev]
        # events come first in their tie group, so they are rows g .. g+d-1
        d = np.bincount(g, minlength=data.n)[g]
        rank = ev - g
        w = data.weights
        w_ev = np.ones(len(ev)) if w is None else w[ev]
        if ties == "efron":
            frac = rank / d
            if w is None:
                c = np.ones(len(ev))
            else:
                c = (np.bincount(g, weights=w_ev, minlength=data.n) / np.bincount(g, minlength=data.n).clip(1))[g]
        else:
            frac = np.zeros(len(ev))
            c = w_ev
        entry_order = entry_start = None
        if data.entry is not None:
            entry_order = np.lexsort((data.entry, data.strata))
            e_sorted = data.entry[entry_order]
            s_sorted = data.strata[entry_order]
            # position of the first row of the same stratum with entry >= event time
            entry_start = np.empty(len(ev), dtype=np.int64)
            bounds = np.searchsorted(s_sorted, np.arange(data.n_strata + 1))
            for s in range(data.n_strata):
                lo, hi = bounds[s], bounds[s + 1]
                mine = data.strata[ev] == s
                entry_start[mine] = lo + np.searchsorted(e_sorted[lo:hi], data.time[ev][mine], side="left")
        return cls(
            event_rows=ev,
            group_start=g,
            group_events_end=g + d,
            stratum_end=data.stratum_ends()[ev],
            stratum_start=np.searchsorted(data.strata, data.strata[ev], side="left"),
            tie_fraction=frac,
            event_weight=w_ev,
            log_weight=c,
            weights=None if w is None else np.asarray(w, dtype=float),
            entry_order=entry_order,
            entry_start=entry_start,
        )


def _cumsums(x, xp):
    """Reverse and forward cumulative sums along the last axis, both padded to length n + 1.

    ``R[k] = sum_{j >= k} x[j]`` (so ``R[n] = 0``) and ``F[k] = sum_{j < k} x[j]`` (so ``F[0] = 0``).
    """
    zero = xp.zeros_like(x[..., :1])
    R = xp.concatenate([xp.cumsum(x[..., ::-1], axis=-1)[..., ::-1], zero], axis=-1)
    F = xp.concatenate([zero, xp.cumsum(x, axis=-1)], axis=-1)
    return R, F


def risk_set_sums(r, rs: RiskSets, xp=np):
    """Per-event risk-set sums ``S - l/d T`` of the row values ``r`` (shape ``(..., n)``, sorted order).

    Rows at risk at an event time ``t`` are those of its stratum with time >= t and, under
    delayed entry, entry < t. Backwards that is (time >= t) minus (entry >= t); forwards it
    is (entry < t) minus (time < t). The backward form is used unless the not-yet-entered
    rows carry more than half the backward sum, where it would lose digits to cancellation.
    """
    R, F = _cumsums(r, xp)
    g, gd, end = rs.group_start, rs.group_events_end, rs.stratum_end
    tied = R[..., g] - R[..., gd]  # T: the event's tie group
    # S - l/d T, written as two non-negative parts to avoid cancellation
    risk = (1.0 - rs.tie_fraction) * tied + (R[..., gd] - R[..., end])
    if rs.entry_order is None:
        return risk
    Re, Fe = _cumsums(r[..., rs.entry_order], xp)
    # strata occupy the same positions in time and entry order, so stratum bounds are shared
    later = Re[..., rs.entry_start] - Re[..., end]  # entry >= t: not yet at risk
    forward = (Fe[..., rs.entry_start] - Fe[..., rs.stratum_start]) - (F[..., g] - F[..., rs.stratum_start])
    return xp.where(later < 0.5 * (R[..., g] - R[..., end]), risk - later, forward - rs.tie_fraction * tied)


def partial_loglik_terms(eta, rs: RiskSets, xp=np, sums=risk_set_sums):
    """Partial log-likelihood contribution of each event (last axis: events).

    ``eta`` has shape ``(..., n)`` in sorted row order; ``xp`` is ``numpy`` or
    ``pytensor.tensor``. The sum over the last axis is the log partial
    likelihood. ``sums(r, rs, xp)``: the per-event risk-set sums of the row
    values ``r`` (linear in ``r``); another one changes who is at risk and
    with what weight (the subdistribution model's, :mod:`.finegray`).
    """
    m = xp.max(eta, axis=-1, keepdims=True)
    r = xp.exp(eta - m)
    if rs.weights is not None:
        r = r * rs.weights
    return rs.event_weight * eta[..., rs.event_rows] - rs.log_weight * (xp.log(sums(r, rs, xp)) + m)


def mle(data: SurvivalData, ties: str = "efron", max_iter: int = 50, tol: float = 1e-10,
        risk_sets: RiskSets | None = None, sums=risk_set_sums) -> dict:
    """Maximum partial-likelihood estimate by Newton-Raphson with exact gradient and Hessian.

    The frequentist Cox fit, from the same sorted risk sets as the Bayesian
    model: O(N p^2) time and O(N) memory per iteration (the Hessian is built
    one covariate pair at a time). Returns ``coef`` and ``se`` (from the
    observed information) per covariate in original units, ``loglik``,
    ``iterations`` and ``converged``. Used to precondition the sampler, for
    calibration and for frequentist comparisons; validated against lifelines
    and statsmodels in the tests. ``sums``: the risk-set sums, as in
    :func:`partial_loglik_terms` (every derivative below is a sum of it, being linear).
    """
    rs = risk_sets if risk_sets is not None else RiskSets.from_data(data, ties)
    X = data.X - data.center
    n, p = X.shape
    w = np.ones(n) if rs.weights is None else rs.weights
    c = rs.log_weight
    ev = rs.event_rows

    def risk(a):
        return sums(a, rs, np)

    compiled = sums is risk_set_sums and rs.entry_order is None
    from .fused import linear_predictors, newton_terms

    X = np.ascontiguousarray(X, dtype=float)
    if compiled:  # one pass over the rows for all three (fused.newton_terms): 55 numpy passes for 9 covariates
        fields = [np.ascontiguousarray(a) for a in (ev, rs.group_start, rs.group_events_end, rs.stratum_end,
                                                     rs.tie_fraction, rs.event_weight, c)]

    # each stratum shifted by its own maximum (its rows are contiguous): one shift for all would underflow a
    # stratum whose linear predictor lies far below another's, and its risk sums with it
    codes = np.zeros(n, np.int64) if data.strata is None else np.asarray(data.strata, np.int64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1])
    block = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))

    def derivs(beta):
        # not BLAS: at N = 1,000,000 its threads spin after the product and take the cores from what follows
        eta = linear_predictors(np.asarray(beta, float)[None, :], X, np.zeros(1), np.empty((1, n)))[0]
        # in place, and one shift without strata: each N-length temporary is a pass over memory (6 of them took
        # 0.5 s of a fit at N = 1,000,000)
        m = eta.max() if len(starts) == 1 else np.maximum.reduceat(eta, starts)[block]
        r = np.subtract(eta, m)
        np.exp(r, out=r)
        if rs.weights is not None:
            r *= w
        m_ev = m if len(starts) == 1 else m[ev]
        if compiled:
            log_s0, grad, info = newton_terms(X, r, eta, *fields)
            return float(np.sum(rs.event_weight * eta[ev]) - log_s0 - np.sum(c * m_ev)), grad, info
        s0 = risk(r)
        ll = float(np.sum(rs.event_weight * eta[ev] - c * (np.log(s0) + m_ev)))
        mean = (risk(r * X.T) / s0).T
        grad = (rs.event_weight[:, None] * X[ev]).sum(0) - (c[:, None] * mean).sum(0)
        info = np.empty((p, p))
        for j in range(p):
            for k in range(j, p):
                s2 = risk(r * X[:, j] * X[:, k]) / s0
                info[j, k] = info[k, j] = np.sum(c * (s2 - mean[:, j] * mean[:, k]))
        return ll, grad, info

    def better(v):
        """A finite log-likelihood no lower than the current one, to its rounding: a sum over the events is known to
        about 1e-11 of itself (at N = 1,000,000, -6e6 to about 1e-6), so a fixed 1e-12 could not tell a step near the
        maximum from a worse one, and halving it stalled."""
        return bool(np.isfinite(v) and v >= ll - 1e-11 * max(1.0, abs(ll)))

    beta = np.zeros(p)
    ll, grad, info = derivs(beta)
    converged = False
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for it in range(1, max_iter + 1):
            try:
                step = np.linalg.solve(info, grad)
            except np.linalg.LinAlgError:
                break
            # Newton decrement: half of it is the predicted gain in log-likelihood. A finite
            # maximum is then one quadratic step away, so the next step is ~1e-10 SE or less;
            # under separation the likelihood only flattens and the step stays ~1 SD of x
            # while the SE explodes (the rule of R's coxph, on the SE scale).
            if grad @ step / 2 < tol:
                se_now = np.sqrt(np.abs(np.diag(np.linalg.inv(info))))
                final = derivs(beta + step)
                if better(final[0]):
                    beta, (ll, grad, info) = beta + step, final
                    step = np.linalg.solve(info, grad)
                infinite = (np.abs(step) > 1e-7 * se_now) & (np.abs(step) > 1e-5 * np.abs(beta))
                converged = bool(np.all(np.isfinite(beta)) and not infinite.any())
                break
            t = 1.0
            new = derivs(beta + step)
            while not better(new[0]) and t >= 1e-8:
                t /= 2
                new = derivs(beta + t * step)
            if not better(new[0]):  # no step length improves: stop where we are
                break
            beta = beta + t * step
            ll, grad, info = new
        try:
            se = np.sqrt(np.diag(np.linalg.inv(info)))
        except np.linalg.LinAlgError:
            se, converged = np.full(p, np.nan), False
    # a maximum has finite standard errors and log-likelihood; under separation the information is singular, or so
    # nearly that the step test above (against a NaN or 1e7 SE) cannot see it: an SE above 1,000 per SD of its
    # covariate (a hazard ratio per SD known to within a factor e^2000) is not an estimate
    with np.errstate(invalid="ignore"):
        finite = np.all(np.isfinite(se)) and np.all(se * data.scale < 1e3)
    converged = bool(converged and finite and np.isfinite(ll))
    return {"coef": dict(zip(data.covariates, beta)), "se": dict(zip(data.covariates, se)), "loglik": ll,
            "iterations": it, "converged": converged}
