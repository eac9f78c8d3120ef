"""Parametric g-formula on the simulated sepsis ICU cohort.

Question: what would 28-day ICU mortality have been had every patient received vasopressors from
admission, had none received them, or had vasopressors been started once lactate first exceeded
4 mmol/L, compared with the natural course? Discharge alive is censoring (the estimand: risk had
nobody been discharged).

    PYTHONPATH=. python examples/gformula_sepsis.py [out_folder]   # default ./out

Saves risk_curves.png and natural_course.png to the folder and prints the risks, the contrasts with
bootstrap CIs beside the generator's truth, the model checks and one patient's individual curves.
"""

from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")

import gtools as gt  # noqa: E402
from gtools.datasets import sepsis  # noqa: E402


def main(out: str = "out") -> None:
    os.makedirs(out, exist_ok=True)
    df = sepsis.load_sepsis()
    pt = gt.PersonTime.from_long(df, **sepsis.SEPSIS_ROLES).add_history(gt.lag("sofa"), gt.lag("lactate"),
                                                                        gt.lag("vaso"))
    print(pt.describe().overall.to_string(), "\n")

    regimes = {
        "natural": gt.regimes.natural(),
        "always": gt.regimes.always(),
        "never": gt.regimes.never(),
        "lactate>4": gt.regimes.threshold("lactate", ">", 4.0, absorbing=True),
    }
    spec = gt.GFormula(
        covariate_models=[
            gt.Model("sofa ~ lag1_sofa + lag1_vaso + age + comorb + day", family="gaussian"),
            gt.Model("lactate ~ sofa + lag1_lactate + lag1_vaso + day", family="gaussian"),
        ],
        treatment_model=gt.Model("vaso ~ sofa + lactate + lag1_vaso + age + sex + day", family="binomial"),
        outcome_model=gt.Model("death ~ sofa + lactate + vaso + vaso:lactate + lag1_vaso + age + comorb + day",
                               family="binomial"),
        censor_model=gt.Model("discharge ~ sofa + lactate + vaso + day", family="binomial"),
        regimes=regimes,
        n_samples=20_000,
        seed=1,
    )
    res = spec.fit(pt)
    print(res, "\n")
    print("risk difference always vs never by day (last 5 days):")
    print(res.contrast("always", "never").tail().round(4), "\n")

    boot = gt.bootstrap(spec, pt, n_boot=50, n_jobs=2, seed=7)
    ci = boot.conf_int()
    print("risk by day 27 with 95% bootstrap CI, beside the truth from the generator:")
    for g, reg in regimes.items():
        key = f"risk[{g},t=27]"
        truth = sepsis.true_risk(None if g == "natural" else reg, n=100_000).iloc[-1]
        print(f"  {g:10s} {res.estimates[key]:.3f} ({ci.loc[key, 'lower']:.3f} to {ci.loc[key, 'upper']:.3f})"
              f"   truth {truth:.3f}")

    ax = res.plot(bootstrap=boot)
    ax.figure.savefig(os.path.join(out, "risk_curves.png"), dpi=120)

    nc = res.natural_course()
    print("\nnatural course vs observed (IPC-weighted), largest discrepancies:")
    print(nc.largest.round(3))
    axes = nc.plot()
    axes.ravel()[0].figure.savefig(os.path.join(out, "natural_course.png"), dpi=120)

    # the patient in front of you: days 0..4 observed, alive in the ICU
    counts = df.groupby("id").size()
    pid = counts.index[counts >= 8][0]
    history = df[(df["id"] == pid) & (df["day"] <= 4)]
    ind = res.predict_individual(history, regimes={"always": regimes["always"], "never": regimes["never"]})
    print(f"\npatient {pid}: risk of death from day 5 to day 27 under always / never vasopressors")
    print(ind.risk.xs(pid).iloc[[0, 6, 13, -1]].round(3))
    print(f"\nplots saved in {os.path.abspath(out)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
