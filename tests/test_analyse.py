"""bayescrt analyse: a spec's [data] file read, checked, turned into durations and imputations, fitted per
covariate set, written out with the HTML report; spec errors as one line naming the key, in under a second."""

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from bayescrt.cli import main
from bayescrt.extract import prepare, read_data
from bayescrt.spec import load_spec

MODELS = Path(__file__).resolve().parents[1] / "models"
SPEC = (MODELS / "example_registry.toml").read_text()


def _spec(tmp_path, text=SPEC, data=None, name="spec.toml"):
    """The example spec (edited) in tmp_path, beside a copy of its extract (or ``data``)."""
    path = tmp_path / name
    path.write_text(text)
    if data is None:
        shutil.copy(MODELS / "example_extract.csv", tmp_path / "example_extract.csv")
    else:
        data.to_csv(tmp_path / "example_extract.csv", index=False)
    return path


def test_the_shipped_extract_is_the_documented_simulation():
    shipped = pd.read_csv(MODELS / "example_extract.csv")
    again = pd.read_csv(pd.io.common.StringIO(bc.datasets.registry_extract().to_csv(index=False)))
    pd.testing.assert_frame_equal(shipped, again)


def test_prepare_makes_durations_and_the_imputations_the_spec_asks_for():
    spec = load_spec("example")
    df, file = read_data(spec)
    prep = prepare(spec, df, source=str(file))
    ref = bc.durations(df, start="implant_date", event_date="death_date", censor=["last_seen", "2018-08-31"],
                       time="years", event="died")
    pd.testing.assert_series_equal(prep.frame["years"], ref["years"])
    assert isinstance(prep.fits, list) and len(prep.fits) == 20
    assert all(f[["egfr", "nyha", "diabetes"]].notna().all().all() for f in prep.fits)
    assert prep.missingness.loc["egfr", "missing"] == df["egfr"].isna().sum()
    assert prep.covariates == ["upgrade", "age", "male", "nyha", "egfr", "diabetes", "af"]
    assert any("m = 20" in s for s in prep.steps)


def _cli(*argv):
    """The command line in a fresh interpreter: (status, stderr)."""
    r = subprocess.run([sys.executable, "-m", "bayescrt.cli", *map(str, argv)], capture_output=True, text=True)
    return r.returncode, r.stderr


# what a refused spec must never have paid for: the sampler stack (its import alone costs seconds)
SAMPLER_STACK = ("pymc", "pytensor", "nutpie", "arviz", "numba", "sklearn", "matplotlib")
_LOADED = """
import sys
from bayescrt.cli import main
code = main(sys.argv[1:])
print(*[m for m in {stack!r} if m in sys.modules], sep=",")
sys.exit(code)
"""


