"""Multiple imputation of missing covariates, with the outcome in the imputation model.

:func:`impute` makes ``m`` completed copies of a DataFrame by chained equations (fully conditional
specification, van Buuren 2018, *Flexible Imputation of Missing Data*, 2nd ed., sections 4.5 and
6.2): each incomplete column in turn is regressed on every other column and the outcome, and its
missing values are drawn afresh, for ``max_iter`` rounds, starting from random draws of its observed
values. The models are scikit-learn's, one per kind of column, and each draw carries the uncertainty
of the model's parameters ("proper" imputation, Rubin 1987):

- a continuous column: Bayesian linear regression (``BayesianRidge``); coefficients are drawn from
  their posterior, then each value from the normal predictive around them (mice's ``norm``);
- a binary or categorical column: logistic regression (``LogisticRegression``, multinomial for more
  than two levels, a mild L2 penalty on standardised predictors that keeps separated data finite),
  fitted to a bootstrap sample of the observed rows, each value drawn from its predicted
  probabilities (mice's ``logreg.boot``); only levels that were observed are drawn.

The outcome enters every model as White and Royston (2009, Statistics in Medicine 28:1982-1998)
recommend for a Cox analysis: the event indicator and the Nelson-Aalen cumulative hazard at each
row's time, never the time itself. With competing events (an event column coding 0 censored and
1..K the causes, :func:`bayescrt.causes.event_causes`) it enters as every cause's indicator and
cause-specific Nelson-Aalen cumulative hazard, the extension to cause-specific Cox models that
Bonneville et al. (2022, Statistical Methods in Medical Research 31:1860-1880) assess. The exposure, when named, is a predictor like any other column
and must be complete. Fit the list with any estimator: ``fit(completed, ...)`` pools the posteriors
(:mod:`bayescrt.pooling`). :func:`missingness` reports what is missing, by column and by exposure
group; :func:`impute` puts the same table in each copy's ``attrs``.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd

from . import validation
from .errors import DataError, DataWarning, SpecError, suggest


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


MIN_REPORTED_IMPUTATIONS = 20  # Zhou and Reiter (2010): fewer imputations give intervals that undercover
MAX_LEVELS = 50  # a text column with more levels than this is taken for an identifier, not a covariate


def check_frames(frames) -> list[pd.DataFrame]:
    """A list of completed DataFrames: at least two, with the same columns and the same rows."""
    if isinstance(frames, pd.DataFrame) or not isinstance(frames, (list, tuple)):
        raise SpecError("imputed data must be a list of completed DataFrames, e.g. bc.impute(df, m=20)")
    frames = list(frames)
    if len(frames) < 2:
        raise SpecError(f"imputed data: {len(frames)} completed DataFrame given; pooling needs at least 2 "
                        f"(Zhou and Reiter 2010 use 100; {MIN_REPORTED_IMPUTATIONS} is a floor for a reported analysis)")
    for k, f in enumerate(frames):
        if not isinstance(f, pd.DataFrame):
            raise SpecError(f"imputed data: item {k} is a {type(f).__name__}, not a DataFrame")
        if list(f.columns) != list(frames[0].columns):
            raise SpecError(f"imputed data: DataFrame {k} has columns {list(f.columns)}, DataFrame 0 has "
                            f"{list(frames[0].columns)}; every imputation must complete the same data")
        if not f.index.equals(frames[0].index):
            raise SpecError(f"imputed data: DataFrame {k} has other rows (index) than DataFrame 0; every "
                            "imputation must complete the same rows")
    return frames


def same_outcome(frames, time, event, entry=None) -> list[pd.DataFrame]:
    """The completed DataFrames of an imputation (:func:`bayescrt.impute.check_frames`), their outcome checked to
    be the same in each: the imputations complete covariates, never the time or the cause."""
    frames = check_frames(frames)
    for k, f in enumerate(frames[1:], start=1):
        for col in (time, event, entry):
            if col is not None and col in f.columns and not f[col].equals(frames[0][col]):
                raise SpecError(f"imputed data: column {col!r} differs between DataFrame {k} and DataFrame 0; the "
                                "imputations complete covariates, and the outcome must be the same in each")
    return frames


def _kind(s: pd.Series) -> str:
    """``"continuous"``, ``"discrete"`` (binary or categorical: drawn from observed levels) or ``"other"``."""
    if pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
        return "discrete"
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_complex_dtype(s):
        v = pd.unique(s.dropna())
        return "discrete" if len(v) and set(np.asarray(v, float).tolist()) <= {0.0, 1.0} else "continuous"
    if pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
        return "discrete"
    return "other"


def _levels(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    v = list(pd.unique(s.dropna()))
    try:
        return sorted(v)
    except TypeError:
        return sorted(v, key=str)


def _encode(values: np.ndarray, kind: str, levels: list) -> np.ndarray:
    """A column as predictors: itself (continuous) or one indicator per level but the first."""
    if kind == "continuous":
        return values.astype(float)[:, None]
    return np.stack([values == lv for lv in levels[1:]], axis=1).astype(float) if len(levels) > 1 else \
        np.zeros((len(values), 0))


def _draw_continuous(X: np.ndarray, y: np.ndarray, Xmiss: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from sklearn.linear_model import BayesianRidge

    br = BayesianRidge().fit(X, y)
    beta = rng.multivariate_normal(br.coef_, br.sigma_, method="cholesky") if X.shape[1] else br.coef_
    mu = br.intercept_ + br.X_offset_ @ br.coef_ + (Xmiss - br.X_offset_) @ beta
    return mu + rng.normal(0.0, 1.0 / np.sqrt(br.alpha_), len(mu))


def _draw_discrete(X: np.ndarray, y: np.ndarray, Xmiss: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices into the levels (y holds indices): a logistic fit to a bootstrap sample, draws from its probabilities."""
    from sklearn.linear_model import LogisticRegression

    boot = rng.integers(0, len(y), len(y))
    yb = y[boot]
    classes = np.unique(yb)
    if len(classes) == 1:
        return np.full(len(Xmiss), classes[0])
    prob = LogisticRegression(solver="newton-cholesky", max_iter=100).fit(X[boot], yb).predict_proba(Xmiss)
    u = rng.random(len(Xmiss))[:, None]
    return classes[np.minimum((u > np.cumsum(prob, axis=1)).sum(axis=1), len(classes) - 1)]


