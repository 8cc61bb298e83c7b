"""Weibull and piecewise-exponential PH families: likelihoods against independent computations, fits against
the Cox model and lifelines, delayed entry and start/stop rows, LOO comparison."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.families import cox, parametric
from seeds import seed

COVS = ["age", "female", "ph.ecog"]


@pytest.fixture(scope="module")
def lung():
    from lifelines.datasets import load_lung

    d = load_lung().dropna(subset=["ph.ecog"]).reset_index(drop=True)
    d["female"] = (d["sex"] == 2).astype(int)
    return d


@pytest.fixture(scope="module")
def lung_fits(lung):
    kw = dict(time="time", event="status", covariates=COVS, random_seed=seed(1), progress=False)
    return {"cox": bc.CoxPH().fit(lung, **kw), "weibull": bc.WeibullPH().fit(lung, **kw),
            "pwe": bc.PiecewiseExponentialPH().fit(lung, **kw)}


@pytest.mark.mcmc
def test_a_piecewise_fit_by_laplace_integrates_over_the_walk_sd_and_agrees_with_nuts(lung, lung_fits):
    """The random walk's SD has no joint mode with the levels; the Laplace proposal integrates over it on a grid
    (bayescrt.laplace), and the draws agree with the NUTS fit of the same model within Monte Carlo error."""
    from test_laplace import assert_agree

    kw = dict(time="time", event="status", covariates=COVS, random_seed=seed(2), progress=False)
    lap = bc.PiecewiseExponentialPH(sampler="laplace").fit(lung, **kw)
    assert lap.sampling["proposal"].startswith("rw_sd (log) from its Laplace marginal on a grid")
    assert lap.sampling["evaluated_by"] == "the family's pointwise twin"  # loglik_totals, checked at the mode
    assert max(lap.sampling["pareto_k"]) < 0.5
    assert_agree(lap, lung_fits["pwe"], ("log_hr", "rw_sd", "log_hazard"))


# ------------------------------------------------------------------ likelihoods, no sampling
def test_weibull_loglik_equals_lifelines_at_its_mle(lung):
    """lifelines' Weibull AFT log-likelihood at its MLE, mapped to the PH parameterisation, equals ours."""
    from lifelines import WeibullAFTFitter

    aft = WeibullAFTFitter().fit(lung[["time", "status", *COVS]], "time", "status")
    b = aft.params_.loc["lambda_"]
    rho = float(np.exp(aft.params_.loc["rho_"].iloc[0]))
    data = bc.WeibullPH().prepare(lung, time="time", event="status", covariates=COVS)
    t_ref = float(np.median(data.time))
    beta = -rho * b[COVS].to_numpy()
    alpha = -rho * b["Intercept"] + rho * np.log(t_ref) + data.center @ beta
    post = {"log_hr": beta[None], "log_scale": np.array([[alpha]]), "shape": np.array([[rho]])}
    ll = parametric.pointwise_loglik(post, data, "WeibullPH", {"t_ref": t_ref})
    assert ll.sum() == pytest.approx(aft.log_likelihood_, rel=1e-9)


def test_weibull_reference_time_holds_lifelines_shape_and_centres_at_the_event_means(lung):
    """t_ref = exp(mean log event time + 1/k): with the log-HRs at lifelines' MLE, k is lifelines' shape."""
    from lifelines import WeibullAFTFitter

    aft = WeibullAFTFitter().fit(lung[["time", "status", *COVS]], "time", "status")
    rho = float(np.exp(aft.params_.loc["rho_"].iloc[0]))
    data = bc.WeibullPH().prepare(lung, time="time", event="status", covariates=COVS)
    beta_std = -rho * aft.params_.loc["lambda_"][COVS].to_numpy() * data.scale
    t_ref, c = parametric.weibull_reference(data, beta_std)
    k = 1.0 / (np.log(t_ref) - np.log(data.time[data.event]).mean())
    assert k == pytest.approx(rho, rel=1e-4)
    assert c == pytest.approx(data.standardised()[data.event].mean(axis=0)[None], abs=1e-12)


