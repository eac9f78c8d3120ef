"""Causal validation: policy-level values of regimes, agreement with an external trial, model checks.

Three checks that an analysis gives the right answer to the causal question,
beyond "the models fit":

* :func:`policy_values` -- the value :math:`V(g) = E[Y^g]` of the estimated
  optimal regime (a :class:`~gtools.QLearning` fit) and of every compared
  regime, estimated twice with different nuisance models: by inverse
  probability weighting (the Q-learning treatment models; Hajek estimator) and
  by the parametric g-formula (covariate and outcome models). Two estimators
  that rest on different models and agree are more convincing than either;
  person-level bootstrap CIs refit everything, including the estimated regime.
* :func:`compare_external` -- does the observational estimate agree with an
  external randomised trial's estimate of the same contrast?
* :func:`natural_course_check` -- the g-formula's simulated natural course
  against the observed data (:meth:`GFormulaResult.natural_course`), summarised
  per quantity as a validation table.

References
----------
Hernán MA, Robins JM (2016). Using big data to emulate a target trial when a
randomized trial is not available. Am J Epidemiol 183:758-764.
Dahabreh IJ, et al. (2020). Benchmarking observational methods by comparing
randomized trials and their emulations. Epidemiology 31:614-619.
Chakraborty B, Moodie EEM (2013). Statistical Methods for Dynamic Treatment
Regimes, ch. 3-5. Springer.
Young JG, Cain LE, Robins JM, et al. (2011). Comparative effectiveness of
dynamic treatment regimes: an application of the parametric g-formula.
Stat Biosci 3:119-143.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from gtools.errors import FitWarning

__all__ = [
    "ExternalComparison",
    "PolicyValue",
    "PolicyValueResult",
    "compare_external",
    "natural_course_check",
    "policy_values",
]

OPTIMAL = "optimal (estimated)"


# ============================================================ policy values
class PolicyValue:
    """Values of the estimated optimal regime and of comparators by IPW and by the g-formula.

    A specification (``.fit(pt)`` returns a :class:`PolicyValueResult` with
    ``.estimates``), so :func:`gtools.bootstrap` gives CIs that include the
    estimation of the optimal regime itself: every replicate refits the
    Q-learning, rebuilds the regime from it and re-runs the g-formula.

    Estimand: :math:`V(g) = E[Y^g]` (end-of-follow-up outcome) for
    :math:`g \\in \\{\\hat d^{opt}, g_1, \\dots\\}`; for the estimated regime
    this is the value of the rule estimated from these data (not of the true
    optimal rule).

    * IPW: :meth:`DTRResult.compare` -- the Hajek estimator
      :math:`\\sum_i C^g_i Y_i / \\prod_k \\pi_k(A_{ik} | H_{ik}) \\big/ \\sum_i C^g_i /
      \\prod_k \\pi_k`, with :math:`C^g_i` the indicator that person i's observed
      treatments agree with g at every stage (needs the QLearning
      ``treatment_model``);
    * g-formula: ``gformula`` refitted with ``regimes = {optimal, **regimes}``
      and its ``mean`` (survival outcome: the risk at the last interval).

    Assumptions: those of both estimators (sequential exchangeability,
    positivity, consistency), plus correct treatment models for IPW and
    correct covariate/outcome models for the g-formula.

    Parameters
    ----------
    qlearning : gt.QLearning
        Specification of the optimal-regime estimator (with a ``treatment_model``).
    gformula : gt.GFormula, optional
        The g-formula specification (its own ``regimes`` are replaced).
    regimes : dict of Regime
        Compared regimes, e.g. ``{"always": gt.regimes.always(), "never": gt.regimes.never()}``.
    seed : int or numpy.random.Generator, optional
        Seed of the g-formula's Monte Carlo (the bootstrap sets it per replicate).
    """

    def __init__(self, qlearning: Any, gformula: Any = None, regimes: Mapping[str, Any] | None = None,
                 seed: Any = None):
        self.qlearning = qlearning
        self.gformula = gformula
        self.regimes = regimes
        self.seed = seed

    def __repr__(self) -> str:
        return (f"PolicyValue(qlearning={self.qlearning!r}, gformula={self.gformula!r}, "
                f"regimes={list(self.regimes or {})})")

    def fit(self, pt) -> PolicyValueResult:
        regimes = dict(self.regimes or {})
        if OPTIMAL in regimes:
            raise ValueError(f"the regime name {OPTIMAL!r} is reserved for the estimated optimal regime")
        dtr = self.qlearning.fit(pt)
        optimal = dtr.as_regime(OPTIMAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)  # a regime nobody followed: NaN, reported below
            ipw = dtr.compare(regimes)
        table = pd.DataFrame({"ipw": ipw["value"], "n followed": ipw["n followed"]})
        gf = None
        if self.gformula is not None:
            spec = copy.copy(self.gformula)
            spec.regimes = {OPTIMAL: optimal, **regimes}
            if self.seed is not None:
                spec.seed = self.seed
            gf = spec.fit(pt)
            table["gformula"] = pd.Series({g: float(gf.mean[g]) for g in spec.regimes})
        table.index.name = "regime"
        return PolicyValueResult(table=table, dtr=dtr, gformula=gf, plug_in=float(dtr.value()["value"].iloc[0]))


@dataclass
class PolicyValueResult:
    """Values of each regime (rows) by each estimator (columns ``ipw``, ``gformula``).

    ``plug_in`` is the Q-learning plug-in value of the estimated regime.
    """

    table: pd.DataFrame
    dtr: Any
    gformula: Any
    plug_in: float

    @property
    def estimates(self) -> pd.Series:
        """``value[g,ipw]``, ``value[g,gformula]`` for every regime and ``value[optimal,plug-in]``."""
        out = {"value[optimal,plug-in]": self.plug_in}
        for col in ("ipw", "gformula"):
            if col in self.table:
                for g, v in self.table[col].items():
                    if np.isfinite(v):
                        out[f"value[{g},{col}]"] = float(v)
        return pd.Series(out, dtype=float)

    def summary(self) -> pd.DataFrame:
        return self.table

    def __repr__(self) -> str:
        return f"<PolicyValueResult>\n{self.table.to_string(float_format=lambda x: f'{x:.4f}')}"


def policy_values(
    qlearning: Any,
    pt: Any,
    regimes: Mapping[str, Any] | None = None,
    gformula: Any = None,
    n_boot: int = 100,
    seed: int = 0,
    n_jobs: int = 1,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Policy-level validation table: each regime's value by IPW and by the g-formula, with bootstrap CIs.

    Fits :class:`PolicyValue` and bootstraps it (``n_boot`` person-level
    replicates; ``n_boot=0`` skips the CIs). Returns one row per regime (the
    estimated optimal regime first) with ``ipw``, ``ipw_lower``,
    ``ipw_upper``, ``gformula``, ``gformula_lower``, ``gformula_upper``
    (percentile CIs), ``n followed`` (persons whose observed treatment follows
    the regime at every stage) and ``ipw - gformula`` (the disagreement between
    the two estimators). The table's ``attrs`` hold ``plug_in`` (the
    Q-learning plug-in value of the estimated regime) and ``n_boot``.
    """
    spec = PolicyValue(qlearning, gformula, regimes, seed=seed if gformula is not None else None)
    res = spec.fit(pt)
    tab = res.table.copy()
    if n_boot:
        from gtools.bootstrap import bootstrap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            boot = bootstrap(spec, pt, n_boot=n_boot, seed=seed, n_jobs=n_jobs, alpha=alpha)
        ci = boot.conf_int()
        for col in [c for c in ("ipw", "gformula") if c in tab]:
            keys = [f"value[{g},{col}]" for g in tab.index]
            tab[f"{col}_lower"] = [ci.loc[k, "lower"] if k in ci.index else np.nan for k in keys]
            tab[f"{col}_upper"] = [ci.loc[k, "upper"] if k in ci.index else np.nan for k in keys]
            tab[f"{col}_se"] = [boot.se.get(k, np.nan) for k in keys]
    order = [c for c in ("ipw", "ipw_lower", "ipw_upper", "ipw_se", "gformula", "gformula_lower", "gformula_upper",
                         "gformula_se", "n followed") if c in tab]
    tab = tab[order]
    if "gformula" in tab:
        tab["ipw - gformula"] = tab["ipw"] - tab["gformula"]
    tab.attrs["plug_in"] = res.plug_in
    tab.attrs["n_boot"] = n_boot
    return tab


