"""Posterior summaries shared by every module: the central interval of draws.

One definition of the interval bounds, so that every table, plot and test of
the package means the same thing by a "95% interval": the equal-tailed
interval between the ``(1 - prob) / 2`` and ``(1 + prob) / 2`` quantiles.
"""

from __future__ import annotations

import numpy as np


def interval_probs(prob: float) -> tuple[float, float, float]:
    """The lower-tail, median and upper-tail probabilities of a central ``prob`` interval."""
    a = (1 - prob) / 2
    return a, 0.5, 1 - a


def central_interval(draws, prob: float, axis=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, median, upper)``: the equal-tailed ``prob`` interval and median of ``draws`` along ``axis``."""
    lo, med, hi = np.quantile(draws, interval_probs(prob), axis=axis)
    return lo, med, hi
