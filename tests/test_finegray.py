"""The Fine-Gray model: its O(N) weighted partial likelihood against lifelines on the expanded data that R's
``survival::finegray`` would build, the Bayesian posterior against that frequentist fit, and bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.families.finegray import finegray_mle
from seeds import seed


def _cohort(n, k, weights=False):
    """Two causes with constant cause-specific hazards, censoring uniform on 0-10 (times continuous: no ties)."""
    rng = np.random.default_rng(k)
    x = (rng.random(n) < 0.4).astype(int)
    z = rng.normal(size=n)
    lam = np.column_stack([0.1 * np.exp(0.5 * x + 0.3 * z), 0.06 * np.exp(-0.3 * x)])
    t = rng.exponential(1 / lam.sum(axis=1))
    cause = 1 + (rng.random(n) < lam[:, 1] / lam.sum(axis=1))
    c = rng.uniform(0, 10, n)
    df = pd.DataFrame({"years": np.minimum(t, c), "status": np.where(t <= c, cause, 0), "x": x, "z": z})
    if weights:
        df["w"] = rng.choice([0.5, 1.0, 2.0, 3.0], n)
    return df


def _expanded(df, weights=None):
    """The Fine-Gray data set written from its definition: a subject with a competing event at T stays at risk
    after T in one row per interval between censoring times, weighted G(t-) / G(T-), with G lifelines'
    Kaplan-Meier of censoring (G(t-) on (a, b] is G(a))."""
    from lifelines import KaplanMeierFitter

    w = np.ones(len(df)) if weights is None else df[weights].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' note on non-integer weights (the estimate is what is used)
        km = KaplanMeierFitter().fit(df["years"], df["status"] == 0, weights=w)
    sf = km.survival_function_.iloc[:, 0]
    grid, vals = sf.index.to_numpy(), sf.to_numpy()

    def g_at(t):  # right-continuous
        return vals[np.searchsorted(grid, t, side="right") - 1]

    def g_left(t):
        k = np.searchsorted(grid, t, side="left") - 1
        return vals[k] if k >= 0 else 1.0

    cuts = np.sort(df.loc[df["status"] == 0, "years"].unique())
    end = df["years"].max() + 1
    rows = []
    for i, (t, s, x, z, wi) in enumerate(zip(df["years"], df["status"], df["x"], df["z"], w)):
        rows.append((i, 0.0, t, int(s == 1), wi, x, z))
        if s == 2:
            edges = np.concatenate([[t], cuts[cuts > t], [end]])
            g0 = g_left(t)
            rows += [(i, a, b, 0, wi * g_at(a) / g0, x, z) for a, b in zip(edges[:-1], edges[1:])]
    out = pd.DataFrame(rows, columns=["id", "start", "stop", "event", "w", "x", "z"])
    return out[out["w"] > 0]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "case weights"])
def test_the_subdistribution_likelihood_is_lifelines_weighted_cox_on_the_expanded_rows(weighted):
    """Newton-Raphson on the O(N) risk sets and lifelines' CoxTimeVaryingFitter on the finegray-expanded rows
    maximise the same likelihood: coefficients and SEs agree to 1e-6 (both converge to 1e-8 or better)."""
    from lifelines import CoxTimeVaryingFitter

    df = _cohort(300, seed(61), weights=weighted)
    kw = {"weights": "w"} if weighted else {}
    data = bc.FineGray().prepare(df, time="years", event="status", cause="cause 1", covariates=["x", "z"], **kw)
    mine = finegray_mle(data)
    ex = _expanded(df, "w" if weighted else None)
    assert len(ex) > 5 * len(df)  # the expansion the O(N) sums avoid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' note on non-integer weights
        ref = CoxTimeVaryingFitter().fit(ex, id_col="id", event_col="event", start_col="start", stop_col="stop",
                                         weights_col="w")
    assert mine["converged"]
    for c in ("x", "z"):
        assert mine["coef"][c] == pytest.approx(ref.params_[c], abs=1e-6)
        assert mine["se"][c] == pytest.approx(ref.standard_errors_[c], rel=1e-5)


def test_without_competing_events_the_model_is_the_cox_model():
    """A competing cause whose every event comes after all of the cause's events leaves every risk set
    unchanged: the Fine-Gray estimate equals the cause-specific Cox estimate (Breslow)."""
    df = _cohort(300, seed(62))
    late = df["status"] == 2
    df.loc[late, "years"] = 20 + df.loc[late, "years"]  # after every other time
    data = bc.FineGray().prepare(df, time="years", event="status", cause="cause 1", covariates=["x", "z"])
    cox = bc.CoxPH(ties="breslow").prepare(df.assign(e1=(df["status"] == 1).astype(int)), time="years", event="e1",
                                           covariates=["x", "z"])
    from bayescrt.families.partial_likelihood import mle

    fg, cs = finegray_mle(data), mle(cox, "breslow")
    for c in ("x", "z"):
        assert fg["coef"][c] == pytest.approx(cs["coef"][c], abs=1e-8)


@pytest.fixture(scope="module")
def fg_fit():
    df = _cohort(600, seed(63))
    return df, bc.FineGray().fit(df, time="years", event="status", cause="cause 1", covariates=["x", "z"],
                                 draws=1000, chains=4, random_seed=seed(64), progress=False)


def test_the_posterior_mean_is_the_frequentist_fine_gray_estimate(fg_fit):
    """With a weak prior (Normal(0, 2.5) per SD) and 210 events the posterior is close to normal at the MLE: its
    mean lies within 0.15 posterior SD of it (the Monte Carlo error of the mean is about 0.03 SD)."""
    df, fit = fg_fit
    assert fit.diagnostics().ok
    assert fit.model["estimand"] == "SHR" and fit.model["cause"] == "cause 1"
    assert fit.model["competing"] == ["cause 2"] and fit.model["n_competing"] == int((df["status"] == 2).sum())
    ref = finegray_mle(bc.FineGray().prepare(df, time="years", event="status", cause="cause 1",
                                             covariates=["x", "z"]))
    hr = fit.hazard_ratios()
    for c in ("x", "z"):
        assert abs(hr.loc[c, "log_hr_mean"] - ref["coef"][c]) < 0.15 * hr.loc[c, "log_hr_sd"]
        assert hr.loc[c, "log_hr_sd"] == pytest.approx(ref["se"][c], rel=0.15)  # the curvature at the mode
    n_events = int((df["status"] == 1).sum())
    assert fit.idata["log_likelihood"]["partial_loglik"].sizes["event"] == n_events


def test_a_saved_fine_gray_fit_loads_with_its_causes_and_refuses_survival(fg_fit, tmp_path):
    _, fit = fg_fit
    back = bc.load(fit.save(tmp_path / "fg.nc"))
    assert back.model["estimand"] == "SHR"
    np.testing.assert_array_equal(back.idata["observed_data"]["status"].values,
                                  fit.idata["observed_data"]["status"].values)
    with pytest.raises(bc.SpecError, match=r"subdistribution hazard of one cause.*cumulative incidence"):
        bc.absolute.standardised_survival(back, "x", [1.0, 2.0])


def test_labels_and_the_cause_of_interest_recode_the_status():
    """A text event column, the second cause of interest and an index with repeated labels: the status of each
    row is 1 for the cause, 2 for the other, 0 censored, in the caller's rows."""
    df = pd.DataFrame({"t": [1.0, 2, 3, 4, 5, 6, 7, 8], "e": ["death", "hf", "censored", "hf", "death", "censored",
                                                             "hf", "death"], "x": [0.3, 1.2, 0.5, 0.1, 1.1, 0.7, 0.9, 0.2]},
                      index=[5, 5, 3, 3, 1, 1, 0, 0])
    before = df.copy()
    data = bc.FineGray().prepare(df, time="t", event="e", cause="hf", covariates=["x"])
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not changed
    status = dict(zip(data.time, data.status))
    assert [status[t] for t in (1.0, 2, 3, 4, 5, 6, 7, 8)] == [2, 1, 0, 1, 2, 0, 1, 2]
    assert list(data.row_labels) == [5, 5, 3, 3, 1, 1, 0, 0]  # sorted by time, labels of the caller's index


