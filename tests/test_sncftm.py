"""G-estimation of structural nested cumulative failure time models (survival GEstimation) against known truth.

The data-generating process (``simulate``) makes the SNCFTM hold exactly
-----------------------------------------------------------------------
Each person has an unmeasured frailty ``U ~ N(0, 1)`` and a baseline ``V``. In
every interval ``t`` while event-free and uncensored:

* ``L_t ~ Bern(expit(-0.3 + U - 0.8 A_{t-1} + 0.3 V))`` — a confounder affected
  by earlier treatment (treatment–confounder feedback) and tied to the outcome
  only through ``U``;
* ``A_t ~ Bern(expit(-1 + 1.2 L_t + 0.8 A_{t-1} - 0.05 t))`` — depends on the
  measured past only (sequential exchangeability given ``L_t, A_{t-1}``);
* treatment **cures**: if ``A_t = 1`` and the person is not yet cured, they
  become immune for good with probability ``1 - exp(gamma_t)``,
  ``gamma_t = psi_0 + psi_1 L_t <= 0``, by an independent coin;
* censoring ``C_t ~ Bern(expit(-3 + L_t))`` (informative through ``L``; it hides
  ``Y_t``), then ``Y_t ~ Bern(expit(-2.6 + 0.9 U + 0.4 V + 0.05 t))`` unless cured.

Why ``psi`` is the truth: given ``U = u``, the cure status ``c`` before ``t``
and being event-free at the start of ``m``, the future under "no treatment from
``m`` on" has cumulative risk ``(1 - c) F_0(k | m, u)`` with ``F_0`` from the
hazard above, whatever ``L``-history; with one final treatment at ``m`` the
person is additionally cured at ``m`` with probability ``1 - exp(gamma_m)``, so
the risk is ``exp(gamma_m) (1 - c) F_0(k | m, u)`` for every ``k >= m``. The ratio
is ``exp(gamma_m)`` for each ``(u, c)``; both risks are averaged over the same
conditional law of ``(U, cure status)`` given the observed history, so the
ratio given ``H_m, A_m`` is exactly ``exp(A_m (psi_0 + psi_1 L_m))``: the
SNCFTM with blip ``A + A:L`` holds with the true ``psi``. The cumulative risk
under "never treat" is checked against the same process simulated with
``A_t = 0`` forced (brute force, 400,000 persons).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import gtools as gt

K = 8
TRUE = np.array([-0.3, -0.5])
TREATMENT = "A ~ L + lag1_A + V + time"
CENSOR = "C ~ L + V"


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate(n: int, psi=(-0.3, -0.5), seed: int = 0, censoring: bool = False, never: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    U = rng.normal(size=n)
    V = rng.binomial(1, 0.5, n).astype(float)
    alive = np.ones(n, dtype=bool)
    cured = np.zeros(n, dtype=bool)
    prev = np.zeros(n)
    out = []
    for t in range(K):
        idx = np.flatnonzero(alive)
        m = len(idx)
        if not m:
            break
        L = rng.binomial(1, _expit(-0.3 + U[idx] - 0.8 * prev[idx] + 0.3 * V[idx]))
        A = rng.binomial(1, _expit(-1.0 + 1.2 * L + 0.8 * prev[idx] - 0.05 * t))
        if never:
            A = np.zeros(m, dtype=int)
        gam = A * (psi[0] + psi[1] * L)
        cured[idx] |= (A == 1) & (rng.random(m) < 1 - np.exp(gam))
        C = rng.binomial(1, _expit(-3.0 + 1.0 * L)) if censoring else np.zeros(m, dtype=int)
        lam = _expit(-2.6 + 0.9 * U[idx] + 0.4 * V[idx] + 0.05 * t)
        Y = ((rng.random(m) < lam) & ~cured[idx]).astype(float)
        Y = np.where(C == 1, np.nan, Y)
        out.append(pd.DataFrame({"id": idx, "time": t, "V": V[idx], "L": L, "A": A, "C": C, "Y": Y}))
        prev[idx] = A
        alive[idx] = (C == 0) & (Y == 0)
    return pd.concat(out).sort_values(["id", "time"]).reset_index(drop=True)


def table(df: pd.DataFrame, censoring: bool = False) -> gt.PersonTime:
    pt = gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], baseline=["V"],
                                 outcome="Y", outcome_type="survival", censor="C" if censoring else None)
    return pt.add_history(gt.lag("A"))


def fit(pt, blip="A + A:L", treatment=TREATMENT, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        return gt.GEstimation(blip=blip, treatment_model=treatment, **kw).fit(pt)


def brute_force_never_risk() -> float:
    df = simulate(400_000, seed=99, never=True)
    return float(df.groupby("id")["Y"].max().mean())


def test_sncftm_psi_within_2p5_se_of_true_blip_with_effect_modification():
    res = fit(table(simulate(4000, seed=3)))
    err = np.abs(res.params.to_numpy() - TRUE)
    se = res.se.to_numpy()
    assert res.converged
    assert np.all(err < 2.5 * se), f"truth {TRUE}, estimate {res.params.to_numpy()}, SE {se}"


def test_sncftm_ipcw_recovers_true_blip_under_informative_censoring():
    pt = table(simulate(5000, seed=21, censoring=True), censoring=True)
    res = fit(pt, censor_model=CENSOR)
    err = np.abs(res.params.to_numpy() - TRUE)
    se = res.se.to_numpy()
    assert np.all(err < 2.5 * se), f"truth {TRUE}, estimate {res.params.to_numpy()}, SE {se}"
    with pytest.raises(gt.DataError, match="censor_model"):
        gt.GEstimation(blip="A + A:L", treatment_model=TREATMENT).fit(pt)


def test_sncftm_null_effect_recovered():
    pt = table(simulate(4000, psi=(0.0, 0.0), seed=8))
    res = fit(pt, blip="A")
    est, se = float(res.params["A"]), float(res.se["A"])
    lo, hi = res.conf_int().loc["A"]
    assert abs(est) < 2.5 * se and lo < 0 < hi, f"truth 0, estimate {est}, SE {se}"


def test_sncftm_confounded_treatment_model_is_biased_and_correct_one_is_not():
    # the test has power: leaving the confounder L out of the treatment model biases psi beyond 4 SE
    pt = table(simulate(16_000, psi=(-0.5, 0.0), seed=4))
    right = fit(pt, blip="A")
    wrong = fit(pt, blip="A", treatment="A ~ lag1_A + V + time")
    assert abs(float(right.params["A"]) + 0.5) < 2.5 * float(right.se["A"])
    assert abs(float(wrong.params["A"]) + 0.5) > 4 * float(wrong.se["A"]), wrong.params


def test_sncftm_outcome_regression_keeps_estimate_consistent():
    pt = table(simulate(5000, seed=13, censoring=True), censoring=True)
    res = fit(pt, censor_model=CENSOR, outcome_model="Y ~ L + V + lag1_A + time")
    assert res.outcome_coef is not None and len(res.outcome_coef) == 5
    err = np.abs(res.params.to_numpy() - TRUE)
    assert np.all(err < 2.5 * res.se.to_numpy()), (res.params, res.se)


def test_sncftm_sandwich_se_agrees_with_bootstrap_and_never_risk_with_brute_force():
    pt = table(simulate(2000, seed=31, censoring=True), censoring=True)
    spec = gt.GEstimation(blip="A + A:L", treatment_model=TREATMENT, censor_model=CENSOR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        res = spec.fit(pt)
        boot = gt.bootstrap(spec, pt, n_boot=150, n_jobs=2, seed=5)
    bse = boot.se[["psi[A]", "psi[A:L]"]].to_numpy()
    sse = res.se.to_numpy()
    ratio = sse / bse
    assert np.all(np.abs(ratio - 1) < 0.30), f"sandwich {sse}, bootstrap {bse}"
    truth = brute_force_never_risk()
    est = float(res.estimates[f"risk[never,t={K - 1}]"])
    rse = float(boot.se[f"risk[never,t={K - 1}]"])
    assert abs(est - truth) < 2.5 * rse, f"never-treat risk: truth {truth:.4f}, estimate {est:.4f}, SE {rse:.4f}"


def test_sncftm_frequency_weights_equal_duplicated_persons():
    df = simulate(600, seed=2, censoring=True)
    pt = table(df, censoring=True)
    counts = np.random.default_rng(1).integers(0, 3, pt.n_persons)
    weighted = fit(pt.with_person_counts(counts), censor_model=CENSOR, outcome_model="Y ~ L + time")
    ids = pt.persons
    parts = []
    for pid, c in zip(ids, counts, strict=True):
        for r in range(int(c)):
            d = df[df["id"] == pid].copy()
            d["id"] = f"{pid}_{r}"
            parts.append(d)
    dup = fit(table(pd.concat(parts, ignore_index=True), censoring=True), censor_model=CENSOR,
              outcome_model="Y ~ L + time")
    np.testing.assert_allclose(weighted.params.to_numpy(), dup.params.to_numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.se.to_numpy(), dup.se.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(weighted.risk.to_numpy(), dup.risk.to_numpy(), rtol=1e-8, atol=1e-12)


def test_sncftm_result_interface_through_gestimation():
    res = fit(table(simulate(1500, seed=6)))
    assert list(res.params.index) == ["A", "A:L"]
    assert list(res.estimates.index[:2]) == ["psi[A]", "psi[A:L]"]
    assert list(res.conf_int().columns) == ["lower", "upper"]
    tab = res.summary()
    assert {"coef", "se", "ci_lower", "ci_upper", "exp(coef)"} <= set(tab.columns)
    assert "cumulative failure time" in repr(res)
    assert list(res.risk.columns) == ["natural", "never"] and len(res.risk) == K
    assert np.all(np.diff(res.risk.to_numpy(), axis=0) >= -1e-12)


def test_sncftm_follow_up_ending_early_without_reason_is_a_data_error():
    df = simulate(300, seed=1)
    last = df.groupby("id")["time"].transform("max")
    event = df.groupby("id")["Y"].transform("max")
    drop = (event == 0) & (last == K - 1) & (df["id"] < 20) & (df["time"] == K - 1)
    with pytest.raises(gt.DataError, match="follow_up_ends_early|last interval"):
        fit(table(df[~drop]))
