"""The registry of published results: schema, consistency checks, summary likelihoods, re-analysis, comparison."""

import copy
import json
import math

import numpy as np
import pytest
from scipy import stats

import bayescrt as bc
from bayescrt import published
from bayescrt.cli import main
from bayescrt.published.checks import check_study, decimals
from bayescrt.published.likelihoods import AbsZ, GroupCounts, MeanDifference, NormalEstimate, NormalPrior
from bayescrt.published.reanalyse import reanalyse
from bayescrt.published.registry import Study
from bayescrt.published.schema import RegistryError, validate
from seeds import seed

SEEDS = ("danish-registry-2000-2018", "single-centre-2015-2019", "mild-hf-avb-2021")


# ------------------------------------------------------------------ the registry
def test_every_entry_validates_and_carries_its_provenance():
    reg = published.studies()
    assert set(SEEDS) <= set(reg)
    assert len(reg) >= 8, "the seed studies and the published estimates of the evidence file"
    for sid, st in reg.items():
        assert st["citation"] and st["provenance"] and isinstance(st["verified"], bool), sid
        for r in st.results.values():
            assert isinstance(r.verified, bool) and r.comparison in published.COMPARISONS, r.id


def test_list_has_one_row_per_result_with_direction_and_verification():
    tab = published.list()
    assert tab.index.names == ["study", "result"]
    assert {"endpoint", "estimand", "comparison", "adjustment", "value", "lower", "upper", "level", "p_value",
            "n_exposed", "n_reference", "verified"} <= set(tab.columns)
    full = tab.loc[("danish-registry-2000-2018", "mortality-full")]
    assert (full.value, full.lower, full.upper, full.p_value) == (1.03, 0.96, 1.10, 0.46)
    assert full.n_exposed == 2195 and full.n_reference == 6685 and full.verified
    assert tab.loc[("single-centre-2015-2019", "mortality")].kind == "counts"


def test_seed_figures_are_stored_as_printed():
    sc = published.get("single-centre-2015-2019")
    assert sc["n"] == {"exposed": 114, "reference": 631, "total": 847}
    ev = {rid: (r["events"]["exposed"], r["events"]["reference"]) for rid, r in sc.results.items() if r.kind == "counts"}
    assert ev == {"mortality": (36, 215), "hf-hospitalisation": (22, 84), "nyha-improvement": (68, 369),
                  "crt-responders": (31, 225)}
    mh = published.get("mild-hf-avb-2021/lvesv")
    assert mh["mean"] == {"exposed": [144.3, 111.1], "reference": [134.5, 123.5]}
    assert published.get("mild-hf-avb-2021/composite")["p_value"] == 0.18


def test_a_reversed_estimate_is_stored_as_upgrade_vs_de_novo():
    """Every entry printed in the reverse direction keeps its printed numbers and stores their inverse."""
    reversed_ = [r for st in published.studies().values() for r in st.results.values() if r.get("reported")]
    assert reversed_, "the evidence file has at least one estimate printed as de novo vs upgrade"
    for r in reversed_:
        rep = r["reported"]
        assert math.isclose(r["value"], 1 / rep["value"], abs_tol=0.0006)
        assert math.isclose(r["lower"], 1 / rep["upper"], abs_tol=0.0006)
        assert math.isclose(r["upper"], 1 / rep["lower"], abs_tol=0.0006)


def test_get_returns_copies_and_unknown_ids_suggest_the_nearest():
    st = published.get("danish-registry-2000-2018")
    st.raw["results"][0]["value"] = 99.0
    assert published.get("danish-registry-2000-2018/mortality-age-sex")["value"] == 1.13
    with pytest.raises(KeyError, match="Did you mean 'danish-registry-2000-2018'"):
        published.get("danish-registry-2000-2019")
    with pytest.raises(KeyError, match="Did you mean 'mortality-full'"):
        published.get("danish-registry-2000-2018/mortality-ful")


def _danish_raw():
    return copy.deepcopy(published.get("danish-registry-2000-2018").raw)


def _without(key):
    def f(raw):
        del raw[key]
    return f


