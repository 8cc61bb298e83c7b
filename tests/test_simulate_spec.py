"""The cohort simulator, analysis specs, and the calibrated synthetic Danish cohort (no MCMC)."""

import math

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.data import SurvivalData
from bayescrt.families.cox import mle
from bayescrt.simulate import _inverse_cumulative_hazard, simulate
from bayescrt.spec import load_spec

BASE = dict(
    covariates={"age": {"kind": "continuous", "median": [72.0, 69.0], "spread": 10.0, "center": 70.0},
                "af": {"kind": "binary", "prevalence": [0.6, 0.3]}},
    log_hr={"age": math.log(1.04), "af": math.log(1.5)},
    exposure_hr=1.2,
    baseline={"kind": "weibull", "shape": 1.3, "scale_years": 8.0},
    accrual={"start": "2000-01-01", "end": "2018-08-31", "trend": 2.0},
)


def test_piecewise_inverse_is_exact():
    base = {"kind": "piecewise", "cuts_years": [1.0, 3.0], "rates_per_year": [0.2, 0.1, 0.3]}
    H = np.array([0.05, 0.2, 0.25, 0.4, 2.0])
    t = _inverse_cumulative_hazard(H, base)
    back = 0.2 * np.minimum(t, 1) + 0.1 * np.clip(t - 1, 0, 2) + 0.3 * np.clip(t - 3, 0, None)
    np.testing.assert_allclose(back, H)


def test_simulated_cohort_recovers_its_true_hazard_ratios():
    df = simulate(40_000, 10_000, **BASE, random_seed=5)
    assert df.attrs["synthetic"] and df.attrs["truth"]["exposure_hr"] == 1.2
    assert list(df.columns) == ["upgrade", "age", "af", "implant_date", "years", "died"]
    assert df["implant_date"].min() >= pd.Timestamp("2000-01-01") and df["implant_date"].max() <= pd.Timestamp("2018-08-31")
    assert (df["years"] > 0).all() and df["years"].max() <= 18.67
    res = mle(SurvivalData.from_frame(df, time="years", event="died", covariates=["upgrade", "age", "af"]))
    truth = {"upgrade": math.log(1.2), "age": math.log(1.04), "af": math.log(1.5)}
    for k, v in truth.items():  # MLE is consistent: within 4 standard errors
        assert abs(res["coef"][k] - v) < 4 * res["se"][k], (k, res["coef"][k], v)


def test_accrual_trend_puts_more_implants_late():
    df = simulate(20_000, 5_000, **{**BASE, "accrual": {**BASE["accrual"], "trend": 3.0}}, random_seed=1)
    frac = (df["implant_date"] - pd.Timestamp("2000-01-01")).dt.days / 6817
    # density 1 + (r - 1) x on [0, 1], normalised: mean = (1/2 + (r-1)/3) / (1 + (r-1)/2) = 7/12 for r = 3
    assert frac.mean() == pytest.approx(7 / 12, abs=4 * 0.29 / math.sqrt(20_000))


@pytest.mark.parametrize("change,pattern", [
    ({"exposure_hr": 0}, r"exposure_hr=0 must be > 0"),
    ({"log_hr": {"bmi": 0.1}}, r"log_hr given for 'bmi', which is not a simulated covariate"),
    ({"baseline": {"kind": "gompertz"}}, r"baseline kind='gompertz' must be 'weibull' or 'piecewise'"),
    ({"covariates": {"af": {"kind": "binary", "prevalence": [1.2, 0.3]}}}, r"prevalence must be \[exposed, unexposed\]"),
    ({"accrual": {**BASE["accrual"], "close": "2017-12-31"}}, r"accrual close 2017-12-31 is before the last implant date 2018-08-31"),
    ({"baseline": {"kind": "piecewise", "cuts_years": [2.0, 1.0], "rates_per_year": [0.1, 0.2, 0.3]}}, r"strictly increasing cuts_years > 0 .*cuts_years=\[2\.0, 1\.0\]"),
    ({"baseline": {"kind": "piecewise", "cuts_years": [0.0, 1.0], "rates_per_year": [0.1, 0.2, 0.3]}}, r"strictly increasing cuts_years > 0"),
    ({"covariates": {k: {"kind": "binary", "prevalence": [0.5, 0.5]} for k in ("a", "b", "c")}, "log_hr": {},
      "correlation": -0.6}, r"correlation=-0\.6 must be in \(-0\.5, 1\) for 3 binary covariates"),
])
def test_simulator_rejects_bad_specs(change, pattern):
    with pytest.raises(bc.SpecError, match=pattern):
        simulate(100, 20, **{**BASE, **change})


