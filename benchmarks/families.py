"""The three PH families at N = 8,880 and 100,000, and the piecewise model's memory against its interval count.

Each fit runs in its own process (so peak memory is its own), 4 chains x 1000 draws, on the
registry-like cohort of cox_scaling.py (times in days, many ties). Prints compile and sampling
time, min bulk ESS, ESS per second and peak resident memory, with the ratio to the Cox fit at
the same N. Then the piecewise-exponential model at N = 100,000 with 8 and with 64 intervals (50 draws: only memory is compared):
its memory must not grow with intervals x N (the likelihood uses two gathers per row, never a
person-period expansion).

Run: PYTHONPATH=$PWD python benchmarks/families.py [--n 8880 100000] [--intervals-only]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))


def one(family: str, n: int, intervals: int, draws: int = 1000) -> dict:
    import bayescrt as bc
    from cox_scaling import simulate

    df = simulate(n)
    covs = [c for c in df.columns if c not in ("days", "died")]
    est = {"CoxPH": bc.CoxPH(), "WeibullPH": bc.WeibullPH(),
           "PiecewiseExponentialPH": bc.PiecewiseExponentialPH(n_intervals=intervals)}[family]
    fit = est.fit(df, time="days", event="died", covariates=covs, random_seed=1, progress=False, draws=draws,
                  tune=draws)
    s, rep = fit.sampling, fit.diagnostics()
    ess = float(rep.parameters["ess_bulk"].min())
    return {"family": family, "n": n, "intervals": intervals if family == "PiecewiseExponentialPH" else None,
            "compile_s": s["compile_seconds"], "sampling_s": s["sampling_seconds"], "min_bulk_ess": round(ess),
            "ess_per_s": round(ess / s["sampling_seconds"], 1),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "diagnostics_ok": rep.ok}


def run(family, n, intervals=8, draws=1000):
    out = subprocess.run([sys.executable, __file__, "--child", family, str(n), str(intervals), str(draws)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="*", default=[8_880, 100_000])
    ap.add_argument("--intervals-only", action="store_true", help="only the 8 vs 64 interval memory comparison")
    ap.add_argument("--interval-draws", type=int, default=50,
                    help="draws (and tuning steps) per chain of the interval comparison (memory does not depend on it)")
    args = ap.parse_args()
    big = max(args.n)
    if not args.intervals_only:
        families(args.n)
    mem = pd.DataFrame([run("PiecewiseExponentialPH", big, j, args.interval_draws) for j in (8, 64)])
    print(f"\npiecewise exponential at N = {big:,}, 4 chains x {args.interval_draws} draws: 8 vs 64 intervals\n"
          + mem[["intervals", "compile_s", "sampling_s", "peak_mb", "diagnostics_ok"]].to_string(index=False))


def families(ns) -> None:
    rows = [run(f, n) for n in ns for f in ("CoxPH", "WeibullPH", "PiecewiseExponentialPH")]
    tab = pd.DataFrame(rows)
    cox = tab[tab.family == "CoxPH"].set_index("n")["sampling_s"]
    tab["sampling_vs_cox"] = (tab["sampling_s"] / tab["n"].map(cox)).round(2)
    print("\n" + tab.to_string(index=False))


if __name__ == "__main__":
    main()
