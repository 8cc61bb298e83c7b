"""The multiverse: every subset of candidate confounders in one compilation, the Shapley attribution of the
exposure's shift, the vibration of effects, resuming from a folder; fit(active=...) underneath it."""

import math

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.multiverse import Multiverse, cells_of
from seeds import seed

CANDIDATES = ["strong", "weak1", "weak2", "noise"]


def _cohort(n=1500, k=seed(5)):
    """One strong confounder, two weak ones and an irrelevant covariate; the exposure's true log-HR is 0.3."""
    rng = np.random.default_rng(k)
    c = rng.normal(size=(n, 4))
    x = (rng.random(n) < 1 / (1 + np.exp(-(1.0 * c[:, 0] + 0.4 * c[:, 1] + 0.4 * c[:, 2])))).astype(int)
    t = rng.exponential(1 / (0.2 * np.exp(0.3 * x + 0.8 * c[:, 0] + 0.3 * c[:, 1] + 0.3 * c[:, 2])))
    cens = rng.uniform(0, 8, n)
    return pd.DataFrame({"time": np.minimum(t, cens), "event": (t <= cens).astype(int), "x": x,
                         "age": rng.normal(size=n), **dict(zip(CANDIDATES, c.T))})


# ------------------------------------------------------------------ no sampling
def test_cells_are_every_subset_once_the_empty_one_first():
    cells = cells_of(["a", "b", "c"])
    assert len(cells) == 8 and len({c.id for c in cells}) == 8
    assert cells[0].included == () and cells[-1].included == ("a", "b", "c")
    assert [len(c.included) for c in cells] == [0, 1, 1, 1, 2, 2, 2, 3]
    assert cells[4].id == "cell_110" and cells[4].included == ("a", "b")


def _fake(means, candidates, sd=0.1, ess=1000.0):
    """A Multiverse whose cell posteriors have the given means (by mask), for the arithmetic of attribution."""
    cells = cells_of(candidates)
    rng = np.random.default_rng(0)
    results = {}
    for c in cells:
        z = rng.normal(size=(1, 500))
        z = np.vstack([z, -z])  # symmetric: the median is the mean
        z = z / z.std(ddof=1)
        results[c.id] = {"draws": means(c.mask) + sd * z, "ok": True, "failures": [], "ess_bulk": ess,
                         "elpd_i": np.full(10, -1.0), "max_pareto_k": 0.1, "compiled": "reused", "seconds": 0.0}
    return Multiverse(cells, results, exposure="x", always=["age"], candidates=candidates, fitted=0, folder=None)


def test_a_cell_without_a_finite_log_likelihood_fails_and_gets_no_weight(monkeypatch):
    """_summarise of a fit whose pointwise log-likelihood has a NaN: the cell fails its diagnostics with the
    reason, its ELPD is -inf, and both kinds of weights give it 0; the others still get theirs."""
    import importlib

    import xarray as xr

    M = importlib.import_module("bayescrt.multiverse")  # the module (bc.multiverse is the function)

    class Rep:
        ok, failures = True, []

    class FakeFit:
        sampling = {}

        def __init__(self, ll):
            rng = np.random.default_rng(seed(8))
            post = xr.Dataset({"log_hr": (("chain", "draw", "covariate"), rng.normal(size=(2, 100, 1)))})
            self.idata = xr.DataTree.from_dict({"posterior": post, "log_likelihood": xr.Dataset(
                {"ll": (("chain", "draw", "event"), ll)})})

        def diagnostics(self):
            return Rep()

    ll = np.random.default_rng(seed(9)).normal(-2, 0.1, size=(2, 100, 10))
    good = M._summarise(FakeFit(ll), "ll")
    ll[1, 5, 3] = np.nan
    bad = M._summarise(FakeFit(ll), "ll")
    assert good["ok"] and not bad["ok"] and "no PSIS-LOO" in bad["failures"][-1]
    assert np.isneginf(bad["elpd_i"]).all()
    mv = _fake(lambda m: 0.0, ["p"])
    mv.results["cell_1"] = {**mv.results["cell_1"], "elpd_i": np.full(10, -np.inf), "ok": False}
    for method in ("stacking", "pseudo-bma+"):
        w = mv.weights(method)
        assert w["cell_1"] < 1e-9 and w["cell_0"] == pytest.approx(1)


