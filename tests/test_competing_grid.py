"""Sensitivity grids of competing risks: each cell is the cause-specific hazard of the cause of interest (the other
causes censor it), across covariate sets, priors, families and subsets. The grid's cause keys are checked before
any fit, a folder of one cause is never resumed as another, and one shared run of `bayescrt sensitivity` on the
SYNTHETIC example agrees with lifelines' Cox fit of the same cause-specific hazard."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.causes import EVENT_COLUMN
from bayescrt.cli import main
from bayescrt.sensitivity import Grid, run
from bayescrt.spec import load_spec

MODELS = Path(__file__).resolve().parents[1] / "models"
DATA = pd.read_csv(MODELS / "example_competing.csv")
SETS = {"minimal": ["age", "male"], "full": ["age", "male", "af"]}
CAUSES = ["hf_hospitalisation", "death"]


def _grid(**kw) -> Grid:
    base = dict(time="years", event="status", exposure="upgrade", covariate_sets=SETS, priors=["neutral"],
                cause="death", causes=CAUSES, draws=10, tune=10, chains=1)
    return Grid(**{**base, **kw})


@pytest.mark.parametrize("kw, message", [
    (dict(cause=None), r"causes=\['hf_hospitalisation', 'death'\] is given without cause=: name the cause of "
                       r"interest, e.g\. cause='hf_hospitalisation'"),
    (dict(cause=None, causes=None, censored="alive"), r"censored='alive' applies to competing risks; give cause= too"),
    (dict(cause="dead"), r"cause='dead' is not one of causes=\['hf_hospitalisation', 'death'\]\. Did you mean 'death'"),
    (dict(cause=2), r"cause=2 must be the name of the cause of interest \(text\)"),
    (dict(causes="death"), r"causes='death' must list the causes' names"),
    (dict(censored=""), r"censored='' must be the text label of censoring"),
    (dict(covariate_sets={"leak": ["age", "status"]}), r"event='status' is also covariates="),
    (dict(cause=None, causes=None, families=["FineGray"]),
     r"grid family 'FineGray': FineGray models the subdistribution hazard of one cause.*give cause="),
    (dict(families=["FineGrey"]), r"family must be one of \[.*'FineGray'\]\. Did you mean 'FineGray'"),
], ids=["causes without cause", "censored without cause", "unknown cause", "cause not text", "causes text",
        "censored empty", "event as covariate", "Fine-Gray without a cause", "misspelt Fine-Gray"])
def test_a_bad_cause_key_is_refused_when_the_grid_is_made_naming_it(kw, message):
    with pytest.raises(bc.SpecError, match=message):
        _grid(**kw)


@pytest.mark.parametrize("change, error, message", [
    (lambda d: d.assign(status=d.status.where(d.index != 3, 5)), bc.DataError,
     r"event column 'status' has codes \[5\] that causes=.* does not name"),
    (lambda d: d.assign(**{EVENT_COLUMN: 0}), bc.SpecError, r"a column '_cause_event'.*rename it"),
    (lambda d: d.assign(status=d.status.astype(float).where(d.index != 9, np.nan)), bc.DataError,
     r"event column 'status' has 1 missing values \(rows \[9\]\)"),
], ids=["unknown code", "reserved column", "missing event"])
def test_the_event_codes_are_checked_before_any_cell_is_fitted(tmp_path, change, error, message):
    with pytest.raises(error, match=message):
        run(_grid(), tmp_path / "out", data=change(DATA), progress=False)
    assert not list((tmp_path / "out" / "cells").glob("*.nc"))


def test_a_cause_not_in_the_data_is_refused_and_the_callers_frame_is_left_alone(tmp_path):
    before = DATA.copy()
    with pytest.raises(bc.SpecError, match=r"cause='stroke' is not a cause of event column 'status'.*Causes: "
                                           r"\['cause 1', 'cause 2'\]"):
        run(_grid(cause="stroke", causes=None), tmp_path / "out", data=DATA, progress=False)
    pd.testing.assert_frame_equal(DATA, before)


def test_the_fingerprint_holds_the_cause_so_a_folder_of_one_cause_is_refitted_for_another():
    death, hf = _grid(), _grid(cause="hf_hospitalisation")
    cell = death.cells()[0]
    assert death.fingerprint(cell, "h") != hf.fingerprint(cell, "h")
    assert Grid(**death.to_dict()).fingerprint(cell, "h") == death.fingerprint(cell, "h")
    plain = _grid(cause=None, causes=None, event="status")
    assert "cause" not in plain.to_dict() or plain.to_dict()["cause"] is None
    assert plain.fingerprint(cell, "h") not in {death.fingerprint(cell, "h"), hf.fingerprint(cell, "h")}


def _spec(tmp_path, section: str) -> Path:
    shutil.copy(MODELS / "example_competing.csv", tmp_path / "example_competing.csv")
    path = tmp_path / "competing.toml"
    path.write_text((MODELS / "example_competing.toml").read_text() + "\n" + section)
    return path


def test_a_spec_grid_takes_the_cause_and_its_family_from_competing_risks(tmp_path):
    spec = load_spec(_spec(tmp_path, "[sensitivity]\npriors = [\"neutral\"]\n"))
    grid = Grid.from_spec(spec)
    assert (grid.cause, grid.causes, grid.censored) == ("hf_hospitalisation", CAUSES, "censored")
    assert [c.family for c in grid.cells()] == ["WeibullPH", "WeibullPH"]  # the [model] family: no entry for hf
    text = (MODELS / "example_competing.toml").read_text().replace('cause = "hf_hospitalisation"', 'cause = "death"')
    (tmp_path / "death.toml").write_text(text + "\n[sensitivity]\npriors = [\"neutral\"]\n")
    death = Grid.from_spec(load_spec(tmp_path / "death.toml"))
    assert death.cause == "death" and death._families == {"WeibullPH": ("WeibullPH", {})}


def test_a_grid_of_cause_specific_and_fine_gray_cells_says_which_each_is():
    """Titles and event arguments per cell, without sampling: a Fine-Gray cell reads the coded column with the cause."""
    from bayescrt.sensitivity.table import SensitivityResult

    plain = _grid(families=["CoxPH"])
    assert SensitivityResult(plain, Path("."), {})._estimand() == (
        "cause-specific HR of 'upgrade' for 'death' (hf_hospitalisation censors it)")
    fg = _grid(families=["FineGray"])
    assert SensitivityResult(fg, Path("."), {})._estimand() == "subdistribution HR of 'upgrade' for 'death'"
    both = _grid(families=["CoxPH", "FineGray"])
    assert both.estimand == "HR of 'upgrade' for 'death', cause-specific or subdistribution per cell"
    cs_cell, fg_cell = both.cells()[0], both.cells()[-1]
    assert both.event_kwargs(cs_cell) == {"event": EVENT_COLUMN}
    assert both.event_kwargs(fg_cell) == {"event": "status", "cause": "death", "causes": CAUSES, "censored": "censored"}
    assert [both.cell_estimand(c) for c in (cs_cell, fg_cell)] == ["cause-specific HR", "subdistribution HR"]
    assert both.fingerprint(cs_cell, "h") != both.fingerprint(fg_cell, "h")


def test_a_fine_gray_cell_reads_the_coded_event_of_every_imputation():
    """Without sampling: a Fine-Gray cell's inputs are the completed DataFrames without the 0/1 column of the
    cause (FineGray reads the codes), each checked as the fit will prepare it; a Cox cell keeps that column."""
    from bayescrt.sensitivity.cells import _cell_inputs

    grid = _grid(families=["CoxPH", "FineGray"])
    frames = grid.cause_data([DATA.copy(), DATA.copy()])
    cs_cell, fg_cell = grid.cells()[0], grid.cells()[-1]
    assert all(EVENT_COLUMN in f for f in _cell_inputs(grid, cs_cell, frames, check=True)[1])
    fg_frames = _cell_inputs(grid, fg_cell, frames, check=True)[1]
    assert len(fg_frames) == 2 and all(EVENT_COLUMN not in f and "status" in f for f in fg_frames)


SECTION = ('[sensitivity]\npriors = ["neutral"]\nfamilies = ["CoxPH", "FineGray"]\ndraws = 1000\ntune = 500\n'
           'chains = 2\n')


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """`bayescrt sensitivity` on a copy of the SYNTHETIC example with a [sensitivity] section: two covariate sets,
    the neutral prior, Cox (the cause-specific hazard of HF hospitalisation, death censoring it) and Fine-Gray (its
    subdistribution hazard)."""
    tmp = tmp_path_factory.mktemp("competing_grid")
    spec = _spec(tmp, SECTION)
    rc = main(["sensitivity", str(spec), "--out", str(tmp / "out"), "--no-progress"])
    return rc, spec, tmp / "out"


@pytest.mark.mcmc
def test_each_cell_is_lifelines_cause_specific_cox_fit(grid_run, capsys):
    """With 1,500 rows and a weakly informative prior, the posterior mean of the log-HR lies within 0.2 posterior
    SD of the partial-likelihood MLE (Bernstein-von Mises; Monte Carlo error about 0.03 SD at this ESS), and the
    posterior SD within 10% of lifelines' standard error."""
    from lifelines import CoxPHFitter

    rc, spec, out = grid_run
    assert rc == 0
    tab = pd.read_csv(out / "table.csv", index_col="cell")
    assert len(tab) == 4 and tab["diagnostics_ok"].all() and (tab["cause"] == "hf_hospitalisation").all()
    events = int((DATA.status == 1).sum())
    assert (tab["n_events"] == events).all() and (tab["n"] == len(DATA)).all()
    cox = tab[tab["family"] == "CoxPH"]
    assert (cox["estimand"] == "cause-specific HR").all()
    for name, cols in SETS.items():
        row = cox[cox["covariate_set"] == name].iloc[0]
        frame = DATA[["years", "upgrade", *cols]].assign(hf=(DATA.status == 1).astype(int))
        ref = CoxPHFitter().fit(frame, "years", "hf")
        mle, se = ref.params_["upgrade"], ref.standard_errors_["upgrade"]
        assert abs(row["log_hr_mean"] - mle) < 0.2 * row["log_hr_sd"], (name, row["log_hr_mean"], mle)
        assert abs(row["log_hr_sd"] / se - 1) < 0.1, (name, row["log_hr_sd"], se)


