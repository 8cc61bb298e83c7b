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
import math
import os

import numpy as np
import pandas as pd
from scipy import stats

from .cohort_schema import (IMPLANT_DATE, check_accrual, check_baseline, check_columns, check_correlation,
                            check_covariate, check_sizes, is_integer, mapping, number)
from .errors import SpecError, suggest

DAYS_PER_YEAR = 365.25


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


def _check(n, n_exposed, covariates, log_hr, exposure_hr, baseline, accrual, correlation,
           exposure="upgrade", time="years", event="died", random_seed=None) -> None:
    check_sizes(n, n_exposed)
    mapping(covariates, "covariates", "{name: spec}")
    check_columns(covariates, exposure, time, event)
    kinds = [check_covariate(name, spec, f"covariate {name!r}") for name, spec in covariates.items()]
    mapping(log_hr, "log_hr", "{covariate: log-HR}")
    for name, beta in log_hr.items():
        if name not in covariates:
            raise SpecError(f"log_hr given for {name!r}, which is not a simulated covariate ({list(covariates)})."
                            f"{suggest(str(name), covariates)}")
        number(beta, f"log_hr[{name!r}]", hint=" (the log hazard ratio per unit of the covariate)")
    number(exposure_hr, "exposure_hr", low=0, hint=" (the true conditional HR of exposure; 1 = no effect)")
    check_baseline(baseline)
    check_accrual(accrual)
    check_correlation(correlation, kinds.count("binary"))
    if random_seed is not None and not (is_integer(random_seed) and random_seed >= 0):
        raise SpecError(f"random_seed={random_seed!r} must be None or an integer >= 0")


def simulate_competing(n: int, n_exposed: int, *, covariates: dict, causes: dict, accrual: dict,
                       exposure: str = "upgrade", time: str = "years", event: str = "event", correlation: float = 0.0,
                       random_seed: int | None = None) -> pd.DataFrame:
    """A cohort with competing events: each cause has its own proportional-hazards model.

    ``causes``: ``{name: {"baseline": {...}, "log_hr": {...}, "exposure_hr": hr}}`` in the order of their
    codes (1, 2, ...), each model as :func:`simulate` takes it (a Weibull or piecewise-constant baseline). Each
    subject draws a latent time per cause by exact inversion; the first one ends follow-up with that cause's
    code in ``event`` unless administrative censoring comes first (code 0). The covariates, accrual and
    censoring are :func:`simulate`'s. ``df.attrs["truth"]["causes"]`` holds every cause's model, from which
    :func:`true_cumulative_incidence` computes the true cumulative incidences."""
    if not isinstance(causes, dict) or len(causes) < 2:
        raise SpecError(f"causes={causes!r} must map at least two cause names to their models, e.g. "
                        "{'hf_hosp': {...}, 'death': {...}}")
    models = {}
    for name, model in causes.items():
        if not isinstance(name, str) or not name or not isinstance(model, dict):
            raise SpecError(f"causes: {name!r} must be a name (text) with a model (a table), got {model!r}")
        unknown = sorted(set(model) - {"baseline", "log_hr", "exposure_hr"})
        if unknown or "baseline" not in model:
            raise SpecError(f"causes[{name!r}]: give baseline (and log_hr, exposure_hr); unknown keys {unknown}")
        models[name] = {"baseline": model["baseline"], "log_hr": dict(model.get("log_hr", {})),
                        "exposure_hr": model.get("exposure_hr", 1.0)}
    seeds = np.random.SeedSequence(random_seed).spawn(2)
    first = next(iter(models.values()))
    base = simulate(n, n_exposed, covariates=covariates, log_hr=first["log_hr"], exposure_hr=first["exposure_hr"],
                    baseline=first["baseline"], accrual=accrual, exposure=exposure, time=time, event=event,
                    correlation=correlation, random_seed=int(seeds[0].generate_state(1)[0]))
    for name, m in models.items():  # every cause's model checked as simulate checks one
        _check(n, n_exposed, covariates, m["log_hr"], m["exposure_hr"], m["baseline"], accrual, correlation,
               exposure, time, event, random_seed)
    truth = base.attrs["truth"]
    close = pd.Timestamp(accrual.get("close", accrual["end"]))
    t_admin = ((close - pd.DatetimeIndex(base[IMPLANT_DATE])).days.to_numpy() + 0.5) / DAYS_PER_YEAR
    rng = np.random.default_rng(seeds[1])
    latent = np.column_stack([_inverse_cumulative_hazard(rng.exponential(size=n) * np.exp(-_eta(base, m, truth, exposure)),
                                                         m["baseline"]) for m in models.values()])
    first_time, cause = latent.min(axis=1), latent.argmin(axis=1) + 1
    ended = first_time <= t_admin
    df = base.assign(**{time: np.where(ended, first_time, t_admin), event: np.where(ended, cause, 0)})
    df.attrs.update(synthetic=True, truth={**{k: v for k, v in truth.items() if k not in ("log_hr", "exposure_hr",
                                                                                       "baseline")},
                                           "causes": copy.deepcopy(models), "cause_codes": {k + 1: c for k, c in
                                                                                          enumerate(models)}})
    return df


