"""Competing risks: cause-specific hazards and the cumulative incidence of each cause, with credible bands.

An event column codes what ended follow-up: ``0`` censored and ``1..K`` the causes (or text labels, with
``censored=`` naming the label of censoring). :func:`event_causes` checks it: missing or unknown codes, a
cause with no events and censoring named as a cause are ``DataError``/``SpecError`` naming the column and
the values.

:class:`CompetingRisks` fits one proportional-hazards model per cause (any family per cause), each with
the other causes treated as censoring. The likelihood of cause-specific hazards factorises over the causes
and the priors are independent, so the causes are sampled separately and the joint posterior is their
product: draw ``d`` of every cause together is a draw of the joint posterior. :class:`CompetingRisksFit`
holds the per-cause fits, one ``xr.DataTree`` with a child per cause, per-cause HR tables and diagnostics
over every cause.

:meth:`CompetingRisksFit.cumulative_incidence`: the cumulative incidence of cause ``k``,
``F_k(t | x) = int_0^t S(u- | x) dH_k(u | x)`` with ``S = exp(-sum_j H_j)``, per posterior draw. On a
grid of times ``t_0 = 0 < t_1 < ...`` (every event time, thinned to at most ``grid`` points, plus the
times asked for) each interval adds ``(dH_k / dH) (S(t_{i-1}) - S(t_i))``: exact where the causes' hazards
are proportional within the interval, and for the Cox model's step baselines when the grid holds every
event time. It is averaged over the cohort with a 0/1 exposure set to each value (g-computation, as
:func:`bayescrt.absolute.standardised_survival`; the Cox baselines carry the same gamma-process noise),
or computed for given covariate values.

:meth:`CompetingRisksFit.cumulative_incidence_contrast` gives the difference and ratio of the standardised
cumulative incidence at chosen times. The subdistribution (Fine-Gray) model is :class:`bayescrt.FineGray`; a spec's
``[competing_risks]`` runs both over its covariate sets (:mod:`bayescrt.competing_sets`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from numba import njit, prange

from . import validation
from .errors import DiagnosticsWarning, SpecError, suggest
from .summaries import Draws, central_interval

from .causes import CENSORED, EVENT_COLUMN, check_event_role, event_causes  # noqa: F401  (event_causes is part of this module's API)


def incidence_from_hazards(H: np.ndarray) -> np.ndarray:
    """Cumulative incidences from cumulative cause-specific hazards ``H`` (..., causes, grid), the grid starting
    at time 0: each step adds ``(dH_k / dH) (S(t_{i-1}) - S(t_i))`` with ``S = exp(-sum_k H_k)``, exact where
    the causes' hazards are proportional within the step (module docstring)."""
    Htot = H.sum(axis=-2)
    dS = -np.diff(np.exp(-Htot), axis=-1, prepend=1.0)  # S(t_{i-1}) - S(t_i)
    dtot = np.diff(Htot, axis=-1, prepend=0.0)[..., None, :]
    dH = np.diff(H, axis=-1, prepend=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(dtot > 0, dH / dtot, 0.0)
    return np.cumsum(share * dS[..., None, :], axis=-1)


def standardised_incidence(H0: np.ndarray, r: np.ndarray, strata: np.ndarray, w: np.ndarray,
                           at: np.ndarray) -> np.ndarray:
    """``sum_i w_i F_k(t | x_i)`` per draw, cause and asked time: ``(draws, causes, len(at))``.

    ``H0``: baseline cumulative hazards ``(causes, draws, strata, grid)`` on a grid starting at 0; ``r``: each
    subject's relative hazard ``(causes, draws, subjects)``; ``strata``: ``(causes, subjects)``; ``at``: grid
    positions of the times asked. The formula of :func:`incidence_from_hazards`, one subject at a time in a
    compiled loop, so memory stays O(draws x times) however many subjects and grid points."""
    order = np.argsort(at, kind="stable")
    res = np.zeros((r.shape[1], r.shape[0], len(at)))
    _incidence_kernel(np.ascontiguousarray(H0, float), np.ascontiguousarray(r, float),
                      np.ascontiguousarray(strata, np.int64), np.ascontiguousarray(w, float),
                      np.ascontiguousarray(np.asarray(at, np.int64)[order]), res)
    out = np.empty_like(res)
    out[..., order] = res
    return out


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _incidence_kernel(H0, r, strata, w, at, out):
    K, D, _, T = H0.shape
    n, m = r.shape[2], len(at)
    for d in prange(D):
        F, h_prev, dh = np.zeros(K), np.zeros(K), np.zeros(K)
        for i in range(n):
            F[:] = 0.0
            h_prev[:] = 0.0
            s_prev, tot_prev, j = 1.0, 0.0, 0
            for t in range(T):
                tot = 0.0
                for k in range(K):
                    h = H0[k, d, strata[k, i], t] * r[k, d, i]
                    dh[k] = h - h_prev[k]
                    h_prev[k] = h
                    tot += h
                surv = np.exp(-tot)
                dtot = tot - tot_prev
                if dtot > 0:
                    for k in range(K):
                        F[k] += dh[k] / dtot * (s_prev - surv)
                s_prev, tot_prev = surv, tot
                while j < m and at[j] == t:
                    for k in range(K):
                        out[d, k, j] += w[i] * F[k]
                    j += 1


class CompetingRisks:
    """Cause-specific proportional hazards: ``families={"hf_hosp": bc.WeibullPH(), "death": bc.CoxPH()}``, or one
    ``family`` for every cause (default ``bc.CoxPH()``). See the module docstring."""

    def __init__(self, families: dict | None = None, family=None):
        if families is not None and family is not None:
            raise SpecError("give families= (one estimator per cause) or family= (the same for every cause), not both")
        if families is not None and (not isinstance(families, dict) or not families):
            raise SpecError(f"families={families!r} must map each cause's name to an estimator, e.g. "
                            "{'hf_hosp': bc.WeibullPH(), 'death': bc.CoxPH()}")
        from .families import registry

        for where, est in [*((f"families[{n!r}]", e) for n, e in (families or {}).items()),
                           *([("family", family)] if family is not None else [])]:
            if not hasattr(est, "fit") or not hasattr(est, "prepare"):
                raise SpecError(f"{where}={est!r} is not an estimator; give e.g. bc.CoxPH()")
            if getattr(est, "family", None) in registry.COMPETING:
                raise SpecError(f"{where}={est!r} is a subdistribution model; CompetingRisks fits cause-specific "
                                "hazards (e.g. bc.CoxPH()); fit the subdistribution hazard with bc.FineGray().fit("
                                "..., cause=...)")
        self.families, self.family = families, family

    def _estimator(self, cause: str):
        from .families import registry

        if self.families is None:
            return self.family if self.family is not None else registry.estimator_class("CoxPH")()
        return self.families[cause]  # fit checked that every cause has one

    def fit(self, df: pd.DataFrame, *, time: str | None = None, event: str, causes=None, censored="censored",
            random_seed: int | None = None, progress: bool = True, **fit_kwargs) -> "CompetingRisksFit":
        """One fit per cause of ``event`` (:func:`event_causes`), the others censored; ``fit_kwargs`` go to every
        cause's ``fit`` (``covariates``, ``formula``, ``strata``, ``weights``, ``entry``, ``cluster``, ``priors``,
        ``draws``, ``tune``, ``chains``, ...). Each cause gets its own seed spawned from ``random_seed``.

        ``df`` may be the list of completed DataFrames of a multiple imputation (:func:`bayescrt.impute`, which
        takes the coded event column): each cause's fit pools them (:mod:`bayescrt.pooling`), and the cumulative
        incidence mixes each imputation's draws."""
        check_event_role(event, time=time, **{k: fit_kwargs.get(k) for k in ("entry", "strata", "weights", "cluster",
                                                                             "covariates")})
        frames = None
        if isinstance(df, (list, tuple)):  # completed data sets of a multiple imputation: each cause's fit pools them
            from .impute import same_outcome

            frames = same_outcome(df, time, event, fit_kwargs.get("entry"))
            df = frames[0]
        codes, names = event_causes(df, event, causes, censored)
        if self.families is not None:
            extra = sorted(set(self.families) - set(names))
            if extra:
                raise SpecError(f"families names {extra}, which are not causes of {event!r}; the causes are {names}")
            missing = [n for n in names if n not in self.families]
            if missing:
                raise SpecError(f"families has no estimator for the causes {missing}; give one for each of {names}, or "
                                "family= for all")
        if EVENT_COLUMN in df.columns:
            raise SpecError(f"df has a column {EVENT_COLUMN!r}; rename it (each cause's fit uses that name)")
        if "~" in str(fit_kwargs.get("formula", "")):
            raise SpecError("formula= takes the covariates only here (no 'Surv(...) ~'): the event is set per cause "
                            "by the competing-risks fit; pass time= and event=")
        seed = validation.seed("random_seed", random_seed)
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(names))]
        fits, data = {}, {}
        for k, (name, sd) in enumerate(zip(names, seeds), start=1):
            mine = {EVENT_COLUMN: (codes == k).astype(int)}
            frame = [f.assign(**mine) for f in frames] if frames is not None else df.assign(**mine)
            est = self._estimator(name)
            keys = {a: fit_kwargs[a] for a in ("covariates", "formula", "strata", "weights", "entry", "cluster",
                                               "reference", "missing") if a in fit_kwargs}
            data[name] = ([est.prepare(f, time=time, event=EVENT_COLUMN, **keys) for f in frame] if frames is not None
                          else est.prepare(frame, time=time, event=EVENT_COLUMN, **keys))
            fits[name] = est.fit(frame, time=time, event=EVENT_COLUMN, random_seed=sd, progress=progress, **fit_kwargs)
        return CompetingRisksFit(fits, data, event=event)



