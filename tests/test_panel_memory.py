"""Memory of PersonTime construction, and the isolation of its data from the caller's frame.

Memory is bytes allocated (tracemalloc, which numpy reports to), not time, so
the bounds below are plain assertions. They come from measurements on the
table of ``_table`` (7 columns: id and time int64, five float64 roles):

* ``from_long`` on a table sorted by (id, time): peak 1.11x the input's
  ``memory_usage(deep=True)`` at 200k and at 950k rows (the clean copy it keeps
  is 1.0x; the checks use boolean masks). Bound: 1.3x.
* ``from_long`` on the same rows shuffled: peak 1.39x (the sort order, 8 bytes a
  row, and one reordered column at a time). Bound: 1.7x.
* ``add_history(lag("A"), cumsum("A"))``: the new table shares the old one's
  columns, so the peak is the table after (old columns + 2 new ones) plus
  temporaries, measured at about 0.8 of one float64 column. Bound: the table
  after + 1.5 float64 columns.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import gtools as gt
from gtools.panel import PersonTime

ROLES = dict(id="id", time="time", treatment="A", covariates=["L"], baseline=["W"], outcome="Y", censor="C")


def _table(n_rows: int, seed: int = 0, k: int = 10) -> pd.DataFrame:
    """Persons followed over up to k intervals, sorted by (id, time); rare events and censoring."""
    rng = np.random.default_rng(seed)
    n = int(n_rows / (k * 0.93))
    lengths = np.minimum(rng.geometric(0.02, n), k)
    ids = np.repeat(np.arange(n), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    time = np.arange(len(ids)) - np.repeat(starts, lengths)
    last = np.zeros(len(ids), dtype=bool)
    last[np.cumsum(lengths) - 1] = True
    ended = last & (time < k - 1)  # follow-up ended before the last interval: event or censoring
    cens = ended & (rng.random(len(ids)) < 0.5)
    y = (ended & ~cens).astype(float)
    y[cens] = np.nan
    w = (rng.random(n) < 0.5).astype(float)[ids]
    return pd.DataFrame({"id": ids, "time": time, "W": w, "L": rng.normal(size=len(ids)),
                         "A": (rng.random(len(ids)) < 0.4).astype(float), "C": cens.astype(float), "Y": y})


def _peak(fn):
    """(result, peak bytes allocated while fn runs)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    df = _table(200_000)
    PersonTime.from_long(df.head(1000), **ROLES).add_history(gt.lag("A"), gt.cumsum("A"))  # warm up
    return df


def test_from_long_sorted_peak_is_close_to_the_copy(big):
    data_bytes = big.memory_usage(deep=True).sum()
    pt, peak = _peak(lambda: PersonTime.from_long(big, **ROLES))
    assert pt.n_rows == len(big)
    assert peak <= 1.3 * data_bytes, f"peak {peak / data_bytes:.2f}x the data"


def test_from_long_unsorted_peak(big):
    shuffled = big.sample(frac=1, random_state=0)
    data_bytes = shuffled.memory_usage(deep=True).sum()
    pt, peak = _peak(lambda: PersonTime.from_long(shuffled, **ROLES))
    pd.testing.assert_frame_equal(pt.data, PersonTime.from_long(big, **ROLES).data)
    assert peak <= 1.7 * data_bytes, f"peak {peak / data_bytes:.2f}x the data"


def test_add_history_peak_is_the_table_after_plus_one_column(big):
    pt = PersonTime.from_long(big, **ROLES)
    column = 8 * len(big)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        pt2 = pt.add_history(gt.lag("A"), gt.cumsum("A"))
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the old table's columns are shared, not copied: the new table costs its two new columns
    assert now - before <= 2 * column + column // 4
    assert peak - before <= 2 * column + 1.5 * column, f"{(peak - before) / column:.2f} float64 columns"
    assert list(pt2.data.columns) == list(pt.data.columns) + ["lag1_A", "cumsum_A"]


def test_person_codes_are_cheap(big):
    pt = PersonTime.from_long(big, **ROLES)
    codes, peak = _peak(lambda: pt.person_index)
    assert codes.dtype == np.int64
    assert peak <= 8 * len(big) * 1.5  # the codes (8 bytes a row; measured 1.23x with the masks)


