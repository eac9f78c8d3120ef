"""Clone-censor-weight: mechanics against a hand computation, and the sepsis cohort's dynamic regime vs truth."""

from __future__ import annotations

import importlib.util
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from test_msm import person_bootstrap_se
from test_weights import simulate_feedback

import gtools as gt
from gtools.datasets import sepsis as S

matplotlib.use("Agg")

LACT4 = gt.regimes.threshold("lactate", ">", 4.0, absorbing=True)
DAY = 6  # one week: enough adherent clones remain in the 5,000-patient sample under both regimes


def test_ccw_equals_hand_computed_clone_censor_weight():
    pt = simulate_feedback(2000, 8)
    reg = gt.regimes.threshold("L", ">", 0.5, absorbing=True)
    ccw = gt.CloneCensorWeight({"sick": reg, "never": gt.regimes.never()}, treatment_model="A ~ L + lag1_A + W",
                               censor_model="C ~ L + A + time").fit(pt, warn=False)
    d = pt.data.copy()
    p = gt.Model("A ~ L + lag1_A + W").fit(pt).predict(d)
    q = 1 - gt.Model("C ~ L + A + time").fit(pt).predict(d)
    prev = d.groupby("id")["A"].shift(1).fillna(0).to_numpy()
    for name, g in [("sick", np.where((d.L > 0.5) | (prev == 1), 1.0, 0.0)), ("never", np.zeros(len(d)))]:
        d["adh"] = (d.A == g).astype(int).groupby(d.id).cumprod()
        pg = np.where(g == 1, p, 1 - p)
        d["f"] = (1 / pg) * np.where(d.C == 1, 1.0, 1 / q)
        d["W8"] = d.groupby("id")["f"].cumprod()
        use = d[(d.adh == 1) & (d.C == 0)]
        h = (use.W8 * use.Y).groupby(use.time).sum() / use.W8.groupby(use.time).sum()
        np.testing.assert_allclose(ccw.risk[name].to_numpy(), 1 - np.cumprod(1 - h.to_numpy()), rtol=1e-10)
        np.testing.assert_allclose(ccw.hazards[name].to_numpy(), h.to_numpy(), rtol=1e-10)


def test_general_hazard_formula_matches_closed_form_for_saturated_time():
    pt = simulate_feedback(2000, 9)
    kw = dict(regimes={"never": gt.regimes.never()}, treatment_model="A ~ L + lag1_A + W")
    a = gt.CloneCensorWeight(hazard_formula="C(time)", **kw).fit(pt, warn=False)
    b = gt.CloneCensorWeight(hazard_formula="C(time) - 1", **kw).fit(pt, warn=False)  # fitted by IRLS
    np.testing.assert_allclose(a.risk, b.risk, rtol=1e-6)
    c = gt.CloneCensorWeight(hazard_formula="C(time) + W", **kw).fit(pt, warn=False)  # standardised over W
    assert np.all(np.abs(c.risk.to_numpy() - a.risk.to_numpy()) < 0.02)


def test_ccw_summary_estimates_contrast_and_plot():
    pt = simulate_feedback(1000, 10)
    ccw = gt.CloneCensorWeight({"always": gt.regimes.always(), "never": gt.regimes.never()},
                               treatment_model="A ~ L + lag1_A + W", truncate=(1, 99)).fit(pt, warn=False)
    s = ccw.summary()
    assert {"adherent", "events", "ess", "ess_ratio", "mean", "max", "hazard", "risk"} <= set(s.columns)
    assert s.loc[("never", 0), "adherent"] == ((pt.data.time == 0) & (pt.data.A == 0) & (pt.data.C == 0)).sum()
    e = ccw.estimates
    assert "risk[always,t=3]" in e and "rd[always-never,t=3]" in e and np.all(np.isfinite(e))
    c = ccw.contrast("always", "never")
    np.testing.assert_allclose(c["rd"], ccw.risk["always"] - ccw.risk["never"])
    assert ccw.truncation["always"]["n_upper"] > 0
    assert ccw.plot().get_ylabel() == "cumulative risk"
    assert "cloned into 2 regimes" in repr(ccw)


