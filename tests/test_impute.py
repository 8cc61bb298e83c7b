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
    with pytest.raises(bc.DataError, match="column 'x' has 2 missing values but is binary"):
        bc.impute(df.assign(x=df.x.where(df.index > 1)), **kw)
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
