"""Peer benchmark: zEpid 0.9.1's Monte Carlo g-formula on pygformula's survival example.

Run it under the zEpid venv (see benchmarks/peers/README.md):

    /work/zepid-venv/bin/python benchmarks/peers/zepid_runner.py --n-samples 10000 --json /tmp/zepid_gf.json

zEpid's time-varying Monte Carlo g-formula is ``zepid.causal.gformula.MonteCarloGFormula`` (called
``TimeVaryGFormula`` in older releases): exposure_model(), outcome_model(), add_covariate_model(),
then fit(treatment=..., lags=..., sample=..., in_recode=..., out_recode=...). It has no bootstrap and
no parallelism; ``--nsamples-boot N`` runs a hand-written serial bootstrap around it (resample persons,
refit all models, simulate the three strategies), so a per-replicate time can be compared.

Data: /work/shared/peers/pygformula/example_data_basicdata_nocomp.csv.gz (2,500 persons, t0 = 0..6,
no censoring). Models are the ones of pygformula's documented example (see pygformula_runner.py),
written in zEpid's API:

    L1 (label 1, binary, logistic):   L1 ~ lag1_A + lag2_A + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0
    L2 (label 2, "bounded normal"):   L2_bn ~ lag1_A + L1 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0
    A  (exposure model, logistic):    A ~ lag1_A + L1 + L2 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0
    Y  (outcome model, logistic):     Y ~ L1 + L2 + L3 + A + lag1_A + lag1_L1 + lag1_L2 + t0

How pygformula's conventions are reproduced:
* Fitting: as in pygformula, the covariate models (L1, L2) and the treatment model (A) are fitted on the
  rows with t0 > 0 (restriction="g['t0'] > 0"); the outcome model on all 13,170 rows.
* time_in = t0 (the interval index 0..6), time_out = t0 + 1; t0 in the formulas is zEpid's time_in.
* History columns are built in the data as pygformula builds them (0 when t0 < k):
  lag1_A, lag2_A, lag1_L1, lag1_L2, lag_cumavg1_L1 (= mean of L1 over 0..t0-1), lag_cumavg1_L2.
  During the simulation ``lags={'lag1_A': 'lag2_A', 'A': 'lag1_A', 'L1': 'lag1_L1', 'L2': 'lag1_L2'}``
  (applied in that order) and ``out_recode`` keeps running sums to update lag_cumavg1_L1/L2.
* "bounded normal" L2: zEpid only has 'continuous' (OLS; draws N(mean, sd(residuals)), where np.std of
  OLS residuals equals pygformula's RMSE). L2 is rescaled to L2_bn = (L2 - min) / (max - min) with the
  min/max of L2 over the t0 > 0 rows, modelled as continuous, and the covariate recode clips the draw
  to [0, 1] and maps it back to L2 - exactly pygformula's bounded normal.
* At t0 = 0 pygformula does not simulate covariates: it keeps each sampled person's observed L1, L2 and
  (under the natural course) A. zEpid re-draws them at its first step, so the recodes and the natural
  course's treatment rule put the observed baseline values back at t0 = 0.
* Strategies: natural course (custom rule: observed A at t0 = 0, simulated A afterwards), never
  (treatment='none'), always (treatment='all').
* zEpid resamples ``sample`` persons' first rows with replacement (pandas .sample on numpy's global RNG,
  seeded with --seed before each strategy) and draws Y, removing persons after the event; the risk at
  interval k is the share of simulated persons with the event by time_out = k + 1. pygformula instead
  averages cumulative risks computed from the predicted hazards, so the two differ by Monte Carlo error.

Output JSON: {"risk_last": {"natural", "never", "always"}, "risk_curve": {...}, "time_fit_s",
"time_simulate_s", "time_fit_simulate_s", "time_bootstrap_s", "n_boot", ...}; times by time.perf_counter.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

DATA_PATH = "/work/shared/peers/pygformula/example_data_basicdata_nocomp.csv.gz"

L1_MODEL = "lag1_A + lag2_A + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0"
L2_MODEL = "lag1_A + L1 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0"
A_MODEL = "lag1_A + L1 + L2 + lag_cumavg1_L1 + lag_cumavg1_L2 + L3 + t0"
Y_MODEL = "L1 + L2 + L3 + A + lag1_A + lag1_L1 + lag1_L2 + t0"

LAGS = {"lag1_A": "lag2_A", "A": "lag1_A", "L1": "lag1_L1", "L2": "lag1_L2"}
OUT_RECODE = ("g['_sum_L1'] = g['_sum_L1'] + g['L1'];"
              "g['_sum_L2'] = g['_sum_L2'] + g['L2'];"
              "g['lag_cumavg1_L1'] = g['_sum_L1'] / g['t_out'];"
              "g['lag_cumavg1_L2'] = g['_sum_L2'] / g['t_out']")
L1_RECODE = "g['L1'] = np.where(g['t0'] == 0, g['L1_base'], g['L1'])"
COV_RESTRICTION = "g['t0'] > 0"
NATURAL_RULE = "((g['t0'] == 0) & (g['A_base'] == 1)) | ((g['t0'] > 0) & (g['A'] == 1))"


def load_data(path: str = DATA_PATH) -> pd.DataFrame:
    return pd.read_csv(path).sort_values(["id", "t0"]).reset_index(drop=True)


def prepare(data: pd.DataFrame) -> tuple[pd.DataFrame, float, float]:
    """Add the history columns, the rescaled L2 and the baseline copies; return (df, L2 min, L2 max)."""
    df = data.sort_values(["id", "t0"]).reset_index(drop=True).copy()
    by = df.groupby("id")
    for var, k in (("A", 1), ("A", 2), ("L1", 1), ("L2", 1)):
        df[f"lag{k}_{var}"] = np.where(df["t0"] >= k, by[var].shift(k), 0.0)
    for var in ("L1", "L2"):
        prev_sum = by[var].cumsum() - df[var]  # sum over 0..t0-1
        df[f"_sum_{var}"] = prev_sum
        df[f"lag_cumavg1_{var}"] = np.where(df["t0"] >= 1, prev_sum / df["t0"].clip(lower=1), 0.0)
    later = df["t0"] > 0  # pygformula fits covariate models, and takes L2's bounds, on t0 > 0 rows
    lo, hi = float(df.loc[later, "L2"].min()), float(df.loc[later, "L2"].max())
    df["L2_bn"] = (df["L2"] - lo) / (hi - lo)
    for var in ("L1", "L2", "A"):
        df[f"{var}_base"] = by[var].transform("first")
    df["t_out"] = df["t0"] + 1
    return df, lo, hi


def fit_models(df: pd.DataFrame, lo: float, hi: float):
    from zepid.causal.gformula import MonteCarloGFormula

    l2_recode = (f"g['L2'] = np.clip(g['L2_bn'], 0.0, 1.0) * ({hi!r} - {lo!r}) + {lo!r};"
                 "g['L2'] = np.where(g['t0'] == 0, g['L2_base'], g['L2'])")
    g = MonteCarloGFormula(df, idvar="id", exposure="A", outcome="Y", time_in="t0", time_out="t_out")
    g.exposure_model(A_MODEL, restriction=COV_RESTRICTION, print_results=False)
    g.outcome_model(Y_MODEL, print_results=False)
    g.add_covariate_model(label=1, covariate="L1", model=L1_MODEL, recode=L1_RECODE, var_type="binary",
                          restriction=COV_RESTRICTION,
                          print_results=False)
    g.add_covariate_model(label=2, covariate="L2_bn", model=L2_MODEL, recode=l2_recode, var_type="continuous",
                          restriction=COV_RESTRICTION,
                          print_results=False)
    return g


def simulate(g, strategy: str, n_samples: int, seed: int) -> list[float]:
    treatment = {"natural": NATURAL_RULE, "never": "none", "always": "all"}[strategy]
    np.random.seed(seed)
    g.fit(treatment=treatment, lags=LAGS, sample=n_samples, out_recode=OUT_RECODE)
    po = g.predicted_outcomes
    last = po.groupby("uid_g_zepid").tail(1)
    ev_times = last.loc[last["Y"] == 1, "t_out"].to_numpy()
    return [float(np.sum(ev_times <= k + 1)) / n_samples for k in range(7)]


def run(n_samples: int = 10000, seed: int = 1234, nsamples_boot: int = 0, data_path: str = DATA_PATH) -> dict:
    warnings.simplefilter("ignore", FutureWarning)
    import zepid.causal.gformula  # noqa: F401  (import outside the timed region)

    data = load_data(data_path)
    t0 = time.perf_counter()
    df, lo, hi = prepare(data)
    g = fit_models(df, lo, hi)
    t1 = time.perf_counter()
    curves = {s: simulate(g, s, n_samples, seed) for s in ("natural", "never", "always")}
    t2 = time.perf_counter()

    boot_last: dict[str, list[float]] = {s: [] for s in curves}
    rng = np.random.default_rng(seed)
    rows_of = list(data.groupby("id").indices.values())  # row positions of each person
    tb0 = time.perf_counter()
    for b in range(nsamples_boot):
        draw = rng.integers(0, len(rows_of), size=len(rows_of))
        take = np.concatenate([rows_of[i] for i in draw])
        boot = data.iloc[take].reset_index(drop=True)
        boot["id"] = np.repeat(np.arange(1, len(draw) + 1), [len(rows_of[i]) for i in draw])
        bdf, blo, bhi = prepare(boot)
        bg = fit_models(bdf, blo, bhi)
        for s in curves:
            boot_last[s].append(simulate(bg, s, n_samples, seed + 1 + b)[-1])
    tb1 = time.perf_counter()

    import zepid
    res = {
        "peer": "zepid",
        "peer_version": zepid.__version__,
        "estimator": "MonteCarloGFormula",
        "n_samples": n_samples,
        "seed": seed,
        "risk_last": {s: c[-1] for s, c in curves.items()},
        "risk_curve": curves,
        "time_fit_s": t1 - t0,
        "time_simulate_s": t2 - t1,
        "time_fit_simulate_s": t2 - t0,
        "time_bootstrap_s": (tb1 - tb0) if nsamples_boot else 0.0,
        "n_boot": nsamples_boot,
        "bootstrap": "hand-written serial loop (zEpid has none)" if nsamples_boot else None,
        "python": platform.python_version(),
    }
    if nsamples_boot:
        res["time_per_replicate_s"] = (tb1 - tb0) / nsamples_boot
        res["boot_last"] = {
            s: {"se": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"), "n_ok": len(v)}
            for s, v in boot_last.items()
        }
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10000,
                        help="Monte Carlo sample size (zEpid's sample)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--nsamples-boot", type=int, default=0,
                        help="hand-written bootstrap replicates (0 = none)")
    parser.add_argument("--data", default=DATA_PATH)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)

    res = run(n_samples=args.n_samples, seed=args.seed, nsamples_boot=args.nsamples_boot, data_path=args.data)
    rl = res["risk_last"]
    print(f"zEpid {res['peer_version']} MonteCarloGFormula  n_samples={res['n_samples']} seed={res['seed']}")
    print(f"risk at last interval: natural={rl['natural']:.5f} never={rl['never']:.5f} "
          f"always={rl['always']:.5f}")
    print(f"time fit: {res['time_fit_s']:.2f} s; simulate (3 strategies): {res['time_simulate_s']:.2f} s; "
          f"total {res['time_fit_simulate_s']:.2f} s")
    if res["n_boot"]:
        print(f"time bootstrap (serial, hand-written): {res['time_bootstrap_s']:.2f} s for {res['n_boot']} "
              f"replicates ({res['time_per_replicate_s']:.2f} s each)")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
