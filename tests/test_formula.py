"""formula=: the design against lifelines' formula fit (its MLE on our design equals lifelines'), the same draws
as a column list on rossi, the posterior against lifelines on lung, labels, contrasts of a spline, and errors."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.families.partial_likelihood import mle
from seeds import seed

ROSSI = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
LUNG_F = "C(ecog, Treatment('1')) + sex + bs(age, df=3)"


@pytest.fixture(scope="module")
def lung():
    from lifelines.datasets import load_lung

    d = load_lung().dropna(subset=["ph.ecog"]).reset_index(drop=True)
    d["ecog"] = d["ph.ecog"].astype(int).astype(str)
    return d[d.ecog != "3"].reset_index(drop=True)  # one patient has ECOG 3


@pytest.fixture(scope="module")
def lifelines_lung(lung):
    from lifelines import CoxPHFitter

    return CoxPHFitter().fit(lung[["time", "status", "ecog", "sex", "age"]], "time", "status", formula=LUNG_F)


def test_the_design_is_lifelines_design(lung, lifelines_lung):
    """Same columns in the same order (ours name the reference level too), and the partial-likelihood MLE on our
    design equals lifelines' coefficients: the same spline basis, knots and coding."""
    data = bc.CoxPH().prepare(lung, formula=f"Surv(time, status) ~ {LUNG_F}")
    ours = [c.replace(" vs 1]", "]") for c in data.covariates]
    assert ours == list(lifelines_lung.params_.index)
    assert data.covariates[:2] == ("C(ecog, Treatment('1'))[T.0 vs 1]", "C(ecog, Treatment('1'))[T.2 vs 1]")
    est = mle(data, "efron")
    se = lifelines_lung.standard_errors_.to_numpy()
    # lifelines stops Newton-Raphson sooner (its tolerance); 1e-3 SE is far below any coding difference
    assert np.all(np.abs([est["coef"][c] for c in data.covariates] - lifelines_lung.params_.to_numpy()) < 1e-3 * se)
    np.testing.assert_allclose([est["se"][c] for c in data.covariates], se, rtol=1e-3)


def test_plain_string_factors_interactions_and_the_outcome_on_either_side(lung):
    est = bc.CoxPH()
    with pytest.raises(bc.DataError, match=r"'ecog' holds numbers stored as text.*or write C\(ecog\) in the formula"):
        est.prepare(lung, formula="ecog + sex", time="time", event="status")  # levels or numbers? the user says
    lung = lung.assign(ecog=lung.ecog.astype("category"))
    a = est.prepare(lung, formula="ecog + sex + sex:age", time="time", event="status")
    b = est.prepare(lung, formula="Surv(time, status) ~ ecog + sex + sex:age")
    assert a.covariates == b.covariates == ("ecog[T.1 vs 0]", "ecog[T.2 vs 0]", "sex", "sex:age")
    np.testing.assert_array_equal(a.X, b.X)
    i = a.covariates.index("sex:age")
    order = a.order
    np.testing.assert_allclose(a.X[:, i], (lung["sex"] * lung["age"]).to_numpy(float)[order])
    c = est.prepare(lung.assign(start=0.0), formula="Surv(start, time, status) ~ sex")
    assert c.entry is not None and c.covariates == ("sex",)


@pytest.mark.parametrize("kw, message", [
    (dict(formula="sex + agee"), "cannot be read or evaluated: .*agee.*Did you mean 'age'"),
    (dict(formula="0 + C(ecog) + sex"), "removes the intercept"),
    (dict(formula="sex - 1"), "removes the intercept"),
    (dict(formula="sex + time"), "the time column 'time' is also a variable of the formula"),
    (dict(formula="Surv(time) ~ sex"), "left-hand side must be Surv\\(time, event\\)"),
    (dict(formula="Surv(time, status) ~ sex", time="days"), "time='days' disagrees with the formula's Surv"),
    (dict(formula="sex", covariates=["sex"]), "formula= or covariates=, not both"),
    (dict(formula="C(ecog) + sex", reference={"ecog": "1"}), "set a reference level in the formula itself"),
    (dict(formula="sex + (age"), "cannot be read or evaluated"),
    (dict(formula="  "), "must be a non-empty string"),
    (dict(formula="sex", strata="centre"), "strata='centre' is not a column"),
])
def test_bad_formulas_are_spec_errors_naming_the_fix(lung, kw, message):
    args = {"time": "time", "event": "status", **kw}
    if "Surv(" in kw["formula"]:
        args = {k: v for k, v in args.items() if k not in ("time", "event") or k in kw}
    with pytest.raises(bc.SpecError, match=message):
        bc.CoxPH().prepare(lung, **args)


