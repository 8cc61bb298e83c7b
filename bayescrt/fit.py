"""Sampling a built PyMC model, and the :class:`Fit` that wraps the resulting DataTree.

A ``Fit`` holds nothing but its ``xr.DataTree`` (``fit.idata``); everything it
shows is computed from the groups and attributes stored there, so a fit saved
with :meth:`Fit.save` and read back with :func:`load` behaves identically.
Saved fits are NetCDF (never pickle) and carry the model description, the
priors, a hash of the data, package versions and a hash of the draws and attributes
draws that :func:`load` checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time as _time
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .diagnostics import DiagnosticReport, diagnose, diagnose_blocks
from .impute import MIN_REPORTED_IMPUTATIONS
from .effects import hazard_ratio_table
from .errors import DiagnosticsWarning, ResultFileError, SpecError
from . import validation
from .priors import describe
from .summaries import central_interval


FORMAT_VERSION = 2  # 2: every group and attribute hashed, and a checksum of the file's bytes
SAMPLERS = ("nutpie", "pymc", "laplace", "nutpie-jax")
NUTPIE = ("nutpie", "nutpie-jax")  # nutpie's NUTS, its log density compiled by numba or by JAX
REQUIRED_GROUPS = ("posterior", "sample_stats")
_VERSIONED = ("bayescrt", "pymc", "pytensor", "nutpie", "arviz", "numpy", "pandas", "xarray")


def package_versions() -> dict:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def resolve_seed(random_seed) -> int:
    """An explicit integer seed in [0, 2**32 - 1]: the given one, or a fresh one that is then recorded."""
    seed = validation.seed("random_seed", random_seed)
    return int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else seed


def check_sampler(sampler) -> str:
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise SpecError(f"sampler={sampler!r} is not available; choose one of {SAMPLERS}")
    if sampler == "nutpie-jax" and find_spec("jax") is None:
        raise SpecError("sampler='nutpie-jax' compiles the log density with JAX, which is not installed here: "
                        "pip install 'bayescrt[jax]' (or JAX's GPU build), or use sampler='nutpie'")
    return sampler


def check_target_accept(target_accept, allow_none: bool = False) -> float | None:
    if target_accept is None and allow_none:
        return None
    if not validation.is_number(target_accept) or not 0.5 <= target_accept < 1:
        raise SpecError(f"target_accept={target_accept!r} must lie in [0.5, 1), e.g. 0.8 or 0.95")
    return float(target_accept)


LAPLACE_MIN_DRAWS = 100  # per chain: the Pareto fit of a chain's largest weights needs a tail of them


def check_sampling(*, sampler="nutpie", draws=1000, tune=1000, chains=4, random_seed=None, target_accept=0.8):
    """The sampler's settings checked before anything is built: (sampler, draws, tune, chains, target_accept)."""
    validation.seed("random_seed", random_seed)
    sampler = check_sampler(sampler)
    draws = validation.integer("draws", draws, low=1)
    if sampler == "laplace" and draws < LAPLACE_MIN_DRAWS:
        raise SpecError(f"draws={draws} with sampler='laplace': each chain's importance weights are smoothed by a "
                        f"Pareto fit to the largest of them, which needs at least {LAPLACE_MIN_DRAWS} draws a chain")
    return (sampler, draws, validation.integer("tune", tune, low=0), validation.integer("chains", chains, low=1),
            check_target_accept(target_accept))


def check_compiled_models(compiled_models, sampler: str = "nutpie") -> None:
    """``None`` (the process-wide cache), ``False`` (compile afresh) or a cache with ``compile`` (nutpie only)."""
    if compiled_models is None or compiled_models is False:
        return
    if not hasattr(compiled_models, "compile"):
        raise SpecError(f"compiled_models={compiled_models!r}: give a bayescrt.compiled.CompiledModels, None (the "
                        "process-wide cache) or False (compile afresh)")
    if sampler != "nutpie":
        raise SpecError(f"compiled_models= reuses nutpie compilations; sampler={sampler!r} compiles its own")


def check_scheduler(scheduler, sampler: str = "nutpie", compiled_models=None) -> None:
    """``scheduler=`` runs nutpie chains on a Dask cluster, whose workers keep their own compilations."""
    if scheduler is None:
        return
    if sampler != "nutpie":
        raise SpecError(f"scheduler= runs nutpie chains on a Dask cluster; sampler={sampler!r} samples here only: "
                        "drop scheduler= or use sampler='nutpie'")
    if compiled_models is not None and compiled_models is not False:
        raise SpecError("compiled_models= keeps compilations in this process; with scheduler= each worker keeps its "
                        "own: drop one of them")


