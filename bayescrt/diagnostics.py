"""Convergence gates for a fit, each against a stated threshold.

The gates follow Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat", and
Betancourt (2017), "A conceptual introduction to Hamiltonian Monte Carlo":

========================  ==============================  ===========================
gate                      passes when                     why
========================  ==============================  ===========================
R-hat (rank-normalised)   max over parameters < 1.01      chains agree
bulk ESS                  min >= 100 x chains             means, medians are stable
tail ESS (5% / 95%)       min >= 100 x chains             interval ends are stable
divergences               0 after warm-up                 no region the sampler missed
E-BFMI                    >= 0.3 in every chain           momentum resampling explores energy
========================  ==============================  ===========================

A fit with fewer than two chains cannot be checked for R-hat, and fails that
gate rather than passing it silently.

A fit by importance sampling from the Laplace approximation (``sampler="laplace"``,
:mod:`bayescrt.laplace`) has no trajectories: its gates are R-hat across its independent
chains, the Pareto ``k`` of every chain's weights (below ``min(1 - 1/log10(S), 0.7)`` for
``S`` proposals; Vehtari et al. 2024) and the importance-sampling ESS ``1 / sum(w^2)``, summed
over the chains, against the same ``100 x chains`` as the bulk ESS.
"""

from __future__ import annotations

import itertools

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

THRESHOLDS = {"rhat_max": 1.01, "ess_per_chain_min": 100, "divergences_max": 0, "bfmi_min": 0.3}


@dataclass
class DiagnosticReport:
    """The outcome of every convergence gate, with ``.ok`` False when any fails."""

    gates: pd.DataFrame  # one row per gate: value, threshold, passed
    parameters: pd.DataFrame  # per parameter: rhat, ess_bulk, ess_tail
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.gates["passed"].all())

    @property
    def failures(self) -> list[str]:
        return [f"{g}: {r.value} (needs {r.threshold})" for g, r in self.gates.iterrows() if not r.passed]

    def __str__(self) -> str:
        head = (
            "Diagnostics: all gates passed."
            if self.ok
            else "Diagnostics: FAILED. DO NOT TRUST THIS FIT: " + "; ".join(self.failures) + "."
        )
        lines = [head, ""]
        tab = self.gates.copy()
        tab["value"] = tab["value"].map(lambda v: f"{v:.4g}")
        tab["passed"] = tab["passed"].map({True: "yes", False: "NO"})
        lines.append(tab.to_string())
        lines += ["", self.parameters.to_string(float_format=lambda v: f"{v:.4g}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "gates": {
                g: {"value": _plain(r.value), "threshold": r.threshold, "passed": bool(r.passed)}
                for g, r in self.gates.iterrows()
            },
            "notes": list(self.notes),
        }


def _round(v: float):
    return v if np.isnan(v) else round(v)


def _plain(v):
    return float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (np.integer, int)) else v


def diagnose(idata: xr.DataTree, var_name: str | list[str] = "log_hr", thresholds: dict | None = None) -> DiagnosticReport:
    """Run every gate on ``idata.posterior[var_name]`` (or several variables) and the sampler statistics."""
    import arviz_stats as az  # ArviZ's statistics alone: importing arviz also loads its plots (~1 s)

    th = {**THRESHOLDS, **(thresholds or {})}
    arrs, names = [], []
    for var in [var_name] if isinstance(var_name, str) else list(var_name):
        da = idata["posterior"][var]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        arrs.append(da.transpose("chain", "draw", *extra).values.reshape(da.sizes["chain"], da.sizes["draw"], -1))
        labels = [", ".join(map(str, combo)) for combo in itertools.product(*(da[d].values for d in extra))] \
            if extra else [var]
        names += labels if isinstance(var_name, str) or not extra else [f"{var}[{c}]" for c in labels]
    arr = np.concatenate(arrs, axis=-1)
    chains = arr.shape[0]
    notes = []
    if chains >= 2:
        rhat = np.asarray(az.rhat(arr, chain_axis=0, draw_axis=1), dtype=float)
    else:
        rhat = np.full(arr.shape[-1], np.nan)
        notes.append("R-hat needs at least 2 chains; with 1 chain convergence cannot be checked")
    stats = idata["sample_stats"]
    if "pareto_k" in stats:  # resampled draws: the importance ESS, not an autocorrelation one (never computed)
        return _diagnose_importance(rhat, stats, names, var_name, th, chains, notes)
    ess_bulk = np.asarray(az.ess(arr, chain_axis=0, draw_axis=1, method="bulk"), dtype=float)
    ess_tail = np.asarray(az.ess(arr, chain_axis=0, draw_axis=1, method="tail", prob=0.05), dtype=float)
    for key in ("diverging", "energy"):
        if key not in stats:
            notes.append(f"sample_stats has no {key!r}: its gate cannot be checked and counts as failed")
    div = int(stats["diverging"].values.sum()) if "diverging" in stats else float("nan")
    if "energy" in stats:
        energy = stats["energy"].values
        bfmi = np.square(np.diff(energy, axis=1)).sum(axis=1) / np.square(
            energy - energy.mean(axis=1, keepdims=True)).sum(axis=1)
    else:
        bfmi = np.array([np.nan])

    ess_min = th["ess_per_chain_min"] * chains
    # a value that cannot be computed (NaN: constant draws, a missing statistic) fails its gate: the worst value
    # is shown as NaN, never the best of the finite ones
    worst_rhat = float("nan") if np.isnan(rhat).any() else float(np.max(rhat))
    worst_bulk = float("nan") if np.isnan(ess_bulk).any() else float(np.min(ess_bulk))
    worst_tail = float("nan") if np.isnan(ess_tail).any() else float(np.min(ess_tail))
    worst_bfmi = float("nan") if np.isnan(bfmi).any() else float(np.min(bfmi))
    rows = [
        ("R-hat (max)", round(worst_rhat, 4), f"< {th['rhat_max']}", worst_rhat < th["rhat_max"]),
        ("bulk ESS (min)", _round(worst_bulk), f">= {ess_min}", worst_bulk >= ess_min),
        ("tail ESS (min)", _round(worst_tail), f">= {ess_min}", worst_tail >= ess_min),
        ("divergences", div, f"<= {th['divergences_max']}", div <= th["divergences_max"]),
        ("E-BFMI (min)", round(worst_bfmi, 3), f">= {th['bfmi_min']}", worst_bfmi >= th["bfmi_min"]),
    ]
    gates = _gate_table(rows, notes)
    params = pd.DataFrame({"rhat": rhat, "ess_bulk": ess_bulk, "ess_tail": ess_tail}, index=pd.Index(names, name=var_name if isinstance(var_name, str) else "parameter"))
    return DiagnosticReport(gates=gates, parameters=params, notes=notes)


