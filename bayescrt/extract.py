"""A spec's own data: the file its ``[data]`` section names, read, checked and made ready to fit.

:func:`read_data` reads the file with pandas' reader for its format (CSV, Parquet, Stata ``.dta``,
SAS ``.sas7bdat``; nothing else, and no code from the spec), renames columns as ``[data.rename]``
says, and checks that every column the spec names is in it. :func:`prepare` turns dates into
durations (:func:`bayescrt.durations`) as ``[data.dates]`` says, checks the covariates for missing
values and, with ``[data.imputation]``, makes the completed data sets (:func:`bayescrt.impute`).
Every error names the spec's key and the fix, and comes before anything is fitted.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .durations import durations
from .errors import DataError, SpecError, suggest
from .formula import referenced
from .impute import impute, missingness
from .spec import DATA_FORMATS, AnalysisSpec, exposure_label_map, load_spec

ENTRY = "entry"  # the entry column that [data.dates] makes with delayed entry or the age time scale


@dataclass
class PreparedData:
    """The data a spec's fits take: ``frame`` (after durations), ``fits`` (the frame, or the completed frames
    of the imputations), what the fits need to be told (``fit_kwargs``), and what was done to get there."""

    source: str
    raw: pd.DataFrame
    frame: pd.DataFrame
    fits: pd.DataFrame | list
    fit_kwargs: dict
    covariates: list[str]
    missingness: pd.DataFrame
    steps: list[str] = field(default_factory=list)


def _where(spec: AnalysisSpec) -> str:
    return f"{spec.path} [data]"


def read_data(spec: AnalysisSpec, path=None) -> tuple[pd.DataFrame, Path]:
    """The spec's data file (or ``path``, e.g. the CLI's ``--data``) as a DataFrame, columns renamed."""
    if "data" not in spec.raw:
        raise SpecError(f"spec {spec.name!r} ({spec.path}) has no [data] section naming a data file: add [data] "
                        "with file = \"extract.csv\" (relative to the spec), or analyse its synthetic cohort with "
                        "`bayescrt reproduce`")
    data = spec.data
    file = Path(path) if path is not None else spec.data_path
    key = "--data" if path is not None else f"{_where(spec)} file = {data['file']!r}"
    if not file.exists():
        raise SpecError(f"{key}: {str(file)!r} does not exist; give the path "
                        + ("of the data file" if path is not None else
                           f"relative to the spec's folder ({spec.path.parent})") + ", or pass --data FILE")
    if file.is_dir():
        raise SpecError(f"{key}: {str(file)!r} is a folder; give the data file")
    suffix_fmt = DATA_FORMATS.get(file.suffix.lower())
    # the spec's format names its own file; for --data the suffix decides, and the format is the fallback
    fmt = (data.get("format") or suffix_fmt) if path is None else (suffix_fmt or data.get("format"))
    if fmt is None:
        raise SpecError(f"{key}: {file.name!r} has no known suffix ({', '.join(DATA_FORMATS)}); rename it or set "
                        f"format in [data] (one of {sorted(set(DATA_FORMATS.values()))})")
    if fmt == "csv":
        _check_csv_header(file, key)
    readers = {"csv": pd.read_csv, "parquet": pd.read_parquet, "stata": pd.read_stata, "sas": pd.read_sas}
    try:
        with warnings.catch_warnings():  # a reader's warnings about a file it then fails on are noise before the error
            warnings.simplefilter("ignore")
            df = readers[fmt](file)
    except ImportError as exc:
        raise SpecError(f"{key}: reading {fmt} needs a library pandas uses for it ({exc}); for Parquet: "
                        "pip install pyarrow") from None
    except Exception as exc:  # pandas' readers raise many kinds; the file is the user's to fix
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if suffix_fmt and suffix_fmt != fmt:
            hint = (f"; its suffix {file.suffix!r} says {suffix_fmt}: drop format = {fmt!r} from [data] or give "
                    f"the {fmt} file")
        raise SpecError(f"{key}: {file.name!r} cannot be read as {fmt} ({type(exc).__name__}: {first}){hint}") from None
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        raise SpecError(f"{key}: {file.name!r} holds no rows")
    df.columns = [str(c) for c in df.columns]
    rename = data.get("rename", {})
    for old in rename:
        if old not in df.columns:
            raise SpecError(f"{spec.path} [data.rename]: {old!r} is not a column of {file.name}."
                            f"{suggest(old, df.columns)} Columns: {list(df.columns)}")
    df = df.rename(columns=rename)
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise SpecError(f"{_where(spec)}: columns {dup} appear more than once in {file.name} (after [data.rename]); "
                        "rename them")
    _check_columns(spec, df, file.name)
    return df, file


def _check_csv_header(file: Path, key: str) -> None:
    """Duplicate names in a CSV header, caught before pandas renames the second 'age' to 'age.1'."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # pandas' reader then says what is wrong with the file
    seen, dup = set(), []
    for name in header:
        if name in seen and name not in dup:
            dup.append(name)
        seen.add(name)
    if dup:
        raise SpecError(f"{key}: the header of {file.name!r} names {dup} more than once; give every column its own "
                        "name in the file (bayescrt does not guess which is which)")


