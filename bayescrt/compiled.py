"""One compilation per model structure: a cache of compiled nutpie models.

Every number a model builder takes from the data or from a prior (covariate
values, risk-set indices, event indicators, prior means and SDs,
preconditioning) enters the PyMC model as a named data container
(``pm.Data``), not as a constant. Two models built for different data or
priors then have the same *structure*: the same graph of operations from the
same containers, differing only in the containers' values. A compiled nutpie
model is a function of those containers, so :class:`CompiledModels` compiles
each structure once and serves later models of that structure by swapping the
container values in (``CompiledPyMCModel.with_data``), which takes
milliseconds instead of the 10-20 s of a compilation.

The structure key is exact, not heuristic: it walks the graph of the
log-density and of the deterministics in topological order and records each
operation (pytensor compares operations by their properties), each constant's
bytes, each data container's name and type, and each free variable's name and
type, plus the model's dimension lengths. A constant that differs between two
models therefore gives two keys and two compilations, never a wrong reuse.
Coordinate labels (e.g. covariate names) are not structure: the reused model
gets the new model's labels.

Every nutpie fit uses :func:`process_cache` unless given its own cache (or
``compiled_models=False``): a second fit of the same structure in one process
(new data of another size, new prior values) reuses the first one's
compilation with no argument. It keeps the last :data:`PROCESS_CACHE_SIZE`
structures; :func:`clear` empties it. What a new process can reuse lives on
disk: pytensor's numba cache of the compiled log density (``~/.pytensor``, or
``PYTENSOR_FLAGS=base_compiledir=...``) and numba's cache of the fused
likelihood kernels (``__pycache__`` beside :mod:`bayescrt.families.fused`, or
``NUMBA_CACHE_DIR``). The callback nutpie calls around the log density
(:mod:`bayescrt.native`) points at this process's function, so every new process
compiles it once (a few seconds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time as _time

import numpy as np


def structure_key(model) -> tuple:
    """A hashable key equal for two PyMC models exactly when one compiled function serves both."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import graph_inputs, io_toposort

    outputs = [model.logp()] + list(model.replace_rvs_by_values(model.deterministics))
    inputs = list(graph_inputs(outputs))
    index: dict = {}
    parts: list = []

    def ref(var):
        if var not in index:
            index[var] = len(index)
            if isinstance(var, Constant):
                data = np.asarray(var.data)
                parts.append(("const", str(var.type), data.shape,
                              hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()))
            elif isinstance(var, SharedVariable):
                parts.append(("data", var.name, str(var.type)))
            elif var.owner is None:
                parts.append(("input", var.name, str(var.type)))
        return index[var]

    for var in inputs:
        ref(var)
    for node in io_toposort(inputs, outputs):
        ins = tuple(ref(v) for v in node.inputs)
        parts.append((node.op, ins))
        for out in node.outputs:
            index.setdefault(out, len(index))
    parts.append(("outputs", tuple(ref(v) for v in outputs)))
    parts.append(("free", tuple((v.name, str(v.type)) for v in model.value_vars)))
    parts.append(("deterministics", tuple(v.name for v in model.deterministics)))
    parts.append(("dims", tuple(sorted((k, len(v)) for k, v in model.coords.items()))))
    return tuple(parts)


def _short(key: tuple) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()[:12]


def data_values(model) -> dict:
    """The current value of every named data container of ``model``."""
    from pytensor.compile.sharedvalue import SharedVariable

    return {v.name: v.get_value() for v in model.named_vars.values() if isinstance(v, SharedVariable)}


