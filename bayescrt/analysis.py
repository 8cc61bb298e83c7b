"""From a checked spec to the things it describes: the estimator and the synthetic cohort.

:mod:`bayescrt.spec` reads and checks a spec as data and imports no model code;
this module is the step above it that does: :func:`estimator` builds the
spec's ``[model]`` (the family from the family registry, its options from the
spec) and :func:`simulate_cohort` simulates the spec's ``[cohort]`` with the
calibrated free parameters.
"""

from __future__ import annotations

import pandas as pd

from .errors import SpecError
from .families import registry
from .simulate import simulate
from .spec import AnalysisSpec


def estimator(spec: AnalysisSpec):
    """The estimator of the spec's ``[model]``: ``family`` looked up in the family registry, the other keys
    passed to it as options (``ties = "breslow"`` gives ``CoxPH(ties="breslow")``)."""
    family = spec.raw["model"]["family"]
    try:
        return registry.estimator_class(family)(**spec.model_options)
    except SpecError as err:  # an option's value: say where it is set
        raise SpecError(f"{spec.path} [model] ({family}): {err}") from None


def competing_model(spec: AnalysisSpec):
    """The spec's :class:`bayescrt.CompetingRisks`: each cause's family from ``[competing_risks] families`` (a name,
    or a table of ``family`` and its options), the others the ``[model]`` family with its options."""
    from .competing import CompetingRisks

    cr = spec.competing
    families = {}
    for cause in cr["causes"]:
        fam = cr["families"].get(cause)
        if fam is None:
            families[cause] = estimator(spec)
            continue
        name, opts = (fam, {}) if isinstance(fam, str) else (fam["family"], {k: v for k, v in fam.items()
                                                                            if k != "family"})
        try:
            families[cause] = registry.estimator_class(name)(**opts)
        except SpecError as err:
            raise SpecError(f"{spec.path} [competing_risks] families.{cause} ({name}): {err}") from None
    return CompetingRisks(families=families)


def simulate_cohort(spec: AnalysisSpec, random_seed: int | None = None, **free) -> pd.DataFrame:
    """The spec's synthetic cohort: by default the calibrated one (the recorded cohort seed).

    ``free`` overrides calibrated free parameters (``exposure_hr=1.0``); ``random_seed`` the cohort seed.
    The cohort's ``attrs["spec"]`` names the spec.
    """
    kwargs = spec.simulation_kwargs(**free)
    df = simulate(**kwargs, random_seed=spec.cohort_seed(random_seed))
    df.attrs["spec"] = spec.name
    return df
