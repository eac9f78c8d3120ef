"""IPTW: stabilised treatment and censoring weights, truncation, diagnostics, bootstrap protocol."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import gtools as gt

matplotlib.use("Agg")


def expit(x):
    return 1 / (1 + np.exp(-x))


def simulate_feedback(n: int, seed: int, K: int = 4, censor: bool = True, absorbing: bool = False):
    """L_t depends on A_{t-1}; A_t on L_t and A_{t-1}; C_t on L_t; Y_t on L_t and A_t."""
    rng = np.random.default_rng(seed)
    W = (rng.random(n) < 0.5).astype(float)
    L = np.zeros(n)
    A = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    recs = []
    for t in range(K):
        L = 0.5 * L - 0.8 * A + 0.3 * W + rng.normal(size=n)
        p = expit(-0.4 + 0.9 * L + 1.0 * A - 0.3 * W)
        newA = (rng.random(n) < p).astype(float)
        if absorbing:
            newA = np.maximum(newA, A)
        A = newA
        c = (rng.random(n) < expit(-2.5 + 0.8 * L)) if censor else np.zeros(n, dtype=bool)
        y = rng.random(n) < expit(-3 + 0.7 * L - 0.5 * A)
        idx = np.flatnonzero(alive)
        recs.append(pd.DataFrame({"id": idx, "time": t, "W": W[idx], "L": L[idx], "A": A[idx],
                                  "C": c[idx].astype(float), "Y": np.where(c[idx], np.nan, y[idx].astype(float))}))
        alive &= ~c & ~y
    d = pd.concat(recs).sort_values(["id", "time"]).reset_index(drop=True)
    pt = gt.PersonTime.from_long(d, id="id", time="time", treatment="A", covariates=["L"], baseline=["W"],
                                 outcome="Y", censor="C" if censor else None)
    return pt.add_history(gt.lag("A"), gt.cumsum("A"))


@pytest.fixture(scope="module")
def pt():
    return simulate_feedback(3000, 11)


def _usual_way(d: pd.DataFrame) -> np.ndarray:
    """Stabilised IPTW x IPCW written the usual way: statsmodels formulas + groupby cumprod."""
    d = d.copy()
    den = smf.glm("A ~ L + lag1_A + W + time", d, family=sm.families.Binomial()).fit()
    num = smf.glm("A ~ lag1_A + W + time", d, family=sm.families.Binomial()).fit()
    pd_, pn = den.predict(d), num.predict(d)
    d["f"] = np.where(d.A == 1, pn / pd_, (1 - pn) / (1 - pd_))
    cden = smf.glm("C ~ L + lag1_A + W + time", d, family=sm.families.Binomial()).fit()
    cnum = smf.glm("C ~ lag1_A + W + time", d, family=sm.families.Binomial()).fit()
    d["g"] = np.where(d.C == 1, 1.0, (1 - cnum.predict(d)) / (1 - cden.predict(d)))
    return (d.groupby("id")["f"].cumprod() * d.groupby("id")["g"].cumprod()).to_numpy()


def test_stabilised_weights_equal_statsmodels_groupby_cumprod(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time", "A ~ lag1_A + W + time", censor_model="C ~ L + lag1_A + W + time",
                censor_numerator_model="C ~ lag1_A + W + time").fit(pt, warn=False)
    np.testing.assert_allclose(w.weights.to_numpy(), _usual_way(pt.data), rtol=1e-7)
    assert w.weights.index.equals(pt.data.index)
    np.testing.assert_allclose(w.weights, w.treatment_weights * w.censoring_weights)


def test_unstabilised_weights_are_inverse_probabilities_of_observed_treatment(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time", stabilized=False).fit(pt, warn=False)
    p = w.models["treatment"].predict(pt.data)
    f = np.where(pt.data.A == 1, 1 / p, 1 / (1 - p))
    expected = pd.Series(f).groupby(pt.data.id.to_numpy()).cumprod().to_numpy()
    np.testing.assert_allclose(w.weights.to_numpy(), expected, rtol=1e-10)
    assert w.summary().loc["overall", "mean"] > 1.5  # unstabilised weights average well above 1


def test_default_numerator_is_marginal_treatment_probability_by_time(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time").fit(pt, warn=False)
    d = pt.data
    pn = d.groupby("time")["A"].transform("mean")
    pden = w.models["treatment"].predict(d)
    f = np.where(d.A == 1, pn / pden, (1 - pn) / (1 - pden))
    np.testing.assert_allclose(w.weights, pd.Series(f).groupby(d.id.to_numpy()).cumprod(), rtol=1e-10)


def test_censored_row_carries_weight_of_previous_intervals_only(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time", censor_model="C ~ L + lag1_A + W + time").fit(pt, warn=False)
    d = pt.data
    cens = np.flatnonzero(d.C.to_numpy() == 1)
    later = cens[d.time.to_numpy()[cens] > 0]
    i = later[0]
    assert w.censoring_weights.iloc[i] == pytest.approx(w.censoring_weights.iloc[i - 1])
    unc = np.flatnonzero((d.C.to_numpy() == 0) & (d.time.to_numpy() > 0))[0]
    q = 1 - w.models["censoring"].predict(d.iloc[[unc]])[0]
    qn = 1 - d.loc[d.time == d.time.iloc[unc], "C"].mean()
    assert w.censoring_weights.iloc[unc] == pytest.approx(w.censoring_weights.iloc[unc - 1] * qn / q)


def test_absorbing_treatment_fits_only_rows_at_risk_and_fixes_later_factors_at_one():
    pt = simulate_feedback(2000, 3, absorbing=True, censor=False)
    at_risk = pt.data["lag1_A"].to_numpy() == 0
    w = gt.IPTW("A ~ L + W + time", absorbing_treatment=True).fit(pt, warn=False)
    assert w.models["treatment"].n_obs == at_risk.sum()
    tw = w.treatment_weights.to_numpy()
    after = np.flatnonzero(~at_risk)
    np.testing.assert_allclose(tw[after], tw[after - 1])  # factor 1 once treated
    w2 = gt.IPTW(gt.Model("A ~ L + W + time", absorbing=True)).fit(pt, warn=False)
    np.testing.assert_allclose(w2.weights, w.weights)


def test_at_risk_rule_restricts_treatment_model_to_baseline_rows(pt):
    w = gt.IPTW("A ~ L + W", at_risk=lambda d: d["time"] == 0).fit(pt, warn=False)
    assert w.models["treatment"].n_obs == pt.n_persons
    t = pt.data.time.to_numpy()
    np.testing.assert_allclose(w.treatment_weights[t > 0], w.treatment_weights.shift(1)[t > 0])


def test_percentile_truncation_reports_counts_at_each_end(pt):
    raw = gt.IPTW("A ~ L + lag1_A + W + time").fit(pt, warn=False)
    w = gt.IPTW("A ~ L + lag1_A + W + time", truncate=(1, 99)).fit(pt, warn=False)
    lo, hi = np.quantile(raw.weights[pt.data.C == 0], [0.01, 0.99], method="inverted_cdf")
    assert w.truncation["lower"] == pytest.approx(lo) and w.truncation["upper"] == pytest.approx(hi)
    assert w.truncation["n_lower"] == int(((raw.weights < lo) & (pt.data.C == 0)).sum()) > 0
    assert w.truncation["n_upper"] == int(((raw.weights > hi) & (pt.data.C == 0)).sum()) > 0
    unc = (pt.data.C == 0).to_numpy()
    assert w.weights[unc].max() == pytest.approx(hi) and w.weights[unc].min() == pytest.approx(lo)
    assert "truncated" in repr(w)


def test_value_truncation_and_ambiguous_truncation_raise(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time", truncate_values=(0.5, 2.0)).fit(pt, warn=False)
    unc = (pt.data.C == 0).to_numpy()
    assert w.weights[unc].min() >= 0.5 and w.weights[unc].max() <= 2.0
    assert w.truncation["n_upper"] == int(((w.untruncated > 2) & unc).sum())
    with pytest.raises(ValueError, match="not both"):
        gt.IPTW("A ~ L", truncate=(1, 99), truncate_values=(0.1, 10)).fit(pt)
    with pytest.raises(ValueError, match="percentiles"):
        gt.IPTW("A ~ L", truncate=(1, 200)).fit(pt)


def test_summary_has_distribution_and_kish_ess_overall_and_by_time(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time").fit(pt, warn=False)
    s = w.summary()
    assert list(s.columns) == ["mean", "sd", "min", "p1", "p50", "p99", "max", "at_risk", "ess", "ess_ratio"]
    assert list(s.index) == ["overall", 0, 1, 2, 3]
    x = w.weights[(pt.data.C == 0) & (pt.data.time == 2)].to_numpy()
    assert s.loc[2, "ess"] == pytest.approx(x.sum() ** 2 / (x ** 2).sum())
    assert s.loc[2, "at_risk"] == len(x)
    assert abs(s.loc["overall", "mean"] - 1) < 0.05  # correct models: stabilised mean near 1


def test_extreme_weights_raise_fit_warning_naming_times_and_remedies():
    rng = np.random.default_rng(0)
    n = 800
    L = rng.normal(size=n)
    A = (rng.random(n) < expit(4 * L)).astype(float)
    d = pd.DataFrame({"id": np.arange(n), "time": 0, "L": L, "A": A, "Y": L + A + rng.normal(size=n)})
    pt = gt.PersonTime.from_long(d, id="id", time="time", treatment="A", covariates=["L"], outcome="Y",
                                 outcome_type="continuous")
    with pytest.warns(gt.FitWarning) as rec:
        gt.IPTW("A ~ L", "A ~ 1").fit(pt)
    msgs = [str(r.message) for r in rec]
    assert any("positivity" in m for m in msgs)
    ess = [m for m in msgs if "effective sample size" in m]
    assert ess and "time(s) 0" in ess[0]
    assert all(k in ess[0] for k in ("truncation", "gt.bootstrap", "g-formula"))


def test_balance_weighted_smd_near_zero_where_unweighted_is_large(pt):
    w = gt.IPTW("A ~ L + lag1_A + W + time").fit(pt, warn=False)
    b = w.balance()
    assert {"smd_unweighted", "smd_weighted"} <= set(b.columns)
    for t in range(4):
        row = b.loc[(t, "L")]
        assert abs(row["smd_unweighted"]) > 0.5
        assert abs(row["smd_weighted"]) < 0.15
    pooled = w.balance(by_time=False)
    assert set(pooled.index.get_level_values("covariate")) >= {"L", "lag1_A", "W", "time"}


def test_plot_returns_weight_and_love_plot_axes(pt):
    ax = gt.IPTW("A ~ L + lag1_A + W + time").fit(pt, warn=False).plot()
    assert len(ax) == 2 and ax[1].get_xlabel().startswith("|standardised")


def test_person_counts_equal_explicit_resample(pt):
    rng = np.random.default_rng(5)
    counts = rng.multinomial(pt.n_persons, np.ones(pt.n_persons) / pt.n_persons)
    spec = gt.IPTW("A ~ L + lag1_A + W + time", "A ~ lag1_A + W + time", censor_model="C ~ L + A + time",
                   truncate=(1, 99))
    a = spec.fit(pt.with_person_counts(counts), warn=False)
    rows = np.repeat(np.arange(pt.n_persons), counts)
    d = pd.concat([pt.data[pt.data.id == i].assign(id=k) for k, i in enumerate(pt.persons[rows])])
    big = gt.PersonTime.from_long(d, **pt.roles).add_history(*pt.history)
    b = spec.fit(big, warn=False)
    assert a.truncation["lower"] == pytest.approx(b.truncation["lower"])
    assert a.truncation["upper"] == pytest.approx(b.truncation["upper"])
    sa, sb = a.summary(), b.summary()
    np.testing.assert_allclose(sa[["mean", "p50", "max", "ess"]], sb[["mean", "p50", "max", "ess"]], rtol=1e-7)
    zero = counts[pt.person_index] == 0
    assert np.all(np.isfinite(a.weights[zero]))


def test_scikit_learn_classifier_as_treatment_model(pt):
    from sklearn.linear_model import LogisticRegression

    m = gt.Model("A ~ L + lag1_A + W + time", learner=LogisticRegression(C=1e6, max_iter=1000))
    w = gt.IPTW(m).fit(pt, warn=False)
    ref = gt.IPTW("A ~ L + lag1_A + W + time").fit(pt, warn=False)
    np.testing.assert_allclose(w.weights, ref.weights, rtol=1e-3)


def test_censor_model_without_censor_column_raises():
    pt = simulate_feedback(200, 1, censor=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no censor column"):
            gt.IPTW("A ~ L", censor_model="C ~ L").fit(pt)
