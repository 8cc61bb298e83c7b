"""One self-contained HTML report of an analysis, to hand to a clinician or a co-author.

:func:`report` renders ``report.html.j2`` (Jinja2, autoescaped) from an
:class:`~bayescrt.reproduce.Analysis`: the data and what was done to them, Table 1, missing values,
the model and its priors, the exposure's HR under every covariate set beside any published estimate,
every set's diagnostics with each failed gate in red, and the forest plot and Kaplan-Meier curves as
embedded PNG images. The file needs nothing beside it (no scripts, no links). When the data are
synthetic, the title and every table say SYNTHETIC; when they are not, the word appears nowhere.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import validation
from .effects import kaplan_meier
from .priors import describe

MARK = "SYNTHETIC"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(rep) -> dict:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tab = rep.table()
    pub = tab[["published_hr", "published_lower", "published_upper"]].set_axis(["hr", "lower", "upper"], axis=1)
    title = f"{rep.hr_title} by covariate set"
    if rep.synthetic:  # on a second line when the first is long (the forest plot is narrow)
        title += ("\n" if len(title) > 50 else " ") + f"({MARK} data)"
    ax = rep.fits.plot_forest(published=pub if pub["hr"].notna().any() else None, title=title)
    forest = _png(ax.figure)
    col = rep.spec.columns
    groups = rep.group_labels()
    if rep.competing is not None:  # 1 - Kaplan-Meier would overstate each cause's risk: the cumulative incidence
        names = {f"{rep.fits.exposure} = {v}": str(groups[rep.cohort[rep.fits.exposure] == v].iloc[0]) for v in (0, 1)}
        fig = rep.competing.plot_incidence(group_labels=names, xlabel=f"{col['time']}",
                                           title="Standardised cumulative incidence by group, 95% band"
                                                 + (f" ({MARK} data)" if rep.synthetic else ""))
        return {"forest": forest, "cif": _png(fig), "km": None}
    from .plotting import plot_survival_curves

    curves = {}
    for g in sorted(groups.unique(), key=str):
        part = rep.cohort[groups == g]
        curves[str(g)] = kaplan_meier(part[col["time"]].to_numpy(float), part[col["event"]].to_numpy(float))
    _, ax = plt.subplots(figsize=(7, 4.5))
    plot_survival_curves(curves, ax=ax, title="Kaplan-Meier survival by group, 95% pointwise band"
                         + (f" ({MARK} data)" if rep.synthetic else ""),
                         xlabel=f"{col['time']}", ylabel="Survival")
    return {"forest": forest, "km": _png(ax.figure), "cif": None}


def _html_table(df: pd.DataFrame, *, classes: str = "", fmt=None) -> str:
    """A DataFrame as an HTML table (pandas escapes the cells)."""
    return df.to_html(classes=classes, border=0, na_rep="", escape=True, float_format=fmt)


def _hr_rows(rep) -> list[dict]:
    t = rep.table()
    rows = []
    for name, r in t.iterrows():
        covs = rep.fits.sets[name]
        rows.append({
            "set": name, "adjusted_for": covs if isinstance(covs, str) else (", ".join(covs) or "(none)"),
            "hr": f"{r.hr_median:.3f}", "interval": f"{r.hr_lower:.3f} to {r.hr_upper:.3f}",
            "p": f"{r.p_hr_gt_1:.3f}",
            "published": "" if np.isnan(r.published_hr) else f"{r.published_hr:.2f} ({r.published_lower:.2f} to "
                                                               f"{r.published_upper:.2f})",
            "ok": bool(r.diagnostics_ok),
        })
    return rows


def _worst(values: pd.Series, threshold: str) -> tuple[float, int]:
    """The value furthest on the wrong side of a gate's threshold (NaN first), and its position."""
    v = values.to_numpy(float)
    if np.isnan(v).any():
        k = int(np.flatnonzero(np.isnan(v))[0])
    else:
        k = int(np.argmax(v) if threshold.lstrip().startswith("<") else np.argmin(v))
    return v[k], k


