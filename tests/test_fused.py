"""The fused Cox kernel against the pytensor graph it replaces, and its gradient against finite differences.

The graph twin is ``partial_loglik_terms(X @ beta + offset, rs, pytensor.tensor).sum()``,
differentiated by pytensor; the kernel is :class:`bayescrt.families.fused` 's operation,
run through ``perform`` (PyMC's own sampler, pytensor's default backend) and through its
numba implementation (what nutpie compiles). Both compute the same sums in the same order up
to reassociation, so they agree to rounding: 1e-12 of the log-likelihood's size and 1e-10 of
the gradient's. Central differences with step h are exact to about C h^2 + J / h, where C is a
third derivative (measured here: C ~ 25, from the error at h = 1e-3) and J the jumps of the value
at rounding level (~1e-11: under delayed entry a risk set switches between two forms of the same
sum, each rounded its own way): with h = 1e-4 about 3e-7, so 1e-5 is a margin a wrong gradient
term (O(0.01) or more) cannot hide in.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescrt.data import SurvivalData
from bayescrt.errors import DataWarning
from bayescrt.families import fused
from bayescrt.families.partial_likelihood import RiskSets, partial_loglik_terms

TIES = ("efron", "breslow")
OPTIONS = [dict(zip(("weights", "entry", "strata"), flags)) for flags in itertools.product((False, True), repeat=3)]


def _data(n=240, seed=0, **opts):
    """Whole-day times (many ties) and, optionally, weights, delayed entry (late entrants) and 3 strata."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.random(n) < 0.4, "c": rng.normal(2, 1, n)})
    t = np.ceil(rng.exponential(30, n))
    df["time"], df["event"] = t, (rng.random(n) < 0.7).astype(int)
    kw = {}
    if opts.get("weights"):
        df["w"], kw["weights"] = rng.uniform(0.2, 3.0, n), "w"
    if opts.get("entry"):
        # most subjects enter late, so early risk sets are mostly not-yet-entered rows and the
        # kernel takes both of its forms (see test_both_forms_of_a_delayed_risk_set_are_checked)
        late = rng.random(n) < 0.6
        df["entry"], kw["entry"] = np.where(late, np.floor(t * rng.uniform(0.5, 0.98, n)), 0.0), "entry"
    if opts.get("strata"):
        df["s"], kw["strata"] = rng.integers(0, 3, n), "s"
    return SurvivalData.from_frame(df, time="time", event="event", covariates=["a", "b", "c"], **kw)


def _functions(data, rs, offset: bool, mode="FAST_COMPILE"):
    """pytensor functions ``(beta, offset) -> (value, d/d beta, d/d offset)`` for the kernel and its graph twin.

    ``FAST_COMPILE`` runs each operation's Python implementation (the kernel's ``perform``), with no C
    compilation per data set."""
    import pytensor
    import pytensor.tensor as pt

    XT = np.ascontiguousarray(data.standardised().T)
    beta, off = pt.dvector("beta"), pt.dvector("offset")
    shared = RiskSets(**{k: getattr(rs, k) for k in RiskSets.__dataclass_fields__})
    out = {}
    for name in ("kernel", "graph"):
        if name == "kernel":
            value = fused.partial_loglik(beta, pt.as_tensor(XT), off if offset else None, shared)
        else:
            eta = (pt.as_tensor(XT.T) * beta).sum(axis=1) + (off if offset else 0.0)
            value = partial_loglik_terms(eta, rs, pt).sum()
        wrt = [beta, off] if offset else [beta]
        grads = pytensor.grad(value, wrt)
        out[name] = pytensor.function([beta, off], [value, *grads], mode=mode, on_unused_input="ignore")
    return out


def _agree(a, b):
    value, *grads = a
    ref_value, *ref_grads = b
    assert abs(float(value) - float(ref_value)) <= 1e-12 * max(1.0, abs(float(ref_value)))
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-10 * max(1.0, float(np.max(np.abs(r)))))


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
@pytest.mark.parametrize("offset", (False, True), ids=("no-offset", "offset"))
def test_kernel_equals_the_graph_in_value_and_gradient(ties, opts, offset):
    data = _data(**opts)
    rs = RiskSets.from_data(data, ties)
    fns = _functions(data, rs, offset)
    rng = np.random.default_rng(1)
    for _ in range(3):  # random points, some far from the mode
        beta, off = rng.normal(0, 1.5, 3), rng.normal(0, 0.7, data.n)
        _agree(fns["kernel"](beta, off), fns["graph"](beta, off))


