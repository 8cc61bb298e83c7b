"""Model formulas: ``"upgrade + age + C(nyha, Treatment('II')) + bs(age, df=3) + upgrade:age"`` as covariates.

The right-hand side is read and turned into a design matrix by formulaic (the formula library lifelines
uses, so a formula means here what it means there; it keeps the state of stateful transforms such as
spline knots and category levels, so the same formula gives the same columns on new rows). An outcome
may be written on the left as R's survival does, ``Surv(time, event) ~ ...`` or
``Surv(entry, time, event) ~ ...``; otherwise ``time=`` and ``event=`` name the columns.

- The baseline hazard is the model's intercept: the formula's intercept column is dropped after the
  design is built (so categorical terms keep their reduced, treatment coding), and a formula that
  removes it (``0 + ...``, ``- 1``) is refused.
- Columns are labelled as formulaic names them, with each treatment-coded factor's reference level
  shown: ``nyha[T.III vs II]``, ``C(ecog, Treatment(1))[T.2 vs 1]``.
- Missing values in the variables a formula uses are handled before the design is built, as for a list
  of covariates (``missing="error"`` names them; ``"drop"`` reports what it drops).
- A term of several columns in one variable alone (a spline, a polynomial) has no single hazard ratio:
  the HR tables report it as contrasts of the variable's values against a stated reference value (by
  default its first and third quartiles against its median; :meth:`Design.contrast`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import DataError, SpecError, suggest

# what a formula may call beyond formulaic's own transforms (C, bs, poly, ...): numpy as np. A formula is still
# Python evaluated on the data, as in lifelines and patsy: use formulas you wrote
CONTEXT = {"np": np}
SURV = re.compile(r"^\s*Surv\s*\((?P<args>[^()]*)\)\s*$")


def split(formula, *, time: str | None, event: str | None, entry: str | None):
    """``(right-hand side, time, event, entry)`` from a formula and the column arguments."""
    if not isinstance(formula, str) or not formula.strip():
        raise SpecError(f"formula={formula!r} must be a non-empty string such as 'upgrade + age + C(nyha)'")
    if formula.count("~") > 1:
        raise SpecError(f"formula={formula!r} has more than one '~'")
    if "~" not in formula:
        return formula.strip(), time, event, entry
    lhs, rhs = (p.strip() for p in formula.split("~"))
    m = SURV.match(lhs)
    args = [a.strip() for a in m.group("args").split(",")] if m else []
    if not m or len(args) not in (2, 3) or not all(args):
        raise SpecError(f"formula={formula!r}: the left-hand side must be Surv(time, event) or "
                        f"Surv(entry, time, event), not {lhs!r}; or write the right-hand side alone with "
                        "time= and event=")
    given = dict(zip(("entry", "time", "event") if len(args) == 3 else ("time", "event"), args))
    for arg, value in (("time", time), ("event", event), ("entry", entry)):
        if value is not None and arg in given and value != given[arg]:
            raise SpecError(f"{arg}={value!r} disagrees with the formula's Surv(...), which names {given[arg]!r}; "
                            "give the column once")
    return rhs, given.get("time", time), given.get("event", event), given.get("entry", entry)


def referenced(rhs: str, categorical: bool = False, ordered: bool = False) -> set[str] | list[str] | None:
    """The data variables a right-hand side refers to, read without data (``None`` if it cannot be read so).

    A plain term is its own name; in a Python term (``C(nyha, Treatment(2))``, ``bs(age, df=3)``,
    ``np.log(x)``) every name that is not called and not ``np`` is a variable. ``categorical=True``: only
    the variables that appear nowhere but as ``C(variable, ...)``, declared categorical by the formula.
    ``ordered=True``: a list, in the order the formula names them. For early checks: the design built on the data remains the authority.
    """
    import ast

    from formulaic import Formula

    try:
        factors = [f for term in Formula(rhs) for f in term.factors]
    except Exception:  # formulaic's parser raises its own and Python's errors, or reads several parts
        return None
    out, declared, bare = {}, set(), set()  # out: a dict as an ordered set
    for factor in factors:
        method = getattr(factor.eval_method, "value", str(factor.eval_method))
        if method == "literal":
            continue
        if method == "lookup":
            out[str(factor.expr)] = None
            bare.add(str(factor.expr))
            continue
        try:
            tree = ast.parse(str(factor.expr), mode="eval")
        except SyntaxError:
            return None
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        owners = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        in_c = {id(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and n.func.id == "C" and n.args and isinstance(n.args[0], ast.Name)}
        names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called
                 and id(n) not in owners and n.id not in CONTEXT]
        for n in sorted(names, key=lambda n: n.col_offset):
            out[n.id] = None
            (declared if id(n) in in_c else bare).add(n.id)
    if categorical:
        return declared - bare
    return list(out) if ordered else set(out)


@dataclass
class Design:
    """A formula's design: the formulaic model spec, the labelled columns and what each term is."""

    rhs: str
    spec: object = field(repr=False)
    labels: tuple
    terms: dict          # column label -> term text
    term_variables: dict  # term text -> data variables it uses
    template: pd.DataFrame = field(repr=False)  # one row of the variables, to build rows for contrasts
    summaries: dict = field(default_factory=dict)  # variable -> (Q1, median, Q3) for default contrasts
    rows: pd.DataFrame | None = field(default=None, repr=False)  # the fitted rows' variables, in the caller's order

    def matrix(self, df: pd.DataFrame) -> np.ndarray:
        """The design columns of new rows (same knots and levels as the fit), without the intercept."""
        missing = [v for v in self.variables if v not in df.columns]
        if missing:
            raise SpecError(f"the rows lack the formula's variables {missing}; the formula is {self.rhs!r}")
        mm = self.spec.get_model_matrix(df, na_action="raise")
        return np.asarray(mm, float)[:, 1:]

    def counterfactual(self, variable: str, value) -> np.ndarray:
        """The fitted rows' design with ``variable`` set to ``value`` in every row (interactions follow)."""
        return self.matrix(self.rows.assign(**{variable: value}))

    def columns_of(self, variable: str) -> list[str]:
        """The design columns whose terms use ``variable``."""
        return [c for c in self.labels if variable in self.term_variables[self.terms[c]]]

    @property
    def variables(self) -> list[str]:
        return sorted({v for vs in self.term_variables.values() for v in vs})

    def curve_terms(self) -> dict:
        """Terms of several columns in one variable, none of them categorical: term -> variable."""
        out = {}
        for term, vs in self.term_variables.items():
            cols = [c for c, t in self.terms.items() if t == term]
            if len(cols) > 1 and len(vs) == 1 and term not in self.factor_terms:
                out[term] = next(iter(vs))
        return out

    @property
    def factor_terms(self) -> set:
        return {t for t, vs in self.term_variables.items() if any(str(f) == t for f in self.spec.factor_contrasts)}

    def contrast(self, term: str, values, reference: float) -> list[dict]:
        """For a curve term: per value ``v``, the weights ``B(v) - B(reference)`` on the term's columns, so that
        the log-HR of ``v`` against ``reference`` is those weights times the term's log-HRs."""
        var = _curve_variable(self.curve_terms(), term)
        cols = [i for i, c in enumerate(self.labels) if self.terms[c] == term]
        rows = pd.concat([self.template] * (len(values) + 1), ignore_index=True)
        rows[var] = [float(reference), *map(float, values)]
        return _contrast_rows(term, var, self.matrix(rows)[:, cols], [self.labels[i] for i in cols], values, reference)

    def default_contrasts(self) -> list[dict]:
        out = []
        for term, var in self.curve_terms().items():
            q1, med, q3 = self.summaries[var]
            out += self.contrast(term, [q1, q3], med)
        return out

    def sources(self) -> list[str]:
        """Each column's data variable where its term has one (a factor's levels, a spline's basis), else
        the column's own label (an interaction): the names priors and exposures are looked up by."""
        return [next(iter(self.term_variables[self.terms[c]])) if len(self.term_variables[self.terms[c]]) == 1
                else c for c in self.labels]

    def to_json(self) -> dict:
        out = {"rhs": self.rhs, "labels": list(self.labels), "terms": self.terms,
               "term_variables": {t: sorted(v) for t, v in self.term_variables.items()},
               "contrasts": self.default_contrasts()}
        curves = self.curve_terms()
        if curves:
            try:  # the curve terms' knots and coefficients, so that a saved fit takes at= too (StoredCurves)
                out["curves"] = {"terms": curves, "state": _plain(dict(self.spec.transform_state))}
            except TypeError:
                pass  # a transform whose state is not plain numbers and text: at= needs the fit in memory
        return out