# ======================================================= external comparison
@dataclass
class ExternalComparison:
    """Agreement between an observational estimate and an external trial's estimate.

    Attributes
    ----------
    scale : str
        ``"difference"`` (risk or mean difference; compared as is) or
        ``"ratio"`` (risk/odds/hazard ratio; compared on the log scale).
    estimate, ci, external_estimate, external_ci : float, tuple
        As supplied.
    se, external_se : float
        Standard errors recovered from the CIs: ``(upper - lower) / (2 z)``
        (on the log scale for ratios).
    difference : float
        ``estimate - external`` (``log(estimate / external)`` for ratios).
    difference_ci : (float, float)
        Its Wald CI with ``se_d = sqrt(se^2 + se_ext^2)`` (independent samples).
    z, p : float
        ``difference / se_d`` and its two-sided p-value.
    overlap : bool
        Whether the two CIs overlap.
    external_in_ci : bool
        Whether the external point estimate lies in the observational CI.
    agree : bool
        The rule: ``|z| <= z_{1 - alpha/2}`` -- no evidence at level alpha that
        the two estimate different quantities. This is a lack-of-disagreement
        rule, not a test of equivalence: two wide intervals always "agree";
        read ``difference_ci`` for how large a disagreement is still compatible
        with the data.
    """

    scale: str
    estimate: float
    ci: tuple[float, float]
    external_estimate: float
    external_ci: tuple[float, float]
    se: float
    external_se: float
    difference: float
    difference_ci: tuple[float, float]
    z: float
    p: float
    overlap: bool
    external_in_ci: bool
    agree: bool
    alpha: float = 0.05

    def to_frame(self) -> pd.DataFrame:
        diff_name = "log ratio (obs / external)" if self.scale == "ratio" else "difference (obs - external)"
        rows = [
            ("observational estimate", f"{self.estimate:.4g} ({self.ci[0]:.4g} to {self.ci[1]:.4g})"),
            ("external trial estimate", f"{self.external_estimate:.4g} ({self.external_ci[0]:.4g} to "
                                        f"{self.external_ci[1]:.4g})"),
            (diff_name, f"{self.difference:.4g} ({self.difference_ci[0]:.4g} to {self.difference_ci[1]:.4g})"),
            ("z (p)", f"{self.z:.2f} (p = {self.p:.3g})"),
            ("confidence intervals overlap", "yes" if self.overlap else "no"),
            ("external estimate inside observational CI", "yes" if self.external_in_ci else "no"),
            (f"agree (|z| <= {NormalDist().inv_cdf(1 - self.alpha / 2):.2f})", "yes" if self.agree else "no"),
        ]
        return pd.DataFrame(rows, columns=["quantity", "value"]).set_index("quantity")

    def __str__(self) -> str:
        return self.to_frame().to_string()


