"""sampler="laplace": importance sampling from the Laplace approximation, Pareto-smoothed.

What is asserted, and why it could fail:

* On Rossi (114 events, 7 covariates) the draws reproduce the exact posterior computed by importance
  sampling with 200,000 proposals (tests/test_cox_fit.py's reference, independent of this sampler): each
  mean within Z_MC Monte Carlo errors ``sd / sqrt(importance ESS)``, each SD within Z_MC errors of an SD,
  ``sd / sqrt(2 ESS)`` (normal approximation), Z_MC the Bonferroni bound of that file for 14 comparisons.
* A Weibull fit (the log shape and scale are transformed and deterministic variables come back from the
  value variables; its proposals are evaluated by its compiled sums, ``WeibullPH.loglik_totals``) agrees with NUTS
  on the same data within Z_MC errors of their difference.
* A shared frailty (30 centres), whose SD has no joint mode with the centre effects, is sampled through a
  proposal integrated over the SD on a grid, and agrees with NUTS within Z_MC errors, centre effects included;
  the plain t proposal at the joint mode fails its gates loudly on the same data, with the Pareto k the reason.
  (The piecewise model's random-walk SD is the same case: tests/test_families.py, against NUTS on lung.)
  A model with two such scales is refused, naming the fix.
* The Pareto k estimator recovers the tail of weights drawn from a known generalised Pareto, and systematic
  resampling keeps each proposal floor(n w) or ceil(n w) times.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescrt as bc
from bayescrt import laplace
from bayescrt.psis import smooth_log_weights
from conftest import ROSSI_COVARIATES
from seeds import seed

Z_MC = float(stats.norm.isf(1e-4 / 14 / 2))


@pytest.fixture(scope="module")
def rossi_laplace():
    return bc.CoxPH(sampler="laplace").fit(bc.datasets.load_rossi(), time="week", event="arrest",
                                           covariates=ROSSI_COVARIATES, random_seed=seed(71), progress=False)


@pytest.mark.mcmc
def test_the_draws_reproduce_the_exact_rossi_posterior(rossi_laplace, rossi):
    from lifelines import CoxPHFitter

    from test_cox_fit import _exact_posterior

    fit = rossi_laplace
    rep = fit.diagnostics()
    assert rep.ok and list(rep.gates.index) == ["R-hat (max)", "Pareto k (max)", "importance ESS"]
    assert fit.sampling["sampler"] == "laplace" and fit.sampling["tune"] == 0
    ess = float(np.sum(fit.sampling["importance_ess"]))
    assert ess > 0.5 * 4000  # a near-normal posterior: most proposals count
    ref = CoxPHFitter().fit(rossi[["week", "arrest", *ROSSI_COVARIATES]], "week", "arrest")
    covs = fit.covariates
    _, exact_mean, exact_sd = _exact_posterior(fit, rossi, ref.params_[covs].to_numpy(),
                                               ref.variance_matrix_.loc[covs, covs].to_numpy(), ties="efron")
    draws = fit.log_hr_draws()
    mean, sd = draws.mean(0), draws.std(0, ddof=1)
    z_mean = (mean - exact_mean.to_numpy()) / (sd / np.sqrt(ess))
    z_sd = (sd - exact_sd.to_numpy()) / (sd / np.sqrt(2 * ess))
    assert np.all(np.abs(z_mean) < Z_MC), dict(zip(covs, z_mean.round(2)))
    assert np.all(np.abs(z_sd) < Z_MC), dict(zip(covs, z_sd.round(2)))


@pytest.mark.mcmc
def test_the_same_seed_gives_the_same_draws_and_a_second_structure_fit_reuses_the_compilation(rossi_laplace):
    kw = dict(time="week", event="arrest", covariates=ROSSI_COVARIATES, progress=False)
    rossi = bc.datasets.load_rossi()
    again = bc.CoxPH(sampler="laplace").fit(rossi, random_seed=seed(71), **kw)
    np.testing.assert_array_equal(again.log_hr_draws(), rossi_laplace.log_hr_draws())
    assert again.sampling["compiled"] == "reused"
    half = bc.CoxPH(sampler="laplace").fit(rossi.iloc[:300], random_seed=seed(72), **kw)  # other data, same model
    assert half.sampling["compiled"] == "reused" and half.model["n"] == 300
    laplace.clear()  # compiled afresh, the same draws
    ref = bc.CoxPH(sampler="laplace").fit(rossi.iloc[:300], random_seed=seed(72), **kw)
    assert ref.sampling["compiled"] == "new"
    np.testing.assert_array_equal(half.log_hr_draws(), ref.log_hr_draws())
    chains = rossi_laplace.log_hr_draws().reshape(4, -1, len(ROSSI_COVARIATES))
    assert not np.array_equal(chains[0], chains[1])  # each chain its own proposals


def assert_agree(lap, nuts, variables):
    """Each mean within Z_MC Monte Carlo errors of the difference of two independent estimates (the importance ESS,
    the least bulk ESS of NUTS), each SD within Z_MC errors of a ratio of SDs (normal approximation)."""
    assert lap.diagnostics().ok and nuts.diagnostics().ok
    ess_is = float(np.sum(lap.sampling["importance_ess"]))
    ess_nuts = float(nuts.diagnostics().parameters["ess_bulk"].min())
    for var in variables:
        a = lap.idata["posterior"][var].values.reshape(4000, -1)
        b = nuts.idata["posterior"][var].values.reshape(4000, -1)
        sd = b.std(0)
        se = sd * np.sqrt(1 / ess_is + 1 / ess_nuts)
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < Z_MC * se), (var, a.mean(0), b.mean(0))
        assert np.all(np.abs(a.std(0) / sd - 1) < Z_MC * np.sqrt(1 / (2 * ess_is) + 1 / (2 * ess_nuts))), var
    assert set(lap.idata["posterior"].data_vars) == set(nuts.idata["posterior"].data_vars)
    for var in variables:
        assert lap.idata["posterior"][var].dims == nuts.idata["posterior"][var].dims


@pytest.mark.mcmc
def test_a_weibull_fit_agrees_with_nuts():
    rng = np.random.default_rng(seed(73))
    n = 1500
    x, z = (rng.random(n) < 0.4).astype(int), rng.normal(size=n)
    t = (rng.exponential(size=n) / (0.1 * np.exp(0.4 * x - 0.3 * z))) ** (1 / 1.3)
    c = rng.uniform(0, 12, n)
    df = pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int), "x": x, "z": z})
    kw = dict(time="t", event="e", covariates=["x", "z"], random_seed=seed(74), progress=False)
    lap, nuts = bc.WeibullPH(sampler="laplace").fit(df, **kw), bc.WeibullPH().fit(df, **kw)
    assert lap.sampling["evaluated_by"] == "the family's pointwise twin"  # loglik_totals, checked at the mode
    assert_agree(lap, nuts, ("log_hr", "shape", "log_scale"))


def _clustered(n=600, centres=30):
    rng = np.random.default_rng(seed(75))
    centre = rng.integers(0, centres, n)
    x = rng.normal(size=n)
    t = rng.exponential(1 / (0.2 * np.exp(0.5 * x + rng.normal(0, 0.5, centres)[centre])))
    return pd.DataFrame({"t": np.minimum(t, 8.0), "e": (t <= 8.0).astype(int), "x": x, "centre": centre.astype(str)})


@pytest.mark.mcmc
def test_a_shared_frailty_is_integrated_over_its_sd_and_agrees_with_nuts():
    """A frailty's SD has no joint mode with the centre effects (the plain t proposal's Pareto k was above 1 on
    these data): the proposal integrates over it on a grid, and the draws agree with NUTS's, centre effects too."""
    df = _clustered()
    kw = dict(time="t", event="e", covariates=["x"], cluster="centre", random_seed=seed(76), progress=False)
    lap = bc.CoxPH(sampler="laplace").fit(df, **kw)
    assert lap.sampling["proposal"].startswith("frailty_sd (log) from its Laplace marginal on a grid")
    grid = np.array(lap.sampling["grid"])
    assert len(grid) >= 5 and np.all(np.diff(grid) > 0)
    assert max(lap.sampling["pareto_k"]) < 0.5  # far inside the gate (0.67), not at its edge
    assert_agree(lap, bc.CoxPH().fit(df, **kw), ("log_hr", "frailty_sd", "frailty"))


