"""The chains of one nutpie fit: each a one-chain run with its own seed, here or on a Dask cluster.

A fit's ``random_seed`` gives every chain a seed of its own (:func:`chain_seeds`, from
``numpy.random.SeedSequence(random_seed).spawn``), and each chain is sampled as a one-chain
nutpie run with that seed. A chain's draws therefore depend on its seed alone, not on where it
ran or on how many chains ran beside it, so:

- here (:func:`sample_here`), the runs start together without Python threads (nutpie samples
  in its own), at most ``cores`` at a time, under one progress bar over all draws; the time is
  that of one nutpie call sampling every chain;
- on a ``dask.distributed`` cluster (:func:`sample_on_cluster`), the model, data included, is
  sent to every worker once (``scatter(..., broadcast=True)``); each chain is a task that
  compiles the model there (a compiled log density cannot travel; a worker's process-wide
  cache compiles each structure once) and returns its draws;

and both give the same draws and statistics for the same seed (tests/test_chains.py). The
chains are then put side by side along ``chain`` (:func:`combine`).
"""

from __future__ import annotations

import os
import time as _time

import numpy as np
import xarray as xr

from .progress import Bar

POLL_SECONDS = 0.05
# nutpie's mass-matrix adaptation: a diagonal plus a low-rank part learnt from the draws' and gradients'
# covariance. Correlated log-HRs (an exposure and its interactions, many piecewise intervals) mix as well as
# uncorrelated ones: 8-13 x the bulk ESS of the diagonal for upgrade * age, 2.2 x for the piecewise model at the
# same cost per draw, Cox and Weibull unchanged (benchmarks/README.md)
ADAPTATION = "low_rank"
# a between-study SD over a handful of studies (studies=, aggregate=, a meta-analysis) is a funnel where the
# low-rank estimate adds divergences: the combined fit of notebook 04 diverged in 4 of 6 seeds against 1 of 6
FEW_STUDIES_ADAPTATION = "diag"
ADAPTATIONS = ("diag", "low_rank")


def chain_seeds(random_seed: int, chains: int) -> list[int]:
    """A seed per chain, from ``random_seed``; the first k are the same whatever the number of chains."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(random_seed).spawn(chains)]


def _start(compiled, seed, draws, tune, target_accept, callback=None, adaptation=None):
    import nutpie

    return nutpie.sample(compiled, draws=draws, tune=tune, chains=1, cores=1, seed=seed, progress_bar=False,
                         save_warmup=False, target_accept=target_accept, blocking=False, progress_callback=callback,
                         adaptation=adaptation or ADAPTATION)


def _finished(sampler) -> bool:
    try:
        return bool(sampler.is_finished)
    except TimeoutError:  # nutpie's answer while the chain is still sampling
        return False


def sample_here(compiled, seeds: list[int], *, draws: int, tune: int, target_accept: float, cores: int | None = None,
                progress: bool = True, adaptation: str | None = None) -> list[xr.DataTree]:
    """Each chain's trace, sampled in this process, at most ``cores`` (default: the CPUs) at a time."""
    cores = max(1, min(len(seeds), cores or os.cpu_count() or 1))
    done_draws = [0] * len(seeds)
    traces: list = [None] * len(seeds)
    with Bar(f"sampling {len(seeds)} chains", "draws", len(seeds) * (draws + tune), enabled=progress) as bar:
        def watcher(i):
            def callback(chain_progress):  # called by nutpie on its own thread
                done_draws[i] = sum(c.finished_draws for c in chain_progress)
                bar.set(sum(done_draws))
            return callback if progress else None

        waiting, running = list(range(len(seeds))), {}
        try:
            while waiting or running:
                while waiting and len(running) < cores:
                    i = waiting.pop(0)
                    running[i] = _start(compiled, seeds[i], draws, tune, target_accept, watcher(i), adaptation)
                for i in [i for i, s in running.items() if _finished(s)]:
                    traces[i] = running.pop(i).wait()
                    done_draws[i] = draws + tune
                    bar.set(sum(done_draws))
                if running:
                    _time.sleep(POLL_SECONDS)
        except BaseException:  # an error or an interrupt stops every chain still sampling
            for s in running.values():
                try:
                    s.cancel()
                except Exception:  # nutpie re-raises a chain's own failure here; the first error is the one raised
                    pass
            raise
    return traces


def _chain_on_worker(model, seed, draws, tune, target_accept, adaptation=None) -> tuple[xr.DataTree, float, float, bool]:
    """One chain on a Dask worker: (trace, compile seconds, sampling seconds, whether it compiled anew)."""
    from .compiled import process_cache

    t0 = _time.perf_counter()
    compiled, new = process_cache().compile(model)
    t1 = _time.perf_counter()
    trace = _start(compiled, seed, draws, tune, target_accept, adaptation=adaptation).wait()
    return trace, t1 - t0, _time.perf_counter() - t1, new


def sample_on_cluster(model, seeds: list[int], scheduler, *, draws: int, tune: int, target_accept: float,
                      progress: bool = True, adaptation: str | None = None) -> tuple[list[xr.DataTree], dict]:
    """Each chain's trace, sampled as a task on the cluster at ``scheduler``; and what the workers reported."""
    from .cluster import connect

    with connect(scheduler) as client:
        model_f = client.scatter(model, broadcast=True)  # the data, once per worker
        tag = f"{os.getpid()}-{_time.time_ns()}"
        futures = [client.submit(_chain_on_worker, model_f, s, draws, tune, target_accept, adaptation, pure=False,
                                 key=f"bayescrt-chain-{i}-{tag}") for i, s in enumerate(seeds)]
        results: list = [None] * len(seeds)
        with Bar(f"sampling {len(seeds)} chains on {client.scheduler.address}", "chains", len(seeds),
                 enabled=progress) as bar:
            pending = dict(enumerate(futures))
            try:
                while pending:
                    for i in [i for i, f in pending.items() if f.done()]:
                        results[i] = pending.pop(i).result()
                        bar.advance()
                    if pending:
                        _time.sleep(0.2)
            except BaseException:
                client.cancel(list(pending.values()))
                raise
        address = client.scheduler.address
    report = {"scheduler": address,
              "compile_seconds": round(max(r[1] for r in results), 3),
              "sampling_seconds": round(max(r[2] for r in results), 3),  # the longest task's
              "compiled": "new" if any(r[3] for r in results) else "reused"}
    return [r[0] for r in results], report


def combine(traces: list[xr.DataTree]) -> xr.DataTree:
    """One DataTree with ``posterior`` and ``sample_stats``, the chains numbered 0, 1, ... in the given order."""
    groups = {}
    for name in ("posterior", "sample_stats"):
        parts = [t[name].to_dataset() for t in traces]
        ds = xr.concat(parts, dim="chain", coords="minimal", compat="override", join="exact")
        groups[name] = ds.assign_coords(chain=np.arange(len(traces)))
    stats = groups["sample_stats"]
    groups["sample_stats"] = stats.drop_vars([v for v in stats.data_vars if stats[v].dtype == object])
    return xr.DataTree.from_dict(groups)