def _pwe_expanded_loglik(data, beta, loga, cuts, tv=None, b=None):
    """The piecewise-exponential log-likelihood by explicit person-period expansion (reference only)."""
    edges = np.concatenate([[0.0], cuts, [np.inf]])
    eta = (data.X - data.center) @ beta
    if tv is not None:
        eta = eta - beta[tv] * (data.X[:, tv] - data.center[tv])
    start = np.zeros(data.n) if data.entry is None else data.entry
    total = 0.0
    for i in range(data.n):
        for j in range(len(edges) - 1):
            lo, hi = max(start[i], edges[j]), min(data.time[i], edges[j + 1])
            if hi <= lo:
                continue
            la = loga[data.strata[i], j] + (b[j] * data.X[i, tv] if tv is not None else 0.0)
            died = data.event[i] and edges[j] <= data.time[i] < edges[j + 1]
            total += died * (la + eta[i]) - (hi - lo) * np.exp(la + eta[i])
    return total


@pytest.mark.parametrize("entry, tv", [(False, None), (True, None), (True, 1)])
def test_pwe_loglik_equals_person_period_expansion(lung, entry, tv):
    df = lung.copy()
    if entry:
        df["start"] = np.where(np.arange(len(df)) % 3 == 0, df["time"] * 0.4, 0.0)
    # two strata that cut across the covariates (stratifying by sex would leave 'female' unidentified, which the
    # data layer refuses)
    df["half"] = np.arange(len(df)) % 2
    data = bc.PiecewiseExponentialPH().prepare(df, time="time", event="status", covariates=COVS,
                                               entry="start" if entry else None, strata="half" if tv is None else None)
    cuts = parametric.default_cuts(data, 5)
    rng = np.random.default_rng(seed(0))
    beta = np.array([0.01, -0.5, 0.4])
    loga = np.log(0.004) + rng.normal(0, 0.3, (data.n_strata, len(cuts) + 1))
    b = rng.normal(-0.5, 0.2, len(cuts) + 1)
    post = {"log_hr": beta[None], "log_hazard": loga[None]}
    if tv is not None:
        post["tv_log_hr"] = b[None]
    ll = parametric.pointwise_loglik(post, data, "PiecewiseExponentialPH", {"cuts": cuts.tolist()}, tv)
    assert ll.sum() == pytest.approx(_pwe_expanded_loglik(data, beta, loga, cuts, tv, b), rel=1e-10)


def test_start_stop_rows_give_the_same_likelihood_as_one_row(lung):
    """Splitting each subject's follow-up into (0, s] and (s, t] rows with the same covariates changes nothing."""
    df = lung[["time", "status", *COVS]].copy()
    split = df["time"] * 0.5
    first = df.assign(start=0.0, stop=split, event=0)
    second = df.assign(start=split, stop=df["time"], event=df["status"])
    rows = pd.concat([first, second], ignore_index=True)
    one = df.assign(start=0.0, stop=df["time"], event=df["status"])
    beta = np.array([0.01, -0.5, 0.4])
    for family, post, info in [
        ("WeibullPH", {"log_hr": beta[None], "log_scale": np.array([[0.2]]), "shape": np.array([[1.3]])},
         {"t_ref": 200.0}),
        ("PiecewiseExponentialPH", {"log_hr": beta[None], "log_hazard": np.log([[[0.002, 0.004, 0.003]]])},
         {"cuts": [150.0, 400.0]}),
    ]:
        tot = []
        for d in (one, rows):
            data = bc.WeibullPH().prepare(d, time="stop", event="event", covariates=COVS, entry="start")
            post_c = {**post, "log_hr": post["log_hr"] + 0 * data.center}
            # both data sets share covariate values, so their centres (means over rows) differ only by weighting;
            # evaluate at the same uncentred linear predictor
            tot.append(parametric.pointwise_loglik(_uncentre(post_c, data, family), data, family, info).sum())
        assert tot[0] == pytest.approx(tot[1], rel=1e-10), family
    # Cox: same partial likelihood
    vals = []
    for d in (one, rows):
        data = bc.CoxPH().prepare(d, time="stop", event="event", covariates=COVS, entry="start")
        vals.append(cox.partial_loglik_terms(data.X @ beta, cox.RiskSets.from_data(data)).sum())
    assert vals[0] == pytest.approx(vals[1], rel=1e-10)


