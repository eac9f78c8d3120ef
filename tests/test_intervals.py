"""PersonTime.from_intervals: one test per rule of its docstring, and its validation."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from gtools.errors import DataError
from gtools.panel import PersonTime

ROLES = dict(id="id", start="start", stop="stop", treatment="A", covariates=["L"], baseline=["V"],
             event="E", censor="C")


def _records(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "start", "stop", "A", "L", "V", "E", "C"])


def _grid(rec: pd.DataFrame, **kw) -> pd.DataFrame:
    return PersonTime.from_intervals(rec, **{**ROLES, **kw}).data


def _problems(rec: pd.DataFrame, **kw) -> list:
    with pytest.raises(DataError) as info:
        PersonTime.from_intervals(rec, **{**ROLES, **kw})
    return info.value.problems


# -- rules -----------------------------------------------------------------------------------


def test_follow_up_runs_to_the_interval_containing_the_latest_stop():
    rec = _records([(1, 0, 2.5, 0, 1.0, 5, 0, 0), (2, 0, 3.0, 0, 1.0, 6, 0, 0)])
    g = _grid(rec)
    # stop 2.5 lies in (2, 3]: intervals 0, 1, 2; stop 3.0 ends interval 2 as well
    assert g.groupby("id")["time"].max().tolist() == [2, 2]
    assert g["time"].tolist() == [0, 1, 2, 0, 1, 2]
    assert g["E"].sum() == 0 and g["C"].sum() == 0


def test_interval_is_treated_if_any_exposed_record_overlaps_it():
    rec = _records([
        (1, 0.0, 6.0, 0, 1.0, 5, 0, 0),   # follow-up record, untreated
        (1, 1.5, 2.2, 1, np.nan, 5, 0, 0),  # overlaps [1, 2) and [2, 3)
        (1, 4.0, 5.0, 1, np.nan, 5, 0, 0),  # exactly [4, 5): not [3, 4) nor [5, 6)
    ])
    g = _grid(rec, fill={"L": "locf"})
    assert g["A"].tolist() == [0, 1, 1, 0, 1, 0]


def test_untreated_record_does_not_undo_an_overlapping_exposure():
    rec = _records([(1, 0, 3, 1, 1.0, 5, 0, 0), (1, 1, 2, 0, 2.0, 5, 0, 0)])
    assert _grid(rec)["A"].tolist() == [1, 1, 1]


def test_covariate_is_carried_forward_from_the_last_measurement_started_before_the_interval_end():
    rec = _records([
        (1, 0.0, 1.0, 0, 5.0, 9, 0, 0),
        (1, 1.0, 2.6, 0, np.nan, 9, 0, 0),  # no measurement: carry 5 forward
        (1, 2.5, 3.0, 0, 7.0, 9, 0, 0),  # start 2.5 < 3: interval 2 already sees 7
        (1, 3.0, 3.2, 0, 8.0, 9, 0, 0),  # two measurements in [3, 4): the later one wins
        (1, 3.5, 5.0, 0, 6.0, 9, 0, 0),
    ])
    g = _grid(rec)
    assert g["L"].tolist() == [5.0, 5.0, 7.0, 6.0, 6.0]


def test_intervals_before_the_first_measurement_are_missing_and_raise_unless_filled():
    rec = _records([(1, 0, 2, 0, np.nan, 9, 0, 0), (1, 2, 4, 0, 3.0, 9, 0, 0)])
    (p,) = _problems(rec)
    assert p.check == "missing_values"
    assert p.column == "L"
    assert p.n_rows == 2
    assert p.examples == [(1, 0), (1, 1)]
    assert "fill=" in p.message
    assert _grid(rec, fill={"L": -1.0})["L"].tolist() == [-1.0, -1.0, 3.0, 3.0]
    assert _grid(rec, fill={"L": "nocb"})["L"].tolist() == [3.0, 3.0, 3.0, 3.0]


def test_baseline_covariate_is_taken_from_the_first_record():
    rec = _records([(1, 2, 4, 0, 2.0, 40, 0, 0), (1, 0, 2, 0, 1.0, 40, 0, 0), (2, 0, 1, 1, 1.0, 55, 0, 0)])
    g = _grid(rec)
    assert g["V"].tolist() == [40, 40, 40, 40, 55]


def test_baseline_covariate_varying_across_records_raises_data_error():
    rec = _records([(1, 0, 2, 0, 1.0, 40, 0, 0), (1, 2, 4, 0, 2.0, 41, 0, 0), (2, 0, 1, 0, 1.0, 5, 0, 0)])
    (p,) = _problems(rec)
    assert (p.check, p.column, p.n_rows, p.examples) == ("baseline_varies", "V", 2, [(1, 0), (1, 2)])


def test_event_ends_follow_up_in_the_interval_containing_its_stop():
    rec = _records([
        (1, 0.0, 5.0, 1, 1.0, 9, 0, 0),  # treatment episode running past the event
        (1, 0.0, 2.5, 0, np.nan, 9, 1, 0),  # event at 2.5: in interval 2
        (2, 0.0, 2.0, 0, 1.0, 9, 1, 0),  # event at 2.0 ends interval 1
    ])
    g = _grid(rec, fill="locf")
    p1, p2 = g[g["id"] == 1], g[g["id"] == 2]
    assert p1["time"].tolist() == [0, 1, 2] and p1["E"].tolist() == [0, 0, 1]
    assert p1["A"].tolist() == [1, 1, 1]
    assert p2["time"].tolist() == [0, 1] and p2["E"].tolist() == [0, 1]


def test_censoring_marks_the_last_interval_unless_an_event_ends_follow_up_there():
    rec = _records([
        (1, 0, 3.0, 0, 1.0, 9, 0, 1),  # censored at 3: C = 1 on interval 2
        (2, 0, 2.5, 0, 1.0, 9, 1, 1),  # event and censoring in the same interval: the event counts
    ])
    g = _grid(rec)
    p1, p2 = g[g["id"] == 1], g[g["id"] == 2]
    assert p1["C"].tolist() == [0, 0, 1] and p1["E"].tolist() == [0, 0, 0]
    assert p2["C"].tolist() == [0, 0, 0] and p2["E"].tolist() == [0, 0, 1]


def test_censoring_ends_follow_up_even_when_an_exposure_record_runs_past_it():
    rec = _records([
        (1, 0.0, 6.0, 1, 1.0, 9, 0, 0),  # exposure recorded to day 6
        (1, 0.0, 3.0, 0, np.nan, 9, 0, 1),  # but the person was lost to follow-up at 3
    ])
    g = _grid(rec, fill="locf")
    assert g["time"].tolist() == [0, 1, 2]
    assert g["C"].tolist() == [0, 0, 1]


def test_records_starting_after_censoring_raise_data_error():
    rec = _records([(1, 0, 3, 0, 1.0, 9, 0, 1), (1, 3, 5, 1, 2.0, 9, 0, 0), (2, 0, 1, 0, 1.0, 9, 0, 0)])
    (p,) = _problems(rec)
    assert p.check == "records_after_censoring"
    assert p.column == "start"
    assert p.n_rows == 1
    assert p.examples == [(1, 3)]


def test_event_reported_after_censoring_raises_data_error():
    rec = _records([(1, 0, 3, 0, 1.0, 9, 0, 1), (1, 0, 5, 0, np.nan, 9, 1, 0)])
    (p,) = _problems(rec)
    assert (p.check, p.n_rows, p.examples) == ("records_after_censoring", 1, [(1, 0)])


def test_records_starting_after_the_event_raise_data_error():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 1, 0), (1, 2, 4, 1, 2.0, 9, 0, 0), (1, 4, 5, 1, 2.0, 9, 0, 0)])
    (p,) = _problems(rec)
    assert p.check == "records_after_event"
    assert p.column == "start"
    assert p.n_rows == 2
    assert p.examples == [(1, 2), (1, 4)]
    assert "id=1 time=2, id=1 time=4" in p.message


def test_records_after_event_examples_name_the_right_person_when_records_are_unsorted():
    rec = _records([
        (2, 3, 4, 0, 1.0, 9, 0, 0),  # person 2: starts after its event at 3
        (2, 0, 3, 0, 1.0, 9, 1, 0),
        (1, 0, 4, 0, 1.0, 9, 0, 0),
    ])
    (p,) = _problems(rec)
    assert p.check == "records_after_event"
    assert p.examples == [(2, 3)]


def test_step_other_than_one_builds_a_coarser_grid():
    rec = pd.DataFrame({"id": [1, 1, 2], "start": [0, 10, 0], "stop": [10, 20, 7], "A": [0, 1, 1],
                        "L": [3.0, 4.0, 5.0], "V": [1, 1, 2], "E": [0, 1, 0], "C": [0, 0, 1]})
    pt = PersonTime.from_intervals(rec, **ROLES, step=7)
    g = pt.data
    # person 1: [0,7) [7,14) [14,21); treatment from day 10 overlaps [7,14) and [14,21); event on day 20
    assert g.loc[g["id"] == 1, "time"].tolist() == [0, 1, 2]
    assert g.loc[g["id"] == 1, "A"].tolist() == [0, 1, 1]
    assert g.loc[g["id"] == 1, "L"].tolist() == [3.0, 4.0, 4.0]
    assert g.loc[g["id"] == 1, "E"].tolist() == [0, 0, 1]
    # person 2: censored on day 7, the end of interval 0
    assert g.loc[g["id"] == 2, "C"].tolist() == [1]
    np.testing.assert_array_equal(pt.time_values, [0.0, 7.0, 14.0])
    assert pt.outcome == "E" and pt.outcome_type == "survival" and pt.time == "time"


def test_step_must_be_positive():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 0, 0)])
    with pytest.raises(ValueError, match="step"):
        PersonTime.from_intervals(rec, **ROLES, step=0)


def test_outcome_and_time_column_names_can_be_chosen():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 1, 0)])
    pt = PersonTime.from_intervals(rec, **ROLES, outcome="death", time="month")
    assert pt.outcome == "death" and pt.time == "month"
    assert pt.data["death"].tolist() == [0, 1]


# -- validation ------------------------------------------------------------------------------


def test_stop_not_after_start_raises_data_error():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 0, 0), (1, 2, 2, 0, 1.0, 9, 0, 0), (2, 3, 1, 0, 1.0, 9, 0, 0)])
    (p,) = _problems(rec)
    assert p.check == "stop_not_after_start"
    assert p.column == "stop"
    assert p.n_rows == 2
    assert p.examples == [(1, 2), (2, 3)]
    assert "id=1 time=2, id=2 time=3" in p.message


def test_negative_start_raises_data_error():
    rec = _records([(1, -1, 2, 0, 1.0, 9, 0, 0)])
    (p,) = _problems(rec)
    assert (p.check, p.column, p.n_rows, p.examples) == ("negative_start", "start", 1, [(1, -1)])


def test_treatment_not_0_1_raises_data_error():
    rec = _records([(1, 0, 2, 2, 1.0, 9, 0, 0), (1, 2, 3, 0, 1.0, 9, 0, 0)])
    (p,) = _problems(rec)
    assert (p.check, p.column, p.n_rows, p.examples) == ("not_binary", "A", 1, [(1, 0)])


def test_non_numeric_stop_is_reported_once():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 0, 0), (1, 2, "later", 0, 1.0, 9, 0, 0)])
    problems = _problems(rec)
    assert [(p.check, p.column, p.n_rows, p.examples) for p in problems] == [
        ("non_numeric", "stop", 1, [(1, 2)])]


def test_infinite_stop_is_reported_as_non_numeric():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 0, 0), (1, 2, np.inf, 0, 1.0, 9, 0, 0)])
    problems = _problems(rec)
    assert [(p.check, p.column, p.n_rows, p.examples) for p in problems] == [
        ("non_numeric", "stop", 1, [(1, 2)])]


def test_missing_declared_column_and_empty_table_raise_data_error():
    rec = _records([(1, 0, 2, 0, 1.0, 9, 0, 0)])
    (p,) = _problems(rec.drop(columns=["E"]))
    assert (p.check, p.column) == ("missing_column", "E")
    (p,) = _problems(rec.iloc[:0])
    assert (p.check, p.column) == ("empty_table", None)


def test_several_record_problems_are_reported_together():
    rec = _records([(1, 0, 2, 3, 1.0, 9, 0, 0), (1, 2, 1, 0, 1.0, 8, 0, 0), (2, -1, 1, 0, 1.0, 9, 0, 0)])
    checks = [p.check for p in _problems(rec)]
    assert checks == ["not_binary", "stop_not_after_start", "negative_start", "baseline_varies"]


def test_from_intervals_never_mutates_the_callers_records():
    rec = _records([(2, 0, 3, 1, 1.0, 9, 0, 1), (1, 2, 4, 0, np.nan, 9, 1, 0), (1, 0, 2, 1, 2.0, 9, 0, 0)])
    rec.index = [10, 5, 7]
    before = copy.deepcopy(rec)
    PersonTime.from_intervals(rec, **ROLES)
    pd.testing.assert_frame_equal(rec, before)