def _set(path, value):
    def f(raw):
        obj = raw
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return f


BAD_ENTRIES = [
    (_without("citation"), "required key 'citation' is missing"),
    (_without("verified"), "required key 'verified' is missing"),
    (_set(["provenanse"], "x"), "unknown key 'provenanse'. Did you mean 'provenance'?"),
    (_set(["comparison"], "upgrade-vs-denovo"), "'upgrade-vs-denovo' is not one of .* Did you mean 'upgrade-vs-de-novo'"),
    (_set(["verified"], "yes"), r"verified: expected bool, got 'yes'"),
    (_set(["results", 0, "kind"], "estimat"), "Did you mean 'estimate'"),
    (_set(["results", 0, "estimand"], "hazard ratio"), "'hazard ratio' is not one of 'HR'"),
    (_set(["results", 0, "lower"], -1.0), "a ratio must be positive; lower = -1.0"),
    (_set(["results", 0, "level"], 95), r"level: 95 must lie in \(0, 1\)"),
    (_set(["results", 0, "p_value"], 1.5), r"p_value: 1.5 must lie in \(0, 1\]"),
    (_set(["results", 0, "p_value"], 0.0), r"p_value: 0.0 must lie in \(0, 1\]; a printed 'p = 0.000' is"),
    (_set(["results", 0, "p_relation"], "<="), "'<=' is not one of '=', '<', '>'"),
    (_set(["results", 1, "id"], "mortality-age-sex"), "result id 'mortality-age-sex' is used twice"),
    (_set(["results", 0, "rope"], [1.1, 0.9]), "rope: expected \\[lower, upper\\] with lower < upper"),
    (_set(["n", "exposed"], "2195"), r"n.exposed: expected number, got '2195'"),
]


@pytest.mark.parametrize("breaks, message", BAD_ENTRIES)
def test_schema_violations_name_the_key_and_the_fix(breaks, message):
    raw = _danish_raw()
    breaks(raw)
    with pytest.raises(RegistryError, match=message):
        validate(raw, "entry.toml")


def test_schema_reports_every_problem_at_once(tmp_path):
    raw = _danish_raw()
    del raw["citation"]
    raw["comparison"] = "x"
    with pytest.raises(RegistryError, match="2 problem") as err:
        validate(raw, "entry.toml")
    assert "citation" in str(err.value) and "'x'" in str(err.value)


def test_a_file_whose_id_is_not_its_name_or_not_toml_is_refused(tmp_path):
    src = published.get("danish-registry-2000-2018").path
    bad = tmp_path / "other-name.toml"
    bad.write_text(open(src).read())
    with pytest.raises(RegistryError, match="must equal the file name 'other-name'"):
        published.load_file(bad)
    (tmp_path / "broken.toml").write_text("id = \n")
    with pytest.raises(RegistryError, match="not valid TOML"):
        published.load_file(tmp_path / "broken.toml")


# ------------------------------------------------------------------ consistency checks
def test_checker_reports_the_single_centre_patients_that_do_not_add_up():
    probs = published.check("single-centre-2015-2019")
    row = probs[(probs.check == "groups vs total") & (probs.result == "")]
    assert len(row) == 1 and row.iloc[0].severity == "error"
    msg = row.iloc[0].message
    assert "114 + 631 = 745" in msg and "847" in msg and "102" in msg


def test_the_danish_figures_are_consistent():
    """8,880 = 2,195 + 6,685, 24.7% / 75.3%, and p = 0.46 is what 1.03 (0.96-1.10) implies after rounding."""
    assert published.check("danish-registry-2000-2018").empty


def test_checker_finds_the_misprinted_interval_of_the_evidence_file():
    probs = published.check()
    assert ((probs.study == "leyva-2018") & (probs.check == "interval vs point")).any()


def _study(results, n=None, **extra):
    raw = {"id": "t", "title": "t", "citation": "c", "design": "d", "population": "p",
           "comparison": "upgrade-vs-de-novo", "exposed": "upgrade", "reference": "de novo", "provenance": "test",
           "verified": True, "n": n or {"exposed": 100, "reference": 300, "total": 400}, "results": results, **extra}
    validate(raw, "t.toml")
    return Study(raw)