def test_missing_values_in_a_formula_variable_are_reported_or_dropped_with_a_count(lung):
    df = lung.copy()
    df.loc[[2, 5], "age"] = np.nan
    with pytest.raises(bc.DataError, match="missing values in 'age' \\(2 rows\\)"):
        bc.CoxPH().prepare(df, formula="sex + bs(age, df=3)", time="time", event="status")
    with pytest.warns(bc.DataWarning, match="dropped 2 of"):
        data = bc.CoxPH().prepare(df, formula="sex + bs(age, df=3)", time="time", event="status", missing="drop")
    assert data.n == len(df) - 2 and data.n_dropped == 2 and data.dropped == {"age": 2}
    assert df["age"].isna().sum() == 2  # the caller's frame is unchanged


def test_the_spline_contrasts_are_stored_with_the_fit_description(lung):
    data = bc.CoxPH().prepare(lung, formula=LUNG_F, time="time", event="status")
    info = data.design.to_json()
    q1, med, q3 = np.quantile(lung["age"], [0.25, 0.5, 0.75])
    assert [c["label"] for c in info["contrasts"]] == [f"bs(age, df=3): age {q1:.4g} vs {med:.4g}",
                                                       f"bs(age, df=3): age {q3:.4g} vs {med:.4g}"]
    # the weights are the basis at the value minus the basis at the reference
    B = data.design.matrix(pd.DataFrame({"ecog": ["1"] * 2, "sex": [1, 1], "age": [med, q3]}))[:, 3:]
    np.testing.assert_allclose(info["contrasts"][1]["weights"], B[1] - B[0], atol=1e-12)


# ------------------------------------------------------------------ fits
@pytest.mark.mcmc
def test_a_formula_fit_gives_the_column_list_fits_draws_on_rossi():
    from lifelines.datasets import load_rossi

    r = load_rossi()
    kw = dict(time="week", event="arrest", random_seed=seed(3), progress=False)
    a = bc.CoxPH().fit(r, covariates=ROSSI, **kw)
    b = bc.CoxPH().fit(r, formula=" + ".join(ROSSI), **kw)
    assert b.covariates == a.covariates
    np.testing.assert_array_equal(a.log_hr_draws(), b.log_hr_draws())
    assert b.model["formula"]["rhs"] == " + ".join(ROSSI)


@pytest.mark.mcmc
def test_categorical_and_spline_terms_agree_with_lifelines_formula_fit(lung, lifelines_lung, tmp_path):
    """The categorical log-HRs within 0.1 posterior SD of lifelines' MLE; the spline's contrasts (the rows of
    the HR table) within 0.15 SD. With 163 deaths the posterior mean of a contrast is not the MLE: over seeds 1-5
    at 4 x 4,000 draws the contrasts sit 0.047-0.087 SD from it, the same with a Normal(0, 100) prior
    (benchmarks/formula_agreement.py); at these draws the Monte Carlo error of a mean is about 0.01 SD, so 0.15
    leaves six of them beyond the largest gap measured."""
    fit = bc.CoxPH().fit(lung, formula=f"Surv(time, status) ~ {LUNG_F}", random_seed=seed(1), draws=4000,
                         progress=False)
    draws = fit.log_hr_draws()
    ref = lifelines_lung.params_.to_numpy()
    for j in range(3):  # the two ECOG levels and sex
        assert abs(draws[:, j].mean() - ref[j]) < 0.1 * draws[:, j].std(), fit.covariates[j]
    tab = fit.hazard_ratios()
    rows = [r for r in fit.model["formula"]["contrasts"]]
    assert list(tab.index) == [*fit.covariates[:3], *(r["label"] for r in rows)]
    for r in rows:
        idx = [fit.covariates.index(c) for c in r["columns"]]
        w = np.asarray(r["weights"])
        d = draws[:, idx] @ w
        assert abs(d.mean() - w @ ref[idx]) < 0.15 * d.std(), r["label"]
        assert tab.loc[r["label"], "log_hr_mean"] == pytest.approx(d.mean())
    chosen = fit.hazard_ratios(at={"age": {"values": [50, 80], "reference": 65}})
    assert list(chosen.index[3:]) == ["bs(age, df=3): age 50 vs 65", "bs(age, df=3): age 80 vs 65"]
    back = bc.load(fit.save(tmp_path / "lung.nc"))  # the knots travel with the saved fit
    assert back.design is None
    pd.testing.assert_frame_equal(back.hazard_ratios(at={"age": {"values": [50, 80], "reference": 65}}), chosen)
    with pytest.raises(bc.SpecError, match="at: 'sex' is not the variable of a spline"):
        fit.hazard_ratios(at={"sex": {"values": [1], "reference": 2}})


