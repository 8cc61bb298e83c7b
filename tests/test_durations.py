"""bc.durations: dates to follow-up times against hand-computed days, lifelines' datetimes_to_durations, and
every kind of bad date with its message."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from seeds import seed

ADMIN = "2018-08-31"

# name, start, event date, own end of follow-up, expected days, expected event
#   (days counted by hand; 2016 and 2000 are leap years, 1900 is not)
CASES = [
    ("leap-year-february", "2016-02-28", "2016-03-01", None, 2, 1),
    ("leap-day-start-to-a-year-later", "2016-02-29", None, "2017-02-28", 365, 0),
    ("century-leap-year", "2000-02-28", "2000-03-01", None, 2, 1),
    ("century-not-leap", "1900-02-28", "1900-03-01", None, 1, 1),
    ("event-after-administrative-date", "2018-01-01", "2019-01-01", None, 242, 0),
    ("event-on-administrative-date", "2018-01-01", ADMIN, None, 242, 1),
    ("own-end-before-administrative", "2010-01-01", None, "2015-01-01", 1826, 0),
    ("own-end-after-administrative", "2018-01-01", None, "2020-01-01", 242, 0),
    ("no-own-end-no-event", "2017-08-31", None, None, 365, 0),
    ("event-before-own-end", "2014-03-01", "2014-03-31", "2015-01-01", 30, 1),
    ("event-on-own-end", "2014-03-01", "2014-03-31", "2014-03-31", 30, 1),
    ("time-of-day", "2018-01-01T06:00", "2018-01-02T18:00", None, 1.5, 1),
    ("next-day", "2011-05-05", "2011-05-06", None, 1, 1),
    ("same-day-with-half-a-day", "2012-07-01", "2012-07-01", None, 0.5, 1),
]


def _frame(cases):
    return pd.DataFrame({"implant": [c[1] for c in cases], "death": [c[2] for c in cases],
                         "seen": [c[3] for c in cases]}, index=[c[0] for c in cases])


def test_durations_equal_hand_computed_days_on_the_edge_cases():
    df = _frame(CASES)
    before = df.copy()
    out = bc.durations(df, start="implant", event_date="death", censor=["seen", ADMIN], unit="days",
                       time="days", event="died", same_day=0.5)
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not changed
    assert list(out.columns) == ["implant", "death", "seen", "days", "died"]
    for name, *_, days, died in CASES:
        assert out.loc[name, "days"] == pytest.approx(days, abs=1e-9), name
        assert out.loc[name, "died"] == died, name
    info = out.attrs["bayescrt_durations"]
    assert info["events_after_administrative_date"] == 1 and info["same_day_exits"] == 1
    assert info["events"] == sum(c[5] for c in CASES)
    assert info["censored_by_own_end_date"] == 2 and info["censored_at_administrative_date"] == 3


@pytest.mark.parametrize("unit, per", [("days", 1.0), ("weeks", 7.0), ("months", 365.25 / 12), ("years", 365.25)])
def test_units_divide_days_by_their_stated_length(unit, per):
    df = _frame(CASES)
    days = bc.durations(df, start="implant", event_date="death", censor=["seen", ADMIN], unit="days",
                        same_day=0.5)["time"]
    out = bc.durations(df, start="implant", event_date="death", censor=["seen", ADMIN], unit=unit, same_day=0.5)
    np.testing.assert_allclose(out["time"], days / per, rtol=1e-12)


def test_days_agree_with_lifelines_on_random_dates():
    """lifelines' datetimes_to_durations (administrative censoring only) on 500 random registry rows."""
    from lifelines.utils import datetimes_to_durations

    rng = np.random.default_rng(seed(5))
    start = pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 6000, 500), unit="D")
    death = start + pd.to_timedelta(rng.integers(1, 5000, 500), unit="D")
    death = pd.Series(death).where(rng.random(500) < 0.6)
    df = pd.DataFrame({"implant": start, "death": death})
    df = df[df.implant < pd.Timestamp(ADMIN)]
    out = bc.durations(df, start="implant", event_date="death", censor=ADMIN, unit="days")
    T, E = datetimes_to_durations(df.implant, df.death, fill_date=ADMIN, freq="D")
    np.testing.assert_array_equal(out["time"].to_numpy(), T)
    np.testing.assert_array_equal(out["event"].to_numpy(), E.astype(int))