@pytest.mark.mcmc
def test_a_centred_frailty_gives_the_non_centred_one_s_posterior():
    """The same model in its two parameterisations, each grid placed by the frailty start from its own effects
    (z, or the effects themselves): the log-HR, the SD and the centre effects agree within Bonferroni-bounded
    Monte Carlo errors of the difference of two importance-sampled estimates, and both pass their gates."""
    df = _clustered()
    kw = dict(time="t", event="e", covariates=["x"], cluster="centre", random_seed=seed(78), progress=False)
    fits = [bc.CoxPH(sampler="laplace", centered=c).fit(df, **kw) for c in (False, True)]
    assert all(f.diagnostics().ok for f in fits)
    ess = [float(np.sum(f.sampling["importance_ess"])) for f in fits]
    z = float(stats.norm.isf(1e-4 / 32 / 2))  # Bonferroni over the 32 means (1 log-HR, the SD, 30 centres)
    for var in ("log_hr", "frailty_sd", "frailty"):
        a, b = (f.idata["posterior"][var].values.reshape(4000, -1) for f in fits)
        se = np.sqrt(a.var(0) / ess[0] + b.var(0) / ess[1])
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < z * se), (var, a.mean(0), b.mean(0))


@pytest.mark.mcmc
def test_a_posterior_far_from_normal_fails_its_gates_loudly(monkeypatch):
    df = _clustered()
    with monkeypatch.context() as m:
        m.setattr(laplace, "INTEGRATED_SCALES", ())  # the t at the joint mode of the SD and the centre effects
        with pytest.warns(bc.DiagnosticsWarning, match=r"Pareto k \(max\)"):
            fit = bc.CoxPH(sampler="laplace").fit(df, time="t", event="e", covariates=["x"], cluster="centre",
                                                  random_seed=seed(76), progress=False)
    rep = fit.diagnostics()
    assert not rep.ok and not rep.gates.loc["Pareto k (max)", "passed"]
    # a flat prior on a covariate that separates the events (s = 1 for every event): the log density rises without
    # bound along s, so either the mode search says there is none, or the weights' tail says the approximation fails
    sep = df.assign(s=df["e"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            bad = bc.CoxPH(sampler="laplace").fit(sep, time="t", event="e", covariates=["x", "s"], progress=False,
                                                  priors={"s": {"dist": "Flat"}}, random_seed=seed(77))
        except bc.SpecError as err:
            assert "has no proper mode" in str(err) and "sampler='nutpie'" in str(err)
        else:
            assert not bad.diagnostics().ok
            assert any(issubclass(w.category, bc.DiagnosticsWarning) for w in caught)


def test_options_that_belong_to_nuts_are_refused_with_laplace(small_df):
    from bayescrt.compiled import CompiledModels

    kw = dict(time="t", event="d", covariates=["age"], progress=False)
    with pytest.raises(bc.SpecError, match=r"compiled_models= reuses nutpie compilations; sampler='laplace'"):
        bc.CoxPH(sampler="laplace").fit(small_df, compiled_models=CompiledModels(), **kw)
    with pytest.raises(bc.SpecError, match=r"scheduler= runs nutpie chains on a Dask cluster; sampler='laplace'"):
        bc.CoxPH(sampler="laplace").fit(small_df, scheduler="tcp://127.0.0.1:1", **kw)
    with pytest.raises(bc.SpecError, match=r"sampler='laplce' is not available; choose one of .*'laplace'"):
        bc.CoxPH(sampler="laplce")


@pytest.mark.parametrize("k", [0.2, 0.5, 0.8])
def test_the_pareto_k_of_weights_with_a_known_tail(k):
    """Weights drawn from a generalised Pareto with shape k: the estimate within 0.15 of k (its SD at 4,000 draws
    with a tail of 190 is about 0.07)."""
    w = stats.genpareto(k).rvs(4000, random_state=np.random.default_rng(seed(78)))
    lw, k_hat = smooth_log_weights(np.log(w))
    assert abs(k_hat - k) < 0.15 and np.exp(lw).sum() == pytest.approx(1.0)
    lw2, _ = smooth_log_weights(np.concatenate([np.log(w), [-np.inf]]))
    assert lw2[-1] == -np.inf  # a proposal outside the support keeps weight 0


def test_systematic_resampling_keeps_each_proposal_floor_or_ceil_of_its_share():
    rng = np.random.default_rng(seed(79))
    w = rng.gamma(2.0, size=500)
    idx = laplace.systematic_resample(w, 1000, rng)
    counts = np.bincount(idx, minlength=500)
    share = 1000 * w / w.sum()
    assert counts.sum() == 1000 and np.all((counts >= np.floor(share)) & (counts <= np.ceil(share)))


@pytest.mark.parametrize("kind", ["repeats", "permutation", "resample", "one row"])
def test_rows_gathered_in_place_are_numpy_s_fancy_index(kind):
    """take_rows_in_place moves rows through one row of extra memory: a wrong cycle or a repeat copied from a row
    already overwritten would differ from ``a[idx]``."""
    rng = np.random.default_rng(seed(130))
    for _ in range(200):
        n = 1 if kind == "one row" else int(rng.integers(2, 60))
        a = rng.normal(size=(n, 3))
        if kind == "repeats":
            idx = rng.integers(0, n, n)
        elif kind == "permutation":
            idx = rng.permutation(n)
        else:
            idx = rng.permutation(laplace.systematic_resample(rng.dirichlet(np.full(n, 0.3)), n, rng))
        want = a[idx]
        laplace.take_rows_in_place(a, idx)
        np.testing.assert_array_equal(a, want)
    with pytest.raises(ValueError, match="idx has shape"):
        laplace.take_rows_in_place(np.zeros((3, 2)), np.arange(2))


@pytest.mark.parametrize("idx, message", [([0, -3, 1], "run from -3"), ([0, 3, 1], "run from 0 to 3"),
                                          ([1.7, 0, 1], "dtype float64")])
def test_row_numbers_out_of_range_or_not_integers_are_refused_before_anything_moves(idx, message):
    a = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match=message):
        laplace.take_rows_in_place(a, np.array(idx))
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match="3 dimensions"):
        laplace.take_rows_in_place(np.zeros((3, 2, 2)), np.arange(3))


