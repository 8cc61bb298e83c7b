"""bc.impute: the Nelson-Aalen estimate against lifelines, completed copies that change only the missing cells,
imputations that use the outcome, the missingness table and the errors. (The pooled analysis against complete
cases on a cohort with a confounder missing at random given the outcome: benchmarks/imputation.py.)"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.impute import nelson_aalen
from seeds import seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from imputation import cohort  # noqa: E402  the benchmark's simulated cohort


def test_nelson_aalen_at_each_rows_time_equals_lifelines():
    from lifelines import NelsonAalenFitter

    rng = np.random.default_rng(seed(2))
    t = np.round(rng.exponential(2, 300), 1)  # ties
    d = (rng.random(300) < 0.7).astype(int)
    ref = NelsonAalenFitter(nelson_aalen_smoothing=False).fit(t, d).cumulative_hazard_at_times(t).to_numpy()
    np.testing.assert_allclose(nelson_aalen(t, d), ref, rtol=1e-12)


@pytest.fixture(scope="module")
def holed():
    full, holed = cohort(4000, seed(1))
    return full, holed


def test_completed_copies_change_only_the_missing_cells_and_use_the_outcome(holed):
    full, df = holed
    before = df.copy()
    done = bc.impute(df, m=3, time="years", event="died", exposure="x", random_seed=seed(4))
    pd.testing.assert_frame_equal(df, before)
    miss = df["c"].isna().to_numpy()
    for f in done:
        pd.testing.assert_frame_equal(f.drop(columns="c"), df.drop(columns="c"))
        np.testing.assert_array_equal(f.loc[~miss, "c"], df.loc[~miss, "c"])
        assert f["c"].notna().all()
        # drawn from the predictive distribution given x and the outcome: over the missing rows, and over the
        # missing rows of the deaths, the imputed mean of c is the true mean within 4 SEs of a difference of two
        # independent draws around the same conditional mean (residual SD at most 1: sqrt(2 / n))
        for rows in (miss, miss & (df["died"].to_numpy() == 1)):
            n = rows.sum()
            assert abs(f.loc[rows, "c"].mean() - full.loc[rows, "c"].mean()) < 4 * np.sqrt(2 / n)
    assert not np.allclose(done[0].loc[miss, "c"], done[1].loc[miss, "c"])  # each imputation draws afresh
    again = bc.impute(df, m=3, time="years", event="died", exposure="x", random_seed=seed(4))
    for a, b in zip(done, again):
        pd.testing.assert_frame_equal(a, b)
    info = done[1].attrs["bayescrt_imputation"]
    assert info["imputation"] == 1 and info["m"] == 3 and info["imputed"] == ["c"]
    assert info["missingness"]["missing"]["c"] == int(miss.sum())


def test_the_missingness_table_by_exposure_group(holed):
    _, df = holed
    tab = bc.missingness(df, by="x")
    assert tab.loc["c", "missing"] == df["c"].isna().sum()
    assert tab.loc["c", "missing (x=1)"] == df.loc[df.x == 1, "c"].isna().sum()
    assert tab.loc["c", "missing % (x=0)"] == pytest.approx(100 * df.loc[df.x == 0, "c"].isna().mean())


def test_impute_refuses_what_it_cannot_do_honestly(holed):
    _, df = holed
    kw = dict(m=3, time="years", event="died", random_seed=1)
    with pytest.raises(bc.DataError, match="column 'when' has dtype datetime64.*leave it out with columns="):
        bc.impute(df.assign(when=pd.Timestamp("2020-01-01")), **kw)
    with pytest.raises(bc.DataError, match="column 'pid' has 4000 distinct values; an identifier"):
        bc.impute(df.assign(pid=[f"p{i}" for i in range(len(df))]), **kw)
    with pytest.raises(bc.DataError, match=r"column 'site' has missing values and only one observed level, 'a'"):
        bc.impute(df.assign(site=np.where(df.index % 2 == 0, "a", None)), **kw)
    with pytest.warns(bc.DataWarning, match=r"column 'nyha' has 3 integer values \(\[2, 3, 4\]\).*'category'"):
        bc.impute(df.assign(nyha=np.where(df.index % 7 == 0, np.nan, 2 + df.index % 3)), **kw)
    with pytest.raises(bc.DataError, match="time column 'years' has 1 missing"):
        bc.impute(df.assign(years=df.years.where(df.index > 0)), **kw)
    with pytest.raises(bc.DataError, match="nothing to impute"):
        bc.impute(df.dropna(), **kw)
    with pytest.raises(bc.SpecError, match="m=1 is out of range"):
        bc.impute(df, **{**kw, "m": 1})
    with pytest.raises(bc.SpecError, match="random_seed= is required"):
        bc.impute(df, **{**kw, "random_seed": None})
    with pytest.raises(bc.SpecError, match="columns: 'cc' is not a column.*Did you mean 'c'"):
        bc.impute(df, columns=["cc"], **kw)


def discrete_cohort(n, rng_seed):
    """x, a binary comorbidity b and a three-level class k (both depend on x and raise the hazard), Weibull times;
    b and k lose values more often among the deaths (missing at random given the outcome)."""
    rng = np.random.default_rng(rng_seed)
    x = (rng.random(n) < 0.4).astype(int)
    b = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 1.0 * x)))).astype(float)
    cuts = np.column_stack([0.5 - 0.2 * x, 0.85 - 0.1 * x])  # P(II), P(II or III) given x
    k = np.array(["II", "III", "IV"])[(rng.random(n)[:, None] > cuts).sum(axis=1)]
    lp = 0.3 * x + 0.8 * b + np.select([k == "III", k == "IV"], [0.5, 1.2], 0.0)
    t = (-np.log(rng.random(n)) / (0.2 * np.exp(lp))) ** (1 / 1.3)
    cens = rng.uniform(0.5, 6, n)
    died = (t <= cens).astype(int)
    full = pd.DataFrame({"years": np.minimum(t, cens), "died": died, "x": x, "b": b,
                         "k": pd.Categorical(k, categories=["II", "III", "IV"])})
    p = 1 / (1 + np.exp(-(-2.5 + 1.5 * died)))
    holed = full.copy()
    holed.loc[rng.random(n) < p, "b"] = np.nan
    holed.loc[rng.random(n) < p, "k"] = np.nan
    return full, holed


def test_binary_and_categorical_columns_are_drawn_from_their_levels_given_the_outcome():
    full, df = discrete_cohort(6000, seed(5))
    before = df.copy()
    done = bc.impute(df, m=4, time="years", event="died", exposure="x", random_seed=seed(6))
    pd.testing.assert_frame_equal(df, before)
    mb, mk = df["b"].isna().to_numpy(), df["k"].isna().to_numpy()
    deaths = df["died"].to_numpy() == 1
    for f in done:
        assert f["b"].dtype == float and set(f["b"].unique()) == {0.0, 1.0}
        assert isinstance(f["k"].dtype, pd.CategoricalDtype) and list(f["k"].cat.categories) == ["II", "III", "IV"]
        assert f["k"].notna().all()
        pd.testing.assert_series_equal(f.loc[~mk, "k"], df.loc[~mk, "k"])
        # the share of b = 1, and of each class, among the missing rows (and among the missing deaths) is the true
        # share within 4 SEs of the difference of two independent Bernoulli means: sqrt(2 p (1 - p) / n)
        for rows in (mb, mb & deaths):
            p = full.loc[rows, "b"].mean()
            assert abs(f.loc[rows, "b"].mean() - p) < 4 * np.sqrt(2 * p * (1 - p) / rows.sum())
        for rows in (mk, mk & deaths):
            for level in ("II", "III", "IV"):
                p = (full.loc[rows, "k"] == level).mean()
                assert abs((f.loc[rows, "k"] == level).mean() - p) < 4 * np.sqrt(2 * p * (1 - p) / rows.sum())
    # the classes differ by outcome far beyond that tolerance (II: 0.37 of the deaths, 0.64 of the survivors among
    # the missing rows), so a model that ignored the outcome could not have passed the check among the deaths
    assert (full.loc[mk & ~deaths, "k"] == "II").mean() - (full.loc[mk & deaths, "k"] == "II").mean() > 0.15
    info = done[0].attrs["bayescrt_imputation"]
    assert info["kinds"] == {"b": "discrete", "k": "discrete"}


def test_competing_events_enter_as_each_cause_s_indicator_and_cumulative_hazard():
    """c is removed more often after cause 1 (on whose hazard it acts strongly) than after cause 2: the imputed mean
    of c over the missing rows of each cause is the true mean within 4 SEs (as above). An imputation model with one
    0/1 'any event' indicator would give both causes one mean and miss the first."""
    from imputation import competing_cohort

    full, df = competing_cohort(4000, seed(7))
    done = bc.impute(df, m=2, time="years", event="status", exposure="x", random_seed=seed(8))
    info = done[0].attrs["bayescrt_imputation"]
    assert info["causes"] == ["cause 1", "cause 2"] and "each cause's indicator" in info["method"]
    miss = df["c"].isna().to_numpy()
    status = df["status"].to_numpy()
    gap = full.loc[miss & (status == 1), "c"].mean() - full.loc[miss & (status == 2), "c"].mean()
    assert gap > 0.3  # the two causes' missing rows really differ
    for f in done:
        pd.testing.assert_frame_equal(f.drop(columns="c"), df.drop(columns="c"))
        for k in (0, 1, 2):
            rows = miss & (status == k)
            assert abs(f.loc[rows, "c"].mean() - full.loc[rows, "c"].mean()) < 4 * np.sqrt(2 / rows.sum()), k
    labelled = df.assign(status=df["status"].map({0: "alive", 1: "hf", 2: "death"}))
    again = bc.impute(labelled, m=2, time="years", event="status", exposure="x", random_seed=seed(8),
                      censored="alive", causes=["hf", "death"])
    for a, b in zip(done, again):  # labels in code order give the same predictors, so the same draws
        np.testing.assert_array_equal(a["c"], b["c"])
    with pytest.raises(bc.DataError, match=r"event column 'status' has codes \[3\]"):
        bc.impute(df.assign(status=df["status"].replace({2: 3})), m=2, time="years", event="status",
                  causes=["cause 1", "cause 2"], random_seed=1)


def test_the_outcome_must_be_the_same_in_every_completed_data_set():
    from bayescrt.impute import same_outcome

    frames = [pd.DataFrame({"t": [1.0, 2.0], "e": [1, 2], "c": [0.1, 0.2]}) for _ in range(2)]
    assert len(same_outcome(frames, "t", "e")) == 2
    frames[1] = frames[1].assign(e=[1, 0])
    with pytest.raises(bc.SpecError, match=r"column 'e' differs between DataFrame 1 and DataFrame 0; the imputations "
                                           r"complete covariates"):
        same_outcome(frames, "t", "e")


def test_the_outcome_columns_cannot_play_two_roles():
    df = pd.DataFrame({"t": [1.0, 2.0, 3.0], "e": [1, 0, 2], "c": [0.1, None, 0.3]})
    with pytest.raises(bc.SpecError, match=r"time='e' and event='e' name one column"):
        bc.impute(df, m=2, time="e", event="e", random_seed=1)
    with pytest.raises(bc.SpecError, match=r"exposure='e' is the outcome's event column"):
        bc.impute(df, m=2, time="t", event="e", exposure="e", random_seed=1)