def _outcome(df: pd.DataFrame, t: np.ndarray, event: str, causes, censored) -> tuple[np.ndarray, list[str] | None]:
    """The outcome's predictors: the event indicator and Nelson-Aalen cumulative hazard, or with competing events
    (codes other than 0/1, or ``causes`` given) each cause's indicator and cause-specific one; and the causes."""
    e = df[event].to_numpy()
    if causes is None and set(pd.unique(e)) <= {0, 1, True, False}:
        ef = e.astype(float)
        return np.column_stack([ef, nelson_aalen(t, ef)]), None
    from .causes import event_causes

    codes, names = event_causes(df, event, causes, censored)
    return np.column_stack([v for k in range(1, len(names) + 1)
                            for d in [(codes == k).astype(float)] for v in (d, nelson_aalen(t, d))]), names


def impute(df: pd.DataFrame, *, m: int, time: str, event: str, columns: list[str] | None = None,
           exposure: str | None = None, random_seed: int, max_iter: int = 10, causes=None,
           censored: str = "censored") -> list[pd.DataFrame]:
    """``m`` completed copies of ``df`` (a list), the missing values of ``columns`` imputed.

    ``time``, ``event``: the outcome, entered as the event indicator and the Nelson-Aalen cumulative
    hazard (module docstring); an event column of competing events (0 censored, 1..K the causes, or text
    labels with ``censored=`` the label of censoring and ``causes=`` naming them, as
    :class:`bayescrt.CompetingRisks` reads it) enters as every cause's indicator and cumulative hazard. ``columns``: the columns in the imputation model (default: every column
    but the outcome): numbers (continuous, or binary when every value is 0 or 1), booleans, and text or
    categorical columns (drawn from their observed levels; a categorical keeps its dtype). ``exposure``: a column that must be
    complete, reported by group in the missingness table. ``random_seed``: the imputations' seeds come
    from it. ``max_iter``: rounds of chained equations per imputation. The caller's DataFrame is not
    changed; each copy's ``attrs["bayescrt_imputation"]`` records the method, its seed and the
    missingness table.
    """
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SpecError("impute needs scikit-learn, a dependency of bayescrt: pip install scikit-learn") from None
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
    if time == event:
        raise SpecError(f"time={time!r} and event={event!r} name one column; the outcome needs both")
    if exposure is not None and exposure in (time, event):
        raise SpecError(f"exposure={exposure!r} is the outcome's {'time' if exposure == time else 'event'} column; it "
                        "enters the imputation model as the outcome, not as the exposure")
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
    if not problems and not np.isfinite(t).all():
        problems.append(f"time {time!r} must be finite numbers; check them with bc.CoxPH().prepare(...) first")
    kinds = {c: _kind(df[c]) for c in columns}
    levels = {c: _levels(df[c]) for c in columns if kinds[c] == "discrete"}
    for c in columns:
        if kinds[c] == "other":
            problems.append(f"column {c!r} has dtype {df[c].dtype}; impute() takes numbers, booleans and categories "
                            f"(convert it, or leave it out with columns=)")
        elif kinds[c] == "discrete" and len(levels[c]) > MAX_LEVELS:
            problems.append(f"column {c!r} has {len(levels[c])} distinct values; an identifier is not a predictor "
                            f"(leave it out with columns=, or make it numeric if it is a measurement)")
        elif kinds[c] == "discrete" and df[c].isna().any() and len(levels[c]) < 2:
            problems.append(f"column {c!r} has missing values and only one observed level, {levels[c][0]!r}; there "
                            "is nothing to draw from")
    incomplete = [c for c in columns if df[c].isna().any()]
    if problems:
        raise DataError(problems)
    outcome, cause_names = _outcome(df, t, event, causes, censored)  # a bad event code is an error naming it
    if not incomplete:
        raise DataError(f"no column of {columns} has missing values; there is nothing to impute")
    for c in incomplete:
        v = pd.unique(df[c].dropna())
        if kinds[c] == "continuous" and len(v) <= 5 and np.all(np.mod(np.asarray(v, float), 1) == 0):
            warnings.warn(f"column {c!r} has {len(v)} integer values ({sorted(int(x) for x in v)}) and is imputed "
                          f"as continuous (draws between them); if it is a class, pass it as a category: "
                          f"df.astype({{{c!r}: 'category'}})", DataWarning, stacklevel=2)
    order = sorted(incomplete, key=lambda c: df[c].isna().sum())  # fewest missing first, as mice and scikit-learn
    missing_rows = {c: df[c].isna().to_numpy() for c in incomplete}
    table = missingness(df[columns], by=exposure).to_dict()
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(m)]
    out = []
    for k, sk in enumerate(seeds):
        rng = np.random.default_rng(sk)
        # current values: continuous as floats, discrete as indices into their levels (-1 while missing)
        cur = {}
        for c in columns:
            cur[c] = df[c].astype(float).to_numpy() if kinds[c] == "continuous" else _indices(df[c], levels[c])
        for c in order:  # start from random draws of the observed values
            miss = missing_rows[c]
            cur[c][miss] = rng.choice(cur[c][~miss], miss.sum())
        blocks = {c: _encode(cur[c], kinds[c], list(range(len(levels[c]))) if c in levels else None)
                  for c in columns}
        for _ in range(max_iter):
            for c in order:
                miss = missing_rows[c]
                X = np.column_stack([*(blocks[o] for o in columns if o != c), outcome])
                sd = X.std(axis=0)
                X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
                draw = _draw_continuous if kinds[c] == "continuous" else _draw_discrete
                cur[c][miss] = draw(X[~miss], cur[c][~miss], X[miss], rng)
                blocks[c] = _encode(cur[c], kinds[c], list(range(len(levels[c]))) if c in levels else None)
        done = df.copy()
        for c in incomplete:
            miss = missing_rows[c]
            col = done[c].copy()
            if kinds[c] == "continuous":
                col = col.astype(float)
                col[miss] = cur[c][miss]
            else:
                col[miss] = pd.Series([levels[c][i] for i in cur[c][miss]], index=col.index[miss], dtype=col.dtype)
                if col.dtype == object and kinds[c] == "discrete" and all(
                        isinstance(v, (bool, np.bool_)) for v in levels[c]):
                    col = col.astype(bool)
            done[c] = col
        done.attrs = copy.deepcopy(df.attrs)
        done.attrs["bayescrt_imputation"] = {
            "method": "chained equations (scikit-learn: BayesianRidge with coefficient draws for continuous columns, "
                      "bootstrap LogisticRegression for binary and categorical ones); outcome as "
                      + ("event and Nelson-Aalen cumulative hazard (White and Royston 2009)" if cause_names is None
                         else "each cause's indicator and cause-specific Nelson-Aalen cumulative hazard (White and "
                              "Royston 2009; Bonneville et al. 2022)"),
            "causes": cause_names,
            "imputation": k, "m": m, "seed": sk, "random_seed": seed, "imputed": incomplete,
            "kinds": {c: kinds[c] for c in incomplete}, "max_iter": max_iter,
            "missing": {c: int(df[c].isna().sum()) for c in incomplete}, "missingness": table}
        out.append(done)
    return out


def _indices(s: pd.Series, levels: list) -> np.ndarray:
    """Each value's index in ``levels``, -1 where missing."""
    codes = pd.Categorical(s, categories=levels).codes
    return np.asarray(codes, dtype=np.int64)
