"""Fits of multiply imputed data pooled into one posterior (Zhou and Reiter 2010).

Given ``m`` completed data sets, each is fitted on its own (same model, its own seed) and the posterior
draws are mixed in equal numbers: the chains of every imputation side by side along ``chain``. Zhou and
Reiter (2010, The American Statistician 64:159-163) show that this mixture, not Rubin's combining rules,
is the Bayesian answer, and that it needs many imputations: with few (m = 5) the intervals' coverage
falls short; they use m = 100, and m >= 20 is a floor for a reported analysis.

Each imputation's convergence is checked on its own (R-hat across imputations would only measure how
the imputations differ): the pooled fit passes its diagnostics only when every imputation does, also
when read back from its file (``Fit.diagnostics`` splits the chains by imputation).
:func:`missing_information` gives, per covariate, the within- and between-imputation
variances of the log-HR and the fraction of missing information ``(1 + 1/m) B / T``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from .errors import SpecError
from .fit import MIN_REPORTED_IMPUTATIONS, Fit, seal


def imputation_seeds(random_seed: int | None, m: int) -> list[int]:
    """A seed per imputation's fit from ``random_seed`` (the first k are the same whatever ``m``)."""
    seq = np.random.SeedSequence(random_seed)
    return [int(s.generate_state(1)[0]) for s in seq.spawn(m)]


def check_frames(frames) -> list[pd.DataFrame]:
    """A list of completed DataFrames: at least two, with the same columns and the same rows."""
    if isinstance(frames, pd.DataFrame) or not isinstance(frames, (list, tuple)):
        raise SpecError("imputed data must be a list of completed DataFrames, e.g. bc.impute(df, m=20)")
    frames = list(frames)
    if len(frames) < 2:
        raise SpecError(f"imputed data: {len(frames)} completed DataFrame given; pooling needs at least 2 "
                        f"(Zhou and Reiter 2010 use 100; {MIN_REPORTED_IMPUTATIONS} is a floor for a reported analysis)")
    for k, f in enumerate(frames):
        if not isinstance(f, pd.DataFrame):
            raise SpecError(f"imputed data: item {k} is a {type(f).__name__}, not a DataFrame")
        if list(f.columns) != list(frames[0].columns):
            raise SpecError(f"imputed data: DataFrame {k} has columns {list(f.columns)}, DataFrame 0 has "
                            f"{list(frames[0].columns)}; every imputation must complete the same data")
        if not f.index.equals(frames[0].index):
            raise SpecError(f"imputed data: DataFrame {k} has other rows (index) than DataFrame 0; every "
                            "imputation must complete the same rows")
    return frames


class PooledFit(Fit):
    """The mixture of the posteriors of ``m`` imputations' fits; ``imputations`` holds each fit."""

    def __init__(self, fits: list[Fit], random_seed: int | None = None, seeds: list[int] | None = None):
        if len(fits) < 2:
            raise SpecError("a pooled fit needs the fits of at least 2 imputations")
        first = fits[0]
        groups = {}
        for g in ("posterior", "sample_stats"):
            parts = []
            offset = 0
            for f in fits:
                ds = f.idata[g].to_dataset()
                ds = ds.assign_coords(chain=ds["chain"].values + offset)
                offset += ds.sizes["chain"]
                parts.append(ds)
            groups[g] = xr.concat(parts, dim="chain")
        tree = xr.DataTree.from_dict(groups)
        tree.attrs.update(first.idata.attrs)
        model = dict(first.model)
        model["imputations"] = len(fits)
        model["imputation"] = {"method": "mixture of posterior draws (Zhou and Reiter 2010)", "m": len(fits),
                               "per_imputation_chains": int(first.idata["posterior"].sizes["chain"]),
                               "random_seed": random_seed, "seeds": seeds}
        tree.attrs["bayescrt_model"] = json.dumps(model)
        seal(tree)  # the pooled tree's own hashes: a saved pooled fit is checked on load like any other
        super().__init__(tree)
        self.imputations = list(fits)
        self.design = getattr(first, "design", None)


def missing_information(fit: Fit) -> pd.DataFrame:
    """The fraction of missing information of a pooled fit (:meth:`bayescrt.fit.Fit.missing_information`)."""
    return fit.missing_information()
