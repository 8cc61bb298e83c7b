"""The schema of a registry entry: one TOML file per study, checked on load.

A study file holds the study's description and a list of ``[[results]]``.
Group-valued fields are tables keyed ``exposed`` / ``reference`` (and
``total`` or ``overall`` where printed); the study's ``exposed`` and
``reference`` strings say what the groups are, and ``comparison`` is a key
from ``COMPARISONS``, so that estimates of different comparisons are never
pooled by accident. Effects are stored as *exposed vs reference*; a paper that
reported the reverse direction keeps its printed numbers under ``reported``
and the stored ``value``/``lower``/``upper`` are their inverses.

Study keys
----------
id, title, citation, design, population, comparison, exposed, reference,
provenance (where the figures were read), verified (bool): required.
authors, journal, year, doi, notes, n {exposed, reference, total},
percent {exposed, reference} (of the total, as printed),
follow_up {statistic, unit, exposed, reference, overall, spread,
exposed_spread, reference_spread, overall_spread},
baseline (list of {characteristic, statistic, unit, exposed, reference,
overall, n {exposed, reference, overall}}): optional.

Result keys (every kind)
------------------------
id, kind (``estimate`` | ``counts`` | ``means`` | ``test``), endpoint:
required. verified, provenance (default to the study's), method,
adjustment (list of covariates; [] = unadjusted), follow_up, p_value,
p_relation (``=``, ``<`` or ``>``; default ``=``), conclusion (the paper's
words, e.g. "no significant difference"), significant (bool: whether the
paper called the difference significant at its level, 5% unless stated), rope ([lower, upper] region of
practical equivalence on the estimand's own scale), rope_note, assumptions
(table of assumed inputs a re-analysis needs), notes, comparison (overrides
the study's), n {exposed, reference}: optional.

kind = "estimate": estimand, value, lower, upper required; level (0.95),
decimals (printed decimals; inferred when absent), reported {direction,
value, lower, upper} when the paper printed the reverse comparison.
kind = "counts": events {exposed, reference} required; percent {exposed,
reference} as printed; estimand (default ``RR``).
kind = "means": unit, timepoints (list), mean {exposed: [...], reference:
[...]} one per timepoint, required; sd of the same shape; within_p.
kind = "test": p_value required; estimand of the test if known.
"""

from __future__ import annotations

from ..errors import SpecError, suggest

COMPARISONS = {
    "upgrade-vs-de-novo": "upgrade to CRT vs de novo CRT implantation",
    "upgrade-vs-no-upgrade": "upgrade to CRT vs continued pacemaker or ICD therapy (no de novo arm)",
}
KINDS = ("estimate", "counts", "means", "test")
RATIO_ESTIMANDS = ("HR", "SHR", "RR", "OR", "IRR")  # SHR: a subdistribution (Fine-Gray) hazard ratio
DIFFERENCE_ESTIMANDS = ("mean difference", "risk difference")
ESTIMANDS = RATIO_ESTIMANDS + DIFFERENCE_ESTIMANDS
STATISTICS = ("median", "mean", "percent", "count")
GROUPS = ("exposed", "reference")


class RegistryError(SpecError):
    """A registry entry does not follow the schema; the message names the file and key."""


