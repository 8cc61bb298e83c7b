"""PSIS-LOO on a (draws, observations) array: the same numbers as ArviZ's loo, observation by observation."""

import os
import re

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayescrt.psis import idata_loo, psis_loo, tail_length
from seeds import seed


def _idata(ll: np.ndarray, rng) -> xr.DataTree:
    chains, draws = ll.shape[:2]
    return xr.DataTree.from_dict({
        "posterior": xr.Dataset({"b": (("chain", "draw"), rng.normal(size=(chains, draws)))}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)})})


@pytest.mark.parametrize("draws, n, scale", [(1000, 300, 1.0), (250, 200, 3.0), (60, 40, 0.5)])
def test_pointwise_elpd_and_pareto_k_are_arviz_loo(draws, n, scale):
    """Heavy-tailed log-likelihoods (Student t, 3 df) give Pareto k far above 0.7, where the smoothing and its
    truncation matter most; 60 draws (S r_eff < 225) takes the short tail."""
    rng = np.random.default_rng(20)
    ll = -np.abs(rng.standard_t(3, size=(4, draws, n))) * scale + rng.normal(size=n)
    idata = _idata(ll, rng)
    with pytest.warns(UserWarning):  # ArviZ warns of its high k values
        ref = az.loo(idata, pointwise=True)
    ess = az.ess(idata["posterior"], method="mean")
    r_eff = float(ess["b"]) / (4 * draws)
    elpd, k = psis_loo(ll.reshape(4 * draws, n), r_eff)
    np.testing.assert_allclose(elpd, ref.elpd_i.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(k, ref.pareto_k.values, rtol=0, atol=1e-10)
    assert np.isfinite(k).all() and k.max() > 0.7


@pytest.mark.parametrize("chains", [4, 1])
def test_a_stored_log_likelihood_gives_arviz_loo_summary(chains):
    """The totals compare_models and the competing-risks LOO report: ELPD, its SE and p_loo as ArviZ's loo, with
    the relative efficiency taken from the posterior as ArviZ takes it (1 for a single chain)."""
    rng = np.random.default_rng(21)
    ll = -np.abs(rng.normal(size=(chains, 400, 150))) * 0.3 + rng.normal(size=150)
    idata = _idata(ll, rng)
    ref = az.loo(idata, pointwise=True)
    got = idata_loo(idata, "y")
    np.testing.assert_allclose(got["elpd_i"], ref.elpd_i.values, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got["pareto_k"], ref.pareto_k.values, rtol=0, atol=1e-10)
    for key, want in (("elpd", ref.elpd), ("se", ref.se), ("p_loo", ref.p)):
        assert abs(got[key] - float(want)) < 1e-8, key


def test_the_tail_length_follows_the_draws_and_their_efficiency():
    assert tail_length(4000, 1.0) == 189 and tail_length(4000, 0.5) == 268
    assert tail_length(200, 1.0) == 40  # S r_eff <= 225: a fifth of the draws


def test_a_matrix_of_too_few_draws_is_refused():
    with pytest.raises(ValueError, match="at least 5 draws"):
        psis_loo(np.zeros((3, 10)))


@pytest.mark.parametrize("bad, kind", [(np.nan, "NaN"), (-np.inf, "-inf"), (np.inf, "+inf")])
def test_a_non_finite_log_likelihood_is_refused_naming_the_observations(bad, kind):
    ll = np.random.default_rng(seed(1)).normal(size=(100, 300))
    ll[7, 260] = bad
    with pytest.raises(ValueError, match=rf"1 non-finite values \({re.escape(kind)}\) in 1 observations \(columns \[260\]\)"):
        psis_loo(ll)
    with pytest.raises(ValueError, match="r_eff=0"):
        psis_loo(np.zeros((100, 3)), r_eff=0)
    with pytest.raises(ValueError, match="r_eff=True"):
        psis_loo(np.zeros((100, 3)), r_eff=True)
    elpd, k = psis_loo(np.zeros((100, 0)))  # no observations: nothing to compute
    assert elpd.shape == k.shape == (0,)


def test_blocks_on_threads_give_the_numbers_of_one_block_at_a_time(monkeypatch):
    rng = np.random.default_rng(seed(2))
    ll = -np.abs(rng.standard_t(4, size=(800, 1000)))
    threaded = psis_loo(ll, 0.8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    single = psis_loo(ll, 0.8)
    for a, b in zip(threaded, single):
        np.testing.assert_array_equal(a, b)
