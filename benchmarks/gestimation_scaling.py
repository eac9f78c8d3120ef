"""Time g-estimation of an SNMM on 10k / 100k / 1M person-time rows.

oncology_qol cohorts with 10 monthly visits (so n/10 persons); treatment model
with 5 terms, outcome model with 8, blip with 2, sandwich over the stacked
equations (15 parameters). Reported: PersonTime build + history, the fit
(models, closed form, sandwich), and the fit's cost per row.
There is no time-varying g-estimation in Python to compare with (zEpid's is
time-fixed only).

Run: PYTHONPATH=. /work/venv/bin/python benchmarks/gestimation_scaling.py
"""

from __future__ import annotations

import time
import warnings

import gtools as gt
from gtools.datasets import oncology_qol

SPEC = gt.GEstimation(blip="treat + treat:marker", treatment_model="treat ~ marker + ecog + lag1_treat + month",
                      outcome_model="qol ~ age + stage + marker + month + stage:month + lag1_cumsum_treat")


def main() -> None:
    warm = oncology_qol(200, seed=0, n_visits=10)  # load numba/statsmodels once, outside the timings
    warm_pt = gt.PersonTime.from_long(warm, id="id", time="month", treatment="treat", covariates=["marker", "ecog"],
                                      baseline=["age", "stage"], outcome="qol", outcome_type="continuous")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        SPEC.fit(warm_pt.add_history(gt.lag("treat"), gt.lag(gt.cumsum("treat"))))
    print(f"{'rows':>10s} {'persons':>9s} {'build (s)':>10s} {'fit (s)':>9s} {'fit us/row':>11s} {'psi':>20s}")
    for rows in (10_000, 100_000, 1_000_000):
        n = rows // 10
        df = oncology_qol(n, seed=1, n_visits=10)
        t0 = time.perf_counter()
        pt = gt.PersonTime.from_long(df, id="id", time="month", treatment="treat", covariates=["marker", "ecog"],
                                     baseline=["age", "stage"], outcome="qol", outcome_type="continuous")
        pt = pt.add_history(gt.lag("treat"), gt.lag(gt.cumsum("treat")))
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gt.FitWarning)
            res = SPEC.fit(pt)
        t2 = time.perf_counter()
        psi = ", ".join(f"{v:.3f}" for v in res.psi)
        print(f"{pt.n_rows:>10d} {n:>9d} {t1 - t0:>10.2f} {t2 - t1:>9.2f} {1e6 * (t2 - t1) / pt.n_rows:>11.2f} "
              f"{psi:>20s}")


if __name__ == "__main__":
    main()
