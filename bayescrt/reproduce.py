"""The main job and its twin on the user's data: a spec's covariate sets fitted, beside published HRs.

``reproduce("danish")`` loads the spec, simulates the calibrated synthetic cohort, fits the spec's
model once per covariate set, and lines the exposure's posterior up against the published HRs.
``analyse(spec)`` does the same on the data file the spec's ``[data]`` section names (dates to
durations, missing values, imputation: :mod:`bayescrt.extract`). Both return an :class:`Analysis`;
``write_outputs`` saves one NetCDF per covariate set, the tables as CSV, a forest plot and the
diagnostic reports. The word SYNTHETIC is written where, and only where, the data are synthetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import validation
from .analysis import estimator, simulate_cohort
from .covariate_sets import CovariateSetFits, fit_covariate_sets
from .spec import AnalysisSpec, load_spec

SYNTHETIC_NOTE = (
    "SYNTHETIC DATA: the cohort analysed here is simulated, calibrated to the published tables of the "
    "{study}; it is not the study's patient data, which are not public."
)
EXAMPLES = {"steps": ["3 rows with impossible dates dropped"], "categorical": ["nyha"]}
PYTHON_SPEC = "bc.report"  # the spec path of an analysis done in Python (Analysis.from_fits)
SYNTHETIC_FILE_NOTE = "SYNTHETIC DATA: the data analysed here ({file}) are simulated; they are no patient's data."


@dataclass
class Analysis:
    """A spec's covariate sets fitted: on its synthetic cohort (``prepared`` None) or on its data file."""

    spec: AnalysisSpec
    cohort: pd.DataFrame
    fits: CovariateSetFits  # with [competing_risks]: the cause of interest's cause-specific fits
    prepared: object = None  # bayescrt.extract.PreparedData for a data file
    competing: object = None  # bayescrt.competing_sets.CompetingSetFits with [competing_risks]

    @property
    def hr_title(self) -> str:
        """What the main table's HR is, in words: ``HR of 'upgrade'``, or the cause-specific HR of the cause of interest."""
        if self.competing is not None:
            return f"Cause-specific HR of {self.fits.exposure!r} for {self.competing.cause!r}"
        return f"HR of {self.fits.exposure!r}"

    @property
    def diagnostics_ok(self) -> bool:
        """Whether every fit passed its convergence diagnostics (every cause's and the Fine-Gray fits too)."""
        fits = [f for _, f in self.competing.items()] if self.competing is not None else list(self.fits.fits.values())
        return all(f.diagnostics().ok for f in fits)

    def competing_table(self) -> pd.DataFrame | None:
        """With ``[competing_risks]``: the exposure's HR per (set, cause, estimand), cause-specific and
        subdistribution (:meth:`bayescrt.competing_sets.CompetingSetFits.table`); else None."""
        return None if self.competing is None else self.competing.table()

    def incidence_table(self) -> pd.DataFrame | None:
        """With ``[competing_risks] horizons``: the standardised cumulative incidence difference and ratio by
        exposure per (set, cause, horizon); else None. Computed once and kept."""
        hz = (self.spec.competing or {}).get("horizons")
        if self.competing is None or not hz:
            return None
        if getattr(self, "_incidence", None) is None:
            self._incidence = self.competing.incidence(hz)
        return self._incidence

    @classmethod
    def from_fits(cls, fits: CovariateSetFits, data: pd.DataFrame, *, time: str, event: str, title: str,
                  synthetic: bool = False, imputed: list | None = None, steps=(), published: dict | None = None,
                  exposure_labels: dict | None = None, categorical=(), source: str = "", description: str = "",
                  synthetic_note: str | None = None) -> Analysis:
        """An analysis done in Python (``fit_covariate_sets``), put in the shape a report takes.

        ``data``: the frame analysed (with its missing values, before imputation); ``imputed``: the
        completed frames the fits pooled, if any; ``steps``: what was done to the data, in words;
        ``published``: ``{set: {"hr": ..., "lower": ..., "upper": ...}}``, or a registry study and its
        result ids as in a spec (``{"study": ..., set: result_id}``); ``synthetic``: whether the data
        are simulated (the report then says SYNTHETIC in its title and beside every table)."""
        from .errors import SpecError, suggest
        from .extract import PreparedData
        from .families import registry
        from .impute import missingness
        from .extract import baseline, check_exposure
        from .spec import check, exposure_label_map

        if not isinstance(fits, CovariateSetFits):
            raise SpecError(f"fits: expected the result of bc.fit_covariate_sets, got {type(fits).__name__}")
        if not isinstance(data, pd.DataFrame):
            raise SpecError(f"data: expected the DataFrame the fits took (before imputation), got {type(data).__name__}")
        if not isinstance(title, str) or not title.strip():
            raise SpecError(f"title={title!r}: give the report a title (text), e.g. title=\"Upgrade vs de novo CRT\"")
        synthetic = validation.flag("synthetic", synthetic)
        for arg, val in (("description", description), ("source", source)):
            if not isinstance(val, str):
                raise SpecError(f"{arg}={val!r} must be text")
        if synthetic_note is not None and not isinstance(synthetic_note, str):
            raise SpecError(f"synthetic_note={synthetic_note!r} must be text")
        for arg, val in (("steps", steps), ("categorical", categorical)):
            if isinstance(val, str) or not isinstance(val, (list, tuple)) or not all(isinstance(v, str) for v in val):
                raise SpecError(f"{arg}={val!r} must be a list of text, e.g. {EXAMPLES[arg]!r}")
        exposure = fits.exposure
        for arg, col in (("time", time), ("event", event), ("exposure", exposure)):
            if col not in data.columns:
                raise SpecError(f"{arg}={col!r} is not a column of data.{suggest(str(col), map(str, data.columns))}")
        first = next(iter(fits.fits.values())).model
        # the description must be of the data the fits took: the outcome columns, the rows, the imputations
        for arg, col in (("time", time), ("event", event)):
            if first["columns"].get(arg) != col:
                raise SpecError(f"{arg}={col!r}: the fits took {arg} from {first['columns'].get(arg)!r}")
        pooled = [f.model["imputation"]["m"] for f in fits.fits.values() if f.model.get("imputation")]
        if imputed is not None and (isinstance(imputed, (str, pd.DataFrame)) or not isinstance(imputed, (list, tuple))
                                    or not all(isinstance(f, pd.DataFrame) for f in imputed)):
            raise SpecError(f"imputed: expected the list of completed DataFrames the fits pooled, got "
                            f"{type(imputed).__name__}")
        if pooled and (imputed is None or len(imputed) != pooled[0]):
            raise SpecError(f"imputed: the fits pooled {pooled[0]} imputations; pass that list of completed DataFrames "
                            f"(got {'none' if imputed is None else len(imputed)})")
        n_fit = first["n"] + first.get("n_dropped", 0)
        if len(data) != n_fit or int(data[event].sum()) < first["n_events"]:
            raise SpecError(f"data: {len(data):,} rows with {int(data[event].sum()):,} events, but the fits took "
                            f"{n_fit:,} rows with {first['n_events']:,} events; pass the frame they were fitted on "
                            "(before imputation)")
        fam = first["family"]
        raw = {"name": "python", "title": title, "synthetic": synthetic, "time": time, "event": event,
               "exposure": exposure, "covariate_sets": dict(fits.sets.items()),
               "model": {"family": fam, **{k: first[k] for k in registry.REGISTRY[fam][2] if k in first}}}
        labels = exposure_label_map({} if exposure_labels is None else exposure_labels, "exposure_labels")
        check_exposure(data, exposure, "data")
        data_section = {"exposure_labels": {str(k): v for k, v in labels.items()},
                        "table_one": {"categorical": list(categorical)}}
        if description:
            data_section["description"] = description
        if synthetic_note:
            data_section["synthetic_note"] = synthetic_note
        inline = {}
        if published:
            if not isinstance(published, dict):
                raise SpecError(f"published: expected a dict of covariate set -> {{hr, lower, upper}}, got "
                                f"{type(published).__name__}")
            if "study" in published:
                raw["published"] = dict(published)
            else:
                for name, est in published.items():
                    vals = [est.get(k) if isinstance(est, dict) else None for k in ("hr", "lower", "upper")]
                    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")
                               for v in vals) or not vals[1] <= vals[0] <= vals[2] \
                            or (isinstance(est, dict) and set(est) - {"hr", "lower", "upper"}):
                        raise SpecError(f"published[{name!r}] = {est!r}: give {{'hr': ..., 'lower': ..., 'upper': "
                                        "...}, finite positive numbers with lower <= hr <= upper")
                    inline[name] = {k: float(v) for k, v in zip(("hr", "lower", "upper"), vals)}
                raw["published"] = inline
        check(raw, PYTHON_SPEC)  # a spec's checks of the sets, the model and the published results
        raw["data"] = data_section  # (no file to check: the data are given)
        spec = AnalysisSpec(name="python", title=title, path=Path(PYTHON_SPEC), raw=raw)
        covs = list(dict.fromkeys([exposure] + [c for n in fits.sets for c in fits._adjusted(n)]))  # in set order
        for c in covs:
            if c not in data.columns:
                raise SpecError(f"data: column {c!r}, which a covariate set uses, is not in data; pass the frame "
                                "the fits took (before imputation)")
        prepared = PreparedData(
            source=source or "DataFrame", raw=data, frame=data, fits=list(imputed) if imputed else data, fit_kwargs={},
            covariates=covs, missingness=missingness(data[[c for c in covs if c != exposure] + [exposure]],
                                                     by=exposure),
            steps=[str(s) for s in steps])
        baseline(data, exposure, covs, data_section["exposure_labels"], categorical=list(categorical),
                 where="bc.report")  # Table 1's problems now, not when the report is written
        return cls(spec, data, fits, prepared)

    @property
    def made_in_python(self) -> bool:
        """True for an analysis put together by :meth:`from_fits` rather than run from a spec."""
        return str(self.spec.path) == PYTHON_SPEC

    @property
    def synthetic(self) -> bool:
        return self.spec.synthetic

    @property
    def note(self) -> str:
        """What the data are, in one sentence: SYNTHETIC when they are, the file and its size otherwise."""
        if self.prepared is None:
            return SYNTHETIC_NOTE.format(study=self.spec.raw.get("study", self.spec.title))
        name = Path(self.prepared.source).name
        if self.synthetic:
            return self.spec.data.get("synthetic_note") or SYNTHETIC_FILE_NOTE.format(file=name)
        col = self.spec.columns
        cr = self.spec.competing
        if cr is None:
            events = int(self.cohort[col["event"]].sum())
        else:  # codes 1..K or labels: an event is any row not censored
            from .causes import event_causes

            events = int((event_causes(self.cohort, col["event"], cr["causes"], cr["censored"])[0] > 0).sum())
        return (f"Data: {name} ({len(self.cohort):,} rows, {events:,} events)"
                + (f"; {self.spec.data['description']}" if self.spec.data.get("description") else ""))

    @property
    def imputations(self) -> int:
        return len(self.prepared.fits) if self.prepared is not None and isinstance(self.prepared.fits, list) else 0

    def table(self) -> pd.DataFrame:
        """Posterior of the exposure HR per covariate set, beside the published HR and 95% CI."""
        tab = self.fits.table()
        pub = self.spec.published
        out = pd.DataFrame({
            "hr_median": tab["hr_median"], "hr_lower": tab["hr_lower"], "hr_upper": tab["hr_upper"],
            "p_hr_gt_1": tab["p_hr_gt_1"],
            "published_hr": [pub.get(s, {}).get("hr", np.nan) for s in tab.index],
            "published_lower": [pub.get(s, {}).get("lower", np.nan) for s in tab.index],
            "published_upper": [pub.get(s, {}).get("upper", np.nan) for s in tab.index],
            "diagnostics_ok": tab["diagnostics_ok"],
        }, index=tab.index)
        out.attrs.update(synthetic=self.synthetic, exposure=self.fits.exposure)
        return out

    def group_labels(self) -> pd.Series:
        """The exposure as group names for tables and plots (``[data.exposure_labels]``, else ``upgrade = 1``)."""
        from .extract import group_names

        exposure = self.spec.raw["exposure"]
        if self.prepared is None:
            return self.cohort[exposure].map({1: "upgrade", 0: "de novo"})
        return group_names(self.cohort, exposure, self.spec.data.get("exposure_labels", {}))

    def table_one(self) -> pd.DataFrame:
        """The cohort's baseline table (:func:`bayescrt.baseline_table`) by exposure group."""
        from .extract import spec_baseline
        from .table_one import baseline_table

        if self.prepared is None:
            covs = list(self.spec.raw["cohort"]["covariates"])
            nonnormal = [c for c, cs in self.spec.raw["cohort"]["covariates"].items() if cs["kind"] != "binary"]
            by = "group (SYNTHETIC)" if self.synthetic else "group"
            frame = self.cohort[covs].assign(**{by: self.group_labels()})
            return baseline_table(frame, by=by, columns=covs, nonnormal=nonnormal)
        return spec_baseline(self.spec, self.cohort, self.prepared.covariates)  # from the frame as it is now

    def to_json(self) -> dict:
        def plain(v):
            return bool(v) if isinstance(v, (bool, np.bool_)) else v if isinstance(v, str) else float(v)

        rows = []
        for name, r in self.table().iterrows():
            rows.append({"covariate_set": name, **{k: plain(v) for k, v in r.items()}})
        out = {"synthetic": self.synthetic, "spec": self.spec.name, "note": self.note, "rows": rows}
        if self.competing is not None:
            out["cause"] = self.competing.cause
            out["competing_rows"] = [{**dict(zip(("covariate_set", "cause", "estimand"), idx)),
                                      **{k: plain(v) for k, v in r.items()}}
                                     for idx, r in self.competing_table().iterrows()]
            inc = self.incidence_table()
            if inc is not None:
                out["incidence_rows"] = [{**dict(zip(("covariate_set", "cause", "model", "time"),
                                                     (*idx[:3], float(idx[3])))),
                                          **{k: plain(v) for k, v in r.items()}} for idx, r in inc.iterrows()]
        out["diagnostics_ok"] = self.diagnostics_ok
        return out

    def __str__(self) -> str:
        t = self.table()
        shown = {
            "posterior HR (median)": t["hr_median"].map("{:.3f}".format),
            "95% credible interval": [f"{a:.3f} to {b:.3f}" for a, b in zip(t["hr_lower"], t["hr_upper"])],
            "P(HR > 1)": t["p_hr_gt_1"].map("{:.3f}".format),
        }
        if t["published_hr"].notna().any():
            shown["published HR"] = t["published_hr"].map(lambda v: "" if np.isnan(v) else f"{v:.2f}")
            shown["published 95% CI"] = ["" if np.isnan(a) else f"{a:.2f} to {b:.2f}"
                                         for a, b in zip(t["published_lower"], t["published_upper"])]
        shown["diagnostics"] = t["diagnostics_ok"].map({True: "ok", False: "FAILED"})
        shown = pd.DataFrame(shown, index=t.index.rename("covariate set"))
        beside = " beside the published estimate" if t["published_hr"].notna().any() else ""
        pooled = f"; {self.imputations} imputations pooled" if self.imputations else ""
        what = self.hr_title
        fam = self.spec.raw["model"]["family"]
        fam = self.spec.competing["families"].get(self.competing.cause, fam) if self.competing is not None else fam
        fam = fam["family"] if isinstance(fam, dict) else fam
        ties = f", ties={self.spec.raw['model'].get('ties', 'efron')}" if fam == "CoxPH" else ""
        text = (f"{self.note}\n\n{what} by covariate set, posterior{beside} ({fam}{ties}{pooled})\n"
                + shown.to_string())
        return text + ("" if self.competing is None else "\n\n" + self._competing_text())

    def _competing_text(self) -> str:
        """The competing-risks tables in words: every cause's HR and the SHR per set, and the incidence contrasts."""
        c = self.competing_table()
        shown = pd.DataFrame({
            "posterior HR (median)": c["hr_median"].map("{:.3f}".format),
            "95% credible interval": [f"{a:.3f} to {b:.3f}" for a, b in zip(c["hr_lower"], c["hr_upper"])],
            "P(HR > 1)": c["p_hr_gt_1"].map("{:.3f}".format),
            "diagnostics": c["diagnostics_ok"].map({True: "ok", False: "FAILED"})}, index=c.index)
        text = (f"Competing risks ({', '.join(self.competing.causes)}): HR of {self.fits.exposure!r} per cause "
                "(cause-specific: the rate among those still free of every event) and for the cause of interest the "
                "subdistribution HR (the risk, with competing events kept in the risk set)\n" + shown.to_string())
        inc = self.incidence_table()
        if inc is not None:
            d = pd.DataFrame({
                "difference (median)": inc["rd_median"].map("{:+.3f}".format),
                "95% interval": [f"{a:+.3f} to {b:+.3f}" for a, b in zip(inc["rd_lower"], inc["rd_upper"])],
                "ratio (median)": inc["ratio_median"].map("{:.3f}".format),
                "ratio 95% interval": [f"{a:.3f} to {b:.3f}" for a, b in zip(inc["ratio_lower"], inc["ratio_upper"])]},
                index=inc.index)
            text += (f"\n\nStandardised cumulative incidence, {self.fits.exposure} = 1 against 0, at each horizon "
                     "(in the time column's unit), from every cause's cause-specific hazards"
                     + (" and, for the cause of interest, from the Fine-Gray model" if self.competing.subdistribution
                        else "") + "\n" + d.to_string())
        return text


