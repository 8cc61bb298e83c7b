"""The ``bayescrt`` command line. Thin: parses arguments and calls the package."""

from __future__ import annotations

import argparse
import sys


def _quickstart(args) -> int:
    from . import CoxPH, datasets

    df = datasets.load_rossi()
    covs = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    print("bayescrt quickstart: Bayesian Cox model on the public Rossi recidivism data (432 subjects)")
    fit = CoxPH(ties="efron").fit(df, time="week", event="arrest", covariates=covs, draws=args.draws,
                                  chains=args.chains, random_seed=args.seed, progress=not args.no_progress)
    print(fit.summary())
    if args.out:
        fit.save(args.out)
        print(f"\nsaved to {args.out}")
    return 0 if fit.diagnostics().ok else 1


def _reproduce(args) -> int:
    import json
    from pathlib import Path

    from .reproduce import reproduce, write_outputs

    rep = reproduce(args.study, draws=args.draws, chains=args.chains, random_seed=args.seed,
                    progress=not args.no_progress)
    print(rep)
    if args.out:
        paths = write_outputs(rep, Path(args.out))
        print(f"\nwrote {len(paths)} files to {args.out}: " + ", ".join(p.name for p in paths))
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_json(), indent=2))
        print(f"wrote {args.json}")
    ok = all(f.diagnostics().ok for f in rep.fits.fits.values())
    if not ok:
        print("\nAT LEAST ONE FIT FAILED ITS DIAGNOSTICS: its row cannot be trusted (see the diagnostic report).")
    return 0 if ok else 1


def _calibrate(args) -> int:
    from .calibrate import calibrate, to_toml, write
    from .spec import load_spec

    spec = load_spec(args.study)
    print(f"calibrating the SYNTHETIC cohort of spec {spec.name!r} to its published targets ...")
    record = calibrate(spec, factor=args.factor)
    print(to_toml(record))
    print(f"written to {write(spec, record)}")
    return 0


def _published(args) -> int:
    import json

    from . import published

    if args.action == "list":
        tab = published.list()
        if args.json:
            print(json.dumps(tab.reset_index().to_dict(orient="records"), indent=2, default=str))
        else:
            import pandas as pd

            cols = ["endpoint", "estimand", "comparison", "value", "lower", "upper", "p_value", "n_exposed",
                    "n_reference", "verified"]
            with pd.option_context("display.width", 200, "display.max_colwidth", 40, "display.max_rows", None):
                print(tab[cols].to_string(na_rep=""))
            print("\nEffects are stored as exposed vs reference (upgrade vs de novo unless the comparison says "
                  "otherwise).")
        return 0
    if args.action == "show":
        if not args.id:
            print("bayescrt published show: name a study id (see `bayescrt published list`)", file=sys.stderr)
            return 2
        print(published.get(args.id))
        return 0
    problems = published.check()
    for p in problems.itertuples():
        where = p.study + (f"/{p.result}" if p.result else "")
        print(f"[{p.severity}] {where} ({p.check}): {p.message}")
    n = len(published.studies())
    print(f"\n{len(problems)} problem(s) in {n} studies "
          f"({(problems['severity'] == 'error').sum()} errors, {(problems['severity'] == 'warning').sum()} warnings).")
    return 0


def _reanalyse(args) -> int:
    import json

    from .published.reanalyse import reanalyse

    rep = reanalyse(args.id, draws=args.draws, random_seed=args.seed, correlation=args.correlation,
                    events=args.events)
    print(json.dumps(rep.to_json(), indent=2) if args.json else rep)
    return 0


def _sensitivity(args) -> int:
    from pathlib import Path

    from .sensitivity import run

    over = {k: v for k, v in (("draws", args.draws), ("tune", args.tune), ("chains", args.chains)) if v is not None}
    res = run(args.spec, args.out, scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress,
              **over)
    print(res)
    tab = res.table()
    tab.to_csv(Path(args.out) / "table.csv")
    import matplotlib

    matplotlib.use("Agg")
    ax = res.plot()
    ax.figure.savefig(Path(args.out) / "forest.png", dpi=120, bbox_inches="tight")
    print(f"\nwrote {args.out}/table.csv, {args.out}/forest.png and {args.out}/manifest.json")
    if not tab["diagnostics_ok"].all():
        bad = list(tab.index[~tab["diagnostics_ok"]])
        print(f"\n{len(bad)} CELL(S) FAILED THEIR DIAGNOSTICS and cannot be trusted: {bad}")
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bayescrt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="fit the Cox model to the bundled Rossi data and print the HR table")
    q.add_argument("--draws", type=int, default=1000)
    q.add_argument("--chains", type=int, default=4)
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--out", help="save the fit as NetCDF here")
    q.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")
    q.set_defaults(func=_quickstart)
    r = sub.add_parser("reproduce", help="Bayesian re-analysis of a published study on its synthetic cohort")
    r.add_argument("study", help="spec name (e.g. danish) or path to a spec .toml")
    r.add_argument("--draws", type=int, help="draws per chain (and tuning steps); default from the spec")
    r.add_argument("--chains", type=int, help="number of chains; default from the spec")
    r.add_argument("--seed", type=int, help="random seed; default from the spec")
    r.add_argument("--out", help="folder for NetCDF fits, table.csv, forest.png and the diagnostic report")
    r.add_argument("--json", help="write the table as JSON here")
    r.add_argument("--no-progress", action="store_true", help="hide the sampling progress bars")
    r.set_defaults(func=_reproduce)
    c = sub.add_parser("calibrate", help="recompute a synthetic cohort's calibration (writes <spec>.calibration.toml)")
    c.add_argument("study", help="spec name (e.g. danish) or path to a spec .toml")
    c.add_argument("--factor", type=int, default=8, help="cohort size multiple used to meet targets in expectation")
    c.set_defaults(func=_calibrate)
    p = sub.add_parser("published", help="the registry of published results: list, show one study, check consistency")
    p.add_argument("action", choices=["list", "show", "check"])
    p.add_argument("id", nargs="?", help="study id (for show)")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(func=_published)
    a = sub.add_parser("reanalyse", help="Bayesian re-analysis of a study's published summaries")
    a.add_argument("id", help="study id in the registry (see `bayescrt published list`)")
    a.add_argument("--json", action="store_true", help="print JSON instead of the report")
    a.add_argument("--draws", type=int, default=20_000, help="Monte Carlo draws from each exact posterior")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--correlation", type=float, help="within-patient correlation for changes in means")
    a.add_argument("--events", type=float, help="number of events behind a bare p-value")
    a.set_defaults(func=_reanalyse)
    g = sub.add_parser("sensitivity", help="fit a spec's sensitivity grid (resumes an interrupted run in --out)")
    g.add_argument("spec", help="spec name (e.g. danish) or path to a spec .toml with a [sensitivity] section")
    g.add_argument("--out", required=True, help="folder for cells/*.nc, manifest.json, table.csv and forest.png")
    g.add_argument("--scheduler", help="address of a dask.distributed scheduler (e.g. tcp://host:8786)")
    g.add_argument("--workers", type=int, default=1, help="local processes when no scheduler is given")
    g.add_argument("--draws", type=int, help="draws per chain; default from the spec")
    g.add_argument("--tune", type=int, help="tuning steps per chain; default from the spec")
    g.add_argument("--chains", type=int, help="chains per cell; default from the spec")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.set_defaults(func=_sensitivity)
    args = parser.parse_args(argv)
    from .errors import SpecError

    try:
        return args.func(args)
    except SpecError as err:  # unknown registry ids are SpecErrors too
        print(f"bayescrt {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