class CompetingRisksFit:
    """The fits of every cause (``fits``), their joint posterior as one DataTree (``idata``), tables, diagnostics
    and cumulative incidence (module docstring)."""

    def __init__(self, fits: dict, data: dict, event: str):
        self.fits, self._data, self.event = dict(fits), dict(data), event
        self.causes = list(fits)
        # fits of imputed data: each cause's fit pools them, and data holds each imputation's prepared rows
        self.imputations = len(data[self.causes[0]]) if isinstance(data[self.causes[0]], list) else None
        self.idata = xr.DataTree(children={name: f.idata.copy() for name, f in self.fits.items()})
        self.idata.attrs.update(bayescrt_competing_causes=",".join(self.causes), bayescrt_event=event)

    def _cause(self, cause) -> str:
        if not isinstance(cause, str) or cause not in self.fits:
            raise SpecError(f"cause={cause!r} is not a cause of this fit.{suggest(str(cause), self.causes)} "
                            f"Causes: {self.causes}")
        return cause

    def hazard_ratios(self, cause: str | None = None, prob: float = 0.95, **kw) -> pd.DataFrame:
        """One cause's cause-specific HR table (the columns of every fit's), or every cause's, indexed by
        (cause, covariate)."""
        if cause is not None:
            return self.fits[self._cause(cause)].hazard_ratios(prob, **kw)
        return pd.concat({c: f.hazard_ratios(prob, **kw) for c, f in self.fits.items()}, names=["cause", "covariate"])

    def diagnostics(self) -> dict:
        """Each cause's :class:`~bayescrt.diagnostics.DiagnosticReport`."""
        return {c: f.diagnostics() for c, f in self.fits.items()}

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.diagnostics().values())

    def failures(self) -> list[str]:
        return [f"{c}: {msg}" for c, r in self.diagnostics().items() for msg in r.failures]

    @property
    def last_time(self) -> float:
        """The last follow-up time of the fitted rows."""
        data = self._data[self.causes[0]]
        return float(max(d.time.max() for d in (data if isinstance(data, list) else [data])))

    def loo(self) -> pd.DataFrame:
        """PSIS-LOO of each cause's fit (its stored pointwise log-likelihood) and of all causes together: the
        likelihood factorises, so the ELPDs add, and so do their pointwise terms for the SE."""
        from .psis import idata_loo

        if self.imputations:
            raise SpecError("PSIS-LOO is not defined for a posterior pooled over imputations (each imputation's "
                            "terms are of other data); compare the fits of one imputation: fit.fits[cause].imputations")

        rows, pointwise = [], []
        for c, f in self.fits.items():
            groups = list(f.idata["log_likelihood"].data_vars)
            if not groups:
                raise SpecError(f"cause {c!r}: its fit stored no pointwise log-likelihood; fit with "
                                "log_likelihood=True")
            loo = idata_loo(f.idata, groups[0])
            pointwise.append(loo["elpd_i"])
            rows.append({"cause": c, "terms": len(loo["elpd_i"]), "elpd_loo": loo["elpd"], "se": loo["se"],
                         "p_loo": loo["p_loo"], "max_pareto_k": float(loo["pareto_k"].max())})
        every = np.concatenate(pointwise)
        rows.append({"cause": "all causes", "terms": len(every), "elpd_loo": float(every.sum()),
                     "se": float(np.sqrt(len(every)) * every.std(ddof=1)), "p_loo": sum(r["p_loo"] for r in rows),
                     "max_pareto_k": max(r["max_pareto_k"] for r in rows)})
        return pd.DataFrame(rows).set_index("cause")

    def cumulative_incidence_draws(self, times, *, exposure: str | None = None, values=(0, 1),
                                   covariates: dict | None = None, max_draws: int = 400, grid: int | None = None,
                                   random_seed=0) -> np.ndarray:
        """Draws of the cumulative incidence, array (draws, causes, groups, times): the groups are the exposure's
        ``values`` (standardised over the cohort) or one subject with ``covariates`` (a dict of design values).

        ``grid``: at most this many event times in the integration grid (module docstring); by default 400 when a
        cause has a step baseline (Cox, exact with every event time) and 100 when every baseline is smooth
        (parametric), where a finer grid changes the curves by about 0.001 posterior SD."""
        from .absolute import _posterior_cumhaz, _positive_int, _values

        if (exposure is None) == (covariates is None):
            raise SpecError("give exposure= (standardise over the cohort by a 0/1 exposure) or covariates= (one "
                            "subject's covariate values), not both and not neither")
        times = check_times(times)
        validation.seed("random_seed", random_seed)
        if not self.ok:
            warnings.warn("this cumulative incidence comes from fits that FAILED their diagnostics and cannot be "
                          "trusted: " + "; ".join(self.failures()), DiagnosticsWarning, stacklevel=3)
        if self.imputations:
            return self._pooled_incidence_draws(times, exposure=exposure, values=values, covariates=covariates,
                                                max_draws=max_draws, grid=grid, random_seed=random_seed)
        from .families import registry

        if grid is None:
            grid = 400 if any(registry.of_fit(f).step_baseline for f in self.fits.values()) else 100
        max_draws, grid = _positive_int("max_draws", max_draws), _positive_int("grid", grid)
        first = self._data[self.causes[0]]
        t_max = float(first.time.max())
        if times.max() > t_max:
            raise SpecError(f"times reach {times.max():g}, past the last follow-up time {t_max:g}; the cumulative "
                            f"incidence is estimated up to {t_max:g}")
        for c, f in self.fits.items():
            if f.model.get("frailty") or f.model.get("study") or f.model.get("time_varying"):
                raise SpecError(f"cause {c!r}: a fit with a frailty, study level or time-varying effect has no "
                                "marginal cumulative incidence here")
        ev = np.unique(first.time[np.concatenate([d.event.astype(bool)[:, None] for d in self._data.values()],
                                                  axis=1).any(axis=1)])
        ev = ev[ev <= times.max()]
        if len(ev) > grid:
            ev = np.quantile(ev, np.linspace(0, 1, grid))
        tg = np.unique(np.concatenate([[0.0], ev, times]))
        rng = np.random.default_rng(random_seed)
        # each cause: H0 (D, strata, T) on the grid, and every subject's relative hazard, in the caller's row order
        parts = []
        for c in self.causes:
            fit, data = self.fits[c], self._data[c]
            H0, beta = _posterior_cumhaz(fit, data, tg, max_draws, rng)
            center = np.asarray(fit.model["center"], float)
            parts.append((H0, beta, center, _unsort(data.X, data.order), _unsort(data.strata, data.order),
                          list(fit.covariates)))
        D = min(p[0].shape[0] for p in parts)
        if exposure is not None:
            from .absolute import _exposure_column, _formula_designs

            values = _values(values)
            # each cause's design with the exposure set: its column, or with interactions (a formula's
            # upgrade:age) every term it enters, as the standardised survival sets them
            settings = []
            for c, (H0, beta, center, X, strata, covs) in zip(self.causes, parts):
                fit, data = self.fits[c], self._data[c]
                if exposure not in covs and exposure not in fit.model["sources"]:
                    raise SpecError(f"exposure={exposure!r} is not a covariate of every cause's fit; cause {c!r} has "
                                    f"{covs}")
                j = _exposure_column(fit, exposure)  # one 0/1 column
                designs = _formula_designs(fit, exposure, values, data)
                if designs is not None:  # in the data's sorted order: back to the caller's
                    designs = [_unsort(Xs, data.order) for Xs in designs]
                settings.append((j, designs))
            groups = []
            w = None
            for i, v in enumerate(values):
                rows = []
                for (H0, beta, center, X, strata, covs), (j, designs) in zip(parts, settings):
                    if designs is not None:
                        Xv = designs[i]
                    else:
                        Xv = X.copy()
                        Xv[:, j] = v
                    rows.append((Xv, strata))
                groups.append(rows)
        else:
            x = subject_row(parts[0][5], covariates, any(d.n_strata > 1 for d in self._data.values()))[None, :]
            groups = [[(x, np.zeros(1, np.int64)) for _ in parts]]
            w = None
        n_rows = groups[0][0][0].shape[0]
        if w is None:  # the cohort's case weights, if the fits had any, in the caller's row order
            w = np.ones(n_rows)
            if exposure is not None and first.weights is not None:
                w = np.empty(first.n)
                w[first.order] = first.weights
        out = np.empty((D, len(self.causes), len(groups), len(times)))
        at = np.searchsorted(tg, times)
        for g, rows in enumerate(groups):
            # subjects with the same strata and covariates in every cause have the same curves: pool their weights
            key = np.column_stack([np.column_stack([sg, Xg]) for Xg, sg in rows])
            uniq, first_of, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
            wu = np.bincount(inv.ravel(), weights=w, minlength=len(uniq))
            rows = [(Xg[first_of], sg[first_of]) for Xg, sg in rows]
            H0 = np.stack([p[0][:D] for p in parts])  # (causes, D, strata, T)
            r = np.stack([np.exp((Xg - p[2]) @ p[1][:D].T).T for p, (Xg, _) in zip(parts, rows)])  # (causes, D, n)
            strata = np.stack([sg for _, sg in rows]).astype(np.int64)
            out[:, :, g, :] = standardised_incidence(H0, r, strata, wu / wu.sum(), at)
        return out

    def _pooled_incidence_draws(self, times, *, max_draws, random_seed, **kw) -> np.ndarray:
        """Fits of imputed data: each imputation's cumulative incidence over its own completed rows, with its share
        of ``max_draws`` and its own seed, the draws mixed as the posterior is (Zhou and Reiter 2010)."""
        from .absolute import _positive_int

        missing = [c for c, f in self.fits.items() if not getattr(f, "imputations", None)]
        if missing:
            raise SpecError(f"cause {missing[0]!r}: this pooled fit was read back from its file, which holds the pooled "
                            "draws but not each imputation's fit; fit the completed DataFrames again in this session")
        per = -(-_positive_int("max_draws", max_draws) // self.imputations)
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_seed).spawn(self.imputations)]
        with warnings.catch_warnings():  # the pooled fits' gates, which name the imputation, were reported already
            warnings.simplefilter("ignore", DiagnosticsWarning)
            parts = [CompetingRisksFit({c: f.imputations[k] for c, f in self.fits.items()},
                                       {c: d[k] for c, d in self._data.items()}, self.event)
                     .cumulative_incidence_draws(times, max_draws=per, random_seed=sd, **kw)
                     for k, sd in enumerate(seeds)]
        return np.concatenate(parts)

    def cumulative_incidence(self, times, *, cause: str | None = None, exposure: str | None = None, values=(0, 1),
                             covariates: dict | None = None, prob: float = 0.95, max_draws: int = 400,
                             random_seed=0) -> pd.DataFrame:
        """A tidy table of the cumulative incidence: per cause, group and time, the posterior median and the
        central ``prob`` band; ``attrs["draws"]`` holds the draws behind it (see
        :meth:`cumulative_incidence_draws`)."""
        prob = validation.probability("prob", prob)
        draws = self.cumulative_incidence_draws(times, exposure=exposure, values=values, covariates=covariates,
                                                max_draws=max_draws, random_seed=random_seed)
        causes = self.causes if cause is None else [self._cause(cause)]
        return incidence_table(draws, self.causes, causes, exposure, values, times, prob)

    def cumulative_incidence_contrast(self, times, *, exposure: str, values=(0, 1), cause: str | None = None,
                                      prob: float = 0.95, max_draws: int = 400, grid: int | None = None,
                                      random_seed=0) -> pd.DataFrame:
        """The standardised cumulative incidence of ``exposure = values[1]`` against ``values[0]`` at each time:
        per cause, the posterior median and central ``prob`` band of the difference (``rd_*``, on the risk scale)
        and of the ratio (``ratio_*``), and ``p_rd_gt_0``; computed draw by draw from
        :meth:`cumulative_incidence_draws`."""
        from .absolute import _values

        if exposure is None:
            raise SpecError("exposure= is required: the 0/1 covariate whose two values the contrast compares")
        prob = validation.probability("prob", prob)
        values = _values(values, n=2)
        draws = self.cumulative_incidence_draws(times, exposure=exposure, values=values, max_draws=max_draws,
                                                grid=grid, random_seed=random_seed)
        causes = self.causes if cause is None else [self._cause(cause)]
        return contrast_table(draws, self.causes, causes, exposure, values, times, prob)

    def plot_cumulative_incidence(self, times=None, *, exposure: str | None = None, values=(0, 1),
                                  covariates: dict | None = None, prob: float = 0.95, title: str | None = None,
                                  observed: dict | None = None, random_seed=0):
        """Each cause's cumulative incidence by group (:meth:`cumulative_incidence` on ``times``, by default 60
        points to the last follow-up) with its band, side by side (:func:`bayescrt.plotting.plot_cumulative_incidence`)."""
        from .plotting import plot_cumulative_incidence

        if times is None:
            times = np.linspace(0.0, self.last_time, 60)
        tab = self.cumulative_incidence(times, exposure=exposure, values=values, covariates=covariates, prob=prob,
                                        random_seed=random_seed)
        return plot_cumulative_incidence(tab, title=title, observed=observed)