def _uncentre(post, data, family):
    """Shift the baseline so that the model's centred predictor equals the raw x @ beta."""
    shift = data.center @ post["log_hr"][0]
    out = dict(post)
    if family == "WeibullPH":
        out["log_scale"] = post["log_scale"] + shift
    else:
        out["log_hazard"] = post["log_hazard"] + shift
    return out


# ------------------------------------------------------------------ fits
@pytest.mark.mcmc
def test_families_agree_with_cox_within_a_quarter_posterior_sd(lung_fits):
    cox_hr = lung_fits["cox"].hazard_ratios()
    for name in ("weibull", "pwe"):
        fit = lung_fits[name]
        assert fit.diagnostics().ok, (name, fit.diagnostics())
        hr = fit.hazard_ratios()
        gap = (hr.log_hr_mean - cox_hr.log_hr_mean).abs() / cox_hr.log_hr_sd
        print(f"\n{name}: |log-HR - Cox| / Cox SD = {gap.round(3).to_dict()}")
        assert (gap < 0.25).all(), name


@pytest.mark.mcmc
def test_weibull_fit_agrees_with_lifelines(lung_fits, lung):
    from lifelines import WeibullAFTFitter

    aft = WeibullAFTFitter().fit(lung[["time", "status", *COVS]], "time", "status")
    rho = float(np.exp(aft.params_.loc["rho_"].iloc[0]))
    ref = -rho * aft.params_.loc["lambda_"][COVS]
    fit = lung_fits["weibull"]
    hr = fit.hazard_ratios()
    shape = fit.idata["posterior"]["shape"].values.ravel()
    print(f"\nshape {shape.mean():.4f} vs lifelines {rho:.4f}; log-HR {hr.log_hr_mean.round(4).to_dict()} vs "
          f"{ref.round(4).to_dict()}")
    assert ((hr.log_hr_mean - ref).abs() / hr.log_hr_sd < 0.25).all()
    assert abs(shape.mean() - rho) < 0.25 * shape.std()


@pytest.mark.mcmc
def test_loo_comparison_ranks_within_likelihood_kind(lung_fits):
    tab = bc.compare_models(lung_fits)
    print("\n" + tab.round(2).to_string())
    assert set(tab.likelihood) == {"partial (per event)", "full (per row)"}
    assert tab.loc["cox", "rank"] == 1 and tab.loc["cox", "elpd_diff"] == 0
    full = tab[tab.likelihood == "full (per row)"]
    assert sorted(full["rank"]) == [1, 2] and (full["elpd_diff"] <= 0).all()
    assert "Cox fits are ranked only among themselves" in tab.attrs["caveat"]
    assert (tab.n_terms.loc[["weibull", "pwe"]] == 227).all()


def simulate_non_ph(seed: int, n: int = 3000):
    """Piecewise-constant hazards: baseline 0.5 up to t = 1 and 0.5 e^0.7 after; x's log-HR 0.8 up to t = 1
    and 0 after, so the change from the first interval to the last is -0.8; censoring uniform on (1, 3)."""
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.5).astype(int)
    e = rng.exponential(1.0, n)  # the cumulative hazard at the event time
    early, late = 0.5 * np.exp(0.8 * x), 0.5 * np.exp(0.7)
    t = np.where(e < early, e / early, 1.0 + (e - early) / late)
    c = rng.uniform(1.0, 3.0, n)
    return pd.DataFrame({"t": np.minimum(t, c), "d": (t <= c).astype(int), "x": x, "age": rng.normal(60, 8, n)})


