"""The fused exposure kernel of the full likelihoods against the pytensor graphs it replaces.

Weibull, exponential and piecewise-exponential log-likelihoods share one O(N p) term,
``sum_i w_i [H0(t_i) - H0(entry_i)] exp(x_i @ beta + u_i)``; :func:`bayescrt.families.fused.exposure`
computes it and its gradients in two passes over the covariates. Each family builds its model with
the kernel (the default) or, with ``fused=False``, with the graph twin, the sum written out in
pytensor and differentiated by it. The two compute the same sums up to reassociation, so the log
density agrees to 1e-12 of its size and the gradient to 1e-10 of its largest entry, for every
combination of weights, delayed entry, strata and a frailty, at random points (some far from the
mode), through the operation's Python implementation (PyMC's sampler) and its numba one (nutpie).

Central differences with step h = 1e-5 err by about C h^2 with C a third derivative of the sum
(O(10^2) here at these points: exp terms of a few hundred rows), so 1e-6 of the sum's scale is a
margin that a wrong gradient term, O(1) or more, cannot hide in.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.families import fused
from bayescrt.families.exponential import build_exponential
from bayescrt.families.piecewise import build_pwe, default_cuts
from bayescrt.families.weibull import build_weibull
from bayescrt.priors import resolve_priors
from seeds import seed

OPTIONS = [dict(zip(("weights", "entry", "strata", "cluster"), flags))
           for flags in itertools.product((False, True), repeat=4)]


def _ids(o):
    return "+".join(k for k, v in o.items() if v) or "plain"


def _frame(n=240):
    rng = np.random.default_rng(seed(41))
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.random(n) < 0.4, "t": rng.exponential(30, n) + 0.1,
                       "d": (rng.random(n) < 0.7).astype(int), "w": rng.uniform(0.5, 2, n),
                       "s": rng.integers(0, 3, n), "site": rng.integers(0, 5, n), "x01": rng.random(n) < 0.5})
    df["entry"] = np.where(rng.random(n) < 0.5, df["t"] * rng.uniform(0, 0.9, n), 0.0)
    return df


def _builders():
    return {
        "weibull": (bc.WeibullPH(), lambda d, p, est, **k: build_weibull(d, p, frailty_prior=est.frailty_prior, **k)),
        "exponential": (bc.ExponentialPH(),
                        lambda d, p, est, **k: build_exponential(d, p, frailty_prior=est.frailty_prior, **k)),
        "pwe-rw1": (bc.PiecewiseExponentialPH(), lambda d, p, est, **k: build_pwe(
            d, p, default_cuts(d, 5), rw_order=1, frailty_prior=est.frailty_prior, **k)),
        "pwe-rw2-tv": (bc.PiecewiseExponentialPH(), lambda d, p, est, **k: build_pwe(
            d, p, default_cuts(d, 4), rw_order=2, tv=2, frailty_prior=est.frailty_prior, **k)),
    }


def _log_densities(name, opts, modes=("FAST_COMPILE",)):
    est, build = _builders()[name]
    kw = {k: col for k, col in (("weights", "w"), ("entry", "entry"), ("strata", "s"), ("cluster", "site"))
          if opts[k]}
    data = est.prepare(_frame(), time="t", event="d", covariates=["a", "b", "x01"], **kw)
    priors = resolve_priors(data.covariates, data.sources, data.scale, None)
    out = {}
    for is_fused in (True, False):
        model, _ = build(data, priors, est, fused=is_fused)
        for mode in modes:
            out[(is_fused, mode)] = (model, model.compile_fn([model.logp(), model.dlogp()], mode=mode))
    return out


def _points(model, k=3):
    rng = np.random.default_rng(seed(42))
    start = model.initial_point()
    return [{n: v + rng.normal(0, 0.6, np.shape(v)) for n, v in start.items()} for _ in range(k)]


def _agree(a, b):
    (v, g), (rv, rg) = a, b
    assert abs(float(v) - float(rv)) <= 1e-12 * max(1.0, abs(float(rv)))
    np.testing.assert_allclose(g, rg, rtol=0, atol=1e-10 * max(1.0, float(np.max(np.abs(rg)))))


# every option combination for the Weibull, the piecewise model without a time-varying effect (its likelihood by
# cells, fused.piecewise_cells) and with every feature (second-order walk, a time-varying effect: the exposure
# kernel); the exponential shares the Weibull's code path: none and all options
CASES = ([("weibull", o) for o in OPTIONS] + [("pwe-rw1", o) for o in OPTIONS] + [("pwe-rw2-tv", o) for o in OPTIONS]
         + [("exponential", o) for o in (OPTIONS[0], OPTIONS[-1])])


@pytest.mark.parametrize("name,opts", CASES, ids=[f"{n}-{_ids(o)}" for n, o in CASES])
def test_kernel_equals_the_graph_in_value_and_gradient(name, opts):
    fns = _log_densities(name, opts)
    model, kernel = fns[(True, "FAST_COMPILE")]
    _, graph = fns[(False, "FAST_COMPILE")]
    for point in _points(model):
        _agree(kernel(point), graph(point))


@pytest.mark.parametrize("name", ["weibull", "pwe-rw1", "pwe-rw2-tv"])
def test_the_numba_implementation_equals_the_graph(name):
    """What nutpie compiles, every option on, against the graph twin in the Python backend."""
    fns = _log_densities(name, OPTIONS[-1], modes=("FAST_COMPILE", "NUMBA"))
    model, kernel = fns[(True, "NUMBA")]
    _, graph = fns[(False, "FAST_COMPILE")]
    for point in _points(model, 2):
        _agree(kernel(point), graph(point))


def _op_functions(offset: bool):
    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(seed(43))
    XT = np.ascontiguousarray(rng.normal(size=(3, 150)))
    beta, off, v = pt.dvector("beta"), pt.dvector("offset"), pt.dvector("v")
    out = {}
    for name in ("kernel", "graph"):
        if name == "kernel":
            value = fused.exposure(beta, pt.as_tensor(XT), off if offset else None, v)
        else:
            value = (v * pt.exp((pt.as_tensor(XT.T) * beta).sum(axis=1) + (off if offset else 0.0))).sum()
        wrt = [beta, v] + ([off] if offset else [])
        out[name] = pytensor.function([beta, off, v], [value, *pytensor.grad(value, wrt)], mode="FAST_COMPILE",
                                      on_unused_input="ignore")
    return out, rng


@pytest.mark.parametrize("offset", (False, True), ids=("no-offset", "offset"))
def test_the_operation_equals_its_graph_and_finite_differences(offset):
    fns, rng = _op_functions(offset)
    beta, off, v = rng.normal(0, 0.7, 3), rng.normal(0, 0.5, 150), rng.uniform(0, 2, 150)
    value, *grads = fns["kernel"](beta, off, v)
    ref_value, *ref_grads = fns["graph"](beta, off, v)
    assert abs(value - ref_value) <= 1e-12 * abs(ref_value)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-10 * np.max(np.abs(r)))
    h, tol = 1e-5, 1e-6 * abs(ref_value)
    args = {"beta": beta, "v": v, "offset": off}
    for k, (name, g) in enumerate(zip(["beta", "v", "offset"], grads)):
        for i in rng.choice(len(args[name]), min(3, len(args[name])), replace=False):
            plus, minus = {n: a.copy() for n, a in args.items()}, {n: a.copy() for n, a in args.items()}
            plus[name][i] += h
            minus[name][i] -= h
            fd = (fns["kernel"](plus["beta"], plus["offset"], plus["v"])[0]
                  - fns["kernel"](minus["beta"], minus["offset"], minus["v"])[0]) / (2 * h)
            assert abs(fd - g[i]) < tol, (name, i, fd, g[i])


@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[-1]], ids=_ids)
def test_the_piecewise_cells_operation_equals_finite_differences(opts):
    """fused.piecewise_loglik's gradient for the coefficients, the frailty offset and the cells' log hazards,
    cumulative hazards and rates against central differences of its own value (all options on, and none)."""
    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(seed(47))
    n, k = 150, 6
    XT = np.ascontiguousarray(rng.normal(size=(3, n)))
    rows = {"cell": rng.integers(0, k, n), "into": rng.uniform(0, 2, n), "event": (rng.random(n) < 0.6) * 1.0,
            "entry_cell": rng.integers(0, k, n) if opts["entry"] else None,
            "entry_into": rng.uniform(0, 1, n) if opts["entry"] else None,
            "weight": rng.uniform(0.5, 2, n) if opts["weights"] else None}
    names = ["beta", "A", "W", "R"] + (["offset"] if opts["cluster"] else [])
    ins = {"beta": pt.dvector("beta"), "A": pt.dvector("A"), "W": pt.dvector("W"), "R": pt.dvector("R"),
           "offset": pt.dvector("offset")}
    value = fused.piecewise_loglik(ins["beta"], pt.as_tensor(XT), ins["offset"] if opts["cluster"] else None,
                                   ins["A"], ins["W"], ins["R"], {r: None if v is None else pt.as_tensor(v)
                                                                  for r, v in rows.items()})
    fn = pytensor.function([ins[m] for m in names], [value, *pytensor.grad(value, [ins[m] for m in names])],
                           mode="FAST_COMPILE")
    args = {"beta": rng.normal(0, 0.5, 3), "A": rng.normal(-1, 0.3, k), "W": rng.uniform(0, 2, k),
            "R": rng.uniform(0.1, 1, k), "offset": rng.normal(0, 0.3, n)}
    ref, *grads = fn(*[args[m] for m in names])
    h, tol = 1e-5, 1e-6 * abs(ref)
    for m, g in zip(names, grads):
        for i in rng.choice(len(args[m]), min(3, len(args[m])), replace=False):
            plus, minus = {a: v.copy() for a, v in args.items()}, {a: v.copy() for a, v in args.items()}
            plus[m][i] += h
            minus[m][i] -= h
            fd = (fn(*[plus[a] for a in names])[0] - fn(*[minus[a] for a in names])[0]) / (2 * h)
            assert abs(fd - g[i]) < tol, (m, i, fd, g[i])


def test_a_model_with_the_kernel_holds_the_covariates_once_by_column():
    """The fused model keeps the design by column (covariates x rows, the kernel's passes are contiguous) in
    its per-row container, and no rows x covariates copy beside it; the graph twin keeps the latter."""
    est = bc.WeibullPH()
    data = est.prepare(_frame(), time="t", event="d", covariates=["a", "b", "x01"])
    priors = resolve_priors(data.covariates, data.sources, data.scale, None)
    layout = {}
    for is_fused in (True, False):
        model, _ = build_weibull(data, priors, fused=is_fused)
        shapes = [v.get_value().shape for v in model.data_vars]
        blocks_by_row = [s for s in shapes if len(s) == 2 and s[1] == 3 and s[0] >= data.n]  # X in a covariate block
        per_row_rows = sum(s[0] for s in shapes if len(s) == 2 and s[1] == data.n)
        layout[is_fused] = (len(blocks_by_row), per_row_rows)
    assert layout[True] == (0, layout[False][1] + 3) and layout[False][0] == 1, layout


def test_delayed_entry_stays_finite_for_early_rows_and_a_steep_shape():
    """A row with t far below the reference time, no late entry, and a shape of e^4: the entry term is
    (entry / t)^k of late entrants only, so nothing overflows (an exp(-k log(t / t_ref)) of such a row did)."""
    df = _frame()
    df.loc[0, ["t", "entry"]] = [1e-6, 0.0]
    est = bc.WeibullPH()
    data = est.prepare(df, time="t", event="d", covariates=["a", "b"], entry="entry")
    priors = resolve_priors(data.covariates, data.sources, data.scale, None)
    model, _ = build_weibull(data, priors)
    point = {**model.initial_point(), "log_shape": np.full(1, 4.0)}
    value, grad = model.compile_fn([model.logp(), model.dlogp()], mode="FAST_COMPILE")(point)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("opts", [dict(zip(("weights", "entry", "strata", "cluster"), f))
                                  for f in itertools.product((False, True), repeat=4)], ids=_ids)
def test_piecewise_totals_by_cell_sums_equal_the_pointwise_values_summed(opts):
    """The Laplace proposals' log-likelihood of the piecewise model (one pass over the rows for 128 draws, sums per
    stratum and interval) against the numpy per-row values it replaces, 150 draws (walks of 128 and 22)."""
    from bayescrt.data import SurvivalData
    from bayescrt.families.piecewise import PiecewiseExponentialPH

    df = _frame(700)
    kw = {k: v for k, v in dict(weights="w", entry="entry", strata="s", cluster="site").items() if opts[k]}
    data = SurvivalData.from_frame(df, time="t", event="d", covariates=["a", "b"], **kw)
    rng = np.random.default_rng(seed(42))
    post = {"log_hazard": rng.normal(-3.5, 0.4, (150, data.n_strata, 5)), "log_hr": rng.normal(0, 0.4, (150, 2))}
    if opts["cluster"]:
        post["frailty"] = rng.normal(0, 0.5, (150, int(data.cluster.max()) + 1))
    info = {"cuts": [5.0, 15.0, 30.0, 60.0]}
    ref = PiecewiseExponentialPH.pointwise_loglik(post, data, info).sum(axis=1)
    np.testing.assert_allclose(PiecewiseExponentialPH.loglik_totals(post, data, info), ref, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="time-varying"):
        PiecewiseExponentialPH.loglik_totals(post, data, {**info, "tv_index": 1})


def _weibull_case(opts, rng_seed):
    """Sorted data with the options ``opts`` on (700 rows) and 150 random draws of a Weibull posterior."""
    from bayescrt.data import SurvivalData

    kw = {k: v for k, v in dict(weights="w", entry="entry", strata="s", cluster="site").items() if opts[k]}
    data = SurvivalData.from_frame(_frame(700), time="t", event="d", covariates=["a", "b"], **kw)
    rng = np.random.default_rng(rng_seed)
    S = data.n_strata
    post = {"log_scale": rng.normal(-2, 0.3, (150, S)), "shape": np.exp(rng.normal(0, 0.2, (150, S))),
            "log_hr": rng.normal(0, 0.4, (150, 2))}
    if opts["cluster"]:
        post["frailty"] = rng.normal(0, 0.5, (150, int(data.cluster.max()) + 1))
    return data, post, {"t_ref": 25.0}


@pytest.mark.parametrize("opts", [dict(zip(("weights", "entry", "strata", "cluster"), f))
                                  for f in itertools.product((False, True), repeat=4)], ids=_ids)
def test_weibull_totals_by_cell_sums_equal_the_pointwise_values_summed(opts):
    """The Laplace proposals' log-likelihood of the Weibull model (sums per stratum of exp(eta + k log t), a second
    pass by the entry times) against the numpy per-row values it replaces, 150 draws (walks of 128 and 22)."""
    from bayescrt.families.parametric import ParametricPH
    from bayescrt.families.weibull import WeibullPH

    data, post, info = _weibull_case(opts, seed(46))
    ref = ParametricPH.pointwise_loglik.__func__(WeibullPH, post, data, info).sum(axis=1)
    np.testing.assert_allclose(WeibullPH.loglik_totals(post, data, info), ref, rtol=1e-12, atol=0)
    # a proposal far out (linear predictors past exp's range, either way): -inf as the numpy values say, not a
    # finite number (the exponential of more than 709 had come out as a wrong finite one)
    far = {**post, "log_hr": post["log_hr"].copy()}
    far["log_hr"][:4] = [[800.0, 0.0], [-800.0, 0.0], [0.0, 2000.0], [np.nan, 0.0]]
    with np.errstate(over="ignore", invalid="ignore"):
        ref_far = ParametricPH.pointwise_loglik.__func__(WeibullPH, far, data, info).sum(axis=1)[:4]
    got = WeibullPH.loglik_totals(far, data, info)[:4]
    # not finite, as the numpy values (-inf; NaN where entry sums of infinities are subtracted): the sampler gives
    # a non-finite proposal no weight
    assert not np.isfinite(ref_far).any() and not np.isfinite(got).any(), (ref_far, got)
    assert (got[:3] == -np.inf).all() or opts["entry"], got


@pytest.mark.parametrize("opts", [dict(zip(("weights", "entry", "strata", "cluster"), f))
                                  for f in itertools.product((False, True), repeat=4)], ids=_ids)
def test_weibull_rows_by_the_kernel_equal_the_numpy_values(opts):
    """A Weibull fit's stored per-row log-likelihood (fused.weibull_rows) against the family-generic numpy values
    it replaces, row by row, 150 draws."""
    from bayescrt.families.parametric import ParametricPH
    from bayescrt.families.weibull import WeibullPH

    data, post, info = _weibull_case(opts, seed(43))
    ref = ParametricPH.pointwise_loglik.__func__(WeibullPH, post, data, info)
    np.testing.assert_allclose(WeibullPH.pointwise_loglik(post, data, info), ref, rtol=1e-12, atol=1e-12)
    _assert_written_into_place(WeibullPH, post, data, info, ref)


def _assert_written_into_place(P, post, data, info, ref):
    """``into=(out, positions)`` (the fit's stored log-likelihood, straight into the caller's row order): sorted row
    ``i``'s values land in column ``positions[i]`` of ``out``, every column written (a NaN-filled ``out``)."""
    pos = np.random.default_rng(seed(45)).permutation(data.n)
    out = np.full(ref.shape, np.nan)
    assert P.pointwise_loglik(post, data, info, into=(out, pos)) is out
    expect = np.empty_like(ref)
    expect[:, pos] = ref
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
    if P.writes_into and info.get("tv_index") is None:  # the kernels write unchecked: a bad out or positions is refused
        for bad in ((out[:, 1:], pos), (out.astype(np.float32), pos), (out, pos[1:]), (out, np.where(pos == 0, 1, pos)),
                    (out, pos + 0.0)):
            with pytest.raises(ValueError, match="into's"):
                P.pointwise_loglik(post, data, info, into=bad)


