"""The chains of one Cox fit on a Dask LocalCluster against the same fit in this process.

    python benchmarks/dask_chains.py              # N = 50,000
    python benchmarks/dask_chains.py --n 8880

One fit in this process, then the same fit (same seed) with ``scheduler=`` the address of a
LocalCluster of two worker processes with one thread each, started before the clock. On one
machine the cluster cannot be faster (the same cores); what it measures is the price of sending
the model once per worker and compiling it there, and that the draws are the same. The cluster is
used twice: the second fit finds the workers' compilations in their process caches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cox_scaling import simulate  # noqa: E402
from speed import COVS  # noqa: E402


def main() -> None:
    import distributed

    import bayescrt as bc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    args = ap.parse_args()
    df = simulate(args.n)
    kw = dict(time="days", event="died", covariates=COVS, draws=1000, tune=1000, chains=4, random_seed=1,
              progress=False, log_likelihood=False)
    t0 = time.perf_counter()
    local = bc.CoxPH().fit(df, **kw)
    t_local = time.perf_counter() - t0
    print(f"N = {args.n:,}: here {t_local:.1f} s (compile {local.sampling['compile_seconds']:.1f} s, "
          f"sampling {local.sampling['sampling_seconds']:.1f} s)", flush=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        for run in ("first", "second"):
            t0 = time.perf_counter()
            remote = bc.CoxPH().fit(df, scheduler=cl.scheduler_address, **kw)
            t = time.perf_counter() - t0
            same = all(np.array_equal(local.idata.posterior[v].values, remote.idata.posterior[v].values)
                       for v in local.idata.posterior.data_vars)
            s = remote.sampling
            print(f"  on 2 workers, {run} fit: {t:.1f} s (worker compile {s['compile_seconds']:.1f} s, "
                  f"sampling {s['sampling_seconds']:.1f} s); draws equal to here: {same}", flush=True)


if __name__ == "__main__":
    main()
