"""Frailty recovery study: clustered survival data with a known cluster SD and exposure HR.

Off by default (``slow``); run with ``pytest -m slow tests/test_frailty_recovery.py -s``.
20 replicates, 20 clusters each, true frailty SD 0.5 and exposure log-HR 0.26. If the 95%
intervals are calibrated, the number covering each truth is Binomial(20, 0.95): mean 19 and
P(X <= 15) = 0.016, so fewer than 16 of 20 fails. (The SD's coverage is only approximately
nominal at a fixed true value with 20 clusters; the prior is HalfNormal(1).)
"""

import numpy as np
import pandas as pd
import pytest

import bayescrt as bc
from seeds import seed

pytestmark = pytest.mark.slow

SD, LOG_HR = 0.5, 0.26


def simulate(seed: int, n: int = 800, clusters: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centre = rng.integers(0, clusters, n)
    b = rng.normal(0, SD, clusters)
    exposed = rng.random(n) < 0.3
    age = rng.normal(70, 10, n)
    eta = LOG_HR * exposed + 0.03 * (age - 70) + b[centre]
    t = (-np.log(rng.random(n)) / (0.15 * np.exp(eta))) ** (1 / 1.2)
    c = rng.uniform(1, 8, n)
    # times in hundredths of a year, rounded up: ties, and never 0
    return pd.DataFrame({"years": np.ceil(np.minimum(t, c) * 100) / 100, "died": (t <= c).astype(int),
                         "exposed": exposed, "age": age, "centre": [f"c{j:02d}" for j in centre]})


def test_frailty_sd_and_exposure_intervals_cover_the_truth():
    rows = []
    for rep in range(20):
        df = simulate(seed(2000 + rep))
        fit = bc.CoxPH().fit(df, time="years", event="died", covariates=["exposed", "age"], cluster="centre",
                             random_seed=seed(rep), progress=False)
        hr = fit.hazard_ratios().loc["exposed"]
        sd = fit.frailty().loc["SD"]
        rows.append({"rep": rep, "events": int(df.died.sum()),
                     "hr_covered": np.log(hr.hr_lower) <= LOG_HR <= np.log(hr.hr_upper),
                     "sd_covered": sd["lower"] <= SD <= sd["upper"], "sd_median": sd["median"],
                     "log_hr_mean": hr.log_hr_mean, "divergences": int(fit.diagnostics().gates.loc["divergences", "value"]),
                     "diagnostics_ok": fit.diagnostics().ok})
    res = pd.DataFrame(rows)
    print("\n" + res.to_string())
    print(f"coverage: exposure HR {res.hr_covered.sum()}/20, frailty SD {res.sd_covered.sum()}/20; "
          f"mean SD median {res.sd_median.mean():.3f} (truth {SD}); mean log-HR {res.log_hr_mean.mean():.3f} "
          f"(truth {LOG_HR}); events per data set {res.events.mean():.0f}")
    assert res.diagnostics_ok.all()
    assert res.hr_covered.sum() >= 16 and res.sd_covered.sum() >= 16