@pytest.mark.parametrize("edit, data, message", [
    (('file = "example_extract.csv"', 'file = "extract_2018.csv"'), None,
     r"\[data\] file = 'extract_2018.csv': '.*extract_2018.csv' does not exist; give the path relative to the spec"),
    (('start = "implant_date"', 'start = "implant_dat"'), None,
     r"\[data.dates\] start: 'implant_dat' is not a column of example_extract.csv\. Did you mean 'implant_date'\?"),
    (('minimal = ["age", "male"]', 'minimal = ["age", "sex"]'), None,
     r"\[covariate_sets\] minimal: 'sex' is not a column of example_extract.csv"),
    (("+ egfr +", "+ egfr_ckd +"), None, r"\[covariate_sets\] full: 'egfr_ckd' is not a column.*Did you mean 'egfr'"),
    ((), bc.datasets.registry_extract().assign(
        implant_date=lambda d: pd.to_datetime(d.implant_date).dt.strftime("%d/%m/%Y")),
     r"\[data.dates\]: start column 'implant_date' has unparseable dates .*row 0: '12/08/2010'.*set date_format in "
     r"\[data.dates\]"),
    (("[data.imputation]", "[data.imputaton]"), None, r"\[data\]: unknown key 'imputaton'\. Did you mean 'imputation'"),
    (('file = "example_extract.csv"', 'file = "example_extract.xlsx"'), None, r"has no known suffix"),
])
def test_a_bad_spec_or_file_fails_at_once_with_one_line_naming_the_key(tmp_path, edit, data, message):
    """Refused before anything costly: the sampler stack is never imported, no folder is made (the seconds
    themselves, which depend on the machine, are measured by benchmarks/cli_errors.py)."""
    text = SPEC.replace(*edit) if edit else SPEC
    assert not edit or text != SPEC
    path = _spec(tmp_path, text, data)
    rc, err = _cli("analyse", path, "--out", tmp_path / "out")
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert not (tmp_path / "out").exists()  # refused before the folder is made
    r = subprocess.run([sys.executable, "-c", _LOADED.format(stack=SAMPLER_STACK), "analyse", str(path), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout.strip() == "", (r.stdout, r.stderr)


def test_missing_covariates_without_a_policy_name_the_keys_to_add(tmp_path):
    text = re.sub(r"\[data.imputation\][^\[]*", "", SPEC)
    spec = load_spec(_spec(tmp_path, text))
    with pytest.raises(bc.DataError, match=r"covariates with missing values: nyha \(94\), egfr \(116\), diabetes "
                                           r"\(104\); add \[data.imputation\] .* or set missing = \"drop\""):
        prepare(spec, read_data(spec)[0])


@pytest.mark.parametrize("edit, message", [
    (('format = "csv"', 'format = "excel"'), "format = 'excel' is not a format bayescrt reads"),
    (("m = 20 ", "m = 1 "), r"\[data.imputation\] m=1 is out of range"),
    (('random_seed = 1\n', '\n'), r"\[data.imputation\]: missing required key 'random_seed'"),
    (('censor = ["last_seen", "2018-08-31"]', 'censor = 2018'), "censor = 2018 must be a date"),
    (('[data.table_one]\ncategorical = ["nyha"]', '[data.table_one]\ncategorical = "nyha"'),
     r"\[data.table_one\] categorical = 'nyha' must be a list of column names"),
])
def test_data_section_errors_name_the_key(tmp_path, edit, message):
    text = SPEC.replace('file = "example_extract.csv"', 'file = "example_extract.csv"\nformat = "csv"')
    text = text.replace(*edit)
    with pytest.raises(bc.SpecError, match=message):
        load_spec(_spec(tmp_path, text))


@pytest.mark.parametrize("edit, message", [
    (('"1" = "upgrade"', '"1" = "de novo"'), r"both codes are labelled 'de novo', which would merge the groups"),
    (('"1" = "upgrade"', '"2" = "upgrade"'), r"\[data.exposure_labels\]: key '2' is not a code of the exposure"),
    (('{ "0" = "de novo", "1" = "upgrade" }', '{ "1" = "upgrade" }'), r"only code 1 is named; name both groups"),
    (('{ "0" = "de novo", "1" = "upgrade" }', '{ "0" = "de novo", "0.0" = "x", "1" = "upgrade" }'),
     r"code 0 is named twice"),
    (("random_seed = 1\n", "random_seed = 1\ncolumns = []\n"), r"\[data.imputation\] columns = \[\] imputes nothing"),
])
def test_exposure_labels_and_imputation_columns_are_checked_when_the_spec_loads(tmp_path, edit, message):
    text = SPEC.replace(*edit)
    assert text != SPEC
    with pytest.raises(bc.SpecError, match=message):
        load_spec(_spec(tmp_path, text))


@pytest.mark.parametrize("edit, data, error, message", [
    (('categorical = ["nyha"]', 'categorical = ["nyha"]\ncolumns = ["upgrade", "age", "nyha"]'), None, bc.SpecError,
     r"\[data.table_one\] columns: 'upgrade' is the exposure"),
    (('categorical = ["nyha"]', 'categorical = ["nyha"]\nnonnormal = ["male"]'), None, bc.SpecError,
     r"\[data.table_one\]: nonnormal: 'male' is binary here"),
    (('categorical = ["nyha"]', 'categorical = ["nyha"]\ncolumns = ["age", "egfr"]'), None, bc.SpecError,
     r"\[data.table_one\] categorical: 'nyha' is not in the table \(its columns are \['age', 'egfr'\]\)"),
    (("random_seed = 1\n", 'random_seed = 1\ncolumns = ["nyha", "diabetes"]\n'), None, bc.SpecError,
     r"\[data.imputation\] columns = \['nyha', 'diabetes'\] leaves out egfr \(116 missing\), which a covariate set"),
    ((), bc.datasets.registry_extract().assign(upgrade=lambda d: d.upgrade * 2), bc.DataError,
     r"exposure: column 'upgrade' has values \['0', '2'\]; .* code it 0/1"),
    ((), bc.datasets.registry_extract().assign(upgrade=1), bc.DataError, r"'upgrade' is 1 in every row"),
])
def test_table_one_imputation_and_exposure_problems_are_found_before_sampling(tmp_path, edit, data, error, message):
    """prepare() runs before anything is fitted: each of these used to surface after the sampling, or never."""
    text = SPEC.replace(*edit) if edit else SPEC
    assert not edit or text != SPEC
    spec = load_spec(_spec(tmp_path, text, data))
    with pytest.raises(error, match=message):
        prepare(spec, read_data(spec)[0], impute_now=False)


def test_a_csv_header_naming_a_column_twice_is_refused_before_pandas_renames_it(tmp_path):
    df = bc.datasets.registry_extract()
    spec = load_spec(_spec(tmp_path))
    text = df.to_csv(index=False).replace(",egfr,", ",age,", 1)  # two columns called 'age'
    (tmp_path / "example_extract.csv").write_text(text)
    with pytest.raises(bc.SpecError, match=r"the header of 'example_extract.csv' names \['age'\] more than once"):
        read_data(spec)


def test_a_format_that_does_not_fit_the_file_is_one_clean_line(tmp_path):
    text = SPEC.replace('file = "example_extract.csv"', 'file = "example_extract.csv"\nformat = "stata"')
    rc, err = _cli("analyse", _spec(tmp_path, text), "--out", tmp_path / "out")
    assert rc == 2
    lines = err.strip().splitlines()  # no reader warnings before the error
    assert len(lines) == 1 and re.search(r"cannot be read as stata .*its suffix '.csv' says csv: drop format = "
                                         r"'stata'", lines[0]), err


def test_data_given_on_the_command_line_goes_by_its_suffix_then_the_specs_format(tmp_path):
    path = _spec(tmp_path, SPEC.replace('file = "example_extract.csv"', 'file = "example_extract.csv"\nformat = "csv"'))
    shutil.copy(tmp_path / "example_extract.csv", tmp_path / "extract.txt")
    got, _ = read_data(load_spec(path), tmp_path / "extract.txt")  # unknown suffix: the spec's format
    assert len(got) == 1200
    with pytest.raises(bc.SpecError, match=r"--data: 'extract.txt' has no known suffix .* or set format in \[data\]"):
        read_data(load_spec(_spec(tmp_path)), tmp_path / "extract.txt")


def test_every_reader_pandas_has_for_a_spec_format(tmp_path):
    df = bc.datasets.registry_extract(n=60)
    df.to_parquet(tmp_path / "x.parquet")
    df.to_stata(tmp_path / "x.dta", write_index=False)
    spec = load_spec(_spec(tmp_path))
    for name in ("x.parquet", "x.dta"):
        got, _ = read_data(spec, tmp_path / name)
        assert list(got.columns) == list(df.columns) and len(got) == 60
        np.testing.assert_array_equal(got["age"].to_numpy(float), df["age"].to_numpy(float))
    (tmp_path / "x.sas7bdat").write_bytes(b"not a SAS file")
    with pytest.raises(bc.SpecError, match="--data: 'x.sas7bdat' cannot be read as sas"):
        read_data(spec, tmp_path / "x.sas7bdat")


# ----------------------------------------------------------------------------------------------- the fits
class _Page(HTMLParser):
    """The report's text, its title, and for every table the text of the caption or heading that labels it."""

    def __init__(self):
        super().__init__()
        self.title, self.text, self.tables, self.fail_rows = "", [], [], 0
        self._stack, self._label = [], ""

    def handle_starttag(self, tag, attrs):
        self._stack.append(tag)
        if tag in ("h1", "h2", "h3", "summary", "caption"):
            self._label = ""
        if tag == "table":
            self.tables.append(self._label)
        if tag == "tr" and ("class", "fail") in attrs:
            self.fail_rows += 1

    def handle_endtag(self, tag):
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if "title" in self._stack:
            self.title += data
        if any(t in self._stack for t in ("h1", "h2", "h3", "summary")):
            self._label += data
        if "caption" in self._stack and self.tables:
            self.tables[-1] += data


def _page(path) -> _Page:
    p = _Page()
    p.feed(Path(path).read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """`bayescrt analyse example` once, with its report (the spec's sampler: 2 chains x 1000 draws)."""
    out = tmp_path_factory.mktemp("example")
    rc = main(["analyse", "example", "--out", str(out / "out"), "--report", str(out / "report.html"),
               "--json", str(out / "r.json"), "--no-progress"])
    return rc, out


@pytest.mark.mcmc
def test_analyse_writes_every_output_and_a_report_that_says_synthetic_beside_every_table(example_run):
    rc, out = example_run
    assert rc == 0
    files = {p.name for p in (out / "out").iterdir()}
    assert {"example_minimal.nc", "example_full.nc", "table.csv", "table1.csv", "table1.txt", "missingness.csv",
            "forest.png", "diagnostics.txt", "diagnostics.json", "README.txt"} <= files
    full = bc.load(out / "out" / "example_full.nc")
    assert full.model["imputation"]["m"] == 20 and full.diagnostics().ok
    assert not bc.load(out / "out" / "example_minimal.nc").model.get("imputation")  # uses no imputed column
    # the truth of the simulation (upgrade log-HR 0.10) inside the full set's 95% interval
    lo, hi = np.quantile(full.log_hr_draws()[:, 0], [0.025, 0.975])
    assert lo < bc.datasets.EXTRACT_LOG_HR["upgrade"] < hi
    page = _page(out / "report.html")
    assert page.title.startswith("SYNTHETIC DATA:")
    assert len(page.tables) >= 8 and all("SYNTHETIC" in label for label in page.tables), page.tables
    text = " ".join(page.text)
    for part in ("Table 1", "Missing values", "Priors", "Diagnostics", "Kaplan-Meier", "egfr",
                 "C(nyha, Treatment('II'))[T.IV vs II]", "20 completed data sets"):
        assert part in text, part
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<script" not in html
    assert not re.search(r"(src|href)=\"(https?:|//|[^d\"#])", html)  # self-contained: nothing fetched
    assert page.fail_rows == 0


@pytest.mark.mcmc
def test_a_report_on_data_not_marked_synthetic_never_says_it_and_failed_gates_are_red(tmp_path):
    text = (SPEC.replace("synthetic = true", "synthetic = false").replace("(SYNTHETIC example)", "")
            .replace("synthetic_note", "# note"))
    text = re.sub(r"\[data.imputation\][^\[]*", "", text).replace('\n[data.dates]\n', '\nmissing = "drop"\n\n[data.dates]\n')
    spec = _spec(tmp_path, text)
    with pytest.warns(bc.DiagnosticsWarning):  # 2 chains x 60 draws: the gates fail, as they should
        rep = bc.analyse(spec, draws=60, progress=False)
        path = bc.report(rep, tmp_path / "report.html")
    page = _page(path)
    assert "synthetic" not in path.read_text().lower()
    assert page.fail_rows >= 1
    assert "At least one fit FAILED" in " ".join(page.text)
    assert "complete cases: rows with a missing value in nyha, egfr, diabetes are dropped" in " ".join(page.text)
    with pytest.raises(bc.SpecError, match="give a file name ending in .html"):
        bc.report(rep, tmp_path / "report.pdf")
    # the same fits as an analysis done in Python: bc.report(fit_covariate_sets result, data=..., ...)
    kw = dict(data=rep.cohort, time="years", event="died", title="Upgrade in our registry")
    with pytest.warns(bc.DiagnosticsWarning):
        py = bc.report(rep.fits, tmp_path / "python.html", **kw, published={"minimal": {"hr": 1.13, "lower": 1.05,
                                                                                       "upper": 1.21}},
                       steps=["rows with a bad date dropped by hand"])
    html = py.read_text()
    assert "synthetic" not in html.lower() and "of an analysis in Python" in html
    assert "1.13 (1.05 to 1.21)" in html and "rows with a bad date dropped by hand" in html
    for bad, message in [
        (dict(kw, title=""), r"title='': give the report a title"),
        (dict(kw, time="yrs"), r"time='yrs' is not a column of data\. Did you mean 'years'"),
        (dict(kw, data=rep.cohort.drop(columns="egfr")), r"column 'egfr', which a covariate set uses, is not in data"),
        (dict(kw, synthetic="no"), r"synthetic='no' must be True or False"),
        (dict(kw, published={"minimal": {"hr": 1.3, "lower": 1.05, "upper": 1.21}}), r"lower <= hr <= upper"),
        (dict(kw, published={"minimum": {"hr": 1.13, "lower": 1.05, "upper": 1.21}}),
         r"\[published\]: 'minimum' is not a covariate set"),
        (dict(kw, published={"minimal": {"hr": 1.0, "lower": 0.5, "upper": float("inf")}}), r"finite positive"),
        (dict(kw, data=rep.cohort.iloc[:100]), r"data: 100 rows .* but the fits took"),
        (dict(kw, event="upgrade"), r"event='upgrade': the fits took event from 'died'"),
        (dict(kw, imputed="abc"), r"imputed: expected the list of completed DataFrames"),
        (dict(kw, steps="imputed age"), r"steps='imputed age' must be a list of text"),
        (dict(kw, categorical="nyha"), r"categorical='nyha' must be a list of text"),
        (dict(kw, categorical=["upgrade"]), r"bc.report categorical: 'upgrade' is the exposure"),
        (dict(kw, exposure_labels=["a", "b"]), r"exposure_labels: expected exposure code -> group name pairs"),
        (dict(kw, exposure_labels={0: None, 1: "upgrade"}), r"exposure_labels: 0 = None must be the group's name"),
        (dict(kw, exposure_labels={0: "x", 1: "x"}), r"both codes are labelled 'x'"),
    ]:
        with pytest.raises(bc.SpecError, match=message):
            bc.report(rep.fits, tmp_path / "bad.html", **bad)
    with pytest.raises(bc.SpecError, match=r"an Analysis from a spec already knows its data: drop them"):
        bc.report(rep, tmp_path / "bad.html", title="x")
    with pytest.raises(bc.SpecError, match=r"expected an Analysis .* got DataFrame"):
        bc.report(rep.cohort, tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


@pytest.mark.mcmc
@pytest.mark.browser
def test_the_report_loads_in_a_real_browser_without_console_errors(example_run):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert chromium, "make test-all installs Chromium (apt-get install chromium)"
    _, out = example_run
    url = (out / "report.html").resolve().as_uri()
    r = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                        "--v=0", "--virtual-time-budget=5000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    assert 'id="hr-table"' in r.stdout and "posterior median HR" in r.stdout and "minimal" in r.stdout
    shot = out / "report.png"
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,2400", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000  # a page with tables and two plots, not a blank one


@pytest.mark.parametrize("table, message", [
    ('hr = "x"\nlower = 0.5\nupper = 2', r"\[published.minimal\] hr = 'x': give a finite positive ratio"),
    ("hr = 1.2\nlower = 3\nupper = 2", r"lower <= hr <= upper must hold"),
    ("hr = 1.2\nlower = 0.5\nupper = inf", r"upper = inf: give a finite positive ratio"),
    ("hr = 1.2\nlower = 0.5", r"upper = None"),
])
def test_inline_published_estimates_are_checked_when_the_spec_loads(tmp_path, table, message):
    path = _spec(tmp_path, SPEC + f"\n[published.minimal]\n{table}\n")
    with pytest.raises(bc.SpecError, match=message):
        load_spec(path)
