"""Shared fixtures. MCMC fits are made once per session and shared by every test that reads them."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from seeds import seed

ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


@pytest.fixture
def rossi():
    return bc.datasets.load_rossi()


@pytest.fixture
def small_df():
    """A small data set with ties, censoring, a categorical and a boolean covariate."""
    rng = np.random.default_rng(seed(7))
    n = 120
    return pd.DataFrame({
        "t": np.round(rng.exponential(5, n)) + 1,
        "d": (rng.random(n) < 0.7).astype(int),
        "age": rng.normal(70, 8, n),
        "male": rng.random(n) < 0.6,
        "nyha": pd.Categorical(rng.choice(["II", "III", "IV"], n), categories=["II", "III", "IV"]),
        "site": rng.integers(0, 3, n),
        "w": rng.integers(1, 4, n).astype(float),
    })


def _fit(df, **kw):
    defaults = dict(draws=1000, tune=1000, chains=4, random_seed=seed(20261123), progress=False)
    ties = kw.pop("ties", "efron")
    return bc.CoxPH(ties=ties).fit(df, time="week", event="arrest", **{**defaults, **kw})


@pytest.fixture(scope="session")
def rossi_efron():
    return _fit(bc.datasets.load_rossi(), covariates=ROSSI_COVARIATES)


@pytest.fixture(scope="session")
def rossi_breslow():
    return _fit(bc.datasets.load_rossi(), covariates=ROSSI_COVARIATES, ties="breslow")


@pytest.fixture(scope="session")
def rossi_strata():
    covs = [c for c in ROSSI_COVARIATES if c != "race"]
    return _fit(bc.datasets.load_rossi(), covariates=covs, strata="race")
