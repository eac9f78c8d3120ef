"""Tests for gtools.validation: external comparison, natural-course table, policy values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import gtools as gt
from gtools.datasets import oncology, sepsis
from gtools.validation import PolicyValue, compare_external, natural_course_check, policy_values

Z = 1.959963984540054


# ------------------------------------------------------------ external comparison
def test_compare_external_difference_by_hand():
    c = compare_external(-0.27, (-0.32, -0.22), -0.28, (-0.307, -0.253))
    se, xse = 0.10 / (2 * Z), 0.054 / (2 * Z)
    assert c.se == pytest.approx(se) and c.external_se == pytest.approx(xse)
    assert c.difference == pytest.approx(0.01)
    assert c.z == pytest.approx(0.01 / math.hypot(se, xse))
    assert c.difference_ci[0] == pytest.approx(0.01 - Z * math.hypot(se, xse))
    assert c.agree and c.overlap and c.external_in_ci
    assert "agree" in str(c) and c.to_frame().loc["confidence intervals overlap", "value"] == "yes"


def test_compare_external_ratio_uses_the_log_scale_and_flags_disagreement():
    c = compare_external(0.6, (0.5, 0.8), 0.9, (0.8, 1.0), scale="ratio")
    se = (math.log(0.8) - math.log(0.5)) / (2 * Z)
    xse = (math.log(1.0) - math.log(0.8)) / (2 * Z)
    assert c.difference == pytest.approx(math.log(0.6 / 0.9))
    assert c.z == pytest.approx(math.log(0.6 / 0.9) / math.hypot(se, xse))
    assert not c.agree and c.overlap and not c.external_in_ci  # overlapping CIs can still disagree
    assert c.p == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(abs(c.z) / math.sqrt(2)))))


def test_compare_external_rejects_bad_input():
    with pytest.raises(ValueError, match="lower <= upper"):
        compare_external(1.0, (1.5, 1.2), 1.0, (0.9, 1.1))
    with pytest.raises(ValueError, match="positive"):
        compare_external(0.5, (-0.1, 0.9), 1.0, (0.9, 1.1), scale="ratio")
    with pytest.raises(ValueError, match="scale"):
        compare_external(0.5, (0.1, 0.9), 1.0, (0.9, 1.1), scale="log")


# --------------------------------------------------------------- natural course
def test_natural_course_check_summarises_the_gformula_table():
    df = sepsis.load_sepsis()
    pt = gt.PersonTime.from_long(df[df["id"] <= 1500], **sepsis.SEPSIS_ROLES).add_history(*sepsis.history_features())
    M = sepsis.SEPSIS_MODELS
    gf = gt.GFormula(covariate_models=[gt.Model(M["sofa"][0], family="gaussian"),
                                       gt.Model(M["lactate"][0], family="gaussian")],
                     treatment_model=M["vaso"][0], outcome_model=M["death"][0], censor_model=M["discharge"][0],
                     regimes={"natural": gt.regimes.natural()}, n_samples=2000, seed=1).fit(pt)
    tab = natural_course_check(gf)
    full = gf.natural_course().table
    assert list(tab.index) == ["risk", "sofa", "lactate", "vaso"]
    for q in tab.index:
        assert tab.loc[q, "flagged"] == int(full.loc[q, "flagged"].sum())
        assert tab.loc[q, "times"] == pt.n_times
        assert tab.loc[q, "max |std difference|"] == pytest.approx(full.loc[q, "std_difference"].abs().max())
        assert tab.loc[q, "verdict"] == ("ok" if tab.loc[q, "flagged"] == 0 else "check the model")
    # correct models: the simulated natural-course risk stays in the observed Kaplan-Meier band
    assert tab.loc["risk", "flagged"] == 0


# --------------------------------------------------------------- policy values
@pytest.fixture(scope="module")
def qol():
    df = oncology.oncology_qol(1500, seed=11)
    pt = gt.PersonTime.from_long(df, **oncology.ONCOLOGY_QOL_ROLES).add_history(*oncology.history_features(),
                                                                                gt.cumsum("treat"))
    M = oncology.ONCOLOGY_QOL_MODELS
    ql = gt.QLearning("qol ~ age + stage + marker + ecog + lag1_treat + treat + treat:marker", method="dwols",
                      treatment_model=M["treat"][0])
    gf = gt.GFormula(covariate_models=[gt.Model(M["marker"][0], family="gaussian"),
                                       gt.Model(M["ecog"][0], family="multinomial")],
                     treatment_model=M["treat"][0], outcome_model="qol ~ age + stage + marker + treat + cumsum_treat",
                     n_samples=3000, seed=2)
    regimes = {"never": gt.regimes.never(), "marker>1": gt.regimes.threshold("marker", ">", 1.0)}
    return pt, ql, gf, regimes


def test_policy_value_reuses_ipw_compare_and_the_gformula(qol):
    pt, ql, gf, regimes = qol
    res = PolicyValue(ql, gf, regimes, seed=2).fit(pt)
    dtr = ql.fit(pt)
    ipw = dtr.compare(regimes)
    np.testing.assert_allclose(res.table["ipw"].to_numpy(), ipw["value"].to_numpy())
    spec = gt.GFormula(**{**vars(gf), "regimes": {"optimal (estimated)": dtr.as_regime("optimal (estimated)"),
                                                  **regimes}})
    ref = spec.fit(pt)
    np.testing.assert_allclose(res.table["gformula"].to_numpy(), ref.mean.to_numpy())
    assert res.estimates["value[optimal,plug-in]"] == pytest.approx(dtr.value()["value"].iloc[0])
    assert {"value[never,ipw]", "value[marker>1,gformula]"} <= set(res.estimates.index)


def test_policy_values_ipw_value_of_never_is_within_2p5_se_of_truth(qol):
    pt, ql, gf, regimes = qol
    tab = policy_values(ql, pt, regimes, gformula=gf, n_boot=25, seed=3)
    assert list(tab.index) == ["optimal (estimated)", "never", "marker>1"]
    assert {"ipw_lower", "ipw_upper", "gformula_lower", "gformula_upper", "ipw - gformula"} <= set(tab.columns)
    assert (tab["ipw_lower"] <= tab["ipw"]).all() and (tab["ipw"] <= tab["ipw_upper"]).all()
    truth = 46.406  # E[qol^never], gtools.datasets.oncology docstring (MC SE 0.014)
    est, se = tab.loc["never", "ipw"], tab.loc["never", "ipw_se"]
    assert abs(est - truth) < 2.5 * se, (est, se, truth)
    # the outcome model omits treat x marker history, yet "never" needs none of it: both estimators agree
    assert abs(tab.loc["never", "ipw - gformula"]) < 2.5 * math.hypot(se, tab.loc["never", "gformula_se"])


def test_policy_values_without_bootstrap_or_gformula(qol):
    pt, ql, _gf, regimes = qol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        tab = policy_values(ql, pt, regimes, n_boot=0)
    assert list(tab.columns) == ["ipw", "n followed"] and tab.attrs["n_boot"] == 0
    with pytest.raises(ValueError, match="reserved"):
        PolicyValue(ql, None, {"optimal (estimated)": gt.regimes.never()}).fit(pt)
