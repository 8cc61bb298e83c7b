"""The fused operations under JAX (``sampler="nutpie-jax"``) against their numba kernels, on JAX's CPU backend.

:mod:`bayescrt.families.fused_jax` gives pytensor's JAX linker a function for each fused operation. Each
is compared here with its numba kernel (which tests/test_fused.py and tests/test_fused_parametric.py check
against the graph twins and finite differences) for every option combination, and real models with every
option compiled by ``bayescrt.compiled.compile_jax`` (nutpie's JAX backend, the data frozen in), called as
nutpie calls them, with the same models compiled by numba. Both compute the same sums in another order, so they agree to
rounding: 1e-12 of the value's size and 1e-10 of the gradient's largest entry (the tolerances of the
numba kernels against the graphs), at random points some way from the mode.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.errors import SpecError
from bayescrt.families import fused, fused_jax
from bayescrt.families.partial_likelihood import RiskSets
from test_fused import OPTIONS as COX_OPTIONS
from test_fused import TIES, _data, full_cox_model, a_small_stratum_before_a_large_one
from bayescrt.priors import resolve_priors
from test_fused_parametric import _builders, _ids
from test_fused_parametric import _frame as _parametric_frame


@pytest.fixture(scope="module", autouse=True)
def registered():
    fused_jax.register()


def _agree(a, b):
    value, *grads = a
    ref_value, *ref_grads = b
    assert abs(float(value) - float(ref_value)) <= 1e-12 * max(1.0, abs(float(ref_value)))
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(np.asarray(g), r, rtol=0, atol=1e-10 * max(1.0, float(np.max(np.abs(r), initial=0.0))))


def _cox_pair(data, rs, offset: bool):
    """The JAX function of the Cox operation and its numba kernel, both ``(beta, offset) -> (value, d/d beta,
    d/d offset)``."""
    f, weighted, delayed = fused.fields(rs)
    XT = np.ascontiguousarray(data.standardised().T)
    jx = fused_jax.cox_function(weighted, delayed, offset)

    def nb(beta, off):
        value, g_beta, g_eta = fused.value_and_grad_beta(beta, XT, off if offset else np.zeros(0), *f, weighted,
                                                         delayed, offset)
        return (value, g_beta, g_eta) if offset else (value, g_beta)

    def on_jax(beta, off):
        out = jx(beta, XT, off if offset else np.zeros(0), *f)
        return out if offset else out[:2]

    return on_jax, nb


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("opts", COX_OPTIONS, ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
@pytest.mark.parametrize("offset", (False, True), ids=("no-offset", "offset"))
def test_the_cox_function_under_jax_equals_its_numba_kernel(ties, opts, offset):
    data = _data(**opts)
    jx, nb = _cox_pair(data, RiskSets.from_data(data, ties), offset)
    rng = np.random.default_rng(11)
    for _ in range(3):
        beta, off = rng.normal(0, 1.5, 3), rng.normal(0, 0.7, data.n)
        _agree(jx(beta, off), nb(beta, off))


@pytest.mark.parametrize("ties", TIES)
def test_a_stratum_far_below_another_changes_nothing_under_jax(ties):
    """Each stratum is shifted by its own largest linear predictor, as in the numba kernel: with one shift for all
    rows a stratum 300 units below another has risk sums of exp(-300), rounded to zero, and a value of -inf."""
    data = _data(weights=True, entry=True, strata=True)
    jx, _ = _cox_pair(data, RiskSets.from_data(data, ties), offset=True)
    beta = np.zeros(3)
    off = np.random.default_rng(6).normal(0, 0.3, data.n)
    ref = jx(beta, off)
    for gap in (35.0, 300.0):
        _agree(jx(beta, off - gap * (data.strata == 0)), ref)


@pytest.mark.parametrize("events", (False, True), ids=("no-events-after", "events-after"))
@pytest.mark.parametrize("gap", (-5.0, 0.0, 5.0, 300.0))
def test_a_stratum_s_risk_sums_are_its_own_under_jax(gap, events):
    """As tests/test_fused.py checks for the numba kernel: no stratum's risk sums hold a later stratum's rows (with
    them, the value here was +inf)."""
    (data, eta), (alone, eta_alone) = a_small_stratum_before_a_large_one(gap, events)
    values = []
    for d, e in ((data, eta), (alone, eta_alone)):
        f, weighted, delayed = fused.fields(RiskSets.from_data(d, "efron"))
        values.append(fused_jax.cox_function(weighted, delayed, True)(np.zeros(1), np.zeros((1, d.n)), e, *f))
    (value, _, grad), (ref_value, _, ref_grad) = values
    assert abs(float(value) - float(ref_value)) <= 1e-12 * abs(float(ref_value))
    np.testing.assert_allclose(np.asarray(grad)[:4], ref_grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grad)[4:], 0.0, rtol=0, atol=1e-12)


def _rows(n=240, seed=12, **flags):
    """Random inputs of the exposure and cells operations: 3 covariates, 7 cells, delayed entry in earlier cells."""
    rng = np.random.default_rng(seed)
    k = 7
    cell = rng.integers(0, k, n)
    cell_e = np.minimum(cell, rng.integers(0, k, n))
    return dict(beta=rng.normal(0, 0.5, 3), XT=rng.normal(size=(3, n)),
                offset=rng.normal(0, 0.5, n) if flags.get("offset") else np.zeros(0),
                A=rng.normal(-3, 1, k), W=np.cumsum(rng.uniform(0, 0.2, k)), R=rng.uniform(0.01, 0.1, k), cell=cell,
                into=rng.uniform(0, 2, n), cell_e=cell_e if flags.get("entry") else np.zeros(0, np.int64),
                into_e=rng.uniform(0, 1, n) if flags.get("entry") else np.zeros(0),
                d=(rng.random(n) < 0.6).astype(float), w=rng.uniform(0.3, 2, n) if flags.get("weights") else np.zeros(0),
                v=rng.uniform(0, 3, n))


@pytest.mark.parametrize("offset", (False, True), ids=("no-offset", "offset"))
def test_the_exposure_function_under_jax_equals_its_numba_kernel(offset):
    r = _rows(offset=offset)
    args = (r["beta"], r["XT"], r["offset"], r["v"])
    total, g_beta, e, ve = fused.exposure_sum(*args, offset)  # the operation keeps v exp(eta) with an offset only
    _agree(fused_jax.exposure_function(offset)(*args), (total, g_beta, e, ve if offset else np.zeros(0)))


FLAGS = [dict(zip(("offset", "entry", "weights"), f)) for f in itertools.product((False, True), repeat=3)]


@pytest.mark.parametrize("flags", FLAGS, ids=_ids)
def test_the_cells_function_under_jax_equals_its_numba_kernel(flags):
    r = _rows(**flags)
    jx = fused_jax.piecewise_function(flags["offset"], flags["entry"], flags["weights"])(
        *(r[k] for k in ("beta", "XT", "offset", "A", "W", "R", "cell", "into", "cell_e", "into_e", "d", "w")))
    nb = fused.piecewise_cells(r["beta"], r["XT"], r["offset"], flags["offset"], r["A"], r["W"], r["R"], r["cell"],
                               r["into"], r["cell_e"], r["into_e"], flags["entry"], r["d"], r["w"], flags["weights"])
    _agree(jx, nb)


def _flat_points(model, k=2, seed=9):
    """Points in the flat order of nutpie's JAX compilation (the free variables of the frozen model, which may come
    in another order than the model's own) and as PyMC points; and the model's free variables in that order."""
    from pymc.model.transform.optimization import freeze_dims_and_data

    rng = np.random.default_rng(seed)
    frozen = freeze_dims_and_data(model)
    names = [frozen.rvs_to_values[v].name for v in frozen.free_RVs]
    start = model.initial_point()
    points = [{n: start[n] + rng.normal(0, 0.3, np.shape(start[n])) for n in names} for _ in range(k)]
    return [(np.concatenate([np.ravel(p[n]) for n in names]), p) for p in points], [model[v.name] for v in
                                                                                      frozen.free_RVs]


def _competing_frame(n=300, seed=4):
    df = _frame(n, seed)
    rng = np.random.default_rng(seed)
    df["e"] = np.where(df["d"] == 1, rng.integers(1, 3, n), 0)
    df["site"] = rng.integers(0, 5, n)
    return df


def _model(case):
    """The models whose JAX compilation the sampler's test calls: every option of each fused operation."""
    if case == "subdistribution":
        est = bc.FineGray()
        return est.build(est.prepare(_competing_frame(), time="t", event="e", cause="cause 1",
                                     covariates=["a", "b"]))[0]
    if case == "cox-every-option":  # weights, delayed entry, strata, a frailty (the operation with an offset)
        return full_cox_model(np.random.default_rng(7))
    # the Weibull (exposure operation), the piecewise model by cells and with a time-varying effect (exposure)
    est, build = _builders()[case]
    data = est.prepare(_parametric_frame(), time="t", event="d", covariates=["a", "b", "x01"], weights="w",
                       entry="entry", strata="s", cluster="site")
    return build(data, resolve_priors(data.covariates, data.sources, data.scale, None), est)[0]