def _fits(rep) -> list[tuple[str, object]]:
    """Every fit of the analysis with its name in words: the set, and with competing risks its cause and estimand."""
    if rep.competing is None:
        return list(rep.fits.fits.items())
    return [(f"{n}, {c}" + (", subdistribution" if e != "cause-specific HR" else ""), f)
            for (n, c, e), f in rep.competing.items()]


def _competing_rows(rep) -> list[dict]:
    rows = []
    for (name, cause, estimand), r in rep.competing_table().iterrows():
        rows.append({"set": name, "cause": cause, "estimand": estimand, "hr": f"{r.hr_median:.3f}",
                     "interval": f"{r.hr_lower:.3f} to {r.hr_upper:.3f}", "p": f"{r.p_hr_gt_1:.3f}",
                     "ok": bool(r.diagnostics_ok)})
    return rows


def _incidence_rows(rep) -> list[dict]:
    inc = rep.incidence_table()
    if inc is None:
        return []
    return [{"set": name, "cause": cause, "model": model, "time": f"{t:g}", "rd": f"{r.rd_median:+.3f}",
             "rd_interval": f"{r.rd_lower:+.3f} to {r.rd_upper:+.3f}", "ratio": f"{r.ratio_median:.3f}",
             "ratio_interval": f"{r.ratio_lower:.3f} to {r.ratio_upper:.3f}"}
            for (name, cause, model, t), r in inc.iterrows()]


def _diagnostics(rep) -> list[dict]:
    """Each set's gates; a pooled fit's per-imputation gates summarised by their worst imputation."""
    out = []
    for name, fit in _fits(rep):
        d = fit.diagnostics()
        every = [{"gate": g, "value": f"{r.value:.4g}", "threshold": str(r.threshold), "passed": bool(r.passed),
                  "failed": []}
                 for g, r in d.gates.iterrows()]
        gates, per_imputation = every, None
        split = d.gates.index.str.extract(r"^imputation (\d+): (.*)$")
        if split.notna().all().all() and len(d.gates):
            per_imputation = every
            frame = d.gates.reset_index(drop=True).assign(imputation=split[0].astype(int), gate=split[1])
            gates = []
            for gate, part in frame.groupby("gate", sort=False):
                value, k = _worst(part["value"], str(part["threshold"].iloc[0]))
                failed = part.loc[~part["passed"].astype(bool), "imputation"].tolist()
                gates.append({"gate": f"{gate}, worst of {len(part)} imputations (imputation "
                                      f"{part['imputation'].iloc[k]})", "value": f"{value:.4g}",
                              "threshold": str(part["threshold"].iloc[0]), "passed": not failed,
                              "failed": failed})
        out.append({"set": name, "ok": d.ok, "gates": gates, "per_imputation": per_imputation,
                    "notes": list(d.notes), "failures": d.failures})
    return out


def _priors(rep) -> list[dict]:
    out = []
    for name, fit in _fits(rep):
        rows = [{"covariate": p["covariate"], "prior": describe(p["given"]),
                 "original": describe(p["original"]) if p.get("original") and p["original"] != p["given"] else ""}
                for p in fit.priors]
        out.append({"set": name, "rows": rows})
    return out


def _data_summary(rep) -> list[tuple[str, str]]:
    col = rep.spec.columns
    df = rep.cohort
    t = df[col["time"]].to_numpy(float)
    items = []
    if rep.prepared is not None:
        items.append(("source", Path(rep.prepared.source).name))
    if rep.competing is not None:  # the event column codes the causes: count each
        from .causes import event_causes

        cr = rep.spec.competing
        codes, names = event_causes(df, col["event"], cr["causes"], cr["censored"])
        e = (codes > 0).astype(float)
        events = f"{int(e.sum()):,} ({100 * e.mean():.1f}%): " + ", ".join(
            f"{n} {int((codes == k).sum()):,}" for k, n in enumerate(names, start=1))
    else:
        e = df[col["event"]].to_numpy(float)
        events = f"{int(e.sum()):,} ({100 * e.mean():.1f}%)"
    items += [("rows", f"{len(df):,}"), ("events", events),
              (f"time to event or censoring ({col['time']})", f"median {np.median(t):.2f}, longest {t.max():.2f}"),
              ("exposure", f"{col['exposure']}: " + ", ".join(f"{g} {n:,}" for g, n in
                                                                 rep.group_labels().value_counts().sort_index().items()))]
    if rep.imputations:
        items.append(("imputations", f"{rep.imputations} completed data sets; a covariate set that uses an imputed "
                                     "column pools its fits' draws"))
    return items