# ------------------------------------------------------------------ tables, and the Fine-Gray fit's incidence
def _unsort(X_sorted: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows in the data's sorted order back in the caller's order."""
    out = np.empty_like(X_sorted)
    out[order] = X_sorted
    return out


def subject_row(covs: list, covariates, stratified: bool) -> np.ndarray:
    """One subject's ``covariates`` (a dict giving a value for each of the fit's ``covs``) as a design row."""
    if not isinstance(covariates, dict):
        raise SpecError(f"covariates={covariates!r} must map each covariate of the fit to a value")
    missing, unknown = [c for c in covs if c not in covariates], [c for c in covariates if c not in covs]
    if missing or unknown:
        raise SpecError(f"covariates: give a value for each of {covs}" + (f"; {unknown} are not covariates"
                                                                          if unknown else ""))
    if stratified:
        raise SpecError("covariates= describes one subject, but the fit has strata; standardise with exposure= "
                        "instead")
    return np.array([validation.real(f"covariates[{c!r}]", covariates[c]) for c in covs])


def check_times(times) -> np.ndarray:
    """The times asked for: a list or array of finite numbers >= 0 (not text, not dates, not nested)."""
    example = "e.g. times=[1, 2, 5] in the time column's unit"
    if times is None:
        raise SpecError(f"times= is required: the times at which to give the cumulative incidence, {example}")
    if isinstance(times, (str, bytes, dict, set)):
        raise SpecError(f"times={times!r} must be a list of numbers, {example}")
    arr = np.asarray(times)
    if arr.ndim > 1:
        raise SpecError(f"times has shape {arr.shape}: give one list of times, {example}")
    if arr.dtype.kind not in "iuf" or arr.dtype == bool:
        raise SpecError(f"times={times!r} must be numbers (not {arr.dtype}), {example}")
    arr = np.atleast_1d(arr.astype(float))
    if arr.size == 0 or not np.isfinite(arr).all() or (arr < 0).any():
        raise SpecError(f"times={arr.tolist()!r} must be finite times >= 0, {example}")
    return arr


def incidence_table(draws: np.ndarray, all_causes: list, causes: list, exposure, values, times,
                    prob: float) -> pd.DataFrame:
    """The tidy table of cumulative-incidence draws (draws, causes, groups, times): per cause, group and time the
    posterior median and central ``prob`` band; ``attrs["draws"]`` keeps the draws."""
    groups = [f"{exposure} = {v}" for v in values] if exposure is not None else ["subject"]
    times = check_times(times)
    rows = []
    for c in causes:
        k = all_causes.index(c)
        for g, label in enumerate(groups):
            for t_i, t in enumerate(times):
                lo, med, hi = central_interval(draws[:, k, g, t_i], prob)
                rows.append({"cause": c, "group": label, "time": t, "cif_median": med, "cif_lower": lo,
                             "cif_upper": hi})
    tab = pd.DataFrame(rows)
    tab.attrs.update(draws=Draws(draws), causes=list(all_causes), groups=groups, prob=prob)
    return tab


def contrast_table(draws: np.ndarray, all_causes: list, causes: list, exposure: str, values, times,
                   prob: float) -> pd.DataFrame:
    """Per cause and time, the difference (``rd_*``) and ratio (``ratio_*``) of the cumulative incidence of
    ``values[1]`` against ``values[0]``, draw by draw, with ``p_rd_gt_0``."""
    times = check_times(times)
    rows = []
    for c in causes:
        k = all_causes.index(c)
        for t_i, t in enumerate(times):
            ref, new = draws[:, k, 0, t_i], draws[:, k, 1, t_i]
            rd = new - ref
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(ref > 0, new / ref, np.nan)
            lo, med, hi = central_interval(rd, prob)
            rlo, rmed, rhi = central_interval(ratio, prob) if np.all(np.isfinite(ratio)) else (np.nan,) * 3
            rows.append({"cause": c, "time": t, "contrast": f"{exposure} = {values[1]} vs {values[0]}",
                         "rd_median": med, "rd_lower": lo, "rd_upper": hi, "p_rd_gt_0": float(np.mean(rd > 0)),
                         "ratio_median": rmed, "ratio_lower": rlo, "ratio_upper": rhi})
    tab = pd.DataFrame(rows)
    tab.attrs.update(prob=prob, draws=Draws(draws))
    return tab


def _subdistribution_fit(fit, what: str, cause=None) -> str:
    """The cause of ``fit`` if it is a subdistribution (Fine-Gray) fit and ``cause`` is None or that cause, else a
    SpecError saying what takes the others."""
    from .families import registry

    model = getattr(fit, "model", None)
    if not isinstance(model, dict) or "family" not in model or not registry.of_fit(fit).subdistribution:
        raise SpecError(f"{what} takes a CompetingRisksFit (bc.CompetingRisks(...).fit) or a bc.FineGray fit, not "
                        f"{type(fit).__name__}; for a fit of one event, 1 - bc.standardised_survival(...) is its risk")
    if cause is not None and cause != model["cause"]:
        raise SpecError(f"cause={cause!r}: this Fine-Gray fit models {model['cause']!r} only")
    return model["cause"]


def subdistribution_incidence_draws(fit, times, *, exposure: str | None = None, values=(0, 1),
                                    covariates: dict | None = None, max_draws: int = 400,
                                    random_seed=0) -> np.ndarray:
    """Draws of the cumulative incidence that a Fine-Gray fit implies, (draws, 1, groups, times):
    ``F(t | x) = 1 - exp(-Lambda(t) exp((x - center) @ log_hr))`` with ``Lambda`` the Breslow subdistribution
    baseline of each draw (gamma-process noise on its increments, as :mod:`bayescrt.absolute` gives the Cox
    baseline), averaged over the fitted cohort with a 0/1 ``exposure`` set to each of ``values``
    (g-computation), or for one subject with ``covariates`` (a value for each covariate of the fit)."""
    from .absolute import _diagnostics_ok, _posterior_cumhaz, _positive_int, _standardised, _times
    from .baseline import survival_data
    from .families.base import check_marginal

    _subdistribution_fit(fit, "the cumulative incidence")
    if (exposure is None) == (covariates is None):
        raise SpecError("give exposure= (standardise over the cohort by a 0/1 exposure) or covariates= (one "
                        "subject's covariate values), not both and not neither")
    times = check_times(times)
    validation.seed("random_seed", random_seed)
    if exposure is not None:
        surv = _standardised(fit, exposure, times, values, max_draws, random_seed, incidence=True)[0]
        return (1.0 - surv)[:, None, :, :]
    check_marginal(fit, incidence=True)
    max_draws = _positive_int("max_draws", max_draws)
    data = survival_data(fit)
    x = subject_row(list(fit.covariates), covariates, data.n_strata > 1)
    times = _times(fit, times, data)
    _diagnostics_ok(fit)
    H0, beta = _posterior_cumhaz(fit, data, times, max_draws, np.random.default_rng(random_seed))
    r = np.exp(beta @ (x - np.asarray(fit.model["center"], float)))  # (D,)
    return (1.0 - np.exp(-H0[:, 0, :] * r[:, None]))[:, None, None, :]


def cumulative_incidence(fit, times, *, exposure: str | None = None, values=(0, 1), covariates: dict | None = None,
                         cause: str | None = None, prob: float = 0.95, max_draws: int = 400,
                         random_seed=0) -> pd.DataFrame:
    """The cumulative incidence from a :class:`CompetingRisksFit` (every cause, from the cause-specific hazards;
    :meth:`CompetingRisksFit.cumulative_incidence`) or from a :class:`bayescrt.FineGray` fit (its cause, from
    the subdistribution hazard; :func:`subdistribution_incidence_draws`): the same tidy table, per cause, group
    and time, with the draws in ``attrs["draws"]``."""
    if isinstance(fit, CompetingRisksFit):
        return fit.cumulative_incidence(times, cause=cause, exposure=exposure, values=values, covariates=covariates,
                                        prob=prob, max_draws=max_draws, random_seed=random_seed)
    own = _subdistribution_fit(fit, "cumulative_incidence", cause)
    prob = validation.probability("prob", prob)
    if exposure is not None:
        from .absolute import _values

        values = _values(values)
    draws = subdistribution_incidence_draws(fit, times, exposure=exposure, values=values, covariates=covariates,
                                            max_draws=max_draws, random_seed=random_seed)
    tab = incidence_table(draws, [own], [own], exposure, values, times, prob)
    tab.attrs["model"] = "Fine-Gray"
    return tab


def cumulative_incidence_contrast(fit, times, *, exposure: str, values=(0, 1), cause: str | None = None,
                                  prob: float = 0.95, max_draws: int = 400, random_seed=0) -> pd.DataFrame:
    """The standardised cumulative-incidence difference and ratio of ``exposure`` at ``times``, from a
    :class:`CompetingRisksFit` (:meth:`CompetingRisksFit.cumulative_incidence_contrast`) or a Fine-Gray fit."""
    if isinstance(fit, CompetingRisksFit):
        return fit.cumulative_incidence_contrast(times, exposure=exposure, values=values, cause=cause, prob=prob,
                                                 max_draws=max_draws, random_seed=random_seed)
    from .absolute import _values

    own = _subdistribution_fit(fit, "cumulative_incidence_contrast", cause)
    if exposure is None:
        raise SpecError("exposure= is required: the 0/1 covariate whose two values the contrast compares")
    prob = validation.probability("prob", prob)
    values = _values(values, n=2)
    draws = subdistribution_incidence_draws(fit, times, exposure=exposure, values=values, max_draws=max_draws,
                                            random_seed=random_seed)
    tab = contrast_table(draws, [own], [own], exposure, values, times, prob)
    tab.attrs["model"] = "Fine-Gray"
    return tab
