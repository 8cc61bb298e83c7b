"""Baseline cumulative hazards per posterior draw, for every family.

``baseline_cumhaz(fit, times)`` returns ``H0`` with shape (draws, strata, times):
the cumulative hazard of a subject whose covariates sit at their centre (the
model's ``center``), so that a subject with covariates ``x`` in stratum ``s``
has ``H(t | x) = H0[s, t] * exp((x - center) @ log_hr)``. Each family computes
its own (:meth:`bayescrt.families.base.Estimator.baseline_cumhaz`).

For Cox fits it is Breslow's estimator computed with each draw's log-HRs,
``H0(t) = sum over event times <= t of (weighted events) / (risk-set sum of
w exp(eta))``, with the risk sets of the fit (strata, delayed entry) and O(N)
work per draw. Frailty and study-level fits are refused: their baseline is
conditional on cluster or study effects, and absolute effects for them are
not defined here.
"""

from __future__ import annotations

import numpy as np

from .families import registry
from .families.base import fit_data as survival_data  # noqa: F401


def baseline_cumhaz(fit, times, max_draws: int | None = None) -> np.ndarray:
    """``H0`` per draw, stratum and time for any family (see the module docstring)."""
    return registry.of_fit(fit).baseline_cumhaz(fit, times, max_draws)
