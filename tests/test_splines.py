"""Natural cubic splines ``ns(x, df=k)`` in formulas: the basis, its knots, fitting, the g-formula engine."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import patsy
import pytest
from scipy.interpolate import BSpline
from scipy.linalg import null_space

import gtools as gt
from gtools.datasets import sepsis as S
from gtools.formula import SPLINE, build_recipe, ns_basis, ns_knots, parse_formula


def _expit(x):
    return 1 / (1 + np.exp(-x))


def _r_ns_knots(x, df):
    """R's splines::ns(x, df) knots, written out: range(x) and quantile(x, seq(0, 1, length = df + 1)) inside."""
    probs = np.linspace(0, 1, df + 1)[1:-1]
    return np.concatenate([[x.min()], np.quantile(x, probs), [x.max()]])


def _bspline_natural_basis(x, knots):
    """An independent natural-spline basis: cubic B-splines on ``knots`` with f'' = 0 at both boundary knots.

    This is how R's ``ns`` is built (B-spline basis, then the two boundary second-derivative
    constraints projected out); with a constant it spans the natural cubic splines.
    """
    lo, hi = knots[0], knots[-1]
    t = np.concatenate([[lo] * 4, knots[1:-1], [hi] * 4])
    nb = len(t) - 4
    xin = np.clip(x, lo, hi)
    B = BSpline.design_matrix(xin, t, 3).toarray()
    D2 = np.array([[BSpline(t, np.eye(nb)[i], 3).derivative(2)(b) for i in range(nb)] for b in (lo, hi)])
    return B @ null_space(D2)


def _lsq_fit(X, y):
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return X @ beta


@pytest.fixture(scope="module")
def curve():
    rng = np.random.default_rng(11)
    x = rng.gamma(2.0, 2.0, 800)  # skewed, so quantile knots are far from equally spaced
    y = np.sin(x) + 0.1 * x ** 1.5 + rng.normal(0, 0.3, x.size)
    A = (rng.random(x.size) < 0.5).astype(float)
    return pd.DataFrame({"x": x, "y": y, "A": A})


# -- parsing -------------------------------------------------------------------------------------------


def test_ns_is_parsed_with_df_positional_df_knots_and_boundary_arguments():
    _, _, terms = parse_formula("y ~ ns(x, df=3) + ns(x, 3) + ns(z, knots=[-1, 0.5e-1, 2], lower=-2, upper=3)")
    assert len(terms) == 2  # ns(x, df=3) and ns(x, 3) are the same term
    f, g = terms[0][0], terms[1][0]
    assert (f.var, f.kind, f.spline.df) == ("x", "ns", 3)
    assert g.spline.knots == (-1.0, 0.05, 2.0) and (g.spline.lower, g.spline.upper) == (-2.0, 3.0)
    assert g.spline.df == 4
    # R spellings of the knot vectors, and interactions with ':' and '*'
    _, _, t2 = parse_formula("y ~ ns(x, knots=c(1, 2), Boundary.knots=c(0, 5)) + A:ns(x, df=2) - 1")
    assert t2[0][0].spline.knots == (1.0, 2.0) and (t2[0][0].spline.lower, t2[0][0].spline.upper) == (0.0, 5.0)
    assert [f.kind for f in t2[1]] == ["num", "ns"]
    _, _, t3 = parse_formula("y ~ A*ns(x, df=2)")
    assert [[f.kind for f in t] for t in t3] == [["num"], ["ns"], ["num", "ns"]]
    # the label of a term parses back to the same term
    assert parse_formula("y ~ " + g.label())[2][0][0] == g


@pytest.mark.parametrize("term, message", [
    ("ns(x, df=0)", "df must be at least 1"),
    ("ns(x, df=-2)", "df must be at least 1"),
    ("ns(x, df=2.5)", "whole number"),
    ("ns(x)", "give the degrees of freedom"),
    ("ns(x, df=3, knots=[1])", "disagrees"),
    ("ns(x, knots=[3, 1])", "strictly increasing"),
    ("ns(x, df=3, spar=2)", "unknown argument"),
    ("ns(x, df=three)", "must be a number"),
    ("ns(x, knots=[1, 2], lower=1.5)", "strictly between"),
    ("ns(x, df=2, lower=4, upper=1)", "must be below"),
])
def test_bad_ns_arguments_raise_value_errors_that_say_what_is_wrong(term, message):
    with pytest.raises(ValueError, match=message):
        parse_formula(f"y ~ {term}")


