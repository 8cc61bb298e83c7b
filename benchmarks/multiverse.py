"""The 64-cell Danish multiverse (SYNTHETIC cohort): wall time, compilations, and the same grid on Dask.

    python benchmarks/multiverse.py                  # in this process: 64 cells, 4 chains x 1000 draws, tune 500
    python benchmarks/multiverse.py --cluster 2      # then again on a LocalCluster of 2 worker processes

The reference, in the same process: a plain CoxPH fit of the full set (the second of two, so that its
compilation is cached), whose time times 64 is what 64 separate fits would cost after their compilation.
With --cluster the cells are fitted again by the workers and every cell's draws are compared with the
in-process ones.
"""

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

import bayescrt as bc
from bayescrt.analysis import simulate_cohort
from bayescrt.spec import load_spec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", type=int, default=0, help="also run on a LocalCluster of this many workers")
    ap.add_argument("--draws", type=int, default=None)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    spec = load_spec("danish")
    sec = spec.multiverse
    draws = args.draws or sec["draws"]
    kw = dict(time="years", event="died", exposure="upgrade", always=sec["always"], candidates=sec["candidates"],
              draws=draws, tune=sec["tune"], chains=sec["chains"], random_seed=sec["random_seed"], progress=False)
    cohort = simulate_cohort(spec)
    full = [*sec["always"], *sec["candidates"]]
    for _ in range(2):
        t0 = time.perf_counter()
        bc.CoxPH().fit(cohort, time="years", event="died", covariates=["upgrade", *full], draws=draws,
                       tune=sec["tune"], chains=sec["chains"], random_seed=1, progress=False, log_likelihood=True)
        ref = time.perf_counter() - t0
    print(f"reference: a plain fit of the full set (compiled) {ref:.2f} s; x 64 = {64 * ref:.1f} s")
    t0 = time.perf_counter()
    here = bc.multiverse(cohort, out=tempfile.mkdtemp(), **kw)
    wall = time.perf_counter() - t0
    secs = [r["seconds"] for r in here.results.values()]
    print(f"in this process: {wall:.1f} s for {len(here.cells)} cells ({wall / (64 * ref):.2f} x 64 plain fits), "
          f"{here.compilations} compilation(s), every cell ok: {here.ok}; cell compile + sampling median "
          f"{np.median(secs):.2f} s, first {secs[0]:.2f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = here.attribution()
    print(f"attribution: {a['contribution'].round(4).to_dict()}; sum {a['contribution'].sum():+.4f}, shift "
          f"{a.attrs['total']:+.4f}")
    if args.cluster:
        import distributed

        with distributed.LocalCluster(n_workers=args.cluster, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            t0 = time.perf_counter()
            there = bc.multiverse(cohort, out=tempfile.mkdtemp(), scheduler=client, **kw)
            wall_d = time.perf_counter() - t0
        same = all(np.array_equal(here.results[c.id]["draws"], there.results[c.id]["draws"]) for c in here.cells)
        rel = max(float(np.max(np.abs(there.results[c.id]["elpd_i"] / here.results[c.id]["elpd_i"] - 1)))
                  for c in here.cells)
        t_here, t_there = here.table(), there.table()
        cols = [c for c in t_here.columns if c != "elpd_loo"]
        print(f"LocalCluster of {args.cluster} workers: {wall_d:.1f} s, {there.compilations} compilation(s); every "
              f"cell's draws identical: {same}; table identical but ELPD: {t_here[cols].equals(t_there[cols])}; "
              f"largest relative ELPD difference {rel:.1e}; stacking weights differ by at most "
              f"{float(np.max(np.abs(here.weights() - there.weights()))):.1e}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
