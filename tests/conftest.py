"""Shared small fixtures. Keep this file tiny: larger data belongs in the test that uses it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def long_df() -> pd.DataFrame:
    """A hand-made survival table of 4 persons and 9 rows, in days on a 7-day grid.

    * person 1: days 0, 7, 14; treated, treated, untreated; event on day 14;
    * person 2: days 0, 7; censored on day 7 (outcome missing there);
    * person 3: days 0, 7, 14; never treated; competing event on day 14;
    * person 4: day 0 only; treated; end of follow-up without event.

    Columns: ``id``, ``day``, treatment ``A``, time-varying ``L``, baseline
    ``V``, outcome ``Y``, censoring ``C``, competing event ``D``.
    """
    return pd.DataFrame(
        {
            "id": [1, 1, 1, 2, 2, 3, 3, 3, 4],
            "day": [0, 7, 14, 0, 7, 0, 7, 14, 0],
            "A": [1, 1, 0, 0, 1, 0, 0, 0, 1],
            "L": [0.5, 1.5, 2.5, 1.0, 2.0, 3.0, 3.5, 4.0, 0.1],
            "V": [60.0, 60.0, 60.0, 45.0, 45.0, 70.0, 70.0, 70.0, 52.0],
            "Y": [0, 0, 1, 0, np.nan, 0, 0, 0, 0],
            "C": [0, 0, 0, 0, 1, 0, 0, 0, 0],
            "D": [0, 0, 0, 0, 0, 0, 0, 1, 0],
        }
    )


@pytest.fixture
def long_roles() -> dict:
    """The from_long roles of :func:`long_df`."""
    return dict(id="id", time="day", treatment="A", covariates=["L"], baseline=["V"], outcome="Y",
                outcome_type="survival", censor="C", competing="D")
