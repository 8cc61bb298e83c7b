"""Competing risks: the event column's causes checked, one cause-specific fit per cause in one DataTree, and
the cumulative incidence against the simulation's truth and lifelines' Aalen-Johansen estimator."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.competing import event_causes
from seeds import seed

RATES, LOG_HR = (0.10, 0.05), (0.5, -0.3)  # per year; the exposure's log-HR for each cause


def _cohort(n=1500, k=seed(31)):
    """Two causes with constant cause-specific hazards ``rate_k exp(log_hr_k x)``, censoring uniform on 0-10."""
    rng = np.random.default_rng(k)
    x = (rng.random(n) < 0.4).astype(int)
    lam = np.column_stack([r * np.exp(b * x) for r, b in zip(RATES, LOG_HR)])
    t = rng.exponential(1 / lam.sum(axis=1))
    cause = 1 + (rng.random(n) < lam[:, 1] / lam.sum(axis=1)).astype(int)
    c = rng.uniform(0, 10, n)
    return pd.DataFrame({"years": np.minimum(t, c), "status": np.where(t <= c, cause, 0), "x": x})


def _true_cif(t, x):
    lam = np.array([r * np.exp(b * x) for r, b in zip(RATES, LOG_HR)])
    return lam / lam.sum() * (1 - np.exp(-lam.sum() * np.asarray(t)[:, None]))  # (times, causes)


# ------------------------------------------------------------------ the event column, no sampling
def test_codes_and_labels_become_causes_in_order():
    df = pd.DataFrame({"e": [0, 1, 2, 2, 1, 0]})
    codes, names = event_causes(df, "e", {1: "hf_hosp", 2: "death"})
    assert names == ["hf_hosp", "death"] and codes.tolist() == [0, 1, 2, 2, 1, 0]
    lab = pd.DataFrame({"e": ["censored", "death", "hf", "hf", "death", "censored"]})
    codes, names = event_causes(lab, "e", ["hf", "death"])
    assert names == ["hf", "death"] and codes.tolist() == [0, 2, 1, 1, 2, 0]
    assert event_causes(lab, "e")[1] == ["death", "hf"]  # sorted when not listed


@pytest.mark.parametrize("values, kw, error, message", [
    ([0, 1, np.nan, 2], {}, bc.DataError, r"'e' has 1 missing values \(rows \[2\]\)"),
    ([0, 1, -1, 2], {}, bc.DataError, r"values \['-1'\].*code it 0 for censored"),
    ([0, 1, 1.5, 2], {}, bc.DataError, r"values \['1.5'\]"),
    ([0, 1, np.inf, 2], {}, bc.DataError, r"values \['inf'\] \(rows \[2\]\)"),
    (pd.Series([], dtype=float), {}, bc.DataError, r"df has no rows"),
    ([0, 1, 3, 2], {"causes": {1: "a", 2: "b"}}, bc.DataError, r"codes \[3\] that causes=.* does not name"),
    ([0, 1, 2], {"causes": {0: "none", 1: "a", 2: "b"}}, bc.SpecError, r"names code 0, which is censoring"),
    ([0, 1, 1, 2], {"causes": {1: "a", 2: "b", 3: "c"}}, bc.DataError, r"cause 'c' has no events"),
    ([0, 1, 1, 0], {}, bc.DataError, r"one cause only"),
    (["censored", "a", "b"], {"causes": ["a", "b", "censored"]}, bc.SpecError, r"lists 'censored', the label of censoring"),
    (["cens", "a", "b"], {}, bc.DataError, r"labels \['a', 'b', 'cens'\] and none is censored='censored'; if 'cens' "
                                          r"means censored, pass censored='cens'"),
    (["censored", "a", "b"], {"causes": ["a"]}, bc.DataError, r"labels \['b'\] that are neither"),
    ([0, 1, 2], {"causes": {1: "a", 2: "a"}}, bc.SpecError, r"the names \['a', 'a'\] repeat"),
], ids=["missing", "negative", "fraction", "infinite", "empty", "unknown code", "censoring named", "no events", "one cause",
        "censored listed", "no censored label", "unlisted label", "repeated names"])
def test_a_bad_event_column_names_the_problem(values, kw, error, message):
    with pytest.raises(error, match=message):
        event_causes(pd.DataFrame({"e": values}), "e", **kw)


def test_bad_families_and_frames_are_refused_before_sampling():
    df = _cohort(300)
    with pytest.raises(bc.SpecError, match=r"families has no estimator for the causes \['cause 2'\]"):
        bc.CompetingRisks(families={"cause 1": bc.CoxPH()}).fit(df, time="years", event="status", covariates=["x"])
    with pytest.raises(bc.SpecError, match=r"not both"):
        bc.CompetingRisks(families={"a": bc.CoxPH()}, family=bc.CoxPH())
    with pytest.raises(bc.SpecError, match=r"is not an estimator"):
        bc.CompetingRisks(family="CoxPH")
    with pytest.raises(bc.SpecError, match=r"no 'Surv\(\.\.\.\) ~'"):
        bc.CompetingRisks().fit(df, time="years", event="status", formula="Surv(years, status) ~ x")
    with pytest.raises(bc.SpecError, match=r"event='years' is also time=; .*a column of its own"):
        bc.CompetingRisks().fit(df, time="years", event="years", covariates=["x"])
    with pytest.raises(bc.SpecError, match=r"event='status' is also covariates="):
        bc.CompetingRisks().fit(df, time="years", event="status", covariates=["x", "status"])
    before = df.copy()
    with pytest.raises(bc.SpecError, match=r"event='stat' is not a column.*'status'"):
        bc.CompetingRisks().fit(df, time="years", event="stat", covariates=["x"])
    pd.testing.assert_frame_equal(df, before)


# ------------------------------------------------------------------ one fit per cause
@pytest.fixture(scope="module")
def crfit():
    df = _cohort()
    fit = bc.CompetingRisks(family=bc.CoxPH()).fit(df, time="years", event="status", causes={1: "hf_hosp", 2: "death"},
                                                  covariates=["x"], draws=500, tune=500, chains=4,
                                                  random_seed=seed(2), progress=False)
    return df, fit


@pytest.mark.mcmc
def test_each_cause_specific_log_hr_recovers_its_truth_in_one_tree(crfit):
    df, fit = crfit
    assert fit.causes == ["hf_hosp", "death"] and fit.ok
    assert set(fit.idata.children) == {"hf_hosp", "death"}
    tab = fit.hazard_ratios()
    assert list(tab.index) == [("hf_hosp", "x"), ("death", "x")]
    for cause, truth in zip(fit.causes, LOG_HR):
        row = fit.hazard_ratios(cause=cause).loc["x"]
        assert abs(row["log_hr_mean"] - truth) < 3 * row["log_hr_sd"], cause
    # each cause's fit saw the other cause as censoring: its event count is that cause's
    assert int(fit.fits["death"].idata["observed_data"]["event"].sum()) == int((df["status"] == 2).sum())
    with pytest.raises(bc.SpecError, match=r"cause='hf' is not a cause of this fit"):
        fit.hazard_ratios(cause="hf")
    import arviz as az

    loo = fit.loo()
    ref = az.loo(fit.fits["death"].idata, var_name="partial_loglik")
    assert loo.loc["death", "elpd_loo"] == pytest.approx(float(ref.elpd), abs=1e-6)
    assert loo.loc["death", "p_loo"] == pytest.approx(float(ref.p), abs=1e-6)
    assert loo.loc["all causes", "elpd_loo"] == pytest.approx(loo["elpd_loo"].iloc[:2].sum())
    assert loo.loc["all causes", "terms"] == int((df["status"] > 0).sum())


@pytest.mark.mcmc
def test_cumulative_incidence_covers_the_truth_and_agrees_with_aalen_johansen(crfit):
    """The standardised CIF of x = v is the CIF of a subject with x = v (x is the only covariate): within 3
    posterior SDs of the simulation's truth, and of lifelines' Aalen-Johansen estimate in the group x = v, which
    estimates the same curve from that group alone without the PH model: within 3 SDs of their difference,
    taken as sqrt(posterior var + AJ var) (an upper bound, since the two share the data)."""
    from lifelines import AalenJohansenFitter

    df, fit = crfit
    times = [1.0, 3.0, 6.0]
    tab = fit.cumulative_incidence(times, exposure="x", random_seed=seed(3))
    draws = tab.attrs["draws"]  # (draws, causes, groups, times)
    assert draws.shape[1:] == (2, 2, 3) and np.all(np.diff(draws, axis=3) >= -1e-12)
    for v in (0, 1):
        truth = _true_cif(times, v)
        sub = df[df.x == v]
        for k in range(2):
            sd = draws[:, k, v, :].std(axis=0)
            med = np.median(draws[:, k, v, :], axis=0)
            assert np.all(np.abs(med - truth[:, k]) < 3 * sd), (v, k, med, truth[:, k])
            aj = AalenJohansenFitter(calculate_variance=True)
            aj.fit(sub["years"], sub["status"], event_of_interest=k + 1)
            ref, var = aj.cumulative_density_.iloc[:, 0], aj.variance_
            at = np.array([ref[ref.index <= t].iloc[-1] for t in times])
            se = np.sqrt([var[var.index <= t].iloc[-1] for t in times])
            assert np.all(np.abs(med - at) < 3 * np.sqrt(sd**2 + se**2)), (v, k, med, at, sd, se)
    both = tab[(tab.cause == "death") & (tab.group == "x = 1")]
    assert list(both.time) == times and (both.cif_lower < both.cif_median).all()
    one = fit.cumulative_incidence([2.0], covariates={"x": 1}, cause="hf_hosp", random_seed=seed(3))
    assert list(one.group) == ["subject"] and one.cif_lower.iloc[0] < _true_cif([2.0], 1)[0, 0] < one.cif_upper.iloc[0]
    with pytest.raises(bc.SpecError, match=r"past the last follow-up time"):
        fit.cumulative_incidence([50.0], exposure="x")
    with pytest.raises(bc.SpecError, match=r"not both and not neither"):
        fit.cumulative_incidence([1.0])
    import matplotlib

    matplotlib.use("Agg")
    axes = fit.plot_cumulative_incidence(np.linspace(0, 8, 9), exposure="x")
    assert [a.get_title() for a in axes] == ["hf_hosp", "death"] and len(axes[0].get_lines()) == 2


# ------------------------------------------------------------------ the simulator's competing events, no sampling
COVS = {"af": {"kind": "binary", "prevalence": [0.5, 0.3]}}
ACCRUAL = {"start": "2010-01-01", "end": "2018-01-01"}


def _models(shape=(1.2, 0.9)):
    return {"hf": {"baseline": {"kind": "weibull", "shape": shape[0], "scale_years": 12}, "log_hr": {"af": 0.4},
                   "exposure_hr": 1.3},
            "death": {"baseline": {"kind": "weibull", "shape": shape[1], "scale_years": 20}, "exposure_hr": 1.1}}


def test_the_true_cumulative_incidence_of_constant_hazards_is_the_closed_form():
    df = bc.simulate_competing(400, 150, covariates=COVS, causes=_models(shape=(1.0, 1.0)), accrual=ACCRUAL,
                               random_seed=seed(4))
    assert df.attrs["truth"]["cause_codes"] == {1: "hf", 2: "death"} and set(df["event"]) <= {0, 1, 2}
    t = np.array([0.5, 2.0, 7.0])
    got = bc.true_cumulative_incidence(df, t, exposure_value=1)
    want = np.zeros((3, 2))
    for af in (0, 1):
        lam = np.array([np.exp(0.4 * af) * 1.3 / 12, 1.1 / 20])
        want += (df["af"] == af).mean() * lam / lam.sum() * (1 - np.exp(-lam.sum() * t[:, None]))
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-6)


def test_simulated_competing_events_have_the_true_cumulative_incidence_aalen_johansen_sees():
    """20,000 subjects: lifelines' Aalen-Johansen estimate of each cause lies within 3.5 of its SEs of the true
    curve at three times (six correlated z-values; at 3.5 the chance of one beyond is below 0.3%)."""
    from lifelines import AalenJohansenFitter

    df = bc.simulate_competing(20_000, 8_000, covariates=COVS, causes=_models(), accrual=ACCRUAL,
                               random_seed=seed(5))
    times = [1.0, 3.0, 5.0]
    truth = bc.true_cumulative_incidence(df, times)
    for code, cause in df.attrs["truth"]["cause_codes"].items():
        aj = AalenJohansenFitter(calculate_variance=True)
        aj.fit(df["years"], df["event"], event_of_interest=code)
        est, var = aj.cumulative_density_.iloc[:, 0], aj.variance_
        z = [(est[est.index <= t].iloc[-1] - truth.loc[t, cause]) / np.sqrt(var[var.index <= t].iloc[-1])
             for t in times]
        assert np.all(np.abs(z) < 3.5), (cause, z)


def test_bad_causes_are_refused_naming_them():
    with pytest.raises(bc.SpecError, match=r"at least two cause names"):
        bc.simulate_competing(100, 50, covariates=COVS, causes={"hf": _models()["hf"]}, accrual=ACCRUAL)
    with pytest.raises(bc.SpecError, match=r"causes\['hf'\]: give baseline.*\['hr'\]"):
        bc.simulate_competing(100, 50, covariates=COVS, causes={"hf": {"hr": 1}, "death": _models()["death"]},
                              accrual=ACCRUAL)
    with pytest.raises(bc.SpecError, match=r"no causes"):
        bc.true_cumulative_incidence(pd.DataFrame({"x": [1]}), [1.0])


@pytest.mark.mcmc
def test_the_contrast_of_cumulative_incidence_is_the_draws_difference_and_covers_the_truth(crfit):
    """The difference x = 1 vs 0 at two horizons, per cause: the median of the per-draw differences of the same
    draws, within 3 posterior SDs of the true difference; the ratio likewise on the log scale."""
    _, fit = crfit
    times = [2.0, 5.0]
    tab = fit.cumulative_incidence_contrast(times, exposure="x", random_seed=seed(3))
    draws = tab.attrs["draws"]
    truth = _true_cif(times, 1) - _true_cif(times, 0)  # (times, causes)
    ratio = _true_cif(times, 1) / _true_cif(times, 0)
    for k, cause in enumerate(fit.causes):
        rows = tab[tab.cause == cause]
        rd = draws[:, k, 1, :] - draws[:, k, 0, :]
        np.testing.assert_allclose(rows.rd_median, np.median(rd, axis=0))
        assert np.all(np.abs(rows.rd_median.to_numpy() - truth[:, k]) < 3 * rd.std(axis=0)), cause
        log_ratio = np.log(draws[:, k, 1, :] / draws[:, k, 0, :])
        np.testing.assert_allclose(np.log(rows.ratio_median), np.median(log_ratio, axis=0), rtol=1e-4)  # even count
        assert np.all(np.abs(np.log(rows.ratio_median.to_numpy() / ratio[:, k])) < 3 * log_ratio.std(axis=0)), cause
    assert set(tab.contrast) == {"x = 1 vs 0"}
    # hf_hosp's hazard is higher with x = 1 (log-HR 0.5): its risk difference is positive with certainty
    assert tab[tab.cause == "hf_hosp"].p_rd_gt_0.min() > 0.99
    with pytest.raises(bc.SpecError, match=r"values=\(0, 1, 1\): the exposure is 0/1; give distinct values"):
        fit.cumulative_incidence_contrast(times, exposure="x", values=(0, 1, 1))
    with pytest.raises(bc.SpecError, match=r"values=\(1, 0, 1\)|exactly two values"):
        fit.cumulative_incidence_contrast(times, exposure="x", values=(1, 0, 1))
    with pytest.raises(bc.SpecError, match=r"values=1 must be a tuple of exposure values"):
        fit.cumulative_incidence_contrast(times, exposure="x", values=1)


def test_the_compiled_standardised_incidence_is_the_one_formula_averaged_over_subjects():
    """The loop over subjects that keeps memory small gives incidence_from_hazards' curves, weighted and
    averaged, at unsorted and repeated times, with strata and unequal relative hazards per cause."""
    from bayescrt.competing import incidence_from_hazards, standardised_incidence

    rng = np.random.default_rng(seed(7))
    K, D, S, T, n = 3, 5, 2, 40, 25
    H0 = np.cumsum(rng.exponential(0.03, (K, D, S, T)), axis=-1)
    H0[..., 0] = 0.0
    r = np.exp(rng.normal(size=(K, D, n)))
    strata = rng.integers(0, S, (K, n))
    w = rng.random(n)
    w /= w.sum()
    at = np.array([30, 2, 39, 2])
    H = np.stack([H0[k][:, strata[k], :] * r[k][:, :, None] for k in range(K)], axis=-2)  # (D, n, K, T)
    want = np.einsum("dnkt,n->dkt", incidence_from_hazards(H)[..., at], w)
    np.testing.assert_allclose(standardised_incidence(H0, r, strata, w, at), want, rtol=1e-12, atol=1e-15)


@pytest.mark.mcmc
def test_strata_weights_and_delayed_entry_reach_each_cause_as_in_a_single_cause_fit():
    """A cause's fit inside CompetingRisks is the single-cause fit of that cause with the other censored: with
    strata, case weights and delayed entry, and the seed CompetingRisks spawned for it, the draws are the same."""
    rng = np.random.default_rng(seed(41))
    df = _cohort(500, k=seed(42)).assign(
        site=lambda d: rng.choice(["a", "b"], len(d)), w=lambda d: rng.choice([1.0, 2.0], len(d)),
        start=lambda d: d["years"] * rng.uniform(0, 0.3, len(d)))
    kw = dict(time="years", covariates=["x"], strata="site", weights="w", entry="start", draws=500, tune=500,
              chains=4, progress=False)
    cr = bc.CompetingRisks(family=bc.CoxPH()).fit(df, event="status", random_seed=seed(43), **kw)
    assert cr.ok
    spawned = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed(43)).spawn(2)]
    alone = bc.CoxPH().fit(df.assign(death=(df["status"] == 2).astype(int)), event="death",
                           random_seed=spawned[1], **kw)
    model = cr.fits["cause 2"].model
    assert "2 strata by 'site'" in model["data_description"] and "delayed entry from 'start'" in model["data_description"]
    assert "case weights from 'w'" in model["data_description"]
    np.testing.assert_array_equal(cr.fits["cause 2"].log_hr_draws(), alone.log_hr_draws())


# ------------------------------------------------------------------ imputed data
@pytest.fixture(scope="module")
def imputed_fit():
    """1,500 subjects of benchmarks/imputation.py's competing cohort (c missing at random given the cause and x),
    three imputations, each cause fitted by WeibullPH (constant hazards hold: shape 1) and the Fine-Gray model, by
    Laplace importance sampling (pooling is the sampler's business no more than the mixture's: each imputation's
    fit passes its own gates, which for this sampler are R-hat, Pareto k and the importance ESS)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from imputation import TRUE_COMPETING, competing_cohort

    full, holed = competing_cohort(1500, seed(41))
    frames = bc.impute(holed, m=3, time="years", event="status", exposure="x", random_seed=seed(42))
    kw = dict(time="years", event="status", covariates=["x", "c"], draws=500, chains=4, progress=False)
    cr = bc.CompetingRisks(family=bc.WeibullPH(sampler="laplace")).fit(frames, random_seed=seed(43), **kw)
    fg = bc.FineGray(sampler="laplace").fit(frames, cause="cause 1", random_seed=seed(44), **kw)
    return frames, cr, fg, TRUE_COMPETING


