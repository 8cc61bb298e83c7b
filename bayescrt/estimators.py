"""Estimators: every registered model family's estimator class, by name.

``bayescrt.estimators.CoxPH`` and friends are the classes that
:mod:`bayescrt.families.registry` lists; the fitting pipeline they share is
:class:`bayescrt.families.base.Estimator`, and each family's own code is its
module in :mod:`bayescrt.families`. This module holds no statistics.
"""

from __future__ import annotations

from .families import registry
from .families.base import LOGLIK_MAX_BYTES, Estimator  # noqa: F401


def __getattr__(name: str):
    if name in registry.REGISTRY:
        return registry.estimator_class(name)
    raise AttributeError(f"module 'bayescrt.estimators' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *registry.names()])