def _est(**kw):
    return {"id": "e", "kind": "estimate", "endpoint": "death", "estimand": "HR", **kw}


CHECK_CASES = [
    # (results, study extra, expected check or None when consistent)
    ([_est(value=1.13, lower=1.05, upper=1.21, p_value=0.001, p_relation="<")], {}, None),
    ([_est(value=1.33, lower=0.10, upper=1.61)], {}, "interval vs point"),
    ([_est(value=1.5, lower=1.6, upper=2.0)], {}, "interval vs point"),
    ([_est(value=1.13, lower=1.05, upper=1.21, p_value=0.30)], {}, "p-value vs interval"),
    ([_est(value=1.03, lower=0.96, upper=1.10, p_value=0.46)], {}, None),
    ([_est(value=1.149, lower=0.610, upper=2.174, decimals=3,
           reported={"direction": "de novo vs upgrade", "value": 0.87, "lower": 0.46, "upper": 1.64})], {}, None),
    ([_est(value=0.87, lower=0.46, upper=1.64,
           reported={"direction": "de novo vs upgrade", "value": 0.87, "lower": 0.46, "upper": 1.64})], {},
     "inverted direction"),
    ([{"id": "c", "kind": "counts", "endpoint": "death", "events": {"exposed": 30, "reference": 90},
       "percent": {"exposed": 30, "reference": 30}}], {}, None),
    ([{"id": "c", "kind": "counts", "endpoint": "death", "events": {"exposed": 30, "reference": 90},
       "percent": {"exposed": 35, "reference": 30}}], {}, "percent vs counts"),
    ([{"id": "c", "kind": "counts", "endpoint": "death", "events": {"exposed": 130, "reference": 90}}], {}, "counts"),
    ([{"id": "c", "kind": "counts", "endpoint": "death", "events": {"exposed": 60, "reference": 60},
       "significant": False}], {}, "p-value vs counts"),
    ([_est(value=1.1, lower=1.0, upper=1.2)], {"percent": {"exposed": 30.0, "reference": 75.0}}, "percent vs counts"),
    ([_est(value=1.1, lower=1.0, upper=1.2)], {"n": {"exposed": 100, "reference": 300, "total": 500}},
     "groups vs total"),
]


@pytest.mark.parametrize("results, extra, expected", CHECK_CASES)
def test_consistency_checks_flag_what_is_wrong_and_only_that(results, extra, expected):
    found = {p.check for p in check_study(_study(results, **extra))}
    assert found == (set() if expected is None else {expected})


def test_printed_decimals():
    assert [decimals(x) for x in (34, 35.7, 1.1, 0.684, 2.0, 1e-05, 0.00012)] == [0, 1, 1, 3, 0, 5, 5]


def test_a_tiny_p_value_is_checked_at_its_own_precision():
    """p < 0.00001 printed for HR 1.13 (1.05-1.21) is wrong (the interval implies p about 0.0007)."""
    probs = check_study(_study([_est(value=1.13, lower=1.05, upper=1.21, p_value=1e-05, p_relation="=")]))
    assert {p.check for p in probs} == {"p-value vs interval"}


def test_reanalysis_of_one_result_and_of_an_unknown_one():
    rep = reanalyse("single-centre-2015-2019/mortality", draws=2000)
    assert list(rep.table().index.get_level_values("result")) == ["mortality"] and rep.skipped == {}
    with pytest.raises(published.RegistryError, match="has no result 'mortalty'. Did you mean 'mortality'"):
        reanalyse("single-centre-2015-2019/mortalty")


def test_published_show_prints_one_result(capsys):
    assert main(["published", "show", "danish-registry-2000-2018/mortality-full"]) == 0
    assert "HR 1.03 (95% CI 0.96 to 1.1)" in capsys.readouterr().out


def test_compare_checks_a_published_mapping():
    x = np.random.default_rng(seed(0)).normal(0.1, 0.05, 1000)
    with pytest.raises(bc.SpecError, match="need 0 < lower < hr < upper"):
        bc.compare(x, {"hr": 1.1, "lower": 1.3, "upper": 1.2})
    with pytest.raises(bc.SpecError, match="must be numbers"):
        bc.compare(x, {"hr": "big", "lower": 1.0, "upper": 1.2})


