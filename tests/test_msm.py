"""MSM by IPTW: NHEFS (What If ch. 12), treatment-confounder feedback, informative censoring, risk curves."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import gtools as gt

matplotlib.use("Agg")

REGIMES = {"treated": gt.regimes.always(), "untreated": gt.regimes.never()}


def expit(x):
    return 1 / (1 + np.exp(-x))


def person_bootstrap_se(fit, pt, n_boot: int, seed: int) -> pd.Series:
    """SD of ``fit(replicate).estimates`` over person-level bootstrap replicates (frequency weights)."""
    rng = np.random.default_rng(seed)
    reps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_boot):
            counts = rng.multinomial(pt.n_persons, np.full(pt.n_persons, 1 / pt.n_persons))
            reps.append(fit(pt.with_person_counts(counts)))
    return pd.DataFrame(reps).std(ddof=1)


# -- NHEFS, What If ch. 12 -----------------------------------------------------------------

NHEFS_DEN = ("qsmk ~ sex + race + age + I(age**2) + C(education) + smokeintensity + I(smokeintensity**2) + "
             "smokeyrs + I(smokeyrs**2) + C(exercise) + C(active) + wt71 + I(wt71**2)")


@pytest.fixture(scope="module")
def nhefs():
    from causaldata import nhefs_complete

    d = nhefs_complete.load_pandas().data.copy()
    for c in ["sex", "race", "education", "exercise", "active"]:
        d[c] = pd.to_numeric(d[c].astype(str))
    d["time"] = 0
    return gt.PersonTime.from_long(d, id="seqn", time="time", treatment="qsmk",
                                   covariates=["sex", "race", "age", "education", "smokeintensity", "smokeyrs",
                                               "exercise", "active", "wt71"],
                                   outcome="wt82_71", outcome_type="continuous")


def test_nhefs_stabilised_ipw_reproduces_what_if_chapter_12(nhefs):
    # What If, section 12.3 / program 12.4: 3.4 kg (95% CI 2.4 to 4.5); the book's code prints 3.44 (2.41, 4.47)
    msm = gt.MSM("wt82_71 ~ qsmk", weights=gt.IPTW(NHEFS_DEN, "qsmk ~ 1"), family="gaussian").fit(nhefs)
    est, ci = msm.params["qsmk"], msm.conf_int().loc["qsmk"]
    assert round(est, 2) == 3.44
    assert round(ci["lower"], 2) == 2.41 and round(ci["upper"], 2) == 4.47
    s = msm.weights.summary().loc["overall"]
    # the book: stabilised weights mean 0.999, range 0.331 to 4.30
    assert round(s["mean"], 3) == 0.999 and round(s["min"], 3) == 0.331 and round(s["max"], 2) == 4.30
    m = gt.MSM("wt82_71 ~ qsmk", weights=gt.IPTW(NHEFS_DEN, "qsmk ~ 1"), family="gaussian",
               regimes={"quit": gt.regimes.always(), "continue": gt.regimes.never()}).fit(nhefs)
    assert m.estimates["diff[quit-continue,t=0]"] == pytest.approx(est)


def test_robust_se_is_the_person_level_sandwich(nhefs):
    msm = gt.MSM("wt82_71 ~ qsmk", weights=gt.IPTW(NHEFS_DEN, "qsmk ~ 1"), family="gaussian").fit(nhefs)
    d = nhefs.data
    w = msm.weights.weights.to_numpy()
    X = sm.add_constant(d["qsmk"].to_numpy())
    r = d["wt82_71"].to_numpy() - X @ msm.params.to_numpy()
    bread = np.linalg.inv((X * w[:, None]).T @ X)
    U = X * (w * r)[:, None]
    V = bread @ U.T @ U @ bread
    np.testing.assert_allclose(msm.bse.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-8)


# -- treatment-confounder feedback, end-of-follow-up outcome -----------------------------------


def simulate_two_interval(n: int, seed: int) -> gt.PersonTime:
    """L1 is affected by A0 and confounds A1: E[Y^{a0,a1}] = 0.2 a0 + 1.0 a1 (L0 centred)."""
    rng = np.random.default_rng(seed)
    L0 = rng.normal(size=n)
    A0 = (rng.random(n) < expit(-0.2 + 0.6 * L0)).astype(float)
    L1 = 0.5 * L0 - 0.8 * A0 + rng.normal(size=n)
    A1 = (rng.random(n) < expit(-0.2 + 0.6 * L1 + 0.5 * A0)).astype(float)
    Y = L0 + L1 + A0 + A1 + rng.normal(size=n)
    d = pd.DataFrame({"id": np.repeat(np.arange(n), 2), "time": np.tile([0, 1], n),
                      "L": np.column_stack([L0, L1]).ravel(), "A": np.column_stack([A0, A1]).ravel(),
                      "Y": np.repeat(Y, 2)})
    pt = gt.PersonTime.from_long(d, id="id", time="time", treatment="A", covariates=["L"], outcome="Y",
                                 outcome_type="continuous")
    return pt.add_history(gt.lag("A"))


def test_feedback_weighted_msm_within_2p5_se_of_truth_and_unweighted_biased():
    truth = {"lag1_A": 0.2, "A": 1.0}  # E[Y^{a0,a1}] = 0.2 a0 + a1: the MSM Y ~ A + lag1_A is correct
    pt = simulate_two_interval(5000, 2024)
    msm = gt.MSM("Y ~ A + lag1_A", weights=gt.IPTW("A ~ L + lag1_A", "A ~ lag1_A"), family="gaussian").fit(pt)
    naive = gt.MSM("Y ~ A + lag1_A", weights=None, family="gaussian").fit(pt)
    for k, v in truth.items():
        est, se = msm.params[k], msm.bse[k]
        assert abs(est - v) < 2.5 * se, (k, est, se)
        assert abs(naive.params[k] - v) > 10 * naive.bse[k], (k, naive.params[k])
    # standardised means under static regimes follow the MSM: mean(always) - mean(never) = 1.2
    r = msm.risk({"always": gt.regimes.always(), "never": gt.regimes.never()})
    assert r.loc[1, "always"] - r.loc[1, "never"] == pytest.approx(msm.params["A"] + msm.params["lag1_A"])


# -- survival with informative censoring -------------------------------------------------------

K_SURV = 5


def simulate_censored_survival(n: int, seed: int, a_fixed: float | None = None, censor: bool = True):
    """Baseline treatment A (confounded by L0, W); L_t lowered by A; censoring and death both rise with L_t.

    Returns the PersonTime (or, with ``a_fixed``, each person's true risk by the last interval:
    1 - prod(1 - h_t) along the simulated covariate path with censoring abolished).
    """
    rng = np.random.default_rng(seed)
    W = (rng.random(n) < 0.5).astype(float)
    L = rng.normal(size=n)
    A = (rng.random(n) < expit(-0.3 + 0.8 * L + 0.5 * W)).astype(float) if a_fixed is None else np.full(n, a_fixed)
    alive = np.ones(n, dtype=bool)
    surv = np.ones(n)
    recs = []
    for t in range(K_SURV):
        if t > 0:
            L = 0.6 * L - 0.6 * A + rng.normal(0, 0.8, n)
        h = expit(-2.6 + 1.0 * L - 0.3 * A + 0.3 * W)
        surv *= 1 - h
        c = (rng.random(n) < expit(-2.2 + 1.5 * L + 0.3 * A)) if censor else np.zeros(n, dtype=bool)
        y = rng.random(n) < h
        idx = np.flatnonzero(alive)
        recs.append(pd.DataFrame({"id": idx, "time": t, "W": W[idx], "L": L[idx], "A": A[idx],
                                  "C": c[idx].astype(float), "Y": np.where(c[idx], np.nan, y[idx].astype(float))}))
        alive &= ~c & ~y
    if a_fixed is not None:
        return 1 - surv
    d = pd.concat(recs).sort_values(["id", "time"]).reset_index(drop=True)
    return gt.PersonTime.from_long(d, id="id", time="time", treatment="A", covariates=["L"], baseline=["W"],
                                   outcome="Y", censor="C")


@pytest.fixture(scope="module")
def surv_truth():
    r1 = simulate_censored_survival(200_000, 1, a_fixed=1.0, censor=False)
    r0 = simulate_censored_survival(200_000, 2, a_fixed=0.0, censor=False)
    return {"treated": r1.mean(), "untreated": r0.mean(),
            "mc_se": max(r1.std(), r0.std()) / np.sqrt(200_000)}


def test_iptw_ipcw_risk_at_last_interval_within_2p5_se_of_truth_biased_without_censoring_weights(surv_truth):
    pt = simulate_censored_survival(5000, 12)
    ipcw = gt.IPTW("A ~ L + W", censor_model="C ~ L + A + W + C(time)", at_risk=lambda d: d["time"] == 0)
    iptw_only = gt.IPTW("A ~ L + W", at_risk=lambda d: d["time"] == 0)
    last = f"t={K_SURV - 1}"

    def fit(weights):
        return lambda p: gt.MSM("Y ~ A*C(time)", weights=weights, regimes=REGIMES).fit(p).estimates

    est = fit(ipcw)(pt)
    est_nc = fit(iptw_only)(pt)
    se = person_bootstrap_se(fit(ipcw), pt, n_boot=30, seed=3)
    for g in REGIMES:
        name = f"risk[{g},{last}]"
        truth = surv_truth[g]  # MC SE of the truth ~0.001, negligible against se
        assert abs(est[name] - truth) < 2.5 * se[name], (g, truth, est[name], se[name])
        assert est_nc[name] < truth - 2.5 * se[name], (g, truth, est_nc[name])  # censoring weights matter


def test_risk_uses_treatment_history_computed_under_the_regime():
    # cumsum_A and lag1_A in the MSM are recomputed under the regime, with baseline W standardised
    from test_weights import simulate_feedback

    pt = simulate_feedback(1500, 4)
    msm = gt.MSM("Y ~ cumsum_A + lag1_A + W + time", weights=gt.IPTW("A ~ L + lag1_A + W + time")).fit(pt)
    reg = gt.regimes.static([1, 0, 1, 1])
    r = msm.risk({"pulse": reg})["pulse"].to_numpy()
    b = msm.params
    W = pt.data.loc[pt.data.time == 0, "W"].to_numpy()
    a = np.array([1, 0, 1, 1.0])
    cs, lag = np.cumsum(a), np.r_[0, a[:-1]]
    S = np.ones_like(W)
    for t in range(4):
        h = expit(b["Intercept"] + b["cumsum_A"] * cs[t] + b["lag1_A"] * lag[t] + b["W"] * W + b["time"] * t)
        S = S * (1 - h)
        assert r[t] == pytest.approx(np.mean(1 - S))
    msm.risk({"never": gt.regimes.never()})
    c = msm.contrast("pulse", "never")
    np.testing.assert_allclose(c["rd"], c["risk[pulse]"] - c["risk[never]"])
    np.testing.assert_allclose(c["risk[pulse]"], r)


def test_dynamic_regime_in_msm_risk_points_to_clone_censor_weight():
    from test_weights import simulate_feedback

    pt = simulate_feedback(500, 4)
    msm = gt.MSM("Y ~ cumsum_A + time", weights=gt.IPTW("A ~ L + lag1_A + W + time")).fit(pt)
    with pytest.raises(ValueError, match="CloneCensorWeight"):
        msm.risk({"sick": gt.regimes.threshold("L", ">", 0.5)})


def test_time_varying_covariate_in_msm_raises_when_standardising():
    from test_weights import simulate_feedback

    pt = simulate_feedback(500, 4)
    msm = gt.MSM("Y ~ A + L", weights=None).fit(pt)
    with pytest.raises(ValueError, match="varies over time"):
        msm.risk(REGIMES)


def test_estimates_summary_and_plot():
    from test_weights import simulate_feedback

    pt = simulate_feedback(800, 6)
    msm = gt.MSM("Y ~ cumsum_A + C(time)", weights=gt.IPTW("A ~ L + lag1_A + W + time"), regimes=REGIMES).fit(pt)
    e = msm.estimates
    assert "coef[cumsum_A]" in e and "risk[treated,t=3]" in e and "rd[treated-untreated,t=3]" in e
    assert "rr[treated-untreated,t=3]" in e and np.all(np.isfinite(e))
    s = msm.summary()
    assert {"coef", "se", "ci_lower", "ci_upper", "odds_ratio"} <= set(s.columns)
    assert msm.plot().get_ylabel() == "cumulative risk"
    assert "persons" in repr(msm)
