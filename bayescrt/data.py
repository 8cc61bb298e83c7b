"""Validated survival data: the one input format every model in bayescrt uses.

``SurvivalData.from_frame`` checks a DataFrame once, collects every problem it
finds and raises them together as a :class:`~bayescrt.errors.DataError`; it
encodes categorical covariates against a named reference level and sorts the
rows once by (stratum, time, event first). The caller's DataFrame is never
modified: everything here works on copies of the columns.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import warnings
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import DataError, DataWarning, suggest

MISSING_CHOICES = ("error", "drop")


def _py(v):
    """numpy scalars (and tuples of them) as plain Python values, for readable messages."""
    if isinstance(v, tuple):
        return tuple(_py(x) for x in v)
    return v.item() if isinstance(v, np.generic) else v


def _examples(labels, values, k: int = 3) -> str:
    pairs = [f"row {_py(lab)!r}: {_py(val)!r}" for lab, val in list(zip(labels, values))[:k]]
    more = f" (and {len(labels) - k} more)" if len(labels) > k else ""
    return ", ".join(pairs) + more


def _flag(problems: list[str], bad: np.ndarray, labels, values, subject: str, what: str, fix: str) -> None:
    """Record '<subject> has <n> <what> (row examples); <fix>' when any row is bad."""
    if bad.any():
        problems.append(f"{subject} has {bad.sum()} {what} ({_examples(labels[bad], values[bad])}); {fix}")


# floats hold every integer up to 2**53 exactly; beyond it distinct integers become the same float
_EXACT_INT = 2**53


def _floats(s: pd.Series, subject: str, labels: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """A numeric column as float64 (missing values as NaN), or None with a problem when integers beyond 2**53
    would lose precision (distinct times would become ties, a varying covariate constant)."""
    if s.dtype.kind in "iu" or (pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)):
        ints = s.dropna().to_numpy()
        big = np.zeros(len(s), bool)
        if len(ints):
            over = np.array([abs(int(v)) > _EXACT_INT for v in ints]) if ints.dtype == object else \
                (ints > _EXACT_INT) | (ints < -_EXACT_INT) if ints.dtype.kind == "i" else ints > np.uint64(_EXACT_INT)
            big[np.flatnonzero(s.notna().to_numpy())[over]] = True
        if big.any():
            problems.append(f"{subject} has {big.sum()} integers beyond 2**53 ({_examples(labels[big], s.to_numpy()[big])}),"
                            " which lose precision as floating-point numbers; subtract a common origin or rescale "
                            "the column first")
            return None
    return s.to_numpy(dtype=float, na_value=np.nan)


def _short(value) -> str:
    """A value for a message: a Series or array by its type and length, not its contents."""
    if isinstance(value, (pd.Series, pd.DataFrame, np.ndarray, pd.Index)):
        return f"<{type(value).__name__} of length {len(value)}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _same_level(level, ref) -> bool:
    """``level == ref`` without letting True stand for 1 or 1.0 for True."""
    return level == ref and isinstance(level, (bool, np.bool_)) == isinstance(ref, (bool, np.bool_))


def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s.dtype)


# Names a covariate may not have: the priors' reserved key (priors={"default": ...} means every other covariate).
RESERVED_COVARIATES = ("default",)
# Row names of Fit.frailty(): a cluster may not be called like the SD row.
RESERVED_CLUSTERS = ("SD",)
MAX_TEXT_LEVELS = 50  # a text covariate with more distinct values is refused unless it is a pandas Categorical
_DATELIKE = (pd.Timestamp, pd.Timedelta, np.datetime64, np.timedelta64, _dt.date, _dt.timedelta)


def _content_problem(s: pd.Series, subject: str, col, labels: np.ndarray, levels_ok: bool = True) -> str | None:
    """What is wrong with a column whose dtype hides its content, or None.

    Complex numbers; dates, times or durations (datetime or timedelta dtypes, or such objects inside an
    object column); numbers stored as text; numbers and text mixed in one object column; objects that are
    neither numbers nor text. Each message names the column, a few offending values with their row labels
    and the fix. A column of plain text (levels) or a pandas Categorical is not a problem here.
    """
    ref = f"df[{col!r}]"
    if s.dtype.kind == "c":
        bad = s.to_numpy() != s.to_numpy().real
        shown = bad if bad.any() else np.ones(len(s), bool)
        return (f"{subject} holds complex numbers ({_examples(labels[shown], s.to_numpy()[shown])}); a covariate, "
                f"time or weight is real: use the real part explicitly ({ref}.to_numpy().real) only if the "
                "imaginary parts are meant to be 0, else fix the column")
    if s.dtype.kind == "M" or isinstance(s.dtype, pd.DatetimeTZDtype):
        return (f"{subject} holds dates ({_examples(labels, s.astype(str).to_numpy())}), not numbers; convert them "
                f"to a duration or number, e.g. ({ref} - {ref}.min()).dt.days / 365.25 for years")
    if s.dtype.kind == "m":
        return (f"{subject} holds durations as timedeltas ({_examples(labels, s.astype(str).to_numpy())}); convert "
                f"them to numbers, e.g. {ref}.dt.days / 365.25 for years")
    if not (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)) or isinstance(s.dtype, pd.CategoricalDtype):
        return None
    present = s.notna().to_numpy()
    vals = s.to_numpy()
    kinds = np.array([_value_kind(v) for v in vals], dtype=object)
    kinds[~present] = "missing"
    for kind, what, fix in (
        ("complex", "complex numbers", "a covariate, time or weight is real; fix the column"),
        ("date", "dates in an object column",
         f"convert them to numbers, e.g. (pd.to_datetime({ref}) - pd.Timestamp('2000-01-01')).dt.days / 365.25"),
        ("duration", "durations (timedeltas) in an object column",
         f"convert them to numbers, e.g. pd.to_timedelta({ref}).dt.days / 365.25 for years"),
        ("other", "values that are neither numbers nor text",
         f"give numbers, bools or text levels (types found: {sorted({type(v).__name__ for v, k in zip(vals, kinds) if k == 'other'})})"),
    ):
        bad = kinds == kind
        if bad.any():
            return f"{subject} holds {what} ({_examples(labels[bad], [str(v) for v in vals[bad]])}); {fix}"
    if (kinds == "bool").any() and (kinds == "number").any() and not (kinds == "text").any():
        b, n = kinds == "bool", kinds == "number"
        return (f"{subject} mixes bools ({_examples(labels[b], vals[b])}) and numbers ({_examples(labels[n], vals[n])})"
                f" in one column, and True would count as 1; make it one type, e.g. {ref}.astype(int)")
    text, number = kinds == "text", (kinds == "number") | (kinds == "bool")
    if text.any():
        numeric_text = text & pd.to_numeric(pd.Series(vals), errors="coerce").notna().to_numpy()
        if numeric_text.any():
            other = text & ~numeric_text
            rest = (f" beside text ({_examples(labels[other], vals[other])})" if other.any() else "")
            return (f"{subject} holds numbers stored as text ({_examples(labels[numeric_text], vals[numeric_text])})"
                    f"{rest}; convert it with pd.to_numeric({ref})"
                    + (f" to use it as a number, or with {ref}.astype('category') to use its values as levels"
                       if levels_ok else ""))
        if number.any():
            return (f"{subject} mixes numbers ({_examples(labels[number], vals[number])}) and text "
                    f"({_examples(labels[text], vals[text])}) in one column; make it all numbers (pd.to_numeric) "
                    f"or all levels ({ref}.astype(str).astype('category'))")
    return None


def _grouping_problem(s: pd.Series, role: str, col, labels: np.ndarray) -> str | None:
    """What is wrong with a strata, study or cluster column, or None: its values must be hashable scalars of
    one kind, and no two may read the same as text (1 and '1', or 1 and True, would be merged or confused)."""
    present = s.notna().to_numpy()
    vals = s.to_numpy()[present]
    # a value's kind is its type's: the types present, found in one pass in C, say which kinds there are
    present_kinds = {_type_kind(t) for t in set(map(type, vals))}
    for kind in ("other", "complex"):
        if kind in present_kinds:  # the rows that hold one, named
            bad = np.array([_value_kind(v) == kind for v in vals], dtype=bool)
            return (f"{role} column {col!r} holds values that cannot label groups "
                    f"({_examples(labels[present][bad], vals[bad])}); use numbers or text")
    if "bool" in present_kinds and "number" in present_kinds:
        return (f"{role} column {col!r} mixes bools and numbers, and True would be the same group as 1; make it "
                f"one type, e.g. df[{col!r}].astype(str)")
    text = pd.Series([str(v) for v in pd.unique(vals)])
    if text.duplicated().any():
        same = sorted(set(text[text.duplicated()]))
        return (f"{role} column {col!r} has values that read the same as text ({same}), e.g. 1 and '1'; make the "
                f"column one type, e.g. df[{col!r}].astype(str)")
    return None


def labels_as_text(values) -> np.ndarray:
    """``np.array([str(v) for v in values])``: the same text array, non-negative integers (a frame's usual row
    labels) written digit by digit in numpy instead of a ``str`` call a row (0.45 s at N = 1,000,000)."""
    v = np.asarray(values)
    if v.ndim != 1:
        raise ValueError(f"labels_as_text: labels must be one-dimensional, not of shape {v.shape}")
    if v.dtype.kind not in "iu" or v.size == 0 or v.min() < 0:
        return np.array([str(x) for x in v])
    v = v.astype(np.uint64)
    width = len(str(int(v.max())))
    powers = 10 ** np.arange(width, dtype=np.uint64)  # powers[k] = 10**k
    ndig = 1 + (v[:, None] >= powers[1:]).sum(axis=1)  # digits of each value (0 has one)
    chars = np.zeros((len(v), width), np.uint32)  # UCS-4 code points; text shorter than ``width`` ends in NULs
    for j in range(width):  # the j-th digit from the left, where the value has one
        k = ndig - 1 - j
        has = k >= 0
        chars[:, j] = np.where(has, 48 + (v // powers[np.maximum(k, 0)]) % 10, 0)
    return chars.view(f"<U{width}").ravel()


def _covariate_names(covariates) -> list:
    """``covariates`` as a list of column names, or a DataError that says what was given and what is wanted."""
    if isinstance(covariates, str):
        return [covariates]
    if covariates is None or isinstance(covariates, (dict, set, frozenset, pd.DataFrame)) or \
            not isinstance(covariates, (list, tuple, pd.Index, np.ndarray, pd.Series)):
        hint = " (a set has no order, and the order of covariates is the order of every table)" \
            if isinstance(covariates, (set, frozenset)) else ""
        raise DataError(f"covariates={covariates!r} must be a list of column names, e.g. covariates=['age', 'male']"
                        f"{hint}; use covariates=[] only with a model that needs none")
    names = list(covariates)
    bad = [(i, c) for i, c in enumerate(names)
           if not isinstance(c, Hashable) or isinstance(c, (tuple, bool, np.bool_, float)) or c is None]
    if bad:
        i, c = bad[0]
        raise DataError(f"covariates[{i}] = {c!r} is not a column name; covariates must be a flat list of column names, "
                        "e.g. covariates=['age', 'male']")
    return names


def _collinear_groups(X: np.ndarray, strata: np.ndarray, names) -> list[list[str]]:
    """Groups of encoded columns that are exactly collinear within strata (a combination of them is constant in
    every stratum, so the partial likelihood and the baseline cannot tell their coefficients apart).

    Columns are centred within strata and scaled to unit norm; a singular value below 1e-9 of the largest marks
    a null direction, and the columns with weight in it are named. Constant columns are refused earlier.
    """
    size = np.abs(X).max(axis=0)
    Z = X / np.where(size > 0, size, 1.0)  # unit magnitude first: values near 1e200 must not overflow below
    Z -= _stratum_means(Z, strata)  # in place: one N x p copy in all (at N = 1,000,000 each is 0.1 s)
    norms = np.sqrt(np.einsum("ij,ij->j", Z, Z))
    groups = []
    zero = norms <= 1e-12 * np.sqrt(len(X))  # constant within every stratum, up to rounding
    for j in np.flatnonzero(zero):
        groups.append([names[j]])
    keep = np.flatnonzero(~zero)
    if len(keep) < 2:
        return groups
    Z = Z[:, keep] if len(keep) < Z.shape[1] else Z
    Z /= norms[keep]
    # the singular values and right vectors of Z are those of R in Z = QR (Householder QR is backward stable, as
    # the SVD is): an SVD of p x p instead of N x p
    _, sv, vt = np.linalg.svd(np.linalg.qr(Z, mode="r"))
    null = vt[sv < 1e-9 * sv[0]]
    if len(null):
        involved = np.abs(null) > 1e-6
        # columns sharing a null direction form one group
        seen = set()
        for row in involved:
            members = [names[keep[j]] for j in np.flatnonzero(row) if keep[j] not in seen]
            seen.update(keep[j] for j in np.flatnonzero(row))
            if members:
                groups.append(members)
    return groups


def _stratum_means(X: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Each row's stratum mean of every column (one bincount per column: O(N p))."""
    counts = np.maximum(np.bincount(strata), 1)
    if len(counts) == 1:
        return X.mean(axis=0)
    means = np.column_stack([np.bincount(strata, weights=X[:, j]) / counts for j in range(X.shape[1])])
    return means[strata]


