"""Person-time tables: ingestion, validation and the person-time grid.

:class:`PersonTime` is what every estimator in gtools reads: one row per
person and interval, intervals numbered 0..K-1 from each person's entry,
with named roles (id, time, treatment, covariates, baseline covariates,
outcome, censoring, competing event) and any history features added with
:meth:`PersonTime.add_history`.

Conventions (those of gfoRmula/pygformula, so their users' data load
unchanged):

* ``censor = 1`` on a person's last row means they were censored during that
  interval before the outcome could be seen; the outcome may be missing on
  that row and such rows never enter outcome models.
* A survival outcome is the event indicator of the interval; follow-up ends at
  the event. A competing event (``competing = 1``) ends follow-up too and
  precludes the outcome in its interval: the outcome on that row is set to
  missing.
* An end-of-follow-up outcome (``"binary"``, ``"continuous"``) may be given on
  the last row only (missing elsewhere) or repeated on every row; it is stored
  on every row of the person.
* A time-varying covariate missing anywhere is an error unless a fill rule is
  given (``fill={"L2": "locf"}``: last observation carried forward).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gtools.errors import DataError, Problem
from gtools.history import Feature, order_features

__all__ = ["PersonTime", "Description", "load_schema", "validate_long"]

OUTCOME_TYPES = ("survival", "binary", "continuous")
_N_EXAMPLES = 5


# -- schemas -----------------------------------------------------------------


def _schema_dir() -> Path:
    """The data_schemas folder: inside the installed package, or the source tree's."""
    packaged = resources.files("gtools") / "data_schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "data_schemas"


@cache
def load_schema(kind: str = "long") -> dict:
    """Load a JSON Schema from ``data_schemas/`` (``"long"`` or ``"intervals"``)."""
    if kind not in ("long", "intervals"):
        raise ValueError(f"schema must be 'long' or 'intervals', got {kind!r}")
    path = _schema_dir() / f"{kind}.schema.json"
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _checks(kind: str) -> dict[str, dict]:
    return {c["id"]: c for c in load_schema(kind)["x-gtools-checks"]}


def _role_types(kind: str) -> dict[str, dict]:
    return load_schema(kind)["items"]["properties"]


class _Collector:
    """Collects problems; each names its check (from the schema), column, count and examples."""

    def __init__(self, kind: str):
        self.kind = kind
        self.checks = _checks(kind)
        self.problems: list[Problem] = []

    def add(self, check: str, column: str | None, n_rows: int, examples: Sequence = (), detail: str = ""):
        base = self.checks[check]["message"]
        ex = [tuple(_py(v) for v in e) if isinstance(e, tuple) else _py(e) for e in list(examples)[:_N_EXAMPLES]]
        msg = f"{base}: {n_rows} row(s)"
        if ex:
            msg += "; first: " + ", ".join(_fmt_example(e) for e in ex)
        if detail:
            msg += f" ({detail})"
        self.problems.append(Problem(check, column, msg, n_rows, ex))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DataError(self.problems)


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _fmt_example(e: Any) -> str:
    if isinstance(e, tuple) and len(e) == 2:
        return f"id={_py(e[0])!r} time={_num(e[1])}"
    return f"id={_py(e)!r}"


def _num(x: Any) -> str:
    try:
        xf = float(x)
        return str(int(xf)) if xf.is_integer() else f"{xf:g}"
    except (TypeError, ValueError):
        return repr(x)


