"""Simulated cohorts with known truth: the ground truth of gtools' tests and examples.

Two data-generating processes with treatment-confounder feedback, written as
explicit structural equations that the model families gtools fits represent
exactly (logistic, linear-gaussian, multinomial logit; dependence on the past
through ``lag1_X`` history features and baseline covariates only):

* :mod:`gtools.datasets.sepsis`: ICU patients followed daily for 28 days,
  vasopressors ``vaso``, death with discharge as censoring or competing event;
* :mod:`gtools.datasets.oncology`: monthly visits for 24 months, treatment
  switching, progression with loss to follow-up; and :func:`oncology_qol`, a
  continuous end-of-follow-up outcome with an exactly known SNMM blip.

Each module gives ``simulate(n, seed, regime=None, ...)`` (long format, one row
per person-interval), the truth under any :mod:`gtools.regimes` regime
(``true_risk``, ``true_cif``, ``true_mean`` and the ``*_from_history`` variants
for one person's counterfactual curve), the correctly specified models
(``*_MODELS``), the history features they need (``*_HISTORY``), the roles for
``gt.PersonTime.from_long(df, **ROLES)`` and the shipped samples
(:func:`load_sepsis`, :func:`load_oncology`, :func:`load_oncology_qol`).
The samples are rounded to 4 decimals: they are samples, the truth comes from
the generators.

A regime at interval t sees ``gtools.regimes.State`` with ``columns`` holding
the interval's covariates (already drawn), the baseline covariates, the time
column and the ``lag1_`` features of the covariates and the treatment;
``previous`` the treatment at t-1; ``natural`` the treatment drawn from the
natural-course treatment equation; ``uniform`` the uniform that drew it.
"""

from gtools.datasets import oncology, sepsis
from gtools.datasets.oncology import (
    ONCOLOGY_COEFS,
    ONCOLOGY_HISTORY,
    ONCOLOGY_MODELS,
    ONCOLOGY_QOL_MODELS,
    ONCOLOGY_QOL_OUTCOME,
    ONCOLOGY_QOL_ROLES,
    ONCOLOGY_QOL_TRUE_BLIP,
    ONCOLOGY_ROLES,
    load_oncology,
    load_oncology_qol,
    oncology_qol,
)
from gtools.datasets.sepsis import (
    SEPSIS_COEFS,
    SEPSIS_HISTORY,
    SEPSIS_MODELS,
    SEPSIS_ROLES,
    SEPSIS_ROLES_COMPETING,
    load_sepsis,
)

__all__ = [
    "sepsis",
    "oncology",
    "oncology_qol",
    "load_sepsis",
    "load_oncology",
    "load_oncology_qol",
    "SEPSIS_COEFS",
    "SEPSIS_MODELS",
    "SEPSIS_HISTORY",
    "SEPSIS_ROLES",
    "SEPSIS_ROLES_COMPETING",
    "ONCOLOGY_COEFS",
    "ONCOLOGY_MODELS",
    "ONCOLOGY_HISTORY",
    "ONCOLOGY_ROLES",
    "ONCOLOGY_QOL_MODELS",
    "ONCOLOGY_QOL_OUTCOME",
    "ONCOLOGY_QOL_ROLES",
    "ONCOLOGY_QOL_TRUE_BLIP",
]
