"""Shared machinery of the simulated cohorts (private).

* :class:`Streams`: one independent random stream per role (baseline, each
  covariate, treatment, censoring, outcome ...), spawned from one seed with
  :class:`numpy.random.SeedSequence`. Every interval draws ``n`` numbers from
  every stream, whoever is still in follow-up and whatever the regime, so two
  runs with the same seed see the same random numbers: the natural course
  under ``gtools.regimes.natural()`` reproduces the observed data exactly, and
  contrasts between regimes use common random numbers.
* :func:`linpred` / :func:`formula`: the linear predictor of a structural
  equation and its R-style formula are both derived from one coefficient
  dictionary ``{term: coefficient}`` (``"Intercept"``, a column, or a product
  ``"a:b"``), so the documented model is exactly the generating equation.
* :func:`apply_regime`, :func:`long_format`, :class:`RiskAccumulator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np
import pandas as pd

from gtools.regimes import State


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Streams:
    """One ``numpy.random.Generator`` per role, spawned from ``seed``."""

    def __init__(self, seed, roles: Sequence[str]):
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        children = ss.spawn(len(roles))
        self._rng = {r: np.random.default_rng(c) for r, c in zip(roles, children)}

    def rng(self, role: str) -> np.random.Generator:
        return self._rng[role]

    def uniform(self, role: str, n: int) -> np.ndarray:
        return self._rng[role].random(n)

    def normal(self, role: str, n: int) -> np.ndarray:
        return self._rng[role].standard_normal(n)


def linpred(coef: Mapping[str, float], cols: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """``sum_j coef[term_j] * term_j`` over the columns; ``a:b`` is the product."""
    eta = np.full(n, float(coef.get("Intercept", 0.0)))
    for term, b in coef.items():
        if term == "Intercept":
            continue
        x = np.ones(n)
        for part in term.split(":"):
            x = x * cols[part]
        eta = eta + b * x
    return eta


def formula(lhs: str, coef: Mapping[str, float]) -> str:
    """R-style formula of a coefficient dictionary: ``lhs ~ t1 + t2 + ...``."""
    return f"{lhs} ~ " + " + ".join(t for t in coef if t != "Intercept")


def draw_categorical(etas: Mapping[int, np.ndarray], u: np.ndarray) -> np.ndarray:
    """Multinomial-logit draw: level 0 is the reference (linear predictor 0).

    ``etas`` maps the other levels (1, 2, ...) to their linear predictors; the
    draw inverts the cumulative probabilities at the uniforms ``u``.
    """
    levels = sorted(etas)
    ex = np.column_stack([np.ones_like(u)] + [np.exp(etas[k]) for k in levels])
    cum = np.cumsum(ex / ex.sum(axis=1, keepdims=True), axis=1)
    return (u[:, None] > cum[:, :-1]).sum(axis=1).astype(float)


def apply_regime(regime, state: State, natural: np.ndarray) -> np.ndarray:
    """Treatment under ``regime`` (``None``: the natural course), checked to be 0/1."""
    if regime is None:
        return natural.copy()
    a = np.asarray(regime(state), dtype=float)
    a = np.broadcast_to(a, (state.n,)).astype(float)
    if not np.all((a == 0.0) | (a == 1.0)):
        name = getattr(regime, "name", repr(regime))
        raise ValueError(f"regime {name!r} returned treatments other than 0/1")
    return a


def treat_then_hazards(coefs: Mapping, cols: dict, n: int, t: int, streams, regime, previous: np.ndarray,
                       treatment: str, hazards: Sequence[str]) -> dict:
    """One interval's treatment and event hazards, after its covariates are in ``cols``.

    The natural-course treatment is drawn from the treatment model with the
    ``treatment`` stream's uniforms, the regime sets ``cols[treatment]`` from
    that state, and each hazard in ``hazards`` is evaluated (with its own
    stream's uniforms for the event draw). Returns the interval's record:
    the columns, ``p_<treatment>``, ``h_<event>``, ``u_<event>`` and ``t``.
    """
    p = expit(linpred(coefs[treatment], cols, n))
    u = streams.uniform(treatment, n)
    natural = (u < p).astype(float)
    state = State(t=np.full(n, t), columns=dict(cols), previous=previous, natural=natural, uniform=u)
    cols[treatment] = apply_regime(regime, state, natural)
    out = dict(cols)
    out[f"p_{treatment}"] = p
    for h in hazards:
        out[f"h_{h}"] = expit(linpred(coefs[h], cols, n))
        out[f"u_{h}"] = streams.uniform(h, n)
    out["t"] = t
    return out


def long_format(
    records: dict[str, list[np.ndarray]], at_risk: list[np.ndarray], order: list[str]
) -> pd.DataFrame:
    """Stack per-interval arrays (each of length n) into a long DataFrame.

    ``at_risk[t]`` marks the persons with a row at interval t. The result is
    sorted by person then interval because the (n, K) arrays are flattened
    row-major.
    """
    mask = np.column_stack(at_risk).ravel()
    data = {}
    for name in order:
        arr = np.column_stack(records[name]).ravel()[mask]
        data[name] = arr
    return pd.DataFrame(data)


class RiskAccumulator:
    """Cumulative risk by interval, averaged over simulated persons, with MC SE.

    ``add(h, c)`` takes the event hazard ``h`` of each person in one interval
    and, for a competing event that happens before the event within the
    interval, its hazard ``c``. Each person's cumulative incidence
    ``F_t = sum_{s<=t} G_s (1-c_s) h_s`` with ``G_s = prod_{r<s} (1-c_r)(1-h_r)``
    is its conditional risk given its simulated covariate and treatment path;
    the mean over persons is an unbiased (Rao-Blackwellised) estimate of the
    risk, and the SE is the standard deviation over persons / sqrt(n).
    """

    def __init__(self, n: int):
        self.g = np.ones(n)
        self.f = np.zeros(n)
        self.risk: list[float] = []
        self.se: list[float] = []

    def add(self, h: np.ndarray, c: np.ndarray | None = None) -> None:
        if c is None:
            c = np.zeros_like(h)
        self.f = self.f + self.g * (1.0 - c) * h
        self.g = self.g * (1.0 - c) * (1.0 - h)
        self._push(self.f)

    def add_events(self, event_by_now: np.ndarray) -> None:
        """Brute force: the indicator that the event has happened by now."""
        self._push(event_by_now.astype(float))

    def _push(self, f: np.ndarray) -> None:
        n = len(f)
        self.risk.append(float(f.mean()))
        self.se.append(float(f.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"))

    def result(self, times: Sequence[int], time_name: str, return_se: bool):
        idx = pd.Index(list(times), name=time_name)
        risk = pd.Series(self.risk, index=idx, name="risk")
        if return_se:
            return risk, pd.Series(self.se, index=idx, name="se")
        return risk


def read_sample(filename: str, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """Read a shipped sample from the package data (works from an installed wheel)."""
    res = resources.files("gtools.datasets") / "data" / filename
    with res.open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip")
    return df.astype(dict(dtypes))


def last_row(
    history_rows: pd.DataFrame, id_col: str, time_col: str, K: int, required: Sequence[str]
) -> pd.Series:
    """Validate one person's observed rows and return the last one."""
    if not isinstance(history_rows, pd.DataFrame) or len(history_rows) == 0:
        raise ValueError("history_rows must be a non-empty DataFrame of one person's rows")
    missing = [c for c in required if c not in history_rows.columns]
    if missing:
        raise ValueError(f"history_rows lacks the columns {missing}")
    if id_col in history_rows.columns and history_rows[id_col].nunique() > 1:
        raise ValueError(
            f"history_rows holds {history_rows[id_col].nunique()} persons; pass one person's rows"
        )
    rows = history_rows.sort_values(time_col)
    times = rows[time_col].to_numpy()
    if np.any(np.diff(times) != 1) or times[0] != 0:
        raise ValueError(f"history_rows must cover intervals 0, 1, ..., t without gaps (got {list(times)})")
    last = rows.iloc[-1]
    if int(last[time_col]) >= K - 1:
        raise ValueError(f"the history already reaches the last interval {K - 1}; nothing is left to predict")
    if last[list(required)].isna().any():
        bad = [c for c in required if pd.isna(last[c])]
        raise ValueError(f"the last observed row has missing values in {bad}")
    return last
