"""``gtools demo``: every method on the embedded cohorts, each estimate beside the known truth.

The cohorts are simulated (:mod:`gtools.datasets`), so the truth under each
regime is computed by brute-force simulation of the data-generating process
under the intervention. The demo prints, for the sepsis ICU cohort:

1. its description;
2. the parametric g-formula (correct models) under always / never / start
   once lactate > 4 / natural course, with a small person-level bootstrap, and
   one patient's own counterfactual risk curves from their history so far;
3. a marginal structural model by stabilised IPTW x IPCW and the dynamic
   regime by clone–censor–weight;

and, for the oncology quality-of-life cohort:

4. g-estimation of the structural nested mean model (known blip);
5. Q-learning / dWOLS of the optimal regime, its rules and its value.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd


def _header(title: str) -> None:
    print("\n" + "=" * 78 + f"\n{title}\n" + "=" * 78)


def run_demo(quick: bool = False, n_boot: int | None = None, n_jobs: int = -1) -> int:
    import gtools as gt
    from gtools.datasets import oncology, sepsis

    t_start = time.perf_counter()
    n_boot = (20 if quick else 50) if n_boot is None else n_boot
    pd.set_option("display.width", 120)
    pd.set_option("display.max_columns", 12)
    warnings.simplefilter("once", gt.FitWarning)

    # -- 1. the sepsis cohort ------------------------------------------------------
    _header("Sepsis ICU cohort (simulated; 5,000 patients followed daily up to 28 days)")
    pt = gt.PersonTime.from_long(sepsis.load_sepsis(), **sepsis.SEPSIS_ROLES)
    pt = pt.add_history(*sepsis.history_features())
    print(pt)
    desc = pt.describe()
    print(desc.overall.to_string())
    print(desc.by_time.head(8).round(3).to_string())

    regimes = {
        "always": gt.regimes.always(),
        "never": gt.regimes.never(),
        "lactate>4": gt.regimes.threshold("lactate", ">", 4.0, absorbing=True),
        "natural": gt.regimes.natural(),
    }
    truth = {name: float(sepsis.true_risk(r, n=100_000).iloc[-1]) for name, r in regimes.items()}

    # -- 2. g-formula ----------------------------------------------------------------
    _header("Parametric g-formula: 28-day risk of death had no one been discharged")
    m = sepsis.SEPSIS_MODELS
    spec = gt.GFormula(
        covariate_models=[gt.Model(*m["sofa"]), gt.Model(*m["lactate"])],
        treatment_model=gt.Model(*m["vaso"]),
        outcome_model=gt.Model(*m["death"]),
        censor_model=gt.Model(*m["discharge"]),
        regimes=regimes,
        n_samples=5_000 if quick else 10_000,
        seed=1,
    )
    t0 = time.perf_counter()
    gf = spec.fit(pt)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    boot = gt.bootstrap(spec, pt, n_boot=n_boot, n_jobs=n_jobs, seed=7)
    t_boot = time.perf_counter() - t0
    last = pt.n_times - 1
    ci = boot.conf_int()
    rows = []
    for name in regimes:
        key = f"risk[{name},t={last}]"
        rows.append({"regime": name, "estimate": gf.risk[name].iloc[-1], "boot SE": boot.se[key],
                     "95% CI": f"{ci.loc[key, 'lower']:.3f} to {ci.loc[key, 'upper']:.3f}",
                     "truth": truth[name]})
    tab = pd.DataFrame(rows).set_index("regime")
    print(tab.round(4).to_string())
    print(f"(fit + simulate {t_fit:.2f} s; {n_boot}-replicate bootstrap {t_boot:.1f} s)")
    print("\nRisk difference always - never by day:")
    print(gf.contrast("always", "never").iloc[[6, 13, 20, last]].round(4).to_string())
    nc = gf.natural_course()
    print("\nNatural-course check (simulated vs observed Kaplan-Meier), largest discrepancies:")
    print(nc.largest.head(3).round(4).to_string())

    # one patient's individual counterfactual risk curves from their history so far
    data = pt.data
    alive = data.groupby(pt.id)[pt.time].max()
    pid = alive[alive >= 4].index[0]
    hist = data[(data[pt.id] == pid) & (data[pt.time] <= 3)]
    _header(f"Patient {pid}: counterfactual risk of death from day 4 on, given days 0-3")
    print(hist[[pt.time, "sofa", "lactate", "vaso"]].round(2).to_string(index=False))
    ind = gf.predict_individual(hist, regimes={"always": regimes["always"], "never": regimes["never"]},
                                n_samples=2_000 if quick else 5_000)
    true_ind = {k: sepsis.true_risk_from_history(hist, regimes[k], n=50_000) for k in ("always", "never")}
    curves = ind.risk.droplevel(0)
    pick = [t for t in (4, 10, 17, last) if t in curves.index]
    out = curves.loc[pick].copy()
    for k, v in true_ind.items():
        out[f"{k} (truth)"] = v.reindex(pick).to_numpy()
    print(out.round(4).to_string())

    # -- 3. MSM and clone-censor-weight --------------------------------------------------
    _header("Marginal structural model (stabilised IPTW x IPCW, truncated at 1st/99th percentiles)")
    w = gt.IPTW(treatment_model=m["vaso"][0],
                numerator_model="vaso ~ lag1_vaso + age + sex + comorb + day",
                censor_model=m["discharge"][0],
                censor_numerator_model="discharge ~ vaso + lag1_vaso + age + sex + comorb + day",
                truncate=(1, 99))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        msm = gt.MSM("death ~ vaso + lag1_vaso + age + sex + comorb + day", weights=w,
                     regimes={"always": regimes["always"], "never": regimes["never"]}).fit(pt)
    print(msm.summary().round(4).to_string())
    bal = msm.weights.balance(by_time=False)
    print("\nBalance (standardised mean differences):")
    print(bal.round(3).to_string())
    print("\nMSM risk at day 27 (the MSM is simpler than the truth; compare):")
    risk = msm.risk({"always": regimes["always"], "never": regimes["never"]})
    print(pd.DataFrame({"MSM": risk.iloc[-1], "truth": pd.Series({k: truth[k] for k in risk.columns})})
          .round(4).to_string())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.FitWarning)
        ccw = gt.CloneCensorWeight(regimes={"lactate>4": regimes["lactate>4"]},
                                   treatment_model=m["vaso"][0], censor_model=m["discharge"][0]).fit(pt)
    t6 = 6
    true6 = float(sepsis.true_risk(regimes["lactate>4"], n=100_000).iloc[t6])
    print(f"\nClone-censor-weight, start once lactate > 4: risk by day {t6} {ccw.risk['lactate>4'].iloc[t6]:.4f}"
          f" (truth {true6:.4f}; g-formula {gf.risk['lactate>4'].iloc[t6]:.4f})")

    # -- 4. g-estimation on the oncology QoL cohort ------------------------------------------
    _header("G-estimation of a structural nested mean model (oncology, quality of life)")
    qdf = oncology.load_oncology_qol()
    qpt = gt.PersonTime.from_long(qdf, **oncology.ONCOLOGY_QOL_ROLES).add_history(*oncology.history_features())
    print(qpt)
    snm = gt.GEstimation(blip="treat + treat:marker",
                         treatment_model=oncology.ONCOLOGY_MODELS["treat"][0],
                         outcome_model="qol ~ age + stage + marker + month").fit(qpt)
    tab = snm.summary()
    tab["truth"] = pd.Series(oncology.ONCOLOGY_QOL_TRUE_BLIP)
    print(tab.round(3).to_string())
    print("(one sample of 2,000 patients: the truth should lie within about 2 SE)")

    # -- 5. Q-learning ---------------------------------------------------------------
    _header("Optimal dynamic regime by dWOLS (oncology, quality of life)")
    ql = gt.QLearning(q_model="qol ~ age + stage + marker + lag1_treat + treat + treat:marker",
                      method="dwols", treatment_model=oncology.ONCOLOGY_MODELS["treat"][0]).fit(qpt)
    print(ql.rules().to_string(index=False))
    val = ql.value()
    print(val.round(3).to_string())
    est_regime = ql.as_regime()
    true_val = {"estimated rule": float(np.asarray(oncology.true_mean(est_regime, n=100_000))),
                "treat while marker > 1": float(np.asarray(oncology.true_mean(
                    gt.regimes.threshold("marker", ">", 1.0), n=100_000))),
                "never": float(np.asarray(oncology.true_mean(gt.regimes.never(), n=100_000)))}
    print("True mean quality of life (simulated under each regime):")
    print(pd.Series(true_val).round(3).to_string())

    print(f"\ndemo finished in {time.perf_counter() - t_start:.1f} s")
    return 0
