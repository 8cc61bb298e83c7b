"""The package as users install it: built into a wheel, installed outside the source tree, run from
elsewhere with no BAYESCRT_MODELS. The wheel is built from a copy of the sources, so that build/ and
*.egg-info never land in the repository; it is installed with ``pip --target`` and put first on
PYTHONPATH, ahead of the editable install's import hook (checked by ``bayescrt.__file__``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("bayescrt", "models"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    res = _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
                "-q", "-w", str(root / "dist")], cwd=root, env=env, timeout=300)
    assert res.returncode == 0, f"building the wheel failed:\n{res.stdout}\n{res.stderr}"
    (whl,) = (root / "dist").glob("bayescrt-*.whl")
    return whl


@pytest.fixture(scope="module")
def target(wheel, tmp_path_factory) -> Path:
    tgt = tmp_path_factory.mktemp("site") / "target"
    res = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(tgt),
                str(wheel)], env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=300)
    assert res.returncode == 0, f"installing the wheel failed:\n{res.stdout}\n{res.stderr}"
    # A decoy: the folder above an installed package (site-packages) may hold an unrelated models/;
    # bayescrt must never read it. Broken TOML there would make any run that does exit 2.
    (tgt / "models").mkdir()
    (tgt / "models" / "danish_registry.toml").write_text("this is not the bayescrt spec [\n")
    return tgt


def _env(target: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BAYESCRT_MODELS", "PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(target)
    env["MPLBACKEND"] = "Agg"
    return env


def test_wheel_ships_every_module_and_the_specs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = sorted(p.name for p in (REPO / "models").glob("*.toml"))
    assert "danish_registry.toml" in specs and "danish_registry.calibration.toml" in specs
    assert {f"bayescrt/models/{s}" for s in specs} <= names, sorted(n for n in names if "models" in n)
    assert not any(n.startswith("models/") for n in names), "the specs belong inside the package, not top level"
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "bayescrt").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules - names == set(), f"modules missing from the wheel (add their package to pyproject.toml): " \
                                     f"{sorted(modules - names)}"
    data = {p.relative_to(REPO).as_posix() for pattern in ("published/studies/*.toml", "datasets/*.csv")
            for p in (REPO / "bayescrt").glob(pattern)}
    assert data and data <= names, sorted(data - names)


def test_installed_package_is_imported_and_finds_its_own_specs(target, tmp_path):
    code = ("import bayescrt, bayescrt.spec as s\n"
            "print(bayescrt.__file__)\n"
            "print(s.models_dir())\n"
            "print(s.load_spec('danish').path)\n"
            "print(len(bayescrt.sensitivity.Grid.from_spec('danish').cells()))\n"
            "print(callable(bayescrt.simulate))\n")
    res = _run([sys.executable, "-c", code], cwd=tmp_path, env=_env(target), timeout=300)
    assert res.returncode == 0, res.stderr
    init, models, spec, n_cells, simulate_callable = res.stdout.strip().splitlines()[-5:]
    assert Path(init) == target / "bayescrt" / "__init__.py", f"imported {init}, not the installed copy"
    assert Path(models) == target / "bayescrt" / "models"
    assert Path(spec) == target / "bayescrt" / "models" / "danish_registry.toml"
    assert int(n_cells) > 0 and simulate_callable == "True"


@pytest.mark.mcmc
def test_reproduce_danish_from_the_installed_wheel(target, tmp_path):
    out = tmp_path / "out"
    res = _run([sys.executable, "-m", "bayescrt.cli", "reproduce", "danish", "--draws", "100", "--chains", "2",
                "--no-progress", "--out", str(out)], cwd=tmp_path, env=_env(target), timeout=900)
    log = f"exit {res.returncode}\n--- stdout\n{res.stdout[-4000:]}\n--- stderr\n{res.stderr[-4000:]}"
    # 1: a fit failed its diagnostics, which 100 draws may do; 2 (a spec error) or a traceback is a failure
    assert res.returncode in (0, 1), log
    assert "Traceback" not in res.stderr, log
    assert "SYNTHETIC" in res.stdout, log
    assert (out / "table.csv").stat().st_size > 0, log
    ncs = sorted(p.name for p in out.glob("*.nc"))
    assert {"danish_minimal.nc", "danish_full.nc"} <= set(ncs), (ncs, log)
    assert "SYNTHETIC" in (out / "README.txt").read_text()


def test_source_tree_reads_its_own_models_folder_and_the_variable_wins(monkeypatch, tmp_path):
    """A checkout or editable install reads models/ at the top of the repository, so edits take effect."""
    import bayescrt
    from bayescrt.spec import models_dir

    if Path(bayescrt.__file__).resolve().parent != REPO / "bayescrt":
        pytest.skip(f"bayescrt is imported from {bayescrt.__file__}, not from this source tree")
    monkeypatch.delenv("BAYESCRT_MODELS", raising=False)
    assert models_dir() == REPO / "models"
    monkeypatch.setenv("BAYESCRT_MODELS", str(tmp_path))
    assert models_dir() == tmp_path
