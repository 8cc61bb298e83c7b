"""The adjustment-set multiverse: the exposure's posterior under every subset of candidate confounders.

:func:`multiverse` fits one model per subset of ``candidates`` (``2^k`` cells), each with the
exposure and the ``always`` covariates. Every cell is a fit of the **full** design with the left-out
candidates' log-HRs fixed at 0 (``fit(active=...)``): data and the switch are inputs of the compiled
model, so all cells share one compilation, and a cell's posterior is that of a plain fit of its subset
(the left-out coefficients are sampled from their priors, apart from everything else).

Across the cells (:class:`Multiverse`):

- ``table()``: per cell, the set, the exposure's posterior median HR, interval and P(HR > 1);
- ``vibration()``: the vibration of effects (Patel, Burford and Ioannidis, J Clin Epidemiol
  2015;68:1046-58): the range of the cells' median HRs, the relative HR (99th over 1st percentile of
  the medians), and the shares of cells with P(HR > 1) > 0.975 and < 0.025 (a Janus effect when both
  occur);
- ``weights()`` and ``averaged()``: stacking (or pseudo-BMA+) weights of the cells from the PSIS-LOO
  pointwise ELPD of the partial likelihood they share, and the weighted mixture of their draws: a
  predictive average, not a causal one (``AVERAGING_STATEMENT``);
- ``attribution()``: each candidate's Shapley value, its average marginal change of the exposure's
  posterior mean log-HR over all subsets, weighted ``|S|! (k - |S| - 1)! / k!``. The values add up to
  the full-minus-minimal shift exactly (the Shapley efficiency property). Each is a linear combination
  of independent cells' posterior means, so its Monte Carlo error is ``sqrt(sum w^2 se^2)`` with each
  cell's ``se = sd / sqrt(bulk ESS)``.

With ``out=`` each finished cell is written to the folder at once (its draws of the exposure's log-HR
and its diagnostics), and a later call with the same data and settings loads the cells it finds and
fits only the others: a run that crashed resumes where it stopped. ``scheduler=`` sends the cells to the
workers of a ``dask.distributed`` cluster (``workers=``: local processes); each process compiles once, and a
cell's draws do not depend on where it ran.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import validation
from .errors import DataWarning, DiagnosticsWarning, ResultFileError, SpecError, suggest
from .progress import Bar
from .psis import loglik_matrix, psis_loo, relative_efficiency
from .summaries import central_interval

MAX_CANDIDATES = 12  # 4,096 cells
WEIGHT_METHODS = ("stacking", "pseudo-bma+")
AVERAGING_STATEMENT = (
    "The weights measure how well each covariate set predicts who dies next (PSIS-LOO of the partial likelihood); "
    "they are not a judgement on confounding. A set that leaves out a confounder can predict as well as one that "
    "adjusts for it, so the averaged HR is a summary of the multiverse, not a causal estimate: choose the "
    "adjustment set from subject-matter knowledge (e.g. a causal diagram) and read the average beside it.")
FORMAT = "bayescrt-multiverse-1"


@dataclass(frozen=True)
class MultiverseCell:
    """One subset of the candidates: its included candidates, in the order given."""

    included: tuple[str, ...]
    mask: tuple[bool, ...]

    @property
    def id(self) -> str:
        return "cell_" + "".join("1" if m else "0" for m in self.mask)


def _check(df, time, event, exposure, always, candidates) -> tuple[list[str], list[str]]:
    if not isinstance(df, pd.DataFrame):
        raise SpecError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    for arg, col in (("time", time), ("event", event), ("exposure", exposure)):
        if not isinstance(col, str) or col not in df.columns:
            raise SpecError(f"{arg}={col!r} is not a column of the DataFrame.{suggest(str(col), map(str, df.columns))}")
    lists = {}
    for arg, cols in (("always", always), ("candidates", candidates)):
        if isinstance(cols, str) or not isinstance(cols, (list, tuple)):
            raise SpecError(f"{arg}={cols!r} must be a list of column names, e.g. ['age', 'male']")
        cols = list(cols)
        for c in cols:
            if not isinstance(c, str) or c not in df.columns:
                raise SpecError(f"{arg}: {c!r} is not a column of the DataFrame.{suggest(str(c), map(str, df.columns))}")
            if c in (time, event, exposure):
                raise SpecError(f"{arg}: {c!r} is the time, event or exposure column; it cannot be a covariate too")
        if len(set(cols)) < len(cols):
            raise SpecError(f"{arg}={cols!r} names a column twice")
        lists[arg] = cols
    both = sorted(set(lists["always"]) & set(lists["candidates"]))
    if both:
        raise SpecError(f"{both} are both in always= and in candidates=; a covariate is forced or a candidate")
    k = len(lists["candidates"])
    if not 1 <= k <= MAX_CANDIDATES:
        raise SpecError(f"candidates: {k} given; the multiverse takes 1 to {MAX_CANDIDATES} candidates "
                        f"({2 ** MAX_CANDIDATES:,} cells)")
    return lists["always"], lists["candidates"]


def cells_of(candidates: list[str]) -> list[MultiverseCell]:
    """Every subset, the empty one first, then by size, each size in the order of the candidates."""
    out = []
    for size in range(len(candidates) + 1):
        for combo in itertools.combinations(range(len(candidates)), size):
            mask = tuple(j in combo for j in range(len(candidates)))
            out.append(MultiverseCell(tuple(candidates[j] for j in combo), mask))
    return out


def _labels_of(data, sources: list[str]) -> list[str]:
    """The design labels of the given columns (a categorical column has one label per level)."""
    return [lab for lab, src in zip(data.covariates, data.sources) if src in sources]


def multiverse(df: pd.DataFrame, *, time: str, event: str, exposure: str, always=(), candidates, family=None,
               entry: str | None = None, reference: dict | None = None, priors: dict | None = None, draws: int = 1000, tune: int = 1000, chains: int = 4,
               random_seed: int | None = None, missing: str = "error", out=None, scheduler=None, workers: int = 1,
               progress: bool = True) -> "Multiverse":
    """Fit the exposure's model under every subset of ``candidates`` (with ``always`` in every cell).

    ``family``: an estimator that takes ``fit(active=...)`` (default ``bc.CoxPH()``). ``entry`` (delayed
    entry), ``reference`` (reference levels of categorical columns) and ``priors``: as for ``fit``. Every cell uses ``random_seed``. ``missing="drop"``: complete cases on
    every column of the full set, so that every cell fits the same rows (reported once, as ``fit`` does).
    ``out``: a folder for the cells, which makes the run resumable (module docstring). ``scheduler``: a
    ``dask.distributed`` scheduler address or Client, whose workers fit the cells (the data scattered once to
    each; each worker compiles once); otherwise ``workers`` local processes (1: this process). The cells'
    numbers do not depend on where they ran: each cell uses ``random_seed``. Finished cells are written by
    this process as they arrive, so ``out`` need not be shared with the workers."""
    from .families import registry

    always, candidates = _check(df, time, event, exposure, always, candidates)
    est = family if family is not None else registry.estimator_class("CoxPH")()
    if not getattr(est, "masks_covariates", False):
        raise SpecError(f"family={est!r}: the multiverse's cells share one compilation through fit(active=...), "
                        "which CoxPH takes; use bc.CoxPH()")
    validation.integer("draws", draws, low=1)
    validation.integer("tune", tune, low=0)
    validation.integer("chains", chains, low=1)
    workers = validation.integer("workers", workers, low=1)
    if scheduler is not None:
        from .cluster import check

        check(scheduler)
    if draws * chains < 5:
        raise SpecError(f"draws={draws}, chains={chains}: PSIS-LOO of a cell needs at least 5 draws in all; give more")
    seed = validation.seed("random_seed", random_seed)
    if seed is None and out is not None:  # a run without a seed resumes with the seed it drew
        seed = _recorded_seed(out)
    if seed is None:
        seed = _draw_seed()
    columns = [exposure, *always, *candidates]
    data = est.prepare(df, time=time, event=event, covariates=columns, entry=entry, reference=reference,
                       missing=missing)  # once, before any cell
    if data.sources[0] != exposure or len(_labels_of(data, [exposure])) != 1:
        raise SpecError(f"exposure {exposure!r} must be one numeric or binary column (one log-HR); it has "
                        f"{len(_labels_of(data, [exposure]))} design columns")
    settings = {"format": FORMAT, "time": time, "event": event, "exposure": exposure, "always": always,
                "candidates": candidates, "family": repr(est), "entry": entry, "reference": reference, "priors": priors, "draws": draws, "tune": tune,
                "chains": chains, "random_seed": seed, "missing": missing}
    fingerprint = hashlib.sha256((json.dumps(settings, sort_keys=True, default=str) + data.hash()).encode()).hexdigest()
    settings["seed_drawn"] = random_seed is None  # recorded, not part of the fingerprint
    folder = None
    if out is not None:
        folder = validation.output_folder(out, "out")
        _claim(folder, settings, fingerprint)
    cells = cells_of(candidates)
    results: dict[str, dict] = {}
    fit_kw = dict(time=time, event=event, covariates=columns, entry=entry, reference=reference, priors=priors, draws=draws, tune=tune, chains=chains,
                  random_seed=seed, progress=False, log_likelihood=True, missing=missing)
    base = [exposure, *always]
    with Bar("multiverse", "cells", len(cells), 0, progress) as bar:
        todo = []
        for cell in cells:
            got = _load(folder, cell, fingerprint) if folder is not None else None
            if got is None:
                todo.append((cell, _labels_of(data, base + list(cell.included))))
            else:
                results[cell.id] = got
                bar.advance()

        def finished(cell, got):
            if folder is not None:
                _save(folder, cell, fingerprint, got)  # at once: a crash later keeps this cell
            results[cell.id] = got
            bar.advance()

        if not todo:
            pass
        elif scheduler is not None:
            _cells_on_dask(scheduler, est, df, todo, fit_kw, finished)
        elif workers > 1 and len(todo) > 1:
            _cells_in_processes(workers, est, df, todo, fit_kw, finished)
        else:
            for cell, active in todo:
                finished(cell, fit_cell(est, df, active, fit_kw))
    return Multiverse(cells, results, exposure=exposure, always=always, candidates=candidates, fitted=len(todo),
                      folder=folder, random_seed=seed)


def fit_cell(est, df: pd.DataFrame, active: list[str], fit_kw: dict) -> dict:
    """One cell: the full design with only ``active`` switched on, summarised (:func:`_summarise`). It runs
    wherever the cell is sent (this process, a local process or a Dask worker) and compiles only where that
    process has not compiled the structure yet."""
    with warnings.catch_warnings():  # a failed cell is reported in the table and by the result
        warnings.simplefilter("ignore", DiagnosticsWarning)
        warnings.simplefilter("ignore", DataWarning)  # the dropped rows were reported by prepare, once
        fit = est.fit(df, active=active, **fit_kw)
    return _summarise(fit, est.loglik_var)


def _cells_in_processes(workers: int, est, df, todo, fit_kw, finished) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a forked child of a process holding compiler and sampler threads can deadlock
    ex = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"))
    try:
        futures = {ex.submit(fit_cell, est, df, active, fit_kw): cell for cell, active in todo}
        for f in as_completed(futures):
            finished(futures[f], f.result())  # the finished cells are saved; an error stops the queued ones
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _cells_on_dask(scheduler, est, df, todo, fit_kw, finished) -> None:
    import time as _time

    from distributed import as_completed

    from .cluster import connect

    with connect(scheduler) as client:
        df_f = client.scatter(df, broadcast=True)  # the data once per worker, not once per cell
        stamp = f"{os.getpid()}-{_time.time_ns()}"
        futures = {client.submit(fit_cell, est, df_f, active, fit_kw, pure=False,
                                 key=f"bayescrt-multiverse-{cell.id}-{stamp}"): cell for cell, active in todo}
        try:
            for f in as_completed(futures):  # a task whose worker died is rerun by the scheduler
                finished(futures[f], f.result())
        except BaseException:
            client.cancel(list(futures))  # an error (or Ctrl-C) stops the cells not yet fitted
            raise


def _summarise(fit, loglik_var: str) -> dict:
    """What the multiverse keeps of a cell's fit: the exposure's draws (chain, draw), its diagnostics, and
    the PSIS-LOO pointwise ELPD of the partial likelihood (one term per event, the same events in every cell)."""
    import arviz as az

    post = fit.idata["posterior"]["log_hr"].isel(covariate=0).transpose("chain", "draw").values
    rep = fit.diagnostics()
    ess = float(np.asarray(az.ess(post[..., None], chain_axis=0, draw_axis=1, method="bulk")).ravel()[0])
    ll = loglik_matrix(fit.idata, loglik_var)
    r_eff = relative_efficiency(fit.idata, ll.shape[0])
    failures = list(rep.failures)
    if np.isfinite(ll).all() and np.isfinite(r_eff) and r_eff > 0:
        elpd_i, pareto_k = psis_loo(ll, r_eff)  # ArviZ's loo, vectorised: 8 s of a cell's 12 became 0.3 s
    else:  # the cell failed; it gets no predictive weight (an ELPD of -inf) and says why
        elpd_i, pareto_k = np.full(ll.shape[1], -np.inf), np.full(ll.shape[1], np.inf)
        failures.append("non-finite pointwise log-likelihood or ESS: no PSIS-LOO")
    return {"draws": np.asarray(post, float), "elpd_i": elpd_i, "ok": bool(rep.ok) and len(failures) == len(rep.failures),
            "failures": failures, "ess_bulk": ess, "max_pareto_k": float(np.max(pareto_k)),
            "compiled": fit.sampling.get("compiled", "new"),
            "seconds": float(fit.sampling.get("compile_seconds", 0.0)) + float(fit.sampling.get("sampling_seconds", 0.0))}


def _draw_seed() -> int:
    """A fresh seed from the operating system's entropy, for a run given none (recorded, so that it resumes)."""
    return int(np.random.SeedSequence().entropy % 2**32)