# ------------------------------------------------------------------ likelihoods from summaries
def test_ratio_with_ci_is_a_normal_on_the_log_scale():
    lik = NormalEstimate.from_ci(1.13, 1.05, 1.21)
    assert lik.estimate == pytest.approx(math.log(1.13))
    assert lik.se == pytest.approx(math.log(1.21 / 1.05) / (2 * 1.959964), rel=1e-6)
    draws = lik.posterior(NormalPrior(0, 1), 100_000, np.random.default_rng(seed(1)))["effect"]
    prec = 1 + 1 / lik.se**2
    assert np.mean(draws) == pytest.approx(lik.estimate / lik.se**2 / prec, abs=4 * np.sqrt(1 / prec / 1e5))


def test_counts_posterior_agrees_with_the_frequentist_risk_ratio():
    """Flat Beta priors: the log-RR posterior is centred on the MLE (within 0.15 SD: a shift of order 1/events)
    and its SD is the delta-method SE within 5%, on the single-centre mortality counts."""
    from statsmodels.stats.contingency_tables import Table2x2

    t = Table2x2(np.array([[36, 114 - 36], [215, 631 - 215]]))
    post = GroupCounts((36, 215), (114, 631)).posterior(200_000, np.random.default_rng(seed(2)))["log_ratio"]
    se = t.log_riskratio_se
    assert abs(np.median(post) - math.log(t.riskratio)) < 0.15 * se
    assert np.std(post) / se == pytest.approx(1, abs=0.05)


def test_poisson_counts_with_person_time_give_the_rate_ratio():
    post = GroupCounts((40, 80), (100, 200), person_time=(100.0, 400.0), prior=(0.5, 0.0)).posterior(
        200_000, np.random.default_rng(seed(3)))
    se = math.sqrt(1 / 40 + 1 / 80)
    assert abs(np.median(post["log_ratio"]) - math.log(2.0)) < 0.1 * se
    assert np.std(post["log_ratio"]) / se == pytest.approx(1, abs=0.05)


def test_difference_in_means_agrees_with_welch():
    """Jeffreys priors per group (the Behrens-Fisher posterior): centred on the observed difference, and its
    95% interval within 5% of Welch's width at n = 27 and 31."""
    m, s, n = (8.0, 1.8), (6.0, 7.0), (27, 31)
    d = MeanDifference(m, s, n).posterior(200_000, np.random.default_rng(seed(4)))["difference"]
    welch = stats.ttest_ind_from_stats(m[0], s[0], n[0], m[1], s[1], n[1], equal_var=False)
    se = math.sqrt(s[0] ** 2 / n[0] + s[1] ** 2 / n[1])
    df = se**4 / ((s[0] ** 2 / n[0]) ** 2 / (n[0] - 1) + (s[1] ** 2 / n[1]) ** 2 / (n[1] - 1))
    width = 2 * stats.t.ppf(0.975, df) * se
    lo, hi = np.quantile(d, [0.025, 0.975])
    assert abs(np.median(d) - 6.2) < 0.05 * se
    assert (hi - lo) / width == pytest.approx(1, abs=0.05)
    assert welch.pvalue < 0.01


def test_change_sd_uses_the_stated_correlation():
    md = MeanDifference.of_change((144.3, 134.5), (111.1, 123.5), (39.4, 36.6), (33.5, 45.6), (27, 31), 0.5)
    assert md.mean == pytest.approx((-33.2, -11.0))
    assert md.sd[0] == pytest.approx(math.sqrt(39.4**2 + 33.5**2 - 39.4 * 33.5))
    assert "0.5" in md.assumptions
    with pytest.raises(ValueError, match="correlation=1"):
        MeanDifference.of_change((1, 1), (1, 1), (1, 1), (1, 1), (5, 5), 1)


