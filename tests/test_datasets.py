"""Tests of the simulated cohorts (gtools.datasets): structure, truth, shipped samples."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import gtools.datasets as D
from gtools import history as H
from gtools import regimes as R
from gtools.datasets import _engine as E
from gtools.datasets import oncology as O
from gtools.datasets import sepsis as S

# -- helpers ---------------------------------------------------------------------------


def _ols(X: np.ndarray, y: np.ndarray):
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    sigma2 = resid @ resid / (len(y) - X.shape[1])
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    return beta, se, np.sqrt(sigma2)


def _logit_irls(X: np.ndarray, y: np.ndarray, iters: int = 25):
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ beta))
        w = p * (1 - p)
        step = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    p = 1 / (1 + np.exp(-X @ beta))
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None]))))
    return beta, se


def _design(df: pd.DataFrame, coef: dict) -> np.ndarray:
    cols = {c: df[c].to_numpy(float) for c in df.columns}
    return np.column_stack(
        [E.linpred({t: 1.0}, cols, len(df)) if t != "Intercept" else np.ones(len(df)) for t in coef]
    )


def _with_history(df: pd.DataFrame, features, time: str) -> pd.DataFrame:
    out = df.copy()
    for f in features:
        out[f.name] = f.compute(out, "id", time)
    return out


# -- structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("censoring,competing", [(True, False), (False, True), (False, False)])
def test_sepsis_structure(censoring, competing):
    df = S.simulate(3000, 5, censoring=censoring, competing=competing)
    assert list(df.columns) == S.SEPSIS_COLUMNS
    assert df.equals(df.sort_values(["id", "day"]).reset_index(drop=True))
    g = df.groupby("id")
    assert (g["day"].min() == 0).all()
    assert (g["day"].diff().dropna() == 1).all()
    assert df["id"].nunique() == 3000
    # one terminal event at most, on the last row
    last = g.tail(1)
    ended = (df["death"] == 1) | (df["discharge"] == 1)
    assert ended.groupby(df["id"]).sum().max() <= 1
    assert set(df.index[ended]) <= set(last.index)
    assert (last["day"][~ended.loc[last.index]] == S.K - 1).all()
    # death is missing exactly on discharge rows
    assert (df["death"].isna() == (df["discharge"] == 1)).all()
    if not (censoring or competing):
        assert (df["discharge"] == 0).all()
    assert set(df["vaso"].unique()) <= {0, 1}
    assert df[["age", "sex", "comorb"]].nunique().max() > 1
    assert (g[["age", "sex", "comorb"]].nunique() == 1).all().all()


def test_oncology_structure():
    df = O.simulate(3000, 5)
    assert list(df.columns) == O.ONCOLOGY_COLUMNS
    assert df.equals(df.sort_values(["id", "month"]).reset_index(drop=True))
    assert set(df["ecog"].unique()) == {0, 1, 2}
    assert (df["progression"].isna() == (df["lost"] == 1)).all()
    ended = (df["progression"] == 1) | (df["lost"] == 1)
    assert set(df.index[ended]) <= set(df.groupby("id").tail(1).index)
    # treatment switches on and off
    switches = df.groupby("id")["treat"].apply(lambda a: int((np.diff(a.to_numpy()) != 0).sum()))
    assert switches.mean() > 1
    q = O.oncology_qol(500, 5)
    assert list(q.columns) == O.ONCOLOGY_QOL_COLUMNS
    assert (q.groupby("id").size() == O.QOL_N_VISITS).all()
    assert (q.groupby("id")["qol"].nunique() == 1).all()
    qc = O.oncology_qol(3000, 5, censoring=True, n_visits=4)
    assert list(qc.columns) == O.ONCOLOGY_QOL_COLUMNS + ["lost"]
    lost_ids = qc.loc[qc["lost"] == 1, "id"]
    assert len(lost_ids) > 0
    assert qc.loc[qc["id"].isin(lost_ids), "qol"].isna().all()
    assert qc.loc[~qc["id"].isin(lost_ids), "qol"].notna().all()
    assert qc.groupby("id").size().max() == 4


def test_natural_course_run_equals_observed_data():
    nat = R.natural()
    for censoring, competing in [(True, False), (False, True), (False, False)]:
        obs = S.simulate(2000, 11, censoring=censoring, competing=competing)
        pd.testing.assert_frame_equal(
            S.simulate(2000, 11, nat, censoring=censoring, competing=competing), obs
        )
    pd.testing.assert_frame_equal(O.simulate(2000, 11, nat), O.simulate(2000, 11))
    pd.testing.assert_frame_equal(
        O.oncology_qol(2000, 11, nat, censoring=True), O.oncology_qol(2000, 11, censoring=True)
    )
    # different seeds give different data
    assert not S.simulate(200, 1).equals(S.simulate(200, 2))


def test_natural_risk_matches_observed_data_distribution():
    """Brute force: deaths counted in simulate(censoring=False) vs true_risk(natural) (other seed)."""
    df = S.simulate(40_000, 3, censoring=False)
    died = df.groupby("id")["death"].max()
    day = df.groupby("id")["day"].max()
    emp = np.array([((died == 1) & (day <= t)).mean() for t in range(S.K)])
    risk, se = S.true_risk(None, n=100_000, seed=4, return_se=True)
    emp_se = np.sqrt(emp * (1 - emp) / 40_000)
    assert np.all(np.abs(emp - risk.to_numpy()) < 4 * np.sqrt(emp_se**2 + se.to_numpy() ** 2) + 1e-12)
    # competing: cumulative incidence of death in the data vs true_cif
    dc = S.simulate(40_000, 3, competing=True)
    died_c = dc.groupby("id")["death"].max() == 1
    cif = S.true_cif(None, n=100_000, seed=4)
    e = died_c.mean()
    assert abs(e - cif.iloc[-1]) < 4 * np.sqrt(e * (1 - e) / 40_000) + 0.002


def test_hazard_and_event_methods_agree():
    g = R.threshold("lactate", ">", 4.0, absorbing=True)
    r1, s1 = S.true_risk(g, n=60_000, seed=8, return_se=True)
    r2, s2 = S.true_risk(g, n=60_000, seed=9, return_se=True, method="events")
    assert np.all(np.abs(r1 - r2) < 4 * np.sqrt(s1**2 + s2**2))
    r1, s1 = O.true_risk(R.never(), n=60_000, seed=8, return_se=True)
    r2, s2 = O.true_risk(R.never(), n=60_000, seed=9, return_se=True, method="events")
    assert np.all(np.abs(r1 - r2) < 4 * np.sqrt(s1**2 + s2**2))


# -- truth -------------------------------------------------------------------------------


def test_sepsis_true_risk_directions_and_se():
    out = {}
    for name, g in [
        ("always", R.always()),
        ("never", R.never()),
        ("natural", None),
        ("lactate4", R.threshold("lactate", ">", 4.0, absorbing=True)),
    ]:
        risk, se = S.true_risk(g, n=100_000, seed=2024, return_se=True)
        assert list(risk.index) == list(range(S.K)) and risk.index.name == "day"
        assert np.all(np.diff(risk.to_numpy()) >= 0) and 0 < risk.iloc[0] and risk.iloc[-1] < 1
        assert se.iloc[-1] < 0.0015
        out[name] = risk
    # vasopressors are beneficial: always < threshold < never, natural in between
    assert np.all(out["always"].iloc[3:] < out["never"].iloc[3:])
    assert out["always"].iloc[-1] < out["lactate4"].iloc[-1] < out["natural"].iloc[-1] < out["never"].iloc[-1]
    assert 0.2 <= out["natural"].iloc[-1] <= 0.35
    assert out["never"].iloc[-1] - out["always"].iloc[-1] > 0.2
    cif = S.true_cif(None, n=50_000)
    assert np.all(np.diff(cif.to_numpy()) >= 0) and np.all(cif <= out["natural"] + 1e-3)


def test_oncology_true_risk_directions():
    a, sa = O.true_risk(R.always(), n=100_000, return_se=True)
    nv, sn = O.true_risk(R.never(), n=100_000, return_se=True)
    assert np.all(np.diff(a.to_numpy()) >= 0) and np.all(np.diff(nv.to_numpy()) >= 0)
    assert np.all(a.iloc[1:] < nv.iloc[1:])
    assert nv.iloc[-1] - a.iloc[-1] > 0.3
    assert max(sa.iloc[-1], sn.iloc[-1]) < 0.002
    assert list(a.index) == list(range(O.K)) and a.index.name == "month"


def test_qol_true_blip_value():
    q = O.QOL_COEFS
    assert O.ONCOLOGY_QOL_TRUE_BLIP == {"treat": q["theta0"] - O.DELTA * q["beta"], "treat:marker": q["psi1"]}
    assert D.ONCOLOGY_QOL_TRUE_BLIP == {"treat": -1.0, "treat:marker": 1.0}


def _blip_regime(t: int, a: float):
    """Natural course before t, a at t, untreated after."""
    return R.custom(
        lambda s: np.where(s.t < t, s.natural, np.where(s.t == t, a, 0.0)),
        name=f"a{t}={a}",
        needs_natural=True,
    )


@pytest.mark.parametrize("n_visits", [6, 3])
def test_qol_blip_by_brute_force_common_random_numbers(n_visits):
    """Same histories (same seed, natural course before t), treat_t = 1 vs 0, no treatment after:
    the per-person difference regressed on marker_t gives (psi0, psi1) at every t, including the last."""
    psi = O.ONCOLOGY_QOL_TRUE_BLIP
    for t in range(n_visits):
        y1 = O.oncology_qol(20_000, 3, _blip_regime(t, 1.0), n_visits=n_visits)
        y0 = O.oncology_qol(20_000, 3, _blip_regime(t, 0.0), n_visits=n_visits)
        pd.testing.assert_frame_equal(
            y1.loc[y1.month <= t, ["id", "marker", "ecog"]], y0.loc[y0.month <= t, ["id", "marker", "ecog"]]
        )
        m = y1.loc[y1.month == t, "marker"].to_numpy()
        diff = y1.groupby("id")["qol"].first().to_numpy() - y0.groupby("id")["qol"].first().to_numpy()
        beta, se, _ = _ols(np.column_stack([np.ones_like(m), m]), diff)
        assert np.all(np.abs(beta - [psi["treat"], psi["treat:marker"]]) <= 3 * se + 1e-9), (t, beta, se)


def test_qol_blip_by_nested_monte_carlo():
    """Independent random numbers: one person's history to month t-1, simulated forward under
    treat_t = 1 and treat_t = 0 (0 afterwards); regressing qol on the simulated marker_t in each arm,
    the differences of the intercepts and slopes are psi0 and psi1 within 3 SE."""
    psi = O.ONCOLOGY_QOL_TRUE_BLIP
    df = O.oncology_qol(50, 1)
    t = 2
    hist = df[(df.id == 7) & (df.month < t)]
    n = 100_000
    fits = []
    for a, seed in [(1.0, 21), (0.0, 22)]:
        t0, base, prev, sa, sam = O._qol_history_state(hist, n, O.QOL_N_VISITS)
        assert t0 == t
        res = O._qol_paths(
            base,
            prev,
            t0,
            O.QOL_N_VISITS,
            E.Streams(seed, O._ROLES),
            R.custom(lambda s, a=a: np.where(s.t == t, a, 0.0)),
            False,
            sa,
            sam,
        )
        m = res["per"]["marker"][0]
        fits.append(_ols(np.column_stack([np.ones(n), m]), res["qol"]))
    (b1, se1, _), (b0, se0, _) = fits
    d, se = b1 - b0, np.sqrt(se1**2 + se0**2)
    assert np.all(np.abs(d - [psi["treat"], psi["treat:marker"]]) < 3 * se), (d, se)


def test_true_mean_and_from_history():
    m_nat, se = O.true_mean(None, n=100_000, return_se=True)
    m_opt = O.true_mean(R.threshold("marker", ">", 1.0), n=100_000)
    m_alw = O.true_mean(R.always(), n=100_000)
    assert se < 0.05
    # blip psi0 + psi1 * marker > 0 iff marker > 1: the threshold rule beats always and the natural course
    assert m_opt > m_nat + 5 * se and m_opt > m_alw
    hist = O.oncology_qol(10, 2)
    hist = hist[(hist.id == 3) & (hist.month <= 2)]
    a, sa = O.true_mean_from_history(hist, R.always(), n=50_000, return_se=True)
    b, sb = O.true_mean_from_history(hist, R.never(), n=50_000, return_se=True)
    assert np.isfinite(a) and np.isfinite(b) and a != b and max(sa, sb) < 0.1


def test_true_risk_from_history():
    df = S.simulate(300, 12, censoring=False)
    # a patient alive on day 4
    pid = df.groupby("id")["day"].max().loc[lambda d: d > 6].index[0]
    hist = df[(df.id == pid) & (df.day <= 4)]
    risk, se = S.true_risk_from_history(hist, R.always(), n=50_000, return_se=True)
    assert list(risk.index) == list(range(5, S.K)) and risk.index.name == "day"
    assert np.all(np.diff(risk.to_numpy()) >= 0) and 0 < risk.iloc[0] <= risk.iloc[-1] < 1
    assert se.max() < 0.01
    never = S.true_risk_from_history(hist, R.never(), n=50_000)
    assert never.iloc[-1] > risk.iloc[-1]
    cif = S.true_risk_from_history(hist, None, n=50_000, competing=True)
    assert np.all(np.diff(cif.to_numpy()) >= 0)
    # a sicker history has a higher risk
    sick = hist.copy()
    sick.loc[sick.index[-1], ["sofa", "lactate"]] = [14.0, 6.0]
    assert S.true_risk_from_history(sick, R.never(), n=50_000).iloc[-1] > never.iloc[-1]
    with pytest.raises(ValueError, match="alive"):
        dead = df[df.id == df.loc[df.death == 1, "id"].iloc[0]]
        S.true_risk_from_history(dead, R.always())
    with pytest.raises(ValueError, match="one person"):
        S.true_risk_from_history(df[df.day == 0].head(5), R.always())
    # oncology
    od = O.simulate(300, 12, censoring=False)
    pid = od.groupby("id")["month"].max().loc[lambda d: d > 5].index[0]
    r = O.true_risk_from_history(od[(od.id == pid) & (od.month <= 3)], R.never(), n=50_000)
    assert list(r.index) == list(range(4, O.K)) and np.all(np.diff(r.to_numpy()) >= 0)


def test_forward_from_observed_states_is_consistent_with_true_risk():
    """Starting the forward simulation from observed day-0 states (the machinery of
    true_risk_from_history) and combining with the day-0 hazard recovers the marginal risk."""
    g = R.always()
    n = 50_000
    day0 = S.simulate(n, 30, regime=g, censoring=False)
    day0 = day0[day0.day == 0]
    cols = {c: day0[c].to_numpy(float) for c in day0.columns}
    h0 = E.expit(E.linpred(S.SEPSIS_COEFS["death"], {**cols, "lag1_vaso": np.zeros(n)}, n))
    base = {c: cols[c] for c in ("age", "sex", "comorb")}
    prev = {c: cols[c] for c in ("sofa", "lactate", "vaso")}
    acc = S._accumulate(base, prev, 1, E.Streams(31, S._ROLES), g, False, "hazard")
    person = h0 + (1 - h0) * acc.f
    truth, se = S.true_risk(g, n=100_000, return_se=True)
    se_here = person.std() / np.sqrt(n)
    assert abs(person.mean() - truth.iloc[-1]) < 4 * np.sqrt(se_here**2 + se.iloc[-1] ** 2)


# -- regimes -----------------------------------------------------------------------------


def test_every_regime_kind_runs():
    kinds = {
        "always": R.always(),
        "never": R.never(),
        "static_seq": R.static([1.0] * 3 + [0.0] * (S.K - 3)),
        "threshold": R.threshold("lactate", ">", 4.0, absorbing=True),
        "natural": R.natural(),
        "stochastic": R.stochastic(0.3),
        "custom": R.custom(lambda s: (s["sofa"] > 9) & (s["day"] % 2 == 0)),
    }
    for name, g in kinds.items():
        df = S.simulate(2000, 4, regime=g, censoring=False)
        assert set(df["vaso"].unique()) <= {0, 1}, name
    a = S.simulate(500, 4, regime=kinds["always"])
    assert (a["vaso"] == 1).all()
    assert (S.simulate(500, 4, regime=kinds["never"])["vaso"] == 0).all()
    st = S.simulate(500, 4, regime=kinds["static_seq"])
    assert (st["vaso"] == (st["day"] < 3)).all()
    th = S.simulate(3000, 4, regime=kinds["threshold"])
    seen = (th["lactate"] > 4).astype(int).groupby(th["id"]).cummax()
    assert (th["vaso"] == seen).all() and seen.mean() > 0.05
    sto = S.simulate(5000, 4, regime=kinds["stochastic"], censoring=False)
    assert abs(sto["vaso"].mean() - 0.3) < 0.02
    cu = S.simulate(500, 4, regime=kinds["custom"])
    assert (cu["vaso"] == ((cu["sofa"] > 9) & (cu["day"] % 2 == 0))).all()
    # oncology
    for g in kinds.values():
        if g is not kinds["threshold"] and g is not kinds["custom"]:
            O.simulate(300, 4, regime=g)
    om = O.simulate(2000, 4, regime=R.threshold("marker", ">", 1.0))
    assert (om["treat"] == (om["marker"] > 1.0)).all()
    O.oncology_qol(300, 4, regime=R.threshold("marker", ">", 1.0, otherwise="natural"))


def test_regime_state_contents():
    seen = {}

    def spy(state):
        seen.setdefault("keys", set(state.columns))
        seen.setdefault("t", state.t.copy())
        assert state.natural is not None and state.uniform is not None
        assert np.all((state.uniform >= 0) & (state.uniform < 1))
        return state.natural

    S.simulate(50, 1, regime=R.custom(spy, needs_natural=True))
    assert {
        "sofa",
        "lactate",
        "age",
        "sex",
        "comorb",
        "day",
        "lag1_sofa",
        "lag1_lactate",
        "lag1_vaso",
    } <= seen["keys"] and "vaso" not in seen["keys"]
    assert np.all(seen["t"] == 0)
    seen.clear()
    O.simulate(50, 1, regime=R.custom(spy, needs_natural=True))
    assert {"marker", "ecog", "age", "stage", "month", "lag1_marker", "lag1_ecog", "lag1_treat"} <= seen[
        "keys"
    ]

    # stochastic with the natural propensity reproduces the natural course (shared uniform)
    class Prop:
        def __call__(self, state):
            cols = dict(state.columns)
            return E.expit(E.linpred(S.SEPSIS_COEFS["vaso"], cols, state.n))

    pd.testing.assert_frame_equal(S.simulate(500, 2, R.stochastic(Prop())), S.simulate(500, 2))
    with pytest.raises(ValueError, match="0/1"):
        S.simulate(10, 1, regime=R.custom(lambda s: np.full(s.n, 0.5)))


# -- correct specifications ------------------------------------------------------------------


def _terms(formula: str) -> list[str]:
    return [t.strip() for t in formula.split("~")[1].split("+")]


def test_model_specs_match_coefficients_and_columns():
    hist_names = {H.lag(s, k).name for _, s, k in S.SEPSIS_HISTORY}
    allowed = set(S.SEPSIS_COLUMNS) | hist_names
    for name, (f, fam) in S.SEPSIS_MODELS.items():
        assert f.split("~")[0].strip() == name and fam in {"gaussian", "binomial"}
        terms = _terms(f)
        assert terms == [t for t in S.SEPSIS_COEFS[name] if t != "Intercept"]
        assert all(set(t.split(":")) <= allowed for t in terms), f
    hist_names = {f.name for f in O.history_features()}
    allowed = set(O.ONCOLOGY_COLUMNS) | hist_names
    for f, _fam in O.ONCOLOGY_MODELS.values():
        assert all(set(t.split(":")) <= allowed for t in _terms(f)), f
    assert O.ONCOLOGY_MODELS["ecog"][1] == "multinomial"
    assert [f.name for f in S.history_features()] == ["lag1_sofa", "lag1_lactate", "lag1_vaso"]
    for roles, cols in [
        (S.SEPSIS_ROLES, S.SEPSIS_COLUMNS),
        (O.ONCOLOGY_ROLES, O.ONCOLOGY_COLUMNS),
        (O.ONCOLOGY_QOL_ROLES, O.ONCOLOGY_QOL_COLUMNS),
    ]:
        named = [
            roles["id"],
            roles["time"],
            roles["treatment"],
            roles["outcome"],
            *roles["covariates"],
            *roles["baseline"],
        ] + ([roles["censor"]] if roles.get("censor") else [])
        assert set(named) <= set(cols)
    assert S.SEPSIS_ROLES_COMPETING["competing"] == "discharge" and S.SEPSIS_ROLES_COMPETING["censor"] is None
    # the docstrings write the formulas out
    for mod, models in [(S, S.SEPSIS_MODELS), (O, O.ONCOLOGY_MODELS)]:
        doc = re.sub(r"\s+", " ", mod.__doc__)
        for f, _ in models.values():
            assert re.sub(r"\s+", " ", f) in doc, f


def test_correct_models_recover_true_coefficients():
    """Fitting the documented models (with gtools.history lags) recovers the structural coefficients."""
    df = _with_history(S.simulate(20_000, 6), S.history_features(), "day")
    for name in ("sofa", "lactate"):
        coef = S.SEPSIS_COEFS[name]
        beta, se, sigma = _ols(_design(df, coef), df[name].to_numpy())
        assert np.all(np.abs(beta - list(coef.values())) < 4 * se), name
        assert abs(sigma - S.SEPSIS_SIGMA[name]) < 0.02
    for name, rows in (("vaso", df), ("death", df[df["death"].notna()]), ("discharge", df)):
        coef = S.SEPSIS_COEFS[name]
        beta, se = _logit_irls(_design(rows, coef), rows[name].to_numpy(float))
        assert np.all(np.abs(beta - list(coef.values())) < 4.5 * se), (name, beta)
    od = _with_history(O.simulate(5_000, 6), O.history_features(), "month")
    coef = O.ONCOLOGY_COEFS["marker"]
    beta, se, sigma = _ols(_design(od, coef), od["marker"].to_numpy())
    assert np.all(np.abs(beta - list(coef.values())) < 4 * se) and abs(sigma - 0.4) < 0.01


# -- shipped samples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loader,make,columns",
    [
        (D.load_sepsis, lambda: S.simulate(S.SAMPLE_N, S.SAMPLE_SEED), S.SEPSIS_COLUMNS),
        (D.load_oncology, lambda: O.simulate(O.SAMPLE_N, O.SAMPLE_SEED), O.ONCOLOGY_COLUMNS),
        (
            D.load_oncology_qol,
            lambda: O.oncology_qol(O.QOL_SAMPLE_N, O.QOL_SAMPLE_SEED),
            O.ONCOLOGY_QOL_COLUMNS,
        ),
    ],
)
def test_shipped_samples(loader, make, columns):
    shipped = loader()
    assert list(shipped.columns) == columns
    fresh = make()
    pd.testing.assert_frame_equal(shipped, fresh, check_exact=False, atol=5.1e-5, rtol=0)
    assert shipped["id"].nunique() == fresh["id"].nunique()
