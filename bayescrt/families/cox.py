"""The Cox proportional-hazards family on the partial likelihood (see :mod:`.partial_likelihood`).

The sampler sees only the log-HRs (and a frailty or study level); the baseline
hazard is Breslow's estimator computed afterwards with each draw's log-HRs
(:meth:`CoxPH.baseline_cumhaz`). Several studies: each study has its own
baseline (a stratum) and the exposure's log-HR is partially pooled, separate or
common across studies, optionally with published aggregate estimates entering
through the same population effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..compiled import data_block
from ..data import SurvivalData, labels_as_text
from ..errors import SpecError
from .base import Estimator, check_marginal, fit_data, thinned
from .common import DEFAULT_FRAILTY_PRIOR, frailty, prior_rows, prior_vector, resolve_frailty_prior
from .common import precondition as _precondition
from .fused import partial_loglik as fused_partial_loglik
from .fused import linear_predictors, partial_loglik_events, walk_terms
from .partial_likelihood import (EVENT_INDEX, EVENT_VALUES, TIES, RiskSets, mle, partial_loglik_terms,  # noqa: F401
                                 risk_set_sums)

POOLING = ("partial", "none", "complete")


class CoxPH(Estimator):
    """Bayesian Cox proportional-hazards model on the partial likelihood.

    Parameters
    ----------
    ties : ``"efron"`` (default) or ``"breslow"``: how tied event times enter
        the partial likelihood.
    sampler : ``"nutpie"`` (default), ``"nutpie-jax"`` (the same NUTS, the log density compiled by JAX: on a GPU
        where JAX finds one), ``"laplace"`` (importance sampling from the Laplace approximation,
        :mod:`bayescrt.laplace`) or ``"pymc"`` (PyMC's own NUTS).

    Notes
    -----
    Covariates are centred and divided by their SD inside the model; every
    reported number is back in the covariates' own units. The default prior
    is ``Normal(0, 2.5)`` per SD of each covariate (see :mod:`bayescrt.priors`).

    The pointwise log-likelihood (``idata.log_likelihood.partial_loglik``) is
    stored **per event**: the partial likelihood factors over event times, not
    over subjects, so each observed event carries its term and censored
    subjects enter only through the risk sets. ArviZ's ``loo`` runs on it; it
    estimates how well the model predicts which subject fails at each event
    time, not absolute survival.

    Several studies (``fit(study=..., exposure=..., pooling=..., aggregate=..., study_prior=...)``):
    ``study`` names the column of each row's study; each study gets its own
    baseline hazard and the ``exposure``'s log-HR is ``pooling="partial"``
    (study effects ~ Normal(population effect, study SD); ``study_prior`` on
    that SD, default HalfNormal(0.5) on the log-HR scale), ``"none"`` (separate
    effects; the exposure's row reports their mean) or ``"complete"`` (one
    common effect). ``aggregate`` adds published studies through the same
    population effect: a DataFrame with columns ``study``, ``estimate`` (log-HR
    of the exposure, 1 vs 0) and ``se``, or a list of registry ids
    ``"<study>/<result>"``. Per-study effects are in ``fit.study_effects()``.

    Partially pooled study effects are non-centred by default (``effect =
    population + SD * z``), centred with ``centered=True``. The centred form
    suits a study whose data pin its effect down (the non-centred form mixes
    slowly there), the non-centred form a weakly informed one, such as a
    published estimate (the centred form meets the funnel there). With
    ``aggregate`` and one study of individual data whose own standard error is
    below a tenth of the study-SD prior's scale, the default is mixed: that
    study's effect is centred, the published ones stay
    non-centred (see ``_centre_own_study``).
    """

    family = "CoxPH"
    compiled_pointwise = True  # the per-event terms by the fused kernel (fused.partial_loglik_events)
    likelihood = "partial"
    loglik_var = "partial_loglik"
    step_baseline = True
    fixed_priors = {}  # the sampler sees only the log-HRs
    diagnostic_vars = ("log_hr", "frailty_sd", "frailty", "study_sd", "study_log_hr")
    masks_covariates = True
    posterior_vars = ("log_hr", "frailty", "study_log_hr")
    loglik_chunk = 256
    has_levels = True

    def __init__(self, ties: str = "efron", sampler: str = "nutpie", frailty_prior: dict | None = None,
                 centered: bool = False, target_accept: float | None = None):
        if not isinstance(ties, str) or ties not in TIES:
            raise SpecError(f"ties={ties!r} is not valid; choose one of {TIES}")
        self.ties = ties
        super().__init__(sampler=sampler, frailty_prior=frailty_prior, centered=centered,
                         target_accept=target_accept)

    def __repr__(self) -> str:
        return (f"CoxPH(ties={self.ties!r}, sampler={self.sampler!r}, frailty_prior={self.frailty_prior!r}, "
                f"centered={self.centered!r}, target_accept={self.target_accept!r})")

    def _build(self, data, priors, hierarchy):
        if hierarchy is not None:
            hierarchy["centered"] = self.centered
        model, rs, pre = build_model(data, priors, self.ties, frailty_prior=self.frailty_prior,
                                     centered=self.centered, hierarchy=hierarchy)
        return model, {"risk_sets": rs, "parameterisation": pre}

    def _describe(self, data, info):
        return (f"Cox proportional hazards, partial likelihood, ties={self.ties}", {"ties": self.ties},
                {"parameterisation": info["parameterisation"]})

    def _levels(self, data, levels):
        study, exposure, aggregate = levels["study"], levels["exposure"], levels["aggregate"]
        hierarchy = _hierarchy(data, exposure, levels["pooling"], aggregate, levels["study_prior"]) \
            if (study is not None or aggregate is not None) else None
        if exposure is not None and hierarchy is None:
            raise SpecError("exposure= is used with study= or aggregate= (several studies); drop it for one cohort")
        return hierarchy

    def _level_description(self, hierarchy, levels):
        if hierarchy is None:
            return {}
        return {"studies": {
            "column": levels["study"], "exposure": levels["exposure"],
            "pooling": levels["pooling"], "prior_sd": hierarchy["study_prior"],
            "labels": list(hierarchy["labels"]), "n_individual": hierarchy["n_ipd"],
            "aggregate": None if hierarchy.get("aggregate") is None else
            {k: [float(x) for x in v] for k, v in hierarchy["aggregate"].items() if k != "labels"}}}

    def _default_target_accept(self, data, hierarchy):
        # a between-study SD estimated from a handful of studies makes a funnel with the population effect
        # that NUTS crosses only with small steps; a frailty over many clusters needs less
        return (0.99 if hierarchy is not None and hierarchy["pooling"] == "partial"
                else 0.95 if (hierarchy is not None or data.cluster is not None) else 0.8)

    def _n_terms(self, data):
        return data.n_events

    def _loglik_text(self, stored):
        return "per event" if stored else "not stored"

    def _stored_order(self, data):  # per-event terms, in event order
        return None

    def _loglik_dataset(self, ll, post, data, info):
        rs = info["risk_sets"]
        rows = labels_as_text(data.row_labels[rs.event_rows])
        return xr.Dataset(
            {"partial_loglik": (("chain", "draw", "event"), ll)},
            coords={"chain": post["chain"].values, "draw": post["draw"].values, "event": np.arange(len(rows)),
                    "event_row": ("event", rows)},
        )

    @classmethod
    def pointwise_loglik(cls, post, data, info, hierarchy=None, terms: bool = True, scratch: dict | None = None):
        """Per-event partial log-likelihood for a batch of draws: ``(draws, events)``; with ``terms=False`` only its
        sum per draw, ``(draws,)``; ``scratch`` keeps buffers from one batch to the next."""
        return _pointwise_loglik(post, data, info["risk_sets"], hierarchy, terms, scratch)

    @classmethod
    def baseline_cumhaz(cls, fit, times, max_draws=None, chunk: int = 64):
        """Breslow baseline cumulative hazard per draw: shape (draws, strata, len(times))."""
        check_marginal(fit)
        data = fit_data(fit)
        return breslow_cumhaz(fit, data, RiskSets.from_data(data, "breslow"), times, max_draws, chunk=chunk)


def breslow_cumhaz(fit, data: SurvivalData, rs: RiskSets, times, max_draws=None, sums=None, chunk: int = 64):
    """Breslow's estimator with each draw's log-HRs, ``sum over event times <= t of (weighted events) / (risk-set
    sum)``, per draw, stratum and time: (draws, strata, len(times)). ``sums(r, rs)`` forms the risk-set sums of the
    row values ``r = w exp(eta)`` (default :func:`risk_set_sums`; the Fine-Gray model's weighted risk sets)."""
    sums = risk_set_sums if sums is None else sums
    beta = thinned(fit.log_hr_draws(), max_draws)
    center = np.asarray(fit.model["center"])
    Xc = data.X - center
    times = np.atleast_1d(np.asarray(times, float))
    ev_time = data.time[rs.event_rows]
    ev_stratum = data.strata[rs.event_rows]
    out = np.zeros((len(beta), data.n_strata, len(times)))
    w = np.ones(data.n) if data.weights is None else data.weights
    for a in range(0, len(beta), chunk):
        eta = beta[a:a + chunk] @ Xc.T
        r = w * np.exp(eta)  # centred covariates keep eta moderate
        risk = sums(r, rs)  # (chunk, events)
        inc = rs.event_weight / risk
        for s in range(data.n_strata):
            mine = ev_stratum == s
            cum = np.cumsum(inc[:, mine], axis=1)
            k = np.searchsorted(ev_time[mine], times, side="right")
            padded = np.concatenate([np.zeros((len(cum), 1)), cum], axis=1)
            out[a:a + chunk, s, :] = padded[:, k]
    return out


def _hierarchy(data: SurvivalData, exposure, pooling, aggregate, study_prior) -> dict:
    """Check the several-studies options and describe the study level for the model builder."""
    if pooling not in POOLING:
        raise SpecError(f"pooling={pooling!r}: choose one of {POOLING}")
    if exposure is None:
        raise SpecError("study= and aggregate= need exposure=<column>: the covariate whose effect varies by study")
    j = data.indicator_column(exposure)
    if j is None and data.sources.count(exposure) != 1:
        raise SpecError(f"exposure={exposure!r} must be one of the covariates and a single column "
                        f"(covariates: {sorted(set(data.sources))}); recode a categorical exposure as one indicator")
    if j is None:
        raise SpecError(f"the study level models the log-HR of a 0/1 exposure (e.g. upgrade vs de novo), and the "
                        f"study SD prior is on that scale; exposure {exposure!r} must be coded 0/1")
    prior = resolve_frailty_prior(study_prior or {"dist": "HalfNormal", "sigma": 0.5}, "study_prior")
    ipd = [str(s) for s in data.study_labels] if data.study is not None else ["individual data"]
    out = {"exposure": j, "pooling": pooling, "study_prior": prior, "n_ipd": len(ipd)}
    if aggregate is not None:
        if isinstance(aggregate, pd.DataFrame):
            miss = {"study", "estimate", "se"} - set(aggregate.columns)
            if miss:
                raise SpecError(f"aggregate: missing column(s) {sorted(miss)}; give study, estimate (log-HR) and se")
            agg = aggregate
        else:
            from ..published import published_log_estimates

            agg, _ = published_log_estimates(list(aggregate))
        try:
            est, se = agg["estimate"].to_numpy(float), agg["se"].to_numpy(float)
        except (TypeError, ValueError):
            raise SpecError("aggregate: columns 'estimate' and 'se' must be numeric (log-HRs and their SEs)") from None
        labels = [str(x) for x in agg["study"]]
        bad = [lab for lab, e, s in zip(labels, est, se) if not (np.isfinite(e) and np.isfinite(s) and s > 0)]
        clash = set(labels) & set(ipd)
        twice = sorted({lab for lab in labels if labels.count(lab) > 1})
        if bad or clash or twice:
            raise SpecError(f"aggregate: studies {bad} need a finite estimate and an SE > 0" if bad else
                            f"aggregate: study labels {sorted(clash)} are also individual-data studies" if clash else
                            f"aggregate: study labels must be unique; repeated: {twice}")
        out["aggregate"] = {"estimate": est, "se": se}
        ipd = ipd + labels
    reserved = {"population", "new study", "between-study SD (log HR)"} & set(ipd)
    if reserved:
        raise SpecError(f"study labels {sorted(reserved)} are names of summary rows of fit.study_effects(); rename "
                        "those studies")
    if len(set(ipd)) < len(ipd):
        raise SpecError(f"study labels are not unique once written as text: {sorted(ipd)}")
    if len(ipd) < 2 and pooling == "partial":
        raise SpecError("partial pooling needs at least 2 studies (individual or aggregate); with one study the "
                        "between-study SD would come from its prior alone")
    out["labels"] = ipd
    out["n_studies"] = len(ipd)
    return out


def _pointwise_loglik(post: dict, data: SurvivalData, rs: RiskSets, hierarchy: dict | None = None,
                      terms: bool = True, scratch: dict | None = None) -> np.ndarray:
    """Per-event partial log-likelihood of a batch of flattened draws (``post``: name -> (draws, ...)), or with
    ``terms=False`` its sum per draw; ``scratch``: buffers kept between batches (:func:`.fused.partial_loglik_events`)."""
    beta = np.asarray(post["log_hr"], dtype=float)
    X = np.ascontiguousarray(data.X, dtype=float)
    if hierarchy is not None:  # the exposure's coefficient is its study's
        j = hierarchy["exposure"]
        codes = np.zeros(data.n, np.int64) if data.study is None else data.study
        exposure = data.X[:, j] - data.center[j]
    if rs.entry_order is None:  # one walk over the rows from the coefficients (no draws x rows array)
        frailty = None if data.cluster is None else (data.cluster, post["frailty"])
        study = None if hierarchy is None else (codes, exposure, post["study_log_hr"] - beta[:, [j]])
        return walk_terms(beta, X, rs, beta @ data.center, frailty=frailty, study=study, terms=terms,
                          scratch=scratch)

    def eta_of(a, b, eta):  # the linear predictors of draws a to b into eta: X beta - center beta, no centred X
        bt = np.ascontiguousarray(beta[a:b])
        linear_predictors(bt, X, bt @ data.center, eta)
        if hierarchy is not None:
            eta += exposure * (post["study_log_hr"][a:b][:, codes] - bt[:, [j]])
        if data.cluster is not None:
            eta += post["frailty"][a:b][:, data.cluster]
        return eta

    # the compiled twin of partial_loglik_terms(eta, rs), each thread forming its draws' linear predictors
    return partial_loglik_events((len(beta), data.n, eta_of), rs, terms, scratch)


def _centre_own_study(hier: dict, se: float) -> bool:
    """Whether the one study with individual data beside published estimates gets a centred effect.

    The centred form suits a study whose likelihood is narrow against the between-study SD, the
    non-centred form one whose likelihood is wide (Betancourt and Girolami, 2015). ``se`` is the
    exposure's standard error in the individual data (from the preconditioning fit; without an MLE it
    is the prior's scale, far too wide to qualify); the SD is unknown before sampling, so the rule
    compares ``se`` with a tenth of its prior's scale. On the SYNTHETIC Danish cohort (SE 0.033
    against 0.05 under the default HalfNormal(0.5)) this tripled the population effect's bulk ESS
    per draw; a 600-row study (SE 0.11) stays non-centred.
    """
    if hier.get("aggregate") is None or hier.get("n_ipd") != 1:
        return False
    prior = hier["study_prior"]
    scale = 1.0 / prior["lam"] if prior["dist"] == "Exponential" else prior.get("sigma", prior.get("beta"))
    return bool(np.isfinite(se) and se < 0.1 * scale)


def _study_effects(hier: dict, beta_std, m, s_, zpriors, scale, pm, pt):
    """The exposure's log-HR per study (own units): partially pooled, separate or common.

    ``hier``: ``exposure`` (column index), ``pooling``, ``study_prior`` (on the study
    SD, own units), ``n_ipd`` (studies with individual data) and optionally
    ``aggregate`` (published log-HRs and SEs, one per further study).
    """
    j, sc, n_all = hier["exposure"], float(scale[hier["exposure"]]), hier["n_studies"]
    if hier["pooling"] == "partial":
        prior = hier["study_prior"]
        tau = getattr(pm, prior["dist"])("study_sd", **{k: v for k, v in prior.items() if k != "dist"})
        n_ipd = hier.get("n_ipd", n_all)
        if hier.get("centered"):
            theta = pm.Normal("study_log_hr_c", beta_std[j] / sc, tau, dims="study")
        elif _centre_own_study(hier, s_[j] / sc):
            # mixed: the one study with individual data pins its own effect down, so its effect is centred (the
            # non-centred form mixes slowly there); a published estimate informs its study weakly, so that
            # study stays non-centred (the centred form meets the funnel there)
            own = pm.Normal("study_log_hr_c", beta_std[j] / sc, tau, shape=n_ipd)
            u = pm.Normal("study_z", 0.0, 1.0, shape=n_all - n_ipd)
            theta = pt.concatenate([own, beta_std[j] / sc + tau * u])
        else:
            u = pm.Normal("study_z", 0.0, 1.0, dims="study")
            theta = beta_std[j] / sc + tau * u
    elif hier["pooling"] == "none":
        pri = [zpriors[j]] * n_all
        zs = prior_vector(pri, n_all, pm, pt, data_block("study_prior", prior_rows(pri, "study_log_hr_z")),
                           prefix="study_log_hr_z")
        theta = (m[j] + s_[j] * zs) / sc
    else:
        theta = beta_std[j] / sc * pt.ones(n_all)
    theta = pm.Deterministic("study_log_hr", theta, dims="study")
    agg = hier.get("aggregate")
    if agg is not None:
        n_ipd = hier["n_ipd"]
        pm.Potential("aggregate_loglik", pm.math.sum(
            pm.logp(pm.Normal.dist(theta[n_ipd:], np.asarray(agg["se"], float)), np.asarray(agg["estimate"], float))))
    return theta



def build_model(data: SurvivalData, priors: list[dict], ties: str = "efron", *, precondition: bool = True,
                frailty_prior: dict | None = None, centered: bool = False, hierarchy: dict | None = None):
    """The PyMC model of a Cox fit; returns (model, risk sets, preconditioning record).

    The sampler works on ``z``, with standardised log-HRs ``beta_std = m + s * z``
    (per SD of each covariate). With ``precondition=True`` (the default) ``m``
    and ``s`` are the partial-likelihood MLE and its standard errors, so ``z``
    is near standard normal at any N: chains start within a few standard
    errors of the mode and the mass matrix starts at the right scale, instead
    of hundreds of posterior SDs away in large data. The reparameterisation is
    affine and every supported prior is location-scale, so the prior on ``z``
    is exactly the same family with ``(mu - m) / s`` and ``sigma / s``. When
    the MLE does not exist (separation) or does not converge, ``m = 0, s = 1``.
    The deterministic ``log_hr`` is the log-HR back in the covariates' own units.

    With ``data.cluster`` set, a shared log-normal frailty enters ``eta``: one
    normal random intercept per cluster with SD ``frailty_sd`` (prior
    ``frailty_prior``), non-centred by default (``frailty = frailty_sd * z``),
    centred with ``centered=True``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    rs = RiskSets.from_data(data, ties)
    X_std = data.standardised()
    scale = data.scale
    p = len(data.covariates)
    m, s_, zpriors, pre = _precondition(data, priors, ties, enabled=precondition, risk_sets=rs)
    if hierarchy is not None and hierarchy["pooling"] == "none":
        # no population effect: the exposure's own coordinate leaves the likelihood; a proper
        # N(0, 1) keeps the posterior proper whatever the exposure's prior (its study effects use that)
        zpriors_model = list(zpriors)
        zpriors_model[hierarchy["exposure"]] = {"dist": "Normal", "mu": 0.0, "sigma": 1.0}
    else:
        zpriors_model = zpriors
    coords = {"covariate": list(data.covariates)}
    if data.cluster is not None:
        coords["cluster"] = [str(c) for c in data.cluster_labels]
    if hierarchy is not None:
        coords["study"] = list(hierarchy["labels"])
    with pm.Model(coords=coords) as model:
        # Data, risk-set indices and prior values enter as a few data containers (see data_block), not
        # as constants: the compiled function takes them as inputs, so compile time does not grow with
        # N, and fits that differ only in data or prior values share one compilation.
        # a multiverse cell (data.active set) switches covariates off through data: its cells share one compilation
        switch = {} if data.active is None else {"active": np.asarray(data.active, float)}
        per_cov = data_block("covariate_data", {**prior_rows(zpriors_model), "precond_mode": m, "precond_se": s_,
                                                "x_scale": scale, **switch})
        per_event = data_block("event_index", {k: getattr(rs, k) for k in EVENT_INDEX})
        per_event.update(data_block("event_values", {k: getattr(rs, k) for k in EVENT_VALUES}))
        study_code = None if hierarchy is None else np.zeros(data.n, np.int64) if data.study is None else data.study
        codes = data_block("row_index", {"entry_order": rs.entry_order, "cluster_code": data.cluster,
                                         "study_code": study_code})
        # the covariates by column (covariates x rows): the fused kernel's passes over them are contiguous
        per_row = data_block("row_values", {"weights": rs.weights, "XT": np.ascontiguousarray(X_std.T)})
        shared = RiskSets(**per_event, weights=per_row["weights"], entry_order=codes["entry_order"])
        z = prior_vector(zpriors_model, p, pm, pt, per_cov)
        beta_std = per_cov["precond_mode"] + per_cov["precond_se"] * z
        theta = None
        if hierarchy is not None:
            theta = _study_effects(hierarchy, beta_std, m, s_, zpriors, scale, pm, pt)
            j = hierarchy["exposure"]
            if hierarchy["pooling"] == "none":  # no population effect: report the mean of the study effects
                beta_std = pt.set_subtensor(beta_std[j], theta.mean() * scale[j])
        if switch:  # a covariate left out (active 0) has its log-HR at 0 in the likelihood and in log_hr; its z is
            beta_std = beta_std * per_cov["active"]  # sampled from its prior, apart from everything else
        pm.Deterministic("log_hr", beta_std / per_cov["x_scale"], dims="covariate")
        XT = per_row["XT"]
        offset, coef = None, beta_std
        if theta is not None:  # the exposure's coefficient is its study's
            mask = np.ones(p)
            mask[j] = 0.0
            coef = beta_std * mask
            offset = XT[j] * theta[codes["study_code"]] * scale[j]
        if data.cluster is not None:
            b = frailty(codes["cluster_code"], frailty_prior or DEFAULT_FRAILTY_PRIOR, centered, pm)
            offset = b if offset is None else offset + b
        # the fused kernel: eta = X @ coef + offset, the partial likelihood and its gradient in a few passes
        # over the rows (partial_loglik_terms is its graph twin, checked against it in tests/test_fused.py)
        pm.Potential("partial_loglik", fused_partial_loglik(coef, XT, offset, shared))
    return model, rs, pre

