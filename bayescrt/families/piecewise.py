"""The piecewise-exponential proportional-hazards family, with a random-walk prior on the log baseline hazard.

Cut points ``0 = c_0 < c_1 < ... < c_J`` (the last interval is open), log
baseline hazard ``a_sj`` per stratum and interval with a random-walk prior
(first order: ``a_j - a_{j-1} ~ Normal(0, sigma)``; second order: the first
difference ~ Normal(0, 1), then differences of differences ~ Normal(0, sigma)),
``sigma ~ HalfNormal(0.5)`` and the first interval's level
``Normal(log(events / exposure), 2)``. The walk is centred when there are at
least 6 events per interval and stratum on average, and non-centred otherwise:
``d`` events pin an interval's log hazard to about ``1 / sqrt(d)``, and from
``d = 6`` (0.41) that is tighter than the walk's own steps (``sigma`` has prior
mean 0.4), where the non-centred form turns into a funnel in ``sigma``. A
baseline hazard that is nearly flat pulls ``sigma`` towards 0, a funnel for
the centred form instead; the fit's diagnostics then fail and say so (fewer
intervals, or ``cuts`` where the hazard changes, help). The cumulative hazard at any time is
``C[j(t)] + exp(a_j(t)) (t - c_j(t))`` with ``C`` the cumulative sum over whole
intervals, so each row needs two gathers: O(N + J) per gradient, never a
person-period expansion (memory does not grow with J x N).

An optional time-varying effect of one 0/1 covariate (``tv=`` column) gives
it its own log-HR per interval, ``b_j ~ Normal(0, 1)`` each: the
proportional-hazards check of that covariate (under PH the ``b_j`` agree).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import validation
from ..data import SurvivalData
from ..errors import SpecError
from .common import frailty
from .fused import exposure as fused_exposure
from .fused import piecewise_loglik as fused_piecewise
from .common import precondition as _precondition
from .parametric import ParametricPH, coefficients, default_cuts, row_data

RW_ORDERS = (1, 2)
CENTRED_EVENTS_PER_INTERVAL = 6  # 1 / sqrt(6) = 0.41 ~ E[sigma] = 0.5 sqrt(2 / pi) = 0.40


class PiecewiseExponentialPH(ParametricPH):
    """Bayesian piecewise-exponential PH model with a random-walk prior on the log baseline hazard.

    ``cuts``: interior cut points (time units of the data); by default ``n_intervals``
    intervals at quantiles of the event times. ``rw_order``: 1 or 2. ``tv``: a 0/1
    covariate given its own log-HR per interval (a proportional-hazards check; its
    row in ``hazard_ratios()`` is then the mean over intervals and ``fit.idata.posterior.tv_log_hr``
    holds the per-interval effects).
    """

    family = "PiecewiseExponentialPH"
    hierarchical = True
    fixed_priors = None  # the random walk's levels have a prior with its own SD: no closed form per draw
    other_vars = ("rw_sd", "tv_log_hr")
    compiled_totals = True  # loglik_totals, but for a time-varying effect
    baseline_vars = ("log_hazard",)

    def __init__(self, cuts=None, n_intervals: int = 8, rw_order: int = 1, tv: str | None = None, **kw):
        super().__init__(**kw)
        if isinstance(rw_order, (bool, np.bool_)) or not isinstance(rw_order, (int, np.integer)) \
                or rw_order not in RW_ORDERS:
            raise SpecError(f"rw_order={rw_order!r}: choose 1 (first-order random walk) or 2 (second order)")
        rw_order = int(rw_order)
        if cuts is not None:
            listed = isinstance(cuts, (list, tuple, np.ndarray, pd.Series)) and all(validation.is_number(v) for v in cuts)
            c = np.asarray(cuts) if listed else None
            if c is None or c.ndim != 1 or len(c) == 0 or c.dtype.kind not in "iuf" \
                    or not np.all(np.isfinite(c.astype(float))) or np.any(c <= 0) or np.any(np.diff(c) <= 0):
                raise SpecError(f"cuts={cuts!r}: give interior cut points as a list of numbers, positive and strictly "
                                "increasing, e.g. [1, 2, 5]")
            cuts = [float(v) for v in c]
        n_intervals = validation.integer("n_intervals", n_intervals, low=1)
        self.cuts, self.n_intervals, self.rw_order, self.tv = cuts, n_intervals, rw_order, tv

    def __repr__(self) -> str:
        return (f"PiecewiseExponentialPH(cuts={self.cuts!r}, n_intervals={self.n_intervals}, "
                f"rw_order={self.rw_order}, tv={self.tv!r})")

    def _build(self, data, priors, hierarchy):
        cuts = np.asarray(self.cuts, float) if self.cuts is not None else default_cuts(data, self.n_intervals)
        if len(cuts) and cuts.max() >= data.time.max():
            raise SpecError(f"cuts: the last cut {cuts.max():g} is not below the longest follow-up "
                            f"{data.time.max():g}; drop the cut points beyond the data")
        tv = None
        if self.tv is not None:
            tv = data.indicator_column(self.tv)
            if tv is None:
                raise SpecError(f"tv={self.tv!r} must be one of the covariates and coded 0/1 "
                                f"(covariates: {sorted(set(data.sources))})")
        model, info = build_pwe(data, priors, cuts, rw_order=self.rw_order, tv=tv,
                                frailty_prior=self.frailty_prior, centered=self.centered)
        info["tv_index"] = tv
        info["tv"] = self.tv
        return model, info

    def _text(self, info):
        return (f"piecewise-exponential proportional hazards, {len(info['cuts']) + 1} intervals, random walk of "
                f"order {self.rw_order} on the log baseline hazard"
                + (f", time-varying effect of {self.tv!r}" if info.get("tv_index") is not None else ""))

    @classmethod
    def _row_hazard(cls, post, data, info, tv):
        return _pwe_cumhaz_rows(post, data, info, tv)

    @classmethod
    def pointwise_loglik(cls, post, data, info, hierarchy=None, into=None):
        """Per-row log-likelihood for every draw (draws, n), rows in the data's sorted order (or into
        ``into = (out, positions)``, as the base class); without a time-varying effect by
        :func:`.fused.piecewise_rows` (the base class's numpy, without its temporaries)."""
        if info.get("tv_index") is not None:
            return super().pointwise_loglik(post, data, info, hierarchy, into)
        from .fused import by_draws, piecewise_rows

        cuts = np.asarray(info["cuts"], float)
        a = np.ascontiguousarray(post["log_hazard"], dtype=float)  # (draws, S, J)
        n_draws, S, J = a.shape
        _, rates, whole = _pwe_tables(a, cuts)
        pred, out, pos = cls._kernel_inputs(post, data, into)
        cell, t_into, cell_e, into_e = _cells(data, cuts)
        if cell_e is None:
            cell_e, into_e = np.zeros(0, np.int64), np.zeros(0)
        w = np.zeros(0) if data.weights is None else np.asarray(data.weights, float)
        a, rates, whole = (np.ascontiguousarray(v.reshape(n_draws, S * J)) for v in (a, rates, whole))
        dd = data.event.astype(float)
        B, XT, ca, T, has_a = pred
        by_draws(lambda i, j: piecewise_rows(B[i:j], XT, ca, T[i:j], has_a, a[i:j], rates[i:j], whole[i:j], cell,
                                             t_into, cell_e, into_e, data.entry is not None, dd, w,
                                             data.weights is not None, pos, out[i:j]), n_draws, data.n)
        return out

    @classmethod
    def loglik_totals(cls, post, data, info, hierarchy=None) -> np.ndarray:
        """``pointwise_loglik(post, data, info).sum(axis=1)`` without a draws x rows array: each row's
        ``exp(eta)`` summed per stratum and interval (and weighted by the time spent in it) by
        :func:`.fused.cell_sums`, those sums then weighed by each draw's hazards; the events' terms from per-cell
        event counts. Not for a time-varying effect (``info["tv_index"]``), whose rows have two baselines."""
        if info.get("tv_index") is not None:
            raise ValueError("loglik_totals: a time-varying effect needs pointwise_loglik")
        from .fused import cell_sums

        cuts = np.asarray(info["cuts"], float)
        a = np.asarray(post["log_hazard"], float)  # (draws, S, J)
        beta = np.asarray(post["log_hr"], float)
        n_draws, S, J = a.shape
        _, rates, whole = _pwe_tables(a, cuts)
        cell, into, cell_e, into_e = _cells(data, cuts)
        wd = data.event * (1.0 if data.weights is None else data.weights)
        entry = None if cell_e is None else (cell_e, into_e)
        frailty = (data.cluster, post["frailty"]) if data.cluster is not None and "frailty" in post else None
        Bs, Cs, Be, Ce, lin = cell_sums(beta, data.X, beta @ data.center, cell, into, S * J, wd,
                                        weights=data.weights, entry=entry, frailty=frailty)
        rates, whole = rates.reshape(n_draws, -1), whole.reshape(n_draws, -1)
        exposure = np.sum(whole * Bs + rates * Cs, axis=1)
        if entry is not None:
            exposure -= np.sum(whole * Be + rates * Ce, axis=1)
        events = a.reshape(n_draws, -1) @ np.bincount(cell, weights=wd, minlength=S * J)
        return events + lin - exposure

    @classmethod
    def _cumhaz(cls, post, info, times):
        return _pwe_H(post["log_hazard"], np.asarray(info["cuts"], float), times)

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



def _cells(data: SurvivalData, cuts: np.ndarray) -> tuple:
    """``(cell, into, cell_e, into_e)``: each sorted row's cell (stratum x interval, stratum-major) at its time and the
    time it spent in that interval, and the same at its entry (``None`` twice without delayed entry)."""
    edges, J = np.concatenate([[0.0], cuts]), len(cuts) + 1
    jt = _interval_index(data.time, cuts)
    cell, into = np.asarray(data.strata * J + jt, np.int64), data.time - edges[jt]
    if data.entry is None:
        return cell, into, None, None
    je = _interval_index(data.entry, cuts)
    return cell, into, np.asarray(data.strata * J + je, np.int64), data.entry - edges[je]


def _interval_index(t, cuts):
    """Interval of each time: j with c_j <= t < c_{j+1} (cuts are the interior points)."""
    return np.searchsorted(cuts, t, side="right")


def build_pwe(data: SurvivalData, priors: list[dict], cuts: np.ndarray, *, rw_order: int = 1, tv: int | None = None,
              frailty_prior=None, centered=False, precondition=True, fused=True):
    """The piecewise-exponential model; ``fused=False`` builds the exposure sum as a pytensor graph, the twin
    that ``tests/test_fused_parametric.py`` checks :func:`bayescrt.families.fused.exposure` against."""
    import pymc as pm
    import pytensor.tensor as pt

    m, s_, zpriors, _ = _precondition(data, priors, enabled=precondition)
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
        wd = data.event * (1.0 if data.weights is None else data.weights)
        beta_std, log_hr, per_cov = coefficients(data, zpriors, m, s_, pm, pt, design=not fused,
                                                 extra={"event_sum": data.standardised().T @ wd} if fused else None)
        je_np = None if data.entry is None else _interval_index(data.entry, cuts)
        by_cells = fused and tv is None  # the likelihood by piecewise_cells: each row's cell, no gathers in the graph
        cell, t_into, cell_e, into_e = _cells(data, cuts)
        rows = row_data(data, {"time_into_interval": t_into,  # time since the interval's start
                            "entry_into_interval": into_e,
                            "tv_covariate": None if tv is None else data.X[:, tv].astype(float),
                            "log_crude_rate": np.log(rate0)},
                     {"interval_code": None if by_cells else jt, "entry_interval_code": None if by_cells else je_np,
                      "cell_code": cell if by_cells else None, "entry_cell_code": cell_e if by_cells else None},
                     X=data.standardised() if fused else None)
        sigma = pm.HalfNormal("rw_sd", 0.5)
        # well-informed intervals: centred walk (see _rw)
        rw_centred = data.n_events / (S * J) >= CENTRED_EVENTS_PER_INTERVAL
        a = _rw("log_hazard", J, rw_order, sigma, rows["log_crude_rate"], 2.0, pm, pt, dims=(S,),
                centered=rw_centred)
        a = pm.Deterministic("log_hazard", a, dims=("stratum", "interval"))
        u = None if data.cluster is None else frailty(rows["cluster_code"], frailty_prior, centered, pm)
        st, jt, je = rows["stratum_code"], rows["interval_code"], rows["entry_interval_code"]
        into, into_e = rows["time_into_interval"], rows["entry_into_interval"]
        width = pm.Data("interval_width", width)

        def at_starts(rates):  # each interval's cumulative hazard at its start, per stratum
            return pt.concatenate([pt.zeros((S, 1)), pt.cumsum(rates[:, :-1] * width, axis=1)], axis=1)

        if tv is None:  # per-stratum cumulative hazard tables
            rates = pt.exp(a)
            whole = at_starts(rates)
        if by_cells:  # the tables flat, to the kernel; the events' covariate sums below
            loglik = fused_piecewise(beta_std, rows["XT"], u, a.reshape((S * J,)), whole.reshape((S * J,)),
                                     rates.reshape((S * J,)),
                                     {"cell": rows["cell_code"], "into": into, "entry_cell": rows["entry_cell_code"],
                                      "entry_into": into_e, "event": rows["event"], "weight": rows["weight"]})
        elif tv is None:  # the tables gathered per row
            H = whole[st, jt] + rates[st, jt] * into
            if data.entry is not None:
                H = H - (whole[st, je] + rates[st, je] * into_e)
            log_h0 = a[st, jt]
        else:
            xb = rows["tv_covariate"]
            # one log-HR per interval, each Normal(0, 1) on its own (no smoothing across intervals: the check
            # should not pull the effects together, and a shared SD would make a funnel when they are equal)
            b = pm.Normal("tv_log_hr", 0.0, 1.0, dims="interval")
            # rows with the covariate at 1 have log hazard a + b per interval, the others a
            rates0, rates1 = pt.exp(a), pt.exp(a + b[None, :])
            whole0, whole1 = at_starts(rates0), at_starts(rates1)
            one = xb  # 0/1

            def H_at(j, since):
                h0 = whole0[st, j] + rates0[st, j] * since
                h1 = whole1[st, j] + rates1[st, j] * since
                return one * h1 + (1 - one) * h0

            H = H_at(jt, into)
            if data.entry is not None:
                H = H - H_at(je, into_e)
            log_h0 = a[st, jt] + b[jt] * xb
            log_hr = pt.set_subtensor(log_hr[tv], b.mean())  # reported: the mean over intervals
        pm.Deterministic("log_hr", log_hr, dims="covariate")
        d, w = rows["event"], rows["weight"]
        wd_ = d if w is None else d * w
        if by_cells:  # the kernel's value, and sum w d eta from the event sums of the covariates
            loglik = loglik + (per_cov["event_sum"] * beta_std).sum()
            if u is not None:
                loglik = loglik + (wd_ * u).sum()
        elif fused:  # sum w d eta from the event sums of the covariates; the O(N p) rest in the kernel
            wH = H if w is None else H * w
            loglik = (wd_ * log_h0).sum() + (per_cov["event_sum"] * beta_std * mask).sum()
            if u is not None:
                loglik = loglik + (wd_ * u).sum()
            loglik = loglik - fused_exposure(beta_std * mask, rows["XT"], u, wH)
        else:
            wH = H if w is None else H * w
            eta = (per_cov["X"] * (beta_std * mask)).sum(axis=1) + (0.0 if u is None else u)
            loglik = (wd_ * (log_h0 + eta) - wH * pt.exp(eta)).sum()
        pm.Potential("loglik", loglik)
    return model, {"cuts": cuts.tolist(), "rw_order": rw_order,
                   "rw_parameterisation": "centred" if rw_centred else "non-centred"}


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

