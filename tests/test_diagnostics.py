"""Convergence gates on stored draws (no sampling): each gate can fail, and a failing fit says so loudly."""

import numpy as np
import pytest
import xarray as xr

import bayescrt as bc
from bayescrt.diagnostics import diagnose
from bayescrt.fit import assemble
from seeds import seed


def tree(log_hr, energy=None, diverging=None):
    C, D, p = log_hr.shape
    rng = np.random.default_rng(seed(0))
    energy = rng.normal(size=(C, D)) if energy is None else energy
    diverging = np.zeros((C, D), bool) if diverging is None else diverging
    post = xr.Dataset({"log_hr": (("chain", "draw", "covariate"), log_hr)},
                      coords={"chain": np.arange(C), "draw": np.arange(D), "covariate": [f"x{j}" for j in range(p)]})
    stats = xr.Dataset({"energy": (("chain", "draw"), energy), "diverging": (("chain", "draw"), diverging)},
                       coords={"chain": np.arange(C), "draw": np.arange(D)})
    return xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})


def good():
    return np.random.default_rng(seed(1)).normal(size=(4, 500, 2))


def test_independent_draws_pass_every_gate():
    rep = diagnose(tree(good()))
    assert rep.ok and rep.failures == []


def test_chains_that_disagree_fail_rhat():
    x = good()
    x[0] += 1.0
    rep = diagnose(tree(x))
    assert not rep.ok and not rep.gates.loc["R-hat (max)", "passed"]
    assert "DO NOT TRUST THIS FIT" in str(rep)


def test_sticky_chains_fail_ess():
    x = np.repeat(good()[:, :25], 20, axis=1)  # each draw repeated 20 times
    rep = diagnose(tree(x))
    assert not rep.gates.loc["bulk ESS (min)", "passed"] and not rep.gates.loc["tail ESS (min)", "passed"]


def test_divergences_fail():
    div = np.zeros((4, 500), bool)
    div[2, 10] = True
    rep = diagnose(tree(good(), diverging=div))
    assert rep.gates.loc["divergences", "value"] == 1 and not rep.ok


def test_slowly_wandering_energy_fails_bfmi():
    energy = np.cumsum(np.random.default_rng(seed(2)).normal(size=(4, 500)), axis=1)
    rep = diagnose(tree(good(), energy=energy))
    assert not rep.gates.loc["E-BFMI (min)", "passed"]


@pytest.mark.parametrize("stat,gate", [("diverging", "divergences"), ("energy", "E-BFMI (min)")])
def test_missing_sampler_statistics_fail_their_gate(stat, gate):
    t = tree(good())
    t["sample_stats"] = t["sample_stats"].to_dataset().drop_vars(stat)
    rep = diagnose(t)
    assert not rep.ok and not rep.gates.loc[gate, "passed"]
    assert f"sample_stats has no {stat!r}" in str(rep)


def test_one_chain_cannot_pass_rhat():
    rep = diagnose(tree(good()[:1]))
    assert not rep.ok and "at least 2 chains" in str(rep)


def test_failed_fit_warns_loudly_and_is_never_reported_as_fine():
    x = good()
    x[1] -= 2.0
    with pytest.warns(bc.DiagnosticsWarning, match="FAILED its convergence diagnostics"):
        fit = assemble(tree(x), {"sampler": "test"}, model={"family": "CoxPH", "covariates": ["x0", "x1"],
                                                             "data_description": "test draws"},
                       priors=[], data_hash="0" * 64, extra_groups={})
    assert not fit.diagnostics().ok
    assert "FAILED" in repr(fit)
    assert fit.diagnostics().to_dict()["gates"]["R-hat (max)"]["passed"] is False
    with pytest.warns(bc.DiagnosticsWarning, match="FAILED its diagnostics"):
        assert fit.hazard_ratios().attrs["diagnostics_ok"] is False
