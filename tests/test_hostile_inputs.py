"""Hostile input, table-driven: every row is one thing a user can get wrong.

Each row names the part of the contract it checks (the items of "nothing wrong passes silently": 2 data,
3 compare, 4 simulator and spec cohorts, 5 saved fits, 6 grid cells, 7 paths, 8 the command line,
9 meta-analysis), builds its inputs, and says what must happen: the exception or warning type and a
fragment of its message, or for the command line an exit status and one line on stderr that contains the
fragment. After every row the caller's objects (DataFrames, dicts, lists, arrays passed in) must be
exactly as they were. None of these rows samples: every refusal comes before any MCMC.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescrt as bc
from bayescrt import cli, validation
from bayescrt.analysis import simulate_cohort
from bayescrt.fit import assemble
from bayescrt.sensitivity import Grid, SensitivityResult
from bayescrt.spec import load_spec
from seeds import seed


@dataclass(frozen=True)
class Case:
    item: int                 # 2-9, as above
    name: str
    make: Callable            # make(tmp_path) -> (function, args tuple, kwargs dict)
    expect: type | int        # an exception or warning class; an int is a CLI exit status
    match: str                # regular expression searched in the message (CLI: in stderr)


# ---------------------------------------------------------------------------------------------- inputs
def frame(n: int = 40, k: int = 0) -> pd.DataFrame:
    """A small valid survival frame: time, event, a 0/1 exposure, age, sex, a categorical."""
    rng = np.random.default_rng(seed(k))
    return pd.DataFrame({
        "t": np.round(rng.exponential(5, n), 2) + 0.1,
        "d": (np.arange(n) % 3 != 0).astype(int),
        "upgrade": np.arange(n) % 2,
        "age": np.round(rng.normal(70, 8, n), 1),
        "male": (np.arange(n) % 5 < 3).astype(int),
        "nyha": pd.Categorical(np.array(["II", "III", "IV"])[np.arange(n) % 3]),
    })


def with_cols(**cols) -> pd.DataFrame:
    df = frame()
    for name, values in cols.items():
        df[name] = values
    return df


def prep(df, **kw):
    """Validate like every estimator does, without sampling."""
    args = {"time": "t", "event": "d", "covariates": ["upgrade", "age"], **kw}
    return bc.CoxPH().prepare, (df,), args


def fit_call(df, **kw):
    """A full fit call whose arguments are refused before anything is sampled."""
    args = {"time": "t", "event": "d", "covariates": ["upgrade", "age"], "draws": 10, "tune": 10, "chains": 1,
            "progress": False, **kw}
    return bc.CoxPH().fit, (df,), args


def draws(shape=(4000,), k: int = 1) -> np.ndarray:
    return np.random.default_rng(seed(k)).normal(0.1, 0.05, shape)


def labelled_draws(covs=("upgrade", "age", "male")) -> xr.DataArray:
    x = draws((4, 1000, len(covs)))
    return xr.DataArray(x, dims=("chain", "draw", "covariate"), coords={"covariate": list(covs)})


PUBLISHED = {"hr": 1.13, "lower": 1.05, "upper": 1.21}


def sim_kwargs(**changes) -> dict:
    """The shipped spec's simulator arguments with some changed."""
    return {**load_spec("danish").simulation_kwargs(), **changes}


def sim_covariate(name: str, definition: dict) -> dict:
    kw = sim_kwargs()
    return {**kw, "covariates": {**kw["covariates"], name: definition}}


def spec_file(tmp: Path, old: str, new: str, name: str = "spec.toml") -> Path:
    """A copy of models/danish_registry.toml with one piece of text replaced."""
    text = load_spec("danish").path.read_text()
    assert old in text, old
    path = tmp / name
    path.write_text(text.replace(old, new, 1))
    return path


def sim_row(name: str, match: str, **changes) -> Case:
    return Case(4, name, lambda tmp: (bc.simulate, (), sim_kwargs(**changes)), bc.SpecError, match)


def spec_row(item: int, name: str, old: str, new: str, match: str) -> Case:
    return Case(item, name, lambda tmp: (load_spec, (spec_file(tmp, old, new),), {}), bc.SpecError, match)


def grid(**kw) -> Callable:
    args = dict(time="t", event="d", exposure="upgrade", covariate_sets={"minimal": ["age"]}, priors=["neutral"],
                draws=10, tune=10, chains=1, random_seed=seed(1))
    return lambda tmp: (Grid, (), {**args, **kw})


@functools.cache
def _fit_tree() -> xr.DataTree:
    """A fit made from independent draws (no sampling), with every group a real fit has."""
    rng = np.random.default_rng(seed(2))
    C, D, covs, n = 4, 500, ["upgrade", "age"], 30
    chain, draw = np.arange(C), np.arange(D)
    post = xr.Dataset({"log_hr": (("chain", "draw", "covariate"), rng.normal(0.1, 0.05, (C, D, 2)))},
                      coords={"chain": chain, "draw": draw, "covariate": covs})
    stats = xr.Dataset({"energy": (("chain", "draw"), rng.normal(size=(C, D))),
                        "diverging": (("chain", "draw"), np.zeros((C, D), bool))},
                       coords={"chain": chain, "draw": draw})
    loglik = xr.Dataset({"events": (("chain", "draw", "event"), rng.normal(-3, 0.1, (C, D, n)))},
                        coords={"chain": chain, "draw": draw, "event": np.arange(n)})
    logprior = xr.Dataset({"log_hr": (("chain", "draw"), rng.normal(-2, 0.1, (C, D)))},
                          coords={"chain": chain, "draw": draw})
    observed = xr.Dataset({"time": ("row", rng.exponential(5, n)), "event": ("row", np.ones(n, int))})
    constant = xr.Dataset({"X": (("row", "covariate"), rng.normal(size=(n, 2)))}, coords={"covariate": covs})
    fit = assemble(xr.DataTree.from_dict({"posterior": post, "sample_stats": stats}), {"sampler": "test"},
                   model={"family": "CoxPH", "covariates": covs, "data_description": "test draws"}, priors=[],
                   data_hash="0" * 64, extra_groups={"log_likelihood": loglik, "log_prior": logprior,
                                                     "observed_data": observed, "constant_data": constant})
    return fit.idata


def fit_copy() -> bc.Fit:
    return bc.Fit(_fit_tree().copy(deep=True))


def saved_fit(tmp: Path, name: str = "fit.nc") -> Path:
    return fit_copy().save(tmp / name)


def edited_in_memory(tmp: Path, edit: Callable) -> tuple:
    """A fit edited after it was made, saved with Fit.save, then loaded."""
    fit = fit_copy()
    edit(fit.idata)
    return bc.load, (fit.save(tmp / "edited.nc"),), {}


def edited_on_disk(tmp: Path, edit: Callable) -> tuple:
    """A saved fit rewritten by another program (xarray) after an edit."""
    path = saved_fit(tmp)
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    edit(tree)
    other = tmp / "rewritten.nc"
    tree.to_netcdf(other, engine="h5netcdf")
    return bc.load, (other,), {}


def flipped_bytes(tmp: Path, where: float) -> tuple:
    path = saved_fit(tmp)
    raw = bytearray(path.read_bytes())
    i = int(where * (len(raw) - 1))
    raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return bc.load, (path,), {}