def test_knots_outside_the_data_range_warn_and_interior_knots_beyond_the_boundary_raise(curve):
    cols = {c: curve[c].to_numpy() for c in curve.columns}
    with pytest.warns(gt.FitWarning, match="outside the observed range"):
        build_recipe("y ~ ns(x, knots=[2, 4], upper=100)", cols)
    with pytest.raises(ValueError, match="strictly between the boundary knots"):
        build_recipe("y ~ ns(x, knots=[2, 500])", cols)
    with pytest.raises(gt.DataError, match="not distinct"):
        build_recipe("y ~ ns(g, df=4)", {"y": np.zeros(9), "g": np.array([0, 0, 0, 0, 0, 0, 0, 1, 2.0])})
    with pytest.raises(gt.DataError, match="constant"):
        build_recipe("y ~ ns(g, df=2)", {"y": np.zeros(3), "g": np.ones(3)})


# -- the basis -------------------------------------------------------------------------------------------


def test_knots_follow_r_ns_convention_and_are_stored_in_the_recipe(curve):
    x = curve["x"].to_numpy()
    cols = {c: curve[c].to_numpy() for c in curve.columns}
    rec = build_recipe("y ~ A + ns(x, df=4)", cols)
    expected = _r_ns_knots(x, 4)  # min, 25%, 50%, 75% (type-7 quantiles), max
    assert np.allclose(rec.spline_knots["ns(x, df=4)"], expected, rtol=0, atol=1e-14)
    assert np.allclose(ns_knots(x, df=4), expected, rtol=0, atol=1e-14)
    assert rec.names[2:] == [f"ns(x, df=4)[{j}]" for j in range(1, 5)]
    assert list(rec.fac_kind[rec.term_ptr[2]:]) == [SPLINE] * 4
    # with boundary knots given, R takes the quantiles of the x inside them
    rec2 = build_recipe("y ~ ns(x, df=3, lower=1, upper=8)", cols)
    inside = x[(x >= 1) & (x <= 8)]
    assert np.allclose(rec2.spline_knots["ns(x, df=3, lower=1.0, upper=8.0)"],
                       [1, *np.quantile(inside, [1 / 3, 2 / 3]), 8], atol=1e-14)


def test_fitted_values_equal_least_squares_on_an_independent_bspline_natural_basis(curve):
    x, y = curve["x"].to_numpy(), curve["y"].to_numpy()
    knots = _r_ns_knots(x, 4)
    N = _bspline_natural_basis(x, knots)
    assert N.shape[1] == 5  # df=4 plus the constant
    ref = _lsq_fit(N, y)
    ours = _lsq_fit(np.column_stack([np.ones_like(x), ns_basis(x, knots)]), y)
    assert np.max(np.abs(ours - ref)) < 1e-9
    # and through the formula interface
    rec = build_recipe("y ~ ns(x, df=4)", {"x": x, "y": y})
    assert np.max(np.abs(_lsq_fit(rec.matrix({"x": x}), y) - ref)) < 1e-9
    # the two bases span the same space: each B-spline column is exactly an ns combination
    X = rec.matrix({"x": x})
    coef, *_ = np.linalg.lstsq(X, N, rcond=None)
    assert np.max(np.abs(X @ coef - N)) < 1e-9


def test_fitted_values_equal_patsy_cr_natural_regression_spline_with_the_same_knots(curve):
    x, y = curve["x"].to_numpy(), curve["y"].to_numpy()
    knots = _r_ns_knots(x, 5)
    P = np.asarray(patsy.dmatrix("cr(x, knots=inner, lower_bound=lo, upper_bound=hi) - 1",
                                 {"x": x, "inner": knots[1:-1], "lo": knots[0], "hi": knots[-1]}))
    assert P.shape[1] == 6
    fit = gt.Model("y ~ ns(x, df=5)", family="gaussian").fit(
        gt.PersonTime.from_long(curve.assign(id=np.arange(len(curve)), t=0), id="id", time="t",
                                covariates=["x", "A"], outcome="y", outcome_type="continuous"))
    ours = fit.predict(curve)
    assert np.max(np.abs(ours - _lsq_fit(P, y))) < 1e-9


def test_without_intercept_the_basis_spans_rs_ns_space_of_functions_zero_at_the_lower_knot(curve):
    x, y = curve["x"].to_numpy(), curve["y"].to_numpy()
    knots = _r_ns_knots(x, 3)
    N = _bspline_natural_basis(x, knots)
    # R's ns columns vanish at the lower boundary knot: the natural splines with f(t_1) = 0
    at_lo = _bspline_natural_basis(np.array([knots[0]]), knots)
    N0 = N @ null_space(at_lo)
    rec = build_recipe("y ~ ns(x, df=3) - 1", {"x": x, "y": y})
    X = rec.matrix({"x": x})
    assert X.shape[1] == 3 and np.allclose(rec.matrix({"x": np.array([knots[0]])}), 0.0)
    assert np.max(np.abs(_lsq_fit(X, y) - _lsq_fit(N0, y))) < 1e-9


