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


_SAME_SEED = """
import hashlib, sys
import numpy as np, pandas as pd
import bayescrt as bc
from bayescrt import native
native.FASTMATH = sys.argv[1] == "1"
rng = np.random.default_rng(int(sys.argv[2]))
n = 300
df = pd.DataFrame({"t": rng.weibull(1.3, n) * 5, "d": (rng.random(n) < 0.7).astype(int), "x": rng.normal(size=n),
                   "z": rng.normal(size=n)})
fit = bc.WeibullPH().fit(df, time="t", event="d", covariates=["x", "z"], random_seed=1, chains=1, draws=200,
                         tune=200, progress=False)
print(hashlib.sha256(fit.idata["posterior"]["log_hr"].values.tobytes()).hexdigest())
"""


def _two_runs_on_a_cold_cache(tmp_path, fastmath: str) -> list[str]:
    import os
    import subprocess
    import sys

    script = tmp_path / "same_seed.py"
    script.write_text(_SAME_SEED, encoding="utf-8")
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / ('cache' + fastmath)}"}
    return [subprocess.run([sys.executable, str(script), fastmath, str(seed(60))], env=env, capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1] for _ in range(2)]


@pytest.mark.mcmc
def test_the_same_seed_gives_the_same_draws_on_a_cold_and_a_warm_compile_cache(tmp_path):
    """The first process compiles the log density afresh, the second loads it from pytensor's disk cache: with
    LLVM's fast-math flags the two round differently and the draws part (1e-12 at first, then anything once an
    accept or a U-turn flips); models compile without them, so a rerun, a resumed grid cell or a worker process
    gives the draws this process gave."""
    first, second = _two_runs_on_a_cold_cache(tmp_path, "0")
    assert first == second
