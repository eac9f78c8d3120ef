"""gtools' GFormula against pygformula on pygformula's documented survival example (basicdata_nocomp).

Both run the same models (benchmarks/peers/pygformula_runner.py documents them), the same regimes
(natural course, never, always) and n_samples=10,000, in the same run:

    cd /work/main && PYTHONPATH=. /work/venv/bin/python benchmarks/gformula_vs_pygformula.py [--peer-boot 100]

pygformula runs in its own venv (/work/bench-venv) through its runner script, with the import shim of
/work/shared/peers/pygformula on PYTHONPATH; gtools runs in this process, numba kernels compiled and
cached beforehand (one warm-up fit). Printed: (a) fit + simulate, (b) a bootstrap with n_jobs=2
(pygformula: its own parallel bootstrap, ``--peer-boot`` replicates, time scaled to 100), the ratios,
a scaling table (persons x simulated persons: model fitting, simulation, simulated person-intervals
per second, peak traced memory of the simulation) and the cold cost of ``import gtools`` + first fit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import gtools as gt  # noqa: E402
from gtools.gformula import spec as gspec  # noqa: E402

DATA = "/work/shared/peers/pygformula/example_data_basicdata_nocomp.csv.gz"
PEER_PY = "/work/bench-venv/bin/python"
PEER_PATH = "/work/shared/peers/pygformula"
RUNNER = os.path.join(HERE, "peers", "pygformula_runner.py")


def make_pt(df: pd.DataFrame):
    pt = gt.PersonTime.from_long(df, id="id", time="t0", treatment="A", covariates=["L1", "L2"], baseline=["L3"],
                                 outcome="Y")
    return pt.add_history(gt.lag("A"), gt.lag("A", 2), gt.lag("L1"), gt.lag("L2"), gt.lag(gt.cummean("L1")),
                          gt.lag(gt.cummean("L2")))


def make_spec(n_samples: int, seed=1234):
    return gt.GFormula(
        covariate_models=[gt.Model("L1 ~ lag1_A + lag2_A + lag1_cummean_L1 + lag1_cummean_L2 + L3 + t0", "binomial"),
                          gt.Model("L2 ~ lag1_A + L1 + lag1_cummean_L1 + lag1_cummean_L2 + L3 + t0",
                                   "bounded_normal")],
        treatment_model=gt.Model("A ~ lag1_A + L1 + L2 + lag1_cummean_L1 + lag1_cummean_L2 + L3 + t0", "binomial"),
        outcome_model=gt.Model("Y ~ L1 + L2 + L3 + A + lag1_A + lag1_L1 + lag1_L2 + t0", "binomial"),
        regimes={"natural": gt.regimes.natural(), "never": gt.regimes.never(), "always": gt.regimes.always()},
        n_samples=n_samples, seed=seed,
    )


def run_peer(n_samples: int, n_boot: int, parallel: bool) -> dict | None:
    if not os.path.exists(PEER_PY):
        print(f"  (pygformula venv {PEER_PY} not found: peer skipped)")
        return None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [PEER_PY, RUNNER, "--n-samples", str(n_samples), "--quiet", "--json", out]
    if n_boot:
        cmd += ["--nsamples-boot", str(n_boot)]
    if parallel:
        cmd += ["--parallel", "--ncores", "2"]
    env = dict(os.environ, PYTHONPATH=PEER_PATH, MPLBACKEND="Agg")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print("  pygformula failed:\n" + proc.stderr[-2000:])
        return None
    with open(out) as fh:
        return json.load(fh)


def best_of(fn, k: int) -> float:
    ts = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def phases(spec, pt, reps: int = 5) -> dict:
    """Median time of model fitting and of simulation (all regimes), and the simulation's peak traced memory."""
    fit_t, sim_t = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        fitted = spec._fit_models(pt)
        plan = spec._plan(pt, fitted)
        t1 = time.perf_counter()
        ss_base, ss_sim = gspec.seed_sequence(spec.seed).spawn(2)
        M0 = spec._baseline(pt, plan, np.random.default_rng(ss_base))
        gspec.run_regimes(plan, spec._regimes(), M0, fitted["T"], ss_sim, "numba")  # as GFormula.fit does
        t2 = time.perf_counter()
        fit_t.append(t1 - t0)
        sim_t.append(t2 - t1)
    tracemalloc.start()
    M0 = spec._baseline(pt, plan, np.random.default_rng(ss_base))
    gspec.run_regimes(plan, spec._regimes(), M0, fitted["T"], ss_sim, "numba")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_pi = spec.n_samples * fitted["T"] * len(spec._regimes())
    return {"fit": float(np.median(fit_t)), "sim": float(np.median(sim_t)), "peak_mb": peak / 2**20,
            "pi_per_s": n_pi / float(np.median(sim_t))}


