"""The cohort simulator, analysis specs, and the calibrated synthetic Danish cohort (no MCMC)."""

import math

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.analysis import simulate_cohort
from bayescrt.data import SurvivalData
from bayescrt.families.cox import mle
from bayescrt.simulate import _inverse_cumulative_hazard, simulate
from bayescrt.spec import load_spec
from seeds import seed

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
    df = simulate(40_000, 10_000, **BASE, random_seed=seed(5))
    assert df.attrs["synthetic"] and df.attrs["truth"]["exposure_hr"] == 1.2
    assert list(df.columns) == ["upgrade", "age", "af", "implant_date", "years", "died"]
    assert df["implant_date"].min() >= pd.Timestamp("2000-01-01") and df["implant_date"].max() <= pd.Timestamp("2018-08-31")
    assert (df["years"] > 0).all() and df["years"].max() <= 18.67
    res = mle(SurvivalData.from_frame(df, time="years", event="died", covariates=["upgrade", "age", "af"]))
    truth = {"upgrade": math.log(1.2), "age": math.log(1.04), "af": math.log(1.5)}
    for k, v in truth.items():  # MLE is consistent: within 4 standard errors
        assert abs(res["coef"][k] - v) < 4 * res["se"][k], (k, res["coef"][k], v)


def test_accrual_trend_puts_more_implants_late():
    df = simulate(20_000, 5_000, **{**BASE, "accrual": {**BASE["accrual"], "trend": 3.0}}, random_seed=seed(1))
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
    bad.write_text(text.replace('minimal = ["age", "male"]', 'minimal = "bs(age, df=3) + C(mal)"'))
    with pytest.raises(bc.SpecError, match=r"minimal: 'mal' is not a simulated covariate\. Did you mean 'male'\?"):
        load_spec(bad)
    bad.write_text(text.replace('minimal = ["age", "male"]', 'minimal = "bs(age, df=3) + C(male)"'))
    assert load_spec(bad).covariate_sets["minimal"] == "bs(age, df=3) + C(male)"  # a formula set is a formula
    with pytest.raises(bc.SpecError, match=r"no spec named 'danis'\. Did you mean 'danish'\?"):
        load_spec("danis")


@pytest.fixture(scope="module")
def danish():
    spec = load_spec("danish")
    return spec, simulate_cohort(spec)


def test_danish_cohort_is_synthetic_and_reproducible(danish):
    spec, df = danish
    assert spec.synthetic and df.attrs["synthetic"] and "SYNTHETIC" in spec.path.read_text()
    assert len(df) == 8880 and df["upgrade"].sum() == 2195
    pd.testing.assert_frame_equal(df, simulate_cohort(spec))  # the recorded seed gives the same cohort


def test_danish_cohort_matches_the_abstract_within_sampling_error(danish):
    from bayescrt.reproduce import calibration_table

    spec, df = danish
    tab = calibration_table(spec, df)
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


# ---------------------------------------------------------------------------------- the shipped cohort and its record
def test_shipped_cohort_reproduces_its_calibration_record_exactly(danish):
    """The shipped cohort's deaths and both frequentist HRs are the calibration record's, to its four decimals.

    The record was written by `bayescrt calibrate danish`; any change to the random stream (or to the
    simulator's arithmetic) changes these figures and fails here, loudly, instead of shifting the README.
    """
    import tomllib

    from bayescrt.calibrate import cohort_stats

    spec, df = danish
    record = tomllib.loads(spec.calibration_path.read_text())
    assert df.attrs["truth"]["random_seed"] == record["parameters"]["cohort_seed"]
    want = record["achieved_shipped_cohort"]
    got = cohort_stats(df, spec)
    assert got["deaths"] == want["deaths_per_published_size"]
    assert round(math.exp(got["log_hr_minimal"]), 4) == want["hr_minimal"]
    assert round(math.exp(got["log_hr_full"]), 4) == want["hr_full"]