def test_the_shapley_values_of_an_additive_shift_are_its_terms_and_an_interaction_is_split_evenly():
    a = {"p": -0.4, "q": 0.1, "r": 0.0}
    mv = _fake(lambda m: 0.5 + sum(v for v, on in zip(a.values(), m) if on), list(a))
    t = mv.attribution()
    np.testing.assert_allclose(t["contribution"], list(a.values()), atol=1e-12)
    # every candidate's value averages 4 differences of independent cells with weights 1/3, 1/6, 1/6, 1/3
    assert t["mc_error"].to_numpy() == pytest.approx(np.full(3, 0.1 / math.sqrt(1000) * math.sqrt(2 * (2 / 9 + 2 / 36))))
    mv = _fake(lambda m: -0.3 * (m[0] and m[1]), ["p", "q", "r"])  # only p and q together move it
    t = mv.attribution()
    np.testing.assert_allclose(t["contribution"], [-0.15, -0.15, 0.0], atol=1e-12)
    assert t["contribution"].sum() == pytest.approx(t.attrs["total"], abs=1e-12)


def test_vibration_counts_cells_on_each_side_and_calls_both_janus():
    mv = _fake(lambda m: 0.3 if m[0] else -0.3, ["p", "q"], sd=0.1)
    v = mv.vibration()
    assert v["share_p_gt_0.975"] == 0.5 and v["share_p_lt_0.025"] == 0.5 and v["janus"]
    assert v["relative_hr"] == pytest.approx(math.exp(0.6), rel=1e-3)
    assert not _fake(lambda m: 0.3, ["p", "q"]).vibration()["janus"]


def test_the_vibration_plot_names_what_its_hr_is():
    import matplotlib

    matplotlib.use("Agg")
    mv = _fake(lambda m: 0.3 if m[0] else -0.3, ["p", "q"])
    assert mv.plot_vibration().get_xlabel() == "posterior median HR of 'x'"
    ax = mv.plot_vibration(estimand="cause-specific HR of 'x' for 'death'")
    assert ax.get_xlabel() == "posterior median cause-specific HR of 'x' for 'death'"


@pytest.mark.parametrize("kw, message", [
    ({"candidates": "strong"}, r"candidates='strong' must be a list of column names"),
    ({"candidates": ["strong", "stong"]}, r"candidates: 'stong' is not a column.*Did you mean 'strong'"),
    ({"always": ["age", "strong"]}, r"\['strong'\] are both in always= and in candidates="),
    ({"candidates": []}, r"candidates: 0 given; the multiverse takes 1 to 12"),
    ({"candidates": ["x"]}, r"candidates: 'x' is the time, event or exposure column"),
    ({"exposure": "xx"}, r"exposure='xx' is not a column.*Did you mean 'x'"),
    ({"family": bc.WeibullPH()}, r"fit\(active=...\), which CoxPH takes"),
    ({"draws": 0}, r"draws"),
    ({"workers": 0}, r"workers"),
    ({"draws": 2, "chains": 2}, r"needs at least 5 draws in all"),
    ({"scheduler": 8786}, r"scheduler=8786: give the address of a dask.distributed scheduler"),
    ({"scheduler": " "}, r"scheduler=' ': give the address"),
])
def test_bad_arguments_are_spec_errors_naming_them(kw, message):
    args = dict(time="time", event="event", exposure="x", always=["age"], candidates=CANDIDATES, progress=False)
    with pytest.raises(bc.SpecError, match=message):
        bc.multiverse(_cohort(200), **{**args, **kw})


def test_active_names_covariates_of_the_fit_and_only_coxph_takes_it():
    df = _cohort(200)
    with pytest.raises(bc.SpecError, match=r"active: 'strng' is not a covariate of the fit\. Did you mean 'strong'"):
        bc.CoxPH().fit(df, time="time", event="event", covariates=["x", "strong"], active=["x", "strng"])
    with pytest.raises(bc.SpecError, match=r"active= is for CoxPH"):
        bc.WeibullPH().fit(df, time="time", event="event", covariates=["x", "strong"], active=["x"])
    with pytest.raises(bc.SpecError, match=r"active='x' must be a list"):
        bc.CoxPH().fit(df, time="time", event="event", covariates=["x", "strong"], active="x")


