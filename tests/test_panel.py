"""PersonTime.from_long: validation (one test per DataError case), conventions, describe, schemas, CLI."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gtools as gt
from gtools.cli import main as cli_main
from gtools.errors import DataError
from gtools.panel import PersonTime, load_schema, validate_long


def _problems(df: pd.DataFrame, **roles) -> list:
    with pytest.raises(DataError) as info:
        PersonTime.from_long(df, **roles)
    return info.value.problems


def _only(df: pd.DataFrame, **roles):
    """The single problem raised for ``df``."""
    problems = _problems(df, **roles)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# -- validation: one test per DataError case ------------------------------------------------


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_declared_column_missing_raises_data_error_naming_the_column(long_df, long_roles):
    p = _only(long_df, **{**long_roles, "covariates": ["L", "L9"]})
    assert p.check == "missing_column"
    assert p.column == "L9"
    assert p.n_rows == 0
    assert str(p).startswith("missing_column: [L9] declared column is not in the table")
    assert "available columns" in p.message and "'L'" in p.message


def test_every_missing_declared_column_is_reported(long_df, long_roles):
    df = long_df.drop(columns=["L", "C"])
    problems = _problems(df, **long_roles)
    assert [(p.check, p.column) for p in problems] == [("missing_column", "L"), ("missing_column", "C")]


def test_empty_table_raises_data_error(long_df, long_roles):
    p = _only(long_df.iloc[:0], **long_roles)
    assert p.check == "empty_table"
    assert p.column is None
    assert p.n_rows == 0
    assert "no rows" in p.message


def test_duplicate_id_time_rows_raise_data_error(long_df, long_roles):
    df = pd.concat([long_df, long_df.iloc[[1]]], ignore_index=True)
    p = _only(df, **long_roles)
    assert p.check == "duplicate_id_time"
    assert p.column == "id, day"
    assert p.n_rows == 1
    assert p.examples == [(1, 7)]
    assert "id=1 time=7" in p.message


def test_gap_in_time_within_a_person_raises_data_error(long_df, long_roles):
    df = long_df.drop(index=1)  # person 1: days 0, 14
    p = _only(df, **long_roles)
    assert p.check == "time_gap"
    assert p.column == "day"
    assert p.n_rows == 1
    assert p.examples == [(1, 14)]
    assert "id=1 time=14" in p.message


def test_late_entry_raises_data_error(long_df, long_roles):
    df = long_df.drop(index=3)  # person 2 starts on day 7
    p = _only(df, **long_roles)
    assert p.check == "late_entry"
    assert p.column == "day"
    assert p.n_rows == 1
    assert p.examples == [(2, 7)]
    assert "id=2 time=7" in p.message and "(0)" in p.message


def test_rows_after_an_event_raise_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[1, "Y"] = 1  # person 1: event on day 7, row on day 14 after it
    p = _only(df, **long_roles)
    assert p.check == "rows_after_event"
    assert p.column == "Y"
    assert p.n_rows == 1
    assert p.examples == [(1, 14)]
    assert "id=1 time=14" in p.message


def test_rows_after_censoring_raise_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[3, "C"] = 1  # person 2 censored on day 0, row on day 7 after it
    p = _only(df, **long_roles)
    assert p.check == "rows_after_censoring"
    assert p.column == "C"
    assert p.n_rows == 1
    assert p.examples == [(2, 7)]
    assert "id=2 time=7" in p.message


def test_rows_after_a_competing_event_raise_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[6, "D"] = 1  # person 3: competing event on day 7, row on day 14 after it
    p = _only(df, **long_roles)
    assert p.check == "rows_after_competing"
    assert p.column == "D"
    assert p.n_rows == 1
    assert p.examples == [(3, 14)]
    assert "id=3 time=14" in p.message


def test_outcome_and_competing_event_on_the_same_row_raise_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[7, "Y"] = 1
    p = _only(df, **long_roles)
    assert p.check == "rows_after_competing"
    assert p.column == "Y"
    assert p.examples == [(3, 14)]


def test_treatment_not_0_1_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[[1, 5], "A"] = 2
    p = _only(df, **long_roles)
    assert p.check == "not_binary"
    assert p.column == "A"
    assert p.n_rows == 2
    assert p.examples == [(1, 7), (3, 0)]
    assert "id=1 time=7, id=3 time=0" in p.message
    assert "[2.0]" in p.message and "multi-valued" in p.message


def test_censor_not_0_1_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[8, "C"] = 3
    p = _only(df, **long_roles)
    assert (p.check, p.column, p.n_rows, p.examples) == ("not_binary", "C", 1, [(4, 0)])


def test_survival_outcome_not_0_1_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[8, "Y"] = 0.5
    p = _only(df, **long_roles)
    assert (p.check, p.column, p.n_rows, p.examples) == ("outcome_not_binary", "Y", 1, [(4, 0)])


def test_missing_time_varying_covariate_raises_data_error_with_fill_hint(long_df, long_roles):
    df = long_df.copy()
    df.loc[[1, 6], "L"] = np.nan
    p = _only(df, **long_roles)
    assert p.check == "missing_values"
    assert p.column == "L"
    assert p.n_rows == 2
    assert p.examples == [(1, 7), (3, 7)]
    assert "id=1 time=7, id=3 time=7" in p.message
    assert "fill={'L': 'locf'}" in p.message


def test_missing_treatment_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[2, "A"] = np.nan
    p = _only(df, **long_roles)
    assert (p.check, p.column, p.n_rows, p.examples) == ("missing_values", "A", 1, [(1, 14)])
    assert "fill" not in p.message


def test_locf_fill_carries_the_last_covariate_value_forward(long_df, long_roles):
    df = long_df.copy()
    df.loc[[1, 2], "L"] = np.nan
    pt = PersonTime.from_long(df, **long_roles, fill={"L": "locf"})
    assert pt.data["L"].tolist()[:3] == [0.5, 0.5, 0.5]
    assert pt.data["L"].tolist()[3:] == long_df["L"].tolist()[3:]
    pt2 = PersonTime.from_long(df, **long_roles, fill="locf")  # one rule for every covariate
    pd.testing.assert_frame_equal(pt.data, pt2.data)


def test_locf_fill_never_carries_across_persons(long_df, long_roles):
    df = long_df.copy()
    df.loc[3, "L"] = np.nan  # person 2's first row: nothing to carry forward from
    p = _only(df, **long_roles, fill={"L": "locf"})
    assert (p.check, p.column, p.n_rows, p.examples) == ("missing_values", "L", 1, [(2, 0)])


def test_leading_missing_covariate_with_locf_still_raises(long_df, long_roles):
    df = long_df.copy()
    df.loc[[0, 1], "L"] = np.nan
    p = _only(df, **long_roles, fill={"L": "locf"})
    assert p.check == "missing_values"
    assert p.column == "L"
    assert p.n_rows == 2
    assert p.examples == [(1, 0), (1, 7)]


def test_numeric_fill_rule_replaces_missing_values(long_df, long_roles):
    df = long_df.copy()
    df.loc[0, "L"] = np.nan
    pt = PersonTime.from_long(df, **long_roles, fill={"L": -1})
    assert pt.data.loc[0, "L"] == -1.0


def test_unknown_fill_rule_is_a_value_error(long_df, long_roles):
    with pytest.raises(ValueError, match="locf"):
        PersonTime.from_long(long_df, **long_roles, fill={"L": "mean"})
    with pytest.raises(ValueError, match="not a declared time-varying covariate"):
        PersonTime.from_long(long_df, **long_roles, fill={"V": "locf"})


def test_non_numeric_values_raise_data_error(long_df, long_roles):
    df = long_df.copy()
    df["L"] = df["L"].astype(object)
    df.loc[8, "L"] = "high"
    p = _only(df, **long_roles)
    assert p.check == "non_numeric"
    assert p.column == "L"
    assert p.n_rows == 1
    assert p.examples == [(4, 0)]
    assert "id=4 time=0" in p.message and "'high'" in p.message


def test_non_numeric_values_are_not_also_reported_as_missing(long_df, long_roles):
    df = long_df.copy()
    df["A"] = df["A"].astype(object)
    df.loc[1, "A"] = "yes"
    problems = _problems(df, **long_roles)
    assert [(p.check, p.column, p.n_rows) for p in problems] == [("non_numeric", "A", 1)]


def test_infinite_values_are_reported_as_non_numeric(long_df, long_roles):
    df = long_df.copy()
    df.loc[[2, 6], "L"] = [np.inf, -np.inf]  # e.g. log(0) of a lab value
    problems = _problems(df, **long_roles)
    assert [(p.check, p.column, p.n_rows, p.examples) for p in problems] == [
        ("non_numeric", "L", 2, [(1, 14), (3, 7)])]
    assert "inf" in problems[0].message


def test_numeric_strings_are_accepted(long_df, long_roles):
    df = long_df.copy()
    df["L"] = df["L"].astype(str)
    pt = PersonTime.from_long(df, **long_roles)
    assert pt.data["L"].tolist() == long_df["L"].tolist()


def test_baseline_covariate_varying_within_a_person_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[6, "V"] = 71.0
    p = _only(df, **long_roles)
    assert p.check == "baseline_varies"
    assert p.column == "V"
    assert p.n_rows == 3  # every row of person 3
    assert p.examples == [(3, 0)]
    assert "id=3 time=0" in p.message and "1 person(s)" in p.message


def _eof(long_df: pd.DataFrame) -> pd.DataFrame:
    """long_df as a binary end-of-follow-up outcome table, outcome on the last row only."""
    df = long_df.drop(columns=["D"]).copy()
    df["Y"] = [np.nan, np.nan, 1, np.nan, np.nan, np.nan, np.nan, 0, 1]
    return df


EOF_ROLES = dict(id="id", time="day", treatment="A", covariates=["L"], baseline=["V"], outcome="Y",
                 outcome_type="binary", censor="C")


def test_end_of_follow_up_outcome_varying_within_a_person_raises_data_error(long_df):
    df = _eof(long_df)
    df.loc[[0, 1], "Y"] = 0  # person 1: 0, 0, 1
    p = _only(df, **EOF_ROLES)
    assert p.check == "outcome_varies"
    assert p.column == "Y"
    assert p.n_rows == 3
    assert p.examples == [(1, 0)]
    assert "id=1 time=0" in p.message


def test_end_of_follow_up_outcome_missing_for_an_uncensored_person_raises_data_error(long_df):
    df = _eof(long_df)
    df.loc[8, "Y"] = np.nan  # person 4 is not censored
    p = _only(df, **EOF_ROLES)
    assert p.check == "missing_outcome"
    assert p.column == "Y"
    assert p.n_rows == 1
    assert p.examples == [(4, 0)]
    assert "id=4 time=0" in p.message


def test_survival_outcome_missing_on_an_uncensored_row_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[5, "Y"] = np.nan
    p = _only(df, **long_roles)
    assert (p.check, p.column, p.n_rows, p.examples) == ("missing_outcome", "Y", 1, [(3, 0)])


def test_irregular_time_grid_raises_data_error(long_df, long_roles):
    df = long_df.copy()
    df.loc[2, "day"] = 15
    p = _only(df, **long_roles)
    assert p.check == "irregular_time_grid"
    assert p.column == "day"
    assert p.n_rows == 1
    assert p.examples == [(1, 15)]
    assert "id=1 time=15" in p.message and "[0.0, 7.0, 14.0, 15.0]" in p.message


def test_several_problems_are_all_reported_in_one_data_error(long_df, long_roles):
    df = pd.concat([long_df, long_df.iloc[[1]]], ignore_index=True)  # duplicate (1, 7)
    df.loc[5, "A"] = 2  # treatment not binary
    df.loc[8, "L"] = np.nan  # missing covariate
    df.loc[6, "V"] = 71.0  # baseline varies
    with pytest.raises(DataError) as info:
        PersonTime.from_long(df, **long_roles)
    got = {(p.check, p.column) for p in info.value.problems}
    assert got == {("not_binary", "A"), ("missing_values", "L"), ("duplicate_id_time", "id, day"),
                   ("baseline_varies", "V")}
    text = str(info.value)
    assert text.startswith("4 problem(s)")
    assert len(text.splitlines()) == 5  # a header and one line per problem


def test_validate_long_returns_problems_without_raising(long_df, long_roles):
    df = long_df.copy()
    df.loc[1, "A"] = 2
    data, tvals, problems = validate_long(df, **long_roles)
    assert [p.check for p in problems] == ["not_binary"]
    _, _, clean = validate_long(long_df, **long_roles)
    assert clean == []


def test_from_long_never_mutates_the_callers_frame(long_df, long_roles):
    df = long_df.copy()
    df.loc[1, "L"] = np.nan  # filled by locf
    df["L"] = df["L"].astype(object)  # converted to float inside
    df["Y"] = df["Y"].astype(object)
    df = df.sample(frac=1.0, random_state=3)  # unsorted, with a non-default index
    before = copy.deepcopy(df)
    pt = PersonTime.from_long(df, **long_roles, fill="locf")
    assert pt.data["L"].notna().all()
    pd.testing.assert_frame_equal(df, before)
    bad = df.assign(A=2)
    before = copy.deepcopy(bad)
    with pytest.raises(DataError):
        PersonTime.from_long(bad, **long_roles)
    pd.testing.assert_frame_equal(bad, before)
    eof = _eof(long_df)
    before = copy.deepcopy(eof)
    PersonTime.from_long(eof, **EOF_ROLES)
    pd.testing.assert_frame_equal(eof, before)


# -- conventions -------------------------------------------------------------------------


def test_regular_grid_times_are_mapped_to_interval_indices(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    assert pt.data["day"].tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 0]
    np.testing.assert_array_equal(pt.time_values, [0, 7, 14])
    np.testing.assert_array_equal(pt.times, [0, 1, 2])
    assert pt.n_times == 3


def test_non_integer_grid_is_mapped_and_its_values_kept(long_df, long_roles):
    df = long_df.assign(day=long_df["day"] / 14.0 + 1.0)  # 1, 1.5, 2
    pt = PersonTime.from_long(df, **long_roles)
    assert pt.data["day"].tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 0]
    np.testing.assert_allclose(pt.time_values, [1.0, 1.5, 2.0])


def test_data_is_sorted_by_id_and_time(long_df, long_roles):
    shuffled = long_df.sample(frac=1.0, random_state=1)
    pt = PersonTime.from_long(shuffled, **long_roles)
    ref = PersonTime.from_long(long_df, **long_roles)
    pd.testing.assert_frame_equal(pt.data, ref.data)
    assert pt.data.index.tolist() == list(range(9))


def test_censored_last_row_may_have_a_missing_outcome(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    row = pt.data[(pt.data["id"] == 2) & (pt.data["day"] == 1)]
    assert row["C"].item() == 1
    assert np.isnan(row["Y"].item())


def test_end_of_follow_up_outcome_on_last_row_is_broadcast_to_every_row(long_df):
    pt = PersonTime.from_long(_eof(long_df), **EOF_ROLES)
    assert pt.data["Y"].tolist()[:3] == [1.0, 1.0, 1.0]
    assert pt.data["Y"].tolist()[5:] == [0.0, 0.0, 0.0, 1.0]
    assert pt.data.loc[pt.data["id"] == 2, "Y"].isna().all()  # censored: stays missing
    repeated = _eof(long_df)
    repeated["Y"] = repeated.groupby("id")["Y"].transform("last")
    pd.testing.assert_frame_equal(PersonTime.from_long(repeated, **EOF_ROLES).data, pt.data)


def test_competing_event_rows_outcome_is_set_to_missing(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    d = pt.data
    assert np.isnan(d.loc[d["D"] == 1, "Y"]).all()
    assert d.loc[d["D"] == 0, "Y"].notna().sum() == 7  # every other row but the censored one


def test_describe_counts_persons_rows_events_censored_competing_and_prevalence(long_df, long_roles):
    desc = PersonTime.from_long(long_df, **long_roles).describe()
    o = desc.overall
    assert (o["persons"], o["rows"], o["events"], o["censored"], o["competing"]) == (4, 9, 1, 1, 1)
    assert o["treated person-time"] == pytest.approx(4 / 9)
    by = desc.by_time
    assert by.index.tolist() == [0, 7, 14]
    assert by["at_risk"].tolist() == [4, 3, 2]
    assert by["treated"].tolist() == [2, 2, 0]
    np.testing.assert_allclose(by["prevalence"], [0.5, 2 / 3, 0.0])
    assert by["events"].tolist() == [0, 0, 1]
    assert by["censored"].tolist() == [0, 1, 0]
    assert by["competing"].tolist() == [0, 0, 1]
    assert "persons: 4" in str(desc)


def test_describe_end_of_follow_up_outcome_mean(long_df):
    o = PersonTime.from_long(_eof(long_df), **EOF_ROLES).describe().overall
    assert o["outcome mean"] == pytest.approx(2 / 3)  # persons 1, 3, 4; person 2 censored
    assert "events" not in o


def test_describe_is_weighted_by_person_counts(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles).with_person_counts(np.array([2, 0, 1, 1]))
    o = pt.describe().overall
    assert o["events"] == 2 and o["censored"] == 0 and o["competing"] == 1
    assert pt.describe().by_time["at_risk"].tolist() == [4, 3, 3]


def test_sizes_and_repr(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    assert pt.n_persons == 4
    assert pt.n_rows == 9 == len(pt)
    assert repr(pt) == ("<PersonTime: 4 persons, 9 rows, 3 intervals, outcome 'Y' (survival), 1 events; "
                        "treatment 'A'>")
    assert "frequency-weighted" in repr(pt.with_person_counts(np.ones(4)))


def test_roles_rebuild_the_same_table(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    assert pt.roles == long_roles
    assert (pt.covariates, pt.baseline, pt.censor, pt.competing) == (["L"], ["V"], "C", "D")
    np.testing.assert_array_equal(pt.persons, [1, 2, 3, 4])
    np.testing.assert_array_equal(pt.person_index, [0, 0, 0, 1, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(np.flatnonzero(pt.last_rows), [2, 4, 7, 8])


def test_string_ids_are_accepted(long_df, long_roles):
    df = long_df.assign(id=long_df["id"].map({1: "p1", 2: "p2", 3: "p3", 4: "p4"}))
    pt = PersonTime.from_long(df, **long_roles)
    assert pt.persons.tolist() == ["p1", "p2", "p3", "p4"]
    df.loc[1, "A"] = 5
    p = _only(df, **long_roles)
    assert "id='p1' time=7" in p.message


def test_with_person_counts_gives_row_weights(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    np.testing.assert_array_equal(pt.row_weights(), np.ones(9))
    w = pt.with_person_counts(np.array([0, 3, 1, 2])).row_weights()
    np.testing.assert_array_equal(w, [0, 0, 0, 3, 3, 1, 1, 1, 2])
    with pytest.raises(ValueError, match="one entry per person"):
        pt.with_person_counts(np.ones(3))
    assert pt.weights is None


def test_resample_draws_whole_persons_with_new_ids(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles)
    r = pt.resample(np.random.default_rng(0))
    assert r.n_persons == 4
    assert r.data["id"].tolist() == sorted(r.data["id"].tolist())
    lengths = r.data.groupby("id").size().tolist()
    assert set(lengths) <= {1, 2, 3}
    for _, g in r.data.groupby("id"):
        assert g["day"].tolist() == list(range(len(g)))
    pd.testing.assert_frame_equal(pt.data, PersonTime.from_long(long_df, **long_roles).data)


def test_subset_persons_keeps_their_rows_and_weights(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles).with_person_counts(np.array([1, 2, 3, 4]))
    s = pt.subset_persons([2, 4])
    assert s.data["id"].tolist() == [2, 2, 4]
    np.testing.assert_array_equal(s.row_weights(), [2, 2, 4])
    assert s.n_persons == 2


def test_replace_data_revalidates_and_keeps_history(long_df, long_roles):
    pt = PersonTime.from_long(long_df, **long_roles).add_history(gt.lag("A"))
    d = pt.data.copy()
    d["L"] = d["L"] * 2
    new = pt.replace_data(d)
    np.testing.assert_array_equal(new.data["L"], 2 * pt.data["L"])
    np.testing.assert_array_equal(new.data["lag1_A"], pt.data["lag1_A"])
    np.testing.assert_array_equal(new.time_values, [0, 7, 14])
    d.loc[0, "A"] = 7
    with pytest.raises(DataError):
        pt.replace_data(d)


# -- schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["long", "intervals"])
def test_schemas_are_valid_json_schema_2020_12(kind):
    schema = load_schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    ids = [c["id"] for c in schema["x-gtools-checks"]]
    assert len(ids) == len(set(ids))
    assert all(c["message"] for c in schema["x-gtools-checks"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)


def test_long_schema_accepts_a_valid_row_and_rejects_a_bad_treatment():
    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(load_schema("long"))
    assert v.is_valid([{"id": 1, "time": 0, "treatment": 1}])
    assert not v.is_valid([{"id": 1, "time": 0, "treatment": 2}])
    assert not v.is_valid([])


def test_every_check_id_used_in_panel_exists_in_its_schema():
    src = (Path(gt.__file__).parent / "panel.py").read_text(encoding="utf-8")
    used = set(re.findall(r"""(?:col\.add|Problem)\(\s*["']([a-z_]+)["']""", src))
    assert {"missing_column", "duplicate_id_time", "records_after_event"} <= used
    long_ids = {c["id"] for c in load_schema("long")["x-gtools-checks"]}
    int_ids = {c["id"] for c in load_schema("intervals")["x-gtools-checks"]}
    assert used <= long_ids | int_ids, used - (long_ids | int_ids)


def test_unknown_schema_is_a_value_error():
    with pytest.raises(ValueError, match="long"):
        load_schema("wide")


def test_schema_files_are_plain_json():
    for kind in ("long", "intervals"):
        path = Path(gt.__file__).resolve().parent.parent / "data_schemas" / f"{kind}.schema.json"
        if path.exists():
            assert json.loads(path.read_text(encoding="utf-8")) == load_schema(kind)


# -- gtools check -----------------------------------------------------------------------


CHECK_ARGS = ["--id", "id", "--time", "day", "--treatment", "A", "--covariates", "L", "--baseline", "V",
              "--outcome", "Y", "--censor", "C", "--competing", "D"]


def test_cli_check_prints_every_problem_one_per_line_and_exits_1(long_df, tmp_path, capsys):
    df = pd.concat([long_df, long_df.iloc[[1]]], ignore_index=True)
    df.loc[5, "A"] = 2
    df.loc[6, "V"] = 71.0
    f = tmp_path / "bad.csv"
    df.to_csv(f, index=False)
    assert cli_main(["check", str(f), *CHECK_ARGS]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3
    assert {line.split(":")[0] for line in out} == {"not_binary", "duplicate_id_time", "baseline_varies"}
    assert any("[A]" in line and "id=3 time=0" in line for line in out)


def test_cli_check_exits_0_on_a_clean_file(long_df, tmp_path, capsys):
    f = tmp_path / "ok.csv"
    long_df.to_csv(f, index=False)
    assert cli_main(["check", str(f), *CHECK_ARGS]) == 0
    assert "no problems found (9 rows)" in capsys.readouterr().out


def test_cli_check_intervals_schema(tmp_path, capsys):
    rec = pd.DataFrame({"id": [1, 1, 2], "start": [0, 2, 0], "stop": [2, 1, 3], "A": [1, 0, 5], "E": [0, 0, 1]})
    f = tmp_path / "rec.csv"
    rec.to_csv(f, index=False)
    args = ["check", str(f), "--schema", "intervals", "--id", "id", "--treatment", "A", "--event", "E"]
    assert cli_main(args) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in out] == ["not_binary", "stop_not_after_start"]
    rec.loc[1, "stop"], rec.loc[2, "A"] = 4, 1
    rec.to_csv(f, index=False)
    assert cli_main(args) == 0
    assert "no problems found" in capsys.readouterr().out


def test_text_covariates_are_stored_as_codes_and_named_by_level_in_models():
    rng = np.random.default_rng(0)
    n = 400
    edu = rng.choice(["college", "high school", "none"], size=n)
    sex = rng.choice(["F", "M"], size=n)
    a = (rng.random(n) < np.where(edu == "college", 0.7, 0.3)).astype(float)
    df = pd.DataFrame({"id": np.arange(n), "t": 0, "edu": edu, "sex": pd.Categorical(sex, ["M", "F"]), "A": a,
                       "Y": rng.normal(size=n)})
    before = df.copy(deep=True)
    pt = gt.PersonTime.from_long(df, id="id", time="t", treatment="A", baseline=["edu", "sex"], outcome="Y",
                                 outcome_type="continuous")
    pd.testing.assert_frame_equal(df, before)
    assert pt.categories == {"edu": ["college", "high school", "none"], "sex": ["M", "F"]}
    np.testing.assert_array_equal(pt.data["edu"].to_numpy(), np.searchsorted(["college", "high school", "none"], edu))
    f = gt.Model("A ~ C(edu) + C(sex)").fit(pt)
    assert f.names == ["Intercept", "C(edu)[T.high school]", "C(edu)[T.none]", "C(sex)[T.F]"]
    coded = df.assign(edu=np.searchsorted(["college", "high school", "none"], edu).astype(float),
                      sex=(sex == "F").astype(float))
    ref = gt.Model("A ~ C(edu) + C(sex)").fit(gt.PersonTime.from_long(
        coded, id="id", time="t", treatment="A", baseline=["edu", "sex"], outcome="Y", outcome_type="continuous"))
    np.testing.assert_allclose(f.params, ref.params)
    with pytest.raises(gt.DataError, match=r"write C\(edu\)"):
        gt.Model("A ~ edu").fit(pt)


def test_text_with_a_few_non_numbers_in_a_numeric_column_is_still_an_error():
    df = pd.DataFrame({"id": [1, 2, 3], "t": 0, "L": ["1.5", "n/a", "2.0"], "A": [0, 1, 0], "Y": [0, 0, 1]})
    with pytest.raises(gt.DataError) as exc:
        gt.PersonTime.from_long(df, id="id", time="t", treatment="A", covariates=["L"], outcome="Y")
    assert exc.value.problems[0].check == "non_numeric"