Reproduction = Analysis  # the main job's result has always been called so


def _sampler(spec: AnalysisSpec, draws, tune, chains, random_seed, scheduler) -> dict:
    s = spec.sampler
    kw = {
        "draws": draws if draws is not None else s.get("draws", 1000),
        "tune": tune if tune is not None else (draws if draws is not None else s.get("tune", 1000)),
        "chains": chains if chains is not None else s.get("chains", 4),
        "random_seed": random_seed if random_seed is not None else s.get("random_seed"),
    }
    if scheduler is not None:
        kw["scheduler"] = scheduler
    return kw


def reproduce(name: str = "danish", *, draws: int | None = None, tune: int | None = None,
              chains: int | None = None, random_seed: int | None = None, progress: bool = True,
              scheduler=None) -> Analysis:
    """Run the re-analysis of spec ``name`` on its synthetic cohort; arguments override the spec's sampler.

    ``scheduler``: a ``dask.distributed`` scheduler address or Client, on whose workers the chains
    of every fit run (see :meth:`bayescrt.CoxPH.fit`)."""
    spec = load_spec(name)
    cohort = simulate_cohort(spec)
    kw = _sampler(spec, draws, tune, chains, random_seed, scheduler)
    col = spec.columns
    fits = fit_covariate_sets(estimator(spec), cohort, time=col["time"], event=col["event"], exposure=col["exposure"],
                              sets=spec.covariate_sets, priors=spec.priors, progress=progress, **kw)
    return Analysis(spec, cohort, fits)


