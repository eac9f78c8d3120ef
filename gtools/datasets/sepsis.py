"""Simulated sepsis ICU cohort with treatment-confounder feedback and known truth.

Patients are followed daily from ICU admission, days ``t = 0, 1, ..., 27``
(``K = 28``). Vasopressors (``vaso``) are started and stopped in response to
severity (``sofa``) and lactate (``lactate``), and they lower the next day's
severity and lactate: the classic setting where only g-methods are unbiased.

Structural equations
--------------------
Baseline (not modelled by the g-methods; the g-formula resamples it):

* ``age``    = round(N(64, 13^2)) clipped to [18, 95] (integer years);
* ``sex``    ~ Bernoulli(0.45);
* ``comorb`` ~ min(Poisson(1.3), 8) (comorbidity count).

Day ``t`` (``lag1_X`` is ``X`` on day ``t-1``, 0 on day 0; ``day = t``). The
same equations hold on every day including day 0, where the lags are 0, so a
model fitted on all rows or on days > 0 only is correctly specified either way:

* ``sofa``    = 3.4 + 0.4 lag1_sofa - 1.2 lag1_vaso + 0.03 age + 0.4 comorb
  - 0.06 day + N(0, 1.5^2)                           (gaussian, no clipping)
* ``lactate`` = 0.0 + 0.3 sofa + 0.2 lag1_lactate - 0.6 lag1_vaso - 0.02 day
  + N(0, 0.6^2)                                      (gaussian, no clipping; mmol/L)
* ``vaso``      ~ Bernoulli(expit(-3.6 + 0.22 sofa + 0.45 lactate + 2.0 lag1_vaso
  + 0.005 age - 0.1 sex - 0.04 day))                 (the natural course)
* ``discharge`` ~ Bernoulli(expit(0.3 - 0.3 sofa - 0.3 lactate - 0.8 vaso + 0.05 day))
* ``death``     ~ Bernoulli(expit(-9.4 + 0.25 sofa + 0.35 lactate + 0.5 vaso
  - 0.35 vaso:lactate - 0.2 lag1_vaso + 0.03 age + 0.15 comorb + 0.01 day))

Because the lags are 0 on day 0, patients are admitted less severe than they
become: mean sofa 5.8 on day 0 and about 8.2 on days 2-5; mean lactate 1.75
then about 2.6. About 48% of patients would have lactate above 4 on some day
within 28 days if nobody died or left (27% of the observed patients do).
Natural-course treatment probabilities lie in [0.05, 0.95] for about 98%
of person-days (1st-99th percentiles about 0.04-0.92).

``sofa`` and ``lactate`` are idealised linear-gaussian scores (a few values
fall below 0: about 1.5% of lactate values); they are not clipped so that the gaussian models are exact.
Vasopressors lower the hazard of death directly when lactate is above
``0.5 / 0.35 = 1.4`` mmol/L, and indirectly through lower severity and lactate
the next days, so "always" has a lower risk than "never".

Order within a day (gfoRmula convention): ``sofa``, ``lactate``, ``vaso``,
then ``discharge`` at the end of the day, then ``death``. ``discharge = 1`` on
a row means the patient left the ICU alive during that day: follow-up ends
and ``death`` is missing (NaN) on that row, whether discharge is treated as
censoring (``censoring=True``, default) or as a competing event
(``competing=True``). With ``censoring=False, competing=False`` nobody is
discharged and ``discharge`` is 0 throughout. Follow-up also ends on the day of
death, or after day 27.

Random numbers: one stream per role (baseline, sofa, lactate, vaso,
discharge, death) spawned from the seed, ``n`` draws per stream and day for
everyone. The natural treatment is ``natural = 1{u < p_vaso}``, and the same
uniform ``u`` is passed to the regime as ``state.uniform``; so
``simulate(n, s, regime=gtools.regimes.natural())`` equals ``simulate(n, s)``
exactly, and regimes are compared with common random numbers.

Estimands
---------
* :func:`true_risk`: ``P(Y^g_t = 1)``, the cumulative risk of death by the
  end of day t under regime g, had nobody been discharged (discharge
  eliminated, i.e. censoring abolished);
* :func:`true_cif`: the cumulative incidence of death by day t under g with
  discharge left in place as a competing event (not intervened on);
* :func:`true_risk_from_history`: one patient's counterfactual risk curve
  given their observed days 0..t*, alive and in the ICU at the end of day t*.

All are averages of each simulated person's conditional risk (running
products of the true hazards along the simulated path), with Monte Carlo SE;
``method="events"`` gives the brute-force fraction of simulated deaths instead.

Measured truth (``n = 200_000``, ``seed = 2024``; MC SE in brackets), risk of death
by day 27 (28-day risk) with discharge abolished, and cumulative incidence with
discharge as a competing event:

==================================================  ================  ================
regime                                              ``true_risk``     ``true_cif``
==================================================  ================  ================
natural course                                      0.2746 (0.0003)   0.1178 (0.0002)
always (``regimes.always()``)                       0.1700 (0.0002)   0.0830 (0.0002)
never (``regimes.never()``)                         0.4503 (0.0005)   0.2446 (0.0004)
``threshold("lactate", ">", 4, absorbing=True)``    0.2457 (0.0003)   0.1277 (0.0002)
==================================================  ================  ================

The observed data (natural course, discharge as censoring) have about 9.9
rows per patient; 87% are discharged and 12% die in the ICU.

Correct model specifications
----------------------------
``SEPSIS_MODELS`` (R-style formulas over the data's columns and the history
columns of ``SEPSIS_HISTORY``: ``lag1_sofa``, ``lag1_lactate``, ``lag1_vaso``)::

    sofa      ~ lag1_sofa + lag1_vaso + age + comorb + day                 gaussian
    lactate   ~ sofa + lag1_lactate + lag1_vaso + day                      gaussian
    vaso      ~ sofa + lactate + lag1_vaso + age + sex + day               binomial
    discharge ~ sofa + lactate + vaso + day                                binomial
    death     ~ sofa + lactate + vaso + vaso:lactate + lag1_vaso + age + comorb + day   binomial

``SEPSIS_COEFS`` holds the true coefficients and ``SEPSIS_SIGMA`` the residual
standard deviations, in the same term order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from gtools import history as _history
from gtools.datasets import _engine as E

__all__ = [
    "K",
    "SEPSIS_COEFS",
    "SEPSIS_SIGMA",
    "SEPSIS_MODELS",
    "SEPSIS_HISTORY",
    "SEPSIS_ROLES",
    "SEPSIS_ROLES_COMPETING",
    "SEPSIS_COLUMNS",
    "SAMPLE_N",
    "SAMPLE_SEED",
    "simulate",
    "true_risk",
    "true_cif",
    "true_risk_from_history",
    "history_features",
    "load_sepsis",
]

K = 28
TIME = "day"
SAMPLE_N = 5_000
SAMPLE_SEED = 20240528

SEPSIS_COEFS: dict[str, dict[str, float]] = {
    "sofa": {"Intercept": 3.4, "lag1_sofa": 0.4, "lag1_vaso": -1.2, "age": 0.03, "comorb": 0.4, "day": -0.06},
    "lactate": {"Intercept": 0.0, "sofa": 0.3, "lag1_lactate": 0.2, "lag1_vaso": -0.6, "day": -0.02},
    "vaso": {
        "Intercept": -3.6,
        "sofa": 0.22,
        "lactate": 0.45,
        "lag1_vaso": 2.0,
        "age": 0.005,
        "sex": -0.1,
        "day": -0.04,
    },
    "discharge": {"Intercept": 0.3, "sofa": -0.3, "lactate": -0.3, "vaso": -0.8, "day": 0.05},
    "death": {
        "Intercept": -9.4,
        "sofa": 0.25,
        "lactate": 0.35,
        "vaso": 0.5,
        "vaso:lactate": -0.35,
        "lag1_vaso": -0.2,
        "age": 0.03,
        "comorb": 0.15,
        "day": 0.01,
    },
}
SEPSIS_SIGMA = {"sofa": 1.5, "lactate": 0.6}

_FAMILY = {
    "sofa": "gaussian",
    "lactate": "gaussian",
    "vaso": "binomial",
    "discharge": "binomial",
    "death": "binomial",
}
SEPSIS_MODELS: dict[str, tuple[str, str]] = {
    name: (E.formula(name, coef), _FAMILY[name]) for name, coef in SEPSIS_COEFS.items()
}
SEPSIS_HISTORY = [("lag", "sofa", 1), ("lag", "lactate", 1), ("lag", "vaso", 1)]
SEPSIS_ROLES = dict(
    id="id",
    time="day",
    treatment="vaso",
    covariates=["sofa", "lactate"],
    baseline=["age", "sex", "comorb"],
    outcome="death",
    outcome_type="survival",
    censor="discharge",
)
SEPSIS_ROLES_COMPETING = {**SEPSIS_ROLES, "censor": None, "competing": "discharge"}
SEPSIS_COLUMNS = ["id", "day", "age", "sex", "comorb", "sofa", "lactate", "vaso", "death", "discharge"]
_DTYPES = {
    "id": "int64",
    "day": "int64",
    "age": "int64",
    "sex": "int64",
    "comorb": "int64",
    "sofa": "float64",
    "lactate": "float64",
    "vaso": "int64",
    "death": "float64",
    "discharge": "int64",
}
_ROLES = ("baseline", "sofa", "lactate", "vaso", "discharge", "death")
_BASELINE = ("age", "sex", "comorb")
_TV = ("sofa", "lactate", "vaso")


def history_features() -> list:
    """``SEPSIS_HISTORY`` as gtools history features: ``[gt.lag("sofa"), gt.lag("lactate"), gt.lag("vaso")]``."""
    return [_history.lag(src, k) for _, src, k in SEPSIS_HISTORY]


def _baseline(streams: E.Streams, n: int) -> dict[str, np.ndarray]:
    rng = streams.rng("baseline")
    age = np.clip(np.round(rng.normal(64.0, 13.0, n)), 18, 95)
    sex = (rng.random(n) < 0.45).astype(float)
    comorb = np.minimum(rng.poisson(1.3, n), 8).astype(float)
    return {"age": age, "sex": sex, "comorb": comorb}


def _paths(base, last, t0: int, streams: E.Streams, regime) -> Iterator[dict]:
    """Simulate days t0..K-1 for everyone (nobody is removed; callers apply events).

    ``base``: baseline arrays; ``last``: values of sofa, lactate, vaso on day
    t0-1 (zeros when t0 = 0). Yields, per day, the columns plus the discharge
    and death hazards and uniforms.
    """
    n = len(base["age"])
    C = SEPSIS_COEFS
    for t in range(t0, K):
        cols = dict(base)
        cols["day"] = np.full(n, float(t))
        for v in _TV:
            cols[f"lag1_{v}"] = last[v]
        cols["sofa"] = E.linpred(C["sofa"], cols, n) + SEPSIS_SIGMA["sofa"] * streams.normal("sofa", n)
        cols["lactate"] = E.linpred(C["lactate"], cols, n) + SEPSIS_SIGMA["lactate"] * streams.normal(
            "lactate", n
        )
        yield E.treat_then_hazards(C, cols, n, t, streams, regime, last["vaso"], "vaso", ("discharge", "death"))
        last = {v: cols[v] for v in _TV}


def simulate(n: int, seed=None, regime=None, censoring: bool = True, competing: bool = False) -> pd.DataFrame:
    """Simulate ``n`` patients, long format sorted by ``id, day``.

    Parameters
    ----------
    n : int
        Number of patients (ids 1..n).
    seed : int or numpy.random.SeedSequence
        Seed of the random streams.
    regime : callable or None
        A :mod:`gtools.regimes` regime (any ``State -> 0/1 array``); ``None``
        is the natural course (the observed data).
    censoring : bool
        Discharge alive ends follow-up as censoring (``discharge = 1``,
        ``death`` NaN on the last row).
    competing : bool
        Discharge is a competing event instead (same rows; use
        ``SEPSIS_ROLES_COMPETING``). Implies discharge happens.

    Returns
    -------
    pandas.DataFrame with columns ``SEPSIS_COLUMNS``.
    """
    n = int(n)
    streams = E.Streams(seed, _ROLES)
    base = _baseline(streams, n)
    last = {v: np.zeros(n) for v in _TV}
    discharge_on = censoring or competing
    at_risk = np.ones(n, dtype=bool)
    rec: dict[str, list[np.ndarray]] = {c: [] for c in SEPSIS_COLUMNS}
    risk_masks = []
    ids = np.arange(1, n + 1, dtype=float)
    for p in _paths(base, last, 0, streams, regime):
        dis = at_risk & (p["u_discharge"] < p["h_discharge"]) if discharge_on else np.zeros(n, dtype=bool)
        death = at_risk & ~dis & (p["u_death"] < p["h_death"])
        risk_masks.append(at_risk.copy())
        rec["id"].append(ids)
        for c in ("day", "age", "sex", "comorb", "sofa", "lactate", "vaso"):
            rec[c].append(p[c])
        rec["death"].append(np.where(dis, np.nan, death.astype(float)))
        rec["discharge"].append(dis.astype(float))
        at_risk = at_risk & ~dis & ~death
    df = E.long_format(rec, risk_masks, SEPSIS_COLUMNS)
    return df.astype(_DTYPES)


def _accumulate(base, last, t0, streams, regime, competing, method) -> E.RiskAccumulator:
    n = len(base["age"])
    acc = E.RiskAccumulator(n)
    dead = np.zeros(n, dtype=bool)
    gone = np.zeros(n, dtype=bool)
    for p in _paths(base, last, t0, streams, regime):
        h, c = p["h_death"], (p["h_discharge"] if competing else None)
        if method == "hazard":
            acc.add(h, c)
        elif method == "events":
            dis = ~gone & (p["u_discharge"] < p["h_discharge"]) if competing else np.zeros(n, dtype=bool)
            new = ~gone & ~dis & (p["u_death"] < h)
            dead |= new
            gone |= new | dis
            acc.add_events(dead)
        else:
            raise ValueError(f"method must be 'hazard' or 'events', got {method!r}")
    return acc


def true_risk(regime=None, n: int = 200_000, seed=2024, return_se: bool = False, method: str = "hazard"):
    """True cumulative risk of death by the end of each day under ``regime``, discharge abolished.

    Returns a Series indexed by ``day`` 0..27 (and its Monte Carlo SE as a
    second Series when ``return_se=True``). ``regime=None`` is the natural
    course. ``method="hazard"`` averages each simulated person's risk given
    their path (lower variance); ``"events"`` counts simulated deaths.
    """
    streams = E.Streams(seed, _ROLES)
    base = _baseline(streams, int(n))
    last = {v: np.zeros(int(n)) for v in _TV}
    acc = _accumulate(base, last, 0, streams, regime, False, method)
    return acc.result(range(K), TIME, return_se)


def true_cif(regime=None, n: int = 200_000, seed=2024, return_se: bool = False, method: str = "hazard"):
    """True cumulative incidence of death by each day under ``regime``, discharge a competing event.

    Discharge keeps its natural mechanism (it is not intervened on); a
    discharged patient cannot die in the ICU.
    """
    streams = E.Streams(seed, _ROLES)
    base = _baseline(streams, int(n))
    last = {v: np.zeros(int(n)) for v in _TV}
    acc = _accumulate(base, last, 0, streams, regime, True, method)
    return acc.result(range(K), TIME, return_se)


def true_risk_from_history(
    history_rows: pd.DataFrame,
    regime=None,
    n: int = 100_000,
    seed=2024,
    return_se: bool = False,
    competing: bool = False,
    method: str = "hazard",
):
    """One patient's true counterfactual risk curve given their observed days 0..t*.

    ``history_rows`` are the patient's rows (columns as in :func:`simulate`),
    days 0..t* with no gap, alive and in the ICU at the end of day t*
    (``death == 0``, ``discharge == 0`` on the last row). The patient is
    replicated ``n`` times and simulated forward from day t*+1 under
    ``regime`` (whose ``state.previous`` on day t*+1 is the observed ``vaso``
    on day t*). Returns the cumulative risk of death from day t*+1 to the end
    of each day, indexed by day t*+1..27, conditional on the observed history;
    discharge abolished (``competing=False``) or a competing event.
    """
    last = E.last_row(history_rows, "id", TIME, K, list(_BASELINE) + list(_TV) + ["death"])
    if last["death"] != 0 or ("discharge" in last.index and last["discharge"] != 0):
        raise ValueError("the patient must be alive and in the ICU at the end of the last observed day")
    n = int(n)
    t0 = int(last[TIME]) + 1
    streams = E.Streams(seed, _ROLES)
    base = {c: np.full(n, float(last[c])) for c in _BASELINE}
    prev = {v: np.full(n, float(last[v])) for v in _TV}
    acc = _accumulate(base, prev, t0, streams, regime, competing, method)
    return acc.result(range(t0, K), TIME, return_se)


def load_sepsis() -> pd.DataFrame:
    """The shipped sample: ``simulate(SAMPLE_N, SAMPLE_SEED)`` with floats rounded to 4 decimals.

    A sample for examples; the truth comes from the generator, not this file.
    """
    return E.read_sample("sepsis.csv.gz", _DTYPES)