def set_variables(cols) -> list[str]:
    """The columns a covariate set uses: its list, or the variables its formula refers to."""
    return list(cols) if not isinstance(cols, str) else referenced(cols, ordered=True) or []


def _check_columns(spec: AnalysisSpec, df: pd.DataFrame, name: str) -> None:
    """Every column the spec names is in the file (after renaming), each error naming the key that names it."""
    data = spec.data
    dates = data.get("dates", {})
    cols = set(df.columns)

    def need(key: str, col: str) -> None:
        if col not in cols:
            raise SpecError(f"{key}: {col!r} is not a column of {name}.{suggest(col, cols)} Columns: {sorted(cols)}")

    made = {spec.raw["time"], spec.raw["event"]} if dates else set()
    if dates:
        for k in ("start", "event_date", "entry_date", "birth_date"):
            if k in dates:
                for cause, col in (dates[k].items() if isinstance(dates[k], dict) else [(None, dates[k])]):
                    need(f"{spec.path} [data.dates] {k}" + (f".{cause}" if cause else ""), col)
        for c in dates["censor"] if isinstance(dates["censor"], list) else [dates["censor"]]:
            if not c[:4].isdigit():  # a date is the administrative end; anything else names a column
                need(f"{spec.path} [data.dates] censor", c)
        for out in sorted(made):
            if out in cols:
                raise SpecError(f"{spec.path}: time/event {out!r} is made from the dates by [data.dates], but the "
                                f"file already has a column {out!r}; name the outputs otherwise (time = ..., event = ...)"
                                " or drop [data.dates]")
    else:
        need(f"{spec.path} time", spec.raw["time"])
        need(f"{spec.path} event", spec.raw["event"])
    need(f"{spec.path} exposure", spec.raw["exposure"])
    for set_name, covs in spec.raw["covariate_sets"].items():
        for c in set_variables(covs):
            if c not in made:
                need(f"{spec.path} [covariate_sets] {set_name}", c)
    for c in data.get("reference", {}):
        need(f"{spec.path} [data.reference]", c)
    for c in data.get("imputation", {}).get("columns", []):
        need(f"{spec.path} [data.imputation] columns", c)
    for key, vals in data.get("table_one", {}).items():
        for c in vals:
            need(f"{spec.path} [data.table_one] {key}", c)
    if data.get("reference") and any(isinstance(c, str) for c in spec.raw["covariate_sets"].values()):
        raise SpecError(f"{spec.path} [data.reference] sets reference levels for covariate sets given as lists; "
                        "this spec has formula sets: write the reference in the formula, C(nyha, Treatment('II')), "
                        "and drop [data.reference]")


def model_columns(spec: AnalysisSpec) -> list[str]:
    """The exposure and every covariate of every set, in order, once."""
    out = [spec.raw["exposure"]]
    for covs in spec.raw["covariate_sets"].values():
        out += [c for c in set_variables(covs) if c not in out]
    return out


