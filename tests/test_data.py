"""The survival data layer: every bad input gets one clear error; good input is encoded and sorted."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.data import SurvivalData
from seeds import seed


def base():
    return pd.DataFrame({
        "t": [5.0, 3.0, 3.0, 8.0, 1.0, 9.0],
        "d": [1, 0, 1, 1, 0, 1],
        "age": [70.0, 65.0, 80.0, 72.0, 60.0, 75.0],
        "grp": ["a", "b", "a", "c", "b", "a"],
        "en": [0.0, 1.0, 0.0, 2.0, 0.5, 0.0],
        "w": [1.0, 2.0, 1.0, 1.0, 1.0, 3.0],
        "s": [0, 0, 1, 1, 0, 1],
    })


def mutate(**cols):
    def make():
        df = base()
        for k, v in cols.items():
            df[k] = v
        return df
    return make


# (case id, data factory, keyword arguments, regex the message must match)
BAD = [
    ("not a frame", lambda: base().to_dict(), {}, r"must be a pandas DataFrame, got dict"),
    ("empty", lambda: base().iloc[:0], {}, r"has no rows"),
    ("time column missing", base, {"time": "tt"}, r"time column 'tt' is not in the DataFrame\. Did you mean 't'\?"),
    ("covariate missing", base, {"covariates": ["agee"]}, r"covariate column 'agee' is not in the DataFrame\. Did you mean 'age'\?"),
    ("duplicate covariate", base, {"covariates": ["age", "age"]}, r"covariate 'age' is listed more than once"),
    ("covariate is the time column", base, {"covariates": ["age", "t"]}, r"column 't' is used both as a covariate and as the time column"),
    ("no covariates", base, {"covariates": []}, r"no covariates given"),
    ("time <= 0", mutate(t=[5.0, 0.0, 3.0, -1.0, 1.0, 9.0]), {}, r"time column 't' has 2 values <= 0 .*add a small positive value"),
    ("time infinite", mutate(t=[5.0, np.inf, 3.0, 8.0, 1.0, 9.0]), {}, r"time column 't' has 1 non-finite values .*row 1: inf"),
    ("time not numeric", mutate(t=list("abcdef")), {}, r"time column 't' must be numeric, got dtype"),
    ("event not 0/1", mutate(d=[1, 2, 0, 1, 0, 1]), {}, r"event column 'd' has values other than 0/1: \[2\.0\] in 1 rows"),
    ("event strings", mutate(d=["dead", "alive"] * 3), {}, r"event column 'd' has dtype .*code it as 0/1 or bool"),
    ("all censored", mutate(d=[0] * 6), {}, r"has no events \(all 6 rows censored\)"),
    ("missing values", mutate(age=[70.0, np.nan, 80.0, np.nan, 60.0, 75.0]), {}, r"missing values in 'age' \(2 rows\); pass missing='drop'"),
    ("constant covariate", mutate(age=[70.0] * 6), {}, r"covariate 'age' is constant \(70\.0\); drop it"),
    ("bad reference level", base, {"covariates": ["grp"], "reference": {"grp": "z"}}, r"reference level 'z' for 'grp' is not among its levels \['a', 'b', 'c'\]"),
    ("reference for non-covariate", base, {"reference": {"grp": "a"}}, r"reference level given for 'grp', which is not a covariate"),
    ("reference for numeric covariate", base, {"covariates": ["age"], "reference": {"age": 70.0}}, r"reference level 70\.0 given for 'age', which has dtype float64 and is used as a number; .*astype\('category'\)"),
    ("numbers stored as object", mutate(age=pd.Series([70, 65, 80, 72, 60, 75], dtype=object)), {}, r"covariate 'age' has dtype object but holds numbers; convert it with pd\.to_numeric"),
    ("entry not before time", mutate(en=[0.0, 3.0, 0.0, 2.0, 0.5, 0.0]), {"entry": "en"}, r"entry column 'en' is not before 't' in 1 rows"),
    ("negative entry", mutate(en=[0.0, -1.0, 0.0, 2.0, 0.5, 0.0]), {"entry": "en"}, r"entry column 'en' has 1 negative or non-finite values"),
    ("zero weight", mutate(w=[1.0, 0.0, 1.0, 1.0, 1.0, 1.0]), {"weights": "w"}, r"weights column 'w' has 1 values that are not finite and > 0"),
    ("strata column missing", base, {"strata": "ss"}, r"strata column 'ss' is not in the DataFrame\. Did you mean 's'\?"),
    ("datetime covariate", mutate(age=pd.date_range("2020-01-01", periods=6)), {}, r"covariate 'age' holds dates \(row 0: '2020-01-01'.*convert them to a duration or number, e\.g\. \(df\['age'\] - df\['age'\]\.min\(\)\)\.dt\.days / 365\.25"),
    ("bad missing option", base, {"missing": "ignore"}, r"missing='ignore' is not valid; choose one of \('error', 'drop'\)"),
]


@pytest.mark.parametrize("case,make,kwargs,pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_error(case, make, kwargs, pattern):
    args = {"time": "t", "event": "d", "covariates": ["age"], **kwargs}
    with pytest.raises(bc.DataError, match=pattern):
        SurvivalData.from_frame(make(), **args)


def test_all_problems_are_collected_and_raised_once():
    df = base()
    df["t"] = [5.0, 0.0, 3.0, 8.0, 1.0, 9.0]
    df["d"] = [1, 2, 0, 1, 0, 1]
    df["age"] = 70.0
    with pytest.raises(bc.DataError) as err:
        SurvivalData.from_frame(df, time="t", event="d", covariates=["age"])
    assert len(err.value.problems) == 3
    assert str(err.value).startswith("3 problems with the data:")


def test_caller_frame_is_never_mutated():
    df = base()
    df.loc[2, "age"] = np.nan
    before = df.copy(deep=True)
    with pytest.warns(bc.DataWarning):
        SurvivalData.from_frame(df, time="t", event="d", covariates=["age", "grp"], strata="s",
                                weights="w", entry="en", missing="drop")
    pd.testing.assert_frame_equal(df, before)


def test_missing_drop_reports_what_was_dropped():
    df = base()
    df.loc[[1, 4], "age"] = np.nan
    with pytest.warns(bc.DataWarning, match=r"dropped 2 of 6 rows with missing values in 'age' \(2 rows\)"):
        d = SurvivalData.from_frame(df, time="t", event="d", covariates=["age"], missing="drop")
    assert d.n == 4 and d.n_dropped == 2 and d.dropped == {"age": 2}
    assert sorted(d.row_labels.tolist()) == [0, 2, 3, 5]


@pytest.mark.filterwarnings("ignore::bayescrt.DataWarning")
def test_categorical_is_expanded_against_a_named_reference():
    d = SurvivalData.from_frame(base(), time="t", event="d", covariates=["grp", "age"], reference={"grp": "b"})
    assert d.covariates == ("grp[a vs b]", "grp[c vs b]", "age")
    assert d.sources == ("grp", "grp", "age")
    assert d.references == {"grp": "b"}
    # default reference: first level (sorted), or a Categorical's first category
    assert SurvivalData.from_frame(base(), time="t", event="d", covariates=["grp"]).covariates == (
        "grp[b vs a]", "grp[c vs a]")
    df = base()
    df["grp"] = pd.Categorical(df["grp"], categories=["c", "b", "a"])
    assert SurvivalData.from_frame(df, time="t", event="d", covariates=["grp"]).references == {"grp": "c"}


@pytest.mark.filterwarnings("ignore::bayescrt.DataWarning")
def test_rows_sorted_by_stratum_time_and_events_first():
    d = SurvivalData.from_frame(base(), time="t", event="d", covariates=["age"], strata="s")
    key = list(zip(d.strata, d.time, ~d.event))
    assert key == sorted(key)
    # the tied rows at t=3 (one event, one censoring) are in different strata here; without strata:
    d = SurvivalData.from_frame(base(), time="t", event="d", covariates=["age"])
    tied = np.flatnonzero(d.time == 3.0)
    assert d.event[tied].tolist() == [True, False]
    assert d.risk_set_starts()[tied].tolist() == [tied[0], tied[0]]


@pytest.mark.filterwarnings("ignore::bayescrt.DataWarning")
def test_boolean_event_and_covariate_are_accepted():
    df = base()
    df["d"] = df["d"].astype(bool)
    df["male"] = [True, False, True, True, False, False]
    d = SurvivalData.from_frame(df, time="t", event="d", covariates=["male"])
    assert d.n_events == 4 and d.X[:, 0].sum() == 3


def test_separation_is_a_warning():
    df = base()
    df["x"] = df["d"]  # every event has x = 1, the largest value in its risk set
    with pytest.warns(bc.DataWarning, match=r"covariate 'x' separates the events"):
        SurvivalData.from_frame(df, time="t", event="d", covariates=["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SurvivalData.from_frame(base(), time="t", event="d", covariates=["age"])


def test_hash_depends_on_the_data_only():
    a = SurvivalData.from_frame(base(), time="t", event="d", covariates=["age"])
    b = SurvivalData.from_frame(base().sample(frac=1, random_state=seed(1)), time="t", event="d", covariates=["age"])
    c = SurvivalData.from_frame(mutate(age=[70.0, 65.0, 80.0, 72.0, 60.0, 76.0])(), time="t", event="d",
                                covariates=["age"])
    assert a.hash() == b.hash() != c.hash()
    assert re.fullmatch(r"[0-9a-f]{64}", a.hash())


def test_standardisation_treats_case_weights_as_replicated_rows():
    """A row of weight 3 counts three times in the mean and SD behind the per-SD prior scale."""
    df = base()
    weighted = SurvivalData.from_frame(df, time="t", event="d", covariates=["age"], weights="w")
    replicated = SurvivalData.from_frame(df.loc[df.index.repeat(df.w.astype(int))], time="t", event="d",
                                         covariates=["age"])
    np.testing.assert_allclose(weighted.center, replicated.center, rtol=1e-14)
    np.testing.assert_allclose(weighted.scale, replicated.scale, rtol=1e-14)
    assert not np.allclose(weighted.scale, df.age.std(ddof=0))


@pytest.mark.parametrize("values", [
    np.arange(1000), np.random.default_rng(2).permutation(12_345), np.array([0]), np.array([0, 9, 10, 99, 100, 10**9 + 7]),
    np.array([2**63 - 1, 0], np.int64), np.array([2**64 - 1, 5], np.uint64), np.array([3, 4], np.int8),
    np.array([-1, 3]), np.array([1.5, 2.0]), np.array(["a", "bb"]), np.array([], np.int64), np.array(["x", 1], object),
    np.array(["2020-01-02"], "datetime64[D]")], ids=lambda v: f"{v.dtype}-{len(v)}")
def test_row_labels_as_text_are_str_of_each(values):
    """Integer row labels are written digit by digit in numpy: the same text array (values and width) as a str call
    a label, whatever the width of the integers; anything else takes the str calls."""
    from bayescrt.data import labels_as_text

    got, ref = labels_as_text(values), np.array([str(v) for v in values])
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert got.tolist() == ref.tolist()


def test_row_labels_as_text_refuse_a_table():
    from bayescrt.data import labels_as_text

    with pytest.raises(ValueError, match=r"one-dimensional, not of shape \(2, 2\)"):
        labels_as_text(np.array([[1, 2], [3, 4]]))


@pytest.mark.parametrize("texts", [[], ["a"], ["it's"], ['a"b'], ["back\\slash"], ["tab\t"], ["é"], ["", ""],
                                   ["[x]", "~ &("], ["\x7f"], [str(k) for k in range(1000)]])
def test_the_seal_writes_text_as_repr_does(texts):
    """The content hash reads text as ``repr`` of the list of strings (saved fits are checked against it); plain
    text takes a join instead, which must give the same characters."""
    from bayescrt.fit import _list_repr

    assert _list_repr(texts) == repr(texts)
