"""A spec's ``[multiverse]`` run end to end: the cells, the propensity-score fits beside them, and the files.

:func:`run_multiverse` takes the spec's data (its ``[data]`` file, prepared as ``analyse`` prepares it, or
else its SYNTHETIC cohort), fits :func:`bayescrt.multiverse.multiverse` over the ``[multiverse]``
candidates, and the inverse-probability and overlap weighted Cox fits of the exposure alone (propensity
model on the forced covariates and every candidate). :func:`write_outputs` writes what ``bayescrt
multiverse`` leaves in ``--out``: the tables as CSV, the vibration, attribution and balance plots as PNG,
and ``README.txt`` saying what the data are and how to read the averaged and weighted HRs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import validation
from .errors import DataError, DiagnosticsWarning, SpecError, suggest
from .spec import AnalysisSpec, load_spec

ESTIMANDS = ("ipw", "overlap")
CELLS = "cells"  # the subfolder of --out that holds the cells (what a rerun resumes from)


@dataclass
class MultiverseRun:
    """What :func:`run_multiverse` made: the multiverse, the propensity weights and their weighted fits."""

    spec: AnalysisSpec
    cohort: pd.DataFrame
    multiverse: object
    weights: dict = field(default_factory=dict)  # estimand -> PropensityWeights
    fits: dict = field(default_factory=dict)     # estimand -> Fit (weighted, the exposure alone)
    source: str = ""
    event: str = ""  # the event column the fits use: the spec's, or with competing risks the cause's 0/1 column

    @property
    def cause(self) -> str | None:
        """With ``[competing_risks]``: the cause whose cause-specific HR every cell and weighted fit estimates."""
        return (self.spec.competing or {}).get("cause")

    def estimand(self) -> str:
        """One sentence on what the HRs are (cause-specific with competing risks), or ``""``."""
        if self.cause is None:
            return ""
        from .causes import censoring_causes

        others = censoring_causes(self.cause, self.spec.competing["causes"])
        return (f"Competing risks: every HR here is the cause-specific HR of {self.cause!r} ({others} censors it), "
                "not a ratio of cumulative incidences (`bayescrt analyse` gives those).")

    @property
    def synthetic(self) -> bool:
        return self.spec.synthetic

    @property
    def tag(self) -> str:
        return " (SYNTHETIC cohort)" if self.synthetic else ""

    def note(self) -> str:
        """What the data are, in one sentence (SYNTHETIC where they are)."""
        ex, ev = self.spec.raw["exposure"], self.event or self.spec.raw["event"]
        size = f"{len(self.cohort):,} rows, {int(self.cohort[ev].sum()):,} events, {int(self.cohort[ex].sum()):,} exposed"
        if not self.source:
            return (f"SYNTHETIC DATA: the cohort analysed here ({size}) is simulated, calibrated to the published "
                    f"tables of the {self.spec.raw.get('study', self.spec.title)}; it is not the study's patient data.")
        name = Path(self.source).name
        if self.synthetic:
            return self.spec.data.get("synthetic_note") or f"SYNTHETIC DATA: {name} ({size}) is simulated."
        return f"Data: {name} ({size})"

    def propensity(self, prob: float = 0.95) -> pd.DataFrame:
        """One row per estimand: the weighted fit's HR of the exposure, its diagnostics, the effective sample
        sizes and the largest |SMD| of any covariate before and after weighting."""
        rows = []
        ex = self.spec.raw["exposure"]
        for name, pw in self.weights.items():
            fit = self.fits[name]
            with warnings.catch_warnings():  # a failed fit says so in its row
                warnings.simplefilter("ignore", DiagnosticsWarning)
                hr = fit.hazard_ratios(prob).loc[ex]
            bal, ess = pw.balance(), pw.effective_sample_size()
            rows.append({"estimand": name, "target": bal.attrs["estimand"], "hr_median": hr["hr_median"],
                         "hr_lower": hr["hr_lower"], "hr_upper": hr["hr_upper"], "p_hr_gt_1": hr["p_hr_gt_1"],
                         **{f"ess {k}": v for k, v in ess.items()},
                         "max_smd_before": bal["smd_before"].max(), "max_smd_after": bal["smd_after"].max(),
                         "diagnostics_ok": fit.diagnostics().ok})
        return pd.DataFrame(rows).set_index("estimand")

    def balance(self) -> pd.DataFrame:
        """Every design column's |SMD| before weighting and after each estimand's weights."""
        first = next(iter(self.weights.values())).balance()
        out = pd.DataFrame({"smd_before": first["smd_before"]})
        for name, pw in self.weights.items():
            out[f"smd_after_{name}"] = pw.balance()["smd_after"]
        return out

    @property
    def ok(self) -> bool:
        return self.multiverse.ok and all(f.diagnostics().ok for f in self.fits.values())


def _data(spec: AnalysisSpec, data, columns: list[str]) -> tuple[pd.DataFrame, dict, str]:
    """The frame the cells fit, the fit options the spec's [data] implies, and the file it came from."""
    if "data" not in spec.raw:
        if data is not None:
            raise SpecError(f"--data: spec {spec.name!r} has no [data] section; it simulates its SYNTHETIC cohort")
        from .analysis import simulate_cohort

        return simulate_cohort(spec), {}, ""
    from .extract import prepare, read_data

    df, file = read_data(spec, data)
    prepared = prepare(spec, df, source=str(file), impute_now=False)
    frame, kw = prepared.frame, dict(prepared.fit_kwargs)
    for key, cols in (("always", spec.multiverse["always"]), ("candidates", spec.multiverse["candidates"])):
        for c in cols:
            if c not in frame.columns:
                raise SpecError(f"{spec.path} [multiverse] {key}: {c!r} is not a column of the data.{suggest(c, frame.columns)}")
    incomplete = {c: int(frame[c].isna().sum()) for c in columns if frame[c].isna().any()}
    if incomplete and kw.get("missing") != "drop":
        counts = ", ".join(f"{c} ({n} missing)" for c, n in incomplete.items())
        extra = (" The multiverse fits one data set: it does not pool the imputations of [data.imputation]."
                 if "imputation" in spec.data else "")
        raise DataError(f"{spec.path} [multiverse]: covariates with missing values: {counts}.{extra} Set "
                        "missing = \"drop\" in [data] for complete cases on every multiverse column (the same rows in "
                        "every cell), or impute the extract and point --data at a completed file")
    return frame, kw, str(file)