def test_delayed_entry_and_the_age_time_scale():
    df = pd.DataFrame({"implant": ["2010-01-01", "2012-06-15"], "enrolled": ["2011-01-01", "2012-06-15"],
                       "born": ["1950-01-01", "1940-06-15"], "death": ["2014-01-01", None]})
    out = bc.durations(df, start="implant", event_date="death", censor=ADMIN, entry_date="enrolled", unit="days")
    assert out["entry"].tolist() == [365, 0] and out["time"].tolist() == [1461, 2268]
    age = bc.durations(df, start="implant", event_date="death", censor=ADMIN, timescale="age", birth_date="born")
    # 60 years of 365 days plus 15 leap days is 21,915 days = 60 * 365.25 exactly
    assert age.loc[0, "entry"] == pytest.approx(60.0, abs=1e-12)
    assert age.loc[0, "time"] == pytest.approx((21915 + 1461) / 365.25, abs=1e-12)
    both = bc.durations(df, start="implant", event_date="death", censor=ADMIN, timescale="age", birth_date="born",
                        entry_date="enrolled", unit="days")
    assert both.loc[0, "entry"] == 21915 + 365 and both.loc[0, "time"] == 21915 + 1461


def test_datetime_columns_date_objects_time_zones_and_date_format():
    naive = pd.DataFrame({"s": pd.to_datetime(["2018-01-01"]), "e": [dt.date(2018, 1, 11)]})
    assert bc.durations(naive, start="s", event_date="e", censor=ADMIN, unit="days")["time"].tolist() == [10]
    aware = pd.DataFrame({"s": pd.to_datetime(["2018-01-01 00:00"]).tz_localize("Europe/Copenhagen"),
                          "e": ["2018-01-11T00:00+00:00"]})  # midnight in Copenhagen is 23:00 UTC the day before
    assert bc.durations(aware, start="s", event_date="e", censor=ADMIN, unit="days")["time"].iloc[0] == \
        pytest.approx(10 + 1 / 24)
    # a date without a zone beside one with a zone is a guess, whether it is text, a datetime or an object
    for naive_e in (["2018-01-11"], [dt.date(2018, 1, 11)]):
        with pytest.raises(bc.DataError, match=r"time zone \(start \(Europe/Copenhagen\)\) beside dates without one"):
            bc.durations(aware.assign(e=naive_e), start="s", event_date="e", censor=ADMIN)
    offset = pd.DataFrame({"s": ["2018-01-01"], "e": ["2018-01-11T00:00+01:00"]})  # a written offset is a zone too
    with pytest.raises(bc.DataError, match=r"event_date \(offset in '2018-01-11T00:00\+01:00'\)\) beside dates without "
                                           r"one \(start\)"):
        bc.durations(offset, start="s", event_date="e", censor=ADMIN)
    mixed = aware.assign(e=pd.to_datetime(["2018-01-11"]))  # which zone is the naive column in? a guess: refused
    with pytest.raises(bc.DataError, match=r"time zone \(start \(Europe/Copenhagen\)\) beside dates without one "
                                           r"\(event_date\).*tz_localize"):
        bc.durations(mixed, start="s", event_date="e", censor=ADMIN)
    with pytest.raises(bc.DataError, match=r"beside dates without one \(.*censor=Timestamp"):
        bc.durations(aware.assign(e=None), start="s", event_date="e", censor=pd.Timestamp(ADMIN))
    assert bc.durations(naive, start="s", event_date=None, censor=np.datetime64("2018-01-21"),
                        unit="days")["time"].tolist() == [20]
    with pytest.raises(bc.SpecError, match="censor=.* is a missing date"):
        bc.durations(naive, start="s", event_date="e", censor=np.datetime64("NaT", "D"))
    dmy = pd.DataFrame({"s": ["01/02/2018"], "e": ["11/02/2018"]})
    assert bc.durations(dmy, start="s", event_date="e", censor=ADMIN, unit="days",
                        date_format="%d/%m/%Y")["time"].tolist() == [10]


