"""fit(list of completed DataFrames): the imputations' draws mixed into one posterior (Zhou and Reiter 2010),
each imputation's diagnostics on its own, the fraction of missing information, and the errors."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.pooling import imputation_seeds, missing_information
from seeds import seed

COVS = ["fin", "age", "prio"]
KW = dict(time="week", event="arrest", covariates=COVS, draws=1000, tune=1000, chains=2, progress=False)


@pytest.fixture(scope="module")
def frames():
    r = bc.datasets.load_rossi()
    rng = np.random.default_rng(seed(8))
    # three completions of 40 'missing' ages: each imputation draws them afresh
    hole = rng.choice(len(r), 40, replace=False)
    out = []
    for _ in range(3):
        f = r.copy()
        f.loc[hole, "age"] = rng.integers(17, 45, len(hole))
        out.append(f)
    return out


@pytest.fixture(scope="module")
def pooled(frames):
    return bc.CoxPH().fit(frames, random_seed=seed(5), **KW)


@pytest.mark.mcmc
def test_the_pooled_posterior_is_the_imputations_chains_side_by_side(frames, pooled):
    post = pooled.idata["posterior"]
    assert post.sizes["chain"] == 3 * 2 and pooled.model["imputation"]["m"] == 3
    seeds = imputation_seeds(seed(5), 3)
    assert pooled.model["imputation"]["seeds"] == seeds
    alone = bc.CoxPH().fit(frames[1], random_seed=seeds[1], **KW)  # the second imputation, fitted by itself
    np.testing.assert_array_equal(post["log_hr"].isel(chain=slice(2, 4)).values, alone.idata["posterior"]["log_hr"].values)
    np.testing.assert_array_equal(pooled.log_hr_draws(),
                                  np.concatenate([f.log_hr_draws() for f in pooled.imputations]))


@pytest.mark.mcmc
def test_each_imputation_is_checked_on_its_own_and_few_imputations_are_noted(pooled, tmp_path):
    rep = pooled.diagnostics()
    assert rep.ok
    assert {"imputation 0: R-hat (max)", "imputation 2: divergences"} <= set(rep.gates.index)
    assert any("3 imputations: Zhou and Reiter" in n for n in rep.notes)
    back = bc.load(pooled.save(tmp_path / "pooled.nc"))  # a file read back keeps the per-imputation gates
    assert list(back.diagnostics().gates.index) == list(rep.gates.index)
    pd.testing.assert_frame_equal(missing_information(back), pooled.missing_information())


@pytest.mark.mcmc
def test_missing_information_is_rubins_fraction(pooled):
    mi = pooled.missing_information()
    draws = [f.log_hr_draws() for f in pooled.imputations]
    W = np.mean([d.var(axis=0, ddof=1) for d in draws], axis=0)
    B = np.var([d.mean(axis=0) for d in draws], axis=0, ddof=1)
    np.testing.assert_allclose(mi["fmi"], (4 / 3) * B / (W + (4 / 3) * B))
    # only age was imputed: the other log-HRs differ between imputations by Monte Carlo error and by age's
    # correlation with them, far less than age's own
    assert mi.loc["age", "fmi"] > mi.loc["fin", "fmi"]


def test_imputed_data_must_be_completions_of_the_same_rows():
    r = bc.datasets.load_rossi()
    with pytest.raises(bc.SpecError, match="pooling needs at least 2"):
        bc.CoxPH().fit([r], **KW)
    with pytest.raises(bc.SpecError, match="DataFrame 1 has columns"):
        bc.CoxPH().fit([r, r.drop(columns="mar")], **KW)
    with pytest.raises(bc.SpecError, match="DataFrame 1 has other rows"):
        bc.CoxPH().fit([r, r.iloc[1:]], **KW)
    with pytest.raises(bc.SpecError, match="item 1 is a dict"):
        bc.CoxPH().fit([r, {}], **KW)


@pytest.mark.mcmc
def test_what_needs_the_fitted_rows_is_refused_on_a_pooled_fit(pooled):
    with pytest.raises(bc.SpecError, match="computed per imputation, from fit.imputations"):
        bc.absolute.standardised_survival(pooled, "fin", [10, 20])
