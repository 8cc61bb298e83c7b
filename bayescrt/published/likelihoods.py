"""Likelihoods for summary-level results, each with the assumptions it rests on.

Every class gives the posterior of the effect, exposed vs reference, as
Monte Carlo draws from an exact posterior (conjugate, or a fine 1-D grid for
the non-conjugate ones), so no sampler diagnostics can fail here.

``NormalEstimate``   a ratio (HR, RR, OR) or difference with its CI: log(value) (or the
                     value) ~ Normal(theta, se), se = width / (2 z). Assumes a Wald
                     interval, symmetric on that scale, and a large enough sample.
``GroupCounts``      events / patients by group: independent binomials per group, Beta
                     prior on each risk; risk over the study's follow-up, so it assumes
                     follow-up long enough and similar in both groups (no censoring).
                     With ``person_time`` it is Poisson with exposure instead (constant
                     rate within group, Gamma prior): the rate ratio.
``MeanDifference``   means with SDs by group: normal data, Jeffreys prior per group, so
                     each group's mean is m + s / sqrt(n) * t(n - 1); a change from
                     before to after needs the within-patient correlation (not printed in
                     most papers: an assumption, stated in the output).
``AbsZ``             a two-sided p-value without a direction: |z| = Phi^-1(1 - p/2),
                     likelihood phi(z - theta/se) + phi(z + theta/se) (the sign is
                     unknown); ``p < c`` and ``p > c`` give the bounds |z| > z_c and |z| < z_c.
                     The SE of the effect must come from elsewhere (e.g. the number of
                     events: se ~ sqrt(1/d1 + 1/d0)); it is an input, never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

GRID = 8001


def se_from_ci(lower, upper, level: float = 0.95, log: bool = True):
    """SE of an estimate (of its log for a ratio) from its CI: the width / (2 z), as for a Wald interval.

    Works elementwise on arrays.
    """
    f = np.log if log else np.asarray
    return (f(upper) - f(lower)) / (2 * stats.norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class NormalPrior:
    """Normal prior on the effect's own scale (log scale for ratios)."""

    mu: float = 0.0
    sigma: float = 1.0

    def logpdf(self, x):
        return stats.norm.logpdf(x, self.mu, self.sigma)

    def describe(self) -> str:
        return f"Normal({self.mu:g}, {self.sigma:g})"


def _grid_draws(logpost, lo: float, hi: float, n: int, rng) -> np.ndarray:
    """Draws from a 1-D density given on a grid (inverse CDF with linear interpolation)."""
    x = np.linspace(lo, hi, GRID)
    lp = logpost(x)
    w = np.exp(lp - lp.max())
    cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2 * np.diff(x))])
    cdf /= cdf[-1]
    return np.interp(rng.uniform(size=n), cdf, x)


@dataclass(frozen=True)
class NormalEstimate:
    """A point estimate with a CI: estimate ~ Normal(theta, se); ratios on the log scale."""

    estimate: float
    se: float
    assumptions: str = ("normal likelihood for the estimate (the log for a ratio), SE from the CI's width / (2 z): "
                        "a Wald interval, symmetric on that scale")

    @classmethod
    def from_ci(cls, value: float, lower: float, upper: float, level: float = 0.95, log: bool = True):
        return cls(math.log(value) if log else float(value), float(se_from_ci(lower, upper, level, log)))

    def loglik(self, theta):
        return stats.norm.logpdf(self.estimate, theta, self.se)

    def posterior(self, prior: NormalPrior, n: int, rng) -> dict[str, np.ndarray]:
        prec = 1 / prior.sigma**2 + 1 / self.se**2  # normal-normal conjugate
        mean = (prior.mu / prior.sigma**2 + self.estimate / self.se**2) / prec
        return {"effect": rng.normal(mean, 1 / math.sqrt(prec), n)}


