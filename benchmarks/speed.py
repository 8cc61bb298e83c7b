"""Every row of the speed table, with lifelines' CoxPHFitter on the same data in the same process.

    python benchmarks/speed.py --n 8880           # first and second fit, Weibull, piecewise, frailty, grid cell
    python benchmarks/speed.py --n 50000          # first fit and the parametric families
    python benchmarks/speed.py --n 1000000 --cox-only --one-fit
    python benchmarks/speed.py --sampler laplace  # the same rows by Laplace importance sampling (bayescrt.laplace)
    python benchmarks/speed.py --sampler nutpie-jax --n 1000000 10000000 --cox-only --one-fit   # on a GPU machine

Each size runs in a fresh process (the first fit's compilation is a fresh process's, and peak
memory is its own). The reference is lifelines' ``CoxPHFitter`` (Efron ties, the same nine
covariates) fitted in the same process just before and twice after; every ratio is bayescrt's total time
(validation, MLE, compilation, sampling, diagnostics, stored log-likelihood) over the median of lifelines' three.
4 chains x 1000 draws after 1000 tuning steps, nutpie, 2 cores; with ``--sampler laplace`` every fit and grid
cell draws 4 x 1000 by importance sampling from the Laplace approximation (no tuning; the piecewise and
frailty fits through the proposal integrated over their one hierarchy scale). ``grad_ms`` is one evaluation of
the log density and its gradient as the sampler's numba backend computes it; ``bytes_per_grad``
what it must read at least (the covariates, the risk-set arrays and the per-row vectors of the
kernel), and ``GB/s`` that over the gradient's time beside a large numpy copy measured in the
same run (the machine's achievable bandwidth).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cox_scaling import simulate  # noqa: E402

COVS = ["upgrade", "age", "male", "diabetes", "hypertension", "ihd", "af", "copd", "ckd"]
RUN = dict(draws=1000, tune=1000, chains=4, progress=False)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _fit_row(name, fit, seconds, lifelines_s) -> dict:
    s, rep = fit.sampling, fit.diagnostics()
    ess = float(rep.parameters["ess_bulk"].min())
    return {"case": name, "total_s": round(seconds, 2), "compile_s": s["compile_seconds"],
            "sampling_s": s["sampling_seconds"], "over_lifelines": round(seconds / lifelines_s, 1),
            "min_bulk_ess": round(ess), "ess_per_total_s": round(ess / seconds), "diagnostics_ok": rep.ok}


def _gradient(df, n_events, sampler="nutpie") -> dict:
    """One log-density gradient of the Cox model against the machine's copy bandwidth: the numba backend's, or with
    ``sampler="nutpie-jax"`` the function nutpie's JAX backend calls (on JAX's default device, results copied
    back to the host as sampling does), beside it."""
    import bayescrt as bc

    est = bc.CoxPH()
    model = est.build(est.prepare(df, time="days", event="died", covariates=COVS))[0]
    import pytensor

    logp = model.logp()
    fn = pytensor.function(model.value_vars, [logp, *pytensor.grad(logp, model.value_vars)], mode="NUMBA")
    x = np.zeros(len(COVS))
    fn(x)
    reps = max(5, int(2e6 // len(df)))
    _, secs = _timed(lambda: [fn(x) for _ in range(reps)])
    grad_s = secs / reps
    extra = {}
    if sampler == "nutpie-jax":
        from bayescrt.compiled import compile_jax
        from bayescrt.families.fused_jax import register

        register()
        compiled = compile_jax(model)
        jax_fn, shared = compiled._make_logp_func(), compiled._shared_data
        jax_fn(x, **shared)  # traced and compiled by XLA on the first call
        _, jax_secs = _timed(lambda: [jax_fn(x, **shared) for _ in range(reps)])
        import jax

        extra = {"jax_grad_ms": round(jax_secs / reps * 1e3, 3), "jax_device": str(jax.devices()[0])}
    n, p = len(df), len(COVS)
    # covariates read twice (eta, then X.T @ grad), 5 risk-set integers and 3 values per event,
    # and the kernel's per-row vectors (eta, r, R, grad) written and read once each
    need = 2 * n * p * 8 + n_events * (5 * 4 + 3 * 8) + 4 * 2 * n * 8
    big = np.ones(max(n * p, 2 ** 24))
    dst = np.empty_like(big)
    np.copyto(dst, big)
    _, copy_s = _timed(lambda: [np.copyto(dst, big) for _ in range(5)])
    copy_gbs = 2 * big.nbytes * 5 / copy_s / 1e9  # read + write
    return {"grad_ms": round(grad_s * 1e3, 3), "bytes_per_grad_MB": round(need / 1e6, 1),
            "grad_GBps": round(need / grad_s / 1e9, 2), "numpy_copy_GBps": round(copy_gbs, 2), **extra}


def one(n: int, cox_only: bool, one_fit: bool = False, sampler: str = "nutpie") -> dict:
    import bayescrt as bc
    from lifelines import CoxPHFitter

    df = simulate(n)
    _, lifelines_s = _timed(lambda: CoxPHFitter().fit(df, "days", "died"))
    kw = dict(time="days", event="died", covariates=COVS, **RUN)
    tag = "" if sampler == "nutpie" else f" [{sampler}]"
    rows = []
    first, s = _timed(lambda: bc.CoxPH(sampler=sampler).fit(df, random_seed=1, **kw))
    rows.append(_fit_row(f"Cox, first fit (compile included){tag}", first, s, lifelines_s))
    if not one_fit:
        second, s = _timed(lambda: bc.CoxPH(sampler=sampler).fit(simulate(n, seed=2), random_seed=2, **kw))
        rows.append(_fit_row(f"Cox, second fit of the structure{tag}", second, s, lifelines_s))
    if not cox_only:
        for fam in ("WeibullPH", "PiecewiseExponentialPH"):
            fit, s = _timed(lambda: getattr(bc, fam)(sampler=sampler).fit(df, random_seed=1, **kw))
            rows.append(_fit_row(f"{fam}, first fit{tag}", fit, s, lifelines_s))
    if n <= 20_000 and not cox_only:
        from frailty import clustered

        cdf = clustered(n, 50, 0.3, 3)
        # like with like: the frailty model's first fit against the plain model's first fit (rows[0], both compile
        # their structure); its later fits against the plain model's on the same data (both reuse their
        # structure), three of each in turn on three data sets, each row the median fit of its three: one fit of
        # 0.4-0.6 s moves by a fifth from one run to the next on a shared 2-core machine
        frail, s = _timed(lambda: bc.CoxPH(sampler=sampler).fit(cdf, cluster="centre", random_seed=4, **kw))
        first_frail = _fit_row(f"Cox + frailty, 50 clusters (first fit){tag}", frail, s, lifelines_s)
        first_frail["over_plain_cox"] = round(s / rows[0]["total_s"], 2)
        first_frail["sampling_over_plain"] = round(frail.sampling["sampling_seconds"]
                                                   / first.sampling["sampling_seconds"], 2)
        del frail
        plains, frails = [], []  # each fit's row made at once and the fit let go: the peak is one fit's
        for k in (5, 7, 9):
            data = clustered(n, 50, 0.3, k)
            fit, s = _timed(lambda: bc.CoxPH(sampler=sampler).fit(data, random_seed=k + 1, **kw))
            plains.append((s, _fit_row(f"Cox on the clustered data (median of 3){tag}", fit, s, lifelines_s)))
            fit, s = _timed(lambda: bc.CoxPH(sampler=sampler).fit(data, cluster="centre", random_seed=k + 1, **kw))
            frails.append((s, _fit_row(f"Cox + frailty, 50 clusters (later fit, median of 3){tag}", fit, s,
                                       lifelines_s)))
            del fit
        (s_plain, plain), (s, again) = (sorted(r, key=lambda p: p[0])[1] for r in (plains, frails))
        rows += [plain, first_frail, again]
        again["over_plain_cox"] = round(s / s_plain, 2)  # of the unrounded medians
        # the sampling of the median fits (by total time)
        again["sampling_over_plain"] = round(again["sampling_s"] / plain["sampling_s"], 2)
        rows.extend(_grid_cells(df, lifelines_s, sampler))
    # lifelines' time moves by a third from one fit to the next (1.84-2.95 s at N = 1,000,000): two more fits after
    # ours, and every ratio over the median of the three (the first one before ours, which therefore finds the
    # process as a first fit of the package would)
    runs = [lifelines_s] + [_timed(lambda: CoxPHFitter().fit(df, "days", "died"))[1] for _ in range(2)]
    lifelines_s = float(np.median(runs))
    for row in rows:
        row["over_lifelines"] = round(row["total_s"] / lifelines_s, 1)
    out = {"n": n, "events": int(df["died"].sum()), "lifelines_s": round(lifelines_s, 2),
           "lifelines_runs": [round(r, 2) for r in runs], "rows": rows,
           **_gradient(df, int(df["died"].sum()), sampler)}
    out["peak_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def _grid_cells(df, lifelines_s, sampler="nutpie") -> list[dict]:
    """Seconds per sensitivity-grid cell after the first: one structure, three priors, per family."""
    from bayescrt.sensitivity import Grid, run

    rows = []
    for fam in ("CoxPH", "WeibullPH"):
        grid = Grid(time="days", event="died", exposure="upgrade", covariate_sets={"full": COVS[1:]},
                    priors=["neutral", "sceptical", "enthusiastic"], families=[{"family": fam, "sampler": sampler}],
                    random_seed=5)
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run(grid, folder, data=df, progress=False)
            cells = list(res.manifest["cells"].values())
        later = [c["seconds"] for c in cells if c["compiled"] == "reused"]
        rows.append({"case": f"grid cell after the first, {fam}" + ("" if sampler == "nutpie" else f" [{sampler}]"),
                     "total_s": round(float(np.median(later)), 2),
                     "over_lifelines": round(float(np.median(later)) / lifelines_s, 1),
                     "cells": len(cells), "compilations": res.compilations})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="*", default=[8_880, 50_000])
    ap.add_argument("--cox-only", action="store_true", help="only the Cox fits (for N = 1,000,000)")
    ap.add_argument("--one-fit", action="store_true", help="only the first Cox fit (N = 1,000,000 takes minutes per fit)")
    ap.add_argument("--sampler", choices=["nutpie", "laplace", "nutpie-jax"], default="nutpie",
                    help="the sampler of every fit and grid cell")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        # the default install, which has neither JAX nor Dask (the jax and dask extras; the test extra has both); None
        # in sys.modules is Python's own way to say a module is absent. Where JAX is installed, arviz's import of its
        # NumPyro converter imports it (lazy_loader's stack inspection touches the lazy module): ArviZ's statistics
        # took 1.6-2.2 s on the prefetch helper of a first fit, 1.0-1.5 s without. Where Dask is installed, xarray's
        # first Dataset imports dask.array: 0.3-0.45 s more (bayescrt.prefetch)
        sys.modules["dask"] = sys.modules["distributed"] = None
        if args.sampler != "nutpie-jax":
            sys.modules["jax"] = sys.modules["jaxlib"] = None
        print(json.dumps(one(args.n[0], args.cox_only, args.one_fit, args.sampler)))
        return
    import os

    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores")
    for n in args.n:
        cmd = [sys.executable, __file__, "--child", "--n", str(n)] + (["--cox-only"] if args.cox_only else []) \
            + (["--one-fit"] if args.one_fit else []) + ["--sampler", args.sampler]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        jax_grad = f"; under JAX on {res['jax_device']} {res['jax_grad_ms']} ms" if "jax_grad_ms" in res else ""
        print(f"\nN = {res['n']:,} ({res['events']:,} events); lifelines {res['lifelines_s']} s (median of "
              f"{', '.join(map(str, res['lifelines_runs']))}); peak {res['peak_MB']} MB; "
              f"gradient {res['grad_ms']} ms reading >= {res['bytes_per_grad_MB']} MB ({res['grad_GBps']} GB/s; "
              f"numpy copy {res['numpy_copy_GBps']} GB/s){jax_grad}")
        import pandas as pd

        print(pd.DataFrame(res["rows"]).set_index("case").to_string())
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
