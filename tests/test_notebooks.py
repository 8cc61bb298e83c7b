"""Notebooks run top to bottom (with fewer draws) and end by asserting their key result.

The selected notebooks are executed two at a time, each in its own kernel, by a runner process per notebook: one
notebook's single-threaded stretches (a fresh kernel's imports, compilation) overlap the other's sampling on a
2-core machine. Each test waits for its own notebook and checks it."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from seeds import SHIFT, seed

pytestmark = pytest.mark.mcmc

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
AT_ONCE = 2

_RUN = """
import sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, sys.argv[2])
"""


def _execute(path: Path, out: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _RUN, str(path), str(out), str(path.parent)], env=env,
                          capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
    env = {**os.environ, "BAYESCRT_DRAWS": "500", "BAYESCRT_CHAINS": "4", "MPLBACKEND": "Agg",
           "BAYESCRT_CANDIDATES": "ihd,af,copd"}  # 08: 8 of the 64 covariate sets
    if SHIFT:  # each notebook's own seeds otherwise; a shifted run moves them all away from those
        env["BAYESCRT_SEED"] = str(seed(10_000))
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_notebook_runs"]
    out = tmp_path_factory.mktemp("notebooks")
    pool = ThreadPoolExecutor(AT_ONCE)
    yield {p: (pool.submit(_execute, p, out / p.name, env), out / p.name) for p in selected}
    pool.shutdown(wait=True, cancel_futures=True)  # a run stopped early (-x) starts no more of them


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, executed):
    future, out = executed[path]
    done = future.result()
    assert done.returncode == 0, done.stderr[-5000:]
    nb = nbformat.read(out, as_version=4)
    last = nb.cells[-1]
    assert any("key results hold" in o.get("text", "") for o in last.get("outputs", [])), last.get("outputs")
