"""Peer benchmark: pygformula 1.2.0's documented survival example ("Get Started").

Run it under the benchmark venv (see benchmarks/peers/README.md), with the import shim on PYTHONPATH:

    PYTHONPATH=/work/shared/peers/pygformula /work/bench-venv/bin/python \\
        benchmarks/peers/pygformula_runner.py --n-samples 2500 --json /tmp/pygf_2500.json

Data: pygformula's example data set ``basicdata_nocomp`` (2,500 persons, 13,170 person-time rows,
t0 = 0..6), read with pandas from the local copy
/work/shared/peers/pygformula/example_data_basicdata_nocomp.csv.gz (its loader,
``pygformula.data.load_basicdata_nocomp``, downloads the same CSV from the internet).

The model specification, exactly as in pygformula's docs ("Get Started" -> Example, and
running_examples/get_started_example.py of CausalInference/pygformula):

    id = 'id', time_name = 't0', outcome_name = 'Y', outcome_type = 'survival'
    covnames  = ['L1', 'L2', 'A']
    covtypes  = ['binary', 'bounded normal', 'binary']
    covmodels = ['L1 ~ lag1_A + lag2_A + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0',
                 'L2 ~ lag1_A + L1 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0',
                 'A ~ lag1_A + L1 + L2 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0']
    basecovs  = ['L3']
    ymodel    = 'Y ~ L1 + L2 + L3 + A + lag1_A + lag1_L1 + lag1_L2 + t0'
    time_points  = max(t0) + 1 = 7
    int_descript = ['Never treat', 'Always treat']
    Intervention1_A = [static, np.zeros(time_points)]
    Intervention2_A = [static, np.ones(time_points)]
    (plus the natural course, which pygformula always adds as intervention 0)

Histories. pygformula 1.2.0 has no ``histories``/``histvars`` arguments (only custom ones); it
derives the history terms from the names used in the formulas:
    lagged:      lag1_A, lag2_A, lag1_L1, lag1_L2   (lagk_X = X at t0 - k; 0 when t0 < k, since
                 baselags=False and there are no pre-baseline rows)
    cumavg lag:  lag_cumavg1_L1, lag_cumavg1_L2     (lag_cumavgk_X = mean of X over 0..t0-k;
                 0 when t0 < k)
i.e. lagged histories of ['A', 'L1', 'L2'] and cumulative-average histories of ['L1', 'L2'].

Fitting data: the covariate models (L1, L2, A: A is one of covnames) are fitted on the rows with
t0 > 0 only (at t0 = 0 pygformula keeps each sampled person's observed L1, L2, A; interventions then set
A); the outcome model on all rows.

Model families (pygformula defaults, statsmodels GLMs through patsy formulas; L3 enters linearly):
    binary          logistic GLM; simulated by a Bernoulli draw
    bounded normal  L2 rescaled to [0, 1] by its min/max over t0 > 0 rows, Gaussian GLM; simulated as
                    N(mean, RMSE), mapped back to the original scale and clipped to [min, max]
    outcome Y       logistic GLM on person-time rows (discrete hazard); the reported risk is the
                    mean over simulated persons of the cumulative risk at each t0

Seeds: ``seed`` (default 1234) seeds Python's and numpy's RNGs; the simulation seed is the first
draw of random.sample, the bootstrap seeds the following ones. The Monte Carlo sample size is
pygformula's ``n_simul``; when it differs from the number of persons, n_simul persons (their whole
records, of which the t0 = 0 rows start the simulation) are resampled with replacement.

Output: prints the risk at the last interval (t0 = 6) for natural course / never / always, and with
--json writes {"risk_last": {"natural", "never", "always"}, "risk_curve": {...}, "time_fit_simulate_s",
"time_bootstrap_s", "n_boot", ...}. Timing uses time.perf_counter: ``time_fit_simulate_s`` covers
constructing ParametricGformula (it builds the history columns) and g.fit() up to the start of the
bootstrap; ``time_bootstrap_s`` the bootstrap (nsamples replicates) inside g.fit(). Nothing is
plotted or saved (save_results=False); pygformula runs in a temporary working directory.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import pandas as pd

DATA_PATH = "/work/shared/peers/pygformula/example_data_basicdata_nocomp.csv.gz"

TIME_NAME = "t0"
ID_NAME = "id"
OUTCOME_NAME = "Y"
OUTCOME_TYPE = "survival"
COVNAMES = ["L1", "L2", "A"]
COVTYPES = ["binary", "bounded normal", "binary"]
COVMODELS = [
    "L1 ~ lag1_A + lag2_A + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0",
    "L2 ~ lag1_A + L1 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0",
    "A ~ lag1_A + L1 + L2 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0",
]
BASECOVS = ["L3"]
YMODEL = "Y ~ L1 + L2 + L3 + A + lag1_A + lag1_L1 + lag1_L2 + t0"
INT_DESCRIPT = ["Never treat", "Always treat"]

README_RISK_2500 = {"natural": 0.50396, "never": 0.73346, "always": 0.23297}


def load_data(path: str = DATA_PATH) -> pd.DataFrame:
    """Read the local copy of basicdata_nocomp, sorted by id and time as pygformula expects."""
    data = pd.read_csv(path)
    return data.sort_values([ID_NAME, TIME_NAME]).reset_index(drop=True)


def run(n_samples: int = 10000, seed: int = 1234, nsamples_boot: int = 0, parallel: bool = False,
        ncores: int = 2, data_path: str = DATA_PATH) -> dict:
    """Run the documented example once and return risks and timings."""
    import pygformula.parametric_gformula.parametric_gformula as pgf_module
    from pygformula import ParametricGformula
    from pygformula.interventions import static

    obs_data = load_data(data_path)
    time_points = int(np.max(np.unique(obs_data[TIME_NAME]))) + 1

    # Mark the start of the bootstrap: pygformula wraps range(nsamples) in tqdm right before the
    # replicates are run (in the main process, also with parallel=True).
    marks: dict[str, float] = {}
    original_tqdm = pgf_module.tqdm

    def marking_tqdm(*args, **kwargs):
        marks.setdefault("boot_start", time.perf_counter())
        return original_tqdm(*args, **kwargs)

    pgf_module.tqdm = marking_tqdm
    old_cwd = os.getcwd()
    try:
        with tempfile.TemporaryDirectory(prefix="pygformula_run_") as tmp:
            os.chdir(tmp)
            t0 = time.perf_counter()
            g = ParametricGformula(
                obs_data=obs_data, id=ID_NAME, time_name=TIME_NAME, time_points=time_points,
                int_descript=list(INT_DESCRIPT),
                covnames=list(COVNAMES), covtypes=list(COVTYPES), covmodels=list(COVMODELS),
                basecovs=list(BASECOVS),
                outcome_name=OUTCOME_NAME, ymodel=YMODEL, outcome_type=OUTCOME_TYPE,
                Intervention1_A=[static, np.zeros(time_points)],
                Intervention2_A=[static, np.ones(time_points)],
                n_simul=n_samples, seed=seed, nsamples=nsamples_boot,
                parallel=parallel, ncores=ncores if parallel else None,
                save_results=False,
            )
            g.fit()
            t_end = time.perf_counter()
            os.chdir(old_cwd)
    finally:
        os.chdir(old_cwd)
        pgf_module.tqdm = original_tqdm

    boot_start = marks.get("boot_start", t_end)
    curves = [list(map(float, res)) for res in g.g_results]
    names = ["natural", "never", "always"]
    result = {
        "peer": "pygformula",
        "peer_version": _version("pygformula"),
        "n_samples": n_samples,
        "seed": seed,
        "risk_last": {name: curve[-1] for name, curve in zip(names, curves)},
        "risk_curve": dict(zip(names, curves)),
        "time_fit_simulate_s": boot_start - t0,
        "time_bootstrap_s": (t_end - boot_start) if nsamples_boot > 0 else 0.0,
        "time_total_s": t_end - t0,
        "n_boot": nsamples_boot,
        "parallel": bool(parallel),
        "ncores": ncores if parallel else 1,
        "python": platform.python_version(),
    }
    if nsamples_boot > 0:
        result["time_per_replicate_s"] = result["time_bootstrap_s"] / nsamples_boot
        boot_last = {}
        for j, name in enumerate(names):
            vals = [float(b[j][-1]) for b in g.boot_results]
            boot_last[name] = {"se": float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan"),
                               "n_ok": len(vals)}
        result["boot_last"] = boot_last
    return result


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10000, help="Monte Carlo sample size (n_simul)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--nsamples-boot", type=int, default=0, help="bootstrap replicates (0 = none)")
    parser.add_argument("--parallel", action="store_true",
                        help="joblib parallelism (simulation and bootstrap)")
    parser.add_argument("--ncores", type=int, default=2)
    parser.add_argument("--data", default=DATA_PATH)
    parser.add_argument("--json", dest="json_out", default=None, help="write results to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="hide pygformula's own printout")
    args = parser.parse_args(argv)

    sink = open(os.devnull, "w") if args.quiet else sys.stdout
    try:
        with contextlib.redirect_stdout(sink):
            res = run(n_samples=args.n_samples, seed=args.seed, nsamples_boot=args.nsamples_boot,
                      parallel=args.parallel, ncores=args.ncores, data_path=args.data)
    finally:
        if sink is not sys.stdout:
            sink.close()

    rl = res["risk_last"]
    print(f"pygformula {res['peer_version']}  n_samples={res['n_samples']} seed={res['seed']}")
    print(f"risk at last interval: natural={rl['natural']:.5f} never={rl['never']:.5f} "
          f"always={rl['always']:.5f}")
    if args.n_samples == 2500 and args.seed == 1234:
        ref = README_RISK_2500
        diff = max(abs(rl[k] - ref[k]) for k in ref)
        print(f"  shared/peers README (2500, seed 1234): {ref['natural']:.5f} / {ref['never']:.5f} / "
              f"{ref['always']:.5f}; max abs diff {diff:.2e}")
    print(f"time fit+simulate: {res['time_fit_simulate_s']:.2f} s")
    if res["n_boot"]:
        print(f"time bootstrap: {res['time_bootstrap_s']:.2f} s for {res['n_boot']} replicates "
              f"({res['time_per_replicate_s']:.2f} s each; parallel={res['parallel']}, "
              f"ncores={res['ncores']})")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
