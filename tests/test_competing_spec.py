"""[competing_risks] in a spec: checked when the spec loads and against the data before any fit, then `bayescrt
analyse` fits every cause per covariate set, writes the tables, the cumulative incidence and one NetCDF per set and
cause, and reports them (one shared run of the SYNTHETIC example, 2 chains x 1,000 draws as its spec says)."""

import copy
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.cli import main
from bayescrt.extract import prepare, read_data
from bayescrt.families.finegray import finegray_mle
from bayescrt.spec import check, load_spec

MODELS = Path(__file__).resolve().parents[1] / "models"
TEXT = (MODELS / "example_competing.toml").read_text()
RAW = tomllib.loads(TEXT)


def _raw(**edits) -> dict:
    """The example spec as a dict, with ``[competing_risks]`` keys replaced (None removes one)."""
    raw = copy.deepcopy(RAW)
    for k, v in edits.items():
        if v is None:
            raw["competing_risks"].pop(k)
        else:
            raw["competing_risks"][k] = v
    return raw


@pytest.mark.parametrize("edits, message", [
    (dict(cause=None), r"\[competing_risks\]: missing required key 'cause'"),
    (dict(causes=None), r"\[competing_risks\]: missing required key 'causes' \(the names of the event codes"),
    (dict(cause="hf_hospitalization"), r"cause = 'hf_hospitalization' is not one of causes\. Did you mean 'hf_hospitalisation'"),
    (dict(causes=["death"], cause="death"), r"causes = \['death'\]: competing risks need at least two causes"),
    (dict(causes=["death", "death"], cause="death"), r"causes: \['death'\] named twice"),
    (dict(causes="death", cause="death"), r"causes = 'death': give a list of the causes' names"),
    (dict(causes=["../hf", "death"], cause="death"), r"cause name '\.\./hf' is not allowed"),
    (dict(censored="death"), r"censored = 'death': give the text label of censoring .* \(not a cause's name\)"),
    (dict(families={"dead": "WeibullPH"}), r"families: 'dead' is not a cause\. Did you mean 'death'"),
    (dict(families={"death": "FineGray"}), r"families\.death = 'FineGray' is a subdistribution model"),
    (dict(families={"death": "Weibull"}), r"families\.death = 'Weibull': family must be one of .*Did you mean "
                                          r"'WeibullPH'"),
    (dict(families={"death": {"family": "PiecewiseExponentialPH", "intervals": 4}}),
     r"families\.death: unknown key 'intervals'\. Did you mean 'n_intervals'"),
    (dict(families="WeibullPH"), r"families = 'WeibullPH': give a table of cause -> family"),
    (dict(subdistribution="yes"), r"subdistribution = 'yes': give true .* or false"),
    (dict(horizons=[1.0, -3.0]), r"horizons = \[1\.0, -3\.0\]: give a list of positive finite times"),
    (dict(horizons=["1y"]), r"horizons = \['1y'\]: give a list of positive finite times"),
    (dict(horizons=3.0), r"horizons = 3\.0: give a list"),
    (dict(horizons=[1.0, 1.0]), r"a horizon is given twice"),
    (dict(horizon=[1.0]), r"unknown key 'horizon'\. Did you mean 'horizons'"),
])
def test_a_bad_competing_risks_section_names_the_key_the_value_and_the_fix(edits, message):
    with pytest.raises(bc.SpecError, match=message):
        check(_raw(**edits), "spec.toml")


@pytest.mark.parametrize("section, message", [
    ({"cohort": {"n": 100}}, r"cannot have \[cohort\]: the synthetic cohort simulates one event"),
])
def test_sections_that_do_not_take_competing_risks_yet_are_refused_by_name(section, message):
    raw = _raw()
    for key, value in section.items():
        raw[key] = {**raw.get(key, {}), **value} if key == "data" else value
    with pytest.raises(bc.SpecError, match=message):
        check(raw, "spec.toml")
    no_data = _raw()
    del no_data["data"]
    with pytest.raises(bc.SpecError, match=r"competing risks are analysed on a data file; add \[data\]"):
        check(no_data, "spec.toml")