BAD = [
    ("unparseable", dict(implant="2010-13-01"), "start column 'implant' has unparseable dates .*row 'r0': '2010-13-01'"),
    ("partial-date", dict(implant="2010-05"), "unparseable dates .*'2010-05'.*whole ISO 8601"),
    ("day-first-without-format", dict(implant="31/01/2010"), "unparseable .*date_format="),
    ("missing-start", dict(implant=None), "start column 'implant' has missing dates"),
    ("event-before-start", dict(death="2009-12-31"), "event_date 'death' is before start 'implant'.*row 'r0'"),
    ("own-end-before-start", dict(seen="2009-01-01"),
     "end of follow-up in the censor column 'seen' is before start 'implant'.*start 2010-01-01, exit 2009-01-01"),
    ("event-after-own-end", dict(death="2016-01-01", seen="2015-01-01"),
     "event_date 'death' is after the end of follow-up in censor column 'seen'.*event 2016-01-01 after 2015-01-01"),
    ("same-day", dict(death="2010-01-01"), "follow-up ends on its start day .*same_day=0.5"),
    ("start-after-the-study", dict(implant="2019-01-01", seen=None), "administrative date 2018-08-31 comes before"),
    ("entry-after-exit", dict(enrolled="2016-01-01", seen="2015-01-01"), "entry_date 'enrolled' is on or after the exit"),
    ("entry-before-start", dict(enrolled="2009-01-01"), "entry_date 'enrolled' is before start"),
    ("missing-entry", dict(enrolled=None), "entry_date column 'enrolled' has missing dates"),
]


@pytest.mark.parametrize("what, row, message", BAD, ids=[b[0] for b in BAD])
def test_each_bad_date_is_a_data_error_naming_column_row_and_fix(what, row, message):
    good = {"implant": "2010-01-01", "death": None, "seen": "2015-06-01", "enrolled": "2010-01-01"}
    df = pd.DataFrame([{**good, **row}, good], index=["r0", "r1"])
    with pytest.raises(bc.DataError, match=message):
        bc.durations(df, start="implant", event_date="death", censor=["seen", ADMIN], entry_date="enrolled")
    if what == "own-end-before-start":  # the row's own date is wrong, not the study's end
        with pytest.raises(bc.DataError) as info:
            bc.durations(df, start="implant", event_date="death", censor=["seen", ADMIN], entry_date="enrolled")
        assert "administrative" not in str(info.value)


def test_every_bad_row_is_reported_at_once():
    df = pd.DataFrame({"implant": ["2010-01-01", None, "2012-01-01"], "death": ["2009-01-01", None, "2012-01-01"]})
    with pytest.raises(bc.DataError) as info:
        bc.durations(df, start="implant", event_date="death", censor=ADMIN)
    assert len(info.value.problems) == 3


def test_no_end_of_follow_up_and_birth_after_start_are_errors():
    df = pd.DataFrame({"implant": ["2010-01-01"], "death": [None], "seen": [None], "born": ["2011-01-01"]})
    with pytest.raises(bc.DataError, match="rows without an event have no end of follow-up"):
        bc.durations(df, start="implant", event_date="death", censor="seen")
    with pytest.raises(bc.DataError, match="birth_date 'born' is after start 'implant'"):
        bc.durations(df, start="implant", event_date="death", censor=ADMIN, timescale="age", birth_date="born")


@pytest.mark.parametrize("kw, message", [
    (dict(start="implnt"), "start='implnt' is not a column.*Did you mean 'implant'"),
    (dict(censor="2018"), "censor='2018' is neither a column of the DataFrame nor an ISO 8601 date"),
    (dict(censor=None), "censor= is required"),
    (dict(unit="year"), "unit='year': choose one of .*Did you mean 'years'"),
    (dict(timescale="calendar"), "timescale='calendar'"),
    (dict(timescale="age"), "birth_date= is required"),
    (dict(time="implant"), "time='implant' is already a column"),
    (dict(same_day=0), "same_day=0 is out of range"),
    (dict(birth_date="implant"), "birth_date= is used only with timescale='age'"),
])
def test_bad_arguments_are_spec_errors(kw, message):
    df = pd.DataFrame({"implant": ["2010-01-01"], "death": [None]})
    args = {**dict(start="implant", event_date="death", censor=ADMIN), **kw}
    with pytest.raises(bc.SpecError, match=message):
        bc.durations(df, **args)


def test_a_numeric_date_column_is_refused_with_the_conversion_to_use():
    df = pd.DataFrame({"implant": [40179.0], "death": [None]})
    with pytest.raises(bc.DataError, match="holds numbers .*origin='1899-12-30'"):
        bc.durations(df, start="implant", event_date="death", censor=ADMIN)


