"""The result of a grid: the table of its cells and the forest plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SpecError, suggest
from .cells import _summary_row
from .grid import Cell, Grid
from .store import _load_cell

TABLE_COLUMNS = ["family", "covariate_set", "prior", "subset", "n", "n_events", "hr_median", "hr_lower", "hr_upper",
                 "p_hr_gt_1", "log_hr_mean", "log_hr_sd", "prior_sensitivity", "likelihood_sensitivity",
                 "sensitivity_diagnosis", "diagnostics_ok"]


class SensitivityResult:
    """A finished grid: ``table()``, ``plot()``, ``fit(cell)``; ``compilations`` made by the last run."""

    def __init__(self, grid: Grid, out: Path, manifest: dict):
        self.grid, self.out, self.manifest = grid, Path(out), manifest

    @property
    def compilations(self) -> int:
        return int(self.manifest["last_run"]["compilations"])

    def fit(self, cell: Cell | str):
        """The saved fit of one cell of this grid (by id or Cell), checked to be the one this grid made."""
        cid = cell.id if isinstance(cell, Cell) else cell
        ids = [c.id for c in self.grid.cells()]
        if cid not in ids:
            raise SpecError(f"cell {cid!r} is not a cell of this grid.{suggest(str(cid), ids)} Cells: {ids}")
        return _load_cell(self.out, cid, self.manifest)

    def table(self, prob: float = 0.95) -> pd.DataFrame:
        """One row per cell: the exposure's HR posterior, power-scaling sensitivity, diagnostics."""
        rows = [_summary_row(self.grid, cell, self.fit(cell), prob) for cell in self.grid.cells()]
        tab = pd.DataFrame(rows).set_index("cell")
        tab.attrs.update(prob=prob, exposure=self.grid.exposure, synthetic=self.grid.synthetic, cause=self.grid.cause)
        return tab

    def __str__(self) -> str:
        t = self.table()
        shown = pd.DataFrame({
            "family": t["family"], "set": t["covariate_set"], "prior": t["prior"], "subset": t["subset"],
            "HR (median)": t["hr_median"].map("{:.3f}".format),
            "95% CrI": [f"{a:.3f} to {b:.3f}" for a, b in zip(t["hr_lower"], t["hr_upper"])],
            "P(HR>1)": t["p_hr_gt_1"].map("{:.3f}".format),
            "prior sens.": t["prior_sensitivity"].map("{:.3f}".format),
            "diagnosis": t["sensitivity_diagnosis"],
            "diagnostics": t["diagnostics_ok"].map({True: "ok", False: "FAILED"}),
        })
        if "adjusted_hr_median" in t:
            shown["bias-adjusted HR"] = [f"{m:.3f} ({a:.3f} to {b:.3f})" for m, a, b in
                                         zip(t["adjusted_hr_median"], t["adjusted_hr_lower"], t["adjusted_hr_upper"])]
        head = ("SYNTHETIC DATA: the grid's data are simulated (the spec says how), not patient data.\n"
                if self.grid.synthetic else "")
        notes = []
        if t["sensitivity_diagnosis"].str.contains("potential").any():
            notes.append("A 'potential' diagnosis: power-scaling sensitivity above 0.05 (Kallioinen et al., Stat Comput "
                         "2024): the prior dominates the data or conflicts with them in that cell.")
        if not t["diagnostics_ok"].all():
            notes.append("Cells marked FAILED did not pass the convergence diagnostics: their rows cannot be trusted.")
        lr = self.manifest["last_run"]
        if self.grid.cause is not None:
            kinds = set(t["estimand"])
            if "cause-specific HR" in kinds:
                notes.append(f"Cause-specific hazards: the other causes censor {self.grid.cause!r}; the HR is not a "
                             "ratio of cumulative incidences (see bc.CompetingRisks for those).")
            if "subdistribution HR" in kinds:
                notes.append(f"Subdistribution (Fine-Gray) cells: the SHR of {self.grid.cause!r}, whose risk set keeps "
                             "those with a competing event; an effect on its cumulative incidence, not on its rate.")
            if len(kinds) > 1:
                shown.insert(1, "estimand", t["estimand"].map({"cause-specific HR": "CS", "subdistribution HR": "SHR"}))
        return (f"{head}Sensitivity grid: {self._estimand()} in {len(t)} cells "
                f"({_count(lr['compilations'], 'compilation')} in the last run, {_count(lr['fitted'], 'cell')} "
                f"fitted, {lr['kept']} kept from before)\n" + shown.to_string(index=False)
                + "".join("\n" + n for n in notes))

    def _estimand(self) -> str:
        """The printed title's estimand: with competing risks, which causes censor the cause of interest."""
        if self.grid.cause is None or not any(not self.grid.subdistribution(c) for c in self.grid.cells()):
            return self.grid.estimand
        from ..causes import censoring_causes

        return (f"{self.grid.estimand} ({censoring_causes(self.grid.cause, self.grid.causes)} censors it"
                + (" in the cause-specific cells)" if any(map(self.grid.subdistribution, self.grid.cells())) else ")"))

    def plot(self, ax=None, prob: float = 0.95):
        """Forest plot of the exposure HR across cells; each covariate set's published CI beside its cells."""
        from ..plotting import plot_forest

        t = self.table(prob=prob)
        label = (t["family"] + " | " + t["covariate_set"] + " | " + t["prior"]
                 + np.where(t["subset"] == "all", "", " | " + t["subset"]))
        tab = t.set_index(label)[["hr_median", "hr_lower", "hr_upper", "diagnostics_ok"]]
        tab.attrs["prob"] = prob
        pub = None
        if self.grid.published:
            pub = pd.DataFrame([{k: self.grid.published.get(s, {}).get(k, np.nan) for k in ("hr", "lower", "upper")}
                                for s in t["covariate_set"]], index=tab.index)
        estimand = self.grid.estimand  # a long one (a cause's, both kinds of HR) gets a line of its own
        title = f"{estimand}{chr(10) if len(estimand) > 50 else ' '}across the sensitivity grid"
        if self.grid.synthetic:
            title += "\n(SYNTHETIC data: simulated, not patient data)"
        return plot_forest(tab, ax=ax, published=pub, title=title)


def _count(n: int, noun: str) -> str:
    """``1 compilation``, ``2 compilations``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
