"""The Cox partial likelihood at fixed points, against implementations nobody here wrote."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescrt as bc
from bayescrt.data import SurvivalData
from bayescrt.families.cox import RiskSets, partial_loglik_terms
from seeds import seed


@pytest.fixture(scope="module")
def tied():
    """Heavily tied, censored, stratified data with delayed entry for a third of subjects."""
    rng = np.random.default_rng(seed(1))
    n = 400
    df = pd.DataFrame({
        "t": np.round(rng.exponential(3, n)) + 1,
        "e": rng.random(n) < 0.7,
        "a": rng.normal(size=n),
        "b": (rng.random(n) < 0.4).astype(float),
        "s": rng.integers(0, 3, n),
    })
    df["en"] = np.where(rng.random(n) < 0.66, 0.0, df.t * rng.random(n) * 0.9)
    return df


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("strata", [None, "s"])
@pytest.mark.parametrize("entry", [None, "en"])
def test_matches_statsmodels_phreg_loglike(tied, ties, strata, entry):
    from statsmodels.duration.hazard_regression import PHReg

    d = SurvivalData.from_frame(tied, time="t", event="e", covariates=["a", "b"], strata=strata, entry=entry)
    rs = RiskSets.from_data(d, ties)
    ref = PHReg(tied.t, tied[["a", "b"]], status=tied.e.astype(int), ties=ties,
                strata=None if strata is None else tied[strata], entry=None if entry is None else tied[entry])
    for beta in ([0.0, 0.0], [0.4, -0.7], [-1.5, 2.0]):
        beta = np.array(beta)
        assert partial_loglik_terms(d.X @ beta, rs).sum() == pytest.approx(ref.loglike(beta), rel=1e-12, abs=1e-9)


def test_batched_draws_equal_single_evaluations(tied):
    d = SurvivalData.from_frame(tied, time="t", event="e", covariates=["a", "b"], strata="s", entry="en")
    rs = RiskSets.from_data(d, "efron")
    betas = np.random.default_rng(seed(2)).normal(size=(5, 2))
    batch = partial_loglik_terms(betas @ d.X.T, rs)
    assert batch.shape == (5, d.n_events)
    for k in range(5):
        np.testing.assert_allclose(batch[k], partial_loglik_terms(d.X @ betas[k], rs), rtol=1e-13)


def test_case_weights_equal_replicated_rows_under_breslow(tied):
    df = tied.copy()
    df["w"] = np.random.default_rng(seed(3)).integers(1, 4, len(df)).astype(float)
    rep = df.loc[df.index.repeat(df["w"].astype(int))].reset_index(drop=True)
    dw = SurvivalData.from_frame(df, time="t", event="e", covariates=["a", "b"], weights="w")
    dr = SurvivalData.from_frame(rep, time="t", event="e", covariates=["a", "b"])
    beta = np.array([0.3, -0.4])
    lw = partial_loglik_terms(dw.X @ beta, RiskSets.from_data(dw, "breslow")).sum()
    lr = partial_loglik_terms(dr.X @ beta, RiskSets.from_data(dr, "breslow")).sum()
    assert lw == pytest.approx(lr, rel=1e-12)


def test_weighted_efron_matches_lifelines(tied):
    from lifelines import CoxPHFitter

    df = tied[["t", "e", "a", "b"]].copy()
    df["w"] = np.random.default_rng(seed(4)).uniform(0.5, 2.0, len(df))
    cph = CoxPHFitter().fit(df, "t", "e", weights_col="w", robust=True)
    d = SurvivalData.from_frame(df, time="t", event="e", covariates=["a", "b"], weights="w")
    ll = partial_loglik_terms(d.X @ cph.params_[["a", "b"]].to_numpy(), RiskSets.from_data(d, "efron")).sum()
    assert ll == pytest.approx(cph.log_likelihood_, rel=1e-8)


@pytest.mark.parametrize("precondition", [True, False])
def test_model_logp_and_gradient(tied, precondition):
    """The model's log density is prior + partial likelihood in z = (beta_std - m) / s, with its Jacobian."""
    from bayescrt.families.cox import build_model
    from bayescrt.priors import resolve_priors

    d = bc.CoxPH().prepare(tied, time="t", event="e", covariates=["a", "b"], strata="s", entry="en")
    pri = resolve_priors(d.covariates, d.sources, d.scale, None)
    model, rs, pre = build_model(d, pri, "efron", precondition=precondition)
    assert pre["preconditioned"] is precondition
    m = np.array(pre.get("mode_std", [0.0, 0.0]))
    s = np.array(pre.get("se_std", [1.0, 1.0]))
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    z = np.array([0.3, -0.2])
    b_std = m + s * z
    expected = (partial_loglik_terms(d.standardised() @ b_std, rs).sum() + stats.norm(0, 2.5).logpdf(b_std).sum()
                + np.log(s).sum())
    assert logp({"log_hr_z": z}) == pytest.approx(expected, rel=1e-10)
    # central differences: truncation O(h^2) ~ 1e-8, round-off eps*|logp|/h ~ 1e-10 at h = 1e-4
    h = 1e-4
    fd = [(logp({"log_hr_z": z + h * e}) - logp({"log_hr_z": z - h * e})) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(dlogp({"log_hr_z": z}), fd, rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(dlogp({"log_hr_z": np.array([8.0, -8.0])})))
    if precondition:  # m is the MLE on the per-SD scale, s its standard errors
        from bayescrt.families.cox import mle
        ref = mle(d, "efron")
        np.testing.assert_allclose(m, np.array(list(ref["coef"].values())) * d.scale)


@pytest.mark.filterwarnings("ignore::bayescrt.DataWarning")
def test_extreme_linear_predictors_stay_finite():
    """exp(eta) would overflow here without the max shift."""
    df = pd.DataFrame({"t": np.arange(1.0, 51.0), "e": 1, "x": np.linspace(-400, 400, 50)})
    d = SurvivalData.from_frame(df.assign(e=np.arange(50) % 2), time="t", event="e", covariates=["x"])
    terms = partial_loglik_terms(d.X @ np.array([2.0]), RiskSets.from_data(d, "efron"))
    assert np.all(np.isfinite(terms))


def _brute_force_loglik(df, beta, ties):
    """Partial log-likelihood from explicit risk sets, each summed by log-sum-exp (O(N^2), small data only)."""
    from scipy.special import logsumexp

    eta = df[["x"]].to_numpy() @ beta
    total = 0.0
    for t in np.unique(df.t[df.e == 1]):
        at_risk = ((df.t >= t) & (df.en < t)).to_numpy()
        dead = ((df.t == t) & (df.e == 1)).to_numpy()
        d = dead.sum()
        for l in range(d):
            f = l / d if ties == "efron" else 0.0
            # log(sum_R exp(eta) - f * sum_D exp(eta)) with D inside R, all on the log scale
            log_r, log_d = logsumexp(eta[at_risk]), logsumexp(eta[dead])
            total -= log_r + np.log1p(-f * np.exp(log_d - log_r))
        total += eta[dead].sum()
    return total


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_late_entrants_do_not_cancel_early_risk_sets(ties):
    """Early deaths among a few low-risk subjects while a large high-risk cohort has not entered yet.

    Backwards, each early risk set is (everyone still alive) minus (not yet entered): two sums
    of about 100 e^30 whose difference is about e^0, below double precision.
    """
    rng = np.random.default_rng(seed(5))
    early = pd.DataFrame({"t": np.arange(1.0, 11.0), "e": 1, "x": 0.0, "en": 0.0})
    late = pd.DataFrame({"t": 20 + rng.exponential(5, 100).round(), "e": rng.random(100) < 0.8,
                         "x": 1.0 + rng.normal(0, 0.1, 100), "en": 15.0})
    df = pd.concat([early, late], ignore_index=True)
    d = SurvivalData.from_frame(df, time="t", event="e", covariates=["x"], entry="en")
    rs = RiskSets.from_data(d, ties)
    for b in (0.0, 30.0, -30.0):
        ours = partial_loglik_terms(d.X @ np.array([b]), rs).sum()
        assert ours == pytest.approx(_brute_force_loglik(df, np.array([b]), ties), rel=1e-10)


def test_mle_reports_separation_as_not_converged():
    """With the covariate ordering the deaths perfectly, the partial likelihood has no maximum."""
    df = pd.DataFrame({"t": np.arange(1.0, 21.0), "e": 1, "x": np.linspace(1, 0, 20)})
    from bayescrt.families.cox import mle

    with pytest.warns(bc.DataWarning):
        d = SurvivalData.from_frame(df, time="t", event="e", covariates=["x"])
    assert not mle(d)["converged"]
    ok = SurvivalData.from_frame(df.assign(x=np.random.default_rng(seed(0)).normal(size=20)), time="t", event="e",
                                 covariates=["x"])
    assert mle(ok)["converged"]


@pytest.mark.parametrize("ties,strata,entry", [("efron", None, None), ("breslow", "s", None), ("efron", "s", "en")])
def test_newton_mle_matches_statsmodels(tied, ties, strata, entry):
    from statsmodels.duration.hazard_regression import PHReg

    from bayescrt.families.cox import mle

    d = SurvivalData.from_frame(tied, time="t", event="e", covariates=["a", "b"], strata=strata, entry=entry)
    ours = mle(d, ties)
    ref = PHReg(tied.t, tied[["a", "b"]], status=tied.e.astype(int), ties=ties,
                strata=None if strata is None else tied[strata], entry=None if entry is None else tied[entry]).fit()
    np.testing.assert_allclose(list(ours["coef"].values()), ref.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(list(ours["se"].values()), ref.bse, rtol=1e-5)
    assert ours["loglik"] == pytest.approx(ref.llf, rel=1e-10)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_newton_mle_shifts_each_stratum_by_its_own_maximum(ties):
    """A covariate 3,000 units higher in one stratum: one shift for all rows underflowed the other stratum's risk
    sums to 0 (log-likelihood +inf, coefficients off). Both the one-pass kernel and the numpy sums match statsmodels."""
    from statsmodels.duration.hazard_regression import PHReg

    from bayescrt.families.cox import mle
    from bayescrt.families.partial_likelihood import risk_set_sums

    rng = np.random.default_rng(seed(11))
    n = 400
    s = np.repeat([0, 1], n // 2)
    x, z = rng.normal(size=n) + 3000.0 * s, rng.normal(size=n)
    t = rng.exponential(1 / np.exp(0.5 * (x - 3000.0 * s) + 0.3 * z))
    c = rng.exponential(2, n)
    df = pd.DataFrame({"t": np.minimum(t, c), "e": (t <= c).astype(int), "x": x, "z": z, "s": s})
    d = SurvivalData.from_frame(df, time="t", event="e", covariates=["x", "z"], strata="s")
    ref = PHReg(df.t, df[["x", "z"]], status=df.e, strata=df.s, ties=ties).fit()
    for ours in (mle(d, ties), mle(d, ties, sums=lambda r, rs, xp: risk_set_sums(r, rs, xp))):
        assert ours["converged"]
        np.testing.assert_allclose(list(ours["coef"].values()), ref.params, rtol=1e-7)
        np.testing.assert_allclose(list(ours["se"].values()), ref.bse, rtol=1e-6)
        assert ours["loglik"] == pytest.approx(ref.llf, rel=1e-10)


def test_newton_mle_with_a_singular_information_is_not_converged():
    """One event, two covariates, three strata: the partial likelihood rises towards 1 without a maximum. The SEs
    come out NaN or about 1e7, which the step test could not judge; such an MLE is not reported as converged."""
    from bayescrt.families.cox import mle

    df = pd.DataFrame({"t": [2., 2., 1., 2., 2., 1., 1., 2.], "e": [0, 0, 0, 1, 0, 0, 0, 0],
                       "x0": [8.84, 3.62, -0.61, -0.24, -3.54, -1.80, 9.21, 0.47],
                       "x1": [0.56, 0.11, 0.45, 1.33, 0.78, 0.55, 0.03, -0.90], "s": [0, 0, 1, 1, 1, 2, 2, 2]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.DataWarning)
        d = SurvivalData.from_frame(df, time="t", event="e", covariates=["x0", "x1"], strata="s")
    for ties in ("efron", "breslow"):
        assert not mle(d, ties)["converged"]


def test_newton_mle_matches_lifelines_on_rossi():
    from lifelines import CoxPHFitter

    from bayescrt.families.cox import mle

    df = bc.datasets.load_rossi()
    covs = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    cph = CoxPHFitter().fit(df, "week", "arrest")
    ours = mle(SurvivalData.from_frame(df, time="week", event="arrest", covariates=covs))
    np.testing.assert_allclose(pd.Series(ours["coef"])[covs], cph.params_[covs], rtol=1e-6)
    np.testing.assert_allclose(pd.Series(ours["se"])[covs], cph.standard_errors_[covs], rtol=1e-5)


def test_kaplan_meier_matches_lifelines(tied):
    from lifelines import KaplanMeierFitter

    from bayescrt.effects import kaplan_meier

    km = kaplan_meier(tied.t, tied.e)
    ref = KaplanMeierFitter().fit(tied.t, tied.e).survival_function_["KM_estimate"]
    np.testing.assert_allclose(km["survival"].to_numpy(), ref.loc[km["time"]].to_numpy(), rtol=1e-12)
