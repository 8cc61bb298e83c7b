"""Consistency checks on the registry: do a paper's numbers agree with each other?

Each check allows for the rounding of the printed figures (half a unit in the
last printed decimal) and reports what it finds; nothing is corrected.

- group sizes against the total, and printed percentages against counts;
- counts: events no more than patients, percentages against events / n, and a
  "no significant difference" against Fisher's exact test on the counts;
- estimates: lower < point < upper, the point at the centre of its interval
  (log scale for ratios), the printed p-value against the one the interval
  implies, and an inverted estimate against the numbers the paper printed;
- means: SDs positive, one value per timepoint.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .likelihoods import se_from_ci
from .registry import Result, Study, studies
from .schema import RATIO_ESTIMANDS


@dataclass(frozen=True)
class Problem:
    study: str
    result: str        # "" for a study-level problem
    check: str
    severity: str      # "error": the numbers cannot all be right; "warning": beyond rounding, could be a method detail
    message: str

    def __str__(self) -> str:
        where = self.study + (f"/{self.result}" if self.result else "")
        return f"[{self.severity}] {where} ({self.check}): {self.message}"


def decimals(x: float) -> int:
    """Decimals as printed (TOML keeps 35.7 as 35.7; an integer has none)."""
    if isinstance(x, int):
        return 0
    text = np.format_float_positional(float(x), trim="-")  # never e-notation: 1e-05 is 0.00001
    return len(text.split(".")[1]) if "." in text else 0


def _half_unit(x: float, d: int | None = None) -> float:
    return 0.5 * 10.0 ** -(decimals(x) if d is None else d)


def _percent_problem(pct: float, k: float, n: float) -> str | None:
    """None when ``pct`` is ``100 k / n`` rounded as printed, else a sentence saying how far off it is."""
    exact = 100.0 * k / n
    tol = _half_unit(pct)
    if abs(exact - pct) <= tol + 1e-9:
        return None
    d = decimals(pct)
    trunc = math.floor(exact * 10**d + 1e-9) / 10**d
    how = " (consistent with truncating, not rounding)" if abs(trunc - pct) < 1e-9 else ""
    return f"printed {pct:g}% but {k:g}/{n:g} = {exact:.{d + 2}f}%, which rounds to {exact:.{d}f}%{how}"


def _groups_vs_total(where: tuple[str, str], n: dict, percent: dict) -> list[Problem]:
    out = []
    if {"exposed", "reference", "total"} <= n.keys():
        s = n["exposed"] + n["reference"]
        if s != n["total"]:
            gap = n["total"] - s
            out.append(Problem(*where, "groups vs total", "error",
                               f"{n['exposed']:,} + {n['reference']:,} = {s:,} patients in the two groups, but the "
                               f"total is {n['total']:,}: {abs(gap):,} ({abs(gap) / n['total']:.1%}) "
                               f"{'unaccounted for' if gap > 0 else 'counted twice'}."))
    for g, pct in percent.items():
        if g in n and "total" in n:
            msg = _percent_problem(pct, n[g], n["total"])
            if msg:
                out.append(Problem(*where, "percent vs counts", "warning", f"{g} group: {msg}."))
    return out


def _baseline(study: Study) -> list[Problem]:
    out = []
    total = study.get("n", {})
    for row in study.get("baseline", []):
        if row["statistic"] != "percent":
            continue
        for g, k in row.get("n", {}).items():
            denom = total.get("total" if g == "overall" else g)
            if g in row and denom:
                msg = _percent_problem(row[g], k, denom)
                if msg:
                    out.append(Problem(study.id, "", "percent vs counts", "warning",
                                       f"baseline {row['characteristic']!r} ({g}): {msg}."))
    return out


def _counts(r: Result) -> list[Problem]:
    out, where = [], (r.study, r["id"])
    ev, n = r["events"], r.n
    for g in ("exposed", "reference"):
        if g not in n:
            out.append(Problem(*where, "counts", "warning", f"no group size for the {g} group; counts cannot be checked."))
            continue
        if not 0 <= ev[g] <= n[g]:
            out.append(Problem(*where, "counts", "error", f"{g} group: {ev[g]} events among {n[g]} patients."))
        elif g in r.get("percent", {}):
            msg = _percent_problem(r["percent"][g], ev[g], n[g])
            if msg:
                out.append(Problem(*where, "percent vs counts", "warning", f"{g} group: {msg}."))
    if r.get("significant") is not None and {"exposed", "reference"} <= n.keys():
        table = [[ev["exposed"], n["exposed"] - ev["exposed"]], [ev["reference"], n["reference"] - ev["reference"]]]
        p = stats.fisher_exact(table).pvalue
        if (p < 0.05) != r["significant"]:
            out.append(Problem(*where, "p-value vs counts", "warning",
                               f"the paper calls the difference {'' if r['significant'] else 'not '}significant, but "
                               f"Fisher's exact test on the printed counts gives p = {p:.3g}."))
    return out


def _box(fig: dict, d: int):
    h = 0.5 * 10.0**-d
    return [np.linspace(fig[k] - h, fig[k] + h, 5) for k in ("value", "lower", "upper")]


def _estimate(r: Result) -> list[Problem]:
    out, where = [], (r.study, r["id"])
    v, lo, hi = r["value"], r["lower"], r["upper"]
    if not lo < hi:
        return [Problem(*where, "interval vs point", "error", f"lower bound {lo:g} is not below upper bound {hi:g}.")]
    if not lo <= v <= hi:
        return [Problem(*where, "interval vs point", "error", f"point {v:g} lies outside its interval {lo:g} to {hi:g}.")]
    d = r.get("decimals", max(decimals(v), decimals(lo), decimals(hi)))
    log = r.estimand in RATIO_ESTIMANDS
    f = np.log if log else (lambda x: np.asarray(x, float))
    rep = r.get("reported")
    # the printed figures carry the rounding: check an inverted estimate on the numbers the paper printed
    fig = rep if rep and {"value", "lower", "upper"} <= rep.keys() else r.raw
    fd = max(decimals(fig["value"]), decimals(fig["lower"]), decimals(fig["upper"])) if fig is rep else d
    vv, ll, uu = _box(fig, fd)
    if log and min(ll) <= 0:
        ll = ll[ll > 0]
    grid = np.array(list(itertools.product(vv, ll, uu)))
    fv, fl, fu = (f(grid[:, i]) for i in range(3))
    asym = (fv - (fl + fu) / 2) / ((fu - fl) / 2)  # 0 when the point is the interval's centre
    if not (asym.min() <= 0.1 and asym.max() >= -0.1):
        centre = math.exp((math.log(lo) + math.log(hi)) / 2) if log else (lo + hi) / 2
        a = float(asym[np.argmin(np.abs(asym))])
        out.append(Problem(*where, "interval vs point", "warning",
                           f"point {v:g} is not at the centre of its interval {lo:g} to {hi:g} "
                           f"{'on the log scale ' if log else ''}(centre {centre:.3g}; off by at least {abs(a):.0%} "
                           f"of the half-width after rounding): a misprinted bound or a non-Wald interval."))
    se = se_from_ci(grid[:, 1], grid[:, 2], r.level, log)
    p = 2 * stats.norm.sf(np.abs(fv) / se)
    if "p_value" in r.raw:
        pr, rel = r["p_value"], r.get("p_relation", "=")
        tol = _half_unit(pr)
        ok = {"=": p.min() - tol <= pr <= p.max() + tol, "<": p.min() < pr, ">": p.max() > pr}[rel]
        if not ok:
            out.append(Problem(*where, "p-value vs interval", "warning",
                               f"printed p {rel} {pr:g}, but the interval implies p between {p.min():.3g} and "
                               f"{p.max():.3g} (Wald test, allowing for rounding of the printed figures)."))
    if r.get("significant") is not None and ((p.max() < 1 - r.level) != r["significant"]) and ((p.min() < 1 - r.level) != r["significant"]):
        out.append(Problem(*where, "significance vs interval", "warning",
                           f"the paper calls it {'' if r['significant'] else 'not '}significant, but the interval "
                           f"{lo:g} to {hi:g} {'excludes' if r['significant'] is False else 'includes'} the null."))
    if rep:
        if log and {"value", "lower", "upper"} <= rep.keys():
            inv = {"value": 1 / rep["value"], "lower": 1 / rep["upper"], "upper": 1 / rep["lower"]}
        elif {"value", "lower", "upper"} <= rep.keys():
            inv = {"value": -rep["value"], "lower": -rep["upper"], "upper": -rep["lower"]}
        else:
            inv = {}
        for k, x in inv.items():
            if abs(x - r[k]) > _half_unit(0, d) + 1e-9:
                out.append(Problem(*where, "inverted direction", "error",
                                   f"stored {k} {r[k]:g} is not the inverse of the printed {rep.get('direction', '')} "
                                   f"figure (inverse {x:.4g})."))
    return out


def _means(r: Result) -> list[Problem]:
    out = []
    for g, sds in r.get("sd", {}).items():
        if any(s <= 0 for s in sds):
            out.append(Problem(r.study, r["id"], "means", "error", f"{g} group: a standard deviation is not positive: {sds}."))
    if "sd" not in r.raw:
        out.append(Problem(r.study, r["id"], "means", "warning",
                           "no standard deviations printed: the means cannot be re-analysed or tested."))
    return out


def check_study(study: Study) -> list[Problem]:
    """Every consistency problem found in one study's entry."""
    out = _groups_vs_total((study.id, ""), study.get("n", {}), study.get("percent", {}))
    out += _baseline(study)
    for r in study.results.values():
        if "n" in r.raw:
            out += _groups_vs_total((study.id, r["id"]), r["n"], {})
        out += {"counts": _counts, "estimate": _estimate, "means": _means}.get(r.kind, lambda _: [])(r)
    return out


def check(study_ids=None) -> pd.DataFrame:
    """Run the checks on the registry (or the named studies): one row per problem found."""
    reg = studies()
    ids = list(reg) if study_ids is None else [study_ids] if isinstance(study_ids, str) else list(study_ids)
    problems = [p for sid in ids for p in check_study(reg[sid])]
    return pd.DataFrame([asdict(p) for p in problems],
                        columns=["study", "result", "check", "severity", "message"])
