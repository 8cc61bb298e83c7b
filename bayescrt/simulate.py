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

import numpy as np
import pandas as pd
from scipy import stats

from .errors import SpecError

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
        present vs absent).
    exposure_hr : the true conditional HR of exposure.
    baseline : ``{"kind": "weibull", "shape": k, "scale_years": s}`` (hazard
        ``k/s (t/s)^(k-1)`` for a subject with all covariates at their centre
        and unexposed) or ``{"kind": "piecewise", "cuts_years": [...],
        "rates_per_year": [...]}`` (one more rate than cuts).
    accrual : ``{"start": "2000-01-01", "end": "2018-08-31", "trend": r}``:
        implant dates between start and end with density rising linearly so
        the last day is ``r`` times as likely as the first (``r = 1``:
        uniform); follow-up is censored at ``"close"`` (default: ``end``).
    correlation : latent correlation between binary covariates (0 = independent).
    """
    _check(n, n_exposed, covariates, log_hr, exposure_hr, baseline, accrual, correlation)
    rng = np.random.default_rng(random_seed)
    group = np.zeros(n, dtype=bool)
    group[:n_exposed] = True
    group = rng.permutation(group)
    cols: dict[str, np.ndarray] = {exposure: group.astype(int)}

    binary = [k for k, v in covariates.items() if v["kind"] == "binary"]
    if binary:
        R = np.full((len(binary), len(binary)), correlation)
        np.fill_diagonal(R, 1.0)
        z = rng.multivariate_normal(np.zeros(len(binary)), R, size=n)
        for j, name in enumerate(binary):
            p_exp, p_un = covariates[name]["prevalence"]
            p = np.where(group, p_exp, p_un)
            cols[name] = (z[:, j] < stats.norm.ppf(p)).astype(int)
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

    df = pd.DataFrame({**cols, "implant_date": implant, "years": years, "died": died.astype(int)})
    df = df[[exposure, *covariates, "implant_date", "years", "died"]]
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


def _check(n, n_exposed, covariates, log_hr, exposure_hr, baseline, accrual, correlation) -> None:
    if not (isinstance(n, int) and n > 0 and isinstance(n_exposed, int) and 0 < n_exposed < n):
        raise SpecError(f"need integers 0 < n_exposed < n, got n={n!r}, n_exposed={n_exposed!r}")
    for name, spec in covariates.items():
        kind = spec.get("kind")
        if kind == "binary":
            p = spec.get("prevalence")
            if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(0 < q < 1 for q in p)):
                raise SpecError(f"covariate {name!r}: prevalence must be [exposed, unexposed] in (0, 1), got {p!r}")
        elif kind == "continuous":
            if len(spec.get("median", ())) != 2 or not spec.get("spread", 0) > 0:
                raise SpecError(f"covariate {name!r}: needs median [exposed, unexposed] and spread > 0, got {spec!r}")
        else:
            raise SpecError(f"covariate {name!r}: kind={kind!r} must be 'binary' or 'continuous'")
    for name in log_hr:
        if name not in covariates:
            raise SpecError(f"log_hr given for {name!r}, which is not a simulated covariate ({list(covariates)})")
    if not exposure_hr > 0:
        raise SpecError(f"exposure_hr={exposure_hr!r} must be > 0")
    kind = baseline.get("kind")
    if kind == "weibull":
        if not (baseline.get("shape", 0) > 0 and baseline.get("scale_years", 0) > 0):
            raise SpecError(f"weibull baseline needs shape > 0 and scale_years > 0, got {baseline!r}")
    elif kind == "piecewise":
        cuts, rates = baseline.get("cuts_years", []), baseline.get("rates_per_year", [])
        c = np.asarray(cuts, float)
        if len(rates) != len(cuts) + 1 or any(r <= 0 for r in rates) or np.any(c <= 0) or np.any(np.diff(c) <= 0):
            raise SpecError(
                f"piecewise baseline needs strictly increasing cuts_years > 0 and one more rate > 0 than cuts; "
                f"got cuts_years={list(cuts)!r}, rates_per_year={list(rates)!r}"
            )
    else:
        raise SpecError(f"baseline kind={kind!r} must be 'weibull' or 'piecewise'")
    if pd.Timestamp(accrual["end"]) <= pd.Timestamp(accrual["start"]):
        raise SpecError(f"accrual end {accrual['end']} must be after start {accrual['start']}")
    if "close" in accrual and pd.Timestamp(accrual["close"]) < pd.Timestamp(accrual["end"]):
        raise SpecError(
            f"accrual close {accrual['close']} is before the last implant date {accrual['end']}: implants "
            "after the close would have negative follow-up; set close on or after end"
        )
    if accrual.get("trend", 1.0) <= 0:
        raise SpecError(f"accrual trend must be > 0, got {accrual.get('trend')!r}")
    k = sum(spec["kind"] == "binary" for spec in covariates.values())
    low = -1.0 / (k - 1) if k > 1 else -1.0
    if not low < correlation < 1:
        # an exchangeable correlation matrix of size k is positive definite only above -1/(k-1)
        raise SpecError(
            f"correlation={correlation!r} must be in ({low:.4g}, 1) for {k} binary covariates "
            "(a common correlation below -1/(k-1) is not a valid correlation matrix)"
        )
