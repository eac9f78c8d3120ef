"""Q-learning and dWOLS: DTRreg's example, a two-stage simulation with known truth, protocol checks."""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from _peers import PEERS

import gtools as gt
from gtools.errors import DataError, FitWarning
from gtools.qlearning import DTRResult, QLearning, m_out_of_n, m_out_of_n_ci

# the simulation's confounding is strong on purpose (so a misspecified treatment-free model shows its
# bias): a handful of rows get P(A = 1 | H) > 0.99 and gtools says so; those warnings are expected here
pytestmark = pytest.mark.filterwarnings("ignore:positivity:gtools.errors.FitWarning")

DTRREG_CSV = PEERS / "DTRreg" / "twoStageCont.csv"


# -- DTRreg's twoStageCont ----------------------------------------------------------------


def two_stage_cont() -> gt.PersonTime:
    """twoStageCont reshaped long: interval 1 carries X1 and A1, interval 2 X2 and A2; X1 is also baseline."""
    d = pd.read_csv(DTRREG_CSV)
    ids = np.arange(len(d))
    long = pd.concat([
        pd.DataFrame({"id": ids, "stage": 1, "X": d["X1"], "A": d["A1"], "X1": d["X1"], "Y": d["Y"]}),
        pd.DataFrame({"id": ids, "stage": 2, "X": d["X2"], "A": d["A2"], "X1": d["X1"], "Y": d["Y"]}),
    ])
    return gt.PersonTime.from_long(long, id="id", time="stage", treatment="A", covariates=["X"], baseline=["X1"],
                                   outcome="Y", outcome_type="continuous")


# blip ~X1 / ~X2, treatment-free ~X1 / ~X2, treatment models A1 ~ X1, A2 ~ 1 (as in peers/README.md)
DTR_Q = {1: "Y ~ X1 + A + A:X1", 2: "Y ~ X + A + A:X"}
DTR_T = {1: "A ~ X1", 2: "A ~ 1"}

needs_dtrreg = pytest.mark.skipif(not DTRREG_CSV.exists(), reason="DTRreg's twoStageCont.csv not available")


@needs_dtrreg
def test_dwols_reproduces_dtrreg_estimates_and_sandwich_ses_on_two_stage_cont():
    res = QLearning(DTR_Q, method="dwols", treatment_model=DTR_T).fit(two_stage_cont())
    b = res.blip.set_index(["stage", "term"])
    # DTRreg 2.4, method = "dwols", var.estim = "sandwich" (peers/README.md)
    dtrreg = {(1, "A"): (1.1335, 0.2288), (1, "A:X1"): (1.5021, 0.2577),
              (2, "A"): (0.8308, 0.2536), (2, "A:X"): (1.9755, 0.2966)}
    for key, (est, se) in dtrreg.items():
        assert abs(b.loc[key, "estimate"] - est) < 1e-3, key
        assert abs(b.loc[key, "se"] - se) < 1e-3, key
    assert res.estimates["blip[stage=1,A:X1]"] == pytest.approx(b.loc[(1, "A:X1"), "estimate"])


@needs_dtrreg
def test_qlearning_reproduces_dtrreg_qlearn_estimates_on_two_stage_cont():
    res = QLearning(DTR_Q, method="q").fit(two_stage_cont())
    est = res.blip.set_index(["stage", "term"])["estimate"]
    dtrreg = {(1, "A"): 1.0907, (1, "A:X1"): 2.7297, (2, "A"): 0.8308, (2, "A:X"): 1.9755}
    for key, value in dtrreg.items():
        assert abs(est[key] - value) < 1e-3, key


@needs_dtrreg
def test_max_q_pseudo_outcome_gives_the_issues_stage1_blips_on_two_stage_cont():
    res = QLearning(DTR_Q, method="q", pseudo="max_q").fit(two_stage_cont())
    est = res.blip.set_index(["stage", "term"])["estimate"]
    assert abs(est[(1, "A")] - 0.228) < 1e-3
    assert abs(est[(1, "A:X1")] - 0.133) < 1e-3
    # the last stage does not depend on the pseudo-outcome
    assert abs(est[(2, "A:X")] - 1.9755) < 1e-3


