"""Time per sensitivity-grid cell after the first, at N = 8,880 (the SYNTHETIC Danish cohort).

One grid of cells that share one model structure (a family and the full covariate set, under the
named priors and two data subsets), run serially in this process: the first cell pays the
compilation, the others reuse it. Reference in the same process: the same cell fitted with a plain
``fit`` (which compiles). Prints per-cell wall time (fit, per-draw log-likelihood, save), the
compilations made, min bulk ESS of the exposure, and the ratio of a reused cell to the plain fit.

Run: PYTHONPATH=$PWD python benchmarks/sensitivity.py [--family CoxPH] [--draws 1000 --tune 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="CoxPH", choices=["CoxPH", "WeibullPH", "PiecewiseExponentialPH"])
    ap.add_argument("--draws", type=int, default=None, help="default: the spec's [sensitivity] draws")
    ap.add_argument("--tune", type=int, default=None)
    args = ap.parse_args()

    import bayescrt as bc
    from bayescrt.analysis import simulate_cohort
    from bayescrt.sensitivity import Grid, run
    from bayescrt.spec import load_spec

    spec = load_spec("danish")
    df = simulate_cohort(spec)
    over = {k: v for k, v in (("draws", args.draws), ("tune", args.tune)) if v is not None}
    grid = Grid.from_spec(spec, families=[args.family], covariate_sets={"full": spec.covariate_sets["full"]},
                          subsets={"all": [], "age_under_80": [["age", "<", 80]]}, **over)
    print(f"SYNTHETIC cohort N = {len(df):,}; {len(grid.cells())} cells of one structure ({args.family}, full set); "
          f"{grid.chains} chains x {grid.draws} draws, {grid.tune} tuning")
    t0 = time.perf_counter()
    plain = getattr(bc, args.family)().fit(df, time=grid.time, event=grid.event,
                                          covariates=[grid.exposure, *grid.covariate_sets["full"]],
                                          draws=grid.draws, tune=grid.tune, chains=grid.chains, random_seed=1,
                                          progress=False)
    t_plain = time.perf_counter() - t0
    print(f"reference: plain fit {t_plain:.1f} s (compile {plain.sampling['compile_seconds']:.1f} s, "
          f"sampling {plain.sampling['sampling_seconds']:.1f} s)")
    with tempfile.TemporaryDirectory() as out:
        res = run(grid, out, data=df, progress=False)
        cells = list(res.manifest["cells"].values())
        tab = res.table()
        ess = [float(res.fit(cid).diagnostics().parameters["ess_bulk"].min()) for cid in tab.index]
    secs = [c["seconds"] for c in cells]
    later = [c["seconds"] for c in cells if c["compiled"] == "reused"]
    print(f"{'cell':55s} {'seconds':>8s} {'compile':>8s} {'sampling':>8s}")
    for cid, c in res.manifest["cells"].items():
        print(f"{cid:55s} {c['seconds']:8.2f} {c['compile_seconds']:8.2f} {c['sampling_seconds']:8.2f}")
    print(f"\ncompilations: {res.compilations} for {len(cells)} cells")
    print(f"first cell: {secs[0]:.2f} s; cells after the first: median {np.median(later):.2f} s, "
          f"max {max(later):.2f} s (ratio to the plain fit {np.median(later) / t_plain:.2f})")
    print(f"min bulk ESS over cells: {min(ess):.0f}; all diagnostics ok: {bool(tab['diagnostics_ok'].all())}")


if __name__ == "__main__":
    main()
