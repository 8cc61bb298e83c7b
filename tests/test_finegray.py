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
    """Saved and loaded, it refuses survival, and gives the cumulative incidence of the fit in memory."""
    _, fit = fg_fit
    back = bc.load(fit.save(tmp_path / "fg.nc"))
    assert back.model["estimand"] == "SHR"
    np.testing.assert_array_equal(back.idata["observed_data"]["status"].values,
                                  fit.idata["observed_data"]["status"].values)
    with pytest.raises(bc.SpecError, match=r"subdistribution hazard of one cause.*cumulative incidence"):
        bc.absolute.standardised_survival(back, "x", [1.0, 2.0])
    kw = dict(exposure="x", random_seed=seed(3), max_draws=50)
    np.testing.assert_array_equal(bc.cumulative_incidence(back, [1.0, 2.0], **kw).attrs["draws"],
                                  bc.cumulative_incidence(fit, [1.0, 2.0], **kw).attrs["draws"])


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
    with pytest.raises(bc.SpecError, match=r"FineGray models the subdistribution hazard of one cause among competing "
                                           r"events; give cause=.*without competing risks a grid.s families model one"):
        bc.sensitivity.Grid(time="years", event="status", exposure="x", covariate_sets={"none": []},
                            families=["FineGray"])


def test_an_shr_is_compared_only_with_a_published_shr(fg_fit):
    _, fit = fg_fit
    shr = {"hr": 1.8, "lower": 1.4, "upper": 2.4, "estimand": "SHR", "label": "a published SHR"}
    got = bc.compare(fit, shr, covariate="x")
    assert got.published.estimand == "SHR" and 1.4 < got.posterior_median_hr < 2.4
    # the words say SHR wherever they named the ratio, and never a bare "HR"
    for text in (got.sentence(), str(got)):
        assert "posterior median SHR" in text and "posterior SHR" in text
        assert " HR " not in text.replace("SHR", "")
    assert got.to_dict()["estimand"] == "SHR"
    assert bc.compare(fit.log_hr_draws()[:, 0], shr).estimand == "SHR"  # bare draws beside a published SHR
    ax = got.plot()
    assert ax.get_xlabel() == "Subdistribution hazard ratio (log scale)"
    assert any("published SHR" in t.get_text() for t in ax.get_legend().get_texts())
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


# ------------------------------------------------------------------ the cumulative incidence a Fine-Gray fit implies
def test_the_subdistribution_baseline_is_breslow_s_estimator_on_the_expanded_rows():
    """At the MLE, the O(N) baseline ``sum w / S(t)`` equals Breslow's estimator computed from its definition on the
    finegray-expanded rows (each risk set found row by row), with and without case weights: the cumulative
    incidence it implies for one subject agrees to 1e-12. (lifelines' CoxTimeVaryingFitter reports a baseline
    that leaves out the weights, so it is not the reference here.)"""
    from bayescrt.families.cox import breslow_cumhaz
    from bayescrt.families.finegray import CensoringWeights
    from bayescrt.families.partial_likelihood import RiskSets

    times = np.array([0.5, 1.0, 2.0, 4.0, 7.0, 9.5])
    x0 = np.array([1.0, 0.5])
    for weighted in (False, True):
        df = _cohort(300, seed(66), weights=weighted)
        data = bc.FineGray().prepare(df, time="years", event="status", cause="cause 1", covariates=["x", "z"],
                                     **({"weights": "w"} if weighted else {}))
        beta = np.array([finegray_mle(data)["coef"][c] for c in ("x", "z")])

        class AtTheMode:  # what the estimator reads of a fit: one draw and the centre
            model = {"center": list(data.center)}

            def log_hr_draws(self):
                return beta[None, :]

        rs = RiskSets.from_data(data, "breslow")
        lam = breslow_cumhaz(AtTheMode(), data, rs, times, sums=CensoringWeights.from_data(data, rs).sums)[0, 0]
        mine = 1 - np.exp(-lam * np.exp((x0 - data.center) @ beta))
        ex = _expanded(df, "w" if weighted else None)
        r = ex["w"].to_numpy() * np.exp(ex[["x", "z"]].to_numpy() @ beta)
        start, stop, event = ex["start"].to_numpy(), ex["stop"].to_numpy(), ex["event"].to_numpy()
        ev_times = np.unique(stop[event == 1])
        inc = [ex["w"].to_numpy()[(stop == t) & (event == 1)].sum() / r[(start < t) & (stop >= t)].sum()
               for t in ev_times]
        by_hand = np.concatenate([[0.0], np.cumsum(inc)])[np.searchsorted(ev_times, times, side="right")]
        np.testing.assert_allclose(mine, 1 - np.exp(-by_hand * np.exp(x0 @ beta)), rtol=0, atol=1e-12)


def _fine_gray_cohort(n, k, p=0.4, b1=0.6, b2=-0.3):
    """Data whose cause 1 follows a Fine-Gray model exactly (Fine and Gray 1999, section 5): for a 0/1 x,
    F_1(t | x) = 1 - (1 - p (1 - exp(-t)))^exp(b1 x); given cause 2, T ~ Exp(exp(b2 x)); censoring uniform on 0-4."""
    rng = np.random.default_rng(k)
    x = (rng.random(n) < 0.45).astype(int)
    u = rng.random(n)
    p1 = 1 - (1 - p) ** np.exp(b1 * x)  # P(cause 1 | x)
    one = u < p1
    t = np.empty(n)
    t[one] = -np.log(1 - (1 - (1 - u[one]) ** np.exp(-b1 * x[one])) / p)
    t[~one] = rng.exponential(np.exp(-b2 * x[~one]))
    c = rng.uniform(0, 4, n)
    return pd.DataFrame({"years": np.minimum(t, c), "status": np.where(t <= c, np.where(one, 1, 2), 0), "x": x})