@needs_dtrreg
def test_stacked_sandwich_agrees_with_the_person_bootstrap_on_two_stage_cont():
    pt = two_stage_cont()
    spec = QLearning(DTR_Q, method="dwols", treatment_model=DTR_T, se="stacked")
    se = spec.fit(pt).blip.set_index(["stage", "term"])["se"]
    boot = gt.bootstrap(spec, pt, n_boot=200, seed=11)
    bse = boot.se
    # 200 replicates: the bootstrap SD has a relative MC error of about 1/sqrt(2*199) = 5%; allow 3 of them
    for (stage, term), s in se.items():
        assert abs(s / bse[f"blip[stage={stage},{term}]"] - 1) < 0.15, (stage, term)


@needs_dtrreg
def test_rules_read_as_treat_if_linear_blip_positive():
    res = QLearning(DTR_Q, method="dwols", treatment_model=DTR_T).fit(two_stage_cont())
    rules = res.rules()
    assert rules.loc[1, "rule"] == "stage 1: treat if 1.133 + 1.502*X1 > 0"
    assert rules.loc[2, "rule"] == "stage 2: treat if 0.8308 + 1.976*X > 0"
    text = repr(res)
    assert "dWOLS" in text and "stage 2: treat if" in text


# -- a two-stage simulation with known truth ------------------------------------------------------
#
# X1 ~ N(0, 1);  A1 ~ Bern(expit(-1 + 0.5 X1 + 0.5 X1^2));  X2 ~ Bern(0.3 + 0.4 A1);
# A2 ~ Bern(expit(-1 + X2 + 0.4 X1^2));
# Y = 1 + X1 + X1^2 + A1 (psi10 + psi11 X1) + delta X2 + A2 (psi20 + psi21 X2) + N(0, 1).
# Stage 2 blip: psi20 + psi21 X2 = -0.5 + X2 (treat iff X2 = 1). Because X2 is binary,
# E[max(0, psi20 + psi21 X2) | X1, A1] is linear in A1, and the stage-1 optimal blip is exactly
# (psi10 + 0.4 (delta + m)) + psi11 X1 with m = max(0, psi20 + psi21) - max(0, psi20) = 0.5:
# 0.2 + 0.8 X1 (treat iff X1 > -0.25).

PSI1, PSI2, DELTA = (-0.4, 0.8), (-0.5, 1.0), 1.0
M2 = max(0.0, PSI2[0] + PSI2[1]) - max(0.0, PSI2[0])
TRUE_BLIP = {"blip[stage=0,A]": PSI1[0] + 0.4 * (DELTA + M2), "blip[stage=0,A:X1]": PSI1[1],
             "blip[stage=1,A]": PSI2[0], "blip[stage=1,A:X]": PSI2[1]}
Q_RIGHT = {0: "Y ~ X1 + I(X1**2) + A + A:X1", 1: "Y ~ X1 + I(X1**2) + lag1_A + lag1_A:X1 + X + A + A:X"}
Q_WRONG = {0: "Y ~ X1 + A + A:X1", 1: "Y ~ X1 + lag1_A + lag1_A:X1 + X + A + A:X"}  # no X1^2
T_RIGHT = {0: "A ~ X1 + I(X1**2)", 1: "A ~ X + I(X1**2)"}


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate(n: int, seed: int) -> gt.PersonTime:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    a1 = (rng.uniform(size=n) < _expit(-1 + 0.5 * x1 + 0.5 * x1 ** 2)).astype(float)
    x2 = (rng.uniform(size=n) < 0.3 + 0.4 * a1).astype(float)
    a2 = (rng.uniform(size=n) < _expit(-1 + x2 + 0.4 * x1 ** 2)).astype(float)
    y = (1 + x1 + x1 ** 2 + a1 * (PSI1[0] + PSI1[1] * x1) + DELTA * x2 + a2 * (PSI2[0] + PSI2[1] * x2)
         + rng.normal(size=n))
    ids = np.arange(n)
    long = pd.concat([pd.DataFrame({"id": ids, "t": 0, "X": x1, "A": a1, "X1": x1, "Y": y}),
                      pd.DataFrame({"id": ids, "t": 1, "X": x2, "A": a2, "X1": x1, "Y": y})])
    pt = gt.PersonTime.from_long(long, id="id", time="t", treatment="A", covariates=["X"], baseline=["X1"],
                                 outcome="Y", outcome_type="continuous")
    return pt.add_history(gt.lag("A"))