@pytest.mark.parametrize("proposals", [50, 80])
def test_kept_terms_are_the_resampled_rows_of_each_chain(proposals):
    """With as many proposals as draws a chain's terms are evaluated into the stored array and gathered there;
    with more, into a buffer and copied: either way chain c holds its terms at its kept rows."""
    rng = np.random.default_rng(seed(131))
    kept = laplace._KeptTerms(chains=3, draws=50)
    want = []
    for c in range(3):
        rows = kept.rows(c, (proposals, 7))
        terms = rng.normal(size=(proposals, 7))
        rows[:] = terms
        idx = rng.integers(0, proposals, 50)
        kept.keep(c, rows, idx)
        want.append(terms[idx])
        assert (rows.base is kept.array) == (proposals == 50)
    np.testing.assert_array_equal(kept.array, np.stack(want))


def test_the_threshold_of_k_follows_the_number_of_proposals():
    assert laplace.pareto_k_threshold(1000) == pytest.approx(1 - 1 / 3) and laplace.pareto_k_threshold(10**6) == 0.7


@pytest.mark.mcmc
def test_a_grid_of_laplace_cells_counts_its_compilations_and_resumes(tmp_path):
    from bayescrt.sensitivity import Grid, run

    laplace.clear()
    grid = Grid(time="week", event="arrest", exposure="fin", covariate_sets={"min": ["age"]},
                priors=["neutral", "sceptical"], families=[{"family": "CoxPH", "sampler": "laplace"}],
                random_seed=seed(80))
    res = run(grid, tmp_path / "g", data=bc.datasets.load_rossi(), progress=False)
    tab = res.table()
    assert res.compilations == 1 and tab["diagnostics_ok"].all() and len(tab) == 2
    # the sceptical prior (centred on no effect) pulls the HR towards 1
    assert tab.loc[tab.prior == "neutral", "hr_median"].iloc[0] < tab.loc[tab.prior == "sceptical", "hr_median"].iloc[0] < 1
    again = run(grid, tmp_path / "g", data=bc.datasets.load_rossi(), progress=False)
    assert again.manifest["last_run"]["kept"] == 2
    pd.testing.assert_frame_equal(again.table(), tab)


