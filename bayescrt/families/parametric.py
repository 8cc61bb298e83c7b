"""What the full-likelihood proportional-hazards families share (Weibull, exponential, piecewise exponential).

They model ``h(t | x) = h0_s(t) exp((x - center) @ beta)`` with a baseline per
stratum ``s`` and the log-HRs ``beta`` shared, so ``beta`` means what it means in
the Cox model. With delayed entry (or start/stop rows: ``entry`` = start,
``time`` = stop) a row contributes ``d log h(t) - [H(t) - H(entry)]``; case
weights multiply a row's contribution. Each family module (``weibull``,
``exponential``, ``piecewise``) subclasses :class:`ParametricPH` and supplies
its baseline: the PyMC graph, and the numpy ``log h0`` and ``H0`` per row for
the pointwise log-likelihood and per time for absolute effects.
"""

from __future__ import annotations

import numpy as np

from ..compiled import data_block
from ..data import SurvivalData
from ..errors import SpecError
from . import registry
from .base import Estimator, flat_draws, thinned
from .common import prior_rows, prior_vector


# the prior of log_scale, the log cumulative baseline hazard at t_ref (Weibull and exponential)
LOG_SCALE_PRIOR = {"dist": "Normal", "mu": 0.0, "sigma": 3.0}


def log_scale_at_event_means(pm, shift, dims: str = "stratum"):
    """The sampled scale at the covariates' event means, ``log_scale + shift`` with ``log_scale ~ LOG_SCALE_PRIOR``.

    Given the log-HRs the shift is a constant, so the prior is the same Normal moved by ``shift``."""
    assert LOG_SCALE_PRIOR["dist"] == "Normal"  # a location family: the shift moves only its mean
    return pm.Normal("log_scale_at_event_means", shift + LOG_SCALE_PRIOR["mu"], LOG_SCALE_PRIOR["sigma"], dims=dims)


