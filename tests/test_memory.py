"""bayescrt.memory.written_once: the arrays a stored log-likelihood is written into.

What is asserted, and why it could fail: the array has the shape asked for, float64, writeable, C-contiguous, and on
Linux above 4 MB it is memory of its own (two arrays never share it, a view of it writes through to it); it keeps
what is written, survives pickling (as Dask and the saved fits need) and takes numpy's arithmetic like any array.
"""

import pickle
import sys

import numpy as np
import pytest

from bayescrt.memory import SMALLEST, written_once


@pytest.mark.parametrize("shape", [(3, 5), (4, 1000, 300), (2, SMALLEST // 8)])
def test_an_array_of_the_shape_asked_for_that_keeps_what_is_written(shape):
    a = written_once(shape)
    assert a.shape == shape and a.dtype == np.float64 and a.flags.writeable and a.flags.c_contiguous
    values = np.random.default_rng(0).normal(size=shape)
    a[...] = values
    a[1][..., 0] = 7.0  # through a view
    values[1][..., 0] = 7.0
    np.testing.assert_array_equal(a, values)
    b = written_once(shape)
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)), values)
    assert float((a * 2).sum()) == pytest.approx(2 * float(values.sum()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the small-page mapping is for Linux")
def test_above_numpy_s_huge_page_threshold_the_array_is_a_private_mapping():
    import mmap

    big, small = written_once((SMALLEST // 8,)), written_once((10,))
    owner = big
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert isinstance(getattr(owner, "obj", owner), mmap.mmap)
    assert small.flags.owndata
    assert not big.any()  # a fresh private mapping reads as zeros


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the small-page mapping is for Linux")
def test_memory_that_cannot_be_had_is_numpy_s_memory_error_naming_the_size():
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import resource
        from bayescrt.memory import written_once
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        try:
            written_once(((4 << 30) // 8,))
        except MemoryError as err:
            print("MemoryError", err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("MemoryError cannot allocate 4.00 GiB"), out.stdout + out.stderr


@pytest.mark.parametrize("shape, error, message", [((2.5, 3), TypeError, "whole numbers"),
                                                   ((float("nan"), 3), TypeError, "whole numbers"),
                                                   (("a",), TypeError, "whole numbers"),
                                                   (float("inf"), TypeError, "whole numbers"),
                                                   ((10**7, -1), ValueError, "negative length")])
def test_a_shape_that_is_not_whole_non_negative_numbers_is_refused_by_name(shape, error, message):
    with pytest.raises(error, match=f"written_once: shape=.*{message}"):
        written_once(shape)


def test_numpy_integers_and_a_bare_length_are_shapes():
    assert written_once((np.int64(3), np.int32(4))).shape == (3, 4)
    assert written_once(7).shape == (7,) and written_once(()).shape == ()
