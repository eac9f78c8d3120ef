"""Adversarial scenarios over the public API, as an epidemiologist would use it.

Every estimator on data and options a user would reasonably pass: time values
not starting at 0, string ids, unsorted rows, extra columns, bool/int dtypes,
end-of-follow-up and survival outcomes, censoring and competing events,
categorical covariates, stochastic and custom regimes, the bootstrap in
parallel, summaries/plots free of NaN, no mutation of the caller's data, and
specific error messages for bad input.

The data are simulated here from small structural equations
(:func:`simulate`) that the fitted model families represent exactly:

* ``W ~ N(0, 1)`` at baseline;
* ``L_t = 0.5 L_{t-1} - 0.5 A_{t-1} + 0.3 W + N(0, 1)`` (``L_0 = 0.3 W + N(0, 1)``);
* ``B_t ~ Bern(expit(-0.3 + 0.6 L_t))``; optional 3-level ``M_t`` (multinomial logit in ``L_t``, ``A_{t-1}``);
* ``A_t ~ Bern(expit(-0.5 + 0.8 L_t + A_{t-1} + 0.3 B_t))`` (or set by a static regime);
* survival: hazard ``expit(-2.8 + 0.5 L_t - 0.7 A_t + 0.2 W)``; censoring ``expit(-3 + 0.3 L_t)``;
  competing event ``expit(-3.2 + 0.2 L_t)`` (competing before outcome within an interval);
* end of follow-up: ``Y = 1 + 0.5 L_{K-1} - cumsum(A) + 0.5 W + N(0, 1)`` (continuous)
  or ``Bern(expit(0.5 L_{K-1} - cumsum(A) + 0.5 W))`` (binary).
"""

from __future__ import annotations

import copy
import pickle
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import gtools as gt
from gtools.errors import DataError

matplotlib.use("Agg")


def expit(x):
    return 1 / (1 + np.exp(-x))


def simulate(n=600, K=4, seed=1, times=None, kind="survival", censor=False, competing=False,
             multinom=False, regime=None, return_truth=False):
    """Long data from the structural equations in the module docstring (vectorised)."""
    rng = np.random.default_rng(seed)
    times = list(range(K)) if times is None else list(times)
    K = len(times)
    W = rng.normal(size=n)
    L = np.zeros(n)
    A = np.zeros(n)
    cumA = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    risk = np.zeros(K)
    rows = []
    for k, tv in enumerate(times):
        L = (0.3 * W if k == 0 else 0.5 * L - 0.5 * A + 0.3 * W) + rng.normal(size=n)
        B = (rng.random(n) < expit(-0.3 + 0.6 * L)).astype(float)
        u = rng.random(n)
        if multinom:
            e = np.column_stack([np.zeros(n), 0.5 * L, -0.5 + 0.3 * A])
            p = np.exp(e) / np.exp(e).sum(axis=1, keepdims=True)
            M = (u > p[:, 0]).astype(float) + (u > p[:, 0] + p[:, 1])
        else:
            M = np.zeros(n)
        natural = (rng.random(n) < expit(-0.5 + 0.8 * L + 1.0 * A + 0.3 * B)).astype(float)
        A = natural if regime is None else np.full(n, float(regime))
        cumA += A
        h = expit(-2.8 + 0.5 * L - 0.7 * A + 0.2 * W)
        Y = (rng.random(n) < h).astype(float)
        C = (rng.random(n) < expit(-3 + 0.3 * L)).astype(float) if censor else np.zeros(n)
        D = (rng.random(n) < expit(-3.2 + 0.2 * L)).astype(float) if competing else np.zeros(n)
        frame = pd.DataFrame({"id": np.flatnonzero(alive), "time": tv, "W": W[alive], "L": L[alive],
                              "B": B[alive], "M": M[alive], "A": A[alive]})
        if kind == "survival":
            c, d = C[alive] == 1, (D[alive] == 1) & (C[alive] == 0)
            y = Y[alive].copy()
            y[c | d] = np.nan
            frame["Y"], frame["C"], frame["D"] = y, c.astype(float), d.astype(float)
            alive = alive & (C == 0) & (D == 0) & (Y == 0)
            risk[k] = 1 - alive.mean() if not (censor or competing) else np.nan
        rows.append(frame)
    df = pd.concat(rows).sort_values(["id", "time"]).reset_index(drop=True)
    if kind != "survival":
        lin = 1.0 + 0.5 * L - cumA + 0.5 * W
        y = lin + rng.normal(size=n) if kind == "continuous" else (rng.random(n) < expit(lin - 1)).astype(float)
        df["Y"] = np.where(df["time"] == times[-1], y[df["id"].to_numpy()], np.nan)
        if return_truth:
            return float(np.mean(lin if kind == "continuous" else expit(lin - 1)))
    elif return_truth:
        return risk
    for col, keep in (("C", censor), ("D", competing), ("M", multinom)):
        if not keep and col in df:
            df = df.drop(columns=col)
    return df


HIST = (gt.lag("A"), gt.lag("L"), gt.cumsum("A"))
ROLES = dict(id="id", time="time", treatment="A", covariates=["L", "B"], baseline=["W"], outcome="Y")


def make_pt(df, kind="survival", covariates=("L", "B"), hist=HIST, **kw):
    roles = {**ROLES, "covariates": list(covariates), **kw}
    return gt.PersonTime.from_long(df, **roles, outcome_type=kind).add_history(*hist)


COVS = ["L ~ lag1_L + lag1_A + W", "B ~ L"]
TRT = "A ~ L + B + lag1_A"


