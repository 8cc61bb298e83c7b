"""Bayesian re-analysis of a study's published summaries.

For every result the registry holds, the posterior of the effect (exposed vs
reference) from the likelihood its summary supports (see ``likelihoods``),
with the probability that the effect lies in the result's region of practical
equivalence (ROPE). Where a paper says "no significant difference", that
probability shows whether the data establish equivalence or merely fail to
rule out a difference. Results that cannot be re-analysed (means without SDs)
are listed with the reason, not dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import validation
from ..errors import SpecError
from ..summaries import central_interval
from .likelihoods import AbsZ, GroupCounts, MeanDifference, NormalEstimate, NormalPrior
from .registry import Result, Study, get
from .schema import RATIO_ESTIMANDS

DEFAULT_PRIOR = NormalPrior(0.0, 1.0)   # on the log ratio: 95% of the prior mass between 0.14 and 7.1
DEFAULT_RATIO_ROPE = (0.9, 1 / 0.9)
COLUMNS = ["endpoint", "quantity", "median", "lower", "upper", "p_gt_null", "rope", "p_in_rope", "published",
           "verdict"]


@dataclass
class ResultPosterior:
    """The posterior of one result's effect, its summary row and the assumptions behind it."""

    result: Result
    quantity: str
    ratio: bool                 # draws are log ratios (else differences on the natural scale)
    draws: np.ndarray = field(repr=False)
    rope: tuple[float, float]
    assumptions: list[str]
    prob: float = 0.95

    def row(self) -> dict:
        x = np.exp(self.draws) if self.ratio else self.draws
        lo, med, hi = central_interval(x, self.prob)
        null = 1.0 if self.ratio else 0.0
        p_rope = float(np.mean((x > self.rope[0]) & (x < self.rope[1])))
        return {"study": self.result.study, "result": self.result["id"], "endpoint": self.result.endpoint,
                "quantity": self.quantity, "median": med, "lower": lo, "upper": hi,
                "p_gt_null": float(np.mean(x > null)), "rope": f"{self.rope[0]:.3g} to {self.rope[1]:.3g}",
                "p_in_rope": p_rope, "p_below_rope": float(np.mean(x <= self.rope[0])),
                "p_above_rope": float(np.mean(x >= self.rope[1])), "published": _printed(self.result),
                "verdict": self.verdict(lo, hi, p_rope), "assumptions": "; ".join(self.assumptions)}

    def verdict(self, lo: float, hi: float, p_rope: float) -> str:
        x = np.exp(self.draws) if self.ratio else self.draws
        below, above = np.mean(x <= self.rope[0]), np.mean(x >= self.rope[1])
        span = f"{self.quantity} from {lo:.3g} to {hi:.3g} ({self.prob:.0%})"
        if p_rope >= 0.95:
            return f"practically equivalent: P(in ROPE) = {p_rope:.2f}; {span}."
        if max(below, above) >= 0.95:
            side = "below" if below > above else "above"
            return f"a difference {side} the ROPE is likely (P = {max(below, above):.2f}); {span}."
        said = " The paper's 'no significant difference' is absence of evidence, not evidence of equivalence." \
            if self.result.get("significant") is False else ""
        return (f"inconclusive: P(in ROPE) = {p_rope:.2f}, P(below) = {below:.2f}, P(above) = {above:.2f}; "
                f"{span} still allows differences larger than the ROPE.{said}")


def _printed(r: Result) -> str:
    if r.kind == "estimate":
        return f"{r.estimand} {r['value']:g} ({r['lower']:g} to {r['upper']:g})"
    if r.kind == "counts":
        ev, n = r["events"], r.n
        return f"{ev['exposed']}/{n['exposed']} vs {ev['reference']}/{n['reference']}"
    if r.kind == "test":
        return f"p {r.get('p_relation', '=')} {r['p_value']:g}"
    m = r["mean"]
    return "; ".join(f"{g}: " + " -> ".join(f"{v:g}" for v in m[g]) for g in ("exposed", "reference")) + f" {r['unit']}"