def sample_model(model, *, sampler="nutpie", draws=1000, tune=1000, chains=4, random_seed=None, progress=True,
                 target_accept: float = 0.8, compiled_models=None, scheduler=None, adaptation: str | None = None,
                 pointwise=None, keep_pointwise: bool = False, start_at_zero=()):
    """Run NUTS on ``model`` (or, with ``sampler="laplace"``, importance sampling from its Laplace approximation,
    :mod:`bayescrt.laplace`); returns (DataTree with posterior and sample_stats, info dict).

    With nutpie each chain is a one-chain run with its own seed from ``random_seed``
    (:mod:`bayescrt.chains`), so that a chain's draws do not depend on where it runs.
    ``compiled_models``: a :class:`~bayescrt.compiled.CompiledModels` cache; a model whose
    structure it has compiled before is served from it (nutpie only). ``None`` (the default)
    uses the process-wide :func:`~bayescrt.compiled.process_cache`; ``False`` compiles afresh.
    ``adaptation``: nutpie's mass-matrix adaptation, ``"low_rank"`` (``None``: :data:`bayescrt.chains.ADAPTATION`)
    or ``"diag"``; recorded in the info.
    ``scheduler``: a ``dask.distributed`` scheduler address or Client; the chains then run as
    tasks on its workers, each holding the data once, with the draws a local fit would give.
    ``pointwise`` and ``keep_pointwise``: the family's log-likelihood terms for the Laplace sampler
    (:func:`bayescrt.laplace.sample_laplace`); the other samplers do not use them.
    """
    sampler, draws, tune, chains, target_accept = check_sampling(sampler=sampler, draws=draws, tune=tune, chains=chains,
                                                                 random_seed=random_seed, target_accept=target_accept)
    seed = resolve_seed(random_seed)
    check_compiled_models(compiled_models, sampler)
    check_scheduler(scheduler, sampler, compiled_models)
    from . import chains as _chains

    adaptation = adaptation or _chains.ADAPTATION
    if adaptation not in _chains.ADAPTATIONS:
        raise SpecError(f"adaptation={adaptation!r} must be one of {list(_chains.ADAPTATIONS)}")
    info = {"sampler": sampler, "draws": int(draws), "tune": int(tune), "chains": int(chains), "random_seed": seed,
            "target_accept": target_accept}
    if sampler in NUTPIE:
        tree, run = _run_nutpie(model, draws, tune, chains, seed, progress, target_accept, compiled_models, scheduler,
                                adaptation, jax=sampler == "nutpie-jax")
    elif sampler == "laplace":  # importance sampling from the Laplace approximation: no tuning, no step size
        from .laplace import sample_laplace

        tree, run = sample_laplace(model, draws=draws, chains=chains, seed=seed, progress=progress, pointwise=pointwise,
                                   keep_pointwise=keep_pointwise, start_at_zero=start_at_zero)
        info.update(tune=0, target_accept=None)
    else:
        tree, run = _run_pymc(model, draws, tune, chains, seed, progress, target_accept)
    return tree, {**info, **run}


def _run_nutpie(model, draws, tune, chains, seed, progress, target_accept, compiled_models, scheduler, adaptation,
                jax: bool = False):
    from . import chains as _chains

    seeds = _chains.chain_seeds(seed, chains)
    if scheduler is not None:
        traces, run = _chains.sample_on_cluster(model, seeds, scheduler, draws=draws, tune=tune,
                                                target_accept=target_accept, progress=progress, adaptation=adaptation)
        return _chains.combine(traces), {**run, "chain_seeds": seeds, "adaptation": adaptation}
    t0 = _time.perf_counter()
    if jax:
        from .compiled import compile_jax

        compiled, new = compile_jax(model), True
    elif compiled_models is False:
        from .native import compile_model

        compiled, new = compile_model(model), True  # data stay inputs
    else:
        if compiled_models is None:
            from .compiled import process_cache

            compiled_models = process_cache()
        compiled, new = compiled_models.compile(model)
    t1 = _time.perf_counter()
    traces = _chains.sample_here(compiled, seeds, draws=draws, tune=tune, target_accept=target_accept,
                                 cores=min(chains, os.cpu_count() or 1), progress=progress, adaptation=adaptation)
    return _chains.combine(traces), {"compile_seconds": round(t1 - t0, 3),
                                     "sampling_seconds": round(_time.perf_counter() - t1, 3),
                                     "compiled": "new" if new else "reused", "chain_seeds": seeds,
                                     "adaptation": adaptation}