@pytest.mark.parametrize("kw, message", [
    ({}, r"cause=None must name the cause.*\['cause 1', 'cause 2'\]"),
    ({"cause": "cuase 1"}, r"cause='cuase 1'.*Did you mean 'cause 1'"),
    ({"cause": "cause 1", "entry": "t0"}, r"entry='t0'.*delayed entry.*bc.CompetingRisks"),
    ({"cause": "cause 1", "cluster": "centre"}, r"cluster='centre': FineGray has no shared frailty"),
    ({"cause": "cause 1", "formula": "Surv(years, status) ~ x"}, r"formula= takes the covariates only"),
    ({"cause": "cause 1", "weights": "status"}, r"event='status' is also weights=; .*a column of its own"),
], ids=["no cause", "misspelt cause", "entry", "cluster", "formula outcome", "event is weights"])
def test_bad_fine_gray_arguments_are_refused_before_sampling(kw, message):
    df = _cohort(60, seed(65)).assign(t0=0.0, centre="a")
    args = {"covariates": ["x"]} if "formula" not in kw else {}
    with pytest.raises(bc.SpecError, match=message):
        bc.FineGray().fit(df, time="years", event="status", **args, **kw)


def test_a_subdistribution_model_is_refused_where_one_event_or_cause_specific_hazards_are_meant():
    with pytest.raises(bc.SpecError, match=r"subdistribution model; CompetingRisks fits cause-specific"):
        bc.CompetingRisks(family=bc.FineGray())
    with pytest.raises(bc.SpecError, match=r"FineGray models one cause among competing events.*a grid.s families model one event"):
        bc.sensitivity.Grid(time="years", event="status", exposure="x", covariate_sets={"none": []},
                            families=["FineGray"])


