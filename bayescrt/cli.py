"""The ``bayescrt`` command line. Thin: parses arguments, checks where it will write, calls the package.

Exit status: 0 success; 1 a fit failed its diagnostics (its numbers cannot be trusted); 2 an error in
the arguments, a spec, the data or a file (one line on stderr that names it and the fix); 3 an internal
error of bayescrt (one line; ``--debug`` shows the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_DIAGNOSTICS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """exit status:
  0    success
  1    at least one fit failed its convergence diagnostics: its numbers cannot be trusted
  2    an error in the arguments, a spec, the data or a file (one line on stderr names it and the fix)
  3    an internal error of bayescrt (rerun with --debug for the traceback, and report it)
  130  interrupted (Ctrl-C)"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the argument and the fix) and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _count(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"{v} is out of range: give an integer "
                                             + (f"in [{low}, {high}]" if high is not None else f">= {low}"))
        return v
    return parse


def _number(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """An argparse type: a finite number within the bounds."""
    import math

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        bad = not math.isfinite(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high)
        if bad:
            rng = (f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}" if math.isfinite(high)
                   else f"{'>' if low_open else '>='} {low:g}")
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a finite number {rng}")
        return v
    return parse


def _seed(text: str) -> int:
    from .validation import SEED_MAX

    return _count(0, SEED_MAX)(text)


def _quickstart(args) -> int:
    from .validation import output_file

    if args.out is not None:
        output_file(args.out, "--out")
    from . import CoxPH, datasets

    df = datasets.load_rossi()
    covs = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    print("bayescrt quickstart: Bayesian Cox model on the public Rossi recidivism data (432 subjects)")
    fit = CoxPH(ties="efron").fit(df, time="week", event="arrest", covariates=covs, draws=args.draws,
                                  chains=args.chains, random_seed=args.seed, progress=not args.no_progress)
    print(fit.summary())
    if args.out is not None:
        fit.save(args.out)
        print(f"\nsaved to {args.out}")
    return _diagnostics_status(fit.diagnostics().ok)


def _diagnostics_status(ok: bool) -> int:
    if not ok:
        print("\nAT LEAST ONE FIT FAILED ITS DIAGNOSTICS: its numbers cannot be trusted (see the diagnostic report).")
    return EXIT_OK if ok else EXIT_DIAGNOSTICS


def _reproduce(args) -> int:
    from .validation import output_folder

    # where the results go is checked first (light imports only: under a second), the spec next, and the
    # folder is made only once both are good
    _check_outputs(args)
    from .reproduce import reproduce
    from .spec import load_spec

    load_spec(args.study)
    out = output_folder(args.out, "--out") if args.out is not None else None
    rep = reproduce(args.study, draws=args.draws, chains=args.chains, random_seed=args.seed,
                    progress=not args.no_progress, scheduler=args.scheduler)
    return _finish(rep, args, out)


def _check_outputs(args) -> None:
    """--out, --json and --report checked before anything is read or fitted (light imports: under a second)."""
    from .validation import output_file, output_folder

    if args.out is not None:
        output_folder(args.out, "--out", create=False)
    if args.json is not None:
        output_file(args.json, "--json")
    if args.report is not None:
        output_file(args.report, "--report")
        if not str(args.report).lower().endswith((".html", ".htm")):
            from .errors import SpecError

            raise SpecError(f"--report {args.report!r}: the report is one HTML file; give a name ending in .html")


def _finish(rep, args, out) -> int:
    """Print the result; write the outputs, the JSON and the report asked for; the exit status of the diagnostics."""
    import json
    from pathlib import Path

    from .reproduce import write_outputs

    print(rep)
    if out is not None:
        paths = write_outputs(rep, out)
        print(f"\nwrote {len(paths)} files to {args.out}: " + ", ".join(p.name for p in paths))
    if args.json is not None:
        Path(args.json).write_text(json.dumps(rep.to_json(), indent=2))
        print(f"wrote {args.json}")
    if args.report is not None:
        from .report import report

        print(f"wrote the report {report(rep, args.report)}")
    return _diagnostics_status(rep.diagnostics_ok)


def _analyse(args) -> int:
    from .validation import output_folder

    _check_outputs(args)
    from .extract import prepare, read_data
    from .spec import load_spec

    spec = load_spec(args.spec)
    # the spec, the file, its columns, dates and missing values checked before the folder is made or a fit
    prepare(spec, read_data(spec, args.data)[0], impute_now=False)
    out = output_folder(args.out, "--out")
    from .reproduce import analyse

    rep = analyse(spec, args.data, draws=args.draws, chains=args.chains, random_seed=args.seed,
                  progress=not args.no_progress, scheduler=args.scheduler)
    return _finish(rep, args, out)