# X1 integrated on a fine grid with normal weights; X2 exactly (binary)
_GRID = np.linspace(-8, 8, 16001)
_PDF = np.exp(-_GRID ** 2 / 2)
_PDF /= _PDF.sum()


_COARSE = np.linspace(-8, 8, 1601)
_COARSE_PDF = np.exp(-_COARSE ** 2 / 2) / np.exp(-_COARSE ** 2 / 2).sum()


def true_value(rule1, rule2, coarse: bool = False) -> float:
    """E[Y(d)] for d1 = rule1(x1) and d2 = rule2(x2, a1, x1), exactly (up to the quadrature)."""
    x1, pdf = (_COARSE, _COARSE_PDF) if coarse else (_GRID, _PDF)
    d1 = np.asarray(rule1(x1), dtype=float)
    v = 1 + x1 + x1 ** 2 + d1 * (PSI1[0] + PSI1[1] * x1)
    p2 = 0.3 + 0.4 * d1
    for x2, px in ((1.0, p2), (0.0, 1 - p2)):
        d2 = np.asarray(rule2(np.full_like(x1, x2), d1, x1), dtype=float)
        v = v + px * (DELTA * x2 + d2 * (PSI2[0] + PSI2[1] * x2))
    return float(np.sum(pdf * v))


def true_optimal_value() -> float:
    mu, sd = TRUE_BLIP["blip[stage=0,A]"], TRUE_BLIP["blip[stage=0,A:X1]"]
    z = mu / sd
    e_max = mu * NormalDist().cdf(z) + sd * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    return 1 + 1 + e_max + 0.3 * (DELTA + M2) + max(0.0, PSI2[0])


def test_true_optimal_value_by_brute_force_over_rules_equals_closed_form():
    # brute force: every stage-2 rule as a function of (X2, A1) (16 rules) x stage-1 threshold rules
    best = -np.inf
    for code in range(16):
        table = [(code >> b) & 1 for b in range(4)]  # rule for (x2, a1) in (0,0), (0,1), (1,0), (1,1)

        def rule2(x2, a1, x1, table=table):
            return np.choose((2 * x2 + a1).astype(int), table)

        for c in np.linspace(-2, 2, 161):
            for sign in (1, -1):
                best = max(best, true_value(lambda x1, c=c, s=sign: s * (x1 - c) > 0, rule2, coarse=True))
    opt1, opt2 = (lambda x1: 0.2 + 0.8 * x1 > 0), (lambda x2, a1, x1: -0.5 + x2 > 0)
    assert true_value(opt1, opt2) == pytest.approx(true_optimal_value(), abs=1e-6)  # quadrature error at the step
    v_opt = true_value(opt1, opt2, coarse=True)
    assert best <= v_opt + 1e-12
    assert best == pytest.approx(v_opt, abs=1e-6)  # the threshold grid contains c = -0.25


@pytest.mark.parametrize("method", ["q", "dwols"])
def test_simulated_blip_estimates_within_2p5_se_of_truth(method):
    res = QLearning(Q_RIGHT, method=method, treatment_model=T_RIGHT).fit(simulate(3000, seed=7))
    b = res.blip
    se = dict(zip([f"blip[stage={s},{t}]" for s, t in zip(b["stage"], b["term"])], b["se"]))
    for name, truth in TRUE_BLIP.items():
        est = res.estimates[name]
        assert abs(est - truth) < 2.5 * se[name], (name, truth, est, se[name])


