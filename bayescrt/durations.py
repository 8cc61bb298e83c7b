"""Dates to durations: a registry extract's implant, event and end-of-follow-up dates as time and event columns.

:func:`durations` follows one convention, stated here and in its docstring:

- time is measured from ``start`` (time zero, e.g. the implant date) in days, fractional where the dates
  carry a time of day, and converted with 7 days a week, 365.25 / 12 days a month and 365.25 days a year;
- follow-up ends at the *exit* date, the earliest of the event date, the row's own end of follow-up
  (a column: last seen, emigration, loss to follow-up) and the administrative censoring date (a date:
  the end of the study). An event after the administrative date is censored there; an event on that
  date counts. An event after the row's own end of follow-up contradicts the extract and is an error;
- ``entry_date`` gives delayed entry (a subject at risk from that date only), ``timescale="age"`` with
  ``birth_date`` measures entry and exit as ages instead (entry = age at start, or at ``entry_date``);
- a row whose exit falls on its start day has no follow-up time: an error unless ``same_day=`` says how
  many days to count (half a day, ``same_day=0.5``, is a common choice);
- competing events (``event_date`` a dict of cause -> column): the first event ends follow-up and names
  the cause, coded 1..K in the dict's order (0 censored); a later event of another cause is not an event
  of this analysis. Two causes at the same time (on the same day, for dates without a time of day; a date
  without one is read as its midnight) are an error listing the rows unless ``precedence=`` (the causes in
  the order in which they count) says which one it was; a tie after the administrative date is censored
  there and needs no order.

Every bad date is reported at once, as a :class:`~bayescrt.errors.DataError` naming the column, the rows
and the fix. The caller's DataFrame is never changed: a copy comes back, with what was done in
``out.attrs["bayescrt_durations"]``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re

import numpy as np
import pandas as pd

from . import validation
from .errors import DataError, SpecError, suggest

DAYS_PER = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12, "years": 365.25}
TIMESCALES = ("time", "age")
SHOWN = 3  # example rows per problem


def _examples(index, values) -> str:
    shown = ", ".join(f"row {i!r}: {v!r}" for i, v in list(zip(index, values))[:SHOWN])
    return shown + (f" (and {len(index) - SHOWN} more)" if len(index) > SHOWN else "")


def _show(v) -> str:
    return "missing" if pd.isna(v) else str(v.date()) if isinstance(v, pd.Timestamp) and v == v.normalize() else str(v)


class _Problems:
    def __init__(self, df: pd.DataFrame):
        self.index = df.index
        self.items: list[str] = []
        self.flagged = np.zeros(len(df), bool)  # rows with a problem so far
        self.skip = np.zeros(len(df), bool)  # rows left out of later checks (a date that could not be read)

    def flag(self, bad, values, what: str, fix: str) -> None:
        bad = np.asarray(bad, bool) & ~self.skip
        self.flagged |= bad
        if bad.any():
            idx = self.index[bad]
            vals = [values] * len(idx) if isinstance(values, str) else list(np.asarray(values, object)[bad])
            self.items.append(f"{what} in {int(bad.sum())} rows ({_examples(list(idx), vals)}); {fix}")


def _from(col) -> str:
    """`` (column)`` after an example date, naming which cause's column it came from (competing events)."""
    return f" ({col})" if col is not None else ""


def _days(delta: pd.Series) -> np.ndarray:
    """A difference of dates in days (fractional with a time of day; NaN where a date is missing)."""
    return delta.dt.total_seconds().to_numpy(float) / 86400.0


def _naive(s: pd.Series) -> pd.Series:
    return s.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s


