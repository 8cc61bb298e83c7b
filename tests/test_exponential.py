"""ExponentialPH, the family added through the family protocol alone, against statsmodels.

The exponential PH model's maximum-likelihood twin is statsmodels' Poisson GLM of
the event indicator with ``log(time)`` as offset (the likelihoods are equal up to
a constant that does not depend on the parameters). What theory says, and so
what is asserted (as for the Cox fits in test_cox_fit.py):

* The posterior mode is the MLE pulled by the weak default priors (SD 2.5 per
  covariate SD against standard errors near 0.1-0.2 per SD; SD 3 on the log
  scale): the pull, one Newton step from statsmodels' MLE on the log posterior,
  is under 0.02 SE, and the mode matches MLE + pull to 0.002 SE (what is left
  is second order).
* The exact posterior (importance sampling around the GLM's estimate, with the
  GLM's own log-likelihood: no code of the package) has SDs within 10% of the
  GLM's standard errors (Bernstein-von Mises, 114 events).
* The MCMC posterior mean and SD match the exact ones within Z_MC Monte Carlo
  errors (sd / sqrt(ESS) for a mean, sd / sqrt(2 ESS) for an SD): 14
  comparisons, Bonferroni for a family-wise false-alarm rate of 1e-4.
* The posterior mean is not the MLE: for the skewed likelihood of the rare
  binary covariates (mar, race) it sits about skewness x SD / 2 away, of order
  1 / (2 sqrt(events in the smaller group)). The exact posterior mean's distance
  from the MLE is 0.12-0.13 SD for those two and under 0.08 for the others, so
  it is bounded by 0.2 SD (with no Monte Carlo error: the MCMC mean is held to
  the exact mean above); the MCMC mean's distance is printed.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import bayescrt as bc
from conftest import ROSSI_COVARIATES
from seeds import seed

N_COMPARISONS = 14
Z_MC = float(stats.norm.isf(1e-4 / N_COMPARISONS / 2))


def _glm(df):
    import statsmodels.api as sm

    X = sm.add_constant(df[ROSSI_COVARIATES].astype(float))
    return sm.GLM(df["arrest"].astype(float), X, family=sm.families.Poisson(), offset=np.log(df["week"]))


@pytest.fixture(scope="module")
def exp_fit():
    return bc.ExponentialPH().fit(bc.datasets.load_rossi(), time="week", event="arrest", covariates=ROSSI_COVARIATES,
                                  draws=1000, tune=1000, chains=4, random_seed=seed(20261202), progress=False)


def test_exponential_is_registered_and_built_from_the_protocol_alone():
    from bayescrt.families import registry
    from bayescrt.families.base import Estimator

    est = registry.estimator_class("ExponentialPH")
    assert est is bc.ExponentialPH and issubclass(est, Estimator)
    assert registry.options("ExponentialPH") == ("sampler", "frailty_prior", "centered", "target_accept")
    assert est.likelihood == "full" and not est.step_baseline and set(est.fixed_priors) == {"log_scale"}


def test_exponential_model_logp_is_the_poisson_glm_loglik(rossi):
    """The PyMC graph's likelihood at random points equals statsmodels' Poisson log-likelihood, up to one
    constant (sum of d log t over the rows, and the log d! that is 0 for 0/1 events)."""
    est = bc.ExponentialPH()
    data = est.prepare(rossi, time="week", event="arrest", covariates=ROSSI_COVARIATES)
    model, info, _ = est.build(data)
    # in terms of the value variables, so that each call evaluates at the point it is given
    outs = model.replace_rvs_by_values([model["loglik"], model["log_hr"], model["log_scale"]])
    f = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    glm = _glm(rossi)
    const = float((rossi["arrest"] * np.log(rossi["week"])).sum())
    rng = np.random.default_rng(seed(3))
    start = model.initial_point()
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in start.items()}
        ll, beta, a = f(point)
        assert (ll, *beta) == tuple(f(point))[:1] + tuple(f(point)[1])  # the same point gives the same values
        b0 = float(a[0]) - np.log(info["t_ref"]) - float(data.center @ beta)
        assert ll == pytest.approx(glm.loglike(np.concatenate([[b0], beta])) - const, rel=1e-10)


def _exact(glm, res, data, t_ref, n=200_000):
    """Posterior mode, mean and SD of the log-HRs under the package's priors, from the GLM's log-likelihood."""
    prior_b = stats.norm(0, 2.5 / data.scale)
    prior_a = stats.norm(0, 3)
    center = data.center

    def logpost(P):  # P: (k, 1 + p) = intercept and log-HRs
        ll = np.array([glm.loglike(p) for p in P])
        a = P[:, 0] + np.log(t_ref) + P[:, 1:] @ center
        return ll + prior_b.logpdf(P[:, 1:]).sum(-1) + prior_a.logpdf(a)

    theta = res.params.to_numpy()
    mode = optimize.minimize(lambda p: -logpost(p[None])[0], theta, method="BFGS", options={"gtol": 1e-8}).x
    # the priors' pull on the mode, to first order: one Newton step from the MLE on the log posterior
    L = np.concatenate([[1.0], center])
    beta_prec = np.diag(np.concatenate([[0.0], 1 / prior_b.std() ** 2]))
    grad = -beta_prec @ theta - L * (L @ theta + np.log(t_ref)) / 9.0  # of the log prior density at the MLE
    pull = np.linalg.solve(np.linalg.inv(res.cov_params().to_numpy()) + beta_prec + np.outer(L, L) / 9.0, grad)
    q = stats.multivariate_t(loc=res.params.to_numpy(), shape=1.3 * res.cov_params().to_numpy(), df=6,
                             seed=np.random.default_rng(seed(5)))
    P = q.rvs(n)
    X, y, off = glm.exog, glm.endog, glm.offset
    def loglik(B):  # statsmodels' Poisson log-likelihood in bulk (log y! = 0 for 0/1 events)
        eta = B @ X.T + off
        return (y * eta - np.exp(eta)).sum(-1)

    ll = np.concatenate([loglik(P[i:i + 20_000]) for i in range(0, n, 20_000)])
    a = P[:, 0] + np.log(t_ref) + P[:, 1:] @ center
    logw = ll + prior_b.logpdf(P[:, 1:]).sum(-1) + prior_a.logpdf(a) - q.logpdf(P)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    assert 1 / np.sum(w ** 2) > 0.3 * n  # the proposal covers the posterior
    mean = w @ P
    sd = np.sqrt(w @ (P - mean) ** 2)
    return mode[1:], pull[1:], mean[1:], sd[1:]


@pytest.mark.mcmc
def test_exponential_log_hrs_agree_with_the_poisson_glm(exp_fit, rossi):
    glm = _glm(rossi)
    res = glm.fit()
    covs = ROSSI_COVARIATES
    coef, se = res.params[covs], res.bse[covs]
    data = bc.ExponentialPH().prepare(rossi, time="week", event="arrest", covariates=covs)
    # the bulk log-likelihood above is statsmodels' own, checked once here at its MLE
    assert glm.loglike(res.params.to_numpy()) == pytest.approx(
        float((glm.endog * (glm.exog @ res.params + glm.offset) - np.exp(glm.exog @ res.params + glm.offset)).sum()),
        rel=1e-12)
    mode, pull, exact_mean, exact_sd = _exact(glm, res, data, exp_fit.model["baseline"]["t_ref"])
    draws = exp_fit.log_hr_draws()
    mean, sd = draws.mean(0), draws.std(0, ddof=1)
    ess = exp_fit.diagnostics().parameters["ess_bulk"][[f"log_hr[{c}]" for c in covs]].to_numpy()
    report = pd.DataFrame({"glm_coef": coef, "glm_se": se, "mode_vs_glm_se": (mode - coef) / se,
                           "prior_pull_se": pull / se, "mode_vs_pulled_se": (mode - coef - pull) / se,
                           "mcmc_mean": mean, "mean_vs_glm_sd": (mean - coef) / sd,
                           "exact_mean_vs_glm_sd": (exact_mean - coef) / exact_sd,
                           "mcmc_vs_exact_sd": (mean - exact_mean) / sd, "exact_sd/se": exact_sd / se,
                           "mcmc_sd/exact_sd": sd / exact_sd, "ess_bulk": ess}, index=covs)
    print("\n" + report.to_string(float_format=lambda v: f"{v:.4f}"))
    assert exp_fit.diagnostics().ok
    # the weak priors pull the mode by under 0.02 SE, and the mode is the MLE plus that pull (to second order)
    assert (report["prior_pull_se"].abs() < 0.02).all(), report
    assert (report["mode_vs_pulled_se"].abs() < 0.002).all(), report
    assert ((report["exact_sd/se"] - 1).abs() < 0.10).all(), report
    assert (report["mcmc_vs_exact_sd"].abs() < Z_MC / np.sqrt(ess)).all(), report
    assert ((report["mcmc_sd/exact_sd"] - 1).abs() < Z_MC / np.sqrt(2 * ess)).all(), report
    assert (report["exact_mean_vs_glm_sd"].abs() < 0.2).all(), report


@pytest.mark.mcmc
def test_exponential_works_in_absolute_loo_and_sensitivity(exp_fit, rossi, rossi_efron):
    from bayescrt.sensitivity import loglik_total

    # absolute effects: the standardised survival is the mean over subjects of exp(-H0(t) exp(eta)), per draw
    times = np.array([10.0, 30.0, 52.0])
    ours = bc.absolute.standardised_survival_draws(exp_fit, "fin", times, max_draws=200)
    post = exp_fit.idata["posterior"]
    a = post["log_scale"].values.reshape(-1)
    beta = exp_fit.log_hr_draws()
    keep = np.linspace(0, len(a) - 1, 200).round().astype(int)
    X = rossi[ROSSI_COVARIATES].to_numpy(float)
    center = np.asarray(exp_fit.model["center"])
    t_ref = exp_fit.model["baseline"]["t_ref"]
    j = ROSSI_COVARIATES.index("fin")
    for v in (0, 1):
        Xv = X.copy()
        Xv[:, j] = v
        eta = beta[keep] @ (Xv - center).T  # (D, n)
        S = np.exp(-np.exp(a[keep])[:, None, None] * (times / t_ref)[None, None, :] * np.exp(eta)[..., None])
        assert np.allclose(ours[:, v, :], S.mean(1), rtol=0, atol=1e-6)
    # LOO ranks it within its own kind, apart from the Cox fit's per-event terms
    tab = bc.compare_models({"exponential": exp_fit, "cox": rossi_efron})
    assert tab.loc["exponential", "likelihood"] == "full (per row)" and tab.loc["exponential", "n_terms"] == len(rossi)
    assert np.isfinite(tab.loc["exponential", "elpd_loo"])
    # sensitivity grids: the total log-likelihood from the sampler's logp minus the fixed prior, as for Weibull
    total = loglik_total(exp_fit)
    per_row = exp_fit.idata["log_likelihood"]["loglik"].transpose("chain", "draw", "obs").values
    rows = per_row.sum(-1)
    assert (total - rows).std() < 1e-8 * np.abs(total).mean()
    # each stored term is its own row's, in the frame's row order (the likelihood runs over rows sorted by time):
    # d (log h) - H with h = exp(a) / t_ref exp(eta), H = h t
    eta = beta @ (X - center).T
    t, d = rossi["week"].to_numpy(float), rossi["arrest"].to_numpy(float)
    expect = d * (a[:, None] - np.log(t_ref) + eta) - np.exp(a)[:, None] / t_ref * t * np.exp(eta)
    np.testing.assert_allclose(per_row.reshape(len(a), -1), expect, rtol=1e-10, atol=1e-10)


def test_exponential_in_a_spec_and_a_sensitivity_grid(tmp_path):
    """A spec naming the family by its registry key builds it; a grid takes it as a family and checks its cells."""
    from bayescrt.analysis import estimator, simulate_cohort
    from bayescrt.sensitivity import Grid, _cell_inputs
    from bayescrt.spec import load_spec

    spec = load_spec("danish")
    text = spec.path.read_text()
    path = tmp_path / "exponential.toml"
    path.write_text(text.replace('family = "CoxPH"\nties = "efron"', 'family = "ExponentialPH"')
                    .replace('families = ["CoxPH", "WeibullPH"]', 'families = ["ExponentialPH", "CoxPH"]'))
    (tmp_path / "exponential.calibration.toml").write_text(spec.calibration_path.read_text())
    mine = load_spec(path)
    assert isinstance(estimator(mine), bc.ExponentialPH)
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('family = "CoxPH"', 'family = "ExponentialPH"'))  # ties is Cox's option
    with pytest.raises(bc.SpecError, match="ties"):
        load_spec(bad)
    worse = tmp_path / "worse.toml"  # an option's value is checked when the estimator is built, and located
    worse.write_text(text.replace('family = "CoxPH"\nties = "efron"', 'family = "ExponentialPH"\ncentered = "no"'))
    (tmp_path / "worse.calibration.toml").write_text(spec.calibration_path.read_text())
    with pytest.raises(bc.SpecError, match=r"worse\.toml \[model\] \(ExponentialPH\): centered='no' must be True or False"):
        estimator(load_spec(worse))
    grid = Grid.from_spec(mine)
    assert [f for f, _ in grid._families.values()] == ["ExponentialPH", "CoxPH"]
    cohort = simulate_cohort(mine)
    cell = next(c for c in grid.cells() if grid._families[c.family][0] == "ExponentialPH")
    est, rows, covs, _, _ = _cell_inputs(grid, cell, cohort, check=True)
    assert isinstance(est, bc.ExponentialPH) and covs[0] == grid.exposure and len(rows) == len(cohort)
    assert bc.ExponentialPH.fixed_priors is not None  # so the grid takes its total log-likelihood from logp


@pytest.mark.parametrize("chunk", [0, -5, 1.5, "8"])
def test_the_loglik_chunk_is_a_positive_integer(rossi, chunk):
    """chunk= sets how many draws the stored log-likelihood is computed at a time: 0 or a negative step would
    leave it unfilled, so it is refused before any sampling."""
    with pytest.raises(bc.SpecError, match="chunk="):
        bc.ExponentialPH().fit(rossi, time="week", event="arrest", covariates=["fin"], chunk=chunk)