def _calibrate(args) -> int:
    from .calibrate import calibrate, to_toml, write
    from .spec import load_spec
    from .validation import output_file

    spec = load_spec(args.study)
    output_file(spec.calibration_path, "the calibration record")
    print(f"calibrating the SYNTHETIC cohort of spec {spec.name!r} to its published targets ...")
    record = calibrate(spec, factor=args.factor)
    print(to_toml(record))
    print(f"written to {write(spec, record)}")
    return EXIT_OK


def _published(args) -> int:
    import json

    from . import published
    from .errors import SpecError

    if args.id is not None and args.action != "show":
        raise SpecError(f"published {args.action} takes no study id (got {args.id!r}); to see one study use "
                        f"`bayescrt published show {args.id}`")
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
        return EXIT_OK
    if args.action == "show":
        if not args.id:
            raise SpecError("published show: name a study id, e.g. `bayescrt published show danish` "
                            "(see `bayescrt published list`)")
        print(published.get(args.id))
        return EXIT_OK
    problems = published.check()
    for p in problems.itertuples():
        where = p.study + (f"/{p.result}" if p.result else "")
        print(f"[{p.severity}] {where} ({p.check}): {p.message}")
    n = len(published.studies())
    print(f"\n{len(problems)} problem(s) in {n} studies "
          f"({(problems['severity'] == 'error').sum()} errors, {(problems['severity'] == 'warning').sum()} warnings).")
    return EXIT_OK


def _reanalyse(args) -> int:
    import json

    from .published.reanalyse import reanalyse

    rep = reanalyse(args.id, draws=args.draws, random_seed=args.seed, correlation=args.correlation,
                    events=args.events)
    print(json.dumps(rep.to_json(), indent=2) if args.json else rep)
    return EXIT_OK


def _sensitivity(args) -> int:
    from .validation import output_folder

    output_folder(args.out, "--out", create=False)  # first, with light imports only: under a second
    from .sensitivity import Grid, run
    from .spec import load_spec

    over = {k: v for k, v in (("draws", args.draws), ("tune", args.tune), ("chains", args.chains)) if v is not None}
    Grid.from_spec(load_spec(args.spec), **over)  # a bad spec or grid is refused before the folder is made
    out = output_folder(args.out, "--out")
    res = run(args.spec, out, scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress,
              **over)
    print(res)
    tab = res.table()
    tab.to_csv(out / "table.csv")
    import matplotlib

    matplotlib.use("Agg")
    ax = res.plot()
    ax.figure.savefig(out / "forest.png", dpi=120, bbox_inches="tight")
    print(f"\nwrote {out}/table.csv, {out}/forest.png and {out}/manifest.json")
    if not tab["diagnostics_ok"].all():
        bad = list(tab.index[~tab["diagnostics_ok"]])
        print(f"\n{len(bad)} CELL(S) FAILED THEIR DIAGNOSTICS and cannot be trusted: {bad}")
        return EXIT_DIAGNOSTICS
    return EXIT_OK