def _gate_table(rows: list, notes: list) -> pd.DataFrame:
    """The gates as a table from ``(gate, value, threshold, passed)`` rows: a value that could not be computed
    (NaN) fails its gate, with a note saying so."""
    for gate, value, _, _ in rows:
        if isinstance(value, float) and np.isnan(value):
            notes.append(f"{gate} could not be computed (NaN: constant or non-finite draws, or a missing statistic): "
                         "the gate counts as failed")
    return pd.DataFrame(
        [(g, v, t, bool(p) and not (isinstance(v, float) and np.isnan(v))) for g, v, t, p in rows],
        columns=["gate", "value", "threshold", "passed"],
    ).set_index("gate")


def _diagnose_importance(rhat, stats, names, var_name, th, chains, notes) -> DiagnosticReport:
    """The gates of a Laplace importance-sampling fit (module docstring): R-hat, Pareto k, importance ESS."""
    from .laplace import OVERSAMPLE, pareto_k_threshold

    k = np.asarray(stats["pareto_k"].values, float)
    ess = np.asarray(stats["importance_ess"].values, float)
    proposals = int(stats.attrs.get("proposals_per_chain", 0)) or OVERSAMPLE * stats.sizes.get("draw", 1)
    k_max = pareto_k_threshold(proposals)
    worst_rhat = float("nan") if np.isnan(rhat).any() else float(np.max(rhat))
    worst_k = float("nan") if np.isnan(k).any() else float(np.max(k))
    total = float("nan") if np.isnan(ess).any() else float(np.sum(ess))
    ess_min = th["ess_per_chain_min"] * chains
    rows = [
        ("R-hat (max)", round(worst_rhat, 4), f"< {th['rhat_max']}", worst_rhat < th["rhat_max"]),
        ("Pareto k (max)", round(worst_k, 3), f"< {k_max:.3f}", worst_k < k_max),
        ("importance ESS", _round(total), f">= {ess_min}", total >= ess_min),
    ]
    gates = _gate_table(rows, notes)
    # the resampled draws repeat some proposals, which an autocorrelation ESS would count as distinct: every
    # parameter's ESS is the importance sampler's, at most the number of draws kept
    n_kept = chains * int(stats.sizes.get("draw", 1))
    per = np.full(len(rhat), min(total, n_kept) if np.isfinite(total) else np.nan)
    notes.append("importance sampling has one ESS for every parameter: the ESS columns below show the importance ESS "
                 "of the chains together (at most the draws kept)")
    params = pd.DataFrame({"rhat": rhat, "ess_bulk": per, "ess_tail": per},
                          index=pd.Index(names, name=var_name if isinstance(var_name, str) else "parameter"))
    return DiagnosticReport(gates=gates, parameters=params, notes=notes)


def diagnose_blocks(idata: xr.DataTree, var_name, block: int, thresholds: dict | None = None) -> DiagnosticReport:
    """The gates of each block of ``block`` consecutive chains on its own (the imputations of a pooled fit),
    in one report: ok only when every block passes; its gates are named ``imputation k: <gate>``."""
    n = idata["posterior"].sizes["chain"]
    reports = []
    for k, a in enumerate(range(0, n, block)):
        part = xr.DataTree.from_dict({g: idata[g].to_dataset().isel(chain=slice(a, a + block))
                                      for g in ("posterior", "sample_stats")})
        reports.append(diagnose(part, var_name, thresholds))
    gates = pd.concat([r.gates.rename(index=lambda g, k=k: f"imputation {k}: {g}") for k, r in enumerate(reports)])
    params = pd.concat({k: r.parameters for k, r in enumerate(reports)}, names=["imputation"])
    notes = [f"imputation {k}: {n_}" for k, r in enumerate(reports) for n_ in r.notes]
    return DiagnosticReport(gates, params, notes)
