"""Tests for gtools.sensitivity: E-values and refutation checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from gtools.sensitivity import (
    EValue,
    RefutationResult,
    data_subset,
    evalue_from_estimate,
    evalue_hr,
    evalue_md,
    evalue_or,
    evalue_rr,
    negative_control_outcome,
    placebo_treatment,
    random_common_cause,
    refutation_table,
)


def _hand_e(rr: float) -> float:
    rr = 1 / rr if rr < 1 else rr
    return rr + math.sqrt(rr * (rr - 1))


# ------------------------------------------------------------------ E-values
def test_evalue_reproduces_vanderweele_ding_breastfeeding_example():
    # VanderWeele & Ding (2017): RR 3.9 (95% CI 1.8 to 8.7) -> E-values 7.26 and 3.00
    ev = evalue_rr(3.9, lo=1.8, hi=8.7)
    assert round(ev.point, 2) == 7.26
    assert round(ev.ci, 2) == 3.00
    assert ev.scale == "rr" and ev.estimate_rr == 3.9


def test_evalue_is_symmetric_for_protective_risk_ratios_and_uses_upper_limit():
    ev = evalue_rr(1 / 3.9, lo=1 / 8.7, hi=1 / 1.8)
    assert round(ev.point, 2) == 7.26
    assert round(ev.ci, 2) == 3.00


def test_evalue_for_interval_including_the_null_is_one():
    assert evalue_rr(1.5, lo=0.9, hi=2.5).ci == 1.0
    assert evalue_rr(0.7, lo=0.4, hi=1.2).ci == 1.0
    assert evalue_rr(1.0, lo=0.8, hi=1.25).point == 1.0


def test_evalue_ci_is_none_when_the_limit_nearer_the_null_is_missing():
    assert evalue_rr(2.0, hi=3.0).ci is None
    assert evalue_rr(0.5, lo=0.3).ci is None


def test_evalue_rejects_invalid_ratios_and_misordered_limits():
    with pytest.raises(ValueError):
        evalue_rr(0.0)
    with pytest.raises(ValueError):
        evalue_rr(2.0, lo=2.5)
    with pytest.raises(ValueError):
        evalue_rr(2.0, hi=1.5)


def test_evalue_or_common_outcome_uses_square_root_of_odds_ratio():
    ev = evalue_or(2.25, lo=1.44, hi=4.0)
    assert ev.estimate_rr == pytest.approx(1.5)
    assert ev.point == pytest.approx(1.5 + math.sqrt(1.5 * 0.5))
    assert ev.ci == pytest.approx(1.2 + math.sqrt(1.2 * 0.2))


def test_evalue_or_rare_outcome_treats_odds_ratio_as_risk_ratio():
    assert round(evalue_or(3.9, lo=1.8, rare=True).point, 2) == 7.26


def test_evalue_hr_common_outcome_conversion_matches_hand_computation():
    hr, lo = 2.0, 1.3
    rr = (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))
    rr_lo = (1 - 0.5 ** math.sqrt(lo)) / (1 - 0.5 ** math.sqrt(1 / lo))
    ev = evalue_hr(hr, lo=lo, hi=3.0)
    assert ev.estimate_rr == pytest.approx(rr) and rr == pytest.approx(1.6126, abs=1e-4)
    assert ev.point == pytest.approx(_hand_e(rr))
    assert ev.ci == pytest.approx(_hand_e(rr_lo))
    assert evalue_hr(0.5).point == pytest.approx(_hand_e(1 / rr))  # conversion is symmetric


def test_evalue_hr_rare_outcome_treats_hazard_ratio_as_risk_ratio():
    assert evalue_hr(3.9, rare=True).point == pytest.approx(_hand_e(3.9))


def test_evalue_md_standardises_and_uses_exp_091_times_d():
    ev = evalue_md(5.0, se=1.0, sd=10.0)
    assert ev.estimate_rr == pytest.approx(math.exp(0.91 * 0.5))
    assert ev.point == pytest.approx(_hand_e(math.exp(0.455)))
    # CI from d - 1.96 se, i.e. exp(0.91 d/sd - 1.78 se/sd)
    assert ev.ci == pytest.approx(_hand_e(math.exp(0.91 * (5.0 - 1.959964) / 10)), rel=1e-6)
    explicit = evalue_md(5.0, sd=10.0, lo=3.0, hi=7.0)
    assert explicit.ci == pytest.approx(_hand_e(math.exp(0.91 * 0.3)))
    assert evalue_md(-5.0, se=1.0, sd=10.0).point == pytest.approx(ev.point)


def test_evalue_md_requires_positive_sd():
    with pytest.raises(ValueError, match="sd"):
        evalue_md(1.0, sd=0.0)


def test_evalue_from_estimate_dispatches_on_scale():
    assert evalue_from_estimate(3.9, 1.8, 8.7, "rr").point == pytest.approx(evalue_rr(3.9).point)
    assert evalue_from_estimate(2.25, None, None, "OR").estimate_rr == pytest.approx(1.5)
    assert evalue_from_estimate(2.0, None, None, "hr", rare=True).estimate_rr == 2.0
    assert evalue_from_estimate(1.0, 0.5, 1.5, "md", sd=2.0).scale == "md"
    with pytest.raises(ValueError, match="sd="):
        evalue_from_estimate(1.0, None, None, "md")
    with pytest.raises(ValueError, match="unknown scale"):
        evalue_from_estimate(1.0, None, None, "risk difference")


def test_evalue_str_and_frame_report_point_and_ci():
    ev = evalue_rr(3.9, lo=1.8, hi=8.7)
    assert isinstance(ev, EValue)
    assert "7.26" in str(ev) and "3.00" in str(ev)
    frame = ev.to_frame()
    assert list(frame.index) == ["point", "ci"]
    assert frame.loc["ci", "estimate"] == 1.8
    assert frame.loc["point", "evalue"] == pytest.approx(7.26, abs=0.005)


# ------------------------------------------------------------ refutations
@dataclass
class FakePT:
    """Minimal stand-in for gtools PersonTime (data + roles + replace_data)."""

    data: pd.DataFrame
    id: str = "id"
    time: str = "time"
    treatment: str = "A"
    covariates: list = field(default_factory=lambda: ["L"])
    seen: list = field(default_factory=list)

    def replace_data(self, new: pd.DataFrame) -> FakePT:
        self.seen.append(new)
        return FakePT(new.sort_values([self.id, self.time]).reset_index(drop=True), self.id, self.time,
                      self.treatment, list(self.covariates), self.seen)


@dataclass
class FakeResult:
    estimates: pd.Series


class OLSEffect:
    """Coefficient of A in a linear regression of an outcome on A and covariates."""

    def __init__(self, outcome: str = "Y", covariates: tuple = ("L",), extra: str | None = None):
        self.outcome, self.covariates, self.extra = outcome, list(covariates), extra

    def fit(self, pt: FakePT) -> FakeResult:
        cols = [pt.treatment] + self.covariates + ([self.extra] if self.extra else [])
        X = np.column_stack([np.ones(len(pt.data))] + [pt.data[c].to_numpy(float) for c in cols])
        beta = np.linalg.lstsq(X, pt.data[self.outcome].to_numpy(float), rcond=None)[0]
        return FakeResult(pd.Series({"effect": beta[1], "intercept": beta[0]}))


class ConstantEstimator:
    def fit(self, pt: FakePT) -> FakeResult:
        return FakeResult(pd.Series({"effect": 1.0}))


def _person_time(n: int = 150, k: int = 3, seed: int = 1) -> FakePT:
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n), k)
    time = np.tile(np.arange(k), n)
    L = rng.normal(size=n * k)
    A = (rng.random(n * k) < 1 / (1 + np.exp(-L))).astype(int)
    Y = 2.0 * A + L + rng.normal(size=n * k)
    NC = L + rng.normal(size=n * k)  # negative control: confounded by L, unaffected by A
    return FakePT(pd.DataFrame({"id": ids, "time": time, "L": L, "A": A, "Y": Y, "NC": NC}))


def test_placebo_treatment_removes_real_effect_and_passes():
    pt = _person_time()
    res = placebo_treatment(OLSEffect(), pt, "effect", n=10, seed=0)
    assert isinstance(res, RefutationResult)
    assert res.original == pytest.approx(2.0, abs=0.3)
    assert abs(res.new) < 0.3 and res.expected == 0.0
    assert res.passed is True and res.n == 10 and len(res.values) == 10
    assert res.new_se == pytest.approx(res.spread / math.sqrt(10))
    assert res.tolerance == pytest.approx(2 * res.spread)


def test_placebo_treatment_preserves_prevalence_within_each_time():
    pt = _person_time()
    placebo_treatment(OLSEffect(), pt, "effect", n=3)
    before = pt.data.groupby("time")["A"].sum()
    for df in pt.seen:
        pd.testing.assert_series_equal(df.groupby("time")["A"].sum(), before)
        assert not np.array_equal(df.sort_values(["id", "time"])["A"].to_numpy(), pt.data["A"].to_numpy())


def test_placebo_treatment_fails_for_estimator_that_ignores_treatment():
    res = placebo_treatment(ConstantEstimator(), _person_time(n=20), n=5)
    assert res.estimate_name == "effect"  # the only estimate is picked automatically
    assert res.passed is False and res.new == 1.0


def test_placebo_treatment_uses_caller_standard_error_for_the_band():
    res = placebo_treatment(OLSEffect(), _person_time(), "effect", n=5, se=1e-9)
    assert res.tolerance == pytest.approx(2e-9)
    assert res.passed is False


def test_refutation_requires_estimate_name_when_several_estimates():
    with pytest.raises(ValueError, match="estimate_name"):
        placebo_treatment(OLSEffect(), _person_time(n=20), n=2)
    with pytest.raises(KeyError):
        placebo_treatment(OLSEffect(), _person_time(n=20), "nope", n=2)


def test_random_common_cause_with_factory_adds_person_constant_noise_and_passes():
    pt = _person_time()
    calls = []

    def factory(extra):
        calls.append(extra)
        return OLSEffect(extra=extra)

    res = random_common_cause(factory, pt, "effect", n=8)
    assert calls == [None, "_random_cc"]
    assert res.passed is True
    assert res.expected == res.original
    assert not np.allclose(res.values, res.original, rtol=0, atol=1e-12)  # the column was used
    for df in pt.seen:
        assert (df.groupby("id")["_random_cc"].nunique() == 1).all()


def test_random_common_cause_with_plain_estimator_warns_when_column_is_ignored():
    with pytest.warns(UserWarning, match="ignored the added column"):
        res = random_common_cause(OLSEffect(), _person_time(n=30), "effect", n=3)
    assert "factory" in res.note


def test_random_common_cause_rejects_factory_that_cannot_build_base_estimator():
    def factory(extra):
        if extra is None:
            raise ValueError("needs a column")
        return OLSEffect(extra=extra)

    with pytest.raises(TypeError, match=r"factory\(None\)"):
        random_common_cause(factory, _person_time(n=20), "effect", n=2)


def test_data_subset_keeps_fraction_of_persons_and_passes():
    pt = _person_time(n=100)
    res = data_subset(OLSEffect(), pt, "effect", fraction=0.8, n=6)
    assert res.passed is True and res.expected == res.original
    for df in pt.seen:
        assert df["id"].nunique() == 80
        assert len(df) == 80 * 3  # whole persons are kept
    with pytest.raises(ValueError, match="fraction"):
        data_subset(OLSEffect(), pt, "effect", fraction=0.0)


def test_negative_control_outcome_flags_unadjusted_confounding_and_accepts_adjusted_estimator():
    pt = _person_time(n=200)
    biased = negative_control_outcome(lambda y: OLSEffect(outcome=y, covariates=()), pt, "NC", "effect",
                                      n_boot=15)
    assert biased.passed is False and biased.new > 0.5
    assert "bootstrap" in biased.note
    adjusted = negative_control_outcome(lambda y: OLSEffect(outcome=y), pt, "NC", "effect", n_boot=15)
    assert adjusted.passed is True
    assert abs(adjusted.new) < adjusted.tolerance


def test_negative_control_outcome_without_se_or_bootstrap_is_undetermined():
    res = negative_control_outcome(lambda y: OLSEffect(outcome=y), _person_time(n=30), "NC", "effect",
                                   n_boot=0)
    assert res.passed is None and "se=" in res.note
    with pytest.raises(KeyError, match="not a column"):
        negative_control_outcome(lambda y: OLSEffect(outcome=y), _person_time(n=30), "ZZ", "effect")


def test_refutation_table_stacks_results_with_string_summary():
    pt = _person_time(n=40)
    results = [placebo_treatment(OLSEffect(), pt, "effect", n=3),
               data_subset(OLSEffect(), pt, "effect", n=3)]
    table = refutation_table(results)
    assert list(table["name"]) == ["placebo treatment", "data subset"]
    assert {"original", "new", "new_se", "spread", "expected", "passed"} <= set(table.columns)
    assert "placebo treatment [effect]" in str(results[0])
    assert refutation_table([]).empty