@pytest.mark.parametrize("dates, message", [
    ({"event_date": "death_date"}, r"event_date = 'death_date': with competing risks give each cause's column of "
                                   r"dates, event_date = \{ hf_hospitalisation = \"hf_hospitalisation_date\""),
    ({"event_date": {"hf_hospitalisation": "hf", "dead": "d"}},
     r"event_date must name a column for each cause .*; \['dead'\] are not causes Did you mean 'death'.*; \['death'\] "
     r"have no column"),
    ({"event_date": {"hf_hospitalisation": "hf", "death": "d"}, "precedence": ["death"]},
     r"precedence = \['death'\] must list every cause once"),
], ids=["one column", "unknown and missing cause", "precedence incomplete"])
def test_competing_event_dates_in_a_spec_name_every_cause(dates, message):
    raw = _raw()
    raw["data"]["dates"] = {"start": "implant", "censor": "2020-01-01", **dates}
    with pytest.raises(bc.SpecError, match=message):
        check(raw, "spec.toml")
    plain = copy.deepcopy(raw)
    del plain["competing_risks"]
    plain["data"]["dates"] = {"start": "implant", "censor": "2020-01-01", "event_date": {"a": "b", "c": "d"}}
    with pytest.raises(bc.SpecError, match=r"event_date = .* must be text .*needs \[competing_risks\]"):
        check(plain, "spec.toml")


def test_a_competing_risks_spec_makes_time_and_cause_from_each_cause_s_dates(tmp_path):
    """The SYNTHETIC example written as dates (implant, the HF hospitalisation and death dates, last seen), read
    back through [data.dates] with a column per cause: the status is the example's, and the years differ by less
    than the day the dates were rounded to."""
    data = pd.read_csv(MODELS / "example_competing.csv")
    rng = np.random.default_rng(3)
    implant = pd.Timestamp("2012-01-01") + pd.Series(pd.to_timedelta(rng.integers(0, 8 * 365, len(data)), unit="D"),
                                                      index=data.index)
    end = implant + pd.to_timedelta(np.round(data["years"] * 365.25), unit="D")
    day = lambda s: s.dt.strftime("%Y-%m-%d")  # noqa: E731
    later = data.index.isin(data.index[data.status == 1][:5])  # a death after the HF hospitalisation: no event here
    dated = data.drop(columns=["years", "status"]).assign(
        implant=day(implant), hf_date=day(end).where(data.status == 1),
        death_date=day(end).where(data.status == 2).combine_first(day(end + np.timedelta64(40, "D")).where(later)),
        last_seen=day(end).where(data.status == 0))
    assert dated["death_date"].notna().sum() == (data.status == 2).sum() + 5
    text = TEXT.replace('[competing_risks]', '[data.dates]\nstart = "implant"\nevent_date = { hf_hospitalisation = '
                        '"hf_date", death = "death_date" }\ncensor = ["last_seen", "2030-01-01"]\nsame_day = 0.5\n\n'
                        '[competing_risks]')
    spec = load_spec(_spec(tmp_path, dated, text))
    prep = prepare(spec, read_data(spec)[0], impute_now=False)
    got = prep.frame
    np.testing.assert_array_equal(got["status"].to_numpy(), data["status"].to_numpy())
    assert np.abs(got["years"].to_numpy() - data["years"].to_numpy()).max() < 1 / 365.25
    assert "durations from dates" in " ".join(prep.steps)


def test_a_competing_risks_spec_imputes_with_every_cause_in_the_imputation_model(tmp_path):
    """[data.imputation] in a spec with [competing_risks]: the completed copies keep the status, and the imputation
    model took each cause's indicator and cumulative hazard (prepare only; the pooled fits are tested in
    tests/test_competing.py)."""
    data = pd.read_csv(MODELS / "example_competing.csv")
    holed = data.assign(af=data["af"].astype(float).where(data.index % 9 != 0))
    text = TEXT.replace("[competing_risks]", "[data.imputation]\nm = 2\nrandom_seed = 5\n\n[competing_risks]")
    spec = load_spec(_spec(tmp_path, holed, text))
    prep = prepare(spec, read_data(spec)[0])
    assert isinstance(prep.fits, list) and len(prep.fits) == 2
    for f in prep.fits:
        assert f["af"].notna().all() and f["status"].equals(holed["status"])
        assert f.attrs["bayescrt_imputation"]["causes"] == ["hf_hospitalisation", "death"]
    assert any("each cause's indicator and cause-specific Nelson-Aalen" in s for s in prep.steps)


