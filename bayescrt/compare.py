"""A posterior beside a published estimate: how far apart, and what that means.

``compare(posterior, published)`` takes posterior draws of a log hazard ratio
(an array, an ``xr.DataArray``, or a :class:`Fit` with ``covariate=``: any
object with a ``covariates`` list and a ``log_hr_draws()`` method, such as
each fit of a ``CovariateSetFits``) and a published ratio with its CI (a registry id ``"<study>/<result>"``, a registry
``Result``, or a mapping with ``hr``, ``lower``, ``upper`` and optional
``level``). The published estimate is read as a normal distribution of the
log ratio with SE = CI log-width / (2 z), which assumes a Wald interval.

Reported:
- posterior median HR beside the published point;
- P(posterior HR inside the published CI);
- the overlap coefficient of the two densities on the log scale (1 = the same
  distribution, 0 = disjoint), posterior density by a Gaussian kernel estimate;
- the standardised difference (posterior mean - published log point) /
  sqrt(posterior SD^2 + published SE^2): the gap in SDs of the difference,
  as if the two were independent;
- a sentence that says what those numbers mean and do not mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .errors import SpecError, suggest
from .summaries import central_interval
from .validation import is_number, probability

PUBLISHED_KEYS = ("hr", "lower", "upper", "level", "label", "estimand")
SUBDISTRIBUTION = "SHR"  # the estimand of a Fine-Gray fit: never set beside another ratio


@dataclass(frozen=True)
class Published:
    """A published ratio with its CI, as a normal distribution of the log ratio."""

    hr: float
    lower: float
    upper: float
    level: float = 0.95
    label: str = "published"
    verified: bool = True
    estimand: str | None = None  # "HR", "SHR", ... where known (registry results; optional in a mapping)

    @property
    def log_hr(self) -> float:
        return math.log(self.hr)

    @property
    def se(self) -> float:
        from .published.likelihoods import se_from_ci

        return float(se_from_ci(self.lower, self.upper, self.level))


def as_published(published) -> Published:
    from .published.registry import Result, get

    if isinstance(published, Published):
        return published
    if isinstance(published, str):
        if "/" not in published:
            raise SpecError(f"published={published!r}: name one result as '<study>/<result>', e.g. "
                            "'danish-registry-2000-2018/mortality-full'.")
        published = get(published)
    if isinstance(published, Result):
        if published.kind != "estimate" or not published.on_log_scale:
            raise SpecError(f"{published.id} is a {published.kind!r} result ({published.estimand}); a comparison needs "
                            "a published ratio (HR, RR, OR) with its CI.")
        return Published(published["value"], published["lower"], published["upper"], published.level,
                         published.id, published.verified, published.estimand)
    if isinstance(published, Mapping):
        stray = [k for k in published if k not in PUBLISHED_KEYS]
        if stray:
            raise SpecError(f"published: unknown key {stray[0]!r}.{suggest(str(stray[0]), PUBLISHED_KEYS)} Valid keys: "
                            f"{list(PUBLISHED_KEYS)} (hr, lower and upper required).")
        missing = {"hr", "lower", "upper"} - set(published)
        if missing:
            raise SpecError(f"published: missing key(s) {sorted(missing)}; give hr, lower, upper (and level).")
        if not all(is_number(published[k]) for k in ("hr", "lower", "upper")) or \
                not is_number(published.get("level", 0.95)):
            raise SpecError(f"published={dict(published)!r}: hr, lower, upper and level must be numbers.")
        hr, lo, hi = (float(published[k]) for k in ("hr", "lower", "upper"))
        level = float(published.get("level", 0.95))
        if not all(math.isfinite(v) for v in (hr, lo, hi, level)):
            raise SpecError(f"published: hr, lower, upper and level must be finite; got hr={hr:g}, lower={lo:g}, "
                            f"upper={hi:g}, level={level:g}.")
        if not (0 < lo < hr < hi and 0 < level < 1):
            raise SpecError(f"published: need 0 < lower < hr < upper and 0 < level < 1; got hr={hr:g}, "
                            f"lower={lo:g}, upper={hi:g}, level={level:g}.")
        estimand = published.get("estimand")
        if estimand is not None and not isinstance(estimand, str):
            raise SpecError(f"published: estimand={estimand!r} must be text, e.g. 'HR' or 'SHR'.")
        return Published(hr, lo, hi, level, str(published.get("label", "published")), estimand=estimand)
    raise SpecError(f"published={published!r}: give a registry id '<study>/<result>', a registry Result or a "
                    "mapping with hr, lower, upper.")


def _is_fit(posterior) -> bool:
    """Whether ``posterior`` holds draws the way a :class:`bayescrt.Fit` does: ``covariates`` and ``log_hr_draws()``.

    Checked by shape rather than by class, so that this module needs no fitting code (a Fit, a fit of a
    ``CovariateSetFits``, or anything else that keeps draws of several log-HRs by covariate name)."""
    return callable(getattr(posterior, "log_hr_draws", None)) and isinstance(getattr(posterior, "covariates", None),
                                                                             (list, tuple))


def _fit_covariate(posterior, covariate) -> str:
    """The covariate of a Fit to compare: ``covariate``, or the fit's only one when it is left out."""
    covs = list(posterior.covariates)
    if covariate is None:
        if len(covs) == 1:
            return covs[0]
        raise SpecError(f"covariate=: name the covariate to compare, one of {covs}.")
    if covariate not in covs:
        raise SpecError(f"covariate={covariate!r} is not in the fit.{suggest(covariate, covs)} Covariates: {covs}.")
    return covariate


