"""Regimes: one test per regime, on a hand-made State and on state_from_panel(pt)."""

from __future__ import annotations

import numpy as np
import pytest

import gtools as gt
from gtools.history import lag
from gtools.panel import PersonTime
from gtools.regimes import (
    Regime,
    State,
    always,
    custom,
    natural,
    never,
    state_from_panel,
    static,
    stochastic,
    threshold,
)


@pytest.fixture
def state() -> State:
    """Four persons: L = 1, 5, 3, 7; previously treated: person 2 only."""
    return State(
        t=np.array([0, 1, 2, 3]),
        columns={"L": np.array([1.0, 5.0, 3.0, 7.0]), "V": np.array([0.0, 1.0, 1.0, 0.0])},
        previous=np.array([0.0, 1.0, 1.0, 0.0]),
        natural=np.array([1.0, 0.0, 0.0, 1.0]),
        uniform=np.array([0.05, 0.6, 0.2, 0.9]),
    )


@pytest.fixture
def panel_state(long_df, long_roles) -> State:
    pt = PersonTime.from_long(long_df, **long_roles)
    return state_from_panel(pt, uniform=np.linspace(0.05, 0.95, pt.n_rows))


# observed in long_df (rows sorted by id, time)
A_OBS = [1, 1, 0, 0, 1, 0, 0, 0, 1]
PREV_OBS = [0, 1, 1, 0, 0, 0, 0, 0, 0]
T_OBS = [0, 1, 2, 0, 1, 0, 1, 2, 0]
L_OBS = [0.5, 1.5, 2.5, 1.0, 2.0, 3.0, 3.5, 4.0, 0.1]


def _eq(got, expected) -> bool:
    got = np.asarray(got)
    return got.dtype == float and np.array_equal(got, np.asarray(expected, dtype=float))


def test_always_treats_everyone(state, panel_state):
    r = always()
    assert isinstance(r, Regime) and r.name == "always" and r.is_static and not r.needs_natural
    assert _eq(r(state), [1, 1, 1, 1])
    assert _eq(r(panel_state), np.ones(9))


def test_never_treats_no_one(state, panel_state):
    r = never()
    assert r.name == "never" and r.is_static
    assert _eq(r(state), [0, 0, 0, 0])
    assert _eq(r(panel_state), np.zeros(9))


def test_static_scalar_gives_the_value_at_every_interval(state, panel_state):
    r = static(1)
    assert r.name == "static(1)"
    assert _eq(r(state), [1, 1, 1, 1])
    assert _eq(static(0)(panel_state), np.zeros(9))