def gf_spec(**kw):
    args = dict(covariate_models=COVS, treatment_model=TRT, outcome_model="Y ~ A + L + W", n_samples=2000,
                seed=1)
    args.update(kw)
    return gt.GFormula(**args)


@pytest.fixture(scope="module")
def surv_df():
    return simulate(700, 4, seed=11)


@pytest.fixture(scope="module")
def surv_pt(surv_df):
    return make_pt(surv_df)


@pytest.fixture(scope="module")
def cens_pt():
    return make_pt(simulate(900, 4, seed=12, censor=True), censor="C")


@pytest.fixture(scope="module")
def cont_pt():
    return make_pt(simulate(1500, 3, seed=13, kind="continuous"), kind="continuous")


# ============================================================== ingestion variations
def test_time_values_1_to_4_give_the_same_estimates_as_0_to_3_labelled_by_the_original_times(surv_df):
    shifted = surv_df.assign(time=surv_df["time"] + 1)
    days = surv_df.assign(time=surv_df["time"] * 7)
    pt0, pt1, pt7 = make_pt(surv_df), make_pt(shifted), make_pt(days)
    assert list(pt1.time_values) == [1, 2, 3, 4] and list(pt7.time_values) == [0, 7, 14, 21]
    e0, e1, e7 = (gf_spec(n_samples=500).fit(p).estimates for p in (pt0, pt1, pt7))
    assert "risk[always,t=4]" in e1.index and "risk[always,t=21]" in e7.index
    np.testing.assert_array_equal(e0.to_numpy(), e1.to_numpy())
    np.testing.assert_array_equal(e0.to_numpy(), e7.to_numpy())
    w0 = gt.IPTW(TRT + " + time").fit(pt0).weights.to_numpy()
    np.testing.assert_allclose(gt.IPTW(TRT + " + time").fit(pt7).weights.to_numpy(), w0, rtol=1e-12)


def test_string_ids_unsorted_rows_extra_columns_and_dtypes_do_not_change_any_estimate(surv_df):
    messy = surv_df.copy()
    messy["id"] = "p" + messy["id"].astype(str).str.zfill(4)   # string ids, same sort order
    messy["A"] = messy["A"].astype(bool)                         # bool treatment
    messy["B"] = messy["B"].astype(np.int64)                     # integer covariate
    messy["site"] = "north"                                      # extra unused text column
    messy["note"] = np.nan                                       # extra all-missing column
    messy = messy.sample(frac=1.0, random_state=3)               # unsorted rows
    clean, dirty = make_pt(surv_df), make_pt(messy)
    assert dirty.data[dirty.id].is_monotonic_increasing
    specs = [
        gf_spec(n_samples=500),
        gt.MSM("Y ~ A + lag1_A + time", weights=gt.IPTW(TRT + " + time", numerator_model="A ~ lag1_A + time")),
        gt.CloneCensorWeight({"always": gt.regimes.always(), "never": gt.regimes.never()}, treatment_model=TRT),
    ]
    for spec in specs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gt.FitWarning)
            a, b = spec.fit(clean).estimates, spec.fit(dirty).estimates
        pd.testing.assert_series_equal(a, b, check_exact=False, rtol=1e-10)


# ============================================================== GFormula
def test_gformula_continuous_eof_mean_equals_the_closed_form_linear_gformula_and_the_truth(cont_pt):
    spec = gt.GFormula(covariate_models=["L ~ lag1_L + lag1_A + W", "B ~ L"], treatment_model=TRT,
                       outcome_model="Y ~ L + cumsum_A + W", n_samples=20_000, seed=3)
    res = spec.fit(cont_pt)
    est = res.estimates
    assert {"mean[always]", "mean[never]", "diff[always-never]"} <= set(est.index)
    # closed form: every model is linear, so E[Y^g] follows from the fitted coefficients and E[W], E[L_0]
    fit_l = dict(zip(res.models["covariates"][0].recipe.names, res.models["covariates"][0].params))
    fit_y = dict(zip(res.models["outcome"].recipe.names, res.models["outcome"].params))
    first = cont_pt.data[cont_pt.data["time"] == 0]
    K = cont_pt.n_times
    for name, a in (("always", 1.0), ("never", 0.0)):
        mL, mW = first["L"].mean(), first["W"].mean()
        for _t in range(1, K):
            mL = fit_l["Intercept"] + fit_l["lag1_L"] * mL + fit_l["lag1_A"] * a + fit_l["W"] * mW
        closed = fit_y["Intercept"] + fit_y["L"] * mL + fit_y["cumsum_A"] * a * K + fit_y["W"] * mW
        mc_se = res.summary().loc[name, "mc_se"]
        assert abs(est[f"mean[{name}]"] - closed) < 4 * mc_se + 1e-9, (name, est[f"mean[{name}]"], closed)
    # truth: E[Y^always] - E[Y^never] from the structural equations (large simulation, MC SE ~ 0.005)
    truth = (simulate(200_000, 3, seed=99, kind="continuous", regime=1, return_truth=True)
             - simulate(200_000, 3, seed=99, kind="continuous", regime=0, return_truth=True))
    # sampling SE of the contrast with 1500 persons: about 2.2 * 1/sqrt(1500) ~ 0.06 (outcome SD ~ 1.2, a
    # contrast of two standardised means); 4 SE
    assert abs(est["diff[always-never]"] - truth) < 0.25, (est["diff[always-never]"], truth)


