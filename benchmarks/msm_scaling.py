"""Speed and memory: stabilised IPTW x IPCW + pooled-logistic MSM + cluster-robust SE.

gtools (``gt.IPTW`` + ``gt.MSM``) against the same analysis written the way a
user writes it today with statsmodels' formula API (four ``smf.glm`` weight
models, ``groupby().cumprod()`` of the predicted probability ratios, a
weighted ``smf.glm`` with ``cov_type="cluster"``), on the same simulated data
in the same run, at 10k / 100k / 1M person-time rows. Time is wall clock of
one run (a warm-up run on 10k rows first); peak memory is the peak of
Python-tracked allocations (tracemalloc, which numpy reports to) during a
second run, against the size of the input table.

Run by hand: ``PYTHONPATH=. python benchmarks/msm_scaling.py [max_rows]``.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf

import gtools as gt

K = 10
DEN = "A ~ L + lag1_A + W + time"
NUM = "A ~ lag1_A + W + time"
CDEN = "C ~ L + lag1_A + W + time"
CNUM = "C ~ lag1_A + W + time"
MSM = "Y ~ cumsum_A + W + time"


def simulate(n_rows: int, seed: int = 1) -> pd.DataFrame:
    """Treatment-confounder feedback over K = 10 intervals; rare death and censoring."""
    rng = np.random.default_rng(seed)
    n = int(n_rows / (K * 0.93))
    W = (rng.random(n) < 0.5).astype(float)
    L, A = np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    parts = []
    for t in range(K):
        L = 0.5 * L - 0.8 * A + 0.3 * W + rng.normal(size=n)
        A = (rng.random(n) < 1 / (1 + np.exp(-(-0.4 + 0.9 * L + 1.0 * A - 0.3 * W)))).astype(float)
        c = rng.random(n) < 1 / (1 + np.exp(-(-4.0 + 0.5 * L)))
        y = rng.random(n) < 1 / (1 + np.exp(-(-4.5 + 0.5 * L - 0.3 * A)))
        idx = np.flatnonzero(alive)
        parts.append(pd.DataFrame({"id": idx, "time": t, "W": W[idx], "L": L[idx], "A": A[idx],
                                   "C": c[idx].astype(float), "Y": np.where(c[idx], np.nan, y[idx].astype(float))}))
        alive &= ~c & ~y
    return pd.concat(parts).sort_values(["id", "time"]).reset_index(drop=True)


def run_gtools(df: pd.DataFrame) -> np.ndarray:
    pt = gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L"], baseline=["W"],
                                 outcome="Y", censor="C").add_history(gt.lag("A"), gt.cumsum("A"))
    w = gt.IPTW(DEN, NUM, censor_model=CDEN, censor_numerator_model=CNUM)
    msm = gt.MSM(MSM, weights=w).fit(pt)
    return np.r_[msm.params.to_numpy(), msm.bse.to_numpy()]


def run_statsmodels(df: pd.DataFrame) -> np.ndarray:
    d = df.copy()
    d["lag1_A"] = d.groupby("id")["A"].shift(1).fillna(0.0)
    d["cumsum_A"] = d.groupby("id")["A"].cumsum()
    binom = sm.families.Binomial()
    pden = smf.glm(DEN, d, family=binom).fit().predict(d)
    pnum = smf.glm(NUM, d, family=binom).fit().predict(d)
    d["tf"] = np.where(d["A"] == 1, pnum / pden, (1 - pnum) / (1 - pden))
    qden = 1 - smf.glm(CDEN, d, family=binom).fit().predict(d)
    qnum = 1 - smf.glm(CNUM, d, family=binom).fit().predict(d)
    d["cf"] = np.where(d["C"] == 1, 1.0, qnum / qden)
    d["sw"] = d.groupby("id")["tf"].cumprod() * d.groupby("id")["cf"].cumprod()
    fit_rows = d[d["C"] == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.glm(MSM, fit_rows, family=binom, var_weights=fit_rows["sw"]).fit(
            cov_type="cluster", cov_kwds={"groups": fit_rows["id"].to_numpy(), "use_correction": False})
    return np.r_[res.params.to_numpy(), res.bse.to_numpy()]


def measure(fn, df):
    t0 = time.perf_counter()
    out = fn(df)
    secs = time.perf_counter() - t0
    tracemalloc.start()
    fn(df)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, secs, peak / 2**20


def main(max_rows: int = 1_000_000) -> pd.DataFrame:
    warnings.simplefilter("ignore")
    small = simulate(10_000, 0)
    run_gtools(small), run_statsmodels(small)  # warm-up (imports, numba compilation)
    rows = []
    for n in [10_000, 100_000, 1_000_000]:
        if n > max_rows:
            break
        df = simulate(n)
        data_mb = df.memory_usage(deep=True).sum() / 2**20
        a, ta, ma = measure(run_gtools, df)
        b, tb, mb = measure(run_statsmodels, df)
        rows.append({"rows": len(df), "data_MB": data_mb, "gtools_s": ta, "statsmodels_s": tb,
                     "speedup": tb / ta, "gtools_peak_MB": ma, "statsmodels_peak_MB": mb,
                     "gtools_mem/data": ma / data_mb, "max|coef,SE diff|": float(np.max(np.abs(a - b)))})
        print(pd.DataFrame(rows).round(3).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