def _parse_column(df: pd.DataFrame, col: str, arg: str, date_format: str | None, problems: _Problems) -> pd.Series:
    """The column as datetime64 (NaT where missing); unparseable values are recorded as problems."""
    s = df[col]
    if pd.api.types.is_datetime64_any_dtype(s):
        return _naive(s).astype("datetime64[ns]")
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        raise DataError(f"{arg}={col!r}: the column holds numbers ({s.dtype}), not dates; convert it first, e.g. "
                        f"pd.to_datetime(df[{col!r}], unit='D', origin='1899-12-30') for spreadsheet day numbers")
    fmt = date_format or "ISO8601"
    text = s.astype("string").str.strip()
    present = s.notna() & (text != "")
    parsed = pd.to_datetime(text.where(present), format=fmt, errors="coerce", utc=True).dt.tz_localize(None)
    parsed = parsed.astype("datetime64[ns]")
    if date_format is None:  # a year or year-month alone is a partial date: never filled in as the 1st
        parsed = parsed.where(text.str.match(r"^\d{4}-\d{2}-\d{2}").fillna(False).astype(bool))
    year = pd.to_numeric(text.str.extract(r"^(\d{4})-", expand=False), errors="coerce")
    outside = present & parsed.isna() & ((year < 1678) | (year > 2261)).fillna(False).astype(bool)
    problems.flag(outside, s.astype(object), f"{arg} column {col!r} has dates outside 1678-2261",
                  "pandas holds dates from 1677-09-21 to 2262-04-11; a sentinel such as 9999-12-31 ('no end') "
                  "should be a missing value instead")
    bad = present & parsed.isna() & ~outside
    hint = (f"dates must match date_format={date_format!r}" if date_format else
            "dates must be whole ISO 8601 dates (YYYY-MM-DD, a time of day allowed); for another layout pass date_format=, e.g. '%d/%m/%Y'")
    problems.flag(bad, s.astype(object), f"{arg} column {col!r} has unparseable dates", hint)
    return parsed


def _column(df, name, arg, required: bool):
    if name is None:
        if required:
            raise SpecError(f"{arg}= is required: the column of dates that {arg} names")
        return None
    if not isinstance(name, str):
        raise SpecError(f"{arg}={name!r} must be a column name (a string)" + (
            "; for competing events give a dict of cause -> column, e.g. event_date={'hf': 'hf_date', "
            "'death': 'death_date'}" if arg == "event_date" and isinstance(name, (list, tuple, pd.Series)) else ""))
    if name not in df.columns:
        raise SpecError(f"{arg}={name!r} is not a column of the DataFrame.{suggest(name, map(str, df.columns))}")
    return name


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"  # a time zone written into an ISO 8601 date: 'Z', '+01:00', '-0500'


def _zone(v) -> str | None:
    """The time zone of a datetime column or date, None when it has none. A column of text or objects has one when
    any of its values carries one (an offset such as '+01:00' or 'Z', a time-zone-aware Timestamp)."""
    if isinstance(v, pd.Series):
        if pd.api.types.is_datetime64_any_dtype(v):
            return str(v.dt.tz) if v.dt.tz is not None else None
        present = v.dropna()
        aware = [x for x in present if isinstance(x, (pd.Timestamp, _dt.datetime)) and x.tzinfo is not None]
        if aware:
            return str(aware[0].tzinfo)
        text = present[[isinstance(x, str) for x in present]].astype(str).str.strip()
        hit = text[text.str.contains(_OFFSET, regex=True)]
        return f"offset in {hit.iloc[0]!r}" if len(hit) else None
    return str(v.tzinfo) if isinstance(v, (pd.Timestamp, _dt.datetime)) and v.tzinfo is not None else None


def _same_zones(df, columns: dict, censor) -> None:
    """Refuse dates with a time zone beside dates without one: which zone the others are in is a guess."""
    given = [(arg, df[c]) for arg, c in columns.items() if c is not None and df[c].notna().any()]  # no dates: no zone
    given += [(f"censor={c!r}", c) for c in (censor if isinstance(censor, (list, tuple)) else [censor])
              if isinstance(c, (pd.Timestamp, _dt.datetime))]
    typed = [(arg, _zone(v)) for arg, v in given]
    aware = [f"{arg} ({z})" for arg, z in typed if z is not None]
    naive = [arg for arg, z in typed if z is None]
    if aware and naive:
        raise DataError(f"dates with a time zone ({', '.join(aware)}) beside dates without one ({', '.join(naive)}): "
                        "which zone the others are in would be a guess; make them alike, e.g. "
                        "df[col].dt.tz_localize('Europe/Copenhagen') on the naive ones, or .dt.tz_convert(None) "
                        "on the aware ones")


