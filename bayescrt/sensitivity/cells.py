"""Per-cell statistics: a cell's inputs and fit, the exposure's log prior, the total log-likelihood, a cell's row."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings

import numpy as np
import pandas as pd

from ..errors import DataError, ResultFileError, SpecError
from ..families import registry
from ..priors import log_density, rescale, resolve_priors
from ..summaries import central_interval
from ..covariate_sets import covariates_keyword, exposure_label, set_covariates
from .grid import Cell, Grid, _subset


def _log_prior(draws: np.ndarray, prior: dict, sd: float) -> np.ndarray:
    """Log density of the exposure's prior at its log-HR draws (original scale)."""
    p = dict(prior)
    if p.get("scale") == "standardised":  # the same prior per unit of the covariate
        p = rescale(p, sd, "original")
    return log_density(draws, p)


def _cell_inputs(grid: Grid, cell: Cell, df, check: bool = False):
    """(estimator, the subset's rows, covariates with the exposure first, priors, the prior keys the set knows);
    ``check`` validates them. ``df``: a DataFrame, or the completed DataFrames of an imputation (a list)."""
    fam, opts = grid._families[cell.family]
    est = registry.estimator_class(fam)(**opts)
    data = _subset(df, grid.subsets[cell.subset], cell.subset)
    events = grid.event_kwargs(cell)
    if grid.subdistribution(cell):  # it reads the coded event column itself, not the 0/1 column of the cause
        data = [f.drop(columns=grid.fit_event) for f in data] if isinstance(data, list) else \
            data.drop(columns=grid.fit_event)
    covs = set_covariates(grid.exposure, grid.covariate_sets[cell.covariate_set])
    priors = dict(grid.base_priors)
    prior = grid.prior_of(cell)
    if prior is not None:
        priors[grid.exposure] = prior
    if isinstance(covs, str):  # a formula's keys are its columns' labels and variables, known from the data
        sd = est.prepare(data[0] if isinstance(data, list) else data, time=grid.time, **events, formula=covs)
        keep = {"default", *sd.covariates, *sd.sources}
    else:
        sd, keep = None, {"default", *covs}
    priors = {k: v for k, v in priors.items() if k in keep}
    if check:
        for frame in (data if isinstance(data, list) else [data])[:1]:  # the rest: checked by the run, per set
            sd = sd or est.prepare(frame, time=grid.time, **events, **covariates_keyword(covs))
            label = exposure_label(sd, grid.exposure, cell.covariate_set)
            if sd.covariates[0] != label:
                raise SpecError(f"exposure {grid.exposure!r} must come first in covariate set "
                                f"{cell.covariate_set!r}; it is {sd.covariates[0]!r}")
            resolve_priors(sd.covariates, sd.sources, sd.scale, priors)
    return est, data, covs, priors, keep


def loglik_total(fit) -> np.ndarray | None:
    """Total log-likelihood of every draw, (chain, draw), up to one constant, from the sampler's log density.

    The sampler records ``logp`` = log prior + log-likelihood at each draw. For fits
    of a family whose fixed parameters' priors have a closed form (its
    ``fixed_priors``: Cox, Weibull, exponential), without frailty or study levels,
    every prior term is known, so the log-likelihood is ``logp`` minus them (the coefficients'
    priors on their own scale differ from the sampled parameterisation's by a
    constant Jacobian). A constant is all that power-scaling allows, as its
    weights are normalised. ``None`` for other fits.
    """
    m = fit.model
    family = registry.of_fit(fit)
    if family.fixed_priors is None or "frailty" in m or "studies" in m:
        return None
    post = fit.idata["posterior"].to_dataset().transpose("chain", "draw", ...)
    beta = post["log_hr"].values
    lp = sum(_log_prior(beta[..., j], rec["given"], float(m["scale"][j])) for j, rec in enumerate(fit.priors))
    lp = lp + family.fixed_log_prior(post)  # written once, beside the model that uses them
    return fit.idata["sample_stats"]["logp"].transpose("chain", "draw").values - lp


