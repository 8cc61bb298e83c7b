"""The main job: the Bayesian re-analysis of a published registry study on its synthetic cohort.

``reproduce("danish")`` loads the spec, simulates the calibrated synthetic
cohort, fits the spec's model once per covariate set, and lines the exposure's
posterior up against the published HRs. ``write_outputs`` saves one NetCDF per
covariate set, the table as CSV, a forest plot and the diagnostic reports.
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


@dataclass
class Reproduction:
    spec: AnalysisSpec
    cohort: pd.DataFrame
    fits: CovariateSetFits

    @property
    def note(self) -> str:
        return SYNTHETIC_NOTE.format(study=self.spec.raw.get("study", self.spec.title))

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
        out.attrs.update(synthetic=self.spec.synthetic, exposure=self.fits.exposure)
        return out

    def table_one(self) -> pd.DataFrame:
        """The cohort's baseline table (:func:`bayescrt.baseline_table`) by exposure group."""
        from .table_one import baseline_table

        col = self.spec.columns
        covs = list(self.spec.raw["cohort"]["covariates"])
        groups = self.cohort[col["exposure"]].map({1: "upgrade", 0: "de novo"})
        frame = self.cohort[covs].assign(**{"group (SYNTHETIC)": groups})
        return baseline_table(frame, by="group (SYNTHETIC)", columns=covs, nonnormal=[
            c for c, cs in self.spec.raw["cohort"]["covariates"].items() if cs["kind"] != "binary"])

    def to_json(self) -> dict:
        rows = []
        for name, r in self.table().iterrows():
            rows.append({"covariate_set": name, **{k: (bool(v) if k == "diagnostics_ok" else float(v))
                                                   for k, v in r.items()}})
        return {"synthetic": self.spec.synthetic, "spec": self.spec.name, "note": self.note, "rows": rows}

    def __str__(self) -> str:
        t = self.table()
        shown = pd.DataFrame({
            "posterior HR (median)": t["hr_median"].map("{:.3f}".format),
            "95% credible interval": [f"{a:.3f} to {b:.3f}" for a, b in zip(t["hr_lower"], t["hr_upper"])],
            "P(HR > 1)": t["p_hr_gt_1"].map("{:.3f}".format),
            "published HR": t["published_hr"].map("{:.2f}".format),
            "published 95% CI": [f"{a:.2f} to {b:.2f}" for a, b in zip(t["published_lower"], t["published_upper"])],
            "diagnostics": t["diagnostics_ok"].map({True: "ok", False: "FAILED"}),
        }, index=t.index.rename("covariate set"))
        return (f"{self.note}\n\nHR of {self.fits.exposure!r} by covariate set, posterior beside the published "
                f"estimate ({self.spec.raw['model']['family']}, ties={self.spec.raw['model'].get('ties', 'efron')})\n"
                + shown.to_string())


def reproduce(name: str = "danish", *, draws: int | None = None, tune: int | None = None,
              chains: int | None = None, random_seed: int | None = None, progress: bool = True,
              scheduler=None) -> Reproduction:
    """Run the re-analysis of spec ``name`` on its synthetic cohort; arguments override the spec's sampler.

    ``scheduler``: a ``dask.distributed`` scheduler address or Client, on whose workers the chains
    of every fit run (see :meth:`bayescrt.CoxPH.fit`)."""
    spec = load_spec(name)
    cohort = simulate_cohort(spec)
    s = spec.sampler
    kw = {
        "draws": draws if draws is not None else s.get("draws", 1000),
        "tune": tune if tune is not None else (draws if draws is not None else s.get("tune", 1000)),
        "chains": chains if chains is not None else s.get("chains", 4),
        "random_seed": random_seed if random_seed is not None else s.get("random_seed"),
    }
    if scheduler is not None:
        kw["scheduler"] = scheduler
    col = spec.columns
    fits = fit_covariate_sets(estimator(spec), cohort, time=col["time"], event=col["event"], exposure=col["exposure"],
                              sets=spec.covariate_sets, priors=spec.priors, progress=progress, **kw)
    return Reproduction(spec, cohort, fits)


def write_outputs(rep: Reproduction, out: Path) -> list[Path]:
    """One NetCDF per covariate set, table.csv, forest.png, diagnostics.txt/json and a README."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    out = validation.output_folder(out, "out")
    written = []
    for name, fit in rep.fits.fits.items():
        fit.annotate(synthetic=int(rep.spec.synthetic))
        # spec and covariate-set names are checked labels; inside() holds the line if that ever changes
        written.append(fit.save(validation.inside(out, out / f"{rep.spec.name}_{name}.nc")))
    tab = rep.table()
    tab.to_csv(out / "table.csv")
    t1 = rep.table_one()
    t1.to_csv(out / "table1.csv")
    (out / "table1.txt").write_text(f"Baseline characteristics by group, {rep.note}\n\n{t1.to_string()}\n")
    written += [out / "table.csv", out / "table1.csv", out / "table1.txt"]
    pub = tab[["published_hr", "published_lower", "published_upper"]].set_axis(["hr", "lower", "upper"], axis=1)
    ax = rep.fits.plot_forest(published=pub, title=f"Upgrade vs de novo: HR by covariate set (SYNTHETIC cohort)")
    ax.figure.savefig(out / "forest.png", dpi=120)
    written.append(out / "forest.png")
    diag_txt = "\n\n".join(f"== covariate set {n!r}\n{f.diagnostics()}" for n, f in rep.fits.fits.items())
    (out / "diagnostics.txt").write_text(diag_txt + "\n")
    (out / "diagnostics.json").write_text(json.dumps(
        {n: f.diagnostics().to_dict() for n, f in rep.fits.fits.items()}, indent=2))
    (out / "README.txt").write_text(rep.note + "\n\n" + str(rep) + "\n")
    written += [out / "diagnostics.txt", out / "diagnostics.json", out / "README.txt"]
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