def _multiverse(args) -> int:
    from .errors import SpecError
    from .validation import output_folder

    output_folder(args.out, "--out", create=False)  # first, with light imports only
    from .spec import load_spec

    if args.scheduler is not None and args.workers != 1:
        raise SpecError("--scheduler and --workers: the cells run on the scheduler's workers or in --workers local "
                        "processes; give one of them")
    spec = load_spec(args.spec)
    spec.multiverse  # a spec without the section is refused before anything is read or simulated
    from .multiverse_run import run_multiverse, write_outputs

    import matplotlib

    matplotlib.use("Agg")
    run = run_multiverse(spec, out=args.out, data=args.data, draws=args.draws, tune=args.tune, chains=args.chains,
                         random_seed=args.seed, scheduler=args.scheduler, workers=args.workers,
                         progress=not args.no_progress)
    import warnings

    from .errors import DiagnosticsWarning

    with warnings.catch_warnings():  # failures are said below, in capitals, and by the exit status
        warnings.simplefilter("ignore", DiagnosticsWarning)
        print(run.note() + "\n")
        if run.cause:
            print(run.estimand() + "\n")
        print(run.multiverse)
        att = run.multiverse.attribution()
        print(f"\nEach candidate's share of the shift in the log-HR (Shapley values; total {att.attrs['total']:+.4f}):")
        print(att.to_string(float_format="{:+.4f}".format))
        avg = run.multiverse.averaged()
        print(f"\nModel-averaged HR (stacking): {avg['hr_median']:.3f} [{avg['hr_lower']:.3f}, {avg['hr_upper']:.3f}]"
              f", P(HR > 1) = {avg['p_hr_gt_1']:.3f}. {avg.attrs['statement']}")
        ps = run.propensity()
        print("\nPropensity-score weighted fits of the exposure alone:")
        print(ps[["hr_median", "hr_lower", "hr_upper", "p_hr_gt_1", "max_smd_after", "diagnostics_ok"]]
              .to_string(float_format="{:.3f}".format))
        print(next(iter(run.weights.values())).statement)
    paths = write_outputs(run, args.out)
    print(f"\nwrote {', '.join(p.name for p in paths)} and cells/ to {args.out}")
    if not run.ok:
        print("\nDIAGNOSTICS FAILED in at least one cell or weighted fit: see diagnostics_ok in table.csv and "
              "propensity.csv; those numbers cannot be trusted")
        return EXIT_DIAGNOSTICS
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    # after the command too; SUPPRESS keeps a --debug given before the command (argparse lets a subcommand's
    # default overwrite it otherwise)
    sub_debug = _Parser(add_help=False)
    sub_debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show the full traceback of an error")
    top = _Parser(prog="bayescrt", description=__doc__.split("\n\n")[0], epilog=EPILOG, parents=[debug],
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name, help):
        return sub.add_parser(name, help=help, description=help, epilog=EPILOG, parents=[sub_debug],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    q = command("quickstart", "fit the Cox model to the bundled Rossi data and print the HR table")
    q.add_argument("--draws", type=_count(1), default=1000, help="draws per chain (default 1000)")
    q.add_argument("--chains", type=_count(1), default=4, help="number of chains (default 4)")
    q.add_argument("--seed", type=_seed, default=1, help="random seed (default 1)")
    q.add_argument("--out", help="save the fit as NetCDF here (its folder must exist)")
    q.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")
    q.set_defaults(func=_quickstart)
    r = command("reproduce", "Bayesian re-analysis of a published study on its SYNTHETIC cohort")
    r.add_argument("study", help="spec name (e.g. danish) or path to a spec .toml")
    r.add_argument("--draws", type=_count(1), help="draws per chain (and tuning steps); default from the spec")
    r.add_argument("--chains", type=_count(1), help="number of chains; default from the spec")
    r.add_argument("--seed", type=_seed, help="random seed; default from the spec")
    r.add_argument("--out", help="folder for NetCDF fits, table.csv, forest.png and the diagnostic report")
    r.add_argument("--json", help="write the table as JSON to this file (its folder must exist)")
    r.add_argument("--no-progress", action="store_true", help="hide the sampling progress bars")
    r.add_argument("--scheduler", help="run the chains on the workers of this dask.distributed scheduler "
                                       "(e.g. tcp://host:8786)")
    r.add_argument("--report", help="write one self-contained HTML report here (its folder must exist)")
    r.set_defaults(func=_reproduce)
    y = command("analyse", "fit a spec's covariate sets to the data file its [data] section names")
    y.add_argument("spec", help="path to a spec .toml with a [data] section (or a spec name, e.g. example)")
    y.add_argument("--data", help="analyse this data file instead of the one the spec names (same columns)")
    y.add_argument("--out", required=True, help="folder for NetCDF fits, table.csv, table1, missingness.csv, "
                                                "forest.png and the diagnostic report")
    y.add_argument("--report", help="write one self-contained HTML report here (its folder must exist)")
    y.add_argument("--json", help="write the table as JSON to this file (its folder must exist)")
    y.add_argument("--draws", type=_count(1), help="draws per chain (and tuning steps); default from the spec")
    y.add_argument("--chains", type=_count(1), help="number of chains; default from the spec")
    y.add_argument("--seed", type=_seed, help="random seed; default from the spec")
    y.add_argument("--no-progress", action="store_true", help="hide the sampling progress bars")
    y.add_argument("--scheduler", help="run the chains on the workers of this dask.distributed scheduler")
    y.set_defaults(func=_analyse)
    c = command("calibrate", "recompute a synthetic cohort's calibration (writes <spec>.calibration.toml)")
    c.add_argument("study", help="spec name (e.g. danish) or path to a spec .toml")
    c.add_argument("--factor", type=_count(1, 100), default=8,
                   help="cohort size multiple used to meet targets in expectation, 1-100 (default 8)")
    c.set_defaults(func=_calibrate)
    p = command("published", "the registry of published results: list, show one study, check consistency")
    p.add_argument("action", choices=["list", "show", "check"])
    p.add_argument("id", nargs="?", help="study id (for show)")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(func=_published)
    a = command("reanalyse", "Bayesian re-analysis of a study's published summaries")
    a.add_argument("id", help="study id in the registry (see `bayescrt published list`)")
    a.add_argument("--json", action="store_true", help="print JSON instead of the report")
    a.add_argument("--draws", type=_count(1000, 10_000_000), default=20_000,
                   help="Monte Carlo draws from each exact posterior, 1,000-10,000,000 (default 20,000)")
    a.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    a.add_argument("--correlation", type=_number(-1, 1, low_open=True, high_open=True),
                   help="within-patient correlation for changes in means, in (-1, 1)")
    a.add_argument("--events", type=_number(0, float("inf"), low_open=True),
                   help="number of events behind a bare p-value, > 0")
    a.set_defaults(func=_reanalyse)
    g = command("sensitivity", "fit a spec's sensitivity grid (resumes an interrupted run in --out)")
    g.add_argument("spec", help="spec name (e.g. danish) or path to a spec .toml with a [sensitivity] section")
    g.add_argument("--out", required=True, help="folder for cells/*.nc, manifest.json, table.csv and forest.png")
    g.add_argument("--scheduler", help="address of a dask.distributed scheduler (e.g. tcp://host:8786)")
    g.add_argument("--workers", type=_count(1), default=1, help="local processes when no scheduler is given")
    g.add_argument("--draws", type=_count(1), help="draws per chain; default from the spec")
    g.add_argument("--tune", type=_count(0), help="tuning steps per chain; default from the spec")
    g.add_argument("--chains", type=_count(1), help="chains per cell; default from the spec")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.set_defaults(func=_sensitivity)
    m = command("multiverse", "fit a spec's adjustment-set multiverse: every subset of its candidate confounders "
                              "(resumes an interrupted run in --out)")
    m.add_argument("spec", help="spec name (e.g. danish) or path to a spec .toml with a [multiverse] section")
    m.add_argument("--out", required=True, help="folder for cells/, the tables (CSV), the plots (PNG) and README.txt")
    m.add_argument("--data", help="fit this data file instead of the one the spec's [data] names (same columns)")
    m.add_argument("--draws", type=_count(1), help="draws per chain; default from the spec's [multiverse]")
    m.add_argument("--tune", type=_count(0), help="tuning steps per chain; default from the spec's [multiverse]")
    m.add_argument("--chains", type=_count(1), help="chains per cell; default from the spec's [multiverse]")
    m.add_argument("--seed", type=_seed, help="random seed of every cell; default from the spec")
    m.add_argument("--scheduler", help="address of a dask.distributed scheduler whose workers fit the cells")
    m.add_argument("--workers", type=_count(1), default=1, help="local processes when no scheduler is given")
    m.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    m.set_defaults(func=_multiverse)
    return top


def one_line(err: BaseException) -> str:
    """An error as one line: a DataError's problems joined by '; ', other messages' lines folded."""
    problems = getattr(err, "problems", None)
    text = "; ".join(problems) if problems else str(err)
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or type(err).__name__


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from .errors import DataError, ResultFileError, SpecError

    prog = f"bayescrt {args.command}"
    debug = getattr(args, "debug", False)

    def fail(status: int, line: str) -> int:
        if debug:  # the traceback, and still the status that says what kind of failure it was
            import traceback

            traceback.print_exc()
        print(f"{prog}: {line}", file=sys.stderr)
        return status

    try:
        return args.func(args)
    except (SpecError, DataError, ResultFileError) as err:  # the user's to fix: arguments, specs, data, files
        return fail(EXIT_USAGE, one_line(err))
    except OSError as err:  # a file or folder the command was pointed at
        where = f"{err.filename!r}: " if getattr(err, "filename", None) else ""
        return fail(EXIT_USAGE, f"{where}{err.strerror or one_line(err)}; check the path and its permissions")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted; a sensitivity or multiverse run resumes where it stopped when run "
                                      "again")
    except Exception as err:  # a bug: one line, the traceback on request
        return fail(EXIT_INTERNAL, f"internal error ({type(err).__name__}: {one_line(err)}); rerun with --debug "
                                   "for the traceback and report it")


if __name__ == "__main__":
    sys.exit(main())
