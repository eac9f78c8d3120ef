"""Building blocks of the g-formula's Monte Carlo engine (speed-ups that must not change results)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gformula import _all_families_data, _all_families_spec

import gtools as gt
from gtools.gformula import engine as E
from gtools.gformula import spec as gspec


@pytest.mark.parametrize("K", [1, 2, 7, 300])
@pytest.mark.parametrize("kind", ["ones", "counts", "many_zeros", "heavy_tail"])
def test_guide_table_search_equals_numpy_searchsorted_right(K, kind):
    rng = np.random.default_rng(K)
    w = {"ones": np.ones(K), "counts": rng.poisson(1.0, K).astype(float),
         "many_zeros": np.where(rng.random(K) < 0.6, 0.0, rng.random(K)), "heavy_tail": rng.pareto(0.5, K)}[kind]
    w[-1] = max(w[-1], 1e-3)
    cw = np.cumsum(w)
    x = np.concatenate([rng.random(5000) * cw[-1], cw, [0.0, cw[-1], np.nextafter(cw[-1], 0.0)]])
    out = np.empty(len(x), dtype=np.int64)
    E.search_right(cw, x, np.empty(K, dtype=np.int64), out)
    assert np.array_equal(out, np.searchsorted(cw, x, side="right"))


def test_vectorised_exp_is_within_two_ulp_of_numpy_and_keeps_nan():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700, 700, 400), rng.uniform(-1, 1, 100), [0.0, -0.0, 1e-300, np.nan]])
    m = len(x)
    out, t, sc = np.empty(m), np.empty(m), np.empty(m)
    E._exp_strip(1.0, x, m, out, t, t.view(np.int64), sc, sc.view(np.int64))
    ok = ~np.isnan(x)
    rel = np.abs(out[ok] / np.exp(x[ok]) - 1.0)
    assert rel.max() <= 2 * np.finfo(float).eps
    assert np.isnan(out[~ok]).all()
    E._exp_strip(-1.0, x, m, out, t, t.view(np.int64), sc, sc.view(np.int64))
    assert np.abs(out[ok] / np.exp(-x[ok]) - 1.0).max() <= 2 * np.finfo(float).eps


@pytest.fixture(scope="module")
def families():
    df = _all_families_data()
    pt = gt.PersonTime.from_long(df, id="id", time="t", treatment="A",
                                 covariates=["L1", "L2", "L3", "L4", "L5", "L6", "L7"], baseline=["W"], outcome="Y")
    pt = pt.add_history(gt.lag("L1"), gt.lag("L2"), gt.lag("A"), gt.cummean("L1"), gt.lag(gt.cummean("L1")),
                        gt.time_since(gt.lag("A")), gt.ever(gt.lag("A")), gt.cumsum(gt.lag("A")),
                        gt.cumsum("A"), gt.ever("A"))
    return pt


@pytest.mark.filterwarnings("ignore:model for L1:gtools.FitWarning")  # C(t) with few persons: not the point here
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_regimes_simulated_together_equal_each_regime_simulated_alone(families, engine, monkeypatch):
    """The random numbers drawn once per block and interval are the ones a regime alone gets (several blocks)."""
    monkeypatch.setattr(E, "BLOCK", 700)
    spec = _all_families_spec(engine)
    spec.n_samples = 1500
    fitted = spec._fit_models(families)
    plan = spec._plan(families, fitted)
    ss_base, ss_sim = gspec.seed_sequence(spec.seed).spawn(2)
    M0 = spec._baseline(families, plan, np.random.default_rng(ss_base))
    regs = spec._regimes()
    together = gspec.run_regimes(plan, regs, M0, fitted["T"], ss_sim, engine)
    monkeypatch.setattr(gspec, "GROUP_BYTES", 1)  # memory cap: one regime at a time, the same draws again
    grouped = gspec.run_regimes(plan, regs, M0, fitted["T"], ss_sim, engine)
    for name, reg in regs.items():
        alone = gspec.run_population(plan, reg, M0, fitted["T"], ss_sim, engine)
        assert alone.n == together[name].n == grouped[name].n == 1500
        for field in ("risk_sum", "risk_sq", "surv_sum", "cov_wsum", "cov_w"):
            assert np.array_equal(getattr(alone, field), getattr(together[name], field)), (name, field)
            assert np.array_equal(getattr(alone, field), getattr(grouped[name], field)), (name, field)