def fit_cell(grid: Grid, cell: Cell, df: pd.DataFrame, compiled_models=None, progress: bool = False,
             data_hash: str | None = None):
    """Fit one cell; returns the Fit with ``log_prior`` (the exposure's prior) and per-draw ``log_likelihood``."""
    import xarray as xr

    est, data, covs, priors, _ = _cell_inputs(grid, cell, df)
    # the per-row log-likelihood is computed only for families whose total cannot come from the sampler's logp
    pointwise = type(est).fixed_priors is None
    if est.sampler != "nutpie":  # the cache holds nutpie compilations; another sampler keeps its own
        compiled_models = None
    try:
        fit = est.fit(data, time=grid.time, **grid.event_kwargs(cell), **covariates_keyword(covs), priors=priors,
                      draws=grid.draws, tune=grid.tune, chains=grid.chains, random_seed=grid.seed_of(cell),
                      progress=progress, log_likelihood=pointwise, compiled_models=compiled_models)
    except (SpecError, DataError) as err:  # which cell could not be fitted, and why
        raise type(err)(f"cell {cell.id}: {err}") from None
    tree = fit.idata
    from ..fit import Fit, changes, seal

    altered = changes(tree)
    if altered:  # the cell's file is sealed afresh below: only what the fit made may go into it
        raise ResultFileError(f"cell {cell.id}: the fit's content changed after it was made: {'; '.join(altered)}")
    post = tree["posterior"]
    dims = {"chain": post["chain"].values, "draw": post["draw"].values}
    total = None if pointwise else loglik_total(fit)
    if total is None:
        ll = tree["log_likelihood"].to_dataset()
        var = ll[next(iter(ll.data_vars))].transpose("chain", "draw", ...)
        total = var.values.reshape(var.shape[0], var.shape[1], -1).sum(-1)
    j = 0  # the exposure is the first covariate
    x = post["log_hr"].isel(covariate=j).transpose("chain", "draw").values
    lp = _log_prior(x, fit.priors[j]["given"], float(fit.model["scale"][j]))
    groups = {g: tree[g].to_dataset() for g in tree.children if g != "log_likelihood"}
    # per draw: what likelihood power-scaling needs, at 1/N of the per-row size
    groups["log_likelihood"] = xr.Dataset({"loglik_total": (("chain", "draw"), total)}, coords=dims)
    groups["log_prior"] = xr.Dataset({"exposure_prior": (("chain", "draw"), lp)}, coords=dims)
    out = xr.DataTree.from_dict(groups)
    out.attrs.update(tree.attrs)
    out.attrs["bayescrt_cell"] = json.dumps(cell.params())
    if data_hash is not None:  # what a resumed run checks the file against
        out.attrs["bayescrt_cell_fingerprint"] = grid.fingerprint(cell, data_hash)
    seal(out)
    return Fit(out)


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _summary_row(grid: Grid, cell: Cell, fit, prob: float) -> dict:
    """The cell's row of the table: the exposure's HR posterior, power-scaling sensitivity, diagnostics."""
    from arviz import psense_summary

    x = fit.log_hr_draws()[:, 0]
    m = fit.model
    imp = m.get("imputation")
    # power-scaling reweights the draws of one posterior: for pooled imputations, each imputation's on its own,
    # and the row reports the most sensitive
    blocks = [fit.idata] if not imp else [
        fit.idata.isel(chain=slice(k * imp["per_imputation_chains"], (k + 1) * imp["per_imputation_chains"]))
        for k in range(imp["m"])]
    with warnings.catch_warnings(), _quiet("arviz_stats.psense"):  # its advice is our column and note
        warnings.simplefilter("ignore")
        sens = [psense_summary(b, var_names=["log_hr"], coords={"covariate": [fit.covariates[0]]}) for b in blocks]
    ps = max(sens, key=lambda t: max(float(t["prior"].iloc[0]), float(t["likelihood"].iloc[0])))
    lo, med, hi = np.exp(central_interval(x, prob))
    # competing risks: the cause whose hazard the cell fits, and which hazard (cause-specific or subdistribution)
    cause = {"cause": grid.cause, "estimand": grid.cell_estimand(cell)} if grid.cause else {}
    row = {"cell": cell.id, **cell.params(), **cause, "n": m["n"], "n_events": m["n_events"], "hr_median": med,
           "hr_lower": lo, "hr_upper": hi, "p_hr_gt_1": float(np.mean(x > 0)), "log_hr_mean": float(x.mean()),
           "log_hr_sd": float(x.std(ddof=1)), "prior_sensitivity": float(ps["prior"].iloc[0]),
           "likelihood_sensitivity": float(ps["likelihood"].iloc[0]),
           "sensitivity_diagnosis": str(ps["diagnosis"].iloc[0]), "diagnostics_ok": fit.diagnostics().ok}
    if grid.confounding is not None:
        from ..bias import unmeasured_confounding

        ba = unmeasured_confounding(fit, fit.covariates[0], prob=prob, random_seed=grid.seed_of(cell),
                                    **grid.confounding)
        t = ba.table().loc["bias-adjusted"]
        ev = ba.evalues()
        row.update(adjusted_hr_median=t["hr_median"], adjusted_hr_lower=t["hr_lower"],
                   adjusted_hr_upper=t["hr_upper"], adjusted_p_hr_gt_1=t["p_hr_gt_1"],
                   evalue_interval=float(ev.loc["interval end nearest 1", "evalue"]))
    return row