def test_basis_is_linear_beyond_the_boundary_knots_and_knots_are_not_refitted_on_new_data(curve):
    x = curve["x"].to_numpy()
    rec = build_recipe("y ~ ns(x, df=4)", {"x": x, "y": curve["y"].to_numpy()})
    lo, hi = rec.spline_knots["ns(x, df=4)"][0], rec.spline_knots["ns(x, df=4)"][-1]
    for grid in (np.linspace(hi, hi + 30, 41), np.linspace(lo - 30, lo, 41)):
        X = rec.matrix({"x": grid})
        line = np.column_stack([np.ones_like(grid), grid])
        resid = X - line @ np.linalg.lstsq(line, X, rcond=None)[0]
        assert np.max(np.abs(resid)) < 1e-10 * max(1.0, np.abs(X).max())
    # smooth across the boundary knot: one-sided slopes agree (second derivative is 0 there)
    h = 1e-5
    for b in (lo, hi):
        left = (rec.matrix({"x": np.array([b])}) - rec.matrix({"x": np.array([b - h])})) / h
        right = (rec.matrix({"x": np.array([b + h])}) - rec.matrix({"x": np.array([b])})) / h
        assert np.max(np.abs(left - right)) < 1e-4
    # new data with another range: the stored knots are used, not recomputed
    sub = x[x < np.median(x)]
    assert np.array_equal(rec.matrix({"x": sub}), rec.matrix({"x": x})[x < np.median(x)])
    # a missing x gives a missing basis row (so Model reports it), not zeros
    assert np.isnan(rec.matrix({"x": np.array([np.nan, 1.0])})[0, 1:]).all()


def test_ns_inside_an_interaction_equals_products_with_the_basis(curve):
    x, y, A = (curve[c].to_numpy() for c in ("x", "y", "A"))
    knots = _r_ns_knots(x, 3)
    Nb = _bspline_natural_basis(x, knots)
    ref = _lsq_fit(np.column_stack([Nb, A[:, None] * Nb]), y)  # separate natural splines per arm
    rec = build_recipe("y ~ A*ns(x, df=3)", {"x": x, "y": y, "A": A})
    assert rec.names[-3:] == [f"A:ns(x, df=3)[{j}]" for j in (1, 2, 3)]
    X = rec.matrix({"x": x, "A": A})
    assert X.shape[1] == 8
    assert np.max(np.abs(_lsq_fit(X, y) - ref)) < 1e-9
    # A:ns alone (no main effect of the spline) still matches R's space A * N_j(x)
    rec2 = build_recipe("y ~ A + A:ns(x, df=3)", {"x": x, "y": y, "A": A})
    at_lo = _bspline_natural_basis(np.array([knots[0]]), knots)
    N0 = Nb @ null_space(at_lo)
    ref2 = _lsq_fit(np.column_stack([np.ones_like(x), A, A[:, None] * N0]), y)
    assert np.max(np.abs(_lsq_fit(rec2.matrix({"x": x, "A": A}), y) - ref2)) < 1e-9


# -- models on person-time ---------------------------------------------------------------------------------


def _spline_cohort(n=1500, K=8, seed=3):
    """Survival cohort whose hazard is non-linear in time (high, dips, rises) and in a covariate L."""
    rng = np.random.default_rng(seed)
    age = rng.normal(0, 1, n)
    rows, alive, prevA, L = [], np.ones(n, dtype=bool), np.zeros(n), rng.normal(0, 1, n)
    for t in range(K):
        L = 0.6 * L - 0.4 * prevA + 0.2 * np.sin(t) + rng.normal(0, 0.8, n)
        A = (rng.random(n) < _expit(-0.3 + 0.7 * L + 1.2 * prevA)).astype(float)
        haz = _expit(-2.4 + 0.9 * np.cos(0.8 * t) + 0.5 * L - 0.7 * A + 0.2 * age + 0.3 * L ** 2)
        Y = (rng.random(n) < haz).astype(float)
        idx = np.flatnonzero(alive)
        rows.append(pd.DataFrame({"id": idx, "time": t, "age": age[idx], "L": L[idx], "A": A[idx], "Y": Y[idx]}))
        alive = alive & (Y == 0)
        prevA = A
    df = pd.concat(rows).sort_values(["id", "time"]).reset_index(drop=True)
    pt = gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], baseline=["age"],
                                 outcome="Y", outcome_type="survival")
    return pt.add_history(gt.lag("A"), gt.lag("L"))


@pytest.fixture(scope="module")
def cohort():
    return _spline_cohort()