@dataclass
class Reanalysis:
    """Posteriors of a study's results; ``table()`` is the tidy summary, ``skipped`` what could not be done."""

    study: Study
    posteriors: list[ResultPosterior]
    skipped: dict[str, str]
    prior: NormalPrior
    draws: int
    random_seed: int

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([p.row() for p in self.posteriors]).set_index(["study", "result"])

    def to_json(self) -> dict:
        rows = self.table().reset_index().to_dict(orient="records")
        return {"study": self.study.id, "verified": bool(self.study["verified"]), "draws": self.draws,
                "random_seed": self.random_seed, "rows": rows, "skipped": self.skipped}

    def __str__(self) -> str:
        s = self.study
        lines = [f"Bayesian re-analysis of {s.id}: {s['exposed']} (exposed) vs {s['reference']} (reference)",
                 f"  from the published summaries ({s['provenance']}){'' if s['verified'] else '; UNVERIFIED figures'}",
                 ""]
        for p in self.posteriors:
            r = p.row()
            lines += [f"{r['result']}: {r['endpoint']}",
                      f"  published: {r['published']}" + (f"; the paper: {p.result['conclusion']}" if p.result.get("conclusion") else ""),
                      f"  posterior {r['quantity']}: median {r['median']:.3g}, {p.prob:.0%} interval {r['lower']:.3g} "
                      f"to {r['upper']:.3g}; P({'>1' if p.ratio else '>0'}) = {r['p_gt_null']:.2f}; "
                      f"ROPE {r['rope']}: P = {r['p_in_rope']:.2f}",
                      f"  {r['verdict']}",
                      f"  assumptions: {r['assumptions']}", ""]
        for rid, why in self.skipped.items():
            lines.append(f"{rid}: not re-analysed: {why}")
        return "\n".join(lines).rstrip()


def _rope(r: Result, ratio: bool) -> tuple[float, float]:
    if "rope" in r.raw:
        return tuple(r["rope"])
    if ratio:
        return DEFAULT_RATIO_ROPE
    raise SpecError(f"{r.id}: no region of practical equivalence; pass rope={{'{r['id']}': (lower, upper)}} "
                    f"on the {r.get('unit', 'natural')} scale.")


