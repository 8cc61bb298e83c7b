"""Absolute-scale effects (standardised survival, risk and RMST differences) and the posterior predictive KM check.

The MCMC tests share one Cox fit to a randomised trial simulated with a known truth: treatment 0/1 at
random (HR 0.6), a continuous covariate (HR 1.5 per SD), a Weibull baseline (shape 1.5, scale 2.5),
administrative censoring between 2.5 and 4 and random exponential censoring. Under randomisation the
standardised curve of each arm estimates that arm's marginal survival, which Kaplan-Meier also estimates.
The fast tests run on a stub fit (posterior draws written by hand) and need no sampling.
"""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from lifelines import KaplanMeierFitter
from lifelines.utils import restricted_mean_survival_time
from numpy.polynomial.hermite_e import hermegauss

import bayescrt as bc
from bayescrt import absolute
from bayescrt.effects import kaplan_meier
from bayescrt.errors import DiagnosticsWarning, SpecError
from bayescrt.fit import Fit
from bayescrt.plotting import plot_ppc_km, plot_standardised_survival
from seeds import seed

SCALE, SHAPE, LOG_HR_TREAT, LOG_HR_X = 2.5, 1.5, np.log(0.6), np.log(1.5)
HORIZON = 2.5


def simulate_trial(n=1000, seed=seed(20260512)):
    rng = np.random.default_rng(seed)
    treat = rng.integers(0, 2, n)
    x = rng.normal(0, 1, n)
    t = SCALE * (rng.standard_exponential(n) / np.exp(LOG_HR_TREAT * treat + LOG_HR_X * x)) ** (1 / SHAPE)
    c = np.minimum(rng.uniform(2.5, 4.0, n), rng.exponential(10.0, n))
    return pd.DataFrame({"time": np.minimum(t, c), "died": (t <= c).astype(int), "treat": treat, "x": x})


def true_survival(t, arm):
    """Marginal survival of an arm: the conditional Weibull survival averaged over x ~ N(0, 1) by quadrature."""
    xs, ws = hermegauss(80)
    t = np.atleast_1d(np.asarray(t, float))[:, None]
    return (np.exp(-(t / SCALE) ** SHAPE * np.exp(LOG_HR_TREAT * arm + LOG_HR_X * xs)) * ws / ws.sum()).sum(axis=1)


def km_by_arm(df, arm):
    m = df["treat"] == arm
    return KaplanMeierFitter().fit(df.loc[m, "time"], df.loc[m, "died"])


@pytest.fixture(scope="module")
def trial():
    return simulate_trial()


@pytest.fixture(scope="module")
def trial_fit(trial):
    return bc.CoxPH().fit(trial, time="time", event="died", covariates=["treat", "x"], draws=1000, tune=1000,
                          chains=4, random_seed=seed(20260512), progress=False)


