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
from .fit import Fit, seal
from .impute import check_frames  # noqa: F401  (here too: pooling is where a reader looks for it)


def imputation_seeds(random_seed: int | None, m: int) -> list[int]:
    """A seed per imputation's fit from ``random_seed`` (the first k are the same whatever ``m``)."""
    seq = np.random.SeedSequence(random_seed)
    return [int(s.generate_state(1)[0]) for s in seq.spawn(m)]


class PooledFit(Fit):
    """The mixture of the posteriors of ``m`` imputations' fits; ``imputations`` holds each fit."""

    def __init__(self, fits: list[Fit], random_seed: int | None = None, seeds: list[int] | None = None):
        if len(fits) < 2:
            raise SpecError("a pooled fit needs the fits of at least 2 imputations")
        first = fits[0]
        groups = {}
        shared = [g for g in ("log_likelihood",) if all(g in f.idata.children for f in fits)]
        for g in ("posterior", "sample_stats", *shared):
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