def test_gformula_binary_eof_natural_course_matches_the_observed_mean():
    pt = make_pt(simulate(1500, 3, seed=14, kind="binary"), kind="binary")
    res = gt.GFormula(covariate_models=COVS, treatment_model=TRT, outcome_model="Y ~ L + cumsum_A + W",
                      n_samples=20_000, seed=4).fit(pt)
    obs = pt.data.loc[pt.last_rows, "Y"].mean()
    se = np.sqrt(obs * (1 - obs) / pt.n_persons)
    assert abs(res.estimates["risk[natural]"] - obs) < 3 * se
    assert res.estimates["risk[always]"] < res.estimates["risk[never]"]
    assert res.models["outcome"].family == "binomial"   # a formula string on a 0/1 outcome


def test_gformula_survival_censor_model_changes_only_the_natural_course_check(cens_pt):
    plain = gf_spec().fit(cens_pt)
    with_c = gf_spec(censor_model="C ~ L").fit(cens_pt)
    pd.testing.assert_series_equal(plain.estimates, with_c.estimates)
    nc = with_c.natural_course().table
    risk = nc.loc["risk"]
    last = risk.index[-1]
    assert risk.loc[last, "observed_lower"] <= risk.loc[last, "simulated"] <= risk.loc[last, "observed_upper"]


def test_gformula_natural_course_matches_observed_risk_on_data_from_the_fitted_model_family(surv_pt):
    res = gf_spec(n_samples=20_000).fit(surv_pt)
    truth_obs = 1 - np.cumprod(1 - surv_pt.data.groupby("time")["Y"].mean().to_numpy())  # KM, no censoring
    sim = res.risk["natural"].to_numpy()
    se = np.sqrt(truth_obs * (1 - truth_obs) / surv_pt.n_persons)
    assert np.all(np.abs(sim - truth_obs) < 3 * se), (sim, truth_obs)
    # and the "always" risk against the structural truth (SE of a g-formula risk here ~ 0.015)
    true_always = simulate(200_000, 4, seed=98, regime=1, return_truth=True)
    assert abs(res.risk["always"].iloc[-1] - true_always[-1]) < 0.05


def _no_covariate_comp_pt():
    df = simulate(2000, 4, seed=15, competing=True)
    return make_pt(df, competing="D")


def test_gformula_competing_total_and_censor_equal_the_closed_form_cumulative_incidence():
    pt = _no_covariate_comp_pt()
    base = dict(covariate_models=[], treatment_model=None, outcome_model="Y ~ A", n_samples=1000, seed=5,
                regimes={"always": gt.regimes.always(), "never": gt.regimes.never()})
    total = gt.GFormula(**base, competing_model="D ~ A").fit(pt)
    cens = gt.GFormula(**base, competing="censor").fit(pt)
    K = pt.n_times
    for name, a in (("always", 1.0), ("never", 0.0)):
        h = total.models["outcome"].predict_design(np.array([[1.0, a]]))[0]
        d = total.models["competing"].predict_design(np.array([[1.0, a]]))[0]
        k = np.arange(1, K + 1)
        cif = np.cumsum(((1 - d) * (1 - h)) ** (k - 1) * (1 - d) * h)
        np.testing.assert_allclose(total.risk[name].to_numpy(), cif, rtol=1e-10)
        np.testing.assert_allclose(cens.risk[name].to_numpy(), 1 - (1 - h) ** k, rtol=1e-10)
        assert np.all(cens.risk[name].to_numpy() > total.risk[name].to_numpy())


def test_gformula_competing_event_without_a_model_asks_for_one():
    pt = _no_covariate_comp_pt()
    with pytest.raises(ValueError, match="competing_model"):
        gt.GFormula(outcome_model="Y ~ A", regimes={"always": gt.regimes.always()}).fit(pt)


def test_gformula_multinomial_covariate_is_sampled_with_observed_level_shares():
    df = simulate(1500, 3, seed=16, multinom=True)
    pt = make_pt(df, covariates=("L", "B", "M"), hist=(*HIST, gt.lag("M")))
    spec = gt.GFormula(covariate_models=[*COVS, gt.Model("M ~ L + lag1_A", family="multinomial")],
                       treatment_model=TRT + " + C(M)", outcome_model="Y ~ A + L + C(M) + W", n_samples=20_000,
                       seed=6, keep_simulated="natural")
    res = spec.fit(pt)
    sim = res.simulated
    assert set(np.unique(sim["M"])) == {0.0, 1.0, 2.0}
    for t in (1, 2):
        obs = pt.data.loc[pt.data["time"] == t, "M"].value_counts(normalize=True).sort_index()
        got = sim.loc[sim["time"] == t, "M"].value_counts(normalize=True).sort_index()
        se = np.sqrt(obs * (1 - obs) / (pt.data["time"] == t).sum())
        assert np.all(np.abs(got.to_numpy() - obs.to_numpy()) < 3.5 * se.to_numpy() + 0.01), (t, got, obs)


def test_gformula_time_points_shorter_than_K_equals_fitting_the_truncated_data(surv_df):
    ctime = dict(covariate_models=["L ~ lag1_L + lag1_A + W + C(time)", "B ~ L"],
                 treatment_model=TRT + " + C(time)", outcome_model="Y ~ A + L + W + C(time)")
    full = make_pt(surv_df)
    short = make_pt(surv_df[surv_df["time"] < 2])
    a = gf_spec(**ctime, time_points=2).fit(full)
    b = gf_spec(**ctime).fit(short)
    assert list(a.risk.index) == [0, 1]
    pd.testing.assert_frame_equal(a.risk, b.risk, check_exact=False, rtol=1e-10)


