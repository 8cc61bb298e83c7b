"""bayescrt: Bayesian proportional-hazards models for upgrade vs de novo CRT.

The package's names are imported when first used (``bc.CoxPH`` imports the estimators, ``bc.sensitivity``
the grid runner), so that ``import bayescrt`` and the command line's argument and path checks cost a
fraction of a second rather than the seconds that scipy.stats, xarray and the models take to import.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib import metadata as _metadata

from .errors import DataError, DataWarning, DiagnosticsWarning, ResultFileError, SpecError
from .families import registry as _registry

# name -> (submodule, attribute; None for the submodule itself)
_LAZY = {
    "absolute": ("absolute", None), "bias": ("bias", None), "datasets": ("datasets", None),
    "published": ("published", None), "sensitivity": ("sensitivity", None),
    "Comparison": ("compare", "Comparison"), "compare": ("compare", "compare"),
    "CovariateSetFits": ("covariate_sets", "CovariateSetFits"), "CovariateSets": ("covariate_sets", "CovariateSets"),
    "fit_covariate_sets": ("covariate_sets", "fit_covariate_sets"),
    "SurvivalData": ("data", "SurvivalData"), "DiagnosticReport": ("diagnostics", "DiagnosticReport"),
    "Fit": ("fit", "Fit"), "load": ("fit", "load"),
    "MetaAnalysis": ("meta", "MetaAnalysis"), "MetaFit": ("meta", "MetaFit"),
    "compare_models": ("model_comparison", "compare_models"), "durations": ("durations", "durations"),
    "baseline_table": ("table_one", "baseline_table"),
    "report": ("report", "report"), "analyse": ("reproduce", "analyse"),
    "multiverse": ("multiverse", "multiverse"), "Multiverse": ("multiverse", "Multiverse"),
    "propensity_weights": ("propensity", "propensity_weights"),
    "CompetingRisks": ("competing", "CompetingRisks"), "CompetingRisksFit": ("competing", "CompetingRisksFit"),
    "cumulative_incidence": ("competing", "cumulative_incidence"),
    "cumulative_incidence_contrast": ("competing", "cumulative_incidence_contrast"),
    "impute": ("impute", "impute"), "missingness": ("impute", "missingness"), "simulate": ("simulate", "simulate"),
    "simulate_competing": ("simulate", "simulate_competing"),
    "true_cumulative_incidence": ("simulate", "true_cumulative_incidence"),
    # every registered model family's estimator: bc.CoxPH, bc.WeibullPH, ...
    **{name: ("estimators", name) for name in _registry.names()},
}
# Functions named like their own submodule: bc.compare, bc.simulate, bc.durations, bc.impute and bc.report are the functions, also after the
# submodules bayescrt.compare and bayescrt.simulate have been imported (which would set the name to the module).
_FUNCTIONS_NAMED_LIKE_MODULES = ("compare", "simulate", "durations", "impute", "report", "multiverse")


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'bayescrt' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(f"{__name__}.{module}")
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _FUNCTIONS_NAMED_LIKE_MODULES and isinstance(value, types.ModuleType):
            return  # the import system recording a loaded submodule: the name stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

try:
    __version__ = _metadata.version("bayescrt")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "absolute", "bias", "compare", "compare_models", "Comparison", "CompetingRisks", "CompetingRisksFit",
    "cumulative_incidence", "cumulative_incidence_contrast", "CovariateSetFits", "CovariateSets",
    "DataError", "datasets", "DataWarning", "DiagnosticReport", "DiagnosticsWarning", "Fit",
    "fit_covariate_sets", "load", "MetaAnalysis", "MetaFit", "multiverse", "Multiverse", "propensity_weights", "published",
    "ResultFileError", "sensitivity", "simulate", "SpecError", "SurvivalData", *_registry.names(),
]