def test_static_sequence_gives_the_value_of_each_interval(state, panel_state):
    r = static([0, 1, 1, 0], name="start at 1, stop at 3")
    assert r.name == "start at 1, stop at 3" and r.is_static
    assert _eq(r(state), [0, 1, 1, 0])  # state.t = 0, 1, 2, 3
    assert _eq(static([1, 0, 1])(panel_state), [1, 0, 1, 1, 0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match="3 intervals"):
        static([1, 0, 1])(state)


def test_threshold_treats_while_the_condition_holds(state, panel_state):
    r = threshold("L", ">", 4)
    assert r.name == "treat while L > 4"
    assert r.reads == ("L",) and not r.needs_natural
    assert _eq(r(state), [0, 1, 0, 1])
    assert _eq(threshold("L", ">=", 2)(panel_state), [0, 0, 1, 0, 1, 1, 1, 1, 0])
    assert _eq(threshold("L", "<", 3, otherwise=0.5)(state), [1, 0.5, 0.5, 0.5])


def test_threshold_absorbing_keeps_treating_once_started(state, panel_state):
    r = threshold("L", ">", 4, absorbing=True)
    assert r.name == "treat once L > 4"
    # person 3 (L = 3) was treated in the previous interval: stays treated
    assert _eq(r(state), [0, 1, 1, 1])
    expected = np.maximum(np.array(L_OBS) >= 2, np.array(PREV_OBS) == 1)
    assert _eq(threshold("L", ">=", 2, absorbing=True)(panel_state), expected)


def test_threshold_otherwise_natural_uses_the_natural_course(state, panel_state):
    r = threshold("L", ">", 4, otherwise="natural")
    assert r.needs_natural
    assert _eq(r(state), [1, 1, 0, 1])
    assert _eq(threshold("L", ">=", 2, otherwise="natural")(panel_state), [1, 1, 1, 0, 1, 1, 1, 1, 1])
    no_nat = State(t=state.t, columns=state.columns, previous=state.previous)
    with pytest.raises(ValueError, match="natural"):
        r(no_nat)


def test_threshold_absorbing_with_natural_otherwise_never_stops_treatment(state):
    r = threshold("L", ">", 6, absorbing=True, otherwise="natural")
    # L > 6: person 4; previously treated: persons 2, 3; otherwise natural (1, 0, 0, 1)
    assert _eq(r(state), [1, 1, 1, 1])
    s2 = State(t=state.t, columns=state.columns, previous=np.zeros(4), natural=np.zeros(4))
    assert _eq(r(s2), [0, 0, 0, 1])


def test_threshold_rejects_an_unknown_operator():
    with pytest.raises(ValueError, match="operator"):
        threshold("L", "=>", 4)


def test_threshold_on_a_column_not_in_the_state_names_it(state):
    with pytest.raises(KeyError, match="'lactate'"):
        threshold("lactate", ">", 4)(state)


def test_natural_returns_the_natural_course_treatment(state, panel_state):
    r = natural()
    assert r.name == "natural" and r.needs_natural
    assert _eq(r(state), [1, 0, 0, 1])
    assert _eq(r(panel_state), A_OBS)
    with pytest.raises(ValueError, match="natural"):
        r(State(t=state.t, columns=state.columns, previous=state.previous))


def test_stochastic_with_scalar_probability_uses_the_shared_uniforms(state, panel_state):
    r = stochastic(0.5)
    assert r.name == "stochastic(p=0.5)"
    assert _eq(r(state), [1, 0, 1, 0])  # uniforms 0.05, 0.6, 0.2, 0.9
    assert _eq(r(panel_state), (np.linspace(0.05, 0.95, 9) < 0.5).astype(float))
    assert _eq(stochastic(0.0)(state), [0, 0, 0, 0]) and _eq(stochastic(1.0)(state), [1, 1, 1, 1])


def test_stochastic_with_callable_probability_of_the_state(state, panel_state):
    r = stochastic(lambda s: s["L"] / 10, name="p = L/10")
    assert r.name == "p = L/10"
    assert _eq(r(state), [0.05 < 0.1, 0.6 < 0.5, 0.2 < 0.3, 0.9 < 0.7])
    u = np.linspace(0.05, 0.95, 9)
    assert _eq(stochastic(lambda s: s["L"] / 4)(panel_state), u < np.array(L_OBS) / 4)


def test_stochastic_rejects_bad_probabilities_and_needs_uniforms(state):
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        stochastic(lambda s: s["L"])(state)
    with pytest.raises(ValueError, match="uniforms"):
        stochastic(0.3)(State(t=state.t, columns=state.columns, previous=state.previous))


def test_custom_regime_applies_any_function_of_the_state(state, panel_state):
    def treat_old_after_first(s: State):
        return (s["V"] == 1) & (s.t >= 1)

    r = custom(treat_old_after_first, reads=["V"])
    assert r.name == "treat_old_after_first" and r.reads == ("V",) and not r.needs_natural
    assert _eq(r(state), [0, 1, 1, 0])
    assert _eq(custom(lambda s: 1.0, name="one")(state), [1, 1, 1, 1])  # scalars broadcast
    # a regime may read history features: "treat if treated before" is the observed lag
    assert _eq(custom(lambda s: s.previous)(panel_state), PREV_OBS)


def test_state_from_panel_holds_time_previous_natural_and_every_column(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles).add_history(lag("A"))
    s = state_from_panel(pt)
    assert s.n == 9
    assert s.t.tolist() == T_OBS
    assert s.previous.tolist() == PREV_OBS
    assert s.natural.tolist() == A_OBS
    assert s.uniform is None
    assert s["lag1_A"].tolist() == PREV_OBS  # previous treatment within person = the lag
    assert s["L"].tolist() == L_OBS
    assert _eq(custom(lambda st: st["lag1_A"])(s), PREV_OBS)


def test_regimes_are_reachable_as_gt_regimes():
    assert isinstance(gt.regimes.always(), Regime)
    assert gt.regimes.threshold("L", ">", 1).name == "treat while L > 1"
    assert repr(gt.regimes.never()) == "<Regime never>"