@pytest.mark.parametrize("ties", TIES)
def test_the_numba_implementation_equals_perform(ties):
    """What nutpie compiles (the operation's numba implementation) gives perform's numbers, every option on."""
    data = _data(weights=True, entry=True, strata=True)
    rs = RiskSets.from_data(data, ties)
    py = _functions(data, rs, offset=True)["kernel"]
    nb = _functions(data, rs, offset=True, mode="NUMBA")["kernel"]
    rng = np.random.default_rng(2)
    beta, off = rng.normal(0, 1, 3), rng.normal(0, 0.5, data.n)
    _agree(nb(beta, off), py(beta, off))  # pytensor compiles its numba code with fastmath: rounding may differ


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[-1]], ids=("plain", "weights+entry+strata"))
def test_gradient_equals_finite_differences(ties, opts):
    data = _data(**opts)
    rs = RiskSets.from_data(data, ties)
    fn = _functions(data, rs, offset=True)["kernel"]
    rng = np.random.default_rng(3)
    beta, off = rng.normal(0, 1, 3), rng.normal(0, 0.5, data.n)
    _, g_beta, g_off = fn(beta, off)
    h = 1e-4
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fd = (fn(beta + e, off)[0] - fn(beta - e, off)[0]) / (2 * h)
        assert abs(fd - g_beta[j]) < 1e-5
    for i in rng.choice(data.n, 12, replace=False):
        e = np.zeros(data.n)
        e[i] = h
        fd = (fn(beta, off + e)[0] - fn(beta, off - e)[0]) / (2 * h)
        assert abs(fd - g_off[i]) < 1e-5


def test_both_forms_of_a_delayed_risk_set_are_checked():
    """The delayed-entry data above make the kernel use its backward and its forward form (else half is untested)."""
    data = _data(entry=True)
    rs = RiskSets.from_data(data, "efron")
    f, weighted, delayed = fused.fields(rs)
    eta = np.random.default_rng(4).normal(0, 0.5, data.n)
    g, gd, end, ss, es, frac, w, eo = f[1], f[2], f[3], f[4], f[5], f[6], f[9], f[10]
    *_, backward = fused.risk_sums(eta, g, gd, end, ss, es, frac, w, eo, weighted, delayed)
    assert 0 < backward.sum() < len(backward)


@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[-1]], ids=("plain", "weights+entry+strata"))
def test_event_terms_equal_the_numpy_twin(opts):
    data = _data(**opts)
    rs = RiskSets.from_data(data, "efron")
    eta = np.random.default_rng(5).normal(0, 1, (4, data.n))
    np.testing.assert_allclose(fused.partial_loglik_events(eta, rs), partial_loglik_terms(eta, rs),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[-1]], ids=("plain", "weights+entry+strata"))
def test_event_sums_without_terms_are_the_terms_summed(opts):
    data = _data(**opts)
    rs = RiskSets.from_data(data, "efron")
    eta = np.random.default_rng(7).normal(0, 1, (301, data.n))  # two threads
    sums = fused.partial_loglik_events(eta, rs, terms=False)
    assert sums.shape == (301,)
    np.testing.assert_allclose(sums, partial_loglik_terms(eta, rs).sum(axis=1), rtol=1e-12, atol=0)


def test_buffers_kept_between_batches_change_no_number(monkeypatch):
    """A batch after the first reuses the threads' buffers (scratch=); a smaller batch uses part of them. Two
    threads (a thread per 500,000 row-draws) on any machine."""
    monkeypatch.setattr(fused.os, "sched_getaffinity", lambda pid: {0, 1})
    data = _data(n=2000, **OPTIONS[-1])
    rs = RiskSets.from_data(data, "efron")
    scratch = {}
    for draws, s in ((601, 10), (300, 11), (601, 12)):
        eta = np.random.default_rng(s).normal(0, 1, (draws, data.n))
        np.testing.assert_array_equal(fused.partial_loglik_events(eta, rs, terms=True, scratch=scratch),
                                      fused.partial_loglik_events(eta, rs, terms=True))
        assert scratch
    assert {k[0] for k in scratch} == {0, 1}
    by_rows = fused.partial_loglik_events((601, data.n, lambda a, b, out: np.copyto(out, eta[a:b]) or out), rs,
                                          terms=False, scratch=scratch)
    np.testing.assert_array_equal(by_rows, fused.partial_loglik_events(eta, rs, terms=False))


