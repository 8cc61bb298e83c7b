"""The baseline table of a cohort ("Table 1"): each covariate summarised overall and by exposure group.

:func:`baseline_table` follows the conventions of R's tableone and its Python port:

- continuous columns as mean (SD), or median [Q1, Q3] for those named in ``nonnormal``;
- categorical columns (strings, pandas Categoricals, booleans, and numbers named in ``categorical``) as
  n (%) per level; a 0/1 or boolean column shows the count of 1 (True) on one row;
- percentages of the rows where the column is known, and the missing count of each column in ``Missing``;
- the standardised mean difference between each pair of groups: for a continuous column the difference
  of means over ``sqrt((s1^2 + s2^2) / 2)``, for a binary one the same with ``p (1 - p)`` as the
  variance, and for a categorical one with k levels Yang and Dalton's (2012) multivariate form
  ``sqrt(d' S^-1 d)``, ``d`` the differences of the k - 1 non-reference proportions and ``S`` the mean
  of the two groups' multinomial covariance matrices.

The table is a DataFrame of strings indexed by (variable, level), ready to print or write; the numbers
behind it are in ``tab.attrs["bayescrt_table_one"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError, SpecError, suggest


def _kind(s: pd.Series, categorical: set, name: str) -> str:
    if name in categorical or isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s) \
            or pd.api.types.is_string_dtype(s):
        return "binary" if _is_binary(s) and name not in categorical else "categorical"
    if pd.api.types.is_bool_dtype(s):
        return "binary"
    if pd.api.types.is_numeric_dtype(s):
        return "binary" if _is_binary(s) else "continuous"
    raise DataError(f"column {name!r} has dtype {s.dtype}, which a baseline table cannot summarise; convert it "
                    "to numbers or categories first (dates: compute durations or ages)")


def _is_binary(s: pd.Series) -> bool:
    vals = pd.unique(s.dropna())
    if pd.api.types.is_bool_dtype(s) or (len(vals) and all(isinstance(v, (bool, np.bool_)) for v in vals)):
        return True
    try:
        return len(vals) > 0 and set(np.asarray(vals, float).tolist()) <= {0.0, 1.0}
    except (TypeError, ValueError):
        return False


def _smd_continuous(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:  # no SD in a group: undefined, shown as '-'
        return np.nan
    sd = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    return float(abs(a.mean() - b.mean()) / sd) if sd > 0 else (0.0 if a.mean() == b.mean() else np.inf)


def _smd_categorical(pa: np.ndarray, pb: np.ndarray) -> float:
    """Yang and Dalton (2012): proportions of the levels after the first, multinomial covariance."""
    d = (pa - pb)[1:]
    cov = lambda p: np.diag(p[1:]) - np.outer(p[1:], p[1:])  # noqa: E731
    S = (cov(pa) + cov(pb)) / 2
    if not np.isfinite(d).all():
        return np.nan
    if not d.any():
        return 0.0
    vals, vecs = np.linalg.eigh(S)
    null = vecs[:, vals <= 1e-12 * max(vals.max(), 1e-300)]
    if null.size and np.abs(null.T @ d).max() > 1e-9:  # the groups differ where neither varies: separated
        return np.inf
    keep = vals > 1e-12 * max(vals.max(), 1e-300)
    proj = vecs[:, keep].T @ d
    return float(np.sqrt(np.sum(proj ** 2 / vals[keep])))


def _fmt(x: float, decimals: int) -> str:
    return "-" if np.isnan(x) else f"{x:.{decimals}f}"


def baseline_table(df: pd.DataFrame, by: str | None = None, columns: list[str] | None = None, *,
                   nonnormal: list[str] | tuple = (), categorical: list[str] | tuple = (), decimals: int = 1,
                   smd: bool = True, overall: bool = True) -> pd.DataFrame:
    """Table 1 of ``df``: every column in ``columns`` (default: all but ``by``) overall and by ``by``.

    ``nonnormal``: continuous columns shown as median [Q1, Q3] rather than mean (SD). ``categorical``:
    numeric columns to show per level (strings, Categoricals and booleans are categorical already).
    ``decimals``: digits after the point. ``smd``: standardised mean differences between each pair of
    groups (module docstring). A missing value in ``by`` is an error: its rows belong to no group.
    """
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    if by is not None and by not in df.columns:
        raise SpecError(f"by={by!r} is not a column of the DataFrame.{suggest(str(by), map(str, df.columns))}")
    if isinstance(columns, str) or (columns is not None and len(set(columns)) < len(list(columns))):
        raise SpecError(f"columns={columns!r} must be a list of distinct column names, e.g. ['age', 'male']")
    if df.columns.duplicated().any():
        raise DataError(f"columns {sorted(set(map(str, df.columns[df.columns.duplicated()])))} appear more than once; "
                        "rename them (df.columns.duplicated() finds them)")
    columns = [c for c in df.columns if c != by] if columns is None else list(columns)
    for arg, names in (("columns", columns), ("nonnormal", nonnormal), ("categorical", categorical)):
        for c in names:
            if c not in df.columns:
                raise SpecError(f"{arg}: {c!r} is not a column of the DataFrame.{suggest(str(c), map(str, df.columns))}")
            if c == by:
                raise SpecError(f"{arg}: {c!r} is the grouping column by={by!r}; it cannot also be summarised")
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or not 0 <= decimals <= 6:
        raise SpecError(f"decimals={decimals!r} must be an integer from 0 to 6")
    if len(df) == 0:
        raise DataError("the DataFrame has no rows; a baseline table needs at least one")
    groups: dict[str, pd.Series] = {}
    if by is not None:
        g = df[by]
        if g.isna().any():
            rows = list(df.index[g.isna()][:3])
            raise DataError(f"by column {by!r} has {int(g.isna().sum())} missing values (rows {rows}); their rows "
                            "belong to no group: fill them in or drop them explicitly")
        levels = g.cat.categories if isinstance(g.dtype, pd.CategoricalDtype) else sorted(pd.unique(g), key=str)
        names = [str(v) for v in levels]
        if len(set(names)) < len(names):
            raise DataError(f"by column {by!r} has distinct values that print the same ({sorted(levels, key=str)}), "
                            "e.g. 1 and '1'; make the column one type first")
        empty = [str(v) for v in levels if not (g == v).any()]
        if empty:
            raise DataError(f"by column {by!r} has categories with no rows {empty}; drop them first "
                            f"(df[{by!r}].cat.remove_unused_categories())")
        groups = {str(v): (g == v).to_numpy() for v in levels}
    cols = (["Overall"] if overall or by is None else []) + list(groups)
    masks = {"Overall": np.ones(len(df), bool), **groups}
    pairs = [(a, b) for i, a in enumerate(groups) for b in list(groups)[i + 1:]] if smd else []
    cat, nonnormal = set(categorical), set(nonnormal)
    records, numbers = [], {}

    def row(var, level, cells, missing="", smds=None):
        records.append(((var, level), {**cells, "Missing": missing,
                                       **{f"SMD ({a}, {b})": ("" if smds is None else smds[k])
                                          for k, (a, b) in enumerate(pairs)}}))

    row("n", "", {c: str(int(masks[c].sum())) for c in cols})
    for name in columns:
        s = df[name]
        if s.isna().all():
            row(f"{name}", "", {c: "-" for c in cols}, str(int(s.isna().sum())))
            numbers[name] = {"kind": "all missing"}
            continue
        kind = _kind(s, cat, name)
        if kind == "continuous" and name in cat:
            kind = "categorical"
        if kind != "continuous" and name in nonnormal:
            raise SpecError(f"nonnormal: {name!r} is {kind} here (counts and percentages); nonnormal names continuous "
                            f"columns to show as median [Q1, Q3]: drop it from nonnormal"
                            + (" or from categorical" if name in cat else ""))
        n_miss = int(s.isna().sum())
        known = s.notna().to_numpy()
        if kind == "continuous":
            x = s.to_numpy(float)
            if not np.isfinite(x[known]).all():
                raise DataError(f"column {name!r} has infinite values; a baseline table summarises finite numbers")
            med = name in nonnormal
            cells, vals = {}, {}
            for c in cols:
                v = x[masks[c] & known]
                if not len(v):
                    cells[c] = "-"
                    continue
                if med:
                    q = np.quantile(v, [0.5, 0.25, 0.75])
                    cells[c] = f"{_fmt(q[0], decimals)} [{_fmt(q[1], decimals)}, {_fmt(q[2], decimals)}]"
                    vals[c] = q.tolist()
                else:
                    sd = float(np.std(v, ddof=1)) if len(v) > 1 else np.nan
                    cells[c] = f"{_fmt(v.mean(), decimals)} ({_fmt(sd, decimals)})"
                    vals[c] = [float(v.mean()), sd]
            smds = [_smd_continuous(x[groups[a] & known], x[groups[b] & known]) for a, b in pairs]
            row(f"{name}, {'median [Q1, Q3]' if med else 'mean (SD)'}", "", cells, str(n_miss),
                [_fmt(v, 3) for v in smds])
            numbers[name] = {"kind": "continuous", "values": vals, "smd": dict(zip(map(str, pairs), smds))}
            continue
        if kind == "binary":
            one = s.map(lambda v: float(v) == 1.0 if pd.notna(v) else np.nan)
            cells, props = {}, {}
            for c in cols:
                v = one[masks[c] & known].astype(bool).to_numpy()
                props[c] = v.mean() if len(v) else np.nan
                cells[c] = f"{int(v.sum())} ({_fmt(100 * props[c], decimals)})" if len(v) else "-"
            smds = [_smd_categorical(np.array([1 - props[a], props[a]]), np.array([1 - props[b], props[b]]))
                    for a, b in pairs]
            row(f"{name}, n (%)", "", cells, str(n_miss), [_fmt(v, 3) for v in smds])
            numbers[name] = {"kind": "binary", "proportion": props, "smd": dict(zip(map(str, pairs), smds))}
            continue
        levels = (list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
                  else sorted(pd.unique(s.dropna()), key=lambda v: (str(type(v)), v)))
        props = {c: np.array([((s == lv).to_numpy() & masks[c]).sum() for lv in levels], float)
                 / max((masks[c] & known).sum(), 1) for c in cols}
        smds = [_smd_categorical(props[a], props[b]) for a, b in pairs]
        for k, lv in enumerate(levels):
            cells = {c: f"{int(((s == lv).to_numpy() & masks[c]).sum())} ({_fmt(100 * props[c][k], decimals)})"
                     for c in cols}
            row(f"{name}, n (%)", str(lv), cells, str(n_miss) if k == 0 else "",
                [_fmt(v, 3) for v in smds] if k == 0 else None)
        numbers[name] = {"kind": "categorical", "levels": [str(v) for v in levels],
                         "proportions": {c: p.tolist() for c, p in props.items()}, "smd": dict(zip(map(str, pairs), smds))}
    index = pd.MultiIndex.from_tuples([r[0] for r in records], names=["variable", "level"])
    tab = pd.DataFrame([r[1] for r in records], index=index)
    tab.attrs["bayescrt_table_one"] = {"by": by, "groups": list(groups), "variables": numbers}
    return tab
