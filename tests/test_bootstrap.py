"""The person-level bootstrap: reproducibility across workers and backends, failures, intervals."""

import numpy as np
import pandas as pd
import pytest

import gtools as gt
from gtools.bootstrap import replicate_counts


@pytest.fixture(scope="module")
def pt():
    rng = np.random.default_rng(11)
    n, k = 300, 4
    ids = np.repeat(np.arange(n), k)
    t = np.tile(np.arange(k), n)
    w = np.repeat(rng.normal(size=n), k)
    l = rng.normal(size=n * k) + 0.5 * w
    a = (rng.random(n * k) < 1 / (1 + np.exp(-(0.2 + 0.8 * l)))).astype(float)
    df = pd.DataFrame({"id": ids, "time": t, "W": w, "L": l, "A": a, "Y": 0.0})
    return gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], baseline=["W"],
                                   outcome="Y")


SPEC = gt.Model("A ~ L + W", family="binomial")


def test_bootstrap_is_identical_for_any_number_of_workers(pt):
    b1 = gt.bootstrap(SPEC, pt, n_boot=12, n_jobs=1, seed=7)
    b2 = gt.bootstrap(SPEC, pt, n_boot=12, n_jobs=2, seed=7)
    b_all = gt.bootstrap(SPEC, pt, n_boot=12, n_jobs=-1, seed=7)
    pd.testing.assert_frame_equal(b1.replicates, b2.replicates, check_exact=True)
    pd.testing.assert_frame_equal(b1.replicates, b_all.replicates, check_exact=True)


def test_bootstrap_is_identical_between_loky_and_threading_backends(pt):
    from joblib import parallel_config

    with parallel_config(backend="loky"):
        a = gt.bootstrap(SPEC, pt, n_boot=8, n_jobs=2, seed=3)
    with parallel_config(backend="threading"):
        b = gt.bootstrap(SPEC, pt, n_boot=8, n_jobs=2, seed=3)
    pd.testing.assert_frame_equal(a.replicates, b.replicates, check_exact=True)


def test_replicate_equals_refit_on_explicitly_resampled_persons(pt):
    rng = np.random.default_rng(np.random.SeedSequence(5).spawn(1)[0])
    counts = replicate_counts(rng, pt.n_persons)
    boot = gt.bootstrap(SPEC, pt, n_boot=2, seed=5)
    rows = np.repeat(np.arange(pt.n_rows), counts[pt.person_index].astype(int))
    dup = pt.data.iloc[rows].copy()
    # relabel duplicated persons so each copy is its own person
    copy_no = dup.groupby(level=0).cumcount().to_numpy()
    dup["id"] = dup["id"].to_numpy() * 1000 + copy_no
    dup = dup.sort_values(["id", "time"])
    pt2 = gt.PersonTime.from_long(dup.reset_index(drop=True), **pt.roles)
    ref = SPEC.fit(pt2).estimates
    np.testing.assert_allclose(boot.replicates.iloc[0].to_numpy(), ref.to_numpy(), atol=1e-9)


def test_bootstrap_se_agrees_with_model_based_se_for_a_correct_glm(pt):
    boot = gt.bootstrap(SPEC, pt, n_boot=200, seed=1)
    model_se = SPEC.fit(pt).summary()["se"]
    # persons have 4 independent rows here, so the cluster bootstrap SE ~ model SE;
    # the SE of a bootstrap SE with B=200 is about SE/sqrt(2B) = 5%; allow 4 of those
    ratio = boot.se.to_numpy() / model_se.to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.2), ratio


def test_summary_has_point_se_and_both_intervals(pt):
    boot = gt.bootstrap(SPEC, pt, n_boot=30, seed=2)
    tab = boot.summary()
    assert list(tab.index) == ["coef[Intercept]", "coef[L]", "coef[W]"]
    assert {"estimate", "se", "95% lower (percentile)", "95% upper (normal)"} <= set(tab.columns)
    np.testing.assert_allclose(tab["estimate"], SPEC.fit(pt).estimates)
    assert (tab["95% lower (percentile)"] < tab["estimate"]).all()
    assert (tab["95% upper (percentile)"] > tab["estimate"]).all()


class _Flaky:
    """Fails on replicates whose resample has an odd count for person 0."""

    def fit(self, pt):
        if pt.weights is not None and int(pt.weights[0]) % 2 == 1:
            raise RuntimeError("odd count for person 0")
        return SPEC.fit(pt)


def test_failed_replicates_are_recorded_with_type_and_message_and_warned(pt):
    with pytest.warns(gt.FitWarning, match="replicates failed"):
        boot = gt.bootstrap(_Flaky(), pt, n_boot=20, seed=4)
    assert len(boot.failures) > 1
    assert len(boot.failures) + len(boot.replicates) == 20
    assert boot.failures["error"].str.startswith("RuntimeError: odd count").all()
    assert "RuntimeError" in repr(boot)


def test_m_out_of_n_bootstrap_resamples_m_persons_and_rescales_intervals(pt):
    full = gt.bootstrap(SPEC, pt, n_boot=100, seed=9)
    m = gt.bootstrap(SPEC, pt, n_boot=100, seed=9, m=150)
    # replicates of half the size spread sqrt(2) times wider...
    assert 1.2 < (m.se / full.se).mean() < 1.7
    # ...but the rescaled interval has the same width as the full bootstrap's, roughly
    w_full = (full.conf_int()["upper"] - full.conf_int()["lower"]).mean()
    w_m = (m.conf_int()["upper"] - m.conf_int()["lower"]).mean()
    assert 0.75 < w_m / w_full < 1.33


def test_estimator_seed_is_replaced_by_the_replicate_stream(pt):
    class Noisy:
        seed = 0

        def fit(self, pt):
            rng = np.random.default_rng(self.seed)

            class R:
                estimates = pd.Series({"u": rng.random()})
            return R()

    boot = gt.bootstrap(Noisy(), pt, n_boot=5, seed=1)
    assert boot.replicates["u"].nunique() == 5


def test_bootstrap_runs_on_a_dask_local_cluster_and_equals_the_local_result(pt):
    distributed = pytest.importorskip("dask.distributed")
    from joblib import parallel_config

    local = gt.bootstrap(SPEC, pt, n_boot=6, n_jobs=2, seed=21)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with parallel_config(backend="dask"):
            remote = gt.bootstrap(SPEC, pt, n_boot=6, n_jobs=2, seed=21)
    pd.testing.assert_frame_equal(local.replicates, remote.replicates, check_exact=True)