class CompiledModels:
    """Compiled nutpie models by structure; ``compile(model)`` compiles a structure only the first time.

    Thread-safe. ``compilations`` counts real compilations, ``reuses`` the
    models served from the cache, ``structures`` lists a short hash per key;
    ``on_compile`` is told of each compilation as it finishes.
    """

    def __init__(self, on_compile=None, max_structures: int | None = None):
        from . import validation

        self._cache: dict = {}  # insertion order = least recently used first
        # None: unbounded
        self.max_structures = None if max_structures is None else validation.integer("max_structures",
                                                                                    max_structures, low=1)
        self._lock = threading.Lock()
        self.compilations = 0
        self.reuses = 0
        self.compile_seconds = 0.0
        self.on_compile = on_compile  # called as on_compile(structure hash, seconds) after each compilation

    @property
    def structures(self) -> list[str]:
        with self._lock:
            return [_short(k) for k in self._cache]

    def compile(self, model):
        """(compiled nutpie model for ``model``, whether it was newly compiled)."""
        from .native import compile_model

        key = structure_key(model)
        with self._lock:
            compiled = self._cache.pop(key, None)
            if compiled is None:
                t0 = _time.perf_counter()
                compiled = compile_model(model)  # data stay inputs
                seconds = _time.perf_counter() - t0
                self.compile_seconds += seconds
                # kept without its data (each reuse swaps in its own), so the cache holds no N-sized copies
                self._cache[key] = _without_data(compiled)
                while self.max_structures is not None and len(self._cache) > self.max_structures:
                    del self._cache[next(iter(self._cache))]
                self.compilations += 1
                fresh = True
            else:
                self._cache[key] = compiled  # now the most recently used
                self.reuses += 1
                fresh = False
        if fresh:
            if self.on_compile is not None:  # outside the lock: a callback may take its time
                self.on_compile(_short(key), seconds)
            return compiled, True
        values = data_values(model)
        needed = {var.name for var in compiled.shared_var_keys}
        if not needed <= set(values):  # the same structure has the same containers; never run on empty ones
            raise RuntimeError(f"a reused compilation needs data containers {sorted(needed - set(values))} that the "
                               "model does not have")
        swapped = compiled.with_data(**{k: v for k, v in values.items() if k in needed})
        import pandas as pd

        coords = {**(compiled.coords or {}), **{k: pd.Index(v) for k, v in model.coords.items()}}
        # the starting point is the new model's own (its support point depends on data and prior values)
        return dataclasses.replace(swapped, _coords=coords, initial_point_func=initial_point_func(model)), False


def _without_data(compiled):
    """``compiled`` with every data container replaced by an empty one of its type (a reuse swaps all in)."""
    try:
        values = {var.name: compiled.shared_data[key] for var, key in compiled.shared_var_keys.items()}
        return compiled.with_data(**{name: np.zeros((0,) * np.ndim(v), dtype=np.asarray(v).dtype)
                                     for name, v in values.items()})
    except Exception:  # noqa: BLE001 - a compiled model that cannot be emptied is kept as it is
        return compiled


PROCESS_CACHE_SIZE = 16
_process_cache: CompiledModels | None = None
_process_lock = threading.Lock()


def process_cache() -> CompiledModels:
    """The cache every nutpie fit uses by default: one per process, the last 16 structures."""
    global _process_cache
    with _process_lock:
        if _process_cache is None:
            _process_cache = CompiledModels(max_structures=PROCESS_CACHE_SIZE)
        return _process_cache


def clear() -> None:
    """Forget every compilation of :func:`process_cache` (the next fit of each structure compiles again)."""
    global _process_cache
    with _process_lock:
        _process_cache = None


def compile_jax(model):
    """The nutpie model of ``model`` by nutpie's JAX backend (``sampler="nutpie-jax"``), on JAX's default device.

    The data are frozen into the jitted log density as constants (nutpie's default for JAX), placed on the device
    with it: a graph whose shapes come from data (the subdistribution model's) cannot be traced with the data as
    arguments, and at N = 1,000,000 the frozen Cox model compiles as fast (first call 1.4 s either way on 2 cores)
    and evaluates no slower. Each fit compiles afresh; the fused operations need their JAX implementations
    registered first (:func:`bayescrt.families.fused_jax.register`, which the estimators call, and which also
    silences pytensor's note on each skipped check of a constant)."""
    import nutpie

    return nutpie.compile_pymc_model(model, backend="jax", gradient_backend="pytensor", freeze_model=True)


def initial_point_func(model):
    """``seed -> flat array`` of ``model``'s jittered support point, as nutpie builds it at compilation.

    Same strategy (support point, every free variable jittered, unconstrained
    space) and the same order (``model.free_RVs``), so a reused compilation starts
    where a fresh compilation of ``model`` would, and samples the same draws.
    """
    from pymc.initial_point import make_initial_point_fn

    fn = make_initial_point_fn(model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
                               return_transformed=True)
    names = [model.rvs_to_values[v].name for v in model.free_RVs]
    lock = threading.Lock()

    def flat(seed=None):
        with lock:
            point = fn(seed)
        return np.ascontiguousarray(np.concatenate([np.asarray(point[n], dtype="float64").ravel() for n in names]))

    return flat


