"""Simulated oncology registry with treatment switching, and a quality-of-life variant.

Two data-generating processes share the covariate and treatment equations:

* :func:`simulate`: monthly visits ``t = 0, ..., 23`` (``K = 24``), event
  ``progression`` (progression or death, a monthly hazard), censoring ``lost``
  (loss to follow-up);
* :func:`oncology_qol`: ``n_visits`` monthly visits (default 6), no
  progression, no censoring unless ``censoring=True``, and a continuous
  quality-of-life score ``qol`` measured after the last visit, built so that
  the structural nested mean model blip is known exactly (``ONCOLOGY_QOL_TRUE_BLIP``).

Structural equations
--------------------
Baseline: ``age`` = round(N(62, 10^2)) clipped to [25, 90] (integer years);
``stage`` ~ Bernoulli(0.4) (1 = advanced).

Month ``t`` (``lag1_X`` is ``X`` at month ``t-1``, 0 at month 0; ``month = t``).
The same equations hold at every month including month 0 (lags 0):

* ``marker`` = 0.15 + 1.0 lag1_marker + 0.25 stage - 0.5 lag1_treat + N(0, 0.4^2)
  — a random walk (coefficient exactly 1 on ``lag1_marker``) with drift
  0.15 + 0.25 stage per month off treatment and drift - 0.5 per month of
  treatment; at month 0 it is the baseline draw 0.15 + 0.25 stage + N(0, 0.4^2).
  Read it as the log fold-change of the tumour marker since diagnosis.
* ``ecog`` in {0, 1, 2} (performance status), multinomial logit with level 0
  as reference and ``lag1_ecog`` entering as a number:
  log P(1)/P(0) = -1.2 + 1.6 lag1_ecog + 0.35 marker + 0.4 lag1_treat,
  log P(2)/P(0) = -4.0 + 2.4 lag1_ecog + 0.6 marker + 0.6 lag1_treat
  (treatment toxicity worsens next month's status).
* ``treat`` ~ Bernoulli(expit(-1.8 + 0.7 marker - 0.5 ecog + 1.8 lag1_treat
  - 0.02 month)) — the natural course, with switching on and off (about 4
  switches per patient; 95% of natural-course probabilities in [0.05, 0.95]).
* ``lost`` ~ Bernoulli(expit(-4.5 + 0.4 ecog + 0.1 marker - 0.3 treat))
  (loss to follow-up, informative through ecog and marker).
* ``progression`` ~ Bernoulli(expit(-6.7 + 0.5 marker + 0.5 ecog - 0.4 treat
  + 0.02 age + 0.3 stage)) (survival cohort only).

Order within a month: ``marker``, ``ecog``, ``treat``, then ``lost`` at the
end of the month, then ``progression``. ``lost = 1`` on a row means lost
during that month: follow-up ends and ``progression`` is NaN on that row.
Follow-up also ends at progression or after month 23. With ``censoring=False``
nobody is lost (``lost`` is 0 throughout).

Treatment lowers the marker (and so every later hazard) and the current
hazard, but raises next month's ecog; on balance "always" has a lower risk
of progression than "never".

Quality-of-life variant (``n_visits = K_q``, default 6): rows are months
0..K_q-1 with the equations above (no progression); after the last visit a
final marker ``marker_K`` is drawn from the marker equation at month ``K_q``
(so every ``treat_t``, including the last, shifts it by exactly -0.5), and

    qol = 60 - 0.1 age - 1.0 stage + sum_t treat_t (theta0 + psi1 marker_t)
          + beta marker_K + N(0, 2^2),   theta0 = -3.0, psi1 = 1.0, beta = -4.0.

``qol`` is given on every row of a person (constant within person); with
``censoring=True`` a person lost during a month has rows up to that month,
``lost = 1`` on the last row and ``qol`` NaN on all rows. ``ecog`` does not
enter ``qol``; ``marker_t`` is the confounder. Because the marker is a random
walk and ``qol`` depends on later markers only through ``marker_K``, the
effect of ``treat_t`` through later markers is exactly ``-delta * beta =
-0.5 * -4.0 = +2.0`` for every t, so the blip of a structural nested mean model,
``gamma_t(h_t, a_t) = E[Y(abar_{t-1}, a_t, 0) - Y(abar_{t-1}, 0, 0) | H_t]``, is

    gamma_t = a_t (psi0 + psi1 marker_t),  psi0 = theta0 - delta beta = -1.0,  psi1 = 1.0

at every t (``ONCOLOGY_QOL_TRUE_BLIP = {"treat": -1.0, "treat:marker": 1.0}``):
treating is beneficial exactly when ``marker_t > 1``.

Random numbers: one stream per role (baseline, marker, ecog, treat, lost,
progression, qol); ``natural = 1{u < p_treat}`` with the same ``u`` passed
as ``state.uniform``. ``simulate(n, s, regime=natural())`` equals
``simulate(n, s)`` exactly (likewise for :func:`oncology_qol`).

Estimands
---------
* :func:`true_risk`: cumulative risk of progression by the end of month t
  under a regime, had nobody been lost to follow-up;
* :func:`true_risk_from_history`: one patient's counterfactual risk curve
  given their observed months 0..t*;
* :func:`true_mean`: ``E[qol^g]`` under a regime (no loss to follow-up);
* :func:`true_mean_from_history`: ``E[qol^g | observed months 0..t*]``.

Measured truth (``n = 200_000``, ``seed = 2024``; MC SE in brackets): risk of
progression by month 23 (24-month risk) without loss to follow-up, and ``E[qol]``
(6 visits):

==============================================  =================  ================
regime                                          ``true_risk``      ``true_mean``
==============================================  =================  ================
natural course                                  0.3391 (0.0005)    46.344 (0.012)
always                                          0.0612 (0.0001)    38.147 (0.008)
never                                           0.6468 (0.0007)    46.406 (0.014)
``threshold("marker", ">", 1)`` (blip > 0)      0.2155 (0.0002)    47.143 (0.012)
==============================================  =================  ================

Correct model specifications
----------------------------
``ONCOLOGY_MODELS`` (``ONCOLOGY_HISTORY``: ``lag1_marker``, ``lag1_ecog``,
``lag1_treat``)::

    marker      ~ lag1_marker + stage + lag1_treat                       gaussian
    ecog        ~ lag1_ecog + marker + lag1_treat                        multinomial
    treat       ~ marker + ecog + lag1_treat + month                     binomial
    lost        ~ ecog + marker + treat                                  binomial
    progression ~ marker + ecog + treat + age + stage                    binomial

``ONCOLOGY_QOL_MODELS`` has the same marker, ecog, treat (and lost) models.
``ONCOLOGY_QOL_OUTCOME`` is the exact regression of ``qol`` on the last row
(month K_q-1): ``qol ~ age + stage + marker + treat + cumsum_treat +
cumsum_treat_marker`` (gaussian, residual SD sqrt(2^2 + 4^2 0.4^2)), where
``cumsum_treat_marker`` is the cumulative sum of the derived column
``treat * marker``: E[qol | history] = 60 - 0.1 age - 1 stage + theta0
cumsum_treat + psi1 cumsum_treat_marker + beta (marker + 0.15 + 0.25 stage -
0.5 treat).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from gtools import history as _history
from gtools.datasets import _engine as E

__all__ = [
    "K",
    "ONCOLOGY_COEFS",
    "ONCOLOGY_SIGMA",
    "ONCOLOGY_MODELS",
    "ONCOLOGY_HISTORY",
    "ONCOLOGY_ROLES",
    "ONCOLOGY_COLUMNS",
    "QOL_COEFS",
    "ONCOLOGY_QOL_TRUE_BLIP",
    "ONCOLOGY_QOL_MODELS",
    "ONCOLOGY_QOL_OUTCOME",
    "ONCOLOGY_QOL_ROLES",
    "ONCOLOGY_QOL_COLUMNS",
    "SAMPLE_N",
    "SAMPLE_SEED",
    "QOL_SAMPLE_N",
    "QOL_SAMPLE_SEED",
    "simulate",
    "true_risk",
    "true_risk_from_history",
    "oncology_qol",
    "true_mean",
    "true_mean_from_history",
    "history_features",
    "load_oncology",
    "load_oncology_qol",
]

K = 24
TIME = "month"
SAMPLE_N, SAMPLE_SEED = 5_000, 20240601
QOL_SAMPLE_N, QOL_SAMPLE_SEED = 2_000, 20240602
QOL_N_VISITS = 6

ONCOLOGY_COEFS: dict[str, dict] = {
    "marker": {"Intercept": 0.15, "lag1_marker": 1.0, "stage": 0.25, "lag1_treat": -0.5},
    "ecog": {
        1: {"Intercept": -1.2, "lag1_ecog": 1.6, "marker": 0.35, "lag1_treat": 0.4},
        2: {"Intercept": -4.0, "lag1_ecog": 2.4, "marker": 0.6, "lag1_treat": 0.6},
    },
    "treat": {"Intercept": -1.8, "marker": 0.7, "ecog": -0.5, "lag1_treat": 1.8, "month": -0.02},
    "lost": {"Intercept": -4.5, "ecog": 0.4, "marker": 0.1, "treat": -0.3},
    "progression": {"Intercept": -6.7, "marker": 0.5, "ecog": 0.5, "treat": -0.4, "age": 0.02, "stage": 0.3},
}
ONCOLOGY_SIGMA = {"marker": 0.4}
DELTA = -ONCOLOGY_COEFS["marker"]["lag1_treat"]

QOL_COEFS = {
    "Intercept": 60.0,
    "age": -0.1,
    "stage": -1.0,
    "theta0": -3.0,
    "psi1": 1.0,
    "beta": -4.0,
    "sigma": 2.0,
}
ONCOLOGY_QOL_TRUE_BLIP = {
    "treat": QOL_COEFS["theta0"] - DELTA * QOL_COEFS["beta"],
    "treat:marker": QOL_COEFS["psi1"],
}

_FAMILY = {
    "marker": "gaussian",
    "ecog": "multinomial",
    "treat": "binomial",
    "lost": "binomial",
    "progression": "binomial",
}


def _formula(name: str) -> str:
    coef = ONCOLOGY_COEFS[name]
    if name == "ecog":
        coef = coef[1]  # same terms for every level
    return E.formula(name, coef)


ONCOLOGY_MODELS: dict[str, tuple[str, str]] = {
    name: (_formula(name), _FAMILY[name]) for name in ONCOLOGY_COEFS
}
ONCOLOGY_HISTORY = [("lag", "marker", 1), ("lag", "ecog", 1), ("lag", "treat", 1)]
ONCOLOGY_ROLES = dict(
    id="id",
    time="month",
    treatment="treat",
    covariates=["marker", "ecog"],
    baseline=["age", "stage"],
    outcome="progression",
    outcome_type="survival",
    censor="lost",
)
ONCOLOGY_COLUMNS = ["id", "month", "age", "stage", "marker", "ecog", "treat", "progression", "lost"]

ONCOLOGY_QOL_MODELS = {k: ONCOLOGY_MODELS[k] for k in ("marker", "ecog", "treat", "lost")}
ONCOLOGY_QOL_OUTCOME = ("qol ~ age + stage + marker + treat + cumsum_treat + cumsum_treat_marker", "gaussian")
ONCOLOGY_QOL_ROLES = dict(
    id="id",
    time="month",
    treatment="treat",
    covariates=["marker", "ecog"],
    baseline=["age", "stage"],
    outcome="qol",
    outcome_type="continuous",
    censor=None,  # "lost" for data simulated with censoring=True
)
ONCOLOGY_QOL_COLUMNS = ["id", "month", "age", "stage", "marker", "ecog", "treat", "qol"]

_DTYPES = {
    "id": "int64",
    "month": "int64",
    "age": "int64",
    "stage": "int64",
    "marker": "float64",
    "ecog": "int64",
    "treat": "int64",
    "progression": "float64",
    "lost": "int64",
    "qol": "float64",
}
_ROLES = ("baseline", "marker", "ecog", "treat", "lost", "progression", "qol")
_BASELINE = ("age", "stage")
_TV = ("marker", "ecog", "treat")


def history_features() -> list:
    """``ONCOLOGY_HISTORY`` as gtools history features (``gt.lag`` of marker, ecog, treat)."""
    return [_history.lag(src, k) for _, src, k in ONCOLOGY_HISTORY]


def _baseline(streams: E.Streams, n: int) -> dict[str, np.ndarray]:
    rng = streams.rng("baseline")
    age = np.clip(np.round(rng.normal(62.0, 10.0, n)), 25, 90)
    stage = (rng.random(n) < 0.4).astype(float)
    return {"age": age, "stage": stage}


def _marker(cols, n, streams) -> np.ndarray:
    return E.linpred(ONCOLOGY_COEFS["marker"], cols, n) + ONCOLOGY_SIGMA["marker"] * streams.normal(
        "marker", n
    )


def _paths(base, last, t0: int, t_end: int, streams: E.Streams, regime) -> Iterator[dict]:
    """Simulate months t0..t_end-1 for everyone; yields columns, hazards and uniforms."""
    n = len(base["age"])
    C = ONCOLOGY_COEFS
    for t in range(t0, t_end):
        cols = dict(base)
        cols["month"] = np.full(n, float(t))
        for v in _TV:
            cols[f"lag1_{v}"] = last[v]
        cols["marker"] = _marker(cols, n, streams)
        etas = {k: E.linpred(c, cols, n) for k, c in C["ecog"].items()}
        cols["ecog"] = E.draw_categorical(etas, streams.uniform("ecog", n))
        yield E.treat_then_hazards(C, cols, n, t, streams, regime, last["treat"], "treat", ("lost", "progression"))
        last = {v: cols[v] for v in _TV}


def _start(n: int, seed):
    streams = E.Streams(seed, _ROLES)
    base = _baseline(streams, n)
    return streams, base, {v: np.zeros(n) for v in _TV}


# -- survival cohort --------------------------------------------------------------


def simulate(n: int, seed=None, regime=None, censoring: bool = True) -> pd.DataFrame:
    """Simulate ``n`` patients of the survival cohort, long format sorted by ``id, month``.

    ``regime=None`` is the natural course (the observed data); ``censoring``
    switches loss to follow-up on or off. Columns ``ONCOLOGY_COLUMNS``.
    """
    n = int(n)
    streams, base, last = _start(n, seed)
    at_risk = np.ones(n, dtype=bool)
    rec: dict[str, list[np.ndarray]] = {c: [] for c in ONCOLOGY_COLUMNS}
    masks = []
    ids = np.arange(1, n + 1, dtype=float)
    for p in _paths(base, last, 0, K, streams, regime):
        lost = at_risk & (p["u_lost"] < p["h_lost"]) if censoring else np.zeros(n, dtype=bool)
        prog = at_risk & ~lost & (p["u_progression"] < p["h_progression"])
        masks.append(at_risk.copy())
        rec["id"].append(ids)
        for c in ("month", "age", "stage", "marker", "ecog", "treat"):
            rec[c].append(p[c])
        rec["progression"].append(np.where(lost, np.nan, prog.astype(float)))
        rec["lost"].append(lost.astype(float))
        at_risk = at_risk & ~lost & ~prog
    return E.long_format(rec, masks, ONCOLOGY_COLUMNS).astype({c: _DTYPES[c] for c in ONCOLOGY_COLUMNS})


def _accumulate(base, last, t0, streams, regime, method) -> E.RiskAccumulator:
    n = len(base["age"])
    acc = E.RiskAccumulator(n)
    done = np.zeros(n, dtype=bool)
    for p in _paths(base, last, t0, K, streams, regime):
        if method == "hazard":
            acc.add(p["h_progression"])
        elif method == "events":
            done |= p["u_progression"] < p["h_progression"]
            acc.add_events(done)
        else:
            raise ValueError(f"method must be 'hazard' or 'events', got {method!r}")
    return acc


def true_risk(regime=None, n: int = 200_000, seed=2024, return_se: bool = False, method: str = "hazard"):
    """True cumulative risk of progression by the end of each month under ``regime``, no loss to follow-up.

    Series indexed by ``month`` 0..23 (plus its Monte Carlo SE when
    ``return_se=True``); ``regime=None`` is the natural course.
    """
    streams, base, last = _start(int(n), seed)
    return _accumulate(base, last, 0, streams, regime, method).result(range(K), TIME, return_se)


def true_risk_from_history(
    history_rows: pd.DataFrame,
    regime=None,
    n: int = 100_000,
    seed=2024,
    return_se: bool = False,
    method: str = "hazard",
):
    """One patient's true risk curve of progression given their observed months 0..t*.

    The last row must be progression-free and not lost. The patient is
    replicated ``n`` times and simulated from month t*+1 under ``regime``;
    returns the cumulative risk from month t*+1 to the end of each month,
    indexed by month t*+1..23, with no loss to follow-up.
    """
    last = E.last_row(history_rows, "id", TIME, K, list(_BASELINE) + list(_TV) + ["progression"])
    if last["progression"] != 0 or ("lost" in last.index and last["lost"] != 0):
        raise ValueError("the patient must be progression-free and in follow-up at the end of the last month")
    n, t0 = int(n), int(last[TIME]) + 1
    streams = E.Streams(seed, _ROLES)
    base = {c: np.full(n, float(last[c])) for c in _BASELINE}
    prev = {v: np.full(n, float(last[v])) for v in _TV}
    return _accumulate(base, prev, t0, streams, regime, method).result(range(t0, K), TIME, return_se)


# -- quality-of-life variant ------------------------------------------------------------


def _qol_paths(
    base, last, t0: int, n_visits: int, streams: E.Streams, regime, censoring: bool, sum_a=None, sum_am=None
) -> dict:
    """Simulate visits t0..n_visits-1, then marker_K and qol. Returns per-visit arrays and qol.

    ``sum_a`` / ``sum_am`` carry sum_t treat_t and sum_t treat_t marker_t over
    visits before t0 (for forward simulation from a history).
    """
    n = len(base["age"])
    q = QOL_COEFS
    sum_a = np.zeros(n) if sum_a is None else sum_a
    sum_am = np.zeros(n) if sum_am is None else sum_am
    per: dict[str, list[np.ndarray]] = {
        c: [] for c in ("month", "marker", "ecog", "treat", "lost", "at_risk")
    }
    at_risk = np.ones(n, dtype=bool)
    lost_any = np.zeros(n, dtype=bool)
    for p in _paths(base, last, t0, n_visits, streams, regime):
        lost = at_risk & (p["u_lost"] < p["h_lost"]) if censoring else np.zeros(n, dtype=bool)
        per["at_risk"].append(at_risk.copy())
        for c in ("month", "marker", "ecog", "treat"):
            per[c].append(p[c])
        per["lost"].append(lost.astype(float))
        sum_a = sum_a + p["treat"]
        sum_am = sum_am + p["treat"] * p["marker"]
        lost_any |= lost
        at_risk = at_risk & ~lost
        last = {v: p[v] for v in _TV}
    cols = dict(base)
    cols["month"] = np.full(n, float(n_visits))
    for v in _TV:
        cols[f"lag1_{v}"] = last[v]
    marker_k = _marker(cols, n, streams)
    qol = (
        q["Intercept"]
        + q["age"] * base["age"]
        + q["stage"] * base["stage"]
        + q["theta0"] * sum_a
        + q["psi1"] * sum_am
        + q["beta"] * marker_k
        + q["sigma"] * streams.normal("qol", n)
    )
    return {"per": per, "qol": qol, "marker_K": marker_k, "lost_any": lost_any}


def oncology_qol(
    n: int, seed=None, regime=None, n_visits: int = QOL_N_VISITS, censoring: bool = False
) -> pd.DataFrame:
    """Simulate the quality-of-life variant: ``n_visits`` monthly rows per person and ``qol``.

    Columns ``ONCOLOGY_QOL_COLUMNS`` (plus ``lost`` when ``censoring=True``),
    sorted by ``id, month``; ``qol`` is constant within person (NaN when lost).
    """
    n, n_visits = int(n), int(n_visits)
    if n_visits < 1:
        raise ValueError("n_visits must be at least 1")
    streams, base, last = _start(n, seed)
    res = _qol_paths(base, last, 0, n_visits, streams, regime, censoring)
    per = res["per"]
    qol = np.where(res["lost_any"], np.nan, res["qol"])
    rec = {
        "id": [np.arange(1, n + 1, dtype=float)] * n_visits,
        "age": [base["age"]] * n_visits,
        "stage": [base["stage"]] * n_visits,
        "qol": [qol] * n_visits,
        **{c: per[c] for c in ("month", "marker", "ecog", "treat", "lost")},
    }
    columns = ONCOLOGY_QOL_COLUMNS + (["lost"] if censoring else [])
    df = E.long_format(rec, per["at_risk"], columns)
    return df.astype({c: _DTYPES[c] for c in columns})


def true_mean(
    regime=None, n: int = 200_000, seed=2024, n_visits: int = QOL_N_VISITS, return_se: bool = False
):
    """True ``E[qol]`` under ``regime`` (no loss to follow-up); with ``return_se`` also its MC SE."""
    n = int(n)
    streams, base, last = _start(n, seed)
    qol = _qol_paths(base, last, 0, int(n_visits), streams, regime, False)["qol"]
    mean, se = float(qol.mean()), float(qol.std(ddof=1) / np.sqrt(n))
    return (mean, se) if return_se else mean


def _qol_history_state(history_rows: pd.DataFrame, n: int, n_visits: int):
    last = E.last_row(history_rows, "id", TIME, n_visits, list(_BASELINE) + list(_TV))
    if "lost" in last.index and last["lost"] != 0:
        raise ValueError("the patient was lost to follow-up at the last observed month")
    rows = history_rows.sort_values(TIME)
    a, m = rows["treat"].to_numpy(float), rows["marker"].to_numpy(float)
    base = {c: np.full(n, float(last[c])) for c in _BASELINE}
    prev = {v: np.full(n, float(last[v])) for v in _TV}
    return int(last[TIME]) + 1, base, prev, np.full(n, a.sum()), np.full(n, (a * m).sum())


def true_mean_from_history(
    history_rows: pd.DataFrame,
    regime=None,
    n: int = 100_000,
    seed=2024,
    n_visits: int = QOL_N_VISITS,
    return_se: bool = False,
):
    """True ``E[qol^g | observed months 0..t*]`` for one person (no loss to follow-up afterwards).

    The person is replicated ``n`` times and simulated from month t*+1 to the
    end under ``regime``; ``history_rows`` are their rows 0..t* (t* < n_visits - 1).
    """
    n = int(n)
    t0, base, prev, sa, sam = _qol_history_state(history_rows, n, int(n_visits))
    streams = E.Streams(seed, _ROLES)
    qol = _qol_paths(base, prev, t0, int(n_visits), streams, regime, False, sa, sam)["qol"]
    mean, se = float(qol.mean()), float(qol.std(ddof=1) / np.sqrt(n))
    return (mean, se) if return_se else mean


def load_oncology() -> pd.DataFrame:
    """The shipped sample ``simulate(SAMPLE_N, SAMPLE_SEED)``, floats rounded to 4 decimals."""
    return E.read_sample("oncology.csv.gz", {c: _DTYPES[c] for c in ONCOLOGY_COLUMNS})


def load_oncology_qol() -> pd.DataFrame:
    """The shipped sample ``oncology_qol(QOL_SAMPLE_N, QOL_SAMPLE_SEED)`` (6 visits), rounded to 4 decimals."""
    return E.read_sample("oncology_qol.csv.gz", {c: _DTYPES[c] for c in ONCOLOGY_QOL_COLUMNS})