@pytest.mark.parametrize("opts", [dict(zip(("weights", "entry", "strata", "cluster"), f))
                                  for f in itertools.product((False, True), repeat=4)], ids=_ids)
def test_piecewise_rows_by_the_kernel_equal_the_numpy_values(opts):
    """A piecewise fit's stored per-row log-likelihood (fused.piecewise_rows) against the family-generic numpy
    values it replaces, row by row, 37 draws; a time-varying effect keeps the numpy values."""
    from bayescrt.data import SurvivalData
    from bayescrt.families.parametric import ParametricPH
    from bayescrt.families.piecewise import PiecewiseExponentialPH as P

    df = _frame(700)
    kw = {k: v for k, v in dict(weights="w", entry="entry", strata="s", cluster="site").items() if opts[k]}
    data = SurvivalData.from_frame(df, time="t", event="d", covariates=["a", "b"], **kw)
    rng = np.random.default_rng(seed(44))
    post = {"log_hazard": rng.normal(-3.5, 0.4, (37, data.n_strata, 5)), "log_hr": rng.normal(0, 0.4, (37, 2)),
            "tv_log_hr": rng.normal(0, 0.3, (37, 5))}
    if opts["cluster"]:
        post["frailty"] = rng.normal(0, 0.5, (37, int(data.cluster.max()) + 1))
    info = {"cuts": [5.0, 15.0, 30.0, 60.0]}
    ref = ParametricPH.pointwise_loglik.__func__(P, post, data, info)
    np.testing.assert_allclose(P.pointwise_loglik(post, data, info), ref, rtol=1e-12, atol=1e-12)
    _assert_written_into_place(P, post, data, info, ref)
    tv = {**info, "tv_index": 1}
    ref_tv = ParametricPH.pointwise_loglik.__func__(P, post, data, tv)
    np.testing.assert_array_equal(P.pointwise_loglik(post, data, tv), ref_tv)
    _assert_written_into_place(P, post, data, tv, ref_tv)
