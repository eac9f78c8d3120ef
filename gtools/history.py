"""Treatment and covariate history features.

A history feature is a small declarative object ("lag 1 of A", "cumulative
mean of L1", "intervals since A was last 1"). Each feature is defined once and
computed two ways that agree exactly:

* ``compute(data, id, time)``: vectorised over an observed panel, grouped by
  person (used by :meth:`gtools.PersonTime.add_history`);
* ``init(n)`` / ``value(state, src, t)`` / ``update(state, src, t)``: a step
  rule over a state array of shape ``(n, n_slots)`` for ``n`` persons, used by
  the g-formula's Monte Carlo simulation one interval at a time.

Let :math:`X_t` be the source at interval :math:`t = 0, 1, \\dots` of a person.

=================  ====================================================  ==================
feature            value at interval t                                   uses :math:`X_t`?
=================  ====================================================  ==================
``lag(X, k)``      :math:`X_{t-k}`, or ``fill`` when :math:`t < k`          no
``cumsum(X)``      :math:`\\sum_{s \\le t} X_s`                             yes
``cummean(X)``     :math:`(t+1)^{-1} \\sum_{s \\le t} X_s`                  yes
``time_since(X)``  :math:`t - \\max\\{s \\le t: X_s = v\\}`, ``never`` if none  yes
``ever(X)``        :math:`1\\{X_s \\ne 0 \\text{ for some } s \\le t\\}`          yes
=================  ====================================================  ==================

Features compose: ``lag(cummean("L1"))`` is the lagged cumulative mean that
gfoRmula calls ``lag_cumavg1_L1`` and is named ``lag1_cummean_L1`` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import pandas as pd

Source = Union[str, "Feature"]  # noqa: UP007

__all__ = [
    "Feature",
    "lag",
    "cumsum",
    "cummean",
    "time_since",
    "ever",
    "order_features",
]


@dataclass(frozen=True)
class Feature:
    """A history feature. Build one with :func:`lag`, :func:`cumsum`,
    :func:`cummean`, :func:`time_since` or :func:`ever`.

    Attributes
    ----------
    kind : {"lag", "cumsum", "cummean", "time_since", "ever"}
    source : str or Feature
        The column (or feature) whose history is summarised.
    k : int
        Lag order (``kind == "lag"`` only).
    fill : float
        Value before the start of follow-up (lags) or when the value was never
        taken (``time_since``).
    target : float
        The value ``time_since`` looks for.
    """

    kind: str
    source: Source
    k: int = 1
    fill: float = 0.0
    target: float = 1.0
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in {"lag", "cumsum", "cummean", "time_since", "ever"}:
            raise ValueError(f"unknown history feature kind {self.kind!r}")
        if self.kind == "lag" and (int(self.k) != self.k or self.k < 1):
            raise ValueError(f"lag order must be a positive integer, got {self.k!r}")
        if not isinstance(self.source, (str, Feature)):
            raise TypeError("a feature's source is a column name or another feature")
        if not self.name:
            object.__setattr__(self, "name", self._default_name())

    # -- naming and dependencies ---------------------------------------
    def _default_name(self) -> str:
        src = self.source if isinstance(self.source, str) else self.source.name
        if self.kind == "lag":
            return f"lag{self.k}_{src}"
        prefix = {"cumsum": "cumsum", "cummean": "cummean", "time_since": "timesince", "ever": "ever"}
        return f"{prefix[self.kind]}_{src}"

    @property
    def source_name(self) -> str:
        """Name of the immediate source column (a raw column or a feature's output)."""
        return self.source if isinstance(self.source, str) else self.source.name

    @property
    def root(self) -> str:
        """The raw data column at the bottom of a chain of composed features."""
        src = self.source
        while isinstance(src, Feature):
            src = src.source
        return src

    @property
    def uses_current(self) -> bool:
        """Whether the value at interval t depends on the root column at t.

        A lag never does; ``lag(cumsum(A))`` does not either (it reads the
        cumulative sum up to t-1); ``cumsum(lag(A))`` does not.
        """
        if self.kind == "lag":
            return False
        if isinstance(self.source, Feature):
            return self.source.uses_current
        return True

    def chain(self) -> list[Feature]:
        """This feature and the features it is built on, innermost first."""
        out: list[Feature] = []
        src: Source = self
        while isinstance(src, Feature):
            out.append(src)
            src = src.source
        return out[::-1]

    # -- vectorised over an observed panel -----------------------------
    def compute(self, data: pd.DataFrame, id: str, time: str) -> pd.Series:
        """Compute the feature over a panel sorted by (id, time).

        The source column (or, for composed features, the inner feature's
        column, computed on the fly when absent) must be present.
        """
        if isinstance(self.source, Feature):
            if self.source.name in data.columns:
                src = data[self.source.name]
            else:
                src = self.source.compute(data, id, time)
        else:
            src = data[self.source]
        x = src.to_numpy(dtype=float)
        ids = data[id].to_numpy()
        starts = _person_starts(ids)
        out = _compute_array(self, x, starts)
        return pd.Series(out, index=data.index, name=self.name)

    # -- step rule for simulation ----------------------------------------
    @property
    def n_slots(self) -> int:
        """Number of state slots per person."""
        return {"lag": self.k, "cumsum": 1, "cummean": 2, "time_since": 1, "ever": 1}[self.kind]

    def init(self, n: int) -> np.ndarray:
        """State before the first interval for ``n`` persons."""
        if self.kind == "lag":
            return np.full((n, self.k), float(self.fill))
        if self.kind == "time_since":
            return np.full((n, 1), -1.0)  # time the value was last seen; -1 = never
        return np.zeros((n, self.n_slots))

    def value(self, state: np.ndarray, src: np.ndarray | None, t: int) -> np.ndarray:
        """The feature at interval ``t`` from the state after interval ``t-1``.

        ``src`` is the source at ``t``; lags ignore it (pass ``None``).
        """
        kind = self.kind
        if kind == "lag":
            return state[:, self.k - 1].copy()
        if kind == "cumsum":
            return state[:, 0] + src
        if kind == "cummean":
            return (state[:, 0] + src) / (state[:, 1] + 1.0)
        if kind == "time_since":
            last = np.where(src == self.target, float(t), state[:, 0])
            return np.where(last >= 0, t - last, float(self.fill))
        # ever
        return np.maximum(state[:, 0], (src != 0).astype(float))

    def update(self, state: np.ndarray, src: np.ndarray, t: int) -> None:
        """Push interval ``t`` (source value ``src``) into the state, in place."""
        kind = self.kind
        if kind == "lag":
            if self.k > 1:
                state[:, 1:] = state[:, :-1]
            state[:, 0] = src
        elif kind == "cumsum":
            state[:, 0] += src
        elif kind == "cummean":
            state[:, 0] += src
            state[:, 1] += 1.0
        elif kind == "time_since":
            state[:, 0] = np.where(src == self.target, float(t), state[:, 0])
        else:
            state[:, 0] = np.maximum(state[:, 0], (src != 0).astype(float))

    # the same step rules as numba loops (identical floats; used by the g-formula's numba engine)
    def value_into(self, state: np.ndarray, src: np.ndarray, t: int, out: np.ndarray) -> None:
        """:meth:`value` written into ``out`` by a compiled loop (``src`` is any float array for lags)."""
        from gtools import _history_numba as hn

        hn.step_value(hn.KIND_CODE[self.kind], int(self.k), float(self.fill), float(self.target), state, src,
                      int(t), out)

    def update_numba(self, state: np.ndarray, src: np.ndarray, t: int) -> None:
        """:meth:`update` by a compiled loop."""
        from gtools import _history_numba as hn

        hn.step_update(hn.KIND_CODE[self.kind], int(self.k), float(self.target), state, src, int(t))

    def __repr__(self) -> str:
        src = repr(self.source) if isinstance(self.source, Feature) else repr(self.source)
        extra = ""
        if self.kind == "lag":
            extra = f", k={self.k}" + (f", fill={self.fill}" if self.fill != 0 else "")
        elif self.kind == "time_since":
            extra = f", value={self.target}, never={self.fill}"
        fn = {"time_since": "time_since"}.get(self.kind, self.kind)
        return f"gt.{fn}({src}{extra})"


def _person_starts(ids: np.ndarray) -> np.ndarray:
    """Boolean array: True on the first row of each person (data sorted by id)."""
    starts = np.ones(len(ids), dtype=bool)
    if len(ids) > 1:
        starts[1:] = ids[1:] != ids[:-1]
    return starts


def _compute_array(f: Feature, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Vectorised feature over a stacked panel (persons contiguous, time ascending).

    Lean in memory: besides the result, boolean masks (1 byte a row) and arrays of one entry per
    person; no n-row integer temporaries.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0)
    if f.kind == "lag":
        out = np.full(n, float(f.fill))
        k = int(f.k)
        if k < n:
            # row i takes x[i - k] when it is at least k rows into its person: no person starts in
            # rows i-k+1 .. i (row 0 starts one, so rows i < k keep the fill)
            ok = ~starts[k:]
            for j in range(1, k):
                ok &= ~starts[k - j:n - j]
            np.copyto(out[k:], x[:n - k], where=ok)
        return out
    if f.kind in ("cumsum", "cummean"):
        # running sum restarting at each person, accumulated left to right exactly
        # as the step rule does (state + x), so both give identical floats
        return _running_sum(x, starts, mean=f.kind == "cummean")
    if f.kind == "time_since":
        hit = x == f.target
        idx = np.where(hit, np.arange(n), -1)
        # forward fill the index of the last hit within each person
        last = _ffill_within(idx, starts)
        out = np.where(last >= 0, (np.arange(n) - last).astype(float), float(f.fill))
        return out
    # ever
    flag = (x != 0).astype(float)
    return _running_max(flag, starts)


def _running_sum(x: np.ndarray, starts: np.ndarray, mean: bool = False) -> np.ndarray:
    """Running sum within person (``mean``: divided by the number of rows so far, as cummean)."""
    out = np.empty_like(x, dtype=float)
    # a loop over persons would be slow; do a cumulative sum per position block:
    # sequential accumulation in the same order as the step rule (0 + x0 + x1 ...)
    first = np.flatnonzero(starts)
    lengths = np.diff(first, append=len(x))
    acc = np.zeros(len(first))
    for p in range(int(lengths.max())):
        alive = lengths > p
        rows = first[alive]
        rows += p
        a = acc[alive]
        a += x[rows]
        acc[alive] = a
        out[rows] = a / (p + 1.0) if mean else a
    return out


def _running_max(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=float)
    first = np.flatnonzero(starts)
    lengths = np.diff(np.append(first, len(x)))
    acc = np.zeros(len(first))
    for p in range(int(lengths.max())):
        alive = lengths > p
        rows = first[alive] + p
        acc[alive] = np.maximum(acc[alive], x[rows])
        out[rows] = acc[alive]
    return out


def _ffill_within(idx: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Forward-fill values >= 0 within persons; -1 where none seen yet."""
    first = np.flatnonzero(starts)
    lengths = np.diff(np.append(first, len(idx)))
    out = np.empty_like(idx)
    acc = np.full(len(first), -1, dtype=idx.dtype)
    for p in range(int(lengths.max())):
        alive = lengths > p
        rows = first[alive] + p
        acc[alive] = np.where(idx[rows] >= 0, idx[rows], acc[alive])
        out[rows] = acc[alive]
    return out


# -- constructors ----------------------------------------------------------


def lag(source: Source, k: int = 1, fill: float = 0.0, name: str | None = None) -> Feature:
    """Lag ``k`` of ``source``: :math:`X_{t-k}`, ``fill`` before the start.

    Named ``lag{k}_{source}``, e.g. ``lag1_A``, ``lag1_cummean_L1``.
    """
    return Feature("lag", source, k=int(k), fill=float(fill), name=name or "")


def cumsum(source: Source, name: str | None = None) -> Feature:
    """Cumulative sum up to and including the current interval, :math:`\\sum_{s\\le t} X_s`.

    Named ``cumsum_{source}``; ``cumsum("A")`` is cumulative exposure in intervals.
    """
    return Feature("cumsum", source, name=name or "")


def cummean(source: Source, name: str | None = None) -> Feature:
    """Cumulative mean up to and including the current interval.

    Named ``cummean_{source}``; gfoRmula's ``cumavg``.
    """
    return Feature("cummean", source, name=name or "")


def time_since(source: Source, value: float = 1, never: float = -1, name: str | None = None) -> Feature:
    """Intervals since ``source`` last equalled ``value`` (0 if it does now).

    :math:`t - \\max\\{s \\le t: X_s = v\\}`; ``never`` (default -1) when the
    value has not been taken yet. Pair it with :func:`ever` in a model so the
    never-treated are not read as a time. Named ``timesince_{source}``.
    """
    return Feature("time_since", source, target=float(value), fill=float(never), name=name or "")


def ever(source: Source, name: str | None = None) -> Feature:
    """1 once ``source`` has been non-zero at any interval up to now, else 0.

    Named ``ever_{source}``.
    """
    return Feature("ever", source, name=name or "")


def order_features(features) -> list[Feature]:
    """Flatten composed features (inner first) and drop duplicates by name."""
    seen: dict[str, Feature] = {}
    for f in features:
        if not isinstance(f, Feature):
            raise TypeError(f"expected a history feature (gt.lag, gt.cumsum, ...), got {f!r}")
        for g in f.chain():
            if g.name in seen and seen[g.name] != g:
                raise ValueError(f"two different history features are both named {g.name!r}")
            seen.setdefault(g.name, g)
    return list(seen.values())