@pytest.mark.parametrize("case", ["subdistribution", "cox-every-option", "weibull", "pwe-rw1", "pwe-rw2-tv"])
def test_the_compilation_the_sampler_calls_gives_numbas_numbers(case):
    """``compile_jax``'s log density and gradient, as nutpie calls them (the data frozen in), against the model's
    numba compilation: the subdistribution model (its shapes come from the data: it cannot be traced with the data
    as arguments) and each fused operation in a real model with every option on."""
    from bayescrt.compiled import compile_jax

    model = _model(case)
    compiled = compile_jax(model)
    logp = compiled._make_logp_func()  # what nutpie calls at each gradient
    points, rvs = _flat_points(model)
    numba = model.compile_fn([model.logp(), model.dlogp(vars=rvs)], mode="NUMBA")  # the gradient in that order
    for flat, point in points:
        _agree(logp(flat, **compiled._shared_data), numba(point))


def _frame(n=300, seed=3):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": (rng.random(n) < 0.4).astype(float)})
    df["t"] = np.ceil(rng.exponential(40 * np.exp(-0.5 * df["a"] + 0.3 * df["b"])))
    df["d"] = (rng.random(n) < 0.75).astype(int)
    return df


def test_a_fit_by_nutpie_under_jax_has_the_posterior_of_the_numba_fit():
    """One small Cox fit both ways: the same model and priors, so the two posterior means differ by Monte Carlo
    error only, whose SD is about sd * sqrt(2 / ESS) (ESS over 1,000 a fit: under 0.05 sd); 0.25 sd is five of
    them; the SDs' ratio errs by about sqrt(1 / ESS), under 0.03, against 0.15. The JAX fit passes its diagnostics and records its sampler."""
    df = _frame()
    kw = dict(time="t", event="d", covariates=["a", "b"], draws=1000, tune=500, chains=2, random_seed=5,
              progress=False)
    jax_fit = bc.CoxPH(sampler="nutpie-jax").fit(df, **kw)
    numba_fit = bc.CoxPH().fit(df, **kw)
    assert jax_fit.sampling["sampler"] == "nutpie-jax" and jax_fit.sampling["compiled"] == "new"
    assert jax_fit.diagnostics().ok
    a, b = jax_fit.hazard_ratios(), numba_fit.hazard_ratios()
    assert np.all(np.abs(a["log_hr_mean"] - b["log_hr_mean"]) <= 0.25 * b["log_hr_sd"])
    assert np.all(np.abs(a["log_hr_sd"] / b["log_hr_sd"] - 1) < 0.15)


