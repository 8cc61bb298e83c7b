"""Arrays for the large results a fit writes once: the stored log-likelihood.

numpy asks Linux for transparent huge pages on every array of 4 MB or more. Where the system has no recently freed
huge page at hand, the first touch of one costs far more than that of small pages on a virtual machine: writing a
fresh 284 MB array (a Weibull fit's per-row log-likelihood at N = 8,880) took 0.91-1.01 s through numpy's
allocation on the 2-core virtual machine of ``benchmarks/``, and 0.12-0.13 s through small pages (0.02 s when freed
huge pages happened to be at hand). A stored log-likelihood is written once, a row at a time, and read a few times,
so huge pages buy it little: :func:`written_once` maps it with small pages, private to the process (as numpy's own
memory is). Elsewhere than on Linux, and below 4 MB, it is ``np.empty``.
"""

from __future__ import annotations

import mmap
import operator
import sys

import numpy as np

SMALLEST = 4 << 20  # bytes: numpy's own threshold for asking for huge pages


def written_once(shape) -> np.ndarray:
    """An uninitialised float64 array of ``shape`` (zeros where mapped afresh), freed with its last reference."""
    try:  # whole numbers as np.empty takes them: a float, NaN or text is refused, not truncated
        dims = tuple(operator.index(s) for s in (shape if np.iterable(shape) else (shape,)))
    except TypeError:
        raise TypeError(f"written_once: shape={shape!r} must be whole numbers, e.g. (4, 1000, 4167)") from None
    if any(s < 0 for s in dims):
        raise ValueError(f"written_once: shape={shape!r} has a negative length; lengths are 0 or more")
    shape = dims
    nbytes = int(np.prod(shape)) * 8
    if nbytes < SMALLEST or not sys.platform.startswith("linux"):
        return np.empty(shape)
    try:
        pages = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    except OSError as err:  # as numpy says it, so that a caller's "except MemoryError" still holds
        raise MemoryError(f"cannot allocate {nbytes / 2**30:.2f} GiB for an array of shape {shape}: {err}; store "
                          "less (log_likelihood=False) or free memory") from err
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # also where the system gives huge pages unasked (THP "always")
        pages.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(pages, dtype=np.float64).reshape(shape)
