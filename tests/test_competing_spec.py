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
    ({"data": {"imputation": {"m": 5, "random_seed": 1}}}, r"cannot have \[data\.imputation\] yet: .* do not pool"),
    ({"data": {"dates": {"start": "a", "event_date": "b", "censor": "c"}}}, r"cannot have \[data\.dates\] yet"),
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
    inc = pd.read_csv(out / "out" / "incidence.csv").set_index(["covariate_set", "cause", "time"])
    assert len(inc) == 8 and set(inc.index.get_level_values("time")) == {1.0, 3.0}
    assert inc.loc[("full", "death", 3.0), "rd_lower"] > 0  # upgrade's higher death rate shows as risk at 3 years
    # the main table is the cause of interest's cause-specific HR, as competing.csv has it
    tab = pd.read_csv(out / "out" / "table.csv", index_col=0)
    np.testing.assert_allclose(tab.loc["full", "hr_median"], comp.loc[("full", "hf_hospitalisation",
                                                                       "cause-specific HR"), "hr_median"])
    res = json.loads((out / "r.json").read_text())
    assert res["cause"] == "hf_hospitalisation" and res["diagnostics_ok"] is True
    assert len(res["competing_rows"]) == 6 and len(res["incidence_rows"]) == 8
    assert len(json.loads((out / "out" / "diagnostics.json").read_text())) == 6
    readme = (out / "out" / "README.txt").read_text()
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