def test_the_curve_terms_stored_with_a_fit_give_the_contrasts_of_the_design_in_memory(lung):
    """What a saved fit keeps (the transform state as JSON, integer keys of poly's state included) rebuilds
    each curve term's basis exactly, so at= on a loaded fit is at= on the fit in memory."""
    import json

    from bayescrt.formula import StoredCurves

    df = lung.dropna(subset=["ph.karno"]).rename(columns={"ph.karno": "karno"})
    data = bc.CoxPH().prepare(df, formula="Surv(time, status) ~ sex + bs(age, df=4) + poly(karno, degree=3)")
    stored = StoredCurves(json.loads(json.dumps(data.design.to_json())))
    assert stored.curve_terms() == data.design.curve_terms() == {"bs(age, df=4)": "age", "poly(karno, degree=3)": "karno"}
    for term in stored.curve_terms():
        values, ref = ([45, 55.5, 81], 62) if term.startswith("bs") else ([60, 95], 80)
        assert stored.contrast(term, values, ref) == data.design.contrast(term, values, ref)
    with pytest.raises(bc.SpecError, match=r"'sex' is not a spline or polynomial term"):
        stored.contrast("sex", [1], 2)


def _interaction_cohort(n=600):
    rng = np.random.default_rng(seed(21))
    up = rng.integers(0, 2, n)
    age = rng.normal(70, 8, n)
    t = rng.weibull(1.3, n) * np.exp(-(0.3 * up + 0.03 * (age - 70) + 0.04 * up * (age - 70)) / 1.3) * 4
    c = rng.uniform(1, 6, n)
    return pd.DataFrame({"years": np.minimum(t, c), "died": (t <= c).astype(int), "upgrade": up, "age": age})


def test_the_counterfactual_design_sets_the_exposure_inside_its_interactions():
    df = _interaction_cohort()
    data = bc.WeibullPH().prepare(df, formula="upgrade * age", time="years", event="died")
    assert data.covariates == ("upgrade", "age", "upgrade:age")
    np.testing.assert_allclose(data.design.matrix(data.design.rows)[data.order], data.X)
    X1 = data.design.counterfactual("upgrade", 1)
    np.testing.assert_allclose(X1, np.column_stack([np.ones(len(df)), df.age, df.age]))
    assert data.design.columns_of("upgrade") == ["upgrade", "upgrade:age"]


