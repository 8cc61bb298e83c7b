"""Checks of scalar arguments, shared by every module: numbers, integers, probabilities, seeds.

A number is any real number, Python's or numpy's (``np.float32(1.5)``, ``np.int64(500)``); a bool is
never a number, and nothing is coerced: ``draws=1000.0`` is refused rather than truncated. Each check
returns the value as a plain Python ``int`` or ``float`` and raises the given error type (a
:class:`~bayescrt.errors.SpecError` unless told otherwise) with the argument's name, its value and the
valid range.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path

import numpy as np

from .errors import SpecError

SEED_MAX = 2**32 - 1  # seeds are unsigned 32-bit integers, as the fresh seeds bayescrt draws


def is_number(x) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _num(v) -> str:
    """A bound as people read it: integers in full (4294967295, not 4.29497e+09), other numbers by :g."""
    return str(v) if isinstance(v, numbers.Integral) else f"{v:g}"


def _bounds(low, high, low_open=False, high_open=False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {_num(high)}"
    return ""


def integer(name: str, value, *, low: int | None = None, high: int | None = None, error=SpecError) -> int:
    """``value`` as an int, or ``error`` naming ``name``, the value and the range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise error(f"{name}={value!r} must be an integer{_bounds(low, high)}"
                    + (f", e.g. {name}={int(value)}" if is_number(value) and math.isfinite(value)
                       and float(value).is_integer() else ""))
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise error(f"{name}={v} is out of range: it must be an integer{_bounds(low, high)}")
    return v


def real(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
         high_open: bool = False, error=SpecError) -> float:
    """``value`` as a finite float within the bounds, or ``error`` naming ``name``, the value and the range."""
    if not is_number(value):
        raise error(f"{name}={value!r} must be a number{_bounds(low, high, low_open, high_open)}")
    v = float(value)
    if not math.isfinite(v):
        raise error(f"{name}={value!r} must be a finite number{_bounds(low, high, low_open, high_open)}")
    if (low is not None and (v < low or (low_open and v == low))) or \
            (high is not None and (v > high or (high_open and v == high))):
        raise error(f"{name}={v:g} is out of range: it must be{_bounds(low, high, low_open, high_open)}")
    return v


def flag(name: str, value, *, error=SpecError) -> bool:
    """A yes/no option: a bool (numpy's too), never a string such as 'no' that would read as True."""
    if not isinstance(value, (bool, np.bool_)):
        raise error(f"{name}={value!r} must be True or False")
    return bool(value)


def probability(name: str, value, *, error=SpecError) -> float:
    """A probability strictly between 0 and 1 (a credible level, a prevalence)."""
    return real(name, value, low=0.0, high=1.0, low_open=True, high_open=True, error=error)


def seed(name: str, value, *, error=SpecError) -> int | None:
    """A random seed: None (draw a fresh one) or an integer in [0, 2**32 - 1]."""
    if value is None:
        return None
    return integer(name, value, low=0, high=SEED_MAX, error=error)


LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def label(kind: str, name, *, error=SpecError) -> str:
    """A name that becomes part of a file name (a spec, covariate set, prior, family or subset name).

    1 to 64 characters, letters, digits and ``_ . + -``, starting with a letter or digit, and no ``__``
    (the separator of a sensitivity cell's id): such a name is one file name inside the output folder,
    never a path (``../x``, ``a/b``), a hidden file, or a part that could make two cells one.
    """
    if not isinstance(name, str) or not LABEL.fullmatch(name) or "__" in name:
        why = ("it is not text" if not isinstance(name, str) else
               "it contains '__', which separates the parts of a sensitivity cell's id" if "__" in name else
               "it may hold only letters, digits and _ . + - (starting with a letter or digit, at most 64 characters), "
               "since it becomes part of a file name")
        raise error(f"{kind} name {name!r} is not allowed: {why}; rename it, e.g. "
                    f"{re.sub(r'_+', '_', re.sub(r'[^A-Za-z0-9_.+-]', '_', str(name))).strip('_.+-')[:64] or 'main'!r}")
    return name


# ------------------------------------------------------------------------------------------------ output paths
def _probe_writable(folder: Path, arg: str, error) -> None:
    """Create and remove a file in ``folder``: the one test of writability that also holds for root and for
    read-only mounts, where permission bits say nothing."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".bayescrt-write-check-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise error(f"{arg} {str(folder)!r}: cannot write there ({exc.strerror or exc}); choose a folder you can "
                    "write to") from None


def output_folder(path, arg: str = "out", *, create: bool = True, error=SpecError) -> Path:
    """Check, before any work starts, that ``path`` is (or can become) a writable folder; create it if asked."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise error(f"{arg}={path!r} must be a folder path")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise error(f"{arg} {str(folder)!r} is an existing file, not a folder; give a folder path or move the file")
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise error(f"{arg} {str(folder)!r}: {str(parent)!r} is a file, so no folder can be made there; give "
                        "another path")
        if not create:  # the folder would be made in the nearest existing one: that must be writable
            if parent is not None:
                _probe_writable(parent, arg, error)
            return folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise error(f"{arg} {str(folder)!r}: the folder cannot be created ({exc.strerror or exc}); choose a "
                        "folder you can write to") from None
    _probe_writable(folder, arg, error)
    return folder


def output_file(path, arg: str, *, error=SpecError) -> Path:
    """Check, before any work starts, that a file can be written at ``path``: its folder exists and is writable,
    and ``path`` is not a folder."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise error(f"{arg}={path!r} must be a file path")
    file = Path(path)
    if file.is_dir():
        raise error(f"{arg} {str(file)!r} is a folder; give a file path such as {str(file / 'result')!r}")
    parent = file.parent
    if not parent.exists():
        raise error(f"{arg} {str(file)!r}: its folder {str(parent)!r} does not exist; create it first "
                    f"(mkdir -p {str(parent)!r}) or give another path")
    if not parent.is_dir():
        raise error(f"{arg} {str(file)!r}: {str(parent)!r} is a file, not a folder")
    _probe_writable(parent, arg, error)
    return file


def inside(folder, path, *, error=SpecError) -> Path:
    """``path`` if it lies inside ``folder`` (after resolving ``..`` and links), else ``error``: a name from a spec
    never writes outside the output folder."""
    folder, path = Path(folder).resolve(), Path(path)
    if not path.resolve().is_relative_to(folder):
        raise error(f"{str(path)!r} would be written outside the output folder {str(folder)!r}; names from specs "
                    "must be plain names, not paths")
    return path