def _recorded_seed(out) -> int | None:
    """The seed a run in ``out`` drew for itself (``random_seed=None``), so that a rerun without one resumes."""
    try:
        settings = json.loads((Path(out) / "multiverse.json").read_text())["settings"]
        return int(settings["random_seed"]) if settings.get("seed_drawn") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _claim(folder: Path, settings: dict, fingerprint: str) -> None:
    """The folder's manifest: written by the first run, checked by every later one."""
    manifest = folder / "multiverse.json"
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as err:
            raise ResultFileError(f"{manifest}: not a multiverse manifest ({err}); delete it or choose another "
                                  "folder") from None
        if old.get("fingerprint") != fingerprint:
            raise SpecError(f"out={str(folder)!r} holds a multiverse of other data or settings; choose a new folder, "
                            "or delete that one to start again")
        return
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "settings": settings}, indent=1, default=str))
    os.replace(tmp, manifest)


def _cell_path(folder: Path, cell: MultiverseCell) -> Path:
    return validation.inside(folder, folder / f"{cell.id}.npz")


def _save(folder: Path, cell: MultiverseCell, fingerprint: str, got: dict) -> None:
    path = _cell_path(folder, cell)
    meta = {k: v for k, v in got.items() if k not in ("draws", "elpd_i")} | {"fingerprint": fingerprint,
                                                                             "included": cell.included}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, draws=got["draws"], elpd_i=got["elpd_i"], meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)  # a cell is on disk whole or not at all


