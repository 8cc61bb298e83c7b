"""Cox fit cost against N: compile time, sampling time, ESS per second, peak memory, and lifelines.

    python benchmarks/cox_scaling.py                 # N = 8,880, 100,000, 1,000,000
    python benchmarks/cox_scaling.py --n 8880        # one size

Each N runs in a fresh subprocess so that its peak memory (ru_maxrss) is its own.
lifelines' CoxPHFitter runs on the same data in the same process, after the
Bayesian fit, as the reference: the printed ratio is Bayesian sampling time
over lifelines' fit time. 4 chains x 1000 draws (1000 tuning), nutpie, Efron
ties, 9 covariates; the pointwise log-likelihood is not stored at N >= 100,000
(it would not fit in memory; the fit's default skips it above 500 MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd


def simulate(n: int, seed: int = 0) -> pd.DataFrame:
    """Nine covariates (like the Danish registry's), Weibull baseline, ~45% events, days as time unit."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.random(n) < 0.25,  # upgrade
        rng.normal(70, 10, n),  # age
        rng.random(n) < 0.77,  # male
        rng.random(n) < 0.33,  # diabetes
        rng.random(n) < 0.62,  # hypertension
        rng.random(n) < 0.6,  # ihd
        rng.random(n) < 0.4,  # af
        rng.random(n) < 0.12,  # copd
        rng.random(n) < 0.08,  # ckd
    ]).astype(float)
    beta = np.array([0.03, 0.04, 0.4, 0.25, -0.05, 0.2, 0.3, 0.4, 0.5])
    eta = (X - X.mean(0)) @ beta
    t = (-np.log(rng.random(n)) / (0.12 * np.exp(eta))) ** (1 / 1.1) * 365.25
    c = rng.uniform(0, 10 * 365.25, n)
    cols = ["upgrade", "age", "male", "diabetes", "hypertension", "ihd", "af", "copd", "ckd"]
    df = pd.DataFrame(X, columns=cols)
    df["days"] = np.ceil(np.minimum(t, c))  # whole days: many ties, as in registry data
    df["died"] = (t <= c).astype(int)
    return df


def one(n: int, draws: int, chains: int) -> dict:
    import bayescrt as bc

    df = simulate(n)
    covs = [c for c in df.columns if c not in ("days", "died")]
    fit = bc.CoxPH().fit(df, time="days", event="died", covariates=covs, draws=draws, tune=draws, chains=chains,
                         random_seed=1, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = fit.sampling
    ess = float(fit.diagnostics().parameters["ess_bulk"].min())
    # cost of one log-density gradient, as the sampler's numba backend computes it
    model = bc.CoxPH().build(bc.CoxPH().prepare(df, time="days", event="died", covariates=covs))[0]
    dlogp = model.compile_dlogp(mode="NUMBA")
    z = {v.name: np.zeros(len(covs)) for v in model.value_vars}
    dlogp(z)
    t0 = time.perf_counter()
    for _ in range(20):
        dlogp(z)
    grad_ms = (time.perf_counter() - t0) / 20 * 1e3
    from lifelines import CoxPHFitter

    t0 = time.perf_counter()
    CoxPHFitter().fit(df, "days", "died")
    lifelines_s = time.perf_counter() - t0
    return {
        "n": n, "events": int(df["died"].sum()), "compile_s": s["compile_seconds"], "sampling_s": s["sampling_seconds"],
        "grad_ms": round(grad_ms, 2), "mean_tree_depth": round(float(fit.idata["sample_stats"]["depth"].mean()), 2)
        if "depth" in fit.idata["sample_stats"] else None,
        "min_bulk_ess": round(ess), "ess_per_s": round(ess / s["sampling_seconds"], 1), "peak_mb": round(peak_mb),
        "lifelines_s": round(lifelines_s, 2), "sampling_over_lifelines": round(s["sampling_seconds"] / lifelines_s, 1),
        "diagnostics_ok": fit.diagnostics().ok,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="*", default=[8_880, 100_000, 1_000_000])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.n[0], args.draws, args.chains)))
        return
    rows = []
    for n in args.n:
        out = subprocess.run([sys.executable, __file__, "--child", "--n", str(n), "--draws", str(args.draws),
                              "--chains", str(args.chains)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    tab = pd.DataFrame(rows).set_index("n")
    print("\n" + tab.to_string())
    if len(tab) >= 2:
        logn = np.log(tab.index.to_numpy(float))
        for col in ("grad_ms", "sampling_s"):
            slope = np.polyfit(logn, np.log(tab[col].to_numpy(float)), 1)[0]
            print(f"{col} grows as N^{slope:.2f} (log-log slope over N = {list(tab.index)})")


if __name__ == "__main__":
    main()
