"""bayescrt: Bayesian proportional-hazards models for upgrade vs de novo CRT."""

from importlib import metadata as _metadata

from . import absolute, bias, datasets, published, sensitivity
from .compare import Comparison, compare
from .covariate_sets import CovariateSetFits, CovariateSets, fit_covariate_sets
from .data import SurvivalData
from .diagnostics import DiagnosticReport
from .errors import DataError, DataWarning, DiagnosticsWarning, ResultFileError, SpecError
from .estimators import CoxPH, PiecewiseExponentialPH, WeibullPH
from .fit import Fit, load
from .meta import MetaAnalysis, MetaFit
from .model_comparison import compare_models

# The function, not the module: importing the submodule bayescrt.simulate sets the package attribute
# to the module only on its first import, which this line performs; `from bayescrt.simulate import ...`
# still reaches the module through sys.modules.
from .simulate import simulate

try:
    __version__ = _metadata.version("bayescrt")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "absolute", "bias", "compare", "compare_models", "Comparison", "CovariateSetFits", "CovariateSets", "CoxPH",
    "DataError", "datasets", "DataWarning", "DiagnosticReport", "DiagnosticsWarning", "Fit",
    "fit_covariate_sets", "load", "MetaAnalysis", "MetaFit", "PiecewiseExponentialPH", "published",
    "ResultFileError", "sensitivity", "simulate", "SpecError", "SurvivalData", "WeibullPH",
]
