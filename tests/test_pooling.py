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
def test_standardised_survival_of_a_pooled_fit_mixes_each_imputations_own_rows(pooled, tmp_path):
    draws = bc.absolute.standardised_survival_draws(pooled, "fin", [10, 30, 50], max_draws=300, random_seed=1)
    seeds = np.random.SeedSequence(1).spawn(3)
    each = [bc.absolute.standardised_survival_draws(f, "fin", [10, 30, 50], max_draws=100, random_seed=sd)
            for f, sd in zip(pooled.imputations, seeds)]
    np.testing.assert_array_equal(draws, np.concatenate(each))
    # the imputations differ in the 40 completed ages only: their curves differ, by far less than the posterior SD
    means = np.array([e.mean(axis=0) for e in each])
    assert np.ptp(means, axis=0).max() > 0
    assert (np.ptp(means, axis=0) < draws.std(axis=0)).all()
    tab = bc.absolute.risk_difference(pooled, "fin", [30, 50], max_draws=300, random_seed=1)
    assert tab.attrs["imputations"] == 3
    back = bc.load(pooled.save(tmp_path / "pooled.nc"))
    with pytest.raises(bc.SpecError, match="read back from its file.*fit the completed DataFrames again"):
        bc.absolute.standardised_survival(back, "fin", [10, 20])
    with pytest.raises(bc.SpecError, match="computed per imputation, from fit.imputations"):
        bc.absolute.ppc_km(pooled)


@pytest.mark.mcmc
def test_covariate_sets_and_grids_take_imputed_frames_and_formulas(frames, pooled, tmp_path):
    from bayescrt.sensitivity import Grid

    kw = {k: v for k, v in KW.items() if k != "covariates"}
    sets = bc.fit_covariate_sets(bc.CoxPH(), frames, exposure="fin", sets={"both": "age + prio"},
                                 random_seed=seed(5), **kw)
    # the formula set with the exposure added is pooled's model: the same draws
    np.testing.assert_array_equal(sets.fits["both"].log_hr_draws(), pooled.log_hr_draws())
    assert sets.labels["both"] == "fin" and sets.table().loc["both", "adjusted_for"] == "age + prio"
    grid = Grid(time="week", event="arrest", exposure="fin", covariate_sets={"both": "age + prio"},
                priors=["neutral"], draws=1000, tune=1000, chains=2, random_seed=seed(3))
    res = bc.sensitivity.run(grid, tmp_path / "grid", data=frames, progress=False)
    cell = grid.cells()[0]
    ref = bc.CoxPH().fit(frames, random_seed=grid.seed_of(cell), **KW)
    fitted = bc.load(tmp_path / "grid" / "cells" / f"{cell.id}.nc")
    np.testing.assert_array_equal(fitted.log_hr_draws(), ref.log_hr_draws())
    assert "imputation 2: R-hat (max)" in fitted.diagnostics().gates.index
    row = res.table().iloc[0]
    assert row["diagnostics_ok"] and row["hr_median"] == pytest.approx(np.exp(np.median(ref.log_hr_draws()[:, 0])))


def test_grids_refuse_what_imputed_frames_cannot_give(frames, tmp_path):
    from bayescrt.sensitivity import Grid

    holed = [f.assign(age=f["age"] + k) for k, f in enumerate(frames)]  # age differs between the completions
    grid = Grid(time="week", event="arrest", exposure="fin", covariate_sets={"both": "age + prio"},
                priors=["neutral"], subsets={"young": [["age", "<", 25]]}, draws=10, tune=10, chains=1)
    with pytest.raises(bc.SpecError, match="subset 'young': column 'age' differs between the imputations"):
        bc.sensitivity.run(grid, tmp_path / "g1", data=holed, progress=False)
    grid = Grid(time="week", event="arrest", exposure="fin", covariate_sets={"both": "age + prio"},
                priors=["neutral"], base_priors={"agee": {"dist": "Normal", "mu": 0, "sigma": 1}},
                draws=10, tune=10, chains=1)
    assert grid.covariate_sets == {"both": "age + prio"}  # a formula set stays a formula
    with pytest.raises(bc.SpecError, match="priors: 'agee' is not the exposure or a covariate of any set.*'age'"):
        bc.sensitivity.run(grid, tmp_path / "g2", data=frames, progress=False)
    with pytest.raises(bc.SpecError, match="pooling needs at least 2"):
        bc.sensitivity.run(grid, tmp_path / "g3", data=frames[:1], progress=False)
