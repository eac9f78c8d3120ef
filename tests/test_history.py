"""History features: the step rule reproduces the vectorised columns exactly; names; add_history."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gtools as gt
from gtools.errors import DataError
from gtools.history import Feature, cummean, cumsum, ever, lag, order_features, time_since
from gtools.panel import PersonTime

FEATURES = [
    lag("A"),
    lag("A", k=2),
    lag("A", k=3, fill=-1),
    lag("L", k=2, fill=0.5),
    cumsum("A"),
    cumsum("L"),
    cummean("A"),
    cummean("L"),
    time_since("A"),
    time_since("A", value=0, never=99),
    time_since("K", value=2),
    ever("A"),
    ever("L"),
    lag(cummean("L")),
    lag(cumsum("A")),
    cumsum(lag("A")),
    lag(lag("A", k=2)),
    cummean(lag("L", k=2)),
    time_since(lag("A")),
    ever(lag("A")),
    lag(time_since("A"), k=2, fill=-5),
    cummean(cumsum("L")),
]


@st.composite
def panels(draw) -> pd.DataFrame:
    """Random stacked panels: 1-6 persons with 1-8 intervals, binary A, 3-level K, continuous L."""
    n = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, 8), min_size=n, max_size=n))
    ids = sorted(draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True)))
    rows = sum(lengths)
    a = draw(st.lists(st.integers(0, 1), min_size=rows, max_size=rows))
    k = draw(st.lists(st.integers(0, 2), min_size=rows, max_size=rows))
    lvals = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=True)
    lv = draw(st.lists(lvals, min_size=rows, max_size=rows))
    return pd.DataFrame({
        "id": np.repeat(ids, lengths),
        "t": np.concatenate([np.arange(m) for m in lengths]),
        "A": np.array(a, dtype=float),
        "K": np.array(k, dtype=float),
        "L": np.array(lv, dtype=float),
    })


def _step(feature: Feature, df: pd.DataFrame) -> np.ndarray:
    """Run init/value/update through time, as the g-formula simulation does, for every person at once.

    Each feature of the chain is fed its source at t (the raw column, or the inner feature's value at t);
    its value is read before its state is updated with that source.
    """
    persons = df["id"].to_numpy()
    _, first, lengths = np.unique(persons, return_index=True, return_counts=True)
    n, kmax = len(first), int(lengths.max())
    out = np.full(len(df), np.nan)
    chain = feature.chain()
    states = [g.init(n) for g in chain]
    x = df[feature.root].to_numpy(dtype=float)
    for t in range(kmax):
        alive = lengths > t
        rows = first + np.minimum(t, lengths - 1)  # padded with the last row where not alive
        src = x[rows]
        for g, s in zip(chain, states):
            val = g.value(s, None if g.kind == "lag" else src, t)
            g.update(s, src, t)
            src = val
        out[rows[alive]] = src[alive]
    return out


@pytest.mark.parametrize("feature", FEATURES, ids=[f.name for f in FEATURES])
@settings(max_examples=30, deadline=None)
@given(df=panels())
def test_step_rule_reproduces_vectorised_compute_exactly(feature, df):
    vec = feature.compute(df, "id", "t").to_numpy()
    stepped = _step(feature, df)
    assert np.array_equal(vec, stepped), (feature.name, vec, stepped)


def test_vectorised_features_on_a_hand_made_panel():
    df = pd.DataFrame({"id": [1, 1, 1, 1, 2, 2], "t": [0, 1, 2, 3, 0, 1],
                       "A": [0.0, 1, 0, 1, 1, 0], "L": [2.0, 4, 6, 8, 1, 3]})
    col = {f.name: f.compute(df, "id", "t").tolist() for f in [
        lag("A"), lag("A", k=2, fill=9), cumsum("A"), cummean("L"), time_since("A"), ever("A"),
        lag(cummean("L")), cumsum(lag("A"))]}
    assert col["lag1_A"] == [0, 0, 1, 0, 0, 1]
    assert col["lag2_A"] == [9, 9, 0, 1, 9, 9]
    assert col["cumsum_A"] == [0, 1, 1, 2, 1, 1]
    assert col["cummean_L"] == [2, 3, 4, 5, 1, 2]
    assert col["timesince_A"] == [-1, 0, 1, 0, 0, 1]
    assert col["ever_A"] == [0, 1, 1, 1, 1, 1]
    assert col["lag1_cummean_L"] == [0, 2, 3, 4, 0, 1]
    assert col["cumsum_lag1_A"] == [0, 0, 1, 1, 0, 1]


@pytest.mark.parametrize(
    "feature, name",
    [
        (lag("A"), "lag1_A"),
        (lag("A", k=2), "lag2_A"),
        (cumsum("A"), "cumsum_A"),
        (cummean("L2"), "cummean_L2"),
        (lag(cummean("L1")), "lag1_cummean_L1"),
        (time_since("A"), "timesince_A"),
        (ever("A"), "ever_A"),
        (cumsum(lag("A")), "cumsum_lag1_A"),
        (lag("A", name="prevA"), "prevA"),
    ],
)
def test_feature_names(feature, name):
    assert feature.name == name


@pytest.mark.parametrize(
    "feature, uses",
    [
        (lag("A"), False),
        (lag("A", k=3), False),
        (cumsum("A"), True),
        (cummean("L"), True),
        (time_since("A"), True),
        (ever("A"), True),
        (lag(cummean("L")), False),
        (lag(cumsum("A")), False),
        (cumsum(lag("A")), False),
        (ever(lag("A")), False),
        (cummean(cumsum("L")), True),
    ],
    ids=lambda v: v.name if isinstance(v, Feature) else str(v),
)
def test_uses_current(feature, uses):
    assert feature.uses_current is uses


def test_public_constructors_are_exported_at_top_level():
    assert gt.lag("A") == lag("A")
    assert gt.lag(gt.cummean("L1")).name == "lag1_cummean_L1"
    assert {gt.cumsum, gt.cummean, gt.time_since, gt.ever} == {cumsum, cummean, time_since, ever}


def test_bad_feature_arguments_raise():
    with pytest.raises(ValueError, match="positive integer"):
        lag("A", k=0)
    with pytest.raises(TypeError):
        cumsum(3)
    with pytest.raises(ValueError, match="unknown"):
        Feature("cumprod", "A")


def test_root_and_chain_of_composed_features():
    f = lag(cumsum(lag("A", k=2)))
    assert f.root == "A"
    assert [g.name for g in f.chain()] == ["lag2_A", "cumsum_lag2_A", "lag1_cumsum_lag2_A"]


def test_order_features_flattens_and_rejects_two_features_with_one_name():
    names = [f.name for f in order_features([lag(cummean("L")), cummean("L"), lag("A")])]
    assert names == ["cummean_L", "lag1_cummean_L", "lag1_A"]
    with pytest.raises(ValueError, match="both named"):
        order_features([lag("A", fill=0), lag("A", fill=1)])
    with pytest.raises(TypeError):
        order_features(["lag1_A"])


def test_add_history_returns_a_new_person_time_with_the_feature_columns(long_df, long_roles):
    before = copy.deepcopy(long_df)
    pt = PersonTime.from_long(long_df, **long_roles)
    data_before = pt.data.copy(deep=True)
    new = pt.add_history(lag("A"), cumsum("A"), lag(cummean("L")), ever("A"), time_since("A"))
    assert new is not pt
    assert isinstance(new, PersonTime)
    added = ["lag1_A", "cumsum_A", "cummean_L", "lag1_cummean_L", "ever_A", "timesince_A"]
    assert [c for c in new.data.columns if c not in pt.data.columns] == added
    assert [f.name for f in new.history] == added
    assert new.data["lag1_A"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert new.data["cumsum_A"].tolist() == [1, 2, 2, 0, 1, 0, 0, 0, 1]
    np.testing.assert_allclose(new.data["lag1_cummean_L"], [0, 0.5, 1.0, 0, 1.0, 0, 3.0, 3.25, 0])
    assert new.data["timesince_A"].tolist() == [0, 0, 1, -1, 0, -1, -1, -1, 0]
    pd.testing.assert_frame_equal(pt.data, data_before)  # the original PersonTime is unchanged
    pd.testing.assert_frame_equal(long_df, before)  # and so is the caller's frame
    assert pt.history == []
    assert (new.n_persons, new.n_rows, new.roles) == (pt.n_persons, pt.n_rows, pt.roles)


def test_add_history_keeps_earlier_features_and_weights(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles).with_person_counts(np.array([1, 0, 2, 1]))
    one = pt.add_history(lag("A"))
    two = one.add_history(lag("A"), cumsum("L"))
    assert [f.name for f in two.history] == ["lag1_A", "cumsum_L"]
    np.testing.assert_array_equal(two.row_weights(), pt.row_weights())
    assert "cumsum_L" not in one.data.columns


def test_add_history_on_an_unknown_column_raises_data_error(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    with pytest.raises(DataError) as info:
        pt.add_history(lag(cummean("L7")))
    (p,) = info.value.problems
    assert p.check == "missing_column"
    assert p.column == "L7"
    assert "lag" not in p.column and "cummean_L7" in p.message


def test_add_history_name_clashing_with_a_declared_column_is_an_error(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    with pytest.raises(ValueError, match="clashes"):
        pt.add_history(lag("A", name="L"))