@pytest.mark.mcmc
def test_the_stored_log_likelihood_is_the_twin_s_terms_of_the_kept_draws(rossi_laplace):
    """The proposals were evaluated by the family's compiled twin, and the kept draws' terms became the stored
    per-event log-likelihood with no second pass: they equal that twin at the posterior draws."""
    from bayescrt.families.base import fit_data
    from bayescrt.families.cox import RiskSets, _pointwise_loglik

    fit = rossi_laplace
    assert fit.sampling["evaluated_by"] == "the family's pointwise twin"
    stored = fit.idata["log_likelihood"]["partial_loglik"].values.reshape(4000, -1)
    data = fit_data(fit)
    again = _pointwise_loglik({"log_hr": fit.log_hr_draws()}, data, RiskSets.from_data(data, "efron"))
    np.testing.assert_allclose(stored, again, rtol=1e-12, atol=1e-12)


def test_gathering_columns_is_numpy_s_fancy_index():
    from bayescrt.families.fused import gather_columns

    a = np.random.default_rng(seed(81)).normal(size=(3, 5, 40))
    idx = np.random.default_rng(seed(82)).permutation(40)
    got = gather_columns(a, idx)
    np.testing.assert_array_equal(got, a[..., idx])
    assert got.flags["C_CONTIGUOUS"]