def _type_kind(t: type) -> str:
    """The kind of every value of type ``t``: bool, complex, number, text, duration, date or other."""
    if issubclass(t, (bool, np.bool_)):
        return "bool"
    if issubclass(t, (complex, np.complexfloating)):
        return "complex"
    if issubclass(t, (int, float, np.integer, np.floating)):
        return "number"
    if issubclass(t, str):
        return "text"
    if issubclass(t, (pd.Timedelta, np.timedelta64, _dt.timedelta)):
        return "duration"
    if issubclass(t, _DATELIKE):
        return "date"
    return "other"


def _value_kind(v) -> str:
    return _type_kind(type(v))


# ------------------------------------------------------------------ from_frame's validators, one per section
# Each validator appends what it finds to ``problems`` (so every problem across sections is raised once, together)
# or, for the checks that must pass before later ones can run, raises a DataError itself.

def _check_arguments(df, covariates, reference, missing) -> tuple[list, dict]:
    """The arguments that are not column names: raise at the first one that is wrong; return the covariate names
    as a list and a copy of ``reference``."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"data must be a pandas DataFrame, got {type(df).__name__}; "
            "wrap arrays with pd.DataFrame({...}) first"
        )
    if len(df) == 0:
        raise DataError("the DataFrame has no rows; nothing to fit")
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(f"the DataFrame's columns are a MultiIndex ({list(df.columns)[:3]} ...); flatten them "
                        "first, e.g. df.columns = ['_'.join(map(str, c)) for c in df.columns]")
    if not isinstance(missing, str) or missing not in MISSING_CHOICES:
        raise DataError(f"missing={missing!r} is not valid; choose one of {MISSING_CHOICES}")
    covariates = _covariate_names(covariates)
    if reference is None:
        reference = {}
    if not isinstance(reference, dict):
        raise DataError(f"reference={reference!r} must be a dict of categorical column -> reference level, "
                        "e.g. reference={'nyha': 'II'}")
    return covariates, dict(reference)


def _role_problems(df: pd.DataFrame, roles: dict) -> list[str]:
    """Each role's column name: given where required, one hashable name, and a column of ``df``."""
    problems = []
    for role, col in roles.items():
        if role in ("time", "event") and col is None:
            problems.append(f"{role}=None: name the {role} column, e.g. {role}={'years' if role == 'time' else 'died'!r}")
        elif col is not None and (not isinstance(col, Hashable) or isinstance(col, (tuple, bool))):
            problems.append(f"{role}={_short(col)} must be one column name, e.g. {role}='{role}'")
        elif col is not None and col not in df.columns:
            problems.append(
                f"{role} column {col!r} is not in the DataFrame.{suggest(col, df.columns)} "
                f"Columns are: {list(df.columns)}"
            )
    return problems