def _one(r: Result, prior: NormalPrior, n: int, rng, correlation, events, rope) -> ResultPosterior | str:
    sizes = r.n
    label = r.study_raw
    names = f"{label['exposed'].split(' (')[0]} vs {label['reference'].split(' (')[0]}"
    if r.kind == "estimate":
        ratio = r.estimand in RATIO_ESTIMANDS
        lik = NormalEstimate.from_ci(r["value"], r["lower"], r["upper"], r.level, log=ratio)
        pr = prior if ratio else NormalPrior(0.0, 1e3 * lik.se)
        draws = lik.posterior(pr, n, rng)["effect"]
        return ResultPosterior(r, r.estimand, ratio, draws, rope or _rope(r, ratio),
                               [lik.assumptions, f"prior {pr.describe()} on the {'log ' if ratio else ''}effect"])
    if r.kind == "counts":
        if not {"exposed", "reference"} <= sizes.keys():
            return "group sizes are not known"
        ev = r["events"]
        lik = GroupCounts((ev["exposed"], ev["reference"]), (sizes["exposed"], sizes["reference"]))
        post = lik.posterior(n, rng)
        est = r.get("estimand", "RR")
        if est == "risk difference":
            return ResultPosterior(r, "risk difference", False, post["difference"], rope or _rope(r, False),
                                   [lik.assumptions])
        key = {"RR": "log_ratio", "OR": "log_odds_ratio"}.get(est)
        if key is None:
            return f"estimand {est!r} is not available from counts (use RR, OR or risk difference)"
        return ResultPosterior(r, est, True, post[key], rope or _rope(r, True), [lik.assumptions])
    if r.kind == "means":
        if "sd" not in r.raw:
            return "no standard deviations printed"
        m, sd, k = r["mean"], r["sd"], (sizes.get("exposed"), sizes.get("reference"))
        if None in k:
            return "group sizes are not known"
        g = ("exposed", "reference")
        if len(r["timepoints"]) > 2:
            return (f"{len(r['timepoints'])} timepoints; a re-analysis compares one value or one change "
                    "(before/after) per group")
        if len(r["timepoints"]) == 2:
            rho = correlation if correlation is not None else r.get("assumptions", {}).get("within_patient_correlation")
            if rho is None:
                return "a change needs the within-patient correlation: pass correlation="
            lik = MeanDifference.of_change(tuple(m[x][0] for x in g), tuple(m[x][1] for x in g),
                                           tuple(sd[x][0] for x in g), tuple(sd[x][1] for x in g), k, rho)
            what = f"difference in change ({r['unit']})"
        else:
            lik = MeanDifference(tuple(m[x][0] for x in g), tuple(sd[x][0] for x in g), k)
            what = f"mean difference ({r['unit']})"
        return ResultPosterior(r, what, False, lik.posterior(n, rng)["difference"], rope or _rope(r, False),
                               [lik.assumptions])
    # a test: a p-value without a direction
    d = events if events is not None else r.get("assumptions", {}).get("events")
    if d is None or not {"exposed", "reference"} <= sizes.keys():
        return "a p-value alone needs the number of events (pass events=) and the group sizes to size the SE"
    share = sizes["exposed"] / (sizes["exposed"] + sizes["reference"])
    se = math.sqrt(1 / (d * share) + 1 / (d * (1 - share)))
    lik = AbsZ(r["p_value"], se, r.get("p_relation", "="))
    draws = lik.posterior(prior, n, rng)["effect"]
    return ResultPosterior(r, r.get("estimand", "HR"), True, draws, rope or _rope(r, True),
                           [lik.assumptions, f"SE {se:.3f} of the log {r.get('estimand', 'HR')} from {d:g} events "
                            f"split by group size (an assumption: events not printed)",
                            f"prior {prior.describe()} on the log effect"])


def reanalyse(study_id: str, *, prior: NormalPrior = DEFAULT_PRIOR, draws: int = 20_000, random_seed: int = 0,
              correlation: float | None = None, events: float | None = None,
              rope: dict | None = None, prob: float = 0.95) -> Reanalysis:
    """Re-analyse every result of ``study_id`` from its published summaries.

    ``prior`` is on the log scale of ratios; ``correlation`` (within-patient,
    for changes in means) and ``events`` (for a bare p-value) override the
    registry's stated assumptions; ``rope`` maps result ids to (lower, upper).
    """
    draws = validation.integer("draws", draws, low=1000, high=10_000_000)
    random_seed = validation.seed("random_seed", random_seed)
    if correlation is not None:
        correlation = validation.real("correlation", correlation, low=-1, high=1, low_open=True, high_open=True)
    if events is not None:
        events = validation.real("events", events, low=0, low_open=True)
    prob = validation.probability("prob", prob)
    if not isinstance(study_id, str):
        raise SpecError(f"study_id={study_id!r} must be a registry id such as 'danish' or 'danish/mortality'")
    study = get(study_id.split("/")[0])
    only = study_id.split("/", 1)[1] if "/" in study_id else None
    if only is not None:
        study.result(only)  # an unknown result id is an error that lists the study's results
    rng = np.random.default_rng(random_seed)
    rope = dict(rope or {})
    unknown = set(rope) - set(study.results)
    if unknown:
        raise SpecError(f"rope: {sorted(unknown)} are not results of {study.id}; its results: {', '.join(study.results)}")
    posts, skipped = [], {}
    for rid, r in study.results.items():
        if only is not None and rid != only:
            continue
        out = _one(r, prior, draws, rng, correlation, events, rope.get(rid))
        if isinstance(out, str):
            skipped[rid] = out
        else:
            out.prob = prob
            posts.append(out)
    return Reanalysis(study, posts, skipped, prior, draws, random_seed)