def readonly_folder(tmp: Path) -> Path:
    """A folder nobody can write to: permission bits for a normal user; sysfs for root, who ignores them."""
    if os.geteuid() == 0:
        return Path("/sys")
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def run_cli(*argv) -> int:
    """The command line as a user runs it: its exit status (argparse's own exits included)."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def cli_row(name: str, argv: Callable, match: str, status: int = 2) -> Case:
    return Case(8, name, lambda tmp: (run_cli, tuple(argv(tmp)), {}), status, match)


def a_file(tmp: Path) -> Path:
    (tmp / "a_file").write_text("not a folder")
    return tmp / "a_file"


def studies(**cols) -> pd.DataFrame:
    df = pd.DataFrame({"study": ["a", "b", "c"], "loghr": [0.1, 0.05, 0.2], "se": [0.05, 0.1, 0.08]})
    for name, values in cols.items():
        df[name] = values
    return df


def counts(**cols) -> pd.DataFrame:
    df = pd.DataFrame({"study": ["a", "b"], "e1": [10, 12], "n1": [50, 60], "e0": [8, 9], "n0": [50, 55]})
    for name, values in cols.items():
        df[name] = values
    return df


def meta_fit(df, **kw):
    return bc.MetaAnalysis().fit, (df,), {"estimate": "loghr", "se": "se", "study": "study", "draws": 10,
                                          "tune": 10, "chains": 1, "progress": False, **kw}


NO_NON_FINITE = r"\A(?![\s\S]*non-finite)[\s\S]*"  # the message never also calls a missing value "non-finite"

# ---------------------------------------------------------------------------------------------- item 2: data
ITEM2: list[Case] = [
    Case(2, "dates-as-text-covariate", lambda tmp: prep(with_cols(
        age=[str(d.date()) for d in pd.date_range("2020-01-01", periods=len(frame()))])),
         bc.DataError, r"covariate 'age' is text with 40 distinct values \('2020-01-01'.*A date\? make it a number"),
    Case(2, "identifier-covariate", lambda tmp: prep(with_cols(age=[f"P{k:04d}" for k in range(len(frame()))])),
         bc.DataError, r"covariate 'age' is text with 40 distinct values.*an identifier\? leave it out.*astype\('category'\)"),
    Case(2, "numbers-stored-as-text", lambda tmp: prep(with_cols(age=frame()["age"].astype(str))),
         bc.DataError, r"covariate 'age' holds numbers stored as text \(row 0: '[\d.]+'.*pd\.to_numeric\(df\['age'\]\)"),
    Case(2, "time-as-text", lambda tmp: prep(with_cols(t=frame()["t"].astype(str))),
         bc.DataError, r"time column 't' holds numbers stored as text .*pd\.to_numeric\(df\['t'\]\)"),
    Case(2, "numbers-and-text-mixed", lambda tmp: prep(with_cols(age=[70.0, "old"] * 20)),
         bc.DataError, r"covariate 'age' (mixes numbers .* and text|holds numbers stored as text)"),
    Case(2, "timestamps-in-object-column", lambda tmp: prep(with_cols(
        age=pd.Series(list(pd.date_range("2020-01-01", periods=40)), dtype=object))),
         bc.DataError, r"covariate 'age' holds dates in an object column \(row 0: '2020-01-01.*pd\.to_datetime"),
    Case(2, "timedeltas-in-object-column", lambda tmp: prep(with_cols(
        age=pd.Series(list(pd.to_timedelta(np.arange(1, 41), unit="D")), dtype=object))),
         bc.DataError, r"covariate 'age' holds durations \(timedeltas\) in an object column .*pd\.to_timedelta"),
    Case(2, "timedelta-time-column", lambda tmp: prep(with_cols(t=pd.to_timedelta(frame()["t"], unit="D"))),
         bc.DataError, r"time column 't' holds durations as timedeltas .*df\['t'\]\.dt\.days / 365\.25"),
    Case(2, "datetime-time-column", lambda tmp: prep(with_cols(t=pd.date_range("2020-01-01", periods=40))),
         bc.DataError, r"time column 't' holds dates .*convert them to a duration or number"),
    Case(2, "complex-covariate", lambda tmp: prep(with_cols(age=frame()["age"] + 1j)),
         bc.DataError, r"covariate 'age' holds complex numbers \(row 0: .*\); a covariate, time or weight is real"),
    Case(2, "complex-time", lambda tmp: prep(with_cols(t=frame()["t"] * (1 + 0.5j))),
         bc.DataError, r"time column 't' holds complex numbers"),
    Case(2, "complex-in-object-column", lambda tmp: prep(with_cols(age=pd.Series([1 + 2j] * 40, dtype=object))),
         bc.DataError, r"covariate 'age' holds complex numbers"),
    Case(2, "objects-neither-numbers-nor-text", lambda tmp: prep(with_cols(age=pd.Series([[1]] * 40, dtype=object))),
         bc.DataError, r"covariate 'age' holds values that are neither numbers nor text .*types found: \['list'\]"),
    Case(2, "event-as-text", lambda tmp: prep(with_cols(d=frame()["d"].astype(str))),
         bc.DataError, r"event column 'd' holds numbers stored as text.*code 1 \(or True\) for an observed event"),
    Case(2, "duplicated-column-name", lambda tmp: prep(pd.concat([frame(), frame()[["age"]]], axis=1)),
         bc.DataError, r"column 'age' appears 2 times in the DataFrame.*df\.columns\.duplicated\(\)"),
    Case(2, "covariates-none", lambda tmp: prep(frame(), covariates=None),
         bc.DataError, r"covariates=None must be a list of column names, e\.g\. covariates=\['age', 'male'\]"),
    Case(2, "covariates-a-set", lambda tmp: prep(frame(), covariates={"age", "upgrade"}),
         bc.DataError, r"must be a list of column names.*a set has no order"),
    Case(2, "covariates-nested", lambda tmp: prep(frame(), covariates=[["age", "upgrade"]]),
         bc.DataError, r"covariates\[0\] = \['age', 'upgrade'\] is not a column name"),
    Case(2, "collinear-multiple", lambda tmp: prep(with_cols(age2=2 * frame()["age"]),
                                                    covariates=["upgrade", "age", "age2"]),
         bc.DataError, r"covariates \['age', 'age2'\] are exactly collinear.*drop one of them"),
    Case(2, "collinear-complement", lambda tmp: prep(with_cols(fin=frame()["male"], nofin=1 - frame()["male"]),
                                                      covariates=["upgrade", "fin", "nofin"]),
         bc.DataError, r"covariates \['fin', 'nofin'\] are exactly collinear"),
    Case(2, "dummy-trap", lambda tmp: prep(with_cols(**{f"nyha_{lv}": (frame()["nyha"] == lv).astype(int)
                                                         for lv in ("II", "III", "IV")}),
                                           covariates=["upgrade", "nyha_II", "nyha_III", "nyha_IV"]),
         bc.DataError, r"covariates \['nyha_II', 'nyha_III', 'nyha_IV'\] are exactly collinear"),
    Case(2, "collinear-with-the-exposure", lambda tmp: prep(with_cols(denovo=1 - frame()["upgrade"]),
                                                             covariates=["upgrade", "age", "denovo"]),
         bc.DataError, r"covariates \['upgrade', 'denovo'\] are exactly collinear"),
    Case(2, "constant-within-strata", lambda tmp: prep(with_cols(ward=frame()["male"]), covariates=["upgrade", "male"],
                                                        strata="ward"),
         bc.DataError, r"covariate 'male' is constant within every stratum.*drop it from covariates or from strata"),
    Case(2, "stratum-per-row", lambda tmp: prep(with_cols(pid=np.arange(40)), strata="pid"),
         bc.DataError, r"strata column 'pid' puts the 40 rows into 40 strata, one per row: no event has anyone else"),
    Case(2, "covariate-named-default", lambda tmp: prep(with_cols(default=frame()["male"]),
                                                         covariates=["upgrade", "default"]),
         bc.DataError, r"covariate 'default' has the name of the priors' reserved key 'default'.*rename the column"),
    Case(2, "cluster-named-like-the-sd-row", lambda tmp: prep(with_cols(site=["SD", "A"] * 20), cluster="site"),
         bc.DataError, r"cluster column 'site' has a cluster called 'SD'"),
    Case(2, "time-none", lambda tmp: prep(frame(), time=None),
         bc.DataError, r"time=None: name the time column"),
    Case(2, "reference-not-a-dict", lambda tmp: prep(frame(), covariates=["upgrade", "nyha"], reference="II"),
         bc.DataError, r"reference='II' must be a dict of categorical column -> reference level"),
    Case(2, "missing-value-reported-once", lambda tmp: prep(with_cols(age=[np.nan] + list(frame()["age"][1:]))),
         bc.DataError, NO_NON_FINITE + r"missing values in 'age' \(1 rows\).*Missing in 'age': row 0"),
    Case(2, "infinite-covariate", lambda tmp: prep(with_cols(age=[np.inf] + list(frame()["age"][1:]))),
         bc.DataError, r"covariate 'age' has 1 infinite values"),
    Case(2, "multiindex-columns", lambda tmp: prep(frame().set_axis(
        pd.MultiIndex.from_tuples([(c, "x") for c in frame().columns]), axis=1)),
         bc.DataError, r"the DataFrame's columns are a MultiIndex .*flatten them first"),
    Case(2, "column-in-two-roles", lambda tmp: prep(frame(), weights="t"),
         bc.DataError, r"column 't' is used both as the time and as the weights column; a column can have one role"),
    Case(2, "event-as-strata", lambda tmp: prep(frame(), strata="d"),
         bc.DataError, r"column 'd' is used both as the event and as the strata column"),
    Case(2, "series-as-a-column-name", lambda tmp: prep(frame(), time=frame()["t"]),
         bc.DataError, r"time=<Series of length 40> must be one column name"),
    Case(2, "nullable-bool-event-with-na", lambda tmp: prep(with_cols(
        d=pd.array([True, False, pd.NA, True] * 10, dtype="boolean"))),
         bc.DataError, r"missing values in 'd' \(10 rows\).*Missing in 'd': row 2"),
    Case(2, "nullable-float-with-na", lambda tmp: prep(with_cols(
        age=pd.array([70.0, pd.NA] + [71.0] * 38, dtype="Float64"))),
         bc.DataError, NO_NON_FINITE + r"missing values in 'age' \(1 rows\)"),
    Case(2, "integers-beyond-2-53", lambda tmp: prep(with_cols(t=np.int64(2**62) + np.arange(40))),
         bc.DataError, r"time column 't' has 40 integers beyond 2\*\*53 .*lose precision"),
    Case(2, "lists-as-strata", lambda tmp: prep(with_cols(s=pd.Series([[1], [2]] * 20, dtype=object)), strata="s"),
         bc.DataError, r"strata column 's' holds values that cannot label groups \(row 0: \[1\]"),
    Case(2, "bools-and-numbers-as-strata", lambda tmp: prep(with_cols(s=pd.Series([1, True] * 20, dtype=object)),
                                                             strata="s"),
         bc.DataError, r"strata column 's' mixes bools and numbers, and True would be the same group as 1"),
    Case(2, "strata-that-read-the-same", lambda tmp: prep(with_cols(s=pd.Series([1, "1"] * 20, dtype=object)),
                                                           strata="s"),
         bc.DataError, r"strata column 's' has values that read the same as text \(\['1'\]\)"),
    Case(2, "bools-and-numbers-as-levels", lambda tmp: prep(with_cols(g=pd.Series([0, 1, True, 0] * 10, dtype=object)),
                                                             covariates=["upgrade", "g"]),
         bc.DataError, r"covariate 'g' mixes bools .* and numbers .* True would count as 1"),
    Case(2, "reference-of-a-bool-categorical", lambda tmp: prep(with_cols(g=pd.Categorical(np.arange(40) % 4 < 2)),
                                                                 covariates=["upgrade", "g"], reference={"g": "no"}),
         bc.DataError, r"reference level 'no' for 'g' is not among its levels \[False, True\]"),
    Case(2, "reference-true-for-level-1", lambda tmp: prep(with_cols(g=pd.Categorical(np.arange(40) % 3)),
                                                            covariates=["upgrade", "g"], reference={"g": True}),
         bc.DataError, r"reference level True for 'g' is not among its levels \[0, 1, 2\]"),
    Case(2, "weights-that-overflow", lambda tmp: prep(with_cols(w=np.full(40, 1e308)), weights="w"),
         bc.DataError, r"the weighted mean or SD of covariates \['upgrade', 'age'\] overflows .*divide the weights"),
    Case(2, "covariate-constant-up-to-rounding", lambda tmp: prep(with_cols(age=1e10 + np.arange(40) * 1e-6)),
         bc.DataError, r"covariate 'age' is constant up to rounding"),
    Case(2, "pwe-cuts-as-text", lambda tmp: (bc.PiecewiseExponentialPH, (), {"cuts": "1,2"}),
         bc.SpecError, r"cuts='1,2': give interior cut points as a list of numbers"),
    Case(2, "pwe-cuts-with-a-bool", lambda tmp: (bc.PiecewiseExponentialPH, (), {"cuts": [True, 2]}),
         bc.SpecError, r"cuts=\[True, 2\]: give interior cut points as a list of numbers"),
    Case(2, "pwe-rw-order-float", lambda tmp: (bc.PiecewiseExponentialPH, (), {"rw_order": 2.0}),
         bc.SpecError, r"rw_order=2\.0: choose 1 .* or 2"),
    Case(2, "seed-too-large", lambda tmp: fit_call(frame(), random_seed=2**32),
         bc.SpecError, r"random_seed=4294967296 is out of range: it must be an integer in \[0, 4294967295\]"),
    Case(2, "seed-negative", lambda tmp: fit_call(frame(), random_seed=np.int64(-1)),
         bc.SpecError, r"random_seed=-1 is out of range"),
    Case(2, "draws-a-float", lambda tmp: fit_call(frame(), draws=500.0),
         bc.SpecError, r"draws=500\.0 must be an integer >= 1, e\.g\. draws=500"),
    Case(2, "chains-a-string", lambda tmp: fit_call(frame(), chains="4"),
         bc.SpecError, r"chains='4' must be an integer >= 1"),
    Case(2, "centered-a-string", lambda tmp: (bc.CoxPH, (), {"centered": "no"}),
         bc.SpecError, r"centered='no' must be True or False"),
    Case(2, "nan-rhat-fails-its-gate", lambda tmp: (assemble, (xr.DataTree.from_dict({
        "posterior": xr.Dataset({"log_hr": (("chain", "draw", "covariate"), np.ones((4, 200, 1)))},
                                coords={"covariate": ["x"]}),
        "sample_stats": xr.Dataset({"energy": (("chain", "draw"), draws((4, 200))),
                                    "diverging": (("chain", "draw"), np.zeros((4, 200), bool))})}),
        {"sampler": "test"}), {"model": {"family": "CoxPH", "covariates": ["x"], "data_description": "constant"},
                               "priors": [], "data_hash": "0" * 64, "extra_groups": {}}),
         bc.DiagnosticsWarning, r"FAILED its convergence diagnostics.*R-hat"),
]

# ---------------------------------------------------------------------------------------------- item 3: compare
ITEM3: list[Case] = [
    Case(3, "draws-of-several-covariates-as-array", lambda tmp: (bc.compare, (draws((4000, 3)), PUBLISHED), {}),
         bc.SpecError, r"posterior has shape \(4000, 3\): a 2-D array is either draws x covariates, which compare\(\) would pool"),
    Case(3, "draws-of-several-covariates-labelled", lambda tmp: (bc.compare, (labelled_draws(), PUBLISHED), {}),
         bc.SpecError, r"posterior holds draws of 3 covariates \['upgrade', 'age', 'male'\]; pick one with covariate="),
    Case(3, "covariate-not-among-the-draws", lambda tmp: (bc.compare, (labelled_draws(), PUBLISHED),
                                                         {"covariate": "upgrad"}),
         bc.SpecError, r"covariate='upgrad' is not among the draws' covariates\. Did you mean 'upgrade'\?"),
    Case(3, "covariate-for-unlabelled-draws", lambda tmp: (bc.compare, (draws(), PUBLISHED), {"covariate": "upgrade"}),
         bc.SpecError, r"covariate='upgrade' picks a covariate of a Fit or of draws with a 'covariate' dimension"),
    Case(3, "constant-draws", lambda tmp: (bc.compare, (np.full(4000, 0.1), PUBLISHED), {}),
         bc.SpecError, r"all 4000 draws equal 0\.1; a constant is not a posterior distribution"),
    Case(3, "too-few-draws", lambda tmp: (bc.compare, (draws((50,)), PUBLISHED), {}),
         bc.SpecError, r"expected at least 100 finite draws of a log-HR, got 50"),
    Case(3, "nan-draws", lambda tmp: (bc.compare, (np.r_[draws(), np.nan], PUBLISHED), {}),
         bc.SpecError, r"got 4001 \(1 not finite\)"),
    Case(3, "prob-above-one", lambda tmp: (bc.compare, (draws(), PUBLISHED), {"prob": 1.5}),
         bc.SpecError, r"prob=1\.5 is out of range: it must be in \(0, 1\)"),
    Case(3, "prob-zero", lambda tmp: (bc.compare, (draws(), PUBLISHED), {"prob": 0}),
         bc.SpecError, r"prob=0 is out of range: it must be in \(0, 1\)"),
    Case(3, "prob-nan", lambda tmp: (bc.compare, (draws(), PUBLISHED), {"prob": math.nan}),
         bc.SpecError, r"prob=nan must be a finite number"),
    Case(3, "published-unknown-key", lambda tmp: (bc.compare, (draws(), {**PUBLISHED, "lwr": 1.0}), {}),
         bc.SpecError, r"published: unknown key 'lwr'\. Did you mean 'lower'\?"),
    Case(3, "published-missing-key", lambda tmp: (bc.compare, (draws(), {"hr": 1.13, "lower": 1.05}), {}),
         bc.SpecError, r"published: missing key\(s\) \['upper'\]"),
    Case(3, "published-text-numbers", lambda tmp: (bc.compare, (draws(), {**PUBLISHED, "hr": "1.13"}), {}),
         bc.SpecError, r"hr, lower, upper and level must be numbers"),
    Case(3, "published-infinite-bound", lambda tmp: (bc.compare, (draws(), {**PUBLISHED, "upper": math.inf}), {}),
         bc.SpecError, r"hr, lower, upper and level must be finite"),
    Case(3, "draws-as-text", lambda tmp: (bc.compare, ([str(v) for v in draws()], PUBLISHED), {}),
         bc.SpecError, r"expected real-valued draws of a log-HR, got list of dtype <U"),
    Case(3, "draws-complex", lambda tmp: (bc.compare, (draws() + 0j, PUBLISHED), {}),
         bc.SpecError, r"expected real-valued draws of a log-HR, got ndarray of dtype complex128"),
    Case(3, "chains-by-draws", lambda tmp: (bc.compare, (draws((4, 1000)), PUBLISHED), {}),
         bc.SpecError, r"or chains x draws of one log-HR \(pass it \.ravel\(\)'ed"),
    Case(3, "published-ci-not-around-hr", lambda tmp: (bc.compare, (draws(), {**PUBLISHED, "hr": 1.3}), {}),
         bc.SpecError, r"need 0 < lower < hr < upper"),
]

# ---------------------------------------------------------------------------------------------- item 4: simulator, spec cohorts
# simulate() rows start from the shipped spec's own arguments with one thing wrong; spec rows load a copy of
# models/danish_registry.toml with one change.
ITEM4: list[Case] = [
    Case(4, "simulate-covariate-key-typo", lambda tmp: (bc.simulate, (), sim_covariate(
        "af", {"kind": "binary", "prevalance": [0.575, 0.334]})),
         bc.SpecError, r"covariate 'af' \(binary\): unknown key 'prevalance'\. Did you mean 'prevalence'\?"),
    sim_row("simulate-baseline-key-typo", r"baseline \(weibull\): unknown key 'scale'\. Did you mean 'scale_years'\?",
            baseline={"kind": "weibull", "shape": 1.35, "scale": 16.0}),
    sim_row("simulate-accrual-key-typo", r"accrual: unknown key 'trnd'\. Did you mean 'trend'\?",
            accrual={"start": "2000-01-01", "end": "2018-08-31", "trnd": 1.5}),
    Case(4, "simulate-covariate-named-like-the-exposure", lambda tmp: (bc.simulate, (), sim_covariate(
        "upgrade", {"kind": "binary", "prevalence": [0.5, 0.5]})),
         bc.SpecError, r"covariate named 'upgrade' collides with the exposure column \(exposure='upgrade'\)"),
    Case(4, "simulate-covariate-named-like-the-time", lambda tmp: (bc.simulate, (), sim_covariate(
        "years", {"kind": "continuous", "median": [4.0, 4.0], "spread": 1.0})),
         bc.SpecError, r"covariate named 'years' collides with the time column \(time='years'\)"),
    Case(4, "simulate-covariate-named-like-the-event", lambda tmp: (bc.simulate, (), sim_covariate(
        "died", {"kind": "binary", "prevalence": [0.5, 0.5]})),
         bc.SpecError, r"covariate named 'died' collides with the event column \(event='died'\)"),
    Case(4, "simulate-covariate-named-implant-date", lambda tmp: (bc.simulate, (), sim_covariate(
        "implant_date", {"kind": "binary", "prevalence": [0.5, 0.5]})),
         bc.SpecError, r"covariate named 'implant_date' collides with the column of implant dates"),
    sim_row("simulate-nan-log-hr", r"log_hr\['af'\]=nan must be a finite number",
            log_hr={**sim_kwargs()["log_hr"], "af": math.nan}),
    sim_row("simulate-infinite-exposure-hr", r"exposure_hr=inf must be > 0 and finite", exposure_hr=math.inf),
    sim_row("simulate-nan-weibull-scale", r"baseline scale_years=nan must be > 0 and finite",
            baseline={"kind": "weibull", "shape": 1.35, "scale_years": math.nan}),
    sim_row("simulate-infinite-weibull-shape", r"baseline shape=inf must be > 0 and finite",
            baseline={"kind": "weibull", "shape": math.inf, "scale_years": 16.0}),
    sim_row("simulate-nan-piecewise-rate", r"baseline rates_per_year\[1\]=nan must be > 0 and finite",
            baseline={"kind": "piecewise", "cuts_years": [2.0], "rates_per_year": [0.05, math.nan]}),
    sim_row("simulate-nan-accrual-trend", r"accrual trend=nan must be > 0 and finite",
            accrual={"start": "2000-01-01", "end": "2018-08-31", "trend": math.nan}),
    Case(4, "simulate-nan-spread", lambda tmp: (bc.simulate, (), sim_covariate(
        "age", {**sim_kwargs()["covariates"]["age"], "spread": math.nan})),
         bc.SpecError, r"covariate 'age' spread=nan must be > 0 and finite"),
    Case(4, "simulate-infinite-median", lambda tmp: (bc.simulate, (), sim_covariate(
        "age", {**sim_kwargs()["covariates"]["age"], "median": [71.9, math.inf]})),
         bc.SpecError, r"covariate 'age' median\[1\]=inf must be a finite number"),
    sim_row("simulate-nan-correlation", r"correlation=nan must be a finite number", correlation=math.nan),
    sim_row("simulate-cohort-larger-than-memory",
            r"n=1,000,000,000,000 is too large for the memory available: .*needs about [\d,.]+ GiB",
            n=10**12, n_exposed=2 * 10**11),
    sim_row("simulate-unparseable-date", r"accrual start='2000-02-30' is not a date",
            accrual={"start": "2000-02-30", "end": "2018-08-31"}),
    sim_row("simulate-boolean-cohort-size", r"need integers 0 < n_exposed < n, got n=8880, n_exposed=True",
            n_exposed=True),
    spec_row(4, "spec-covariate-key-typo", '[cohort.covariates.af]\nkind = "binary"\nprevalence',
             '[cohort.covariates.af]\nkind = "binary"\nprevalance',
             r"\[cohort\.covariates\.af\] \(binary\): unknown key 'prevalance'\. Did you mean 'prevalence'\?"),
    Case(4, "spec-without-cohort-simulated", lambda tmp: (
        lambda path: simulate_cohort(load_spec(path)), (
            (p := tmp / "spec.toml", p.write_text(
                (t := load_spec("danish").path.read_text())[:t.index("[cohort]")] + t[t.index("[covariate_sets]"):]))[0],
        ), {}),
         bc.SpecError, r"has no \[cohort\] section, so there is no cohort to simulate: add \[cohort\]"),
    spec_row(4, "spec-covariate-named-like-the-exposure", "[cohort.covariates.ckd]",
             '[cohort.covariates.upgrade]\nkind = "binary"\nprevalence = [0.5, 0.5]\n\n[cohort.covariates.ckd]',
             r"\[cohort\.covariates\]: a covariate named 'upgrade' collides with the exposure column"),
    spec_row(4, "spec-cohort-without-n", "\nn = 8880", "\n# n = 8880",
             r"\[cohort\]: missing required key 'n' \(the cohort size\)"),
    spec_row(4, "spec-baseline-without-shape", "\nshape = 1.35", "\n# shape = 1.35",
             r"\[cohort\.baseline\]: missing key 'shape'"),
    spec_row(4, "spec-nan-hazard-ratio", "hr = 1.53", "hr = nan",
             r"\[cohort\.hazard_ratios\.copd\] hr=nan must be > 0 and finite"),
    spec_row(4, "spec-unparseable-date", 'end = "2018-08-31"', 'end = "31.08.2018x"',
             r"\[cohort\.accrual\] end='31\.08\.2018x' is not a date"),
    spec_row(4, "spec-sets-a-calibrated-value", 'end = "2018-08-31"', 'end = "2018-08-31"\ntrend = 1.5',
             r"\[cohort\.accrual\]: 'trend' is calibrated, not set in the spec .*accrual_trend"),
    Case(4, "spec-simulate-free-parameter-typo",
         lambda tmp: (functools.partial(simulate_cohort, load_spec("danish")), (), {"exposure_HR": 1.0}),
         bc.SpecError, r"'exposure_HR' is not a free parameter of its cohort\. Did you mean 'exposure_hr'\?"),
]

# ---------------------------------------------------------------------------------------------- item 5: saved fits
ITEM5: list[Case] = [
    Case(5, "posterior-edited-then-saved", lambda tmp: edited_in_memory(
        tmp, lambda t: t["posterior"].__setitem__("log_hr", t["posterior"]["log_hr"] * 1.01)),
         bc.ResultFileError, r"group posterior changed: these parts do not match the hash recorded"),
    Case(5, "log-likelihood-halved", lambda tmp: edited_in_memory(
        tmp, lambda t: t["log_likelihood"].__setitem__("events", t["log_likelihood"]["events"] / 2)),
         bc.ResultFileError, r"group log_likelihood changed"),
    Case(5, "log-prior-edited", lambda tmp: edited_in_memory(
        tmp, lambda t: t["log_prior"].__setitem__("log_hr", t["log_prior"]["log_hr"] + 1)),
         bc.ResultFileError, r"group log_prior changed"),
    Case(5, "divergence-flag-flipped", lambda tmp: edited_in_memory(
        tmp, lambda t: t["sample_stats"]["diverging"].values.__setitem__((0, 0), True)),
         bc.ResultFileError, r"group sample_stats changed"),
    Case(5, "observed-data-edited", lambda tmp: edited_in_memory(
        tmp, lambda t: t["observed_data"]["time"].values.__setitem__(0, 99.0)),
         bc.ResultFileError, r"group observed_data changed"),
    Case(5, "constant-data-edited", lambda tmp: edited_in_memory(
        tmp, lambda t: t["constant_data"]["X"].values.__setitem__((0, 0), 0.0)),
         bc.ResultFileError, r"group constant_data changed"),
    Case(5, "covariate-relabelled", lambda tmp: edited_in_memory(
        tmp, lambda t: t["posterior"].__setitem__("covariate", ["age", "upgrade"])),
         bc.ResultFileError, r"group posterior changed"),
    Case(5, "group-removed", lambda tmp: edited_on_disk(tmp, lambda t: t.__delitem__("log_likelihood")),
         bc.ResultFileError, r"group log_likelihood removed"),
    Case(5, "group-added", lambda tmp: edited_in_memory(
        tmp, lambda t: t.__setitem__("extra", xr.DataTree(xr.Dataset({"x": ("i", [1.0])})))),
         bc.ResultFileError, r"group extra added"),
    Case(5, "attribute-edited", lambda tmp: edited_in_memory(
        tmp, lambda t: t.attrs.__setitem__("bayescrt_priors", json.dumps([{"dist": "Normal", "sigma": 100}]))),
         bc.ResultFileError, r"attribute bayescrt_priors changed"),
    Case(5, "attribute-removed", lambda tmp: edited_on_disk(tmp, lambda t: t.attrs.pop("data_sha256")),
         bc.ResultFileError, r"attribute data_sha256 removed"),
    Case(5, "rewritten-by-another-program", lambda tmp: edited_on_disk(tmp, lambda t: None),
         bc.ResultFileError, r"does not end with bayescrt's checksum line: it was written by another program"),
    Case(5, "byte-flipped-early", lambda tmp: flipped_bytes(tmp, 0.02),
         bc.ResultFileError, r"its bytes differ from those bayescrt wrote \(the checksum line over the whole file"),
    Case(5, "byte-flipped-middle", lambda tmp: flipped_bytes(tmp, 0.5),
         bc.ResultFileError, r"its bytes differ from those bayescrt wrote \(the checksum line over the whole file"),
    Case(5, "byte-flipped-in-the-checksum-line", lambda tmp: flipped_bytes(tmp, 0.999),
         bc.ResultFileError, r"(its bytes differ from those bayescrt wrote|does not end with bayescrt's checksum line)"),
    Case(5, "truncated", lambda tmp: (bc.load, ((p := saved_fit(tmp), p.write_bytes(p.read_bytes()[:5000]))[0],), {}),
         bc.ResultFileError, r"could not be read as a NetCDF result .*truncated, corrupted or not a bayescrt result"),
    Case(5, "older-format", lambda tmp: edited_on_disk(tmp, lambda t: t.attrs.__setitem__("bayescrt_format", 1)),
         bc.ResultFileError, r"written in result format 1 by an older bayescrt"),
    Case(5, "a-folder", lambda tmp: (bc.load, (tmp,), {}),
         bc.ResultFileError, r"is a folder, not a result file"),
    Case(5, "path-none", lambda tmp: (bc.load, (None,), {}),
         bc.ResultFileError, r"load\(path=None\): give the path of a saved fit"),
    Case(5, "save-to-a-folder", lambda tmp: (fit_copy().save, (tmp,), {}),
         bc.ResultFileError, r"save: '.*' is a folder; give a file path"),
    Case(5, "save-below-a-file", lambda tmp: (fit_copy().save, (a_file(tmp) / "fit.nc",), {}),
         bc.ResultFileError, r"save: the folder '.*a_file' cannot be made"),
    Case(5, "no-file", lambda tmp: (bc.load, (tmp / "none.nc",), {}),
         bc.ResultFileError, r"no result file at"),
    Case(5, "annotating-an-edited-fit", lambda tmp: (
        (f := fit_copy(), f.idata["posterior"]["log_hr"].values.__setitem__((0, 0, 0), 5.0))[0].annotate, (),
        {"synthetic": 1}),
         bc.ResultFileError, r"differs from what was recorded when it was made \(group posterior changed\)"),
]

# ---------------------------------------------------------------------------------------------- item 6: grid cells
ITEM6: list[Case] = [
    Case(6, "set-name-with-the-cell-separator", grid(covariate_sets={"a": ["age"], "a__neutral": ["male"]}),
         bc.SpecError, r"covariate set name 'a__neutral' is not allowed: it contains '__'"),
    Case(6, "prior-name-with-the-cell-separator", grid(priors=["neutral", {"name": "neutral__neutral",
                                                                              "dist": "Normal", "mu": 0, "sigma": 1}]),
         bc.SpecError, r"grid prior name 'neutral__neutral' is not allowed: it contains '__'"),
    Case(6, "names-equal-but-for-case", grid(covariate_sets={"Full": ["age"], "full": ["male"]}),
         bc.SpecError, r"differ only in upper/lower case and would share one file"),
    Case(6, "set-name-a-path", grid(covariate_sets={"../x": ["age"]}),
         bc.SpecError, r"covariate set name '\.\./x' is not allowed.*rename it, e\.g\. 'x'"),
    Case(6, "subset-name-a-path", grid(subsets={"a/b": [["age", ">", 60]]}),
         bc.SpecError, r"subset name 'a/b' is not allowed"),
    Case(6, "family-name-with-spaces", grid(families=[{"family": "CoxPH", "name": "cox breslow", "ties": "breslow"}]),
         bc.SpecError, r"grid family name 'cox breslow' is not allowed"),
    Case(6, "family-option-unknown", grid(families=[{"family": "CoxPH", "tie": "breslow"}]),
         bc.SpecError, r"grid family .*unexpected keyword argument 'tie'"),
    Case(6, "hidden-file-name", grid(covariate_sets={".hidden": ["age"]}),
         bc.SpecError, r"covariate set name '\.hidden' is not allowed"),
    Case(6, "important-hr-nan", grid(important_hr=math.nan),
         bc.SpecError, r"important_hr=nan must be a positive number other than 1"),
    Case(6, "grid-seed-out-of-range", grid(random_seed=2**40),
         bc.SpecError, r"random_seed=1099511627776 is out of range"),
    Case(6, "set-name-not-text", grid(covariate_sets={1: ["age"]}),
         bc.SpecError, r"covariate set name 1 must be text"),
    Case(6, "exposure-a-list", grid(exposure=["upgrade"]),
         bc.SpecError, r"exposure=\['upgrade'\] must be a column name"),
    Case(6, "base-prior-not-a-dict", grid(base_priors={"age": "wide"}),
         bc.SpecError, r"base_priors\['age'\]='wide' must be a prior dict"),
    Case(6, "published-for-an-unknown-set", grid(published={"minimall": PUBLISHED}),
         bc.SpecError, r"published: 'minimall' is not a covariate set of the grid\. Did you mean 'minimal'\?"),
    Case(6, "published-ci-backwards", grid(published={"minimal": {"hr": 1.1, "lower": 1.2, "upper": 1.3}}),
         bc.SpecError, r"published\['minimal'\]: published: need 0 < lower < hr < upper"),
    Case(6, "synthetic-a-string", grid(synthetic="no"),
         bc.SpecError, r"synthetic='no' must be True or False"),
    Case(6, "pwe-options-of-a-grid-family", grid(families=[{"family": "PiecewiseExponentialPH", "cuts": "abc"}]),
         bc.SpecError, r"grid family .*cuts='abc': give interior cut points"),
    Case(6, "subset-value-of-another-type", lambda tmp: (
        bc.sensitivity._cell_inputs, ((g := Grid(**grid(subsets={"old": [["age", ">", "60"]]})(tmp)[2])),
                                      g.cells()[0], frame()), {"check": True}),
         bc.SpecError, r"subset 'old': condition \['age', '>', '60'\] cannot compare column 'age' \(dtype float64\)"),
    Case(6, "subset-bool-for-a-number", lambda tmp: (
        bc.sensitivity._cell_inputs, ((g := Grid(**grid(subsets={"old": [["age", ">", True]]})(tmp)[2])),
                                      g.cells()[0], frame()), {"check": True}),
         bc.SpecError, r"compares a bool with column 'age' of dtype float64, where True would mean 1"),
    Case(6, "fit-of-a-cell-not-in-the-grid", lambda tmp: (
        SensitivityResult(Grid(**grid()(tmp)[2]), tmp, {"cells": {}}).fit, ("CoxPH__full__neutral__all",), {}),
         bc.SpecError, r"cell 'CoxPH__full__neutral__all' is not a cell of this grid\..*Cells: "
                       r"\['CoxPH__minimal__neutral__all'\]"),
    Case(6, "fit-of-a-file-from-another-grid", lambda tmp: (
        (r := SensitivityResult(Grid(**grid()(tmp)[2]), tmp,
                                {"cells": {"CoxPH__minimal__neutral__all": {"fingerprint": "f" * 64}}}),
         (tmp / "cells").mkdir(), saved_fit(tmp / "cells", "CoxPH__minimal__neutral__all.nc"))[0].fit,
        ("CoxPH__minimal__neutral__all",), {}),
         bc.ResultFileError, r"the file is not the fit of this grid's cell 'CoxPH__minimal__neutral__all'"),
]

# ---------------------------------------------------------------------------------------------- item 7: paths
ITEM7: list[Case] = [
    spec_row(7, "spec-name-a-path", 'name = "danish"', 'name = "../x"',
             r"spec name '\.\./x' is not allowed: it may hold only letters, digits"),
    spec_row(7, "spec-covariate-set-a-path", "[covariate_sets]\n", '[covariate_sets]\n"../../etc" = ["age"]\n',
             r"\[covariate_sets\]: covariate set name '\.\./\.\./etc' is not allowed"),
    spec_row(7, "spec-name-absolute", 'name = "danish"', 'name = "/tmp/x"', r"spec name '/tmp/x' is not allowed"),
    Case(7, "run-out-is-a-file", lambda tmp: (bc.sensitivity.run, (Grid(**grid()(tmp)[2]), a_file(tmp)),
                                              {"data": frame()}),
         bc.SpecError, r"out '.*a_file' is an existing file, not a folder"),
    Case(7, "run-out-below-a-file", lambda tmp: (bc.sensitivity.run, (Grid(**grid()(tmp)[2]), a_file(tmp) / "sub"),
                                                 {"data": frame()}),
         bc.SpecError, r"out '.*a_file/sub': '.*a_file' is a file, so no folder can be made there"),
    Case(7, "run-out-not-writable", lambda tmp: (bc.sensitivity.run, (Grid(**grid()(tmp)[2]), readonly_folder(tmp)),
                                                 {"data": frame()}),
         bc.SpecError, r"out '.*': cannot write there"),
    Case(7, "output-file-folder-missing", lambda tmp: (validation.output_file, (tmp / "no" / "x.json", "--json"), {}),
         bc.SpecError, r"--json '.*x\.json': its folder '.*no' does not exist; create it first"),
    Case(7, "output-file-is-a-folder", lambda tmp: (validation.output_file, (tmp, "--json"), {}),
         bc.SpecError, r"--json '.*' is a folder; give a file path"),
    Case(7, "name-reaching-outside", lambda tmp: (validation.inside, (tmp, tmp / ".." / "x.nc"), {}),
         bc.SpecError, r"would be written outside the output folder"),
    Case(7, "link-reaching-outside", lambda tmp: (
        validation.inside, (tmp / "out", ((tmp / "out").mkdir(), (tmp / "out" / "l").symlink_to(tmp),
                                          tmp / "out" / "l" / "x.nc")[2]), {}),
         bc.SpecError, r"would be written outside the output folder"),
]

# ---------------------------------------------------------------------------------------------- item 8: command line
ITEM8: list[Case] = [
    cli_row("no-command", lambda tmp: [], r"^bayescrt: the following arguments are required: command"),
    cli_row("unknown-command", lambda tmp: ["reproduse"], r"invalid choice: 'reproduse'"),
    cli_row("unknown-option", lambda tmp: ["reproduce", "danish", "--drawz", "10"], r"unrecognized arguments: --drawz"),
    cli_row("unknown-spec", lambda tmp: ["reproduce", "danishh", "--no-progress"],
            r"^bayescrt reproduce: no spec named 'danishh'\. Did you mean 'danish'\?"),
    cli_row("spec-not-toml", lambda tmp: ["reproduce", (tmp / "s.toml", (tmp / "s.toml").write_text("name = ["))[0]],
            r"^bayescrt reproduce: '.*s\.toml' is not valid TOML"),
    cli_row("reproduce-draws-zero", lambda tmp: ["reproduce", "danish", "--draws", "0"],
            r"argument --draws: 0 is out of range: give an integer >= 1"),
    cli_row("reproduce-seed-negative", lambda tmp: ["reproduce", "danish", "--seed", "-3"],
            r"argument --seed: -3 is out of range: give an integer in \[0, 4294967295\]"),
    cli_row("reproduce-json-folder-missing", lambda tmp: ["reproduce", "danish", "--json", tmp / "no" / "x.json"],
            r"^bayescrt reproduce: --json '.*x\.json': its folder '.*no' does not exist"),
    cli_row("reproduce-out-is-a-file", lambda tmp: ["reproduce", "danish", "--out", a_file(tmp)],
            r"^bayescrt reproduce: --out '.*a_file' is an existing file, not a folder"),
    cli_row("quickstart-out-is-a-folder", lambda tmp: ["quickstart", "--out", tmp],
            r"^bayescrt quickstart: --out '.*' is a folder"),
    cli_row("quickstart-chains-text", lambda tmp: ["quickstart", "--chains", "four"],
            r"argument --chains: 'four' is not an integer"),
    cli_row("sensitivity-out-is-a-file", lambda tmp: ["sensitivity", "danish", "--out", a_file(tmp)],
            r"^bayescrt sensitivity: --out '.*a_file' is an existing file, not a folder"),
    cli_row("sensitivity-out-missing", lambda tmp: ["sensitivity", "danish"],
            r"the following arguments are required: --out"),
    cli_row("sensitivity-workers-zero", lambda tmp: ["sensitivity", "danish", "--out", tmp, "--workers", "0"],
            r"argument --workers: 0 is out of range"),
    cli_row("reanalyse-draws-too-few", lambda tmp: ["reanalyse", "danish", "--draws", "10"],
            r"argument --draws: 10 is out of range: give an integer in \[1000, 10000000\]"),
    cli_row("reanalyse-correlation-above-one", lambda tmp: ["reanalyse", "danish", "--correlation", "1.5"],
            r"argument --correlation: 1\.5 is out of range: give a finite number in \(-1, 1\)"),
    cli_row("reanalyse-correlation-nan", lambda tmp: ["reanalyse", "danish", "--correlation", "nan"],
            r"argument --correlation: nan is out of range"),
    cli_row("reanalyse-events-negative", lambda tmp: ["reanalyse", "danish", "--events", "-5"],
            r"argument --events: -5 is out of range: give a finite number > 0"),
    cli_row("reanalyse-events-infinite", lambda tmp: ["reanalyse", "danish", "--events", "inf"],
            r"argument --events: inf is out of range"),
    cli_row("reanalyse-unknown-study", lambda tmp: ["reanalyse", "danissh"], r"^bayescrt reanalyse: .*'danissh'"),
    cli_row("calibrate-factor-zero", lambda tmp: ["calibrate", "danish", "--factor", "0"],
            r"argument --factor: 0 is out of range: give an integer in \[1, 100\]"),
    cli_row("reproduce-out-empty", lambda tmp: ["reproduce", "danish", "--out", ""],
            r"^bayescrt reproduce: --out='' must be a folder path"),
    cli_row("reproduce-json-empty", lambda tmp: ["reproduce", "danish", "--json", ""],
            r"^bayescrt reproduce: --json='' must be a file path"),
    cli_row("quickstart-out-empty", lambda tmp: ["quickstart", "--out", ""],
            r"^bayescrt quickstart: --out='' must be a file path"),
    cli_row("reproduce-spec-empty", lambda tmp: ["reproduce", ""],
            r"^bayescrt reproduce: spec '': give a spec name"),
    cli_row("spec-not-utf8", lambda tmp: ["reproduce", (tmp / "s.toml", (tmp / "s.toml").write_bytes(b'name = "x"\n\xff\n'))[0]],
            r"^bayescrt reproduce: '.*s\.toml' is not UTF-8 text \(byte 11"),
    cli_row("published-list-with-an-id", lambda tmp: ["published", "list", "danish"],
            r"^bayescrt published: published list takes no study id \(got 'danish'\)"),
    cli_row("published-show-without-id", lambda tmp: ["published", "show"],
            r"^bayescrt published: published show: name a study id"),
    cli_row("published-unknown-action", lambda tmp: ["published", "lst"], r"invalid choice: 'lst'"),
]

# ---------------------------------------------------------------------------------------------- item 9: meta-analysis
ITEM9: list[Case] = [
    Case(9, "studies-not-a-dataframe", lambda tmp: meta_fit(studies().to_dict("list")),
         bc.DataError, r"the studies must be a pandas DataFrame, got dict"),
    Case(9, "counts-not-a-dataframe", lambda tmp: (bc.MetaAnalysis().fit_counts, (counts().to_numpy(),), {
        "events_exposed": "e1", "n_exposed": "n1", "events_reference": "e0", "n_reference": "n0", "study": "study"}),
         bc.DataError, r"the studies must be a pandas DataFrame, got ndarray"),
    Case(9, "mu-prior-nan", lambda tmp: (bc.MetaAnalysis, (), {"mu_prior": {"mu": math.nan, "sigma": 1}}),
         bc.SpecError, r"mu_prior mu=nan must be a finite number"),
    Case(9, "mu-prior-sigma-infinite", lambda tmp: (bc.MetaAnalysis, (), {"mu_prior": {"mu": 0, "sigma": math.inf}}),
         bc.SpecError, r"mu_prior sigma=inf must be a finite number"),
    Case(9, "mu-prior-sigma-zero", lambda tmp: (bc.MetaAnalysis, (), {"mu_prior": {"mu": 0, "sigma": 0}}),
         bc.SpecError, r"mu_prior sigma=0 is out of range: it must be > 0"),
    Case(9, "mu-prior-unknown-key", lambda tmp: (bc.MetaAnalysis, (), {"mu_prior": {"mean": 0, "sigma": 1}}),
         bc.SpecError, r"mu_prior: unknown key 'mean'\."),
    Case(9, "mu-prior-not-a-dict", lambda tmp: (bc.MetaAnalysis, (), {"mu_prior": [0, 1]}),
         bc.SpecError, r"mu_prior=\[0, 1\]: give a normal prior as a dict"),
    Case(9, "tau-prior-infinite", lambda tmp: (bc.MetaAnalysis, (), {"tau_prior": {"dist": "half-normal",
                                                                                    "sigma": math.inf}}),
         bc.SpecError, r"tau_prior 'half-normal': parameters must be positive finite numbers"),
    Case(9, "se-as-text", lambda tmp: meta_fit(studies(se=["0.05", "0.1", "0.08"])),
         bc.DataError, r"column 'se' must hold numbers, got dtype object \(row 0: '0\.05'.*pd\.to_numeric"),
    Case(9, "se-zero", lambda tmp: meta_fit(studies(se=[0.05, 0.0, 0.08])),
         bc.DataError, r"column 'se': standard errors must be finite and > 0; studies \['b'\]"),
    Case(9, "estimate-missing", lambda tmp: meta_fit(studies(loghr=[0.1, np.nan, 0.2])),
         bc.DataError, r"column 'loghr': 1 missing or infinite value\(s\) \(studies \['b'\]\)"),
    Case(9, "study-labels-repeated", lambda tmp: meta_fit(studies(study=["a", "a", "c"])),
         bc.DataError, r"study labels must be unique; repeated: \['a'\]"),
    Case(9, "counts-as-text", lambda tmp: (bc.MetaAnalysis().fit_counts, (counts(e1=["10", "12"]),), {
        "events_exposed": "e1", "n_exposed": "n1", "events_reference": "e0", "n_reference": "n0", "study": "study"}),
         bc.DataError, r"column 'e1' must hold numbers"),
    Case(9, "study-label-missing", lambda tmp: meta_fit(studies(study=["a", None, "c"])),
         bc.DataError, r"column 'study': 1 missing study label\(s\)"),
    Case(9, "more-events-than-patients", lambda tmp: (bc.MetaAnalysis().fit_counts, (counts(e1=[10, 70]),), {
        "events_exposed": "e1", "n_exposed": "n1", "events_reference": "e0", "n_reference": "n0", "study": "study"}),
         bc.DataError, r"column 'e1': more events than patients in studies \['b'\]"),
]

CASES = ITEM2 + ITEM3 + ITEM4 + ITEM5 + ITEM6 + ITEM7 + ITEM8 + ITEM9


# ---------------------------------------------------------------------------------------------- the checks
def _snapshot(obj):
    return copy.deepcopy(obj)


def _assert_same(before, after, where="argument"):
    """``after`` equals ``before`` exactly: values, dtypes, index, attrs; recursively through containers."""
    if isinstance(before, pd.DataFrame):
        assert isinstance(after, pd.DataFrame), where
        pd.testing.assert_frame_equal(after, before, check_exact=True, obj=where)
        assert after.attrs == before.attrs, f"{where}: attrs changed"
    elif isinstance(before, pd.Series):
        pd.testing.assert_series_equal(after, before, check_exact=True, obj=where)
    elif isinstance(before, (np.ndarray, xr.DataArray)):
        assert type(after) is type(before) and after.dtype == before.dtype and after.shape == before.shape, where
        assert np.array_equal(np.asarray(after), np.asarray(before), equal_nan=before.dtype.kind in "fc"), \
            f"{where}: values changed"
    elif isinstance(before, dict):
        assert isinstance(after, dict) and list(after) == list(before), f"{where}: keys changed"
        for k in before:
            _assert_same(before[k], after[k], f"{where}[{k!r}]")
    elif isinstance(before, (list, tuple, set)):
        assert type(after) is type(before) and len(after) == len(before), f"{where}: length changed"
        if isinstance(before, set):
            assert after == before, f"{where}: members changed"
        else:
            for i, (b, a) in enumerate(zip(before, after)):
                _assert_same(b, a, f"{where}[{i}]")
    elif isinstance(before, float) and math.isnan(before):
        assert isinstance(after, float) and math.isnan(after), where
    elif isinstance(before, (str, int, float, bool, type(None), Path, np.generic)):
        assert after == before and type(after) is type(before), f"{where}: {before!r} became {after!r}"


@pytest.mark.parametrize("case", CASES, ids=[f"item{c.item}-{c.name}" for c in CASES])
def test_hostile_input_is_refused_clearly_and_changes_nothing(case, tmp_path, capsys):
    func, args, kwargs = case.make(tmp_path)
    before = _snapshot((args, kwargs))
    if isinstance(case.expect, int):  # the command line: an exit status and one line on stderr
        rc = func(*args, **kwargs)
        err = capsys.readouterr().err
        assert rc == case.expect, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert re.search(case.match, lines[0]), lines[0]
    elif issubclass(case.expect, Warning):
        with pytest.warns(case.expect, match=case.match):
            func(*args, **kwargs)
    else:
        with pytest.raises(case.expect, match=case.match):
            func(*args, **kwargs)
    _assert_same(before, (args, kwargs), "the caller's arguments")


def test_the_table_covers_every_item():
    counts = pd.Series([c.item for c in CASES]).value_counts().sort_index()
    print("\ncases per item:\n" + counts.to_string())
    assert set(counts.index) == set(range(2, 10)), counts
    assert len(CASES) >= 60
    assert len({(c.item, c.name) for c in CASES}) == len(CASES), "case names repeat"


# ---------------------------------------------------------------------------------------------- beside the table
def test_every_single_byte_flip_of_a_saved_fit_is_refused(tmp_path):
    """40 flips at random places of a saved fit: none loads (the checksum line covers every byte)."""
    path = saved_fit(tmp_path)
    raw = path.read_bytes()
    rng = np.random.default_rng(seed(5))
    loaded = []
    for i in rng.choice(len(raw), size=40, replace=False):
        damaged = bytearray(raw)
        damaged[i] ^= 1 << int(rng.integers(8))
        other = tmp_path / f"flip{i}.nc"
        other.write_bytes(bytes(damaged))
        try:
            bc.load(other)
            loaded.append(int(i))
        except bc.ResultFileError:
            pass
    assert loaded == [], f"flips at bytes {loaded} of {len(raw)} loaded"
    assert bc.load(path).idata.attrs["content_sha256"] == _fit_tree().attrs["content_sha256"]


def test_numpy_scalars_are_accepted_wherever_python_numbers_are():
    from bayescrt.fit import check_sampling

    assert check_sampling(draws=np.int64(500), tune=np.int32(0), chains=np.int64(2), random_seed=np.uint32(7),
                          target_accept=np.float32(0.9))[1:4] == (500, 0, 2)
    assert bc.compare(draws(), {"hr": np.float64(1.13), "lower": np.float32(1.05), "upper": 1.21},
                      prob=np.float32(0.9)).prob == pytest.approx(0.9)
    fit = bc.CoxPH(target_accept=np.float64(0.9))
    assert fit.target_accept == pytest.approx(0.9)
    Grid(**grid(important_hr=np.float32(1.25), draws=np.int64(10))(None)[2])
    bc.MetaAnalysis(mu_prior={"mu": np.float32(0), "sigma": np.int64(2)})


def test_cli_debug_shows_the_traceback_and_a_bug_is_one_line_with_status_3(monkeypatch, capsys):
    for argv in (["--debug", "reproduce", "nosuch"], ["reproduce", "nosuch", "--debug"]):
        assert cli.main(argv) == cli.EXIT_USAGE  # the traceback, and still the status of a user's error
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "SpecError: no spec named 'nosuch'" in err, err

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("bayescrt.published.reanalyse.reanalyse", broken)
    assert cli.main(["reanalyse", "danish"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bayescrt reanalyse: internal error (ZeroDivisionError: division by zero); rerun with --debug for "
                   "the traceback and report it"]


def test_cli_help_lists_the_exit_statuses(capsys):
    for argv in ([], ["reproduce"], ["sensitivity"]):
        assert run_cli(*argv, "--help") == 0
        out = capsys.readouterr().out
        assert re.search(r"exit status:\n\s+0\s+success\n\s+1\s+at least one fit failed its convergence diagnostics"
                         r"[\s\S]*\n\s+2\s+an error in the arguments", out), out


def test_cli_checks_output_paths_before_importing_the_models(tmp_path):
    """A wrong --out or --json is refused before scipy.stats, xarray or PyMC is imported (a fraction of a second,
    not the seconds those imports take, let alone minutes of sampling)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom bayescrt import cli\nrc = cli.main(sys.argv[1:])\n"
             "print(rc, sorted(m for m in ('scipy.stats', 'xarray', 'pymc', 'pandas') if m in sys.modules))")
    for argv in (["reproduce", "danish", "--json", str(tmp_path / "no" / "x.json")],
                 ["reproduce", "danish", "--out", str(a_file(tmp_path))],
                 ["sensitivity", "danish", "--out", str(a_file(tmp_path))],
                 ["quickstart", "--out", str(tmp_path / "no" / "fit.nc")]):
        res = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
        assert res.stdout.strip() == "2 []", (argv, res.stdout, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