@pytest.mark.mcmc
def test_each_fine_gray_cell_is_the_frequentist_fine_gray_fit(grid_run):
    """The Fine-Gray cells: posterior mean within 0.15 posterior SD of the MLE of the same weighted likelihood (as
    tests/test_finegray.py holds a direct fit), the SD within 15% of its SE."""
    from bayescrt.families.finegray import finegray_mle

    rc, _, out = grid_run
    tab = pd.read_csv(out / "table.csv", index_col="cell")
    fg = tab[tab["family"] == "FineGray"]
    assert len(fg) == 2 and (fg["estimand"] == "subdistribution HR").all() and fg["diagnostics_ok"].all()
    for name, cols in SETS.items():
        row = fg[fg["covariate_set"] == name].iloc[0]
        data = bc.FineGray().prepare(DATA, time="years", event="status", cause="hf_hospitalisation", causes=CAUSES,
                                     covariates=["upgrade", *cols])
        ref = finegray_mle(data)
        mle, se = ref["coef"]["upgrade"], ref["se"]["upgrade"]
        assert abs(row["log_hr_mean"] - mle) < 0.15 * row["log_hr_sd"], (name, row["log_hr_mean"], mle)
        assert abs(row["log_hr_sd"] / se - 1) < 0.15, (name, row["log_hr_sd"], se)