def _check_estimands(fit, pub: Published) -> None:
    """A subdistribution HR (Fine-Gray) and any other ratio measure different things: refuse to set one beside
    the other."""
    mine = getattr(fit, "model", {}).get("estimand", "HR")
    if pub.estimand is None or (mine == SUBDISTRIBUTION) == (pub.estimand.upper() == SUBDISTRIBUTION):
        return
    if mine == SUBDISTRIBUTION:
        raise SpecError(f"the fit's posterior is a subdistribution HR (SHR, Fine-Gray) and {pub.label} has estimand "
                        f"{pub.estimand!r}: an SHR is an effect on the risk of one cause, a hazard ratio an effect on a "
                        "rate; compare it with a cause-specific fit (bc.CompetingRisks), or compare this fit with a "
                        "published SHR")
    raise SpecError(f"{pub.label} is a subdistribution HR (SHR, Fine-Gray), and this fit's posterior has estimand "
                    f"{mine!r}: compare it with a bc.FineGray fit of the same cause")


def _as_draws(posterior, covariate) -> tuple[np.ndarray, str]:
    """The draws of one log-HR, and the label they get by default."""
    if _is_fit(posterior):
        covariate = _fit_covariate(posterior, covariate)
        return posterior.log_hr_draws()[:, list(posterior.covariates).index(covariate)], f"posterior of {covariate!r}"
    import xarray as xr

    if isinstance(posterior, xr.DataArray) and "covariate" in posterior.dims:
        labels = [str(c) for c in posterior["covariate"].values]
        if covariate is None and len(labels) > 1:
            raise SpecError(f"posterior holds draws of {len(labels)} covariates {labels}; pick one with covariate=.")
        if covariate is not None:
            if covariate not in labels:
                raise SpecError(f"covariate={covariate!r} is not among the draws' covariates.{suggest(covariate, labels)} "
                                f"Covariates: {labels}.")
            posterior = posterior.sel(covariate=posterior["covariate"].values[labels.index(covariate)])
        covariate = None
    elif covariate is not None:
        raise SpecError(f"covariate={covariate!r} picks a covariate of a Fit or of draws with a 'covariate' dimension; "
                        "these draws have no covariate labels: pass the Fit, or one column of its draws and no covariate=.")
    return _checked_draws(posterior), "posterior"


def _checked_draws(posterior) -> np.ndarray:
    raw = np.asarray(getattr(posterior, "values", posterior))
    if raw.dtype.kind not in "iuf":  # text, bools, complex numbers and objects are not draws of a log-HR
        raise SpecError(f"posterior: expected real-valued draws of a log-HR, got {type(posterior).__name__} of dtype "
                        f"{raw.dtype}; pass numbers (e.g. fit.log_hr_draws()[:, j]) or the Fit with covariate=.")
    arr = raw.astype(float)
    if arr.ndim == 2 and min(arr.shape) > 1 and not hasattr(posterior, "dims"):
        raise SpecError(f"posterior has shape {arr.shape}: a 2-D array is either draws x covariates, which compare() "
                        "would pool into one distribution (pass one column, e.g. fit.log_hr_draws()[:, j], or the Fit "
                        "with covariate='<name>'), or chains x draws of one log-HR (pass it .ravel()'ed or as an "
                        "xr.DataArray with dims ('chain', 'draw')).")
    if arr.ndim > 2 and not hasattr(posterior, "dims"):
        raise SpecError(f"posterior has shape {arr.shape}; pass the draws of one log-HR as a 1-D array.")
    x = arr.ravel()
    if x.size < 100 or not np.all(np.isfinite(x)):
        raise SpecError(f"posterior: expected at least 100 finite draws of a log-HR, got {x.size} "
                        f"({int(np.sum(~np.isfinite(x)))} not finite).")
    if np.ptp(x) == 0:
        raise SpecError(f"posterior: all {x.size} draws equal {x[0]:g}; a constant is not a posterior distribution "
                        "(check that the right variable was passed).")
    return x