def test_gformula_more_samples_than_persons_resamples_with_replacement():
    pt = make_pt(simulate(60, 3, seed=17))
    res = gf_spec(n_samples=3000, keep_simulated=True).fit(pt)
    assert res.simulated["sim_id"].nunique() == 3000
    first_w = res.simulated.loc[res.simulated["time"] == 0, "W"]
    assert first_w.nunique() <= 60 and set(first_w.round(12)) <= set(pt.data["W"].round(12))


def test_gformula_stochastic_and_custom_regimes_match_their_static_and_threshold_equivalents(surv_pt):
    regs = {"p1": gt.regimes.stochastic(1.0), "p0": gt.regimes.stochastic(0.0), "half": gt.regimes.stochastic(0.5),
            "always": gt.regimes.always(), "never": gt.regimes.never(),
            "custom": gt.regimes.custom(lambda s: (s["L"] > 0).astype(float), reads=["L"]),
            "threshold": gt.regimes.threshold("L", ">", 0.0)}
    risk = gf_spec(regimes=regs).fit(surv_pt).risk
    np.testing.assert_array_equal(risk["p1"], risk["always"])
    np.testing.assert_array_equal(risk["p0"], risk["never"])
    np.testing.assert_array_equal(risk["custom"], risk["threshold"])
    assert np.all((risk["always"] < risk["half"]) & (risk["half"] < risk["never"]))


def test_gformula_keep_simulated_risk_column_averages_to_the_estimate(surv_pt):
    res = gf_spec(keep_simulated="always").fit(surv_pt)
    sim = res.simulated
    last = sim["time"].max()
    np.testing.assert_allclose(sim.loc[sim["time"] == last, "risk"].mean(), res.risk["always"].iloc[-1],
                               rtol=1e-10)
    assert (sim["A"] == 1).all()
    with pytest.raises(ValueError, match="keep_simulated"):
        gf_spec(keep_simulated="nope").fit(surv_pt)


def test_gformula_same_seed_is_identical_and_different_seed_differs(surv_pt):
    a, b, c = gf_spec(seed=1).fit(surv_pt), gf_spec(seed=1).fit(surv_pt), gf_spec(seed=2).fit(surv_pt)
    pd.testing.assert_series_equal(a.estimates, b.estimates, check_exact=True)
    assert not np.allclose(a.estimates, c.estimates)
    g1, g2 = gf_spec(seed=np.random.default_rng(5)).fit(surv_pt), gf_spec(seed=np.random.default_rng(5)).fit(surv_pt)
    pd.testing.assert_series_equal(g1.estimates, g2.estimates, check_exact=True)


# ============================================================== IPTW / MSM
def _hand_unstabilised(pt, formula):
    fit = gt.Model(formula, family="binomial").fit(pt)
    p = fit.predict(pt.data)
    a = pt.data["A"].to_numpy()
    f = np.where(a == 1, 1 / p, 1 / (1 - p))
    return pd.Series(f, index=pt.data.index).groupby(pt.data["id"]).cumprod().to_numpy()