class ParametricPH(Estimator):
    """Shared code of the full-likelihood PH families: the per-row log-likelihood and the baseline per draw."""

    writes_into = True  # pointwise_loglik(into=...): the stored values straight into the caller's order
    baseline_vars: tuple[str, ...] = ()  # posterior variables of the baseline hazard
    other_vars: tuple[str, ...] = ()  # further sampled variables the convergence gates check (the walk's SD)

    @property
    def posterior_vars(self):
        return ("log_hr", "frailty", "tv_log_hr", *self.baseline_vars)

    @property
    def diagnostic_vars(self):
        return (*Estimator.diagnostic_vars, *self.baseline_vars, *self.other_vars)

    def _describe(self, data, info):
        return self._text(info), {}, {"baseline": {k: v for k, v in info.items() if k != "tv_index"}}

    def _text(self, info: dict) -> str:
        return self.family

    @classmethod
    def _row_hazard(cls, post: dict, data: SurvivalData, info: dict, tv: int | None):
        """``(H, log_h)`` per draw and row (sorted order): the baseline's cumulative and log hazard."""
        raise NotImplementedError

    @classmethod
    def _cumhaz(cls, post: dict, info: dict, times: np.ndarray) -> np.ndarray:
        """``H0`` per draw, stratum and time from the baseline's draws."""
        raise NotImplementedError

    @staticmethod
    def _row_predictors(post, data, tv=None) -> np.ndarray:
        """Each draw's linear predictor per sorted row (draws x rows, C order): the log-HRs on the centred
        covariates (less the time-varying covariate's, ``tv``, whose effect is per interval), plus any frailty."""
        beta = np.asarray(post["log_hr"], float)
        eta = beta @ (data.X - data.center).T
        if tv is not None:
            eta -= np.outer(beta[:, tv], data.X[:, tv] - data.center[tv])
        if "frailty" in post and data.cluster is not None:
            eta += post["frailty"][:, data.cluster]
        return eta

    @staticmethod
    def _kernel_inputs(post, data, into) -> tuple:
        """What the compiled row kernels (:func:`.fused.weibull_rows`, :func:`.fused.piecewise_rows`) read for the
        linear predictors and write into: ``((coefficients, centred covariates by column, cluster codes, frailty
        table, has a frailty), out, positions)``. ``into = (out, positions)`` puts sorted row ``i`` in column
        ``positions[i]`` of ``out`` (the caller's order); without it a new draws x rows array in the sorted order."""
        B = np.ascontiguousarray(post["log_hr"], dtype=float)
        XT = np.ascontiguousarray((data.X - data.center).T)
        has_a = "frailty" in post and data.cluster is not None
        ca = np.asarray(data.cluster, np.int64) if has_a else np.zeros(0, np.int64)
        T = np.ascontiguousarray(post["frailty"], dtype=float) if has_a else np.zeros((0, 0))
        if into is None:
            return (B, XT, ca, T, has_a), np.empty((len(B), data.n)), np.arange(data.n)
        out, pos = into
        pos = np.asarray(pos)
        # the kernels write out[d, pos[i]] unchecked: anything but a draws x rows float array and a permutation of
        # the rows would write outside it or leave columns unwritten
        if not (isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (len(B), data.n)
                and out.flags.c_contiguous):
            raise ValueError(f"pointwise_loglik: into's out must be a C-contiguous float64 array of shape "
                             f"{(len(B), data.n)} (draws x rows), not {getattr(out, 'shape', type(out).__name__)}")
        if pos.shape != (data.n,) or pos.dtype.kind not in "iu" or not np.array_equal(np.sort(pos), np.arange(data.n)):
            raise ValueError(f"pointwise_loglik: into's positions must be a permutation of the {data.n} rows' "
                             "positions 0..n-1 (each sorted row's column in out)")
        return (B, XT, ca, T, has_a), out, np.ascontiguousarray(pos, dtype=np.int64)

    @classmethod
    def pointwise_loglik(cls, post, data, info, hierarchy=None, into=None):
        """Per-row log-likelihood for every draw (draws, n), rows in the data's sorted order; ``into = (out,
        positions)``: sorted row ``i`` written to column ``positions[i]`` of ``out`` instead, which is returned."""
        if into is not None:
            out, pos = into
            out[:, pos] = cls.pointwise_loglik(post, data, info, hierarchy)
            return out
        tv = info.get("tv_index")
        eta = cls._row_predictors(post, data, tv)
        d = data.event.astype(float)
        H, log_h = cls._row_hazard(post, data, info, tv)
        ll = d * (log_h + eta) - np.exp(eta) * H
        if data.weights is not None:
            ll = ll * data.weights
        return ll

    @classmethod
    def baseline_cumhaz(cls, fit, times, max_draws=None):
        """H0 per draw, stratum and time: (draws, strata, times)."""
        post = fit.idata["posterior"]
        if "frailty" in post:
            raise SpecError("absolute effects are not available for fits with a frailty: their baseline hazard is "
                            "conditional on the cluster effects")
        if "tv_log_hr" in post:
            raise SpecError("absolute effects need proportional hazards; this fit has a time-varying effect "
                            "(fit without tv= for absolute effects)")
        times = np.atleast_1d(np.asarray(times, float))
        draws = {k: thinned(v, max_draws) for k, v in flat_draws(post, cls.baseline_vars).items()}
        return cls._cumhaz(draws, fit.model["baseline"], times)


def pointwise_loglik(fit_post, data: SurvivalData, family: str, info: dict, tv: int | None = None) -> np.ndarray:
    """Per-row log-likelihood of the registered full-likelihood ``family`` (its name) for every draw."""
    return registry.estimator_class(family).pointwise_loglik(fit_post, data, {**info, "tv_index": tv})


def default_cuts(data: SurvivalData, n_intervals: int = 8) -> np.ndarray:
    """Interior cut points at quantiles of the event times (distinct, strictly inside the follow-up)."""
    t = data.time[data.event]
    q = np.quantile(t, np.linspace(0, 1, n_intervals + 1)[1:-1])
    q = np.unique(np.round(q, 10))
    return q[(q > 0) & (q < data.time.max())]