@pytest.mark.mcmc
def test_imputed_data_sets_pool_per_cause_and_the_incidence_mixes_their_draws(imputed_fit):
    """Each cause's fit pools the three imputations (Zhou and Reiter's mixture, every imputation's gates passed);
    the exposure's log-HR of each cause lies within 3 posterior SDs of its truth; the cumulative incidence mixes
    each imputation's draws in equal shares; PSIS-LOO over imputations is refused."""
    frames, cr, fg, truth = imputed_fit
    assert cr.imputations == 3 and cr.ok
    gates = cr.fits["cause 1"].diagnostics().gates.index
    assert "imputation 2: Pareto k (max)" in gates  # each imputation's own gates, this sampler's
    for cause, f in cr.fits.items():
        assert f.model["imputation"]["m"] == 3 and f.idata["posterior"].sizes["chain"] == 12
        d = f.log_hr_draws()[:, 0]
        assert abs(d.mean() - truth[cause]["x"]) < 3 * d.std(), (cause, d.mean())
    draws = cr.cumulative_incidence([1.0, 3.0], exposure="x", max_draws=90, random_seed=seed(3)).attrs["draws"]
    assert draws.shape == (90, 2, 2, 2) and np.all(draws > 0) and np.all(draws.sum(axis=1) < 1)
    # the first 30 draws are the first imputation's: its own fits, standardised over its own completed rows
    one = bc.CompetingRisksFit({c: f.imputations[0] for c, f in cr.fits.items()},
                               {c: d[0] for c, d in cr._data.items()}, cr.event)
    first_seed = int(np.random.SeedSequence(seed(3)).spawn(3)[0].generate_state(1)[0])
    np.testing.assert_array_equal(draws[:30], one.cumulative_incidence_draws([1.0, 3.0], exposure="x", max_draws=30,
                                                                             random_seed=first_seed))
    with pytest.raises(bc.SpecError, match=r"PSIS-LOO is not defined for a posterior pooled over imputations"):
        cr.loo()
    assert fg.model["estimand"] == "SHR" and fg.model["imputation"]["m"] == 3 and fg.diagnostics().ok
    inc = bc.cumulative_incidence(fg, [1.0, 3.0], exposure="x", max_draws=90, random_seed=seed(3))
    assert inc.attrs["draws"].shape == (90, 1, 2, 2)
    with pytest.raises(bc.SpecError, match=r"column 'status' differs between DataFrame 1 and DataFrame 0"):
        bc.CompetingRisks().fit([frames[0], frames[1].assign(status=0)], time="years", event="status",
                                covariates=["x"])


