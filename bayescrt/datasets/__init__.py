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
