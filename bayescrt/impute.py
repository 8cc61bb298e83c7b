"""Multiple imputation of missing covariates, with the outcome in the imputation model.

:func:`impute` makes ``m`` completed copies of a DataFrame with scikit-learn's ``IterativeImputer``
(chained equations, each column regressed on the others by Bayesian ridge regression, and each
imputed value drawn from its posterior predictive distribution: ``sample_posterior=True``), one
random state per imputation. The outcome enters the imputation model as White and Royston (2009,
Statistics in Medicine 28:1982-1998) recommend for a Cox analysis: the event indicator and the
Nelson-Aalen cumulative hazard at each row's time, never the time itself. The exposure, when named,
is a predictor like any other column. Fit the list with any estimator: ``fit(completed, ...)`` pools
the posteriors (:mod:`bayescrt.pooling`).

Continuous columns are imputed. A binary or categorical column with missing values is refused for
now (a linear model's draws are not 0/1; rounding them biases the imputations); complete binary and
categorical columns are predictors (categories one-hot). :func:`missingness` reports what is missing,
by column and by exposure group; :func:`impute` puts the same table in each copy's ``attrs``.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from . import validation
from .errors import DataError, SpecError, suggest


def nelson_aalen(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """The Nelson-Aalen cumulative hazard at each row's own time (ties: all events at a time count)."""
    t = np.asarray(time, float)
    d = np.asarray(event, float)
    order = np.argsort(t, kind="stable")
    ts, ds = t[order], d[order]
    uniq, first = np.unique(ts, return_index=True)
    events = np.add.reduceat(ds, first)
    at_risk = len(ts) - first
    H = np.cumsum(events / at_risk)
    return H[np.searchsorted(uniq, t)]


def missingness(df: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Missing values by column: ``n`` and ``%`` overall and in each group of ``by``."""
    if by is not None and by not in df.columns:
        raise SpecError(f"by={by!r} is not a column of the DataFrame.{suggest(str(by), map(str, df.columns))}")
    cols = [c for c in df.columns if c != by]
    out = pd.DataFrame({"missing": df[cols].isna().sum(), "missing %": 100 * df[cols].isna().mean()})
    if by is not None:
        for g, part in df.groupby(by, sort=True):
            out[f"missing ({by}={g})"] = part[cols].isna().sum()
            out[f"missing % ({by}={g})"] = 100 * part[cols].isna().mean()
    return out.rename_axis("column")


def _binary(s: pd.Series) -> bool:
    v = pd.unique(s.dropna())
    try:
        return len(v) > 0 and set(np.asarray(v, float).tolist()) <= {0.0, 1.0}
    except (TypeError, ValueError):
        return False


def impute(df: pd.DataFrame, *, m: int, time: str, event: str, columns: list[str] | None = None,
           exposure: str | None = None, random_seed: int, max_iter: int = 10) -> list[pd.DataFrame]:
    """``m`` completed copies of ``df`` (a list), the continuous ``columns`` with missing values imputed.

    ``time``, ``event``: the outcome, entered as the event indicator and the Nelson-Aalen cumulative
    hazard (module docstring). ``columns``: the columns in the imputation model (default: every column
    but the outcome); those with missing values must be continuous. ``exposure``: a column that must be
    complete, reported by group in the missingness table. ``random_seed``: the imputations' seeds come
    from it. ``max_iter``: rounds of chained equations per imputation. The caller's DataFrame is not
    changed; each copy's ``attrs["bayescrt_imputation"]`` records the method, its seed and the
    missingness table.
    """
    try:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer
    except ImportError:
        raise SpecError("impute needs scikit-learn: pip install 'bayescrt[impute]' (or scikit-learn)") from None
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    m = validation.integer("m", m, low=2)
    max_iter = validation.integer("max_iter", max_iter, low=1)
    seed = validation.seed("random_seed", random_seed)
    if seed is None:
        raise SpecError("random_seed= is required: the imputations must be reproducible")
    for arg, col in (("time", time), ("event", event), ("exposure", exposure)):
        if col is not None and col not in df.columns:
            raise SpecError(f"{arg}={col!r} is not a column of the DataFrame.{suggest(str(col), map(str, df.columns))}")
    columns = [c for c in df.columns if c not in (time, event)] if columns is None else list(columns)
    for c in columns:
        if c not in df.columns:
            raise SpecError(f"columns: {c!r} is not a column of the DataFrame.{suggest(str(c), map(str, df.columns))}")
        if c in (time, event):
            raise SpecError(f"columns: {c!r} is the outcome; it enters the imputation model as the event and "
                            "the Nelson-Aalen cumulative hazard")
    if exposure is not None and exposure not in columns:
        columns = [exposure, *columns]
    problems = []
    for arg, col in (("time", time), ("event", event), ("exposure", exposure)):
        if col is not None and df[col].isna().any():
            problems.append(f"{arg} column {col!r} has {int(df[col].isna().sum())} missing values; it must be "
                            "complete (impute covariates, not the outcome or the exposure)")
    t = pd.to_numeric(df[time], errors="coerce").to_numpy(float)
    e = df[event].to_numpy()
    if not problems and (not np.isfinite(t).all() or not set(pd.unique(e)) <= {0, 1, True, False}):
        problems.append(f"time {time!r} must be finite numbers and event {event!r} 0/1; check them with "
                        "bc.CoxPH().prepare(...) first")
    incomplete = [c for c in columns if df[c].isna().any()]
    for c in incomplete:
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or _binary(s):
            problems.append(f"column {c!r} has {int(s.isna().sum())} missing values but is binary or categorical; "
                            "impute() draws continuous columns only (a linear model's draws are not categories)")
    if problems:
        raise DataError(problems)
    if not incomplete:
        raise DataError(f"no column of {columns} has missing values; there is nothing to impute")
    # the imputation model's matrix: numeric columns as they are, complete categoricals one-hot, the outcome
    parts = []
    for c in columns:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            parts.append(s.astype(float).rename(c))
        else:
            parts.append(pd.get_dummies(s, prefix=f"{c}=", dtype=float, drop_first=True))
    outcome = pd.DataFrame({"__event": e.astype(float), "__nelson_aalen": nelson_aalen(t, e.astype(float))},
                           index=df.index)
    Z = pd.concat([*parts, outcome], axis=1)
    where = {c: Z.columns.get_loc(c) for c in incomplete}
    table = missingness(df[columns], by=exposure).to_dict()
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(m)]
    out = []
    for k, sk in enumerate(seeds):
        imp = IterativeImputer(sample_posterior=True, random_state=sk, max_iter=max_iter, skip_complete=True)
        filled = imp.fit_transform(Z.to_numpy(float))
        done = df.copy()
        for c, j in where.items():
            miss = df[c].isna().to_numpy()
            vals = done[c].astype(float).to_numpy()
            vals[miss] = filled[miss, j]
            done[c] = vals
        done.attrs = copy.deepcopy(df.attrs)
        done.attrs["bayescrt_imputation"] = {
            "method": "chained equations (scikit-learn IterativeImputer, Bayesian ridge, posterior draws); "
                      "outcome as event and Nelson-Aalen cumulative hazard (White and Royston 2009)",
            "imputation": k, "m": m, "seed": sk, "random_seed": seed, "imputed": incomplete,
            "missing": {c: int(df[c].isna().sum()) for c in incomplete}, "missingness": table}
        out.append(done)
    return out
