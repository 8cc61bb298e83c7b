"""Bayesian random-effects meta-analysis of aggregate estimates.

Model (estimates on the log scale for ratios)::

    y_i ~ Normal(theta_i, se_i),   theta_i ~ Normal(mu, tau),   mu ~ mu_prior,   tau ~ tau_prior

``fit`` samples the marginal model y_i ~ Normal(mu, sqrt(se_i^2 + tau^2)), with
mu standardised given tau (its conditional posterior is normal), so that two
parameters with no funnel are left, then draws each study's shrunken effect theta_i from its
exact conditional posterior given (mu, tau), and mu_new ~ Normal(mu, tau), the
effect in a new study. ``fit_counts`` uses the exact binomial-logit likelihood of
2x2 counts (log odds ratios, a baseline log-odds per study, non-centred study
effects). ``fit_published`` pools registry results and refuses, with an error
that lists them, results of different endpoints, estimands or comparisons, or
two results of one study, unless told otherwise.

Leave-one-study-out influence is computed by Pareto-smoothed importance
sampling on each study's log-likelihood; its Pareto k-hat says when that is
unreliable (k > 0.7), and the study is then flagged rather than trusted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from . import validation
from .compiled import data_block
from .diagnostics import DiagnosticReport, diagnose
from .errors import DataError, DiagnosticsWarning, SpecError, suggest
from .published import published_log_estimates
from .summaries import central_interval, interval_probs

TAU_PRIORS = {
    "half-normal": {"sigma": 0.5},
    "half-cauchy": {"beta": 0.5},
    "log-uniform": {"lower": 0.01, "upper": 2.0},
}
DEFAULT_MU_PRIOR = {"mu": 0.0, "sigma": 2.0}


def resolve_tau_prior(spec) -> dict:
    """A named tau prior with its parameters: ``"half-normal"``, ``{"dist": "half-cauchy", "beta": 1}``..."""
    if isinstance(spec, str):
        spec = {"dist": spec}
    if not isinstance(spec, Mapping) or "dist" not in spec:
        raise SpecError(f"tau_prior={spec!r}: give a name ({', '.join(TAU_PRIORS)}) or a dict with 'dist'.")
    name = spec["dist"]
    if name not in TAU_PRIORS:
        raise SpecError(f"tau_prior: {name!r} is not a known prior.{suggest(name, TAU_PRIORS)} "
                        f"Choose one of {', '.join(TAU_PRIORS)}.")
    params = {**TAU_PRIORS[name], **{k: v for k, v in spec.items() if k != "dist"}}
    stray = set(params) - set(TAU_PRIORS[name])
    if stray:
        raise SpecError(f"tau_prior {name!r}: unknown parameter(s) {sorted(stray)}; it takes {sorted(TAU_PRIORS[name])}.")
    if any(not validation.is_number(v) or not 0 < v < math.inf for v in params.values()):
        raise SpecError(f"tau_prior {name!r}: parameters must be positive finite numbers, got {params}.")
    if name == "log-uniform" and not params["lower"] < params["upper"]:
        raise SpecError(f"tau_prior 'log-uniform': lower {params['lower']} must be below upper {params['upper']}.")
    return {"dist": name, **params}


def describe_tau(p: dict) -> str:
    if p["dist"] == "log-uniform":
        return f"log-uniform({p['lower']:g}, {p['upper']:g})"
    return f"{p['dist']}({', '.join(f'{v:g}' for k, v in p.items() if k != 'dist')})"


def _tau(pm, p: dict):
    if p["dist"] == "half-normal":
        return pm.HalfNormal("tau", sigma=p["sigma"])
    if p["dist"] == "half-cauchy":
        return pm.HalfCauchy("tau", beta=p["beta"])
    log_tau = pm.Uniform("log_tau", math.log(p["lower"]), math.log(p["upper"]))
    return pm.Deterministic("tau", pm.math.exp(log_tau))


def _numeric(col: pd.Series, name: str) -> np.ndarray:
    """A numeric column as floats; text (even '0.12'), bools and objects are refused, never converted."""
    if pd.api.types.is_bool_dtype(col.dtype) or not pd.api.types.is_numeric_dtype(col.dtype) \
            or pd.api.types.is_complex_dtype(col.dtype):
        shown = ", ".join(f"row {i!r}: {v!r}" for i, v in list(col.items())[:3])
        raise DataError(f"column {name!r} must hold numbers, got dtype {col.dtype} ({shown}); convert it with "
                        f"pd.to_numeric(df[{name!r}]) if it holds numbers stored as text")
    return col.to_numpy(float)


def _study_labels(col: pd.Series, name: str) -> np.ndarray:
    """Study labels as text; a missing label is refused, not turned into the text 'None' or 'nan'."""
    missing = col.isna().to_numpy()
    if missing.any():
        raise DataError(f"column {name!r}: {missing.sum()} missing study label(s) (rows "
                        f"{list(col.index[missing])[:3]}); name every study")
    return col.astype(str).to_numpy()


def _unique_labels(names: np.ndarray, column: str, problems: list[str]) -> None:
    dup = pd.Series(names).duplicated().to_numpy()
    if dup.any():
        problems.append(f"column {column!r}: study labels must be unique; repeated: {sorted(set(names[dup]))}.")


def _frame(df) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"the studies must be a pandas DataFrame, got {type(df).__name__}; build one with "
                        "pd.DataFrame({'study': [...], 'estimate': [...], 'se': [...]})")


def _column(df: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in df.columns:
        raise DataError(f"{role}={name!r} is not a column.{suggest(name, df.columns)} Columns: {list(df.columns)}")
    return df[name]


class MetaAnalysis:
    """Random-effects meta-analysis: ``MetaAnalysis(mu_prior=..., tau_prior=...).fit(df, estimate=, se=, study=)``.

    ``mu_prior`` is ``{"mu": 0, "sigma": 2}`` (normal, on the log scale for
    ratios); ``tau_prior`` a name from ``TAU_PRIORS`` or a dict with ``dist``
    and its parameters.
    """

    def __init__(self, mu_prior: dict | None = None, tau_prior="half-normal"):
        if mu_prior is not None and not isinstance(mu_prior, Mapping):
            raise SpecError(f"mu_prior={mu_prior!r}: give a normal prior as a dict, {{'mu': 0, 'sigma': 2}}.")
        mp = {**DEFAULT_MU_PRIOR, **(mu_prior or {})}
        stray = set(mp) - {"mu", "sigma"}
        if stray:
            key = sorted(stray)[0]
            raise SpecError(f"mu_prior: unknown key {key!r}.{suggest(key, ['mu', 'sigma'])} A normal prior takes "
                            "'mu' and 'sigma', e.g. {'mu': 0, 'sigma': 2}.")
        self.mu_prior = {"mu": validation.real("mu_prior mu", mp["mu"]),
                         "sigma": validation.real("mu_prior sigma", mp["sigma"], low=0, low_open=True)}
        self.tau_prior = resolve_tau_prior(tau_prior)

    # ------------------------------------------------------------------ estimates with SEs
    def fit(self, df: pd.DataFrame, *, estimate: str, se: str, study: str, scale: str = "log", label: str = "",
            draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None, progress: bool = True) -> "MetaFit":
        """Pool ``estimate`` (log HR, log RR, ... or a difference; ``scale`` says which) with standard errors ``se``."""
        _frame(df)
        if scale not in ("log", "identity"):
            raise SpecError(f"scale={scale!r}: 'log' for log ratios (results shown as ratios) or 'identity'.")
        y, s = (_numeric(_column(df, c, role), c) for c, role in ((estimate, "estimate"), (se, "se")))
        names = _study_labels(_column(df, study, "study"), study)
        problems = []
        if len(y) < 2:
            problems.append(f"a meta-analysis needs at least 2 studies; got {len(y)}.")
        bad = ~np.isfinite(y)
        if bad.any():
            problems.append(f"column {estimate!r}: {bad.sum()} missing or infinite value(s) (studies "
                            f"{list(names[bad])}); drop those rows or supply the estimates.")
        bad = ~(np.isfinite(s) & (s > 0))
        if bad.any():
            problems.append(f"column {se!r}: standard errors must be finite and > 0; studies {list(names[bad])} have "
                            f"{list(s[bad])}.")
        _unique_labels(names, study, problems)
        if problems:
            raise DataError(problems)
        import pymc as pm

        m0, s0 = self.mu_prior["mu"], self.mu_prior["sigma"]
        with pm.Model(coords={"study": names}) as model:
            yd, sd = data_block("study_data", {"y": y, "se": s}).values()
            tau = _tau(pm, self.tau_prior)
            # mu given tau is normal with known mean and precision; sampling its standardised value zeta
            # removes the funnel between mu and tau that few studies create (zeta | y ~ N(0, 1) exactly)
            v = sd**2 + tau**2
            prec = 1 / s0**2 + pm.math.sum(1 / v)
            zeta = pm.Flat("zeta")
            mu = pm.Deterministic("mu", (m0 / s0**2 + pm.math.sum(yd / v)) / prec + zeta / pm.math.sqrt(prec))
            pm.Potential("mu_prior", pm.logp(pm.Normal.dist(m0, s0), mu))
            pm.Potential("likelihood", pm.math.sum(pm.logp(pm.Normal.dist(mu, pm.math.sqrt(v)), yd)))
            pm.Potential("jacobian", -0.5 * pm.math.log(prec))
        tree, info = _sample(model, draws, tune, chains, random_seed, progress, target_accept=0.9)
        post = tree["posterior"].to_dataset()
        rng = np.random.default_rng(info["random_seed"] + 1)
        m, t = post["mu"].values[..., None], post["tau"].values[..., None]
        prec = 1 / s**2 + 1 / np.maximum(t, 1e-12) ** 2
        mean = (y / s**2 + m / np.maximum(t, 1e-12) ** 2) / prec
        theta = mean + rng.standard_normal(mean.shape) / np.sqrt(prec)
        from scipy import stats

        loglik = stats.norm.logpdf(y, m, np.sqrt(s**2 + t**2))
        return self._finish(tree, info, theta, loglik, names, y, s, scale, "normal-normal (marginal)", label, rng)

    # ------------------------------------------------------------------ 2x2 counts
    def fit_counts(self, df: pd.DataFrame, *, events_exposed: str, n_exposed: str, events_reference: str,
                   n_reference: str, study: str, label: str = "", draws: int = 1000, tune: int = 1000,
                   chains: int = 4, random_seed=None, progress: bool = True) -> "MetaFit":
        """Pool log odds ratios from 2x2 counts with the exact binomial-logit likelihood.

        Each study has its own baseline log-odds (Normal(0, 5) prior) and effect
        theta_i = mu + tau z_i (non-centred); no continuity corrections are needed
        for zero cells.
        """
        _frame(df)
        cols = {"events_exposed": events_exposed, "n_exposed": n_exposed, "events_reference": events_reference,
                "n_reference": n_reference}
        vals = {k: _numeric(_column(df, c, k), c) for k, c in cols.items()}
        names = _study_labels(_column(df, study, "study"), study)
        problems = []
        for k, v in vals.items():
            v = np.asarray(v, float)
            if not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v != np.round(v)):
                problems.append(f"column {cols[k]!r}: counts must be non-negative integers; got {list(v)}.")
        if not problems:
            for g in ("exposed", "reference"):
                over = vals[f"events_{g}"] > vals[f"n_{g}"]
                if over.any():
                    problems.append(f"column {cols['events_' + g]!r}: more events than patients in studies "
                                    f"{list(names[over])}.")
        if len(names) < 2:
            problems.append(f"a meta-analysis needs at least 2 studies; got {len(names)}.")
        _unique_labels(names, study, problems)
        if problems:
            raise DataError(problems)
        import pymc as pm

        e1, n1, e0, n0 = (np.asarray(vals[k], "int64") for k in cols)
        with pm.Model(coords={"study": names}) as model:
            mu = pm.Normal("mu", self.mu_prior["mu"], self.mu_prior["sigma"])
            tau = _tau(pm, self.tau_prior)
            alpha = pm.Normal("alpha", 0.0, 5.0, dims="study")
            z = pm.Normal("z", 0.0, 1.0, dims="study")
            theta = pm.Deterministic("theta", mu + tau * z, dims="study")
            pm.Binomial("events_reference", n=n0, logit_p=alpha, observed=e0, dims="study")
            pm.Binomial("events_exposed", n=n1, logit_p=alpha + theta, observed=e1, dims="study")
        # large studies pin their effect down: non-centred effects then make a funnel that a small step resolves
        tree, info = _sample(model, draws, tune, chains, random_seed, progress, target_accept=0.95)
        post = tree["posterior"].to_dataset()
        from scipy import stats
        from scipy.special import expit

        a, th = post["alpha"].values, post["theta"].values
        loglik = stats.binom.logpmf(e0, n0, expit(a)) + stats.binom.logpmf(e1, n1, expit(a + th))
        with np.errstate(divide="ignore"):
            y = np.log((e1 + 0.5) / (n1 - e1 + 0.5)) - np.log((e0 + 0.5) / (n0 - e0 + 0.5))
            s = np.sqrt(1 / (e1 + 0.5) + 1 / (n1 - e1 + 0.5) + 1 / (e0 + 0.5) + 1 / (n0 - e0 + 0.5))
        rng = np.random.default_rng(info["random_seed"] + 1)
        return self._finish(tree, info, th, loglik, names, y, s, "log", "binomial-logit (exact), log odds ratio",
                            label, rng)

    # ------------------------------------------------------------------ the registry
    def fit_published(self, ids, *, allow_mixed: bool = False, allow_same_study: bool = False, **kw) -> "MetaFit":
        """Pool registry results (``"<study>/<result>"`` ids) on the log scale.

        Refuses different endpoints, estimands or comparisons unless
        ``allow_mixed=True``, and two results of one study (the same patients)
        unless ``allow_same_study=True``. Unverified figures are pooled with a
        warning that names them.
        """
        rows, results = published_log_estimates(ids, allow_mixed=allow_mixed, allow_same_study=allow_same_study)
        label = kw.pop("label", f"{results[0].endpoint}, {results[0].estimand} ({results[0].comparison})")
        return self.fit(rows, estimate="estimate", se="se", study="study", scale="log", label=label, **kw)

    def tau_sensitivity(self, df: pd.DataFrame | None = None, *, priors=None, published=None, counts: bool = False,
                        prob: float = 0.95, **kw) -> pd.DataFrame:
        """The pooled effect under several tau priors, one row each (default: every named prior).

        Pass the arguments of ``fit`` (or ``fit_counts`` with ``counts=True``),
        or ``published=[ids]`` for ``fit_published``.
        """
        priors = list(TAU_PRIORS) if priors is None else list(priors)
        rows = []
        for p in priors:
            ma = MetaAnalysis(self.mu_prior, p)
            if published is not None:
                f = ma.fit_published(published, **kw)
            else:
                f = (ma.fit_counts if counts else ma.fit)(df, **kw)
            s = f.summary(prob=prob)
            rows.append({"tau_prior": describe_tau(ma.tau_prior),
                         **{f"{q}_{c}": s.loc[q, c] for q in ("mu", "tau", "mu_new") for c in ("median", "lower", "upper")},
                         "p_mu_gt_0": f.p_pooled_gt_null(), "diagnostics_ok": f.diagnostics().ok})
        tab = pd.DataFrame(rows).set_index("tau_prior")
        tab.attrs.update(prob=prob, scale="log")
        return tab

    def _finish(self, tree, info, theta, loglik, names, y, s, scale, likelihood, label, rng) -> "MetaFit":
        post = tree["posterior"].to_dataset()
        c, d = post.sizes["chain"], post.sizes["draw"]
        coords = {"chain": post["chain"].values, "draw": post["draw"].values, "study": names}
        post = post.assign(
            theta=(("chain", "draw", "study"), np.asarray(theta).reshape(c, d, -1)),
            mu_new=(("chain", "draw"), post["mu"].values + post["tau"].values * rng.standard_normal((c, d))),
        ).assign_coords(coords)
        groups = {
            "posterior": post,
            "sample_stats": tree["sample_stats"].to_dataset(),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "study"), np.asarray(loglik).reshape(c, d, -1))},
                                         coords=coords),
            "observed_data": xr.Dataset({"estimate": ("study", y), "se": ("study", s)}, coords={"study": names}),
        }
        idata = xr.DataTree.from_dict(groups)
        idata.attrs.update({"bayescrt_kind": "meta-analysis", "scale": scale, "likelihood": likelihood,
                            "label": label, "mu_prior": f"Normal({self.mu_prior['mu']:g}, {self.mu_prior['sigma']:g})",
                            "tau_prior": describe_tau(self.tau_prior), **{k: str(v) for k, v in info.items()}})
        fit = MetaFit(idata)
        rep = fit.diagnostics()
        if not rep.ok:
            warnings.warn(f"meta-analysis failed its diagnostics; its numbers cannot be trusted:\n{rep}",
                          DiagnosticsWarning, stacklevel=3)
        return fit


def _sample(model, draws, tune, chains, random_seed, progress, target_accept=0.8):
    from .chains import FEW_STUDIES_ADAPTATION
    from .fit import sample_model

    return sample_model(model, draws=draws, tune=tune, chains=chains, random_seed=random_seed, progress=progress,
                        target_accept=target_accept, adaptation=FEW_STUDIES_ADAPTATION)


def _wquantile(x: np.ndarray, w: np.ndarray, q) -> np.ndarray:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return np.interp(np.asarray(q) * cw[-1], cw, x[order])


class MetaFit:
    """A fitted meta-analysis; everything is computed from ``idata`` (an ``xr.DataTree``)."""

    def __init__(self, idata: xr.DataTree):
        self.idata = idata

    def _draws(self, var: str) -> np.ndarray:
        da = self.idata["posterior"][var]
        return da.values.reshape(da.sizes["chain"] * da.sizes["draw"], -1).squeeze()

    @property
    def log_scale(self) -> bool:
        return self.idata.attrs["scale"] == "log"

    @property
    def studies(self) -> list[str]:
        return [str(s) for s in self.idata["observed_data"]["study"].values]

    def summary(self, prob: float = 0.95, ratio: bool = False) -> pd.DataFrame:
        """Rows ``mu``, ``tau`` and ``mu_new`` (a new study's effect); columns ``median``, ``lower``, ``upper``.

        On the model's scale (log ratios); ``ratio=True`` exponentiates ``mu``
        and ``mu_new`` (``tau`` stays on the log scale, where it is an SD).
        """
        rows = {}
        for q in ("mu", "tau", "mu_new"):
            x = self._draws(q)
            if ratio and q != "tau" and self.log_scale:
                x = np.exp(x)
            lo, med, hi = central_interval(x, prob)
            rows[q] = {"median": med, "lower": lo, "upper": hi}
        tab = pd.DataFrame.from_dict(rows, orient="index").astype(float)
        tab.index.name = "parameter"
        tab.attrs.update(prob=prob, scale="ratio" if ratio else self.idata.attrs["scale"])
        return tab

    def p_pooled_gt_null(self) -> float:
        """P(mu > 0): for log ratios, the posterior probability that the pooled ratio exceeds 1."""
        return float(np.mean(self._draws("mu") > 0))

    def study_estimates(self, prob: float = 0.95) -> pd.DataFrame:
        """Observed estimate and its interval beside the shrunken (partially pooled) posterior, per study."""
        from scipy import stats

        obs = self.idata["observed_data"]
        y, s = obs["estimate"].values, obs["se"].values
        z = stats.norm.ppf(0.5 + prob / 2)
        th = self._draws("theta").reshape(-1, len(y))
        lo, med, hi = central_interval(th, prob, axis=0)
        w = 1 / (s**2 + np.median(self._draws("tau")) ** 2)  # random-effects weights at the median tau
        tab = pd.DataFrame({"observed": y, "observed_lower": y - z * s, "observed_upper": y + z * s,
                            "shrunken_median": med, "shrunken_lower": lo, "shrunken_upper": hi,
                            "weight_pct": 100 * w / w.sum()},
                           index=pd.Index(self.studies, name="study"))
        tab.attrs.update(prob=prob, scale=self.idata.attrs["scale"])
        return tab

    def leave_one_out(self, prob: float = 0.95) -> pd.DataFrame:
        """Influence of each study: the pooled effect without it, by Pareto-smoothed importance sampling.

        Pareto k above 0.7 marks a study whose removal importance sampling cannot
        emulate (``reliable`` False): refit without it to know its influence.
        The relative efficiency of the draws is taken as 1.
        """
        from arviz_stats.base import array_stats

        ll = self.idata["log_likelihood"]["y"]
        ll = ll.values.reshape(-1, ll.sizes["study"])
        mu = self._draws("mu")
        full = np.median(mu)
        rows = []
        for i, name in enumerate(self.studies):
            # psislw takes the log-likelihood and returns log weights proportional to 1 / likelihood
            lw, k = array_stats.psislw(ll[:, i] - np.max(ll[:, i]))
            w = np.exp(lw - lw.max())
            lo, med, hi = _wquantile(mu, w, interval_probs(prob))
            rows.append({"study": name, "mu_median_without": med, "mu_lower_without": lo, "mu_upper_without": hi,
                         "change_in_median": med - full, "p_mu_gt_0_without": float(np.sum(w * (mu > 0)) / w.sum()),
                         "pareto_k": float(k), "reliable": bool(k <= 0.7)})
        return pd.DataFrame(rows).set_index("study")

    def diagnostics(self) -> DiagnosticReport:
        return diagnose(self.idata, ["mu", "tau"] + (["alpha", "z"] if "z" in self.idata["posterior"] else []))

    def plot_forest(self, *, ax=None, prob: float = 0.95, title: str | None = None):
        from .plotting import plot_meta_forest

        return plot_meta_forest(self.study_estimates(prob), self.summary(prob), log_scale=self.log_scale, ax=ax,
                                title=title or self.idata.attrs.get("label") or "Random-effects meta-analysis")

    def __str__(self) -> str:
        at = self.idata.attrs
        s = self.summary(ratio=self.log_scale)
        head = (f"Random-effects meta-analysis{': ' + at['label'] if at.get('label') else ''}\n"
                f"  {len(self.studies)} studies; likelihood {at['likelihood']}; priors mu ~ {at['mu_prior']}, "
                f"tau ~ {at['tau_prior']}")
        unit = "ratio" if self.log_scale else "effect"
        lines = [head, "", f"  pooled {unit} (mu)      {s.loc['mu', 'median']:.3f}  [{s.loc['mu', 'lower']:.3f}; "
                 f"{s.loc['mu', 'upper']:.3f}]",
                 f"  new-study {unit}     {s.loc['mu_new', 'median']:.3f}  [{s.loc['mu_new', 'lower']:.3f}; "
                 f"{s.loc['mu_new', 'upper']:.3f}]",
                 f"  between-study SD tau  {s.loc['tau', 'median']:.3f}  [{s.loc['tau', 'lower']:.3f}; "
                 f"{s.loc['tau', 'upper']:.3f}]{'  (log scale)' if self.log_scale else ''}",
                 f"  P(mu > 0) = {self.p_pooled_gt_null():.3f}", "", str(self.diagnostics())]
        return "\n".join(lines)

    __repr__ = __str__
