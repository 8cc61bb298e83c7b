"""README.md's Python examples name things that exist, called with keywords their signatures accept.

Nothing is run or sampled: each ```python block is parsed with ``ast`` and its names are resolved
against the installed package. Blocks are read in order with one environment (later blocks use
``df`` and ``fit`` from earlier ones). A value's type is followed through calls by return
annotations, so ``fit = bc.CoxPH().fit(...)`` makes ``fit.hazard_ratios(...)`` a checked
method of :class:`bayescrt.Fit`; what cannot be resolved (a DataFrame, a name the README leaves
to the reader) is left unchecked, and the test asserts that the references it must check were.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import typing
from pathlib import Path

import pytest

import bayescrt

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FILE_NAME = re.compile(r"^[\w./*<>-]+\.(py|toml|ipynb|nc|csv|json|jsonl|md|png)$")


def _in_package(obj) -> bool:
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    return isinstance(name, str) and (name == "bayescrt" or name.startswith("bayescrt."))


def _signature(obj):
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def _returned_class(func):
    """The package class a callable is annotated to return, or None."""
    if inspect.isclass(func):
        return func
    target = func.fget if isinstance(func, property) else func
    try:
        hint = typing.get_type_hints(target).get("return")
    except Exception:  # an annotation that does not evaluate: leave the result unchecked
        return None
    return hint if inspect.isclass(hint) and _in_package(hint) else None


def _instance_has(cls, attr: str) -> bool:
    """Whether instances of a package class have ``attr``: a class attribute, a dataclass field or
    an annotation, or an attribute some method of the class assigns on ``self``."""
    if hasattr(cls, attr) or attr in getattr(cls, "__dataclass_fields__", {}):
        return True
    assigned = re.compile(rf"\bself\.{re.escape(attr)}\s*(:[^=\n]*)?=(?!=)")
    for klass in cls.__mro__:
        if not _in_package(klass):
            continue
        if attr in getattr(klass, "__annotations__", {}):
            return True
        try:
            if assigned.search(inspect.getsource(klass)):
                return True
        except (OSError, TypeError):
            pass
    return False


class Checker:
    """Walks parsed examples; collects problems and the references it checked."""

    def __init__(self, env=None):
        self.env = dict(env or {})
        self.problems: list[str] = []
        self.checked: set[str] = set()

    # values: ("obj", x) for a package module, class or function; ("inst", cls) for an instance of a
    # package class; ("method", qualname, callable) for a method reached through an instance; None: unknown
    def run(self, tree: ast.AST, where: str) -> None:
        self.where = where
        for node in tree.body if isinstance(tree, ast.Module) else [tree]:
            self.stmt(node)

    def problem(self, node, text: str) -> None:
        self.problems.append(f"{self.where}, line {getattr(node, 'lineno', '?')}: {text}")

    def stmt(self, node) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "bayescrt" or alias.name.startswith("bayescrt."):
                    try:
                        module = importlib.import_module(alias.name)
                    except ImportError as exc:
                        self.problem(node, f"import {alias.name}: {exc}")
                        continue
                    self.checked.add(alias.name)
                    if alias.asname:
                        self.env[alias.asname] = ("obj", module)
                    else:
                        self.env[alias.name.split(".")[0]] = ("obj", bayescrt)
        elif isinstance(node, ast.ImportFrom):
            if node.module and (node.module == "bayescrt" or node.module.startswith("bayescrt.")):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    try:
                        value = getattr(module, alias.name)
                    except AttributeError:
                        try:
                            value = importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            self.problem(node, f"from {node.module} import {alias.name}: no such name")
                            continue
                    self.checked.add(f"{node.module}.{alias.name}")
                    self.env[alias.asname or alias.name] = ("obj", value)
        elif isinstance(node, ast.Assign):
            value = self.expr(node.value)
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.env[target.id] = value
                else:
                    self.expr(target)
        elif isinstance(node, ast.Expr):
            self.expr(node.value)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.stmt(child)
                elif isinstance(child, ast.expr):
                    self.expr(child)

    def expr(self, node):
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, self.expr(node.value))
        if isinstance(node, ast.Call):
            return self.call(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child)
        return None

    def attribute(self, node, base):
        if base is None:
            return None
        attr = node.attr
        if base[0] == "obj":
            obj = base[1]
            if not (inspect.ismodule(obj) or inspect.isclass(obj)) or not _in_package(obj):
                return None
            name = f"{getattr(obj, '__name__', obj)}.{attr}"
            if not hasattr(obj, attr):
                self.problem(node, f"{name} does not exist")
                return None
            self.checked.add(name)
            value = getattr(obj, attr)
            return ("obj", value) if _in_package(value) or inspect.ismodule(value) else None
        if base[0] == "inst":
            cls = base[1]
            name = f"{cls.__name__}.{attr}"
            if not _instance_has(cls, attr):
                self.problem(node, f"{name}: instances of {cls.__module__}.{cls.__name__} have no {attr!r}")
                return None
            self.checked.add(name)
            value = inspect.getattr_static(cls, attr, None)
            if isinstance(value, property):
                returned = _returned_class(value)
                return ("inst", returned) if returned else None
            value = getattr(cls, attr, None)
            return ("method", name, value) if callable(value) else None
        return None

    def call(self, node):
        base = self.expr(node.func)
        for arg in node.args:
            self.expr(arg.value if isinstance(arg, ast.Starred) else arg)
        for kw in node.keywords:
            self.expr(kw.value)
        if base is None:
            return None
        if base[0] == "obj" and callable(base[1]):
            func, name = base[1], getattr(base[1], "__qualname__", repr(base[1]))
        elif base[0] == "method":
            name, func = base[1], base[2]
        else:
            return None
        self.keywords(node, func, name)
        returned = _returned_class(func)
        return ("inst", returned) if returned else None

    def keywords(self, node, func, name: str) -> None:
        sig = _signature(func)
        if sig is None or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        accepted = {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        for kw in node.keywords:
            if kw.arg is None:
                continue
            if kw.arg not in accepted:
                self.problem(node, f"{name}() takes no keyword {kw.arg!r}; it accepts {sorted(accepted)}")
            else:
                self.checked.add(f"{name}({kw.arg}=)")


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


def _check_readme() -> Checker:
    checker = Checker()
    for line, source in _blocks():
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            checker.problems.append(f"README.md block at line {line}: not valid Python: {exc}")
            continue
        checker.run(tree, f"README.md block at line {line}")
    return checker


def test_readme_python_blocks_parse_and_resolve():
    checker = _check_readme()
    assert not checker.problems, "README.md examples that do not match the package:\n" + "\n".join(checker.problems)
    # the walk reached what the examples are about (an empty or unresolved walk would pass vacuously)
    must = {
        "bayescrt.datasets.load_rossi", "CoxPH(ties=)", "CoxPH.fit(covariates=)", "Fit.hazard_ratios", "Fit.idata",
        "Fit.save", "bayescrt.load", "bayescrt.CovariateSets", "CovariateSetFits.table", "CovariateSetFits.plot_forest",
        "CoxPH.fit(reference=)", "CoxPH.prepare(reference=)", "compare(covariate=)",
        "bayescrt.compare", "standardised_survival(times=)", "rmst_difference(horizon=)", "ppc_km(exposure=)",
        "bayescrt.PiecewiseExponentialPH", "Fit.frailty", "Fit.study_effects", "MetaAnalysis.fit_published",
        "MetaFit.leave_one_out", "MetaAnalysis.tau_sensitivity", "Grid.from_spec", "bayescrt.sensitivity.run",
        "SensitivityResult.table", "unmeasured_confounding(confounder_hr=)",
    }
    missing = must - checker.checked
    assert not missing, f"the README walk did not reach {sorted(missing)}; checked: {sorted(checker.checked)}"


def test_readme_registry_ids_and_cell_ids_exist():
    """Quoted published-registry ids ("<study>/<result>") and sensitivity cell ids name real entries."""
    strings = [node.value for _, source in _blocks() for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    registry_ids = [x for x in strings if re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+/[a-z0-9-]+", x)]
    cell_ids = [x for x in strings if re.fullmatch(r"\w+__\w+__\w+__\w+", x)]
    assert len(registry_ids) >= 3 and cell_ids, (registry_ids, cell_ids)
    for rid in registry_ids:
        bayescrt.published.get(rid)  # raises, naming the id, when it does not exist
    cells = {c.id for c in bayescrt.sensitivity.Grid.from_spec("danish").cells()}
    assert set(cell_ids) <= cells, f"{sorted(set(cell_ids) - cells)} are not cells of the danish grid {sorted(cells)}"


def test_readme_inline_code_resolves():
    """Inline code such as `bc.simulate`, `fit.priors` or `CoxPH(sampler="pymc")` names real things."""
    env = {"bc": ("obj", bayescrt), "fit": ("inst", bayescrt.Fit)}
    env.update({n: ("obj", getattr(bayescrt, n)) for n in bayescrt.__all__
                if not inspect.ismodule(getattr(bayescrt, n))})
    checker = Checker(env)
    for span in INLINE.findall(README.read_text()):
        if FILE_NAME.match(span.strip()):
            continue
        try:
            tree = ast.parse(span.strip(), mode="eval")
        except SyntaxError:
            continue
        checker.run(ast.Expr(tree.body, lineno=0), f"README.md inline `{span}`")
    assert not checker.problems, "\n".join(checker.problems)
    assert {"bayescrt.simulate", "CoxPH(sampler=)", "Fit.priors", "Fit.idata",
            "SurvivalData.from_frame"} <= checker.checked, sorted(checker.checked)


def test_simulate_is_the_function_and_its_module_stays_importable():
    import bayescrt as bc
    from bayescrt.analysis import simulate_cohort
    from bayescrt.spec import load_spec

    assert inspect.isfunction(bc.simulate) and bc.simulate.__module__ == "bayescrt.simulate"
    simulate_cohort(load_spec("danish"))  # imports bayescrt.simulate (the module) on first use
    assert inspect.isfunction(bc.simulate), "bc.simulate became the module after a spec simulated"
    from bayescrt.simulate import _inverse_cumulative_hazard, simulate

    assert simulate is bc.simulate and callable(_inverse_cumulative_hazard)


@pytest.mark.parametrize("source, expected", [
    ("import bayescrt as bc\nbc.no_such_thing()", "bayescrt.no_such_thing does not exist"),
    ("import bayescrt as bc\nbc.CoxPH(tie='efron')", "takes no keyword 'tie'"),
    ("import bayescrt as bc\nf = bc.CoxPH().fit(None, time='t', event='e', covariates=[])\nf.nope()",
     "have no 'nope'"),
    ("from bayescrt import absolute\nabsolute.standardised_survival(None, 'x', time=[1])", "no keyword 'time'"),
    ("from bayescrt import nothing_here", "no such name"),
])
def test_checker_catches_what_it_claims_to(source, expected):
    checker = Checker()
    checker.run(ast.parse(source), "example")
    assert any(expected in p for p in checker.problems), checker.problems
