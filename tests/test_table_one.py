"""bc.baseline_table against the tableone package (an implementation of R's tableone nobody here wrote),
and its errors."""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from seeds import seed


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(seed(3))
    n = 400
    g = rng.choice(["de novo", "upgrade"], n, p=[0.7, 0.3])
    up = g == "upgrade"
    df = pd.DataFrame({"group": g, "age": rng.normal(68 + 4 * up, 10, n), "male": rng.random(n) < 0.7 + 0.1 * up,
                       "nyha": rng.choice(["I", "II", "III", "IV"], n), "egfr": rng.lognormal(4 - 0.1 * up, 0.3, n),
                       "diabetes": rng.integers(0, 2, n)})
    df.loc[rng.choice(n, 40, replace=False), "age"] = np.nan
    df.loc[rng.choice(n, 25, replace=False), "egfr"] = np.nan
    return df


def _squash(x) -> str:
    return str(x).replace(" ", "")


def test_the_table_and_its_smds_equal_tableones(cohort):
    from tableone import TableOne

    cols = ["age", "male", "nyha", "egfr", "diabetes"]
    ref = TableOne(cohort, columns=cols, categorical=["male", "nyha", "diabetes"], nonnormal=["egfr"],
                   groupby="group", smd=True, pval=False)
    t1 = ref.tableone.droplevel(0, axis=1)
    before = cohort.copy()
    tab = bc.baseline_table(cohort, by="group", columns=cols, nonnormal=["egfr"])
    pd.testing.assert_frame_equal(cohort, before)
    assert list(tab.columns) == ["Overall", "de novo", "upgrade", "Missing", "SMD (de novo, upgrade)"]
    for g in ["Overall", "de novo", "upgrade"]:
        assert tab.loc[("n", ""), g] == _squash(t1.loc[("n", ""), g])
        assert tab.loc[("age, mean (SD)", ""), g] == t1.loc[("age, mean (SD)", ""), g]
        assert _squash(tab.loc[("egfr, median [Q1, Q3]", ""), g]) == _squash(t1.loc[("egfr, median [Q1,Q3]", ""), g])
        for level in ["I", "II", "III", "IV"]:
            assert tab.loc[("nyha, n (%)", level), g] == _squash(t1.loc[("nyha, n (%)", level), g]).replace("(", " (")
        # a binary column shows its 1 (True) row
        assert tab.loc[("male, n (%)", ""), g] == _squash(t1.loc[("male, n (%)", "True"), g]).replace("(", " (")
        assert tab.loc[("diabetes, n (%)", ""), g] == _squash(t1.loc[("diabetes, n (%)", "1"), g]).replace("(", " (")
    assert tab.loc[("age, mean (SD)", ""), "Missing"] == "40" and tab.loc[("egfr, median [Q1, Q3]", ""), "Missing"] == "25"
    smd = {v: d["smd"]["('de novo', 'upgrade')"] for v, d in tab.attrs["bayescrt_table_one"]["variables"].items()}
    ref_smd = ref.smd_table["SMD (de novo,upgrade)"]
    for v in cols:
        assert smd[v] == pytest.approx(abs(float(ref_smd[v])), rel=1e-9), v  # absolute, as R's tableone reports


def test_three_groups_give_an_smd_per_pair_and_a_categorical_smd_is_yang_dalton(cohort):
    df = cohort.assign(group=np.where(cohort.index % 3 == 0, "c", cohort.group))
    tab = bc.baseline_table(df, by="group", columns=["nyha", "age"])
    assert [c for c in tab.columns if c.startswith("SMD")] == \
        ["SMD (c, de novo)", "SMD (c, upgrade)", "SMD (de novo, upgrade)"]
    # k = 2 levels: the multivariate form is the binary SMD |p1 - p2| / sqrt((p1 q1 + p2 q2) / 2)
    two = df.assign(nyha=np.where(df.nyha.isin(["I", "II"]), "mild", "severe"))
    info = bc.baseline_table(two, by="group", columns=["nyha"]).attrs["bayescrt_table_one"]["variables"]["nyha"]
    p = {g: info["proportions"][g][1] for g in ["de novo", "upgrade"]}
    expected = abs(p["de novo"] - p["upgrade"]) / np.sqrt((p["de novo"] * (1 - p["de novo"])
                                                           + p["upgrade"] * (1 - p["upgrade"])) / 2)
    assert info["smd"]["('de novo', 'upgrade')"] == pytest.approx(expected, rel=1e-12)


