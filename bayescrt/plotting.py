"""Plots. Each takes tables (or DataTrees), never models, and computes no statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


HR_TICKS = (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.75, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.25, 1.4, 1.5, 2.0, 3.0, 4.0,
            5.0, 10.0)


def _hr_ticks(ax) -> None:
    """Round hazard ratios as the ticks of a log axis (matplotlib's log ticks leave 1 to 2 unlabelled)."""
    import matplotlib.ticker as mticker

    lo, hi = ax.get_xlim()
    inside = [t for t in HR_TICKS if lo <= t <= hi]
    gap = (np.log(hi) - np.log(lo)) / 9  # at most about nine labels, evenly spread on the log scale
    anchor = min(inside, key=lambda t: abs(np.log(t))) if inside else 1.0  # 1, or the tick nearest it
    ticks = [anchor]
    for side in (inside[inside.index(anchor) + 1:], inside[:inside.index(anchor)][::-1]) if inside else ():
        last = anchor
        for t in side:
            if abs(np.log(t) - np.log(last)) >= gap:
                ticks.append(t)
                last = t
    ticks = sorted(ticks)
    enough = len(ticks) >= 3  # else (a very narrow axis) matplotlib's own ticks, every one labelled
    if enough:
        ax.xaxis.set_major_locator(mticker.FixedLocator(ticks))
        ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter() if enough else mticker.FuncFormatter(lambda v, _: f"{v:g}"))


