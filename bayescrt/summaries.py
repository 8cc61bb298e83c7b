"""Posterior summaries shared by every module: the central interval of draws, and ``Draws`` (draws a table
keeps in its ``attrs``).

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


class Draws(np.ndarray):
    """Posterior draws kept in a table's ``attrs``: a plain array to read, which equals another ``Draws`` only when
    they hold the same draws. pandas compares ``attrs`` when it concatenates or prints a wide table; a plain array
    there answers with an array, which pandas cannot take as true or false."""

    def __new__(cls, values):
        return np.asarray(values).view(cls)

    def __eq__(self, other):
        if isinstance(other, Draws):
            return bool(self.shape == other.shape and np.array_equal(np.asarray(self), np.asarray(other)))
        return np.asarray(self) == other

    def __ne__(self, other):
        if isinstance(other, Draws):
            return not self.__eq__(other)
        return np.asarray(self) != other

    __hash__ = None

    def __getitem__(self, key):
        return np.asarray(self)[key]

    def __array_wrap__(self, array, context=None, return_scalar=False):
        out = np.asarray(array)
        return out[()] if return_scalar else out
