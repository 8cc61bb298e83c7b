"""The native callback nutpie samples (bayescrt.native) against the pytensor functions it calls.

It calls the same compiled function on the same data, so value, gradient and the expanded draws are
the numbers pytensor gives (equal to rounding: 1e-12 of their size), and a reused compilation given
data of another size computes that data's log density, not the first one's.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt import native
from seeds import seed


def _frame(n, k):
    rng = np.random.default_rng(seed(k))
    return pd.DataFrame({"t": np.ceil(rng.exponential(20, n)), "d": (rng.random(n) < 0.7).astype(int),
                         "age": rng.normal(70, 8, n), "male": rng.random(n) < 0.6, "site": rng.integers(0, 4, n),
                         "w": rng.uniform(0.5, 2, n)})


def _model(est, df, **kw):
    return est.build(est.prepare(df, time="t", event="d", covariates=["age", "male"], **kw))[0]


def _call(compiled, x):
    """(return code, value, gradient) of the compiled callback at ``x``."""
    x = np.ascontiguousarray(x, dtype=float)
    grad, value = np.empty(len(x)), np.empty(1)
    ptr = ctypes.POINTER(ctypes.c_double)
    code = compiled.compiled_logp_func.ctypes(len(x), x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
                                              value.ctypes.data_as(ptr), ctypes.c_void_p(compiled.user_data.ctypes.data))
    return code, value[0], grad


def _expand(compiled, x):
    x = np.ascontiguousarray(x, dtype=float)
    out = np.empty(compiled.n_expanded)
    ptr = ctypes.POINTER(ctypes.c_double)
    code = compiled.compiled_expand_func.ctypes(len(x), compiled.n_expanded, x.ctypes.data_as(ptr),
                                                out.ctypes.data_as(ptr), ctypes.c_void_p(compiled.user_data.ctypes.data))
    assert code == 0
    return out


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, float(np.max(np.abs(b)))))


@pytest.fixture(scope="module")
def frailty_cox():
    """Cox with weights, delayed entry and a frailty: every kind of data container (float, integer, by row)."""
    df = _frame(150, 1)
    df["entry"] = np.floor(df["t"] * 0.3)
    est = bc.CoxPH()
    kw = dict(weights="w", entry="entry", cluster="site")
    model = _model(est, df, **kw)
    return est, kw, model, native.compile_model(model)


def test_the_fast_path_is_taken_with_the_installed_nutpie(frailty_cox):
    *_, compiled = frailty_cox
    assert type(compiled).__name__ == "NativeCompiledModel"
    # the sampler's unconstrained variables are named, so nutpie leaves them out of the draws
    assert "frailty_sd_log__" in compiled.reparameterized_names


def test_value_gradient_and_draws_are_pytensors(frailty_cox):
    _, _, model, compiled = frailty_cox
    rng = np.random.default_rng(seed(2))
    for _ in range(3):
        x = rng.normal(0, 1, compiled.n_dim)
        code, value, grad = _call(compiled, x)
        ref_value, ref_grad = compiled.logp_func(x)
        assert code == 0
        _close(value, ref_value)
        _close(grad, ref_grad)
        _close(_expand(compiled, x), np.asarray(compiled.expand_func(x)[0]))


def test_a_reused_compilation_computes_the_new_datas_log_density(frailty_cox):
    est, kw, _, compiled = frailty_cox
    df = _frame(97, 3)  # another size, other values: the same structure
    df["entry"] = np.floor(df["t"] * 0.5)
    other = _model(est, df, **kw)
    from bayescrt.compiled import data_values

    swapped = compiled.with_data(**data_values(other))
    fresh = native.compile_model(other)
    x = np.random.default_rng(seed(4)).normal(0, 1, compiled.n_dim)
    _, value, grad = _call(swapped, x)
    ref_value, ref_grad = fresh.logp_func(x)
    _close(value, ref_value)
    _close(grad, ref_grad)
    assert abs(value - _call(compiled, x)[1]) > 1.0  # and not the first data's


def test_with_data_refuses_an_unknown_container_or_a_wrong_rank(frailty_cox):
    *_, compiled = frailty_cox
    with pytest.raises(KeyError, match="unknown data container 'nope'"):
        compiled.with_data(nope=np.zeros(3))
    name = next(iter(compiled.shared_data))
    with pytest.raises(ValueError, match=f"data container '{name}' must have 2 dimensions, got 1"):
        compiled.with_data(**{name: np.zeros(3)})


def test_a_non_finite_point_is_reported_to_the_sampler(frailty_cox):
    *_, compiled = frailty_cox
    x = np.zeros(compiled.n_dim)
    x[0] = np.nan
    assert _call(compiled, x)[0] in (3, 4)  # nutpie's codes for a non-finite gradient or value