def prepare(spec: AnalysisSpec, df: pd.DataFrame, source: str = "", impute_now: bool = True) -> PreparedData:
    """Durations from dates, the missing-value policy, and the imputations: what the fits take.
    ``impute_now=False``: every check, without making the imputations (``fits`` is then the frame)."""
    data = spec.data
    time, event, exposure = spec.raw["time"], spec.raw["event"], spec.raw["exposure"]
    steps, kw = [], {}
    frame = df
    dates = data.get("dates")
    if dates:
        opts = {k: v for k, v in dates.items() if k not in ("start", "event_date", "censor")}
        event_date = dates["event_date"]
        if isinstance(event_date, dict):  # competing events: codes 1..K in the order of [competing_risks] causes
            event_date = {c: event_date[c] for c in spec.competing["causes"]}
        if "entry_date" in dates or dates.get("timescale") == "age":
            opts["entry"] = ENTRY
            kw["entry"] = ENTRY
        try:
            frame = durations(df, start=dates["start"], event_date=event_date, censor=dates["censor"],
                              time=time, event=event, **opts)
        except DataError as err:
            raise DataError([f"{spec.path} [data.dates]: {p}".replace("pass date_format=", "set date_format in "
                                                                        "[data.dates]")
                             for p in err.problems]) from None
        except SpecError as err:
            raise SpecError(f"{spec.path} [data.dates]: {err}") from None
        info = frame.attrs["bayescrt_durations"]
        steps.append(f"durations from dates: {info.get('convention', '')}".strip())
    covariates = model_columns(spec)
    table = missingness(frame[[c for c in covariates if c != exposure] + [exposure]], by=exposure)
    incomplete = [c for c in covariates if frame[c].isna().any()]
    for c in (time, event, exposure):
        if frame[c].isna().any():
            raise DataError(f"{_where(spec)}: column {c!r} has {int(frame[c].isna().sum())} missing values; the "
                            "outcome and the exposure must be complete (fix the extract or drop those rows)")
    check_exposure(frame, exposure, _where(spec) + " exposure")
    cr = spec.competing
    if cr is not None:  # the event column's codes or labels against [competing_risks] causes, before any fit
        from .causes import event_causes

        try:
            event_causes(frame, event, cr["causes"], cr["censored"])
        except (DataError, SpecError) as err:
            raise type(err)(f"{spec.path} [competing_risks]: {err}") from None
    imp = data.get("imputation")
    missing = data.get("missing", "error")
    chosen = (imp or {}).get("columns")
    left_out = [c for c in incomplete if chosen is not None and c not in chosen and c != exposure]
    if left_out:
        counts = ", ".join(f"{c} ({int(frame[c].isna().sum())} missing)" for c in left_out)
        raise SpecError(f"{spec.path} [data.imputation] columns = {chosen!r} leaves out {counts}, which a covariate "
                        "set uses; add them to columns, or drop the key to impute every incomplete covariate")
    if incomplete and imp is None and missing == "error":
        counts = ", ".join(f"{c} ({int(frame[c].isna().sum())})" for c in incomplete)
        raise DataError(f"{_where(spec)}: covariates with missing values: {counts}; add [data.imputation] with "
                        "m = 20 and random_seed = 1 to impute them (the outcome enters the imputation model), or set "
                        "missing = \"drop\" in [data] for a complete-case analysis")
    if missing == "drop":
        kw["missing"] = "drop"
    if data.get("reference"):
        kw["reference"] = dict(data["reference"])
    fits = frame
    if imp is not None and incomplete and impute_now:
        columns = imp.get("columns") or [c for c in covariates if c != exposure]
        causes = {"causes": cr["causes"], "censored": cr["censored"]} if cr is not None else {}
        fits = impute(frame, m=imp["m"], time=time, event=event, columns=columns, exposure=exposure,
                      random_seed=imp["random_seed"], max_iter=imp.get("max_iter", 10), **causes)
        outcome = ("each cause's indicator and cause-specific Nelson-Aalen cumulative hazard" if cr is not None
                   else "event and Nelson-Aalen cumulative hazard")
        steps.append(f"multiple imputation of {', '.join(incomplete)}: m = {imp['m']} completed data sets by chained "
                     f"equations, the outcome as {outcome}; the fits' draws pooled (Zhou and Reiter 2010)")
    elif missing == "drop" and incomplete:
        steps.append(f"complete cases: rows with a missing value in {', '.join(incomplete)} are dropped")
    spec_baseline(spec, frame, covariates)  # checked now, not after the sampling
    return PreparedData(source=source, raw=df, frame=frame, fits=fits, fit_kwargs=kw, covariates=covariates,
                        missingness=table, steps=steps)