def test_value_of_estimated_regime_within_tolerance_of_the_optimum():
    pt = simulate(3000, seed=8)
    res = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT).fit(pt)
    th0, th1 = res.params[0], res.params[1]

    def rule1(x1):
        return th0["A"] + th0["A:X1"] * x1 > 0

    def rule2(x2, a1, x1):
        return th1["A"] + th1["A:X"] * x2 > 0

    v_opt, v_hat = true_optimal_value(), true_value(rule1, rule2)
    # the regret of an estimated linear rule is second order in the estimation error: with blip SEs
    # of about 0.07 it is of order 0.005; 0.03 leaves a wide margin yet excludes "treat everybody"
    # (true value v_opt - 0.073) and "treat nobody" (v_opt - 0.64)
    assert 0 <= v_opt - v_hat < 0.03
    assert v_opt - true_value(lambda x1: np.ones_like(x1), lambda x2, a1, x1: np.ones_like(x2)) > 0.05
    # plug-in and IPW value estimates of the optimal value, within 2.5 bootstrap-free SE bounds:
    # SD(Y) is about 2, so an SE of the mean below 0.05 (plug-in) and 0.12 (IPW, ~30% followers)
    est = res.estimates
    assert abs(est["value[optimal]"] - v_opt) < 2.5 * 0.05
    assert abs(est["value[optimal,ipw]"] - v_opt) < 2.5 * 0.12


def test_misspecified_treatment_free_model_biases_qlearning_but_not_dwols():
    pt = simulate(20_000, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        q = QLearning(Q_WRONG, method="q", treatment_model=T_RIGHT).fit(pt)
        dw = QLearning(Q_WRONG, method="dwols", treatment_model=T_RIGHT).fit(pt)
    qb, db = q.blip.set_index(["stage", "term"]), dw.blip.set_index(["stage", "term"])
    for (stage, term), row in db.iterrows():
        truth = TRUE_BLIP[f"blip[stage={stage},{term}]"]
        assert abs(row["estimate"] - truth) < 2.5 * row["se"], (stage, term)
    # Q-learning's blip intercepts are far off (measured: about 40 and 20 SE)
    for stage in (0, 1):
        row = qb.loc[(stage, "A")]
        assert abs(row["estimate"] - TRUE_BLIP[f"blip[stage={stage},A]"]) > 6 * row["se"], stage


# -- protocol: frequency weights, policy, regimes, learners --------------------------------------


def test_replicate_with_person_counts_equals_fit_on_the_resampled_persons():
    pt = simulate(400, seed=3)
    rng = np.random.default_rng(5)
    counts = np.bincount(rng.integers(0, pt.n_persons, pt.n_persons), minlength=pt.n_persons).astype(float)
    spec = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT, se="stacked",
                     regimes={"always": gt.regimes.always()})
    weighted = spec.fit(pt.with_person_counts(counts))
    d = pt.data
    rows = np.concatenate([np.flatnonzero(pt.person_index == p) for p in np.repeat(np.arange(pt.n_persons),
                                                                                    counts.astype(int))])
    phys = d.iloc[rows].copy()
    phys["id"] = np.repeat(np.arange(int(counts.sum())), 2)
    ptr = gt.PersonTime.from_long(phys.drop(columns=["lag1_A"]), id="id", time="t", treatment="A", covariates=["X"],
                                  baseline=["X1"], outcome="Y", outcome_type="continuous").add_history(gt.lag("A"))
    resampled = spec.fit(ptr)
    pd.testing.assert_series_equal(weighted.estimates, resampled.estimates, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(weighted.blip["se"], resampled.blip["se"], rtol=1e-8)


def test_persons_with_zero_weight_are_harmless():
    pt = simulate(300, seed=4)
    keep = np.ones(pt.n_persons)
    keep[:50] = 0
    spec = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT)
    a = spec.fit(pt.with_person_counts(keep))
    b = spec.fit(pt.subset_persons(pt.persons[50:]))
    pd.testing.assert_series_equal(a.estimates, b.estimates, rtol=1e-9)
    np.testing.assert_allclose(a.blip["se"], b.blip["se"], rtol=1e-8)


def test_policy_uses_each_rows_observed_history_and_as_regime_agrees():
    pt = simulate(500, seed=6)
    q = dict(Q_RIGHT)
    q[1] = "Y ~ X1 + I(X1**2) + lag1_A + lag1_A:X1 + X + A + A:X + A:lag1_A"  # stage-2 rule reads lag1_A
    res = QLearning(q, method="q").fit(pt)
    pol = res.policy(pt)
    th = res.params[1]
    d = pt.data
    s1 = d["t"].to_numpy() == 1
    expected = (th["A"] + th["A:X"] * d["X"] + th["A:lag1_A"] * d["lag1_A"] > 0).astype(float)
    np.testing.assert_array_equal(pol[s1].to_numpy(), expected[s1].to_numpy())
    state = gt.regimes.state_from_panel(pt)
    np.testing.assert_array_equal(res.as_regime()(state), pol.to_numpy())
    detail = res.policy(detail=True)
    assert list(detail.columns) == ["id", "t", "stage", "blip", "recommended"]