def test_dates_beyond_pandas_range_are_named_and_attrs_are_copied_deeply():
    df = pd.DataFrame({"s": ["2010-01-01"], "e": ["9999-12-31"]})
    with pytest.raises(bc.DataError, match="dates outside 1678-2261 .*9999-12-31.*should be a missing value"):
        bc.durations(df, start="s", event_date="e", censor=ADMIN)
    df = pd.DataFrame({"s": ["2010-01-01"], "e": [None]})
    df.attrs["meta"] = {"k": 1}
    out = bc.durations(df, start="s", event_date="e", censor=ADMIN)
    out.attrs["meta"]["k"] = 99
    assert df.attrs == {"meta": {"k": 1}}


def test_every_kind_of_bad_date_is_reported_in_one_error():
    """An unreadable date leaves its row out of the later checks, so the other rows' problems come with it."""
    raw = bc.datasets.registry_extract(bad_rows=True)
    with pytest.raises(bc.DataError) as err:
        bc.durations(raw, start="implant_date", event_date="death_date", censor=["last_seen", "2018-08-31"],
                     time="years", event="died")
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert "unparseable dates in 1 rows (row 17: '2012-02-30')" in problems[0]
    assert "missing dates in 1 rows (row 42" in problems[1]
    assert "before start 'implant_date' in 1 rows (row 5:" in problems[2]


# ------------------------------------------------------------------ competing events: a date column per cause
# name, start, HF hospitalisation, death, own end of follow-up, expected days, expected cause code (1 hf, 2 death)
COMPETING = [
    ("hf-first", "2015-01-01", "2016-01-01", "2017-01-01", None, 365, 1),
    ("death-only", "2015-01-01", None, "2016-02-01", None, 396, 2),
    ("death-the-day-before-hf", "2015-01-01", "2017-01-01", "2016-12-31", None, 730, 2),
    ("hf-after-administrative-date", "2015-01-01", "2019-01-01", "2019-02-01", None, 1338, 0),
    ("hf-on-administrative-date", "2015-01-01", ADMIN, "2019-02-01", None, 1338, 1),
    ("death-after-hf-and-last-seen", "2015-01-01", "2016-03-01", "2018-06-01", "2017-01-01", 425, 1),
    ("neither", "2015-01-01", None, None, "2017-05-05", 855, 0),
    ("leap-day-death", "2016-02-28", None, "2016-02-29", None, 1, 2),
]


def test_competing_event_dates_give_the_first_cause_and_its_time():
    """The first event ends follow-up and names the cause (codes in the dict's order); a later event of the other
    cause, even after the row's own end of follow-up, is no event of this analysis; days counted by hand."""
    df = pd.DataFrame({"implant": [c[1] for c in COMPETING], "hf_date": [c[2] for c in COMPETING],
                       "death_date": [c[3] for c in COMPETING], "seen": [c[4] for c in COMPETING]},
                      index=[c[0] for c in COMPETING])
    before = df.copy()
    out = bc.durations(df, start="implant", event_date={"hf_hospitalisation": "hf_date", "death": "death_date"},
                       censor=["seen", ADMIN], unit="days", time="days", event="status")
    pd.testing.assert_frame_equal(df, before)
    for name, *_, days, code in COMPETING:
        assert out.loc[name, "days"] == pytest.approx(days, abs=1e-9), name
        assert out.loc[name, "status"] == code, name
    info = out.attrs["bayescrt_durations"]
    assert info["causes"] == ["hf_hospitalisation", "death"]
    assert info["events_by_cause"] == {"hf_hospitalisation": 3, "death": 3}
    assert info["later_events_of_another_cause"] == 4 and info["events_after_administrative_date"] == 1
    from bayescrt.causes import event_causes

    codes, names = event_causes(out, "status", info["causes"])  # what CompetingRisks reads
    assert names == info["causes"] and list(codes) == [c[6] for c in COMPETING]


def test_two_causes_on_one_day_are_an_error_unless_precedence_says_which_counts():
    df = pd.DataFrame({"implant": ["2015-01-01", "2015-01-01"], "hf": ["2016-06-01", "2016-01-01"],
                       "death": ["2016-06-01", None]}, index=["tied", "fine"])
    dates = {"hf": "hf", "death": "death"}
    with pytest.raises(bc.DataError, match=r"two causes' event dates fall on the same day in 1 rows \(row 'tied': "
                                           r"'hf \(hf\) and death \(death\) on 2016-06-01'\); pass precedence="):
        bc.durations(df, start="implant", event_date=dates, censor=ADMIN)
    out = bc.durations(df, start="implant", event_date=dates, censor=ADMIN, precedence=["death", "hf"])
    assert list(out["event"]) == [2, 1] and out.attrs["bayescrt_durations"]["same_day_causes_by_precedence"] == 1
    assert list(bc.durations(df, start="implant", event_date=dates, censor=ADMIN,
                             precedence=["hf", "death"])["event"]) == [1, 1]