def _role_clashes(roles: dict) -> list[str]:
    """A column named for two roles."""
    problems = []
    taken: dict = {}
    for role, col in roles.items():
        if col is not None:
            if col in taken:
                problems.append(f"column {col!r} is used both as the {taken[col]} and as the {role} column; "
                                "a column can have one role only")
            taken.setdefault(col, role)
    return problems


def _covariate_list_problems(df: pd.DataFrame, covariates: list, roles: dict, reference: dict) -> list[str]:
    """The covariate list: not empty, each once, each a column of ``df`` with an allowed name and no other role;
    and every reference level given for a covariate."""
    problems = []
    if not covariates:
        problems.append("no covariates given; pass covariates=[...] with at least one column")
    seen = set()
    for c in covariates:
        if c in seen:
            problems.append(f"covariate {c!r} is listed more than once; list each covariate once")
        seen.add(c)
        if c not in df.columns:
            problems.append(
                f"covariate column {c!r} is not in the DataFrame.{suggest(c, df.columns)}"
            )
        if c in RESERVED_COVARIATES:
            problems.append(f"covariate {c!r} has the name of the priors' reserved key {c!r} (the prior of every "
                            f"covariate not named); rename the column, e.g. df.rename(columns={{{c!r}: '{c}_'}})")
        for role, col in roles.items():
            if col is not None and c == col:
                problems.append(
                    f"column {c!r} is used both as a covariate and as the {role} column; "
                    "a column can have one role only"
                )
    for col in reference:
        if col not in covariates:
            problems.append(
                f"reference level given for {col!r}, which is not a covariate.{suggest(col, covariates)}"
            )
    return problems