def bigger(df: pd.DataFrame, n_persons: int, seed: int = 0) -> pd.DataFrame:
    """basicdata_nocomp's persons resampled with replacement to n_persons (new ids)."""
    rng = np.random.default_rng(seed)
    ids = df["id"].unique()
    pick = rng.choice(ids, size=n_persons, replace=True)
    groups = {k: g for k, g in df.groupby("id")}
    sizes = np.array([len(groups[i]) for i in pick])
    out = pd.concat([groups[i] for i in pick], ignore_index=True)
    out["id"] = np.repeat(np.arange(n_persons), sizes)
    return out


def cold_start() -> tuple[float, float]:
    code = (f"import time; t=time.perf_counter(); import sys; sys.path.insert(0, {ROOT!r}); "
            "import benchmarks.gformula_vs_pygformula as b; import pandas as pd; "
            "pt=b.make_pt(pd.read_csv(b.DATA)); b.make_spec(10000).fit(pt); print(time.perf_counter()-t)")
    # the module import itself pulls gtools; measure gtools alone as well
    code_import = "import time; t=time.perf_counter(); import gtools; print(time.perf_counter()-t)"
    env = dict(os.environ, PYTHONPATH=ROOT)
    t_imp = float(subprocess.run([sys.executable, "-c", code_import], env=env, capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip() or "nan")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    t_all = float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else float("nan")
    return t_imp, t_all


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-boot", type=int, default=100, help="pygformula bootstrap replicates (scaled to 100)")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--max-persons", type=int, default=500_000)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    df = pd.read_csv(DATA)
    pt = make_pt(df)
    spec = make_spec(10_000)
    spec.fit(pt)  # compile / load the cached kernels
    res = spec.fit(pt)
    t_gt = best_of(lambda: spec.fit(pt), 9)
    ph = phases(spec, pt)
    print("== basicdata_nocomp: 2,500 persons, 13,170 rows, 7 intervals; n_samples = 10,000; 3 regimes")
    print("gtools risk at t0=6: " + ", ".join(f"{k} {v:.4f}" for k, v in res.risk.iloc[-1].items()))
    peer = None if args.skip_peer else run_peer(10_000, 0, False)
    print("\n(a) fit + simulate")
    print(f"  gtools     {t_gt * 1000:8.1f} ms   (model fitting {ph['fit'] * 1000:.1f} ms, simulation "
          f"{ph['sim'] * 1000:.1f} ms)")
    if peer:
        print(f"  pygformula {peer['time_fit_simulate_s'] * 1000:8.1f} ms   risk: " +
              ", ".join(f"{k} {v:.4f}" for k, v in peer["risk_last"].items()))
        print(f"  ratio      {peer['time_fit_simulate_s'] / t_gt:8.0f} x")

    print("\n(b) bootstrap, 100 replicates, n_jobs=2")
    t0 = time.perf_counter()
    boot = gt.bootstrap(spec, pt, n_boot=100, n_jobs=2, seed=7)
    t_boot = time.perf_counter() - t0
    print(f"  gtools     {t_boot:8.2f} s    ({t_boot / 100 * 1000:.0f} ms per replicate, wall; "
          f"{len(boot.failures)} failures); SE at t0=6: " +
          ", ".join(f"{g} {boot.se[f'risk[{g},t=6]']:.4f}" for g in spec._regimes()))
    if not args.skip_peer and args.peer_boot > 0:
        pb = run_peer(10_000, args.peer_boot, True)
        if pb:
            t_pb = pb["time_bootstrap_s"] * 100 / args.peer_boot
            note = "" if args.peer_boot == 100 else f" (measured {args.peer_boot} replicates, scaled to 100)"
            print(f"  pygformula {t_pb:8.2f} s{note}")
            print(f"  ratio      {t_pb / t_boot:8.0f} x")

    if not args.skip_scaling:
        print("\n(c) scaling (model fitting once per data size; simulation of 3 regimes x 7 intervals)")
        print(f"  {'persons':>9} {'rows':>10} {'n_samples':>10} {'fit ms':>9} {'sim ms':>9} "
              f"{'person-intervals/s':>19} {'peak MB':>8}")
        for n_p in [2_500, 50_000, 500_000]:
            if n_p > args.max_persons:
                continue
            big = df if n_p == 2_500 else bigger(df, n_p)
            ptb = make_pt(big)
            for n_s in [10_000, 100_000, 1_000_000]:
                sp = make_spec(n_s)
                ph = phases(sp, ptb, reps=3 if n_s < 1_000_000 else 1)
                print(f"  {n_p:>9,} {ptb.n_rows:>10,} {n_s:>10,} {ph['fit'] * 1000:>9.1f} {ph['sim'] * 1000:>9.1f} "
                      f"{ph['pi_per_s'] / 1e6:>16.1f} M {ph['peak_mb']:>8.1f}")

    print("\n(d) cold start (fresh interpreter, numba cache warm)")
    t_imp, t_all = cold_start()
    print(f"  import gtools: {t_imp:.2f} s; import + read data + first fit (10,000 simulated): {t_all:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