def data_block(name: str, parts: dict) -> dict:
    """Several arrays as ONE data container of the current PyMC model, and a symbolic view of each.

    ``parts`` maps names to 1-D arrays (one row each), scalars (a row filled with
    the value) and, last, at most one 2-D array (a block of rows), all integer or
    all floating point, with one row length; ``None`` parts are skipped and come
    back as ``None`` (with no part present, no container is made). Each view is a
    row ``block[i]``, an element ``block[i, 0]`` or the remaining rows
    ``block[i:]`` of the container, contiguous in memory, so the graph reads the
    same numbers it would read from one container per array. No view's position
    depends on a length: data of another size keep the structure.

    Why: nutpie's compiled log-density unpacks every data container from a table
    of pointers, and numba's compilation of that step grows with the number of
    containers: on 2 cores a toy model compiled in 6.5 s with none, 8.4 s with one,
    12.9 s with ten and 24.6 s with twenty. The positions of the parts are
    constants of the graph, so they belong to the structure key: models with the
    same layout share one compilation, whatever their data.
    """
    import pymc as pm

    import pytensor
    from pymc.pytensorf import floatX, intX

    present = {k: np.asarray(v) for k, v in parts.items() if v is not None}
    if not present:  # nothing to hold: no container
        return dict.fromkeys(parts)
    kinds = {a.dtype.kind for a in present.values()}
    # the dtypes pm.Data would convert to (int64 -> int32, float64 stays under PyMC's float64 setting)
    if kinds <= {"i", "u", "b"}:
        dtype = intX(np.zeros(0, np.int64)).dtype
    elif kinds <= {"f", "i", "u", "b"} and "f" in kinds:
        dtype = floatX(np.zeros(0)).dtype
    else:
        raise TypeError(f"data block {name!r}: parts must be all integer or all floating point, got {kinds}")
    widths = {a.shape[-1] for a in present.values() if a.ndim > 0}
    if len(widths) > 1 or any(a.ndim > 2 for a in present.values()):
        raise ValueError(f"data block {name!r}: parts differ in row length {sorted(widths)} or have more than 2 "
                         f"dimensions: {({k: a.shape for k, a in present.items()})}")
    width = widths.pop() if widths else 1
    blocks = [k for k, a in present.items() if a.ndim == 2]
    if blocks and (len(blocks) > 1 or blocks[0] != list(present)[-1]):
        raise ValueError(f"data block {name!r}: a 2-D part must be the last and only one; got {blocks} "
                         f"in {list(present)}")
    # one array filled part by part (not each part converted, then concatenated: two more copies of the rows, each
    # 0.1-0.3 s at N = 1,000,000)
    n_rows = sum(1 if a.ndim < 2 else a.shape[0] for a in present.values())
    whole = np.empty((n_rows, width), dtype=dtype)
    where, i = {}, 0
    for k, a in present.items():
        if a.ndim == 0:
            whole[i] = a
            where[k] = (i, None)
            i += 1
        elif a.ndim == 1:
            whole[i] = a
            where[k] = (i, "row")
            i += 1
        else:
            whole[i:] = a
            where[k] = (i, "rest")
    if dtype.kind == "i":  # the block holds indices and codes below the number of rows; refuse what would wrap
        info = np.iinfo(dtype)
        for k, a in present.items():
            if a.size and (a.max() > info.max or a.min() < info.min):
                raise ValueError(f"data block {name!r}: part {k!r} holds values outside {dtype} "
                                 f"[{a.min()}, {a.max()}]")
    elif np.isnan(whole).any():  # pm.Data refuses these too (masked arrays); the data checks refuse them earlier
        raise ValueError(f"data block {name!r}: NaN in {[k for k, a in present.items() if np.isnan(a).any()]}")
    # what pm.Data does, without its two copies of the block (a conversion to the dtype it already has, and the
    # shared variable's own): 0.35 s at N = 1,000,000. The block is this function's own array.
    block = pytensor.shared(whole, name, borrow=True)
    pm.modelcontext(None).register_data_var(block)
    views = {}
    for k, (start, kind) in where.items():
        views[k] = block[start, 0] if kind is None else block[start] if kind == "row" else block[start:]
    return {k: views.get(k) for k in parts}