def _eta(df: pd.DataFrame, model: dict, truth: dict, exposure: str) -> np.ndarray:
    """A cause's linear predictor of every row (covariates at their centres contribute 0)."""
    eta = math.log(model["exposure_hr"]) * df[exposure].to_numpy(float)
    for name, beta in model["log_hr"].items():
        eta = eta + beta * (df[name].to_numpy(float) - truth["centers"][name])
    return eta


def _baseline_cumhaz(t: np.ndarray, baseline: dict) -> np.ndarray:
    if baseline["kind"] == "weibull":
        return (t / baseline["scale_years"]) ** baseline["shape"]
    cuts = np.concatenate([[0.0], np.asarray(baseline["cuts_years"], float)])
    rates = np.asarray(baseline["rates_per_year"], float)
    H = np.concatenate([[0.0], np.cumsum(rates[:-1] * np.diff(cuts))])
    k = np.searchsorted(cuts, t, side="right") - 1
    return H[k] + rates[k] * (t - cuts[k])


def true_cumulative_incidence(df: pd.DataFrame, times, *, exposure_value: int | None = None,
                              steps: int = 4_000) -> pd.DataFrame:
    """The true cumulative incidence of every cause of a :func:`simulate_competing` cohort, averaged over its
    rows (with the exposure set to ``exposure_value`` in every row, if given): a DataFrame (times x causes).

    ``F_k(t) = int_0^t S(u) dH_k(u)``, on ``steps`` even steps to ``max(times)`` (and the times themselves),
    by :func:`bayescrt.competing.incidence_from_hazards`: exact where the causes' hazards are proportional
    within a step, as for constant or common-shape hazards."""
    from .competing import incidence_from_hazards  # the one formula, shared with the fitted model

    truth = df.attrs.get("truth", {})
    if "causes" not in truth:
        raise SpecError("df is not a simulate_competing cohort (its attrs['truth'] has no causes)")
    times = np.atleast_1d(np.asarray(times, float))
    if not np.isfinite(times).all() or (times < 0).any():
        raise SpecError(f"times={times.tolist()} must be finite times >= 0")
    exposure = truth["exposure"]
    rows = df if exposure_value is None else df.assign(**{exposure: int(exposure_value)})
    models = list(truth["causes"].values())
    r = np.column_stack([np.exp(_eta(rows, m, truth, exposure)) for m in models])  # (n, K)
    uniq, counts = np.unique(r, axis=0, return_counts=True)
    grid = np.union1d(np.linspace(0.0, float(times.max()), steps + 1), times)  # the times asked for exactly
    H0 = np.stack([_baseline_cumhaz(grid, m["baseline"]) for m in models])  # (K, T)
    idx = np.searchsorted(grid, times)
    Fbar = np.zeros((len(models), len(grid)))
    step = max(1, 4_000_000 // (len(models) * len(grid)))
    for a in range(0, len(uniq), step):  # blocks of distinct subjects: memory stays bounded
        F = incidence_from_hazards(uniq[a:a + step, :, None] * H0[None])  # (u, K, T)
        Fbar += np.tensordot(counts[a:a + step] / counts.sum(), F, axes=1)
    return pd.DataFrame(Fbar[:, idx].T, index=pd.Index(times, name="time"), columns=list(truth["causes"]))