# ------------------------------------------------------------------ what a cumulative incidence is asked
@pytest.fixture(scope="module")
def interaction_fit():
    """x acts on the causes through a formula with an interaction (x * z); fitted by Laplace importance sampling."""
    df = _cohort(400, seed(45)).assign(z=lambda d: np.random.default_rng(seed(46)).normal(size=len(d)))
    cr = bc.CompetingRisks(family=bc.WeibullPH(sampler="laplace")).fit(
        df, time="years", event="status", formula="x * z", draws=300, chains=2, random_seed=seed(47), progress=False)
    return df, cr


@pytest.mark.mcmc
def test_an_exposure_in_an_interaction_is_set_in_every_term_it_enters(interaction_fit):
    """Standardising by x sets x and x:z together: the cohort's curve at x = 1 is the average of every subject's own
    curve with x = 1 and x:z = z (one subject at a time through covariates=), draw for draw; setting x alone (the
    error this guards against) moves the curve by far more than rounding."""
    df, cr = interaction_fit
    times = [1.0, 4.0]
    kw = dict(max_draws=40, random_seed=seed(3))
    got = cr.cumulative_incidence_draws(times, exposure="x", **kw)
    rows = [cr.cumulative_incidence_draws(times, covariates={"x": 1, "z": z, "x:z": z}, **kw)[:, :, 0, :]
            for z in df["z"]]
    np.testing.assert_allclose(got[:, :, 1, :], np.mean(rows, axis=0), rtol=1e-10, atol=1e-12)
    wrong = [cr.cumulative_incidence_draws(times, covariates={"x": 1, "z": z, "x:z": x * z}, **kw)[:, :, 0, :]
             for x, z in zip(df["x"], df["z"])]
    assert np.abs(got[:, :, 1, :] - np.mean(wrong, axis=0)).max() > 1e-4