def spec_baseline(spec: AnalysisSpec, frame: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """Table 1 of ``frame`` as the spec's ``[data.table_one]`` and ``exposure_labels`` ask for it."""
    t1 = spec.data.get("table_one", {})
    return baseline(frame, spec.raw["exposure"], covariates, spec.data.get("exposure_labels", {}),
                    columns=t1.get("columns"), categorical=t1.get("categorical", []), nonnormal=t1.get("nonnormal"),
                    synthetic=spec.synthetic, where=f"{spec.path} [data.table_one]")


def check_exposure(frame: pd.DataFrame, exposure: str, where: str) -> None:
    """The tables compare two groups: the exposure is coded 0/1 and both groups have rows."""
    s = frame[exposure]
    values = pd.unique(s.dropna())
    try:
        codes = {float(v) for v in values}
    except (TypeError, ValueError):
        codes = None
    if codes is None or not codes <= {0.0, 1.0} or pd.api.types.is_string_dtype(s):
        shown = sorted(map(str, values))[:6]
        raise DataError(f"{where}: column {exposure!r} has values {shown}; the tables and the report compare two "
                        "groups, so code it 0/1 (1 = exposed), e.g. df[col] = (df[col] == 'upgrade').astype(int)")
    if len(codes) < 2:
        raise DataError(f"{where}: column {exposure!r} is {int(next(iter(codes)))} in every row; an HR of the "
                        "exposure needs rows in both groups")


def group_names(frame: pd.DataFrame, exposure: str, labels: dict) -> pd.Series:
    """The exposure's codes as the group names of the tables (``labels``, else ``upgrade = 1``)."""
    names = exposure_label_map(labels, "exposure_labels") or {0: f"{exposure} = 0", 1: f"{exposure} = 1"}
    return frame[exposure].map(lambda v: names[int(v)])


def baseline(frame: pd.DataFrame, exposure: str, covariates: list[str], labels: dict, *, columns=None,
             categorical=(), nonnormal=None, synthetic: bool = False, where: str = "table_one") -> pd.DataFrame:
    """The report's Table 1 by exposure group; every problem an error naming ``where`` (the spec's key)."""
    from .table_one import baseline_table

    covs = list(columns) if columns else [c for c in covariates if c != exposure]
    for key, names in (("columns", covs), ("categorical", categorical), ("nonnormal", nonnormal or [])):
        for c in names:
            if c == exposure:
                raise SpecError(f"{where} {key}: {c!r} is the exposure, whose groups are the table's columns; "
                                "drop it")
            if c not in frame.columns:
                raise SpecError(f"{where} {key}: {c!r} is not a column of the data.{suggest(c, frame.columns)}")
            if key != "columns" and c not in covs:
                raise SpecError(f"{where} {key}: {c!r} is not in the table (its columns are {covs}); add it to "
                                "columns or drop it here")
    if nonnormal is None:
        nonnormal = [c for c in covs if c not in categorical and _continuous(frame[c])]
    by = "group (SYNTHETIC)" if synthetic else "group"
    table = frame[covs].assign(**{by: group_names(frame, exposure, labels)})
    try:
        return baseline_table(table, by=by, columns=covs, nonnormal=nonnormal, categorical=list(categorical))
    except (DataError, SpecError) as err:
        raise type(err)(f"{where}: {err}") from None


def _continuous(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return False
    return not set(pd.unique(s.dropna())) <= {0, 1}


def load_data(spec, data=None) -> tuple[AnalysisSpec, PreparedData]:
    """The spec (a name, path or :class:`AnalysisSpec`) and its data file (or ``data``, a path) read,
    checked and prepared: everything :func:`bayescrt.reproduce.analyse` does before it fits."""
    spec = spec if isinstance(spec, AnalysisSpec) else load_spec(spec)
    df, file = read_data(spec, data)
    return spec, prepare(spec, df, source=str(file))
