"""Running a grid: :func:`run`, and the groups of cells it runs in this process, local processes or on Dask."""

from __future__ import annotations

import functools
import json
import os
import socket
import time as _time
import warnings
from pathlib import Path

import pandas as pd

from .. import validation
from ..cluster import connect
from ..covariate_sets import covariates_keyword
from ..errors import DiagnosticsWarning, SpecError, suggest
from ..progress import Bar
from .cells import _cell_inputs, fit_cell
from .grid import Cell, Grid, _data_hash
from .store import (JOURNAL, _count_done, _discard, _journal_compilation, _journaled, _lock, _manifest_cells, _record,
                    _valid, _write_json)
from .table import SensitivityResult


def run(grid, out, *, data: pd.DataFrame | None = None, scheduler=None, workers: int = 1,
        progress: bool = True, **overrides) -> SensitivityResult:
    """Fit every cell of ``grid`` (a :class:`Grid`, a spec name or path) into folder ``out``; resume if possible.

    ``data``: the cohort (default for a spec: its synthetic cohort). ``scheduler``:
    a ``dask.distributed`` scheduler address or Client; otherwise ``workers``
    local processes (1: this process). The caller's DataFrame is not modified.
    """
    out = validation.output_folder(out, "out")  # before the cohort is simulated or anything is fitted
    spec = None
    if not isinstance(grid, Grid):
        from ..spec import load_spec

        spec = load_spec(grid)
        grid = Grid.from_spec(spec, **overrides)
    elif overrides:
        raise SpecError(f"{sorted(overrides)}: overrides apply to a spec; set them on the Grid instead")
    if data is None:
        data = _spec_data(spec)
    workers = validation.integer("workers", workers, low=1)
    if isinstance(data, (list, tuple)):  # completed data sets of a multiple imputation: each cell pools them
        from ..impute import check_frames

        df = [f.copy() for f in check_frames(data)]
    elif not isinstance(data, pd.DataFrame):
        raise SpecError(f"data= must be a pandas DataFrame or a list of completed DataFrames (bc.impute), got "
                        f"{type(data).__name__}")
    else:
        df = data.copy()
    df = grid.cause_data(df)  # competing risks: the codes checked, the cause's 0/1 event added to the copy
    (out / "cells").mkdir(parents=True, exist_ok=True)
    with _lock(out):
        return _run_locked(grid, out, df, scheduler, workers, progress)


# what a spec's [data] may ask of the fits that a grid's cells do not take yet, and what to do instead
_NOT_IN_GRIDS = {"missing": "missing = \"drop\" (drop the incomplete rows from the extract, or impute them with "
                            "[data.imputation])",
                 "reference": "reference levels (recode the column so that its reference level sorts first)",
                 "entry": "delayed entry from [data.dates] (compute the time from entry in the extract)"}


def _spec_data(spec):
    """A spec's data: its [data] file, read and prepared as `bayescrt analyse` does, or its synthetic cohort."""
    if spec is not None and "data" in spec.raw:
        from ..extract import load_data

        spec, prepared = load_data(spec)
        refused = [_NOT_IN_GRIDS[k] for k in prepared.fit_kwargs if k in _NOT_IN_GRIDS]
        if refused:
            raise SpecError(f"{spec.path} [data]: a sensitivity grid does not pass {'; '.join(refused)} to its cells "
                            "yet")
        return prepared.fits
    if spec is None or "cohort" not in spec.raw:
        raise SpecError("data= is required: this grid has no spec with a data file or a synthetic cohort")
    from ..analysis import simulate_cohort

    return simulate_cohort(spec)