def coefficients(data: SurvivalData, zpriors, m, s_, pm, pt, extra: dict | None = None, X=None, design=True):
    """Standardised log-HRs ``m + s * z``, the log-HRs in the covariates' units and the container's views.

    All from one data container (see :func:`bayescrt.compiled.data_block`): the
    priors' rows, the preconditioning, the scales, the ``extra`` per-covariate rows
    and scalars, and (with ``design``) the design ``X`` (default: the standardised
    covariates) as ``views["X"]``; the fused likelihoods hold it by column in
    :func:`row_data` instead."""
    views = data_block("covariate_data", {**prior_rows(zpriors), "precond_mode": m, "precond_se": s_,
                                          "x_scale": data.scale, **(extra or {}),
                                          "X": (data.standardised() if X is None else X) if design else None})
    z = prior_vector(zpriors, len(zpriors), pm, pt, views)
    beta_std = views["precond_mode"] + views["precond_se"] * z
    return beta_std, beta_std / views["x_scale"], views


def row_data(data: SurvivalData, values: dict, index: dict, X=None):
    """Per-row numbers as two data containers, floating point (``row_values``) and integer (``row_index``).

    Always present: ``event`` (0/1 as float), ``weight`` (None when unweighted),
    ``stratum_code`` and ``cluster_code`` (None without clusters); plus ``values``
    and ``index``, and ``X`` (rows x covariates) stored by column as ``XT``, the
    layout of the fused kernels (:func:`bayescrt.families.fused.exposure`)."""
    v = data_block("row_values", {"event": data.event.astype(float), "weight": data.weights, **values,
                                  "XT": None if X is None else np.ascontiguousarray(np.asarray(X, float).T)})
    v.update(data_block("row_index", {"stratum_code": data.strata, "cluster_code": data.cluster, **index}))
    return v



def event_means(data: SurvivalData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(wd, D, c)``: each row's (weighted) event indicator, the events per stratum and the per-stratum
    event means of the standardised covariates (the centre where a stratum has no events)."""
    w = np.ones(data.n) if data.weights is None else data.weights
    wd = w * data.event
    X = data.standardised()
    S = data.n_strata
    D = np.bincount(data.strata, wd, S)
    sums = np.stack([np.bincount(data.strata, wd * X[:, j], S) for j in range(X.shape[1])], axis=-1)
    return wd, D, np.divide(sums, D[:, None], out=np.zeros_like(sums), where=D[:, None] > 0)


def weibull_reference(data: SurvivalData, beta_std: np.ndarray) -> tuple[float, np.ndarray]:
    """The reference time ``t_ref`` and the per-stratum event means of the standardised covariates.

    Both make the Weibull posterior nearly uncorrelated, so NUTS takes short
    trajectories. With ``k`` the shape, a stratum's ``log_scale`` (its log
    cumulative baseline hazard at ``t_ref``, at the covariate centre) has
    curvature ``sum H_i (log(t_i / t_ref), x_i)`` against ``log k`` and the
    log-HRs; at the likelihood's mode that is zero when ``log t_ref`` is the
    (weighted) mean log event time plus ``1/k`` and when the covariates are
    centred at their event means. ``k`` is the profile-likelihood estimate of
    one shape with the log-HRs fixed at ``beta_std`` (the Cox estimate) and
    the scales profiled out per stratum. The sampler works with the scales at
    the event means; ``log_scale`` is reported at the covariate centre.
    """
    from scipy.optimize import minimize_scalar

    w = np.ones(data.n) if data.weights is None else data.weights
    wd, D, c = event_means(data)
    X = data.standardised()
    S = data.n_strata
    t0 = float(np.median(data.time))
    lt = np.log(data.time / t0)
    le = None if data.entry is None else np.log(np.where(data.entry > 0, data.entry / t0, 1.0))
    r = w * np.exp(X @ beta_std)
    lbar = float(wd @ lt / D.sum())

    def negprofile(log_k):
        k = np.exp(log_k)
        h = np.exp(k * (lt - lbar))  # shifted by the mean log event time, for range
        if le is not None:
            h = h - (data.entry > 0) * np.exp(k * (le - lbar))
        R = np.bincount(data.strata, r * h, S)
        return -(D.sum() * log_k - D @ np.log(R))

    k = float(np.exp(minimize_scalar(negprofile, bounds=(-4.0, 4.0), method="bounded").x))
    return float(t0 * np.exp(lbar + 1.0 / k)), c