def _load(folder: Path, cell: MultiverseCell, fingerprint: str) -> dict | None:
    path = _cell_path(folder, cell)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta, draws, elpd = json.loads(str(z["meta"])), np.array(z["draws"], float), np.array(z["elpd_i"], float)
    except (OSError, ValueError, KeyError):
        return None  # a damaged cell is fitted again
    if meta.get("fingerprint") != fingerprint or tuple(meta.get("included", ())) != cell.included:
        return None
    return {**{k: v for k, v in meta.items() if k not in ("fingerprint", "included")}, "draws": draws,
            "elpd_i": elpd, "compiled": "loaded"}


class Multiverse:
    """Every cell's posterior of the exposure's log-HR, and what they say together (module docstring)."""

    def __init__(self, cells, results, *, exposure, always, candidates, fitted, folder, random_seed=None):
        self.cells, self.results = list(cells), results
        self.exposure, self.always, self.candidates = exposure, list(always), list(candidates)
        self.fitted, self.folder = fitted, folder
        self.random_seed = random_seed  # the seed every cell used: given, recorded by an earlier run, or drawn

    @property
    def compilations(self) -> int:
        """How many compilations this run paid (the first cell's, when the process had none cached)."""
        return sum(r["compiled"] == "new" for r in self.results.values())

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.results.values())

    def _warn_if_failed(self) -> None:
        bad = [c.id for c in self.cells if not self.results[c.id]["ok"]]
        if bad:
            warnings.warn(f"{len(bad)} of {len(self.cells)} multiverse cells FAILED their diagnostics "
                          f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); numbers built on them cannot be "
                          "trusted: run more draws", DiagnosticsWarning, stacklevel=3)

    def table(self, prob: float = 0.95) -> pd.DataFrame:
        """One row per cell: the candidates it adds, the exposure's posterior median HR, interval, P(HR > 1)."""
        prob = validation.probability("prob", prob)
        rows = []
        for c in self.cells:
            r = self.results[c.id]
            x = r["draws"].ravel()
            lo, med, hi = np.exp(central_interval(x, prob))
            rows.append({"cell": c.id, "adjusted_for": ", ".join([*self.always, *c.included]) or "(none)",
                         "n_candidates": len(c.included), **{f"with {k}": m for k, m in zip(self.candidates, c.mask)},
                         "hr_median": med, "hr_lower": lo, "hr_upper": hi, "p_hr_gt_1": float(np.mean(x > 0)),
                         "log_hr_mean": float(x.mean()), "log_hr_sd": float(x.std(ddof=1)),
                         "mc_se": float(x.std(ddof=1) / math.sqrt(max(r["ess_bulk"], 1.0))),
                         "elpd_loo": float(r["elpd_i"].sum()), "max_pareto_k": r["max_pareto_k"],
                         "diagnostics_ok": r["ok"]})
        tab = pd.DataFrame(rows).set_index("cell")
        tab.attrs.update(exposure=self.exposure, prob=prob)
        return tab

    def vibration(self, prob: float = 0.95) -> pd.Series:
        """The vibration of effects across the cells (Patel et al. 2015; module docstring)."""
        self._warn_if_failed()
        t = self.table(prob)
        med = t["hr_median"].to_numpy()
        p = t["p_hr_gt_1"].to_numpy()
        above, below = float(np.mean(p > 0.975)), float(np.mean(p < 0.025))
        return pd.Series({
            "cells": len(t), "hr_median_min": med.min(), "hr_median_max": med.max(),
            "relative_hr": float(np.percentile(med, 99) / np.percentile(med, 1)),
            "share_p_gt_0.975": above, "share_p_lt_0.025": below, "janus": bool(above > 0 and below > 0),
        }, name="vibration of effects")

    def attribution(self) -> pd.DataFrame:
        """Each candidate's Shapley contribution to the change in the exposure's posterior mean log-HR from the
        forced-only cell to the full cell, with its Monte Carlo error; rows sum to the total shift."""
        self._warn_if_failed()
        k = len(self.candidates)
        mean = {c.mask: float(self.results[c.id]["draws"].mean()) for c in self.cells}
        se2 = {c.mask: float(self.results[c.id]["draws"].var(ddof=1) / max(self.results[c.id]["ess_bulk"], 1.0))
               for c in self.cells}
        rows = []
        for j, name in enumerate(self.candidates):
            coef: dict[tuple, float] = {}
            for mask in mean:
                if mask[j]:
                    continue
                size = sum(mask)
                w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                with_j = tuple(True if i == j else m for i, m in enumerate(mask))
                coef[with_j] = coef.get(with_j, 0.0) + w
                coef[mask] = coef.get(mask, 0.0) - w
            phi = sum(w * mean[m] for m, w in coef.items())
            rows.append({"candidate": name, "contribution": phi,
                         "mc_error": math.sqrt(sum(w * w * se2[m] for m, w in coef.items()))})
        tab = pd.DataFrame(rows).set_index("candidate")
        full, none = tuple([True] * k), tuple([False] * k)
        tab.attrs.update(total=mean[full] - mean[none], minimal=mean[none], full=mean[full],
                         scale="log-HR of the exposure (posterior mean)")
        return tab

    def weights(self, method: str = "stacking", random_seed: int = 0) -> pd.Series:
        """Predictive weights of the cells from the PSIS-LOO pointwise ELPD of the partial likelihood they share:
        ``"stacking"`` (Yao, Vehtari, Simpson and Gelman 2018) or ``"pseudo-bma+"`` (Bayesian-bootstrap
        pseudo-BMA, 1,000 replicates seeded by ``random_seed``). They weigh how well each set predicts the
        events, not whether it deals with confounding."""
        if method not in WEIGHT_METHODS:
            raise SpecError(f"method={method!r}: choose one of {list(WEIGHT_METHODS)}.{suggest(str(method), WEIGHT_METHODS)}")
        elpd = np.column_stack([self.results[c.id]["elpd_i"] for c in self.cells])  # (events, cells)
        w = stacking_weights(elpd) if method == "stacking" else pseudo_bma_plus(elpd, random_seed)
        return pd.Series(w, index=pd.Index([c.id for c in self.cells], name="cell"), name=f"{method} weight")

    def averaged(self, method: str = "stacking", prob: float = 0.95, random_seed: int = 0) -> pd.Series:
        """The model-averaged posterior of the exposure HR: the cells' draws mixed in proportion to their
        ``weights(method)`` (resampled with ``random_seed``). A predictive average, not a causal estimate."""
        self._warn_if_failed()
        prob = validation.probability("prob", prob)
        w = self.weights(method, random_seed)
        rng = np.random.default_rng(random_seed)
        pools = [self.results[c].get("draws").ravel() for c in w.index]
        n = min(len(p) for p in pools)
        counts = rng.multinomial(n * 4, w.to_numpy())
        x = np.concatenate([rng.choice(p, size=k, replace=True) for p, k in zip(pools, counts) if k])
        lo, med, hi = np.exp(central_interval(x, prob))
        out = pd.Series({"hr_median": med, "hr_lower": lo, "hr_upper": hi, "p_hr_gt_1": float(np.mean(x > 0)),
                         "log_hr_mean": float(x.mean()), "log_hr_sd": float(x.std(ddof=1)),
                         "cells_with_weight_over_0.01": int((w > 0.01).sum())}, name=f"averaged ({method})")
        out.attrs.update(weights=w, method=method, prob=prob, statement=AVERAGING_STATEMENT)
        return out

    def plot_vibration(self, color_by: str | None = None, published: dict | None = None, ax=None,
                       title: str | None = None, estimand: str | None = None):
        """Each cell's median HR against -log10 of its two-sided posterior tail probability
        (2 min(P(HR > 1), P(HR < 1))), coloured by whether ``color_by`` (a candidate) is in the set;
        ``published``: ``{label: hr}`` drawn as vertical lines; ``estimand``: what the HR is, for the axis
        (default ``HR of '<exposure>'``; e.g. the cause-specific HR of one cause)."""
        import matplotlib.pyplot as plt

        from .plotting import _hr_ticks

        t = self.table()
        if color_by is not None and color_by not in self.candidates:
            raise SpecError(f"color_by={color_by!r} is not a candidate.{suggest(str(color_by), self.candidates)}")
        n = min(r["draws"].size for r in self.results.values())
        p = t["p_hr_gt_1"].to_numpy()
        tail = np.maximum(2 * np.minimum(p, 1 - p), 1.0 / n)  # no draw beyond 1: at most 1/n
        y = -np.log10(tail)
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        groups = [(np.ones(len(t), bool), "cells", "#4c72b0")] if color_by is None else [
            (t[f"with {color_by}"].to_numpy(bool), f"with {color_by}", "#dd8452"),
            (~t[f"with {color_by}"].to_numpy(bool), f"without {color_by}", "#4c72b0")]
        capped = tail <= 1.0 / n
        for mask, label, colour in groups:
            for cap, marker in ((False, "o"), (True, "^")):
                sel = mask & (capped == cap)
                if sel.any():
                    ax.scatter(t["hr_median"].to_numpy()[sel], y[sel], s=30, color=colour, alpha=0.85, marker=marker,
                               label=label if not cap or not (mask & ~capped).any() else None,
                               edgecolor="white", linewidth=0.5)
        if capped.any():
            ax.scatter([], [], marker="^", color="0.5", label=f"no draw beyond HR 1: at the cap 1/{n:,} draws")
        ax.axhline(-np.log10(0.05), color="0.6", ls=":", lw=1)
        ax.text(ax.get_xlim()[0], -np.log10(0.05), " two-sided tail 0.05", va="bottom", fontsize=8, color="0.4")
        ax.axvline(1.0, color="0.5", ls="--", lw=1)
        for k, (label, hr) in enumerate((published or {}).items()):
            ax.axvline(hr, color=f"C{k + 2}", lw=1.5, label=f"published: {label} ({hr:g})")
        ax.set_xscale("log")
        ax.margins(x=0.08)
        _hr_ticks(ax)
        ax.set_xlabel(f"posterior median {estimand or f'HR of {self.exposure!r}'}")
        ax.set_ylabel("-log10 two-sided tail probability")
        v = self.vibration()
        ax.set_title(title or f"Vibration of effects: {len(t)} covariate sets, relative HR {v.relative_hr:.2f}")
        ax.legend(fontsize=8, loc="best")
        ax.figure.tight_layout()
        return ax

    def plot_attribution(self, ax=None, title: str | None = None):
        """A waterfall from the forced-only set's HR to the full set's: each candidate's Shapley contribution,
        largest first, with its Monte Carlo error."""
        import matplotlib.pyplot as plt

        a = self.attribution()
        a = a.reindex(a["contribution"].abs().sort_values(ascending=False).index)
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        level = a.attrs["minimal"]
        ax.bar(0, np.exp(level) - 1, bottom=1, color="0.55", width=0.6)
        ax.text(0, np.exp(level), f"{np.exp(level):.3f}", ha="center", va="bottom", fontsize=8)
        for k, (name, row) in enumerate(a.iterrows(), start=1):
            new = level + row["contribution"]
            lo, hi = sorted((np.exp(level), np.exp(new)))
            ax.bar(k, hi - lo, bottom=lo, color="#c44e52" if row["contribution"] > 0 else "#4c72b0", width=0.6)
            ax.errorbar(k, np.exp(new), yerr=np.exp(new) * row["mc_error"], color="0.2", capsize=3, lw=1)
            ax.plot([k - 1.3, k + 0.3], [np.exp(level)] * 2, color="0.6", lw=0.8, ls=":")
            ax.text(k, hi, f"{row['contribution']:+.3f}", ha="center", va="bottom", fontsize=8)
            level = new
        n = len(a) + 1
        ax.bar(n, np.exp(level) - 1, bottom=1, color="0.3", width=0.6)
        ax.text(n, max(np.exp(level), 1), f"{np.exp(level):.3f}", ha="center", va="bottom", fontsize=8)
        ax.axhline(1.0, color="0.5", ls="--", lw=1)
        ax.set_xticks(range(n + 1), ["forced only", *a.index, "full set"], rotation=30, ha="right")
        ax.set_ylabel(f"HR of {self.exposure!r} (posterior mean log-HR)")
        ax.set_title(title or "Each candidate's share of the shift (Shapley values on the log-HR scale)")
        ax.figure.tight_layout()
        return ax

    def __str__(self) -> str:
        t = self.table()
        v = self.vibration() if self.ok else None
        head = (f"Multiverse of {len(t)} covariate sets for {self.exposure!r} (always: {', '.join(self.always) or 'none'}; "
                f"candidates: {', '.join(self.candidates)}); {self.fitted} fitted this run, {self.compilations} "
                f"compilation(s)")
        shown = pd.DataFrame({
            "adjusted for": t["adjusted_for"], "HR (median)": t["hr_median"].map("{:.3f}".format),
            "95% interval": [f"{a:.3f} to {b:.3f}" for a, b in zip(t["hr_lower"], t["hr_upper"])],
            "P(HR > 1)": t["p_hr_gt_1"].map("{:.3f}".format),
            "diagnostics": t["diagnostics_ok"].map({True: "ok", False: "FAILED"})})
        tail = "" if v is None else (f"\nmedian HRs {v.hr_median_min:.3f} to {v.hr_median_max:.3f}; relative HR "
                                     f"{v.relative_hr:.3f}; P(HR > 1) > 0.975 in {100 * v['share_p_gt_0.975']:.0f}% "
                                     f"of cells, < 0.025 in {100 * v['share_p_lt_0.025']:.0f}%")
        return head + "\n" + shown.to_string() + tail


