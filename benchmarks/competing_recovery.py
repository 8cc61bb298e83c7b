"""Recovery of competing-risks fits over simulated replicates: the acceptance figures of the competing-risks work.

    python benchmarks/competing_recovery.py [--replicates 20] [--first-seed 1000] [--n 1500] [--draws 500]

Each replicate: n subjects with a 0/1 exposure x (P = 0.4) and a normal z; two causes with constant
cause-specific hazards 0.08 exp(0.5 x + 0.3 z) and 0.05 exp(-0.3 x); censoring uniform on 0-8 years.
Cause 1 is fitted by CoxPH, cause 2 by WeibullPH (bc.CompetingRisks, 4 chains of --draws), and cause 1
also by bc.FineGray. Printed:

- coverage of the 95% intervals of every cause's log-HRs (x and z; 4 per replicate);
- coverage of the 95% bands of the cumulative incidence of both causes, standardised over the cohort's z
  with x set to 0 and to 1, at 2 and 5 years (8 per replicate), against the truth averaged over the same z;
- max |posterior mean - lifelines' CoxPHFitter MLE| / posterior SD for cause 1 (other cause censored);
- max |posterior mean - the Newton-Raphson MLE of the same weighted likelihood| / posterior SD for the
  Fine-Gray fit (bayescrt.families.finegray.finegray_mle, which the tests hold to lifelines on the
  finegray-expanded rows to 1e-6);
- the standardised incidence without covariates against lifelines' Aalen-Johansen at 5 times (first
  replicate): inside its pointwise 95% band or not.

The intervals of one replicate are correlated (two horizons, two groups), so the coverage's Monte Carlo
error is larger than a binomial count of them suggests.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescrt as bc
from bayescrt.families.finegray import finegray_mle

RATES = (0.08, 0.05)
BETA = {1: {"x": 0.5, "z": 0.3}, 2: {"x": -0.3, "z": 0.0}}


def cohort(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.4).astype(int)
    z = rng.normal(size=n)
    lam = np.column_stack([r * np.exp(BETA[k]["x"] * x + BETA[k]["z"] * z) for k, r in zip((1, 2), RATES)])
    t = rng.exponential(1 / lam.sum(axis=1))
    cause = 1 + (rng.random(n) < lam[:, 1] / lam.sum(axis=1))
    c = rng.uniform(0, 8, n)
    return pd.DataFrame({"years": np.minimum(t, c), "status": np.where(t <= c, cause, 0), "x": x, "z": z})


def true_cif(z: np.ndarray, x: int, times) -> np.ndarray:
    """(times, causes): the cumulative incidence averaged over the cohort's z with x set."""
    lam = np.stack([r * np.exp(BETA[k]["x"] * x + BETA[k]["z"] * z) for k, r in zip((1, 2), RATES)])  # (2, n)
    tot = lam.sum(axis=0)
    t = np.asarray(times, float)[:, None, None]
    return (lam / tot * (1 - np.exp(-tot * t))).mean(axis=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--draws", type=int, default=500)
    a = ap.parse_args()
    from lifelines import AalenJohansenFitter, CoxPHFitter

    model = bc.CompetingRisks(families={"cause 1": bc.CoxPH(), "cause 2": bc.WeibullPH()})
    hr_hits, cif_hits, cox_gap, fg_gap, failed = [], [], [], [], 0
    horizons = [2.0, 5.0]
    t0 = time.perf_counter()
    for r in range(a.replicates):
        seed = a.first_seed + r
        df = cohort(a.n, seed)
        kw = dict(time="years", event="status", covariates=["x", "z"], draws=a.draws, chains=4, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bc.DiagnosticsWarning)
            fit = model.fit(df, random_seed=seed, **kw)
            fg = bc.FineGray().fit(df, cause="cause 1", random_seed=seed + 10_000, **kw)
            draws = fit.cumulative_incidence_draws(horizons, exposure="x", random_seed=seed)
        failed += (not fit.ok) + (not fg.diagnostics().ok)
        for k, cause in ((1, "cause 1"), (2, "cause 2")):
            d = fit.fits[cause].log_hr_draws()
            for j, c in enumerate(("x", "z")):
                lo, hi = np.quantile(d[:, j], [0.025, 0.975])
                hr_hits.append(lo < BETA[k][c] < hi)
        for v in (0, 1):
            truth = true_cif(df["z"].to_numpy(), v, horizons)
            for k in range(2):
                for i in range(len(horizons)):
                    lo, hi = np.quantile(draws[:, k, v, i], [0.025, 0.975])
                    cif_hits.append(lo < truth[i, k] < hi)
        ref = CoxPHFitter().fit(df.assign(e=(df.status == 1).astype(int))[["years", "e", "x", "z"]], "years", "e")
        d = fit.fits["cause 1"].log_hr_draws()
        cox_gap.append(max(abs(d[:, j].mean() - ref.params_[c]) / d[:, j].std() for j, c in enumerate(("x", "z"))))
        mle = finegray_mle(bc.FineGray().prepare(df, time="years", event="status", cause="cause 1",
                                                  covariates=["x", "z"]))["coef"]
        d = fg.log_hr_draws()
        fg_gap.append(max(abs(d[:, j].mean() - mle[c]) / d[:, j].std() for j, c in enumerate(("x", "z"))))
        if r == 0:  # no covariates: the standardised incidence is the cohort's, which Aalen-Johansen estimates
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", bc.DiagnosticsWarning)
                crude = bc.CompetingRisks(family=bc.WeibullPH()).fit(df.assign(one=1), random_seed=seed,
                                                                     **{**kw, "covariates": ["x"]})
                times = [0.5, 1.5, 3.0, 5.0, 7.0]
                by = crude.cumulative_incidence_draws(times, exposure="x", random_seed=seed)
            share = df["x"].mean()
            coh = (1 - share) * by[:, :, 0] + share * by[:, :, 1]
            inside = []
            for k in (1, 2):
                aj = AalenJohansenFitter(calculate_variance=True).fit(df["years"], df["status"], event_of_interest=k)
                est, var = aj.cumulative_density_.iloc[:, 0], aj.variance_
                for i, t in enumerate(times):
                    m, s = est[est.index <= t].iloc[-1], np.sqrt(var[var.index <= t].iloc[-1])
                    inside.append(abs(np.median(coh[:, k - 1, i]) - m) <= 1.96 * s)
        print(f"replicate {r + 1}/{a.replicates} (seed {seed}): {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\n{a.replicates} replicates, n = {a.n}, 4 chains x {a.draws} draws; fits failing their gates: {failed}")
    print(f"coverage of 95% intervals, cause-specific log-HRs: {np.mean(hr_hits):.3f} ({len(hr_hits)} intervals)")
    print(f"coverage of 95% bands, standardised cumulative incidence at 2 and 5 years: {np.mean(cif_hits):.3f} "
          f"({len(cif_hits)} bands)")
    print(f"Cox cause vs lifelines CoxPHFitter, max |mean - MLE| / SD: {max(cox_gap):.3f}")
    print(f"Fine-Gray vs its Newton-Raphson MLE, max |mean - MLE| / SD: {max(fg_gap):.3f}")
    print(f"standardised incidence (x alone, cohort mix) inside Aalen-Johansen's 95% band: {sum(inside)} of {len(inside)}")


if __name__ == "__main__":
    main()
