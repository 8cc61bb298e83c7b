"""The Cox partial likelihood as one fused operation: value and gradient in a few passes over the rows.

:func:`partial_loglik_terms` writes the partial likelihood as cumulative sums
and gathers; differentiated by pytensor, that graph is some forty operations and
as many N-length temporaries. :class:`CoxPartialLoglik` takes ``beta``, the
covariates by column and an optional per-row offset (frailty, study terms) and
returns the log partial likelihood at ``eta = X @ beta + offset`` with its
gradients, which pytensor's reverse mode reads instead of differentiating the
passes. One numba function computes them (:func:`value_and_grad_beta`):

1. ``eta``, then ``r = w * exp(eta - m)`` (``m`` the maximum of ``eta`` in each
   stratum) and its reverse (and, under delayed entry, forward) cumulative sums:
   the risk-set sums of every event, exactly as
   :func:`~bayescrt.families.partial_likelihood.risk_set_sums` forms them (the same
   choice between the backward and forward forms);
2. the log partial likelihood, and ``c_k / S_k`` per event added onto the rows
   of its risk set as the ends of intervals (a difference array);
3. one prefix sum of that array: ``d logp / d eta_i = w_i [event] - r_i a_i``,
   and ``X.T @ (d logp / d eta)``.

O(N + events) time, no N x N matrix, no person-time rows.

The full likelihoods (Weibull, exponential, piecewise exponential) share one O(N p) term,
``sum_i v_i exp(eta_i)`` with ``v_i = w_i [H0(t_i) - H0(entry_i)]`` the baseline's share, which
their graphs compute per row from a handful of parameters: :class:`ExposureSum`
(:func:`exposure`) takes ``beta``, the covariates by column, an optional offset and ``v``, and
returns the sum with its gradients in two passes over the covariates (:func:`exposure_sum`);
each family's ``fused=False`` graph is its twin (``tests/test_fused_parametric.py``).

The Laplace sampler evaluates thousands of proposals at once. :func:`walk_terms` does it from the
coefficients with no draws x rows array: :func:`walk_event_terms` walks the rows once, last to first, a
block of 32 rows for 128 draws at a time (each row of ``X`` read once for the 128; the linear predictors
four covariates a pass, two rows at a time), forming each draw's linear predictor, exponential and risk-set
sums in cache, each stratum's sums scaled by the largest
linear predictor walked so far in it; without kept terms a tie group takes one logarithm of its sums'
product. Under delayed entry :func:`partial_loglik_events` forms the linear predictors a few draws at a
time and runs :func:`event_terms` on them. Both split the draws between threads (the kernels hold no GIL)
and give each draw's numbers alone, whatever the split.

The kernel is compiled by numba once per machine and cached on disk (numba's
``cache=True``: ``__pycache__`` beside this file, or ``NUMBA_CACHE_DIR``); the
graph a sampler compiles around it is a few operations. Under nutpie's numba
backend the operation is inlined through its numba implementation; under
PyMC's own sampler it runs through :meth:`CoxPartialLoglik.perform`, calling
the same compiled kernel. ``tests/test_fused.py`` checks value (1e-12 of its
size) and gradient (1e-10 of its largest entry) against the pytensor graph, and
the gradient against finite differences, for every combination of ties, strata,
weights, delayed entry and offset.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit

# part of pytensor's disk-cache key of every compiled log density that holds the kernel
SOURCE_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)


# exp(x) for x <= 0 as 2**k * exp(f), |f| <= ln(2)/2, with a degree-13 Taylor polynomial (truncation
# below 1e-17): within 2.3e-16 of libm's exp, NaN stays NaN, and the loop vectorises where a call to
# libm's exp does not (libm's exp is most of a gradient's time: 9 of 13 ns per row at N = 8,880)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00


_EXP_BLOCK = 512  # the rows of one pass of the polynomial, then one of the scaling (a small buffer, no N-length one)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def exp_nonpositive(x, out):
    """``out[i] = exp(x[i])`` (below -700 taken as -700: 1e-304 instead of a smaller number; above 709, libm's exp:
    the float's limit, then infinite, +inf included; NaN stays NaN). Vectorised for the rest: ``2**k`` of ``x``
    above 709.4 overflowed its exponent field, into wrong finite numbers of either sign, so those few are counted
    in the vectorised loop and redone one by one before the block is written (``out`` may be ``x``)."""
    n = x.shape[0]
    bits = np.empty(_EXP_BLOCK, np.int64)
    scale = bits.view(np.float64)
    poly = np.empty(_EXP_BLOCK)
    for a in range(0, n, _EXP_BLOCK):
        # a slice per block, indexed by the loop's own counter (an index ``a + j`` is not known to be non-negative,
        # and its wrap-around check kept the loop from vectorising), and the polynomial into a buffer of its own:
        # a loop reading ``x`` and writing ``out`` runs one element at a time when they overlap (``out`` is ``x``)
        xs = x[a:min(a + _EXP_BLOCK, n)]
        ys = out[a:min(a + _EXP_BLOCK, n)]
        over = 0
        for j in range(xs.shape[0]):
            xi = -700.0 if xs[j] < -700.0 else (709.0 if xs[j] > 709.0 else xs[j])  # NaN passes
            over += 1 if xs[j] > 709.0 else 0
            k = np.floor(xi * _INV_LN2 + 0.5)
            f = (xi - k * _LN2_HI) - k * _LN2_LO
            p = 1.0 / 6227020800.0
            p = p * f + 1.0 / 479001600.0
            p = p * f + 1.0 / 39916800.0
            p = p * f + 1.0 / 3628800.0
            p = p * f + 1.0 / 362880.0
            p = p * f + 1.0 / 40320.0
            p = p * f + 1.0 / 5040.0
            p = p * f + 1.0 / 720.0
            p = p * f + 1.0 / 120.0
            p = p * f + 1.0 / 24.0
            p = p * f + 1.0 / 6.0
            p = p * f + 0.5
            p = p * f + 1.0
            poly[j] = p * f + 1.0
            bits[j] = (np.int64(k) + 1023) << 52 if xi == xi else 0  # 2**k as the bits of a float64
        if over:  # before ``ys`` is written: ``xs`` may be the same memory
            for j in range(xs.shape[0]):
                if xs[j] > 709.0:
                    poly[j] = np.exp(xs[j])
                    bits[j] = 1023 << 52  # 1.0
        for j in range(ys.shape[0]):
            ys[j] = poly[j] * scale[j]
    return out


# log(x) = e ln 2 + log(f) with x = 2**e f, f in [sqrt(1/2), sqrt(2)), and log(f) = 2 atanh(s), s = (f - 1) / (f + 1),
# |s| <= 0.172, by its series to s**23 (truncation below 1e-18 relative): within 2 ulp of libm's log on positive
# normal numbers, in a loop that vectorises (libm's log per event was a fifth of a draw's time at N = 1,000,000);
# anything else (zero, negative, subnormal, infinite, NaN) goes to libm's log
_SQRT2 = 1.4142135623730951
_MANTISSA = (1 << 52) - 1
_ONE_BITS = 1023 << 52
_TINY = 2.2250738585072014e-308
_HUGE = 1.7976931348623157e308


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def log_positive(x, out):
    """``out[i] = log(x[i])``, vectorised for positive normal ``x[i]`` (above), libm's log otherwise."""
    n = x.shape[0]
    raw = np.empty(_EXP_BLOCK, np.int64)
    raw_f = raw.view(np.float64)
    mant = np.empty(_EXP_BLOCK, np.int64)
    mant_f = mant.view(np.float64)
    expo = np.empty(_EXP_BLOCK)
    for a in range(0, n, _EXP_BLOCK):
        xs = x[a:min(a + _EXP_BLOCK, n)]  # a slice per block: see exp_nonpositive
        ys = out[a:min(a + _EXP_BLOCK, n)]
        m = xs.shape[0]
        for j in range(m):
            raw_f[j] = xs[j]
        for j in range(m):
            b = raw[j]
            expo[j] = ((b >> 52) & 0x7FF) - 1023
            mant[j] = (b & _MANTISSA) | _ONE_BITS
        for j in range(m):
            f = mant_f[j]
            e = expo[j]
            if f > _SQRT2:
                f *= 0.5
                e += 1.0
            s = (f - 1.0) / (f + 1.0)
            z = s * s
            p = 2.0 / 23.0
            p = p * z + 2.0 / 21.0
            p = p * z + 2.0 / 19.0
            p = p * z + 2.0 / 17.0
            p = p * z + 2.0 / 15.0
            p = p * z + 2.0 / 13.0
            p = p * z + 2.0 / 11.0
            p = p * z + 2.0 / 9.0
            p = p * z + 2.0 / 7.0
            p = p * z + 2.0 / 5.0
            p = p * z + 2.0 / 3.0
            p = p * z + 2.0
            ys[j] = e * _LN2_HI + (e * _LN2_LO + s * p)
        # libm's log where the series is not valid; searched first, as a loop over all rows with the call in a
        # branch is vectorised into a call per row
        odd = False
        for j in range(m):
            odd |= not (xs[j] >= _TINY and xs[j] <= _HUGE)
        if odd:
            for j in range(m):
                v = xs[j]
                if not (v >= _TINY and v <= _HUGE):
                    ys[j] = np.log(v)
    return out


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def linear_predictor(beta, XT, offset, has_offset):
    """``eta = X @ beta (+ offset)`` from the covariates stored by column (``XT``: covariates x rows).

    Column by column, so each pass is a contiguous multiply-add that vectorises; no BLAS (multi-threaded
    BLAS inside parallel chains oversubscribes the cores)."""
    p, n = XT.shape
    eta = np.empty(n)
    if has_offset:
        for i in range(n):
            eta[i] = offset[i]
    else:
        for i in range(n):
            eta[i] = 0.0
    for j in range(p):
        bj = beta[j]
        for i in range(n):
            eta[i] += bj * XT[j, i]
    return eta


@njit(cache=True, nogil=True, error_model="numpy")
def linear_predictors(B, X, shift, out):
    """``out[d] = X @ B[d] - shift[d]`` for a batch of coefficient vectors ``B`` (draws x p), ``X`` rows x p.

    Each row of ``X`` is read once for the whole batch, and every sum is taken in the same order whatever thread
    runs it: the numbers do not depend on the machine's thread count, as a BLAS product split over its threads
    would (in the last bit), and no BLAS threads are left spinning beside the kernel's own."""
    k, p = B.shape
    for i in range(X.shape[0]):
        for d in range(k):
            s = 0.0
            for j in range(p):
                s += B[d, j] * X[i, j]
            out[d, i] = s - shift[d]
    return out


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def covariate_gradient(XT, grad_eta):
    """``X.T @ grad_eta``, one contiguous dot product per covariate."""
    p, n = XT.shape
    out = np.empty(p)
    for j in range(p):
        s = 0.0
        for i in range(n):
            s += XT[j, i] * grad_eta[i]
        out[j] = s
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def value_and_grad_beta(beta, XT, offset, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order, weighted, delayed,
                        has_offset):
    """``(logp, d logp / d beta, d logp / d eta)`` with ``eta = X @ beta + offset``: the whole likelihood in one call."""
    eta = linear_predictor(beta, XT, offset, has_offset)
    total, grad_eta = value_and_grad(eta, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order, weighted, delayed)
    return total, covariate_gradient(XT, grad_eta), grad_eta


@njit(cache=True, nogil=True, error_model="numpy")
def risk_sums(eta, g, gd, end, ss, es, frac, w, entry_order, weighted, delayed):
    """``(shift, r, risk, backward)``: ``r = w exp(eta - shift)`` and each event's risk-set sum (of ``r``).

    ``shift`` (per event) is the maximum of ``eta`` over the event's stratum; the rows of strata without events,
    which are in no risk set, have ``r = 0`` (a stratum without events after one with events, high above it, made
    the earlier one's risk sums differences of large numbers).

    ``risk[k] = S - l/d T`` as :func:`~.partial_likelihood.risk_set_sums` forms it; ``backward[k]`` says
    which form (time >= t minus not yet entered, or entered by t minus gone before t) was used.
    """
    n, n_ev = eta.shape[0], g.shape[0]
    work = _workspace(n, n_ev, delayed)
    _risk_sums_into(eta, g, gd, end, ss, es, frac, w, entry_order, weighted, delayed, *work)
    shift, r, _, _, _, _, risk, backward = work
    return shift, r, risk, backward


@njit(cache=True, nogil=True)
def _workspace(n, n_ev, delayed):
    """The buffers of :func:`_risk_sums_into`: allocated once for a batch of draws, not once per draw (a fresh
    N-length array is fresh pages from the system: at N = 1,000,000 their faults cost a third of a draw)."""
    m = n + 1 if delayed else 0
    return (np.empty(n_ev), np.empty(n), np.empty(n + 1), np.empty(m), np.empty(m), np.empty(m), np.empty(n_ev),
            np.empty(n_ev, np.bool_))


@njit(cache=True, nogil=True, error_model="numpy")
def _risk_sums_into(eta, g, gd, end, ss, es, frac, w, entry_order, weighted, delayed, shift, r, R, F, Fe, Re, risk,
                    backward):
    """:func:`risk_sums` into the buffers of :func:`_workspace`."""
    n = eta.shape[0]
    n_ev = g.shape[0]
    backward[:] = True
    # each stratum with events is shifted by its own maximum, so that its risk sums keep their digits beside other
    # strata far above it; the rows of strata without events are in no risk set: whatever the buffer held there
    # goes through the exponential and is set to 0 after it
    k = 0
    while k < n_ev:
        lo, hi = ss[k], end[k]
        ms = eta[lo]
        for i in range(lo + 1, hi):
            if eta[i] > ms:
                ms = eta[i]
        for i in range(lo, hi):
            r[i] = eta[i] - ms
        while k < n_ev and ss[k] == lo:
            shift[k] = ms
            k += 1
    exp_nonpositive(r, r)
    covered = 0  # the rows below are in a stratum with events, or zeroed
    k = 0
    while k < n_ev:
        lo, hi = ss[k], end[k]
        for i in range(covered, lo):
            r[i] = 0.0
        covered = hi
        while k < n_ev and ss[k] == lo:
            k += 1
    for i in range(covered, n):
        r[i] = 0.0
    if weighted:
        for i in range(n):
            r[i] *= w[i]
    # R[k] = sum_{j >= k} r_j over k's stratum only, started afresh at each stratum's end: as one reverse sum over
    # all rows, a stratum's risk sums were differences of numbers holding every later stratum's rows, and lost
    # their digits (to +inf) where a later stratum's sum dwarfed them. Each running sum in a register: ``R[i] =
    # R[i + 1] + r[i]`` waits on its own store every row, 6 times slower. The strata's rows occupy the same
    # positions in entry order, so the sums there (delayed entry) restart at the same places.
    R[n] = 0.0
    k = n_ev - 1
    while k >= 0:
        lo, hi = ss[k], end[k]
        acc = 0.0
        for i in range(hi - 1, lo - 1, -1):
            acc += r[i]
            R[i] = acc
        while k >= 0 and ss[k] == lo:
            k -= 1
    for k in range(n_ev):
        after = R[gd[k]] if gd[k] < end[k] else 0.0  # the stratum's rows after the tie group
        risk[k] = (1.0 - frac[k]) * (R[g[k]] - after) + after
    if delayed:
        # F[k] = sum_{j < k} r_j over k's stratum (F[k] for k in lo + 1 .. hi); Fe, Re the two in entry order
        k = 0
        while k < n_ev:
            lo, hi = ss[k], end[k]
            acc = 0.0
            acc_e = 0.0
            for i in range(lo, hi):
                acc += r[i]
                acc_e += r[entry_order[i]]
                F[i + 1] = acc
                Fe[i + 1] = acc_e
            acc = 0.0
            for i in range(hi - 1, lo - 1, -1):
                acc += r[entry_order[i]]
                Re[i] = acc
            while k < n_ev and ss[k] == lo:
                k += 1
        for k in range(n_ev):
            sk, ek, esk, gk = ss[k], end[k], es[k], g[k]
            later = Re[esk] if esk < ek else 0.0  # entry >= t: not yet at risk
            if later < 0.5 * R[gk]:
                risk[k] -= later
            else:
                backward[k] = False
                after = R[gd[k]] if gd[k] < ek else 0.0
                entered = Fe[esk] if esk > sk else 0.0  # entry < t
                gone = F[gk] if gk > sk else 0.0  # time < t
                risk[k] = entered - gone - frac[k] * (R[gk] - after)


@njit(cache=True, nogil=True, error_model="numpy")
def value_and_grad(eta, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order, weighted, delayed):
    """``(log partial likelihood, its gradient with respect to eta)`` for rows in sorted order.

    ``ev .. c`` are the per-event fields of :class:`~.partial_likelihood.RiskSets`
    (``es``: ``entry_start``, ignored unless ``delayed``); ``w`` the case weights
    (read when ``weighted``) and ``entry_order`` the rows in entry order (read when
    ``delayed``).
    """
    n = eta.shape[0]
    n_ev = ev.shape[0]
    grad = np.zeros(n)
    if n_ev == 0:
        return 0.0, grad
    shift, r, risk, backward = risk_sums(eta, g, gd, end, ss, es, frac, w, entry_order, weighted, delayed)
    De = np.zeros(n + 1 if delayed else 0)  # difference array in entry order
    Dt = grad  # difference array in time order, turned into the gradient in place (Dt[n] is never read)
    total = 0.0
    log_risk = log_positive(risk, np.empty(n_ev))
    for k in range(n_ev):
        gk, gdk, ek, f = g[k], gd[k], end[k], frac[k]
        total += ew[k] * eta[ev[k]] - c[k] * (log_risk[k] + shift[k])
        v = c[k] / risk[k]
        if backward[k]:
            # rows of the tie group weigh (1 - l/d), the rest of the stratum's later rows 1
            Dt[gk] += (1.0 - f) * v
            if gdk < n:
                Dt[gdk] += f * v
            if ek < n:
                Dt[ek] -= v
            if delayed:  # minus the rows that have not yet entered
                De[es[k]] -= v
                De[ek] += v
        else:
            # entered by t (entry order) minus gone before t (time order) minus l/d of the tie group
            sk = ss[k]
            De[sk] += v
            De[es[k]] -= v
            Dt[sk] -= v
            Dt[gk] += v - f * v
            if gdk < n:
                Dt[gdk] += f * v
    acc = 0.0
    for i in range(n):
        acc += Dt[i]
        grad[i] = -r[i] * acc
    if delayed:
        acc = 0.0
        for j in range(n):
            acc += De[j]
            grad[entry_order[j]] -= r[entry_order[j]] * acc
    for k in range(n_ev):
        grad[ev[k]] += ew[k]
    return total, grad


@njit(cache=True, nogil=True, error_model="numpy")
def event_terms(eta, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order, weighted, delayed, out, totals, shift, r, R,
                F, Fe, Re, risk, backward, log_risk):
    """Each event's partial log-likelihood term for a batch of linear predictors ``eta`` (draws x rows) into ``out``
    (draws x events; with no columns, the terms are not kept), and their sum per draw into ``totals``.

    ``shift .. backward`` are the buffers of :func:`_workspace`, ``log_risk`` one more of the events' length: given
    by the caller, so that a batch after the first reuses pages already mapped."""
    n_ev = ev.shape[0]
    keep = out.shape[1] == n_ev
    for d in range(eta.shape[0]):
        _risk_sums_into(eta[d], g, gd, end, ss, es, frac, w, entry_order, weighted, delayed, shift, r, R, F, Fe, Re,
                        risk, backward)
        log_positive(risk, log_risk)
        s = 0.0
        for k in range(n_ev):
            t = ew[k] * eta[d, ev[k]] - c[k] * (log_risk[k] + shift[k])
            s += t
            if keep:
                out[d, k] = t
        totals[d] = s


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def newton_terms(X, r, eta, ev, g, gd, end, frac, ew, c):
    """``(sum of c log S0, gradient, information)`` of the partial likelihood without delayed entry, in one pass.

    ``r = w exp(eta - shift)`` per row (sorted order), ``X`` the centred covariates (rows x p). The rows are walked
    from the last to the first with running sums of ``r``, ``r x`` and ``r x x'`` (upper triangle), reset where a
    stratum with events begins (from its end); a tie group's own rows are summed apart, so that each event's
    ``S - l/d T`` (Efron; Breslow: l/d = 0) is formed from two non-negative parts as
    :func:`~.partial_likelihood.risk_set_sums` forms it. The first return value is ``sum_k c_k log S0_k`` without the
    shift, the log-likelihood's risk-set part; the gradient and information are those of
    :func:`~.partial_likelihood.mle`. O(N p^2) time, O(p^2) memory beyond the inputs.
    """
    n, p = X.shape
    q = p * (p + 1) // 2
    acc = np.zeros(1 + p + q)  # r, r x, r x x' of the rows at risk so far (stratum-relative)
    grp = np.zeros(1 + p + q)  # the same over the current tie group's rows
    upper = np.zeros(1 + p + q)  # acc where the tie group's rows begin: the rows after the group
    row = np.empty(1 + p + q)
    grad = np.zeros(p)
    info = np.zeros((p, p))
    mean = np.empty(p)
    log_s0 = 0.0
    k = ev.shape[0] - 1
    cur_end = -1
    for i in range(n - 1, -1, -1):
        if k < 0:
            break
        if i == end[k] - 1 and cur_end != end[k]:  # the first row (from the end) of a stratum with events
            acc[:] = 0.0
            cur_end = end[k]
        if i == gd[k] - 1:  # the tie group's last event row: the rows after it are summed
            upper[:] = acc
            grp[:] = 0.0
        ri = r[i]
        row[0] = ri
        t = 1 + p
        for a in range(p):
            xa = ri * X[i, a]
            row[1 + a] = xa
            for b in range(a, p):
                row[t] = xa * X[i, b]
                t += 1
        for m in range(1 + p + q):
            acc[m] += row[m]
        if i < gd[k]:
            for m in range(1 + p + q):
                grp[m] += row[m]
        while k >= 0 and g[k] == i:  # every event of the group, the group's rows now all summed
            f, ck = frac[k], c[k]
            s0 = (1.0 - f) * grp[0] + upper[0]
            log_s0 += ck * np.log(s0)
            for a in range(p):
                mean[a] = ((1.0 - f) * grp[1 + a] + upper[1 + a]) / s0
                grad[a] += ew[k] * X[ev[k], a] - ck * mean[a]
            t = 1 + p
            for a in range(p):
                for b in range(a, p):
                    v = ck * (((1.0 - f) * grp[t] + upper[t]) / s0 - mean[a] * mean[b])
                    info[a, b] += v
                    t += 1
            k -= 1
    for a in range(p):
        for b in range(a):
            info[a, b] = info[b, a]
    return log_s0, grad, info


_ETA_FLOATS = 4_000_000  # linear predictors a thread of partial_loglik_events forms at once (32 MB)
_WALK_ROWS = 32  # rows of one block of the fused walk: their linear predictors for a chunk of draws stay in cache
_WALK_DRAWS = 128  # draws a walk carries at once: each row of X is read once for all of them; each loop over them
# is long enough that its set-up (alias checks, remainders) is a small part (32 x 128 against 128 x 32: 20% off)


_PART_LO, _PART_HI = 2.0 ** -100, 2.0 ** 100  # a tie group's sums in its product: 8 of them times [1, 2) stay normal


@njit(cache=True, nogil=True, error_model="numpy")
def _flush_groups(P, PE, L, cmean, csums, ng, m, tot):
    """The risk-set terms of ``ng`` tie groups gathered by :func:`walk_event_terms` (under the scale ``m``):
    ``mean(c) (log P + PE ln 2) + sum(c) m`` off each draw's total, the logarithms in one vectorised pass."""
    K = m.shape[0]
    log_positive(P.reshape(P.size)[:ng * K], L.reshape(L.size)[:ng * K])
    for s in range(ng):
        cm, cs = cmean[s], csums[s]
        for d in range(K):
            tot[d] += cm * (L[s, d] + (PE[s, d] * _LN2_HI + PE[s, d] * _LN2_LO)) + cs * m[d]


@njit(cache=True, nogil=True, error_model="numpy")
def _flush_logs(S, L, kbuf, ns, c, m, tot, out, keep):
    """The risk-set terms of the ``ns`` events gathered by :func:`walk_event_terms` (their sums under the scale
    ``m``): the logarithms in one vectorised pass, each event's ``c (log S + m)`` off its draw's total and term."""
    K = m.shape[0]
    log_positive(S.reshape(S.size)[:ns * K], L.reshape(L.size)[:ns * K])
    for s in range(ns):
        k = kbuf[s]
        ck = c[k]
        for d in range(K):
            tot[d] += ck * (L[s, d] + m[d])
        if keep:  # apart: a branch in the loop above, or a store across the draws' rows, keeps it from vectorising
            for d in range(K):
                out[d, k] -= ck * (L[s, d] + m[d])


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _block_predictors(e, nb, first, step, BP, X, Xb, shift, ca, TaT, has_a, cb, xb, TbT, has_b):
    """``e[j, d]`` for ``j < nb``: the linear predictor of draw ``d`` at row ``first + step * j``:
    ``X[i] BP[:, d] - shift[d]``, plus ``TaT[ca[i], d]`` (``has_a``) and ``xb[i] TbT[cb[i], d]`` (``has_b``).

    ``BP``: the draws' coefficients (covariates x draws) with zero rows up to a multiple of 4 (:func:`_by_column`'s
    ``pad``); ``Xb``: a buffer of at least ``nb + 1`` rows by as many columns, zero past the covariates, into which the
    block's rows are copied (``e`` needs ``nb + 1`` rows too). Two rows at a time, four covariates a pass: each pass
    over the draws is a loop of its own, whose set-up costs as much as a few of its iterations, so fewer passes
    doing more each (0.64 against 1.03 ns a row and draw for 9 covariates, 128 draws, one core)."""
    p = X.shape[1]
    W, K = BP.shape
    for j in range(nb):
        i = first + step * j
        for q in range(p):
            Xb[j, q] = X[i, q]
    for j in range(0, nb, 2):  # row nb, when nb is odd, is computed from a stale row and not read
        x0, x1, x2, x3 = Xb[j, 0], Xb[j, 1], Xb[j, 2], Xb[j, 3]
        y0, y1, y2, y3 = Xb[j + 1, 0], Xb[j + 1, 1], Xb[j + 1, 2], Xb[j + 1, 3]
        for d in range(K):
            b0, b1, b2, b3 = BP[0, d], BP[1, d], BP[2, d], BP[3, d]
            s = shift[d]
            e[j, d] = (x0 * b0 + x1 * b1) + (x2 * b2 + x3 * b3) - s
            e[j + 1, d] = (y0 * b0 + y1 * b1) + (y2 * b2 + y3 * b3) - s
        for q in range(4, W, 4):
            x0, x1, x2, x3 = Xb[j, q], Xb[j, q + 1], Xb[j, q + 2], Xb[j, q + 3]
            y0, y1, y2, y3 = Xb[j + 1, q], Xb[j + 1, q + 1], Xb[j + 1, q + 2], Xb[j + 1, q + 3]
            for d in range(K):
                b0, b1, b2, b3 = BP[q, d], BP[q + 1, d], BP[q + 2, d], BP[q + 3, d]
                e[j, d] += (x0 * b0 + x1 * b1) + (x2 * b2 + x3 * b3)
                e[j + 1, d] += (y0 * b0 + y1 * b1) + (y2 * b2 + y3 * b3)
    if not (has_a or has_b):
        return
    for j in range(nb):
        i = first + step * j
        if has_a:
            a = ca[i]
            for d in range(K):
                e[j, d] += TaT[a, d]
        if has_b:
            a = cb[i]
            x0 = xb[i]
            for d in range(K):
                e[j, d] += x0 * TbT[a, d]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def exposure_cells(BT, X, shift, ca, TaT, has_a, cb, xb, TbT, has_b, cell, into, cell_e, into_e, has_entry, w,
                   weighted, wd, B, C, Be, Ce, lin, e, Xb):
    """The sums a piecewise-constant baseline's likelihood needs, for the draws ``BT`` (covariates x draws), in one
    pass over the rows in blocks, no N-length buffer: per cell ``c`` (stratum x interval) and draw ``d``,
    ``B[c, d] = sum w_i exp(eta_id)`` over the rows whose follow-up ends in ``c`` and ``C[c, d]`` the same sum
    weighted by the time each spent in ``c`` (``into``); ``Be``/``Ce`` the same by the cells of the entry times
    (``has_entry``); and ``lin[d] = sum_i wd_i eta_id``. ``eta`` as :func:`_block_predictors` (``has_a``: a
    frailty; ``has_b``: a per-draw slope per group on one per-row value, the Weibull's ``k_s log t_i``; ``BT``
    padded as :func:`_block_predictors` reads it). ``e``: a buffer of ``(_WALK_ROWS + 1) x draws`` floats at least,
    ``Xb`` :func:`_block_predictors`'s block of rows. The tables are zeroed here."""
    K = BT.shape[1]
    n = X.shape[0]
    nblk = _WALK_ROWS
    for c in range(B.shape[0]):
        for d in range(K):
            B[c, d] = 0.0
            C[c, d] = 0.0
    for c in range(Be.shape[0]):
        for d in range(K):
            Be[c, d] = 0.0
            Ce[c, d] = 0.0
    for d in range(K):
        lin[d] = 0.0
    E = e[:(nblk + 1) * K].reshape((nblk + 1, K))
    for lo in range(0, n, nblk):
        nb = min(nblk, n - lo)
        _block_predictors(E, nb, lo, 1, BT, X, Xb, shift, ca, TaT, has_a, cb, xb, TbT, has_b)
        for j in range(nb):
            wdi = wd[lo + j]
            if wdi != 0.0:
                for d in range(K):
                    lin[d] += wdi * E[j, d]
        flat = e[:nb * K]
        exp_nonpositive(flat, flat)  # any sign: below -700 taken as -700, above 709.78 infinite
        for j in range(nb):
            i = lo + j
            if weighted:
                wi = w[i]
                for d in range(K):
                    E[j, d] *= wi
            c, t = cell[i], into[i]
            for d in range(K):
                B[c, d] += E[j, d]
                C[c, d] += E[j, d] * t
            if has_entry:
                c, t = cell_e[i], into_e[i]
                for d in range(K):
                    Be[c, d] += E[j, d]
                    Ce[c, d] += E[j, d] * t


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def walk_event_terms(BT, X, shift, ewrow, evk, g, gd, end, frac, c, w, weighted, cuts, ca, TaT, has_a, cb, xb, TbT,
                     has_b, out, totals, e, S, L, kbuf, state, G, gw, Xb, by_group):
    """:func:`event_terms` of the draws ``BT`` (covariates x draws) from the covariates themselves, in one walk over
    the rows with no N-length buffer: each draw's linear predictor, exponential and risk-set sums are formed a
    block of rows at a time, from the last row to the first, for all the draws at once (no delayed entry).

    ``eta[i, d] = X[i] BT[:, d] - shift[d] (+ TaT[ca[i], d]) (+ xb[i] TbT[cb[i], d])``: ``a`` an additive effect per
    group of rows (a frailty), ``b`` a coefficient per group of rows on one column (a study's exposure effect).
    ``ewrow``/``evk``: the event weight and event index of each row (0 and -1 where the row is no event);
    ``cuts``: the rows where a stratum begins or ends, ascending, which no block crosses. Each draw's risk sums are
    scaled by the largest linear predictor walked so far in its stratum (rescaled when a block holds a larger
    one), so that no exponential overflows and a stratum far below another keeps its digits.
    ``out`` (draws x events, or draws x 0 to keep no terms), ``totals`` (draws) as :func:`event_terms`;
    ``e`` a buffer of ``(_WALK_ROWS + 1) x draws`` floats at least, ``S``/``L`` of ``_WALK_ROWS x draws``, ``kbuf``
    of ``_WALK_ROWS`` integers, ``state`` of ``7 x draws``, ``G`` of ``2 x _WALK_ROWS x draws`` and ``gw`` of
    ``2 x _WALK_ROWS`` floats; ``BT`` and ``Xb`` as :func:`_block_predictors` reads them.

    Without kept terms, the events of a tie group take one logarithm between them: ``sum_l c_l log S_l`` is
    ``mean(c) log prod_l S_l`` (Efron's ``c`` is one value a group, Breslow's ``S`` is), the product kept as a
    mantissa in [1, 2) and a power of 2 (a registry's day-resolution times tie 130 events a group at N = 1,000,000).
    ``by_group`` says the risk sets allow it (every group's ``c`` one value, or every ``tie_fraction`` 0); an event
    whose sum lies outside 2**-100 .. 2**100 (or is not a number) takes its own logarithm.

    Written for the vectoriser: every loop over the draws indexes by counters known to be non-negative (a block's
    rows are stored last row first, so the walk runs forward over them), and the per-draw sums live in the
    caller's ``state`` (arrays allocated here were taken to overlap the block, and each loop over the draws ran
    one element at a time: 2.5 times slower)."""
    K = BT.shape[1]
    n_ev = g.shape[0]
    keep = out.shape[1] == n_ev
    nblk = kbuf.shape[0]
    # the buffers as rows x this call's draws (``e`` one row more than a block, the others a block)
    e = e[:(nblk + 1) * K].reshape((nblk + 1, K))
    S = S[:nblk * K].reshape((nblk, K))
    L = L[:nblk * K].reshape((nblk, K))
    st = state[:7 * K].reshape((7, K))
    P = G[:nblk * K].reshape((nblk, K))  # a group's product of sums, renormalised to [1, 2), and its exponent
    Pb = G.view(np.int64)[:nblk * K].reshape((nblk, K))  # the product's bits
    PE = G[nblk * K:2 * nblk * K].reshape((nblk, K))
    cmean, csums = gw[:nblk], gw[nblk:2 * nblk]
    product = by_group and not keep
    ng = 0
    cnt = 0
    csum = 0.0
    acc, grp, upper, m, bmax, lin, tot = st[0], st[1], st[2], st[3], st[4], st[5], st[6]
    for d in range(K):
        acc[d] = 0.0
        grp[d] = 0.0
        upper[d] = 0.0
        m[d] = -np.inf
        lin[d] = 0.0
        tot[d] = 0.0
    kk = n_ev - 1
    hi = end[kk] if n_ev > 0 else 0
    ci = cuts.shape[0] - 1
    cur_end = -1
    while kk >= 0 and hi > 0:
        while ci >= 0 and cuts[ci] >= hi:
            ci -= 1
        lo = max(hi - nblk, 0)
        if ci >= 0 and cuts[ci] > lo:
            lo = cuts[ci]
        nb = hi - lo
        if hi == end[kk] and cur_end != hi:  # the top of a stratum with events: its sums start afresh
            cur_end = hi
            for d in range(K):
                acc[d] = 0.0
                grp[d] = 0.0
                upper[d] = 0.0
                m[d] = -np.inf
        _block_predictors(e, nb, hi - 1, -1, BT, X, Xb, shift, ca, TaT, has_a, cb, xb, TbT, has_b)  # row j: hi - 1 - j
        for d in range(K):
            bmax[d] = m[d]
        for j in range(nb):
            for d in range(K):
                v, b = e[j, d], bmax[d]
                bmax[d] = v if v > b else b  # a select, not a conditional store: it vectorises
        for d in range(K):
            if bmax[d] > m[d]:
                f = np.exp(m[d] - bmax[d])
                acc[d] *= f
                grp[d] *= f
                upper[d] *= f
                m[d] = bmax[d]
        for j in range(nb):
            i = hi - 1 - j
            ewi = ewrow[i]
            if ewi != 0.0:
                for d in range(K):
                    lin[d] += ewi * e[j, d]
                if keep:
                    k2 = evk[i]
                    for d in range(K):
                        out[d, k2] = ewi * e[j, d]
        for j in range(nb):
            for d in range(K):
                e[j, d] -= m[d]
        flat = e.reshape(e.size)[:nb * K]
        exp_nonpositive(flat, flat)
        if weighted:
            for j in range(nb):
                wi = w[hi - 1 - j]
                for d in range(K):
                    e[j, d] *= wi
        ns = 0
        for j in range(nb):
            if kk < 0:
                break
            i = hi - 1 - j
            if i == gd[kk] - 1:  # the tie group's last event row: the rows after it are summed
                for d in range(K):
                    upper[d] = acc[d]
                    grp[d] = 0.0
            for d in range(K):
                acc[d] += e[j, d]
            if i < gd[kk]:
                for d in range(K):
                    grp[d] += e[j, d]
            if kk >= 0 and g[kk] == i and product:  # the group's sums multiplied: one logarithm a group
                for d in range(K):
                    P[ng, d] = 1.0
                    PE[ng, d] = 0.0
                csum = 0.0
                cnt = 0
            while kk >= 0 and g[kk] == i:  # every event of the group: its risk set is summed
                f = frac[kk]
                odd = not product
                if product:
                    for d in range(K):
                        v = (1.0 - f) * grp[d] + upper[d]
                        odd |= not (v >= _PART_LO and v <= _PART_HI)
                if odd:  # its own logarithm (a term kept, or a sum the product could not hold)
                    for d in range(K):
                        S[ns, d] = (1.0 - f) * grp[d] + upper[d]
                    kbuf[ns] = kk
                    ns += 1
                    if ns == nblk:
                        _flush_logs(S, L, kbuf, ns, c, m, tot, out, keep)
                        ns = 0
                else:  # P *= S; every 8 factors (each within 2**+-100) P back to [1, 2), its power of 2 into PE
                    for d in range(K):
                        P[ng, d] *= (1.0 - f) * grp[d] + upper[d]
                    csum += c[kk]
                    cnt += 1
                    if cnt % 8 == 0:
                        for d in range(K):
                            b = Pb[ng, d]
                            PE[ng, d] += ((b >> 52) & 0x7FF) - 1023
                            Pb[ng, d] = (b & _MANTISSA) | _ONE_BITS
                kk -= 1
            if cnt > 0:  # the group's events are all summed (they end at its first row, this one)
                cmean[ng] = csum / cnt
                csums[ng] = csum
                cnt = 0
                ng += 1
                if ng == nblk:
                    _flush_groups(P, PE, L, cmean, csums, ng, m, tot)
                    ng = 0
        if ns > 0:
            _flush_logs(S, L, kbuf, ns, c, m, tot, out, keep)
        if ng > 0:
            _flush_groups(P, PE, L, cmean, csums, ng, m, tot)
            ng = 0
        hi = lo
    for d in range(K):
        totals[d] = lin[d] - tot[d]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _draw_predictor(B, d, XT, ca, T, has_a, out):
    """``out[i] = XT[:, i] @ B[d] (+ T[d, ca[i]])``: draw ``d``'s linear predictor from the covariates by column
    (``XT``, covariates x rows), one contiguous multiply-add a covariate, plus a frailty (``has_a``)."""
    p, n = XT.shape
    if has_a:
        t = T[d]
        for i in range(n):
            out[i] = t[ca[i]]
    else:
        for i in range(n):
            out[i] = 0.0
    for j in range(p):
        b = B[d, j]
        x = XT[j]
        for i in range(n):
            out[i] += b * x[i]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def weibull_rows(B, XT, ca, T, has_a, a, lk, k, st, lt, le, entered, has_entry, dd, w, weighted, log_tref, pos,
                 out):
    """Each row's Weibull log-likelihood per draw, written to ``out[d, pos[i]]`` (draws x rows: ``pos`` puts the
    sorted rows in the caller's order) (:func:`by_draws` runs it on threads):
    ``w [d (log h + eta) - H exp(eta)]`` (``w`` when ``weighted``), ``H exp(eta) = exp(a + k lt + eta) -
    exp(a + k le + eta)`` (the second term where ``has_entry`` and ``entered``), ``log h = a + log k + (k - 1) lt -
    log t_ref``; ``eta`` from the coefficients ``B`` (draws x covariates) by :func:`_draw_predictor` (the centred
    covariates ``XT``, a frailty table ``T``), in a buffer of one row's length;
    ``a``, ``lk``, ``k``: draws x strata. The numbers of :meth:`.parametric.ParametricPH.pointwise_loglik` for the
    Weibull (to rounding: one exponential of the sum instead of a product of two), without its draws x rows
    temporaries, the exponentials vectorised (:func:`exp_nonpositive`, which takes either sign)."""
    D = B.shape[0]
    n = XT.shape[1]
    row = np.empty(n)
    z = np.empty(n)
    ze = np.empty(n if has_entry else 0)
    for d in range(D):
        _draw_predictor(B, d, XT, ca, T, has_a, row)
        for i in range(n):
            s = st[i]
            z[i] = a[d, s] + k[d, s] * lt[i] + row[i]
        exp_nonpositive(z, z)
        if has_entry:
            for i in range(n):
                s = st[i]
                ze[i] = a[d, s] + k[d, s] * le[i] + row[i] if entered[i] else -np.inf
            exp_nonpositive(ze, ze)
        o = out[d]
        for i in range(n):
            s = st[i]
            v = dd[i] * ((a[d, s] + lk[d, s] + (k[d, s] - 1.0) * lt[i] - log_tref) + row[i]) - z[i]
            if has_entry and entered[i]:
                v += ze[i]
            o[pos[i]] = v * w[i] if weighted else v


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def piecewise_rows(B, XT, ca, T, has_a, a, rates, whole, cell, into, cell_e, into_e, has_entry, dd, w, weighted, pos,
                   out):
    """Each row's piecewise-exponential log-likelihood per draw, written to ``out[d, pos[i]]`` (as
    :func:`weibull_rows`, the linear predictors formed the same way): ``w [d (a[c] + eta) - H exp(eta)]`` with
    ``H = whole[c] + rates[c] into`` at the row's cell ``c`` (stratum x interval, ``cell[i]``) minus the same at its
    entry's (``cell_e``, ``into_e``, where ``has_entry``); ``a``, ``rates``, ``whole``: draws x cells. The numbers of
    :meth:`.parametric.ParametricPH.pointwise_loglik` for the piecewise model with no time-varying effect, without
    its draws x rows temporaries."""
    D = B.shape[0]
    n = XT.shape[1]
    row = np.empty(n)
    x = np.empty(n)
    for d in range(D):
        _draw_predictor(B, d, XT, ca, T, has_a, row)
        exp_nonpositive(row, x)  # either sign
        ad, rd, wd = a[d], rates[d], whole[d]
        o = out[d]
        for i in range(n):
            c = cell[i]
            H = wd[c] + rd[c] * into[i]
            if has_entry:
                ce = cell_e[i]
                H -= wd[ce] + rd[ce] * into_e[i]
            v = dd[i] * (ad[c] + row[i]) - x[i] * H
            o[pos[i]] = v * w[i] if weighted else v


@njit(cache=True, nogil=True)
def _gather_columns(a, idx, out):
    for r in range(a.shape[0]):
        for j in range(idx.shape[0]):
            out[r, j] = a[r, idx[j]]


def load_first_kernel() -> None:
    """numba's initialisation and the maximum-likelihood start's kernel (:func:`linear_predictors`, for the types of
    its call) from the disk cache: a step of :func:`bayescrt.prefetch.start`."""
    linear_predictors(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), np.empty((1, 1)))