class StoredCurves:
    """A saved formula fit's curve terms, rebuilt from their transform state (the knots of ``bs``, the
    coefficients of ``poly``) as formulaic keeps it: :meth:`contrast` gives what :meth:`Design.contrast`
    gave in the session that made the fit."""

    def __init__(self, info: dict):
        self.labels, self.terms = list(info["labels"]), dict(info["terms"])
        self._curves, self._state = dict(info["curves"]["terms"]), _unplain(info["curves"]["state"])

    def curve_terms(self) -> dict:
        return dict(self._curves)

    def contrast(self, term: str, values, reference: float) -> list[dict]:
        from formulaic import ModelSpec

        var = _curve_variable(self._curves, term)
        cols = [c for c in self.labels if self.terms[c] == term]
        rows = pd.DataFrame({var: [float(reference), *map(float, values)]})
        mm = ModelSpec(formula=term, transform_state=self._state).get_model_matrix(rows, na_action="raise",
                                                                                   context=CONTEXT)
        B = np.asarray(mm, float)[:, 1:]  # the term's columns, in the order the fit's design had them
        if B.shape[1] != len(cols):
            raise SpecError(f"{term!r}: the saved fit's {len(cols)} columns do not match the {B.shape[1]} its stored "
                            "state gives (another formulaic version?); refit to use at=")
        return _contrast_rows(term, var, B, cols, values, reference)