def test_the_note_on_real_data_counts_every_cause_s_events_once(tmp_path):
    """Not SYNTHETIC: the note counts the rows with an event of any cause (codes 1 and 2), not the sum of the codes."""
    from bayescrt.reproduce import Analysis

    data = pd.read_csv(MODELS / "example_competing.csv")
    spec = load_spec(_spec(tmp_path, data, TEXT.replace("synthetic = true", "synthetic = false")))
    prep = prepare(spec, read_data(spec)[0], impute_now=False)
    note = Analysis(spec, prep.frame, None, prep).note
    assert f"({len(data):,} rows, {int((data.status > 0).sum()):,} events)" in note, note


def _spec(tmp_path, data: pd.DataFrame, text: str = TEXT) -> Path:
    (tmp_path / "example_competing.csv").write_text(data.to_csv(index=False))
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change, error, message", [
    (lambda d: d.assign(status=d.status.where(d.index != 7, 3)), bc.DataError, r"status"),
    (lambda d: d.assign(status=d.status.where(d.status != 1, 2)), bc.DataError, r"no events"),
    (lambda d: d.assign(status=d.status.astype(float).where(d.index != 4, np.nan)), bc.DataError,
     r"'status' has 1 missing values"),
])
def test_the_event_codes_are_checked_against_the_causes_before_any_fit(tmp_path, change, error, message):
    data = pd.read_csv(MODELS / "example_competing.csv")
    path = _spec(tmp_path, change(data))
    spec = load_spec(path)
    with pytest.raises(error, match=message):
        prepare(spec, read_data(spec)[0], impute_now=False)


