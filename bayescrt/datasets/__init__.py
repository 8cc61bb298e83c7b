"""Public data sets bundled with bayescrt."""

from __future__ import annotations

from importlib import resources

import pandas as pd


def load_rossi() -> pd.DataFrame:
    """Recidivism of 432 prisoners released from Maryland state prisons (Rossi, Berk & Lenihan, 1980).

    Columns: ``week`` (week of first arrest or censoring at 52), ``arrest``
    (1 = arrested), ``fin`` (financial aid), ``age`` (years), ``race``,
    ``wexp`` (full-time work experience), ``mar`` (married), ``paro``
    (released on parole), ``prio`` (number of prior convictions).

    Source: P. H. Rossi, R. A. Berk and K. J. Lenihan (1980), *Money, Work and
    Crime: Some Experimental Results*, Academic Press; the public-use copy
    distributed with R's carData and with lifelines. Used here as a standard
    Cox-regression example (Fox & Weisberg, *An R Companion to Applied
    Regression*, appendix on Cox regression).
    """
    with resources.files(__package__).joinpath("rossi.csv").open() as fh:
        return pd.read_csv(fh)


def load_bcg() -> pd.DataFrame:
    """13 trials of the BCG vaccine against tuberculosis (Colditz et al., 1994), a standard meta-analysis example.

    Columns: ``trial``, ``author``, ``year``, ``tpos`` / ``tneg`` (vaccinated:
    tuberculosis cases / non-cases), ``cpos`` / ``cneg`` (controls), ``ablat``
    (absolute latitude of the trial, degrees).

    Source: G. A. Colditz, T. F. Brewer, C. S. Berkey et al. (1994), Efficacy of
    BCG vaccine in the prevention of tuberculosis: meta-analysis of the
    published literature, *JAMA* 271(9):698-702; the copy distributed with
    R's metafor package as ``dat.bcg``. With log risk ratios and REML, metafor
    reports mu = -0.7145 (SE 0.1798) and tau^2 = 0.3132.
    """
    with resources.files(__package__).joinpath("bcg.csv").open() as fh:
        return pd.read_csv(fh)


#: the log-HRs behind :func:`registry_extract` (per year of age, per 10 ml/min of eGFR, NYHA against II)
EXTRACT_LOG_HR = {"upgrade": 0.10, "age": 0.04, "male": 0.15, "egfr": -0.15, "diabetes": 0.25, "af": 0.20,
                  "nyha[I]": -0.30, "nyha[III]": 0.35, "nyha[IV]": 0.80}


def registry_extract(n: int = 1200, random_seed: int = 7, bad_rows: bool = False) -> pd.DataFrame:
    """A SYNTHETIC registry extract of CRT implants, messy as real ones are: simulated, no patient's data.

    One row per patient: ``id``, ``implant_date``, ``death_date`` (empty without a death) and
    ``last_seen`` as ISO 8601 text; ``upgrade`` (1: upgrade from a pacemaker or ICD, 0: de novo),
    ``age`` at implant, ``male``, ``nyha`` (text "I" to "IV", about 8% missing), ``egfr`` (ml/min,
    about 10% missing, more often among the patients who died: missing at random given the outcome),
    ``diabetes`` (about 10% missing) and ``af``. Upgrades are older, with more AF and lower eGFR.
    Deaths follow a Weibull proportional-hazards model with the log-HRs of ``EXTRACT_LOG_HR``
    (upgrade 0.10); follow-up ends at the first of death, loss to follow-up (``last_seen``) and the
    study's end, 2018-08-31. ``bad_rows=True`` adds three rows that a date check must report: a
    death before the implant, an impossible date (2012-02-30) and a missing implant date.
    """
    import numpy as np

    rng = np.random.default_rng(random_seed)
    up = (rng.random(n) < 0.25).astype(int)
    age = np.clip(rng.normal(67 + 4 * up, 10, n), 30, 95).round(0)
    male = (rng.random(n) < 0.72 + 0.06 * up).astype(int)
    af = (rng.random(n) < 0.30 + 0.15 * up).astype(int)
    diabetes = (rng.random(n) < 0.25).astype(int)
    egfr = np.clip(rng.normal(62 - 6 * up - 0.4 * (age - 67), 18, n), 8, 140).round(0)
    nyha = np.array(["I", "II", "III", "IV"])[(rng.random(n)[:, None] > np.column_stack(
        [np.full(n, 0.08), np.full(n, 0.50 - 0.05 * up), np.full(n, 0.92 - 0.04 * up)])).sum(axis=1)]
    b = EXTRACT_LOG_HR
    lp = (b["upgrade"] * up + b["age"] * (age - 67) + b["male"] * male + b["egfr"] * (egfr - 60) / 10
          + b["diabetes"] * diabetes + b["af"] * af
          + np.select([nyha == "I", nyha == "III", nyha == "IV"], [b["nyha[I]"], b["nyha[III]"], b["nyha[IV]"]], 0))
    implant = pd.Timestamp("2008-01-01") + pd.to_timedelta(rng.integers(0, 3650, n), unit="D")
    end = pd.Timestamp("2018-08-31")
    death_years = (-np.log(rng.random(n)) / (0.06 * np.exp(lp))) ** (1 / 1.2)
    lost_years = rng.exponential(25.0, n)
    death = implant + pd.to_timedelta(np.round(death_years * 365.25), unit="D")
    lost = implant + pd.to_timedelta(np.round(lost_years * 365.25), unit="D")
    died = (death <= end) & (death <= lost)
    seen = pd.Series(np.where(lost < end, lost, end), dtype="datetime64[ns]").where(~died)

    def iso(ts):
        return pd.Series(ts).dt.strftime("%Y-%m-%d").where(pd.Series(ts).notna(), "").to_numpy(object)

    df = pd.DataFrame({
        "id": [f"P{k:05d}" for k in range(1, n + 1)], "implant_date": iso(implant),
        "death_date": iso(pd.Series(death).where(died)), "last_seen": iso(seen),
        "upgrade": up, "age": age, "male": male, "nyha": nyha.astype(object), "egfr": egfr, "diabetes": diabetes.astype(float),
        "af": af})
    df.loc[rng.random(n) < 0.08, "nyha"] = None
    p_egfr = np.where(died, 0.16, 0.06)  # missing at random given the outcome
    df.loc[rng.random(n) < p_egfr, "egfr"] = np.nan
    df.loc[rng.random(n) < 0.10, "diabetes"] = np.nan
    df = df.replace({"death_date": {"": None}, "last_seen": {"": None}})
    if bad_rows:
        k = [5, 17, 42]
        df.loc[k[0], ["death_date", "last_seen"]] = [str((implant[k[0]] - np.timedelta64(30, "D")).date()), None]
        df.loc[k[1], "implant_date"] = "2012-02-30"
        df.loc[k[2], "implant_date"] = None
    df.attrs["synthetic"] = True
    return df
