"""The column kernels (gtools._colglm) against the materialised design, and the memory they save.

Fitting and predicting from the table's columns must give the numbers of the
design matrix (to rounding) for every factor kind (powers, indicators,
splines, interactions) over float64 and int64 columns; and a weights + MSM
fit must stay within a stated multiple of the data's size.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import gtools as gt


def _panel(n_persons: int, K: int = 8, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=n_persons)
    L, A = np.zeros(n_persons), np.zeros(n_persons)
    alive = np.ones(n_persons, dtype=bool)
    parts = []
    for t in range(K):
        L = 0.5 * L - 0.6 * A + 0.3 * W + rng.normal(size=n_persons)
        A = (rng.random(n_persons) < 1 / (1 + np.exp(-(-0.3 + 0.8 * L + 0.9 * A)))).astype(float)
        c = rng.random(n_persons) < 1 / (1 + np.exp(-(-3.5 + 0.4 * L)))
        y = rng.random(n_persons) < 1 / (1 + np.exp(-(-3.8 + 0.5 * L - 0.3 * A)))
        idx = np.flatnonzero(alive)
        parts.append(pd.DataFrame({"id": idx, "time": t, "W": W[idx], "L": L[idx], "A": A[idx],
                                   "C": c[idx].astype(float),
                                   "Y": np.where(c[idx], np.nan, y[idx].astype(float))}))
        alive &= ~c & ~y
    return pd.concat(parts).sort_values(["id", "time"]).reset_index(drop=True)


def _pt(df):
    return gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], baseline=["W"],
                                   outcome="Y", censor="C").add_history(gt.lag("A"), gt.cumsum("A"))


FORMULA = "A ~ L + I(L**2) + ns(W, df=3) + C(time) + lag1_A:time + L:C(lag1_A) + ns(time, df=2):L"


def test_predictions_from_columns_equal_the_design_matrix_for_every_factor_kind():
    pt = _pt(_panel(600))
    assert pt.data["time"].dtype == np.int64  # an int64 column read in place by the kernels
    fitted = gt.Model(FORMULA).fit(pt)
    X = fitted.spec.design(pt).X  # materialised through Recipe.matrix
    np.testing.assert_allclose(fitted.predict_table(pt), fitted.predict_design(X), rtol=1e-12, atol=1e-14)


def test_column_irls_equals_statsmodels_glm_on_the_materialised_design():
    pt = _pt(_panel(600))
    fitted = gt.Model(FORMULA).fit(pt)
    d = fitted.spec.design(pt)
    ref = sm.GLM(d.y, d.X, family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(fitted.params, ref.params, rtol=1e-7, atol=1e-9)


def test_msm_from_columns_equals_statsmodels_cluster_sandwich_with_frequency_weights():
    pt = _pt(_panel(500))
    rng = np.random.default_rng(0)
    counts = rng.multinomial(pt.n_persons, np.full(pt.n_persons, 1 / pt.n_persons)).astype(float)
    rep = pt.with_person_counts(counts)
    w = gt.IPTW("A ~ L + lag1_A + W + C(time)", "A ~ lag1_A + W + C(time)", censor_model="C ~ L + lag1_A + time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = gt.MSM("Y ~ cumsum_A + W + ns(time, df=3)", weights=w).fit(rep)
        wr = w.fit(rep, warn=False)
    d = gt.Model("Y ~ cumsum_A + W + ns(time, df=3)").design(rep)
    rows = d.usable & (rep.weights > 0) & (rep.data["C"].to_numpy() != 1)
    ww = (wr.weights.to_numpy() * rep.weights)[rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.GLM(d.y[rows], d.X[rows], family=sm.families.Binomial(), var_weights=ww).fit(
            cov_type="cluster", cov_kwds={"groups": rep.person_index[rows], "use_correction": False})
    np.testing.assert_allclose(res.params.to_numpy(), ref.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res.bse.to_numpy(), ref.bse, rtol=1e-6)


def test_weights_components_recomputed_on_demand_multiply_to_the_weights():
    pt = _pt(_panel(800))
    wr = gt.IPTW("A ~ L + lag1_A + W + time", "A ~ lag1_A + W + time", censor_model="C ~ L + lag1_A + time",
                 truncate=(1, 99)).fit(pt, warn=False)
    raw = wr.treatment_weights.to_numpy() * wr.censoring_weights.to_numpy()
    np.testing.assert_allclose(wr.untruncated.to_numpy(), raw, rtol=1e-14)
    lo, hi = wr.truncation["lower"], wr.truncation["upper"]
    unc = pt.data["C"].to_numpy() != 1
    np.testing.assert_allclose(wr.weights.to_numpy()[unc], np.clip(raw[unc], lo, hi), rtol=1e-14)
    assert wr.truncation["n_upper"] == int(((raw > hi) & unc).sum()) > 0


@pytest.mark.parametrize("n_persons", [20_000])
def test_weights_and_msm_peak_memory_is_at_most_twice_the_data(n_persons):
    """The issue's aim: peak at most 2x the data. Measured: the whole analysis (table, history, four
    weight models, the MSM and its sandwich) peaks at 1.90x the input at 34k, 137k and 681k rows
    (tracemalloc); the bound 2.0 is the aim itself. The statsmodels formula-API version of the same
    analysis peaks at about 40x (benchmarks/msm_scaling.py)."""
    df = _panel(n_persons, K=8)
    data = df.memory_usage(deep=True).sum()
    _pt(_panel(200))  # compile outside the measurement
    spec = dict(treatment_model="A ~ L + lag1_A + W + time", numerator_model="A ~ lag1_A + W + time",
                censor_model="C ~ L + lag1_A + W + time", censor_numerator_model="C ~ lag1_A + W + time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt.MSM("Y ~ cumsum_A + W + time", weights=gt.IPTW(**spec)).fit(_pt(_panel(300)))
        tracemalloc.start()
        res = gt.MSM("Y ~ cumsum_A + W + time", weights=gt.IPTW(**spec)).fit(_pt(df))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert np.all(np.isfinite(res.bse))
    assert peak / data <= 2.0, f"peak {peak / 2**20:.1f} MB is {peak / data:.2f}x the data ({data / 2**20:.1f} MB)"


def test_gaussian_fit_from_columns_equals_weighted_least_squares_with_residual_sd():
    pt = _pt(_panel(700))
    counts = np.random.default_rng(5).poisson(1.0, pt.n_persons).astype(float)
    rep = pt.with_person_counts(counts)
    fitted = gt.Model("L ~ lag1_A + W + ns(time, df=3) + I(W**2)", family="gaussian").fit(rep)
    d = fitted.spec.design(rep)
    keep = rep.weights > 0
    ref = sm.WLS(d.y[keep], d.X[keep], weights=rep.weights[keep]).fit()
    np.testing.assert_allclose(fitted.params, ref.params, rtol=1e-9, atol=1e-12)
    # residual SD on the frequency-weighted rows: sum w r^2 / (sum w - rank)
    r = d.y[keep] - d.X[keep] @ ref.params
    sd = np.sqrt(np.sum(rep.weights[keep] * r ** 2) / (rep.weights[keep].sum() - d.X.shape[1]))
    assert fitted.scale == pytest.approx(sd, rel=1e-9)
    tn = gt.Model("L ~ lag1_A + W", family="truncated_normal").fit(pt)
    L = pt.data["L"].to_numpy()
    assert tn.bounds == (L.min(), L.max())