def test_exchangeable_cholesky_factor_is_exact():
    from bayescrt.simulate import _exchangeable_cholesky

    for k in (1, 2, 5, 8):
        for rho in (-0.9 / max(k - 1, 1), 0.0, 0.15, 0.8):
            L = np.array(_exchangeable_cholesky(k, rho))
            R = np.full((k, k), rho)
            np.fill_diagonal(R, 1.0)
            assert np.all(np.triu(L, 1) == 0) and np.all(np.diag(L) > 0)
            np.testing.assert_allclose(L @ L.T, R, rtol=0, atol=1e-14)


def test_correlated_normals_have_the_intended_correlation():
    """The latent normals: unit variances and the common correlation, within sampling error."""
    from bayescrt.simulate import _correlated_normals

    n, k, rho = 200_000, 4, 0.3
    z = np.column_stack(_correlated_normals(np.random.default_rng(seed(11)), n, k, rho))
    c = np.corrcoef(z, rowvar=False)
    se_r = (1 - rho**2) / math.sqrt(n)  # large-sample SE of a sample correlation
    off = c[~np.eye(k, dtype=bool)]
    assert np.all(np.abs(off - rho) < 5 * se_r), off
    assert np.all(np.abs(z.var(axis=0) - 1) < 5 * math.sqrt(2 / n)), z.var(axis=0)
    assert np.all(np.abs(z.mean(axis=0)) < 5 / math.sqrt(n))