@pytest.mark.parametrize("kw, error, message", [
    (dict(event_date={"death": "death"}), bc.SpecError, r"competing events need at least two causes"),
    (dict(event_date={"hf": "hf", "death": "hf"}), bc.SpecError, r"column\(s\) \['hf'\] given for more than one cause"),
    (dict(event_date={"hf": "hf", "death": "deaht"}), bc.SpecError,
     r"event_date\['death'\]='deaht' is not a column.*Did you mean 'death'"),
    (dict(event_date={"hf": "hf", "censored": "death"}), bc.SpecError, r"cause 'censored' must be a name.*other than"),
    (dict(event_date={"hf": "hf", "death": "death"}, precedence=["hf"]), bc.SpecError,
     r"precedence=\['hf'\] must list every cause of event_date once, \['hf', 'death'\]"),
    (dict(event_date="death", precedence=["hf", "death"]), bc.SpecError, r"precedence=.*needs event_date= as a dict"),
    (dict(event_date={"hf": "hf", "death": "death"}, rows={"hf": "2014-01-01"}), bc.DataError,
     r"the first event date \(of 'hf', 'death'\) is before start 'implant' in 1 rows \(row 0: 'start 2015-01-01, exit "
     r"2014-01-01 \(hf\)'\)"),
    (dict(event_date={"hf": "hf", "death": "death"}, rows={"death": "2016-13-01"}), bc.DataError,
     r"event_date\['death'\] column 'death' has unparseable dates"),
], ids=["one cause", "shared column", "misspelt column", "censored as a cause", "precedence incomplete",
        "precedence without causes", "event before start", "unparseable cause date"])
def test_bad_competing_event_dates_name_the_cause_column_and_fix(kw, error, message):
    rows = kw.pop("rows", {})
    df = pd.DataFrame({"implant": ["2015-01-01"], "hf": [rows.get("hf")], "death": [rows.get("death", "2016-01-01")]})
    with pytest.raises(error, match=message):
        bc.durations(df, start="implant", censor=ADMIN, **kw)


@pytest.mark.parametrize("kw, message", [
    (dict(event_date={"hf": "hf", "death": "seen"}, censor=["seen", ADMIN]),
     r"column 'seen' is both event_date\['death'\] and censor"),
    (dict(event_date={"hf": "implant", "death": "death"}), r"column 'implant' is both start and event_date\['hf'\]"),
    (dict(event_date="implant"), r"column 'implant' is both start and event_date"),
    (dict(event_date=["hf", "death"]), r"event_date=\['hf', 'death'\] must be a column name.*a dict of cause -> column"),
    (dict(event_date={"1": "hf", "2": "death"}, precedence=[2, 1]), r"precedence=\[2, 1\] must list every cause"),
], ids=["censor column as a cause", "start as a cause", "start as the event", "a list of columns", "precedence not text"])
def test_a_column_in_two_roles_and_odd_arguments_are_refused_naming_them(kw, message):
    df = pd.DataFrame({"implant": ["2015-01-01"], "hf": [None], "death": ["2016-01-01"], "seen": [None]})
    with pytest.raises(bc.SpecError, match=message):
        bc.durations(df, start="implant", **{"censor": ADMIN, **kw})


def test_duplicated_column_names_are_refused_and_a_tie_after_the_study_needs_no_order():
    df = pd.DataFrame([["2015-01-01", "2016-01-01", "2016-02-01"]], columns=["implant", "hf", "hf"])
    with pytest.raises(bc.SpecError, match=r"df has columns named more than once: \['hf'\]"):
        bc.durations(df, start="implant", event_date="hf", censor=ADMIN)
    late = pd.DataFrame({"implant": ["2015-01-01"], "hf": ["2019-05-01"], "death": ["2019-05-01"]})
    out = bc.durations(late, start="implant", event_date={"hf": "hf", "death": "death"}, censor=ADMIN)
    assert out["event"].tolist() == [0]  # both after the administrative date: censored there, no tie to settle