def gather_columns(a: np.ndarray, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a[..., idx]`` as a C-contiguous array (into ``out``, C-contiguous, when given), row by row on threads:
    numpy's fancy index of the last axis reads across rows (about 0.9 s for 4,000 draws x 8,880 rows) and returns a
    layout that hashing must copy again."""
    a = np.ascontiguousarray(a)
    flat = a.reshape(-1, a.shape[-1])
    shape = a.shape[:-1] + (len(idx),)
    if out is None:
        out = np.empty(shape, dtype=a.dtype)
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"gather_columns: out must be C-contiguous of shape {shape}, not {out.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    dest = out.reshape(flat.shape[0], len(idx))
    by_draws(lambda a0, b0: _gather_columns(flat[a0:b0], idx, dest[a0:b0]), flat.shape[0], len(idx))
    return out


def by_draws(fn, n_draws: int, n_rows: int) -> None:
    """``fn(a, b)`` for ranges of the draws (rows of a draws x rows array) on this module's threads, as many as
    :func:`_threads` gives; ``fn`` calls a kernel that holds no GIL. Not numba's ``parallel=True``: its OpenMP
    threads spin after each region and took the cores from the fits that followed (a plain Cox fit after a
    Weibull fit's stored log-likelihood: 0.45 -> 1.0 s)."""
    _split(n_draws, _threads(n_draws, n_rows), lambda _, a, b: fn(a, b) if b > a else None)


def fields(rs, empty=None) -> tuple:
    """The risk-set arrays of :class:`~.partial_likelihood.RiskSets` in the kernels' order, with its two flags.

    ``(fields, weighted, delayed)``; an absent weight or entry array is ``empty``'s (float, integer)
    pair, empty numpy arrays by default."""
    weighted, delayed = rs.weights is not None, rs.entry_order is not None
    e_f, e_i = (np.zeros(0), np.zeros(0, np.int64)) if empty is None else empty
    return ((rs.event_rows, rs.group_start, rs.group_events_end, rs.stratum_end, rs.stratum_start,
             rs.entry_start if delayed else e_i, rs.tie_fraction, rs.event_weight, rs.log_weight,
             rs.weights if weighted else e_f, rs.entry_order if delayed else e_i), weighted, delayed)


def partial_loglik_events(eta, rs, terms: bool = True, scratch: dict | None = None) -> np.ndarray:
    """``partial_loglik_terms(eta, rs)`` (numpy, draws x rows) by the compiled kernel: each event's term per draw,
    or with ``terms=False`` only their sum per draw (draws,), which writes no draws x events array.

    ``eta`` is the linear predictors, or ``(draws, rows, fn)`` with ``fn(a, b, out)`` writing those of draws ``a``
    to ``b`` into ``out``: then each worker thread forms its own draws' (by :func:`linear_predictors`, not BLAS,
    whose threads spin after a product and took half of the kernel's time at N = 1,000,000 on 2 cores).
    ``scratch``: a dict that keeps each thread's buffers from one call to the next (a caller evaluating batch after
    batch: fresh N-length buffers are fresh pages, whose faults serialise the threads); the caller drops it.

    The draws are split between threads (the kernel holds no GIL), each with its own buffers, writing into its own
    rows of the result, a few draws at a time (``_ETA_FLOATS`` linear predictors: the memory does not grow with the
    batch); each draw's terms are computed alone, so the numbers do not depend on the split. Without delayed entry,
    :func:`walk_terms` does the same from the coefficients with no draws x rows array at all."""
    f, weighted, delayed = fields(rs)
    f = [np.ascontiguousarray(x) for x in f]
    formed = isinstance(eta, tuple)  # the threads form the linear predictors into buffers of their own
    if formed:
        n_draws, n_rows, eta_of = eta
    else:
        arr = np.ascontiguousarray(np.atleast_2d(eta), dtype=float)
        (n_draws, n_rows) = arr.shape

        def eta_of(a, b, out):
            return arr[a:b]
    n_ev = len(rs.event_rows)
    out = np.empty((n_draws, n_ev if terms else 0))
    totals = np.empty(n_draws)
    store = {} if scratch is None else scratch
    chunk = max(1, _ETA_FLOATS // max(1, n_rows))  # draws whose linear predictors a thread holds at once

    def buffers(k, draws):
        """Thread ``k``'s linear predictors (empty when they are given) and the kernel's buffers, with one more of
        the events' length for the logarithms."""
        key = (k, n_rows, n_ev, delayed)
        have = store.get(key)
        if have is None or have[0].shape[0] < (draws if formed else 0):
            have = store[key] = (np.empty((draws if formed else 0, n_rows)), *_workspace(n_rows, n_ev, delayed),
                                 np.empty(n_ev))
        return have

    def work(k, a, b):
        for s in range(a, b, chunk):
            t = min(s + chunk, b)
            eta_buf, *ws = buffers(k, t - s)
            e = eta_of(s, t, eta_buf[:t - s])
            event_terms(e, *f, weighted, delayed, out[s:t], totals[s:t], *ws)

    _split(n_draws, _threads(n_draws, n_rows), work)
    return out if terms else totals


def _threads(n_draws: int, n_rows: int) -> int:
    """Threads for a batch: one per half-million row-draws at least (fewer would spend more on starting threads
    than they save), no more than the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, n_draws, n_draws * n_rows // 500_000))


def _split(n_draws: int, threads: int, work) -> None:
    """``work(t, a, b)`` for each thread ``t`` of ``threads``, with its contiguous range ``a:b`` of the draws."""
    bounds = np.linspace(0, n_draws, threads + 1).astype(int)
    if threads <= 1:
        work(0, 0, n_draws)
        return
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(lambda t: work(t, bounds[t], bounds[t + 1]), range(threads)))


def _by_column(table, a: int, b: int, pad: bool = False) -> np.ndarray:
    """Draws ``a:b`` of a draws x levels ``table`` as levels x draws (C order), as the kernels read it; an empty
    2-D array for no table. ``pad``: zero rows added up to a multiple of 4 (the coefficients as
    :func:`_block_predictors` reads them)."""
    if table is None:
        return np.zeros((0, 0))
    t = np.asarray(table[a:b], float).T
    if not pad:
        return np.ascontiguousarray(t)
    out = np.zeros((_padded(t.shape[0]), t.shape[1]))
    out[:t.shape[0]] = t
    return out


def _padded(p: int) -> int:
    """Covariates rounded up to a multiple of 4 (at least 4): the width of :func:`_block_predictors`' passes."""
    return max(4, -(-p // 4) * 4)


def _walk_buffers(K: int, p: int) -> tuple:
    """The block buffers of a walk of ``K`` draws over ``p`` covariates: ``e`` (one row more than a block) and the
    block of rows ``Xb`` (zero past the covariates), as :func:`_block_predictors` reads them."""
    return np.empty((_WALK_ROWS + 1) * K), np.zeros((_WALK_ROWS + 1, _padded(p)))


def walk_terms(B, X, rs, shift, *, frailty=None, study=None, terms: bool = True,
               scratch: dict | None = None) -> np.ndarray:
    """Each event's partial log-likelihood term per draw (draws x events), or with ``terms=False`` their sum per
    draw, for the linear predictors ``X @ B[d] - shift[d]`` (plus ``frailty = (codes, table)``:
    ``table[d, codes[i]]`` per row; plus ``study = (codes, column, table)``: ``column[i] table[d, codes[i]]``),
    by :func:`walk_event_terms`: no draws x rows array is formed. Not for delayed entry
    (``rs.entry_order``), whose risk sets :func:`partial_loglik_events` forms.

    The draws are split between threads and walked ``_WALK_DRAWS`` at a time; each draw's numbers are its own
    (its sums taken in the same order whatever the split)."""
    if rs.entry_order is not None:
        raise ValueError("walk_terms: delayed entry (rs.entry_order) needs partial_loglik_events")
    B = np.ascontiguousarray(np.atleast_2d(B), dtype=float)
    X = np.ascontiguousarray(X, dtype=float)
    shift = np.ascontiguousarray(shift, dtype=float)
    n_draws, n_rows = B.shape[0], X.shape[0]
    n_ev = len(rs.event_rows)
    store = {} if scratch is None else scratch
    key = ("walk", n_rows, n_ev)
    fixed = store.get(key)
    if fixed is None:
        ewrow = np.zeros(n_rows)
        ewrow[rs.event_rows] = rs.event_weight
        evk = np.full(n_rows, -1, np.int64)
        evk[rs.event_rows] = np.arange(n_ev)
        cuts = np.unique(np.concatenate([rs.stratum_start, rs.stratum_end])).astype(np.int64)
        w = np.zeros(0) if rs.weights is None else np.ascontiguousarray(rs.weights, dtype=float)
        ints = [np.ascontiguousarray(a, dtype=np.int64) for a in (rs.group_start, rs.group_events_end,
                                                                   rs.stratum_end)]
        frac, c = (np.ascontiguousarray(a, dtype=float) for a in (rs.tie_fraction, rs.log_weight))
        _, first = np.unique(ints[0], return_index=True)  # each tie group's first event
        by_group = bool(np.all(frac == 0) or np.all(c == np.repeat(c[first], np.diff(np.append(first, n_ev)))))
        fixed = store[key] = (ewrow, evk, *ints, frac, c, w, rs.weights is not None, cuts), by_group
    none_i = np.zeros(0, np.int64)
    ca, ta = (none_i, None) if frailty is None else (np.ascontiguousarray(frailty[0], np.int64), frailty[1])
    cb, xb, tb = ((none_i, np.zeros(0), None) if study is None else
                  (np.ascontiguousarray(study[0], np.int64), np.ascontiguousarray(study[1], float), study[2]))
    out = np.empty((n_draws, n_ev if terms else 0))
    totals = np.empty(n_draws)

    def work(_, a, b):
        K = min(_WALK_DRAWS, b - a)
        e, Xb = _walk_buffers(K, X.shape[1])
        bufs = (e, np.empty(_WALK_ROWS * K), np.empty(_WALK_ROWS * K), np.empty(_WALK_ROWS, np.int64),
                np.empty(7 * K), np.empty(2 * _WALK_ROWS * K), np.empty(2 * _WALK_ROWS), Xb)
        for s in range(a, b, K):
            t = min(s + K, b)
            walk_event_terms(_by_column(B, s, t, pad=True), X, shift[s:t], *fixed[0], ca, _by_column(ta, s, t),
                             ta is not None, cb, xb, _by_column(tb, s, t), tb is not None, out[s:t], totals[s:t], *bufs,
                             fixed[1])

    _split(n_draws, _threads(n_draws, n_rows), work)
    return out if terms else totals


def cell_sums(B, X, shift, cell, into, n_cells: int, wd, *, weights=None, entry=None, frailty=None,
              slope=None) -> tuple:
    """:func:`exposure_cells` for the draws ``B`` (draws x covariates), on threads, ``_WALK_DRAWS`` draws at a
    time: ``(B, C, Be, Ce, lin)`` with the draws first (draws x cells; ``Be``/``Ce`` draws x 0 without
    ``entry = (cell_e, into_e)``). ``frailty = (codes, table)``: ``table[d, codes[i]]`` added to each row's
    linear predictor ``X[i] @ B[d] - shift[d]``; ``slope = (codes, values, table)``: ``values[i] table[d,
    codes[i]]`` added too."""
    B = np.ascontiguousarray(np.atleast_2d(B), dtype=float)
    X = np.ascontiguousarray(X, dtype=float)
    shift = np.ascontiguousarray(shift, dtype=float)
    n_draws, n_rows = B.shape[0], X.shape[0]
    cell = np.ascontiguousarray(cell, np.int64)
    into = np.ascontiguousarray(into, float)
    wd = np.ascontiguousarray(wd, float)
    w = np.zeros(0) if weights is None else np.ascontiguousarray(weights, float)
    cell_e, into_e = (np.zeros(0, np.int64), np.zeros(0)) if entry is None else (
        np.ascontiguousarray(entry[0], np.int64), np.ascontiguousarray(entry[1], float))
    ca, ta = (np.zeros(0, np.int64), None) if frailty is None else (np.ascontiguousarray(frailty[0], np.int64),
                                                                    frailty[1])
    cb, xb, tb = (np.zeros(0, np.int64), np.zeros(0), None) if slope is None else (
        np.ascontiguousarray(slope[0], np.int64), np.ascontiguousarray(slope[1], float), slope[2])
    m_e = n_cells if entry is not None else 0
    out = [np.empty((n_draws, n_cells)), np.empty((n_draws, n_cells)), np.empty((n_draws, m_e)),
           np.empty((n_draws, m_e)), np.empty(n_draws)]

    def work(_, a, b):
        K = min(_WALK_DRAWS, b - a)
        e, Xb = _walk_buffers(K, X.shape[1])
        for s in range(a, b, K):
            t = min(s + K, b)
            k = t - s
            tabs = [np.empty((n_cells, k)), np.empty((n_cells, k)), np.empty((m_e, k)), np.empty((m_e, k)),
                    np.empty(k)]
            exposure_cells(_by_column(B, s, t, pad=True), X, shift[s:t], ca, _by_column(ta, s, t), ta is not None,
                           cb, xb, _by_column(tb, s, t), tb is not None, cell, into, cell_e, into_e, entry is not None,
                           w, weights is not None, wd, *tabs, e, Xb)
            for o, tab in zip(out, tabs):
                o[s:t] = tab.T

    _split(n_draws, _threads(n_draws, n_rows), work)
    return tuple(out)


_OP_CLASSES: dict = {}  # builder's name -> the pytensor operation class it made


_OP_LOCK = threading.RLock()


def _built(make):
    """The operation class ``make()`` returns, made once per process, on first use (so that importing this module
    needs no pytensor). Under a lock: two threads building their first models at once made two classes, and the
    JAX implementation (:mod:`.fused_jax`) was registered for one of them only."""
    with _OP_LOCK:
        if make.__name__ not in _OP_CLASSES:
            _OP_CLASSES[make.__name__] = make()
        return _OP_CLASSES[make.__name__]


def _numba_implementation(op_class, kernel_for) -> None:
    """Register ``kernel_for(op)``, a function of the node's inputs, as ``op_class``'s numba implementation.

    pytensor caches the compiled log density on disk under a key of the operation's type and properties; the
    kernels' source is added to it, so an edited kernel is never served stale."""
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

    @register_funcify_default_op_cache_key(op_class)
    def _numba(op, node=None, **kwargs):
        return numba_njit(kernel_for(op)), SOURCE_VERSION


def _make_cox_op():
    """The pytensor operation of the Cox partial likelihood (:func:`value_and_grad_beta`)."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class CoxPartialLoglik(Op):
        """``(logp, d logp / d beta, d logp / d offset)`` of the Cox partial likelihood at ``eta = X @ beta + offset``.

        Inputs: ``beta``, ``XT`` (covariates by column), ``offset`` (per row, or empty without
        one), then the risk-set fields of :func:`partial_loglik`. See :mod:`bayescrt.families.fused`.
        """

        __props__ = ("weighted", "delayed", "has_offset")

        def __init__(self, weighted: bool, delayed: bool, has_offset: bool):
            self.weighted = bool(weighted)
            self.delayed = bool(delayed)
            self.has_offset = bool(has_offset)

        def __reduce__(self):  # by name, so that a model sent to another process finds its compiled form there
            return _cox_op, (self.weighted, self.delayed, self.has_offset)

        def make_node(self, beta, XT, offset, *fields):
            ins = [pt.as_tensor_variable(beta).astype("float64"), pt.as_tensor_variable(XT),
                   pt.as_tensor_variable(offset).astype("float64")] + [pt.as_tensor_variable(x) for x in fields]
            return Apply(self, ins, [pt.dscalar(), pt.dvector(), pt.dvector()])

        def perform(self, node, inputs, outputs):
            total, g_beta, g_eta = value_and_grad_beta(*[np.ascontiguousarray(x) for x in inputs], self.weighted,
                                                       self.delayed, self.has_offset)
            outputs[0][0] = np.asarray(total)
            outputs[1][0] = g_beta
            outputs[2][0] = g_eta if self.has_offset else np.zeros(0)

        def infer_shape(self, node, shapes):
            return [(), shapes[0], shapes[2]]

        def connection_pattern(self, node):
            wrt = [True, False, self.has_offset]
            return [[x, x, x] for x in wrt] + [[False, False, False]] * (len(node.inputs) - 3)

        def pullback(self, inputs, outputs, cotangents):
            g_total = cotangents[0]
            rest = [DisconnectedType()() for _ in inputs[3:]]
            if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
                return [grad_not_implemented(self, 0, inputs[0], "the second derivative of the partial likelihood"),
                        DisconnectedType()(), DisconnectedType()()] + rest
            g_offset = g_total * outputs[2] if self.has_offset else DisconnectedType()()
            return [g_total * outputs[1], DisconnectedType()(), g_offset] + rest

    def kernel_for(op):
        weighted, delayed, has_offset = op.weighted, op.delayed, op.has_offset

        def cox_partial_loglik(beta, XT, offset, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order):
            total, g_beta, g_eta = value_and_grad_beta(beta, XT, offset, ev, g, gd, end, ss, es, frac, ew, c, w,
                                                       entry_order, weighted, delayed, has_offset)
            return np.asarray(total), g_beta, g_eta if has_offset else np.zeros(0)

        return cox_partial_loglik

    _numba_implementation(CoxPartialLoglik, kernel_for)
    return CoxPartialLoglik


def _cox_op(weighted: bool, delayed: bool, has_offset: bool):
    return _built(_make_cox_op)(weighted, delayed, has_offset)



# ---------------------------------------------------------------- the full likelihoods' exposure term
@njit(cache=True, nogil=True, error_model="numpy")
def _shifted_exp(eta):
    """``(exp(eta - m), exp(m))`` with ``m`` the largest ``eta`` (``eta`` is shifted in place): each exponential of
    a non-positive number, so that they vectorise (:func:`exp_nonpositive`) and none overflows."""
    n = eta.shape[0]
    m = eta[0] if n else 0.0
    for i in range(n):
        m = eta[i] if eta[i] > m else m
    for i in range(n):
        eta[i] -= m
    e = np.empty(n)
    exp_nonpositive(eta, e)
    return e, np.exp(m)


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def exposure_sum(beta, XT, offset, v, has_offset):
    """``(sum_i v_i exp(eta_i), X.T @ (v exp(eta)), exp(eta), v exp(eta))`` with ``eta = X @ beta (+ offset)``.

    The term of the Weibull, exponential and piecewise-exponential likelihoods that costs O(N p): with
    ``v_i = w_i [H0(t_i) - H0(entry_i)]`` it is ``sum_i w_i H(t_i | x_i)``. Two passes over ``XT``; the
    exponentials as ``exp(eta_i - m) exp(m)`` with ``m`` the largest ``eta``, so that they vectorise
    (:func:`exp_nonpositive`)."""
    e, em = _shifted_exp(linear_predictor(beta, XT, offset, has_offset))
    n = e.shape[0]
    ve = np.empty(n)
    total = 0.0
    for i in range(n):
        e[i] *= em
        ve[i] = v[i] * e[i]
        total += ve[i]
    return total, covariate_gradient(XT, ve), e, ve


def _make_exposure_op():
    """The pytensor operation of :func:`exposure_sum`."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class ExposureSum(Op):
        """``(sum v exp(eta), d/d beta, d/d v, d/d offset)`` at ``eta = X @ beta + offset``; see :func:`exposure_sum`.

        Inputs: ``beta``, ``XT`` (covariates by column), ``offset`` (per row, or empty without one), ``v``."""

        __props__ = ("has_offset",)

        def __init__(self, has_offset: bool):
            self.has_offset = bool(has_offset)

        def __reduce__(self):  # by name, as CoxPartialLoglik
            return _exposure_op, (self.has_offset,)

        def make_node(self, beta, XT, offset, v):
            ins = [pt.as_tensor_variable(beta).astype("float64"), pt.as_tensor_variable(XT),
                   pt.as_tensor_variable(offset).astype("float64"), pt.as_tensor_variable(v).astype("float64")]
            return Apply(self, ins, [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector()])

        def perform(self, node, inputs, outputs):
            total, g_beta, e, ve = exposure_sum(*[np.ascontiguousarray(x) for x in inputs], self.has_offset)
            outputs[0][0] = np.asarray(total)
            outputs[1][0] = g_beta
            outputs[2][0] = e
            outputs[3][0] = ve if self.has_offset else np.zeros(0)

        def infer_shape(self, node, shapes):
            return [(), shapes[0], shapes[3], shapes[2]]

        def connection_pattern(self, node):
            return [[True] * 4, [False] * 4, [self.has_offset] * 4, [True] * 4]

        def pullback(self, inputs, outputs, cotangents):
            g = cotangents[0]
            if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
                return [grad_not_implemented(self, 0, inputs[0], "the second derivative of the exposure sum"),
                        DisconnectedType()(), DisconnectedType()(), DisconnectedType()()]
            g_offset = g * outputs[3] if self.has_offset else DisconnectedType()()
            return [g * outputs[1], DisconnectedType()(), g_offset, g * outputs[2]]

    def kernel_for(op):
        has_offset = op.has_offset

        def exposure_sum_op(beta, XT, offset, v):
            total, g_beta, e, ve = exposure_sum(beta, XT, offset, v, has_offset)
            return np.asarray(total), g_beta, e, ve if has_offset else np.zeros(0)

        return exposure_sum_op

    _numba_implementation(ExposureSum, kernel_for)
    return ExposureSum


def _exposure_op(has_offset: bool):
    return _built(_make_exposure_op)(has_offset)


def exposure(beta, XT, offset, v):
    """``sum_i v_i exp(x_i @ beta + offset_i)`` (pytensor), by the fused kernel :func:`exposure_sum`.

    ``offset``: a per-row term (frailty) or ``None``. The same number as
    ``(v * exp((XT.T * beta).sum(axis=1) + offset)).sum()``, its graph twin."""
    import pytensor.tensor as pt

    op = _exposure_op(offset is not None)
    return op(beta, XT, pt.as_tensor(np.zeros(0)) if offset is None else offset, v)[0]

# ---------------------------------------------------------------- the piecewise-exponential likelihood by cells
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def piecewise_cells(beta, XT, offset, has_offset, A, W, R, cell, into, cell_e, into_e, has_entry, d, w, weighted):
    """The piecewise-exponential log-likelihood less its ``sum w d eta`` (a constant's product with ``beta``, in
    the graph), in one pass over the rows, with its gradients: ``(value, d/d beta, d/d A, d/d W, d/d R,
    d/d eta)``.

    ``value = sum_i w_i [d_i A[c_i] - exp(eta_i) H_i]``, ``H_i = W[c_i] + R[c_i] into_i`` less the same at the entry
    cell (``has_entry``): ``c`` a row's cell (stratum x interval), ``A`` the cells' log hazards, ``R`` their
    rates, ``W`` the cumulative hazard at each cell's start (all flat, stratum-major), ``into`` the time spent in
    the row's last cell. The cells' gradients are sums over the rows of each cell: no N-length operation is left
    in the graph around it, whose gathers and their gradients cost more than this pass (0.78 -> 0.36 ms a gradient
    at N = 50,000)."""
    e, em = _shifted_exp(linear_predictor(beta, XT, offset, has_offset))
    n = e.shape[0]
    k = A.shape[0]
    gA, gW, gR = np.zeros(k), np.zeros(k), np.zeros(k)
    total = 0.0
    for i in range(n):
        wi = w[i] if weighted else 1.0
        ei = wi * e[i] * em
        c, t = cell[i], into[i]
        h = W[c] + R[c] * t
        gA[c] += wi * d[i]
        gW[c] -= ei
        gR[c] -= ei * t
        if has_entry:
            ce, te = cell_e[i], into_e[i]
            h -= W[ce] + R[ce] * te
            gW[ce] += ei
            gR[ce] += ei * te
        total += wi * d[i] * A[c] - ei * h
        e[i] = -ei * h  # d value / d eta_i
    return total, covariate_gradient(XT, e), gA, gW, gR, e


def _make_piecewise_op():
    """The pytensor operation of :func:`piecewise_cells`."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class PiecewiseCells(Op):
        """``piecewise_cells``'s value and its gradients for ``beta``, ``offset``, ``A``, ``W`` and ``R``.

        Inputs: ``beta``, ``XT`` (covariates by column), ``offset`` (per row, or empty), ``A``, ``W``, ``R``, then
        the rows' ``cell``, ``into``, ``cell_e``, ``into_e`` (empty without entry), ``d`` and ``w`` (empty
        unweighted)."""

        __props__ = ("has_offset", "has_entry", "weighted")

        def __init__(self, has_offset: bool, has_entry: bool, weighted: bool):
            self.has_offset, self.has_entry, self.weighted = bool(has_offset), bool(has_entry), bool(weighted)

        def __reduce__(self):  # by name, as CoxPartialLoglik
            return _piecewise_op, (self.has_offset, self.has_entry, self.weighted)

        def make_node(self, beta, XT, offset, A, W, R, *rows):
            ins = [pt.as_tensor_variable(x).astype("float64") for x in (beta, XT, offset, A, W, R)]
            ins += [pt.as_tensor_variable(x) for x in rows]
            return Apply(self, ins, [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector(), pt.dvector(),
                                     pt.dvector()])

        def perform(self, node, inputs, outputs):
            beta, XT, offset, A, W, R, *rows = [np.ascontiguousarray(x) for x in inputs]
            cell, into, cell_e, into_e, d, w = rows
            res = piecewise_cells(beta, XT, offset, self.has_offset, A, W, R, cell, into, cell_e, into_e,
                                  self.has_entry, d, w, self.weighted)
            for o, r in zip(outputs, res):
                o[0] = np.asarray(r)

        def infer_shape(self, node, shapes):
            return [(), shapes[0], shapes[3], shapes[3], shapes[3], (node.inputs[1].shape[1],)]

        def connection_pattern(self, node):
            wrt = [True, False, self.has_offset, True, True, True] + [False] * (len(node.inputs) - 6)
            return [[x] * 6 for x in wrt]

        def pullback(self, inputs, outputs, cotangents):
            g = cotangents[0]
            none = DisconnectedType()
            if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
                return [grad_not_implemented(self, 0, inputs[0], "the second derivative of the piecewise likelihood")
                        ] + [none() for _ in inputs[1:]]
            g_offset = g * outputs[5] if self.has_offset else none()
            return [g * outputs[1], none(), g_offset, g * outputs[2], g * outputs[3], g * outputs[4]] + [
                none() for _ in inputs[6:]]

    def kernel_for(op):
        has_offset, has_entry, weighted = op.has_offset, op.has_entry, op.weighted

        def piecewise_cells_op(beta, XT, offset, A, W, R, cell, into, cell_e, into_e, d, w):
            total, g_beta, gA, gW, gR, g_eta = piecewise_cells(beta, XT, offset, has_offset, A, W, R, cell, into,
                                                               cell_e, into_e, has_entry, d, w, weighted)
            return np.asarray(total), g_beta, gA, gW, gR, g_eta

        return piecewise_cells_op

    _numba_implementation(PiecewiseCells, kernel_for)
    return PiecewiseCells


def _piecewise_op(has_offset: bool, has_entry: bool, weighted: bool):
    return _built(_make_piecewise_op)(has_offset, has_entry, weighted)


def piecewise_loglik(beta, XT, offset, A, W, R, rows: dict):
    """The piecewise-exponential log-likelihood less ``sum w d eta`` (pytensor) by :func:`piecewise_cells`.

    ``offset``: a per-row term (frailty) or ``None``; ``A``, ``W``, ``R``: the cells' log hazards, cumulative hazards
    at their starts and rates (flat); ``rows``: ``cell``, ``into``, ``event`` and, or ``None``, ``entry_cell``,
    ``entry_into``, ``weight``."""
    import pytensor.tensor as pt

    empty_f, empty_i = pt.as_tensor(np.zeros(0)), pt.as_tensor(np.zeros(0, np.int64))
    has_entry, weighted = rows["entry_cell"] is not None, rows["weight"] is not None
    op = _piecewise_op(offset is not None, has_entry, weighted)
    return op(beta, XT, empty_f if offset is None else offset, A, W, R, rows["cell"], rows["into"],
              rows["entry_cell"] if has_entry else empty_i, rows["entry_into"] if has_entry else empty_f,
              rows["event"], rows["weight"] if weighted else empty_f)[0]


def partial_loglik(beta, XT, offset, rs):
    """The log partial likelihood at ``eta = X @ beta + offset`` (pytensor), computed by the fused kernel.

    ``XT``: the covariates by column (covariates x rows); ``offset``: a per-row term (frailty, study
    effects) or ``None``; ``rs``: the risk sets (arrays or views of data containers). The same number
    as ``partial_loglik_terms(X @ beta + offset, rs, pt).sum()``, its graph twin.
    """
    import pytensor.tensor as pt

    empty_f, empty_i = pt.as_tensor(np.zeros(0)), pt.as_tensor(np.zeros(0, np.int64))
    rows, weighted, delayed = fields(rs, (empty_f, empty_i))
    op = _cox_op(weighted, delayed, offset is not None)
    return op(beta, XT, empty_f if offset is None else offset, *rows)[0]
