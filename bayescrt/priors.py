"""Priors on log hazard ratios, as plain data.

A prior is a dict such as ``{"dist": "Normal", "mu": 0, "sigma": 0.5}``. Its
``"scale"`` key says which scale it is on:

* ``"original"`` (the default for priors you give): per unit of the covariate
  as it is in your DataFrame, e.g. a log-HR per year of age or for upgrade vs
  de novo;
* ``"standardised"``: per standard deviation of the covariate.

The default prior is ``Normal(0, 2.5)`` on the standardised scale: a log-HR of
2.5 per SD of a covariate (an HR of about 12 per SD) is one prior SD away, so
the prior rules out only implausibly large effects and the data dominate
whenever there are a few dozen events. This is the autoscaled weakly
informative default used by rstanarm.

A prior named for a covariate beats a default, and at the same level the call
beats an analysis spec (see :func:`resolve_priors`); priors are always copied,
never mutated.
All supported families are location-scale families, so a prior moves between
scales exactly: on the standardised scale ``mu`` and ``sigma`` are multiplied
by the covariate's SD.
"""

from __future__ import annotations

import copy
import math

from . import validation
from .errors import SpecError, suggest

DEFAULT_PRIOR = {"dist": "Normal", "mu": 0.0, "sigma": 2.5, "scale": "standardised"}

# distribution -> (required parameters, optional parameters with defaults)
DISTRIBUTIONS = {
    "Normal": (("sigma",), {"mu": 0.0}),
    "StudentT": (("nu", "sigma"), {"mu": 0.0}),
    "Cauchy": (("sigma",), {"mu": 0.0}),
    "Laplace": (("sigma",), {"mu": 0.0}),
    "Flat": ((), {}),
}
SCALES = ("original", "standardised")


def validate_prior(prior: dict, where: str) -> dict:
    """Check one prior and return a complete copy (defaults filled in)."""
    if not isinstance(prior, dict):
        raise SpecError(
            f"prior for {where} must be a dict like {{'dist': 'Normal', 'mu': 0, 'sigma': 1}}, got {prior!r}"
        )
    p = copy.deepcopy(prior)
    dist = p.get("dist")
    if dist not in DISTRIBUTIONS:
        raise SpecError(
            f"prior for {where}: dist={dist!r} is not supported.{suggest(str(dist), DISTRIBUTIONS)} "
            f"Choose one of {list(DISTRIBUTIONS)}"
        )
    required, optional = DISTRIBUTIONS[dist]
    allowed = {"dist", "scale", *required, *optional}
    for key in p:
        if key not in allowed:
            raise SpecError(
                f"prior for {where}: unknown key {key!r} for {dist}.{suggest(key, allowed)} "
                f"Valid keys: {sorted(allowed)}"
            )
    for key in required:
        if key not in p:
            raise SpecError(f"prior for {where}: {dist} needs {key!r} (has {sorted(p)})")
    for key, val in optional.items():
        p.setdefault(key, val)
    p.setdefault("scale", "original")
    if p["scale"] not in SCALES:
        raise SpecError(f"prior for {where}: scale={p['scale']!r} is not valid; choose one of {SCALES}")
    for key in (*required, *optional):
        val = p[key]
        if not validation.is_number(val) or not math.isfinite(val):
            raise SpecError(f"prior for {where}: {key}={val!r} must be a finite number")
        p[key] = float(val)
    for key in ("sigma", "nu"):
        if key in p and p[key] <= 0:
            raise SpecError(f"prior for {where}: {key}={p[key]} must be > 0")
    return p


def resolve_priors(
    covariates: tuple[str, ...],
    sources: tuple[str, ...],
    scales,
    priors: dict | None,
    spec_priors: dict | None = None,
) -> list[dict]:
    """One prior per covariate label, each with its standardised-scale parameters.

    ``priors`` (from the call) and ``spec_priors`` (from an analysis spec) map a
    covariate label, or the DataFrame column a label came from, or
    ``"default"``, to a prior dict. For each covariate the first match wins, in
    this order: call label, call column, spec label, spec column, call
    ``"default"``, spec ``"default"``, built-in default. A prior named for a
    covariate beats any default, and the call beats the spec at the same level.
    Returns, for each covariate, a record with the prior as given, the same
    prior on the standardised scale (what the sampler uses) and on the original
    scale (what is reported).
    """
    layers = []
    valid_keys = {"default", *covariates, *sources}
    for name, layer in (("priors", priors), ("spec priors", spec_priors)):
        layer = {} if layer is None else layer
        if not isinstance(layer, dict):
            raise SpecError(f"{name} must be a dict of covariate -> prior, got {type(layer).__name__}")
        for key in layer:
            if key not in valid_keys:
                raise SpecError(
                    f"{name}: {key!r} is not a covariate.{suggest(key, valid_keys)} Valid keys: {sorted(valid_keys)}"
                )
        layers.append(layer)
    named_default = next((lay["default"] for lay in layers if "default" in lay), None)
    default = DEFAULT_PRIOR if named_default is None else validate_prior(named_default, "default")
    out = []
    for label, src, sd in zip(covariates, sources, scales):
        hit = next(((lay[k], k) for lay in layers for k in (label, src) if k in lay), None)
        given = default if hit is None else validate_prior(hit[0], repr(hit[1]))
        out.append(
            {
                "covariate": label,
                "given": given,
                "standardised": rescale(given, float(sd), "standardised"),
                "original": rescale(given, float(sd), "original"),
            }
        )
    return out


def rescale(prior: dict, sd: float, to: str) -> dict:
    """The same prior expressed per SD (``to="standardised"``) or per unit (``"original"``)."""
    p = dict(prior)
    if p["scale"] == to or p["dist"] == "Flat":
        p["scale"] = to
        return p
    factor = sd if to == "standardised" else 1.0 / sd
    for key in ("mu", "sigma"):
        if key in p:
            p[key] = p[key] * factor
    p["scale"] = to
    return p


def describe(prior: dict) -> str:
    """``Normal(0, 2.5) per SD``-style text."""
    d = prior["dist"]
    if d == "Flat":
        return "Flat (improper)"
    args = [f"{prior['mu']:.4g}", f"{prior['sigma']:.4g}"]
    if d == "StudentT":
        args.insert(0, f"nu={prior['nu']:.4g}")
    unit = "per SD" if prior["scale"] == "standardised" else "per unit"
    return f"{d}({', '.join(args)}) {unit}"


def log_density(x, prior: dict):
    """The log density of ``prior`` (a checked prior dict, on the scale of ``x``) at ``x``; 0 for ``Flat``.

    The one numpy definition of each distribution, beside the PyMC one the
    models build (:func:`bayescrt.families.common.prior_vector`)."""
    import numpy as np
    from scipy import stats

    d = prior["dist"]
    x = np.asarray(x, float)
    if d == "Normal":
        return stats.norm.logpdf(x, prior.get("mu", 0.0), prior["sigma"])
    if d == "StudentT":
        return stats.t.logpdf(x, prior["nu"], prior.get("mu", 0.0), prior["sigma"])
    if d == "Cauchy":
        return stats.cauchy.logpdf(x, prior.get("mu", 0.0), prior["sigma"])
    if d == "Laplace":
        return stats.laplace.logpdf(x, prior.get("mu", 0.0), prior["sigma"])
    if d == "Flat":
        return np.zeros_like(x)
    raise SpecError(f"prior {prior!r}: dist must be one of {list(DISTRIBUTIONS)}")
