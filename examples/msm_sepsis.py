"""Marginal structural model and clone-censor-weight on the simulated sepsis ICU cohort.

Question: what would the 28-day risk of death have been had every patient
received vasopressors on every day, on no day, or from the first day their
lactate exceeded 4 mmol/L (and had nobody been discharged, i.e. censoring
abolished)? The cohort (``gtools.datasets.sepsis``) has treatment-confounder
feedback: severity and lactate drive vasopressor use and are lowered by it.

1. stabilised IPTW x IPCW (discharge is informative censoring), truncated at
   the 1st/99th percentiles, with the weight summary and the balance table;
2. a pooled-logistic MSM of the daily hazard on current and previous
   treatment, standardised to risk curves under "always" and "never";
3. the dynamic regime by clone-censor-weight, against the generator's truth.

Writes ``balance.csv``, ``weights_summary.csv``, ``weights.png``, ``risk.png``
to the output folder (default ``msm_sepsis_output``).

Run: ``PYTHONPATH=. python examples/msm_sepsis.py [output_folder]``
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import gtools as gt  # noqa: E402
from gtools.datasets import sepsis  # noqa: E402


def main(out: str = "msm_sepsis_output") -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pt = gt.PersonTime.from_long(sepsis.load_sepsis(), **sepsis.SEPSIS_ROLES)
    pt = pt.add_history(*sepsis.history_features())
    print(pt)

    weights = gt.IPTW(
        treatment_model=sepsis.SEPSIS_MODELS["vaso"][0],  # vaso ~ sofa + lactate + lag1_vaso + age + sex + day
        numerator_model="vaso ~ lag1_vaso + age + sex + comorb + day",
        censor_model=sepsis.SEPSIS_MODELS["discharge"][0],  # discharge ~ sofa + lactate + vaso + day
        censor_numerator_model="discharge ~ vaso + lag1_vaso + age + sex + comorb + day",
        truncate=(1, 99),
    )
    regimes = {"always": gt.regimes.always(), "never": gt.regimes.never()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", gt.FitWarning)
        msm = gt.MSM("death ~ vaso + lag1_vaso + age + sex + comorb + day", weights=weights,
                     regimes=regimes).fit(pt)
    for w in caught:
        print("FitWarning:", w.message)

    print("\nWeights:", msm.weights)
    summ = msm.weights.summary()
    print(summ.round(3).to_string())
    summ.to_csv(folder / "weights_summary.csv")
    bal = msm.weights.balance()
    bal.to_csv(folder / "balance.csv")
    pooled = msm.weights.balance(by_time=False)
    print("\nBalance, pooled person-time (SMD treated vs untreated):")
    print(pooled[["smd_unweighted", "smd_weighted"]].round(3).to_string())
    ax = msm.weights.plot()
    ax[0].figure.tight_layout()
    ax[0].figure.savefig(folder / "weights.png", dpi=120)
    plt.close(ax[0].figure)

    print("\nMSM (cluster-robust SE by patient):")
    print(msm.summary().round(4).to_string())
    risk = msm.risk(regimes)

    ccw = gt.CloneCensorWeight({"lactate>4": gt.regimes.threshold("lactate", ">", 4.0, absorbing=True),
                                "never": gt.regimes.never()},
                               treatment_model=sepsis.SEPSIS_MODELS["vaso"][0],
                               censor_model=sepsis.SEPSIS_MODELS["discharge"][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)  # few adherent clones late in follow-up
        cc = ccw.fit(pt)
    print("\n", cc)
    truth = pd.DataFrame({"always": sepsis.true_risk(gt.regimes.always(), n=50_000),
                          "never": sepsis.true_risk(gt.regimes.never(), n=50_000),
                          "lactate>4": sepsis.true_risk(gt.regimes.threshold("lactate", ">", 4.0, absorbing=True),
                                                        n=50_000)})
    days = [6, 13, 27]
    table = pd.DataFrame({"MSM always": risk["always"], "truth always": truth["always"],
                          "MSM never": risk["never"], "truth never": truth["never"],
                          "CCW lactate>4": cc.risk["lactate>4"], "truth lactate>4": truth["lactate>4"]})
    print("\nRisk of death by day (truth: generator, discharge abolished):")
    print(table.loc[days].round(4).to_string())
    print("\nStandard errors for risks: gt.bootstrap(spec, pt, n_boot=500) refits weights and MSM per replicate.")

    ax = msm.plot()
    cc.plot(ax=ax)
    for g in truth:
        ax.plot(truth.index, truth[g], ls=":", color="grey")
    ax.set_title("Risk of death: MSM (always/never), CCW (lactate>4); dotted: truth")
    ax.figure.tight_layout()
    ax.figure.savefig(folder / "risk.png", dpi=120)
    print(f"\nwrote {', '.join(p.name for p in sorted(folder.iterdir()))} to {folder}/")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "msm_sepsis_output")
