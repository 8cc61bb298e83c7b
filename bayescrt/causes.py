"""The event column of competing risks: ``0`` censored and ``1..K`` the causes, or text labels.

:func:`event_causes` checks it and returns integer codes and the causes' names: missing or unknown codes, a
cause with no events and censoring named as a cause are ``DataError``/``SpecError`` naming the column and the
values. Shared by the cause-specific fits (:mod:`bayescrt.competing`) and the subdistribution model
(:mod:`bayescrt.families.finegray`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError, SpecError, suggest

CENSORED = 0
EVENT_COLUMN = "_cause_event"  # the 0/1 column of one cause's fit (added to a copy of the frame)


def event_causes(df: pd.DataFrame, event: str, causes=None, censored="censored") -> tuple[np.ndarray, list[str]]:
    """The event column as integer codes (0 censored, 1..K the causes) and the causes' names, in code order.

    A numeric column: integer codes ``0..K``; ``causes`` may name them (``{1: "hf_hosp", 2: "death"}`` or a
    list for codes 1..K), else they are ``"cause 1"``, ... A text or categorical column: ``censored`` is the
    label of censoring, the other labels are the causes (in the order of ``causes``, a list, if given; else
    sorted). Every cause must have events."""
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    if not isinstance(event, str) or event not in df.columns:
        raise SpecError(f"event={event!r} is not a column of the DataFrame.{suggest(str(event), map(str, df.columns))}")
    s = df[event]
    if len(s) == 0:
        raise DataError("df has no rows; nothing to fit")
    if s.isna().any():
        rows = list(df.index[s.isna()][:5])
        raise DataError(f"event column {event!r} has {int(s.isna().sum())} missing values (rows {rows}); every row "
                        "needs 0 (censored) or a cause")
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if numeric:
        v = s.to_numpy(float)
        bad = ~np.isfinite(v) | (v != np.round(v)) | (v < 0)
        if bad.any():
            shown = sorted({f"{x:g}" for x in v[bad]})[:5]
            raise DataError(f"event column {event!r} has values {shown} (rows {list(df.index[bad][:5])}); code it 0 for "
                            "censored and 1, 2, ... for the causes")
        codes = v.astype(np.int64)
        present = sorted(set(codes.tolist()) - {CENSORED})
        if causes is None:
            names = {k: f"cause {k}" for k in present}
        elif isinstance(causes, dict):
            names = dict(causes)
        elif isinstance(causes, (list, tuple)):
            names = {k + 1: c for k, c in enumerate(causes)}
        else:
            raise SpecError(f"causes={causes!r} must map codes to names ({{1: 'hf_hosp', 2: 'death'}}) or list the "
                            "names of codes 1, 2, ...")
        if CENSORED in names:
            raise SpecError(f"causes={causes!r} names code 0, which is censoring, not a cause; name codes 1, 2, ... only")
        for k, name in names.items():
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise SpecError(f"causes: key {k!r} must be a cause's code, an integer >= 1")
        unknown = sorted(set(present) - set(names))
        if unknown:
            raise DataError(f"event column {event!r} has codes {unknown} that causes={causes!r} does not name; name "
                            "every cause, or recode those rows")
        order = sorted(names)
    else:
        labels = s.astype(str).to_numpy()
        present = sorted(set(labels.tolist()) - {str(censored)})
        if causes is not None and not (isinstance(causes, (list, tuple)) and all(isinstance(c, str) for c in causes)):
            raise SpecError(f"causes={causes!r}: for a text event column, list the cause labels, e.g. "
                            f"causes={present[:2]}")
        if causes is None and str(censored) not in set(labels.tolist()):  # censoring may be coded as a "cause"
            guess = next((x for x in present if any(w in x.lower() for w in ("cens", "alive", "none"))), present[0])
            raise DataError(f"event column {event!r} has labels {present} and none is censored={censored!r}; if "
                            f"{guess!r} means censored, pass censored={guess!r}; if no row is censored, list the "
                            "causes with causes=[...]")
        listed = list(causes) if causes is not None else present
        if str(censored) in listed:
            raise SpecError(f"causes={listed!r} lists {censored!r}, the label of censoring (censored={censored!r}); "
                            "censoring is not a cause")
        unknown = sorted(set(present) - set(listed))
        if unknown:
            raise DataError(f"event column {event!r} has labels {unknown} that are neither censored={censored!r} nor a "
                            f"listed cause {listed}; list them in causes=, or pass censored= the label of censoring")
        lookup = {c: k + 1 for k, c in enumerate(listed)}
        codes = np.array([0 if x == str(censored) else lookup[x] for x in labels], np.int64)
        names = {k + 1: c for k, c in enumerate(listed)}
        order = sorted(names)
    out = [str(names[k]) for k in order]
    if len(set(out)) < len(out):
        raise SpecError(f"causes: the names {out} repeat; give each cause its own name")
    counts = {name: int((codes == k).sum()) for k, name in zip(order, out)}
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise DataError(f"cause {empty[0]!r} has no events in column {event!r}; a cause-specific hazard needs events: "
                        "drop it from causes=")
    if len(order) < 2:
        raise DataError(f"event column {event!r} has one cause only ({out}); with one cause there is no competing "
                        "event: fit it with bc.CoxPH() (or another family) and event = that cause")
    recode = np.zeros(len(codes), np.int64)
    for new, k in enumerate(order, start=1):
        recode[codes == k] = new
    return recode, out


def cause_names(causes) -> list[str] | None:
    """The causes' names as ``causes=`` gives them (a list, or a dict of code -> name), ``None`` if it does not."""
    if isinstance(causes, dict):
        return [str(v) for v in causes.values()]
    if isinstance(causes, (list, tuple)) and all(isinstance(c, str) for c in causes):
        return list(causes)
    return None


def censoring_causes(cause: str, causes) -> str:
    """The causes that censor ``cause`` in its cause-specific fit, for a sentence: ``'death'``, ``'a and b'``."""
    others = [n for n in cause_names(causes) or [] if n != cause]
    return " and ".join(others) if others else "every other cause"


def with_cause_event(df: pd.DataFrame, event: str, cause: str, causes=None, censored="censored") -> pd.DataFrame:
    """A copy of ``df`` with :data:`EVENT_COLUMN`, the 0/1 event of ``cause`` (the other causes censor it), for a
    cause-specific fit of a one-event family; the codes are checked by :func:`event_causes` first."""
    if EVENT_COLUMN in df.columns:
        raise SpecError(f"the data have a column {EVENT_COLUMN!r}, the name given to the 0/1 event of cause "
                        f"{cause!r}; rename it")
    codes, names = event_causes(df, event, causes, censored)
    if cause not in names:
        raise SpecError(f"cause={cause!r} is not a cause of event column {event!r}.{suggest(str(cause), names)} "
                        f"Causes: {names}")
    return df.assign(**{EVENT_COLUMN: (codes == names.index(cause) + 1).astype(np.int64)})


def check_event_role(event: str, **roles) -> None:
    """The event column must not also be the time, entry, weights, strata or cluster column, nor a covariate: the
    fits replace it by a 0/1 column of their own, which would hide that clash from the data checks."""
    for role, value in roles.items():
        names = value if isinstance(value, (list, tuple)) else [value]
        if event in [v for v in names if isinstance(v, str)]:
            raise SpecError(f"event={event!r} is also {role}=; the event column codes the causes and must be a "
                            "column of its own")