def _template():
    from jinja2 import Environment, StrictUndefined, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    text = resources.files("bayescrt").joinpath("report.html.j2").read_text(encoding="utf-8")
    return env.from_string(text)


def render(rep) -> str:
    """The report of ``rep`` (an :class:`~bayescrt.reproduce.Analysis`) as one HTML string."""
    t1 = rep.table_one()
    miss = rep.prepared.missingness if rep.prepared is not None else None
    model = rep.spec.raw["model"]
    s = rep.fits.fits[next(iter(rep.fits.fits))].model
    context = {
        "synthetic": rep.synthetic, "mark": MARK, "title": rep.spec.title, "note": rep.note,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "spec": None if rep.made_in_python else rep.spec.name, "data_summary": _data_summary(rep),
        "steps": list(rep.prepared.steps) if rep.prepared is not None else [
            "cohort simulated from the spec's [cohort], calibrated to the published tables"],
        "table_one": _html_table(t1, classes="t1"),
        "missingness": None if miss is None else _html_table(miss, classes="miss", fmt=lambda v: f"{v:.1f}"),
        "family": model["family"], "options": {k: v for k, v in model.items() if k != "family"},
        "description": s.get("description", ""),
        "sets": {n: (c if isinstance(c, str) else ", ".join(c) or "(none)") for n, c in rep.fits.sets.items()},
        "exposure": rep.fits.exposure, "hr_rows": _hr_rows(rep),
        "published_any": bool(rep.table()["published_hr"].notna().any()),
        "hr_tables": {n: _html_table(f.hazard_ratios(), classes="hr", fmt=lambda v: f"{v:.3f}")
                      for n, f in _fits(rep)},
        "priors": _priors(rep), "diagnostics": _diagnostics(rep), "images": _figures(rep),
        "all_ok": rep.diagnostics_ok,
        "competing": None if rep.competing is None else {
            "cause": rep.competing.cause, "causes": rep.competing.causes, "rows": _competing_rows(rep),
            "incidence": _incidence_rows(rep)},
    }
    return _template().render(**context)


def report(rep, path, **describe_data) -> Path:
    """Write the HTML report of ``rep`` to ``path`` (its folder must exist); returns the path.

    ``rep``: an :class:`~bayescrt.reproduce.Analysis` (from :func:`~bayescrt.reproduce.reproduce` or
    :func:`~bayescrt.reproduce.analyse`), or the :class:`~bayescrt.covariate_sets.CovariateSetFits` of an
    analysis done in Python, with what the report says of its data as keyword arguments (``data``,
    ``time``, ``event``, ``title``, ``synthetic``, ``imputed``, ``steps``, ``published``, ...: see
    :meth:`~bayescrt.reproduce.Analysis.from_fits`)."""
    from .covariate_sets import CovariateSetFits
    from .errors import SpecError
    from .reproduce import Analysis

    if isinstance(rep, CovariateSetFits):
        rep = Analysis.from_fits(rep, **describe_data)
    elif not isinstance(rep, Analysis):
        raise SpecError(f"report: expected an Analysis (bc.analyse, bc.reproduce) or the result of "
                        f"bc.fit_covariate_sets, got {type(rep).__name__}")
    elif describe_data:
        raise SpecError(f"report: {sorted(describe_data)} describe the data of bc.fit_covariate_sets results; an "
                        "Analysis from a spec already knows its data: drop them")
    path = validation.output_file(path, "report")
    if Path(path).suffix.lower() not in (".html", ".htm"):
        raise SpecError(f"report {str(path)!r}: the report is HTML; give a file name ending in .html")
    html = render(rep)
    Path(path).write_text(html, encoding="utf-8")
    return Path(path)