def _duplicate_column_problems(df: pd.DataFrame, used: list) -> list[str]:
    """A used column name that labels more than one column of ``df``."""
    problems = []
    counts = df.columns.value_counts()
    for c in used:
        if c in counts.index and counts[c] > 1:
            problems.append(f"column {c!r} appears {counts[c]} times in the DataFrame, so which one is meant is "
                            "ambiguous; rename or drop the duplicates (df.columns.duplicated() finds them)")
    return problems


def _check_columns(df: pd.DataFrame, roles: dict, covariates: list, reference: dict) -> list:
    """Raise the problems with the column names (roles first, on their own); return the used columns in order."""
    problems = _role_problems(df, roles)
    if problems:
        raise DataError(problems)
    used = [c for c in dict.fromkeys([*roles.values(), *covariates]) if c is not None]
    problems = (_role_clashes(roles) + _covariate_list_problems(df, covariates, roles, reference)
                + _duplicate_column_problems(df, used))
    if problems:
        raise DataError(problems)
    return used


def _missing_values(frame: pd.DataFrame, missing: str, problems: list[str]) -> tuple[pd.DataFrame, dict, int]:
    """Report missing values (``missing="error"``) or drop their rows with a DataWarning (``"drop"``); return the
    frame left, the count dropped by column and the number of rows dropped."""
    na = frame.isna()
    n_missing = na.sum()
    bad_cols = n_missing[n_missing > 0]
    dropped: dict = {}
    n_dropped = 0
    if len(bad_cols):
        listing = ", ".join(f"{c!r} ({k} rows)" for c, k in bad_cols.items())
        if missing == "error":
            where = "; ".join(f"{c!r}: " + ", ".join(f"row {_py(r)!r}" for r in frame.index[na[c].to_numpy()][:3])
                              + (f" and {k - 3} more" if k > 3 else "") for c, k in bad_cols.items())
            problems.append(
                f"missing values in {listing}; pass missing='drop' to drop these rows "
                f"(what is dropped is reported), or impute them before fitting. Missing in {where}"
            )
        else:
            rows = na.any(axis=1)
            n_dropped = int(rows.sum())
            dropped = {c: int(k) for c, k in bad_cols.items()}
            warnings.warn(
                f"missing='drop' dropped {n_dropped} of {len(frame)} rows with missing values in {listing}",
                DataWarning,
                stacklevel=4,  # the caller of from_frame's caller, as when this was inline in from_frame
            )
            frame = frame.loc[~rows]
            if len(frame) == 0:
                raise DataError("every row has a missing value; nothing is left to fit")
    return frame, dropped, n_dropped


def _numeric(s: pd.Series, role: str, col: str, problems: list[str], labels: np.ndarray) -> np.ndarray | None:
    """A time, entry or weights column as float64, or None with a problem when it is not plain numbers."""
    content = _content_problem(s, f"{role} column {col!r}", col, labels, levels_ok=False)
    if content is not None:
        problems.append(content)
        return None
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        problems.append(
            f"{role} column {col!r} must be numeric, got dtype {s.dtype}; "
            "convert it (for dates, subtract the start date and divide by a time unit)"
        )
        return None
    return _floats(s, f"{role} column {col!r}", labels, problems)


