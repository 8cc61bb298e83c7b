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