def _as_list(x: str | Iterable[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


# -- validation of long tables -------------------------------------------------


def validate_long(
    df: pd.DataFrame,
    id: str,
    time: str,
    treatment: str | None = None,
    covariates: Sequence[str] = (),
    baseline: Sequence[str] = (),
    outcome: str | None = None,
    outcome_type: str = "survival",
    censor: str | None = None,
    competing: str | None = None,
    fill: Mapping[str, Any] | str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, list[Problem]]:
    """Validate a long table; return (clean copy, time values, problems).

    The clean copy is sorted by (id, time), has the time column mapped to
    0..K-1, fill rules applied, and the outcome normalised (see the module
    docstring). ``problems`` lists every problem found (empty when valid).
    The input frame is never modified, and the copy shares no memory with it.

    Memory: the checks read the caller's columns in place and use boolean
    masks (1 byte a row); each column is copied once, into the clean copy. A
    table already sorted by (id, time) is not reordered, so the peak stays
    close to the size of the copy; an unsorted one costs the sort order
    (8 bytes a row) and one reordered column at a time on top of that.
    """
    col = _Collector("long")
    covariates, baseline = _as_list(covariates), _as_list(baseline)
    if outcome_type not in OUTCOME_TYPES:
        raise ValueError(f"outcome_type must be one of {OUTCOME_TYPES}, got {outcome_type!r}")
    roles: dict[str, list[str]] = {
        "id": [id],
        "time": [time],
        "treatment": _as_list(treatment),
        "covariates": covariates,
        "baseline": baseline,
        "outcome": _as_list(outcome),
        "censor": _as_list(censor),
        "competing": _as_list(competing),
    }
    declared = [c for cols in roles.values() for c in cols]
    dup_roles = sorted({c for c in declared if declared.count(c) > 1})
    if dup_roles:
        raise ValueError(f"columns declared in more than one role: {dup_roles}")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in declared if c not in df.columns]
    for c in missing:
        col.add("missing_column", c, 0, detail=f"available columns: {list(df.columns)}")
    col.raise_if_any()
    if len(df) == 0:
        col.add("empty_table", None, 0)
        col.raise_if_any()

    n = len(df)
    ids_in, times_in = df[id], df[time]  # the caller's columns: read, never written

    def examples(mask: np.ndarray) -> list:
        """(id, time) of the first rows in ``mask``, as given (the caller's row order and values)."""
        idx = np.flatnonzero(mask)[:_N_EXAMPLES]
        return [(ids_in.iloc[i], times_in.iloc[i]) for i in idx]

    # numeric roles, as float64 arrays in the caller's row order: the caller's own array when it
    # is float64 already (read only), else a new one (listed in `owned`)
    numeric_roles = set(_checks("long")["non_numeric"]["roles"])
    non_numeric: dict[str, np.ndarray] = {}  # reported once, as non-numeric, not again as missing
    categories: dict[str, list] = {}
    vals: dict[str, np.ndarray] = {}
    owned: set[str] = set()
    t_int: np.ndarray | None = None  # integer times stay integers (equal to their floats, see below)
    for role, cols in roles.items():
        if role not in numeric_roles:
            continue
        for c in cols:
            s = df[c]
            if role in ("covariates", "baseline") and _is_text_category(s):
                # a text or categorical covariate: stored as codes 0..k-1 of its sorted levels
                # (a pandas Categorical keeps its own order); formulas use it through C(col)
                codes, levels = _encode_category(s)
                categories[c] = levels
                vals[c] = codes
                owned.add(c)
                continue
            if role == "time" and _exact_int_dtype(s.dtype):
                t_int = s.to_numpy()
                continue
            v, bad, own = _as_float(s)
            # text that is not a number, and +-inf (e.g. log of 0), are not usable numbers
            if bad is not None and bad.any():
                col.add("non_numeric", c, int(bad.sum()), examples(bad),
                        detail=f"e.g. {s.iloc[int(np.flatnonzero(bad)[0])]!r}")
                non_numeric[c] = bad
                if not own:
                    v, own = v.copy(), True
                v[bad] = np.nan
            vals[c] = v
            if own:
                owned.add(c)

    # fill rules for time-varying covariates (within person, in (id, time) order), then missing values
    fill_rules = _fill_rules(fill, covariates)
    if fill_rules:
        t_key = vals[time] if t_int is None else t_int.astype(float)
        order = np.lexsort((t_key, _sortable(ids_in)))
        del t_key
        key = ids_in.iloc[order].reset_index(drop=True)
        for c, rule in fill_rules.items():
            v = vals[c]
            if rule == "locf" or rule == "nocb":
                by = pd.Series(v[order]).groupby(key, sort=False)
                filled = (by.ffill() if rule == "locf" else by.bfill()).to_numpy()
                v = np.empty(n)
                v[order] = filled
                del filled
            else:
                v = v.copy()
                v[np.isnan(v)] = float(rule)
            vals[c] = v
            owned.add(c)
        del key, order
    miss_roles = set(_checks("long")["missing_values"]["roles"])
    for role, cols in roles.items():
        if role not in miss_roles:
            continue
        for c in cols:
            if role == "id":
                if _cannot_be_missing(ids_in.dtype):
                    continue
                bad = ids_in.isna().to_numpy()
            elif c == time and t_int is not None:
                continue
            else:
                bad = np.isnan(vals[c])
            if c in non_numeric:
                bad &= ~non_numeric[c]
            if bad.any():
                hint = f" — give a fill rule, e.g. fill={{'{c}': 'locf'}}" if role == "covariates" else ""
                col.add("missing_values", c, int(bad.sum()), examples(bad), detail=hint.strip(" —") or "")
    del non_numeric

    is_01: dict[str, bool] = {}  # columns checked to hold only 0, 1 and missing values
    for role in ("treatment", "censor", "competing"):
        for c in roles[role]:
            v = vals[c]
            bad = _not_01(v)
            is_01[c] = not bad.any()
            if not is_01[c]:
                extra = " (multi-valued treatments are not supported yet)" if role == "treatment" else ""
                col.add("not_binary", c, int(bad.sum()), examples(bad),
                        detail=f"values seen: {sorted(set(v[bad].tolist()))[:5]}{extra}")
    if outcome and outcome_type in ("survival", "binary"):
        v = vals[outcome]
        bad = _not_01(v)
        is_01[outcome] = not bad.any()
        if not is_01[outcome]:
            col.add("outcome_not_binary", outcome, int(bad.sum()), examples(bad),
                    detail=f"values seen: {sorted(set(v[bad].tolist()))[:5]}")
    bad = v = None

    # from here on we need usable ids and times
    if ((not _cannot_be_missing(ids_in.dtype) and ids_in.isna().any())
            or (t_int is None and np.isnan(vals[time]).any())):
        col.raise_if_any()

    # sort by (id, time) — unless the rows are in that order already (then the sort is the identity:
    # it is stable); integer times compare as their floats do
    t_raw = vals.pop(time) if t_int is None else t_int
    key = _sortable(ids_in)
    order = None if _is_sorted(key, t_raw) else np.lexsort((t_raw if t_int is None else t_raw.astype(float), key))
    del key
    index = pd.RangeIndex(n)
    ids_s = _private_column(ids_in, order, index)
    t_s = t_raw if order is None else t_raw[order]  # read only: the caller's array when not reordered
    del t_raw
    final: dict[str, np.ndarray | pd.Series] = {id: ids_s}
    for c in list(vals):
        v = vals.pop(c)
        final[c] = (v if c in owned else v.copy()) if order is None else v[order]
        del v

    def examples_s(mask: np.ndarray) -> list:
        """(id, time) of the first rows in ``mask`` of the sorted table (times as numbers)."""
        idx = np.flatnonzero(mask)[:_N_EXAMPLES]
        return [(ids_s.iloc[i], np.float64(t_s[i])) for i in idx]

    # the time grid: distinct times, regular steps, interval index of each row
    int_times = t_int is not None and max(abs(int(t_s.min())), abs(int(t_s.max()))) < 2**53
    if int_times:  # below 2**53 an integer is its float exactly: the same grid as from the floats
        tmin = t_s.min()
        off = np.subtract(t_s, tmin, dtype=np.int64)  # becomes the interval index
        span = int(off.max())
        if span < 4 * n + 1024:
            seen = np.zeros(span + 1, dtype=bool)
            seen[off] = True
            u_off = np.flatnonzero(seen)
            del seen
        else:
            u_off = np.unique(off)
        tvals = (u_off + tmin).astype(float)
    else:
        tf = t_s.astype(float) if t_int is not None else t_s
        tvals = np.unique(tf)
    if len(tvals) > 1:
        steps = np.diff(tvals)
        if not np.allclose(steps, steps[0], rtol=1e-9, atol=1e-12):
            # show the irregular values
            bad_vals = tvals[1:][~np.isclose(steps, steps[0])]
            bad = np.isin(t_s.astype(float) if t_int is not None else t_s, bad_vals)
            col.add("irregular_time_grid", time, int(bad.sum()), examples_s(bad),
                    detail=f"distinct times {tvals[:8].tolist()}{'...' if len(tvals) > 8 else ''}")
            col.raise_if_any()
        if int_times:
            # the index of each distinct time, by the formula below; rows then look theirs up
            lut = np.rint((tvals - tvals[0]) / steps[0]).astype(np.int64)
            tidx = _lookup_offsets(off, u_off, lut)
        else:
            tmp = np.subtract(tf, tvals[0])
            np.divide(tmp, steps[0], out=tmp)
            np.rint(tmp, out=tmp)
            tidx = tmp.astype(np.int64)
            del tmp
    else:
        tidx = off if int_times else np.zeros(n, dtype=np.int64)
    if int_times:
        del off
    else:
        del tf

    ids = ids_s.to_numpy()
    first = np.ones(n, dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    del ids
    dup = np.zeros(n, dtype=bool)
    dup[1:] = (~first[1:]) & (tidx[1:] == tidx[:-1])
    if dup.any():
        col.add("duplicate_id_time", f"{id}, {time}", int(dup.sum()), examples_s(dup))
    del dup
    late = first & (tidx > 0)
    if late.any():
        col.add("late_entry", time, int(late.sum()), examples_s(late),
                detail=f"every person must start at the first interval ({_num(tvals[0])})")
    del late
    gap = _steps_over_one(tidx)
    gap &= ~first
    if gap.any():
        col.add("time_gap", time, int(gap.sum()), examples_s(gap), detail="rows shown are the first after each gap")
    del gap

    last = np.zeros(n, dtype=bool)
    last[:-1] = first[1:]
    last[-1] = True
    group_memo: list[np.ndarray] = []

    def group() -> np.ndarray:
        """Person number 0, 1, ... of each row (made when a check needs it)."""
        if not group_memo:
            g = _running_count(first)
            g -= 1
            group_memo.append(g)
        return group_memo[0]

    def after(flag: np.ndarray, binary: bool) -> np.ndarray | None:
        """Rows that come after a row with flag == 1 within the same person (None: no such row)."""
        if binary:  # 0/1 flags: there are such rows iff a flag is on a row other than a person's last
            hit = flag == 1.0
            hit &= ~last
            if not hit.any():
                return None
            del hit
        f = np.nan_to_num(flag).astype(float)
        # cumulative count of flags strictly before each row, within person
        cs = np.cumsum(f)
        g, fi = group(), np.flatnonzero(first)
        start_cs = cs[fi][g] - f[fi][g]
        csum = cs - f - start_cs
        return csum > 0

    if outcome and outcome_type == "survival":
        bad = after(final[outcome], is_01[outcome])
        if bad is not None and bad.any():
            col.add("rows_after_event", outcome, int(bad.sum()), examples_s(bad))
    if censor:
        bad = after(final[censor], is_01[censor])
        if bad is not None and bad.any():
            col.add("rows_after_censoring", censor, int(bad.sum()), examples_s(bad))
    if competing:
        bad = after(final[competing], is_01[competing])
        if bad is not None and bad.any():
            col.add("rows_after_competing", competing, int(bad.sum()), examples_s(bad))
    bad = None

    cens = final[censor] == 1 if censor else np.zeros(n, dtype=bool)
    comp = final[competing] == 1 if competing else np.zeros(n, dtype=bool)
    if outcome:
        y = final[outcome]
        if outcome_type == "survival":
            both = comp & (y == 1)
            if both.any():
                col.add("rows_after_competing", outcome, int(both.sum()), examples_s(both),
                        detail="outcome and competing event on the same row")
            del both
            bad = np.isnan(y)
            bad &= ~cens
            bad &= ~comp
            if bad.any():
                col.add("missing_outcome", outcome, int(bad.sum()), examples_s(bad))
            bad = None
        else:
            group_ = group()
            ser = pd.Series(y)
            nun = ser.groupby(group_).nunique()
            varying = nun.index[nun.to_numpy() > 1]
            if len(varying):
                bad = np.isin(group_, varying)
                col.add("outcome_varies", outcome, int(bad.sum()), examples_s(bad & first),
                        detail=f"{len(varying)} person(s)")
            person_y = ser.groupby(group_).transform("last")  # last non-missing value
            person_cens = pd.Series(cens).groupby(group_).transform("max").to_numpy()
            bad = last & person_y.isna().to_numpy() & ~person_cens & ~comp
            if bad.any():
                col.add("missing_outcome", outcome, int(bad.sum()), examples_s(bad),
                        detail="end-of-follow-up outcome missing for persons who were not censored")
            if not len(varying):
                final[outcome] = person_y.to_numpy()
            del ser, person_y, person_cens
            bad = None
        del y
    for c in baseline:
        x = final[c]
        if _constant_within(x, first):
            continue
        group_ = group()
        nun = pd.Series(x).groupby(group_).nunique()
        varying = nun.index[nun.to_numpy() > 1]
        if len(varying):
            bad = np.isin(group_, varying) & first
            col.add("baseline_varies", c, int(np.isin(group_, varying).sum()), examples_s(bad),
                    detail=f"{len(varying)} person(s)")
    if outcome and outcome_type == "survival" and competing:
        final[outcome][comp] = np.nan  # our copy
    del cens, comp
    group_memo.clear()
    final[time] = tidx
    if np.all(np.mod(tvals, 1) == 0):
        tvals = tvals.astype(np.int64)

    # the clean copy: our arrays, in the caller's column order; other columns copied as they are
    parts = [final[c] if c in final else _private_column(df.iloc[:, j], order, index)
             for j, c in enumerate(df.columns)]
    data = _assemble(parts, df.columns, index, like=df)
    data.attrs["gtools_categories"] = categories  # levels of text covariates stored as codes
    return data, tvals, col.problems


def _exact_int_dtype(dtype: Any) -> bool:
    """A numpy integer dtype whose values fit in int64."""
    return isinstance(dtype, np.dtype) and (dtype.kind == "i" or (dtype.kind == "u" and dtype.itemsize < 8))


def _cannot_be_missing(dtype: Any) -> bool:
    """A numpy bool or integer dtype: no value can be missing."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biu"


def _as_float(s: pd.Series) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(float64 values, mask of values that are not usable numbers or None, whether the array is new).

    A float64 column is returned as the caller's own array (not new: read only).
    """
    dt = s.dtype
    if isinstance(dt, np.dtype) and dt.kind in "biuf":
        raw = s.to_numpy()
        if dt.kind != "f":
            return raw.astype(np.float64), None, True  # no missing or infinite values possible
        v = raw if dt == np.float64 else raw.astype(np.float64)
        return v, np.isinf(v), v is not raw
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        conv = s.astype(float)
    else:
        conv = pd.to_numeric(s, errors="coerce").astype(float)
    v = conv.to_numpy(dtype=float)
    bad = (np.isnan(v) & s.notna().to_numpy()) | np.isinf(v)
    return v, bad, False


def _not_01(v: np.ndarray) -> np.ndarray:
    """Mask of values other than 0, 1 and missing."""
    bad = v != 0.0
    bad &= v != 1.0
    bad &= v == v  # not NaN
    return bad


def _is_sorted(key: np.ndarray, t: np.ndarray) -> bool:
    """Whether rows are in (key, t) order already (ties in both allowed)."""
    if len(key) < 2:
        return True
    if (key[1:] < key[:-1]).any():
        return False
    tie = key[1:] == key[:-1]
    tie &= t[1:] < t[:-1]
    return not tie.any()


def _lookup_offsets(off: np.ndarray, u_off: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``lut[k]`` for each row whose offset is ``u_off[k]`` (``off`` may be overwritten and returned)."""
    if np.array_equal(lut, u_off):  # the offset is the index (times 0, 1, 2, ...)
        return off
    step = int(u_off[1])
    if np.array_equal(lut * step, u_off):  # times t0, t0 + s, t0 + 2s, ...
        np.floor_divide(off, step, out=off)
        return off
    return lut[np.searchsorted(u_off, off)]


_BLOCK = 1 << 16  # rows per block of elementwise work that would otherwise need an n-row integer temporary


def _steps_over_one(tidx: np.ndarray) -> np.ndarray:
    """Mask of rows whose index is more than 1 above the previous row's (False on row 0)."""
    n = len(tidx)
    out = np.zeros(n, dtype=bool)
    for lo in range(1, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        np.greater(tidx[lo:hi] - tidx[lo - 1:hi - 1], 1, out=out[lo:hi])
    return out


def _running_count(mask: np.ndarray) -> np.ndarray:
    """``np.cumsum(mask)`` as int64, without the int64 copy of the mask that cumsum makes to cast it."""
    out = mask.astype(np.int64)
    np.cumsum(out, out=out)
    return out


def _constant_within(x: np.ndarray, first: np.ndarray) -> bool:
    """Whether ``x`` (no missing values) is constant within each person; False when it has missing values."""
    if np.isnan(x).any():
        return False
    change = x[1:] != x[:-1]
    change &= ~first[1:]
    return not change.any()


def _private_column(s: pd.Series, order: np.ndarray | None, index: pd.Index) -> pd.Series:
    """A copy of a column (rows in ``order``, when given) on ``index``; its dtype is kept."""
    out = s.copy() if order is None else s.take(order)
    out.index = index
    return out


def _assemble(parts: Sequence, columns: pd.Index, index: pd.Index, like: pd.DataFrame) -> pd.DataFrame:
    """A frame of ``parts`` (arrays, or Series on ``index``) as they are, not copied; attrs and flags of ``like``."""
    out = pd.DataFrame(dict(enumerate(parts)), index=index, copy=False)
    out.columns = columns
    return out.__finalize__(like)


def _is_text_category(s: pd.Series) -> bool:
    """A pandas Categorical, or text of which no value reads as a number."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return not pd.api.types.is_numeric_dtype(s.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return False
    vals = s.dropna()
    return len(vals) > 0 and pd.to_numeric(vals, errors="coerce").isna().all()


def _encode_category(s: pd.Series) -> tuple[np.ndarray, list]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = [lv for lv in s.cat.categories.tolist() if (s == lv).any()]
    else:
        levels = sorted(s.dropna().astype(str).unique().tolist())
    lookup = {lv: float(i) for i, lv in enumerate(levels)}
    key = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("string")
    codes = np.array([lookup.get(v, np.nan) if v is not pd.NA and v == v else np.nan
                      for v in key.astype(object)], dtype=float)
    return codes, levels


def _sortable(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):  # the categories' order (numeric ids stay numeric)
        return s.cat.codes.to_numpy()
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy()
    return s.astype(str).to_numpy()


def _fill_rules(fill, covariates: list[str]) -> dict[str, Any]:
    if fill is None:
        return {}
    if isinstance(fill, str) or np.isscalar(fill):
        rules = {c: fill for c in covariates}
    else:
        rules = dict(fill)
    for c, r in rules.items():
        if c not in covariates:
            raise ValueError(f"fill rule given for {c!r}, which is not a declared time-varying covariate")
        if isinstance(r, str) and r not in ("locf", "nocb"):
            raise ValueError(f"fill rule for {c!r} must be 'locf', 'nocb' or a number, got {r!r}")
    return rules


def _with_columns(base: pd.DataFrame, new: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """``base`` with the ``new`` columns set (as ``base[name] = values`` would set them), copying nothing.

    The result shares base's column arrays: a PersonTime is immutable in use (nothing in gtools writes
    into ``pt.data`` in place), so tables derived from one another may share their unchanged columns.
    """
    if not base.columns.is_unique:  # positions of repeated names: leave them to pandas
        out = base.copy()
        for name, values in new.items():
            out[name] = values
        return out
    columns = base.columns
    parts: list = [base.iloc[:, j] for j in range(base.shape[1])]  # Series on base.index: not copied
    for name, values in new.items():
        if name in columns:
            parts[columns.get_loc(name)] = values
        else:
            columns = columns.insert(len(columns), name)
            parts.append(values)
    return _assemble(parts, columns, base.index, like=base)


# -- description ---------------------------------------------------------------------


@dataclass
class Description:
    """What :meth:`PersonTime.describe` returns: overall counts and a table by time."""

    overall: pd.Series
    by_time: pd.DataFrame

    def __str__(self) -> str:
        head = ", ".join(f"{k}: {_num(v) if k != 'treated person-time' else f'{v:.3f}'}"
                         for k, v in self.overall.items())
        return f"{head}\n{self.by_time.to_string()}"

    __repr__ = __str__


# -- the person-time table -------------------------------------------------------------


class PersonTime:
    """A validated person-time table: one row per person and interval.

    Build one with :meth:`from_long` or :meth:`from_intervals`; add history
    features with :meth:`add_history`. It is immutable in use: every method
    returns a new object and never modifies the caller's data.

    Attributes
    ----------
    data : pandas.DataFrame
        Sorted by (id, time); time is the interval index 0..K-1.
    id, time, treatment, outcome, censor, competing : str or None
        Column names of each role.
    covariates, baseline : list of str
        Time-varying covariates (measured before treatment in each interval)
        and covariates fixed at entry.
    outcome_type : {"survival", "binary", "continuous"}
    time_values : numpy.ndarray
        The original time value of each interval index.
    history : list of Feature
        The history features added so far.
    weights : numpy.ndarray or None
        Frequency weight of each row (the bootstrap's resampling counts);
        ``None`` means every row counts once.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        id: str,
        time: str,
        treatment: str | None,
        covariates: Sequence[str] = (),
        baseline: Sequence[str] = (),
        outcome: str | None = None,
        outcome_type: str = "survival",
        censor: str | None = None,
        competing: str | None = None,
        time_values: np.ndarray | None = None,
        history: Sequence[Feature] = (),
        weights: np.ndarray | None = None,
        categories: Mapping[str, list] | None = None,
        _cache: dict | None = None,
    ):
        self.data = data
        self.id, self.time, self.treatment = id, time, treatment
        self.covariates, self.baseline = list(covariates), list(baseline)
        self.outcome, self.outcome_type = outcome, outcome_type
        self.censor, self.competing = censor, competing
        self.time_values = (np.arange(int(data[time].max()) + 1, dtype=float)
                            if time_values is None else np.asarray(time_values))
        self.history = list(history)
        self.weights = weights
        self.categories = dict(categories or {})
        self._cache = {} if _cache is None else _cache

    # -- construction --------------------------------------------------
    @classmethod
    def from_long(
        cls,
        df: pd.DataFrame,
        id: str,
        time: str,
        treatment: str | None = None,
        covariates: Sequence[str] | str = (),
        baseline: Sequence[str] | str = (),
        outcome: str | None = None,
        outcome_type: str = "survival",
        censor: str | None = None,
        competing: str | None = None,
        fill: Mapping[str, Any] | str | None = None,
    ) -> PersonTime:
        """Build a PersonTime from a long table (one row per person and visit/interval).

        Parameters
        ----------
        df : DataFrame
            The records; never modified.
        id, time : str
            Person identifier and interval columns. ``time`` may be any
            sortable number on a regular grid (0, 7, 14, ... days); it is
            mapped to 0..K-1 and every person must start at the first value.
        treatment : str
            Binary (0/1) treatment in the interval.
        covariates : list of str
            Time-varying covariates, measured before treatment in each interval.
        baseline : list of str
            Covariates fixed at entry (must be constant within a person).
        outcome : str
            The outcome column; see ``outcome_type``.
        outcome_type : {"survival", "binary", "continuous"}
            ``"survival"``: event indicator of the interval (follow-up ends at
            the event). ``"binary"``/``"continuous"``: measured at the end of
            follow-up, on the last row only or on every row.
        censor : str, optional
            1 on the last row of a person censored during that interval.
        competing : str, optional
            1 on the last row of a person whose follow-up ended with a competing event.
        fill : dict or str, optional
            Fill rule for missing time-varying covariates: ``"locf"`` (last
            observation carried forward), ``"nocb"`` or a number; per column
            as a dict or for all covariates as a string.

        Raises
        ------
        DataError
            Listing every problem found: missing columns, an empty table,
            duplicate (id, time) rows, gaps, late entry, rows after an event,
            censoring or competing event, non-binary treatment, missing or
            non-numeric values, baseline covariates or end-of-follow-up
            outcomes varying within a person.
        """
        data, tvals, problems = validate_long(
            df, id, time, treatment, covariates, baseline, outcome, outcome_type, censor, competing, fill
        )
        if problems:
            raise DataError(problems)
        categories = data.attrs.pop("gtools_categories", {})
        return cls(
            data,
            id=id,
            time=time,
            treatment=treatment,
            covariates=_as_list(covariates),
            baseline=_as_list(baseline),
            outcome=outcome,
            outcome_type=outcome_type,
            censor=censor,
            competing=competing,
            time_values=tvals,
            categories=categories,
        )

    @classmethod
    def from_intervals(
        cls,
        records: pd.DataFrame,
        id: str,
        start: str,
        stop: str,
        treatment: str | None = None,
        covariates: Sequence[str] | str = (),
        baseline: Sequence[str] | str = (),
        event: str | None = None,
        censor: str | None = None,
        step: float = 1.0,
        fill: Mapping[str, Any] | str | None = None,
        time: str = "time",
        outcome: str | None = None,
    ) -> PersonTime:
        """Build a regular person-time grid from start–stop records.

        Records cover ``[start, stop)`` on the follow-up time scale (time 0 is
        entry). The grid has intervals ``[j*step, (j+1)*step)``, j = 0, 1, ...

        Rules
        -----
        * Follow-up of a person runs from 0 to the latest ``stop`` of their
          records; the last grid interval is the one containing that time.
          A ``stop`` ends the interval it closes: the interval containing
          time ``s`` is the j with ``j*step < s <= (j+1)*step`` (a record
          ``[0, 2)`` with step 1 covers intervals 0 and 1).
        * Treatment: a grid interval is treated (1) if any record with
          ``treatment == 1`` overlaps it, i.e. ``start < (j+1)*step`` and
          ``stop > j*step``; otherwise 0.
        * Covariates: a value recorded on a record is a measurement taken at
          its ``start``; grid interval j takes the latest measurement with
          ``start < (j+1)*step`` (the last value known by the end of the
          interval), carried forward until the next one. Intervals before a
          person's first measurement are missing (a DataError unless ``fill``).
        * Baseline covariates: the value on the person's first record.
        * Event: a record with ``event == 1`` ends follow-up in the grid
          interval containing its ``stop``; the outcome is 1 there, 0 before.
        * Censoring: a record with ``censor == 1`` ends follow-up in the
          interval containing its ``stop`` and marks it censored (``censor =
          1`` on the last row), unless an event ends follow-up there or
          earlier (then the event counts and ``censor = 0``). Exposure records
          running past the censoring time are cut there.
        * Records that start at or after the person's event time are an
          error, and so are records that start at or after the censoring time
          or report an event after it.

        The result is a survival PersonTime whose outcome column is named
        ``outcome`` (default: the ``event`` column's name) and whose time
        column is ``time`` (interval index).
        """
        col = _Collector("intervals")
        covariates, baseline = _as_list(covariates), _as_list(baseline)
        declared = [id, start, stop] + _as_list(treatment) + covariates + baseline + _as_list(event)
        declared += _as_list(censor)
        for c in declared:
            if c not in records.columns:
                col.add("missing_column", c, 0, detail=f"available columns: {list(records.columns)}")
        col.raise_if_any()
        if len(records) == 0:
            col.add("empty_table", None, 0)
            col.raise_if_any()
        if step <= 0:
            raise ValueError(f"step must be positive, got {step}")
        rec = records.copy()
        ex_ids = rec[id]

        def examples(mask):
            idx = np.flatnonzero(mask)[:_N_EXAMPLES]
            return [(ex_ids.iloc[i], rec[start].iloc[i]) for i in idx]

        num_cols = [start, stop] + _as_list(treatment) + covariates + baseline + _as_list(event)
        num_cols += _as_list(censor)
        non_numeric: dict[str, np.ndarray] = {}  # reported once, as non-numeric, not again as missing
        for c in num_cols:
            s = rec[c]
            conv = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_numeric_dtype(s) else s
            conv = conv.astype(float)
            bad = ((conv.isna() & s.notna()) | np.isinf(conv)).to_numpy()  # text, or +-inf
            if bad.any():
                col.add("non_numeric", c, int(bad.sum()), examples(bad))
                non_numeric[c] = bad
                conv[bad] = np.nan
            rec[c] = conv
        for c in [id, start, stop] + _as_list(treatment) + baseline + _as_list(event) + _as_list(censor):
            bad = rec[c].isna().to_numpy()
            if c in non_numeric:
                bad &= ~non_numeric[c]
            if bad.any():
                col.add("missing_values", c, int(bad.sum()), examples(bad))
        for c in _as_list(treatment) + _as_list(event) + _as_list(censor):
            v = rec[c].to_numpy()
            bad = ~np.isin(v, (0.0, 1.0)) & ~np.isnan(v)
            if bad.any():
                col.add("not_binary", c, int(bad.sum()), examples(bad))
        bad = (rec[stop] <= rec[start]).to_numpy()
        if bad.any():
            col.add("stop_not_after_start", stop, int(bad.sum()), examples(bad))
        bad = (rec[start] < 0).to_numpy()
        if bad.any():
            col.add("negative_start", start, int(bad.sum()), examples(bad))
        for c in baseline:
            nun = rec.groupby(id)[c].nunique()
            varying = nun.index[nun > 1]
            if len(varying):
                bad = rec[id].isin(varying).to_numpy()
                col.add("baseline_varies", c, int(bad.sum()), examples(bad))
        col.raise_if_any()

        rec = rec.sort_values([id, start], kind="mergesort").reset_index(drop=True)
        ex_ids = rec[id]  # examples index the sorted records from here on
        last_j = np.ceil(rec[stop].to_numpy() / step - 1e-9).astype(int) - 1  # interval holding stop
        rec["_jstop"] = np.maximum(last_j, np.floor(rec[start].to_numpy() / step).astype(int))
        rec["_jstart"] = np.floor(rec[start].to_numpy() / step + 1e-12).astype(int)
        per = rec.groupby(id, sort=True)
        end_j = per["_jstop"].max()
        if event:
            ev = rec[rec[event] == 1]
            ev_j = ev.groupby(id)["_jstop"].min()
            ev_time = ev.groupby(id)[stop].min()
            end_j.loc[ev_j.index] = np.minimum(end_j.loc[ev_j.index], ev_j)
            after = rec[id].map(ev_time).to_numpy()
            bad = rec[start].to_numpy() >= np.where(np.isnan(after), np.inf, after)
            if bad.any():
                col.add("records_after_event", start, int(bad.sum()), examples(bad))
        if censor:
            cr = rec[rec[censor] == 1]
            cz = cr.groupby(id)["_jstop"].min()
            end_j.loc[cz.index] = np.minimum(end_j.loc[cz.index].to_numpy(), cz.to_numpy())
            c_time = rec[id].map(cr.groupby(id)[stop].min()).to_numpy()
            c_time = np.where(np.isnan(c_time), np.inf, c_time)
            bad = rec[start].to_numpy() >= c_time
            if event:  # an event recorded after the person was censored
                bad |= (rec[event].to_numpy() == 1) & (rec[stop].to_numpy() > c_time)
            if bad.any():
                col.add("records_after_censoring", start, int(bad.sum()), examples(bad))
        col.raise_if_any()
        persons = end_j.index.to_numpy()
        lengths = end_j.to_numpy() + 1
        grid = pd.DataFrame({id: np.repeat(persons, lengths),
                             time: np.concatenate([np.arange(k) for k in lengths])})
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos_of = pd.Series(offsets, index=persons)
        n = len(grid)
        if treatment:
            diff = np.zeros(n + 1)
            ex = rec[rec[treatment] == 1]
            base = pos_of.loc[ex[id]].to_numpy()
            lo = ex["_jstart"].to_numpy()
            hi = np.minimum(ex["_jstop"].to_numpy(), end_j.loc[ex[id]].to_numpy())
            keep = hi >= lo
            np.add.at(diff, base[keep] + lo[keep], 1)
            np.add.at(diff, base[keep] + hi[keep] + 1, -1)
            grid[treatment] = (np.cumsum(diff)[:n] > 0).astype(float)
        for c in covariates:
            meas = rec.loc[rec[c].notna(), [id, "_jstart", c]]
            meas = meas.drop_duplicates([id, "_jstart"], keep="last").rename(columns={"_jstart": time})
            g = grid[[id, time]].merge(meas, on=[id, time], how="left")
            grid[c] = g.groupby(id, sort=False)[c].ffill().to_numpy()
        for c in baseline:
            grid[c] = grid[id].map(per[c].first()).to_numpy()
        out_name = outcome or event or "event"
        last_row = np.zeros(n, dtype=bool)
        last_row[np.cumsum(lengths) - 1] = True
        ev_flag = np.zeros(n)
        if event:
            has_ev = grid[id].map(ev_j).to_numpy()
            ev_flag = (last_row & (grid[time].to_numpy() == has_ev)).astype(float)
        grid[out_name] = ev_flag
        cens_name = censor
        if censor:
            cz = rec[rec[censor] == 1].groupby(id)["_jstop"].min()
            cj = grid[id].map(cz).to_numpy()
            grid[censor] = (last_row & (grid[time].to_numpy() == cj) & (ev_flag == 0)).astype(float)
        pt = cls.from_long(grid, id=id, time=time, treatment=treatment, covariates=covariates,
                           baseline=baseline, outcome=out_name, outcome_type="survival",
                           censor=cens_name, fill=fill)
        pt.time_values = np.arange(len(pt.time_values), dtype=float) * step
        return pt

    # -- roles and sizes ---------------------------------------------------
    @property
    def roles(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this table with :meth:`from_long`."""
        return dict(id=self.id, time=self.time, treatment=self.treatment, covariates=list(self.covariates),
                    baseline=list(self.baseline), outcome=self.outcome, outcome_type=self.outcome_type,
                    censor=self.censor, competing=self.competing)

    @property
    def n_rows(self) -> int:
        return len(self.data)

    @property
    def n_persons(self) -> int:
        return int(self._person_codes()[1].size)

    @property
    def times(self) -> np.ndarray:
        """Interval indices present, 0..K-1."""
        return np.unique(self.data[self.time].to_numpy())

    @property
    def n_times(self) -> int:
        return int(self.data[self.time].max()) + 1

    def _person_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(code of each row's person 0..n-1, unique ids in order) — cached."""
        key = ("_person_codes",)
        if key not in self._cache:
            ids = self.data[self.id].to_numpy()
            first = np.ones(len(ids), dtype=bool)
            first[1:] = ids[1:] != ids[:-1]
            codes = _running_count(first)
            codes -= 1
            self._cache[key] = (codes, ids[first])
        return self._cache[key]

    @property
    def person_index(self) -> np.ndarray:
        """Integer code 0..n_persons-1 of each row's person."""
        return self._person_codes()[0]

    @property
    def persons(self) -> np.ndarray:
        """The person ids, in the order of :attr:`person_index`."""
        return self._person_codes()[1]

    @property
    def last_rows(self) -> np.ndarray:
        """Boolean mask of each person's last row."""
        codes = self.person_index
        last = np.ones(len(codes), dtype=bool)
        last[:-1] = codes[1:] != codes[:-1]
        return last

    def row_weights(self) -> np.ndarray:
        """Frequency weight of every row (ones when unweighted)."""
        return np.ones(self.n_rows) if self.weights is None else self.weights

    # -- derived tables ------------------------------------------------------
    def add_history(self, *features: Feature) -> PersonTime:
        """Return a new PersonTime with history feature columns added.

        ``pt.add_history(gt.lag("A"), gt.cumsum("A"), gt.lag(gt.cummean("L1")))``
        adds ``lag1_A``, ``cumsum_A``, ``cummean_L1`` and ``lag1_cummean_L1``.
        """
        feats = order_features(list(self.history) + list(features))
        known = {f.name for f in self.history}
        roles_cols = {c for c in self._declared_columns()}
        data, added = self.data, {}
        for f in feats:
            if f.name in known:
                continue
            if f.root not in data.columns:
                raise DataError([Problem("missing_column", f.root, f"history feature {f.name} reads column "
                                         f"{f.root!r}, which is not in the table; available: "
                                         f"{list(data.columns)}", 0)])
            if f.name in roles_cols:
                raise ValueError(f"history feature name {f.name!r} clashes with a declared column")
            added[f.name] = f.compute(data, self.id, self.time).to_numpy()
            data = _with_columns(self.data, added)
            known.add(f.name)
        if not added:
            data = _with_columns(self.data, added)
        # the person codes depend on the id column and the row order only, both unchanged
        cache = {k: v for k, v in self._cache.items() if k == ("_person_codes",)}
        return self._replace(data=data, history=feats, _cache=cache)

    def _declared_columns(self) -> list[str]:
        cols = [self.id, self.time] + _as_list(self.treatment) + self.covariates + self.baseline
        cols += _as_list(self.outcome) + _as_list(self.censor) + _as_list(self.competing)
        return cols

    def _replace(self, **kw) -> PersonTime:
        args = dict(data=self.data, **self.roles, time_values=self.time_values, history=self.history,
                    weights=self.weights, categories=self.categories, _cache=self._cache)
        args.update(kw)
        data = args.pop("data")
        return PersonTime(data, **args)

    def replace_data(self, df: pd.DataFrame) -> PersonTime:
        """Validate a modified copy of the data with the same roles and history features."""
        base = df.drop(columns=[f.name for f in self.history if f.name in df.columns])
        pt = PersonTime.from_long(base, **self.roles)
        pt.time_values = self.time_values
        pt.categories = {**self.categories, **pt.categories}
        return pt.add_history(*self.history) if self.history else pt

    def with_weights(self, row_weights: np.ndarray | None) -> PersonTime:
        """The same table with frequency weights per row (shares design-matrix caches)."""
        if row_weights is not None:
            row_weights = np.asarray(row_weights, dtype=float)
            if row_weights.shape != (self.n_rows,):
                raise ValueError("row weights must have one entry per row")
        return self._replace(weights=row_weights)

    def with_person_counts(self, counts: np.ndarray) -> PersonTime:
        """Frequency-weight each person by ``counts`` (length n_persons): a bootstrap replicate."""
        counts = np.asarray(counts, dtype=float)
        if counts.shape != (self.n_persons,):
            raise ValueError("counts must have one entry per person")
        return self.with_weights(counts[self.person_index])

    def resample(self, rng: np.random.Generator | int | None = None) -> PersonTime:
        """Draw persons with replacement into a new table (ids renumbered 0..n-1)."""
        rng = np.random.default_rng(rng)
        n = self.n_persons
        pick = rng.integers(0, n, size=n)
        codes = self.person_index
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(n))
        ends = np.searchsorted(codes[order], np.arange(n), side="right")
        rows = np.concatenate([order[starts[p]:ends[p]] for p in pick])
        newid = np.repeat(np.arange(n), (ends - starts)[pick])
        data = self.data.iloc[rows].reset_index(drop=True)
        data[self.id] = newid
        return self._replace(data=data, weights=None, _cache={})

    def subset_persons(self, ids: Iterable) -> PersonTime:
        """The rows of the given persons."""
        keep = self.data[self.id].isin(list(ids)).to_numpy()
        w = None if self.weights is None else self.weights[keep]
        return self._replace(data=self.data[keep].reset_index(drop=True), weights=w, _cache={})

    def describe(self) -> Description:
        """Persons, rows, events, censored, competing, and treatment prevalence by time."""
        d = self.data
        w = self.row_weights()
        by = pd.DataFrame({"at_risk": pd.Series(w).groupby(d[self.time].to_numpy()).sum()})
        if self.treatment:
            by["treated"] = pd.Series(w * d[self.treatment].to_numpy()).groupby(d[self.time].to_numpy()).sum()
            by["prevalence"] = by["treated"] / by["at_risk"]
        overall: dict[str, float] = {"persons": float(self.n_persons), "rows": float(self.n_rows)}
        if self.outcome and self.outcome_type == "survival":
            ev = np.nan_to_num(d[self.outcome].to_numpy()) * w
            by["events"] = pd.Series(ev).groupby(d[self.time].to_numpy()).sum()
            overall["events"] = float(ev.sum())
        if self.censor:
            c = d[self.censor].to_numpy() * w
            by["censored"] = pd.Series(c).groupby(d[self.time].to_numpy()).sum()
            overall["censored"] = float(c.sum())
        if self.competing:
            c = d[self.competing].to_numpy() * w
            by["competing"] = pd.Series(c).groupby(d[self.time].to_numpy()).sum()
            overall["competing"] = float(c.sum())
        if self.outcome and self.outcome_type != "survival":
            y = d.loc[self.last_rows, self.outcome]
            overall["outcome mean"] = float(np.nanmean(y))
        if self.treatment:
            overall["treated person-time"] = float((w * d[self.treatment].to_numpy()).sum() / w.sum())
        by.index = pd.Index(self.time_values[by.index.to_numpy()], name=self.time)
        return Description(pd.Series(overall), by)

    def __repr__(self) -> str:
        parts = [f"{self.n_persons} persons", f"{self.n_rows} rows", f"{self.n_times} intervals"]
        if self.outcome:
            parts.append(f"outcome {self.outcome!r} ({self.outcome_type})")
        if self.outcome and self.outcome_type == "survival":
            parts.append(f"{int(np.nansum(self.data[self.outcome].to_numpy()))} events")
        if self.weights is not None:
            parts.append("frequency-weighted")
        return f"<PersonTime: {', '.join(parts)}; treatment {self.treatment!r}>"

    def __len__(self) -> int:
        return self.n_rows