def run_multiverse(spec, *, out, data=None, draws: int | None = None, tune: int | None = None,
                   chains: int | None = None, random_seed: int | None = None, scheduler=None, workers: int = 1,
                   progress: bool = True) -> MultiverseRun:
    """The spec's ``[multiverse]`` (module docstring); ``draws``, ``tune``, ``chains`` and ``random_seed``
    override the section's. ``out``: the folder whose ``cells/`` make the run resumable."""
    from .analysis import estimator
    from .multiverse import multiverse
    from .propensity import propensity_weights

    spec = spec if isinstance(spec, AnalysisSpec) else load_spec(spec)
    mv = spec.multiverse
    over = {"draws": draws, "tune": tune, "chains": chains, "random_seed": random_seed}
    sampler = {k: (over[k] if over[k] is not None else mv[k]) for k in over}
    time, event, exposure = spec.raw["time"], spec.raw["event"], spec.raw["exposure"]
    columns = [exposure, *mv["always"], *mv["candidates"]]
    est = estimator(spec)
    if not getattr(est, "masks_covariates", False):
        raise SpecError(f"{spec.path} [model] family = {spec.raw['model']['family']!r}: the multiverse's cells share "
                        "one compilation through CoxPH.fit(active=...); set family = \"CoxPH\" (in a copy of the spec)")
    priors = _priors(spec, columns)
    frame, kw, source = _data(spec, data, columns)  # refused before the folder is made
    cr = spec.competing
    if cr is not None:  # every cell and weighted fit: the cause-specific hazard of the cause of interest
        from .causes import EVENT_COLUMN, check_event_role, with_cause_event

        check_event_role(event, time=time, exposure=exposure, covariates=columns)
        frame, event = with_cause_event(frame, event, cr["cause"], cr["causes"], cr["censored"]), EVENT_COLUMN
    rows = frame.dropna(subset=columns) if kw.get("missing") == "drop" else frame  # the rows the cells fit
    # the propensity weights first: cheap, and a problem with them is found before hours of sampling
    weights = {name: propensity_weights(rows, exposure=exposure, covariates=[*mv["always"], *mv["candidates"]],
                                        estimand=name) for name in ESTIMANDS}
    out = validation.output_folder(out, "out")
    result = multiverse(frame, time=time, event=event, exposure=exposure, always=mv["always"],
                        candidates=mv["candidates"], family=est, priors=priors, out=out / CELLS, scheduler=scheduler,
                        workers=workers, progress=progress, **sampler, **kw)
    run = MultiverseRun(spec, rows, result, source=source, weights=weights, event=event)
    ps_kw = {k: v for k, v in kw.items() if k == "entry"}
    ps_priors = {k: v for k, v in (priors or {}).items() if k in ("default", exposure)} or None
    # the cells' seed, also when the run drew it: a resumed run refits these with the first run's numbers
    ps_sampler = {**sampler, "random_seed": result.random_seed}
    for name, pw in weights.items():
        with warnings.catch_warnings():  # a failed fit is reported in its row and by the exit status
            warnings.simplefilter("ignore", DiagnosticsWarning)
            run.fits[name] = pw.fit(rows, time=time, event=event, family=est, priors=ps_priors, progress=False,
                                    **ps_sampler, **ps_kw)
    return run