def analyse(spec, data=None, *, draws: int | None = None, tune: int | None = None, chains: int | None = None,
            random_seed: int | None = None, progress: bool = True, scheduler=None) -> Analysis:
    """Fit a spec's covariate sets to the data file its ``[data]`` names (or ``data``, a path).

    The file is read and checked, dates become durations, and missing covariates are imputed when
    ``[data.imputation]`` says so (each set's fit then pools the imputations), all before sampling."""
    from .extract import load_data

    spec, prep = load_data(spec, data)
    kw = _sampler(spec, draws, tune, chains, random_seed, scheduler)
    col = spec.columns
    cr = spec.competing
    if cr is not None:  # every cause's hazard per set, and the Fine-Gray model of the cause of interest if asked
        from .analysis import competing_model
        from .competing_sets import fit_competing_sets
        from .families import registry

        comp = fit_competing_sets(
            competing_model(spec), prep.fits, time=col["time"], event=col["event"], exposure=col["exposure"],
            sets=spec.covariate_sets, cause=cr["cause"], causes=cr["causes"], censored=cr["censored"],
            subdistribution=registry.estimator_class("FineGray")() if cr["subdistribution"] else None,
            priors=spec.priors, progress=progress, **prep.fit_kwargs, **kw)
        return Analysis(spec, prep.frame, comp.of_interest(), prep, competing=comp)
    fits = fit_covariate_sets(estimator(spec), prep.fits, time=col["time"], event=col["event"],
                              exposure=col["exposure"], sets=spec.covariate_sets, priors=spec.priors,
                              progress=progress, **prep.fit_kwargs, **kw)
    return Analysis(spec, prep.frame, fits, prep)


