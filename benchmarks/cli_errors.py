"""How long `bayescrt analyse` takes to refuse a bad spec or data file, beside what any such command pays.

Each case edits the example spec (models/example_registry.toml) or its extract in a temporary folder
and runs `python -m bayescrt.cli analyse SPEC --out DIR` in a fresh interpreter, the fastest of
``--repeat`` runs (the machine's other work only ever adds to a run). Two references in the same
process: an empty interpreter, and one that imports pandas (which reading any data file needs). The
gap between a case and the pandas reference is bayescrt's own share: its imports (formulaic among
them, for formulas) and the checks.

    python benchmarks/cli_errors.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

MODELS = Path(__file__).resolve().parents[1] / "models"


def _seconds(argv, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    spec = (MODELS / "example_registry.toml").read_text()
    extract = pd.read_csv(MODELS / "example_extract.csv")
    cases = {
        "data file missing": (('file = "example_extract.csv"', 'file = "extract_2018.csv"'), None),
        "date column misspelt": (('start = "implant_date"', 'start = "implant_dat"'), None),
        "set column missing": (('minimal = ["age", "male"]', 'minimal = ["age", "sex"]'), None),
        "formula column missing": (("+ egfr +", "+ egfr_ckd +"), None),
        "dates in another format": (None, extract.assign(
            implant_date=pd.to_datetime(extract.implant_date).dt.strftime("%d/%m/%Y"))),
        "unknown key": (("[data.imputation]", "[data.imputaton]"), None),
    }
    py = sys.executable
    empty = _seconds([py, "-c", "pass"], args.repeat)
    pandas = _seconds([py, "-c", "import pandas"], args.repeat)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'case':<26} {'seconds':>8} {'- pandas import':>16}")
    print(f"{'(empty interpreter)':<26} {empty:8.3f}")
    print(f"{'(import pandas)':<26} {pandas:8.3f}")
    for name, (edit, data) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "spec.toml").write_text(spec.replace(*edit) if edit else spec)
            if data is None:
                shutil.copy(MODELS / "example_extract.csv", tmp / "example_extract.csv")
            else:
                data.to_csv(tmp / "example_extract.csv", index=False)
            s = _seconds([py, "-m", "bayescrt.cli", "analyse", str(tmp / "spec.toml"), "--out", str(tmp / "out")],
                         args.repeat)
        print(f"{name:<26} {s:8.3f} {s - pandas:16.3f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
