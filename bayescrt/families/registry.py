"""The family registry: each model family's name, where it lives and the options it takes.

Data only (strings), so that the spec layer can check a family name and its
options without importing any model code; :func:`estimator_class` imports a
family's module when it is first asked for. Adding a family is one module in
``bayescrt/families/`` and one line here.
"""

from __future__ import annotations

import importlib

from ..errors import SpecError, suggest

# the options every family's estimator takes (see bayescrt.families.base.Estimator)
COMMON_OPTIONS = ("sampler", "frailty_prior", "centered", "target_accept")

# name -> (module inside bayescrt.families, estimator class, options beyond COMMON_OPTIONS)
REGISTRY = {
    "CoxPH": ("cox", "CoxPH", ("ties",)),
    "WeibullPH": ("weibull", "WeibullPH", ()),
    "PiecewiseExponentialPH": ("piecewise", "PiecewiseExponentialPH", ("cuts", "n_intervals", "rw_order", "tv")),
    "ExponentialPH": ("exponential", "ExponentialPH", ()),
    # the subdistribution hazard of one cause among competing events: fit(cause=...), not a one-cause family
    "FineGray": ("finegray", "FineGray", ()),
}

# families whose fit models one cause among competing events (fit takes cause=); the others model one event
COMPETING = ("FineGray",)


def names(competing: bool = True) -> list[str]:
    """The registered family names, in registration order; ``competing=False`` leaves out :data:`COMPETING`."""
    return [n for n in REGISTRY if competing or n not in COMPETING]


def check_name(name, where: str = "family") -> str:
    """``name`` if it is a registered family, else a SpecError naming the nearest one."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise SpecError(f"{where}={name!r} is not a known model family.{suggest(str(name), REGISTRY)} "
                        f"Choose one of {names()}")
    return name


def options(name: str) -> tuple[str, ...]:
    """The keyword options of a family's estimator (those common to all families first)."""
    return COMMON_OPTIONS + REGISTRY[check_name(name)][2]


def estimator_class(name: str) -> type:
    """The estimator class of a registered family (its module is imported on first use)."""
    module, cls, _ = REGISTRY[check_name(name)]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def of_fit(fit) -> type:
    """The family (its estimator class) that made ``fit``, from the name the fit records."""
    return estimator_class(fit.model["family"])