@pytest.mark.mcmc
def test_pwe_time_varying_effect_recovers_a_known_change_over_time():
    """The per-interval log-HRs of a non-PH covariate recover its change (-0.8) within 3 posterior SDs, the
    change is detected (more than 2 SDs below 0: expected about 5.5 at n = 3,000), and the reported log-HR is
    the mean over intervals."""
    fit = bc.PiecewiseExponentialPH(tv="x", cuts=[0.5, 1.0, 1.5]).fit(
        simulate_non_ph(seed(11)), time="t", event="d", covariates=["x", "age"], random_seed=seed(2), progress=False)
    assert fit.diagnostics().ok
    b = fit.idata["posterior"]["tv_log_hr"]
    assert b.sizes["interval"] == 4
    change = (b.isel(interval=-1) - b.isel(interval=0)).values.ravel()
    assert abs(change.mean() + 0.8) < 3 * change.std()
    assert change.mean() < -2 * change.std()
    mean_b = b.mean("interval").values.ravel()
    assert np.allclose(fit.log_hr_draws()[:, fit.covariates.index("x")], mean_b)


def simulate_truncated(seed: int, n: int = 1500, shape: float = 1.5, beta: float = 0.5):
    """Weibull times; subjects enter late (uniform 0 to 1.5) and are seen only if alive at entry."""
    rng = np.random.default_rng(seed)
    x = rng.random(n * 3) < 0.5
    t = (-np.log(rng.random(n * 3)) / (0.5 * np.exp(beta * x))) ** (1 / shape)
    entry = rng.uniform(0, 1.5, n * 3)
    keep = t > entry
    t, x, entry = t[keep][:n], x[keep][:n], entry[keep][:n]
    c = entry + rng.uniform(0.5, 3, n)
    return pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "entry": entry, "x": x.astype(int)})


@pytest.mark.mcmc
def test_delayed_entry_is_recovered_and_ignoring_it_biases_the_baseline():
    df = simulate_truncated(seed(7))
    kw = dict(time="time", event="event", covariates=["x"], random_seed=seed(3), progress=False)
    right = bc.WeibullPH().fit(df, entry="entry", **kw)
    naive = bc.WeibullPH().fit(df, **kw)
    k_right = right.idata["posterior"]["shape"].values.ravel()
    k_naive = naive.idata["posterior"]["shape"].values.ravel()
    hr = right.hazard_ratios().loc["x"]
    print(f"\nshape with entry {np.median(k_right):.3f} [{np.quantile(k_right, .025):.3f}; "
          f"{np.quantile(k_right, .975):.3f}], ignoring entry {np.median(k_naive):.3f} "
          f"[{np.quantile(k_naive, .025):.3f}; {np.quantile(k_naive, .975):.3f}], truth 1.5; "
          f"log-HR of x with entry {hr.log_hr_mean:.3f} (truth 0.5)")
    assert np.quantile(k_right, 0.025) < 1.5 < np.quantile(k_right, 0.975)
    assert np.quantile(k_naive, 0.025) > 1.5  # without entry, early person-time is counted that was never observed
    assert np.log(hr.hr_lower) < 0.5 < np.log(hr.hr_upper)


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("kw, message", [
    (dict(cuts=[2, 1]), "strictly increasing"),
    (dict(cuts=[-1, 3]), "positive"),
    (dict(rw_order=3), "choose 1 .* or 2"),
    (dict(n_intervals=0), "n_intervals=0 is out of range: it must be an integer >= 1"),
])
def test_pwe_options_are_checked(kw, message):
    with pytest.raises(bc.SpecError, match=message):
        bc.PiecewiseExponentialPH(**kw)


def test_pwe_cuts_beyond_the_data_and_a_bad_tv_are_errors(lung):
    with pytest.raises(bc.SpecError, match="not below the longest follow-up"):
        bc.PiecewiseExponentialPH(cuts=[100, 5000]).fit(lung, time="time", event="status", covariates=COVS)
    with pytest.raises(bc.SpecError, match="tv='age' must be one of the covariates and coded 0/1"):
        bc.PiecewiseExponentialPH(tv="age").fit(lung, time="time", event="status", covariates=COVS)