def _time_values(frame: pd.DataFrame, time, labels: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """The time column: finite and > 0 (missing values are reported once, with the missing values)."""
    t = _numeric(frame[time], "time", time, problems, labels)
    if t is not None:
        ok = ~np.isnan(t)
        _flag(problems, ok & ~np.isfinite(t), labels, t, f"time column {time!r}", "non-finite values",
              "times must be finite: code censoring with the event column, not with inf")
        _flag(problems, ok & np.isfinite(t) & (t <= 0), labels, t, f"time column {time!r}", "values <= 0",
              "survival times must be > 0: add a small positive value to zero times, "
              "or check that the column is a duration and not a date")
    return t


def _event_values(frame: pd.DataFrame, event, labels: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """The event column as bools: 0/1 or bool, with at least one event."""
    e = None
    ev = frame[event]
    content = _content_problem(ev, f"event column {event!r}", event, labels, levels_ok=False)
    if content is not None:
        problems.append(content + "; code 1 (or True) for an observed event and 0 (or False) for censoring")
    elif ev.isna().any():  # reported once, with the missing values
        pass
    elif pd.api.types.is_bool_dtype(ev.dtype) and not isinstance(ev.dtype, pd.CategoricalDtype):
        e = ev.to_numpy(dtype=bool)
    elif pd.api.types.is_numeric_dtype(ev.dtype):
        vals = ev.to_numpy(dtype=float)
        bad = ~np.isnan(vals) & ~np.isin(vals, (0.0, 1.0))
        if bad.any():
            shown = sorted(set(vals[bad].tolist()))[:5]
            problems.append(
                f"event column {event!r} has values other than 0/1: {shown} in {bad.sum()} rows; "
                "code 1 (or True) for an observed event and 0 (or False) for censoring"
            )
        else:
            e = vals == 1.0
    else:
        shown = sorted(map(str, ev.dropna().unique()))[:5]
        problems.append(
            f"event column {event!r} has dtype {ev.dtype} (values {shown}); "
            "code it as 0/1 or bool, e.g. df[col].eq('dead')"
        )
    if e is not None and not e.any():
        problems.append(
            f"event column {event!r} has no events (all {len(e)} rows censored); "
            "a hazard ratio cannot be estimated without events"
        )
    return e


def _entry_values(frame: pd.DataFrame, entry, time, t: np.ndarray | None, labels: np.ndarray,
                  problems: list[str]) -> np.ndarray | None:
    """The optional delayed-entry column: finite, >= 0 and before each row's time."""
    if entry is None:
        return None
    en = _numeric(frame[entry], "entry", entry, problems, labels)
    if en is not None:
        _flag(problems, ~np.isnan(en) & (~np.isfinite(en) | (en < 0)), labels, en, f"entry column {entry!r}",
              "negative or non-finite values", "entry times must be finite and >= 0")
        if t is not None:
            bad = en >= t
            if bad.any():
                problems.append(
                    f"entry column {entry!r} is not before {time!r} in {bad.sum()} rows "
                    f"({_examples(labels[bad], list(zip(en[bad], t[bad])))}); "
                    "each subject must enter the risk set before its event or censoring time"
                )
    return en


def _weight_values(frame: pd.DataFrame, weights, labels: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """The optional case-weights column: finite and > 0."""
    if weights is None:
        return None
    w = _numeric(frame[weights], "weights", weights, problems, labels)
    if w is not None:
        _flag(problems, ~np.isnan(w) & (~np.isfinite(w) | (w <= 0)), labels, w, f"weights column {weights!r}",
              "values that are not finite and > 0", "drop zero-weight rows explicitly")
    return w


def _covariate_type_problem(s: pd.Series, c, reference: dict, labels: np.ndarray) -> str | None:
    """What makes a covariate column unusable whatever its values: a reference level for a column used as a
    number, content its dtype hides, or numbers held in an object column."""
    if c in reference and not _is_categorical(s):
        return (
            f"reference level {reference[c]!r} given for {c!r}, which has dtype {s.dtype} and is used as a "
            f"number; to treat its values as levels pass df[{c!r}].astype('category'), else drop the reference"
        )
    content = _content_problem(s, f"covariate {c!r}", c, labels)
    if content is not None:
        return content
    if (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)) and not isinstance(s.dtype, pd.CategoricalDtype):
        values = s.dropna()
        k = values.nunique()
        if k > MAX_TEXT_LEVELS or (k > 10 and k == len(values)):  # a date or an identifier, not levels
            shown = ", ".join(repr(v) for v in values.unique()[:3])
            return (f"covariate {c!r} is text with {k:,} distinct values ({shown}, ...) in {len(values):,} rows: each "
                    f"value but one would get its own log-HR. A date? make it a number or a duration (bc.durations); "
                    f"an identifier? leave it out; if these are levels you mean, pass df[{c!r}].astype('category')")
    if s.dtype == object and len(s) and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in s.dropna()
    ):
        return (
            f"covariate {c!r} has dtype object but holds numbers; convert it with pd.to_numeric(df[{c!r}]) "
            f"to use it as a number or with .astype('category') to use its values as levels"
        )
    return None


def _bool_covariate(s: pd.Series, c, problems: list[str]) -> np.ndarray | None:
    """A bool covariate as 0/1 floats, or None (missing values, reported elsewhere, or constant)."""
    if s.isna().any():  # reported once, with the missing values
        return None
    x = s.to_numpy(dtype=float)
    if np.unique(x).size < 2:
        problems.append(f"covariate {c!r} is constant ({bool(x[0])}); drop it from covariates")
        return None
    return x


def _numeric_covariate(s: pd.Series, c, labels: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """A numeric covariate as floats, or None (too large integers, infinite, missing or constant)."""
    x = _floats(s, f"covariate {c!r}", labels, problems)
    if x is None:
        return None
    bad = np.isinf(x)  # a missing value (NaN) is reported once, with the missing values
    if bad.any():
        _flag(problems, bad, labels, x, f"covariate {c!r}", "infinite values", "replace or drop them")
        return None
    if np.isnan(x).any():
        return None
    if np.ptp(x) == 0:
        problems.append(f"covariate {c!r} is constant ({_py(x[0])!r}); drop it from covariates")
        return None
    return x


def _categorical_levels(s: pd.Series) -> list:
    """The levels present in a categorical column: a Categorical's in category order, others sorted as text."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [_py(lv) for lv in s.cat.categories if (s == lv).any()]
    return sorted((_py(v) for v in s.unique()), key=str)


def _categorical_covariate(s: pd.Series, c, reference: dict, refs: dict,
                           problems: list[str]) -> list[tuple[np.ndarray, str]]:
    """A categorical covariate as one 0/1 column per non-reference level, ``(column, label)``; the reference
    level chosen goes into ``refs``. Nothing when a value is missing, there is one level or the reference is
    not a level."""
    if s.isna().any():  # reported once, with the missing values
        return []
    levels = _categorical_levels(s)
    if len(levels) < 2:
        problems.append(
            f"categorical covariate {c!r} has a single level {levels!r}; drop it from covariates"
        )
        return []
    ref = reference.get(c, levels[0])
    if not any(_same_level(lv, ref) for lv in levels):
        problems.append(
            f"reference level {ref!r} for {c!r} is not among its levels {levels}; "
            "choose one of them"
        )
        return []
    ref = next(lv for lv in levels if _same_level(lv, ref))
    refs[c] = ref
    vals = s.to_numpy()
    return [((vals == lv).astype(float), f"{c}[{lv} vs {ref}]") for lv in levels if not _same_level(lv, ref)]


def _encode_covariate(s: pd.Series, c, reference: dict, refs: dict, labels: np.ndarray,
                      problems: list[str]) -> list[tuple[np.ndarray, str]]:
    """One covariate column as its encoded ``(column, label)`` pairs: none when it has a problem."""
    problem = _covariate_type_problem(s, c, reference, labels)
    if problem is not None:
        problems.append(problem)
        return []
    if pd.api.types.is_bool_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
        x = _bool_covariate(s, c, problems)
        return [] if x is None else [(x, c)]
    if pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
        x = _numeric_covariate(s, c, labels, problems)
        return [] if x is None else [(x, c)]
    if _is_categorical(s):
        return _categorical_covariate(s, c, reference, refs, problems)
    problems.append(
        f"covariate {c!r} has dtype {s.dtype}, which cannot be used; "
        "convert it to numbers, bool or a pandas Categorical (durations to numbers of days/years)"
    )
    return []


def _encode_covariates(frame: pd.DataFrame, covariates: list, reference: dict, labels: np.ndarray,
                       problems: list[str]) -> tuple[list[np.ndarray], list, list, dict]:
    """Every covariate encoded: the columns, their labels, the source column of each and the reference levels."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    sources: list[str] = []
    refs: dict = {}
    for c in covariates:
        for x, name in _encode_covariate(frame[c], c, reference, refs, labels, problems):
            cols.append(x)
            names.append(name)
            sources.append(c)
    return cols, names, sources, refs


def _grouping_problems(frame: pd.DataFrame, labels: np.ndarray, groupings, problems: list[str]) -> None:
    """The strata, study and cluster columns, as ``(role, column)`` pairs (column None when not used)."""
    for role, col in groupings:
        if col is not None:
            problem = _grouping_problem(frame[col], role, col, labels)
            if problem:
                problems.append(problem)


def _duplicate_labels(names: list, problems: list[str]) -> None:
    """Two encoded columns with the same label (e.g. a column named like a level indicator)."""
    dup = [n for n in names if names.count(n) > 1]
    if dup:
        problems.append(f"covariate labels {sorted(set(dup))} occur twice after encoding; rename the columns")


def _check_moments(X: np.ndarray, w: np.ndarray | None, names: list, weights) -> None:
    """Raise when the weighted centre or scale the models use overflows."""
    with np.errstate(over="ignore", invalid="ignore"):  # the weighted centre and scale the models use
        total = None if w is None else np.sum(w)
        centre = X.mean(axis=0) if w is None else (w @ X) / total
        # a column at a time through one buffer: (X - centre) ** 2 whole was two N x p temporaries (0.2 s at
        # N = 1,000,000)
        buf, spread = np.empty(len(X)), np.empty(X.shape[1])
        for j in range(X.shape[1]):
            np.subtract(X[:, j], centre[j], out=buf)
            np.square(buf, out=buf)
            spread[j] = buf.mean() if w is None else (buf @ w) / total
        spread = np.sqrt(spread)
    if not (np.isfinite(centre).all() and np.isfinite(spread).all()):
        bad = [n for n, a, b in zip(names, centre, spread) if not (np.isfinite(a) and np.isfinite(b))]
        raise DataError(f"the weighted mean or SD of covariates {bad} overflows"
                        + (f" (weights column {weights!r} sums to {total:g})" if w is not None else "")
                        + "; rescale the covariates" + (" or divide the weights by a common factor" if w is not None
                                                       else ""))


def _stratum_codes(frame: pd.DataFrame, strata, study) -> tuple[np.ndarray, tuple, tuple | None]:
    """Each row's stratum code (by study, then strata within it) and the stratum labels; and, with a study
    column, ``(study codes, study values)``."""
    studies = None
    if study is not None:
        scodes, suniq = pd.factorize(frame[study], sort=True)
        studies = (scodes, suniq)
    if study is not None and strata is not None:
        pairs = pd.Series(list(zip(frame[study], frame[strata])), index=frame.index)
        codes, uniq = pd.factorize(pairs, sort=True)
        strata_labels = tuple(f"{a} | {b}" for a, b in uniq.tolist())
    elif study is not None:
        codes, strata_labels = scodes, tuple(suniq.tolist())
    elif strata is not None:
        codes, uniq = pd.factorize(frame[strata], sort=True)
        strata_labels = tuple(uniq.tolist())
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
        strata_labels = (None,)
    return codes, strata_labels, studies


def _identifiability_problems(X: np.ndarray, codes: np.ndarray, names: list, e: np.ndarray | None,
                              strata, study) -> list[str]:
    """Strata that leave no comparison, and covariates that are constant (within strata) or exactly collinear."""
    problems = []
    n_strata_rows = np.bincount(codes)
    uninformative = False
    if (strata is not None or study is not None) and e is not None:
        by = strata if strata is not None else study
        role = "strata" if strata is not None else "study"
        comparable = (n_strata_rows[codes] > 1) & e
        if not comparable.any():
            uninformative = True
            problems.append(
                f"{role} column {by!r} puts the {len(X)} rows into {len(n_strata_rows)} strata"
                + (", one per row" if len(n_strata_rows) == len(X) else "")
                + ": no event has anyone else in its stratum, so the data say nothing about any covariate "
                f"(each stratum has its own baseline hazard); use a coarser {role} column or drop {role}=")
    groups = [] if uninformative else _collinear_groups(X, codes, names)
    for g in groups:
        problems.append(_collinear_problem(g, len(n_strata_rows)))
    return problems


def _collinear_problem(g: list, n_strata: int) -> str:
    """The message for one group of :func:`_collinear_groups`."""
    if len(g) == 1 and n_strata == 1:
        return (f"covariate {g[0]!r} is constant up to rounding (its spread is below 1e-12 of its "
                "size), so its effect cannot be estimated; subtract a common origin, rescale it or "
                "drop it from covariates")
    if len(g) == 1:
        return (f"covariate {g[0]!r} is constant within every stratum, so its effect cannot be told "
                "apart from the strata's own baseline hazards; drop it from covariates or from strata")
    return (
        f"covariates {g} are exactly collinear (a combination of them is constant"
        + (" within every stratum" if n_strata > 1 else "")
        + "), so their log-HRs are not identified and the posterior would be set by the prior alone; "
        "drop one of them (e.g. 2*age beside age, fin beside 1-fin, or every level of a categorical "
        "coded as its own column)")


def _cluster_codes(frame: pd.DataFrame, cluster) -> tuple[np.ndarray, pd.Index] | None:
    """The cluster column's codes and values (None without one); raise unless it has 2 or more clusters, none
    named like the frailty SD's row, and no two that read the same as text."""
    if cluster is None:
        return None
    ccodes, cuniq = pd.factorize(frame[cluster], sort=True)
    if len(cuniq) < 2:
        raise DataError(f"cluster column {cluster!r} has a single value {cuniq[0]!r}: a frailty needs at least "
                        "2 clusters; drop cluster= to fit without one")
    as_text = [str(c) for c in cuniq]
    reserved = sorted(set(as_text) & set(RESERVED_CLUSTERS))
    if reserved:
        raise DataError(f"cluster column {cluster!r} has a cluster called {reserved[0]!r}, the name of the "
                        "frailty SD's row in fit.frailty(); rename that cluster")
    if len(set(as_text)) < len(as_text):
        raise DataError(f"cluster column {cluster!r} has values that read the same as text "
                        f"({sorted(x for x in set(as_text) if as_text.count(x) > 1)}), e.g. 1 and '1'; "
                        "make the column one type")
    return ccodes, cuniq


@dataclass(frozen=True)
class SurvivalData:
    """Right-censored (optionally left-truncated) survival data, validated and sorted.

    Arrays are in sorted order: by stratum, then time, then events before
    censorings at the same time. ``row_labels`` maps each sorted row back to
    the caller's index; ``order`` holds the positional permutation.

    Attributes
    ----------
    time, event, entry, weights : arrays of length ``n``
    X : (n, p) float array of covariates in their original units; categorical
        columns appear as 0/1 indicators named ``"col[level vs reference]"``.
    covariates : labels of the columns of ``X``.
    sources : for each label, the DataFrame column it came from.
    references : reference level of each categorical covariate.
    strata : integer stratum code of each row (all 0 when not stratified).
    cluster : integer cluster code of each row (shared frailty), or None.
    cluster_labels : the cluster value for each code.
    study : integer study code of each row (several studies' individual data), or None;
        the baseline hazard is stratified by study (within any ``strata``).
    study_labels : the study value for each code.
    strata_labels : the stratum value for each code.
    dropped : rows removed by ``missing="drop"``, by column (empty otherwise).
    design : for data given by ``formula=``, its :class:`~bayescrt.formula.Design` (None otherwise).
    columns : the names of the time, event, entry, weights and strata columns.
    """

    time: np.ndarray
    event: np.ndarray
    X: np.ndarray
    covariates: tuple[str, ...]
    sources: tuple[str, ...]
    references: dict
    entry: np.ndarray | None
    weights: np.ndarray | None
    strata: np.ndarray
    strata_labels: tuple
    row_labels: np.ndarray
    order: np.ndarray
    columns: dict
    dropped: dict = field(default_factory=dict)
    n_dropped: int = 0
    cluster: np.ndarray | None = None
    cluster_labels: tuple = ()
    study: np.ndarray | None = None
    study_labels: tuple = ()
    design: object = field(default=None, compare=False, repr=False)  # formula.Design, for formula= data
    # which covariates' log-HRs enter the model (None: all); the others stay in the design with their log-HR at 0,
    # so that the fits of every subset of one covariate list share one compilation (bayescrt.multiverse)
    active: np.ndarray | None = None
    # competing risks (the subdistribution model): each row's cause code, 0 censored, 1 the cause of the fit's
    # events, 2.. a competing event (``event`` is then status == 1); None for one cause
    status: np.ndarray | None = None

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        return len(self.time)

    @property
    def n_events(self) -> int:
        return int(self.event.sum())

    @property
    def n_strata(self) -> int:
        return len(self.strata_labels)

    # computed once per instance (the data are immutable; dataclasses.replace makes a new one): at N = 1,000,000 each
    # is a pass over the design, and the Laplace sampler's batches read the centre 500 times
    @functools.cached_property
    def center(self) -> np.ndarray:
        """Mean of each covariate column, weighted by the case weights when there are any."""
        out = np.average(self.X, axis=0, weights=self.weights)
        out.flags.writeable = False
        return out

    @functools.cached_property
    def scale(self) -> np.ndarray:
        """Standard deviation of each covariate column, weighted like :attr:`center`."""
        out = np.sqrt(np.average((self.X - self.center) ** 2, axis=0, weights=self.weights))
        out.flags.writeable = False
        return out

    def standardised(self) -> np.ndarray:
        """Covariates centred and divided by their standard deviation."""
        return (self.X - self.center) / self.scale

    def hash(self) -> str:
        """SHA-256 of the validated arrays: the same data give the same hash."""
        h = hashlib.sha256()
        for arr in (self.time, self.event, self.X, self.entry, self.weights, self.strata, self.cluster, self.study,
                    self.status):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(repr(self.covariates).encode())
        if self.active is not None:
            h.update(b"active" + np.asarray(self.active, bool).tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        parts = [f"{self.n} subjects, {self.n_events} events"]
        if self.n_strata > 1 and self.columns.get("strata"):
            parts.append(f"{self.n_strata} strata by {self.columns['strata']!r}"
                         + (" within study" if self.columns.get("study") else ""))
        if self.cluster is not None:
            parts.append(f"{len(self.cluster_labels)} clusters by {self.columns['cluster']!r}")
        if self.study is not None:
            parts.append(f"{len(self.study_labels)} studies by {self.columns['study']!r}")
        if self.weights is not None:
            parts.append(f"case weights from {self.columns['weights']!r}")
        if self.entry is not None:
            parts.append(f"delayed entry from {self.columns['entry']!r}")
        if self.n_dropped:
            parts.append(f"{self.n_dropped} rows dropped for missing values")
        return ", ".join(parts)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        time: str,
        event: str,
        covariates: list[str] | tuple[str, ...],
        entry: str | None = None,
        strata: str | None = None,
        weights: str | None = None,
        reference: dict | None = None,
        missing: str = "error",
        cluster: str | None = None,
        study: str | None = None,
    ) -> "SurvivalData":
        """Validate ``df`` and build the sorted arrays.

        Parameters
        ----------
        time, event : column names. ``time`` must be finite and > 0; ``event``
            holds 1/True for an observed event and 0/False for censoring.
        covariates : columns used as covariates: numeric, boolean or
            categorical (pandas category, string or object dtype).
        entry : optional delayed-entry (left-truncation) time, >= 0 and < time.
        strata : optional column; each stratum gets its own baseline hazard.
        weights : optional positive case (frequency) weights.
        cluster : optional column whose values group subjects (e.g. implanting
            centre) for a shared frailty; any hashable values, no missing ones.
        study : optional column naming the study of each row when several
            studies' individual data are fitted together; each study gets its
            own baseline hazard (combined with ``strata``).
        reference : ``{column: level}`` reference level of categorical
            covariates; by default the first category (pandas categorical) or
            the first level in sorted order.
        missing : ``"error"`` (default) raises on any missing value and lists
            the columns and row counts; ``"drop"`` drops those rows and
            reports what was dropped with a :class:`DataWarning`.
        """
        covariates, reference = _check_arguments(df, covariates, reference, missing)
        roles = {"time": time, "event": event, "entry": entry, "strata": strata, "weights": weights,
                 "cluster": cluster, "study": study}
        used = _check_columns(df, roles, covariates, reference)
        problems: list[str] = []
        # never df itself: a copy of each used column (DataFrame.copy first merges the columns of one dtype into one
        # block, 0.2-0.7 s at N = 1,000,000; the columns' own copies take 0.03 s)
        own = pd.DataFrame({c: df[c].copy() for c in used}, index=df.index, copy=False)
        frame, dropped, n_dropped = _missing_values(own, missing, problems)
        labels = frame.index.to_numpy()
        t = _time_values(frame, time, labels, problems)
        e = _event_values(frame, event, labels, problems)
        en = _entry_values(frame, entry, time, t, labels, problems)
        w = _weight_values(frame, weights, labels, problems)
        cols, names, sources, refs = _encode_covariates(frame, covariates, reference, labels, problems)
        _grouping_problems(frame, labels, (("strata", strata), ("study", study), ("cluster", cluster)), problems)
        _duplicate_labels(names, problems)
        if problems:
            raise DataError(problems)

        X = np.column_stack(cols)
        _check_moments(X, w, names, weights)
        codes, strata_labels, studies = _stratum_codes(frame, strata, study)
        problems = _identifiability_problems(X, codes, names, e, strata, study)
        if problems:
            raise DataError(problems)
        clusters = _cluster_codes(frame, cluster)

        # Sort once: stratum, then time, then events before censorings at a tie.
        order = np.lexsort((~e, t, codes))
        data = cls(
            time=t[order], event=e[order], X=X[order], covariates=tuple(names), sources=tuple(sources),
            references=refs, entry=None if en is None else en[order], weights=None if w is None else w[order],
            strata=codes[order].astype(np.int64), strata_labels=strata_labels, row_labels=labels[order],
            order=order, dropped=dropped, n_dropped=n_dropped,
            columns={"time": time, "event": event, "entry": entry, "weights": weights, "strata": strata,
                     "cluster": cluster, "study": study},
            cluster=None if clusters is None else clusters[0][order].astype(np.int64),
            cluster_labels=() if clusters is None else tuple(clusters[1].tolist()),
            study=None if studies is None else studies[0][order].astype(np.int64),
            study_labels=() if studies is None else tuple(studies[1].tolist()),
        )
        data._warn_separation()
        return data

    def indicator_column(self, source: str) -> int | None:
        """The index of the one 0/1 column that DataFrame column ``source`` was encoded as, or None.

        ``source`` qualifies when exactly one column of :attr:`X` comes from it (see :attr:`sources`) and every
        value of that column is 0 or 1: a 0/1 or bool covariate, or a categorical with two levels. A numeric
        covariate with other values, a categorical with three or more levels, or a name that is not a covariate
        gives None; callers word their own error.
        """
        js = [j for j, s in enumerate(self.sources) if s == source]
        if len(js) != 1:
            return None
        j = js[0]
        return j if np.isin(self.X[:, j], (0.0, 1.0)).all() else None

    # ------------------------------------------------------------ separation
    def _warn_separation(self) -> None:
        """Warn when a covariate is monotone in the partial likelihood.

        If at every event time the subject who failed has the largest (or the
        smallest) value of a covariate in its risk set, the partial likelihood
        keeps rising as that log-HR goes to +inf (or -inf): the data do not
        bound it and its posterior is set by the prior.
        """
        ev = np.flatnonzero(self.event)
        g = self.risk_set_starts()[ev]
        # the rows are sorted by stratum: each stratum is one slice, whose running maximum and minimum from its end
        # are the largest and smallest value at risk from each row on
        bounds = np.searchsorted(self.strata, np.arange(self.n_strata + 1))
        hi, lo = np.empty(self.n), np.empty(self.n)
        for j, name in enumerate(self.covariates):
            x = self.X[:, j]
            for a, b in zip(bounds[:-1], bounds[1:]):
                np.maximum.accumulate(x[a:b][::-1], out=hi[a:b][::-1])
                np.minimum.accumulate(x[a:b][::-1], out=lo[a:b][::-1])
            x_ev = x[ev]
            for kind, flag in (("largest", np.all(x_ev >= hi[g])), ("smallest", np.all(x_ev <= lo[g]))):
                if flag:
                    warnings.warn(
                        f"covariate {name!r} separates the events: every subject with an event had the "
                        f"{kind} value of {name!r} in its risk set, so the data do not bound its log-HR "
                        "and its posterior is set by the prior; check the coding or use an informative prior",
                        DataWarning,
                        stacklevel=4,
                    )
                    break

    def risk_set_starts(self) -> np.ndarray:
        """For each sorted row, the first row of its stratum with the same time (its tie group).

        Rows from that index to the end of the stratum are the risk set at this
        row's time (ignoring delayed entry).
        """
        n = self.n
        new = np.ones(n, dtype=bool)
        new[1:] = (self.time[1:] != self.time[:-1]) | (self.strata[1:] != self.strata[:-1])
        return np.maximum.accumulate(np.where(new, np.arange(n), 0))

    def stratum_ends(self) -> np.ndarray:
        """For each sorted row, one past the last row of its stratum."""
        ends = np.searchsorted(self.strata, np.arange(self.n_strata), side="right")
        return ends[self.strata]