def test_iptw_unstabilised_weights_equal_the_hand_product_of_inverse_probabilities(surv_pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        w = gt.IPTW(TRT, stabilized=False).fit(surv_pt)
    np.testing.assert_allclose(w.weights.to_numpy(), _hand_unstabilised(surv_pt, TRT), rtol=1e-8)
    assert np.all(np.isfinite(w.estimates)) and np.all(w.weights >= 1)


def test_iptw_truncation_by_percentiles_and_by_values_clips_the_analysis_rows(surv_pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        raw = gt.IPTW(TRT, stabilized=False).fit(surv_pt).weights.to_numpy()
        pct = gt.IPTW(TRT, stabilized=False, truncate=(1, 99)).fit(surv_pt)
        val = gt.IPTW(TRT, stabilized=False, truncate_values=(1.5, 6.0)).fit(surv_pt)
    lo, hi = pct.truncation["lower"], pct.truncation["upper"]
    assert np.quantile(raw, 0.005) < lo < np.quantile(raw, 0.02) and np.quantile(raw, 0.98) < hi
    np.testing.assert_allclose(pct.weights.to_numpy(), np.clip(raw, lo, hi))
    np.testing.assert_allclose(val.weights.to_numpy(), np.clip(raw, 1.5, 6.0))
    assert val.truncation["n_upper"] == int((raw > 6.0).sum()) > 0
    with pytest.raises(ValueError, match="not both"):
        gt.IPTW(TRT, truncate=(1, 99), truncate_values=(0.1, 10)).fit(surv_pt)


def test_msm_saturated_in_time_unweighted_reproduces_kaplan_meier(cens_pt):
    res = gt.MSM("Y ~ C(time)", weights=None).fit(cens_pt)
    risk = res.risk({"any": gt.regimes.always()})["any"].to_numpy()
    d = cens_pt.data
    haz = d[d["C"] == 0].groupby("time")["Y"].mean().to_numpy()
    np.testing.assert_allclose(risk, 1 - np.cumprod(1 - haz), rtol=1e-6)


def test_msm_with_c_time_and_censoring_weights_equals_a_weighted_glm_by_hand(cens_pt):
    import statsmodels.api as sm

    w = gt.IPTW(TRT + " + time", numerator_model="A ~ lag1_A + time", censor_model="C ~ L + A")
    res = gt.MSM("Y ~ A + lag1_A + C(time)", weights=w,
                 regimes={"always": gt.regimes.always(), "never": gt.regimes.never()}).fit(cens_pt)
    d = cens_pt.data
    rows = (d["C"] == 0).to_numpy()
    X = np.column_stack([np.ones(rows.sum()), d.loc[rows, "A"], d.loc[rows, "lag1_A"]]
                        + [(d.loc[rows, "time"] == t).astype(float) for t in (1, 2, 3)])
    glm = sm.GLM(d.loc[rows, "Y"].to_numpy(), X, family=sm.families.Binomial(),
                 var_weights=res.weights.weights.to_numpy()[rows]).fit()
    np.testing.assert_allclose(res.params.to_numpy(), glm.params, rtol=1e-6, atol=1e-8)
    est = res.estimates
    assert np.all(np.isfinite(est)) and "rd[always-never,t=3]" in est.index
    assert est["risk[always,t=3]"] < est["risk[never,t=3]"]


def test_msm_end_of_follow_up_continuous_outcome_is_weighted_least_squares_on_last_rows(cont_pt):
    w = gt.IPTW(TRT + " + time")
    res = gt.MSM("Y ~ cumsum_A", weights=w, family="gaussian",
                 regimes={"always": gt.regimes.always(), "never": gt.regimes.never()}).fit(cont_pt)
    last = cont_pt.last_rows
    d = cont_pt.data[last]
    ww = np.sqrt(res.weights.weights.to_numpy()[last])
    X = np.column_stack([np.ones(len(d)), d["cumsum_A"]])
    beta = np.linalg.lstsq(X * ww[:, None], d["Y"].to_numpy() * ww, rcond=None)[0]
    np.testing.assert_allclose(res.params.to_numpy(), beta, rtol=1e-8)
    est = res.estimates
    K = cont_pt.n_times
    np.testing.assert_allclose(est["diff[always-never,t=2]"], beta[1] * K, rtol=1e-8)
    # the truth of the MSM contrast: -K (the cumsum_A coefficient) plus the effect through L (0.5 * -0.5 * ...)
    assert np.all(np.isfinite(est))


def test_missing_values_in_an_undeclared_model_column_are_a_data_error_naming_it(surv_df):
    df = surv_df.copy()
    df["Z"] = 1.0
    df.loc[df.index[:7], "Z"] = np.nan
    pt = make_pt(df)
    for fit in (lambda: gt.IPTW("A ~ L + Z").fit(pt),
                lambda: gt.MSM("Y ~ A + Z").fit(pt),
                lambda: gf_spec(outcome_model="Y ~ A + Z").fit(pt)):
        with pytest.raises(DataError, match="Z"):
            fit()


# ============================================================== CloneCensorWeight
def test_ccw_static_regime_with_censor_model_equals_the_hand_weighted_hazards(cens_pt):
    spec = gt.CloneCensorWeight({"always": gt.regimes.always(), "never": gt.regimes.never()},
                                treatment_model=TRT, censor_model="C ~ L + A")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        res = spec.fit(cens_pt)
    d = cens_pt.data
    p = gt.Model(TRT).fit(cens_pt).predict(d)
    q = gt.Model("C ~ L + A").fit(cens_pt).predict(d)
    for name, g in (("always", 1.0), ("never", 0.0)):
        follow = (d["A"] == g).astype(float).groupby(d["id"]).cumprod().to_numpy() == 1
        pg = np.where(g == 1, p, 1 - p)
        cf = np.where(d["C"] == 1, 1.0, 1 / (1 - q))
        W = pd.Series(1 / pg * cf, index=d.index).groupby(d["id"]).cumprod().to_numpy()
        use = follow & (d["C"] == 0).to_numpy()
        num = pd.Series(W * d["Y"].fillna(0).to_numpy())[use].groupby(d["time"][use]).sum()
        den = pd.Series(W)[use].groupby(d["time"][use]).sum()
        np.testing.assert_allclose(res.risk[name].to_numpy(), 1 - np.cumprod(1 - (num / den).to_numpy()),
                                   rtol=1e-8)
    assert np.all(np.isfinite(res.estimates))


# ============================================================== GEstimation
def _snmm_data(n, seed, K=3):
    """L_t = L_{t-1} - A_{t-1} + 0.3 W + e; Y = W + sum_t A_t (1 + 0.5 t) + 0.5 sum_t L_t + e.

    A final interval of treatment at t (later treatment 0) changes Y by 1 + 0.5 t directly and by
    0.5 * (-1) * (K-1-t) through the later L's: blip psi = (1 - 0.5 (K-1)) + (0.5 + 0.5) t, i.e.
    ``A`` = 0 and ``A:time`` = 1 for K = 3, with ``time`` the interval index 0..K-1.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=n)
    L = 0.3 * W + rng.normal(size=n)
    A = np.zeros(n)
    Y = W.copy()
    frames = []
    for t in range(K):
        if t:
            L = L - A + 0.3 * W + rng.normal(size=n)
        A = (rng.random(n) < expit(-0.3 + 0.7 * L + 0.5 * A)).astype(float)
        Y = Y + A * (1.0 + 0.5 * t) + 0.5 * L
        frames.append(pd.DataFrame({"id": np.arange(n), "time": t + 1, "W": W, "L": L, "A": A}))
    df = pd.concat(frames).sort_values(["id", "time"]).reset_index(drop=True)
    y = Y + rng.normal(size=n)
    df["Y"] = np.where(df["time"] == K, y[df["id"].to_numpy()], np.nan)
    return df


@pytest.fixture(scope="module")
def snmm_pt():
    df = _snmm_data(3000, 21)
    return gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], baseline=["W"],
                                   outcome="Y", outcome_type="continuous").add_history(gt.lag("A"))


def test_gestimation_time_varying_blip_recovers_the_truth_with_times_1_to_3(snmm_pt):
    res = gt.GEstimation("A + A:time", treatment_model="A ~ L + lag1_A", outcome_model="Y ~ L + W + time").fit(snmm_pt)
    truth = pd.Series({"A": 0.0, "A:time": 1.0})
    se = res.se
    assert np.all(np.abs(res.params - truth) < 2.5 * se), (res.params, se)
    assert np.all(np.isfinite(res.summary().to_numpy()))


def test_gestimation_binary_outcome_on_the_additive_scale_recovers_the_risk_difference():
    rng = np.random.default_rng(22)
    n = 4000
    L = (rng.random(n) < 0.5).astype(float)
    frames, S, SL = [], np.zeros(n), np.zeros(n)
    for t in range(3):
        if t:
            L = (rng.random(n) < expit(-0.5 + L)).astype(float)
        A = (rng.random(n) < expit(-0.5 + L)).astype(float)
        S, SL = S + A, SL + L
        frames.append(pd.DataFrame({"id": np.arange(n), "time": t, "L": L, "A": A}))
    df = pd.concat(frames).sort_values(["id", "time"]).reset_index(drop=True)
    y = (rng.random(n) < 0.15 + 0.1 * S + 0.1 * SL).astype(float)
    df["Y"] = np.where(df["time"] == 2, y[df["id"].to_numpy()], np.nan)
    pt = gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], outcome="Y",
                                 outcome_type="binary")
    res = gt.GEstimation("A", treatment_model="A ~ L").fit(pt)
    assert abs(res.params["A"] - 0.1) < 2.5 * res.se["A"], (res.params["A"], res.se["A"])


# ============================================================== QLearning
def _two_stage(n, seed):
    """X1 = 0.5 X0 + e (not affected by A0); Y = X0 + X1 + A0 (0.5 + X0) + A1 (1 - X1) + e.

    True blips: stage 1 (0.5, 1), stage 2 (1, -1); dWOLS with correct propensities is consistent.
    """
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=n)
    A0 = (rng.random(n) < expit(0.5 * X0)).astype(float)
    X1 = 0.5 * X0 + rng.normal(size=n)
    A1 = (rng.random(n) < expit(0.5 * X1)).astype(float)
    Y = X0 + X1 + A0 * (0.5 + X0) + A1 * (1 - X1) + rng.normal(size=n)
    return pd.concat([pd.DataFrame({"id": np.arange(n), "visit": 1, "X": X0, "A": A0, "Y": np.nan}),
                      pd.DataFrame({"id": np.arange(n), "visit": 2, "X": X1, "A": A1, "Y": Y})])


QL_FORMULAS = {1: "Y ~ X + A + A:X", 2: "Y ~ X + lag1_X + lag1_A + lag1_A:lag1_X + A + A:X"}


@pytest.fixture(scope="module")
def ql_pt():
    df = _two_stage(2000, 23)
    df["stage"] = df["visit"] * 10
    return gt.PersonTime.from_long(df, id="id", time="visit", treatment="A", covariates=["X"], outcome="Y",
                                   outcome_type="continuous").add_history(gt.lag("A"), gt.lag("X"))


def test_qlearning_dict_formulas_by_stage_recover_the_true_blips(ql_pt):
    res = gt.QLearning(QL_FORMULAS, method="dwols", treatment_model={1: "A ~ X", 2: "A ~ X"}).fit(ql_pt)
    tab = res.blip.set_index(["stage", "term"])
    truth = {(1, "A"): 0.5, (1, "A:X"): 1.0, (2, "A"): 1.0, (2, "A:X"): -1.0}
    for k, v in truth.items():
        assert abs(tab.loc[k, "estimate"] - v) < 2.5 * tab.loc[k, "se"], (k, tab.loc[k])
    assert np.all(np.isfinite(res.estimates))


def test_qlearning_stage_column_gives_the_same_fit_as_the_time_index(ql_pt):
    by_time = gt.QLearning(QL_FORMULAS, method="dwols", treatment_model="A ~ X").fit(ql_pt)
    by_col = gt.QLearning({10: QL_FORMULAS[1], 20: QL_FORMULAS[2]}, stage="stage", method="dwols",
                          treatment_model="A ~ X").fit(ql_pt)
    np.testing.assert_allclose(by_col.estimates.to_numpy(), by_time.estimates.to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="no entry for stage"):
        gt.QLearning({10: QL_FORMULAS[1]}, stage="stage").fit(ql_pt)


# ============================================================== every estimator: shared contract
def _cases():
    """(name, spec factory, PersonTime fixture name)."""
    sr = {"always": gt.regimes.always(), "never": gt.regimes.never()}
    return [
        ("gformula", lambda: gf_spec(n_samples=300), "surv_pt"),
        ("gformula_eof", lambda: gf_spec(outcome_model="Y ~ L + cumsum_A + W", n_samples=300), "cont_pt"),
        ("iptw", lambda: gt.IPTW(TRT + " + time", censor_model="C ~ L"), "cens_pt"),
        ("msm", lambda: gt.MSM("Y ~ A + lag1_A + C(time)", weights=gt.IPTW(TRT + " + time"), regimes=sr),
         "surv_pt"),
        ("ccw", lambda: gt.CloneCensorWeight({"when_sick": gt.regimes.threshold("L", ">", 0.5, absorbing=True),
                                              "never": gt.regimes.never()}, treatment_model=TRT,
                                             censor_model="C ~ L"), "cens_pt"),
        ("gestimation", lambda: gt.GEstimation("A + A:time", treatment_model="A ~ L + lag1_A"), "snmm_pt"),
        ("gestimation_survival", lambda: gt.GEstimation("A", treatment_model=TRT, censor_model="C ~ L"), "cens_pt"),
        ("qlearning", lambda: gt.QLearning(QL_FORMULAS, method="dwols", treatment_model="A ~ X"), "ql_pt"),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


def _fit(spec, pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        return spec.fit(pt)


@pytest.mark.parametrize("name,factory,ptname", CASES, ids=IDS)
def test_estimates_and_summary_are_free_of_nan(name, factory, ptname, request):
    pt = request.getfixturevalue(ptname)
    res = _fit(factory(), pt)
    est = res.estimates
    assert isinstance(est, pd.Series) and len(est) and np.all(np.isfinite(est.to_numpy(dtype=float)))
    summ = res.summary()
    assert isinstance(summ, pd.DataFrame) and len(summ)
    num = summ.select_dtypes("number")
    if name == "qlearning":  # value rows have no SE by design; the blip rows must be complete
        num = num.loc[[i for i in num.index if i.startswith("blip")]]
    if name == "ccw":  # per-time rows have no "persons", the overall row no hazard, by design
        by_time = num.drop(index="overall", level="time")
        assert not by_time.drop(columns="persons").isna().any().any(), by_time
        num = num.xs("overall", level="time").drop(columns="hazard")
    assert not num.isna().any().any(), summ
    assert repr(res)


@pytest.mark.parametrize("name,factory,ptname", CASES, ids=IDS)
def test_fitting_never_mutates_the_callers_dataframe_or_persontime(name, factory, ptname, request):
    pt = request.getfixturevalue(ptname)
    data0, w0, hist0, roles0 = pt.data.copy(deep=True), copy.deepcopy(pt.weights), list(pt.history), pt.roles
    spec = factory()
    spec0 = copy.deepcopy(spec.__dict__)
    _fit(spec, pt)
    _fit(spec, pt.with_person_counts(np.random.default_rng(0).integers(0, 3, pt.n_persons)))
    pd.testing.assert_frame_equal(pt.data, data0)
    assert pt.weights is None and w0 is None and pt.history == hist0 and pt.roles == roles0
    assert repr(spec.__dict__) == repr(spec0)


def test_from_long_never_mutates_the_callers_dataframe(surv_df):
    df = surv_df.sample(frac=1.0, random_state=1)
    df0 = df.copy(deep=True)
    make_pt(df)
    pd.testing.assert_frame_equal(df, df0)


@pytest.mark.parametrize("name,factory,ptname", CASES, ids=IDS)
def test_specs_and_estimates_pickle(name, factory, ptname, request):
    pt = request.getfixturevalue(ptname)
    spec = factory()
    res = _fit(spec, pt)
    spec2 = pickle.loads(pickle.dumps(spec))
    pd.testing.assert_series_equal(_fit(spec2, pt).estimates, res.estimates)
    pd.testing.assert_series_equal(pickle.loads(pickle.dumps(res.estimates)), res.estimates)


@pytest.mark.parametrize("name,factory,ptname", CASES, ids=IDS)
def test_bootstrap_with_two_jobs_gives_the_same_replicates_as_one(name, factory, ptname, request):
    pt = request.getfixturevalue(ptname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        one = gt.bootstrap(factory(), pt, n_boot=4, n_jobs=1, seed=3)
        two = gt.bootstrap(factory(), pt, n_boot=4, n_jobs=2, seed=3)
    assert len(one.failures) == 0, one.failures
    pd.testing.assert_frame_equal(one.replicates, two.replicates)
    assert np.all(np.isfinite(one.se.to_numpy()))


@pytest.mark.parametrize("name,factory,ptname", [c for c in CASES if c[0] in
                                                 ("gformula", "gformula_eof", "iptw", "msm", "ccw")],
                         ids=["gformula", "gformula_eof", "iptw", "msm", "ccw"])
def test_plot_returns_a_matplotlib_axis(name, factory, ptname, request):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    pt = request.getfixturevalue(ptname)
    ax = _fit(factory(), pt).plot()
    first = np.ravel(ax)[0] if isinstance(ax, np.ndarray) else ax
    assert isinstance(first, Axes)
    plt.close("all")


# ============================================================== bad input
@pytest.mark.parametrize("name,factory,ptname", [
    ("gformula", lambda: gf_spec(outcome_model="Y ~ A + Qmissing"), "surv_pt"),
    ("gformula_cov", lambda: gf_spec(covariate_models=["L ~ lag1_Qmissing"]), "surv_pt"),
    ("iptw", lambda: gt.IPTW("A ~ L + Qmissing"), "surv_pt"),
    ("msm", lambda: gt.MSM("Y ~ A + Qmissing", weights=gt.IPTW(TRT)), "surv_pt"),
    ("ccw", lambda: gt.CloneCensorWeight({"never": gt.regimes.never()}, treatment_model="A ~ Qmissing"), "surv_pt"),
    ("gestimation", lambda: gt.GEstimation("A + A:Qmissing", treatment_model="A ~ L"), "snmm_pt"),
    ("gestimation_trt", lambda: gt.GEstimation("A", treatment_model="A ~ Qmissing"), "snmm_pt"),
    ("qlearning", lambda: gt.QLearning("Y ~ X + A + A:Qmissing"), "ql_pt"),
])
def test_a_formula_naming_a_missing_column_is_a_data_error_naming_it(name, factory, ptname, request):
    pt = request.getfixturevalue(ptname)
    with pytest.raises(DataError, match="Qmissing"):
        _fit(factory(), pt)


@pytest.mark.parametrize("name,factory,ptname,pattern", [
    ("ccw_on_eof", lambda: gt.CloneCensorWeight({"never": gt.regimes.never()}, treatment_model=TRT), "cont_pt",
     "CloneCensorWeight.*survival"),
    ("qlearning_on_survival", lambda: gt.QLearning("Y ~ L + A"), "surv_pt", "Q-learning.*end-of-follow-up"),
    ("gformula_time_points_on_eof", lambda: gf_spec(outcome_model="Y ~ L + A", time_points=2), "cont_pt",
     "end-of-follow-up"),
    ("gformula_competing_model_without_competing_role", lambda: gf_spec(competing_model="D ~ L"), "surv_pt",
     "competing"),
    ("msm_binomial_on_continuous", lambda: gt.MSM("Y ~ cumsum_A"), "cont_pt", "0/1 outcome"),
    ("censor_model_without_censor_role", lambda: gt.IPTW(TRT, censor_model="C ~ L"), "surv_pt", "censor"),
])
def test_an_estimator_on_the_wrong_kind_of_outcome_says_so(name, factory, ptname, pattern, request):
    pt = request.getfixturevalue(ptname)
    with pytest.raises(ValueError, match=pattern):
        _fit(factory(), pt)


@pytest.mark.parametrize("regime", [gt.regimes.threshold("Zunknown", ">", 0.0),
                                    gt.regimes.custom(lambda s: s["Zunknown"] > 0)], ids=["threshold", "custom"])
def test_a_regime_reading_an_unknown_column_is_a_data_error_naming_it(regime, surv_pt, snmm_pt, ql_pt):
    fits = [
        lambda: gf_spec(regimes={"z": regime}).fit(surv_pt),
        lambda: gt.CloneCensorWeight({"z": regime}, treatment_model=TRT).fit(surv_pt),
        lambda: gt.MSM("Y ~ A", regimes={"z": regime}).fit(surv_pt),
        lambda: gt.GEstimation("A", treatment_model="A ~ L").fit(snmm_pt).effect(regime, gt.regimes.never()),
        lambda: gt.QLearning(QL_FORMULAS, treatment_model="A ~ X").fit(ql_pt).compare({"z": regime}),
    ]
    for fit in fits:
        with pytest.raises(ValueError, match="Zunknown"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", gt.FitWarning)
                fit()


# ============================================================== more ingestion and regime edge cases
def test_categorical_and_nullable_dtypes_give_the_same_estimates_as_plain_numbers(surv_df):
    odd = surv_df.assign(id=surv_df["id"].astype("category"), A=surv_df["A"].astype("Int64"),
                         B=surv_df["B"].astype("boolean"), L=surv_df["L"].astype("Float64"))
    a = gf_spec(n_samples=500).fit(make_pt(surv_df)).estimates
    b = gf_spec(n_samples=500).fit(make_pt(odd)).estimates   # a category id sorts by its categories, not as text
    pd.testing.assert_series_equal(a, b)


def test_end_of_follow_up_outcome_repeated_on_every_row_equals_last_row_only(cont_pt):
    every = cont_pt.data.copy()
    every["Y"] = every.groupby("id")["Y"].transform("last")
    pt_every = make_pt(every.drop(columns=["lag1_A", "lag1_L", "cumsum_A"]), kind="continuous")
    for spec in (gt.GEstimation("A", treatment_model=TRT),
                 gt.MSM("Y ~ cumsum_A", weights=gt.IPTW(TRT), family="gaussian"),
                 gf_spec(outcome_model="Y ~ L + cumsum_A + W", n_samples=500)):
        pd.testing.assert_series_equal(_fit(spec, pt_every).estimates, _fit(spec, cont_pt).estimates)


@pytest.mark.parametrize("bad", [lambda s: np.full(s.n, np.nan), lambda s: np.ones(3)], ids=["nan", "length"])
def test_a_regime_returning_nan_or_the_wrong_length_is_an_error_not_a_nan_estimate(bad, surv_pt):
    reg = gt.regimes.custom(bad, name="broken")
    with pytest.raises(ValueError, match="broken"):
        gf_spec(regimes={"b": reg}).fit(surv_pt)
    with pytest.raises(ValueError, match="broken"):
        gt.CloneCensorWeight({"b": reg}, treatment_model=TRT).fit(surv_pt)


def test_msm_standardisation_of_a_dynamic_regime_points_to_clone_censor_weight(surv_pt):
    with pytest.raises(ValueError, match="CloneCensorWeight"):
        gt.MSM("Y ~ A", regimes={"th": gt.regimes.threshold("L", ">", 0.0)}).fit(surv_pt)


def test_text_baseline_category_in_c_terms_is_accepted(surv_df):
    df = surv_df.assign(sex=np.where(surv_df["W"] > 0, "F", "M"))
    pt = gt.PersonTime.from_long(df, **{**ROLES, "baseline": ["W", "sex"]}, outcome_type="survival")
    coded = make_pt(df.assign(sex=(df["sex"] == "M").astype(float)))
    a = gt.IPTW("A ~ L + C(sex)").fit(pt.add_history(*HIST)).weights
    np.testing.assert_allclose(a, gt.IPTW("A ~ L + C(sex)").fit(coded).weights)
