"""Compilation paid once: every nutpie fit shares the process-wide cache by default."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import bayescrt as bc
from bayescrt import compiled
from seeds import seed


def test_a_bad_compiled_models_value_is_refused_naming_the_argument(small_df):
    with pytest.raises(bc.SpecError, match=r"compiled_models='yes'.*CompiledModels.*None.*False"):
        bc.CoxPH().fit(small_df, time="t", event="d", covariates=["age"], compiled_models="yes", progress=False)


def test_the_cache_keeps_the_most_recently_used_structures(monkeypatch):
    """With room for two structures, a third pushes out the one used longest ago, and only that one."""
    import pymc as pm

    from bayescrt import native

    @dataclasses.dataclass(frozen=True)
    class Compiled:  # what the cache needs of a compiled model
        _coords: dict
        initial_point_func: object = None
        shared_var_keys: tuple = ()

        @property
        def coords(self):
            return self._coords

        def with_data(self, **data):
            return self

    monkeypatch.setattr(native, "compile_model", lambda model: Compiled({}))

    def model(k):
        with pm.Model() as m:
            pm.Normal("x", float(k), 1.0)  # the constant is structure: one key per k
        return m

    cache = compiled.CompiledModels(max_structures=2)
    fresh = [cache.compile(model(k))[1] for k in (0, 1)]
    assert fresh == [True, True]
    cache.compile(model(0))  # 0 is now the most recently used: 1 goes when 2 arrives
    assert cache.compile(model(2))[1] is True
    assert len(cache.structures) == 2 and cache.compilations == 3
    assert cache.compile(model(0))[1] is False and cache.compile(model(1))[1] is True


@pytest.mark.mcmc
def test_a_second_fit_of_the_same_structure_reuses_the_compilation_with_no_argument(small_df, monkeypatch):
    """New data of another size and new prior values: same structure, no compilation, unless told not to.

    Counted, not timed: every call that reaches the compiler is recorded (how long a reuse takes is a
    benchmark's business, benchmarks/speed.py)."""
    from bayescrt import native

    calls = []
    real = native.compile_model
    monkeypatch.setattr(native, "compile_model", lambda model: calls.append(1) or real(model))
    compiled.clear()
    kw = dict(time="t", event="d", covariates=["age", "male"], draws=200, tune=200, chains=2, progress=False)
    with warnings.catch_warnings():  # this test is about compilation, not convergence (2 chains x 200 draws)
        warnings.simplefilter("ignore", bc.DiagnosticsWarning)
        first = bc.CoxPH().fit(small_df, random_seed=seed(1), **kw)
        second = bc.CoxPH().fit(small_df.iloc[:90], random_seed=seed(2),
                                priors={"age": {"dist": "Normal", "mu": 0.0, "sigma": 0.1}}, **kw)
        again = bc.CoxPH().fit(small_df, random_seed=seed(1), compiled_models=False, **kw)
    assert [f.sampling["compiled"] for f in (first, second, again)] == ["new", "reused", "new"]
    assert len(calls) == 2  # the first fit and the one told not to share; the second fit compiled nothing
    assert compiled.process_cache().compilations == 1  # compiled_models=False left the shared cache alone
    assert second.model["n"] == 90
    # the same seed gives the same draws whether the compilation is new or reused
    np.testing.assert_array_equal(first.log_hr_draws(), again.log_hr_draws())


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
def test_a_cache_size_must_be_a_positive_integer(bad):
    with pytest.raises(bc.SpecError, match=r"max_structures=.*must be an integer >= 1"):
        compiled.CompiledModels(max_structures=bad)
