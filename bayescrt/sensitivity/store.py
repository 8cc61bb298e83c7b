"""The on-disk store of a grid: the lock, atomic JSON writes, the manifest, the compilation journal, cell files.

``OUT/cells/<cell>.nc`` holds each cell's saved fit (``.nc.tmp`` while it is
written, ``.running`` while it is fitted), ``OUT/manifest.json`` the grid and
each cell's record, ``OUT/compilations.jsonl`` one line per compilation and
``OUT/.lock`` the lock of the run that writes to ``OUT``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..errors import ResultFileError, SpecError

JOURNAL = "compilations.jsonl"


class _lock:
    """One run per output folder: an exclusive lock on ``out/.lock``, released by the OS if the run dies."""

    def __init__(self, out: Path):
        self.path = out / ".lock"

    def __enter__(self):
        import fcntl

        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise SpecError(f"another run is writing to {str(self.path.parent)!r}; wait for it or choose another "
                            "out folder") from None
        return self

    def __exit__(self, *exc):
        self.fh.close()


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


# ------------------------------------------------------------------ manifest
def _manifest_cells(manifest_path: Path) -> dict:
    """The cell records of the manifest an earlier run left (empty if there is none or it cannot be read)."""
    before = {}
    if manifest_path.exists():  # keep the records (time, compilation) of cells finished by earlier runs
        try:
            before = json.loads(manifest_path.read_text()).get("cells", {})
        except (OSError, ValueError):
            before = {}
    return before


def _record(manifest, path, result):
    for rec in result["records"]:
        manifest["cells"][rec["id"]].update({k: v for k, v in rec.items() if k != "id"})
    _write_json(path, manifest)


# ------------------------------------------------------------------- journal
def _journal_compilation(path: Path, run_id: str, structure: str, seconds: float) -> None:
    line = json.dumps({"run": run_id, "structure": structure, "seconds": round(seconds, 3), "pid": os.getpid(),
                       "host": socket.gethostname()}) + "\n"
    with open(path, "a") as fh:  # one short appended line: atomic on a local file system
        fh.write(line)


def _journaled(out: Path, run_id: str) -> list[dict]:
    """The compilations journaled by run ``run_id``."""
    path = out / JOURNAL
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a line cut short by a kill
            continue
        if rec.get("run") == run_id:
            rows.append(rec)
    return rows


# --------------------------------------------------------------- cell files
def _valid(path: Path, fingerprint: str) -> bool:
    from ..fit import load

    if not path.exists():
        return False
    try:
        fit = load(path)
    except (ResultFileError, OSError, ValueError):
        return False
    return fit.idata.attrs.get("bayescrt_cell_fingerprint") == fingerprint


def _discard(out: Path, cell_id: str) -> None:
    """Remove a cell's file, its temporary file and its marker (a stale or broken result, a killed run's marker)."""
    for suffix in (".nc", ".nc.tmp", ".running"):
        (out / "cells" / f"{cell_id}{suffix}").unlink(missing_ok=True)


def _count_done(out: Path, ids) -> int:
    return sum((out / "cells" / f"{i}.nc").exists() for i in ids)


def _load_cell(out: Path, cid: str, manifest: dict):
    """The saved fit of cell ``cid``, checked to have the fingerprint the manifest records for it."""
    from ..fit import load

    fit = load(out / "cells" / f"{cid}.nc")
    expected = manifest["cells"][cid]["fingerprint"]
    if fit.idata.attrs.get("bayescrt_cell_fingerprint") != expected:
        raise ResultFileError(f"{out / 'cells' / (cid + '.nc')}: the file is not the fit of this grid's cell "
                              f"{cid!r} (its settings, seed or data differ); run the grid again to refit it")
    return fit
