"""What a fit's later steps import and load, started on a helper thread while the fit checks its data.

A fit in a fresh process imports PyMC (0.5 s) when it builds its model, initialises numba and loads its first
compiled kernel from the disk cache (0.3 s, SciPy's linear algebra among numba's own imports) for the
maximum-likelihood start, and imports ArviZ's statistics (0.6 s: SciPy's statistics, ``xarray_einstats``) for
its diagnostics. :func:`start` begins all three, in that order, on one helper thread (the kernel given by the
caller, so that this module stays below the families): they then run beside the
data checks (a second at N = 1,000,000), the compilation and the sampler's kernels (which release the GIL), and
a step that needs one of them waits only for what is left of it (Python's import lock). From the helper's short
stack, ``arviz_base``'s request for the absent ``numpyro`` through ``lazy_loader``, which inspects every frame of the
caller's stack, costs little (0.6 s more from 80 frames deep, as in a notebook). Where JAX is installed (the ``jax``
and ``test`` extras) that inspection also imports JAX, which ``arviz_base`` had registered as a lazy module
(scientific-python/lazy-loader#131, python/cpython#139669). Where Dask is installed (the ``dask`` and ``test``
extras), xarray's first Dataset imports ``dask.array`` (0.3-0.45 s). These imports hold the GIL, so on two cores they
bound a fresh process's first fit: in first fits at N = 50,000 the helper's steps and ``dask.array`` took 2.5-3.4 s
with JAX and Dask installed, 1.6-2.1 s with neither (ArviZ's statistics 1.6-2.2 s against 1.0-1.5 s).

Nothing here is required: whatever fails on the helper is left for the import where it is needed to raise.

Those imports and the first compilation create about 190,000 long-lived Python objects. At its default thresholds
Python's cyclic garbage collector makes a full collection, a pass over the whole heap, each time the long-lived
objects grow by a quarter: three during a fresh process's first fit, 0.45-0.5 s of it at N = 8,880.
:func:`first_fit` holds the full collections off for that one fit (the younger generations are collected as
usual) and makes the one full collection the new objects call for when the fit ends: 0.6 -> 0.3 s of collection in
all. Later fits, which import nothing, leave the collector alone. Only the oldest generation's threshold changes,
and it comes back unless someone set it meanwhile; a process forked during the fit gets it back at once. The hold
is for the generational collector of CPython 3.12 and 3.13 with the GIL; elsewhere nothing is held.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import sysconfig
import threading

_STARTED: list = []  # the helper thread, once per process
_LOCK = threading.Lock()
_HELD = 10**6  # the oldest generation's threshold while its collections are held off: 7 x 10**9 allocations away
# the generational thresholds this hold relies on: CPython 3.12 and 3.13 with the GIL (3.14's collector and the
# free-threaded build's read the oldest generation's threshold otherwise)
_GENERATIONAL = (sys.implementation.name == "cpython" and sys.version_info[:2] in ((3, 12), (3, 13))
                 and not sysconfig.get_config_var("Py_GIL_DISABLED"))
_HOLD: list = []  # the oldest generation's own threshold while a hold is on


def _release() -> None:
    """The oldest generation's threshold back, where the hold's value is still there (nobody retuned it since)."""
    if not _HOLD:  # released already (in a forked child that then left the block)
        return
    own = _HOLD.pop()
    now = gc.get_threshold()
    if now[2] == _HELD:
        gc.set_threshold(now[0], now[1], own)


def _work(steps) -> None:
    for step in (lambda: __import__("pymc"), *steps, lambda: __import__("arviz_stats")):
        try:
            step()
        except Exception:  # noqa: BLE001  (raised again, where it matters, by the import that needs it)
            pass


def start(*steps) -> bool:
    """Start the helper thread (once per process; not at all when everything it imports is already there): PyMC,
    then each of ``steps`` (callables: a family's first compiled kernel), then ArviZ's statistics. Whether this
    call started it."""
    with _LOCK:
        if _STARTED or all(m in sys.modules for m in ("pymc", "arviz_stats")):
            return False
        _STARTED.append(threading.Thread(target=_work, args=(steps,), name="bayescrt-prefetch", daemon=True))
    _STARTED[0].start()
    return True


@contextlib.contextmanager
def first_fit(*steps):
    """:func:`start`; when this call started the helper (a fresh process's first fit) and the collector is on, the
    collector's full collections held off until the block ends, however it ends, and one made then (module
    docstring). Yields whether they were held."""
    thresholds = gc.get_threshold()
    held = start(*steps) and _GENERATIONAL and gc.isenabled() and thresholds[0] > 0
    if held:
        _HOLD.append(thresholds[2])
        gc.set_threshold(thresholds[0], thresholds[1], _HELD)
    try:
        yield held
    finally:
        if held:
            _release()
            gc.collect()


if hasattr(os, "register_at_fork"):  # a process forked during the hold never leaves the first fit's block
    os.register_at_fork(after_in_child=_release)
