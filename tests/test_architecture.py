"""The package's import structure: no import cycles, and every import goes to its own layer or one below.

Every module of ``bayescrt`` is parsed with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` anywhere in a file counts, also inside functions and methods (a lazy import is
still a dependency), except inside ``if TYPE_CHECKING:`` blocks (annotations only). Relative imports
are resolved; ``from .x import y`` is an import of the module ``bayescrt.x.y`` when that is a module,
else of ``bayescrt.x``; a package's ``__init__.py`` is the package's own module.

The layers are data written once, in README.md's architecture section: a fenced ``layers`` block,
bottom layer first, one layer per line, module names relative to the package separated by spaces
(``published.registry`` is ``bayescrt/published/registry.py``, ``published`` the package
``bayescrt/published/__init__.py``, ``__init__`` the top package ``bayescrt/__init__.py``). Every
module must be in exactly one layer, and every name in the block must be a module.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bayescrt"
README = ROOT / "README.md"
LAYERS_BLOCK = re.compile(r"^```layers[ \t]*\n(.*?)^```", re.S | re.M)
TOP = "__init__"  # the block's name for the top package's own module


# ------------------------------------------------------------------------------------------------ the graph
def module_files(package_dir: Path, package: str) -> dict[str, Path]:
    """``{module name: file}`` for every ``.py`` file of the package (``__init__.py`` is its package)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir)
        if "__pycache__" in rel.parts:
            continue
        parts = [package, *rel.parts[:-1]]
        if rel.name != "__init__.py":
            parts.append(rel.stem)
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, except those under ``if TYPE_CHECKING:``."""
    found = []

    def visit(node):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of what ``from <...> import`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(parts) - 1:
        raise ValueError(f"{module}: relative import beyond the top package (level {node.level})")
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def import_graph(package_dir: Path, package: str):
    """``(graph, unresolved)``: ``graph[module] = {imported module: first line}``, restricted to the package's
    modules; ``unresolved``: ``(module, line, name)`` for each import of a package name that is no module."""
    files = module_files(package_dir, package)
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    unresolved = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in import_nodes(tree):
            targets = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _in_package(alias.name, package):
                        # `import a.b.c` imports the deepest of a.b.c, a.b, a that is a module
                        parts = alias.name.split(".")
                        hit = next((".".join(parts[:k]) for k in range(len(parts), 0, -1)
                                    if ".".join(parts[:k]) in files), None)
                        targets.append(hit or alias.name)
                        if hit != alias.name:
                            unresolved.append((module, node.lineno, alias.name))
            else:
                base = _base(node, module, is_package)
                if not _in_package(base, package):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in files:
                        targets.append(sub)
                    elif base in files:
                        targets.append(base)
                    else:
                        unresolved.append((module, node.lineno, base))
            for target in targets:
                if target in files and target != module:
                    graph[module].setdefault(target, node.lineno)
    return graph, unresolved


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


# ------------------------------------------------------------------------------------------------ the layers
def parse_layers(text: str, package: str = PACKAGE) -> list[list[str]]:
    """The ``layers`` block of a README: one list of module names per layer, bottom first."""
    blocks = LAYERS_BLOCK.findall(text)
    if len(blocks) != 1:
        raise AssertionError(f"README.md must have exactly one ```layers block (found {len(blocks)})")
    layers = []
    for line in blocks[0].splitlines():
        names = line.split("#", 1)[0].split()
        if names:
            layers.append([package if n == TOP else f"{package}.{n}" for n in names])
    return layers


def layer_problems(graph: dict[str, dict[str, int]], layers: list[list[str]], files: dict[str, Path]) -> list[str]:
    """What is wrong with ``layers`` for ``graph``: modules missing from it, listed twice or not existing, and
    imports of a module in a higher layer."""
    problems, layer_of, wild = [], {}, {}
    for i, layer in enumerate(layers):
        for m in layer:
            if m.endswith(".*"):  # every module of that package not listed by name
                wild[m[:-2]] = i
                continue
            if m in layer_of:
                problems.append(f"{m} is listed in two layers ({layer_of[m] + 1} and {i + 1}); list it once")
            layer_of.setdefault(m, i)
    for pkg, i in wild.items():
        matched = [m for m in graph if m.startswith(pkg + ".") and m not in layer_of]
        if not matched:
            problems.append(f"{pkg}.* is listed in the layers block but matches no module of the package")
        for m in matched:
            layer_of[m] = i
    for m in sorted(set(layer_of) - set(graph)):
        problems.append(f"{m} is listed in the layers block but is not a module of the package (a file that was "
                        "removed or renamed?)")
    for m in sorted(set(graph) - set(layer_of)):
        problems.append(f"{m} ({files[m].as_posix()}) is in no layer: add it to the ```layers block of README.md")
    for a in sorted(graph):
        for b, line in sorted(graph[a].items()):
            if a in layer_of and b in layer_of and layer_of[b] > layer_of[a]:
                problems.append(f"{files[a].as_posix()}:{line}: {a} (layer {layer_of[a] + 1}) imports {b} (layer "
                                f"{layer_of[b] + 1}, above it)")
    return problems


# ------------------------------------------------------------------------------------------------ the package
@pytest.fixture(scope="module")
def package():
    files = {m: p.relative_to(ROOT) for m, p in module_files(ROOT / PACKAGE, PACKAGE).items()}
    graph, unresolved = import_graph(ROOT / PACKAGE, PACKAGE)
    return files, graph, unresolved


def test_the_package_has_no_import_cycle(package):
    files, graph, _ = package
    cycle = find_cycle(graph)
    assert cycle is None, "\n" + "\n".join([f"import cycle: {' -> '.join(cycle)}"] + [
        f"  {files[a].as_posix()}:{graph[a][b]}: {a} imports {b}" for a, b in zip(cycle, cycle[1:])])


def test_every_import_goes_to_its_own_layer_or_below(package):
    files, graph, _ = package
    problems = layer_problems(graph, parse_layers(README.read_text(encoding="utf-8")), files)
    assert not problems, "\n" + "\n".join(problems)


def test_every_import_of_the_package_names_a_module(package):
    """A lazy import of a module that was moved or removed fails only when its function runs: catch it here."""
    files, _, unresolved = package
    assert not unresolved, "\n" + "\n".join(f"{files[m].as_posix()}:{line}: imports {name!r}, which is no module of "
                                            "the package" for m, line, name in unresolved)


MODEL_CODE = ("fit", "estimators", "simulate", "sensitivity", "analysis", "compiled", "meta", "baseline", "absolute",
              "bias", "model_comparison", "reproduce", "calibrate", "cli")


def _is_model_code(module: str) -> bool:
    rel = module[len(PACKAGE) + 1:]
    if rel.startswith("families.") and rel != "families.registry":
        return True
    return any(rel == m or rel.startswith(m + ".") for m in MODEL_CODE)


def test_the_spec_layer_imports_no_model_code(package):
    """bayescrt.spec reads and checks TOML into data: nothing it imports, directly or not, at module level or
    inside a function, is model code (estimators, families, fits, the simulator, sensitivity)."""
    _, graph, _ = package
    start = f"{PACKAGE}.spec"
    via, todo = {start: None}, [start]  # breadth first: each module's shortest chain of imports from spec
    for m in todo:
        for t in sorted(graph[m]):
            if t not in via:
                via[t] = m
                todo.append(t)
    bad = sorted(m for m in via if _is_model_code(m))

    def chain(m):
        out = [m]
        while via[out[-1]] is not None:
            out.append(via[out[-1]])
        return " <- ".join(out)

    assert not bad, "bayescrt.spec reaches model code:\n" + "\n".join(f"  {chain(m)}" for m in bad)


def test_loading_a_spec_loads_no_model_code():
    """The same at run time: loading and reading the shipped spec imports no model module, nor PyMC."""
    code = textwrap.dedent("""
        import sys
        from bayescrt.spec import load_spec
        spec = load_spec("danish")
        spec.published, spec.covariate_sets, spec.simulation_kwargs(), spec.model_options, spec.cohort_seed()
        print(" ".join(sorted(sys.modules)))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    loaded = out.stdout.split()
    bad = [m for m in loaded if (_in_package(m, PACKAGE) and _is_model_code(m))
           or m.split(".")[0] in ("pymc", "pytensor", "nutpie")]
    assert not bad, f"loading a spec imported model code: {bad}"