def test_an_shr_is_compared_only_with_a_published_shr(fg_fit):
    _, fit = fg_fit
    shr = {"hr": 1.8, "lower": 1.4, "upper": 2.4, "estimand": "SHR", "label": "a published SHR"}
    got = bc.compare(fit, shr, covariate="x")
    assert got.published.estimand == "SHR" and 1.4 < got.posterior_median_hr < 2.4
    with pytest.raises(bc.SpecError, match=r"posterior is a subdistribution HR \(SHR, Fine-Gray\) and a published HR "
                                           r"has estimand 'HR'.*bc.CompetingRisks"):
        bc.compare(fit, {**shr, "estimand": "HR", "label": "a published HR"}, covariate="x")
    bc.compare(fit, {k: v for k, v in shr.items() if k != "estimand"}, covariate="x")  # unknown estimand: allowed

    class CauseSpecific:  # what compare reads of a cause-specific fit: covariates, draws, the model's estimand
        covariates = ["x"]
        model = {"family": "CoxPH"}

        def log_hr_draws(self):
            return fit.log_hr_draws()[:, :1]

    with pytest.raises(bc.SpecError, match=r"a published SHR is a subdistribution HR.*this fit's posterior has estimand 'HR'"):
        bc.compare(CauseSpecific(), shr, covariate="x")


def test_the_censoring_distribution_counts_tied_events_at_risk_as_crr_does():
    """Times 1 (competing), 2 (censored), 2 (the cause), 3 (censored): at 2 three rows are at risk of censoring,
    the event at 2 included, so G(3-) = 1 - 1/3 (R's survival::finegray, which takes the event out first, gives
    1/2); no row's own G(t-) sees a censoring at t."""
    from bayescrt.families.finegray import censoring_survival

    df = pd.DataFrame({"t": [1.0, 2.0, 2.0, 3.0], "e": [2, 0, 1, 0], "x": [0.1, 0.9, 0.4, 0.6]})
    data = bc.FineGray().prepare(df, time="t", event="e", cause="cause 1", covariates=["x"])
    np.testing.assert_allclose(censoring_survival(data), [1.0, 1.0, 1.0, 2 / 3])
    with pytest.raises(bc.SpecError, match=r"study='s': FineGray has no study level"):
        bc.FineGray().prepare(df.assign(s="a"), time="t", event="e", cause="cause 1", covariates=["x"], study="s")
