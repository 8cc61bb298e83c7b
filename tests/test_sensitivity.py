"""Sensitivity grids: priors, cells and seeds, bias analysis, one compilation per structure, resume after
SIGKILL and corruption, and the same numbers on a Dask LocalCluster with a worker killed mid-cell."""

import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescrt as bc
from bayescrt import bias, sensitivity
from bayescrt.compiled import CompiledModels, structure_key
from bayescrt.sensitivity import Cell, Grid
from seeds import seed


# ------------------------------------------------------------------ priors, cells, seeds
def test_named_priors_put_five_percent_where_they_say():
    h = 1.25
    sc, en = sensitivity.named_prior("sceptical", h), sensitivity.named_prior("enthusiastic", h)
    assert stats.norm.sf(math.log(h), sc["mu"], sc["sigma"]) == pytest.approx(0.05, abs=1e-9)
    assert stats.norm.cdf(0.0, en["mu"], en["sigma"]) == pytest.approx(0.05, abs=1e-9)
    assert sensitivity.named_prior("neutral") is None
    with pytest.raises(bc.SpecError, match="'sceptic' is not a named prior.*Did you mean 'sceptical'"):
        sensitivity.named_prior("sceptic")


def _grid(**kw):
    base = dict(time="t", event="d", exposure="x", covariate_sets={"minimal": ["age"], "none": []},
                priors=["sceptical", "neutral", {"name": "harm", "dist": "Normal", "mu": 0.2, "sigma": 0.1}],
                families=["CoxPH", "WeibullPH"], random_seed=seed(5))
    return Grid(**{**base, **kw})


def test_grid_crosses_everything_and_seeds_depend_on_the_cell_only():
    g = _grid()
    cells = g.cells()
    assert len(cells) == 2 * 2 * 3 * 1 and len({c.id for c in cells}) == 12
    smaller = _grid(priors=["neutral"], families=["WeibullPH"])
    for c in smaller.cells():
        assert smaller.seed_of(c) == g.seed_of(c)
    assert len({g.seed_of(c) for c in cells}) == 12
    assert g.seed_of(cells[0]) != _grid(random_seed=seed(6)).seed_of(cells[0])
    # one group per family x set x prior distribution: the three priors here are all Normal (the default too)
    assert len({g.group_of(c) for c in cells}) == 2 * 2
    t = _grid(base_priors={"x": {"dist": "StudentT", "nu": 3, "sigma": 1}})  # neutral is now a StudentT
    assert len({t.group_of(c) for c in t.cells()}) == 2 * 2 * 2


def test_fingerprint_changes_with_what_a_cell_depends_on():
    g, cell = _grid(), _grid().cells()[0]
    fp = g.fingerprint(cell, "data1")
    assert fp == _grid().fingerprint(cell, "data1")
    assert fp != g.fingerprint(cell, "data2")
    assert fp != _grid(draws=500).fingerprint(cell, "data1")
    assert fp != _grid(important_hr=1.5).fingerprint(cell, "data1")


@pytest.mark.parametrize("kw, message", [
    (dict(priors=["bold"]), "'bold' is not a named prior"),
    (dict(priors=[{"dist": "Normal", "sigma": 1}]), "give a name .* or a dict with 'name'"),
    (dict(priors=[{"name": "w", "dist": "Normal"}]), "Normal needs 'sigma'"),
    (dict(priors=["neutral", "neutral"]), "distinct names"),
    (dict(families=["Cox"]), "family must be one of"),
    (dict(families=["CoxPH", "CoxPH"]), "name repeated families"),
    (dict(subsets={"old": [["age", "=>", 70]]}), r"operator one of"),
    (dict(subsets={}), "must be a dict of name"),
    (dict(important_hr=1.0), "important_hr=1.0 must be a positive number other than 1"),
    (dict(draws=0), "draws=0 is out of range: it must be an integer >= 1"),
    (dict(covariate_sets={"a": ["age", "age"]}), "lists a column twice"),
    (dict(confounding={"prevalence_exposed": 0.3, "confounder_hr": 2}), r"missing \['prevalence_unexposed'\]"),
    (dict(confounding={"prevalence_exposed": 1.3, "prevalence_unexposed": 0.2, "confounder_hr": 2}),
     r"a prevalence must lie in \[0, 1\]"),
])
def test_bad_grids_are_refused_with_the_key_and_the_fix(kw, message):
    with pytest.raises(bc.SpecError, match=message):
        _grid(**kw)


