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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
