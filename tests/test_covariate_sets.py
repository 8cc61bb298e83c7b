"""The exposure's HR under several covariate sets, side by side; the forest plot draws them."""

import numpy as np
import pytest

import bayescrt as bc
from seeds import seed

pytestmark = pytest.mark.mcmc

# these tests assert convergence (diagnostics_ok): 4 chains x 1000 draws pass the gates with a wide margin on
# Rossi's 432 rows (bulk ESS about 10 times the 400 needed); sampling them costs seconds, compilation dominates
SMALL = dict(draws=1000, tune=1000, chains=4, random_seed=seed(3), progress=False)


@pytest.fixture(scope="module")
def by_set():
    sets = bc.CovariateSets(unadjusted=[], minimal=["age"], full=["age", "prio", "wexp", "paro"])
    # a prior on 'prio', which only the full set adjusts for
    return bc.fit_covariate_sets(bc.CoxPH(), bc.datasets.load_rossi(), time="week", event="arrest",
                                 exposure="fin", sets=sets, priors={"prio": {"dist": "Normal", "sigma": 1.0}},
                                 **SMALL)


def test_table_has_one_row_per_set(by_set):
    tab = by_set.table()
    assert list(tab.index) == ["unadjusted", "minimal", "full"]
    assert tab.loc["unadjusted", "adjusted_for"] == "(none)"
    assert tab.loc["full", "adjusted_for"] == "age, prio, wexp, paro"
    assert tab["diagnostics_ok"].all()
    # each row is the exposure row of that set's own fit
    for name, fit in by_set.fits.items():
        assert fit.covariates[0] == "fin"
        assert tab.loc[name, "hr_median"] == pytest.approx(fit.hazard_ratios().loc["fin", "hr_median"])
    # each set got the priors of its own covariates
    full = {p["covariate"]: p["given"] for p in by_set.fits["full"].priors}
    assert full["prio"]["sigma"] == 1.0 and full["age"] == bc.priors.DEFAULT_PRIOR
    assert [p["covariate"] for p in by_set.fits["minimal"].priors] == ["fin", "age"]
    # financial aid lowers the arrest hazard under every adjustment (Rossi et al.)
    assert (tab["hr_median"] < 1).all() and (tab["p_hr_gt_1"] < 0.1).all()


def test_forest_plot_draws_the_table_and_published_estimates(by_set, tmp_path):
    import pandas as pd

    pub = pd.DataFrame({"hr": [0.70], "lower": [0.48], "upper": [1.02]}, index=["full"])
    ax = by_set.plot_forest(published=pub)
    data = ax.forest_data
    assert list(data.index) == ["unadjusted", "minimal", "full"]
    assert data.loc["full", "published_hr"] == 0.70 and np.isnan(data.loc["minimal", "published_hr"])
    assert ax.get_xscale() == "log"
    ax.figure.savefig(tmp_path / "forest.png", dpi=80)
    assert (tmp_path / "forest.png").stat().st_size > 5_000


def test_a_categorical_exposure_with_three_levels_is_refused(small_df):
    with pytest.raises(bc.SpecError, match=r"exposure 'nyha' expands to 2 columns"):
        bc.fit_covariate_sets(bc.CoxPH(), small_df, time="t", event="d", exposure="nyha",
                              sets={"s": ["age"]}, draws=50, tune=50, chains=2, progress=False)


def test_every_set_and_its_priors_are_checked_before_any_sampling(small_df, monkeypatch):
    model = bc.CoxPH()
    monkeypatch.setattr(model, "fit", lambda *a, **k: pytest.fail("sampled before validating every set"))
    kw = dict(time="t", event="d", exposure="male", sets={"a": ["age"], "b": ["age", "nyha"]})
    with pytest.raises(bc.SpecError, match=r"prior for 'nyha': Normal needs 'sigma'"):
        bc.fit_covariate_sets(model, small_df, priors={"nyha": {"dist": "Normal"}}, **kw)
    with pytest.raises(bc.SpecError, match=r"priors: 'agee' is not a covariate of any set\. Did you mean 'age'\?"):
        bc.fit_covariate_sets(model, small_df, priors={"agee": {"dist": "Normal", "sigma": 1}}, **kw)


def test_pymc_sampler_categorical_and_weights(small_df):
    """PyMC's own NUTS gives the same posterior as nutpie, here with a categorical covariate and weights."""
    kw = dict(time="t", event="d", covariates=["age", "male", "nyha"], weights="w", **SMALL)
    a = bc.CoxPH(sampler="pymc").fit(small_df, **kw)
    b = bc.CoxPH().fit(small_df, **kw)
    ta, tb = a.hazard_ratios(), b.hazard_ratios()
    assert list(ta.index) == ["age", "male", "nyha[III vs II]", "nyha[IV vs II]"]
    # two independent samplers of one posterior: the means differ by MC error only,
    # sqrt(2) x sd / sqrt(ESS) with ESS >= 400, i.e. under 0.1 SD; 0.25 SD is 3.5 standard errors
    z = (ta["log_hr_mean"] - tb["log_hr_mean"]) / tb["log_hr_sd"]
    assert (z.abs() < 0.25).all(), z
    assert a.sampling["sampler"] == "pymc" and a.diagnostics().ok


def test_cli_quickstart(tmp_path, capsys):
    from bayescrt.cli import main

    rc = main(["quickstart", "--draws", "1000", "--chains", "4", "--no-progress", "--out", str(tmp_path / "q.nc")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Rossi" in out and "HR 95% lower" in out and "Diagnostics: all gates passed" in out
    assert bc.load(tmp_path / "q.nc").covariates[0] == "fin"


def test_a_set_may_be_a_formula_and_gives_the_list_sets_draws(by_set):
    """'age + prio + wexp + paro' as a formula is the list set 'full': the same design, the same draws."""
    sets = bc.CovariateSets(full="age + prio + wexp + paro", spline="bs(age, df=3) + prio")
    fits = bc.fit_covariate_sets(bc.CoxPH(), bc.datasets.load_rossi(), time="week", event="arrest", exposure="fin",
                                 sets=sets, priors={"prio": {"dist": "Normal", "sigma": 1.0}}, **SMALL)
    np.testing.assert_array_equal(fits.fits["full"].log_hr_draws(), by_set.fits["full"].log_hr_draws())
    tab = fits.table()
    assert tab.loc["spline", "adjusted_for"] == "bs(age, df=3) + prio"
    assert fits._adjusted("spline") == ["age", "prio"]
    assert tab["diagnostics_ok"].all()


def test_a_formula_set_is_checked():
    with pytest.raises(bc.SpecError, match="covariate set 'bad': a formula of the adjustment terms"):
        bc.CovariateSets(bad="arrest ~ age")
