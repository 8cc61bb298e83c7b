"""The registry of published results: validated entries, consistency checks and re-analysis.

``list()`` gives one row per reported result, ``get(id)`` one study (or
``"<study>/<result>"`` one result), ``check()`` the consistency problems,
``published_log_estimates(ids)`` results as log estimates with SEs, to pool.
Every effect is stored as *exposed vs reference* (upgrade vs de novo in the
seed studies); see ``schema`` for the file format.
"""

from .checks import Problem, check
from .estimates import published_log_estimates
from .registry import Result, Study, get, load_file, studies
from .registry import table as list  # noqa: A004 - the documented public name
from .schema import COMPARISONS, RegistryError

__all__ = ["COMPARISONS", "Problem", "RegistryError", "Result", "Study", "check", "get", "list", "load_file",
           "published_log_estimates", "studies"]