def _run_locked(grid, out, df, scheduler, workers, progress):
    data_hash = _data_hash(df)
    cells = grid.cells()
    known = set()
    for cell in cells:  # every cell's data and priors are checked before any sampling
        known |= _cell_inputs(grid, cell, df, check=True)[4]
    stray = sorted(set(grid.base_priors) - known - {grid.exposure})
    if stray:  # keys of formula sets, known only now
        raise SpecError(f"priors: {stray[0]!r} is not the exposure or a covariate of any set.{suggest(stray[0], known)} "
                        f"Valid keys: {sorted(known)}")
    if isinstance(df, list):  # every imputation's rows through every set, as the cells will fit them
        for cell in {c.covariate_set: c for c in cells}.values():
            est, _, covs, _, _ = _cell_inputs(grid, cell, df[:1])
            for frame in df[1:]:
                est.prepare(frame, time=grid.time, **grid.event_kwargs(cell), **covariates_keyword(covs))
    groups: dict = {}
    for cell in cells:
        groups.setdefault(grid.group_of(cell), []).append(cell)
    done = {c.id for c in cells if _valid(out / "cells" / f"{c.id}.nc", grid.fingerprint(c, data_hash))}
    for c in cells:  # stale, truncated or corrupt files and markers of killed runs are removed before refitting
        if c.id not in done:
            _discard(out, c.id)
    manifest_path = out / "manifest.json"
    before = _manifest_cells(manifest_path)  # the records (time, compilation) of cells finished by earlier runs
    manifest = {"grid": grid.to_dict(), "data_sha256": data_hash, "synthetic": grid.synthetic,
                "cells": {c.id: {**c.params(), "seed": grid.seed_of(c), "fingerprint": grid.fingerprint(c, data_hash),
                                 "file": f"cells/{c.id}.nc", "status": "done" if c.id in done else "pending",
                                 **({k: v for k, v in before.get(c.id, {}).items()
                                     if k in ("seconds", "compiled", "compile_seconds", "sampling_seconds")}
                                    if c.id in done else {})}
                          for c in cells}}
    _write_json(manifest_path, manifest)
    todo = [(key, [c for c in cs if c.id not in done]) for key, cs in groups.items()]
    todo = [(key, cs) for key, cs in todo if cs]
    payload = grid.to_dict()
    run_id = f"{socket.gethostname()}-{os.getpid()}-{_time.time_ns()}"
    t0 = _time.perf_counter()
    results = []
    with Bar("sensitivity grid", "cells", len(cells), len(done), progress) as bar:
        if not todo:
            pass
        elif scheduler is not None:
            results = _run_dask(scheduler, payload, todo, df, out, data_hash, run_id, bar, manifest, manifest_path)
        elif workers == 1:
            from ..compiled import CompiledModels

            cache = CompiledModels()
            for key, cs in todo:
                r = _run_group(payload, [c.params() for c in cs], df, str(out), data_hash, run_id,
                               on_cell=lambda c: bar.advance(), compiled_models=cache)
                results.append(r)
                _record(manifest, manifest_path, r)
        else:
            results = _run_processes(workers, payload, todo, df, out, data_hash, run_id, bar, manifest,
                                     manifest_path)
    fitted = [rec for r in results for rec in r["records"] if not rec.get("reused_file")]
    # from the journal: a task whose worker died compiled too, though it returned nothing
    journal = _journaled(out, run_id)
    manifest["last_run"] = {"run": run_id, "compilations": len(journal),
                            "structures": len({j["structure"] for j in journal}),
                            "fitted": len(fitted),
                            "kept": len(cells) - len(fitted), "seconds": round(_time.perf_counter() - t0, 3),
                            "groups": len(todo), "scheduler": None if scheduler is None else str(scheduler),
                            "workers": workers}
    _write_json(manifest_path, manifest)
    missing = [c.id for c in cells if not (out / "cells" / f"{c.id}.nc").exists()]
    if missing:
        raise RuntimeError(f"{len(missing)} cells have no result after the run: {missing[:5]}; run again to resume")
    return SensitivityResult(grid, out, manifest)


def _run_group(grid_dict: dict, cells: list[dict], df: pd.DataFrame, out: str, data_hash: str, run_id: str,
               on_cell=None, compiled_models=None) -> dict:
    """Fit the cells of one group in this process, skipping those already written; returns their records.

    Each compilation is appended to the run's journal as it finishes, so that the
    count includes compilations by a worker that died before its task returned."""
    from ..compiled import CompiledModels

    grid = Grid(**grid_dict)
    cache = compiled_models or CompiledModels()
    cache.on_compile = functools.partial(_journal_compilation, Path(out) / JOURNAL, run_id)
    folder = Path(out) / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for c in cells:
        cell = Cell(**c)
        path = folder / f"{cell.id}.nc"
        fp = grid.fingerprint(cell, data_hash)
        if _valid(path, fp):
            records.append({"id": cell.id, "status": "done", "reused_file": True})
            if on_cell:
                on_cell(cell)
            continue
        marker = folder / f"{cell.id}.running"
        marker.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": _time.time()}))
        t0 = _time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DiagnosticsWarning)  # reported in the table, cell by cell
            fit = fit_cell(grid, cell, df, compiled_models=cache, data_hash=data_hash)
        fit.save(path)
        marker.unlink(missing_ok=True)
        s = json.loads(fit.idata.attrs["bayescrt_sampling"])
        if s.get("sampler") in ("laplace", "nutpie-jax") and s.get("compiled") == "new":  # compiled outside the cache
            cache.on_compile(f"{s['sampler']} {grid.group_of(cell)}", s.get("compile_seconds") or 0.0)
        records.append({"id": cell.id, "status": "done", "reused_file": False,
                        "seconds": round(_time.perf_counter() - t0, 3), "compiled": s.get("compiled"),
                        "compile_seconds": s.get("compile_seconds"), "sampling_seconds": s.get("sampling_seconds")})
        if on_cell:
            on_cell(cell)
    return {"records": records, "pid": os.getpid()}  # compilations: counted from the run's journal


def _run_processes(workers, payload, todo, df, out, data_hash, run_id, bar, manifest, manifest_path):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ids = list(manifest["cells"])
    results = []
    # spawn: a forked child of a process holding compiler and sampler threads can deadlock
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn")) as ex:
        pending = {ex.submit(_run_group, payload, [c.params() for c in cs], df, str(out), data_hash, run_id)
                   for _, cs in todo}
        while pending:
            finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for f in finished:
                r = f.result()
                results.append(r)
                _record(manifest, manifest_path, r)
            bar.set(_count_done(out, ids))
    return results


def _run_dask(scheduler, payload, todo, df, out, data_hash, run_id, bar, manifest, manifest_path):
    ids = list(manifest["cells"])
    results = []
    with connect(scheduler) as client:
        df_f = client.scatter(df, broadcast=True)
        futures = [client.submit(_run_group, payload, [c.params() for c in cs], df_f, str(out.resolve()), data_hash,
                                 run_id, pure=False, key=f"bayescrt-sensitivity-{'-'.join(map(str, key))}-{os.getpid()}-"
                                                 f"{_time.time_ns()}")
                   for key, cs in todo]
        pending = list(futures)
        while pending:  # poll, so that the bar moves cell by cell rather than task by task
            for f in [f for f in pending if f.done()]:
                pending.remove(f)
                r = f.result()  # a task whose worker died has been rerun by the scheduler
                results.append(r)
                _record(manifest, manifest_path, r)
            bar.set(_count_done(out, ids))
            if pending:
                _time.sleep(0.5)
    return results