def test_settings_the_laplace_sampler_cannot_serve_are_refused_before_anything_is_fitted(small_df, tmp_path):
    from bayescrt.sensitivity import Grid

    with pytest.raises(bc.SpecError, match=r"draws=20 with sampler='laplace': .* at least 100 draws a chain"):
        bc.CoxPH(sampler="laplace").fit(small_df, time="t", event="d", covariates=["age"], draws=20, progress=False)
    kw = dict(time="week", event="arrest", exposure="fin", covariate_sets={"min": ["age"]}, priors=["neutral"])
    with pytest.raises(bc.SpecError, match=r"draws=50 with sampler='laplace'"):
        Grid(**kw, families=[{"family": "CoxPH", "sampler": "laplace"}], draws=50)
    lap = Grid(**kw, families=[{"family": "CoxPH", "sampler": "laplace"}])
    nuts = Grid(**kw, families=["CoxPH"])
    cell = lap.cells()[0]
    # tuning does not touch a Laplace cell's draws, so another tune keeps its file; a NUTS cell is refitted
    assert lap.fingerprint(cell, "h") == Grid(**kw, families=[{"family": "CoxPH", "sampler": "laplace"}],
                                              tune=17).fingerprint(cell, "h")
    assert nuts.fingerprint(nuts.cells()[0], "h") != Grid(**kw, families=["CoxPH"], tune=17).fingerprint(
        nuts.cells()[0], "h")


def test_a_model_with_two_hierarchy_scales_is_refused_before_compiling():
    """The grid integrates over one scale: a random walk and a frailty together are refused, naming both, and so
    are a frailty and a between-study SD."""
    with pytest.raises(bc.SpecError, match=r"integrates over one hierarchy scale on a grid; this model has 2 "
                                           r"\((frailty_sd, rw_sd|rw_sd, frailty_sd)\); use sampler='nutpie'"):
        bc.PiecewiseExponentialPH(sampler="laplace", n_intervals=3).fit(
            _clustered(), time="t", event="e", covariates=["x"], cluster="centre", progress=False)
    df = _clustered().assign(g=lambda d: (d["x"] > 0).astype(int), study=lambda d: (d["centre"].astype(int) % 3))
    with pytest.raises(bc.SpecError, match=r"this model has 2 \(frailty_sd, study_sd\); use sampler='nutpie'"):
        bc.CoxPH(sampler="laplace").fit(df, time="t", event="e", covariates=["g"], cluster="centre", study="study",
                                        exposure="g", progress=False)


@pytest.mark.mcmc
def test_a_vague_frailty_prior_does_not_stop_the_grid():
    """A prior SD of 1,000 (or 1e9) puts the initial point where the likelihood is flat and the centre effects have
    no proper mode given the SD; the grid then starts from a plausible scale and climbs to the peak. The fits pass
    their gates, and the two priors (both flat over the SD's posterior) give the same posterior within Z_MC errors."""
    df = _clustered()
    kw = dict(time="t", event="e", covariates=["x"], cluster="centre", random_seed=seed(84), progress=False,
              log_likelihood=False)
    fits = [bc.CoxPH(sampler="laplace", frailty_prior={"dist": "HalfNormal", "sigma": s}).fit(df, **kw)
            for s in (1e3, 1e9)]
    assert all(f.diagnostics().ok for f in fits)
    sd = [f.idata["posterior"]["frailty_sd"].values.ravel() for f in fits]
    ess = [float(np.sum(f.sampling["importance_ess"])) for f in fits]
    se = np.sqrt(sd[0].var() / ess[0] + sd[1].var() / ess[1])
    assert abs(sd[0].mean() - sd[1].mean()) < Z_MC * se


def test_a_cell_that_cannot_be_fitted_is_named_in_the_error(monkeypatch):
    from bayescrt.sensitivity import Grid
    from bayescrt.sensitivity.cells import fit_cell

    grid = Grid(time="week", event="arrest", exposure="fin", covariate_sets={"min": ["age"]}, priors=["neutral"])

    def refuse(self, *a, **k):
        raise bc.SpecError("sampler='laplace': the log density has no proper mode")

    monkeypatch.setattr(bc.CoxPH, "fit", refuse)
    with pytest.raises(bc.SpecError, match=r"cell CoxPH__min__neutral__all: sampler='laplace': the log density"):
        fit_cell(grid, grid.cells()[0], bc.datasets.load_rossi())


def test_a_tail_of_equal_weights_up_to_rounding_is_flat_not_nan():
    lw = np.full(400, np.log(0.25)) + np.random.default_rng(seed(83)).normal(0, 1e-16, 400)
    _, k = smooth_log_weights(lw)
    assert not np.isnan(k)