@pytest.mark.mcmc
def test_the_printed_table_and_the_plot_say_synthetic_and_which_hr_and_a_rerun_resumes(grid_run, capsys):
    rc, spec, out = grid_run
    assert rc == 0 and (out / "forest.png").stat().st_size > 10_000
    assert main(["sensitivity", str(spec), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("SYNTHETIC DATA")
    assert ("HR of 'upgrade' for 'hf_hospitalisation', cause-specific or subdistribution per cell (death censors it "
            "in the cause-specific cells)") in printed
    assert "0 cells fitted, 4 kept from before" in printed
    assert "Subdistribution (Fine-Gray) cells" in printed and " SHR " in printed and " CS " in printed
    from bayescrt.sensitivity import run as run_grid

    res = run_grid(str(spec), out, progress=False)
    ax = res.plot()
    assert "cause-specific or subdistribution per cell" in ax.get_title()
    assert "SYNTHETIC" in ax.get_title()


def test_a_spec_data_option_the_cells_do_not_take_is_refused_naming_the_key(tmp_path):
    path = _spec(tmp_path, "[sensitivity]\npriors = [\"neutral\"]\n")
    path.write_text(path.read_text().replace('file = "example_competing.csv"\n',
                                             'file = "example_competing.csv"\nmissing = "drop"\n'))
    with pytest.raises(bc.SpecError, match=r"\[data\]: a sensitivity grid does not pass missing = \"drop\" \(drop the "
                                           r"incomplete rows from the extract"):
        run(str(path), tmp_path / "out", progress=False)


@pytest.mark.mcmc
def test_the_multiverse_of_a_competing_risks_spec_is_of_cause_specific_hrs(tmp_path, capsys):
    """Every cell is the cause-specific Cox fit of HF hospitalisation: the full set's posterior mean within 0.2
    posterior SD of lifelines' MLE (as above), and the folder and the printout say what the HRs are."""
    from lifelines import CoxPHFitter

    path = _spec(tmp_path, '[multiverse]\nalways = ["age"]\ncandidates = ["male", "af"]\ndraws = 1000\ntune = 500\n'
                           'chains = 2\n')
    path.write_text(path.read_text().replace('[model]\nfamily = "WeibullPH"', '[model]\nfamily = "CoxPH"'))
    out = tmp_path / "out"
    assert main(["multiverse", str(path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    said = "every HR here is the cause-specific HR of 'hf_hospitalisation' (death censors it)"
    assert printed.startswith("SYNTHETIC DATA") and said in printed and said in (out / "README.txt").read_text()
    tab = pd.read_csv(out / "table.csv", index_col="cell")
    assert len(tab) == 4 and tab["diagnostics_ok"].all()
    frame = DATA[["years", "upgrade", "age", "male", "af"]].assign(hf=(DATA.status == 1).astype(int))
    mle = CoxPHFitter().fit(frame, "years", "hf").params_["upgrade"]
    full = tab.loc["cell_11"]
    assert abs(full["log_hr_mean"] - mle) < 0.2 * full["log_hr_sd"], (full["log_hr_mean"], mle)
    ps = pd.read_csv(out / "propensity.csv", index_col="estimand")
    assert ps["diagnostics_ok"].all()