def test_p_value_without_direction_is_a_folded_likelihood():
    lik = AbsZ(0.18, se=0.4)
    z = stats.norm.isf(0.09)
    theta = np.array([-1.0, -0.3, 0.0, 0.3, 1.0])
    expected = np.log(stats.norm.pdf(z - theta / 0.4) + stats.norm.pdf(z + theta / 0.4))
    assert np.allclose(lik.loglik(theta), expected)
    assert np.allclose(lik.loglik(theta), lik.loglik(-theta))
    # its positive mode solves (z - t) phi(z - t) = (z + t) phi(z + t), t = theta / se, just inside z
    from scipy.optimize import brentq

    t = brentq(lambda t: (z - t) * stats.norm.pdf(z - t) - (z + t) * stats.norm.pdf(z + t), 0.1, z)
    assert np.argmax(lik.loglik(np.linspace(0, 2, 2001))) / 1000 == pytest.approx(t * 0.4, abs=2e-3)
    # p < 0.05 says |z| > 1.96: the likelihood grows with |theta|; p > 0.05 the reverse
    lt, gt = AbsZ(0.05, 0.4, "<"), AbsZ(0.05, 0.4, ">")
    grid = np.linspace(0, 2, 50)
    assert np.all(np.diff(lt.loglik(grid)) > 0) and np.all(np.diff(gt.loglik(grid)) < 0)
    draws = lik.posterior(NormalPrior(0, 1), 100_000, np.random.default_rng(seed(5)))["effect"]
    assert abs(np.mean(draws > 0) - 0.5) < 4 * math.sqrt(0.25 / 1e5)


# ------------------------------------------------------------------ re-analysis of the seed summaries
def test_single_centre_reanalysis_gives_every_endpoint_it_can():
    rep = reanalyse("single-centre-2015-2019", draws=40_000, random_seed=seed(1))
    tab = rep.table().loc["single-centre-2015-2019"]
    assert set(tab.index) == {"mortality", "hf-hospitalisation", "nyha-improvement", "crt-responders"}
    assert rep.skipped == {"lvef-improvement": "no standard deviations printed"}
    assert tab.loc["mortality", "quantity"] == "RR" and tab.loc["crt-responders", "quantity"] == "risk difference"
    # "no significant difference" with 114 upgrades: the posterior neither shows a difference nor equivalence
    for rid in tab.index:
        assert tab.loc[rid, "lower"] < (1 if tab.loc[rid, "quantity"] == "RR" else 0) < tab.loc[rid, "upper"], rid
        assert tab.loc[rid, "p_in_rope"] < 0.95 and "inconclusive" in tab.loc[rid, "verdict"], rid
    assert "absence of evidence" in tab.loc["mortality", "verdict"]
    # the risk difference of responders is centred on 31/114 - 225/631
    assert tab.loc["crt-responders", "median"] == pytest.approx(31 / 114 - 225 / 631, abs=0.01)


def test_mild_hf_reanalysis_of_remodelling_and_the_bare_p_value():
    rep = reanalyse("mild-hf-avb-2021", draws=40_000, random_seed=seed(1))
    tab = rep.table().loc["mild-hf-avb-2021"]
    assert tab.loc["lvef", "median"] == pytest.approx((39.7 - 31.7) - (36.0 - 34.2), abs=0.2)
    assert tab.loc["lvef", "p_gt_null"] > 0.975 and tab.loc["lvesv", "p_gt_null"] < 0.025
    assert "correlation of 0.5" in tab.loc["lvef", "assumptions"]
    assert tab.loc["composite", "p_gt_null"] == pytest.approx(0.5, abs=0.02)  # the direction is unknown
    assert "20 events" in tab.loc["composite", "assumptions"]
    # a stronger within-patient correlation narrows the difference in change
    narrow = reanalyse("mild-hf-avb-2021", draws=40_000, random_seed=seed(1), correlation=0.8).table()
    w = lambda t: t.loc[("mild-hf-avb-2021", "lvef"), "upper"] - t.loc[("mild-hf-avb-2021", "lvef"), "lower"]
    assert w(narrow) < w(rep.table())


