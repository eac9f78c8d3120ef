"""The model layer: formulas, families, lean IRLS against statsmodels, warnings and errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import gtools as gt


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(3)
    n, k = 600, 5
    rows = []
    for i in range(n):
        w = rng.normal()
        a_prev, l1_prev = 0.0, 0.0
        for t in range(k):
            l1 = float(rng.random() < 1 / (1 + np.exp(-(-0.5 + 0.8 * a_prev + 0.6 * l1_prev))))
            l2 = 0.5 * l1 - 0.4 * a_prev + 0.3 * w + rng.normal()
            a = float(rng.random() < 1 / (1 + np.exp(-(-0.3 + 0.9 * l1 + 0.5 * l2 + 1.2 * a_prev))))
            cat = float(rng.choice(3, p=[0.5, 0.3, 0.2]))
            count = float(rng.poisson(np.exp(0.2 + 0.3 * l1)))
            y = float(rng.random() < 1 / (1 + np.exp(-(-2.5 - 0.5 * a + 0.4 * l2))))
            rows.append((i, t, w, l1, l2, a, cat, count, y))
            if y:
                break
            a_prev, l1_prev = a, l1
    df = pd.DataFrame(rows, columns=["id", "time", "W", "L1", "L2", "A", "K", "N", "Y"])
    pt = gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L1", "L2", "K", "N"],
                                 baseline=["W"], outcome="Y")
    return pt.add_history(gt.lag("A"), gt.lag("L1"))


def _by_name(fitted, sm_params):
    return max(abs(fitted.coef[k] - sm_params[k]) for k in sm_params.index)


@pytest.mark.parametrize("family,sm_family", [("binomial", sm.families.Binomial()),
                                              ("poisson", sm.families.Poisson()),
                                              ("gaussian", sm.families.Gaussian())])
def test_lean_irls_agrees_with_statsmodels_glm_to_1e8(panel, family, sm_family):
    resp = {"binomial": "A", "poisson": "N", "gaussian": "L2"}[family]
    rhs = "L1 + L2 + lag1_A + W + C(time) + L1:W + I(L2**2)" if resp != "L2" else "L1 + lag1_A + W + C(time)"
    f = gt.Model(f"{resp} ~ {rhs}", family=family).fit(panel)
    ref = smf.glm(f"{resp} ~ {rhs}", data=panel.data, family=sm_family).fit(tol=1e-12)
    assert _by_name(f, ref.params) < 1e-8


def test_frequency_weights_equal_fitting_on_duplicated_persons(panel):
    counts = np.random.default_rng(5).poisson(1.0, panel.n_persons).astype(float)
    f = gt.Model("A ~ L1 + L2 + lag1_A + W", family="binomial").fit(panel.with_person_counts(counts))
    rows = np.repeat(np.arange(panel.n_rows), counts[panel.person_index].astype(int))
    dup = panel.data.iloc[rows]
    ref = smf.glm("A ~ L1 + L2 + lag1_A + W", data=dup, family=sm.families.Binomial()).fit(tol=1e-12)
    assert _by_name(f, ref.params) < 1e-8


def test_design_matrix_is_built_once_per_table_and_reused_by_weighted_copies(panel):
    m = gt.Model("A ~ L1 + L2 + lag1_A", family="binomial")
    d1 = m.design(panel)
    d2 = m.design(panel.with_person_counts(np.ones(panel.n_persons)))
    assert d1 is d2


def test_gaussian_model_exposes_residual_sd_and_recipe(panel):
    f = gt.Model("L2 ~ L1 + lag1_A + W", family="gaussian").fit(panel)
    ref = smf.ols("L2 ~ L1 + lag1_A + W", data=panel.data).fit()
    assert f.scale == pytest.approx(np.sqrt(ref.scale), rel=1e-10)
    assert f.recipe.names == ["Intercept", "L1", "lag1_A", "W"]
    X = f.design(panel.data)
    np.testing.assert_allclose(f.predict(panel.data), X @ f.params)


def test_multinomial_matches_statsmodels_mnlogit(panel):
    f = gt.Model("K ~ L1 + L2 + W", family="multinomial").fit(panel)
    ref = smf.mnlogit("K ~ L1 + L2 + W", data=panel.data).fit(disp=0, tol=1e-12)
    np.testing.assert_allclose(f.params, ref.params.to_numpy(), atol=1e-6)
    p = f.predict(panel.data)
    assert p.shape == (panel.n_rows, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_unknown_column_in_formula_raises_data_error_listing_available_columns(panel):
    with pytest.raises(gt.DataError) as exc:
        gt.Model("A ~ L1 + lactate").fit(panel)
    msg = str(exc.value)
    assert "lactate" in msg and "available" in msg and "L2" in msg


def test_missing_value_in_model_column_raises_data_error_with_ids(panel):
    df = panel.data.copy()
    df.loc[3, "L2"] = np.nan
    pt = gt.PersonTime(df, **panel.roles)
    with pytest.raises(gt.DataError) as exc:
        gt.Model("A ~ L2").fit(pt)
    assert "L2" in str(exc.value) and f"id={df.loc[3, 'id']}" in str(exc.value)


def test_singular_design_warns_naming_the_model(panel):
    with pytest.warns(gt.FitWarning, match="singular design"):
        gt.Model("A ~ L1 + time + C(time)", family="binomial", name="treatment model").fit(panel)


def test_separation_warns(panel):
    df = panel.data.copy()
    df["S"] = df["A"] * 2.0 - 1.0  # perfectly predicts A
    pt = gt.PersonTime(df, **panel.roles)
    with pytest.warns(gt.FitWarning, match="separation"):
        gt.Model("A ~ S", family="binomial").fit(pt)


def test_positivity_check_counts_rows_and_names_times():
    p = np.array([0.5, 0.005, 0.995, 0.3, 0.001])
    t = np.array([0, 1, 2, 0, 1])
    with pytest.warns(gt.FitWarning, match="positivity") as rec:
        out = gt.models.check_positivity(p, t, "treatment model")
    assert out == {"n_low": 2, "n_high": 1, "times": [1, 2]}
    assert "times 1, 2" in str(rec[0].message)


def test_absorbing_binary_model_fits_only_rows_where_previous_value_was_zero(panel):
    f = gt.Model("L1 ~ W", family="binomial", absorbing=True).fit(panel)
    keep = panel.data["lag1_L1"].to_numpy() == 0
    ref = smf.glm("L1 ~ W", data=panel.data[keep], family=sm.families.Binomial()).fit(tol=1e-12)
    assert _by_name(f, ref.params) < 1e-8


def test_learner_model_predicts_probabilities(panel):
    from sklearn.linear_model import LogisticRegression

    f = gt.Model("A ~ L1 + L2 + lag1_A", learner=LogisticRegression(C=1e6, max_iter=1000)).fit(panel)
    ref = gt.Model("A ~ L1 + L2 + lag1_A").fit(panel)
    np.testing.assert_allclose(f.predict(panel.data), ref.predict(panel.data), atol=1e-3)


def test_summary_reports_statsmodels_standard_errors(panel):
    f = gt.Model("A ~ L1 + L2 + lag1_A").fit(panel)
    ref = smf.glm("A ~ L1 + L2 + lag1_A", data=panel.data, family=sm.families.Binomial()).fit()
    tab = f.summary()
    np.testing.assert_allclose(tab.loc["L2", "se"], ref.bse["L2"], rtol=1e-6)


def test_formula_parser_expands_star_and_drops_intercept(panel):
    from gtools.formula import parse_formula

    lhs, icpt, terms = parse_formula("Y ~ A*L1 - 1")
    assert lhs == "Y" and not icpt
    assert [tuple(f.var for f in t) for t in terms] == [("A",), ("L1",), ("A", "L1")]
    with pytest.raises(ValueError, match="cannot read term"):
        parse_formula("Y ~ log(L1)")


def test_fitting_does_not_mutate_the_table(panel):
    before = panel.data.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt.Model("A ~ L1 + L2 + C(time)").fit(panel)
    pd.testing.assert_frame_equal(panel.data, before)
