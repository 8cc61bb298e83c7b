"""The fused likelihood operations under JAX: what ``sampler="nutpie-jax"`` runs, on a GPU where JAX finds one.

nutpie's JAX backend compiles a PyMC model's log density with pytensor's JAX linker, which needs a JAX
function for every operation of the graph. :func:`register` gives one to each operation of
:mod:`.fused` (the Cox partial likelihood, the exposure sum of the Weibull and exponential likelihoods,
the piecewise-exponential likelihood by cells), with the operation's outputs: the value and the same
gradients, so that pytensor's gradient graph (``gradient_backend="pytensor"``) reads them from the one
call, as it does from the numba kernels.

The Cox value's risk-set sums are those of :func:`~.partial_likelihood.risk_set_sums` (the two forms under
delayed entry included), formed as the numba kernel forms them: each stratum's rows shifted by its own
largest linear predictor, the rows of strata without events at 0, every running sum restarted at its
stratum's bounds (segmented scans: O(N) and no N x N matrix, the same on a GPU). Its gradient with respect
to the linear predictor is JAX's reverse pass, that with respect to the coefficients one product with the
covariates. The other two are a few lines of ``jax.numpy`` each.

JAX is never needed otherwise, and never installed by default (``pip install "bayescrt[jax]"``, or
JAX's own instructions for a GPU build). ``tests/test_fused_jax.py`` checks each operation against
its numba kernel at random points for every option combination, on JAX's CPU backend.
"""

from __future__ import annotations

import threading

from . import fused

_lock = threading.Lock()
_registered = False


def register() -> None:
    """Give pytensor's JAX linker an implementation of each fused operation (once per process)."""
    global _registered
    with _lock:
        if _registered:
            return
        import warnings

        from pytensor.link.jax.dispatch import jax_funcify  # which switches JAX to 64-bit floats, process-wide

        _jax()
        # pytensor says so for each check on a prior's constant parameters (a sigma > 0, a shape's broadcast), which
        # the data and priors passed before any model was built: once a compilation, for nothing. A filter for that
        # message alone, set once (a catch_warnings around each compilation is not safe across threads).
        warnings.filterwarnings("ignore", message=r"Skipping .* Op \(assertion: .*\) as JAX tracing would remove it",
                                category=UserWarning)

        @jax_funcify.register(fused._built(fused._make_cox_op))
        def _cox(op, node=None, **kwargs):
            return cox_function(op.weighted, op.delayed, op.has_offset)

        @jax_funcify.register(fused._built(fused._make_exposure_op))
        def _exposure(op, node=None, **kwargs):
            return exposure_function(op.has_offset)

        @jax_funcify.register(fused._built(fused._make_piecewise_op))
        def _piecewise(op, node=None, **kwargs):
            return piecewise_function(op.has_offset, op.has_entry, op.weighted)

        _registered = True