@dataclass(frozen=True)
class GroupCounts:
    events: tuple[int, int]            # (exposed, reference)
    n: tuple[int, int]
    person_time: tuple[float, float] | None = None
    prior: tuple[float, float] = (1.0, 1.0)   # Beta(a, b) on each risk; Gamma(a, b) on each rate
    assumptions: str = field(init=False)

    def __post_init__(self):
        text = ("independent binomial counts per group, Beta({a:g}, {b:g}) prior on each risk; the risk is over the "
                "follow-up, assumed long enough and similar in both groups") if self.person_time is None else (
                "Poisson counts with person-time exposure, a constant rate within each group, Gamma({a:g}, {b:g}) "
                "prior on each rate")
        object.__setattr__(self, "assumptions", text.format(a=self.prior[0], b=self.prior[1]))

    def posterior(self, n: int, rng) -> dict[str, np.ndarray]:
        a, b = self.prior
        if self.person_time is None:
            p = [rng.beta(a + e, b + m - e, n) for e, m in zip(self.events, self.n)]
            return {"risk_exposed": p[0], "risk_reference": p[1], "log_ratio": np.log(p[0] / p[1]),
                    "difference": p[0] - p[1],
                    "log_odds_ratio": np.log(p[0] / (1 - p[0])) - np.log(p[1] / (1 - p[1]))}
        lam = [rng.gamma(a + e, 1 / (b + t), n) for e, t in zip(self.events, self.person_time)]
        return {"rate_exposed": lam[0], "rate_reference": lam[1], "log_ratio": np.log(lam[0] / lam[1]),
                "difference": lam[0] - lam[1]}


@dataclass(frozen=True)
class MeanDifference:
    """Difference in means (exposed minus reference), optionally of a change over time."""

    mean: tuple[float, float]
    sd: tuple[float, float]
    n: tuple[int, int]
    assumptions: str = "normal data, Jeffreys prior per group (flat on the mean, 1/sigma on the SD)"

    @classmethod
    def of_change(cls, before: tuple, after: tuple, sd_before: tuple, sd_after: tuple, n: tuple,
                  correlation: float) -> "MeanDifference":
        """Change after minus before; SD of the change from the two SDs and the within-patient correlation."""
        if not -1 < correlation < 1:
            raise ValueError(f"correlation={correlation!r} must lie strictly between -1 and 1")
        sd = tuple(math.sqrt(s0**2 + s1**2 - 2 * correlation * s0 * s1) for s0, s1 in zip(sd_before, sd_after))
        return cls(tuple(a - b for a, b in zip(after, before)), sd, n,
                   f"normal data, Jeffreys prior per group; SD of the change from the before and after SDs with an "
                   f"assumed within-patient correlation of {correlation:g} (not printed)")

    def posterior(self, n: int, rng) -> dict[str, np.ndarray]:
        mu = [m + s / math.sqrt(k) * rng.standard_t(k - 1, n) for m, s, k in zip(self.mean, self.sd, self.n)]
        return {"mean_exposed": mu[0], "mean_reference": mu[1], "difference": mu[0] - mu[1]}


@dataclass(frozen=True)
class AbsZ:
    """A two-sided p-value without a direction, for an effect whose estimate has standard error ``se``."""

    p_value: float
    se: float
    relation: str = "="
    assumptions: str = ("the two-sided p-value of a Wald test; the sign of the estimate is unknown, so the likelihood is "
                        "symmetric about no effect")

    @property
    def z(self) -> float:
        return float(stats.norm.isf(self.p_value / 2))

    def loglik(self, theta):
        t, z = np.asarray(theta) / self.se, self.z
        if self.relation == "=":
            return np.logaddexp(stats.norm.logpdf(z - t), stats.norm.logpdf(z + t))
        inside = stats.norm.cdf(z - t) - stats.norm.cdf(-z - t)   # P(|z_obs| < z | theta)
        return np.log(np.clip(1 - inside if self.relation == "<" else inside, 1e-300, None))

    def posterior(self, prior: NormalPrior, n: int, rng) -> dict[str, np.ndarray]:
        width = 10 * max(prior.sigma, self.se * (self.z + 4))
        return {"effect": _grid_draws(lambda x: prior.logpdf(x) + self.loglik(x),
                                         prior.mu - width, prior.mu + width, n, rng)}