def plot_forest(table: pd.DataFrame, *, ax=None, published=None, title: str | None = None,
                xlabel: str = "Hazard ratio (log scale)"):
    """Forest plot of HR medians and intervals, one row per index entry of ``table``.

    ``table`` needs ``hr_median``, ``hr_lower`` and ``hr_upper``; an optional
    ``diagnostics_ok`` column marks failed fits in red. ``published`` (a
    DataFrame with the same index and columns ``hr``, ``lower``, ``upper``)
    draws reported estimates as open squares just below each posterior.
    Returns the matplotlib Axes; the data drawn are ``ax.forest_data``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 1.6 + 0.6 * len(table)))
    y = np.arange(len(table))[::-1].astype(float)
    ok = table["diagnostics_ok"].to_numpy() if "diagnostics_ok" in table else np.ones(len(table), bool)
    for yi, (_, row), good in zip(y, table.iterrows(), ok):
        color = "C0" if good else "red"
        ax.plot([row.hr_lower, row.hr_upper], [yi, yi], color=color, lw=2.5, solid_capstyle="butt")
        ax.plot(row.hr_median, yi, "o", color=color, ms=7)
    labels = [f"{i}" + ("" if g else "\n(diagnostics FAILED)") for i, g in zip(table.index, ok)]
    drawn = table[["hr_median", "hr_lower", "hr_upper"]].copy()
    level = f"{100 * table.attrs.get('prob', 0.95):g}%"
    handles = [plt.Line2D([], [], color="C0", marker="o", lw=2.5, label=f"posterior median, {level} credible interval")]
    if published is not None:
        pub = pd.DataFrame(published).reindex(table.index)
        for yi, (_, row) in zip(y, pub.iterrows()):
            if pd.notna(row.get("hr")):
                ax.plot([row.lower, row.upper], [yi - 0.25, yi - 0.25], color="0.35", lw=1.5)
                ax.plot(row.hr, yi - 0.25, "s", mfc="white", mec="0.2", ms=7)
        drawn = drawn.join(pub.add_prefix("published_"))
        handles.append(plt.Line2D([], [], color="0.35", marker="s", mfc="white", mec="0.2", lw=1.5,
                                  label="published estimate, 95% CI"))
    ax.axvline(1.0, color="0.5", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.set_ylim(y.min() - 0.7, y.max() + 0.5)
    ax.set_xlabel(xlabel)
    ax.margins(x=0.05)
    _hr_ticks(ax)
    from matplotlib.transforms import offset_copy

    # a fixed distance below the axes (under the x label), whatever the figure's height
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), fontsize=8,
              frameon=False, bbox_transform=offset_copy(ax.transAxes, fig=ax.figure, y=-30, units="points"))
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    ax.forest_data = drawn
    return ax


def plot_survival_curves(curves: dict, *, ax=None, title: str | None = None, xlabel: str = "Years",
                         ylabel: str = "Survival"):
    """Step plots of survival curves, e.g. ``{"upgrade": km_table, "de novo": km_table}``.

    Each table needs ``time`` and ``survival`` (and optionally ``se`` for a
    pointwise 95% band), as returned by :func:`bayescrt.effects.kaplan_meier`.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for k, (label, tab) in enumerate(curves.items()):
        ax.step(tab["time"], tab["survival"], where="post", color=f"C{k}", label=label)
        if "se" in tab:
            lo = np.clip(tab["survival"] - 1.96 * tab["se"], 0, 1)
            hi = np.clip(tab["survival"] + 1.96 * tab["se"], 0, 1)
            ax.fill_between(tab["time"], lo, hi, step="post", color=f"C{k}", alpha=0.2, lw=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax


def plot_comparison(density: pd.DataFrame, *, published, posterior_median: float, ax=None, title: str | None = None,
                    estimand: str = "HR"):
    """Posterior density of the log-HR (drawn against the HR on a log axis) with the published point and CI.

    ``density`` has columns ``hr``, ``posterior`` and ``published`` (densities on
    the log-HR scale); ``published`` has ``hr``, ``lower``, ``upper``, ``level``. ``estimand``: ``"HR"``, or
    ``"SHR"`` for subdistribution hazard ratios (the axis and legend say which).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(density["hr"], density["posterior"], color="C0", alpha=0.35, lw=0)
    ax.plot(density["hr"], density["posterior"], color="C0", label="posterior density")
    ax.plot(density["hr"], density["published"], color="0.3", ls=":",
            label="published estimate as a normal on the log scale")
    top = float(max(density["posterior"].max(), density["published"].max()))
    y = -0.06 * top
    ax.plot([published.lower, published.upper], [y, y], color="0.2", lw=2,
            label=f"published {estimand}, {published.level:.0%} CI")
    ax.plot(published.hr, y, "s", mfc="white", mec="0.2", ms=8)
    ax.axvline(posterior_median, color="C0", lw=1, ls="--", label="posterior median")
    ax.axvline(1.0, color="0.6", lw=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(2 * y, 1.1 * top)
    ax.set_yticks([])
    ax.set_xlabel(("Subdistribution hazard ratio" if estimand == "SHR" else "Hazard ratio") + " (log scale)")
    ax.set_ylabel(f"Density (log-{estimand} scale)")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax


def plot_meta_forest(studies: pd.DataFrame, summary: pd.DataFrame, *, log_scale: bool = True, ax=None,
                     title: str | None = None):
    """Meta-analysis forest plot: each study's observed estimate and CI (open square) above its shrunken
    posterior (dot), then the pooled effect (diamond) and the interval for a new study (bar).

    ``studies`` as from ``MetaFit.study_estimates``; ``summary`` as from
    ``MetaFit.summary`` (model scale). Log-scale effects are drawn as ratios.
    """
    import matplotlib.pyplot as plt

    f = (lambda v: np.exp(np.asarray(v, float))) if log_scale else (lambda v: np.asarray(v, float))
    k = len(studies)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2.2 + 0.45 * (k + 2)))
    y = np.arange(k)[::-1] + 2.0
    for yi, (_, r) in zip(y, studies.iterrows()):
        ax.plot(f([r.observed_lower, r.observed_upper]), [yi + 0.15] * 2, color="0.35", lw=1.3)
        ax.plot(f(r.observed), yi + 0.15, "s", mfc="white", mec="0.2", ms=4 + 6 * math.sqrt(r.weight_pct / 100))
        ax.plot(f([r.shrunken_lower, r.shrunken_upper]), [yi - 0.15] * 2, color="C0", lw=2)
        ax.plot(f(r.shrunken_median), yi - 0.15, "o", color="C0", ms=5)
    mu, new = summary.loc["mu"], summary.loc["mu_new"]
    ax.fill(f([mu["lower"], mu["median"], mu["upper"], mu["median"]]), [1, 1.25, 1, 0.75], color="C3", zorder=3)
    ax.plot(f([new["lower"], new["upper"]]), [0.3, 0.3], color="C3", lw=2, alpha=0.6)
    ax.axvline(f(mu["median"]), color="C3", lw=0.8, ls=":")
    ax.axvline(f(0.0), color="0.5", ls="--", lw=1)
    prob = f"{100 * summary.attrs.get('prob', 0.95):g}%"
    ax.set_yticks(list(y) + [1.0, 0.3], list(studies.index) + [f"pooled (mu), {prob}", f"new study, {prob}"])
    ax.set_ylim(-0.3, y.max() + 0.7)
    if log_scale:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        for mantissas in ((1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1,)):
            ticks = [m * 10.0**e for e in range(-4, 5) for m in mantissas if lo <= m * 10.0**e <= hi]
            if len(ticks) <= 9:
                break
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Ratio (log scale)" if log_scale else "Effect")
    handles = [plt.Line2D([], [], color="0.35", marker="s", mfc="white", mec="0.2", label=f"observed, {prob} CI"),
               plt.Line2D([], [], color="C0", marker="o", lw=2, label=f"shrunken, {prob} CrI"),
               plt.Line2D([], [], color="C3", marker="D", lw=0, label="pooled"),
               plt.Line2D([], [], color="C3", lw=2, alpha=0.6, label="new study")]
    ax.figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout(rect=(0, 0.05, 1, 1))
    ax.forest_data = studies
    return ax


def _group_label(exposure, value, labels):
    if labels is not None and value in labels:
        return str(labels[value])
    return "all subjects" if value == "all" or exposure is None else f"{exposure} = {value}"


def plot_standardised_survival(table: pd.DataFrame, *, ax=None, labels: dict | None = None, title: str | None = None,
                               xlabel: str = "Time", ylabel: str = "Standardised survival"):
    """Standardised survival curves, one per exposure value: posterior median and credible band.

    ``table`` as from :func:`bayescrt.absolute.standardised_survival`
    (columns ``exposure``, ``time``, ``median``, ``lower``, ``upper``); Cox
    curves (``attrs["curve"] == "step"``) are drawn as steps. ``labels`` maps
    an exposure value to its legend text. Returns the Axes; the data drawn are
    ``ax.standardised_data``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    step = table.attrs.get("curve") == "step"
    level = f"{100 * table.attrs.get('prob', 0.95):g}%"
    exposure = table.attrs.get("exposure")
    for k, (value, tab) in enumerate(table.groupby("exposure", sort=True)):
        tab = tab.sort_values("time")
        color = f"C{k}"
        ax.plot(tab["time"], tab["median"], color=color, lw=2, drawstyle="steps-post" if step else "default",
                label=f"{_group_label(exposure, value, labels)}: median, {level} band")
        ax.fill_between(tab["time"], tab["lower"], tab["upper"], step="post" if step else None, color=color,
                        alpha=0.2, lw=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(frameon=False, loc="best")
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    ax.standardised_data = table.copy()
    return ax


def plot_ppc_km(table: pd.DataFrame, *, ax=None, labels: dict | None = None, max_curves: int | None = None,
                title: str | None = None, xlabel: str = "Time", ylabel: str = "Survival"):
    """Posterior predictive Kaplan-Meier check: simulated curves, their band and the observed curve.

    ``table`` as from :func:`bayescrt.absolute.ppc_km`: per group, the
    simulated Kaplan-Meier curves (``sim_*`` columns, thin), the pointwise
    band (``lower``, ``upper``, shaded) and the observed Kaplan-Meier curve
    (``observed``, thick, black edge); the legend gives the share of times at
    which the observed curve lies inside the band (``attrs["coverage"]``)
    and the global rank test's p-value (``attrs["p_value"]``).
    ``max_curves`` limits the simulated curves drawn per group. Returns the
    Axes; the data drawn are ``ax.ppc_data``.
    """
    import matplotlib.pyplot as plt

    import matplotlib.patheffects as pe
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    sims = [c for c in table.columns if c.startswith("sim_")][:max_curves]
    level = f"{100 * table.attrs.get('prob', 0.9):g}%"
    coverage = table.attrs.get("coverage", {})
    n_all = table.attrs.get("n_sims", len(sims))  # the band is from all of them, even when fewer are drawn
    shown = f"{len(sims)}" if len(sims) == n_all else f"{len(sims)} of {n_all}"
    exposure = table.attrs.get("exposure")
    handles = []
    for k, (group, tab) in enumerate(table.groupby("group", sort=False)):
        tab = tab.sort_values("time")
        color = f"C{k}"
        for c in sims:
            ax.plot(tab["time"], tab[c], color=color, lw=0.6, alpha=0.15, drawstyle="steps-post")
        ax.fill_between(tab["time"], tab["lower"], tab["upper"], step="post", color=color, alpha=0.25, lw=0)
        edged = [pe.Stroke(linewidth=3.4, foreground="black"), pe.Normal()]
        ax.plot(tab["time"], tab["observed"], color=color, lw=1.8, drawstyle="steps-post", path_effects=edged)
        name = _group_label(exposure, group, labels)
        cov = coverage.get(str(group))
        handles.append(plt.Line2D([], [], color=color, lw=1.8, path_effects=edged,
                                  label=f"{name}: observed KM" + ("" if cov is None else
                                                                  f" (inside the band at {100 * cov:.0f}% of times)")))
        handles.append(Patch(color=color, alpha=0.25, label=f"{name}: {shown} simulated KMs, {level} band"))
    if "p_value" in table.attrs:
        handles.append(plt.Line2D([], [], ls="none", label=f"global rank test: p = {table.attrs['p_value']:.3g} "
                                                            f"({n_all} simulations)"))
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(handles=handles, frameon=False, loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    ax.ppc_data = table.copy()
    return ax


def plot_cumulative_incidence(table: pd.DataFrame, *, axes=None, title: str | None = None, xlabel: str = "Time",
                              observed: dict | None = None):
    """Cumulative incidence curves, one panel per cause, one line per group: posterior median and credible band.

    ``table`` as from :meth:`bayescrt.competing.CompetingRisksFit.cumulative_incidence` (columns ``cause``,
    ``group``, ``time``, ``cif_median``, ``cif_lower``, ``cif_upper``). ``observed``: ``{(cause, group):
    (times, values)}`` drawn as dashed steps (e.g. Aalen-Johansen estimates). Returns the Axes."""
    import matplotlib.pyplot as plt

    causes = list(dict.fromkeys(table["cause"]))
    if axes is None:
        _, axes = plt.subplots(1, len(causes), figsize=(5.2 * len(causes), 4.2), sharey=True, squeeze=False)
        axes = axes[0]
    axes = list(np.atleast_1d(axes))
    level = f"{100 * table.attrs.get('prob', 0.95):g}%"
    top = float(table["cif_upper"].max())
    for ax, cause in zip(axes, causes):
        for k, (group, tab) in enumerate(table[table["cause"] == cause].groupby("group", sort=False)):
            tab = tab.sort_values("time")
            ax.plot(tab["time"], tab["cif_median"], color=f"C{k}", lw=2, label=f"{group}: median, {level} band")
            ax.fill_between(tab["time"], tab["cif_lower"], tab["cif_upper"], color=f"C{k}", alpha=0.2, lw=0)
            if observed and (cause, group) in observed:
                t, v = observed[(cause, group)]
                ax.step(t, v, where="post", color=f"C{k}", ls="--", lw=1, label=f"{group}: Aalen-Johansen")
        ax.set_title(f"{cause}")
        ax.set_xlabel(xlabel)
        ax.set_xlim(left=0)
        ax.set_ylim(0, min(1.0, 1.15 * top + 0.01))
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    axes[0].set_ylabel("Cumulative incidence")
    if title:
        axes[0].figure.suptitle(title)
    axes[0].figure.tight_layout()
    return axes