def _run_pymc(model, draws, tune, chains, seed, progress, target_accept):
    import pymc as pm

    t0 = _time.perf_counter()  # PyMC compiles inside pm.sample; its compile time is counted as sampling
    trace = pm.sample(
        model=model, draws=draws, tune=tune, chains=chains, cores=min(chains, os.cpu_count() or 1), random_seed=seed,
        progressbar=progress, nuts_sampler="pymc", compute_convergence_checks=False, target_accept=target_accept,
    )
    stats = trace["sample_stats"].to_dataset()
    stats = stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
    tree = xr.DataTree.from_dict({"posterior": trace["posterior"].to_dataset(), "sample_stats": stats})
    return tree, {"compile_seconds": 0.0, "sampling_seconds": round(_time.perf_counter() - t0, 3), "compiled": "new"}


HASHES_ATTR = "bayescrt_hashes"
SEAL_ATTRS = ("content_sha256", HASHES_ATTR)  # the seal itself, not part of what it covers
TRAILER = re.compile(rb"\nBAYESCRT-SHA256 ([0-9a-f]{64})\n\Z")
TRAILER_LEN = len("\nBAYESCRT-SHA256 \n") + 64


def _plain_attr(v) -> str:
    """An attribute value as text that survives a NetCDF round trip (numpy scalars and arrays as Python values)."""
    if isinstance(v, np.ndarray):
        v = v.tolist()
    elif isinstance(v, np.generic):
        v = v.item()
    return repr(v)


def _attrs_text(attrs: dict) -> str:
    return repr(sorted((str(k), _plain_attr(v)) for k, v in attrs.items()))


def _hash_dataset(ds: xr.Dataset) -> str:
    """SHA-256 of every variable and coordinate of a group: name, dims, kind, shape, values and attributes.

    Numbers are hashed as float64 bytes and text as text, so the NetCDF round trip (which stores text
    coordinates as variable-length strings and may widen integer types) leaves the hash unchanged."""
    h = hashlib.sha256()
    h.update(_attrs_text(ds.attrs).encode())
    for name in sorted(ds.variables, key=str):
        var = ds.variables[name]
        vals = np.asarray(var.values)
        kind = "number" if vals.dtype.kind in "biuf" else "text" if vals.dtype.kind in "OUS" else vals.dtype.kind
        h.update(f"{name}|{var.dims}|{kind}|{vals.shape}|".encode())
        h.update(_attrs_text(var.attrs).encode())
        if vals.dtype.kind in "biuf":  # the float64 bytes, read in place (no copy when already contiguous float64)
            h.update(np.ascontiguousarray(vals, dtype=float))
        else:
            texts = vals.ravel().tolist()  # numpy text: already str
            h.update(_list_repr(texts if vals.dtype.kind == "U" else [str(v) for v in texts]).encode())
    return h.hexdigest()


_PLAIN_TEXT = re.compile(r"[ -&(-\[\]-~]*")  # printable ASCII but quote and backslash: repr(s) is "'" + s + "'"


def _list_repr(texts: list) -> str:
    """``repr(texts)`` for a list of strings, by one join where every string is plain (printable ASCII without a
    quote or backslash, as row labels are): repr's own way took 0.2 s of a fit's seal at N = 1,000,000."""
    if texts and _PLAIN_TEXT.fullmatch("".join(texts)):
        return "['" + "', '".join(texts) + "']"
    return repr(texts)


def content_hashes(tree: xr.DataTree) -> dict:
    """A SHA-256 per group (every group of the tree) and per root attribute (every one but the seal)."""
    out = {f"group {g}": _hash_dataset(tree[g].to_dataset()) for g in sorted(tree.children)}
    for key in sorted(tree.attrs):
        if key not in SEAL_ATTRS:
            out[f"attribute {key}"] = hashlib.sha256(_plain_attr(tree.attrs[key]).encode()).hexdigest()
    return out


def content_hash(tree: xr.DataTree, hashes: dict | None = None) -> str:
    """SHA-256 of the whole content: every group (values, coordinates, attributes) and every root attribute
    (from ``hashes``, :func:`content_hashes` of ``tree``, when they are at hand)."""
    hashes = content_hashes(tree) if hashes is None else hashes
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def changes(tree: xr.DataTree) -> list[str]:
    """What differs between ``tree`` and the hashes recorded when it was sealed (empty when nothing does)."""
    try:
        recorded = json.loads(tree.attrs[HASHES_ATTR])
    except (KeyError, TypeError, ValueError):
        return [f"the recorded hashes (attribute {HASHES_ATTR!r}) are missing or unreadable"]
    now = content_hashes(tree)
    out = [f"{k} changed" for k in recorded if k in now and now[k] != recorded[k]]
    out += [f"{k} removed" for k in recorded if k not in now]
    out += [f"{k} added" for k in now if k not in recorded]
    if not out and content_hash(tree, now) != tree.attrs.get("content_sha256"):
        out.append("the recorded content hash (attribute 'content_sha256') changed")
    return out


