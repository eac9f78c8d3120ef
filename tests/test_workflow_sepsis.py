"""The six-step workflow's correctness on the embedded cohorts: DAG checks, dag= hooks, E-value methods, placebo.

The DAGs are read off the structural equations in ``gtools.datasets.sepsis``
and ``gtools.datasets.oncology`` (their module docstrings). The published
E-value examples are pinned in tests/test_sensitivity.py.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import gtools as gt
from gtools.dag import require_identified
from gtools.datasets import oncology, sepsis
from gtools.sensitivity import evalue_hr, evalue_md, evalue_rr, placebo_treatment

SEPSIS_DAG = [
    "age, comorb -> sofa[t]", "sofa[t-1] -> sofa[t]", "vaso[t-1] -> sofa[t]",
    "sofa[t] -> lactate[t]", "lactate[t-1] -> lactate[t]", "vaso[t-1] -> lactate[t]",
    "sofa[t], lactate[t], vaso[t-1], age, sex -> vaso[t]",
    "sofa[t], lactate[t], vaso[t] -> discharge[t]",
    "sofa[t], lactate[t], vaso[t], vaso[t-1], age, comorb -> death[t]",
]
ONCOLOGY_DAG = [
    "marker[t-1] -> marker[t]", "stage -> marker[t]", "treat[t-1] -> marker[t]",
    "ecog[t-1] -> ecog[t]", "marker[t] -> ecog[t]", "treat[t-1] -> ecog[t]",
    "marker[t], ecog[t], treat[t-1] -> treat[t]",
    "ecog[t], marker[t], treat[t] -> lost[t]",
    "marker[t], ecog[t], treat[t], age, stage -> progression[t]",
]
M_S, M_O = sepsis.SEPSIS_MODELS, oncology.ONCOLOGY_MODELS


@pytest.fixture(scope="module")
def sepsis_pt():
    df = sepsis.load_sepsis()
    df = df[df["id"] <= 2000]  # a third of the sample keeps the file fast
    return gt.PersonTime.from_long(df, **sepsis.SEPSIS_ROLES).add_history(*sepsis.history_features())


@pytest.fixture(scope="module")
def oncology_pt():
    df = oncology.load_oncology()
    df = df[df["id"] <= 2000]
    return gt.PersonTime.from_long(df, **oncology.ONCOLOGY_ROLES).add_history(*oncology.history_features())


# ------------------------------------------------------------ DAG checks
def test_sepsis_dag_accepts_the_true_treatment_and_gformula_adjustment_sets(sepsis_pt):
    dag = gt.TimeDAG(SEPSIS_DAG)
    trt = require_identified(dag, sepsis_pt, [M_S["vaso"][0]])
    assert trt.ok and "lactate -> lactate[t]" in trt.notes[0]
    models = [M_S["sofa"][0], M_S["lactate"][0], M_S["vaso"][0], M_S["death"][0]]
    assert require_identified(dag, sepsis_pt, models).ok


def test_oncology_dag_accepts_the_true_treatment_model(oncology_pt):
    dag = gt.TimeDAG(ONCOLOGY_DAG)
    rep = require_identified(dag, oncology_pt, [M_O["treat"][0]])
    assert rep.ok
    assert "marker -> marker[t]" in rep.notes[0] and "ecog -> ecog[t]" in rep.notes[0]


def test_omitting_a_confounder_is_rejected_naming_the_open_path(sepsis_pt, oncology_pt):
    rep = require_identified(gt.TimeDAG(SEPSIS_DAG), sepsis_pt, ["vaso ~ sofa + lag1_vaso + age + sex + day"],
                             raise_error=False)
    assert not rep.ok
    assert ("vaso[0]", ["vaso[0]", "lactate[0]", "death[0]"]) in [(n, p) for n, p, _ in rep.failures]
    # a lagged confounder is not the current one: marker[t] -> treat[t] stays open
    rep = require_identified(gt.TimeDAG(ONCOLOGY_DAG), oncology_pt, ["treat ~ lag1_marker + ecog + lag1_treat"],
                             raise_error=False)
    assert not rep.ok
    paths = [p for _, p, _ in rep.failures]
    assert all(p[0] == "treat[0]" and p[1] == "marker[0]" for p in paths if p[0] == "treat[0]")
    assert any(p[:2] == ["treat[1]", "marker[1]"] for p in paths)


def test_hidden_confounder_path_is_rejected_and_named(sepsis_pt):
    dag = gt.TimeDAG(SEPSIS_DAG + ["U -> vaso[t]", "U -> death[t]"], unobserved=["U"])
    rep = require_identified(dag, sepsis_pt, [M_S["vaso"][0]], raise_error=False)
    assert not rep.ok
    assert ["vaso[0]", "U", "death[0]"] in [p for _, p, _ in rep.failures]
    assert "vaso[0] <- U -> death[0]" in str(rep)


def test_mediator_with_hidden_cause_of_outcome_is_rejected_and_named():
    # conditioning on discharge (caused by vaso and, here, by a hidden frailty that also causes death)
    # both adjusts for a consequence of treatment and opens vaso -> discharge <- U -> death
    dag = gt.TimeDAG(SEPSIS_DAG + ["U -> discharge[t]", "U -> death[t]"], unobserved=["U"], K=3)
    assert dag.check_sequential_exchangeability(["sofa", "lactate", "age", "sex", "comorb"], "vaso", "death").ok
    rep = dag.check_sequential_exchangeability(["sofa", "lactate", "age", "sex", "comorb", "discharge"],
                                               "vaso", "death")
    assert not rep.ok
    paths = [p for _, p, _ in rep.failures]
    assert ["vaso[0]", "discharge[0]"] in paths  # discharge[0] is a descendant of vaso[0]: named with its path
    assert "adjustment node discharge[0] is a descendant of treatment vaso[0] (vaso[0] -> discharge[0])" in str(rep)
    # the path it would open, vaso -> discharge <- U -> death, is d-connecting given the set
    assert dag.open_paths("vaso[0]", "death[0]", ["discharge[0]", "sofa[0]", "lactate[0]", "age", "sex", "comorb"]
                          ) == [["vaso[0]", "death[0]"], ["vaso[0]", "discharge[0]", "U", "death[0]"]]


# --------------------------------------------------------- dag= on estimators
def test_every_estimator_refuses_a_dag_invalid_adjustment_set(sepsis_pt):
    dag = gt.TimeDAG(SEPSIS_DAG)
    bad = "vaso ~ sofa + lag1_vaso + age + sex + day"
    specs = [
        gt.IPTW(bad, dag=dag),
        gt.MSM("death ~ vaso + day", weights=gt.IPTW(bad), dag=dag),
        gt.CloneCensorWeight({"never": gt.regimes.never()}, treatment_model=bad, dag=dag),
        gt.GFormula(covariate_models=[M_S["sofa"][0]], treatment_model=bad,
                    outcome_model="death ~ sofa + vaso + lag1_vaso + age + comorb + day", n_samples=100, dag=dag),
    ]
    for spec in specs:
        with pytest.raises(gt.IdentificationError, match=r"vaso\[0\] <- lactate\[0\] -> death\[0\]"):
            spec.fit(sepsis_pt)


def test_estimators_with_a_valid_dag_fit_as_without(sepsis_pt):
    dag = gt.TimeDAG(SEPSIS_DAG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        a = gt.IPTW(M_S["vaso"][0], dag=dag).fit(sepsis_pt)
        b = gt.IPTW(M_S["vaso"][0]).fit(sepsis_pt)
    np.testing.assert_array_equal(a.weights.to_numpy(), b.weights.to_numpy())


def test_gestimation_and_qlearning_check_their_treatment_model():
    df = oncology.oncology_qol(300, seed=5)
    pt = gt.PersonTime.from_long(df, **oncology.ONCOLOGY_QOL_ROLES).add_history(*oncology.history_features())
    dag = gt.TimeDAG(["marker[t-1] -> marker[t]", "stage -> marker[t]", "treat[t-1] -> marker[t]",
                      "ecog[t-1] -> ecog[t]", "marker[t] -> ecog[t]", "treat[t-1] -> ecog[t]",
                      "marker[t], ecog[t], treat[t-1] -> treat[t]", "treat[t], marker[t], age, stage -> qol"])
    ok = gt.GEstimation("treat + treat:marker", treatment_model=M_O["treat"][0], dag=dag).fit(pt)
    assert np.isfinite(ok.params).all()
    with pytest.raises(gt.IdentificationError, match=r"open back-door path treat\[0\] <- marker\[0\]"):
        gt.GEstimation("treat", treatment_model="treat ~ ecog + lag1_treat", dag=dag).fit(pt)
    with pytest.raises(gt.IdentificationError, match="QLearning"):
        gt.QLearning("qol ~ ecog + treat", treatment_model="treat ~ ecog", dag=dag).fit(pt)


# ------------------------------------------------------------- E-value methods
def test_evalue_methods_match_the_sensitivity_functions(sepsis_pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        msm = gt.MSM("death ~ vaso + lag1_vaso + age + day", weights=gt.IPTW(M_S["vaso"][0]),
                     regimes={"always": gt.regimes.always(), "never": gt.regimes.never()}).fit(sepsis_pt)
    ci = msm.conf_int().loc["vaso"]
    # 12% of these patients die in the ICU: a rare outcome for the HR -> RR approximation
    want = evalue_hr(math.exp(msm.params["vaso"]), math.exp(ci["lower"]), math.exp(ci["upper"]), rare=True)
    got = msm.evalue("vaso")
    assert got.point == pytest.approx(want.point) and got.ci == pytest.approx(want.ci)
    risk = msm.risk({"always": gt.regimes.always(), "never": gt.regimes.never()})
    rr = risk["always"].iloc[-1] / risk["never"].iloc[-1]
    assert msm.evalue("always", "never").point == pytest.approx(evalue_rr(rr).point)
    assert msm.evalue("always", "never", ci=(0.3, 0.6)).ci == pytest.approx(evalue_rr(rr, 0.3, 0.6).ci)


def test_gformula_and_gestimation_evalues():
    df = oncology.oncology_qol(1000, seed=2)
    pt = gt.PersonTime.from_long(df, **oncology.ONCOLOGY_QOL_ROLES).add_history(*oncology.history_features())
    snm = gt.GEstimation("treat + treat:marker", treatment_model=M_O["treat"][0]).fit(pt)
    y = df.groupby("id")["qol"].last().to_numpy()
    c = snm.conf_int().loc["treat"]
    want = evalue_md(snm.params["treat"], sd=float(np.std(y, ddof=1)), lo=c["lower"], hi=c["upper"])
    assert snm.evalue().point == pytest.approx(want.point) and snm.evalue().ci == pytest.approx(want.ci)
    gf = gt.GFormula(covariate_models=[gt.Model(M_O["marker"][0], family="gaussian")],
                     outcome_model="qol ~ age + stage + marker + treat + lag1_treat", n_samples=2000, seed=1).fit(pt)
    d = gf.mean["always"] - gf.mean["never"]
    assert gf.evalue("always", "never").point == pytest.approx(evalue_md(d, sd=float(np.std(y, ddof=1))).point)


# ----------------------------------------------------------------- placebo
@pytest.mark.parametrize("cohort", ["sepsis", "oncology"])
def test_placebo_treatment_estimates_are_within_2_se_of_zero(cohort, sepsis_pt, oncology_pt):
    if cohort == "sepsis":
        pt, trt, formula = sepsis_pt, M_S["vaso"][0], "death ~ vaso + lag1_vaso + age + comorb + day"
    else:
        pt, trt, formula = oncology_pt, M_O["treat"][0], "progression ~ treat + lag1_treat + age + stage + month"
    spec = gt.MSM(formula, weights=gt.IPTW(trt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        fit = spec.fit(pt)
        name = f"coef[{pt.treatment}]"
        se = float(fit.bse[pt.treatment])  # the cluster-robust SE of the real effect
        res = placebo_treatment(spec, pt, name, n=4, seed=3, se=se)
    assert abs(res.new - 0.0) < 2 * se, (res.new, se)  # truth under the placebo: 0
    assert res.passed
