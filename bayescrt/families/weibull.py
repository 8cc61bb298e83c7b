"""The Weibull proportional-hazards family.

``H0_s(t) = exp(alpha_s) (t / t_ref)^k_s`` with ``t_ref`` a reference time from
the data (so ``alpha`` is O(1) in any time unit, and nearly uncorrelated with
``k`` and ``beta``: :func:`~bayescrt.families.parametric.weibull_reference`);
priors ``alpha_s ~ Normal(0, 3)`` and ``log k_s ~ Normal(0, 1)``
(:data:`WeibullPH.fixed_priors`). The event terms of the log-likelihood are
sums fixed by the data (events, event sums of ``log t`` and of the
covariates), so each row costs one exponential per gradient.
"""

from __future__ import annotations

import numpy as np

from ..data import SurvivalData
from .common import frailty
from .fused import exposure as fused_exposure
from .common import precondition as _precondition
from .parametric import (LOG_SCALE_PRIOR, ParametricPH, coefficients, log_scale_at_event_means, row_data,
                         weibull_reference)

LOG_SHAPE_PRIOR = {"dist": "Normal", "mu": 0.0, "sigma": 1.0}


class WeibullPH(ParametricPH):
    """Bayesian Weibull proportional-hazards model; coefficients are log-HRs, as in :class:`~bayescrt.CoxPH`.

    ``h(t | x) = h0_s(t) exp((x - center) @ beta)`` with ``H0_s(t) = exp(log_scale_s) (t / t_ref)^shape_s``
    per stratum ``s``; ``t_ref`` is a reference time taken from the data (recorded in the fit's
    ``model["baseline"]``; see :func:`bayescrt.families.parametric.weibull_reference`), chosen so
    that the scale and shape are nearly uncorrelated a posteriori. Priors: the covariates' priors as
    in :class:`~bayescrt.CoxPH`; ``log_scale ~ Normal(0, 3)``, ``log(shape) ~ Normal(0, 1)``.
    """

    family = "WeibullPH"
    fixed_priors = {"log_scale": LOG_SCALE_PRIOR, "log_shape": LOG_SHAPE_PRIOR}
    baseline_vars = ("log_scale", "shape")
    compiled_totals = True  # loglik_totals: the Laplace proposals' sums by fused.cell_sums

    def _build(self, data, priors, hierarchy):
        return build_weibull(data, priors, frailty_prior=self.frailty_prior, centered=self.centered)

    def _text(self, info):
        return "Weibull proportional hazards, full likelihood"

    @classmethod
    def pointwise_loglik(cls, post, data, info, hierarchy=None, into=None):
        """Per-row log-likelihood for every draw (draws, n), rows in the data's sorted order (or into
        ``into = (out, positions)``, as the base class), by :func:`.fused.weibull_rows`: the base class's numpy
        numbers without its draws x rows temporaries, the linear predictors formed in the kernel."""
        from .fused import by_draws, weibull_rows

        pred, out, pos = cls._kernel_inputs(post, data, into)
        a, k = (np.ascontiguousarray(post[v], dtype=float) for v in ("log_scale", "shape"))
        t_ref = info["t_ref"]
        lt = np.log(data.time / t_ref)
        entered, le = (np.zeros(0, bool), np.zeros(0)) if data.entry is None else _entry_log_times(data, t_ref)
        w = np.zeros(0) if data.weights is None else np.asarray(data.weights, float)
        st, lk, dd = np.asarray(data.strata, np.int64), np.log(k), data.event.astype(float)
        has_entry, weighted, log_tref = data.entry is not None, data.weights is not None, float(np.log(t_ref))
        B, XT, ca, T, has_a = pred
        by_draws(lambda i, j: weibull_rows(B[i:j], XT, ca, T[i:j], has_a, a[i:j], lk[i:j], k[i:j], st, lt, le, entered,
                                           has_entry, dd, w, weighted, log_tref, pos, out[i:j]), len(B), data.n)
        return out

    @classmethod
    def loglik_totals(cls, post, data, info, hierarchy=None) -> np.ndarray:
        """``pointwise_loglik(post, data, info).sum(axis=1)`` without a draws x rows array, for the Laplace
        sampler's proposals: per stratum ``s`` and draw, ``B_s = sum w_i exp(eta_i + k_s log(t_i / t_ref))`` by
        :func:`.fused.cell_sums` (one pass over the rows for 128 draws; a second by the entry times under delayed
        entry), so that the cumulative hazards sum to ``sum_s exp(a_s) B_s``; the events' terms are linear in the
        parameters: ``sum w d eta`` from the same pass, the rest from per-stratum event sums."""
        from .fused import cell_sums

        beta = np.asarray(post["log_hr"], float)
        a, k = (np.asarray(post[v], float) for v in ("log_scale", "shape"))  # draws x strata
        t_ref, S = float(info["t_ref"]), data.n_strata
        lt = np.log(data.time / t_ref)
        st = np.asarray(data.strata, np.int64)
        wd = data.event * (1.0 if data.weights is None else data.weights)
        frailty = (data.cluster, post["frailty"]) if data.cluster is not None and "frailty" in post else None
        zeros, shift = np.zeros(data.n), beta @ data.center
        B, _, _, _, lin = cell_sums(beta, data.X, shift, st, zeros, S, wd, weights=data.weights, frailty=frailty,
                                    slope=(st, lt, k))
        exposure = np.sum(np.exp(a) * B, axis=1)
        if data.entry is not None:  # minus each row's cumulative hazard at its entry (0 for those entered at 0)
            entered, le = _entry_log_times(data, t_ref)
            w_e = entered * (1.0 if data.weights is None else data.weights)
            Be = cell_sums(beta, data.X, shift, st, zeros, S, zeros, weights=w_e, frailty=frailty, slope=(st, le, k))[0]
            exposure -= np.sum(np.exp(a) * Be, axis=1)
        D, L = np.bincount(st, weights=wd, minlength=S), np.bincount(st, weights=wd * lt, minlength=S)
        # lin = sum w d (eta + k_s lt): the events' terms are lin + sum_s D_s (a_s + log k_s - log t_ref) - L_s
        return lin + (a + np.log(k) - np.log(t_ref)) @ D - L.sum() - exposure

    @classmethod
    def _row_hazard(cls, post, data, info, tv):
        t_ref = info["t_ref"]
        st = data.strata
        a, k = post["log_scale"][:, st], post["shape"][:, st]
        lt = np.log(data.time / t_ref)
        H = np.exp(a + k * lt)
        if data.entry is not None:
            e = data.entry / t_ref
            H = H - np.where(e > 0, np.exp(a + k * np.log(np.where(e > 0, e, 1.0))), 0.0)
        return H, a + np.log(k) + (k - 1) * lt - np.log(t_ref)

    @classmethod
    def _cumhaz(cls, post, info, times):
        a, k = post["log_scale"], post["shape"]  # (D, S)
        with np.errstate(divide="ignore"):
            lt = np.log(times / info["t_ref"])
        return np.exp(a[..., None] + k[..., None] * lt)