# -- isolation -----------------------------------------------------------------------


def _tables():
    df = _table(3000, seed=1)
    yield "sorted", df
    yield "unsorted", df.sample(frac=1, random_state=2)
    text = df.copy()
    text["L"] = np.where(df["L"] > 0, "hi", "lo")
    text["note"] = pd.Series(["x"] * len(df), dtype=object)
    yield "text covariate and extra column", text
    ints = df.astype({"A": int, "W": "int32", "C": bool})
    yield "integer roles", ints
    days = df.assign(time=df["time"].astype(float) * 0.5)
    yield "float times", days


@pytest.mark.parametrize("name,df", list(_tables()), ids=[t[0] for t in _tables()])
def test_from_long_data_shares_no_memory_with_the_callers_frame(name, df):
    before = df.copy(deep=True)
    pt = PersonTime.from_long(df, **ROLES)
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not modified
    for c in pt.data.columns:
        for d in df.columns:
            assert not np.shares_memory(np.asarray(pt.data[c].array), np.asarray(df[d].array)), (c, d)
    kept = pt.data.copy(deep=True)
    # later changes to the caller's frame, in place or by assignment, do not reach pt.data
    for c in ("id", "time", "W", "A", "Y"):
        df[c].to_numpy()[:] = df[c].to_numpy()[::-1] if df[c].dtype != object else df[c].to_numpy()[0]
    df.loc[df.index[:10], "L"] = df["L"].iloc[-1]
    df["W"] = 99
    pd.testing.assert_frame_equal(pt.data, kept)


def test_from_long_with_fill_rules_shares_no_memory():
    df = _table(3000, seed=3)
    inner = (df["time"] > 0) & (df["id"].shift(-1) == df["id"])  # neither first nor last of a person
    df.loc[df.index[inner][:30:3], "L"] = np.nan
    before = df.copy(deep=True)
    for rule in ("locf", "nocb", 0.0):
        pt = PersonTime.from_long(df, **ROLES, fill={"L": rule})
        pd.testing.assert_frame_equal(df, before)
        assert not np.shares_memory(pt.data["L"].to_numpy(), df["L"].to_numpy())
    df["L"].to_numpy()[:] = 5.0
    assert (pt.data["L"].to_numpy() != 5.0).any()


def test_add_history_leaves_the_old_table_alone():
    pt = PersonTime.from_long(_table(3000, seed=4), **ROLES)
    kept = pt.data.copy(deep=True)
    pt2 = pt.add_history(gt.lag("A"), gt.cumsum("A"))
    pd.testing.assert_frame_equal(pt.data, kept)  # no columns added to the old table
    assert pt.history == [] and [f.name for f in pt2.history] == ["lag1_A", "cumsum_A"]
    pt3 = pt2.add_history(gt.ever("A"))
    assert list(pt2.data.columns) == list(kept.columns) + ["lag1_A", "cumsum_A"]
    assert list(pt3.data.columns) == list(pt2.data.columns) + ["ever_A"]
    # replacing a column in the new table (as pandas assignment does) leaves the old one unchanged
    pt2.data["L"] = 0.0
    pd.testing.assert_frame_equal(pt.data, kept)
    np.testing.assert_array_equal(pt3.person_index, pt.person_index)


def test_add_history_keeps_attrs_and_replaces_a_same_named_extra_column():
    df = _table(2000, seed=5)
    df["lag1_A"] = -7.0  # an extra (undeclared) column with a feature's name is overwritten, in place
    df.attrs["source"] = {"study": [1]}
    pt = PersonTime.from_long(df, **ROLES)
    assert pt.data.attrs == {"source": {"study": [1]}}
    assert pt.data.attrs["source"] is not df.attrs["source"]
    pt2 = pt.add_history(gt.lag("A"))
    assert list(pt2.data.columns) == list(pt.data.columns)
    assert (pt2.data["lag1_A"] != -7.0).all()
    assert (pt.data["lag1_A"] == -7.0).all()
    assert pt2.data.attrs == {"source": {"study": [1]}}
