"""Recovery study: simulated data with known HRs, ties and censoring; 95% intervals must cover.

Off by default (``slow``); run with ``pytest -m slow tests/test_recovery.py -s``.
30 replicates x 3 covariates = 90 intervals. If the intervals are calibrated,
the number that cover the truth is Binomial(90, 0.95): mean 85.5, and
P(X <= 80) = 0.02, so fewer than 81 covering intervals fails the test.
"""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from seeds import seed

pytestmark = pytest.mark.slow

TRUE = {"x": 0.5, "treated": -0.7, "z": 0.3}


def simulate(seed: int, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    treated = rng.random(n) < 0.4
    z = 0.5 * x + rng.normal(size=n)  # correlated with x
    eta = TRUE["x"] * x + TRUE["treated"] * treated + TRUE["z"] * z
    t = (-np.log(rng.random(n)) / (0.1 * np.exp(eta))) ** (1 / 1.3)
    c = rng.uniform(2, 15, n)
    return pd.DataFrame({"time": np.ceil(np.minimum(t, c)),  # whole units: many ties
                         "event": (t <= c).astype(int), "x": x, "treated": treated, "z": z})


def test_95_percent_intervals_cover_the_truth():
    rows = []
    for rep in range(30):
        df = simulate(seed(1000 + rep))
        fit = bc.CoxPH().fit(df, time="time", event="event", covariates=list(TRUE), draws=1000, tune=1000,
                             chains=2, random_seed=seed(rep), progress=False)
        hr = fit.hazard_ratios()
        for cov, truth in TRUE.items():
            lo, hi = np.log(hr.loc[cov, ["hr_lower", "hr_upper"]].astype(float))
            rows.append({"rep": rep, "covariate": cov, "covered": lo <= truth <= hi,
                         "z": (hr.loc[cov, "log_hr_mean"] - truth) / hr.loc[cov, "log_hr_sd"],
                         "ties": int(df["time"].duplicated().sum()), "events": int(df["event"].sum()),
                         "diagnostics_ok": fit.diagnostics().ok})
    res = pd.DataFrame(rows)
    summary = res.groupby("covariate").agg(coverage=("covered", "mean"), mean_z=("z", "mean"), sd_z=("z", "std"))
    print("\n" + summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"overall coverage {res['covered'].mean():.3f} ({res['covered'].sum()}/{len(res)}); "
          f"events per data set {res['events'].mean():.0f}, tied rows per data set {res['ties'].mean():.0f}")
    assert res["diagnostics_ok"].all()
    assert res["covered"].sum() >= 81