def test_binary_covariates_have_the_tetrachoric_correlation():
    """Each pair of binary covariates is a thresholded bivariate normal with the latent correlation:
    its joint frequency matches Phi2(a, b; rho), not the product of the prevalences."""
    from scipy import stats

    n, rho = 200_000, 0.4
    prev = {"a": 0.3, "b": 0.5, "c": 0.2}
    covs = {k: {"kind": "binary", "prevalence": [p, p]} for k, p in prev.items()}
    df = simulate(n, n // 4, **{**BASE, "covariates": covs, "log_hr": {}, "correlation": rho},
                  random_seed=seed(12))
    for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
        px, py = prev[x], prev[y]
        both = float(stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf(
            [stats.norm.ppf(px), stats.norm.ppf(py)]))
        observed = float(((df[x] == 1) & (df[y] == 1)).mean())
        tol = 5 * math.sqrt(both * (1 - both) / n)
        assert abs(observed - both) < tol, (x, y, observed, both)
        assert abs(observed - px * py) > 10 * tol  # the correlation is really there
    for x, p in prev.items():
        assert abs(df[x].mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_the_correlated_draw_is_ours_not_numpys_multivariate_normal(monkeypatch):
    """multivariate_normal factorises by LAPACK SVD, whose eigenvectors of a repeated eigenvalue differ by
    machine: the simulator must not call it, nor any LAPACK factorisation."""
    real = np.random.default_rng
    called = []

    class Recorder:
        def __init__(self, rng):
            self._rng = rng

        def __getattr__(self, name):
            called.append(name)
            if name == "multivariate_normal":
                raise AssertionError("simulate() called numpy's multivariate_normal")
            return getattr(self._rng, name)

    def refuse(*args, **kwargs):
        raise AssertionError("simulate() called a LAPACK factorisation")

    monkeypatch.setattr(np.random, "default_rng", lambda s=None: Recorder(real(s)))
    for name in ("svd", "cholesky", "eigh", "eig"):
        monkeypatch.setattr(np.linalg, name, refuse)
    covs = {k: {"kind": "binary", "prevalence": [0.4, 0.3]} for k in ("a", "b", "c")}
    simulate(1000, 250, **{**BASE, "covariates": covs, "log_hr": {}, "correlation": 0.2}, random_seed=seed(13))
    assert "standard_normal" in called and "multivariate_normal" not in called


def test_simulate_accepts_numpy_numbers():
    """n, n_exposed, HRs and rates given as numpy scalars give the same cohort as Python numbers."""
    plain = simulate(500, 100, **BASE, correlation=0.2, random_seed=seed(14))
    numpy_kw = {**BASE, "exposure_hr": np.float64(1.2), "log_hr": {k: np.float64(v) for k, v in BASE["log_hr"].items()},
                "baseline": {**BASE["baseline"], "shape": np.float64(1.3), "scale_years": np.int64(8)},
                "accrual": {**BASE["accrual"], "trend": np.float32(2.0)}}
    with_numpy = simulate(np.int64(500), np.int32(100), **numpy_kw, correlation=np.float64(0.2),
                          random_seed=np.int64(seed(14)))
    pd.testing.assert_frame_equal(with_numpy, plain, check_exact=True)
    assert with_numpy.attrs["truth"]["n"] == 500 and type(with_numpy.attrs["truth"]["n"]) is int


def test_simulate_does_not_change_the_callers_arguments():
    import copy

    kw = copy.deepcopy({**BASE, "correlation": 0.1})
    simulate(300, 60, **kw, random_seed=seed(15))
    assert kw == {**BASE, "correlation": 0.1}


def test_memory_estimate_covers_the_measured_peak():
    """The estimate used to refuse a cohort too large for memory is at least the peak numpy/pandas allocate."""
    import tracemalloc

    from bayescrt.simulate import memory_estimate

    n = 50_000
    covs = {**BASE["covariates"], **{f"b{j}": {"kind": "binary", "prevalence": [0.3, 0.2]} for j in range(5)}}
    tracemalloc.start()
    try:
        simulate(n, n // 4, **{**BASE, "covariates": covs}, correlation=0.1, random_seed=seed(16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = memory_estimate(n, len(covs), 6)
    assert peak <= est < 3 * peak, (peak, est)


def test_spec_cohort_is_checked_on_load_and_accepts_documentation_keys(tmp_path):
    """The shipped spec's documentation keys (source, assumed, citation, verified, bounds) load; a TOML date
    is as good as a string; a cohort problem is refused by load_spec, before anything is simulated or fitted."""
    text = load_spec("danish").path.read_text()
    good = tmp_path / "good.toml"
    good.write_text(text.replace('start = "2000-01-01"', "start = 2000-01-01"))
    spec = load_spec(good)
    assert spec.raw["cohort"]["covariates"]["diabetes"]["assumed"] is True
    free = {k: v for k, v in load_spec("danish").calibration["parameters"].items() if k != "cohort_seed"}
    kw = spec.simulation_kwargs(**free)  # documentation keys stay in the spec; the simulator gets the rest
    assert kw["covariates"]["age"] == {"kind": "continuous", "median": [71.9, 69.3], "spread": 10.0, "center": 70.0}
    assert kw["covariates"]["diabetes"] == {"kind": "binary", "prevalence": [0.33, 0.33]}
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("spread = 10.0", "spread = nan"))
    with pytest.raises(bc.SpecError, match=r"\[cohort\.covariates\.age\] spread=nan must be > 0 and finite"):
        load_spec(bad)
    bad.write_text(text.replace("verified = false", 'verified = "no"', 1))
    with pytest.raises(bc.SpecError,
                       match=r"\[cohort\.hazard_ratios\.hypertension\]: verified='no' must be true or false"):
        load_spec(bad)


def test_spec_simulates_with_its_own_column_names(tmp_path):
    """A spec whose time and event columns are not 'years' and 'died' gets a cohort with its own names."""
    spec = load_spec("danish")
    path = tmp_path / "renamed.toml"
    text = spec.path.read_text()
    path.write_text(text.replace('time = "years"', 'time = "t"').replace('event = "died"', 'event = "d"'))
    (tmp_path / "renamed.calibration.toml").write_text(spec.calibration_path.read_text())
    df = simulate_cohort(load_spec(path))
    assert list(df.columns[-3:]) == ["implant_date", "t", "d"]
    np.testing.assert_array_equal(df["t"].to_numpy(), simulate_cohort(spec)["years"].to_numpy())