def test_pwe_memory_does_not_grow_with_intervals_times_n(lung):
    """The model's arrays are O(N + J): ten times the intervals add O(J) numbers, no N x J array."""
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    def sizes(n_intervals):
        est = bc.PiecewiseExponentialPH(n_intervals=n_intervals)
        model = est.build(est.prepare(lung, time="time", event="status", covariates=COVS))[0]
        out = [np.size(v.data) for v in ancestors([model.logp()]) if isinstance(v, Constant)]
        return out + [np.size(v.get_value()) for v in model.data_vars]

    few, many = sizes(4), sizes(40)
    n = len(lung)
    assert max(many) == max(few) < 10 * n  # the largest array is a fixed number of per-row fields
    assert 0 < sum(many) - sum(few) < n  # the extra intervals add a few numbers each, not a row each


@pytest.fixture(scope="module")
def awkward():
    """Strata, case weights, delayed entry (some rows enter at 0) and a 0/1 covariate."""
    rng = np.random.default_rng(seed(7))
    n = 240
    x = rng.integers(0, 2, n)
    age = rng.normal(60, 8, n)
    t = rng.weibull(1.4, n) * np.exp(-0.4 * x - 0.02 * (age - 60)) * 3 + 0.05
    entry = np.where(rng.random(n) < 0.5, 0.0, t * rng.uniform(0.05, 0.9, n))
    return pd.DataFrame({"t": t, "d": (rng.random(n) < 0.7).astype(int), "entry": entry, "x": x, "age": age,
                         "site": rng.choice(["a", "b"], n), "w": rng.uniform(0.5, 2.0, n),
                         "centre": rng.choice(list("pqrst"), n)})


@pytest.mark.parametrize("est, cluster", [(bc.WeibullPH(), None), (bc.WeibullPH(), "centre"),
                                          (bc.PiecewiseExponentialPH(n_intervals=5), None),
                                          (bc.PiecewiseExponentialPH(n_intervals=4, tv="x"), None)],
                         ids=["weibull", "weibull-frailty", "pwe", "pwe-tv"])
def test_model_likelihood_equals_its_numpy_twin(awkward, est, cluster):
    """The PyMC graph (data in containers, Weibull event terms as sufficient statistics) and the numpy
    per-row log-likelihood agree at random points."""
    data = est.prepare(awkward, time="t", event="d", covariates=["x", "age"], entry="entry", strata="site",
                       weights="w", cluster=cluster)
    model, info, _ = est.build(data)
    names = [v for v in ("log_hr", "log_scale", "shape", "log_hazard", "tv_log_hr", "frailty")
             if v in model.named_vars]
    f = model.compile_fn([model["loglik"], *[model[v] for v in names]], inputs=model.value_vars,
                         on_unused_input="ignore")
    rng = np.random.default_rng(seed(0))
    start = model.initial_point()
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in start.items()}
        total, *vals = f(point)
        post = {k: np.asarray(v)[None] for k, v in zip(names, vals)}
        twin = parametric.pointwise_loglik(post, data, est.family, info, info.get("tv_index"))
        assert total == pytest.approx(float(twin.sum()), rel=1e-10)  # the twin includes the case weights


@pytest.mark.mcmc
def test_weibull_total_loglik_from_the_samplers_logp_equals_the_per_row_sum(lung_fits):
    """What sensitivity grids use instead of the per-row log-likelihood: logp minus every prior term."""
    from bayescrt.sensitivity import loglik_total

    fit = lung_fits["weibull"]
    total = loglik_total(fit)
    rows = fit.idata["log_likelihood"]["loglik"].transpose("chain", "draw", "obs").values.sum(-1)
    assert (total - rows).std() < 1e-8 * np.abs(total).mean()
    assert loglik_total(lung_fits["pwe"]) is None  # its random-walk prior is not subtracted: per row instead
