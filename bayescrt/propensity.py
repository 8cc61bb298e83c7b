"""Propensity scores beside the adjustment sets: weights, covariate balance, and the weighted Cox fit.

:func:`propensity_weights` fits a logistic model of the exposure on the covariates (scikit-learn's
``LogisticRegression`` without a penalty: the maximum-likelihood propensity model) and weighs each row:

- ``"ipw"`` (the average treatment effect in the whole cohort): ``1 / e`` for the exposed, ``1 / (1 - e)``
  for the others;
- ``"overlap"`` (the effect in the population where both exposures are plausible; Li, Morgan and
  Zaslavsky 2018): ``1 - e`` for the exposed, ``e`` for the others. With a logistic model these weights
  balance every covariate's mean exactly.

Weights are scaled to a mean of 1 in each exposure group, so that the weighted likelihood counts as many
rows as the cohort has. :meth:`PropensityWeights.balance` is the standardised mean difference of every
design column before and after weighting (weighted means over the root mean of the two groups'
weighted variances; a binary column's variance is ``p (1 - p)``), with 0.1 the usual threshold, and
:meth:`PropensityWeights.plot_balance` draws it as a love plot. :meth:`PropensityWeights.fit` is the
Bayesian Cox fit of the exposure alone with the weights as case weights.

**How the weights' uncertainty is treated**: it is not. The weights are fixed at the propensity model's
maximum-likelihood fit, and the weighted partial likelihood is used as if it were a likelihood; the
posterior therefore ignores the propensity model's estimation, and its width is an approximation (the
frequentist analogue is the robust sandwich variance). ``WEIGHTS_STATEMENT`` says so in every output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError, SpecError, suggest

ESTIMANDS = {"ipw": "average effect in the cohort (inverse-probability weights)",
             "overlap": "average effect in the overlap population (overlap weights)"}
WEIGHTS_STATEMENT = (
    "Fixed weights: the propensity model's uncertainty is not propagated into the posterior, and the weighted "
    "partial likelihood is treated as a likelihood, so the interval is approximate.")
WEIGHT_COLUMN = "propensity_weight"
SEPARATION = 1e-8  # a score this close to 0 or 1: the covariates determine the exposure (positivity fails)


def _design(df: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """The covariates as numbers: a text or categorical column as 0/1 columns of its levels after the first."""
    parts = []
    for c in covariates:
        s = df[c]
        if s.isna().any():
            raise DataError(f"covariate {c!r} has {int(s.isna().sum())} missing values; the propensity model needs "
                            "complete covariates (impute them first, bc.impute)")
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            if not np.isfinite(s.astype(float)).all():
                raise DataError(f"covariate {c!r} has infinite values (rows {list(df.index[~np.isfinite(s.astype(float))][:5])}); "
                                "fix or drop them before fitting a propensity model")
            parts.append(s.astype(float).rename(c))
        elif isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s) \
                or pd.api.types.is_string_dtype(s):
            levels = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else sorted(pd.unique(s), key=str)
            for lev in levels[1:]:
                parts.append((s == lev).astype(float).rename(f"{c}[{lev} vs {levels[0]}]"))
        else:
            raise DataError(f"covariate {c!r} has dtype {s.dtype}; give numbers, booleans or categories")
    return pd.concat(parts, axis=1)


def _smd(X: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The absolute standardised mean difference of each column between z = 1 and z = 0, weighted by ``w``."""
    out = []
    for x in X.T:
        stats = []
        for g in (1, 0):
            m = z == g
            mean = np.average(x[m], weights=w[m])
            binary = set(np.unique(x)) <= {0.0, 1.0}
            var = mean * (1 - mean) if binary else np.average((x[m] - mean) ** 2, weights=w[m])
            stats.append((mean, var))
        (m1, v1), (m0, v0) = stats
        sd = np.sqrt((v1 + v0) / 2)
        out.append(abs(m1 - m0) / sd if sd > 0 else 0.0)
    return np.array(out)


