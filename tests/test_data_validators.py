"""SurvivalData.from_frame's validators, one per section, and SurvivalData.indicator_column."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.data import SurvivalData


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "t": [5.0, 3.0, 3.0, 8.0, 1.0, 9.0, 4.0, 6.0],
        "d": [1, 0, 1, 1, 0, 1, 1, 0],
        "age": [70.0, 65.0, 80.0, 72.0, 60.0, 75.0, 68.0, 71.0],
        "male": [1, 0, 0, 1, 1, 0, 1, 0],
        "smoker": [True, False, True, False, False, True, True, False],
        "arm": ["a", "b", "b", "b", "a", "b", "a", "a"],
        "nyha": ["II", "III", "IV", "II", "III", "IV", "II", "III"],
        "en": [0.0, 1.0, 0.0, 2.0, 0.5, 0.0, 0.0, 0.0],
        "w": [1.0, 2.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0],
    })


def data(covariates) -> SurvivalData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.DataWarning)  # small data: separation warnings are beside the point
        return SurvivalData.from_frame(frame(), time="t", event="d", covariates=covariates)


def test_indicator_column_finds_the_one_0_1_column_of_a_source():
    d = data(["age", "male", "smoker", "arm", "nyha"])
    assert d.indicator_column("male") == d.covariates.index("male")
    assert d.indicator_column("smoker") == d.covariates.index("smoker")
    assert d.indicator_column("arm") == d.covariates.index("arm[b vs a]")
    assert isinstance(d.indicator_column("male"), int)


@pytest.mark.parametrize("source", ["age", "nyha", "t", "nope", "arm[b vs a]"])
def test_indicator_column_is_none_unless_one_0_1_column(source):
    # a numeric covariate, a 3-level categorical (two columns), a non-covariate, an unknown name, an encoded label
    assert data(["age", "male", "arm", "nyha"]).indicator_column(source) is None


def test_indicator_column_needs_every_value_0_or_1():
    df = frame()
    df["dose"] = [0.0, 1.0, 2.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.DataWarning)
        d = SurvivalData.from_frame(df, time="t", event="d", covariates=["dose", "male"])
    assert d.indicator_column("dose") is None and d.indicator_column("male") == 1


def test_problems_from_every_section_are_raised_once_in_section_order():
    df = frame()
    df["t"] = [5.0, 0.0, 3.0, 8.0, 1.0, 9.0, 4.0, 6.0]       # time
    df["d"] = [1, 2, 1, 1, 0, 1, 1, 0]                       # event
    df["en"] = [0.0, -1.0, 0.0, 2.0, 0.5, 0.0, 0.0, 0.0]     # entry
    df["w"] = [1.0, 2.0, 0.0, 1.0, 1.0, 3.0, 1.0, 1.0]       # weights
    df["age"] = 70.0                                         # covariates
    df["s"] = pd.Series([[1], [2]] * 4, dtype=object)        # strata
    df["male"] = [1.0, np.nan, 0, 1, 1, 0, 1, 0]             # missing values
    before = df.copy(deep=True)
    with pytest.raises(bc.DataError) as err:
        SurvivalData.from_frame(df, time="t", event="d", covariates=["age", "male", "arm"], entry="en",
                                weights="w", strata="s", reference={"arm": "z"})
    starts = [p.split(" ", 2)[:2] for p in err.value.problems]
    assert starts == [["missing", "values"], ["time", "column"], ["event", "column"], ["entry", "column"],
                      ["weights", "column"], ["covariate", "'age'"], ["reference", "level"], ["strata", "column"]]
    assert str(err.value).startswith("8 problems with the data:")
    pd.testing.assert_frame_equal(df, before)


def test_missing_drop_warning_points_at_the_caller():
    df = frame()
    df.loc[1, "age"] = np.nan
    with pytest.warns(bc.DataWarning, match="dropped 1 of 8 rows") as record:
        SurvivalData.from_frame(df, time="t", event="d", covariates=["age"], missing="drop")
    assert not any(r.filename.endswith("data.py") for r in record)