def _curve_variable(curves: dict, term: str) -> str:
    if term not in curves:
        raise SpecError(f"{term!r} is not a spline or polynomial term of the formula; curve terms: {sorted(curves)}")
    return curves[term]


def _contrast_rows(term, var, B, columns, values, reference) -> list[dict]:
    """Rows of the HR table for a curve term: ``B`` holds its basis at the reference (row 0) and each value."""
    return [{"label": f"{term}: {var} {_g(v)} vs {_g(reference)}", "columns": list(columns),
             "weights": (B[k + 1] - B[0]).tolist()} for k, v in enumerate(values)]


def _plain(obj):
    """A transform state as JSON: dicts as key-value pairs (keys keep their type: poly's are integers),
    arrays as lists; anything else is a TypeError."""
    if isinstance(obj, dict):
        return {"pairs": [[_plain(k), _plain(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"not plain data: {type(obj).__name__}")


def _unplain(obj):
    if isinstance(obj, dict):
        return {_key(_unplain(k)): _unplain(v) for k, v in obj["pairs"]}
    if isinstance(obj, list):
        return [_unplain(v) for v in obj]
    return obj


def _key(k):
    return tuple(k) if isinstance(k, list) else k


def _g(v: float) -> str:
    return f"{v:.4g}"


def _relabel(name: str, contrasts: dict) -> str:
    """``factor[T.level]`` -> ``factor[T.level vs reference]`` for each treatment-coded factor."""
    for factor, state in contrasts.items():
        base = getattr(state.contrasts, "base", None)
        if type(state.contrasts).__name__ != "TreatmentContrasts":
            continue
        levels = list(state.levels)
        ref = levels[0] if base is None or type(base).__name__ == "_MissingType" or base not in levels else base
        f = re.escape(str(factor))
        name = re.sub(rf"(?<![\w.]){f}\[T\.([^\]]*)\]", lambda m: f"{factor}[T.{m.group(1)} vs {ref}]", name)
    return name


def build(df: pd.DataFrame, rhs: str, *, roles: dict, missing: str):
    """The design of ``rhs`` on ``df``: ``(frame of design and role columns, covariate labels, Design,
    dropped by column, rows dropped)``; missing values are handled as ``missing`` says, first."""
    from formulaic import model_matrix
    from formulaic.errors import FormulaicError

    from .data import MISSING_CHOICES, _missing_values

    if missing not in MISSING_CHOICES:
        raise DataError(f"missing={missing!r} is not valid; choose one of {MISSING_CHOICES}")
    if df.columns.duplicated().any():
        dup = sorted(set(map(str, df.columns[df.columns.duplicated()])))
        raise DataError(f"columns {dup} appear more than once in the DataFrame; rename them "
                        "(df.columns.duplicated() finds them)")
    if len(df) == 0:
        raise DataError("the DataFrame has no rows; nothing to fit")
    # pandas' string dtype columns as plain objects: formulaic encodes those as categories
    df = df.astype({c: object for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)})

    from .data import _content_problem

    static = referenced(rhs) or set()
    if "Intercept" in static and "Intercept" in df.columns:
        raise SpecError(f"formula {rhs!r} uses a column named 'Intercept', the name of the design's intercept "
                        "column, which would be dropped with it; rename the column")
    rows = df.index.to_numpy()
    levels = referenced(rhs, categorical=True) or set()  # C(x): the formula says x's values are levels
    bad = [p + (f", or write C({v}) in the formula" if "numbers stored as text" in p else "")
           for v in sorted(static & set(df.columns))
           if (p := _content_problem(df[v], f"formula variable {v!r}", v, rows)) is not None
           and not (v in levels and "numbers stored as text" in p)]
    if bad:  # dates, durations, complex numbers or numbers as text: never turned into numbers or levels unasked
        raise DataError(bad)
    try:  # the variables a formula uses are known once it has been evaluated (a lone bs(age) names none before)
        probe = model_matrix(rhs, df, na_action="drop", ensure_full_rank=True, context=CONTEXT)
        if not isinstance(probe, pd.DataFrame):  # '|' or '~' inside: several matrices
            raise SpecError(f"formula {rhs!r} has several parts ('|'); give one right-hand side such as 'x + z'")
        variables = sorted(v for v in probe.model_spec.required_variables if v in df.columns)
    except SpecError:
        raise
    except (FormulaicError, ValueError, SyntaxError, TypeError, NameError, AttributeError, IndexError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        named = re.search(r"`(\w+)` is not present in the dataset", text)
        hint = suggest(named.group(1), map(str, df.columns)) if named else ""
        raise SpecError(f"formula {rhs!r} cannot be read or evaluated: {text}{hint}") from None
    role_cols = {k: v for k, v in roles.items() if v is not None}
    for arg, col in role_cols.items():
        if col in variables:
            raise SpecError(f"the {arg} column {col!r} is also a variable of the formula {rhs!r}; a column has "
                            "one role")
    problems: list[str] = []
    keep_cols = list(dict.fromkeys([*variables, *role_cols.values()]))
    raw, dropped, n_dropped = _missing_values(df[keep_cols], missing, problems)
    if problems:
        raise DataError(problems)
    try:
        mm = model_matrix(rhs, raw[variables], na_action="raise", ensure_full_rank=True, context=CONTEXT)
    except (FormulaicError, ValueError, TypeError, NameError, AttributeError, IndexError) as exc:
        raise SpecError(f"formula {rhs!r} cannot be evaluated on the data: {str(exc).splitlines()[0]}") from None
    names = list(mm.columns)
    if "Intercept" not in names:
        raise SpecError(f"formula {rhs!r} removes the intercept ('0 +' or '- 1'); the baseline hazard is the model's "
                        "intercept, so keep it (categorical terms then keep their reference level)")
    spec = mm.model_spec
    empty = [str(t) for t, sl in spec.term_slices.items() if str(t) != "1" and sl.stop == sl.start]
    if empty:
        raise DataError(f"formula {rhs!r}: the terms {empty} give no column (a factor with a single level in the "
                        "data, or a constant); drop them from the formula")
    terms, labels = {}, []
    for term, sl in spec.term_slices.items():
        for name in names[sl]:
            if name == "Intercept":
                continue
            label = _relabel(name, spec.factor_contrasts)
            labels.append(label)
            terms[label] = str(term)
    if not labels:
        raise SpecError(f"formula {rhs!r} has no covariate terms")
    X = np.asarray(mm, float)[:, 1:]

    frame = pd.DataFrame(X, index=raw.index, columns=labels)
    for col in role_cols.values():
        if col in frame.columns:
            raise SpecError(f"the formula's column {col!r} has the name of a role column; rename the column")
        frame[col] = raw[col]
    term_vars = {str(t): {v for v in vs if v in variables} for t, vs in spec.term_variables.items() if str(t) != "1"}
    unused = [lab for k, lab in enumerate(labels) if not X[:, k].any() and len(term_vars[terms[lab]]) == 1
              and isinstance(raw[next(iter(term_vars[terms[lab]]))].dtype, pd.CategoricalDtype)]
    if unused:
        var = next(iter(term_vars[terms[unused[0]]]))
        raise DataError(f"formula {rhs!r}: the columns {unused} are all 0: categories of {var!r} with no rows (after "
                        f"missing values were handled); drop them first: df[{var!r}].cat.remove_unused_categories()")
    summaries = {}
    for term, vs in term_vars.items():
        for v in vs:
            if pd.api.types.is_numeric_dtype(raw[v]) and not pd.api.types.is_bool_dtype(raw[v]):
                summaries[v] = tuple(float(q) for q in np.quantile(raw[v].to_numpy(float), [0.25, 0.5, 0.75]))
    design = Design(rhs, spec, tuple(labels), terms, term_vars, raw[variables].iloc[:1].reset_index(drop=True),
                    summaries, raw[variables])
    return frame, labels, design, dropped, n_dropped
