"""Multiple imputation against complete cases on a simulated cohort with a confounder missing at random.

A cohort of N with exposure x, confounder c (correlated with x, a true log-HR of its own), Weibull
times and censoring. 20% of c is then removed with a probability that depends on the outcome and
the exposure (missing at random given what is observed). Three Cox fits of x's log-HR:

- the full data (before any value was removed): the reference;
- complete cases: biased, because whether c is missing depends on the outcome;
- bc.impute (m imputations, outcome in the imputation model) and the pooled fit.

Prints each posterior's mean and SD, its distance from the truth and from the full-data fit in SDs,
the fraction of missing information, and the time taken.

    python benchmarks/imputation.py [--n 3000] [--m 20] [--seed 1] [--binary] [--competing]

``--binary`` makes the confounder a 0/1 comorbidity, imputed by bootstrap logistic regression.
``--competing``: two competing causes (:func:`competing_cohort`), c removed more often after either
cause, and the cause-specific Weibull fits of bc.CompetingRisks on the full data, the complete cases
and the imputations (the outcome entered as each cause's indicator and Nelson-Aalen cumulative hazard).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescrt as bc

TRUE_X, TRUE_C = 0.3, 0.7


def cohort(n: int, seed: int, binary: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.4).astype(int)
    if binary:  # a comorbidity: P(c = 1) = 0.38 unexposed, 0.62 exposed
        c = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 1.0 * x)))).astype(float)
    else:
        c = 0.8 * x + rng.normal(0, 1, n)
    t = (-np.log(rng.random(n)) / (0.2 * np.exp(TRUE_X * x + TRUE_C * c))) ** (1 / 1.3)
    cens = rng.uniform(0.5, 6, n)
    full = pd.DataFrame({"years": np.minimum(t, cens), "died": (t <= cens).astype(int), "x": x, "c": c})
    # missing at random given the outcome and the exposure: deaths and the exposed lose c more often
    logit = -3.0 + 2.0 * full["died"] + 1.0 * x + 1.0 * full["died"] * x
    p = 1 / (1 + np.exp(-logit))
    p *= 0.2 / p.mean()  # 20% missing on average
    miss = rng.random(n) < p
    return full, full.assign(c=np.where(miss, np.nan, full["c"]))


# competing causes: cause 1 (e.g. HF hospitalisation) depends strongly on c, cause 2 (death) weakly
TRUE_COMPETING = {"cause 1": {"x": 0.3, "c": 0.7}, "cause 2": {"x": -0.2, "c": 0.2}}


def competing_cohort(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Constant cause-specific hazards 0.15 exp(0.3 x + 0.7 c) and 0.10 exp(-0.2 x + 0.2 c), c = 0.8 x + N(0, 1),
    censoring uniform on 0.5-6 years; 20% of c removed, more often after either cause and among the exposed."""
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.4).astype(int)
    c = 0.8 * x + rng.normal(0, 1, n)
    rates = np.column_stack([base * np.exp(b["x"] * x + b["c"] * c)
                             for base, b in zip((0.15, 0.10), TRUE_COMPETING.values())])
    t = rng.exponential(1 / rates.sum(axis=1))
    cause = 1 + (rng.random(n) < rates[:, 1] / rates.sum(axis=1))
    cens = rng.uniform(0.5, 6, n)
    status = np.where(t <= cens, cause, 0)
    full = pd.DataFrame({"years": np.minimum(t, cens), "status": status, "x": x, "c": c})
    logit = -3.0 + 2.5 * (status == 1) + 1.0 * (status == 2) + 1.0 * x
    p = 1 / (1 + np.exp(-logit))
    p *= 0.2 / p.mean()
    miss = rng.random(n) < p
    return full, full.assign(c=np.where(miss, np.nan, full["c"]))