# ------------------------------------------------------------------ one small multiverse
# 1,000 draws a chain: with 500 the split R-hat of one cell in twenty reaches 1.01 by chance (measured over
# seeds), and the run has sixteen; with 1,000 it stayed below 1.005 in thirty
KW = dict(draws=1000, tune=500, chains=4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    df = _cohort()
    out = tmp_path_factory.mktemp("multiverse")
    mv = bc.multiverse(df, time="time", event="event", exposure="x", always=["age"], candidates=CANDIDATES,
                       random_seed=seed(3), out=out, progress=False, **KW)
    return df, out, mv


@pytest.mark.mcmc
def test_all_cells_share_one_compilation_and_pass_their_gates(run):
    _, _, mv = run
    assert mv.ok and mv.fitted == 16
    assert mv.compilations <= 1  # the first cell's, unless this process had compiled the structure already
    assert sum(r["compiled"] == "reused" for r in mv.results.values()) >= 15


@pytest.mark.mcmc
def test_a_masked_cell_is_a_plain_fit_of_its_subset(run):
    """Within Monte Carlo error: the difference of two independent posterior means has SD
    sd * sqrt(1/ESS_a + 1/ESS_b); an SD estimate's relative error is about 1/sqrt(2 ESS)."""
    df, _, mv = run
    import arviz as az

    for cell_id, added in [("cell_0000", []), ("cell_1000", ["strong"]), ("cell_0111", ["weak1", "weak2", "noise"])]:
        plain = bc.CoxPH().fit(df, time="time", event="event", covariates=["x", "age", *added],
                               random_seed=seed(40), progress=False, **KW)
        b = plain.idata["posterior"]["log_hr"].isel(covariate=0).transpose("chain", "draw").values
        a = mv.results[cell_id]["draws"]
        ess_a, ess_b = mv.results[cell_id]["ess_bulk"], float(az.ess(b[..., None], chain_axis=0, draw_axis=1).ravel()[0])
        sd = b.std(ddof=1)
        assert abs(a.mean() - b.mean()) < 5 * sd * math.sqrt(1 / ess_a + 1 / ess_b), cell_id
        assert abs(a.std(ddof=1) / sd - 1) < 5 * math.sqrt(1 / (2 * ess_a) + 1 / (2 * ess_b)), cell_id


@pytest.mark.mcmc
def test_attribution_ranks_strong_weak_irrelevant_and_adds_up_to_the_shift(run):
    _, _, mv = run
    t = mv.attribution()
    assert t["contribution"].sum() == pytest.approx(t.attrs["total"], abs=1e-12)  # efficiency: exact
    size = t["contribution"].abs()
    gap = 5 * t["mc_error"].max()
    assert size["strong"] > max(size["weak1"], size["weak2"]) + gap
    assert min(size["weak1"], size["weak2"]) > size["noise"] + gap
    # the confounders push the crude HR up (they raise both exposure and hazard): adjusting moves it down
    assert (t.loc[["strong", "weak1", "weak2"], "contribution"] < 0).all()
    tab = mv.table()
    assert list(tab.columns[:6]) == ["adjusted_for", "n_candidates", "with strong", "with weak1", "with weak2",
                                     "with noise"]
    assert tab.loc["cell_1111", "hr_lower"] < math.exp(0.3) < tab.loc["cell_1111", "hr_upper"]
    assert "16 covariate sets" in str(mv) and "relative HR" in str(mv)


@pytest.mark.mcmc
def test_a_second_run_loads_every_cell_and_a_damaged_one_is_fitted_again(run):
    df, out, mv = run
    kw = dict(time="time", event="event", exposure="x", always=["age"], candidates=CANDIDATES, random_seed=seed(3),
              out=out, progress=False, **KW)
    again = bc.multiverse(df, **kw)
    assert again.fitted == 0 and again.compilations == 0
    pd.testing.assert_frame_equal(again.table(), mv.table())
    (out / "cell_0101.npz").write_bytes(b"not a cell")
    (out / "cell_0110.npz").unlink()
    third = bc.multiverse(df, **kw)
    assert third.fitted == 2
    pd.testing.assert_frame_equal(third.table(), mv.table())  # same seed, same data: the same draws
    with pytest.raises(bc.SpecError, match=r"holds a multiverse of other data or settings"):
        bc.multiverse(df, **{**kw, "random_seed": seed(4)})


@pytest.mark.mcmc
def test_cells_resumed_on_a_dask_local_cluster_give_the_same_numbers(run, tmp_path):
    """Four cells removed from a finished run are fitted again by two worker processes: the same seed gives the
    same draws in another process, so every number of the table but the ELPD is the in-process one exactly."""
    import shutil

    import distributed  # a test dependency: a missing one fails, it does not skip

    df, out, mv = run
    copy = tmp_path / "mv"
    shutil.copytree(out, copy)
    gone = ["cell_0000", "cell_1000", "cell_0110", "cell_1111"]
    for c in gone:
        (copy / f"{c}.npz").unlink()
    kw = dict(time="time", event="event", exposure="x", always=["age"], candidates=CANDIDATES, random_seed=seed(3),
              out=copy, progress=False, **KW)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as client:
            on_dask = bc.multiverse(df, scheduler=client, **kw)
            ran_on = set(client.run(lambda: 1))
    assert on_dask.fitted == 4 and 1 <= on_dask.compilations <= len(ran_on) == 2
    for c in gone:  # the draws bit for bit; the ELPD to rounding (a worker's BLAS runs on one thread, which
        # changes the order of the sums in the pointwise log-likelihood: 1 ulp here and there)
        np.testing.assert_array_equal(on_dask.results[c]["draws"], mv.results[c]["draws"])
        np.testing.assert_allclose(on_dask.results[c]["elpd_i"], mv.results[c]["elpd_i"], rtol=1e-12)
    pd.testing.assert_frame_equal(on_dask.table().drop(columns="elpd_loo"), mv.table().drop(columns="elpd_loo"),
                                  check_exact=True)
    pd.testing.assert_series_equal(on_dask.weights(), mv.weights(), rtol=0, atol=1e-6)


@pytest.mark.mcmc
def test_cells_resumed_in_two_local_processes_give_the_same_draws(run, tmp_path):
    import shutil

    df, out, mv = run
    copy = tmp_path / "mv"
    shutil.copytree(out, copy)
    for c in ("cell_0101", "cell_1010"):
        (copy / f"{c}.npz").unlink()
    again = bc.multiverse(df, time="time", event="event", exposure="x", always=["age"], candidates=CANDIDATES,
                          random_seed=seed(3), out=copy, progress=False, workers=2, **KW)
    assert again.fitted == 2 and again.compilations == 2  # one per process
    for c in ("cell_0101", "cell_1010"):
        np.testing.assert_array_equal(again.results[c]["draws"], mv.results[c]["draws"])


def test_stacking_and_pseudo_bma_weights_are_arviz_s_on_the_same_pointwise_elpd():
    """Two models each right about part of the data and one vague: stacking mixes the first two (ArviZ gives
    0.37 and 0.63 here), pseudo-BMA+ picks the vague one whose total ELPD is best."""
    import warnings

    import arviz as az
    import xarray as xr

    from bayescrt.multiverse import pseudo_bma_plus, stacking_weights

    rng = np.random.default_rng(seed(1))
    y = np.concatenate([rng.normal(-1.5, 1, 70), rng.normal(1.5, 1, 130)])
    trees = {}
    for k, (mu, sd) in enumerate([(-1.5, 1), (1.5, 1), (0, 1.8)]):
        m = rng.normal(mu, 0.05, size=(2, 300, 1))
        ll = -0.5 * ((y - m) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
        trees[f"m{k}"] = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), m[..., 0])}),
                                               "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elpd = np.column_stack([np.asarray(az.loo(t, pointwise=True).elpd_i).ravel() for t in trees.values()])
        ref = az.compare(trees, method="stacking", round_to="none")["weight"].reindex(list(trees)).to_numpy(float)
        bb = az.compare(trees, method="bb-pseudo-bma", round_to="none")["weight"].reindex(list(trees)).to_numpy(float)
    w = stacking_weights(elpd)
    assert 0.2 < w[0] < 0.5 and w[2] < 0.01  # an interior optimum: the comparison can fail
    np.testing.assert_allclose(w, ref, atol=0.01)
    np.testing.assert_allclose(pseudo_bma_plus(elpd, random_seed=seed(2)), bb, atol=0.01)


@pytest.mark.mcmc
def test_weights_the_averaged_posterior_and_the_plots(run):
    import matplotlib

    matplotlib.use("Agg")
    _, _, mv = run
    for method in ("stacking", "pseudo-bma+"):
        w = mv.weights(method)
        assert (w >= 0).all() and w.sum() == pytest.approx(1.0) and len(w) == 16
    av = mv.averaged()
    tab = mv.table()
    assert tab["hr_lower"].min() < av["hr_median"] < tab["hr_upper"].max()
    assert "not a judgement on confounding" in av.attrs["statement"]
    assert av.attrs["weights"].equals(mv.weights())
    with pytest.raises(bc.SpecError, match=r"method='stack': choose one of \['stacking', 'pseudo-bma\+'\]"):
        mv.weights("stack")
    ax = mv.plot_vibration(color_by="strong", published={"registry": 1.13})
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == 16  # every cell once (the legend's marker has no point)
    with pytest.raises(bc.SpecError, match=r"color_by='age' is not a candidate"):
        mv.plot_vibration(color_by="age")
    ax = mv.plot_attribution()
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "forced only" and len(ax.patches) == 6
