"""A PyMC model's log density as the native function nutpie calls, compiled in seconds.

nutpie samples a PyMC model through a C callback: ``logp(dim, x, grad, logp, user_data)``.
pytensor compiles the log density and its gradient to a numba function (cached on disk by
pytensor, so a known graph loads in a fraction of a second); nutpie's own
``compile_pymc_model`` then wraps it in a callback that unpacks each data container with
generic machinery (a loop unrolled over the containers, an ellipsis assignment of the
gradient) whose numba compilation takes 10-15 s in every new process and cannot be cached.

:func:`compile_model` writes that wrapper out as plain code for the model at hand: one line
per data container reading its pointer and shape from a table of integers, the call, and a
loop copying the gradient. The same function is called on the same inputs, so the log
density is the same; the wrapper compiles in about a second (2-3 s at N = 8,880 against
11-15 s). The table is the only thing that holds where the data are, so
``with_data`` (the reuse of :class:`~bayescrt.compiled.CompiledModels`) swaps in data of
another size by writing a new table.

This path reads four names of nutpie's module (``_make_functions``,
``_prepare_dims_and_coords``, ``_wrap_with_lock``, ``CompiledPyMCModel``); where an
installed nutpie lacks one of them, or a model has a data container of another kind,
:func:`compile_model` falls back to ``nutpie.compile_pymc_model``, which gives the same
sampler its usual (slower) compilation. ``tests/test_native.py`` checks that the fast
path is the one taken with the nutpie installed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_DIMS = 2  # data containers are scalars, vectors or matrices
SLOTS = 2 + MAX_DIMS  # per container: address, size, shape
_DTYPES = {np.dtype(np.float64): "np.float64", np.dtype(np.int64): "np.int64", np.dtype(np.int32): "np.int32"}


def table(arrays: list[np.ndarray]) -> np.ndarray:
    """The integers the callback reads: per array its address, size and shape (``SLOTS`` each)."""
    out = np.zeros(max(1, len(arrays) * SLOTS), np.int64)
    for i, a in enumerate(arrays):
        out[i * SLOTS] = a.ctypes.data
        out[i * SLOTS + 1] = a.size
        out[i * SLOTS + 2:i * SLOTS + 2 + a.ndim] = a.shape
    return out


def _unpack(positions: list[int], arrays: list[np.ndarray]) -> tuple[str, str]:
    """Source lines binding ``a0, a1, ...`` to the arrays at ``positions`` of the table ``t``, and the argument list."""
    lines = []
    for k, i in enumerate(positions):
        a, base = arrays[i], i * SLOTS
        dtype = _DTYPES[a.dtype]
        if a.ndim == 0:
            lines.append(f"        a{k} = numba.carray(as_pointer(t[{base}]), (1,), {dtype}).reshape(())")
        else:
            shape = ", ".join(f"t[{base + 2 + d}]" for d in range(a.ndim))
            lines.append(f"        a{k} = numba.carray(as_pointer(t[{base}]), ({shape},), {dtype})")
    return "\n".join(lines), "".join(f", a{k}" for k in range(len(positions)))


_LOGP = """
def logp(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    finite = True
    v = 0.0
    try:
        t = numba.carray(user_data_, ({n_table},), np.int64)
{unpack}
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        value, grad = inner(x{args})
        v = value[()]
        logp_[0] = v
        for i in range({n_dim}):
            out[i] = grad[i]
            if not np.isfinite(grad[i]):
                finite = False
    except Exception:
        return 1
    if not finite:
        return 3
    if not np.isfinite(v):
        return 4
    return 0
"""

_EXPAND = """
def expand(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim} or expanded != {n_expanded}:
        return -1
    try:
        t = numba.carray(user_data_, ({n_table},), np.int64)
{unpack}
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        (values,) = inner(x{args})
        for i in range({n_expanded}):
            out[i] = values[i]
    except Exception:
        return -2
    return 0
"""


def _pointer_intrinsic():
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def as_pointer(typingctx, address):
        """An integer address as a void pointer."""
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)
        return types.voidptr(address), codegen

    return as_pointer


_AS_POINTER = None


def _callback(template: str, name: str, inner, signature, **fields):
    import numba

    global _AS_POINTER
    if _AS_POINTER is None:
        _AS_POINTER = _pointer_intrinsic()
    namespace = {"numba": numba, "np": np, "as_pointer": _AS_POINTER, "inner": inner}
    exec(template.format(**fields), namespace)  # noqa: S102 - generated from the fixed templates above
    return numba.cfunc(signature)(namespace[name])


FASTMATH = False
"""pytensor's ``numba__fastmath`` while a model compiles. Off: with LLVM's fast-math flags (reassociation,
approximate functions) a log density compiled afresh and the same one loaded from pytensor's disk cache round
differently (1e-12 in the draws, seen on a cold cache), so the same seed gave other draws on a machine's first run
than on its second, or in a worker process than here; IEEE arithmetic makes the same seed the same draws
wherever the model compiles. The fused likelihood kernels keep their own flags (their cache round-trips exactly)."""


def compile_model(model):
    """The nutpie compiled model of ``model`` (data containers stay inputs), by the fast path where it applies."""
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=FASTMATH):
        return _compile_model(model)


def _compile_model(model):
    import nutpie

    def nutpies_own():
        return nutpie.compile_pymc_model(model, freeze_model=False)

    try:
        from nutpie import compile_pymc as ncp

        parts = (ncp._make_functions, ncp._prepare_dims_and_coords, ncp._wrap_with_lock, ncp.CompiledPyMCModel)
    except (ImportError, AttributeError):
        return nutpies_own()
    make_functions, dims_and_coords, with_lock, compiled_class = parts
    from pymc.initial_point import make_initial_point_fn

    start = with_lock(make_initial_point_fn(model=model, default_strategy="support_point",
                                            jitter_rvs=set(model.free_RVs), return_transformed=True))
    n_dim, n_expanded, logp_fn, expand_fn, initial_point, shape_info, reparameterised = make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=start)
    shared: list = []
    for var in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        if var not in shared:
            shared.append(var)
    arrays = [np.array(v.get_value(), order="C", copy=True) for v in shared]
    names = [v.name for v in shared]
    if any(a.dtype not in _DTYPES or a.ndim > MAX_DIMS for a in arrays) or None in names \
            or len(set(names)) < len(names):  # with_data finds containers by name
        return nutpies_own()
    for a in arrays:
        a.flags.writeable = False
    import numba

    t = table(arrays)
    double = numba.types.CPointer(numba.types.double)
    logp_unpack, logp_args = _unpack([shared.index(v) for v in logp_fn.get_shared()], arrays)
    logp = _callback(_LOGP, "logp", logp_fn.vm.jit_fn,
                     numba.types.int64(numba.types.uint64, double, double, double, numba.types.voidptr),
                     n_dim=n_dim, n_table=len(t), unpack=logp_unpack, args=logp_args)
    expand_unpack, expand_args = _unpack([shared.index(v) for v in expand_fn.get_shared()], arrays)
    expand = _callback(_EXPAND, "expand", expand_fn.vm.jit_fn,
                       numba.types.int64(numba.types.uint64, numba.types.uint64, double, double, numba.types.voidptr),
                       n_dim=n_dim, n_expanded=n_expanded, n_table=len(t), unpack=expand_unpack, args=expand_args)
    dims, coords = dims_and_coords(model, shape_info, reparameterised)
    cls = _native_class(compiled_class)
    return cls(_n_dim=n_dim, dims=dims, _coords=coords, _shapes={n: tuple(s) for n, _, s in zip(*shape_info)},
               compiled_logp_func=logp, compiled_expand_func=expand, initial_point_func=initial_point,
               shared_data=dict(zip(names, arrays)), shared_var_keys={v: v.name for v in shared},
               user_data=t, n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_fn, expand_func=expand_fn,
               reparameterized_names=reparameterised)  # nutpie leaves these (e.g. frailty_sd_log__) out of draws


_NATIVE = {}


def _native_class(base):
    """nutpie's compiled-model class with ``with_data`` for the table layout above."""
    if base not in _NATIVE:
        @dataclasses.dataclass(frozen=True)
        class NativeCompiledModel(base):
            def with_data(self, **updates):
                data = dict(self.shared_data)
                for name, value in updates.items():
                    if name not in data:
                        raise KeyError(f"unknown data container {name!r}; the model has {sorted(data)}")
                    old = data[name]
                    new = np.array(value, dtype=old.dtype, order="C", copy=True)
                    if new.ndim != old.ndim:
                        raise ValueError(f"data container {name!r} must have {old.ndim} dimensions, got {new.ndim}")
                    new.flags.writeable = False
                    data[name] = new
                return dataclasses.replace(self, shared_data=data, user_data=table(list(data.values())))

        _NATIVE[base] = NativeCompiledModel
    return _NATIVE[base]