def _true_fine_gray_cif(times, x, p=0.4, b1=0.6):
    return 1 - (1 - p * (1 - np.exp(-np.asarray(times, float)))) ** np.exp(b1 * x)


@pytest.fixture(scope="module")
def fg_true():
    df = _fine_gray_cohort(1200, seed(67))
    return df, bc.FineGray().fit(df, time="years", event="status", cause="cause 1", covariates=["x"], draws=500,
                                 chains=4, random_seed=seed(68), progress=False)


@pytest.mark.mcmc
def test_the_fine_gray_cumulative_incidence_covers_the_truth_and_aalen_johansen(fg_true):
    """Where the Fine-Gray model holds, the standardised cumulative incidence of cause 1 per exposure group lies
    within 3.5 posterior SDs of the truth at three times (six correlated z-values; at 3.5 the chance of one beyond
    is below 0.3%), and within 3.5 SDs of lifelines' Aalen-Johansen estimate of the group, taken as
    sqrt(posterior var + AJ var) (an upper bound, since the two share the data)."""
    from lifelines import AalenJohansenFitter

    df, fit = fg_true
    assert fit.diagnostics().ok
    times = [0.5, 1.0, 2.5]
    tab = bc.cumulative_incidence(fit, times, exposure="x", random_seed=seed(3))
    draws = tab.attrs["draws"]
    assert draws.shape[1:] == (1, 2, 3) and np.all(np.diff(draws, axis=3) >= 0)
    assert set(tab["cause"]) == {"cause 1"} and tab.attrs["model"] == "Fine-Gray"
    for v in (0, 1):
        d = draws[:, 0, v, :]
        med, sd = np.median(d, axis=0), d.std(axis=0)
        truth = _true_fine_gray_cif(times, v)
        assert np.all(np.abs(med - truth) < 3.5 * sd), (v, med, truth, sd)
        aj = AalenJohansenFitter(calculate_variance=True)
        sub = df[df.x == v]
        aj.fit(sub["years"], sub["status"], event_of_interest=1)
        ref, var = aj.cumulative_density_.iloc[:, 0], aj.variance_
        at = np.array([ref[ref.index <= t].iloc[-1] for t in times])
        se = np.sqrt([var[var.index <= t].iloc[-1] for t in times])
        assert np.all(np.abs(med - at) < 3.5 * np.sqrt(sd**2 + se**2)), (v, med, at, sd, se)
        rows = tab[tab.group == f"x = {v}"]
        np.testing.assert_allclose(rows["cif_median"], med)
    one = bc.cumulative_incidence(fit, [1.0], covariates={"x": 1}, random_seed=seed(3))
    assert list(one.group) == ["subject"]
    assert one.cif_lower.iloc[0] < _true_fine_gray_cif(1.0, 1) < one.cif_upper.iloc[0]
    # with x the only covariate, the cohort standardised at x = 1 is the subject with x = 1, draw for draw
    same = bc.cumulative_incidence(fit, [1.0], covariates={"x": 1}, random_seed=seed(3)).attrs["draws"]
    np.testing.assert_allclose(same[:, 0, 0, 0], draws[:, 0, 1, 1], rtol=1e-12)


@pytest.mark.mcmc
def test_the_fine_gray_risk_difference_is_the_draws_difference_and_covers_the_truth(fg_true):
    _, fit = fg_true
    times = [1.0, 2.5]
    tab = bc.cumulative_incidence_contrast(fit, times, exposure="x", random_seed=seed(3))
    draws = tab.attrs["draws"]
    for i, t in enumerate(times):
        rd = draws[:, 0, 1, i] - draws[:, 0, 0, i]
        row = tab.iloc[i]
        assert row["rd_median"] == pytest.approx(np.median(rd)) and row["p_rd_gt_0"] == pytest.approx(np.mean(rd > 0))
        truth = _true_fine_gray_cif(t, 1) - _true_fine_gray_cif(t, 0)
        assert abs(row["rd_median"] - truth) < 3.5 * rd.std(), (t, row["rd_median"], truth)
    assert list(tab["contrast"]) == ["x = 1 vs 0"] * 2


@pytest.mark.mcmc
def test_the_fine_gray_incidence_functions_refuse_what_they_cannot_do(fg_fit):
    df, fit = fg_fit
    with pytest.raises(bc.SpecError, match=r"not both and not neither"):
        bc.cumulative_incidence(fit, [1.0])
    with pytest.raises(bc.SpecError, match=r"cause='cause 2': this Fine-Gray fit models 'cause 1' only"):
        bc.cumulative_incidence(fit, [1.0], exposure="x", cause="cause 2")
    with pytest.raises(bc.SpecError, match=r"past the last follow-up time"):
        bc.cumulative_incidence(fit, [500.0], exposure="x")
    with pytest.raises(bc.SpecError, match=r"covariates: give a value for each of \['x', 'z'\]"):
        bc.cumulative_incidence(fit, [1.0], covariates={"x": 1})
    with pytest.raises(bc.SpecError, match=r"takes a CompetingRisksFit .* or a bc.FineGray fit, not str"):
        bc.cumulative_incidence("fit", [1.0], exposure="x")
    with pytest.raises(bc.SpecError, match=r"subdistribution hazard of one cause.*bc.cumulative_incidence"):
        bc.absolute.risk_difference(fit, "x", [1.0])
    with pytest.raises(bc.SpecError, match=r"subdistribution hazard of one cause"):
        bc.absolute.ppc_km(fit)