@pytest.mark.mcmc
def test_the_draws_do_not_depend_on_blas_threads():
    """A product split over BLAS's threads sums in another order: the proposals are drawn with BLAS on one thread,
    so a fit under a one-thread limit gives the same draws bit for bit (a real check on a machine with 2+ cores)."""
    from threadpoolctl import threadpool_limits

    kw = dict(time="t", event="e", covariates=["x"], cluster="centre", random_seed=seed(83), progress=False,
              log_likelihood=False)
    df = _clustered(n=1200, centres=60)  # 62 coordinates: on 2 cores the proposals' product is split without the limit
    free = bc.CoxPH(sampler="laplace").fit(df, **kw)
    with threadpool_limits(1, user_api="blas"):
        one = bc.CoxPH(sampler="laplace").fit(df, **kw)
    np.testing.assert_array_equal(free.idata["posterior"]["frailty"].values, one.idata["posterior"]["frailty"].values)
    np.testing.assert_array_equal(free.idata["sample_stats"]["logp"].values, one.idata["sample_stats"]["logp"].values)


def _models_of_every_kind():
    """One small model of each structure the Laplace sampler serves: plain Cox, a frailty, several studies, Weibull
    with strata and weights, the piecewise walks of order 1 and 2 and a time-varying effect, the exponential."""
    rng = np.random.default_rng(seed(84))
    n = 240
    x, z = rng.normal(size=n), rng.random(n) < 0.5
    t = rng.exponential(1 / (0.2 * np.exp(0.4 * x + 0.3 * z)))
    df = pd.DataFrame({"t": np.minimum(t, 6.0), "e": (t <= 6.0).astype(int), "x": x, "z": z,
                       "centre": rng.integers(0, 12, n).astype(str), "study": rng.choice(["a", "b", "c"], n),
                       "g": rng.choice(["u", "v"], n), "w": rng.integers(1, 3, n).astype(float)})
    kw = dict(time="t", event="e", covariates=["x", "z"])
    cases = [("Cox", bc.CoxPH(), kw), ("Cox + frailty", bc.CoxPH(), {**kw, "cluster": "centre"}),
             ("Weibull, strata, weights", bc.WeibullPH(), {**kw, "strata": "g", "weights": "w"}),
             ("piecewise, walk 1", bc.PiecewiseExponentialPH(n_intervals=4), kw),
             ("piecewise, walk 2", bc.PiecewiseExponentialPH(n_intervals=5, rw_order=2), kw),
             ("piecewise, time-varying", bc.PiecewiseExponentialPH(n_intervals=3, tv="z"), kw),
             ("exponential", bc.ExponentialPH(), kw)]
    out = []
    for name, est, args in cases:
        data = est.prepare(df, **args)
        out.append((name, est.build(data)[0]))
    est = bc.CoxPH()
    data = est.prepare(df, **kw, study="study")
    hierarchy = est._levels(data, {"study": "study", "exposure": "z", "pooling": "partial", "aggregate": None,
                                   "study_prior": None})
    out.append(("Cox, three studies", est.build(data, None, hierarchy)[0]))
    return out


def test_the_batched_posterior_variables_and_prior_terms_are_the_per_point_ones(monkeypatch):
    """The proposals' posterior variables and prior terms come from one call per batch (the model's graphs
    vectorised over the proposals); at random points they are the per-point functions' numbers, for every kind of
    model, and so are those of the fallback that calls a per-point function row by row (a graph that does not
    vectorise)."""
    from pytensor.graph import replace as graph_replace

    for name, model in _models_of_every_kind():
        ip = model.initial_point()
        shapes = [(v.name, np.shape(ip[v.name])) for v in model.value_vars]
        x0 = laplace._flat(ip, model.value_vars)
        xs = x0 + 0.3 * np.random.default_rng(seed(85)).standard_normal((7, len(x0)))
        wanted = set(laplace._posterior_names(model))
        graphs = [v for v in model.unobserved_value_vars if v.name in wanted]
        one_outs = model.compile_fn(graphs, inputs=model.value_vars, on_unused_input="ignore", point_fn=False)
        one_prior = model.compile_logp(vars=model.free_RVs, jacobian=True)
        expect = [np.array([float(one_prior(laplace._unravel(x, shapes))) for x in xs])]
        rows = [one_outs(**laplace._unravel(x, shapes)) for x in xs]
        expect += [np.stack([np.asarray(r[i]) for r in rows]) for i in range(len(graphs))]
        fn, batched = laplace._batch_function(model, graphs, shapes)
        assert batched, name
        with monkeypatch.context() as m:
            m.setattr(graph_replace, "vectorize_graph", lambda *a, **k: (_ for _ in ()).throw(NotImplementedError))
            by_rows, batched = laplace._batch_function(model, graphs, shapes)
        assert not batched, name
        for got in (fn(xs), by_rows(xs)):
            assert len(got) == len(expect), name
            for g, e, what in zip(got, expect, ["prior", *(v.name for v in graphs)]):
                assert np.shape(g) == np.shape(e), (name, what)
                np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12, err_msg=f"{name}: {what}")


