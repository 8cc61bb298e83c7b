"""The fused likelihood operations under JAX: what ``sampler="nutpie-jax"`` runs, on a GPU where JAX finds one.

nutpie's JAX backend compiles a PyMC model's log density with pytensor's JAX linker, which needs a JAX
function for every operation of the graph. :func:`register` gives one to each operation of
:mod:`.fused` (the Cox partial likelihood, the exposure sum of the Weibull and exponential likelihoods,
the piecewise-exponential likelihood by cells), with the operation's outputs: the value and the same
gradients, so that pytensor's gradient graph (``gradient_backend="pytensor"``) reads them from the one
call, as it does from the numba kernels.

The Cox value's risk-set sums are :func:`~.partial_likelihood.risk_set_sums`, the function the model's
pytensor twin and the numpy checks use, with ``jax.numpy`` as its array module (cumulative sums and
gathers: O(N) and no N x N matrix, the same on a GPU), of each row's risk shifted by its stratum's
largest linear predictor as in the numba kernel; its gradient with respect to the linear predictor is
JAX's reverse pass, that with respect to the coefficients one product with the covariates. The other two
are a few lines of ``jax.numpy`` each.

JAX is never needed otherwise, and never installed by default (``pip install "bayescrt[jax]"``, or
JAX's own instructions for a GPU build). ``tests/test_fused_jax.py`` checks each operation against
its numba kernel at random points for every option combination, on JAX's CPU backend.
"""

from __future__ import annotations

import threading

from . import fused
from .partial_likelihood import RiskSets, risk_set_sums

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


def cox_function(weighted: bool, delayed: bool, has_offset: bool):
    """``CoxPartialLoglik``'s outputs ``(value, d/d beta, d/d offset)`` as a JAX function of its inputs."""
    jax, jnp = _jax()

    def cox_partial_loglik(beta, XT, offset, ev, g, gd, end, ss, es, frac, ew, c, w, entry_order):
        rs = RiskSets(event_rows=ev, group_start=g, group_events_end=gd, stratum_end=end, stratum_start=ss,
                      tie_fraction=frac, event_weight=ew, log_weight=c, weights=w if weighted else None,
                      entry_order=entry_order if delayed else None, entry_start=es if delayed else None)
        eta = _eta(beta, XT, offset, has_offset)
        n = eta.shape[0]
        # each stratum with events shifted by its own largest linear predictor, as the numba kernel does: one shift
        # for all rows rounds a stratum far below another to zero. Strata are contiguous blocks, bounded by the
        # events' stratum starts and ends; the rows of strata without events (a block between or after them) are in
        # no risk set and get r = 0, or they would enter the reverse sums of every earlier stratum at their own
        # scale and leave that stratum's risk sums differences of large numbers.
        start = jnp.zeros(n + 1, jnp.int64).at[ss].set(1)
        stop = jnp.zeros(n + 1, jnp.int64).at[end].set(1)
        block = jnp.cumsum(start + stop)[:n]
        in_risk_sets = jnp.cumsum(start - stop)[:n] > 0
        shift = jax.lax.stop_gradient(jax.ops.segment_max(eta, block, num_segments=n + 2)[block])

        def loglik(eta):  # the shift cancels: its own derivative is zero
            r = jnp.where(in_risk_sets, jnp.exp(eta - shift), 0.0)
            if weighted:
                r = r * w
            return jnp.sum(ew * eta[ev] - c * (jnp.log(risk_set_sums(r, rs, jnp)) + shift[ev]))

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