class UnknownEntryError(RegistryError, KeyError):
    """No study or result with that id in the registry (a ``KeyError`` too)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_num = (int, float)
_groups = {"exposed": _num, "reference": _num, "total": _num, "overall": _num}

STUDY_KEYS: dict[str, tuple[object, bool]] = {
    "id": (str, True), "title": (str, True), "citation": (str, True), "design": (str, True),
    "population": (str, True), "comparison": (str, True), "exposed": (str, True),
    "reference": (str, True), "provenance": (str, True), "verified": (bool, True),
    "results": (list, True),
    "authors": (str, False), "journal": (str, False), "year": (int, False), "doi": (str, False),
    "notes": (str, False), "verification_note": (str, False),
    "n": (_groups, False), "percent": (_groups, False),
    "follow_up": ({"statistic": str, "unit": str, "exposed": _num, "reference": _num, "overall": _num,
                   "spread": str, "exposed_spread": _num, "reference_spread": _num,
                   "overall_spread": _num, "note": str}, False),
    "baseline": (list, False),
}
BASELINE_KEYS = {"characteristic": (str, True), "statistic": (str, True), "unit": (str, False),
                 "exposed": (_num, False), "reference": (_num, False), "overall": (_num, False),
                 "sd": (_groups, False), "n": (_groups, False), "notes": (str, False)}
RESULT_COMMON = {
    "id": (str, True), "kind": (str, True), "endpoint": (str, True),
    "verified": (bool, False), "provenance": (str, False), "method": (str, False),
    "adjustment": (list, False), "follow_up": (str, False), "p_value": (_num, False),
    "p_relation": (str, False), "conclusion": (str, False), "rope": (list, False),
    "rope_note": (str, False), "assumptions": (dict, False), "notes": (str, False),
    "comparison": (str, False), "n": (_groups, False), "estimand": (str, False),
    "level": (_num, False), "verification_note": (str, False), "significant": (bool, False),
}
RESULT_KIND = {
    "estimate": {"value": (_num, True), "lower": (_num, True), "upper": (_num, True),
                 "decimals": (int, False),
                 "reported": ({"direction": str, "value": _num, "lower": _num, "upper": _num}, False)},
    "counts": {"events": (_groups, True), "percent": (_groups, False)},
    "means": {"unit": (str, True), "timepoints": (list, True), "mean": (dict, True), "sd": (dict, False),
              "within_p": (dict, False)},
    "test": {},
}


def _type_ok(value, kind) -> bool:
    if kind is _num:
        return isinstance(value, _num) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_table(obj: dict, keys: dict, where: str, problems: list[str]) -> None:
    for key in obj:
        if key not in keys:
            problems.append(f"{where}: unknown key {key!r}.{suggest(key, keys)} Valid keys: "
                            f"{', '.join(sorted(keys))}.")
    for key, (kind, required) in keys.items():
        if key not in obj:
            if required:
                problems.append(f"{where}: required key {key!r} is missing.")
            continue
        value = obj[key]
        if isinstance(kind, dict):  # a sub-table with typed keys
            if not isinstance(value, dict):
                problems.append(f"{where}.{key}: expected a table, got {value!r}.")
                continue
            _check_table(value, {k: (t, False) for k, t in kind.items()}, f"{where}.{key}", problems)
        elif not _type_ok(value, kind):
            name = "number" if kind is _num else kind.__name__
            problems.append(f"{where}.{key}: expected {name}, got {value!r}.")


def _one_of(value, choices, where: str, problems: list[str]) -> None:
    if value is not None and value not in choices:
        problems.append(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}.{suggest(value, choices)}")


def _check_result(res: dict, where: str, problems: list[str]) -> None:
    kind = res.get("kind")
    _one_of(kind, KINDS, f"{where}.kind", problems)
    keys = {**RESULT_COMMON, **RESULT_KIND.get(kind, {})}
    if kind == "estimate":
        keys["estimand"] = (str, True)
    _check_table(res, keys, where, problems)
    _one_of(res.get("estimand"), ESTIMANDS, f"{where}.estimand", problems)
    _one_of(res.get("p_relation"), ("=", "<", ">"), f"{where}.p_relation", problems)
    _one_of(res.get("comparison"), tuple(COMPARISONS), f"{where}.comparison", problems)
    if "level" in res and not 0 < res["level"] < 1:
        problems.append(f"{where}.level: {res['level']!r} must lie in (0, 1), e.g. 0.95.")
    if "p_value" in res and not 0 < res["p_value"] <= 1:
        problems.append(f"{where}.p_value: {res['p_value']!r} must lie in (0, 1]; a printed 'p = 0.000' is "
                        "p_value = 0.0005 with p_relation = '<'.")
    if kind == "test" and "p_value" not in res:
        problems.append(f"{where}: a result of kind 'test' needs 'p_value'.")
    if "adjustment" in res and not all(isinstance(a, str) for a in res["adjustment"]):
        problems.append(f"{where}.adjustment: expected a list of covariate names, got {res['adjustment']!r}.")
    rope = res.get("rope")
    if rope is not None and not (len(rope) == 2 and all(_type_ok(r, _num) for r in rope) and rope[0] < rope[1]):
        problems.append(f"{where}.rope: expected [lower, upper] with lower < upper, got {rope!r}.")
    if kind == "estimate" and res.get("estimand") in RATIO_ESTIMANDS:
        bad = [k for k in ("value", "lower", "upper") if _type_ok(res.get(k), _num) and res[k] <= 0]
        if bad:
            problems.append(f"{where}: a ratio must be positive; {', '.join(f'{k} = {res[k]!r}' for k in bad)}.")
    if kind == "means":
        t = len(res.get("timepoints", []))
        for table in ("mean", "sd"):
            for g, vals in res.get(table, {}).items():
                if g not in GROUPS:
                    problems.append(f"{where}.{table}: unknown group {g!r}; use 'exposed' and 'reference'.")
                elif not (isinstance(vals, list) and len(vals) == t and all(_type_ok(v, _num) for v in vals)):
                    problems.append(f"{where}.{table}.{g}: expected {t} numbers (one per timepoint), got {vals!r}.")
    if kind == "counts":
        for g in GROUPS:
            if g not in res.get("events", {}):
                problems.append(f"{where}.events: the {g!r} count is missing.")


def validate(raw: dict, source: str) -> None:
    """Raise ``RegistryError`` listing every way ``raw`` (one study file) breaks the schema."""
    problems: list[str] = []
    _check_table(raw, STUDY_KEYS, source, problems)
    _one_of(raw.get("comparison"), tuple(COMPARISONS), f"{source}: comparison", problems)
    for i, row in enumerate(raw.get("baseline", [])):
        where = f"{source}: baseline[{i}]"
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a table.")
            continue
        _check_table(row, BASELINE_KEYS, where, problems)
        _one_of(row.get("statistic"), STATISTICS, f"{where}.statistic", problems)
    seen = set()
    for i, res in enumerate(raw.get("results", [])):
        where = f"{source}: results[{i}]"
        if not isinstance(res, dict):
            problems.append(f"{where}: expected a table.")
            continue
        if res.get("id") in seen:
            problems.append(f"{where}: result id {res['id']!r} is used twice in this study.")
        seen.add(res.get("id"))
        _check_result(res, f"{source}: results[{res.get('id', i)!r}]", problems)
    if problems:
        head = f"{len(problems)} problem(s) in registry entry {source}:" if len(problems) > 1 else ""
        raise RegistryError("\n".join([head, *(f"  - {p}" for p in problems)]) if head else problems[0])