def write_outputs(rep: Analysis, out: Path) -> list[Path]:
    """One NetCDF per covariate set, table.csv, table1, forest.png, diagnostics.txt/json and a README
    (and missingness.csv for a data file)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    out = validation.output_folder(out, "out")
    written = []
    # every fit by the names of its file: spec, covariate set (and cause, and the Fine-Gray fit's estimand)
    saved = ({f"{n}_{c}" + ("_subdistribution" if e != "cause-specific HR" else ""): f
              for (n, c, e), f in rep.competing.items()} if rep.competing is not None else dict(rep.fits.fits))
    for name, fit in saved.items():
        fit.annotate(synthetic=int(rep.spec.synthetic))
        # spec, covariate-set and cause names are checked labels; inside() holds the line if that ever changes
        written.append(fit.save(validation.inside(out, out / f"{rep.spec.name}_{name}.nc")))
    tab = rep.table()
    tab.to_csv(out / "table.csv")
    t1 = rep.table_one()
    t1.to_csv(out / "table1.csv")
    (out / "table1.txt").write_text(f"Baseline characteristics by group, {rep.note}\n\n{t1.to_string()}\n")
    written += [out / "table.csv", out / "table1.csv", out / "table1.txt"]
    pub = tab[["published_hr", "published_lower", "published_upper"]].set_axis(["hr", "lower", "upper"], axis=1)
    if rep.prepared is not None:
        rep.prepared.missingness.to_csv(out / "missingness.csv")
        written.append(out / "missingness.csv")
    title = f"{rep.hr_title} by covariate set"
    if rep.synthetic:  # on a second line when the first is long (the forest plot is narrow)
        title += ("\n" if len(title) > 50 else " ") + ("(SYNTHETIC cohort)" if rep.prepared is None else "(SYNTHETIC data)")
    ax = rep.fits.plot_forest(published=pub if pub["hr"].notna().any() else None, title=title)
    ax.figure.savefig(out / "forest.png", dpi=120)
    written.append(out / "forest.png")
    if rep.competing is not None:
        written += _write_competing(rep, out)
    diag_txt = "\n\n".join(f"== covariate set {n!r}" + (f", {c}, {e}" if c else "") + f"\n{f.diagnostics()}"
                             for (n, c, e), f in _every_fit(rep))
    (out / "diagnostics.txt").write_text(diag_txt + "\n")
    (out / "diagnostics.json").write_text(json.dumps(
        {"/".join(k for k in key if k): f.diagnostics().to_dict() for key, f in _every_fit(rep)}, indent=2))
    (out / "README.txt").write_text(str(rep) + "\n")  # str(rep) opens with the note on the data
    written += [out / "diagnostics.txt", out / "diagnostics.json", out / "README.txt"]
    return written


def _every_fit(rep: Analysis):
    """``((set, cause, estimand), fit)`` for every fit of the analysis (cause and estimand empty for one event)."""
    if rep.competing is not None:
        return list(rep.competing.items())
    return [((n, "", ""), f) for n, f in rep.fits.fits.items()]


def _write_competing(rep: Analysis, out: Path) -> list[Path]:
    """competing.csv (every cause's HR and the SHR per set), incidence.csv (the contrasts at the horizons) and
    cif.png (the standardised cumulative incidence of every cause by group, per set)."""
    import matplotlib.pyplot as plt

    written = [out / "competing.csv"]
    rep.competing_table().to_csv(written[0])
    inc = rep.incidence_table()
    if inc is not None:
        inc.to_csv(out / "incidence.csv")
        written.append(out / "incidence.csv")
    labels = rep.group_labels()
    exposure = rep.fits.exposure
    names = {f"{exposure} = {v}": str(labels[rep.cohort[exposure] == v].iloc[0]) for v in (0, 1)}
    fig = rep.competing.plot_incidence(group_labels=names, xlabel=f"time ({rep.spec.columns['time']})",
                                       title="Standardised cumulative incidence by group"
                                             + (" (SYNTHETIC data)" if rep.synthetic else ""))
    fig.savefig(out / "cif.png", dpi=110)
    plt.close(fig)
    written.append(out / "cif.png")
    return written


def calibration_table(spec: AnalysisSpec, df: pd.DataFrame) -> pd.DataFrame:
    """The simulated cohort by group beside the published (or assumed) values, with sampling error.

    Medians for continuous covariates and follow-up; percentages for binary
    ones. ``z`` is the simulated minus the published value over its sampling
    standard error (binomial for percentages, 1.2533 sd / sqrt(n) for medians
    of a normal, bootstrap for follow-up).
    """
    col = spec.columns
    exposed = df[col["exposure"]] == 1
    groups = {"upgrade": exposed, "de novo": ~exposed}
    rows = []
    covs = spec.raw["cohort"]["covariates"]
    rng = np.random.default_rng(0)
    for name, cs in covs.items():
        for j, (g, mask) in enumerate(groups.items()):
            x = df.loc[mask, name].to_numpy(float)
            if cs["kind"] == "binary":
                p = cs["prevalence"][j]
                sim, pubv, se = 100 * x.mean(), 100 * p, 100 * np.sqrt(p * (1 - p) / len(x))
                stat = "%"
            else:
                sim, pubv, se = np.median(x), cs["median"][j], 1.2533 * cs["spread"] / np.sqrt(len(x))
                stat = "median"
            rows.append((name, stat, g, sim, pubv, se, "assumed" if cs.get("assumed") else "published"))
    fu = spec.published.get("follow_up_median_years", {})
    for (g, mask), key in zip(groups.items(), ("upgrade", "de_novo")):
        if key in fu:
            t = df.loc[mask, col["time"]].to_numpy()
            boot = [np.median(rng.choice(t, len(t))) for _ in range(200)]
            rows.append(("follow-up (years)", "median", g, np.median(t), fu[key], np.std(boot), "published"))
    tab = pd.DataFrame(rows, columns=["covariate", "statistic", "group", "simulated", "published", "se", "source"])
    tab["z"] = (tab["simulated"] - tab["published"]) / tab["se"]
    return tab.set_index(["covariate", "statistic", "group"])