@dataclass(frozen=True)
class Comparison:
    """The numbers of one posterior-vs-published comparison; ``density`` is what ``plot`` draws."""

    published: Published
    posterior_median_hr: float
    posterior_lower: float
    posterior_upper: float
    p_in_published_ci: float
    overlap: float
    standardised_difference: float
    prob: float
    density: pd.DataFrame = field(repr=False)
    label: str = "posterior"
    estimand: str = "HR"  # "SHR" when a subdistribution HR is compared with a published SHR: the text says which

    def to_dict(self) -> dict:
        p = self.published
        return {"posterior": self.label, "estimand": self.estimand, "posterior_median_hr": self.posterior_median_hr,
                "posterior_lower": self.posterior_lower, "posterior_upper": self.posterior_upper,
                "published": p.label, "published_hr": p.hr, "published_lower": p.lower, "published_upper": p.upper,
                "published_verified": p.verified, "p_in_published_ci": self.p_in_published_ci,
                "overlap": self.overlap, "standardised_difference": self.standardised_difference,
                "interpretation": self.sentence()}

    def sentence(self) -> str:
        d, ovl = self.standardised_difference, self.overlap
        e = self.estimand
        gap = (f"The posterior median {e} {self.posterior_median_hr:.3g} and the published {self.published.hr:.3g} "
               f"differ by {abs(d):.2f} SDs of their difference")
        if abs(d) < 1:
            what = "well within what sampling noise alone produces: the two estimates are consistent"
        elif abs(d) < 2:
            what = "more than typical noise but not a clear conflict"
        else:
            what = "more than sampling noise readily explains: the estimates disagree"
        caveat = ("; agreement does not show that either analysis is right" if abs(d) < 1 else
                  "; a gap can come from different data, covariates or models as well as from chance")
        unv = "" if self.published.verified else " The published figure is marked unverified."
        return (f"{gap}, {what} (density overlap {ovl:.2f}; P(posterior {e} in the published CI) = "
                f"{self.p_in_published_ci:.2f}){caveat}.{unv}")

    def __str__(self) -> str:
        p, e = self.published, self.estimand
        lines = [f"{self.label} vs {p.label}",
                 f"  posterior median {e:<3} {self.posterior_median_hr:.3f} ({self.prob:.0%} CrI "
                 f"{self.posterior_lower:.3f} to {self.posterior_upper:.3f})",
                 f"  published {e:<3}        {p.hr:.3f} ({p.level:.0%} CI {p.lower:.3f} to {p.upper:.3f})"
                 + ("" if p.verified else "  [UNVERIFIED]"),
                 f"  P(posterior {e} inside the published CI) = {self.p_in_published_ci:.3f}",
                 f"  overlap of the two densities (log scale) = {self.overlap:.3f}",
                 f"  standardised difference = {self.standardised_difference:+.2f}",
                 f"  {self.sentence()}"]
        return "\n".join(lines)

    def plot(self, *, ax=None, title: str | None = None):
        from .plotting import plot_comparison

        return plot_comparison(self.density, published=self.published, posterior_median=self.posterior_median_hr,
                               ax=ax, title=title or f"{self.label} vs {self.published.label}",
                               estimand=self.estimand)


def compare(posterior, published, *, covariate: str | None = None, prob: float = 0.95,
            label: str | None = None) -> Comparison:
    """Compare posterior draws of a log-HR with a published HR and CI (see the module docstring).

    ``posterior``: a Fit (with ``covariate=``, which may be left out when the fit has a single covariate),
    an ``xr.DataArray`` of log-HR draws (with ``covariate=`` when it has a ``covariate`` dimension of
    several), or a 1-D array of one covariate's draws. ``published``: a registry id ``"<study>/<result>"``,
    a registry result or a mapping with ``hr``, ``lower``, ``upper``. ``label`` names the posterior in the
    table and plot; by default ``"posterior of '<covariate>'"`` for a Fit and ``"posterior"`` otherwise.
    """
    prob = probability("prob", prob)
    pub = as_published(published)
    estimand = "HR"
    if _is_fit(posterior):
        _check_estimands(posterior, pub)
        estimand = SUBDISTRIBUTION if posterior.model.get("estimand") == SUBDISTRIBUTION else "HR"
    if pub.estimand is not None and pub.estimand.upper() == SUBDISTRIBUTION:
        estimand = SUBDISTRIBUTION  # draws without a fit beside a published SHR: they are taken as SHR draws
    x, default_label = _as_draws(posterior, covariate)
    label = default_label if label is None else label
    lo, med, hi = central_interval(x, prob)
    inside = float(np.mean((x >= math.log(pub.lower)) & (x <= math.log(pub.upper))))
    sd = float(np.std(x, ddof=1))
    d = (float(np.mean(x)) - pub.log_hr) / math.hypot(sd, pub.se)
    span = max(x.max(), pub.log_hr + 5 * pub.se) - min(x.min(), pub.log_hr - 5 * pub.se)
    grid = np.linspace(min(x.min(), pub.log_hr - 5 * pub.se) - 0.05 * span,
                       max(x.max(), pub.log_hr + 5 * pub.se) + 0.05 * span, 1024)
    f = stats.gaussian_kde(x)(grid)
    g = stats.norm.pdf(grid, pub.log_hr, pub.se)
    overlap = float(np.trapezoid(np.minimum(f, g), grid))
    density = pd.DataFrame({"log_hr": grid, "hr": np.exp(grid), "posterior": f, "published": g})
    return Comparison(pub, float(np.exp(med)), float(np.exp(lo)), float(np.exp(hi)), inside, min(overlap, 1.0),
                      float(d), prob, density, label, estimand)