def _censor_parts(df, censor) -> tuple[list[str], list[pd.Timestamp]]:
    """The censoring given as columns (a row's own end of follow-up) and dates (administrative)."""
    items = censor if isinstance(censor, (list, tuple)) else [censor]
    if not items or any(c is None for c in items):
        raise SpecError("censor= is required: the administrative end of follow-up as a date "
                        "(censor='2018-08-31'), a column of each row's end of follow-up, or a list of both")
    cols, dates = [], []
    for c in items:
        if isinstance(c, str) and c in df.columns:
            cols.append(c)
        elif isinstance(c, (pd.Timestamp, _dt.date, np.datetime64)):
            if pd.isna(c):
                raise SpecError(f"censor={c!r} is a missing date; give the administrative end of follow-up, "
                                "e.g. censor='2018-08-31'")
            ts = pd.Timestamp(c)
            dates.append(ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts)
        elif isinstance(c, str):
            try:
                if not re.match(r"^\d{4}-\d{2}-\d{2}", c.strip()):
                    raise ValueError(c)
                dates.append(pd.to_datetime(c.strip(), format="ISO8601"))
            except (ValueError, TypeError):
                raise SpecError(f"censor={c!r} is neither a column of the DataFrame nor an ISO 8601 date "
                                f"(YYYY-MM-DD).{suggest(c, map(str, df.columns))}") from None
        else:
            raise SpecError(f"censor={c!r} must be a date (e.g. '2018-08-31'), a column name, or a list of them")
    if len(dates) > 1:
        dates = [min(dates)]
    return cols, dates


def _cause_columns(df, event_date: dict, precedence) -> tuple[list[str], list[str], list[str] | None]:
    """A competing-events ``event_date`` (cause -> column) as the causes' names and columns, in order, and
    ``precedence`` checked against the causes."""
    if len(event_date) < 2:
        raise SpecError(f"event_date={event_date!r}: competing events need at least two causes, each with its column "
                        "of dates, e.g. event_date={'hf_hospitalisation': 'hf_date', 'death': 'death_date'}; for one "
                        "event give the column itself")
    names, cols = [], []
    for name, col in event_date.items():
        if not isinstance(name, str) or not name.strip() or name.strip().lower() == "censored":
            raise SpecError(f"event_date: cause {name!r} must be a name (text) other than 'censored', e.g. 'death'")
        names.append(name)
        cols.append(_column(df, col, f"event_date[{name!r}]", True))
    twice = sorted({c for c in cols if cols.count(c) > 1})
    if twice:
        raise SpecError(f"event_date: column(s) {twice} given for more than one cause; each cause needs its own "
                        "column of dates")
    if precedence is None:
        return names, cols, None
    if not isinstance(precedence, (list, tuple)) or not all(isinstance(p, str) for p in precedence) \
            or sorted(precedence) != sorted(names) or len(set(precedence)) != len(precedence):
        raise SpecError(f"precedence={precedence!r} must list every cause of event_date once, {names}, the one that "
                        "counts when two fall on the same day first")
    return names, cols, list(precedence)


def _first_event(parsed: list[pd.Series], names: list[str], cols: list[str], precedence, problems: _Problems,
                 admin_end):
    """The first event date of each row, its cause code (1..K; 0 without one), and the rows where another
    cause's date came later. Ties matter only for an event that counts: on or before the administrative date."""
    stack = np.column_stack([p.to_numpy("datetime64[ns]") for p in parsed])  # rows x causes, NaT where none
    present = ~np.isnat(stack)
    big = np.where(present, stack.view(np.int64), np.iinfo(np.int64).max)
    first = big.min(axis=1)
    has = present.any(axis=1)
    at_first = present & (big == first[:, None])
    tied = at_first.sum(axis=1) > 1
    if admin_end is not None:
        tied &= first <= np.datetime64(admin_end, "ns").astype(np.int64)
    if precedence is None:
        pairs = [" and ".join(f"{n} ({c})" for n, c, hit in zip(names, cols, row) if hit) for row in at_first]
        problems.flag(tied, [f"{p} on {_show(pd.Timestamp(v))}" for p, v in zip(pairs, first)],
                      "two causes' event dates fall on the same day",
                      f"pass precedence= with the causes in the order in which they count (e.g. precedence="
                      f"{list(reversed(names))!r}), or correct the dates")
    rank = np.array([precedence.index(n) if precedence else k for k, n in enumerate(names)])
    score = np.where(at_first, rank[None, :], len(names))
    code = np.where(has, score.argmin(axis=1) + 1, 0)
    first_date = pd.Series(np.where(has, first, np.iinfo(np.int64).min).view("datetime64[ns]"), index=problems.index)
    first_date[~has] = pd.NaT
    later = (present.sum(axis=1) > at_first.sum(axis=1))
    return first_date.astype("datetime64[ns]"), code, tied, later