def test_spec_errors_name_the_key_and_the_fix(tmp_path):
    text = (load_spec("danish").path).read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("[sampler]\ndraws", "[sampler]\ndrawz"))
    with pytest.raises(bc.SpecError, match=r"\[sampler\]: unknown key 'drawz'\. Did you mean 'draws'\?"):
        load_spec(bad)
    bad.write_text(text.replace('family = "CoxPH"', 'family = "CoxPh"'))
    with pytest.raises(bc.SpecError, match=r"family='CoxPh' is not known\. Did you mean 'CoxPH'\?"):
        load_spec(bad)
    bad.write_text(text.replace('minimal = ["age", "male"]', 'minimal = ["age", "mal"]'))
    with pytest.raises(bc.SpecError, match=r"'mal' is not a simulated covariate\. Did you mean 'male'\?"):
        load_spec(bad)
    with pytest.raises(bc.SpecError, match=r"no spec named 'danis'\. Did you mean 'danish'\?"):
        load_spec("danis")


@pytest.fixture(scope="module")
def danish():
    spec = load_spec("danish")
    return spec, spec.simulate()


def test_danish_cohort_is_synthetic_and_reproducible(danish):
    spec, df = danish
    assert spec.synthetic and df.attrs["synthetic"] and "SYNTHETIC" in spec.path.read_text()
    assert len(df) == 8880 and df["upgrade"].sum() == 2195
    pd.testing.assert_frame_equal(df, spec.simulate())  # the recorded seed gives the same cohort


def test_danish_cohort_matches_the_abstract_within_sampling_error(danish):
    from bayescrt.reproduce import baseline_table

    spec, df = danish
    tab = baseline_table(spec, df)
    print("\n" + tab.to_string(float_format=lambda v: f"{v:.3f}"))
    # every published percentage and median, upgrade and de novo, is in the table
    published = tab[tab["source"] == "published"]
    assert len(published) == 2 * 5 + 2  # age, male, IHD, AF, CKD and follow-up, by group
    # 14 comparisons: |z| < 3.5 keeps the chance of a false alarm under 1%
    assert (tab["z"].abs() < 3.5).all(), tab


def test_danish_cohort_reproduces_the_published_frequentist_hrs(danish):
    """Calibration target: Cox fits on the shipped cohort land inside the published CIs, with similar widths."""
    spec, df = danish
    for name, covs in spec.covariate_sets.items():
        res = mle(SurvivalData.from_frame(df, time="years", event="died", covariates=["upgrade", *covs]))
        hr = math.exp(res["coef"]["upgrade"])
        pub = spec.published[name]
        width = 2 * 1.96 * res["se"]["upgrade"]
        pub_width = math.log(pub["upper"] / pub["lower"])
        print(f"{name}: HR {hr:.3f} (published {pub['hr']}), CI width {width:.4f} vs {pub_width:.4f}")
        assert pub["lower"] < hr < pub["upper"]
        assert abs(width / pub_width - 1) < 0.2
    # The CI width, not a death count, is the calibration target: sqrt(1/d1 + 1/d0) ignores the variance
    # inflation that adjustment brings, so the published width needs more deaths than "about 4,000".
    print(f"deaths: {df['died'].sum()}")
