"""Simulate a cohort: two groups, covariates by group, calendar accrual, a PH survival model.

``simulate`` is the engine behind the synthetic Danish registry cohort and is
general enough for power and sensitivity work of one's own:

* cohort size and the number exposed (e.g. upgrades vs de novo);
* covariates by group: continuous (normal, with a median and a spread) or
  binary (a prevalence), binary ones optionally correlated through a Gaussian
  copula with a common latent correlation;
* calendar accrual between two dates (uniform, or with implant volume rising
  over time) and administrative censoring at a closing date;
* a baseline hazard: Weibull or piecewise constant;
* covariate log-HRs and a true conditional exposure HR; a random seed.

Survival times are drawn by inverting the cumulative hazard, exactly. The
returned DataFrame carries every true parameter in ``df.attrs["truth"]`` and
``df.attrs["synthetic"] = True``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .errors import SpecError, suggest

DAYS_PER_YEAR = 365.25

# The keys each argument takes; anything else is refused with the nearest valid key.
COVARIATE_KEYS = {"binary": ("kind", "prevalence"), "continuous": ("kind", "median", "spread", "center")}
BASELINE_KEYS = {"weibull": ("kind", "shape", "scale_years"), "piecewise": ("kind", "cuts_years", "rates_per_year")}
ACCRUAL_KEYS = ("start", "end", "close", "trend")
IMPLANT_DATE = "implant_date"  # the column of implant dates, written beside the exposure, time and event columns


def simulate(
    n: int,
    n_exposed: int,
    *,
    covariates: dict,
    log_hr: dict,
    exposure_hr: float,
    baseline: dict,
    accrual: dict,
    exposure: str = "upgrade",
    time: str = "years",
    event: str = "died",
    correlation: float = 0.0,
    random_seed: int | None = None,
) -> pd.DataFrame:
    """Simulate a cohort of ``n`` subjects of whom ``n_exposed`` are exposed.

    Parameters
    ----------
    covariates : ``{name: spec}``; a spec is
        ``{"kind": "continuous", "median": [exposed, unexposed], "spread": sd}``
        (normal; ``"center"`` sets the value at which its log-HR is zero,
        default the pooled median) or
        ``{"kind": "binary", "prevalence": [exposed, unexposed]}``.
    log_hr : ``{name: log-HR}`` per unit of each covariate (per year of age,
        present vs absent); a covariate not named here has no effect (log-HR 0).
    exposure_hr : the true conditional HR of exposure.
    baseline : ``{"kind": "weibull", "shape": k, "scale_years": s}`` (hazard
        ``k/s (t/s)^(k-1)`` for a subject with all covariates at their centre
        and unexposed) or ``{"kind": "piecewise", "cuts_years": [...],
        "rates_per_year": [...]}`` (one more rate than cuts).
    accrual : ``{"start": "2000-01-01", "end": "2018-08-31", "trend": r}``:
        implant dates between start and end with density rising linearly so
        the last day is ``r`` times as likely as the first (``r = 1``:
        uniform); follow-up is censored at ``"close"`` (default: ``end``).
    exposure, time, event : names of the exposure (0/1), follow-up time (years)
        and event (0/1) columns; the cohort also has a column ``implant_date``.
        No covariate may take one of these names.
    correlation : latent correlation between binary covariates (0 = independent).

    Every key and number is checked before anything is drawn (unknown keys,
    non-finite or out-of-range numbers, unreadable dates, column names that
    collide), and a cohort too large for the available memory is refused
    with the memory it would need. ``n`` and ``n_exposed`` may be numpy integers.
    """
    _check(n, n_exposed, covariates, log_hr, exposure_hr, baseline, accrual, correlation, exposure, time, event,
           random_seed)
    n, n_exposed = int(n), int(n_exposed)
    n_binary = sum(spec["kind"] == "binary" for spec in covariates.values())
    _check_memory(n, len(covariates), n_binary)
    rng = np.random.default_rng(random_seed)
    group = np.zeros(n, dtype=bool)
    group[:n_exposed] = True
    group = rng.permutation(group)
    cols: dict[str, np.ndarray] = {exposure: group.astype(int)}

    binary = [k for k, v in covariates.items() if v["kind"] == "binary"]
    if binary:
        z = _correlated_normals(rng, n, len(binary), correlation)
        for j, name in enumerate(binary):
            p_exp, p_un = covariates[name]["prevalence"]
            p = np.where(group, p_exp, p_un)
            cols[name] = (z[j] < stats.norm.ppf(p)).astype(int)
    centers = {}
    for name, spec in covariates.items():
        if spec["kind"] == "continuous":
            m_exp, m_un = spec["median"]
            cols[name] = np.where(group, m_exp, m_un) + spec["spread"] * rng.standard_normal(n)
            centers[name] = spec.get("center", (m_exp * n_exposed + m_un * (n - n_exposed)) / n)
        else:
            centers[name] = 0.0

    eta = math.log(exposure_hr) * group
    for name, beta in log_hr.items():
        eta = eta + beta * (cols[name] - centers[name])
    target = rng.exponential(size=n) * np.exp(-eta)  # cumulative baseline hazard at the event time
    t_event = _inverse_cumulative_hazard(target, baseline)

    start = pd.Timestamp(accrual["start"])
    end = pd.Timestamp(accrual["end"])
    close = pd.Timestamp(accrual.get("close", accrual["end"]))
    span = (end - start).days
    u = rng.random(n)
    r = float(accrual.get("trend", 1.0))
    # inverse CDF of a linear density on [0, 1] with f(1) / f(0) = r
    frac = u if abs(r - 1) < 1e-12 else (np.sqrt(1 + (r**2 - 1) * u) - 1) / (r - 1)
    implant = start + pd.to_timedelta(np.floor(frac * span), unit="D")
    t_admin = ((close - implant).days.to_numpy() + 0.5) / DAYS_PER_YEAR  # implant mid-day
    died = t_event <= t_admin
    years = np.where(died, t_event, t_admin)

    df = pd.DataFrame({exposure: cols[exposure], **{name: cols[name] for name in covariates},
                       IMPLANT_DATE: implant, time: years, event: died.astype(int)})
    df.attrs["synthetic"] = True
    df.attrs["truth"] = {
        "n": n, "n_exposed": n_exposed, "exposure": exposure, "exposure_hr": exposure_hr,
        "log_hr": dict(log_hr), "centers": centers, "covariates": copy.deepcopy(covariates),
        "baseline": dict(baseline), "accrual": {k: str(v) for k, v in accrual.items()},
        "correlation": correlation, "random_seed": random_seed,
    }
    return df


def _inverse_cumulative_hazard(target: np.ndarray, baseline: dict) -> np.ndarray:
    if baseline["kind"] == "weibull":
        return baseline["scale_years"] * target ** (1.0 / baseline["shape"])
    cuts = np.concatenate([[0.0], np.asarray(baseline["cuts_years"], float)])
    rates = np.asarray(baseline["rates_per_year"], float)
    H = np.concatenate([[0.0], np.cumsum(rates[:-1] * np.diff(cuts))])  # cumulative hazard at each cut
    k = np.searchsorted(H, target, side="right") - 1
    return cuts[k] + (target - H[k]) / rates[k]


def _exchangeable_cholesky(k: int, correlation: float) -> list[list[float]]:
    """The lower Cholesky factor of the k x k matrix with 1 on the diagonal and ``correlation`` elsewhere.

    Plain Python floats in a fixed order: every step is one correctly rounded IEEE operation, so the
    factor is the same bits on every machine.
    """
    rho = float(correlation)
    L = [[0.0] * k for _ in range(k)]
    for j in range(k):
        for i in range(j + 1):
            s = 1.0 if i == j else rho
            for m in range(i):
                s -= L[j][m] * L[i][m]
            L[j][i] = math.sqrt(s) if i == j else s / L[i][i]
    return L


def _correlated_normals(rng: np.random.Generator, n: int, k: int, correlation: float) -> list[np.ndarray]:
    """``k`` columns of ``n`` standard normals with a common correlation ``correlation``.

    Why not ``rng.multivariate_normal``: numpy factorises the correlation matrix by SVD (LAPACK), and an
    exchangeable matrix has one eigenvalue repeated k - 1 times, whose eigenvectors are arbitrary: they
    depend on the LAPACK build and the CPU kernel it picks, so the same seed gave a different cohort on a
    different machine (the shipped cohort's HRs moved in the second decimal). Here the factor is ours
    (:func:`_exchangeable_cholesky`, plain floats) and each column is a sum of elementwise products taken
    in a fixed order, with no BLAS matrix product: elementwise multiply and add are correctly rounded, so
    the cohort is the same on every machine. The draw consumes the random stream exactly as
    ``multivariate_normal`` did (``n x k`` standard normals, row by row).
    """
    L = _exchangeable_cholesky(k, correlation)
    e = rng.standard_normal((n, k))
    out = []
    for j in range(k):
        z = L[j][0] * e[:, 0]
        for i in range(1, j + 1):
            z += L[j][i] * e[:, i]
        out.append(z)
    return out


# ------------------------------------------------------------------------------------------------ memory
# Peak bytes per subject, measured with tracemalloc (numpy's and pandas' arrays, the DataFrame included):
# about 155, plus 32 per covariate and 9 more per binary one (the latent normals). The estimate adds about
# half again for the interpreter, temporaries and fragmentation.
_BYTES_PER_ROW = 200
_BYTES_PER_COVARIATE = 48
_BYTES_PER_BINARY = 24


def memory_estimate(n: int, n_covariates: int, n_binary: int = 0) -> int:
    """Bytes that simulating ``n`` subjects with ``n_covariates`` covariates (``n_binary`` binary) needs at its peak."""
    return int(n) * (_BYTES_PER_ROW + _BYTES_PER_COVARIATE * n_covariates + _BYTES_PER_BINARY * n_binary)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo MemAvailable, else sysconf), capped by a cgroup
    limit when one is set; None when the system does not say."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            avail = None
    try:  # a container's memory limit can be tighter than the machine's free memory
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        if limit != "max":
            room = max(int(limit) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def _gib(b: float) -> str:
    return f"{b / 2**30:,.1f} GiB"


def _check_memory(n: int, n_covariates: int, n_binary: int) -> None:
    need = memory_estimate(n, n_covariates, n_binary)
    avail = available_memory()
    if avail is not None and need > avail:
        per_row = memory_estimate(1, n_covariates, n_binary)
        raise SpecError(
            f"n={n:,} is too large for the memory available: simulating {n:,} subjects with {n_covariates} "
            f"covariates needs about {_gib(need)} ({per_row} bytes per subject), but only {_gib(avail)} is "
            f"available. Simulate at most about {avail // per_row:,} subjects here, or several smaller cohorts "
            "with different seeds"
        )


# ------------------------------------------------------------------------------------------------ checks
def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _number(value, label: str, *, low: float | None = None, high: float | None = None, hint: str = "") -> float:
    """``value`` as a float if it is a finite real number with ``low < value < high``; else a SpecError."""
    rng = ("a finite number" if low is None and high is None else f"> {low:g} and finite" if high is None
           else f"< {high:g} and finite" if low is None else f"in ({low:g}, {high:g}) and finite")
    ok = _is_number(value) and math.isfinite(float(value))
    if ok:
        x = float(value)
        ok = (low is None or x > low) and (high is None or x < high)
    if not ok:
        got = "" if _is_number(value) else f" (got {type(value).__name__})"
        raise SpecError(f"{label}={value!r} must be {rng}{got}{hint}")
    return float(value)


def _pair(value, label: str, what: str) -> list:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise SpecError(f"{label}={value!r} must be [exposed, unexposed]: two {what}")
    return list(value)


def _unknown_keys(d: Mapping, valid, where: str) -> None:
    for key in d:
        if key not in valid:
            raise SpecError(f"{where}: unknown key {key!r}.{suggest(str(key), valid)} Valid keys: {sorted(valid)}")


def _mapping(value, where: str, what: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be a dict ({what}), got {type(value).__name__} {value!r}")
    return value


def _date(value, label: str) -> pd.Timestamp:
    """A date from a string ('2000-01-01'), a date/datetime or a numpy datetime64; else a SpecError."""
    fix = "write it as YYYY-MM-DD, e.g. '2000-01-01'"
    if not isinstance(value, (str, _dt.date, np.datetime64)):
        raise SpecError(f"{label}={value!r} is not a date ({type(value).__name__}); {fix}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpecError(f"{label}={value!r} is not a date that can be read ({exc}); {fix}") from None
    if ts is pd.NaT or pd.isna(ts):
        raise SpecError(f"{label}={value!r} is not a date (it reads as NaT, not a time); {fix}")
    if ts.tzinfo is not None:
        raise SpecError(f"{label}={value!r} has a time zone; give a calendar date without one, e.g. '2000-01-01'")
    return ts


def _check_sizes(n, n_exposed, where: str = "") -> None:
    pre = f"{where}: " if where else ""
    if not (_is_integer(n) and n > 0 and _is_integer(n_exposed) and 0 < n_exposed < n):
        raise SpecError(f"{pre}need integers 0 < n_exposed < n, got n={n!r}, n_exposed={n_exposed!r}; give the "
                        "cohort size n and the number exposed, e.g. n=8880, n_exposed=2195")


def _check_covariate(name, spec, where: str, extra=()) -> str:
    """One covariate's spec; returns its kind. ``extra``: further keys allowed (a spec file's documentation)."""
    _mapping(spec, where, "kind and its parameters")
    if "kind" not in spec:
        raise SpecError(f"{where}: missing key 'kind'; set kind to 'binary' or 'continuous'")
    kind = spec["kind"]
    if kind not in COVARIATE_KEYS:
        raise SpecError(f"{where}: kind={kind!r} must be 'binary' or 'continuous'.{suggest(str(kind), COVARIATE_KEYS)}")
    _unknown_keys(spec, (*COVARIATE_KEYS[kind], *extra), f"{where} ({kind})")
    if kind == "binary":
        if "prevalence" not in spec:
            raise SpecError(f"{where}: missing key 'prevalence' = [exposed, unexposed], each in (0, 1)")
        p = spec["prevalence"]
        if isinstance(p, np.ndarray):
            p = p.tolist()
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_number(q) and 0 < q < 1 for q in p)):
            raise SpecError(f"{where}: prevalence must be [exposed, unexposed] in (0, 1), got {spec['prevalence']!r}")
    else:
        for key in ("median", "spread"):
            if key not in spec:
                raise SpecError(f"{where}: missing key {key!r}; a continuous covariate needs median "
                                "[exposed, unexposed] and spread > 0 (its SD)")
        for j, m in enumerate(_pair(spec["median"], f"{where} median", "finite numbers")):
            _number(m, f"{where} median[{j}]")
        _number(spec["spread"], f"{where} spread", low=0, hint=" (the SD within each group)")
        if "center" in spec:
            _number(spec["center"], f"{where} center", hint=" (the value at which its log-HR is zero)")
    return kind


def _check_columns(covariates: Mapping, exposure, time, event, where: str = "covariates", top: str = "") -> None:
    """Column names: strings, distinct, and no covariate named like the exposure, time, event or implant date.

    ``where`` prefixes problems with a covariate's name, ``top`` those with the exposure, time and event names.
    """
    pre = f"{top}: " if top else ""
    roles = {"exposure": exposure, "time": time, "event": event}
    for role, col in roles.items():
        if not (isinstance(col, str) and col):
            raise SpecError(f"{pre}{role}={col!r} must be a non-empty column name (a string)")
    written = {exposure: f"the exposure column (exposure={exposure!r})", time: f"the time column (time={time!r})",
               event: f"the event column (event={event!r})", IMPLANT_DATE: f"the column of implant dates the "
               f"simulation writes ({IMPLANT_DATE!r})"}
    if len(written) < 4:
        raise SpecError(f"{pre}exposure={exposure!r}, time={time!r}, event={event!r} and {IMPLANT_DATE!r} must be "
                        "four different column names")
    for name in covariates:
        if not (isinstance(name, str) and name):
            raise SpecError(f"{where}: covariate name {name!r} must be a non-empty string")
        if name in written:
            raise SpecError(f"{where}: a covariate named {name!r} collides with {written[name]}: the cohort would "
                            f"hold one column for both and the covariate would replace it. Rename the covariate")


def _check_correlation(correlation, k: int, label: str = "correlation") -> None:
    _number(correlation, label)
    low = -1.0 / (k - 1) if k > 1 else -1.0
    if not low < correlation < 1:
        # an exchangeable correlation matrix of size k is positive definite only above -1/(k-1)
        raise SpecError(
            f"{label}={correlation!r} must be in ({low:.4g}, 1) for {k} binary covariates "
            "(a common correlation below -1/(k-1) is not a valid correlation matrix)"
        )


def _check_baseline(baseline, where: str = "baseline", extra=(), optional=()) -> None:
    """``optional``: keys that may be absent here (a spec's calibrated scale_years)."""
    _mapping(baseline, where, "kind and its parameters")
    kinds = BASELINE_KEYS
    if "kind" not in baseline:
        raise SpecError(f"{where}: missing key 'kind'; set kind to {' or '.join(map(repr, kinds))}")
    kind = baseline["kind"]
    if kind not in kinds:
        raise SpecError(f"{where} kind={kind!r} must be {' or '.join(map(repr, kinds))}."
                        f"{suggest(str(kind), kinds)}".rstrip("."))
    _unknown_keys(baseline, (*BASELINE_KEYS[kind], *extra), f"{where} ({kind})")
    for key in BASELINE_KEYS[kind][1:]:
        if key not in baseline and key not in optional:
            what = {"shape": "the Weibull shape, > 0", "scale_years": "the Weibull scale in years, > 0",
                    "cuts_years": "the cut points in years", "rates_per_year": "one more rate than cuts"}[key]
            raise SpecError(f"{where}: missing key {key!r} ({what})")
    if kind == "weibull":
        for key in ("shape", "scale_years"):
            if key in baseline:
                _number(baseline[key], f"{where} {key}", low=0)
        return
    cuts, rates = baseline["cuts_years"], baseline["rates_per_year"]
    for key, seq in (("cuts_years", cuts), ("rates_per_year", rates)):
        if not isinstance(seq, (list, tuple, np.ndarray)) or np.ndim(seq) != 1:
            raise SpecError(f"{where} {key}={seq!r} must be a list of numbers")
        for j, v in enumerate(seq):
            _number(v, f"{where} {key}[{j}]", low=0 if key == "rates_per_year" else None)
    c = np.asarray(cuts, float)
    if len(rates) != len(cuts) + 1 or np.any(c <= 0) or np.any(np.diff(c) <= 0):
        raise SpecError(
            f"{where}: piecewise baseline needs strictly increasing cuts_years > 0 and one more rate > 0 than cuts; "
            f"got cuts_years={list(cuts)!r}, rates_per_year={list(rates)!r}"
        )


def _check_accrual(accrual, where: str = "accrual", keys=ACCRUAL_KEYS) -> None:
    _mapping(accrual, where, "start, end and optionally close and trend")
    _unknown_keys(accrual, keys, where)
    for key in ("start", "end"):
        if key not in accrual:
            raise SpecError(f"{where}: missing key {key!r} (the {'first' if key == 'start' else 'last'} implant "
                            "date, e.g. '2000-01-01')")
    start, end = _date(accrual["start"], f"{where} start"), _date(accrual["end"], f"{where} end")
    if end <= start:
        raise SpecError(f"{where} end {accrual['end']} must be after start {accrual['start']}")
    if "close" in accrual and _date(accrual["close"], f"{where} close") < end:
        raise SpecError(
            f"{where} close {accrual['close']} is before the last implant date {accrual['end']}: implants "
            "after the close would have negative follow-up; set close on or after end"
        )
    if "trend" in accrual:
        _number(accrual["trend"], f"{where} trend", low=0,
                hint=" (implant volume on the last day relative to the first; 1 = uniform)")


def _check(n, n_exposed, covariates, log_hr, exposure_hr, baseline, accrual, correlation,
           exposure="upgrade", time="years", event="died", random_seed=None) -> None:
    _check_sizes(n, n_exposed)
    _mapping(covariates, "covariates", "{name: spec}")
    _check_columns(covariates, exposure, time, event)
    kinds = [_check_covariate(name, spec, f"covariate {name!r}") for name, spec in covariates.items()]
    _mapping(log_hr, "log_hr", "{covariate: log-HR}")
    for name, beta in log_hr.items():
        if name not in covariates:
            raise SpecError(f"log_hr given for {name!r}, which is not a simulated covariate ({list(covariates)})."
                            f"{suggest(str(name), covariates)}")
        _number(beta, f"log_hr[{name!r}]", hint=" (the log hazard ratio per unit of the covariate)")
    _number(exposure_hr, "exposure_hr", low=0, hint=" (the true conditional HR of exposure; 1 = no effect)")
    _check_baseline(baseline)
    _check_accrual(accrual)
    _check_correlation(correlation, kinds.count("binary"))
    if random_seed is not None and not (_is_integer(random_seed) and random_seed >= 0):
        raise SpecError(f"random_seed={random_seed!r} must be None or an integer >= 0")
