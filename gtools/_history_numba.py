"""Numba step rules of the history features (:mod:`gtools.history`).

The same definitions as :meth:`gtools.history.Feature.value` and
:meth:`~gtools.history.Feature.update`, written as loops over persons so the
g-formula's simulation advances a feature without temporary arrays. Every
operation is the one the numpy rule performs, in the same order, so both give
identical floats (``tests/test_history_numba.py``). Imported lazily: only the
numba simulation engine needs it.
"""

from __future__ import annotations

import numba

# kind codes
LAG, CUMSUM, CUMMEAN, TIME_SINCE, EVER = 0, 1, 2, 3, 4
KIND_CODE = {"lag": LAG, "cumsum": CUMSUM, "cummean": CUMMEAN, "time_since": TIME_SINCE, "ever": EVER}


@numba.njit(cache=True, nogil=True)
def _max_like_numpy(a, b):
    # np.maximum: NaN if either is NaN, else the larger (the first when equal)
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@numba.njit(cache=True, nogil=True, error_model="numpy")  # 0/0 gives NaN as in numpy
def step_value(code, k, fill, target, state, src, t, out):
    """``out[i]`` = the feature at interval ``t`` from ``state`` (after ``t-1``) and the source ``src`` at ``t``."""
    n = state.shape[0]
    ft = float(t)
    if code == 0:
        for i in range(n):
            out[i] = state[i, k - 1]
    elif code == 1:
        for i in range(n):
            out[i] = state[i, 0] + src[i]
    elif code == 2:
        for i in range(n):
            out[i] = (state[i, 0] + src[i]) / (state[i, 1] + 1.0)
    elif code == 3:
        for i in range(n):
            last = ft if src[i] == target else state[i, 0]
            out[i] = (ft - last) if last >= 0 else fill
    else:
        for i in range(n):
            out[i] = _max_like_numpy(state[i, 0], 1.0 if src[i] != 0 else 0.0)


@numba.njit(cache=True, nogil=True)
def step_update(code, k, target, state, src, t):
    """Push interval ``t`` (source ``src``) into ``state`` in place."""
    n = state.shape[0]
    if code == 0:
        if k == 2:  # the common second lag in one pass
            for i in range(n):
                state[i, 1] = state[i, 0]
                state[i, 0] = src[i]
        else:  # shift slot by slot (as numpy's state[:, 1:] = state[:, :-1]), then the new value
            for j in range(k - 1, 0, -1):
                for i in range(n):
                    state[i, j] = state[i, j - 1]
            for i in range(n):
                state[i, 0] = src[i]
    elif code == 1:
        for i in range(n):
            state[i, 0] += src[i]
    elif code == 2:
        for i in range(n):
            state[i, 0] += src[i]
            state[i, 1] += 1.0
    elif code == 3:
        ft = float(t)
        for i in range(n):
            if src[i] == target:
                state[i, 0] = ft
    else:
        for i in range(n):
            state[i, 0] = _max_like_numpy(state[i, 0], 1.0 if src[i] != 0 else 0.0)