def test_event_terms_split_over_threads_are_those_of_one_thread(monkeypatch):
    monkeypatch.setattr(fused.os, "sched_getaffinity", lambda pid: {0, 1})
    data = _data(n=2000, **OPTIONS[-1])
    rs = RiskSets.from_data(data, "efron")
    # 1,202,000 row-draws: two threads (one per 500,000 at least), unevenly split
    eta = np.random.default_rng(6).normal(0, 1, (601, data.n))
    threaded = fused.partial_loglik_events(eta, rs)
    monkeypatch.setattr(fused.os, "sched_getaffinity", lambda pid: {0})
    np.testing.assert_array_equal(fused.partial_loglik_events(eta, rs), threaded)


def test_linear_predictors_of_a_batch_are_numpys_product():
    rng = np.random.default_rng(9)
    X, B, shift = rng.normal(size=(500, 7)), rng.normal(size=(13, 7)), rng.normal(size=13)
    out = fused.linear_predictors(B, X, shift, np.empty((13, 500)))
    np.testing.assert_allclose(out, B @ X.T - shift[:, None], rtol=1e-12, atol=1e-12)


def test_vectorised_log_is_libms_within_a_few_ulp_and_passes_the_rest_to_it():
    rng = np.random.default_rng(8)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 100_000)), rng.uniform(0.5, 2, 100_000),
                        1 + rng.normal(0, 1e-9, 10_000), [1.0, 2.0, 0.5, np.sqrt(2), np.nextafter(np.sqrt(2), 2),
                                                          np.finfo(float).max, np.finfo(float).tiny]])
    odd = np.array([0.0, -1.0, np.inf, -np.inf, np.nan, 5e-324, 1e-310])
    out = fused.log_positive(np.concatenate([x, odd]), np.empty(len(x) + len(odd)))
    ref = np.log(x)
    assert np.max(np.abs(out[:len(x)] - ref) / np.spacing(np.abs(ref).clip(1e-300))) <= 4
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(out[len(x):], np.log(odd))


def test_a_non_finite_linear_predictor_gives_a_non_finite_value():
    """NaN must reach the sampler (it rejects the point) rather than become a finite number."""
    data = _data()
    rs = RiskSets.from_data(data, "efron")
    f, weighted, delayed = fused.fields(rs)
    eta = np.zeros(data.n)
    eta[5] = np.nan
    value, grad = fused.value_and_grad(eta, *f, weighted, delayed)
    assert not np.isfinite(value)


def test_exp_matches_libm_over_its_range():
    x = np.concatenate([np.linspace(-700, 0, 20001), -np.geomspace(1e-300, 700, 2000), [0.0, -0.0]])
    out = fused.exp_nonpositive(x, np.empty_like(x))
    np.testing.assert_allclose(out, np.exp(x), rtol=5e-16, atol=0)


def test_exp_of_positive_and_non_finite_numbers_is_libm_s():
    """The kernels call the exponential on numbers of either sign (a Weibull row's a + k log t + eta, a proposal
    far out): up to the float's limit it is libm's, above it and at +inf infinite, NaN stays NaN, below -700 it is
    exp(-700); in place too. 2**k had overflowed its exponent field above 709.4: exp(750) came out as -1.6e-291 and
    +inf as NaN, so a proposal's log-likelihood could come out finite and enormous instead of -inf."""
    big = np.concatenate([np.linspace(0, 709.78, 5001), [709.5, 709.7, 709.78, 709.79, 710.0, 750.0, 2000.0, 1e300]])
    x = np.concatenate([big, -big[:100], [np.inf, np.nan, -np.inf, -800.0]])
    x = np.tile(x, 3)  # across the kernel's blocks of 512
    with np.errstate(over="ignore"):
        expect = np.exp(np.maximum(x, -700.0))
    in_place = x.copy()
    for out in (fused.exp_nonpositive(x, np.empty_like(x)), fused.exp_nonpositive(in_place, in_place)):
        finite = np.isfinite(expect)
        np.testing.assert_allclose(out[finite], expect[finite], rtol=5e-16, atol=0)
        np.testing.assert_array_equal(out[~finite], expect[~finite])  # inf where libm's is, NaN where x is


