"""BLAS held to one thread around work that runs its own threads, or whose numbers must not depend on BLAS's.

A matrix product split over OpenBLAS's threads sums in another order than on one thread (last-bit differences,
so draws that depend on the machine's thread count), and OpenBLAS's threads spin for a while after a product,
taking the cores from threads the package runs itself. One controller is kept for the process: entering
``threadpoolctl.threadpool_limits`` looks up every loaded library again (0.8 ms a time, against 0.01 ms).
"""

from __future__ import annotations

import threading

_CONTROLLER = None
_LOCK = threading.Lock()


def one_blas_thread():
    """A context manager within which BLAS runs on one thread (the previous limits are restored on exit)."""
    global _CONTROLLER
    with _LOCK:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