def test_ipw_value_of_a_static_regime_matches_a_hand_computation():
    pt = simulate(2000, seed=12)
    res = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT).fit(pt)
    tab = res.compare({"always": gt.regimes.always(), "never": gt.regimes.never()})
    d = pt.data
    a = d["A"].to_numpy().reshape(-1, 2)
    y = d["Y"].to_numpy().reshape(-1, 2)[:, 0]
    p = np.column_stack([res._stages[0].p, res._stages[1].p])
    for name, val in (("always", 1.0), ("never", 0.0)):
        f = (a == val).all(axis=1)
        w = 1 / np.prod(np.where(a == 1, p, 1 - p), axis=1)
        assert tab.loc[name, "value"] == pytest.approx(np.sum(w * f * y) / np.sum(w * f), rel=1e-12)
    # the truth ranks the regimes: optimal > always > never
    assert tab.loc["optimal (estimated)", "value"] > tab.loc["never", "value"]


def test_linear_learner_reproduces_least_squares_rules_and_values():
    from sklearn.linear_model import LinearRegression

    pt = simulate(800, seed=13)
    ols = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT).fit(pt)
    lrn = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT,
                    learner=LinearRegression(fit_intercept=False)).fit(pt)
    np.testing.assert_array_equal(ols.policy(pt).to_numpy(), lrn.policy(pt).to_numpy())
    assert lrn.estimates["value[optimal]"] == pytest.approx(ols.estimates["value[optimal]"], rel=1e-8)
    assert "LinearRegression" in lrn.rules().loc[0, "rule"]
    assert not any(k.startswith("blip[") for k in lrn.estimates.index)


def test_per_stage_rewards_match_the_summed_outcome_when_the_q_model_absorbs_earlier_rewards():
    rng = np.random.default_rng(1)
    n = 600
    x1 = rng.normal(size=n)
    a1 = rng.integers(0, 2, n).astype(float)
    x2 = 0.5 * x1 + rng.normal(size=n)
    a2 = rng.integers(0, 2, n).astype(float)
    r1 = x1 + a1 * (0.5 - x1) + rng.normal(size=n)
    r2 = x2 + a2 * (0.2 + x2) + rng.normal(size=n)
    ids = np.arange(n)
    long = pd.concat([pd.DataFrame({"id": ids, "t": 0, "X": x1, "A": a1, "R": r1, "Y": r1 + r2}),
                      pd.DataFrame({"id": ids, "t": 1, "X": x2, "A": a2, "R": r2, "Y": r1 + r2})])
    roles = dict(id="id", time="t", treatment="A", covariates=["X", "R"])
    pt_r = gt.PersonTime.from_long(long.drop(columns="Y"), **roles).add_history(gt.lag("R"), gt.lag("A"))
    pt_y = gt.PersonTime.from_long(long, **roles, outcome="Y", outcome_type="continuous").add_history(
        gt.lag("R"), gt.lag("A"))
    q = {0: "Y ~ X + A + A:X", 1: "Y ~ lag1_R + X + lag1_A + A + A:X"}
    by_reward = QLearning(q, reward="R").fit(pt_r)
    by_total = QLearning(q).fit(pt_y)
    assert list(by_reward.estimates.index) == list(by_total.estimates.index)
    for k in by_total.estimates.index:
        if k.startswith("blip["):
            assert by_reward.estimates[k] == pytest.approx(by_total.estimates[k], abs=1e-10), k


def test_stage_column_gives_the_same_fit_as_the_intervals():
    pt = simulate(300, seed=14)
    data = pt.data.drop(columns="lag1_A").assign(visit=lambda x: x["t"] + 1)
    pt2 = gt.PersonTime.from_long(data, id="id", time="t", treatment="A", covariates=["X", "visit"],
                                  baseline=["X1"], outcome="Y", outcome_type="continuous").add_history(gt.lag("A"))
    a = QLearning(Q_RIGHT).fit(pt)
    b = QLearning({1: Q_RIGHT[0], 2: Q_RIGHT[1]}, stage="visit").fit(pt2)
    np.testing.assert_allclose(a.estimates.to_numpy(), b.estimates.to_numpy(), rtol=1e-12)
    assert b.stages == [1, 2]