@pytest.mark.parametrize("ties", TIES)
def test_a_stratum_far_below_another_changes_nothing(ties):
    """Shifting one stratum's linear predictor leaves its partial likelihood alone (risk sets never cross strata).

    Each stratum is shifted by its own maximum: with one shift for all rows, a stratum 35 units below a
    later one had risk sums that were differences of numbers e^35 times larger, and rounded to zero."""
    data = _data(weights=True, entry=True, strata=True)
    rs = RiskSets.from_data(data, ties)
    f, weighted, delayed = fused.fields(rs)
    eta = np.random.default_rng(6).normal(0, 0.3, data.n)
    first = data.strata == 0
    ref_value, ref_grad = fused.value_and_grad(eta, *f, weighted, delayed)
    for gap in (20.0, 35.0, 300.0):
        value, grad = fused.value_and_grad(eta - gap * first, *f, weighted, delayed)
        assert abs(value - ref_value) <= 1e-12 * abs(ref_value)
        np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-10 * np.max(np.abs(ref_grad)))


def a_small_stratum_before_a_large_one(gap: float, events: bool):
    """A stratum of 4 rows and 2 events whose linear predictors spread 30 (``[0, -30, -30, -30]``), followed in the
    sorted rows by a stratum of 2,000 rows ``gap`` above it, with no events or one at its last row (a term of 0: the
    row alone at risk): ``(data, eta)``, and the same for the first stratum alone, whose value is the whole's."""
    a = pd.DataFrame({"t": [1.0, 2, 3, 4], "d": [0, 1, 0, 1], "x": [0.0, -30, -30, -30], "s": 0})
    b = pd.DataFrame({"t": np.arange(1.0, 2001), "d": 0, "x": gap, "s": 1})
    if events:
        b.loc[b.index[-1], "d"] = 1
    out = []
    for df in (pd.concat([a, b], ignore_index=True), a):
        with warnings.catch_warnings():  # x separates the events here, as it is meant to
            warnings.simplefilter("ignore", DataWarning)
            data = SurvivalData.from_frame(df, time="t", event="d", covariates=["x"], strata="s")
        out.append((data, data.X[:, 0].copy()))
    return out


@pytest.mark.parametrize("events", (False, True), ids=("no-events-after", "events-after"))
@pytest.mark.parametrize("gap", (-5.0, 0.0, 5.0, 300.0))
def test_a_stratum_s_risk_sums_are_its_own(gap, events):
    """The rows of a stratum without events are in no risk set (r = 0), and every stratum's running sums restart at
    its bounds: as one reverse sum over all rows, the first stratum's last risk sum, exp(-30) beside the 2,000 rows
    after it, was a difference of two numbers holding them: +inf at a gap of 0, -1.1108 for the exact -log 3 at a
    gap of -5. Now the value is the first stratum's alone, to rounding."""
    (data, eta), (alone, eta_alone) = a_small_stratum_before_a_large_one(gap, events)
    f, weighted, delayed = fused.fields(RiskSets.from_data(data, "efron"))
    value, grad = fused.value_and_grad(eta, *f, weighted, delayed)
    fa, _, _ = fused.fields(RiskSets.from_data(alone, "efron"))
    ref_value, ref_grad = fused.value_and_grad(eta_alone, *fa, weighted, delayed)
    assert abs(value - ref_value) <= 1e-12 * abs(ref_value) and abs(ref_value + np.log(3)) < 1e-12
    np.testing.assert_allclose(grad[:4], ref_grad, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grad[4:], 0.0, rtol=0, atol=1e-12)


