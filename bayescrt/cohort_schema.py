"""The shape of a simulated cohort's description: the checks shared by the simulator and the spec layer.

Data checks only (no simulation): :func:`bayescrt.simulate.simulate` checks its
arguments with them, and :mod:`bayescrt.spec` checks a spec's ``[cohort]``
section with the same functions, so the two can never disagree on what a valid
cohort is, and the spec layer needs no simulation code to say so.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .errors import SpecError, suggest

# The keys each argument takes; anything else is refused with the nearest valid key.
COVARIATE_KEYS = {"binary": ("kind", "prevalence"), "continuous": ("kind", "median", "spread", "center")}
BASELINE_KEYS = {"weibull": ("kind", "shape", "scale_years"), "piecewise": ("kind", "cuts_years", "rates_per_year")}
ACCRUAL_KEYS = ("start", "end", "close", "trend")
IMPLANT_DATE = "implant_date"  # the column of implant dates, written beside the exposure, time and event columns


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def number(value, label: str, *, low: float | None = None, high: float | None = None, hint: str = "") -> float:
    """``value`` as a float if it is a finite real number with ``low < value < high``; else a SpecError."""
    rng = ("a finite number" if low is None and high is None else f"> {low:g} and finite" if high is None
           else f"< {high:g} and finite" if low is None else f"in ({low:g}, {high:g}) and finite")
    ok = is_number(value) and math.isfinite(float(value))
    if ok:
        x = float(value)
        ok = (low is None or x > low) and (high is None or x < high)
    if not ok:
        got = "" if is_number(value) else f" (got {type(value).__name__})"
        raise SpecError(f"{label}={value!r} must be {rng}{got}{hint}")
    return float(value)


def pair(value, label: str, what: str) -> list:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise SpecError(f"{label}={value!r} must be [exposed, unexposed]: two {what}")
    return list(value)


def unknown_keys(d: Mapping, valid, where: str) -> None:
    for key in d:
        if key not in valid:
            raise SpecError(f"{where}: unknown key {key!r}.{suggest(str(key), valid)} Valid keys: {sorted(valid)}")


def mapping(value, where: str, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be a dict ({what}), got {type(value).__name__} {value!r}")
    return value


def read_date(value, label: str) -> pd.Timestamp:
    """A date from a string ('2000-01-01'), a date/datetime or a numpy datetime64; else a SpecError."""
    fix = "write it as YYYY-MM-DD, e.g. '2000-01-01'"
    if not isinstance(value, (str, _dt.date, np.datetime64)):
        raise SpecError(f"{label}={value!r} is not a date ({type(value).__name__}); {fix}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpecError(f"{label}={value!r} is not a date that can be read ({exc}); {fix}") from None
    if ts is pd.NaT or pd.isna(ts):
        raise SpecError(f"{label}={value!r} is not a date (it reads as NaT, not a time); {fix}")
    if ts.tzinfo is not None:
        raise SpecError(f"{label}={value!r} has a time zone; give a calendar date without one, e.g. '2000-01-01'")
    return ts


def check_sizes(n, n_exposed, where: str = "") -> None:
    pre = f"{where}: " if where else ""
    if not (is_integer(n) and n > 0 and is_integer(n_exposed) and 0 < n_exposed < n):
        raise SpecError(f"{pre}need integers 0 < n_exposed < n, got n={n!r}, n_exposed={n_exposed!r}; give the "
                        "cohort size n and the number exposed, e.g. n=8880, n_exposed=2195")


def check_covariate(name, spec, where: str, extra=()) -> str:
    """One covariate's spec; returns its kind. ``extra``: further keys allowed (a spec file's documentation)."""
    mapping(spec, where, "kind and its parameters")
    if "kind" not in spec:
        raise SpecError(f"{where}: missing key 'kind'; set kind to 'binary' or 'continuous'")
    kind = spec["kind"]
    if kind not in COVARIATE_KEYS:
        raise SpecError(f"{where}: kind={kind!r} must be 'binary' or 'continuous'.{suggest(str(kind), COVARIATE_KEYS)}")
    unknown_keys(spec, (*COVARIATE_KEYS[kind], *extra), f"{where} ({kind})")
    if kind == "binary":
        if "prevalence" not in spec:
            raise SpecError(f"{where}: missing key 'prevalence' = [exposed, unexposed], each in (0, 1)")
        p = spec["prevalence"]
        if isinstance(p, np.ndarray):
            p = p.tolist()
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(is_number(q) and 0 < q < 1 for q in p)):
            raise SpecError(f"{where}: prevalence must be [exposed, unexposed] in (0, 1), got {spec['prevalence']!r}")
    else:
        for key in ("median", "spread"):
            if key not in spec:
                raise SpecError(f"{where}: missing key {key!r}; a continuous covariate needs median "
                                "[exposed, unexposed] and spread > 0 (its SD)")
        for j, m in enumerate(pair(spec["median"], f"{where} median", "finite numbers")):
            number(m, f"{where} median[{j}]")
        number(spec["spread"], f"{where} spread", low=0, hint=" (the SD within each group)")
        if "center" in spec:
            number(spec["center"], f"{where} center", hint=" (the value at which its log-HR is zero)")
    return kind


def check_columns(covariates: Mapping, exposure, time, event, where: str = "covariates", top: str = "") -> None:
    """Column names: strings, distinct, and no covariate named like the exposure, time, event or implant date.

    ``where`` prefixes problems with a covariate's name, ``top`` those with the exposure, time and event names.
    """
    pre = f"{top}: " if top else ""
    roles = {"exposure": exposure, "time": time, "event": event}
    for role, col in roles.items():
        if not (isinstance(col, str) and col):
            raise SpecError(f"{pre}{role}={col!r} must be a non-empty column name (a string)")
    written = {exposure: f"the exposure column (exposure={exposure!r})", time: f"the time column (time={time!r})",
               event: f"the event column (event={event!r})", IMPLANT_DATE: f"the column of implant dates the "
               f"simulation writes ({IMPLANT_DATE!r})"}
    if len(written) < 4:
        raise SpecError(f"{pre}exposure={exposure!r}, time={time!r}, event={event!r} and {IMPLANT_DATE!r} must be "
                        "four different column names")
    for name in covariates:
        if not (isinstance(name, str) and name):
            raise SpecError(f"{where}: covariate name {name!r} must be a non-empty string")
        if name in written:
            raise SpecError(f"{where}: a covariate named {name!r} collides with {written[name]}: the cohort would "
                            f"hold one column for both and the covariate would replace it. Rename the covariate")


def check_correlation(correlation, k: int, label: str = "correlation") -> None:
    number(correlation, label)
    low = -1.0 / (k - 1) if k > 1 else -1.0
    if not low < correlation < 1:
        # an exchangeable correlation matrix of size k is positive definite only above -1/(k-1)
        raise SpecError(
            f"{label}={correlation!r} must be in ({low:.4g}, 1) for {k} binary covariates "
            "(a common correlation below -1/(k-1) is not a valid correlation matrix)"
        )


def check_baseline(baseline, where: str = "baseline", extra=(), optional=()) -> None:
    """``optional``: keys that may be absent here (a spec's calibrated scale_years)."""
    mapping(baseline, where, "kind and its parameters")
    kinds = BASELINE_KEYS
    if "kind" not in baseline:
        raise SpecError(f"{where}: missing key 'kind'; set kind to {' or '.join(map(repr, kinds))}")
    kind = baseline["kind"]
    if kind not in kinds:
        raise SpecError(f"{where} kind={kind!r} must be {' or '.join(map(repr, kinds))}."
                        f"{suggest(str(kind), kinds)}".rstrip("."))
    unknown_keys(baseline, (*BASELINE_KEYS[kind], *extra), f"{where} ({kind})")
    for key in BASELINE_KEYS[kind][1:]:
        if key not in baseline and key not in optional:
            what = {"shape": "the Weibull shape, > 0", "scale_years": "the Weibull scale in years, > 0",
                    "cuts_years": "the cut points in years", "rates_per_year": "one more rate than cuts"}[key]
            raise SpecError(f"{where}: missing key {key!r} ({what})")
    if kind == "weibull":
        for key in ("shape", "scale_years"):
            if key in baseline:
                number(baseline[key], f"{where} {key}", low=0)
        return
    cuts, rates = baseline["cuts_years"], baseline["rates_per_year"]
    for key, seq in (("cuts_years", cuts), ("rates_per_year", rates)):
        if not isinstance(seq, (list, tuple, np.ndarray)) or np.ndim(seq) != 1:
            raise SpecError(f"{where} {key}={seq!r} must be a list of numbers")
        for j, v in enumerate(seq):
            number(v, f"{where} {key}[{j}]", low=0 if key == "rates_per_year" else None)
    c = np.asarray(cuts, float)
    if len(rates) != len(cuts) + 1 or np.any(c <= 0) or np.any(np.diff(c) <= 0):
        raise SpecError(
            f"{where}: piecewise baseline needs strictly increasing cuts_years > 0 and one more rate > 0 than cuts; "
            f"got cuts_years={list(cuts)!r}, rates_per_year={list(rates)!r}"
        )


def check_accrual(accrual, where: str = "accrual", keys=ACCRUAL_KEYS) -> None:
    mapping(accrual, where, "start, end and optionally close and trend")
    unknown_keys(accrual, keys, where)
    for key in ("start", "end"):
        if key not in accrual:
            raise SpecError(f"{where}: missing key {key!r} (the {'first' if key == 'start' else 'last'} implant "
                            "date, e.g. '2000-01-01')")
    start, end = read_date(accrual["start"], f"{where} start"), read_date(accrual["end"], f"{where} end")
    if end <= start:
        raise SpecError(f"{where} end {accrual['end']} must be after start {accrual['start']}")
    if "close" in accrual and read_date(accrual["close"], f"{where} close") < end:
        raise SpecError(
            f"{where} close {accrual['close']} is before the last implant date {accrual['end']}: implants "
            "after the close would have negative follow-up; set close on or after end"
        )
    if "trend" in accrual:
        number(accrual["trend"], f"{where} trend", low=0,
                hint=" (implant volume on the last day relative to the first; 1 = uniform)")