def stacking_weights(elpd: np.ndarray) -> np.ndarray:
    """Stacking of predictive distributions (Yao et al. 2018): ``w`` on the simplex maximising
    ``sum_i log sum_k w_k exp(elpd_ik)``, from the pointwise LOO ELPD ``(terms, models)``."""
    from scipy.optimize import minimize

    elpd = np.asarray(elpd, float)
    K = elpd.shape[1]
    if K == 1:
        return np.ones(1)
    top = elpd.max(axis=1, keepdims=True)
    dens = np.exp(elpd - top)  # each term's densities, scaled by its largest (the scale drops out)

    def objective(z):
        a = np.append(z, 0.0)
        w = np.exp(a - a.max())
        w /= w.sum()
        mix = dens @ w
        value = -np.sum(np.log(mix))
        g_w = -(dens / mix[:, None]).sum(axis=0)  # d value / d w
        g_a = w * (g_w - w @ g_w)  # through the softmax
        return value, g_a[:-1]

    # tight tolerances: weights that rounding in the ELPD (1e-15) cannot move by more than about 1e-9
    res = minimize(objective, np.zeros(K - 1), jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10_000})
    a = np.append(res.x, 0.0)
    w = np.exp(a - a.max())
    return w / w.sum()


def pseudo_bma_plus(elpd: np.ndarray, random_seed: int = 0, replicates: int = 1000) -> np.ndarray:
    """Pseudo-BMA+ weights (Yao et al. 2018): softmax of the ELPDs, averaged over Bayesian-bootstrap
    (Dirichlet(1, ..., 1)) reweightings of the terms, which accounts for the ELPDs' uncertainty."""
    elpd = np.asarray(elpd, float)
    n = elpd.shape[0]
    rng = np.random.default_rng(random_seed)
    alpha = rng.dirichlet(np.ones(n), size=replicates)  # (replicates, terms)
    z = n * alpha @ elpd  # (replicates, models)
    z -= z.max(axis=1, keepdims=True)
    w = np.exp(z)
    w /= w.sum(axis=1, keepdims=True)
    return w.mean(axis=0)
