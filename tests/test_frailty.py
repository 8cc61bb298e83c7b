"""Shared log-normal frailty by cluster (``cluster=``) in the Cox model."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.families import cox
from seeds import seed


@pytest.fixture(scope="module")
def lung():
    from lifelines.datasets import load_lung

    return load_lung()


@pytest.fixture(scope="module")
def lung_frailty(lung):
    with pytest.warns(bc.DataWarning, match="dropped 2 of 228 rows"):
        return bc.CoxPH().fit(lung, time="time", event="status", covariates=["age", "sex", "ph.ecog"], cluster="inst",
                              missing="drop", random_seed=seed(1), progress=False)


@pytest.mark.mcmc
def test_lung_with_institution_frailty_converges_and_reports_the_sd(lung_frailty):
    rep = lung_frailty.diagnostics()
    assert rep.ok, rep
    assert "frailty_sd" in rep.parameters.index and "frailty[1.0]" in rep.parameters.index
    tab = lung_frailty.frailty()
    print("\n" + str(lung_frailty.summary()) + "\n" + tab.round(3).to_string())
    assert tab.index[0] == "SD" and len(tab) == 1 + 18
    assert 0 < tab.loc["SD", "lower"] < tab.loc["SD", "median"] < tab.loc["SD", "upper"]
    assert "18 clusters by 'inst'" in str(lung_frailty.summary())


@pytest.mark.mcmc
def test_pointwise_loglik_includes_each_draws_frailty(lung_frailty, lung):
    """The stored per-event log-likelihood equals the partial likelihood recomputed from the draws' log-HRs
    and cluster effects."""
    data = bc.CoxPH().prepare(lung.dropna(subset=["inst", "ph.ecog"]), time="time", event="status",
                              covariates=["age", "sex", "ph.ecog"], cluster="inst")
    rs = cox.RiskSets.from_data(data)
    post = lung_frailty.idata["posterior"]
    beta = post["log_hr"].isel(chain=0, draw=7).values
    b = post["frailty"].isel(chain=0, draw=7).values
    eta = (data.X - data.center) @ beta + b[data.cluster]
    stored = lung_frailty.idata["log_likelihood"]["partial_loglik"].isel(chain=0, draw=7).values
    assert np.allclose(stored, cox.partial_loglik_terms(eta, rs))


@pytest.mark.mcmc
def test_frailty_fit_saves_and_loads(lung_frailty, tmp_path):
    back = bc.load(lung_frailty.save(tmp_path / "lung.nc"))
    pd.testing.assert_frame_equal(back.frailty(), lung_frailty.frailty())


def test_cluster_column_is_validated(lung):
    with pytest.raises(bc.DataError, match="missing values in 'inst' \\(1 rows\\)"):
        bc.CoxPH().prepare(lung, time="time", event="status", covariates=["age"], cluster="inst")
    with pytest.raises(bc.DataError, match="cluster column 'ints' is not in the DataFrame. Did you mean 'inst'"):
        bc.CoxPH().prepare(lung, time="time", event="status", covariates=["age"], cluster="ints")
    one = lung.assign(site="A")
    with pytest.raises(bc.DataError, match="single value 'A'"):
        bc.CoxPH().prepare(one, time="time", event="status", covariates=["age"], cluster="site")
    with pytest.raises(bc.DataError, match="used both as a covariate and as the cluster column"):
        bc.CoxPH().prepare(lung.dropna(), time="time", event="status", covariates=["inst"], cluster="inst")
    mixed = lung.dropna(subset=["inst"]).assign(site=lambda d: [1 if i % 2 else "1" for i in range(len(d))])
    with pytest.raises(bc.DataError, match="read the same as text"):
        bc.CoxPH().prepare(mixed, time="time", event="status", covariates=["age"], cluster="site")
    before = lung.copy()
    data = bc.CoxPH().prepare(lung.dropna(subset=["inst"]), time="time", event="status", covariates=["age"],
                              cluster="inst")
    pd.testing.assert_frame_equal(lung, before)
    assert len(data.cluster_labels) == 18 and data.cluster.max() == 17


@pytest.mark.parametrize("prior, message", [
    ({"dist": "HalfNormal", "sigma": -1}, "one positive parameter 'sigma'"),
    ({"dist": "HalfNormall", "sigma": 1}, "Did you mean 'HalfNormal'"),
    ({"dist": "HalfCauchy", "sigma": 1}, "unknown key\\(s\\) \\['sigma'\\]"),
    ("HalfNormal", "'dist' must be one of"),
])
def test_frailty_prior_errors(prior, message):
    with pytest.raises(bc.SpecError, match=message):
        bc.CoxPH(frailty_prior=prior)


def test_frailty_table_needs_a_frailty(rossi_efron):
    with pytest.raises(bc.SpecError, match="fit with cluster=<column>"):
        rossi_efron.frailty()