def _normal_normal(K=30, centred=False, mean=False):
    """A frailty whose every piece is known: y_c ~ N(m + b_c, v_c), b = SD z (non-centred), z ~ N(0, 1), or
    b ~ N(0, SD) (centred), log SD ~ N(log 0.5, 1); with ``mean`` a shared m ~ N(0, 10) (a coefficient beside the
    effects), else m = 0. Given the log SD the rest is exactly normal, and the log SD's marginal is
    log N(y; 0, diag(SD^2 + v) + 100 (with ``mean``)) plus its prior: ``(logp_grad of [log SD, (m,) z or b], exact
    log marginal on a grid, K)``."""
    rng = np.random.default_rng(seed(140))
    v = rng.uniform(0.02, 0.2, K)
    y = rng.normal(0.5 if mean else 0.0, np.sqrt(0.3 ** 2 + v))
    m0, tau2, k = np.log(0.5), 100.0, int(mean)

    def logp_grad(x):
        s, m, z = x[0], (x[1] if mean else 0.0), x[1 + k:]
        e = np.exp(s)
        b, db = (z, 1.0) if centred else (e * z, e)
        r = y - m - b
        lp = -0.5 * np.sum(r * r / v) - 0.5 * m * m / tau2 - 0.5 * (s - m0) ** 2
        if centred:  # z is b itself, N(0, e^2): its log density has -K s
            lp += -0.5 * np.sum(z * z) / e ** 2 - K * s
            gs, gz = np.sum(z * z) / e ** 2 - K, r / v - z / e ** 2
        else:
            lp += -0.5 * np.sum(z * z)
            gs, gz = np.sum(r * b / v), db * r / v - z
        gm = [np.sum(r / v) - m / tau2] if mean else []
        return lp, np.concatenate([[gs - (s - m0)], gm, gz])

    def log_marginal(s):
        d = np.exp(2 * np.asarray(s, float))[:, None] + v
        out = -0.5 * np.sum(np.log(d) + y ** 2 / d, axis=1)
        if mean:  # Sherman-Morrison for the shared mean's rank-one variance
            a = 1 + tau2 * np.sum(1 / d, axis=1)
            out += -0.5 * np.log(a) + 0.5 * tau2 * np.sum(y / d, axis=1) ** 2 / a
        return out - 0.5 * (np.asarray(s) - m0) ** 2

    return logp_grad, log_marginal, K


def _exact(log_marginal, lo=-12.0, hi=4.0):
    s = np.linspace(lo, hi, 40001)
    p = np.exp(log_marginal(s) - log_marginal(s).max())
    p /= np.trapezoid(p, s)
    mean = np.trapezoid(s * p, s)
    return s, p, mean, np.sqrt(np.trapezoid((s - mean) ** 2 * p, s))


@pytest.mark.parametrize("centred, mean", [(False, False), (True, False), (False, True), (True, True)])
def test_the_frailty_start_finds_the_marginal_s_peak_and_width_and_carries_the_mode_there(centred, mean):
    """The likelihood's Hessian on the effects' own scale does not move with them here, so the Hessian carried to
    the estimate is the exact one there, the block between the shared mean and the effects included; without the
    mean each effect is a normal observation of its own, the EM estimate is the SD that maximises the marginal
    likelihood and the carried mode is exact too (with it, the mean's shift is left out: a start, not asserted).
    The estimate is asserted within one marginal SD of the peak (the prior on the log SD and the mean's uncertainty,
    both left out of it, move the peak by a fraction of that), its width within a factor of 1.5 of the marginal's
    SD (expected against observed information); mode to 1e-8, Hessian to the forward differences' 1e-5."""
    logp_grad, log_marginal, K = _normal_normal(centred=centred, mean=mean)
    grid, p, _, sd = _exact(log_marginal)
    peak = grid[np.argmax(p)]
    d = K + int(mean)
    rest, effects = np.arange(1, d + 1), np.arange(1 + int(mean), d + 1)

    def at(s):
        def cond(y):
            lp, g = logp_grad(np.concatenate([[s], y]))
            return lp, g[1:]
        return laplace.find_mode(cond, np.zeros(d))

    y0, H0, _ = at(0.0)
    s1, delta, y1, H1 = laplace._frailty_start(0.0, y0, H0, rest, effects, centred)
    assert abs(s1 - peak) < sd and sd / 1.5 < delta < 1.5 * sd
    y_exact, H_exact, _ = at(s1)
    if not mean:
        assert np.allclose(y1, y_exact, rtol=1e-8, atol=1e-10)
    assert np.allclose(H1, H_exact, rtol=1e-5, atol=1e-6)  # the forward-difference Hessian's own error