@pytest.mark.mcmc
def test_standardised_survival_of_a_formula_fit_moves_the_interaction_with_the_exposure():
    """g-computation with upgrade:age: the survival at each exposure value equals the mean over subjects of
    exp(-H0(t) exp(x_i(v) @ beta)), x_i(v) with upgrade = v in both its columns, computed here by hand."""
    from bayescrt.absolute import standardised_survival_draws
    from bayescrt.baseline import baseline_cumhaz
    from bayescrt.families.base import draw_rows

    df = _interaction_cohort()
    fit = bc.WeibullPH().fit(df, formula="Surv(years, died) ~ upgrade * age", random_seed=seed(4), progress=False)
    times = np.array([1.0, 3.0])
    got = standardised_survival_draws(fit, "upgrade", times, max_draws=400)
    beta = fit.log_hr_draws()[draw_rows(len(fit.log_hr_draws()), 400)]
    H0 = baseline_cumhaz(fit, times, 400)[:, 0, :]
    center = np.asarray(fit.model["center"])
    for v_i, v in enumerate((0, 1)):
        X = np.column_stack([np.full(len(df), v), df.age, v * df.age]) - center
        r = np.exp(X @ beta.T)  # (N, D)
        want = np.exp(-H0[None, :, :] * r[:, :, None]).mean(axis=0)
        np.testing.assert_allclose(got[:, v_i, :], want, rtol=1e-9)


@pytest.mark.parametrize("formula, kw, error, message", [
    ("age + one", {}, bc.DataError, "the terms \\['one'\\] give no column"),
    ("age", {"missing": "dorp"}, bc.DataError, "missing='dorp' is not valid"),
    ("age + C(missing)", {}, bc.SpecError, "name 'missing' is not defined"),  # not the library's own variables
    ("age + I(df['time'])", {}, bc.SpecError, "name 'df' is not defined"),
    ("age | sex", {}, bc.SpecError, "has several parts"),
])
def test_a_formula_sees_the_data_and_numpy_only_and_drops_nothing(lung, formula, kw, error, message):
    with pytest.raises(error, match=message):
        bc.CoxPH().prepare(lung.assign(one="X"), formula=formula, time="time", event="status", **kw)


@pytest.mark.parametrize("column, formula, error, message", [
    (lambda d: d.age + 1j, "sex + z", bc.DataError, "formula variable 'z' holds complex numbers .*row 0"),
    (lambda d: pd.to_timedelta(d.age, unit="D"), "sex + bs(z, df=3)", bc.DataError, "'z' holds durations as timedeltas"),
    (lambda d: pd.Timestamp("2020-01-01") + pd.to_timedelta(d.age, unit="D"), "sex + z", bc.DataError,
     "'z' holds dates .*not numbers"),
    (lambda d: d.age.astype(str), "sex + z", bc.DataError, "'z' holds numbers stored as text.*astype\\('category'\\)"),
    (lambda d: pd.Categorical(d.ecog, categories=["0", "1", "2", "3"]), "sex + z", bc.DataError,
     "columns \\['z\\[T.3 vs 0\\]'\\] are all 0: categories of 'z' with no rows.*remove_unused_categories"),
])
def test_a_formula_variable_is_never_coerced(lung, column, formula, error, message):
    with pytest.raises(error, match=message):
        bc.CoxPH().prepare(lung.assign(z=column(lung)), formula=formula, time="time", event="status")


def test_a_column_named_intercept_is_refused_and_specs_read_a_formulas_variables(lung):
    with pytest.raises(bc.SpecError, match="column named 'Intercept'.*rename the column"):
        bc.CoxPH().prepare(lung.assign(Intercept=lung.age), formula="sex + Intercept", time="time", event="status")
    from bayescrt.formula import referenced

    assert referenced("age + C(nyha, Treatment('II')) + bs(egfr, df=3) + up:age + np.log(x) + I(a ** 2)") == \
        {"age", "nyha", "egfr", "up", "x", "a"}
    assert referenced("a ++") is None


def test_string_dtypes_and_numpy_calls_work_and_sources_name_the_variables(lung):
    df = lung.assign(sx=np.where(lung.sex == 1, "M", "F")).astype({"sx": "string"})
    data = bc.CoxPH().prepare(df, formula="sx + np.log(age) + bs(age, df=3)", time="time", event="status")
    assert data.covariates[:2] == ("sx[T.M vs F]", "np.log(age)")
    assert data.sources == ("sx", "age", "age", "age", "age")


def test_a_covariate_set_with_the_exposure_in_an_interaction_is_refused(lung):
    with pytest.raises(bc.SpecError, match="puts the exposure 'sex' in the terms \\['sex:age'\\]"):
        bc.fit_covariate_sets(bc.CoxPH(), lung, time="time", event="status", exposure="sex",
                              sets={"a": "age + sex:age"})