def compare_external(
    estimate: float,
    ci: tuple[float, float],
    external_estimate: float,
    external_ci: tuple[float, float],
    scale: str = "difference",
    alpha: float = 0.05,
) -> ExternalComparison:
    """Compare an estimate with an external (e.g. randomised trial) estimate of the same contrast.

    Both CIs are taken as Wald intervals at level ``1 - alpha`` so their SEs are
    ``(upper - lower) / (2 z)`` (log scale for ``scale="ratio"``). The
    difference ``d = est - ext`` (``log est - log ext``) has SE
    ``sqrt(se^2 + se_ext^2)`` (independent samples); ``z = d / se_d``. The
    estimates **agree** when ``|z| <= z_{1-alpha/2}``. Also reported: whether
    the CIs overlap and whether the external estimate lies in the
    observational CI (a stricter, commonly used benchmark criterion).

    Parameters
    ----------
    estimate, ci
        The observational estimate and its CI (e.g. a bootstrap percentile CI).
    external_estimate, external_ci
        The trial's estimate and CI, as published.
    scale : {"difference", "ratio"}
    alpha : float
        1 - the confidence level of both intervals.
    """
    if scale not in ("difference", "ratio"):
        raise ValueError(f"scale must be 'difference' or 'ratio', got {scale!r}")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    vals = [float(estimate), *map(float, ci), float(external_estimate), *map(float, external_ci)]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError("estimates and CI limits must be finite")
    e, lo, hi, x, xlo, xhi = vals
    for name, (a, c) in (("estimate", (lo, hi)), ("external estimate", (xlo, xhi))):
        if not a <= c:  # a percentile bootstrap CI need not contain its point estimate: only lower <= upper
            raise ValueError(f"the CI of the {name} must have lower <= upper, got ({a}, {c})")
    if scale == "ratio":
        if min(vals) <= 0:
            raise ValueError("ratio estimates and CI limits must be positive")
        f = math.log
    else:
        def f(v: float) -> float:
            return v
    se = (f(hi) - f(lo)) / (2 * z)
    xse = (f(xhi) - f(xlo)) / (2 * z)
    d = f(e) - f(x)
    sd = math.sqrt(se ** 2 + xse ** 2)
    zz = d / sd if sd > 0 else (0.0 if d == 0 else math.copysign(math.inf, d))
    p = 2 * (1 - NormalDist().cdf(abs(zz)))
    return ExternalComparison(
        scale=scale, estimate=e, ci=(lo, hi), external_estimate=x, external_ci=(xlo, xhi), se=se, external_se=xse,
        difference=d, difference_ci=(d - z * sd, d + z * sd), z=zz, p=p, overlap=bool(lo <= xhi and xlo <= hi),
        external_in_ci=bool(lo <= x <= hi), agree=bool(abs(zz) <= z), alpha=alpha,
    )