def test_the_proposal_s_density_of_the_scale_is_normalised_and_its_draws_follow_it():
    """The density the weights divide by is the one the draws come from: it integrates to 1 (quadrature to 60
    tail lengths beyond each end, to 1e-6), the draws' distribution function is its integral (Kolmogorov-Smirnov,
    p > 1e-3), the share beyond each end is the tail's mass within 4 binomial SDs, and the distance beyond the lower
    end (the heavy tail) averages the exponential's 1 / slope within 4 standard errors."""
    logp_grad, _, K = _normal_normal()
    proposal = laplace._IntegratedProposal(logp_grad, np.zeros(K + 1), 0, "frailty_sd", (np.arange(1, K + 1), False))
    lo, hi = proposal.grid[0], proposal.grid[-1]
    s = np.concatenate([np.linspace(lo - 60 / proposal._tail[0], lo, 200_001), np.linspace(lo, hi, 200_001)[1:],
                        np.linspace(hi, hi + 60 / proposal._tail[1], 200_001)[1:]])
    dens = np.exp(proposal.scale_log_density(s))
    assert abs(np.trapezoid(dens, s) - 1) < 1e-6
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(s))])
    S = 200_000  # about 1,200 beyond the lower end: its mean known to 3%
    drawn = proposal.draw(np.random.default_rng(seed(142)), S)[0][:, 0]
    assert stats.kstest(drawn, lambda v: np.interp(v, s, cdf)).pvalue > 1e-3
    for beyond, mass in ((drawn < lo, cdf[200_000]), (drawn > hi, 1 - cdf[400_000])):
        assert abs(beyond.sum() - S * mass) < 4 * np.sqrt(S * mass * (1 - mass)) + 1
    below = lo - drawn[drawn < lo]
    assert abs(below.mean() - 1 / proposal._tail[0]) < 4 * (1 / proposal._tail[0]) / np.sqrt(len(below))


@pytest.mark.parametrize("effects", ["frailty start", "climb"])
def test_the_integrated_proposal_with_its_tails_weighs_to_the_exact_marginal(effects):
    """Importance sampling from the proposal (grid, exponential tails beyond it, the t given the log SD) with its
    own log density: the weighted mean of the log SD and its mass beyond each end of the grid agree with the exact
    marginal's (quadrature) within 4 Monte Carlo errors (delta method on the self-normalised weights), whether the
    grid was placed by the frailty start or by the generic climb. A wrong log density in the tails (or between
    grid points) would bias them; draws beyond the lower end are asserted to occur (the next test holds the draws
    beyond both ends to the tails' masses)."""
    logp_grad, log_marginal, K = _normal_normal()
    s_grid, p, mean, _ = _exact(log_marginal)
    eff = (np.arange(1, K + 1), False) if effects == "frailty start" else None
    proposal = laplace._IntegratedProposal(logp_grad, np.zeros(K + 1), 0, "frailty_sd", eff)
    x, log_q = proposal.draw(np.random.default_rng(seed(141)), 40_000)
    lp = np.array([logp_grad(row)[0] for row in x])
    w = np.exp(lp - log_q - np.max(lp - log_q))
    w /= w.sum()
    s = x[:, 0]
    lo, hi = proposal.grid[0], proposal.grid[-1]
    assert (s < lo).sum() > 20  # the lower tail is the heavy one (0.6% here); the upper one's mass is 1e-4 or less
    for f, exact in ((s, mean), (s < lo, np.trapezoid(p * (s_grid < lo), s_grid)),
                     (s > hi, np.trapezoid(p * (s_grid > hi), s_grid))):
        est = np.sum(w * f)
        se = np.sqrt(np.sum(w ** 2 * (f - est) ** 2))
        assert abs(est - exact) < 4 * se + 1e-4, (est, exact, se)


def test_a_frailty_start_without_a_proper_mode_at_its_estimate_falls_back_to_the_climb(monkeypatch):
    """Where the rest has no proper mode at the estimated SD (the first conditional mode after the start fails),
    the grid comes from the climb instead, and still spans the exact marginal's peak."""
    logp_grad, log_marginal, K = _normal_normal()
    calls, newton = [], laplace._newton_from

    def first_fails(cond, y0, H0):
        calls.append(1)
        if len(calls) == 1:
            raise bc.SpecError("no proper mode here")
        return newton(cond, y0, H0)

    monkeypatch.setattr(laplace, "_newton_from", first_fails)
    proposal = laplace._IntegratedProposal(logp_grad, np.zeros(K + 1), 0, "frailty_sd", (np.arange(1, K + 1), False))
    s, p, _, _ = _exact(log_marginal)
    assert len(calls) > 1 and proposal.grid[0] < s[np.argmax(p)] < proposal.grid[-1]
