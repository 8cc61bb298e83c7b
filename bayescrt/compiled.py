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


def data_values(model) -> dict:
    """The current value of every named data container of ``model``."""
    from pytensor.compile.sharedvalue import SharedVariable

    return {v.name: v.get_value() for v in model.named_vars.values() if isinstance(v, SharedVariable)}


class CompiledModels:
    """Compiled nutpie models by structure; ``compile(model)`` compiles a structure only the first time.

    Thread-safe. ``compilations`` counts real compilations, ``reuses`` the
    models served from the cache, ``structures`` lists a short hash per key.
    """

    def __init__(self):
        self._cache: dict = {}
        self._lock = threading.Lock()
        self.compilations = 0
        self.reuses = 0
        self.compile_seconds = 0.0

    @property
    def structures(self) -> list[str]:
        return [hashlib.sha256(repr(k).encode()).hexdigest()[:12] for k in self._cache]

    def compile(self, model):
        """(compiled nutpie model for ``model``, whether it was newly compiled)."""
        import nutpie

        key = structure_key(model)
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is None:
                t0 = _time.perf_counter()
                compiled = nutpie.compile_pymc_model(model, freeze_model=False)  # data stay inputs
                self.compile_seconds += _time.perf_counter() - t0
                self._cache[key] = compiled
                self.compilations += 1
                return compiled, True
            self.reuses += 1
        new = compiled.with_data(**{k: v for k, v in data_values(model).items()
                                    if any(var.name == k for var in compiled.shared_var_keys)})
        import pandas as pd

        coords = {**(compiled.coords or {}), **{k: pd.Index(v) for k, v in model.coords.items()}}
        # the starting point is the new model's own (its support point depends on data and prior values)
        return dataclasses.replace(new, _coords=coords, initial_point_func=initial_point_func(model)), False


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