def test_text_labels_name_the_causes_and_the_cli_refuses_bad_codes_in_one_line(tmp_path, capsys):
    data = pd.read_csv(MODELS / "example_competing.csv")
    labelled = data.assign(status=data.status.map({0: "censored", 1: "hf_hospitalisation", 2: "death"}))
    spec = load_spec(_spec(tmp_path, labelled))
    prepare(spec, read_data(spec)[0], impute_now=False)  # the labels are the causes: accepted
    typo = labelled.assign(status=labelled.status.replace({"death": "dead"}))
    _spec(tmp_path, typo)
    rc = main(["analyse", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "[competing_risks]" in err[0] and "'dead'" in err[0], err
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


@pytest.fixture(scope="module")
def competing_run(tmp_path_factory):
    """`bayescrt analyse competing` once, with its report and JSON (the spec's sampler: 2 chains x 1,000 draws)."""
    out = tmp_path_factory.mktemp("competing")
    rc = main(["analyse", "competing", "--out", str(out / "out"), "--report", str(out / "report.html"),
               "--json", str(out / "r.json"), "--no-progress"])
    return rc, out


@pytest.mark.mcmc
def test_analyse_fits_every_cause_per_set_and_writes_tables_incidence_and_a_report(competing_run):
    rc, out = competing_run
    assert rc == 0
    files = {p.name for p in (out / "out").iterdir()}
    sets, causes = ("minimal", "full"), ("hf_hospitalisation", "death")
    nc = {f"competing_{s}_{c}.nc" for s in sets for c in causes} | {
        f"competing_{s}_hf_hospitalisation_subdistribution.nc" for s in sets}
    assert nc | {"competing.csv", "incidence.csv", "cif.png", "forest.png", "table.csv", "diagnostics.json",
                 "README.txt"} <= files
    comp = pd.read_csv(out / "out" / "competing.csv").set_index(["covariate_set", "cause", "estimand"])
    assert len(comp) == 6 and comp["diagnostics_ok"].all()
    # the simulation's cause-specific HRs of upgrade (1.0 for HF hospitalisation, 1.3 for death, the spec's comment)
    for cause, hr in (("hf_hospitalisation", 1.0), ("death", 1.3)):
        row = comp.loc[("full", cause, "cause-specific HR")]
        assert row.hr_lower < hr < row.hr_upper, (cause, row)
    # the Fine-Gray posterior against the frequentist fit of the same weighted likelihood, within 0.15 posterior SD
    fit = bc.load(out / "out" / "competing_full_hf_hospitalisation_subdistribution.nc")
    df = pd.read_csv(MODELS / "example_competing.csv")
    data = bc.FineGray().prepare(df, time="years", event="status", cause="hf_hospitalisation",
                                 causes=list(causes), covariates=["upgrade", "age", "male", "af"])
    mle = finegray_mle(data)["coef"]["upgrade"]
    row = comp.loc[("full", "hf_hospitalisation", "subdistribution HR")]
    assert abs(row.log_hr_mean - mle) < 0.15 * row.log_hr_sd, (row.log_hr_mean, mle, row.log_hr_sd)
    assert abs(fit.hazard_ratios().loc["upgrade", "log_hr_mean"] - row.log_hr_mean) < 1e-12
    inc = pd.read_csv(out / "out" / "incidence.csv").set_index(["covariate_set", "cause", "model", "time"])
    assert len(inc) == 12 and set(inc.index.get_level_values("time")) == {1.0, 3.0}
    cs, fg = "cause-specific hazards", "Fine-Gray"
    assert set(inc.xs(fg, level="model").index.get_level_values("cause")) == {"hf_hospitalisation"}
    assert inc.loc[("full", "death", cs, 3.0), "rd_lower"] > 0  # upgrade's higher death rate shows as risk at 3 years
    # two models of one risk: the Fine-Gray difference within 3 SDs of the cause-specific one, the SDs from the bands
    for t in (1.0, 3.0):
        a, b = inc.loc[("full", "hf_hospitalisation", cs, t)], inc.loc[("full", "hf_hospitalisation", fg, t)]
        sd = np.hypot(a.rd_upper - a.rd_lower, b.rd_upper - b.rd_lower) / (2 * 1.96)
        assert abs(a.rd_median - b.rd_median) < 3 * sd, (t, a.rd_median, b.rd_median, sd)
    # the main table is the cause of interest's cause-specific HR, as competing.csv has it
    tab = pd.read_csv(out / "out" / "table.csv", index_col=0)
    np.testing.assert_allclose(tab.loc["full", "hr_median"], comp.loc[("full", "hf_hospitalisation",
                                                                       "cause-specific HR"), "hr_median"])
    res = json.loads((out / "r.json").read_text())
    assert res["cause"] == "hf_hospitalisation" and res["diagnostics_ok"] is True
    assert len(res["competing_rows"]) == 6 and len(res["incidence_rows"]) == 12
    assert {r["model"] for r in res["incidence_rows"]} == {"cause-specific hazards", "Fine-Gray"}
    assert len(json.loads((out / "out" / "diagnostics.json").read_text())) == 6
    readme = (out / "out" / "README.txt").read_text()
    assert readme.count("SYNTHETIC DATA: example_competing.csv is simulated") == 1  # the note once, then the tables
    assert "SYNTHETIC DATA" in readme and "subdistribution HR" in readme and "Standardised cumulative" in readme
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<script" not in html  # forest and cumulative incidence
    assert 'id="competing-table"' in html and 'id="incidence-table"' in html and "Kaplan-Meier" not in html
    assert re.search(r"hf_hospitalisation \d+, death \d+", html)  # the events counted per cause
    assert html.count("SYNTHETIC") >= 10 and "FAILED" not in html


@pytest.mark.mcmc
@pytest.mark.browser
def test_the_competing_risks_report_loads_in_a_real_browser(competing_run):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert chromium, "make test-all installs Chromium (apt-get install chromium)"
    _, out = competing_run
    url = (out / "report.html").resolve().as_uri()
    r = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                        "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not [line for line in r.stderr.splitlines() if "CONSOLE" in line]
    assert 'id="competing-table"' in r.stdout and "subdistribution HR" in r.stdout