def test_bad_times_causes_and_exposures_are_refused_naming_them():
    from bayescrt.competing import check_times

    for bad, message in [(None, r"times= is required"), ("1, 2", r"must be a list of numbers"),
                         ([[1, 2], [3, 4]], r"shape \(2, 2\): give one list"), ([True, False], r"must be numbers"),
                         (["1", "2"], r"must be numbers"), ([1.0, np.nan], r"finite times >= 0"), ([], r"finite")]:
        with pytest.raises(bc.SpecError, match=message):
            check_times(bad)
    np.testing.assert_array_equal(check_times(np.array([3, 1])), [3.0, 1.0])


@pytest.mark.mcmc
def test_a_continuous_exposure_a_list_as_cause_and_tables_pandas_can_join(interaction_fit):
    df, cr = interaction_fit
    with pytest.raises(bc.SpecError, match=r"exposure='z' must be a 0/1 column"):
        cr.cumulative_incidence([1.0], exposure="z")
    with pytest.raises(bc.SpecError, match=r"cause=\['cause 1'\] is not a cause of this fit"):
        cr.cumulative_incidence([1.0], exposure="x", cause=["cause 1"])
    with pytest.raises(bc.SpecError, match=r"exposure= is required: the 0/1 covariate"):
        cr.cumulative_incidence_contrast([1.0], exposure=None)
    with pytest.raises(bc.SpecError, match=r"random_seed"):
        cr.cumulative_incidence([1.0], exposure="x", random_seed="abc")
    a = cr.cumulative_incidence_contrast([1.0], exposure="x", max_draws=40)
    b = cr.cumulative_incidence_contrast([2.0], exposure="x", max_draws=40)
    assert len(pd.concat([a, b])) == 4 and "ratio_median" in repr(a)  # attrs holding draws still compare and print
    assert isinstance(a.attrs["draws"][:, 0, 0, 0], np.ndarray) and a.attrs["draws"].shape == (40, 2, 2, 1)