def test_reanalysis_is_reproducible_and_cli_prints_json(capsys):
    a = reanalyse("single-centre-2015-2019", draws=5000, random_seed=seed(3)).table()
    b = reanalyse("single-centre-2015-2019", draws=5000, random_seed=seed(3)).table()
    assert a.equals(b)
    assert main(["reanalyse", "single-centre-2015-2019", "--json", "--draws", "5000"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["study"] == "single-centre-2015-2019" and len(doc["rows"]) == 4
    assert main(["reanalyse", "mild-hf-avb-2021", "--draws", "5000"]) == 0
    out = capsys.readouterr().out
    assert "ROPE" in out and "assumptions" in out


# ------------------------------------------------------------------ comparison
def test_compare_against_hand_computed_figures():
    pub = published.get("danish-registry-2000-2018/mortality-full")
    mu, se = math.log(1.03), math.log(1.10 / 0.96) / (2 * stats.norm.ppf(0.975))
    x = np.random.default_rng(seed(6)).normal(mu + 2 * se, se, 40_000)   # two SEs above the published estimate
    c = bc.compare(x, pub)
    assert c.standardised_difference == pytest.approx(2 / math.sqrt(2), abs=0.03)
    assert c.overlap == pytest.approx(2 * stats.norm.cdf(-1), abs=0.02)  # two unit normals 2 SDs apart
    inside = stats.norm.cdf(math.log(1.10), mu + 2 * se, se) - stats.norm.cdf(math.log(0.96), mu + 2 * se, se)
    assert c.p_in_published_ci == pytest.approx(inside, abs=4 * math.sqrt(inside * (1 - inside) / 40_000))
    assert "more than typical noise" in c.sentence()
    same = bc.compare(np.random.default_rng(seed(7)).normal(mu, se, 40_000), "danish-registry-2000-2018/mortality-full")
    assert same.overlap > 0.97 and abs(same.standardised_difference) < 0.05
    assert same.p_in_published_ci == pytest.approx(0.95, abs=4 * math.sqrt(0.95 * 0.05 / 40_000))
    assert "consistent" in same.sentence()


def test_compare_refuses_what_it_cannot_compare():
    x = np.zeros(1000)
    with pytest.raises(bc.SpecError, match="'<study>/<result>'"):
        bc.compare(x, "danish-registry-2000-2018")
    with pytest.raises(bc.SpecError, match="'counts' result"):
        bc.compare(x, "single-centre-2015-2019/mortality")
    with pytest.raises(bc.SpecError, match=r"missing key\(s\) \['lower'\]"):
        bc.compare(x, {"hr": 1.1, "upper": 1.3})
    with pytest.raises(bc.SpecError, match="at least 100 finite draws"):
        bc.compare(np.zeros(5), {"hr": 1.1, "lower": 0.9, "upper": 1.3})


def test_comparison_plot_draws_both_densities(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    c = bc.compare(np.random.default_rng(seed(8)).normal(0.12, 0.035, 4000), {"hr": 1.13, "lower": 1.05, "upper": 1.21})
    ax = c.plot()
    ax.figure.savefig(tmp_path / "cmp.png")
    assert len(ax.lines) >= 3 and (tmp_path / "cmp.png").stat().st_size > 5000


# ------------------------------------------------------------------ command line
def test_cli_published_list_show_check(capsys):
    assert main(["published", "list"]) == 0
    assert "danish-registry-2000-2018" in capsys.readouterr().out
    assert main(["published", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"study", "result", "verified"} <= set(rows[0])
    assert main(["published", "show", "single-centre-2015-2019"]) == 0
    assert "114" in capsys.readouterr().out
    assert main(["published", "check"]) == 0
    out = capsys.readouterr().out
    assert "745" in out and "847" in out
    assert main(["published", "show", "no-such-study"]) == 2
    assert "no study 'no-such-study'" in capsys.readouterr().err


def test_spec_takes_its_published_numbers_from_the_registry():
    from bayescrt.spec import load_spec

    pub = load_spec("danish").published
    assert pub["minimal"]["hr"] == 1.13 and pub["full"]["upper"] == 1.10
    assert pub["follow_up_median_years"] == {"upgrade": 3.9, "de_novo": 4.6}
