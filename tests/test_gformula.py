"""Parametric g-formula: engine agreement, correctness against known truth, published results, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from _peers import PEERS

import gtools as gt
from gtools.datasets import sepsis as S

PYGF_DATA = PEERS / "pygformula" / "example_data_basicdata_nocomp.csv.gz"


def _expit(x):
    return 1 / (1 + np.exp(-x))


# -- a small generator exercising every family and history feature ------------------------------------


def _all_families_data(n=600, K=5, seed=1):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=n)
    rows = []
    prev = {"A": np.zeros(n), "L1": np.zeros(n), "L2": np.zeros(n), "L7": np.zeros(n)}
    alive = np.ones(n, dtype=bool)
    for t in range(K):
        L1 = (rng.random(n) < _expit(-0.3 + 0.8 * prev["L1"] - 0.5 * prev["A"] + 0.3 * W)).astype(float)
        L2 = 0.5 * prev["L2"] + 0.7 * L1 - 0.4 * prev["A"] + rng.normal(size=n)
        L3 = np.clip(1 + 0.5 * L2 + rng.normal(size=n), -1.0, 4.0)
        L4 = np.clip(0.3 * L2 + rng.normal(size=n), -2.0, 2.0)
        L5 = rng.poisson(np.exp(0.2 + 0.2 * L1))
        L6 = np.minimum(rng.poisson(np.exp(0.1 + 0.2 * L1)), 2).astype(float)
        L7 = np.maximum(prev["L7"], (rng.random(n) < 0.15).astype(float))
        A = (rng.random(n) < _expit(-0.2 + 0.6 * L1 + 0.3 * L2 + 1.0 * prev["A"])).astype(float)
        Y = (rng.random(n) < _expit(-3 + 0.4 * L2 - 0.6 * A + 0.3 * L7)).astype(float)
        rows.append(pd.DataFrame({"id": np.flatnonzero(alive), "t": t, "W": W[alive], "L1": L1[alive],
                                  "L2": L2[alive], "L3": L3[alive], "L4": L4[alive], "L5": L5[alive],
                                  "L6": L6[alive], "L7": L7[alive], "A": A[alive], "Y": Y[alive]}))
        alive = alive & (Y == 0)
        prev = {"A": np.where(alive, A, 0), "L1": L1, "L2": L2, "L7": L7}
    return pd.concat(rows).sort_values(["id", "t"]).reset_index(drop=True)


def _all_families_spec(engine):
    return gt.GFormula(
        covariate_models=[
            gt.Model("L1 ~ lag1_L1 + lag1_A + W + C(t)", "binomial"),
            gt.Model("L2 ~ lag1_L2 + L1 + lag1_A + I(W**2) + cummean_L1", "gaussian"),
            gt.Model("L3 ~ L2 + L1:W", "truncated_normal"),
            gt.Model("L4 ~ L2 + timesince_lag1_A", "bounded_normal"),
            gt.Model("L5 ~ L1 + ever_lag1_A", "poisson"),
            gt.Model("L6 ~ L1 + cumsum_lag1_A", "multinomial"),
            gt.Model("L7 ~ W", "binomial", absorbing=True),
        ],
        treatment_model=gt.Model("A ~ L1 + L2 + lag1_A + L6", "binomial"),
        outcome_model=gt.Model("Y ~ L2 + A + L7 + lag1_cummean_L1 + L3 + L4 + L5 + C(L6) + cumsum_A", "binomial"),
        regimes={"natural": gt.regimes.natural(), "always": gt.regimes.always(),
                 "thr": gt.regimes.threshold("L2", ">", 0.5, absorbing=True),
                 "stoch": gt.regimes.stochastic(0.3)},
        n_samples=3000, seed=5, keep_simulated="natural", engine=engine,
    )


@pytest.fixture(scope="module")
def families_pt():
    df = _all_families_data()
    pt = gt.PersonTime.from_long(df, id="id", time="t", treatment="A",
                                 covariates=["L1", "L2", "L3", "L4", "L5", "L6", "L7"], baseline=["W"], outcome="Y")
    return pt.add_history(gt.lag("L1"), gt.lag("L2"), gt.lag("A"), gt.cummean("L1"), gt.lag(gt.cummean("L1")),
                          gt.time_since(gt.lag("A")), gt.ever(gt.lag("A")), gt.cumsum(gt.lag("A")),
                          gt.cumsum("A"), gt.ever("A"))


def test_numba_and_numpy_engines_agree_to_1e12_on_the_same_random_numbers(families_pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _all_families_spec("numba").fit(families_pt)
        b = _all_families_spec("numpy").fit(families_pt)
    assert np.max(np.abs(a.risk.to_numpy() - b.risk.to_numpy())) < 1e-12
    for g in a.regimes:
        assert np.max(np.abs(a.covariate_means[g].to_numpy() - b.covariate_means[g].to_numpy())) < 1e-12
    sa, sb = a.simulated, b.simulated
    assert sa.shape == sb.shape and sa.shape[0] == 3000 * families_pt.n_times
    assert np.max(np.abs(sa.to_numpy(dtype=float) - sb.to_numpy(dtype=float))) < 1e-12
    # draws respect their families: truncated/bounded in bounds, counts and levels, absorbing stays 1
    lo3, hi3 = a.models["covariates"][2].bounds
    assert sa["L3"].between(lo3, hi3).all() and sa["L4"].between(-2.0, 2.0).all()
    assert np.all(sa["L5"] == np.round(sa["L5"])) and set(np.unique(sa["L6"])) <= {0.0, 1.0, 2.0}
    l7 = sa.pivot(index="sim_id", columns="t", values="L7").to_numpy()
    assert np.all(np.diff(l7, axis=1) >= 0)


def test_simulated_history_columns_equal_the_observed_definitions(families_pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = _all_families_spec("numba").fit(families_pt).simulated
    checked = [f for f in families_pt.history if f.name in sim.columns]
    assert len(checked) >= 7  # every feature a model reads, composed ones included
    for f in checked:
        recomputed = f.compute(sim, "sim_id", "t").to_numpy()
        assert np.allclose(recomputed, sim[f.name].to_numpy(), atol=1e-12), f.name


def test_common_random_numbers_give_identical_regimes_identical_curves(families_pt):
    spec = _all_families_spec("numba")
    spec.regimes = {"always": gt.regimes.always(), "always_again": gt.regimes.static(1.0)}
    spec.keep_simulated = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = spec.fit(families_pt)
    assert np.array_equal(res.risk["always"].to_numpy(), res.risk["always_again"].to_numpy())
    assert res.estimates["rd[always-always_again,t=4]"] == 0.0


# -- pygformula's basicdata_nocomp -------------------------------------------------------------------


def _pygformula_pt():
    df = pd.read_csv(PYGF_DATA)
    pt = gt.PersonTime.from_long(df, id="id", time="t0", treatment="A", covariates=["L1", "L2"], baseline=["L3"],
                                 outcome="Y")
    return pt.add_history(gt.lag("A"), gt.lag("A", 2), gt.lag("L1"), gt.lag("L2"), gt.lag(gt.cummean("L1")),
                          gt.lag(gt.cummean("L2")))


def _pygformula_spec(n_samples, seed=1):
    # the documented survival example (benchmarks/peers/pygformula_runner.py)
    return gt.GFormula(
        covariate_models=[gt.Model("L1 ~ lag1_A + lag2_A + lag1_cummean_L1 + lag1_cummean_L2 + L3 + t0", "binomial"),
                          gt.Model("L2 ~ lag1_A + L1 + lag1_cummean_L1 + lag1_cummean_L2 + L3 + t0",
                                   "bounded_normal")],
        treatment_model=gt.Model("A ~ lag1_A + L1 + L2 + lag1_cummean_L1 + lag1_cummean_L2 + L3 + t0", "binomial"),
        outcome_model=gt.Model("Y ~ L1 + L2 + L3 + A + lag1_A + lag1_L1 + lag1_L2 + t0", "binomial"),
        regimes={"natural": gt.regimes.natural(), "never": gt.regimes.never(), "always": gt.regimes.always()},
        n_samples=n_samples, seed=seed,
    )


def test_pygformula_example_last_interval_risks_match_pygformula_and_gformula_within_mc_error():
    """Published (shared/peers/README): pygformula 2,500 simulated 0.50396/0.73346/0.23297; gfoRmula
    10,000 simulated 0.50414/0.73077/0.23365. Both carry Monte Carlo error: tolerance
    3 * sqrt(se_ours^2 + se_theirs^2), se_theirs = our per-person SD / sqrt(their sample size)."""
    n = 40_000
    res = _pygformula_spec(n).fit(_pygformula_pt())
    last = res.risk.iloc[-1]
    sd = res.mc_se.iloc[-1] * np.sqrt(n)
    published = {2500: {"natural": 0.50396, "never": 0.73346, "always": 0.23297},
                 10000: {"natural": 0.50414, "never": 0.73077, "always": 0.23365}}
    for m, ref in published.items():
        for g, v in ref.items():
            tol = 3 * np.sqrt(sd[g] ** 2 / n + sd[g] ** 2 / m)
            assert abs(last[g] - v) < tol, (g, m, last[g], v, tol)


# -- NHEFS (What If ch. 13) -------------------------------------------------------------------------------


def test_nhefs_standardisation_reproduces_what_if_3p5_kg():
    """What If, program 13.4: E[Y^1] - E[Y^0] = 3.5 kg (bootstrap 95% CI 2.6 to 4.5); a point treatment
    is a single-interval PersonTime, and the g-formula's estimate is exact standardisation up to the
    Monte Carlo resampling of baseline rows (MC SE stated below)."""
    causaldata = pytest.importorskip("causaldata")
    d = causaldata.nhefs_complete.load_pandas().data.copy()
    for c in ("sex", "race", "education", "exercise", "active"):
        d[c] = d[c].astype(float)
    d["t"] = 0
    cov = ["sex", "race", "age", "education", "smokeintensity", "smokeyrs", "exercise", "active", "wt71"]
    pt = gt.PersonTime.from_long(d[["seqn", "t", "qsmk", "wt82_71"] + cov], id="seqn", time="t", treatment="qsmk",
                                 baseline=cov, outcome="wt82_71", outcome_type="continuous")
    f = ("wt82_71 ~ qsmk + sex + race + age + I(age**2) + C(education) + smokeintensity + I(smokeintensity**2) "
         "+ smokeyrs + I(smokeyrs**2) + C(exercise) + C(active) + wt71 + I(wt71**2) + qsmk:smokeintensity")
    res = gt.GFormula(outcome_model=gt.Model(f, "gaussian"),
                      regimes={"quit": gt.regimes.always(), "no_quit": gt.regimes.never()},
                      n_samples=200_000, seed=1).fit(pt)
    est = res.estimates["diff[quit-no_quit]"]
    # exact standardisation over the observed persons, for the MC error of the resampling
    fit = res.models["outcome"]
    exact = fit.predict(d.assign(qsmk=1.0)).mean() - fit.predict(d.assign(qsmk=0.0)).mean()
    # the same standardisation with statsmodels' formula API (What If's own Python code)
    import statsmodels.formula.api as smf

    ols = smf.ols(f, data=d).fit()
    sm_exact = ols.predict(d.assign(qsmk=1.0)).mean() - ols.predict(d.assign(qsmk=0.0)).mean()
    assert abs(exact - sm_exact) < 1e-8
    assert abs(exact - 3.52) < 0.005  # What If, program 13.4: 5.273 - 1.756 = 3.52
    assert abs(est - exact) < 0.02  # MC SE of the resampled difference ~ 0.003
    assert abs(est - 3.52) < 0.03


# -- the sepsis cohort ---------------------------------------------------------------------------------------


def _sepsis_spec(n_samples, seed=3, competing=False):
    M = S.SEPSIS_MODELS
    regs = {"natural": gt.regimes.natural(), "always": gt.regimes.always(), "never": gt.regimes.never(),
            "lactate4": gt.regimes.threshold("lactate", ">", 4.0, absorbing=True)}
    return gt.GFormula(covariate_models=[gt.Model(*M["sofa"]), gt.Model(*M["lactate"])],
                       treatment_model=gt.Model(*M["vaso"]), outcome_model=gt.Model(*M["death"]),
                       competing_model=gt.Model(*M["discharge"]) if competing else None,
                       censor_model=None if competing else gt.Model(*M["discharge"]),
                       regimes=regs, n_samples=n_samples, seed=seed)


def _sepsis_check(competing: bool):
    roles = S.SEPSIS_ROLES_COMPETING if competing else S.SEPSIS_ROLES
    df = S.simulate(4000, 77, competing=competing)
    pt = gt.PersonTime.from_long(df, **roles).add_history(*S.history_features())
    spec = _sepsis_spec(20_000, competing=competing)
    res = spec.fit(pt)
    boot_spec = _sepsis_spec(2_000, competing=competing)
    boot = gt.bootstrap(boot_spec, pt, n_boot=20, n_jobs=1, seed=11)
    truth_fn = S.true_cif if competing else S.true_risk
    out = []
    for g, reg in spec.regimes.items():
        truth, tse = truth_fn(None if g == "natural" else reg, n=100_000, return_se=True)
        key = f"risk[{g},t=27]"
        est, se = res.estimates[key], boot.se[key]
        out.append((g, truth.iloc[-1], est, se))
        # 3 bootstrap SEs (20 replicates: the SE itself is uncertain by ~16%) plus the truth's MC SE
        assert abs(est - truth.iloc[-1]) < 3 * np.sqrt(se ** 2 + tse.iloc[-1] ** 2), out[-1]
    return res, out


def test_sepsis_risk_under_always_never_threshold_and_natural_within_3_se_of_truth():
    res, _ = _sepsis_check(competing=False)
    # regimes ordered as the truth orders them
    last = res.risk.iloc[-1]
    assert last["always"] < last["lactate4"] < last["natural"] < last["never"]


def test_sepsis_competing_discharge_cumulative_incidence_within_3_se_of_truth():
    _sepsis_check(competing=True)


def test_natural_course_flags_nothing_gross_under_correct_models_with_ipcw():
    df = S.simulate(3000, 5)
    pt = gt.PersonTime.from_long(df, **S.SEPSIS_ROLES).add_history(*S.history_features())
    res = _sepsis_spec(10_000).fit(pt)
    nc = res.natural_course()
    tab = nc.table
    assert set(tab.index.get_level_values(0)) == {"risk", "sofa", "lactate", "vaso"}
    # correct models: simulated covariate means within 0.1 observed SD nearly everywhere
    # (only days with >= 400 patients under follow-up: there the observed mean's own sampling noise
    # is <= 0.05 SD, so 0.1 SD is a real discrepancy)
    at_risk = pt.data.groupby("day").size()
    cov = tab.drop(index="risk", level=0)
    cov = cov[np.isin(cov.index.get_level_values(1), at_risk.index[at_risk >= 400])]
    assert len(cov) > 30 and (cov["std_difference"].abs() < 0.1).mean() > 0.9
    assert nc.largest.shape[0] == 5


# -- a continuous end-of-follow-up outcome with treatment–confounder feedback --------------------------------


def _feedback_data(n, seed):
    """L_t = 0.5 L_{t-1} - 0.8 A_{t-1} + e; A_t ~ Bern(expit(0.8 L_t - 0.2)); Y = 1 + 0.7 L_2 + 0.5 A_2 + 0.4 A_1 + e.

    Truth: E[L_2^a] = -0.4 a_0 - 0.8 a_1, so E[Y^always] = 1 - 0.84 + 0.9 = 1.06 and E[Y^never] = 1.
    """
    rng = np.random.default_rng(seed)
    L, A = np.zeros((n, 3)), np.zeros((n, 3))
    for t in range(3):
        L[:, t] = (0.5 * L[:, t - 1] - 0.8 * A[:, t - 1] if t else 0.0) + rng.normal(size=n)
        A[:, t] = rng.random(n) < _expit(0.8 * L[:, t] - 0.2)
    Y = 1 + 0.7 * L[:, 2] + 0.5 * A[:, 2] + 0.4 * A[:, 1] + rng.normal(size=n)
    return pd.DataFrame({"id": np.repeat(np.arange(n), 3), "t": np.tile(np.arange(3), n), "L": L.ravel(),
                         "A": A.ravel(), "Y": np.repeat(Y, 3)})


def test_continuous_outcome_with_feedback_means_under_always_and_never_within_3_se_of_truth():
    pt = gt.PersonTime.from_long(_feedback_data(3000, 4), id="id", time="t", treatment="A", covariates=["L"],
                                 outcome="Y", outcome_type="continuous").add_history(gt.lag("L"), gt.lag("A"))
    spec = gt.GFormula(covariate_models=[gt.Model("L ~ lag1_L + lag1_A", "gaussian")],
                       outcome_model="Y ~ L + A + lag1_A",
                       regimes={"always": gt.regimes.always(), "never": gt.regimes.never()},
                       n_samples=20_000, seed=2)
    res = spec.fit(pt)
    spec.n_samples = 3000
    boot = gt.bootstrap(spec, pt, n_boot=30, seed=3)
    truth = {"mean[always]": 1.06, "mean[never]": 1.0, "diff[always-never]": 0.06}
    for k, v in truth.items():
        assert abs(res.estimates[k] - v) < 3 * boot.se[k], (k, res.estimates[k], boot.se[k])
    # a naive comparison of treated and untreated is far off: the feedback matters
    assert res.mean.index.tolist() == ["always", "never"]


# -- the patient in front of you -----------------------------------------------------------------------------


def test_predict_individual_matches_the_generators_conditional_truth():
    df = S.simulate(4000, 21)
    pt = gt.PersonTime.from_long(df, **S.SEPSIS_ROLES).add_history(*S.history_features())
    spec = _sepsis_spec(2000)
    spec.regimes = {"always": gt.regimes.always(), "never": gt.regimes.never()}
    res = spec.fit(pt)
    counts = df.groupby("id").size()
    pid = counts.index[counts >= 6][0]
    hist = df[(df["id"] == pid) & (df["day"] <= 4)]
    pred = res.predict_individual(hist, n_samples=20_000, seed=1)

    class _Individual:  # bootstrap the patient's prediction through the same protocol
        seed = 0

        def fit(self, p):
            s = _sepsis_spec(500, seed=self.seed)
            s.regimes = spec.regimes
            return s.fit(p).predict_individual(hist, n_samples=2000, seed=self.seed)

    boot = gt.bootstrap(_Individual(), pt, n_boot=15, seed=4)
    for g, reg in spec.regimes.items():
        truth, tse = S.true_risk_from_history(hist, reg, n=50_000, return_se=True)
        est = pred.risk.loc[(pid, 27), g]
        se = boot.se[f"risk[{g},id={pid},t=27]"]
        assert abs(est - truth.iloc[-1]) < 3 * np.sqrt(se ** 2 + tse.iloc[-1] ** 2), (g, est, truth.iloc[-1], se)
    assert pred.risk.index.get_level_values(1).min() == 5


# -- weights, errors, results ---------------------------------------------------------------------------------


def test_zero_weight_persons_are_never_resampled_and_counts_match_duplicated_persons(families_pt):
    pt = families_pt
    counts = np.zeros(pt.n_persons)
    counts[: pt.n_persons // 2] = 2.0
    spec = _all_families_spec("numba")
    spec.keep_simulated = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = spec.fit(pt.with_person_counts(counts))
    kept_ids = set(pt.persons[: pt.n_persons // 2])
    w = pt.with_person_counts(counts)
    first = np.flatnonzero(w.data["t"].to_numpy() == 0)
    assert set(w.data["id"].to_numpy()[first][w.row_weights()[first] > 0]) <= kept_ids
    # models equal the fit on the duplicated persons
    dup = pt.subset_persons(kept_ids)
    m = spec.covariate_models[1].fit(dup, rows=dup.data["t"].to_numpy() > 0)
    assert np.allclose(m.params, res.models["covariates"][1].params, atol=1e-8)


def test_covariate_model_reading_a_later_drawn_value_raises_a_clear_error(families_pt):
    spec = gt.GFormula(covariate_models=[gt.Model("L1 ~ L2 + lag1_A"), gt.Model("L2 ~ L1 + lag1_L2", "gaussian")],
                       treatment_model="A ~ L1", outcome_model="Y ~ A + L1", n_samples=100)
    with pytest.raises(ValueError, match="drawn later in the interval"):
        spec.fit(families_pt)
    spec = gt.GFormula(covariate_models=[gt.Model("L1 ~ ever_A")], treatment_model="A ~ L1",
                       outcome_model="Y ~ A + L1", n_samples=100)
    with pytest.raises(ValueError, match="current value of A"):
        spec.fit(families_pt)


def test_time_varying_covariate_without_a_model_raises_data_error(families_pt):
    spec = gt.GFormula(covariate_models=[gt.Model("L1 ~ lag1_A")], treatment_model="A ~ L1",
                       outcome_model="Y ~ A + L1 + L2", n_samples=100)
    with pytest.raises(gt.DataError, match="no covariate model"):
        spec.fit(families_pt)


def test_result_tables_estimates_and_plots(families_pt, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    spec = _all_families_spec("numba")
    spec.keep_simulated = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = spec.fit(families_pt)
    c = res.contrast("always", "natural")
    assert np.allclose(c["rd"], res.risk["always"] - res.risk["natural"])
    est = res.estimates
    assert est["risk[always,t=4]"] == res.risk["always"].iloc[-1]
    assert "rr[natural-always,t=4]" in est.index and not est.isna().any()
    tab = res.summary()
    assert list(tab.index) == list(res.regimes) and "risk" in repr(res)
    assert res.plot() is not None
    assert res.natural_course().plot() is not None
    assert (res.mc_se.to_numpy() > 0).all()