def test_ccw_warns_about_small_effective_sample_size():
    rng = np.random.default_rng(12)
    n, K = 1500, 3
    L = rng.normal(size=(n, K))
    A = (rng.random((n, K)) < 1 / (1 + np.exp(-3 * L))).astype(float)  # treatment almost determined by L
    d = pd.DataFrame({"id": np.repeat(np.arange(n), K), "time": np.tile(np.arange(K), n), "L": L.ravel(),
                      "A": A.ravel(), "Y": (rng.random(n * K) < 0.02).astype(float)})
    first = d.groupby("id")["Y"].cumsum() - d["Y"]
    d = d[first == 0]  # follow-up ends at the event
    pt = gt.PersonTime.from_long(d, id="id", time="time", treatment="A", covariates=["L"], outcome="Y")
    with pytest.warns(gt.FitWarning, match=r"effective sample size is below 25% of those at risk at time\(s\) 0, 1, 2"):
        gt.CloneCensorWeight({"always": gt.regimes.always()}, treatment_model="A ~ L").fit(pt)


@pytest.fixture(scope="module")
def sepsis():
    d = S.load_sepsis()
    return gt.PersonTime.from_long(d, **S.SEPSIS_ROLES).add_history(*S.history_features())


def _ccw_spec():
    return gt.CloneCensorWeight({"lact4": LACT4, "never": gt.regimes.never()},
                                treatment_model=gt.Model(*S.SEPSIS_MODELS["vaso"]),
                                censor_model=gt.Model(*S.SEPSIS_MODELS["discharge"]))


@pytest.fixture(scope="module")
def sepsis_ccw(sepsis):
    spec = _ccw_spec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        est = spec.fit(sepsis).estimates
    se = person_bootstrap_se(lambda p: spec.fit(p, warn=False).estimates, sepsis, n_boot=25, seed=11)
    return est, se


def test_sepsis_dynamic_regime_by_ccw_within_2p5_se_of_truth(sepsis_ccw):
    est, se = sepsis_ccw
    for name, regime in {"lact4": LACT4, "never": gt.regimes.never()}.items():
        truth, mc = S.true_risk(regime, n=100_000, return_se=True)
        key = f"risk[{name},t={DAY}]"
        assert mc.loc[DAY] < 0.1 * se[key]
        assert abs(est[key] - truth.loc[DAY]) < 2.5 * se[key], (name, truth.loc[DAY], est[key], se[key])
    # the dynamic regime lowers the risk against never treating (truth: 0.104 vs 0.174 by day 6)
    assert est[f"rd[lact4-never,t={DAY}]"] < 0


@pytest.mark.skipif(importlib.util.find_spec("gtools.gformula") is None, reason="gt.GFormula not available")
def test_sepsis_ccw_agrees_with_gformula_within_joint_se(sepsis, sepsis_ccw):
    est, se = sepsis_ccw
    models = {k: gt.Model(f, family=fam) for k, (f, fam) in S.SEPSIS_MODELS.items()}
    spec = gt.GFormula(covariate_models=[models["sofa"], models["lactate"]], treatment_model=models["vaso"],
                       outcome_model=models["death"], regimes={"lact4": LACT4}, n_samples=20_000, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gf = spec.fit(sepsis)
        key = f"risk[lact4,t={DAY}]"
        gf_est = float(gf.risk.loc[DAY, "lact4"])
        gf_se = person_bootstrap_se(lambda p: {key: float(spec.fit(p).risk.loc[DAY, "lact4"])}, sepsis, 15, 5)[key]
    joint = np.sqrt(se[key] ** 2 + gf_se ** 2)
    assert abs(est[key] - gf_est) < 2.5 * joint, (est[key], gf_est, se[key], gf_se)
