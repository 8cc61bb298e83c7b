"""The family protocol and the one fitting pipeline every family shares.

A model family is a subclass of :class:`Estimator` that fills in the protocol:

- ``family``: its registry name (recorded in ``fit.model["family"]``);
- ``_build(data, priors, hierarchy) -> (model, info)``: the PyMC model from
  validated data and resolved priors; ``info`` is what the numpy twins need
  later (baseline constants, cut points), recorded in the fit;
- ``pointwise_loglik(post, data, info, hierarchy)``: the log-likelihood terms
  for a batch of flattened posterior draws, ``(draws, terms)``;
- ``likelihood``: ``"partial"`` (per-event terms: who fails at each event time)
  or ``"full"`` (per-row densities of the follow-up); LOO ranks fits only
  within one kind (:mod:`bayescrt.model_comparison`);
- ``baseline_cumhaz(fit, times, max_draws)``: ``H0`` per draw, stratum and
  time at the covariate centre (:mod:`bayescrt.baseline`);
- ``step_baseline``: the baseline is a step function known only within the
  follow-up (Cox) rather than a smooth parametric curve;
- ``subdistribution``: the baseline is the subdistribution hazard of one cause
  (Fine-Gray), so ``1 - exp(-H)`` is that cause's cumulative incidence, not
  one minus a survival: the survival functions refuse it;
- ``fixed_priors``: the priors of the parameters other than the log-HRs, each
  written once and read by both the model and :meth:`fixed_log_prior` (what the
  sensitivity grids subtract from the sampler's log density); ``None`` when
  they have no closed form (a random walk with its own SD);
- ``diagnostic_vars``: the posterior variables the diagnostics check.

:meth:`Estimator.fit` runs validate -> resolve priors -> build -> sample ->
assemble once for every family; a family adds only what is its own.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .. import validation
from ..data import SurvivalData, labels_as_text
from .. import prefetch
from ..errors import DiagnosticsWarning, SpecError, suggest
from ..memory import written_once
from ..fit import (Fit, assemble, check_compiled_models, check_sampler, check_sampling, check_scheduler,
                   check_target_accept, sample_model)
from ..priors import log_density, resolve_priors
from .common import coefficient_vars, resolve_frailty_prior

# Pointwise log-likelihood is stored unless it would take more than this many bytes.
LOGLIK_MAX_BYTES = 500 * 2**20


class Estimator:
    """Base of every model family: its options, the protocol (see the module docstring) and ``fit``."""

    family = ""
    likelihood = "full"  # "partial": per-event terms; "full": per-row terms
    loglik_var = "loglik"
    step_baseline = False
    subdistribution = False  # H0 is one cause's subdistribution hazard (module docstring)
    masks_covariates = False  # takes fit(active=...): a subset's log-HRs in the full design's model
    # pointwise_loglik is a compiled kernel on threads that takes terms=False (the sum per draw) and scratch= (buffers
    # kept between batches): the Laplace sampler batches it
    compiled_pointwise = False
    # the log-likelihood's sum per draw for a batch of draws by a compiled kernel (loglik_totals), for the Laplace
    # sampler's proposals, where the per-row values are not compiled
    compiled_totals = False
    # pointwise_loglik takes into=(out, positions) and writes each sorted row's values into its column of out: the
    # stored log-likelihood goes into the caller's row order with no chunk array and no gather
    writes_into = False
    fixed_priors: dict | None = {}
    # posterior variables the convergence gates check, in this order, those present in a fit
    diagnostic_vars: tuple[str, ...] = ("log_hr", "frailty_sd", "frailty")
    # posterior variables the numpy twin of the likelihood reads (those present in a fit)
    posterior_vars: tuple[str, ...] = ("log_hr", "frailty")
    hierarchical = False  # a prior with its own SD (random walk): smaller NUTS steps by default
    has_levels = False  # several studies (study=, exposure=, pooling=, aggregate=, study_prior= of fit)
    loglik_chunk = 128

    def __init__(self, sampler: str = "nutpie", frailty_prior: dict | None = None, centered: bool = False,
                 target_accept: float | None = None):
        self.sampler = check_sampler(sampler)
        self.frailty_prior = resolve_frailty_prior(frailty_prior)
        self.centered = validation.flag("centered", centered)
        # None: 0.8, or smaller steps for the curved posteriors of hierarchical levels (see fit)
        self.target_accept = check_target_accept(target_accept, allow_none=True)

    def __repr__(self) -> str:
        return f"{self.family}(sampler={self.sampler!r})"

    # ------------------------------------------------------------ protocol
    def _build(self, data: SurvivalData, priors: list[dict], hierarchy: dict | None):
        """``(model, info)``: the PyMC model and what its numpy twins need."""
        raise NotImplementedError

    def _describe(self, data: SurvivalData, info: dict) -> tuple[str, dict, dict]:
        """``(text, first, last)``: the one-line description and the family's own entries of ``fit.model``."""
        return self.family, {}, {}

    @classmethod
    def pointwise_loglik(cls, post: dict, data: SurvivalData, info: dict, hierarchy: dict | None = None):
        """Log-likelihood terms per draw: ``(draws, terms)``, rows in the data's sorted order."""
        raise NotImplementedError

    @classmethod
    def baseline_cumhaz(cls, fit, times, max_draws: int | None = None) -> np.ndarray:
        """``H0`` per draw, stratum and time: ``(draws, strata, times)``."""
        raise NotImplementedError

    @classmethod
    def fixed_log_prior(cls, posterior: xr.Dataset) -> np.ndarray | None:
        """The log density of :attr:`fixed_priors` at each draw, ``(chain, draw)``; ``None`` without a closed form."""
        if cls.fixed_priors is None:
            return None
        total = 0.0
        for name, prior in cls.fixed_priors.items():
            x = posterior[name].transpose("chain", "draw", ...).values
            total = total + log_density(x, prior).reshape(x.shape[0], x.shape[1], -1).sum(-1)
        return total

    # ------------------------------------------------------------ pipeline
    def _levels(self, data: SurvivalData, levels: dict) -> dict | None:
        """The model's level above the rows (several studies), for a family with ``has_levels``."""
        raise NotImplementedError

    def _default_target_accept(self, data: SurvivalData, hierarchy: dict | None) -> float:
        return 0.95 if data.cluster is not None or self.hierarchical else 0.8

    def _n_terms(self, data: SurvivalData) -> int:
        return data.n

    # the stored terms' columns, from the sorted rows the likelihood is computed in: the caller's row order (per-row
    # terms); a family storing per-event terms in event order says None
    def _stored_order(self, data: SurvivalData) -> np.ndarray | None:
        return _inverse(data.order)

    def _loglik_dataset(self, ll: np.ndarray, post: xr.Dataset, data: SurvivalData, info: dict) -> xr.Dataset:
        """Per-row terms ``(chain, draw, rows)``, already in the caller's row order (:meth:`_stored_order`), as a
        Dataset."""
        return xr.Dataset({self.loglik_var: (("chain", "draw", "obs"), ll)},
                          coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                  "obs": np.arange(data.n)})

    def _loglik_text(self, stored: bool) -> str:
        return "per row (a subject's rows sum to its contribution)" if stored else "not stored"

    def prepare(self, df, *, time=None, event=None, covariates=None, entry=None, strata=None, weights=None,
                reference=None, missing="error", cluster=None, study=None, formula=None) -> SurvivalData:
        """Validate the data exactly as ``fit`` would, without sampling."""
        if study is not None and not self.has_levels:
            raise SpecError(f"{self.family} has no study level: study= is for several studies in one CoxPH model; "
                            "drop it (strata= gives each group its own baseline), or use CoxPH")
        if formula is None:  # from_frame names a missing time=, event= or covariates=
            return SurvivalData.from_frame(df, time=time, event=event, covariates=covariates, entry=entry,
                                           strata=strata, weights=weights, reference=reference, missing=missing,
                                           cluster=cluster, study=study)
        return self._prepare_formula(df, formula, time=time, event=event, covariates=covariates, entry=entry,
                                     strata=strata, weights=weights, reference=reference, missing=missing,
                                     cluster=cluster, study=study)

    def _prepare_formula(self, df, formula, *, time, event, covariates, entry, strata, weights, reference,
                         missing, cluster, study) -> SurvivalData:
        import dataclasses

        from .. import formula as formulas

        if covariates is not None:
            raise SpecError("give the covariates once: formula= or covariates=, not both")
        if reference is not None:
            raise SpecError("with formula=, set a reference level in the formula itself, e.g. "
                            "C(nyha, Treatment('II')), instead of reference=")
        if not isinstance(df, pd.DataFrame):
            raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
        rhs, time, event, entry = formulas.split(formula, time=time, event=event, entry=entry)
        for arg, value in (("time", time), ("event", event)):
            if value is None:
                raise SpecError(f"{arg}= is required: name it or write the formula as 'Surv(time, event) ~ ...'")
        roles = {"time": time, "event": event, "entry": entry, "strata": strata, "weights": weights,
                 "cluster": cluster, "study": study}
        for arg, col in roles.items():
            if col is not None and (not isinstance(col, str) or col not in df.columns):
                raise SpecError(f"{arg}={col!r} is not a column of the DataFrame."
                                + suggest(str(col), map(str, df.columns)))
        frame, labels, design, dropped, n_dropped = formulas.build(df, rhs, roles=roles, missing=missing)
        data = SurvivalData.from_frame(frame, time=time, event=event, covariates=labels, entry=entry, strata=strata,
                                       weights=weights, missing="error", cluster=cluster, study=study)
        return dataclasses.replace(data, dropped=dropped, n_dropped=n_dropped, design=design,
                                   sources=tuple(design.sources()))

    def build(self, data: SurvivalData, priors: dict | None = None, hierarchy: dict | None = None):
        """The PyMC model for validated data; returns ``(model, info, resolved priors)``."""
        if hierarchy is not None and not self.has_levels:
            raise SpecError(f"{self.family} has no study level: build() takes hierarchy= only for CoxPH")
        resolved = resolve_priors(data.covariates, data.sources, data.scale, priors)
        model, info = self._build(data, resolved, hierarchy)
        return model, info, resolved

    def fit(self, df: pd.DataFrame, *, time: str | None = None, event: str | None = None, covariates=None,
            entry: str | None = None,
            strata: str | None = None, weights: str | None = None, cluster: str | None = None,
            reference: dict | None = None, missing: str = "error", priors: dict | None = None, draws: int = 1000,
            tune: int = 1000, chains: int = 4, random_seed: int | None = None, progress: bool = True,
            log_likelihood: bool | None = None, chunk: int | None = None, compiled_models=None,
            study: str | None = None, exposure: str | None = None, pooling: str = "partial", aggregate=None,
            study_prior: dict | None = None, scheduler=None, formula: str | None = None,
            active: list[str] | None = None) -> Fit:
        """Fit the model to a DataFrame and return a :class:`~bayescrt.fit.Fit`.

        ``df`` may also be a list of completed DataFrames of a multiple imputation: each is fitted with
        its own seed (from ``random_seed``) and the draws are pooled into one
        :class:`~bayescrt.pooling.PooledFit` (see :mod:`bayescrt.pooling`).
        ``formula``: the covariates as a formula (``"upgrade + C(nyha) + bs(age, df=3)"``, or
        ``"Surv(time, event) ~ ..."`` with the outcome; see :mod:`bayescrt.formula`), instead of ``covariates``.

        ``priors`` maps a covariate (its column name, or an encoded label such
        as ``"ecog[2 vs 0]"``) or ``"default"`` to a prior dict such as
        ``{"dist": "Normal", "mu": 0, "sigma": 0.5}`` on the covariate's own
        scale (add ``"scale": "standardised"`` for per-SD priors). Start/stop
        rows: ``entry`` = start, ``time`` = stop.
        ``log_likelihood``: store the pointwise log-likelihood (per row, or per
        event for the partial likelihood); ``None`` stores it when it takes
        less than 500 MiB, computed ``chunk`` draws at a time.
        ``compiled_models``: where compilations are kept. By default every nutpie
        fit uses the process-wide :func:`~bayescrt.compiled.process_cache`, so a
        second fit of the same structure (data of another size, other prior
        values) does not compile again; give a
        :class:`~bayescrt.compiled.CompiledModels` of your own, or ``False`` to
        compile afresh.
        ``cluster``: a column grouping subjects (e.g. centre) for a shared
        log-normal frailty; its SD has the estimator's ``frailty_prior`` and each
        cluster's effect is in ``fit.frailty()``.
        ``scheduler``: a ``dask.distributed`` scheduler address (``"tcp://host:8786"``) or
        Client: the chains run as tasks on its workers, each holding the data once, and give the
        draws this process would give for the same ``random_seed`` (nutpie only).
        ``study``, ``exposure``, ``pooling``, ``aggregate``, ``study_prior``:
        several studies in one model, for a family with a study level
        (:class:`~bayescrt.CoxPH`; see there).
        ``active``: the covariates (labels) whose log-HRs enter the model; the others stay in the design with
        their log-HR fixed at 0 (reported as 0 and left out of the diagnostics and the HR table), so that the
        fits of every subset of one covariate list share one compilation (:func:`bayescrt.multiverse`). The
        posterior of the active ones is that of a fit with only them (a family with ``masks_covariates``).
        """
        if isinstance(df, (list, tuple)):  # completed data sets of a multiple imputation: one pooled posterior
            kw = {k: v for k, v in locals().items() if k not in ("self", "df", "__class__")}
            return self._fit_imputed(df, kw)
        check_sampling(sampler=self.sampler, draws=draws, tune=tune, chains=chains, random_seed=random_seed)
        check_compiled_models(compiled_models, self.sampler)
        check_scheduler(scheduler, self.sampler, compiled_models)
        # the later steps' imports and first kernel on a helper, beside the data checks below; a fresh process's first
        # fit holds off the cyclic collector's full collections while it creates PyMC's objects (bayescrt.prefetch)
        with prefetch.first_fit(_first_kernel):
            chunk = self.loglik_chunk if chunk is None else validation.integer("chunk", chunk, low=1)
            levels = {"study": study, "exposure": exposure, "pooling": pooling, "aggregate": aggregate,
                      "study_prior": study_prior}
            if not self.has_levels and (any(v is not None for v in (study, exposure, aggregate, study_prior))
                                        or pooling != "partial"):
                raise SpecError(f"{self.family} has no study level: study=, exposure=, pooling=, aggregate= and "
                                "study_prior= are for several studies in one CoxPH model; drop them, or fit CoxPH")
            data = self.prepare(df, time=time, event=event, covariates=covariates, entry=entry, strata=strata,
                                weights=weights, reference=reference, missing=missing, cluster=cluster, study=study,
                                formula=formula)
            if active is not None:
                data = self._activate(data, active, study is not None or aggregate is not None)
            hierarchy = self._levels(data, levels) if self.has_levels else None
            model, info, resolved = self.build(data, priors, hierarchy)
            ta = self.target_accept or self._default_target_accept(data, hierarchy)
            from ..chains import FEW_STUDIES_ADAPTATION

            adaptation = FEW_STUDIES_ADAPTATION if study is not None or aggregate is not None else None
            if log_likelihood is None:
                log_likelihood = chains * draws * self._n_terms(data) * 8 <= LOGLIK_MAX_BYTES
            # the Laplace sampler evaluates its proposals in batches by the family's twin when that is a compiled kernel
            # (it beats the model's log density one proposal at a time), and keeps their terms as the stored
            # log-likelihood; a numpy twin over every row of thousands of proposals costs more than it saves
            batched = self.sampler == "laplace" and self.compiled_pointwise
            scratch: dict = {}  # the twin's buffers, kept from batch to batch of this fit
            twin = ((lambda post, terms: self.pointwise_loglik(post, data, info, hierarchy, terms=terms,
                                                               scratch=scratch))
                    if batched else None)
            if self.sampler == "laplace" and not batched and self.compiled_totals and info.get("tv_index") is None:
                # only the log-likelihood's sum per proposal, compiled; the stored pointwise values come after, from
                # the kept draws
                twin = lambda post, terms: self.loglik_totals(post, data, info, hierarchy)  # noqa: E731
            if self.sampler == "nutpie-jax":  # the fused operations' JAX implementations, for pytensor's JAX linker
                from .fused_jax import register

                register()
            tree, sampling = sample_model(model, sampler=self.sampler, draws=draws, tune=tune, chains=chains,
                                          random_seed=random_seed, progress=progress, target_accept=ta,
                                          compiled_models=compiled_models, scheduler=scheduler, adaptation=adaptation,
                                          pointwise=twin, keep_pointwise=bool(log_likelihood) and batched,
                                          start_at_zero=coefficient_vars(model))
            post = tree["posterior"]
            groups = data_groups(data)
            if log_likelihood and "pointwise" in tree.children:
                groups["log_likelihood"] = self._loglik_dataset(tree["pointwise"]["terms"].values, post, data, info)
                tree = xr.DataTree.from_dict({g: tree[g].to_dataset() for g in tree.children if g != "pointwise"})
            elif log_likelihood:
                groups["log_likelihood"] = self._pointwise_group(post, data, info, hierarchy, chunk)
            text, first, last = self._describe(data, info)
            description = {
                "family": self.family, "description": text, **first, "covariates": list(data.covariates),
                "sources": list(data.sources), "references": {k: str(v) for k, v in data.references.items()},
                "center": data.center.tolist(), "scale": data.scale.tolist(), "columns": data.columns, "n": data.n,
                "n_events": data.n_events, "strata_labels": [str(s) for s in data.strata_labels],
                "n_dropped": data.n_dropped, "dropped": data.dropped, "data_description": data.describe(),
                "log_likelihood": self._loglik_text(log_likelihood), **last,
                "diagnostic_vars": [v for v in self.diagnostic_vars if v in post],
            }
            if data.active is not None:
                description["active"] = [c for c, a in zip(data.covariates, data.active) if a]
            if data.design is not None:
                description["formula"] = data.design.to_json()
            description.update(self._level_description(hierarchy, levels))
            if data.cluster is not None:
                description["frailty"] = {"column": cluster, "n_clusters": len(data.cluster_labels),
                                          "prior_sd": self.frailty_prior,
                                          "parameterisation": "centred" if self.centered else "non-centred"}
            fit = assemble(tree, sampling, model=description, priors=resolved, data_hash=data.hash(),
                           extra_groups=groups)
            fit.design = data.design  # in memory only: contrasts at other values, new rows through the formula
            return fit

    def _fit_imputed(self, frames, kw: dict) -> Fit:
        """Fit each completed DataFrame with its own seed and pool the draws (:mod:`bayescrt.pooling`)."""
        from ..pooling import PooledFit, check_frames, imputation_seeds

        frames = check_frames(frames)
        check_sampling(sampler=self.sampler, draws=kw["draws"], tune=kw["tune"], chains=kw["chains"],
                       random_seed=kw["random_seed"])
        seed = kw["random_seed"] if kw["random_seed"] is not None else int(np.random.SeedSequence().entropy % 2**32)
        seeds = imputation_seeds(seed, len(frames))
        with warnings.catch_warnings(record=True) as caught:  # each imputation's warning goes into the pooled one
            warnings.simplefilter("always")
            fits = [self.fit(f, **{**kw, "random_seed": s}) for f, s in zip(frames, seeds)]
        for w in caught:
            if not issubclass(w.category, DiagnosticsWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        pooled = PooledFit(fits, random_seed=seed, seeds=seeds)
        rep = pooled.diagnostics()
        if not rep.ok:
            warnings.warn("This pooled fit FAILED its convergence diagnostics in at least one imputation and its "
                          "results cannot be trusted: " + "; ".join(rep.failures)
                          + ". Run more tuning/draws, reparameterise, or check the data; see fit.diagnostics().",
                          DiagnosticsWarning, stacklevel=3)
        return pooled

    def _level_description(self, hierarchy: dict | None, levels: dict) -> dict:
        return {}

    def _activate(self, data: SurvivalData, active, levels: bool) -> SurvivalData:
        """``data`` with only the ``active`` covariates' log-HRs in the model (see ``fit``)."""
        import dataclasses

        if not self.masks_covariates:
            raise SpecError(f"active= is for CoxPH (the multiverse's one-compilation design); {self.family} fits "
                            "take the covariates of each set instead")
        if levels:
            raise SpecError("active= cannot be combined with study= or aggregate=; fit the subset's covariates")
        if isinstance(active, str) or not isinstance(active, (list, tuple)):
            raise SpecError(f"active={active!r} must be a list of covariate labels, e.g. ['upgrade', 'age']")
        unknown = [a for a in active if a not in data.covariates]
        if unknown:
            raise SpecError(f"active: {unknown[0]!r} is not a covariate of the fit.{suggest(str(unknown[0]), data.covariates)}"
                            f" Covariates: {list(data.covariates)}")
        return dataclasses.replace(data, active=np.array([c in active for c in data.covariates]))

    def _pointwise_group(self, post: xr.Dataset, data: SurvivalData, info: dict, hierarchy: dict | None,
                         chunk: int) -> xr.Dataset:
        """The pointwise log-likelihood of every draw, ``chunk`` draws at a time (temporaries stay chunk x N)."""
        from .fused import gather_columns

        C, D = post.sizes["chain"], post.sizes["draw"]
        flat = flat_draws(post, [v for v in self.posterior_vars if v in post])
        out = written_once((C * D, self._n_terms(data)))
        order = self._stored_order(data)
        for a in range(0, C * D, chunk):
            part = {k: v[a:a + chunk] for k, v in flat.items()}
            if order is None:
                out[a:a + chunk] = self.pointwise_loglik(part, data, info, hierarchy)
            elif self.writes_into:  # the kernel puts each row in its place: no chunk array, no gather
                self.pointwise_loglik(part, data, info, hierarchy, into=(out[a:a + chunk], data.order))
            else:  # each chunk into the caller's order as it comes: no second draws x rows array
                gather_columns(self.pointwise_loglik(part, data, info, hierarchy), order, out[a:a + chunk])
        return self._loglik_dataset(out.reshape(C, D, -1), post, data, info)


def _first_kernel() -> None:
    from .fused import load_first_kernel  # numba, imported on the helper thread

    load_first_kernel()


def flat_draws(post: xr.Dataset, names) -> dict:
    """Posterior variables with chain and draw flattened into one leading axis."""
    out = {}
    for v in names:
        da = post[v].transpose("chain", "draw", ...)
        out[v] = da.values.reshape((-1,) + da.shape[2:])
    return out


def draw_rows(n_total: int, max_draws: int | None) -> np.ndarray:
    """The positions of at most ``max_draws`` of ``n_total`` draws, evenly spaced over the chains' draws."""
    if max_draws is not None and max_draws < n_total:
        return np.linspace(0, n_total - 1, max_draws).round().astype(int)
    return np.arange(n_total)


def thinned(x: np.ndarray, max_draws: int | None) -> np.ndarray:
    """At most ``max_draws`` of the draws (leading axis), as :func:`draw_rows` picks them."""
    return x[draw_rows(len(x), max_draws)]


def _inverse(order: np.ndarray) -> np.ndarray:
    inv = np.empty_like(order)
    inv[order] = np.arange(len(inv))
    return inv


def data_groups(data: SurvivalData) -> dict:
    """observed_data and constant_data in the caller's row order (after any dropped rows)."""
    inv = _inverse(data.order)
    rows = labels_as_text(data.row_labels[inv])
    coords = {"obs": np.arange(data.n), "row": ("obs", rows)}
    observed = {"time": ("obs", data.time[inv]), "event": ("obs", data.event[inv])}
    if data.entry is not None:
        observed["entry"] = ("obs", data.entry[inv])
    if data.status is not None:
        observed["status"] = ("obs", data.status[inv])
    const = {"X": (("obs", "covariate"), data.X[inv])}
    if data.weights is not None:
        const["weights"] = ("obs", data.weights[inv])
    if data.n_strata > 1:
        const["stratum"] = ("obs", np.array([str(v) for v in data.strata_labels])[data.strata[inv]])
    if data.cluster is not None:
        const["cluster"] = ("obs", np.array([str(v) for v in data.cluster_labels])[data.cluster[inv]])
    return {
        "observed_data": xr.Dataset(observed, coords=coords),
        "constant_data": xr.Dataset(const, coords={**coords, "covariate": list(data.covariates)}),
    }


def refuse_pooled(fit) -> None:
    """What needs the fitted rows cannot use a fit that pools imputed data sets (their covariates differ)."""
    if fit.model.get("imputation"):
        raise SpecError("this fit pools imputed data sets, whose covariates differ: what needs the fitted rows "
                        "(baseline hazard, standardised survival, predictive checks) is computed per imputation, "
                        "from fit.imputations")


def fit_data(fit) -> SurvivalData:
    """The fit's data as :class:`SurvivalData` (covariates already encoded), rebuilt from its DataTree."""
    refuse_pooled(fit)
    obs, const = fit.idata["observed_data"], fit.idata["constant_data"]
    X = const["X"].values
    df = pd.DataFrame(X, columns=[f"x{k}" for k in range(X.shape[1])])
    df["_time"], df["_event"] = obs["time"].values, obs["event"].values.astype(int)
    kw = {}
    if "entry" in obs:
        df["_entry"], kw["entry"] = obs["entry"].values, "_entry"
    if "weights" in const:
        df["_w"], kw["weights"] = const["weights"].values, "_w"
    if "stratum" in const:
        df["_stratum"], kw["strata"] = const["stratum"].values, "_stratum"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separation was reported when the fit was made
        data = SurvivalData.from_frame(df, time="_time", event="_event", covariates=list(df.columns[:X.shape[1]]),
                                       **kw)
    if "status" in obs:
        import dataclasses

        data = dataclasses.replace(data, status=obs["status"].values.astype(np.int64)[data.order])
    return data


def check_marginal(fit, incidence: bool = False) -> None:
    """Refuse fits whose baseline is conditional on cluster or study effects (no absolute effects for them), and
    a subdistribution baseline where survival is meant (``incidence=False``)."""
    from . import registry

    refuse_pooled(fit)
    if not incidence and registry.of_fit(fit).subdistribution:
        raise SpecError("a FineGray fit's baseline is the subdistribution hazard of one cause: 1 - exp(-H) is that "
                        "cause's cumulative incidence, not survival, so the survival functions do not take it; use "
                        "bc.cumulative_incidence(fit, times, exposure=...) for the cumulative incidence it implies, or "
                        "bc.CompetingRisks(...).fit(...) for survival and every cause's incidence")
    post = fit.idata["posterior"]
    if "frailty" in post or "study_log_hr" in post:
        raise SpecError("absolute effects are not available for fits with a frailty or a study level: their "
                        "baseline hazard is conditional on cluster or study effects")