def test_pooled_logistic_model_with_ns_time_fits_and_predicts(cohort):
    fit = gt.Model("Y ~ A + ns(time, df=3) + L", family="binomial").fit(cohort)
    assert fit.names == ["Intercept", "A", "ns(time, df=3)[1]", "ns(time, df=3)[2]", "ns(time, df=3)[3]", "L"]
    assert fit.recipe.spline_knots["ns(time, df=3)"] == list(_r_ns_knots(cohort.data["time"].to_numpy(float), 3))
    p = fit.predict(cohort.data)
    assert p.shape == (cohort.n_rows,) and np.all((p > 0) & (p < 1))
    # the same numbers from the documented basis by hand
    t = cohort.data["time"].to_numpy(float)
    Xh = np.column_stack([np.ones_like(t), cohort.data["A"], ns_basis(t, fit.recipe.spline_knots["ns(time, df=3)"]),
                          cohort.data["L"]])
    assert np.max(np.abs(p - _expit(Xh @ fit.params))) < 1e-12
    # equal to a statsmodels GLM on the independent B-spline natural basis (same space, same MLE)
    import statsmodels.api as sm

    Nb = _bspline_natural_basis(t, _r_ns_knots(t, 3))
    Xr = np.column_stack([Nb, cohort.data["A"], cohort.data["L"]])
    ref = sm.GLM(cohort.data["Y"].to_numpy(float), Xr, family=sm.families.Binomial()).fit(tol=1e-12)
    assert np.max(np.abs(p - ref.fittedvalues)) < 1e-8
    # the spline captures the non-linear baseline hazard: better deviance than linear time
    lin = gt.Model("Y ~ A + time + L", family="binomial").fit(cohort)
    assert fit.summary is not None and fit.params.shape == (6,)
    y = cohort.data["Y"].to_numpy(float)

    def dev(q):
        return -2 * np.sum(y * np.log(q) + (1 - y) * np.log(1 - q))
    assert dev(p) < dev(lin.predict(cohort.data)) - 10


def _gf_spec(engine, n_samples=2000):
    return gt.GFormula(
        covariate_models=[gt.Model("L ~ lag1_L + lag1_A + ns(time, df=3) + age", "gaussian")],
        treatment_model=gt.Model("A ~ L + lag1_A + ns(L, df=2)", "binomial"),
        outcome_model=gt.Model("Y ~ A + ns(time, df=3) + ns(L, knots=[-1, 0, 1]) + A:ns(time, df=3) + age",
                               "binomial"),
        regimes={"natural": gt.regimes.natural(), "always": gt.regimes.always(), "never": gt.regimes.never()},
        n_samples=n_samples, seed=9, engine=engine, keep_simulated="natural",
    )


def test_gformula_with_splines_numba_and_numpy_engines_agree_to_1e12(cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        a = _gf_spec("numba").fit(cohort)
        b = _gf_spec("numpy").fit(cohort)
    assert np.max(np.abs(a.risk.to_numpy() - b.risk.to_numpy())) < 1e-12
    for g in a.regimes:
        assert np.max(np.abs(a.covariate_means[g].to_numpy() - b.covariate_means[g].to_numpy())) < 1e-12
    sa, sb = a.simulated, b.simulated
    assert np.max(np.abs(sa.to_numpy(dtype=float) - sb.to_numpy(dtype=float))) < 1e-12
    # the simulated L reaches beyond the observed range sometimes: the basis extrapolates linearly there
    assert a.risk.iloc[-1]["always"] < a.risk.iloc[-1]["never"]


def test_sepsis_natural_course_with_ns_day_in_the_hazard_model_within_3_se_of_truth():
    """Truth: the generator's natural-course 28-day risk (MC SE stated by ``true_risk``).

    The true hazard is linear in day, which ns(day, df=4) contains, so the
    g-formula stays consistent. SE: a 20-replicate person bootstrap of the same specification.
    """
    M = S.SEPSIS_MODELS
    death = M["death"][0].replace("+ day", "+ ns(day, df=4)")
    assert "ns(day, df=4)" in death

    def spec(n_samples):
        return gt.GFormula(covariate_models=[gt.Model(*M["sofa"]), gt.Model(*M["lactate"])],
                           treatment_model=gt.Model(*M["vaso"]), outcome_model=gt.Model(death, "binomial"),
                           censor_model=gt.Model(*M["discharge"]), regimes={"natural": gt.regimes.natural()},
                           n_samples=n_samples, seed=3)

    pt = gt.PersonTime.from_long(S.simulate(4000, 77), **S.SEPSIS_ROLES).add_history(*S.history_features())
    res = spec(20_000).fit(pt)
    fitted = res.models["outcome"]
    assert len(fitted.recipe.spline_knots["ns(day, df=4)"]) == 5
    boot = gt.bootstrap(spec(2_000), pt, n_boot=20, n_jobs=1, seed=11)
    truth, tse = S.true_risk(None, n=100_000, return_se=True)
    key = "risk[natural,t=27]"
    est, se = res.estimates[key], boot.se[key]
    assert abs(est - truth.iloc[-1]) < 3 * np.sqrt(se ** 2 + tse.iloc[-1] ** 2), (truth.iloc[-1], est, se)