def test_without_jax_the_sampler_says_how_to_get_it(monkeypatch):
    import bayescrt.fit as fit_module

    monkeypatch.setattr(fit_module, "find_spec", lambda name: None if name == "jax" else object())
    with pytest.raises(SpecError, match=r"sampler='nutpie-jax'.*pip install 'bayescrt\[jax\]'.*sampler='nutpie'"):
        bc.CoxPH(sampler="nutpie-jax").fit(_frame(), time="t", event="d", covariates=["a"], progress=False)


def test_compiled_models_and_a_scheduler_are_for_the_numba_backend():
    from bayescrt.compiled import CompiledModels

    est = bc.CoxPH(sampler="nutpie-jax")
    with pytest.raises(SpecError, match="compiled_models="):
        est.fit(_frame(), time="t", event="d", covariates=["a"], compiled_models=CompiledModels(), progress=False)
    with pytest.raises(SpecError, match="scheduler="):
        est.fit(_frame(), time="t", event="d", covariates=["a"], scheduler="tcp://127.0.0.1:1", progress=False)


def test_a_grid_of_jax_cells_counts_each_compilation(tmp_path):
    """Each nutpie-jax cell compiles its own JAX function (none is kept across fits): the run's count says so."""
    from bayescrt.sensitivity import Grid, run

    grid = Grid(time="week", event="arrest", exposure="fin", covariate_sets={"min": ["age"]},
                priors=["neutral", "sceptical"], families=[{"family": "CoxPH", "sampler": "nutpie-jax"}],
                draws=500, tune=500, chains=2, random_seed=81)
    res = run(grid, tmp_path / "g", data=bc.datasets.load_rossi(), progress=False)
    assert res.compilations == 2 and len(res.table()) == 2