def main_competing(a) -> None:
    full, holed = competing_cohort(a.n, a.seed)
    kw = dict(time="years", event="status", covariates=["x", "c"], progress=False, random_seed=a.seed)
    model = bc.CompetingRisks(family=bc.WeibullPH())
    rows, t0 = {}, time.perf_counter()
    fits = {"full data": model.fit(full, **kw)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.DataWarning)
        fits["complete cases"] = model.fit(holed, missing="drop", **kw)
    t0 = time.perf_counter()
    done = bc.impute(holed, m=a.m, time="years", event="status", exposure="x", random_seed=a.seed)
    fits[f"imputed (m = {a.m})"] = pooled = model.fit(done, **kw)
    t_fit = time.perf_counter() - t0
    print(f"N = {a.n}, {int(holed.c.isna().sum())} of c missing ({100 * holed.c.isna().mean():.1f}%); imputation and "
          f"pooled fits took {t_fit:.1f} s; true log-HRs of x: "
          + ", ".join(f"{k} {v['x']}" for k, v in TRUE_COMPETING.items()))
    for cause, truth in TRUE_COMPETING.items():
        ref = fits["full data"].fits[cause].log_hr_draws()[:, 0].mean()
        for name, f in fits.items():
            d = f.fits[cause].log_hr_draws()[:, 0]
            rows[(cause, name)] = {"mean": d.mean(), "sd": d.std(), "(mean - truth) / sd": (d.mean() - truth["x"]) / d.std(),
                                   "(mean - full) / sd": (d.mean() - ref) / d.std(),
                                   "95% interval covers truth": bool(np.quantile(d, 0.025) < truth["x"] < np.quantile(d, 0.975)),
                                   "diagnostics ok": f.fits[cause].diagnostics().ok}
    print(pd.DataFrame(rows).T.to_string(float_format=lambda v: f"{v:.3f}"))
    for cause in TRUE_COMPETING:
        print(f"\nfraction of missing information, {cause}:\n"
              + pooled.fits[cause].missing_information().to_string(float_format=lambda v: f"{v:.4f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--binary", action="store_true", help="the confounder is binary (imputed by logistic regression)")
    ap.add_argument("--competing", action="store_true", help="two competing causes, bc.CompetingRisks")
    a = ap.parse_args()
    if a.competing:
        return main_competing(a)
    full, holed = cohort(a.n, a.seed, a.binary)
    kw = dict(time="years", event="died", covariates=["x", "c"], progress=False, random_seed=a.seed)
    rows = {}
    t0 = time.perf_counter()
    ref = bc.CoxPH().fit(full, **kw)
    rows["full data"] = (ref.log_hr_draws()[:, 0], time.perf_counter() - t0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bc.DataWarning)
        cc = bc.CoxPH().fit(holed, missing="drop", **kw)
    rows["complete cases"] = (cc.log_hr_draws()[:, 0], time.perf_counter() - t0)
    t0 = time.perf_counter()
    done = bc.impute(holed, m=a.m, time="years", event="died", exposure="x", random_seed=a.seed)
    t_imp = time.perf_counter() - t0
    pooled = bc.CoxPH().fit(done, **kw)
    rows[f"imputed (m = {a.m})"] = (pooled.log_hr_draws()[:, 0], time.perf_counter() - t0)
    ref_mean = rows["full data"][0].mean()
    print(f"N = {a.n}, {int(holed.c.isna().sum())} of {'binary ' if a.binary else ''}c missing ({100 * holed.c.isna().mean():.1f}%), "
          f"true log-HR of x = {TRUE_X}; imputation took {t_imp:.1f} s")
    tab = pd.DataFrame({name: {"mean": d.mean(), "sd": d.std(), "(mean - truth) / sd": (d.mean() - TRUE_X) / d.std(),
                               "(mean - full) / sd": (d.mean() - ref_mean) / d.std(),
                               "95% interval covers truth": bool(np.quantile(d, 0.025) < TRUE_X < np.quantile(d, 0.975)),
                               "seconds": s} for name, (d, s) in rows.items()}).T
    print(tab.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nfraction of missing information:\n" + pooled.missing_information().to_string(float_format=lambda v: f"{v:.4f}"))
    print("pooled diagnostics ok:", pooled.diagnostics().ok)


if __name__ == "__main__":
    main()