def _entry_log_times(data, t_ref: float) -> tuple[np.ndarray, np.ndarray]:
    """``(entered, log(entry / t_ref))`` of delayed-entry data: which rows entered after 0 (the others' cumulative
    hazard at entry is 0, their log time a placeholder 0)."""
    entered = data.entry > 0
    return entered, np.log(np.where(entered, data.entry, t_ref) / t_ref)


def build_weibull(data: SurvivalData, priors: list[dict], *, frailty_prior=None, centered=False,
                  precondition=True, fused=True):
    """The Weibull model; ``fused=False`` builds the cumulative-hazard sum as a pytensor graph, the twin
    that ``tests/test_fused_parametric.py`` checks :func:`bayescrt.families.fused.exposure` against."""
    import pymc as pm
    import pytensor.tensor as pt

    m, s_, zpriors, _ = _precondition(data, priors, enabled=precondition)
    t_ref, c = weibull_reference(data, m)
    S = data.n_strata
    coords = {"covariate": list(data.covariates), "stratum": [str(s) for s in data.strata_labels]}
    if data.cluster is not None:
        coords["cluster"] = [str(c) for c in data.cluster_labels]
    w = np.ones(data.n) if data.weights is None else data.weights
    wd = w * data.event
    lt = np.log(data.time / t_ref)
    Xc = data.standardised() - c[data.strata]  # centred at the event means of the row's stratum
    with pm.Model(coords=coords) as model:
        # sufficient statistics of the event terms: per stratum the (weighted) events and sum of
        # log(t / t_ref) over events; per covariate the event sum of the centred design (zero up to
        # rounding); a frailty's event terms stay per row
        events_s, log_time_sum_s = np.bincount(data.strata, wd, S), np.bincount(data.strata, wd * lt, S)
        beta_std, log_hr, per_cov = coefficients(data, zpriors, m, s_, pm, pt, extra={
            **{f"event_mean_{s}": c[s] for s in range(S)}, "event_sum": Xc.T @ wd,
            **{f"events_{s}": events_s[s] for s in range(S)},
            **{f"log_time_sum_{s}": log_time_sum_s[s] for s in range(S)},
            "log_t_ref": np.log(t_ref)}, X=Xc, design=not fused)
        pm.Deterministic("log_hr", log_hr, dims="covariate")
        C = pt.stack([per_cov[f"event_mean_{s}"] for s in range(S)])  # (S, p)
        events = pt.stack([per_cov[f"events_{s}"] for s in range(S)])
        log_time_sum = pt.stack([per_cov[f"log_time_sum_{s}"] for s in range(S)])
        # the scale at the event means; its prior is LOG_SCALE_PRIOR on log_scale (a shift given beta)
        shift = (C * beta_std).sum(axis=1)
        a = log_scale_at_event_means(pm, shift)
        pm.Deterministic("log_scale", a - shift, dims="stratum")
        log_k = pm.Normal("log_shape", LOG_SHAPE_PRIOR["mu"], LOG_SHAPE_PRIOR["sigma"], dims="stratum")
        k = pt.exp(log_k)
        pm.Deterministic("shape", k, dims="stratum")
        e = None if data.entry is None else data.entry / t_ref
        rows = row_data(data, {"log_time_ratio": lt,  # log(t / t_ref)
                            # log(entry / t) for late entrants, 0 for the others: (entry / t)^k <= 1 never overflows
                            "log_entry_over_time": None if e is None else np.where(
                                e > 0, np.log(np.where(e > 0, e, 1.0)) - lt, 0.0),
                            "entered_late": None if e is None else (e > 0).astype(float)}, {},
                        X=Xc if fused else None)
        events_ll = (events * (a + log_k - per_cov["log_t_ref"]) + (k - 1) * log_time_sum).sum() \
            + (per_cov["event_sum"] * beta_std).sum()
        u = None
        if data.cluster is not None:
            u = frailty(rows["cluster_code"], frailty_prior, centered, pm)
            wu = u if rows["weight"] is None else u * rows["weight"]
            events_ll = events_ll + (rows["event"] * wu).sum()
        if S == 1:  # no gathers
            a_i, k_i = a[0], k[0]
        else:
            st = rows["stratum_code"]
            a_i, k_i = a[st], k[st]
        # sum_i w_i [H0(t_i) - H0(entry_i)] exp(eta_i) = sum_i v_i exp(eta_i + log H0(t_i)), with
        # v_i = w_i [1 - (entry_i / t_i)^k] under delayed entry: the kernel's one exponential per row
        log_H0 = a_i + k_i * rows["log_time_ratio"]
        v = None
        if data.entry is not None:
            v = 1.0 - rows["entered_late"] * pt.exp(k_i * rows["log_entry_over_time"])
        if rows["weight"] is not None:
            v = rows["weight"] if v is None else v * rows["weight"]
        offset = log_H0 if u is None else log_H0 + u
        v = pt.ones_like(rows["event"]) if v is None else v
        if fused:
            exposure = fused_exposure(beta_std, rows["XT"], offset, v)
        else:
            exposure = (v * pt.exp((per_cov["X"] * beta_std).sum(axis=1) + offset)).sum()
        pm.Potential("loglik", events_ll - exposure)
    return model, {"t_ref": t_ref}

