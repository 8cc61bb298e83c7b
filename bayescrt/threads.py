"""BLAS held to one thread around work that runs its own threads, or whose numbers must not depend on BLAS's.

A matrix product split over OpenBLAS's threads sums in another order than on one thread (last-bit differences,
so draws that depend on the machine's thread count), and OpenBLAS's threads spin for a while after a product,
taking the cores from threads the package runs itself. One controller is kept for the process: entering
``threadpoolctl.threadpool_limits`` looks up every loaded library again (0.8 ms a time, against 0.01 ms).

The limit is process-wide, so entries from several threads (fits on a threaded Dask worker) are counted: the
first sets it, the last restores what was there before the first.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_LOCK = threading.Lock()
_STATE = {"controller": None, "depth": 0, "limiter": None}


@contextmanager
def one_blas_thread():
    """Within it BLAS runs on one thread; on leaving the last such block the previous limits come back."""
    with _LOCK:
        if _STATE["controller"] is None:
            from threadpoolctl import ThreadpoolController

            _STATE["controller"] = ThreadpoolController()
        if _STATE["depth"] == 0:
            _STATE["limiter"] = _STATE["controller"].limit(limits=1, user_api="blas")
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                _STATE["limiter"].restore_original_limits()
                _STATE["limiter"] = None
