"""Unmeasured confounding: a bias-adjusted posterior of the exposure HR, and E-values on the posterior.

An unmeasured binary confounder ``U`` with prevalence ``p1`` among the exposed
and ``p0`` among the unexposed, and hazard ratio ``g`` for the outcome
(conditional on exposure and the measured covariates), biases the exposure HR
by the factor (Lin, Psaty and Kronmal, Biometrics 1998)::

    B = (1 + p1 (g - 1)) / (1 + p0 (g - 1)),    HR_adjusted = HR_observed / B.

The data say nothing about ``p1``, ``p0`` or ``g``, so a fully Bayesian model
with ``U`` latent has the same posterior as this Monte Carlo: for every
posterior draw of the log-HR, draw ``(p1, p0, g)`` from their priors and
subtract ``log B`` (probabilistic bias analysis on the posterior).

The E-value (VanderWeele and Ding, Ann Intern Med 2017) is the strength, on the
risk-ratio scale, that a confounder would need with both the exposure and the
outcome to explain an effect away: ``RR + sqrt(RR (RR - 1))`` for ``RR >= 1``
(the reciprocal first for ``RR < 1``). A hazard ratio is converted to a risk
ratio first when the outcome is common (more than 15% at the end of
follow-up): ``RR = (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))``. Applied to
every draw it gives the E-value's posterior; applied to the end of the credible
interval nearest 1 it gives the confounder strength needed to move that
interval to include 1 (1 when it already does).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import validation
from .errors import SpecError
from .summaries import central_interval

PRIOR_KINDS = {"Beta": ("alpha", "beta"), "LogNormal": ("mu", "sigma"), "Fixed": ("value",),
               "Uniform": ("lower", "upper")}


def check_prior(prior, name: str, positive_only: bool, unit_interval: bool) -> dict:
    """A bias parameter's prior (a number or a dict of :data:`PRIOR_KINDS`) checked, with float parameters.

    ``positive_only``: a hazard ratio (> 0); ``unit_interval``: a prevalence (in [0, 1]).
    """
    if validation.is_number(prior):
        prior = {"dist": "Fixed", "value": float(prior)}
    if not isinstance(prior, dict) or prior.get("dist") not in PRIOR_KINDS:
        raise SpecError(f"{name}={prior!r}: give a number or a dict with 'dist' one of {list(PRIOR_KINDS)}, e.g. "
                        + ("{'dist': 'Beta', 'alpha': 3, 'beta': 7}" if unit_interval else
                           "{'dist': 'LogNormal', 'mu': 0.69, 'sigma': 0.2}"))
    keys = PRIOR_KINDS[prior["dist"]]
    extra = set(prior) - {"dist", *keys}
    if extra or any(k not in prior for k in keys):
        raise SpecError(f"{name}={prior!r}: {prior['dist']} takes exactly {list(keys)}")
    if not all(validation.is_number(prior[k]) for k in keys):
        raise SpecError(f"{name}={prior!r}: {', '.join(keys)} must be numbers")
    vals = {k: float(prior[k]) for k in keys}
    bad = [k for k, v in vals.items() if not np.isfinite(v)]
    if prior["dist"] == "Beta":
        bad += [k for k, v in vals.items() if v <= 0]
    if prior["dist"] == "LogNormal" and vals["sigma"] < 0:
        bad.append("sigma")
    if prior["dist"] == "Uniform" and not vals["lower"] < vals["upper"]:
        bad.append("lower < upper")
    if prior["dist"] in ("Fixed", "Uniform"):
        lo, hi = (vals["value"], vals["value"]) if prior["dist"] == "Fixed" else (vals["lower"], vals["upper"])
        if unit_interval and not (0 <= lo and hi <= 1):
            bad.append("a prevalence must lie in [0, 1]")
        if positive_only and lo <= 0:
            bad.append("a hazard ratio must be > 0")
    if bad:
        raise SpecError(f"{name}={prior!r}: invalid {bad}")
    return {"dist": prior["dist"], **vals}


def _draw(prior: dict, n: int, rng) -> np.ndarray:
    d = prior["dist"]
    if d == "Fixed":
        return np.full(n, prior["value"])
    if d == "Beta":
        return rng.beta(prior["alpha"], prior["beta"], n)
    if d == "Uniform":
        return rng.uniform(prior["lower"], prior["upper"], n)
    return np.exp(rng.normal(prior["mu"], prior["sigma"], n))


def bias_factor(p1, p0, g):
    """Lin-Psaty-Kronmal bias factor of the HR for a binary confounder."""
    p1, p0, g = (np.asarray(a, float) for a in (p1, p0, g))
    return (1 + p1 * (g - 1)) / (1 + p0 * (g - 1))


def hr_to_rr(hr, common: bool = True):
    """A hazard ratio on the risk-ratio scale (VanderWeele's square-root conversion when the outcome is common)."""
    hr = np.asarray(hr, float)
    if not common:
        return hr
    return (1 - 0.5 ** np.sqrt(hr)) / (1 - 0.5 ** np.sqrt(1 / hr))


def evalue(hr, common: bool = True):
    """E-value of a hazard ratio (array-valued; 1 at HR = 1)."""
    rr = hr_to_rr(hr, common)
    rr = np.where(rr < 1, 1 / rr, rr)
    return rr + np.sqrt(rr * (rr - 1))


class BiasAnalysis:
    """The exposure's log-HR posterior before and after bias adjustment; see :func:`unmeasured_confounding`."""

    def __init__(self, observed, adjusted, draws: dict, priors: dict, common: bool, prob: float, label: str):
        self.observed, self.adjusted, self.draws = observed, adjusted, draws
        self.priors, self.common, self.prob, self.label = priors, common, prob, label

    def _interval(self, x):
        lo, med, hi = central_interval(np.exp(x), self.prob)
        return med, lo, hi

    def table(self) -> pd.DataFrame:
        """HR median, interval and P(HR > 1), observed and bias-adjusted."""
        rows = []
        for name, x in (("observed", self.observed), ("bias-adjusted", self.adjusted)):
            med, lo, hi = self._interval(x)
            rows.append({"posterior": name, "hr_median": med, "hr_lower": lo, "hr_upper": hi,
                         "p_hr_gt_1": float(np.mean(x > 0))})
        tab = pd.DataFrame(rows).set_index("posterior")
        tab.attrs.update(prob=self.prob, exposure=self.label)
        return tab

    def evalues(self) -> pd.DataFrame:
        """E-values on the observed posterior: of its median, of the interval end nearest 1, and their posterior.

        Columns ``hr`` (the HR the E-value is for), ``evalue``, and for the
        E-value's own posterior its median with ``evalue_lower`` / ``evalue_upper``.
        """
        med, lo, hi = self._interval(self.observed)
        includes_one = lo <= 1 <= hi
        nearest = 1.0 if includes_one else (lo if lo > 1 else hi)
        q = central_interval(evalue(np.exp(self.observed), self.common), self.prob)
        tab = pd.DataFrame([
            {"quantity": "posterior median HR", "hr": med, "evalue": float(evalue(med, self.common))},
            {"quantity": "interval end nearest 1", "hr": nearest,
             "evalue": 1.0 if includes_one else float(evalue(nearest, self.common))},
            {"quantity": "E-value posterior", "hr": np.nan, "evalue": float(q[1]), "evalue_lower": float(q[0]),
             "evalue_upper": float(q[2])},
        ]).set_index("quantity")
        tab.attrs.update(prob=self.prob, common_outcome=self.common)
        return tab

    def confounder_hr_needed(self, p1: float, p0: float) -> float:
        """The confounder HR ``g`` at which the adjusted interval (these prevalences) first includes 1.

        ``inf`` when no HR can do it (the bias factor is bounded by ``p1/p0``),
        1 when the observed interval already includes 1.
        """
        med, lo, hi = self._interval(self.observed)
        if lo <= 1 <= hi:
            return 1.0
        target = lo if lo > 1 else hi  # the bias factor must reach this end
        if (target > 1) != (p1 > p0) or p1 == p0:
            return float("inf")
        # solve (1 + p1 (g - 1)) / (1 + p0 (g - 1)) = target for g
        g = 1 + (target - 1) / (p1 - target * p0)
        return float(g) if g > 0 and np.isfinite(g) and (p1 - target * p0) * (target - 1) > 0 else float("inf")

    def __str__(self) -> str:
        pr = "; ".join(f"{k} {v}" for k, v in self.priors.items())
        return (f"Unmeasured binary confounder, exposure {self.label!r} (priors: {pr})\n"
                + self.table().to_string(float_format=lambda v: f"{v:.3f}") + "\n\n"
                + self.evalues().to_string(float_format=lambda v: f"{v:.3f}", na_rep=""))


def unmeasured_confounding(fit, exposure: str, *, prevalence_exposed, prevalence_unexposed, confounder_hr,
                           common_outcome: bool | None = None, prob: float = 0.95, random_seed: int = 0,
                           log_hr_draws=None) -> BiasAnalysis:
    """Bias-adjusted posterior of ``exposure``'s HR under an unmeasured binary confounder.

    ``prevalence_exposed`` / ``prevalence_unexposed``: a number or a prior
    ``{"dist": "Beta", "alpha": a, "beta": b}`` (also ``Uniform``, ``Fixed``);
    ``confounder_hr``: a number or ``{"dist": "LogNormal", "mu": log HR, "sigma": s}``.
    ``common_outcome``: convert HR to RR for the E-values (default: more than
    15% of subjects had the event). ``log_hr_draws`` replaces the fit's draws
    (``fit`` may then be None).
    """
    priors = {"prevalence_exposed": check_prior(prevalence_exposed, "prevalence_exposed", False, True),
              "prevalence_unexposed": check_prior(prevalence_unexposed, "prevalence_unexposed", False, True),
              "confounder_hr": check_prior(confounder_hr, "confounder_hr", True, False)}
    if log_hr_draws is None:
        labels = list(fit.covariates)
        if exposure not in labels:
            raise SpecError(f"exposure {exposure!r} is not a covariate of this fit; its covariates are {labels}")
        x = fit.log_hr_draws()[:, labels.index(exposure)]
    else:
        x = np.asarray(log_hr_draws, float).ravel()
    if common_outcome is None:
        if fit is None:
            raise SpecError("common_outcome= must be given with log_hr_draws= (is the outcome over 15% at the end?)")
        m = fit.model
        common_outcome = m["n_events"] / m["n"] > 0.15
    rng = np.random.default_rng(random_seed)
    n = len(x)
    p1 = _draw(priors["prevalence_exposed"], n, rng)
    p0 = _draw(priors["prevalence_unexposed"], n, rng)
    g = _draw(priors["confounder_hr"], n, rng)
    adjusted = x - np.log(bias_factor(p1, p0, g))
    return BiasAnalysis(x, adjusted, {"prevalence_exposed": p1, "prevalence_unexposed": p0, "confounder_hr": g},
                        priors, bool(common_outcome), prob, exposure)