def stub_fit(df, covariates, sources=None, mean=(LOG_HR_TREAT, LOG_HR_X), sd=(0.08, 0.04), draws=1000, extra=None):
    """A Cox Fit whose log-HR draws are written by hand: enough for everything in bayescrt.absolute."""
    rng = np.random.default_rng(seed(1))
    X = df[covariates].to_numpy(float)
    p = len(covariates)
    mean, sd = np.resize(np.asarray(mean, float), p), np.resize(np.asarray(sd, float), p)
    post = {"log_hr": (("chain", "draw", "covariate"), rng.normal(mean, sd, (4, draws // 4, p)))}
    post.update(extra or {})
    stats = {"diverging": (("chain", "draw"), np.zeros((4, draws // 4), bool)),
             "energy": (("chain", "draw"), rng.normal(0, 1, (4, draws // 4)))}
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset(post, coords={"covariate": covariates}),
        "sample_stats": xr.Dataset(stats),
        "observed_data": xr.Dataset({"time": ("obs", df["time"].to_numpy(float)),
                                     "event": ("obs", df["died"].to_numpy())}),
        "constant_data": xr.Dataset({"X": (("obs", "covariate"), X)}, coords={"covariate": covariates}),
    })
    tree.attrs["bayescrt_model"] = json.dumps({"family": "CoxPH", "covariates": covariates,
                                                "sources": sources or covariates, "center": X.mean(axis=0).tolist()})
    return Fit(tree)


# ---------------------------------------------------------------- MCMC: one shared fit
@pytest.mark.mcmc
def test_standardised_survival_agrees_with_kaplan_meier_by_arm(trial, trial_fit):
    times = [1.0, 2.0]
    draws = absolute.standardised_survival_draws(trial_fit, "treat", times)
    tab = absolute.standardised_survival(trial_fit, "treat", times)
    assert draws.shape == (1000, 2, 2)
    assert list(tab.columns) == ["exposure", "time", "median", "lower", "upper", "mean", "sd"]
    assert tab.attrs["exposure"] == "treat" and tab.attrs["curve"] == "step"
    for arm in (0, 1):
        rows = tab[tab["exposure"] == arm]
        np.testing.assert_allclose(rows["median"], np.median(draws[:, arm], axis=0))  # same seed, same draws
        assert (rows["lower"] < rows["median"]).all() and (rows["median"] < rows["upper"]).all()
        km = km_by_arm(trial, arm).survival_function_at_times(times).to_numpy()
        sd = draws[:, arm].std(axis=0, ddof=1)
        assert np.all(np.abs(np.median(draws[:, arm], axis=0) - km) <= 3 * sd), (arm, km, sd)


@pytest.mark.mcmc
def test_rmst_difference_agrees_with_lifelines_and_covers_the_truth(trial, trial_fit):
    tab = absolute.rmst_difference(trial_fit, "treat", HORIZON)
    assert list(tab.index) == ["rmst_0", "rmst_1", "difference"]
    assert tab.attrs["integration"] == "exact sum over steps"
    rmst = {arm: restricted_mean_survival_time(km_by_arm(trial, arm), t=HORIZON) for arm in (0, 1)}
    for arm in (0, 1):
        row = tab.loc[f"rmst_{arm}"]
        assert abs(row["mean"] - rmst[arm]) <= 3 * row["sd"], (arm, row["mean"], rmst[arm], row["sd"])
    diff = tab.loc["difference"]
    assert abs(diff["mean"] - (rmst[1] - rmst[0])) <= 3 * diff["sd"]
    grid = np.linspace(0.0, HORIZON, 20001)
    truth = np.trapezoid(true_survival(grid, 1), grid) - np.trapezoid(true_survival(grid, 0), grid)
    assert diff["lower"] <= truth <= diff["upper"], (truth, diff)
    assert diff["p_gt_0"] > 0.99  # the treatment lowers the hazard: it adds survival time


@pytest.mark.mcmc
def test_risk_difference_signs_and_consistency(trial_fit):
    times = [1.0, 2.0]
    draws = absolute.standardised_survival_draws(trial_fit, "treat", times)
    rd = absolute.risk_difference(trial_fit, "treat", times)
    expected = (1 - draws[:, 1]) - (1 - draws[:, 0])
    np.testing.assert_allclose(rd["median"], np.median(expected, axis=0))
    np.testing.assert_allclose(rd["risk_0"], np.median(1 - draws[:, 0], axis=0))
    assert (rd["upper"] < 0).all() and (rd["p_gt_0"] < 0.01).all()  # protective treatment
    assert rd["median"].iloc[1] < rd["median"].iloc[0]  # the absolute benefit grows as events accrue
    flipped = absolute.risk_difference(trial_fit, "treat", times, values=(1, 0))
    np.testing.assert_allclose(flipped["median"], -rd["median"])
    np.testing.assert_allclose(flipped["p_gt_0"], 1 - rd["p_gt_0"])


@pytest.mark.mcmc
def test_ppc_km_covers_the_data_and_flags_wrong_models(trial_fit, monkeypatch):
    """The global rank test's p-value: P(p <= a) <= a for exchangeable curves.

    Two checks of the correct model at a = 0.005 (399 simulations, so p moves in steps of
    1/400): a false alarm in at most 1% of seeds if the observed curve were exchangeable with
    the simulated ones; the posterior's reuse of the data makes it more conservative still
    (p = 1.0 for this fit under seed shifts 0-5). The wrong models are among the most extreme.
    """
    tab = absolute.ppc_km(trial_fit, exposure="treat", n_sims=399, n_grid=100)
    assert tab.shape == (200, 8 + 399) and sorted(tab["group"].unique()) == [0, 1]
    assert (tab["lower"] <= tab["upper"]).all() and tab[[f"sim_{d}" for d in range(399)]].le(1).all().all()
    assert all(0 <= c <= 1 for c in tab.attrs["coverage"].values()), tab.attrs["coverage"]
    assert tab.attrs["p_value"] > 0.005, tab.attrs
    assert set(tab.attrs["p_value_by_group"]) == {"0", "1"}
    assert absolute.ppc_km(trial_fit, n_sims=399).attrs["p_value"] > 0.005
    # a baseline three times too high: every curve falls below its band
    real = absolute.baseline_cumhaz
    monkeypatch.setattr(absolute, "baseline_cumhaz", lambda *a, **k: 3 * real(*a, **k))
    high = absolute.ppc_km(trial_fit, n_sims=399)
    assert high.attrs["p_value"] == 1 / 400 and high.attrs["coverage"]["all"] < 0.5, high.attrs
    monkeypatch.undo()
    # the treatment left out (its log-HR set to 0): the arms leave their bands in opposite directions
    beta = trial_fit.log_hr_draws()
    beta[:, trial_fit.covariates.index("treat")] = 0.0
    monkeypatch.setattr(trial_fit, "log_hr_draws", lambda: beta.copy())
    wrong = absolute.ppc_km(trial_fit, exposure="treat", n_sims=399)
    assert wrong.attrs["p_value"] <= 0.02, wrong.attrs
    late = wrong[wrong["time"] > 1.0]
    assert (late.loc[late["group"] == 0, "observed"] < late.loc[late["group"] == 0, "median"]).mean() > 0.9
    assert (late.loc[late["group"] == 1, "observed"] > late.loc[late["group"] == 1, "median"]).mean() > 0.9


# ---------------------------------------------------------------- fast: stub fit, no sampling
@pytest.fixture(scope="module")
def stub():
    df = simulate_trial(n=300, seed=seed(3))
    return df, stub_fit(df, ["treat", "x"])


def test_input_errors_name_the_value_and_the_fix(stub):
    df, fit = stub
    with pytest.raises(SpecError, match=r"exposure='x' must be a 0/1 column.*recode it as a 0/1 indicator"):
        absolute.standardised_survival(fit, "x", [1.0])
    with pytest.raises(SpecError, match=r"exposure='treatment' is not a covariate.*Did you mean 'treat'"):
        absolute.risk_difference(fit, "treatment", [1.0])
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(SpecError, match=r"horizon=.* must be a positive time.*e\.g\. horizon=5"):
            absolute.rmst_difference(fit, "treat", bad)
    with pytest.raises(SpecError, match=r"horizon reaches 99.*past the last follow-up time.*use horizon <="):
        absolute.rmst_difference(fit, "treat", 99)
    with pytest.raises(SpecError, match=r"values=\(0, 2\).*e\.g\. values=\(0, 1\)"):
        absolute.standardised_survival(fit, "treat", [1.0], values=(0, 2))
    with pytest.raises(SpecError, match=r"times=.* must be finite times >= 0"):
        absolute.standardised_survival(fit, "treat", [-1.0])
    level = np.arange(len(df)) % 3  # a three-level categorical, encoded as two indicators
    cat = stub_fit(df.assign(**{"nyha[III vs II]": (level == 1) * 1, "nyha[IV vs II]": (level == 2) * 1}),
                   ["treat", "nyha[III vs II]", "nyha[IV vs II]"], sources=["treat", "nyha", "nyha"])
    with pytest.raises(SpecError, match=r"exposure='nyha' is a categorical covariate with 3 levels.*recode 'nyha'"):
        absolute.standardised_survival(cat, "nyha", [1.0])
    with pytest.raises(SpecError, match=r"one indicator of the categorical covariate 'nyha'.*recode"):
        absolute.ppc_km(cat, exposure="nyha[IV vs II]")
    frail = stub_fit(df, ["treat", "x"], extra={"frailty": (("chain", "draw", "cluster"), np.zeros((4, 250, 3)))})
    with pytest.raises(SpecError, match="frailty"):
        absolute.standardised_survival(frail, "treat", [1.0])


def test_plots_render_and_expose_their_data(stub, tmp_path):
    import matplotlib.pyplot as plt

    _, fit = stub
    std = absolute.standardised_survival(fit, "treat", max_draws=200)
    ax = plot_standardised_survival(std, labels={0: "control", 1: "treated"}, title="Standardised survival")
    assert ax.standardised_data.equals(std) and len(ax.get_lines()) == 2
    ax.figure.savefig(tmp_path / "standardised.png")
    ppc = absolute.ppc_km(fit, exposure="treat", n_sims=20)
    ax = plot_ppc_km(ppc, title="Posterior predictive Kaplan-Meier")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.ppc_data.equals(ppc) and len(texts) == 5  # observed and band per group, and the test
    assert texts[-1] == f"global rank test: p = {ppc.attrs['p_value']:.3g} (20 simulations)", texts
    assert texts[1].endswith(": 20 simulated KMs, 90% band"), texts
    few = [t.get_text() for t in plot_ppc_km(ppc, max_curves=5).get_legend().get_texts()]
    assert few[1].endswith(": 5 of 20 simulated KMs, 90% band"), few  # the band is still from all 20
    ax.figure.savefig(tmp_path / "ppc.png")
    assert (tmp_path / "standardised.png").stat().st_size > 0 and (tmp_path / "ppc.png").stat().st_size > 0
    plt.close("all")


def test_numerical_pieces(stub):
    df, fit = stub
    rng = np.random.default_rng(seed(5))
    # Kaplan-Meier on a grid: the package's estimator unweighted; lifelines weighted with delayed entry
    grid = np.linspace(0, df["time"].max(), 57)
    km = kaplan_meier(df["time"], df["died"])
    ours, _ = absolute._km_on_grid(df["time"], df["died"].astype(bool), grid)
    np.testing.assert_allclose(ours, km["survival"].to_numpy()[np.searchsorted(km["time"], grid, side="right") - 1])
    w, entry = rng.integers(1, 4, len(df)).astype(float), df["time"].to_numpy() * rng.uniform(0, 0.5, len(df))
    ll = KaplanMeierFitter().fit(df["time"], df["died"], entry=entry, weights=w)
    ours, _ = absolute._km_on_grid(df["time"], df["died"].astype(bool), grid, w, entry)
    np.testing.assert_allclose(ours[1:], ll.survival_function_at_times(grid[1:]).to_numpy())  # lifelines: NaN at 0
    # subject averages: interpolation in H0 within its stated bound of the exact sum
    H = np.sort(rng.uniform(0, 3, (20, 3000)), axis=1)
    r, wt = np.exp(rng.normal(0, 0.7, (20, 400))), rng.uniform(0.5, 2, 400)
    fast, exact = absolute._weighted_survival(H, r, wt), absolute._weighted_survival(H, r, wt, exact=True)
    assert np.abs(fast - exact).max() <= absolute._HERMITE_TOL * wt.sum()
    # the Cox baseline's gamma-process noise has the Breslow estimator as its mean
    fixed = stub_fit(df, ["treat", "x"], sd=(0.0, 0.0), draws=4000)
    data = bc.baseline.survival_data(fixed)
    times = np.array([0.5, 1.0, 2.0])
    H0, _ = absolute._posterior_cumhaz(fixed, data, times, None, np.random.default_rng(seed(0)))
    breslow = bc.baseline.baseline_cumhaz(fixed, times)[0, 0]
    se = H0[:, 0].std(axis=0) / np.sqrt(len(H0))
    assert np.all(np.abs(H0[:, 0].mean(axis=0) - breslow) <= 4 * se) and np.all(H0[:, 0].std(axis=0) > 0)
    # constant draws fail the convergence gates: absolute effects say so, as hazard_ratios() does
    with pytest.warns(DiagnosticsWarning, match="FAILED its convergence diagnostics"):
        assert not absolute.standardised_survival(fixed, "treat", [1.0], max_draws=10).attrs["diagnostics_ok"]


def _ecdf_survival_curves(rng, rates, n=60, grid=np.linspace(0.05, 3.0, 30)):
    """Empirical survival curves (steps of 1/n, so with ties) of n exponential times per rate."""
    t = rng.exponential(size=(len(rates), n)) / np.asarray(rates)[:, None]
    return (t[:, :, None] > grid).mean(axis=1)


def test_global_rank_p_value_is_uniform_under_exchangeability_and_small_for_a_misfit():
    """Under exchangeable curves ``P(p <= a) <= a``, and with few ties close to ``a``.

    2,000 replications of 1 + 49 curves: the share at or below ``a`` has binomial SD
    ``sqrt(a (1 - a) / 2000)`` (0.0067 at a = 0.1). The bound above is the theory (4 SD);
    below, ties between the step curves make the test a little conservative (about 1 SD
    here), so 5 SD. With 50 curves ``p`` takes the values k / 50, so each ``a`` is a multiple
    of 1/50.
    """
    rng = np.random.default_rng(seed(11))
    reps, m = 2000, 50
    p = np.array([absolute.global_rank_p_value(_ecdf_survival_curves(rng, np.ones(m))) for _ in range(reps)])
    assert p.min() >= 1 / m and p.max() <= 1.0
    for a in (0.02, 0.06, 0.1, 0.2, 0.5):
        share, sd = (p <= a + 1e-12).mean(), np.sqrt(a * (1 - a) / reps)
        assert a - 5 * sd <= share <= a + 4 * sd, (a, share, sd)
    # an observed curve with three times the hazard is more extreme than every simulated one
    wrong = np.r_[[3.0], np.ones(m - 1)]
    assert all(absolute.global_rank_p_value(_ecdf_survival_curves(rng, wrong)) == 1 / m for _ in range(20))
    # twice the hazard, a persistent shift of a step curve: found at 5% in about 98% of replications
    # (SD 0.01 in 200), so at least 90%
    double = np.r_[[2.0], np.ones(m - 1)]
    found = np.mean([absolute.global_rank_p_value(_ecdf_survival_curves(rng, double)) <= 0.05 for _ in range(200)])
    assert found >= 0.9, found
    # the same observed curve among copies of itself: nothing is more extreme, p = 1
    same = np.repeat(_ecdf_survival_curves(rng, [1.0]), 5, axis=0)
    assert absolute.global_rank_p_value(same) == 1.0
    for bad, what in ((np.ones((1, 4)), r"M >= 2"), (np.ones(4), r"M >= 2"),
                      (np.array([[0.5, np.nan], [0.4, 0.3]]), "NaN or infinite")):
        with pytest.raises(ValueError, match=what):
            absolute.global_rank_p_value(bad)
    for bad, what in ((np.empty((3, 0)), r"K >= 1 points; got shape \(3, 0\)"),
                      (np.array([[0.5, np.inf], [0.4, 0.3]]), "NaN or infinite"),
                      ("curves", r"array of numbers.*got str"), ([["a", "b"], ["c", "d"]], r"got list"),
                      (pd.DataFrame(), r"K >= 1 points; got shape \(0, 0\)")):
        with pytest.raises(SpecError, match=what):
            absolute.global_rank_p_value(bad)


@pytest.mark.parametrize("kw, match", [
    ({"time": [1, np.nan, 3]}, r"time must be finite and >= 0: 1 value\(s\) are not \(row 1: nan\)"),
    ({"event": [1, 2, 0]}, r"event must be 0 \(censored\) or 1"),
    ({"weights": [1, -1, 1]}, r"weights must be finite and > 0.*row 1: -1"),
    ({"weights": [1, 1]}, "weights has 2 values for 3 times"),
    ({"entry": [5, 0, 0]}, r"entry must be finite, >= 0 and below its time.*row 0: 5"),
    ({"time": ["a", "b", "c"]}, "time: give one number per row"),
])
def test_kaplan_meier_refuses_what_it_cannot_use(kw, match):
    """Weights and delayed entry are optional; a bad value in any argument is a DataError naming it, never a
    table of NaNs."""
    args = {"time": [1.0, 2.0, 3.0], "event": [1, 1, 0], **kw}
    with pytest.raises(bc.DataError, match=match):
        kaplan_meier(**args)