def full_cox_model(rng):
    """A real CoxPH model with every option and a frailty, its data in containers (integer blocks become int32)."""
    import bayescrt as bc

    n = 200
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.random(n) < 0.4, "t": np.ceil(rng.exponential(30, n)),
                       "d": (rng.random(n) < 0.7).astype(int), "w": rng.uniform(0.5, 2, n),
                       "s": rng.integers(0, 2, n), "site": rng.integers(0, 5, n)})
    df["entry"] = np.floor(df["t"] * rng.uniform(0, 0.9, n))
    est = bc.CoxPH()
    return est.build(est.prepare(df, time="t", event="d", covariates=["a", "b"], weights="w", entry="entry",
                                 strata="s", cluster="site"))[0]


def test_the_model_compiles_to_the_same_numbers_in_both_backends():
    """A real CoxPH model (every option, a frailty, the data in containers): the numba backend nutpie compiles and
    the Python one PyMC's sampler runs give one log density."""
    rng = np.random.default_rng(7)
    model = full_cox_model(rng)
    point = {name: rng.normal(0, 0.5, np.shape(value)) for name, value in model.initial_point().items()}
    values = {}
    for mode in ("FAST_COMPILE", "NUMBA"):
        values[mode] = (model.compile_logp(mode=mode)(point), model.compile_dlogp(mode=mode)(point))
    assert abs(values["NUMBA"][0] - values["FAST_COMPILE"][0]) <= 1e-12 * abs(values["FAST_COMPILE"][0])
    np.testing.assert_allclose(values["NUMBA"][1], values["FAST_COMPILE"][1], rtol=0,
                               atol=1e-10 * np.max(np.abs(values["FAST_COMPILE"][1])))


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("opts", [o for o in OPTIONS if not o["entry"]],
                         ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
def test_one_pass_newton_terms_equal_the_numpy_derivatives(opts, ties):
    """The kernel behind the MLE against the numpy sums it replaced (every moment through ``risk_set_sums``), at a
    random point; a fourth stratum with no events and a tie group at the end of a stratum are in the data."""
    from bayescrt.families.partial_likelihood import risk_set_sums

    data = _data(**opts)
    if opts["strata"]:  # a stratum of censored rows only: its rows must not reach the others' sums
        df = pd.DataFrame(data.X, columns=["a", "b", "c"]).assign(time=data.time, event=data.event,
                                                                  s=data.strata, w=data.weights)
        extra = df.iloc[:20].assign(s=9, event=0)
        df = pd.concat([df, extra], ignore_index=True)
        data = SurvivalData.from_frame(df, time="time", event="event", covariates=["a", "b", "c"], strata="s",
                                       weights="w" if opts["weights"] else None)
    rs = RiskSets.from_data(data, ties)
    X = np.ascontiguousarray(data.X - data.center)
    beta = np.random.default_rng(9).normal(0, 0.5, X.shape[1])
    eta = X @ beta
    r = (1.0 if rs.weights is None else rs.weights) * np.exp(eta - eta.max())
    log_s0, grad, info = fused.newton_terms(X, r, eta, rs.event_rows, rs.group_start, rs.group_events_end,
                                            rs.stratum_end, rs.tie_fraction, rs.event_weight, rs.log_weight)
    s0 = risk_set_sums(r, rs)
    mean = (risk_set_sums(r * X.T, rs) / s0).T
    c = rs.log_weight
    ref_grad = (rs.event_weight[:, None] * X[rs.event_rows]).sum(0) - (c[:, None] * mean).sum(0)
    ref_info = np.array([[np.sum(c * (risk_set_sums(r * X[:, j] * X[:, k], rs) / s0 - mean[:, j] * mean[:, k]))
                          for k in range(X.shape[1])] for j in range(X.shape[1])])
    assert log_s0 == pytest.approx(np.sum(c * np.log(s0)), rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-10 * np.abs(ref_grad).max())
    np.testing.assert_allclose(info, ref_info, rtol=1e-10)


def _walk_case(opts, ties, draws=45, seed=1):
    """Data, risk sets and a batch of coefficients with a frailty per row group and a study effect on one column,
    with the linear predictors the walk must form from them."""
    data = _data(**opts)
    rs = RiskSets.from_data(data, ties)
    rng = np.random.default_rng(seed)
    X = np.asarray(data.X, float)
    B, shift = rng.normal(0, 0.5, (draws, X.shape[1])), rng.normal(size=draws)
    codes, table = rng.integers(0, 7, data.n), rng.normal(0, 0.5, (draws, 7))
    s_codes, column, s_table = rng.integers(0, 3, data.n), rng.normal(size=data.n), rng.normal(0, 0.3, (draws, 3))
    eta = B @ X.T - shift[:, None] + table[:, codes] + column * s_table[:, s_codes]
    return data, rs, X, B, shift, dict(frailty=(codes, table), study=(s_codes, column, s_table)), eta


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("opts", [o for o in OPTIONS if not o["entry"]],
                         ids=lambda o: "+".join(k for k, v in o.items() if v) or "plain")
def test_the_walk_from_coefficients_equals_the_numpy_twin(opts, ties):
    """150 draws: a walk of 128 and one of 22; terms kept and summed; a frailty and a study effect."""
    data, rs, X, B, shift, extra, eta = _walk_case(opts, ties, draws=150)
    ref = partial_loglik_terms(eta, rs)
    np.testing.assert_allclose(fused.walk_terms(B, X, rs, shift, **extra), ref, rtol=1e-12, atol=1e-12)
    sums = fused.walk_terms(B, X, rs, shift, **extra, terms=False)
    np.testing.assert_allclose(sums, ref.sum(axis=1), rtol=1e-12, atol=0)
    plain = fused.walk_terms(B, X, rs, shift, terms=False)
    np.testing.assert_allclose(plain, partial_loglik_terms(B @ X.T - shift[:, None], rs).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("p", [1, 3, 4, 5, 9, 13])
def test_the_walk_reads_any_number_of_covariates(p):
    """The linear predictors are formed four covariates a pass, two rows at a time, from coefficients padded with
    zeros: any count of covariates, blocks of odd length (strata cut them), equal the numpy twin."""
    data = _data(weights=True, strata=True)
    rs = RiskSets.from_data(data, "efron")
    rng = np.random.default_rng(p)
    X = rng.normal(size=(data.n, p))
    B, shift = rng.normal(0, 0.3, (7, p)), rng.normal(size=7)
    ref = partial_loglik_terms(B @ X.T - shift[:, None], rs)
    np.testing.assert_allclose(fused.walk_terms(B, X, rs, shift), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused.walk_terms(B, X, rs, shift, terms=False), ref.sum(axis=1), rtol=1e-12, atol=0)


def _terms_by_logsumexp(eta, rs):
    """Each event's term with every risk-set sum taken as a log-sum-exp of its own rows: exact over any range of
    linear predictors (a reference slow enough only for small data)."""
    from scipy.special import logsumexp

    lw = np.zeros(eta.shape[-1]) if rs.weights is None else np.log(rs.weights)
    out = np.empty((eta.shape[0], len(rs.event_rows)))
    for k, (ev, g, gd, end, f) in enumerate(zip(rs.event_rows, rs.group_start, rs.group_events_end,
                                                   rs.stratum_end, rs.tie_fraction)):
        tied = logsumexp(eta[:, g:gd] + lw[g:gd], axis=1) + (np.log1p(-f) if f < 1 else -np.inf)
        later = logsumexp(eta[:, gd:end] + lw[gd:end], axis=1) if end > gd else np.full(eta.shape[0], -np.inf)
        out[:, k] = rs.event_weight[k] * eta[:, ev] - rs.log_weight[k] * np.logaddexp(tied, later)
    return out


@pytest.mark.parametrize("ties", TIES)
def test_the_walk_rescales_its_sums_when_a_larger_linear_predictor_comes(ties):
    """Linear predictors rising by 1,500 a stratum from its last row to its first: each block the walk reaches holds
    a larger one than it has seen, so its sums are rescaled block after block (one scale would overflow)."""
    data = _data(n=1000, weights=True, strata=True)
    rs = RiskSets.from_data(data, ties)
    X = np.column_stack([np.asarray(data.X, float), 4500.0 * (1.0 - np.arange(data.n) / data.n)])
    B = np.array([[0.3, -0.2, 0.1, 1.0], [0.0, 0.0, 0.0, 1.0], [0.2, 0.1, 0.0, 0.0]])
    got = fused.walk_terms(B, X, rs, np.zeros(3))
    assert np.all(np.isfinite(got))
    ref = _terms_by_logsumexp(B @ X.T, rs)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-9)
    # summed: a tie group's sums multiplied (those beyond 2**+-100 by their own logarithms)
    np.testing.assert_allclose(fused.walk_terms(B, X, rs, np.zeros(3), terms=False), ref.sum(axis=1), rtol=1e-12)


def test_tie_groups_summed_by_one_logarithm_equal_the_terms_summed():
    """Without kept terms a tie group takes one logarithm of its sums' product (renormalised every 8 factors):
    500 rows in 12 times, groups of up to 40 events; and where a group's weights of the log-sums differ while
    Efron's sums do too (no such risk sets come from data), every event takes its own."""
    import dataclasses

    rng = np.random.default_rng(4)
    n = 500
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "w": rng.uniform(0.2, 3, n)})
    df["time"], df["event"] = rng.integers(1, 13, n).astype(float), (rng.random(n) < 0.8).astype(int)
    for weights in (None, "w"):
        data = SurvivalData.from_frame(df, time="time", event="event", covariates=["a", "b"], weights=weights)
        for ties in TIES:
            rs = RiskSets.from_data(data, ties)
            assert np.bincount(rs.group_start).max() >= 30
            X = np.asarray(data.X, float)
            B = rng.normal(0, 0.5, (5, 2))
            ref = partial_loglik_terms(B @ X.T, rs).sum(axis=1)
            np.testing.assert_allclose(fused.walk_terms(B, X, rs, np.zeros(5), terms=False), ref, rtol=1e-13)
    mixed = dataclasses.replace(RiskSets.from_data(data, "efron"), log_weight=rng.uniform(0.5, 2, len(rs.event_rows)))
    np.testing.assert_allclose(fused.walk_terms(B, X, mixed, np.zeros(5), terms=False),
                               partial_loglik_terms(B @ X.T, mixed).sum(axis=1), rtol=1e-13)