def test_without_by_the_table_is_overall_only(cohort):
    tab = bc.baseline_table(cohort.drop(columns="group"))
    assert list(tab.columns) == ["Overall", "Missing"]
    assert tab.loc[("n", ""), "Overall"] == "400"


@pytest.mark.parametrize("kw, error, message", [
    (dict(by="grp"), bc.SpecError, "by='grp' is not a column.*Did you mean 'group'"),
    (dict(by="group", columns=["agee"]), bc.SpecError, "columns: 'agee' is not a column.*Did you mean 'age'"),
    (dict(by="group", nonnormal=["group"]), bc.SpecError, "nonnormal: 'group' is the grouping column"),
    (dict(by="group", decimals=1.5), bc.SpecError, "decimals=1.5 must be an integer"),
    (dict(by="group", nonnormal=["nyha"]), bc.SpecError, "nonnormal: 'nyha' is categorical here.*drop it from nonnormal"),
    (dict(by="group", nonnormal=["age"], categorical=["age"]), bc.SpecError, "nonnormal: 'age' is categorical.*or from "
     "categorical"),
])
def test_bad_arguments_name_the_argument(cohort, kw, error, message):
    with pytest.raises(error, match=message):
        bc.baseline_table(cohort, **kw)


def test_missing_groups_and_unsummarisable_columns_are_data_errors(cohort):
    df = cohort.copy()
    df.loc[[3, 7], "group"] = None
    with pytest.raises(bc.DataError, match="by column 'group' has 2 missing values .*rows \\[3, 7\\]"):
        bc.baseline_table(df, by="group")
    with pytest.raises(bc.DataError, match="column 'when' has dtype datetime64"):
        bc.baseline_table(cohort.assign(when=pd.Timestamp("2020-01-01")), by="group")


def test_separated_groups_have_an_infinite_smd_and_undefined_ones_show_a_dash():
    df = pd.DataFrame({"g": list("aaabbb"), "x": [1, 1, 1, 0, 0, 0], "s": list("MMMFFF"), "z": [None] * 6})
    tab = bc.baseline_table(df, by="g")
    assert tab.loc[("x, n (%)", ""), "SMD (a, b)"] == "inf" and tab.loc[("s, n (%)", "F"), "SMD (a, b)"] == "inf"
    assert tab.loc[("z", ""), "Missing"] == "6" and tab.loc[("z", ""), "a"] == "-"  # an all-missing column stays
    one = bc.baseline_table(pd.DataFrame({"g": ["a", "b", "b"], "x": [1.0, 2.0, 3.0]}), by="g")
    assert one.loc[("x, mean (SD)", ""), "SMD (a, b)"] == "-"  # one row in a group: no SD, no SMD


def test_groups_that_print_alike_and_empty_categories_are_errors():
    with pytest.raises(bc.DataError, match="distinct values that print the same"):
        bc.baseline_table(pd.DataFrame({"g": [1, "1"] * 3, "x": range(6)}), by="g")
    g = pd.Categorical(["a", "a", "b"], categories=["a", "b", "c"])
    with pytest.raises(bc.DataError, match="categories with no rows \\['c'\\]"):
        bc.baseline_table(pd.DataFrame({"g": g, "x": [1.0, 2, 3]}), by="g")
    with pytest.raises(bc.SpecError, match="columns='x' must be a list"):
        bc.baseline_table(pd.DataFrame({"g": ["a", "b"], "x": [1.0, 2]}), by="g", columns="x")