# ------------------------------------------------------------------------------------------------ the checker
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": """
            def later():
                from .a import thing
                return thing
            """,
        "pkg/c.py": "from .b import later\n",
    })
    graph, unresolved = import_graph(tmp_path / "pkg", "pkg")
    assert graph["pkg.a"] == {"pkg.b": 1} and graph["pkg.b"] == {"pkg.a": 3} and not unresolved
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"pkg.a", "pkg.b"} and cycle[0] == cycle[-1], cycle


def test_the_checker_resolves_imports_and_ignores_type_checking_blocks(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .sub import mod\n",
        "pkg/low.py": """
            from typing import TYPE_CHECKING
            import os
            if TYPE_CHECKING:
                from .high import Thing
            else:
                from . import other
            """,
        "pkg/other.py": "import pkg.sub.mod\nfrom pkg import low\n",
        "pkg/high.py": "from .sub.mod import name\nfrom .sub import name2\n",
        "pkg/sub/__init__.py": "from .. import other\nfrom .gone import name\n",
        "pkg/sub/mod.py": "from ..low import x\n",
    })
    graph, unresolved = import_graph(tmp_path / "pkg", "pkg")
    assert graph["pkg"] == {"pkg.sub.mod": 1}
    assert graph["pkg.low"] == {"pkg.other": 7}  # the TYPE_CHECKING import of pkg.high is left out
    assert graph["pkg.other"] == {"pkg.sub.mod": 1, "pkg.low": 2}
    assert graph["pkg.high"] == {"pkg.sub.mod": 1, "pkg.sub": 2}
    assert graph["pkg.sub"] == {"pkg.other": 1} and graph["pkg.sub.mod"] == {"pkg.low": 1}
    assert unresolved == [("pkg.sub", 2, "pkg.sub.gone")]  # a module that does not exist
    assert find_cycle(graph) is not None  # pkg.low -> pkg.other -> pkg.low


def test_a_package_wildcard_places_every_module_not_named(tmp_path):
    """``pkg.fam.*`` puts each module of pkg.fam not listed by name in its layer: a new family module needs no
    README edit, and still may not import upwards."""
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/low.py": "", "pkg/fam/__init__.py": "",
                      "pkg/fam/registry.py": "", "pkg/fam/a.py": "from .. import low\n",
                      "pkg/fam/b.py": "from . import a\n", "pkg/top.py": "from .fam import b\n"})
    graph, _ = import_graph(tmp_path / "pkg", "pkg")
    files = module_files(tmp_path / "pkg", "pkg")
    layers = parse_layers("```layers\nlow fam fam.registry\nfam.*\ntop __init__\n```\n", package="pkg")
    assert layer_problems(graph, layers, files) == []
    layers = parse_layers("```layers\nlow fam fam.registry fam.*\ntop __init__\n```\n", package="pkg")
    assert layer_problems(graph, layers, files) == []
    _write(tmp_path, {"pkg/fam/c.py": "from .. import top\n"})  # a new module that imports upwards
    graph, _ = import_graph(tmp_path / "pkg", "pkg")
    files = module_files(tmp_path / "pkg", "pkg")
    layers = parse_layers("```layers\nlow fam fam.registry\nfam.*\ntop __init__\n```\n", package="pkg")
    problems = layer_problems(graph, layers, files)
    assert len(problems) == 1 and "pkg.fam.c (layer 2) imports pkg.top (layer 3, above it)" in problems[0], problems
    layers = parse_layers("```layers\nlow fam fam.registry\nnone.*\nfam.* top __init__\n```\n", package="pkg")
    assert any("none.* is listed" in p for p in layer_problems(graph, layers, files))


def test_the_layer_check_names_upward_imports_and_unplaced_modules(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/low.py": "def f():\n    from . import high\n",
                      "pkg/high.py": "from . import low\n", "pkg/new.py": ""})
    graph, _ = import_graph(tmp_path / "pkg", "pkg")
    files = module_files(tmp_path / "pkg", "pkg")
    layers = parse_layers("text\n```layers\nlow gone  # the bottom\n\nhigh __init__\n```\n", package="pkg")
    assert layers == [["pkg.low", "pkg.gone"], ["pkg.high", "pkg"]]
    problems = layer_problems(graph, layers, files)
    assert any("pkg.low (layer 1) imports pkg.high (layer 2, above it)" in p and ":2:" in p for p in problems), problems
    assert any(p.startswith("pkg.gone is listed") for p in problems), problems
    assert any(p.startswith("pkg.new (") and "is in no layer" in p for p in problems), problems
    assert len(problems) == 3, problems