def test_the_walk_keeps_a_stratum_far_below_another():
    data = _data(weights=True, strata=True)
    rs = RiskSets.from_data(data, "efron")
    X = np.column_stack([np.asarray(data.X, float), -(data.strata == 0).astype(float)])
    B = np.random.default_rng(3).normal(0, 0.3, (4, X.shape[1]))
    # the sum over a tie group is unchanged by a stratum's shift (with weights, Efron's terms are not one by one)
    ref = fused.walk_terms(np.column_stack([B[:, :-1], np.zeros(4)]), X, rs, np.zeros(4), terms=False)
    for gap in (35.0, 300.0, 900.0):  # 900: below the other strata's scale, every exponential would be 0
        B[:, -1] = gap
        np.testing.assert_allclose(fused.walk_terms(B, X, rs, np.zeros(4), terms=False), ref, rtol=1e-12, atol=0)


def test_the_walk_split_over_threads_is_that_of_one_thread(monkeypatch):
    data, rs, X, B, shift, extra, _ = _walk_case(dict(weights=True, strata=True), "efron", draws=601)
    monkeypatch.setattr(fused.os, "sched_getaffinity", lambda pid: {0, 1})  # 601 x 240 row-draws: still one
    monkeypatch.setattr(fused, "_threads", lambda n_draws, n_rows: 2)
    threaded = fused.walk_terms(B, X, rs, shift, **extra)
    monkeypatch.setattr(fused, "_threads", lambda n_draws, n_rows: 1)
    np.testing.assert_array_equal(fused.walk_terms(B, X, rs, shift, **extra), threaded)


def test_the_walk_gives_a_non_finite_value_for_a_non_finite_coefficient_and_refuses_delayed_entry():
    data, rs, X, B, shift, extra, _ = _walk_case(dict(weights=True), "efron", draws=3)
    B[1, 0], B[2, 1] = np.nan, np.inf
    sums = fused.walk_terms(B, X, rs, shift, terms=False)
    assert np.isfinite(sums[0]) and not np.isfinite(sums[1]) and not np.isfinite(sums[2])
    delayed = RiskSets.from_data(_data(entry=True), "efron")
    with pytest.raises(ValueError, match="delayed entry"):
        fused.walk_terms(B, X, delayed, shift)
