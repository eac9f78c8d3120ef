"""The numba step rules of the history features reproduce the numpy step rules exactly."""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gtools as gt

FEATURES = [
    gt.lag("A"), gt.lag("A", 3, fill=-2.0), gt.cumsum("A"), gt.cummean("L"), gt.time_since("A"),
    gt.time_since("A", value=0, never=99), gt.ever("A"),
    # composed features: the source is another feature's column
    gt.lag(gt.cummean("L")), gt.cumsum(gt.lag("A", 2)), gt.ever(gt.lag("A")), gt.time_since(gt.cumsum("A"), 2),
    gt.cummean(gt.cummean("L")), gt.lag(gt.time_since("A"), 2),
]
VALUES = [0.0, 1.0, 2.0, -1.0, 0.5, 3.25, np.nan, -0.0]


def _random_state(f, n, rng):
    state = f.init(n)
    state[:] = rng.choice(VALUES, size=state.shape) if rng.random() < 0.5 else rng.normal(size=state.shape)
    if f.kind in ("time_since",):
        state[:, 0] = rng.choice([-1.0, 0.0, 1.0, 3.0, np.nan], size=n)
    return state


@pytest.mark.parametrize("f", FEATURES, ids=lambda f: f.name)
def test_numba_value_and_update_equal_numpy_on_random_states(f):
    rng = np.random.default_rng(zlib.crc32(f.name.encode()))
    for rep in range(30):
        n = int(rng.integers(0, 50))
        state = _random_state(f, n, rng)
        src = rng.choice(VALUES, size=n) if rep % 2 else rng.normal(size=n)
        t = int(rng.integers(0, 12))
        with np.errstate(all="ignore"):  # 0/0 in a cummean of a random state is part of the test
            want = f.value(state.copy(), None if f.kind == "lag" else src, t)
        got = np.full(n, 123.0)
        f.value_into(state, src, t, got)
        assert np.array_equal(want, got, equal_nan=True)
        s_np, s_nb = state.copy(), state.copy()
        f.update(s_np, src, t)
        f.update_numba(s_nb, src, t)
        assert np.array_equal(s_np, s_nb, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FEATURES),
       st.lists(st.lists(st.sampled_from([0.0, 1.0, 2.0, 0.25, -1.5]), min_size=6, max_size=6), min_size=1,
                max_size=8))
def test_numba_step_rules_follow_numpy_over_a_whole_history(f, paths):
    """Simulating T intervals with either rule gives identical values and states at every step."""
    X = np.array(paths)  # (n, T)
    n, T = X.shape
    s_np, s_nb = f.init(n), f.init(n)
    out = np.empty(n)
    for t in range(T):
        src = np.ascontiguousarray(X[:, t])
        want = f.value(s_np, None if f.kind == "lag" else src, t)
        f.value_into(s_nb, src, t, out)
        assert np.array_equal(want, out)
        f.update(s_np, src, t)
        f.update_numba(s_nb, src, t)
        assert np.array_equal(s_np, s_nb)