def test_spec_grid_and_its_errors(tmp_path):
    g = Grid.from_spec("danish")
    assert len(g.cells()) == 12 and g.synthetic
    assert set(g.published) == {"minimal", "full"} and g.published["full"]["hr"] == pytest.approx(1.03)
    assert {c.family for c in g.cells()} == {"CoxPH", "WeibullPH"}
    from bayescrt.spec import load_spec, models_dir

    raw = (models_dir() / "danish_registry.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(raw.replace("important_hr = 1.25", "importent_hr = 1.25"))
    with pytest.raises(bc.SpecError, match="unknown key 'importent_hr'.*Did you mean 'important_hr'"):
        load_spec(bad)
    bad.write_text(raw.replace('covariate_sets = ["minimal", "full"]\nfamilies', 'covariate_sets = ["minimal", "ful"]\nfamilies'))
    with pytest.raises(bc.SpecError, match="'ful' is not a covariate set"):
        Grid.from_spec(load_spec(bad))


def test_subsets_select_rows_without_touching_the_frame():
    df = pd.DataFrame({"age": [60, 70, 80], "x": [0, 1, 1]})
    before = df.copy()
    assert list(sensitivity._subset(df, [["age", ">=", 70], ["x", "==", 1]], "s").index) == [1, 2]
    pd.testing.assert_frame_equal(df, before)
    with pytest.raises(bc.SpecError, match="subset 's': column 'agee' is not in the data.*'age'"):
        sensitivity._subset(df, [["agee", ">", 1]], "s")
    with pytest.raises(bc.SpecError, match="selects no rows"):
        sensitivity._subset(df, [["age", ">", 100]], "s")


# ------------------------------------------------------------------ bias analysis and E-values
def test_evalue_matches_the_published_formula():
    # VanderWeele & Ding 2017: RR 3.9 gives an E-value of 7.26
    assert float(bias.evalue(3.9, common=False)) == pytest.approx(3.9 + math.sqrt(3.9 * 2.9))
    assert float(bias.evalue(3.9, common=False)) == pytest.approx(7.26, abs=0.005)
    assert float(bias.evalue(1 / 3.9, common=False)) == pytest.approx(7.26, abs=0.005)
    assert float(bias.evalue(1.0)) == pytest.approx(1.0)
    # common outcome: HR -> RR by (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))
    rr = (1 - 0.5 ** math.sqrt(1.13)) / (1 - 0.5 ** math.sqrt(1 / 1.13))
    assert float(bias.hr_to_rr(1.13)) == pytest.approx(rr)
    assert float(bias.evalue(1.13)) == pytest.approx(rr + math.sqrt(rr * (rr - 1)))


def test_fixed_confounder_shifts_every_draw_by_the_bias_factor():
    x = np.random.default_rng(seed(1)).normal(np.log(1.13), 0.035, 4000)
    ba = bias.unmeasured_confounding(None, "upgrade", prevalence_exposed=0.4, prevalence_unexposed=0.2,
                                     confounder_hr=2.0, log_hr_draws=x, common_outcome=True)
    b = (1 + 0.4) / (1 + 0.2)
    np.testing.assert_allclose(ba.adjusted, x - np.log(b))
    t = ba.table()
    assert t.loc["bias-adjusted", "hr_median"] == pytest.approx(t.loc["observed", "hr_median"] / b)


def test_uncertain_confounder_widens_the_interval_and_the_needed_hr_solves_the_bias_equation():
    x = np.random.default_rng(seed(2)).normal(np.log(1.13), 0.035, 20000)
    ba = bias.unmeasured_confounding(None, "upgrade", log_hr_draws=x, common_outcome=True,
                                     prevalence_exposed={"dist": "Beta", "alpha": 30, "beta": 70},
                                     prevalence_unexposed={"dist": "Beta", "alpha": 20, "beta": 80},
                                     confounder_hr={"dist": "LogNormal", "mu": 0.693, "sigma": 0.19})
    assert ba.adjusted.std() > x.std() * 1.2
    lo = ba.table().loc["observed", "hr_lower"]
    g = ba.confounder_hr_needed(0.3, 0.2)
    assert float(bias.bias_factor(0.3, 0.2, g)) == pytest.approx(lo, rel=1e-10)
    assert ba.confounder_hr_needed(0.3, 0.3) == math.inf  # no prevalence difference, no bias
    assert ba.confounder_hr_needed(0.30, 0.29) == math.inf  # the bias factor cannot exceed p1/p0 = 1.034 < lo
    ev = ba.evalues()
    assert ev.loc["interval end nearest 1", "evalue"] == pytest.approx(float(bias.evalue(lo)))
    assert ev.loc["E-value posterior", "evalue_lower"] < ev.loc["E-value posterior", "evalue"]
    with pytest.raises(bc.SpecError, match="confounder_hr=.*'dist' one of"):
        bias.unmeasured_confounding(None, "u", prevalence_exposed=0.3, prevalence_unexposed=0.2,
                                    confounder_hr={"mu": 1}, log_hr_draws=x, common_outcome=True)


# ------------------------------------------------------------------ structure keys (no sampling)
@pytest.fixture(scope="module")
def cohort():
    """A 1,500-row sample of the SYNTHETIC Danish cohort."""
    from bayescrt.analysis import simulate_cohort
    from bayescrt.spec import load_spec

    df = simulate_cohort(load_spec("danish"))
    return df.sample(1500, random_state=seed(3)).reset_index(drop=True)


def test_priors_and_subsets_share_a_structure_and_covariate_sets_do_not(cohort):
    est = bc.CoxPH()

    def key(covs, priors=None, rows=slice(None)):
        data = est.prepare(cohort.iloc[rows], time="years", event="died", covariates=covs)
        return structure_key(est.build(data, priors)[0])

    k = key(["upgrade", "age", "male"])
    assert key(["upgrade", "age", "male"], {"upgrade": {"dist": "Normal", "mu": 0.2, "sigma": 0.1}}) == k
    assert key(["upgrade", "age", "male"], rows=slice(0, 900)) == k
    assert key(["upgrade", "age", "diabetes"]) == k  # same shape, other columns: data, not structure
    assert key(["upgrade", "age"]) != k
    assert key(["upgrade", "age", "male"], {"upgrade": {"dist": "StudentT", "nu": 3, "sigma": 1}}) != k


def test_every_cell_is_checked_before_any_sampling_and_one_run_holds_a_folder(cohort, tmp_path):
    g = Grid(**{**SMALL, "covariate_sets": {"minimal": ["age", "male"], "typo": ["age", "mael"]}})
    with pytest.raises(bc.DataError, match="mael"):
        sensitivity.run(g, tmp_path / "a", data=cohort, progress=False)
    assert not list((tmp_path / "a" / "cells").glob("*.nc"))
    with pytest.raises(bc.SpecError, match="'upgarde' is not the exposure or a covariate of any set"):
        Grid(**{**SMALL, "base_priors": {"upgarde": {"dist": "Normal", "sigma": 1}}})
    (tmp_path / "c").mkdir()
    with sensitivity._lock(tmp_path / "c"):
        with pytest.raises(bc.SpecError, match="another run is writing to"):
            sensitivity.run(Grid(**SMALL), tmp_path / "c", data=cohort, progress=False)


# ------------------------------------------------------------------ grids that really sample
# Four cells (2 covariate sets x 2 priors, Cox) on 1,500 rows, 2 chains x 500 draws: two structures. These tests are
# about compilation, resume and scale-out, never convergence: a cell at this size may fail a gate by chance, which
# its table row reports, and no assertion here reads the gates.
SMALL = dict(time="years", event="died", exposure="upgrade", covariate_sets={"minimal": ["age", "male"], "none": []},
             priors=["enthusiastic", "neutral"], families=["CoxPH"], draws=500, tune=500, chains=2, random_seed=seed(11))


@pytest.fixture(scope="module")
def local_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "local"
    res = sensitivity.run(Grid(**SMALL), out, data=cohort, progress=False)
    return out, res, res.table()


@pytest.mark.mcmc
def test_one_compilation_per_structure_and_reuse_gives_the_draws_of_a_fresh_compilation(local_run, cohort):
    out, res, tab = local_run
    assert res.compilations == 2 and len(tab) == 4
    cells = res.manifest["cells"]
    assert sorted(c["compiled"] for c in cells.values()) == ["new", "new", "reused", "reused"]
    # a reused compilation (new prior values swapped in, and so a new starting point) samples exactly what a
    # fresh compilation does
    g = Grid(**SMALL)
    reused = next(Cell(**{k: c[k] for k in ("family", "covariate_set", "prior", "subset")})
                  for c in cells.values() if c["compiled"] == "reused")
    with warnings.catch_warnings():  # this test is about identical draws, not convergence (2 chains x 500 draws)
        warnings.simplefilter("ignore", bc.DiagnosticsWarning)
        fresh = sensitivity.fit_cell(g, reused, cohort, compiled_models=False)
    np.testing.assert_array_equal(fresh.log_hr_draws(), res.fit(reused).log_hr_draws())
    # the enthusiastic prior (mean log 1.25) pulls the estimate towards its mean and narrows it
    mean = math.log(1.25)
    for s in ("minimal", "none"):
        a, b = (tab[(tab.covariate_set == s) & (tab.prior == p)].iloc[0] for p in ("enthusiastic", "neutral"))
        assert np.sign(a.log_hr_mean - b.log_hr_mean) == np.sign(mean - b.log_hr_mean)
        assert a.log_hr_sd < b.log_hr_sd
    assert {"prior_sensitivity", "likelihood_sensitivity", "sensitivity_diagnosis"} <= set(tab.columns)
    # the enthusiastic prior (SD 0.136) is felt more than the default (2.5 per SD of a 0/1 covariate)
    for s in ("minimal", "none"):
        sens = tab[tab.covariate_set == s].set_index("prior")["prior_sensitivity"]
        assert sens["enthusiastic"] > sens["neutral"]


@pytest.mark.mcmc
def test_resume_redoes_missing_truncated_and_corrupt_cells_only(local_run, cohort, tmp_path):
    out, _, tab = local_run
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    ids = list(tab.index)
    (copy / "cells" / f"{ids[0]}.nc").unlink()
    p = copy / "cells" / f"{ids[1]}.nc"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # truncated
    res = sensitivity.run(Grid(**SMALL), copy, data=cohort, progress=False)
    assert res.manifest["last_run"]["fitted"] == 2 and res.manifest["last_run"]["kept"] == 2
    pd.testing.assert_frame_equal(res.table(), tab)
    # a changed setting makes a different cell, whose old file is not kept
    cell = Cell(**{k: v for k, v in res.manifest["cells"][ids[2]].items() if k in ("family", "covariate_set", "prior",
                                                                                     "subset")})
    data_hash = res.manifest["data_sha256"]
    assert sensitivity._valid(copy / "cells" / f"{ids[2]}.nc", Grid(**SMALL).fingerprint(cell, data_hash))
    assert not sensitivity._valid(copy / "cells" / f"{ids[2]}.nc",
                                  Grid(**{**SMALL, "draws": 400}).fingerprint(cell, data_hash))


def _run_in_child(out, df):
    sensitivity.run(Grid(**SMALL), out, data=df, progress=False)


def _wait_for(predicate, timeout, what):
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow  # 67 s on 2 cores; the resume logic is in the default tier (missing and truncated cells)
@pytest.mark.mcmc
def test_sigkill_midway_then_resume_gives_the_uninterrupted_table(local_run, cohort, tmp_path):
    _, _, tab = local_run
    out = tmp_path / "killed"
    child = mp.get_context("spawn").Process(target=_run_in_child, args=(out, cohort))
    child.start()
    cells = out / "cells"
    _wait_for(lambda: len(list(cells.glob("*.nc"))) >= 1 and list(cells.glob("*.running")), 300,
              "one finished cell and one in flight")
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    finished = len(list(cells.glob("*.nc")))
    assert 1 <= finished < 4
    res = sensitivity.run(Grid(**SMALL), out, data=cohort, progress=False)
    assert res.manifest["last_run"]["fitted"] == 4 - finished
    pd.testing.assert_frame_equal(res.table(), tab)
    assert not list(cells.glob("*.running")) and not list(cells.glob("*.tmp"))


@pytest.mark.mcmc
def test_dask_local_cluster_with_a_worker_killed_mid_cell_gives_the_local_numbers(local_run, cohort, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, _, tab = local_run
    out = tmp_path / "dask"
    killed = {}

    def killer():
        cells = out / "cells"
        try:
            _wait_for(lambda: cells.exists() and list(cells.glob("*.running")), 300, "a cell in flight")
        except AssertionError:
            return
        marker = next(cells.glob("*.running"))
        killed["cell"] = marker.name.removesuffix(".running")
        os.kill(json.loads(marker.read_text())["pid"], signal.SIGKILL)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            t = threading.Thread(target=killer)
            t.start()
            res = sensitivity.run(Grid(**SMALL), out, data=cohort, scheduler=client, progress=False)
            t.join()
    assert "cell" in killed, "no worker was killed"
    assert killed["cell"] in res.table().index
    pd.testing.assert_frame_equal(res.table(), tab)
    # the killed task's compilation counts if it finished before the kill: one structure, compiled twice
    last = res.manifest["last_run"]
    assert last["structures"] == last["groups"] and last["groups"] <= res.compilations <= last["groups"] + 1


@pytest.mark.parametrize("est", [bc.WeibullPH(), bc.PiecewiseExponentialPH(n_intervals=6)], ids=["weibull", "pwe"])
def test_parametric_families_share_a_structure_across_subsets_and_priors(cohort, est):
    def key(rows, priors=None):
        data = est.prepare(cohort.iloc[rows], time="years", event="died", covariates=["upgrade", "age"])
        return structure_key(est.build(data, priors)[0])

    k = key(slice(None))  # 1,500 rows: both subsets keep >= 6 events per interval (a centred random walk)
    assert key(slice(0, 1300), {"upgrade": {"dist": "Normal", "mu": 0.2, "sigma": 0.1}}) == k


@pytest.mark.mcmc
def test_total_loglik_from_the_samplers_logp_equals_the_pointwise_sum_up_to_a_constant(rossi_efron):
    total = sensitivity.loglik_total(rossi_efron)
    pointwise = rossi_efron.idata["log_likelihood"]["partial_loglik"].transpose("chain", "draw", ...).values
    diff = total - pointwise.reshape(total.shape + (-1,)).sum(-1)
    assert diff.std() < 1e-8 * np.abs(total).mean()
