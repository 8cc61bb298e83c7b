"""The chains of one fit (bayescrt.chains): a seed per chain, and the same draws here and on a Dask cluster.

Each chain is a one-chain nutpie run whose draws depend on its seed alone, so a fit whose chains
ran as tasks on the workers of a LocalCluster (separate processes, each compiling the model it was
sent) holds exactly the numbers of a fit in this process with the same ``random_seed``: equality,
not a tolerance, since the same compiled arithmetic runs on the same inputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescrt as bc
from bayescrt import chains
from bayescrt.errors import DiagnosticsWarning, SpecError
from seeds import seed

distributed = pytest.importorskip("distributed")


def test_each_chain_has_its_own_seed_and_the_first_ones_do_not_depend_on_how_many():
    four, eight = chains.chain_seeds(7, 4), chains.chain_seeds(7, 8)
    assert eight[:4] == four
    assert len(set(eight)) == 8
    assert chains.chain_seeds(8, 4) != four
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in eight)


def _trace(value, n_draws=3):
    post = xr.Dataset({"b": (("chain", "draw"), np.full((1, n_draws), value))}, coords={"chain": [0]})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, n_draws), bool))}, coords={"chain": [0]})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def test_chains_are_put_side_by_side_numbered_in_order():
    tree = chains.combine([_trace(1.0), _trace(2.0), _trace(3.0)])
    assert tree.posterior.chain.values.tolist() == [0, 1, 2]
    assert tree.posterior.b.values[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert tree.sample_stats.diverging.shape == (3, 3)
    with pytest.raises(ValueError):  # chains of different lengths are an error, not padded
        chains.combine([_trace(1.0), _trace(2.0, n_draws=4)])


def _cohort(n=400):
    rng = np.random.default_rng(seed(31))
    site = rng.integers(0, 8, n)
    age = rng.normal(70, 8, n)
    t = rng.exponential(10 * np.exp(-0.02 * (age - 70) - 0.2 * (site % 3)))
    c = rng.exponential(15, n)
    return pd.DataFrame({"years": np.minimum(t, c), "died": (t <= c).astype(int), "age": age,
                         "male": rng.random(n) < 0.6, "site": site})


def test_scheduler_is_checked_before_anything_is_built():
    df = _cohort(50)
    kw = dict(time="years", event="died", covariates=["age"], draws=10, tune=10)
    with pytest.raises(SpecError, match=r"scheduler=123.*address"):
        bc.CoxPH().fit(df, scheduler=123, **kw)
    with pytest.raises(SpecError, match=r"sampler='pymc' samples here only"):
        bc.CoxPH(sampler="pymc").fit(df, scheduler="tcp://127.0.0.1:8786", **kw)
    with pytest.raises(SpecError, match=r"scheduler='localhost': no dask.distributed scheduler answered"):
        bc.CoxPH().fit(df, scheduler="localhost", **kw)  # no port: refused before any connection is tried
    with pytest.raises(SpecError, match=r"compiled_models=.*drop one"):
        bc.CoxPH().fit(df, scheduler="tcp://127.0.0.1:8786", compiled_models=bc.compiled.CompiledModels(), **kw)


@pytest.mark.mcmc
def test_chains_on_a_dask_cluster_give_the_local_fit():
    df = _cohort()
    before = df.copy()
    kw = dict(time="years", event="died", covariates=["age", "male"], strata="site", draws=200, tune=200, chains=3,
              random_seed=seed(5), progress=False, log_likelihood=False)
    est = bc.CoxPH()
    with warnings.catch_warnings():  # what is tested is equality of the draws, whatever their convergence
        warnings.simplefilter("ignore", DiagnosticsWarning)
        local = est.fit(df, **kw)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            remote = est.fit(df, scheduler=cluster.scheduler_address, **kw)
    pd.testing.assert_frame_equal(df, before)
    for group in ("posterior", "sample_stats"):
        a, b = local.idata[group].to_dataset(), remote.idata[group].to_dataset()
        assert sorted(a.data_vars) == sorted(b.data_vars)
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=f"{group}.{v}")
        assert a.coords.to_dataset().equals(b.coords.to_dataset())  # attrs hold creation times
    assert remote.sampling["chain_seeds"] == local.sampling["chain_seeds"] == chains.chain_seeds(seed(5), 3)
    assert remote.sampling["scheduler"] == cluster.scheduler_address
    assert "scheduler" not in local.sampling
    # the chains differ from each other: each ran with its own seed, not one seed three times
    lhr = local.idata.posterior["log_hr"].values
    assert not np.array_equal(lhr[0], lhr[1]) and not np.array_equal(lhr[1], lhr[2])