# -- non-regularity and the m-out-of-n bootstrap -------------------------------------------------


def test_m_out_of_n_formula_and_limits():
    assert m_out_of_n(1000, alpha=0.1, p_hat=0.0) == 1000
    assert m_out_of_n(1000, alpha=0.1, p_hat=1.0) == int(np.floor(1000 ** (1 / 1.1)))
    assert m_out_of_n(1000, alpha=0.1, p_hat=0.5) == int(np.floor(1000 ** ((1 + 0.05) / 1.1)))
    assert m_out_of_n(1000, p_hat=0.8) < m_out_of_n(1000, p_hat=0.2)
    with pytest.raises(ValueError):
        m_out_of_n(1000, p_hat=1.5)


def test_nonregularity_share_and_m_out_of_n_bootstrap_run_end_to_end():
    pt = simulate(600, seed=15)
    spec = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT)
    res = spec.fit(pt)
    p_hat = res.nonregularity()
    assert 0.0 < p_hat <= 1.0
    # the true stage-2 blip (+-0.5) is never 0: with 20,000 persons (blip SEs ~0.03) nobody looks degenerate
    big = QLearning(Q_RIGHT, method="dwols", treatment_model=T_RIGHT).fit(simulate(20_000, seed=16))
    assert big.nonregularity() == 0.0
    m = m_out_of_n(pt.n_persons, alpha=0.1, p_hat=p_hat)
    assert m < pt.n_persons
    boot = gt.bootstrap(spec, pt, n_boot=40, seed=3, m=m)
    ci = boot.conf_int()
    mine = m_out_of_n_ci(boot.point, boot.replicates, pt.n_persons, m)
    np.testing.assert_allclose(ci.to_numpy(), mine.to_numpy(), rtol=1e-12)
    assert (ci["lower"] < ci["upper"]).all()


# -- errors ----------------------------------------------------------------------------------------


def test_dwols_without_a_treatment_model_is_an_error():
    with pytest.raises(ValueError, match="treatment_model"):
        QLearning("Y ~ X + A", method="dwols").fit(simulate(50, seed=1))


def test_q_model_without_a_treatment_term_is_an_error():
    with pytest.raises(ValueError, match="no term in the treatment"):
        QLearning("Y ~ X + X1").fit(simulate(50, seed=1))


def test_missing_stage_in_a_dict_of_formulas_names_the_stage():
    with pytest.raises(ValueError, match="no entry for stage 1"):
        QLearning({0: "Y ~ X + A"}).fit(simulate(50, seed=1))


def test_survival_outcome_is_rejected_with_a_hint(long_df):
    pt = gt.PersonTime.from_long(long_df, id="id", time="day", treatment="A", covariates=["L"], outcome="Y",
                                 censor="C")
    with pytest.raises(ValueError, match="end-of-follow-up outcome"):
        QLearning("Y ~ L + A").fit(pt)


def test_missing_value_in_a_q_model_column_is_a_data_error_naming_it():
    pt = simulate(50, seed=1)
    data = pt.data.copy()
    data["Z"] = 1.0
    data.loc[3, "Z"] = np.nan
    pt2 = pt._replace(data=data, _cache={})
    with pytest.raises(DataError, match="Z"):
        QLearning("Y ~ Z + A").fit(pt2)


def test_persons_without_outcome_are_dropped_with_a_warning():
    pt = simulate(200, seed=2)
    data = pt.data.copy()
    data.loc[data["id"] < 10, "Y"] = np.nan
    pt2 = pt._replace(data=data, _cache={})
    with pytest.warns(FitWarning, match="10 person"):
        res = QLearning(Q_RIGHT).fit(pt2)
    ref = QLearning(Q_RIGHT).fit(pt.subset_persons(pt.persons[10:]))
    pd.testing.assert_series_equal(res.estimates, ref.estimates, rtol=1e-9)
    assert isinstance(res, DTRResult)