def seal(tree: xr.DataTree) -> xr.DataTree:
    """Record the hashes of ``tree``'s content in its attributes (in place); :func:`load` checks them."""
    for key in SEAL_ATTRS:
        tree.attrs.pop(key, None)
    hashes = content_hashes(tree)  # once: the seal's own attributes are not part of what it covers
    tree.attrs[HASHES_ATTR] = json.dumps(hashes, sort_keys=True)
    tree.attrs["content_sha256"] = content_hash(tree, hashes)
    return tree


def _file_sha256(path: Path, upto: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        left = upto
        while left > 0:
            chunk = fh.read(min(left, 1 << 22))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _median_lower_upper(x, prob: float) -> list:
    """``[median, lower, upper]`` of draws ``x``: a table row of the central ``prob`` interval."""
    lo, med, hi = central_interval(x, prob)
    return [med, lo, hi]


class Fit:
    """The result of a fit: an ``xr.DataTree`` plus the summaries computed from it.

    Attributes
    ----------
    idata : xr.DataTree
        Groups ``posterior`` (``log_hr`` per covariate, in the covariates' own
        units, and the standardised free parameters), ``sample_stats``,
        ``log_likelihood`` (when stored), ``observed_data`` and
        ``constant_data``; root attributes hold the model description, the
        priors used, the data hash, sampler settings and package versions.
    """

    def __init__(self, idata: xr.DataTree):
        self.idata = idata
        self.design = None  # a formula fit's formula.Design (in memory; a loaded fit has its description only)
        self._report: DiagnosticReport | None = None

    # ------------------------------------------------------------ metadata
    def _attr_json(self, key):
        return json.loads(self.idata.attrs[key])

    @property
    def model(self) -> dict:
        """Family, ties, covariates, centring/scaling and data description."""
        return self._attr_json("bayescrt_model")

    @property
    def priors(self) -> list[dict]:
        """The prior of every covariate: as given, per SD and per unit."""
        return self._attr_json("bayescrt_priors")

    @property
    def sampling(self) -> dict:
        return self._attr_json("bayescrt_sampling")

    @property
    def covariates(self) -> list[str]:
        return list(self.model["covariates"])

    def log_hr_draws(self) -> np.ndarray:
        """Posterior draws of the log-HRs, shape (chains * draws, covariates)."""
        da = self.idata["posterior"]["log_hr"].transpose("chain", "draw", "covariate")
        return da.values.reshape(-1, da.sizes["covariate"])

    # ------------------------------------------------------------ summaries
    def hazard_ratios(self, prob: float = 0.95, hdi: bool = False, at: dict | None = None) -> pd.DataFrame:
        """Posterior of each log-HR and HR, one row per covariate.

        Columns: ``log_hr_mean``, ``log_hr_sd``, ``hr_median``, ``hr_lower``,
        ``hr_upper`` (a ``prob`` credible interval, equal-tailed or, with
        ``hdi=True``, highest-density on the log scale) and ``p_hr_gt_1``, the
        posterior probability that the HR exceeds 1. Units are the
        covariates' own (per year, per unit, level vs reference).
        A formula's spline or polynomial term (several columns in one variable) is shown as the HRs of
        values of its variable against a reference value: by default the first and third quartiles
        against the median; ``at={"age": {"values": [60, 80], "reference": 70}}`` chooses them (this
        works on a saved fit too: the curve terms' knots are stored with it).
        """
        draws, labels = self._hr_rows(at)
        if self.model.get("active") is not None:  # a covariate left out of the model has no HR to report
            keep = [k for k, lab in enumerate(labels) if lab not in self.covariates or lab in self.model["active"]]
            draws, labels = draws[:, keep], [labels[k] for k in keep]
        tab = hazard_ratio_table(draws, labels, prob=prob, hdi=hdi)
        tab.attrs["diagnostics_ok"] = self.diagnostics().ok
        if not tab.attrs["diagnostics_ok"]:
            warnings.warn(
                "these hazard ratios come from a fit that FAILED its diagnostics and cannot be trusted: "
                + "; ".join(self.diagnostics().failures),
                DiagnosticsWarning,
                stacklevel=2,
            )
        return tab

    def missing_information(self) -> pd.DataFrame:
        """For a fit of imputed data (``fit(list of completed DataFrames)``, also read back from its file), per
        covariate: ``within`` (the mean posterior variance of the log-HR within an imputation), ``between``
        (the variance of the imputations' posterior means), ``total`` = within + (1 + 1/m) between, and
        ``fmi`` = (1 + 1/m) between / total, the fraction of missing information."""
        imputation = self.model.get("imputation")
        if not imputation:
            raise SpecError("missing_information is for a fit of imputed data (fit(list of completed DataFrames))")
        da = self.idata["posterior"]["log_hr"].transpose("chain", "draw", "covariate").values
        c, m = imputation["per_imputation_chains"], imputation["m"]
        blocks = [da[k * c:(k + 1) * c].reshape(-1, da.shape[-1]) for k in range(m)]
        W = np.array([b.var(axis=0, ddof=1) for b in blocks]).mean(axis=0)
        B = np.array([b.mean(axis=0) for b in blocks]).var(axis=0, ddof=1)
        T = W + (1 + 1 / m) * B
        return pd.DataFrame({"within": W, "between": B, "total": T, "fmi": (1 + 1 / m) * B / T},
                            index=pd.Index(self.covariates, name="covariate"))

    def _hr_rows(self, at):
        """Log-HR draws and labels of the HR table: a formula's curve terms as contrasts of values."""
        L, covs = self.log_hr_draws(), list(self.covariates)
        info = self.model.get("formula")
        if at is not None and not isinstance(at, dict):
            raise SpecError(f"at={at!r} must map a variable to {{'values': [...], 'reference': value}}")
        if not info:
            if at:
                raise SpecError("at= is for the spline and polynomial terms of a formula fit; this fit has none")
            return L, covs
        contrasts = {}
        for c in info["contrasts"]:
            contrasts.setdefault(c["label"].split(": ")[0], []).append(c)
        design = self.design
        if at and design is None:  # a saved fit: its curve terms from their stored knots
            from .formula import StoredCurves

            if "curves" not in info:
                raise SpecError("at= needs the formula's knots, which this fit did not store (a transform whose "
                                "state is not plain numbers); refit in this session, or read the default contrasts")
            design = StoredCurves(info)
        for var, spec in (at or {}).items():
            terms = [t for t, v in design.curve_terms().items() if v == var]
            if not terms:
                raise SpecError(f"at: {var!r} is not the variable of a spline or polynomial term; those are "
                                f"{sorted(set(design.curve_terms().values()))}")
            if not isinstance(spec, dict) or set(spec) != {"values", "reference"}:
                raise SpecError(f"at[{var!r}]={spec!r} must be {{'values': [...], 'reference': value}}")
            values = [validation.real(f"at[{var!r}]['values']", v) for v in np.atleast_1d(spec["values"])]
            ref = validation.real(f"at[{var!r}]['reference']", spec["reference"])
            for t in terms:
                contrasts[t] = design.contrast(t, values, ref)
        cols, labels, done = [], [], set()
        index = {c: i for i, c in enumerate(covs)}
        for i, c in enumerate(covs):
            term = info["terms"].get(c)
            if term in contrasts:
                if term not in done:
                    done.add(term)
                    for row in contrasts[term]:
                        cols.append(L[:, [index[k] for k in row["columns"]]] @ np.asarray(row["weights"]))
                        labels.append(row["label"])
                continue
            cols.append(L[:, i])
            labels.append(c)
        return np.column_stack(cols), labels

    def compare_published(self, published, covariate: str | None = None, prob: float = 0.95):
        """Moved: ``bayescrt.compare(fit, published, covariate=...)`` (a Fit does not import the comparison)."""
        raise SpecError("Fit.compare_published has moved: call bayescrt.compare(fit, published, covariate=..., "
                        "prob=...), which takes a Fit or any draws of one log-HR")

    def diagnostics(self) -> DiagnosticReport:
        """R-hat, bulk and tail ESS, divergences and E-BFMI against stated thresholds."""
        if self._report is None:
            post = self.idata["posterior"]
            # the family's variables, recorded when the fit was made; a file from before that record: every
            # variable a family may have
            names = self.model.get("diagnostic_vars") or [
                v for v in ("log_hr", "frailty_sd", "frailty", "study_sd", "study_log_hr", "log_scale", "shape",
                            "log_hazard", "rw_sd", "tv_log_hr") if v in post]
            imputation = self.model.get("imputation")
            tree = self.idata
            if self.model.get("active") is not None:  # covariates left out of the model (log-HR fixed at 0): not checked
                import xarray as xr

                tree = xr.DataTree.from_dict({
                    "posterior": tree["posterior"].to_dataset().sel(covariate=list(self.model["active"])),
                    "sample_stats": tree["sample_stats"].to_dataset()})
            if imputation:  # a pooled fit of imputed data: each imputation's chains checked on their own
                self._report = diagnose_blocks(tree, names if len(names) > 1 else "log_hr",
                                               imputation["per_imputation_chains"])
                if imputation["m"] < MIN_REPORTED_IMPUTATIONS:
                    self._report.notes.append(
                        f"{imputation['m']} imputations: Zhou and Reiter (2010) find that few imputations give "
                        f"intervals that cover too rarely; use m >= {MIN_REPORTED_IMPUTATIONS} (100 in their study)")
            else:
                self._report = diagnose(tree, names if len(names) > 1 else "log_hr")
        return self._report

    def study_effects(self, prob: float = 0.95) -> pd.DataFrame:
        """The exposure's HR in each study, the population HR, a new study's HR and the between-study SD.

        Columns ``median``, ``lower``, ``upper`` (HR scale, except the SD row,
        which is on the log-HR scale) and ``source`` (individual data,
        aggregate, or the population level).
        """
        post, m = self.idata["posterior"], self.model
        if "study_log_hr" not in post:
            raise SpecError("this fit has no study level; fit with study=<column> or aggregate=... and exposure=")
        st = m["studies"]
        q = lambda x: _median_lower_upper(x, prob)  # noqa: E731
        th = post["study_log_hr"].transpose("chain", "draw", "study").values
        th = th.reshape(-1, th.shape[-1])
        rows, src = {}, []
        for k, lab in enumerate(st["labels"]):
            rows[lab] = q(np.exp(th[:, k]))
            src.append("individual data" if k < st["n_individual"] else "aggregate")
        mu = post["log_hr"].sel(covariate=self.covariates[self.model["sources"].index(st["exposure"])]).values.ravel()
        rows["population"] = q(np.exp(mu))
        src.append("mean of the study effects" if st["pooling"] == "none" else "population")
        if "study_sd" in post:
            tau = post["study_sd"].values.ravel()
            rng = np.random.default_rng(0)
            rows["new study"] = q(np.exp(mu + tau * rng.standard_normal(mu.size)))
            rows["between-study SD (log HR)"] = q(tau)
            src += ["predictive", "population"]
        tab = pd.DataFrame.from_dict(rows, orient="index", columns=["median", "lower", "upper"])
        tab["source"] = src
        tab.index.name = "study"
        tab.attrs.update(prob=prob, pooling=st["pooling"], exposure=st["exposure"])
        return tab

    def frailty(self, prob: float = 0.95) -> pd.DataFrame:
        """The shared frailty: its SD (log-hazard scale) and each cluster's hazard multiplier exp(b).

        One row ``"SD"`` for the frailty SD, then one row per cluster; columns
        ``median``, ``lower``, ``upper`` (a ``prob`` equal-tailed interval).
        """
        post = self.idata["posterior"]
        if "frailty_sd" not in post:
            raise SpecError("this fit has no frailty; fit with cluster=<column> to get one")
        sd = post["frailty_sd"].values.ravel()
        b = post["frailty"].transpose("chain", "draw", "cluster").values.reshape(sd.size, -1)
        rows = {"SD": _median_lower_upper(sd, prob)}
        for j, c in enumerate(post["cluster"].values):
            rows[str(c)] = _median_lower_upper(np.exp(b[:, j]), prob)
        tab = pd.DataFrame.from_dict(rows, orient="index", columns=["median", "lower", "upper"])
        tab.index.name = "frailty"
        tab.attrs.update(prob=prob, note="row SD: frailty SD on the log-hazard scale; other rows: exp(cluster effect)")
        return tab

    def summary(self, prob: float = 0.95) -> "Report":
        """A readable report: model, data, sampler, priors, the HR table and the diagnostics."""
        m, s, rep = self.model, self.sampling, self.diagnostics()
        hr = self.hazard_ratios(prob=prob)
        pct = f"{100 * prob:g}%"
        tab = pd.DataFrame(
            {
                "log(HR)": hr["log_hr_mean"],
                "sd": hr["log_hr_sd"],
                "HR": hr["hr_median"],
                f"HR {pct} lower": hr["hr_lower"],
                f"HR {pct} upper": hr["hr_upper"],
                "P(HR>1)": hr["p_hr_gt_1"],
                "R-hat": rep.parameters["rhat"].to_numpy()[:len(hr)],
                "ESS bulk": rep.parameters["ess_bulk"].round().to_numpy()[:len(hr)],
            },
            index=hr.index,
        )
        pri = {describe(p["given"]) for p in self.priors}
        lines = [
            f"<bayescrt.Fit: {m['family']}>",
            f"      model = {m['description']}",
            f"       data = {m['data_description']}",
            f"   duration = {m['columns']['time']!r}, event = {m['columns']['event']!r}",
        ]
        if m.get("references"):
            lines.append("  reference = " + ", ".join(f"{k}: {v!r}" for k, v in m["references"].items()))
        if m.get("frailty"):
            fr, fs = m["frailty"], self.frailty(prob).loc["SD"]
            lines.append(f"    frailty = log-normal by {fr['column']!r} ({fr['n_clusters']} clusters, {fr['parameterisation']}); "
                         f"SD {fs['median']:.3f} [{fs['lower']:.3f}; {fs['upper']:.3f}] (log-hazard scale; fit.frailty())")
        lines += [
            f"    sampler = {s['sampler']}, {s['chains']} chains x {s['draws']} draws "
            f"({s['tune']} tuning), seed {s['random_seed']}",
            f"       time = compile {s['compile_seconds']:.1f} s, sampling {s['sampling_seconds']:.1f} s",
            "     priors = log-HR ~ " + "; ".join(sorted(pri)) + "  (per covariate, both scales: fit.priors)",
            "",
            "HR is the posterior median; intervals are equal-tailed credible intervals; "
            "log(HR) and sd are the posterior mean and SD.",
            tab.to_string(float_format=lambda v: f"{v:.3f}"),
            "",
            str(rep).split("\n")[0],
        ]
        return Report("\n".join(lines), tab)

    def __repr__(self) -> str:
        m = self.model
        return f"<bayescrt.Fit {m['family']} on {m['data_description']}; diagnostics {'ok' if self.diagnostics().ok else 'FAILED'}>"

    # ------------------------------------------------------------ persistence
    def annotate(self, **attrs) -> "Fit":
        """Add root attributes (e.g. ``synthetic=1``) and seal the fit again; refused if its content was altered."""
        altered = changes(self.idata)
        if altered:
            raise ResultFileError("this fit's content differs from what was recorded when it was made ("
                                  + "; ".join(altered) + "); it cannot be annotated: fit again")
        self.idata.attrs.update(attrs)
        seal(self.idata)
        return self

    def save(self, path) -> Path:
        """Write the fit to NetCDF atomically (temporary file, then rename).

        The file ends with a line ``BAYESCRT-SHA256 <hex>``, the SHA-256 of every byte before it, which
        :func:`load` checks (NetCDF and HDF5 readers ignore bytes past the end of the HDF5 data); the
        content hashes recorded when the fit was made are inside, so an in-memory edit saved here is
        refused on load too.
        """
        if not isinstance(path, (str, os.PathLike)) or str(path) == "":
            raise ResultFileError(f"save(path={path!r}): give a file path, e.g. 'fit.nc'")
        path = Path(path)
        if path.is_dir():
            raise ResultFileError(f"save: {str(path)!r} is a folder; give a file path such as "
                                  f"{str(path / 'fit.nc')!r}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultFileError(f"save: the folder {str(path.parent)!r} cannot be made ({exc.strerror or exc}); "
                                  "give another path") from None
        tmp = path.with_name(path.name + ".tmp")
        try:
            self.idata.to_netcdf(tmp, engine="h5netcdf")
            digest = _file_sha256(tmp, tmp.stat().st_size)
            with open(tmp, "ab") as fh:
                fh.write(b"\nBAYESCRT-SHA256 " + digest.encode() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


class Report:
    """Text for people (``print(report)``) with the table behind it (``report.table``)."""

    def __init__(self, text: str, table: pd.DataFrame):
        self.text, self.table = text, table

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def assemble(posterior_tree: xr.DataTree, info: dict, *, model: dict, priors: list[dict],
             data_hash: str, extra_groups: dict) -> Fit:
    """Build the full DataTree of a fit, warn if it fails its diagnostics, return the Fit."""
    groups = {g: posterior_tree[g].to_dataset() for g in REQUIRED_GROUPS}
    groups.update(extra_groups)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(
        bayescrt_format=FORMAT_VERSION,
        bayescrt_model=json.dumps(model),
        bayescrt_priors=json.dumps(priors),
        bayescrt_sampling=json.dumps(info),
        bayescrt_versions=json.dumps(package_versions()),
        data_sha256=data_hash,
    )
    fit = Fit(tree)
    # the seal's hashes (hashlib lets go of the GIL over large buffers: the stored log-likelihood is most of it) on a
    # second thread beside the diagnostics (numpy's sorts let go of it too): each reads what the other never changes
    with ThreadPoolExecutor(1) as pool:
        sealed = pool.submit(seal, tree)
        rep = fit.diagnostics()
        sealed.result()
    if not rep.ok:
        warnings.warn(
            "This fit FAILED its convergence diagnostics and its results cannot be trusted: "
            + "; ".join(rep.failures)
            + ". Run more tuning/draws, reparameterise, or check the data; see fit.diagnostics().",
            DiagnosticsWarning,
            stacklevel=3,
        )
    return fit


def load(path) -> Fit:
    """Read a fit saved with :meth:`Fit.save`, checking that the file is whole and unaltered.

    Refused, with a :class:`~bayescrt.errors.ResultFileError` that says what is wrong: bytes that differ from
    those written (checked before anything is parsed); a missing, truncated or unreadable file; a group or
    attribute that differs from what was recorded when the fit was made, or that was removed or added (each
    one named); a file without bayescrt's checksum line (written by another program, or rewritten since).
    """
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ResultFileError(f"load(path={path!r}): give the path of a saved fit, e.g. 'fit.nc'")
    path = Path(path)
    if not path.exists():
        raise ResultFileError(f"no result file at {str(path)!r}")
    if path.is_dir():
        raise ResultFileError(f"{str(path)!r} is a folder, not a result file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - TRAILER_LEN))
        tail = fh.read()
    m = TRAILER.search(tail)
    # a file bayescrt wrote is checked byte for byte before any of it is parsed
    if m is not None and _file_sha256(path, size - TRAILER_LEN) != m.group(1).decode():
        raise ResultFileError(
            f"{str(path)!r}: its bytes differ from those bayescrt wrote (the checksum line over the whole file does "
            "not match): the file was altered or corrupted after it was saved; fit again"
        )
    try:
        tree = xr.open_datatree(path, engine="h5netcdf").load()
    except Exception as exc:  # truncated or not NetCDF at all
        raise ResultFileError(
            f"{str(path)!r} could not be read as a NetCDF result ({type(exc).__name__}: {exc}); "
            "the file is truncated, corrupted or not a bayescrt result: fit again"
        ) from exc
    if "bayescrt_format" not in tree.attrs:
        raise ResultFileError(f"{str(path)!r} is NetCDF but not a bayescrt result (no 'bayescrt_format' attribute)")
    try:
        fmt = int(tree.attrs["bayescrt_format"])
    except (TypeError, ValueError):
        raise ResultFileError(f"{str(path)!r}: its 'bayescrt_format' attribute {tree.attrs['bayescrt_format']!r} is "
                              "not a format number; the file was altered: fit again") from None
    if fmt > FORMAT_VERSION:
        raise ResultFileError(
            f"{str(path)!r} was written in result format {fmt}, newer than this bayescrt reads ({FORMAT_VERSION}); "
            "upgrade bayescrt"
        )
    if fmt < FORMAT_VERSION:
        raise ResultFileError(
            f"{str(path)!r} was written in result format {fmt} by an older bayescrt, whose checks did not cover the "
            f"whole file; this bayescrt reads format {FORMAT_VERSION} only: fit again"
        )
    missing = [g for g in REQUIRED_GROUPS if g not in tree.children]
    for key in ("bayescrt_model", "bayescrt_priors", "bayescrt_sampling", *SEAL_ATTRS):
        if key not in tree.attrs:
            missing.append(f"attribute {key}")
    if missing:
        raise ResultFileError(f"{str(path)!r} lacks {missing}; the file is incomplete or was altered: fit again")
    altered = changes(tree)
    if altered:
        raise ResultFileError(
            f"{str(path)!r}: " + "; ".join(altered) + ": these parts do not match the hash recorded when the fit "
            "was made; the file was altered or corrupted: fit again"
        )
    if m is None:
        raise ResultFileError(
            f"{str(path)!r} does not end with bayescrt's checksum line: it was written by another program or "
            "rewritten after bayescrt saved it, so it cannot be checked as a whole: fit again"
        )
    return Fit(tree)