def _jax():
    """``(jax, jax.numpy)`` with 64-bit floats on (as pytensor's JAX linker sets them): the kernels' numbers are
    float64, as everywhere else."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    return jax, jnp


def _eta(beta, XT, offset, has_offset):
    eta = beta @ XT
    return eta + offset if has_offset else eta


def _segmented_sums(x, first, jax, jnp):
    """``out[i] = x[a] + ... + x[i]`` with ``a`` the last ``i' <= i`` where ``first[i']`` (a segment's first element)."""

    def add(left, right):
        return left[0] | right[0], jnp.where(right[0], right[1], left[1] + right[1])

    return jax.lax.associative_scan(add, (first, x))[1]


def cox_function(weighted: bool, delayed: bool, has_offset: bool):
    """``CoxPartialLoglik``'s outputs ``(value, d/d beta, d/d offset)`` as a JAX function of its inputs."""
    jax, jnp = _jax()

    def cox_partial_loglik(beta, XT, offset, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order):
        eta = _eta(beta, XT, offset, has_offset)
        n = eta.shape[0]
        # Strata are contiguous blocks, bounded by the events' stratum starts and ends. Each stratum with events is
        # shifted by its own largest linear predictor, as in the numba kernel (one shift for all rows rounds a
        # stratum far below another to zero); the rows of strata without events are in no risk set: r = 0.
        start = jnp.zeros(n + 1, jnp.int64).at[ss].set(1)
        stop = jnp.zeros(n + 1, jnp.int64).at[end].set(1)
        block = jnp.cumsum(start + stop)[:n]
        in_risk_sets = jnp.cumsum(start - stop)[:n] > 0
        shift = jax.lax.stop_gradient(jax.ops.segment_max(eta, block, num_segments=n + 2)[block])
        # every running sum restarts at its stratum's bounds (a segmented scan), as in the numba kernel: one sum
        # over all rows made a stratum's risk sums differences holding every later stratum's rows
        new_block = jnp.concatenate([jnp.ones(1, bool), block[1:] != block[:-1]])
        ends_block = jnp.concatenate([block[1:] != block[:-1], jnp.ones(1, bool)])
        zero = jnp.zeros(1)

        def suffix(x):  # sum of x from each row to its block's end; 0 at n
            return jnp.concatenate([_segmented_sums(x[::-1], ends_block[::-1], jax, jnp)[::-1], zero])

        def before(x, at):  # sum of x over the block's rows before position ``at`` (the stratum's start ss)
            return jnp.where(at > ss, _segmented_sums(x, new_block, jax, jnp)[at - 1], 0.0)

        def loglik(eta):  # the shift cancels: its own derivative is zero
            r = jnp.where(in_risk_sets, jnp.exp(eta - shift), 0.0)
            if weighted:
                r = r * w
            R = suffix(r)
            after = jnp.where(gd < end, R[gd], 0.0)  # the stratum's rows after the tie group
            risk = (1.0 - frac) * (R[g] - after) + after
            if delayed:  # the two forms of risk_set_sums, each within the stratum
                r_e = r[entry_order]
                later = jnp.where(es < end, suffix(r_e)[es], 0.0)  # entry >= t: not yet at risk
                forward = before(r_e, es) - before(r, g) - frac * (R[g] - after)  # entered by t, minus gone
                risk = jnp.where(later < 0.5 * R[g], risk - later, forward)
            return jnp.sum(ew * eta[ev] - c * (jnp.log(risk) + shift[ev]))

        total, g_eta = jax.value_and_grad(loglik)(eta)
        return total, XT @ g_eta, g_eta if has_offset else jnp.zeros(0)

    return cox_partial_loglik


def exposure_function(has_offset: bool):
    """``ExposureSum``'s outputs ``(sum v exp(eta), d/d beta, exp(eta), d/d offset)`` as a JAX function."""
    _, jnp = _jax()

    def exposure_sum(beta, XT, offset, v):
        e = jnp.exp(_eta(beta, XT, offset, has_offset))
        ve = v * e
        return jnp.sum(ve), XT @ ve, e, ve if has_offset else jnp.zeros(0)

    return exposure_sum


def piecewise_function(has_offset: bool, has_entry: bool, weighted: bool):
    """``PiecewiseCells``'s outputs ``(value, d/d beta, d/d A, d/d W, d/d R, d/d eta)`` as a JAX function; the
    value is :func:`.fused.piecewise_cells`'s, the cells' gradients sums over each cell's rows."""
    _, jnp = _jax()

    def piecewise_cells(beta, XT, offset, A, W, R, cell, into, cell_e, into_e, d, w):
        k = A.shape[0]
        wd = w * d if weighted else d
        e = jnp.exp(_eta(beta, XT, offset, has_offset))
        if weighted:
            e = w * e
        h = W[cell] + R[cell] * into
        gW = -jnp.zeros(k).at[cell].add(e)
        gR = -jnp.zeros(k).at[cell].add(e * into)
        if has_entry:
            h = h - (W[cell_e] + R[cell_e] * into_e)
            gW = gW.at[cell_e].add(e)
            gR = gR.at[cell_e].add(e * into_e)
        g_eta = -e * h
        total = jnp.sum(wd * A[cell]) + jnp.sum(g_eta)
        return total, XT @ g_eta, jnp.zeros(k).at[cell].add(wd), gW, gR, g_eta

    return piecewise_cells
