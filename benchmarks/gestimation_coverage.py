"""Coverage of the 95% sandwich CI of g-estimation over simulated cohorts with a known blip.

Data: gtools.datasets.oncology_qol (6 monthly visits, treatment-confounder feedback through the
marker; true blip gamma_t = treat_t (-1 + 1 * marker_t)). For each of R data sets of n persons we
fit the SNMM with the correct treatment model and (a) the correct outcome model, (b) a wrong
outcome model, (c) no outcome model, and (d) IPCW under informative loss to follow-up, and count
how often the 95% Wald sandwich interval covers the truth.

Run: PYTHONPATH=. /work/venv/bin/python benchmarks/gestimation_coverage.py [R] [n]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

import gtools as gt
from gtools.datasets import ONCOLOGY_QOL_TRUE_BLIP, oncology_qol

BLIP = "treat + treat:marker"
TREATMENT = "treat ~ marker + ecog + lag1_treat + month"
RIGHT_OUTCOME = "qol ~ age + stage + marker + month + stage:month + lag1_cumsum_treat + lag1_cumsum_tm"
WRONG_OUTCOME = "qol ~ age + month"
TRUTH = np.array([ONCOLOGY_QOL_TRUE_BLIP["treat"], ONCOLOGY_QOL_TRUE_BLIP["treat:marker"]])
CONFIGS = {
    "right outcome model": dict(outcome_model=RIGHT_OUTCOME),
    "wrong outcome model": dict(outcome_model=WRONG_OUTCOME),
    "no outcome model": dict(outcome_model=None),
    "IPCW, wrong outcome model": dict(outcome_model=WRONG_OUTCOME, censor_model="lost ~ ecog + marker + treat"),
}


def table(n, seed, censoring):
    df = oncology_qol(n, seed=seed, censoring=censoring)
    df["tm"] = df["treat"] * df["marker"]
    pt = gt.PersonTime.from_long(df, id="id", time="month", treatment="treat", covariates=["marker", "ecog"],
                                 baseline=["age", "stage"], outcome="qol", outcome_type="continuous",
                                 censor="lost" if censoring else None)
    return pt.add_history(gt.lag("treat"), gt.lag(gt.cumsum("treat")), gt.lag(gt.cumsum("tm")))


def main(R: int = 200, n: int = 1000) -> None:
    hits = {k: np.zeros(2) for k in CONFIGS}
    bias = {k: np.zeros(2) for k in CONFIGS}
    t0 = time.perf_counter()
    for r in range(R):
        pts = {False: table(n, 1000 + r, False), True: table(n, 1000 + r, True)}
        for name, kw in CONFIGS.items():
            pt = pts["censor_model" in kw]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", gt.FitWarning)
                res = gt.GEstimation(blip=BLIP, treatment_model=TREATMENT, **kw).fit(pt)
            ci = res.conf_int().to_numpy()
            hits[name] += (ci[:, 0] <= TRUTH) & (TRUTH <= ci[:, 1])
            bias[name] += res.psi - TRUTH
    el = time.perf_counter() - t0
    mc = 1.96 * np.sqrt(0.95 * 0.05 / R)
    print(f"coverage of the 95% sandwich CI, {R} data sets of {n} persons x 6 visits "
          f"(MC 95% band {0.95 - mc:.3f}-{0.95 + mc:.3f}); {el:.0f} s")
    print(f"{'configuration':30s} {'psi[treat]':>11s} {'psi[treat:marker]':>18s}   mean bias")
    for name in CONFIGS:
        c = hits[name] / R
        b = bias[name] / R
        print(f"{name:30s} {c[0]:11.3f} {c[1]:18.3f}   {b[0]:+.4f} {b[1]:+.4f}")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