def _priors(spec: AnalysisSpec, columns: list[str]) -> dict | None:
    """The spec's ``[priors]`` for the multiverse's columns: a key for a covariate of a covariate set that the
    multiverse does not use does not apply; a key that names no column anywhere is a mistake."""
    from .extract import model_columns

    priors = spec.priors
    known = set(columns) | set(model_columns(spec)) | {"default"}
    for key in priors:
        if key not in known:
            raise SpecError(f"{spec.path} [priors]: {key!r} is not the exposure or a covariate of the covariate sets or "
                            f"[multiverse].{suggest(key, sorted(known))}")
    return {k: v for k, v in priors.items() if k == "default" or k in columns} or None


def write_outputs(run: MultiverseRun, out) -> list[Path]:
    """The tables (CSV), plots (PNG) and README.txt of a run into ``out``; returns the paths written."""
    import matplotlib.pyplot as plt

    out = validation.output_folder(out, "out")
    mv, written = run.multiverse, []

    def put(name: str, frame) -> None:
        path = validation.inside(out, out / name)
        frame.to_csv(path)
        written.append(path)

    with warnings.catch_warnings():  # the failures are in the tables, the README and the exit status
        warnings.simplefilter("ignore", DiagnosticsWarning)
        put("table.csv", mv.table())
        put("vibration.csv", mv.vibration().to_frame())
        put("attribution.csv", mv.attribution())
        put("weights.csv", pd.concat([mv.weights("stacking"), mv.weights("pseudo-bma+")], axis=1))
        put("averaged.csv", pd.DataFrame([mv.averaged("stacking"), mv.averaged("pseudo-bma+")]))
        put("propensity.csv", run.propensity())
        put("balance.csv", run.balance())
        published = {f"{name} set": est["hr"] for name, est in run.spec.published.items()
                     if isinstance(est, dict) and "hr" in est}  # each covariate set's published HR
        color = run.spec.multiverse.get("color_by")
        figures = {
            "vibration.png": mv.plot_vibration(
                color_by=color, published=published, title=f"Vibration of effects: {len(mv.cells)} covariate sets{run.tag}",
                estimand=None if run.cause is None else f"cause-specific HR of {mv.exposure!r} for {run.cause!r}"),
            "attribution.png": mv.plot_attribution(title=f"Each candidate's share of the shift{run.tag}"),
        }
        fig, axes = plt.subplots(1, len(run.weights), figsize=(6.2 * len(run.weights), 0.35 * len(run.balance()) + 1.8),
                                 sharey=True)
        for ax, (name, pw) in zip(np.atleast_1d(axes), run.weights.items()):
            pw.plot_balance(ax=ax, title=f"{name} weights{run.tag}")
        figures["balance.png"] = axes[0] if len(run.weights) > 1 else axes
    for name, ax in figures.items():
        path = validation.inside(out, out / name)
        ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        written.append(path)
    path = validation.inside(out, out / "README.txt")
    path.write_text(readme(run))
    written.append(path)
    return written


def readme(run: MultiverseRun) -> str:
    """What the folder holds and how to read it, SYNTHETIC first where the data are."""
    from .multiverse import AVERAGING_STATEMENT
    from .propensity import WEIGHTS_STATEMENT

    mv = run.multiverse
    lines = [f"Adjustment-set multiverse: {run.spec.title}", "", run.note(), "",
             *([run.estimand(), ""] if run.cause else []),
             f"{len(mv.cells)} covariate sets for {mv.exposure!r}: always {', '.join(mv.always) or 'nothing'}, plus every "
             f"subset of {', '.join(mv.candidates)}; {mv.compilations} compilation(s) this run, {mv.fitted} cell(s) fitted"
             + (f", {len(mv.cells) - mv.fitted} loaded from {CELLS}/." if mv.fitted < len(mv.cells) else "."), ""]
    if not run.ok:
        lines += ["DIAGNOSTICS FAILED: at least one cell or weighted fit failed its convergence gates (diagnostics_ok "
                  "in table.csv and propensity.csv); the numbers built on it cannot be trusted. Run more draws.", ""]
    lines += ["Files:",
              "  table.csv        one row per covariate set: median HR, interval, P(HR > 1), ELPD, diagnostics",
              "  vibration.csv    range of median HRs, relative HR (99th / 1st percentile), shares of cells with "
              "P(HR > 1) > 0.975 and < 0.025",
              "  attribution.csv  each candidate's Shapley share of the shift in the log-HR, with Monte Carlo error",
              "  weights.csv      stacking and pseudo-BMA+ weights of the cells (PSIS-LOO of the partial likelihood)",
              "  averaged.csv     the model-averaged HR under each kind of weights",
              "  propensity.csv   inverse-probability and overlap weighted Cox fits of the exposure alone",
              "  balance.csv      |standardised mean difference| of every covariate before and after weighting",
              "  vibration.png, attribution.png, balance.png: the same as plots",
              f"  {CELLS}/           the cells; a rerun with the same data and settings resumes from them", "",
              f"Model averaging: {AVERAGING_STATEMENT}", "", f"Propensity weights: {WEIGHTS_STATEMENT}", ""]
    return "\n".join(lines)
