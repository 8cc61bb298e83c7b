"""Estimators: small classes holding a model's options, with a ``fit`` method.

``fit`` runs the chain data -> priors -> model builder -> sampler -> Fit; it
holds no statistics of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from . import validation
from .data import SurvivalData
from .errors import SpecError
from .families import cox
from .fit import Fit, assemble, check_sampler, check_sampling, check_target_accept, sample_model
from .priors import resolve_priors

# Pointwise log-likelihood is stored unless it would take more than this many bytes.
LOGLIK_MAX_BYTES = 500 * 2**20


class CoxPH:
    """Bayesian Cox proportional-hazards model on the partial likelihood.

    Parameters
    ----------
    ties : ``"efron"`` (default) or ``"breslow"``: how tied event times enter
        the partial likelihood.
    sampler : ``"nutpie"`` (default) or ``"pymc"`` (PyMC's own NUTS).

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
    """

    family = "CoxPH"

    def __init__(self, ties: str = "efron", sampler: str = "nutpie", frailty_prior: dict | None = None,
                 centered: bool = False, target_accept: float | None = None):
        if not isinstance(ties, str) or ties not in cox.TIES:
            raise SpecError(f"ties={ties!r} is not valid; choose one of {cox.TIES}")
        self.ties = ties
        self.sampler = check_sampler(sampler)
        self.frailty_prior = cox.resolve_frailty_prior(frailty_prior)
        self.centered = _flag("centered", centered)
        # None: 0.8, or smaller steps for the curved posteriors of hierarchical levels (see fit)
        self.target_accept = check_target_accept(target_accept, allow_none=True)

    def __repr__(self) -> str:
        return (f"CoxPH(ties={self.ties!r}, sampler={self.sampler!r}, frailty_prior={self.frailty_prior!r}, "
                f"centered={self.centered!r}, target_accept={self.target_accept!r})")

    def prepare(self, df, *, time, event, covariates, entry=None, strata=None, weights=None,
                reference=None, missing="error", cluster=None, study=None) -> SurvivalData:
        """Validate the data exactly as ``fit`` would, without sampling."""
        return SurvivalData.from_frame(
            df, time=time, event=event, covariates=covariates, entry=entry, strata=strata,
            weights=weights, reference=reference, missing=missing, cluster=cluster, study=study,
        )

    def build(self, data: SurvivalData, priors: dict | None = None, hierarchy: dict | None = None):
        """The PyMC model for validated data; returns (model, risk sets, resolved priors, preconditioning)."""
        resolved = resolve_priors(data.covariates, data.sources, data.scale, priors)
        model, rs, pre = cox.build_model(data, resolved, self.ties, frailty_prior=self.frailty_prior,
                                         centered=self.centered, hierarchy=hierarchy)
        return model, rs, resolved, pre

    def fit(
        self,
        df: pd.DataFrame,
        *,
        time: str,
        event: str,
        covariates,
        entry: str | None = None,
        strata: str | None = None,
        weights: str | None = None,
        cluster: str | None = None,
        study: str | None = None,
        exposure: str | None = None,
        pooling: str = "partial",
        aggregate=None,
        study_prior: dict | None = None,
        reference: dict | None = None,
        missing: str = "error",
        priors: dict | None = None,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed: int | None = None,
        progress: bool = True,
        log_likelihood: bool | None = None,
        compiled_models=None,
    ) -> Fit:
        """Fit the model to a DataFrame and return a :class:`~bayescrt.fit.Fit`.

        ``priors`` maps a covariate (its column name, or an encoded label such
        as ``"ecog[2 vs 0]"``) or ``"default"`` to a prior dict such as
        ``{"dist": "Normal", "mu": 0, "sigma": 0.5}`` on the covariate's own
        scale (add ``"scale": "standardised"`` for per-SD priors).
        ``log_likelihood``: store the pointwise log-likelihood (per event);
        ``None`` stores it when it takes less than 500 MiB.
        ``compiled_models``: a :class:`~bayescrt.compiled.CompiledModels` shared by
        fits of the same structure (data and priors may differ), which then
        compile once.
        ``cluster``: a column grouping subjects (e.g. centre) for a shared
        log-normal frailty; its SD has the estimator's ``frailty_prior`` and each
        cluster's effect is in ``fit.frailty()``.

        Several studies: ``study`` names the column of each row's study; each
        study gets its own baseline hazard and the ``exposure``'s log-HR is
        ``pooling="partial"`` (study effects ~ Normal(population effect, study
        SD); ``study_prior`` on that SD, default HalfNormal(0.5) on the log-HR
        scale), ``"none"`` (separate effects; the exposure's row reports their
        mean) or ``"complete"`` (one common effect). ``aggregate`` adds published
        studies through the same population effect: a DataFrame with columns
        ``study``, ``estimate`` (log-HR of the exposure, 1 vs 0) and ``se``, or
        a list of registry ids ``"<study>/<result>"``. Per-study effects are in
        ``fit.study_effects()``.
        """
        check_sampling(sampler=self.sampler, draws=draws, tune=tune, chains=chains, random_seed=random_seed)
        data = self.prepare(df, time=time, event=event, covariates=covariates, entry=entry,
                            strata=strata, weights=weights, reference=reference, missing=missing,
                            cluster=cluster, study=study)
        hierarchy = _hierarchy(data, exposure, pooling, aggregate, study_prior) \
            if (study is not None or aggregate is not None) else None
        if exposure is not None and hierarchy is None:
            raise SpecError("exposure= is used with study= or aggregate= (several studies); drop it for one cohort")
        if hierarchy is not None:
            hierarchy["centered"] = self.centered
        model, rs, resolved, pre = self.build(data, priors, hierarchy)
        # a between-study SD estimated from a handful of studies makes a funnel with the population effect
        # that NUTS crosses only with small steps; a frailty over many clusters needs less
        ta = self.target_accept or (0.99 if hierarchy is not None and hierarchy["pooling"] == "partial"
                                    else 0.95 if (hierarchy is not None or data.cluster is not None) else 0.8)
        tree, info = sample_model(model, sampler=self.sampler, draws=draws, tune=tune, chains=chains,
                                  random_seed=random_seed, progress=progress, target_accept=ta,
                                  compiled_models=compiled_models)
        groups = _data_groups(data)
        n_draws = tree["posterior"].sizes["chain"] * tree["posterior"].sizes["draw"]
        if log_likelihood is None:
            log_likelihood = n_draws * data.n_events * 8 <= LOGLIK_MAX_BYTES
        if log_likelihood:
            groups["log_likelihood"] = _pointwise_loglik(tree, data, rs, hierarchy)
        description = {
            "family": self.family,
            "description": f"Cox proportional hazards, partial likelihood, ties={self.ties}",
            "ties": self.ties,
            "covariates": list(data.covariates),
            "sources": list(data.sources),
            "references": {k: str(v) for k, v in data.references.items()},
            "center": data.center.tolist(),
            "scale": data.scale.tolist(),
            "columns": data.columns,
            "n": data.n,
            "n_events": data.n_events,
            "strata_labels": [str(s) for s in data.strata_labels],
            "n_dropped": data.n_dropped,
            "dropped": data.dropped,
            "data_description": data.describe(),
            "log_likelihood": "per event" if log_likelihood else "not stored",
            "parameterisation": pre,
        }
        if hierarchy is not None:
            description["studies"] = {
                "column": study, "exposure": exposure, "pooling": pooling, "prior_sd": hierarchy["study_prior"],
                "labels": list(hierarchy["labels"]), "n_individual": hierarchy["n_ipd"],
                "aggregate": None if hierarchy.get("aggregate") is None else
                {k: [float(x) for x in v] for k, v in hierarchy["aggregate"].items() if k != "labels"}}
        if data.cluster is not None:
            description["frailty"] = _frailty_description(self, data, cluster)
        return assemble(tree, info, model=description, priors=resolved, data_hash=data.hash(),
                        extra_groups=groups)


def _flag(name: str, value) -> bool:
    """A yes/no option: a bool (numpy's too), never a string such as 'no' that would read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise SpecError(f"{name}={value!r} must be True or False")
    return bool(value)


def _frailty_description(est, data: SurvivalData, cluster: str) -> dict:
    """What a fit records of its frailty: column, number of clusters, prior on the SD, parameterisation."""
    return {"column": cluster, "n_clusters": len(data.cluster_labels), "prior_sd": est.frailty_prior,
            "parameterisation": "centred" if est.centered else "non-centred"}


def _hierarchy(data: SurvivalData, exposure, pooling, aggregate, study_prior) -> dict:
    """Check the several-studies options and describe the study level for the model builder."""
    if pooling not in cox.POOLING:
        raise SpecError(f"pooling={pooling!r}: choose one of {cox.POOLING}")
    if exposure is None:
        raise SpecError("study= and aggregate= need exposure=<column>: the covariate whose effect varies by study")
    mine = [k for k, src in enumerate(data.sources) if src == exposure]
    if len(mine) != 1:
        raise SpecError(f"exposure={exposure!r} must be one of the covariates and a single column "
                        f"(covariates: {sorted(set(data.sources))}); recode a categorical exposure as one indicator")
    j = mine[0]
    if not np.isin(data.X[:, j], (0.0, 1.0)).all():
        raise SpecError(f"the study level models the log-HR of a 0/1 exposure (e.g. upgrade vs de novo), and the "
                        f"study SD prior is on that scale; exposure {exposure!r} must be coded 0/1")
    prior = cox.resolve_frailty_prior(study_prior or {"dist": "HalfNormal", "sigma": 0.5}, "study_prior")
    ipd = [str(s) for s in data.study_labels] if data.study is not None else ["individual data"]
    out = {"exposure": j, "pooling": pooling, "study_prior": prior, "n_ipd": len(ipd)}
    if aggregate is not None:
        if isinstance(aggregate, pd.DataFrame):
            miss = {"study", "estimate", "se"} - set(aggregate.columns)
            if miss:
                raise SpecError(f"aggregate: missing column(s) {sorted(miss)}; give study, estimate (log-HR) and se")
            agg = aggregate
        else:
            from .meta import published_log_estimates

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


def _pointwise_loglik(tree: xr.DataTree, data: SurvivalData, rs: cox.RiskSets, hierarchy: dict | None = None,
                      chunk: int = 256) -> xr.Dataset:
    """Per-event partial log-likelihood for every draw, computed in chunks of draws."""
    post = tree["posterior"]["log_hr"].transpose("chain", "draw", "covariate")
    C, D, _ = post.shape
    beta = post.values.reshape(C * D, -1)
    Xc = data.X - data.center
    b = None
    if data.cluster is not None:
        b = tree["posterior"]["frailty"].transpose("chain", "draw", "cluster").values.reshape(C * D, -1)
    theta = codes = None
    if hierarchy is not None:
        theta = tree["posterior"]["study_log_hr"].transpose("chain", "draw", "study").values.reshape(C * D, -1)
        codes = np.zeros(data.n, np.int64) if data.study is None else data.study
    out = np.empty((C * D, len(rs.event_rows)))
    for a in range(0, C * D, chunk):
        eta = beta[a:a + chunk] @ Xc.T
        if theta is not None:  # the exposure's coefficient is its study's
            j = hierarchy["exposure"]
            eta = eta + Xc[:, j] * (theta[a:a + chunk][:, codes] - beta[a:a + chunk][:, [j]])
        if b is not None:
            eta = eta + b[a:a + chunk][:, data.cluster]
        out[a:a + chunk] = cox.partial_loglik_terms(eta, rs)
    rows = [str(r) for r in data.row_labels[rs.event_rows]]
    return xr.Dataset(
        {"partial_loglik": (("chain", "draw", "event"), out.reshape(C, D, -1))},
        coords={"chain": post["chain"].values, "draw": post["draw"].values, "event": np.arange(len(rows)),
                "event_row": ("event", rows)},
    )


def _data_groups(data: SurvivalData) -> dict:
    """observed_data and constant_data in the caller's row order (after any dropped rows)."""
    inv = np.empty_like(data.order)
    inv[data.order] = np.arange(len(inv))
    rows = np.array([str(r) for r in data.row_labels[inv]])
    coords = {"obs": np.arange(data.n), "row": ("obs", rows)}
    observed = {"time": ("obs", data.time[inv]), "event": ("obs", data.event[inv])}
    if data.entry is not None:
        observed["entry"] = ("obs", data.entry[inv])
    const = {"X": (("obs", "covariate"), data.X[inv])}
    if data.weights is not None:
        const["weights"] = ("obs", data.weights[inv])
    if data.n_strata > 1:
        const["stratum"] = ("obs", np.array([str(data.strata_labels[s]) for s in data.strata[inv]]))
    if data.cluster is not None:
        const["cluster"] = ("obs", np.array([str(data.cluster_labels[c]) for c in data.cluster[inv]]))
    return {
        "observed_data": xr.Dataset(observed, coords=coords),
        "constant_data": xr.Dataset(const, coords={**coords, "covariate": list(data.covariates)}),
    }


class _ParametricPH:
    """Shared fitting code of the full-likelihood PH families (see :mod:`bayescrt.families.parametric`)."""

    family = ""
    hierarchical = False  # a random-walk prior with its own SD: smaller NUTS steps by default

    def __init__(self, sampler: str = "nutpie", frailty_prior: dict | None = None, centered: bool = False,
                 target_accept: float | None = None):
        self.sampler = check_sampler(sampler)
        self.frailty_prior = cox.resolve_frailty_prior(frailty_prior)
        self.centered = _flag("centered", centered)
        self.target_accept = check_target_accept(target_accept, allow_none=True)

    def prepare(self, df, *, time, event, covariates, entry=None, strata=None, weights=None,
                reference=None, missing="error", cluster=None) -> SurvivalData:
        """Validate the data exactly as ``fit`` would, without sampling."""
        return SurvivalData.from_frame(df, time=time, event=event, covariates=covariates, entry=entry, strata=strata,
                                       weights=weights, reference=reference, missing=missing, cluster=cluster)

    def _build(self, data, resolved):  # -> (model, baseline info, description)
        raise NotImplementedError

    def build(self, data: SurvivalData, priors: dict | None = None):
        """The PyMC model for validated data; returns (model, baseline info, resolved priors)."""
        resolved = resolve_priors(data.covariates, data.sources, data.scale, priors)
        model, info, _ = self._build(data, resolved)
        return model, info, resolved

    def fit(self, df: pd.DataFrame, *, time: str, event: str, covariates, entry: str | None = None,
            strata: str | None = None, weights: str | None = None, cluster: str | None = None,
            reference: dict | None = None, missing: str = "error", priors: dict | None = None, draws: int = 1000,
            tune: int = 1000, chains: int = 4, random_seed: int | None = None, progress: bool = True,
            log_likelihood: bool | None = None, chunk: int = 128, compiled_models=None) -> Fit:
        """Fit to a DataFrame; arguments as :meth:`CoxPH.fit`. Start/stop rows: ``entry`` = start, ``time`` = stop.

        The pointwise log-likelihood (``idata.log_likelihood.loglik``) is stored
        per row (per subject when each subject has one row), so LOO compares
        these fits with each other on the same rows; ``None`` stores it when it
        takes less than 500 MiB, computed ``chunk`` draws at a time.
        """
        check_sampling(sampler=self.sampler, draws=draws, tune=tune, chains=chains, random_seed=random_seed)
        data = self.prepare(df, time=time, event=event, covariates=covariates, entry=entry, strata=strata,
                            weights=weights, reference=reference, missing=missing, cluster=cluster)
        resolved = resolve_priors(data.covariates, data.sources, data.scale, priors)
        model, info, text = self._build(data, resolved)
        ta = self.target_accept or (0.95 if data.cluster is not None or self.hierarchical else 0.8)
        tree, info_s = sample_model(model, sampler=self.sampler, draws=draws, tune=tune, chains=chains,
                                    random_seed=random_seed, progress=progress, target_accept=ta,
                                    compiled_models=compiled_models)
        post = tree["posterior"]
        C, D = post.sizes["chain"], post.sizes["draw"]
        flat = {v: post[v].values.reshape((C * D,) + post[v].shape[2:]) for v in
                ("log_hr", "log_scale", "shape", "log_hazard", "tv_log_hr", "frailty") if v in post}
        from .families import parametric

        groups = _data_groups(data)
        if log_likelihood is None:
            log_likelihood = C * D * data.n * 8 <= LOGLIK_MAX_BYTES
        if log_likelihood:
            inv = np.empty_like(data.order)
            inv[data.order] = np.arange(len(inv))
            ll = np.empty((C * D, data.n))
            for a in range(0, C * D, chunk):  # a few draws at a time: temporaries stay (chunk x N)
                part = {k: v[a:a + chunk] for k, v in flat.items()}
                ll[a:a + chunk] = parametric.pointwise_loglik(part, data, self.family, info, info.get("tv_index"))[:, inv]
            groups["log_likelihood"] = xr.Dataset(
                {"loglik": (("chain", "draw", "obs"), ll.reshape(C, D, -1))},
                coords={"chain": post["chain"].values, "draw": post["draw"].values, "obs": np.arange(data.n)})
        description = {
            "family": self.family, "description": text, "covariates": list(data.covariates),
            "sources": list(data.sources), "references": {k: str(v) for k, v in data.references.items()},
            "center": data.center.tolist(), "scale": data.scale.tolist(), "columns": data.columns, "n": data.n,
            "n_events": data.n_events, "strata_labels": [str(s) for s in data.strata_labels],
            "n_dropped": data.n_dropped, "dropped": data.dropped, "data_description": data.describe(),
            "log_likelihood": "per row (a subject's rows sum to its contribution)" if log_likelihood else "not stored",
            "baseline": {k: v for k, v in info.items() if k != "tv_index"},
        }
        if data.cluster is not None:
            description["frailty"] = _frailty_description(self, data, cluster)
        return assemble(tree, info_s, model=description, priors=resolved, data_hash=data.hash(),
                        extra_groups=groups)


class WeibullPH(_ParametricPH):
    """Bayesian Weibull proportional-hazards model; coefficients are log-HRs, as in :class:`CoxPH`.

    ``h(t | x) = h0_s(t) exp((x - center) @ beta)`` with ``H0_s(t) = exp(log_scale_s) (t / t_ref)^shape_s``
    per stratum ``s``; ``t_ref`` is a reference time taken from the data (recorded in the fit's
    ``model["baseline"]``; see :func:`bayescrt.families.parametric.weibull_reference`), chosen so
    that the scale and shape are nearly uncorrelated a posteriori. Priors: the covariates' priors as
    in :class:`CoxPH`; ``log_scale ~ Normal(0, 3)``, ``log(shape) ~ Normal(0, 1)``.
    """

    family = "WeibullPH"

    def __repr__(self) -> str:
        return f"WeibullPH(sampler={self.sampler!r})"

    def _build(self, data, resolved):
        from .families import parametric

        model, info = parametric.build_weibull(data, resolved, frailty_prior=self.frailty_prior,
                                               centered=self.centered)
        return model, info, "Weibull proportional hazards, full likelihood"


class PiecewiseExponentialPH(_ParametricPH):
    """Bayesian piecewise-exponential PH model with a random-walk prior on the log baseline hazard.

    ``cuts``: interior cut points (time units of the data); by default ``n_intervals``
    intervals at quantiles of the event times. ``rw_order``: 1 or 2. ``tv``: a 0/1
    covariate given its own log-HR per interval (a proportional-hazards check; its
    row in ``hazard_ratios()`` is then the mean over intervals and ``fit.idata.posterior.tv_log_hr``
    holds the per-interval effects).
    """

    family = "PiecewiseExponentialPH"
    hierarchical = True

    def __init__(self, cuts=None, n_intervals: int = 8, rw_order: int = 1, tv: str | None = None, **kw):
        super().__init__(**kw)
        from .families.parametric import RW_ORDERS

        if isinstance(rw_order, (bool, np.bool_)) or not isinstance(rw_order, (int, np.integer)) \
                or rw_order not in RW_ORDERS:
            raise SpecError(f"rw_order={rw_order!r}: choose 1 (first-order random walk) or 2 (second order)")
        rw_order = int(rw_order)
        if cuts is not None:
            listed = isinstance(cuts, (list, tuple, np.ndarray, pd.Series)) and all(validation.is_number(v) for v in cuts)
            c = np.asarray(cuts) if listed else None
            if c is None or c.ndim != 1 or len(c) == 0 or c.dtype.kind not in "iuf" \
                    or not np.all(np.isfinite(c.astype(float))) or np.any(c <= 0) or np.any(np.diff(c) <= 0):
                raise SpecError(f"cuts={cuts!r}: give interior cut points as a list of numbers, positive and strictly "
                                "increasing, e.g. [1, 2, 5]")
            cuts = [float(v) for v in c]
        n_intervals = validation.integer("n_intervals", n_intervals, low=1)
        self.cuts, self.n_intervals, self.rw_order, self.tv = cuts, n_intervals, rw_order, tv

    def __repr__(self) -> str:
        return (f"PiecewiseExponentialPH(cuts={self.cuts!r}, n_intervals={self.n_intervals}, "
                f"rw_order={self.rw_order}, tv={self.tv!r})")

    def _build(self, data, resolved):
        from .families import parametric

        cuts = np.asarray(self.cuts, float) if self.cuts is not None else parametric.default_cuts(data, self.n_intervals)
        if len(cuts) and cuts.max() >= data.time.max():
            raise SpecError(f"cuts: the last cut {cuts.max():g} is not below the longest follow-up "
                            f"{data.time.max():g}; drop the cut points beyond the data")
        tv = None
        if self.tv is not None:
            mine = [k for k, src in enumerate(data.sources) if src == self.tv]
            if len(mine) != 1 or not np.isin(data.X[:, mine[0]], (0.0, 1.0)).all():
                raise SpecError(f"tv={self.tv!r} must be one of the covariates and coded 0/1 "
                                f"(covariates: {sorted(set(data.sources))})")
            tv = mine[0]
        model, info = parametric.build_pwe(data, resolved, cuts, rw_order=self.rw_order, tv=tv,
                                           frailty_prior=self.frailty_prior, centered=self.centered)
        info["tv_index"] = tv
        info["tv"] = self.tv
        text = (f"piecewise-exponential proportional hazards, {len(cuts) + 1} intervals, random walk of order "
                f"{self.rw_order} on the log baseline hazard" + (f", time-varying effect of {self.tv!r}" if tv is not None else ""))
        return model, info, text
