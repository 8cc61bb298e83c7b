"""Propensity scores: the logistic model against statsmodels, weights that balance, and the weighted Cox fit's
posterior against a marginal HR known from counterfactual outcomes."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.data import SurvivalData
from bayescrt.families.partial_likelihood import mle
from seeds import seed

B = {"c1": 0.7, "c2": 0.4, "c3": 0.0}  # c3: no effect on the outcome nor on the exposure


def _covariates(rng, n):
    return pd.DataFrame({"c1": rng.normal(size=n), "c2": (rng.random(n) < 0.4).astype(int), "c3": rng.normal(size=n)})


def _times(rng, d, x):
    return rng.exponential(1 / (0.15 * np.exp(0.4 * x + sum(B[k] * d[k] for k in B))))


def _cohort(n=2500, k=seed(11)):
    rng = np.random.default_rng(k)
    d = _covariates(rng, n)
    x = (rng.random(n) < 1 / (1 + np.exp(-(0.9 * d.c1 + 0.6 * d.c2 - 0.5)))).astype(int)
    t, c = _times(rng, d, x), rng.uniform(0, 6, n)
    return d.assign(x=x, time=np.minimum(t, c), event=(t <= c).astype(int))


def test_the_propensity_model_is_statsmodels_logit_and_the_weights_are_its_inverse():
    import statsmodels.api as sm

    df = _cohort(800).assign(grade=lambda d: np.where(d.c3 > 0.5, "high", np.where(d.c3 < -0.5, "low", "mid")))
    before = df.copy()
    pw = bc.propensity_weights(df, exposure="x", covariates=["c1", "c2", "grade"])
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not changed
    X = sm.add_constant(pd.get_dummies(df[["c1", "c2", "grade"]], columns=["grade"], drop_first=True, dtype=float))
    ref = sm.Logit(df["x"], X).fit(disp=0).predict(X)
    np.testing.assert_allclose(pw.score, ref, atol=1e-5)
    raw = np.where(df.x == 1, 1 / ref, 1 / (1 - ref))
    for g in (0, 1):
        m = (df.x == g).to_numpy()
        np.testing.assert_allclose(pw.weights[m], raw[m] / raw[m].mean(), rtol=1e-4)
    assert list(pw.balance().index) == ["c1", "c2", "grade[low vs high]", "grade[mid vs high]"]


def test_overlap_weights_balance_every_mean_exactly_and_ipw_below_the_threshold():
    df = _cohort()
    ipw = bc.propensity_weights(df, exposure="x", covariates=["c1", "c2", "c3"]).balance()
    assert ipw.loc["c1", "smd_before"] > 0.5 and (ipw["smd_after"] < 0.1).all()
    ov = bc.propensity_weights(df, exposure="x", covariates=["c1", "c2", "c3"], estimand="overlap").balance()
    assert (ov["smd_after"] < 1e-3).all()  # exact for a logistic model, up to the optimiser's tolerance


@pytest.mark.parametrize("kw, message", [
    ({"exposure": "xx"}, r"exposure='xx' is not a column.*Did you mean 'x'"),
    ({"covariates": "c1"}, r"covariates='c1' must be a non-empty list"),
    ({"covariates": ["c1", "x"]}, r"covariates: 'x' is the exposure"),
    ({"estimand": "ate"}, r"estimand='ate': choose one of \['ipw', 'overlap'\]"),
])
def test_bad_arguments_name_the_argument(kw, message):
    with pytest.raises(bc.SpecError, match=message):
        bc.propensity_weights(_cohort(200), **{"exposure": "x", "covariates": ["c1"], **kw})


def test_bad_data_are_data_errors_naming_the_column():
    df = _cohort(200)
    with pytest.raises(bc.DataError, match=r"covariate 'c1' has 1 missing values.*bc.impute"):
        bc.propensity_weights(df.assign(c1=df.c1.where(df.index != 3)), exposure="x", covariates=["c1"])
    with pytest.raises(bc.DataError, match=r"covariate 'c1' has infinite values \(rows \[2\]\)"):
        bc.propensity_weights(df.assign(c1=np.where(df.index == 2, np.inf, df.c1)), exposure="x", covariates=["c1"])
    with pytest.raises(bc.DataError, match=r"df has no rows"):
        bc.propensity_weights(df.iloc[:0], exposure="x", covariates=["c1"])
    with pytest.raises(bc.DataError, match=r"exposure 'x' must be 0/1"):
        bc.propensity_weights(df.assign(x=df.x * 2), exposure="x", covariates=["c1"])


@pytest.mark.mcmc
def test_the_weighted_fit_recovers_the_marginal_hr_that_the_crude_fit_misses():
    """The marginal log-HR is the exposure-only Cox estimate on 200,000 people's counterfactual outcomes under
    both exposures (the same censoring): non-collapsibility puts it below the conditional 0.4. The weighted
    posterior mean must lie within 3 posterior SDs of it (the weights are fixed, so the posterior SD is only
    approximately right: 3 leaves room); the crude fit, confounded by c1 and c2, lies far outside."""
    rng = np.random.default_rng(seed(12))
    big = _covariates(rng, 200_000)
    cens = rng.uniform(0, 6, len(big))
    cf = pd.concat([pd.DataFrame({"time": np.minimum(t, cens), "event": (t <= cens).astype(int), "x": x})
                    for x, t in ((x, _times(rng, big, x)) for x in (0, 1))], ignore_index=True)
    true = mle(SurvivalData.from_frame(cf, time="time", event="event", covariates=["x"]), "breslow")["coef"]["x"]
    assert 0.25 < true < 0.4
    df = _cohort()
    pw = bc.propensity_weights(df, exposure="x", covariates=["c1", "c2", "c3"])
    fit = pw.fit(df, time="time", event="event", random_seed=seed(1), progress=False)
    x = fit.log_hr_draws()[:, 0]
    assert abs(x.mean() - true) < 3 * x.std()
    crude = bc.CoxPH().fit(df, time="time", event="event", covariates=["x"], random_seed=seed(1), progress=False)
    assert abs(crude.log_hr_draws()[:, 0].mean() - true) > 6 * x.std()
    assert "not propagated" in pw.statement
    with pytest.raises(bc.SpecError, match=r"covariates= is set by the weighted fit"):
        pw.fit(df, time="time", event="event", covariates=["x", "c1"])


def test_a_covariate_that_determines_the_exposure_is_refused_not_weighted_to_nothing():
    rng = np.random.default_rng(seed(13))
    x = rng.integers(0, 2, 500)
    df = pd.DataFrame({"x": x, "copy_of_x": x, "z": rng.normal(size=500)})
    with pytest.raises(bc.DataError, match=r"separates .x.: 500 of 500 rows .*largest coefficients: copy_of_x"):
        bc.propensity_weights(df, exposure="x", covariates=["copy_of_x", "z"])