def propensity_weights(df: pd.DataFrame, *, exposure: str, covariates, estimand: str = "ipw") -> "PropensityWeights":
    """Propensity scores of ``exposure`` (0/1) from ``covariates`` and the ``estimand``'s weights (module
    docstring). The caller's DataFrame is not changed."""
    from sklearn.linear_model import LogisticRegression

    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    if estimand not in ESTIMANDS:
        raise SpecError(f"estimand={estimand!r}: choose one of {list(ESTIMANDS)}.{suggest(str(estimand), ESTIMANDS)}")
    if not isinstance(exposure, str) or exposure not in df.columns:
        raise SpecError(f"exposure={exposure!r} is not a column of the DataFrame.{suggest(str(exposure), map(str, df.columns))}")
    if isinstance(covariates, str) or not isinstance(covariates, (list, tuple)) or not covariates:
        raise SpecError(f"covariates={covariates!r} must be a non-empty list of column names")
    for c in covariates:
        if c not in df.columns:
            raise SpecError(f"covariates: {c!r} is not a column of the DataFrame.{suggest(str(c), map(str, df.columns))}")
        if c == exposure:
            raise SpecError(f"covariates: {c!r} is the exposure; the propensity model predicts it from the others")
    if len(df) == 0:
        raise DataError("df has no rows; a propensity model needs both exposure groups")
    z = df[exposure]
    if z.isna().any() or not set(pd.unique(z)) <= {0, 1}:
        raise DataError(f"exposure {exposure!r} must be 0/1 with no missing values for a propensity model; it has "
                        f"values {sorted(map(str, pd.unique(z)))[:6]}")
    z = z.to_numpy(float).astype(int)
    if z.min() == z.max():
        raise DataError(f"exposure {exposure!r} takes one value only; a propensity model needs both groups")
    X = _design(df, list(covariates))
    model = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-10, max_iter=100)  # the ML fit, no penalty
    mu, sd = X.mean().to_numpy(), X.std(ddof=0).replace(0, 1).to_numpy()
    model.fit((X.to_numpy() - mu) / sd, z)
    e = model.predict_proba((X.to_numpy() - mu) / sd)[:, 1]
    extreme = (e < SEPARATION) | (e > 1 - SEPARATION)
    if extreme.any():  # the exposure is (nearly) determined by the covariates: the weights would mean nothing
        coef = pd.Series(np.abs(model.coef_[0]), index=X.columns).sort_values(ascending=False)
        raise DataError(f"the propensity model separates {exposure!r}: {int(extreme.sum())} of {len(e)} rows have a "
                        f"score within {SEPARATION:g} of 0 or 1 (largest coefficients: {', '.join(coef.index[:3])}); "
                        "positivity fails and no weighting can balance them. Drop or coarsen the covariate that "
                        "determines the exposure, or restrict the cohort to where both exposures occur")
    if estimand == "ipw":
        w = np.where(z == 1, 1 / e, 1 / (1 - e))
    else:
        w = np.where(z == 1, 1 - e, e)
    for g in (0, 1):  # each group's weights to a mean of 1: the pseudo-population has the cohort's size
        w[z == g] /= w[z == g].mean()
    return PropensityWeights(df.index, exposure, list(covariates), estimand, e, w, X, z)


class PropensityWeights:
    """Propensity scores ``score``, weights ``weights`` (Series on the caller's index) and what they do."""

    def __init__(self, index, exposure, covariates, estimand, score, weights, X, z):
        self.exposure, self.covariates, self.estimand = exposure, covariates, estimand
        self.score = pd.Series(score, index=index, name="propensity_score")
        self.weights = pd.Series(weights, index=index, name=WEIGHT_COLUMN)
        self._X, self._z = X, z
        self.statement = WEIGHTS_STATEMENT

    def balance(self) -> pd.DataFrame:
        """The absolute standardised mean difference of every design column, before and after weighting."""
        X = self._X.to_numpy()
        tab = pd.DataFrame({"smd_before": _smd(X, self._z, np.ones(len(self._z))),
                            "smd_after": _smd(X, self._z, self.weights.to_numpy())},
                           index=pd.Index(self._X.columns, name="covariate"))
        tab["balanced_after"] = tab["smd_after"] < 0.1
        tab.attrs.update(estimand=ESTIMANDS[self.estimand], threshold=0.1)
        return tab

    def effective_sample_size(self) -> pd.Series:
        """Kish's effective sample size of each group under the weights, ``(sum w)^2 / sum w^2``."""
        w = self.weights.to_numpy()
        return pd.Series({f"{self.exposure} = {g}": float(w[self._z == g].sum() ** 2 / (w[self._z == g] ** 2).sum())
                          for g in (0, 1)}, name="effective sample size")

    def plot_balance(self, ax=None, title: str | None = None):
        """A love plot: each covariate's |SMD| before and after weighting, the 0.1 threshold marked."""
        import matplotlib.pyplot as plt

        tab = self.balance().sort_values("smd_before")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 0.35 * len(tab) + 1.6))
        y = np.arange(len(tab))
        ax.scatter(tab["smd_before"], y, marker="o", facecolor="white", edgecolor="#c44e52", s=40, label="before")
        ax.scatter(tab["smd_after"], y, marker="o", color="#4c72b0", s=40, label=f"after ({self.estimand} weights)")
        for yi, (a, b) in enumerate(zip(tab["smd_before"], tab["smd_after"])):
            ax.plot([a, b], [yi, yi], color="0.8", lw=1, zorder=0)
        ax.axvline(0.1, color="0.4", ls="--", lw=1)
        ax.set_yticks(y, tab.index)
        ax.set_ylim(-0.6, len(tab) - 0.4)
        ax.set_xlabel("absolute standardised mean difference")
        ax.set_xlim(left=0)
        ax.set_title(title or f"Covariate balance by {self.exposure!r}")
        ax.legend(fontsize=8, loc="lower right")
        ax.figure.tight_layout()
        return ax

    def fit(self, df: pd.DataFrame, *, time: str, event: str, family=None, **fit_kwargs):
        """The weighted Bayesian fit of the exposure alone (``family``: default ``bc.CoxPH()``) on ``df`` (the
        frame the weights came from); its HR is the estimand's, read with ``self.statement``."""
        from .families import registry

        if not isinstance(df, pd.DataFrame) or not df.index.equals(self.weights.index):
            raise SpecError("df must be the DataFrame the weights were made from (the same rows, in the same order)")
        if WEIGHT_COLUMN in df.columns:
            raise SpecError(f"df already has a column {WEIGHT_COLUMN!r}; rename it (the weights go in that column)")
        for key in ("weights", "covariates", "formula"):
            if key in fit_kwargs:
                raise SpecError(f"{key}= is set by the weighted fit (the exposure alone, with the propensity weights)")
        est = family if family is not None else registry.estimator_class("CoxPH")()
        return est.fit(df.assign(**{WEIGHT_COLUMN: self.weights.to_numpy()}), time=time, event=event,
                       covariates=[self.exposure], weights=WEIGHT_COLUMN, **fit_kwargs)