# ============================================================ natural course
def natural_course_check(result: Any) -> pd.DataFrame:
    """The g-formula's natural-course check as a validation table, one row per quantity.

    Reuses :meth:`GFormulaResult.natural_course` (simulated natural course vs
    observed: the risk against Kaplan-Meier, each covariate's and the
    treatment's mean by time). Columns: ``times`` compared, ``flagged``
    (times outside the observed 95% band for the risk; standardised
    difference above 0.1 for covariates), ``max |std difference|`` and the
    time where it occurs, ``max |difference|``, and ``verdict`` ("ok" when
    nothing is flagged). The full table is in ``attrs["table"]``.
    """
    nc = result.natural_course()
    tab = nc.table
    rows = []
    for q in dict.fromkeys(tab.index.get_level_values(0)):
        sub = tab.loc[q]
        std = sub["std_difference"].abs()
        t_max = std.idxmax() if std.notna().any() else None
        rows.append({"quantity": q, "times": len(sub), "flagged": int(sub["flagged"].sum()),
                     "max |std difference|": float(std.max()) if std.notna().any() else np.nan,
                     "at time": t_max, "max |difference|": float(sub["difference"].abs().max()),
                     "verdict": "ok" if not sub["flagged"].any() else "check the model"})
    out = pd.DataFrame(rows).set_index("quantity")
    out.attrs["table"] = tab
    return out
