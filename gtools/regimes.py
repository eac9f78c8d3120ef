"""Treatment regimes (interventions).

A regime maps the current state of a set of persons at one interval to the
treatment each receives, vectorised over persons:

.. math:: a_t = g(t, \\bar l_t, \\bar a_{t-1}, a_t^{\\text{natural}}, u_t)

The same object drives the g-formula's Monte Carlo simulation, MSM
standardisation, clone–censor–weight adherence and Q-learning policy
evaluation: all of them build a :class:`State` and call the regime.

* static: :func:`always`, :func:`never`, :func:`static`;
* dynamic: :func:`threshold` ("treat once lactate exceeds 4");
* :func:`natural`: the natural course (treatment as observed / as drawn from
  the fitted treatment model);
* :func:`stochastic`: treat with probability p, using the shared uniforms so
  that every regime sees the same random numbers;
* :func:`custom`: any function of the state.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gtools.errors import DataError, Problem

__all__ = [
    "State",
    "Regime",
    "always",
    "never",
    "static",
    "threshold",
    "natural",
    "stochastic",
    "custom",
    "state_from_panel",
]


@dataclass
class State:
    """What a regime may look at, for ``n`` persons at one interval.

    Attributes
    ----------
    t : numpy.ndarray
        Interval index of each person (int array of length n; in the g-formula
        all equal).
    columns : Mapping[str, numpy.ndarray]
        Current values of every covariate, baseline covariate and history
        feature known before treatment at this interval, by column name.
    previous : numpy.ndarray
        Treatment in the previous interval under this regime (0 before the start).
    natural : numpy.ndarray or None
        Treatment the person would take under the natural course (observed, or
        drawn from the fitted treatment model in simulation); ``None`` where the
        caller has none.
    uniform : numpy.ndarray or None
        Uniform(0, 1) numbers shared by every regime (for stochastic regimes).
    """

    t: np.ndarray
    columns: Mapping[str, np.ndarray]
    previous: np.ndarray
    natural: np.ndarray | None = None
    uniform: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.previous)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self.columns[name])
        except KeyError:
            raise UnknownStateColumn([Problem(
                "missing_column", name,
                f"regime reads column {name!r}, which is not in the state; available: {sorted(self.columns)}")]
            ) from None


class UnknownStateColumn(DataError, KeyError):
    """A regime read a column the state does not have: a ``DataError`` (so a ``ValueError``) and a ``KeyError``."""

    __str__ = DataError.__str__


class Regime:
    """Base class: a callable ``State -> treatment array``.

    Attributes
    ----------
    name : str
        Short description, used in tables.
    needs_natural : bool
        True when the regime reads ``state.natural`` (the simulator then draws
        treatment from the fitted treatment model).
    reads : tuple of str
        Columns the regime reads (checked against the data before fitting).
    """

    name: str = "regime"
    needs_natural: bool = False
    reads: tuple[str, ...] = ()
    is_static: bool = False

    def __call__(self, state: State) -> np.ndarray:
        a = np.asarray(self.treat(state), dtype=float)
        if a.shape != (state.n,):
            raise ValueError(f"regime {self.name!r} returned treatments of shape {a.shape}; expected one per "
                             f"person ({state.n},)")
        if not np.all(np.isfinite(a)):
            bad = int((~np.isfinite(a)).sum())
            raise ValueError(f"regime {self.name!r} returned a missing or infinite treatment for {bad} of "
                             f"{state.n} person(s) at time index {int(np.min(state.t[~np.isfinite(a)]))}")
        return a

    def treat(self, state: State) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Regime {self.name}>"


class _Static(Regime):
    is_static = True

    def __init__(self, value: float | Sequence[float], name: str | None = None):
        self.value = value
        if np.ndim(value) == 0:
            self.name = name or f"static({value:g})"
        else:
            self.name = name or f"static({list(value)})"

    def treat(self, state: State) -> np.ndarray:
        if np.ndim(self.value) == 0:
            return np.full(state.n, float(self.value))
        seq = np.asarray(self.value, dtype=float)
        t = np.asarray(state.t, dtype=int)
        if t.max(initial=0) >= len(seq):
            raise ValueError(
                f"regime {self.name} gives treatment for {len(seq)} intervals, but interval {t.max()} was asked"
            )
        return np.broadcast_to(seq[t], (state.n,)).astype(float)


def always(value: float = 1.0) -> Regime:
    """Treat at every interval (``A_t = 1``)."""
    return _Static(value, name="always")


def never(value: float = 0.0) -> Regime:
    """Never treat (``A_t = 0``)."""
    return _Static(value, name="never")


def static(value: float | Sequence[float], name: str | None = None) -> Regime:
    """A fixed treatment: one value for every interval, or a sequence by interval."""
    return _Static(value, name=name)


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class _Threshold(Regime):
    def __init__(self, col: str, op: str, value: float, absorbing: bool, otherwise: str | float, name):
        if op not in _OPS:
            raise ValueError(f"threshold operator must be one of {sorted(_OPS)}, got {op!r}")
        self.col, self.op, self.value, self.absorbing = col, op, float(value), bool(absorbing)
        self.otherwise = otherwise
        self.reads = (col,)
        self.needs_natural = otherwise == "natural"
        verb = "once" if absorbing else "while"
        self.name = name or f"treat {verb} {col} {op} {value:g}"

    def treat(self, state: State) -> np.ndarray:
        cond = _OPS[self.op](state[self.col], self.value)
        if self.absorbing:
            cond = cond | (state.previous == 1)
        if self.otherwise == "natural":
            if state.natural is None:
                raise ValueError(f"regime {self.name!r} needs the natural-course treatment")
            other = state.natural
        else:
            other = np.full(state.n, float(self.otherwise))
        return np.where(cond, 1.0, other)


def threshold(
    col: str,
    op: str,
    value: float,
    absorbing: bool = False,
    otherwise: str | float = 0.0,
    name: str | None = None,
) -> Regime:
    """Dynamic regime: treat while (or, with ``absorbing=True``, once) ``col op value``.

    .. math:: a_t = 1\\{l_t \\; op \\; c\\} \\;[\\vee\\; a_{t-1} = 1 \\text{ if absorbing}]

    When the condition does not hold the person receives ``otherwise``: 0 by
    default (untreated), or ``"natural"`` for the treatment they would take
    under the natural course.

    ``absorbing`` reads the previous treatment (``state.previous == 1``), not
    a memory of the condition: with ``otherwise="natural"`` a person who
    started treatment under the natural course stays on it too ("start at
    the latest when the condition holds, never stop").
    """
    return _Threshold(col, op, value, absorbing, otherwise, name)


class _Natural(Regime):
    needs_natural = True
    name = "natural"

    def treat(self, state: State) -> np.ndarray:
        if state.natural is None:
            raise ValueError("the natural-course regime needs the natural treatment in the state")
        return state.natural


def natural() -> Regime:
    """The natural course: no intervention; treatment follows its observed mechanism."""
    return _Natural()


class _Stochastic(Regime):
    def __init__(self, p, name):
        self.p = p
        self.name = name or (f"stochastic(p={p:g})" if np.ndim(p) == 0 and not callable(p) else "stochastic")

    def treat(self, state: State) -> np.ndarray:
        p = self.p(state) if callable(self.p) else self.p
        p = np.broadcast_to(np.asarray(p, dtype=float), (state.n,))
        if np.any((p < 0) | (p > 1)):
            raise ValueError(f"stochastic regime {self.name!r} gave probabilities outside [0, 1]")
        u = state.uniform
        if u is None:
            raise ValueError("a stochastic regime needs the shared uniforms in the state")
        return (u < p).astype(float)


def stochastic(p: float | Callable[[State], np.ndarray], name: str | None = None) -> Regime:
    """Treat with probability ``p`` (a number, or a callable of the state).

    Uses the state's shared uniforms: :math:`a_t = 1\\{u_t < p_t\\}`.
    """
    return _Stochastic(p, name)


class _Custom(Regime):
    def __init__(self, fn, name, needs_natural, reads):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "custom")
        self.needs_natural = bool(needs_natural)
        self.reads = tuple(reads)

    def treat(self, state: State) -> np.ndarray:
        out = np.asarray(self.fn(state), dtype=float)
        if out.ndim > 1 or (out.ndim == 1 and len(out) != state.n):
            raise ValueError(f"custom regime {self.name!r} returned treatments of shape {out.shape}; expected a "
                             f"number or one treatment per person ({state.n},)")
        return np.broadcast_to(out, (state.n,)).astype(float)


def custom(
    fn: Callable[[State], np.ndarray],
    name: str | None = None,
    needs_natural: bool = False,
    reads: Sequence[str] = (),
) -> Regime:
    """A regime from any function of the :class:`State` returning treatments."""
    return _Custom(fn, name, needs_natural, reads)


def state_from_panel(pt, uniform: np.ndarray | None = None) -> State:
    """The state of every observed person-time row of a PersonTime.

    ``previous`` is the observed treatment in the previous interval, and
    ``natural`` the observed treatment: so a regime evaluated here gives the
    treatment it would assign to a person whose history so far followed the
    data (what clone–censor–weight adherence and policy evaluation need).
    """
    data: pd.DataFrame = pt.data
    a = data[pt.treatment].to_numpy(dtype=float)
    prev = np.zeros(len(data))
    ids = data[pt.id].to_numpy()
    same = np.zeros(len(data), dtype=bool)
    same[1:] = ids[1:] == ids[:-1]
    prev[1:] = np.where(same[1:], a[:-1], 0.0)
    cols = {c: data[c].to_numpy() for c in data.columns}
    return State(t=data[pt.time].to_numpy(dtype=int), columns=cols, previous=prev, natural=a, uniform=uniform)
