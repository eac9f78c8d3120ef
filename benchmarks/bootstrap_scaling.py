"""Bootstrap scaling: a logistic-model estimate on a 200,000-row panel.

Prints, from one run on this machine:
* replicates per second with n_jobs=1 and n_jobs=2, and the speed-up;
* the cost of one gtools replicate (frequency weights on a prebuilt design)
  against refitting the same model from the DataFrame with statsmodels'
  formula API, as a user would write it;
* peak resident memory of the whole process for n_boot=50 and n_boot=500
  (each measured in a fresh subprocess).

Run: python benchmarks/bootstrap_scaling.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd


def make_panel(n_rows: int, k: int = 10, seed: int = 0):
    import gtools as gt

    rng = np.random.default_rng(seed)
    n = n_rows // k
    ids = np.repeat(np.arange(n), k)
    t = np.tile(np.arange(k), n)
    w = np.repeat(rng.normal(size=n), k)
    l1 = rng.normal(size=n * k) + 0.3 * w
    l2 = (rng.random(n * k) < 0.4).astype(float)
    eta = -0.5 + 0.7 * l1 - 0.4 * l2 + 0.2 * w + 0.05 * t
    a = (rng.random(n * k) < 1 / (1 + np.exp(-eta))).astype(float)
    df = pd.DataFrame({"id": ids, "time": t, "W": w, "L1": l1, "L2": l2, "A": a, "Y": 0.0})
    pt = gt.PersonTime.from_long(df, id="id", time="time", treatment="A", covariates=["L1", "L2"],
                                 baseline=["W"], outcome="Y")
    return df, pt


FORMULA = "A ~ L1 + L2 + W + time"


def peak_rss_child(n_boot: int, rows: int) -> float:
    code = (
        "import resource, gtools as gt, sys; sys.path.insert(0, 'benchmarks');"
        "from bootstrap_scaling import make_panel, FORMULA;"
        f"df, pt = make_panel({rows}); del df;"
        f"gt.bootstrap(gt.Model(FORMULA), pt, n_boot={n_boot}, n_jobs=1, seed=1);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    import gtools as gt

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--n-boot", type=int, default=40)
    ap.add_argument("--json")
    args = ap.parse_args()
    df, pt = make_panel(args.rows)
    spec = gt.Model(FORMULA)
    gt.bootstrap(spec, pt, n_boot=2, n_jobs=1, seed=0)  # warm up (design matrix, imports)

    t0 = time.perf_counter()
    b1 = gt.bootstrap(spec, pt, n_boot=args.n_boot, n_jobs=1, seed=1)
    t1 = time.perf_counter() - t0
    gt.bootstrap(spec, pt, n_boot=4, n_jobs=2, seed=0)  # start the worker pool
    t0 = time.perf_counter()
    b2 = gt.bootstrap(spec, pt, n_boot=args.n_boot, n_jobs=2, seed=1)
    t2 = time.perf_counter() - t0
    assert b1.replicates.equals(b2.replicates), "results differ between n_jobs=1 and 2"

    # one replicate: gtools (frequency weights on the cached design) vs statsmodels formula refit
    rng = np.random.default_rng(3)
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        counts = np.bincount(rng.integers(0, pt.n_persons, pt.n_persons), minlength=pt.n_persons)
        spec.fit(pt.with_person_counts(counts.astype(float)))
    t_gt = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    ids = df["id"].unique()
    for _ in range(reps):
        pick = rng.choice(ids, size=len(ids), replace=True)
        boot_df = df.set_index("id").loc[pick].reset_index()
        smf.glm(FORMULA, data=boot_df, family=sm.families.Binomial()).fit()
    t_sm = (time.perf_counter() - t0) / reps

    rss50 = peak_rss_child(50, args.rows)
    rss500 = peak_rss_child(500, args.rows)
    res = {
        "rows": args.rows, "n_boot": args.n_boot,
        "reps_per_s_1_job": args.n_boot / t1, "reps_per_s_2_jobs": args.n_boot / t2, "speedup": t1 / t2,
        "replicate_s_gtools": t_gt, "replicate_s_statsmodels_formula": t_sm, "replicate_cost_ratio": t_sm / t_gt,
        "peak_rss_mb_50": rss50, "peak_rss_mb_500": rss500,
        "this_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(f"panel: {args.rows:,} rows, {pt.n_persons:,} persons; model {FORMULA}")
    print(f"n_jobs=1: {res['reps_per_s_1_job']:.1f} replicates/s   n_jobs=2: {res['reps_per_s_2_jobs']:.1f} "
          f"replicates/s   speed-up {res['speedup']:.2f}x (identical results)")
    print(f"one replicate: gtools {t_gt * 1e3:.1f} ms vs statsmodels formula refit {t_sm * 1e3:.1f} ms "
          f"-> {res['replicate_cost_ratio']:.1f}x cheaper")
    print(f"peak RSS: n_boot=50 {rss50:.0f} MB, n_boot=500 {rss500:.0f} MB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
