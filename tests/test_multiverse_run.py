"""A spec's [multiverse] section and `bayescrt multiverse`: the section checked key by key when the spec loads,
the data refused where the multiverse cannot take them, and a small run's files (SYNTHETIC said), resumed."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.cli import main
from bayescrt.spec import load_spec
from seeds import seed

MODELS = Path(__file__).resolve().parents[1] / "models"
DANISH = (MODELS / "danish_registry.toml").read_text()
EXAMPLE = (MODELS / "example_registry.toml").read_text()
SECTION = '[multiverse]\nalways = ["age", "male"]\ncandidates = ["af", "ihd"]\n'


def _danish(tmp_path, section=SECTION, cohort=None):
    """The Danish spec with its [multiverse] replaced (and its cohort size), beside its calibration."""
    text = DANISH.split("\n[multiverse]")[0]
    text = text + "\n" + section if section.startswith("[") else section + text  # a top-level key goes first
    if cohort is not None:
        text = text.replace("n = 8880 ", f"n = {cohort[0]} ").replace("n_exposed = 2195 ", f"n_exposed = {cohort[1]} ")
    path = tmp_path / "danish_registry.toml"
    path.write_text(text)
    shutil.copy(MODELS / "danish_registry.calibration.toml", tmp_path / "danish_registry.calibration.toml")
    return path


def _example(tmp_path, section):
    path = tmp_path / "example.toml"
    path.write_text(EXAMPLE + "\n" + section)
    shutil.copy(MODELS / "example_extract.csv", tmp_path / "example_extract.csv")
    return path


def test_the_shipped_section_is_the_danish_question():
    mv = load_spec("danish").multiverse
    assert mv["always"] == ["age", "male"] and len(mv["candidates"]) == 6 and mv["color_by"] == "af"
    assert (mv["draws"], mv["tune"], mv["chains"], mv["random_seed"]) == (1000, 500, 4, 2018)


@pytest.mark.parametrize("section, message", [
    ('[multiverse]\ncandidates = ["af"]\ncolour_by = "af"\n', r"\[multiverse\].*'colour_by'.*color_by"),
    ('[multiverse]\nalways = ["age"]\n', r"\[multiverse\]: missing required key 'candidates'"),
    ('[multiverse]\ncandidates = "af"\n', r"\[multiverse\] candidates = 'af' must be a list of column names"),
    ('[multiverse]\ncandidates = []\n', r"candidates: 0 given; give 1 to 12"),
    ('[multiverse]\ncandidates = ["af", "egfr"]\n', r"\[multiverse\]: 'egfr' is not a simulated covariate"),
    ('[multiverse]\nalways = ["age", "af"]\ncandidates = ["af", "ihd"]\n', r"\['af'\] are in always and in candidates"),
    ('[multiverse]\ncandidates = ["af", "af"]\n', r"candidates: \['af'\] named twice"),
    ('[multiverse]\ncandidates = ["af", "upgrade"]\n', r"'upgrade' is the time, event or exposure column"),
    ('[multiverse]\ncandidates = ["af", "ihd"]\ncolor_by = "age"\n', r"color_by = 'age' is not a candidate"),
    ('[multiverse]\ncandidates = ["af"]\ndraws = 0\n', r"\[multiverse\] draws"),
    ('[multiverse]\ncandidates = ["af"]\nrandom_seed = -1\n', r"\[multiverse\] random_seed"),
    ('multiverse = 3\n', r"multiverse must be a table"),
], ids=["unknown key", "no candidates", "text", "empty", "not simulated", "forced and candidate", "twice",
        "exposure", "color_by", "draws", "seed", "not a table"])
def test_a_bad_section_is_refused_when_the_spec_loads_naming_the_key(tmp_path, section, message):
    with pytest.raises(bc.SpecError, match=message):
        load_spec(_danish(tmp_path, section))


def _one_line(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_refusals_are_one_line_before_any_sampling(tmp_path, capsys):
    err = _one_line(capsys, ["multiverse", "example", "--out", str(tmp_path / "a")])
    assert "no [multiverse] section" in err
    # the example extract's eGFR has missing values, which its spec imputes: the multiverse fits one data set
    spec = _example(tmp_path, '[multiverse]\nalways = ["age", "male"]\ncandidates = ["egfr", "af"]\n')
    err = _one_line(capsys, ["multiverse", str(spec), "--out", str(tmp_path / "b")])
    n = int(pd.read_csv(tmp_path / "example_extract.csv")["egfr"].isna().sum())
    assert f"egfr ({n} missing)" in err and "does not pool the imputations" in err and 'missing = "drop"' in err
    spec = _example(tmp_path, '[multiverse]\nalways = ["age"]\ncandidates = ["bmi", "af"]\n')
    err = _one_line(capsys, ["multiverse", str(spec), "--out", str(tmp_path / "c")])
    assert "[multiverse] candidates: 'bmi' is not a column of the data" in err
    spec = _danish(tmp_path)
    err = _one_line(capsys, ["multiverse", str(spec), "--out", str(tmp_path / "d"), "--data", "x.csv"])
    assert "has no [data] section" in err
    err = _one_line(capsys, ["multiverse", str(spec), "--out", str(tmp_path / "d"), "--scheduler", "tcp://h:1",
                             "--workers", "2"])
    assert "give one of them" in err
    text = spec.read_text().replace("[priors]\n", "[priors]\nbmi = { dist = \"Normal\", mu = 0, sigma = 1 }\n", 1)
    spec.write_text(text)
    err = _one_line(capsys, ["multiverse", str(spec), "--out", str(tmp_path / "d")])
    assert "[priors]: 'bmi' is not the exposure or a covariate" in err
    assert not (tmp_path / "b" / "cells").exists() and not (tmp_path / "d" / "cells").exists()


@pytest.mark.mcmc
def test_a_small_synthetic_run_writes_every_file_says_synthetic_and_resumes(tmp_path, capsys, monkeypatch):
    import importlib

    multiverse = importlib.import_module("bayescrt.multiverse")  # the module (bc.multiverse is its function)

    # 1,000 draws a chain: the six one-parameter fits' R-hat and ESS sit well inside their gates whatever the seed
    spec = _danish(tmp_path, SECTION + 'color_by = "af"\ndraws = 1000\ntune = 500\nchains = 4\n', cohort=(2000, 500))
    spec.write_text(spec.read_text().replace("random_seed = 2018\n", "", 1))  # no seed: the run draws one
    assert load_spec(spec).multiverse["random_seed"] is None
    monkeypatch.setattr(multiverse, "_draw_seed", lambda: seed(31))  # the draw fixed, so the test is repeatable
    out = tmp_path / "out"
    assert main(["multiverse", str(spec), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("SYNTHETIC DATA") and "4 covariate sets" in printed and "Fixed weights" in printed
    names = {"table.csv", "vibration.csv", "attribution.csv", "weights.csv", "averaged.csv", "propensity.csv",
             "balance.csv", "vibration.png", "attribution.png", "balance.png", "README.txt"}
    assert names <= {p.name for p in out.iterdir()} and len(list((out / "cells").glob("cell_*.npz"))) == 4
    readme = (out / "README.txt").read_text()
    assert "SYNTHETIC DATA" in readme and "not a judgement on confounding" in readme and "4 cell(s) fitted." in readme
    table = pd.read_csv(out / "table.csv", index_col="cell")
    assert len(table) == 4 and table["diagnostics_ok"].all()
    att = pd.read_csv(out / "attribution.csv", index_col="candidate")
    shift = table.loc["cell_11", "log_hr_mean"] - table.loc["cell_00", "log_hr_mean"]
    assert att["contribution"].sum() == pytest.approx(shift, abs=1e-9)
    ps = pd.read_csv(out / "propensity.csv", index_col="estimand")
    assert list(ps.index) == ["ipw", "overlap"] and ps["diagnostics_ok"].all() and (ps["max_smd_after"] < 0.1).all()
    bal = pd.read_csv(out / "balance.csv", index_col="covariate")
    assert list(bal.index) == ["age", "male", "af", "ihd"] and bal.loc["af", "smd_before"] > 0.3
    # resumed with the seed the first run drew and recorded: nothing refitted, the weighted fits the same numbers
    monkeypatch.setattr(multiverse, "_draw_seed", lambda: pytest.fail("the resumed run drew a new seed"))
    assert main(["multiverse", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert "0 fitted this run, 0 compilation(s)" in capsys.readouterr().out
    assert "0 cell(s) fitted, 4 loaded from cells/." in (out / "README.txt").read_text()
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv", index_col="cell"), table)
    pd.testing.assert_frame_equal(pd.read_csv(out / "propensity.csv", index_col="estimand"), ps)