def durations(df: pd.DataFrame, *, start: str, event_date, censor, entry_date: str | None = None,
              birth_date: str | None = None, timescale: str = "time", unit: str = "years", time: str = "time",
              event: str = "event", entry: str = "entry", same_day: float | None = None,
              date_format: str | None = None, precedence: list | None = None) -> pd.DataFrame:
    """A copy of ``df`` with the follow-up time (``time``), event indicator (``event``) and, with delayed
    entry or the age time scale, the entry time (``entry``) computed from dates.

    ``start``: the column of time-zero dates (e.g. the implant). ``event_date``: the column of event dates
    (missing: no event), or None for none; for competing events a dict of cause -> column
    (``{"hf_hospitalisation": "hf_date", "death": "death_date"}``): ``event`` then codes the first event's cause
    1..K in the dict's order and 0 censored (as :class:`bayescrt.CompetingRisks` reads it), and
    ``precedence`` (every cause once, the one that counts first) settles two causes on the same day. ``censor``: the administrative end of follow-up as a date
    (``"2018-08-31"``, a ``datetime.date`` or ``pd.Timestamp``), a column of each row's own end of
    follow-up (last seen, emigration), or a list of both; the exit is the earliest of the event date and
    these (module docstring). ``entry_date``: the column of dates each row enters the risk set (delayed
    entry). ``timescale="age"`` with ``birth_date``: entry and exit as ages in ``unit``. ``unit``:
    ``"days"``, ``"weeks"``, ``"months"`` or ``"years"`` (365.25 days). ``same_day``: the days of
    follow-up to count for a row that exits on its start day (None: an error listing them). String dates
    are read as ISO 8601 unless ``date_format`` (a ``strftime`` pattern) says otherwise; datetime columns
    are used as they are (time-zone-aware ones in UTC).

    What was done is in ``out.attrs["bayescrt_durations"]``: the convention, the counts of events, of
    events after the administrative date (censored there) and of rows ended by each censoring source.
    """
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    twice = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if twice:
        raise SpecError(f"df has columns named more than once: {twice}; give each column its own name (which one a "
                        "date comes from would be a guess)")
    if unit not in DAYS_PER:
        raise SpecError(f"unit={unit!r}: choose one of {', '.join(map(repr, DAYS_PER))}.{suggest(str(unit), DAYS_PER)}")
    if timescale not in TIMESCALES:
        raise SpecError(f"timescale={timescale!r}: choose 'time' (since start) or 'age' (with birth_date=)")
    if date_format is not None and not isinstance(date_format, str):
        raise SpecError(f"date_format={date_format!r} must be a strftime pattern such as '%d/%m/%Y'")
    if same_day is not None:
        same_day = validation.real("same_day", same_day, low=0.0, low_open=True, high=1.0)
    _column(df, start, "start", True)
    competing = isinstance(event_date, dict)
    if competing:
        names, ev_cols, precedence = _cause_columns(df, event_date, precedence)
    else:
        if precedence is not None:
            raise SpecError(f"precedence={precedence!r} orders the causes of competing events; it needs event_date= as "
                            "a dict of cause -> column of dates")
        _column(df, event_date, "event_date", False)
        names, ev_cols = None, [event_date] if event_date is not None else []
    _column(df, entry_date, "entry_date", False)
    _column(df, birth_date, "birth_date", timescale == "age")
    if timescale == "time" and birth_date is not None:
        raise SpecError("birth_date= is used only with timescale='age'; drop it or pass timescale='age'")
    cols, admin = _censor_parts(df, censor)
    ev_args = {f"event_date[{n!r}]": c for n, c in zip(names, ev_cols)} if competing else {"event_date": event_date}
    roles: dict = {}
    for arg, col in [("start", start), *ev_args.items(), ("entry_date", entry_date), ("birth_date", birth_date),
                     *(("censor", c) for c in cols)]:
        if col is not None and col in roles:
            raise SpecError(f"column {col!r} is both {roles[col]} and {arg}; a column of dates has one role (a "
                            "row's own end of follow-up is not its event, nor its time zero)")
        if col is not None:
            roles[col] = arg
    _same_zones(df, {"start": start, **ev_args, "entry_date": entry_date,
                     "birth_date": birth_date, **{f"censor {c!r}": c for c in cols}}, censor)
    outputs = {"time": time, "event": event, **({"entry": entry} if entry_date is not None or timescale == "age"
                                                else {})}
    for arg, name in outputs.items():
        if not isinstance(name, str) or not name:
            raise SpecError(f"{arg}={name!r} must be a non-empty column name")
        if name in df.columns:
            raise SpecError(f"{arg}={name!r} is already a column of the DataFrame; choose another name "
                            f"(the original is never overwritten)")
    if len(set(outputs.values())) < len(outputs):
        raise SpecError(f"the output columns {outputs} must have different names")

    problems = _Problems(df)
    t0 = _parse_column(df, start, "start", date_format, problems)
    if competing:
        parsed = [_parse_column(df, c, f"event_date[{n!r}]", date_format, problems) for n, c in zip(names, ev_cols)]
        ev, code, tied, later_other = _first_event(parsed, names, ev_cols, precedence, problems,
                                                   admin[0] if admin else None)
        # the column of each row's first event, for the messages below
        ev_col = np.array(ev_cols, object)[np.maximum(code - 1, 0)]
        ev_what = f"the first event date (of {', '.join(map(repr, ev_cols))})"
    else:
        ev = (_parse_column(df, event_date, "event_date", date_format, problems) if event_date is not None
              else pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]"))
        code, ev_col, ev_what = None, np.full(len(df), None, object), f"event_date {event_date!r}"
    own = [_parse_column(df, c, "censor", date_format, problems) for c in cols]
    t_in = _parse_column(df, entry_date, "entry_date", date_format, problems) if entry_date is not None else None
    born = _parse_column(df, birth_date, "birth_date", date_format, problems) if birth_date is not None else None
    # a row with a date that could not be read is left out of the checks below (they would only repeat it, e.g. as a
    # missing start), so that every other row's problems are reported in the same error
    problems.skip = problems.flagged.copy()

    problems.flag(t0.isna(), "missing", f"start column {start!r} has missing dates",
                  "every row needs its time-zero date; drop those rows explicitly or fill them in")
    own_end = pd.concat(own, axis=1).min(axis=1, skipna=True) if own else pd.Series(pd.NaT, index=df.index)
    own_end = own_end.astype("datetime64[ns]")
    admin_end = admin[0] if admin else None
    has_ev = ev.notna().to_numpy()
    # the event against the row's own end of follow-up: an event after it contradicts the extract
    for c, s in zip(cols, own):
        problems.flag(has_ev & s.notna().to_numpy() & (ev > s).to_numpy(),
                      [f"event {_show(a)}{_from(k)} after {_show(b)}" for a, b, k in zip(ev, s, ev_col)],
                      f"{ev_what} is after the end of follow-up in censor column {c!r}",
                      f"correct the dates, or leave {c!r} out of censor= for rows whose events come from a "
                      "linked registry beyond that date")
    late = has_ev & (ev > admin_end).to_numpy() if admin_end is not None else np.zeros(len(df), bool)
    is_event = has_ev & ~late
    ends = [own_end] + ([pd.Series(admin_end, index=df.index)] if admin_end is not None else [])
    cens_end = pd.concat(ends, axis=1).min(axis=1, skipna=True).astype("datetime64[ns]")
    exit_ = ev.where(is_event, cens_end)
    problems.flag(~is_event & exit_.isna().to_numpy() & t0.notna().to_numpy(), "no event, no end date",
                  "rows without an event have no end of follow-up",
                  "give each an end date in the censor column(s), or add the administrative date to censor=")
    both = t0.notna() & exit_.notna()
    before = (both & (exit_ < t0)).to_numpy()
    pair = [f"start {_show(a)}, exit {_show(b)}" for a, b in zip(t0, exit_)]
    problems.flag(before & is_event, [p + _from(k) for p, k in zip(pair, ev_col)], f"{ev_what} is before start {start!r}",
                  "correct the dates: an event cannot come before time zero")
    # which end came first says whose date is wrong: the row's own censoring date, or the study's end
    at_admin = (np.zeros(len(df), bool) if admin_end is None
                else (own_end.isna() | (own_end > admin_end)).to_numpy())
    problems.flag(before & ~is_event & ~at_admin, pair,
                  "the end of follow-up in the censor column" + ("s" if len(cols) > 1 else "")
                  + f" {', '.join(map(repr, cols))} is before start {start!r}",
                  "correct the dates: a row's own end of follow-up cannot come before its time zero")
    problems.flag(before & ~is_event & at_admin, pair,
                  f"the administrative date {_show(admin_end)} comes before the start (rows that start after "
                  "the study ends)", "correct the dates, or drop rows that start after the end of follow-up explicitly")
    same = (both & (exit_ == t0)).to_numpy()
    if same_day is None:
        problems.flag(same, [f"start and exit {_show(a)}" for a in t0], "follow-up ends on its start day",
                      "these rows have no time at risk; pass same_day=0.5 to count half a day (or another "
                      "fraction of a day), or drop them explicitly")
    days = _days(exit_ - t0)
    if same_day is not None:
        days = np.where(same, same_day, days)
    entry_days = None
    if t_in is not None:
        problems.flag(t_in.isna(), "missing", f"entry_date column {entry_date!r} has missing dates",
                      f"give every row its entry date (its start date {start!r} where it enters at time zero)")
        ok = (t_in.notna() & t0.notna()).to_numpy()
        problems.flag(ok & (t_in < t0).to_numpy(), [f"start {_show(a)}, entry {_show(b)}" for a, b in zip(t0, t_in)],
                      f"entry_date {entry_date!r} is before start {start!r}",
                      "entry is the date a row joins the risk set, on or after its time zero")
        ok2 = ok & exit_.notna().to_numpy()
        problems.flag(ok2 & (t_in >= exit_).to_numpy() & ~before,
                      [f"entry {_show(a)}, exit {_show(b)}" for a, b in zip(t_in, exit_)],
                      f"entry_date {entry_date!r} is on or after the exit",
                      "these rows are never at risk (they left before entering); drop them explicitly")
        entry_days = _days(t_in - t0)
    age_days = None
    if born is not None:
        problems.flag(born.isna(), "missing", f"birth_date column {birth_date!r} has missing dates",
                      "the age time scale needs every row's date of birth")
        problems.flag((born.notna() & t0.notna() & (born > t0)).to_numpy(),
                      [f"birth {_show(a)}, start {_show(b)}" for a, b in zip(born, t0)],
                      f"birth_date {birth_date!r} is after start {start!r}", "correct the dates")
        age_days = _days(t0 - born)
    if problems.items:
        raise DataError(problems.items)

    per = DAYS_PER[unit]
    out = df.copy()
    if timescale == "age":
        at_entry = age_days + (entry_days if entry_days is not None else 0.0)
        out[entry] = at_entry / per
        out[time] = (age_days + days) / per
    else:
        if entry_days is not None:
            out[entry] = entry_days / per
        out[time] = days / per
    out[event] = np.where(is_event, code, 0) if competing else is_event.astype(int)
    by_own = own_end.notna().to_numpy() & (True if admin_end is None else (own_end <= admin_end).to_numpy())
    n_own = int((~is_event & by_own).sum())
    out.attrs = copy.deepcopy(df.attrs)
    out.attrs["bayescrt_durations"] = {
        "convention": f"exit = earliest of event, own end of follow-up and administrative date; "
                      f"{unit} = days / {per:g}" + (f"; same-day exits count {same_day:g} days" if same_day else ""),
        "timescale": timescale, "unit": unit, "rows": int(len(df)), "events": int(is_event.sum()),
        "events_after_administrative_date": int(late.sum()),
        "administrative_date": None if admin_end is None else str(admin_end.date()),
        "censored_by_own_end_date": n_own, "censored_at_administrative_date": int((~is_event).sum()) - n_own,
        "same_day_exits": int(same.sum()),
    }
    if competing:
        out.attrs["bayescrt_durations"].update(
            causes=list(names), events_by_cause={n: int((is_event & (code == k)).sum()) for k, n in enumerate(names, 1)},
            same_day_causes_by_precedence=int((tied & is_event).sum()) if precedence else 0,
            later_events_of_another_cause=int((later_other & is_event).sum()))
    return out
