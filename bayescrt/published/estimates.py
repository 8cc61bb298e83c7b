"""Registry results as log estimates with standard errors: what a meta-analysis or a prior pools.

Data only (no model code): :class:`bayescrt.meta.MetaAnalysis` pools the table,
and an estimator's ``aggregate=`` study level takes it as data.
"""

from __future__ import annotations

import warnings

import pandas as pd

from ..errors import DataWarning, SpecError
from .registry import Result, get


def published_log_estimates(ids, *, allow_mixed: bool = False, allow_same_study: bool = False):
    """Registry results as a table of log estimates and SEs (columns ``study``, ``estimate``, ``se``).

    Refuses what should not be pooled: non-ratio results, different endpoints,
    estimands or comparisons (unless ``allow_mixed``), two results of one
    study (unless ``allow_same_study``); warns about unverified figures.
    Returns (table, results).
    """
    results = []
    for rid in ids:
        r = get(rid)
        if not isinstance(r, Result):
            raise SpecError(f"{rid!r} names a study; name one of its results: "
                            + ", ".join(f"'{rid}/{k}'" for k in r.results))
        if r.kind != "estimate" or not r.on_log_scale:
            raise SpecError(f"{r.id}: only ratio estimates with a CI can be pooled here (this is {r.kind!r}, "
                            f"{r.estimand}); pool counts with fit_counts.")
        results.append(r)
    kinds = {r.id: r.estimand for r in results}
    if "SHR" in kinds.values() and set(kinds.values()) - {"SHR"}:  # not even with allow_mixed
        raise SpecError("these results mix subdistribution HRs (SHR, Fine-Gray) with other ratios: "
                        + "; ".join(f"{k}: {v}" for k, v in kinds.items())
                        + ". An SHR measures the effect on the risk of a cause, a cause-specific HR the effect on its "
                          "rate; they are different quantities and are never pooled together: pool each on its own.")
    if not allow_mixed:
        for key in ("endpoint", "estimand", "comparison"):
            vals = {r.id: getattr(r, key) for r in results}
            if len(set(vals.values())) > 1:
                raise SpecError(f"these results differ in {key}: " + "; ".join(f"{k}: {v!r}" for k, v in vals.items())
                                + f". Pooling different {key}s answers no single question; choose results that "
                                f"share it, or pass allow_mixed=True if you mean to.")
    studies = [r.study for r in results]
    if not allow_same_study and len(set(studies)) < len(studies):
        twice = sorted({s for s in studies if studies.count(s) > 1})
        raise SpecError(f"several results of the same study ({twice}) share patients; pool one per study, or pass "
                        "allow_same_study=True.")
    unverified = [r.id for r in results if not r.verified]
    if unverified:
        warnings.warn(f"pooling unverified published figures: {unverified}; see `bayescrt published show`.",
                      DataWarning, stacklevel=3)
    rows = [{"study": r.id, "estimate": r.log_estimate()[0], "se": r.log_estimate()[1]} for r in results]
    return pd.DataFrame(rows), results
