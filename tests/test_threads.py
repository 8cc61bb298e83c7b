"""bayescrt.threads: BLAS on one thread inside, the previous limits back after the last of overlapping entries."""

import threading

import numpy as np
from threadpoolctl import threadpool_info

from bayescrt.threads import one_blas_thread


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_limits_come_back_after_the_last_of_overlapping_entries_from_two_threads():
    """On a machine with 2+ cores BLAS starts with 2+ threads: the first block to leave must not restore them while
    the second is still inside, and the last must restore them."""
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS loaded
    before = _blas_threads()
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with one_blas_thread():
            seen["a"] = _blas_threads()
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second():
        a_in.wait(5)
        with one_blas_thread():
            b_in.set()
            a_out.wait(5)  # the first has left: the limit must hold until this one leaves
            seen["b"] = _blas_threads()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(n == 1 for n in seen["a"]) and all(n == 1 for n in seen["b"])
    assert _blas_threads() == before
