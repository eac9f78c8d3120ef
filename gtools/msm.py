"""Marginal structural models fitted by inverse probability weighting, and clone-censor-weight.

:class:`MSM` fits a weighted GLM of the outcome on a summary of treatment
history (and baseline covariates), the weights coming from :class:`~gtools.IPTW`:

* survival outcomes: a pooled logistic model of the discrete-time hazard,
  e.g. :math:`\\text{logit}\\, P(Y_t = 1 \\mid Y_{t-1} = 0, \\bar a_t, V) = \\beta_0(t) +
  \\beta_1 \\text{cumsum}(a)_t + \\beta_2 V`, fitted on the uncensored person-time;
* end-of-follow-up outcomes (``"binary"``, ``"continuous"``): a logistic or
  linear model of :math:`E[Y^{\\bar a}]` on the person's last row.

:class:`CloneCensorWeight` estimates the risk under static or dynamic regimes
by cloning every person into every regime, censoring a clone when its
observed treatment deviates from the regime and inverse-weighting the
adherent person-time (Hernán 2018; Cain et al. 2010).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gtools import _weights_numba as _wn
from gtools.dag import require_identified
from gtools.errors import DataError, FitWarning, Problem
from gtools.models import Model, _float_column
from gtools.regimes import Regime, State, state_from_panel
from gtools.sensitivity import evalue_of
from gtools.weights import (
    IPTW,
    WeightsResult,
    as_model,
    at_risk_mask,
    flag_weights,
    truncate_weights,
    weight_table,
)

__all__ = ["MSM", "MSMResult", "CloneCensorWeight", "CCWResult"]

_SM_FAMILIES = ("binomial", "gaussian", "poisson")


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _fmt_t(v: Any) -> str:
    v = _py(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _censored(pt) -> np.ndarray:
    if pt.censor is None:
        return np.zeros(pt.n_rows, dtype=bool)
    return pt.data[pt.censor].to_numpy(dtype=float) == 1


def _contrast_table(risk: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    for g in (a, b):
        if g not in risk.columns:
            raise KeyError(f"regime {g!r} has no risk curve; available: {list(risk.columns)}")
    ra, rb = risk[a], risk[b]
    with np.errstate(divide="ignore", invalid="ignore"):
        rr = ra / rb
    return pd.DataFrame({f"risk[{a}]": ra, f"risk[{b}]": rb, "rd": ra - rb, "rr": rr}, index=risk.index)


def _risk_estimates(risk: pd.DataFrame, label: str = "risk") -> dict[str, float]:
    out: dict[str, float] = {}
    for g in risk.columns:
        for t, v in risk[g].items():
            if np.isfinite(v):
                out[f"{label}[{g},t={_fmt_t(t)}]"] = float(v)
    cols = list(risk.columns)
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            d = risk[a] - risk[b]
            for t, v in d.items():
                if np.isfinite(v):
                    out[f"{'rd' if label == 'risk' else 'diff'}[{a}-{b},t={_fmt_t(t)}]"] = float(v)
            last = risk.index[-1]
            if label == "risk" and np.isfinite(risk[a].iloc[-1]) and risk[b].iloc[-1] > 0:
                out[f"rr[{a}-{b},t={_fmt_t(last)}]"] = float(risk[a].iloc[-1] / risk[b].iloc[-1])
    return out


def _plot_curves(risk: pd.DataFrame, ax, ylabel: str):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for g in risk.columns:
        ax.step(risk.index.to_numpy(dtype=float), risk[g].to_numpy(), where="post", label=str(g))
    ax.set_xlabel(risk.index.name or "time")
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


# -- MSM -----------------------------------------------------------------------------------


class MSM:
    """A marginal structural model fitted by inverse probability weighting.

    Parameters
    ----------
    formula : str
        Outcome model over treatment-history columns, time and baseline
        covariates, e.g. ``"Y ~ cumsum_A + W + C(time)"`` (a pooled logistic
        hazard) or ``"Y ~ A + lag1_A"`` (end-of-follow-up outcome on the last row).
    weights : gt.IPTW, WeightsResult or None
        An IPTW specification (fitted on the same table inside :meth:`fit`, so
        the bootstrap re-estimates the weights in every replicate), weights
        already fitted on this table, or ``None`` (unweighted: the associational
        model, for comparison).
    family : {"binomial", "gaussian", "poisson"}
    regimes : dict of Regime, optional
        Static regimes whose standardised risk curves (:meth:`MSMResult.risk`)
        are part of ``.estimates`` (so ``gt.bootstrap`` gives their intervals).
    dag : gt.TimeDAG, optional
        Check at :meth:`fit` that the weights' treatment-model covariates are a
        valid sequential adjustment set in this DAG (``IdentificationError``
        with the open path otherwise; :func:`gtools.dag.require_identified`).

    Notes
    -----
    The MSM for a survival outcome is
    :math:`\\text{logit}\\, \\lambda_t(\\bar a, V) = \\beta^\\top x(t, \\bar a_t, V)`; under
    sequential exchangeability, positivity, consistency and correctly specified
    weight models, the weighted pooled logistic regression over uncensored
    person-time estimates :math:`\\beta` consistently (Robins, Hernán and
    Brumback 2000). The fit weights are ``IP weight x pt.row_weights()``,
    passed to statsmodels as ``var_weights`` (with the bootstrap's frequency
    weights the point estimates equal those on the resampled persons).

    Variance: the cluster-robust sandwich by person (statsmodels' ``cov_type=
    "cluster"``, groups = person, no small-sample correction: the GEE
    independence-working-correlation estimator that *What If* uses). It treats
    the weights as known, which ignores their estimation and is conservative
    for stabilised weights from correctly specified models; ``gt.bootstrap``
    (refitting weights and MSM in every replicate) is the alternative, and the
    one to use for risks and contrasts.

    References
    ----------
    Hernán MA, Brumback B, Robins JM (2000). Marginal structural models to
    estimate the causal effect of zidovudine on the survival of HIV-positive
    men. *Epidemiology* 11:561-570. Hernán MA, Robins JM. *Causal Inference:
    What If*, ch. 12 and 17.
    """

    def __init__(self, formula: str, weights: IPTW | WeightsResult | None = None, family: str = "binomial",
                 regimes: Mapping[str, Regime] | None = None, dag: Any = None):
        self.formula = formula
        self.dag = dag
        self.weights = weights
        self.family = family
        self.regimes = regimes

    def __repr__(self) -> str:
        return f"gt.MSM({self.formula!r}, weights={self.weights!r}, family={self.family!r})"

    def fit(self, pt) -> MSMResult:
        """Fit the weights (when given as a specification) and the weighted outcome model."""
        fam = {"logit": "binomial", "logistic": "binomial", "linear": "gaussian", "normal": "gaussian"}.get(
            self.family, self.family)
        if fam not in _SM_FAMILIES:
            raise ValueError(f"MSM family must be one of {_SM_FAMILIES}, got {self.family!r}")
        if self.dag is not None:  # the weights' treatment model (unweighted: the MSM's own covariates)
            require_identified(self.dag, pt, [getattr(getattr(self.weights, "spec", self.weights),
                                                      "treatment_model", self.formula)], label="MSM")
        if isinstance(self.weights, IPTW):
            wres: WeightsResult | None = self.weights.fit(pt)
        elif isinstance(self.weights, WeightsResult) or self.weights is None:
            wres = self.weights
            if wres is not None and len(wres.weights) != pt.n_rows:
                raise ValueError("the WeightsResult was fitted on another table (row counts differ)")
        else:
            raise TypeError("weights must be a gt.IPTW, a WeightsResult or None")
        model = Model(self.formula, family=fam)
        d = model.design(pt)
        rows = d.usable & ~_censored(pt)
        if pt.weights is not None:
            rows &= pt.weights > 0
        if pt.outcome_type != "survival":
            rows &= pt.last_rows
        if d.has_missing_x:
            bad = d.bad_x & ~_censored(pt)
            if pt.weights is not None:
                bad &= pt.weights > 0
            if pt.outcome_type != "survival":
                bad &= pt.last_rows
            if bad.any():
                raise DataError([Problem("missing_values", ", ".join(d.recipe.variables),
                                         f"MSM {self.formula!r}: missing values in model columns on "
                                         f"{int(bad.sum())} row(s)", int(bad.sum()))])
        if not rows.any():
            raise DataError([Problem("empty_table", d.recipe.response, f"MSM {self.formula!r}: no rows to fit", 0)])
        if fam == "binomial":
            nonbin = rows & (d.y != 0.0) & (d.y != 1.0)
            if nonbin.any():
                raise DataError([Problem("outcome_not_binary", d.recipe.response,
                                         "binomial MSM needs a 0/1 outcome; use family='gaussian'",
                                         int(nonbin.sum()))])
        # the fit's weights: IP weight x frequency weight, read on the fitted rows only (no copy unless both)
        w = None if wres is None else wres.weights.to_numpy()
        if pt.weights is not None:
            w = pt.weights if w is None else w * pt.weights
        glm = _fit_glm(d, rows, w, pt.person_index, pt.n_persons, fam)
        codes = pt.person_index
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        n_persons = int(np.count_nonzero(np.logical_or.reduceat(rows, starts)))
        res = MSMResult(spec=self, family=fam, glm=glm, names=list(d.recipe.names), recipe=d.recipe,
                        weights=wres, n_rows=int(rows.sum()), n_persons=n_persons,
                        _pt=pt)
        if self.regimes:
            res.risk(self.regimes)
        return res


class _WeightedGLM:
    """A weighted GLM with the cluster-robust (by person) sandwich, fitted from the table's columns.

    Coefficients by IRLS (binomial, poisson) or weighted least squares (gaussian) on the rows with
    positive weight; covariance :math:`H^{-1} (\\sum_i U_i U_i^T) H^{-1}` with :math:`H = X^T W V X`
    and :math:`U_i = \\sum_{r \\in i} w_r (y_r - \\mu_r) x_r` (no small-sample correction): the same
    numbers as statsmodels' ``GLM(var_weights=w).fit(cov_type="cluster", use_correction=False)``.
    The kernels of :mod:`gtools._colglm` build the design rows strip by strip, so neither the design
    matrix nor any per-row vector besides the weights is held. Wald tests and intervals use the
    normal distribution.
    """

    def __init__(self, d, rows, w, groups, n_groups, fam):
        from gtools import _colglm as K
        from gtools.models import _NO_COLUMNS, irls_design

        beta, converged, _ = irls_design(d, rows, w, fam)
        if not converged:
            warnings.warn("MSM: IRLS did not converge", FitWarning, stacklevel=4)
        code = {"binomial": K.BINOMIAL, "poisson": K.POISSON}.get(fam, K.GAUSSIAN)
        var, kind, param, ptr = d.encoding
        use_w = w is not None
        H, U, big = K.sandwich(d.columns, var, kind, param, ptr, d.y, w if use_w else _NO_COLUMNS, use_w, rows,
                               beta, np.asarray(groups, dtype=np.int64), int(n_groups), code)
        Hinv = np.linalg.pinv(H)
        self.params = beta
        self._cov = Hinv @ (U.T @ U) @ Hinv
        self.bse = np.sqrt(np.maximum(np.diag(self._cov), 0.0))
        self.tvalues = beta / np.where(self.bse > 0, self.bse, np.nan)
        from statistics import NormalDist

        nd = NormalDist()
        self.pvalues = np.array([2 * (1 - nd.cdf(abs(z))) if np.isfinite(z) else np.nan for z in self.tvalues])
        self.max_abs_eta = float(big)

    def cov_params(self) -> np.ndarray:
        return self._cov

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        from statistics import NormalDist

        z = NormalDist().inv_cdf(1 - alpha / 2)
        return np.column_stack([self.params - z * self.bse, self.params + z * self.bse])


def _fit_glm(d, rows, w, groups, n_groups, fam):
    glm = _WeightedGLM(d, rows, w, groups, n_groups, fam)
    if fam == "binomial" and glm.max_abs_eta > 25:
        warnings.warn("MSM: fitted probabilities of 0 or 1 (possible separation); simplify the MSM "
                      "(e.g. a smooth function of time instead of C(time))", FitWarning, stacklevel=3)
    return glm


@dataclass
class MSMResult:
    """A fitted marginal structural model.

    Attributes
    ----------
    params, bse : pandas.Series
        Coefficients and cluster-robust standard errors.
    weights : WeightsResult or None
        The IP weights used (``msm.weights.summary()``, ``.balance()``).
    glm : statsmodels GLMResults
        The underlying fit (cluster-robust covariance by person).
    """

    spec: MSM
    family: str
    glm: Any
    names: list
    recipe: Any
    weights: WeightsResult | None
    n_rows: int
    n_persons: int
    _pt: Any = field(repr=False)
    _risk: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def params(self) -> pd.Series:
        return pd.Series(np.asarray(self.glm.params), index=self.names, name="coef")

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.asarray(self.glm.bse), index=self.names, name="se")

    def cov(self) -> pd.DataFrame:
        """Cluster-robust covariance of the coefficients."""
        return pd.DataFrame(np.asarray(self.glm.cov_params()), index=self.names, columns=self.names)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals from the cluster-robust covariance."""
        ci = np.asarray(self.glm.conf_int(alpha))
        return pd.DataFrame(ci, index=self.names, columns=["lower", "upper"])

    def summary(self) -> pd.DataFrame:
        """Coefficient table: estimate, robust SE, z, p, 95% CI (exp(coef) for binomial/poisson)."""
        ci = self.conf_int()
        tab = pd.DataFrame({"coef": self.params, "se": self.bse,
                            "z": np.asarray(self.glm.tvalues), "p": np.asarray(self.glm.pvalues),
                            "ci_lower": ci["lower"], "ci_upper": ci["upper"]})
        if self.family in ("binomial", "poisson"):
            tab[{"binomial": "odds_ratio", "poisson": "rate_ratio"}[self.family]] = np.exp(tab["coef"])
        return tab

    @property
    def estimates(self) -> pd.Series:
        """``coef[name]`` for every coefficient, plus risks/contrasts of the regimes given to MSM."""
        out = {f"coef[{n}]": float(v) for n, v in self.params.items()}
        if self._risk is not None and self.spec.regimes:
            out.update(_risk_estimates(self._risk, "risk" if self._pt.outcome_type == "survival" else "mean"))
        return pd.Series(out, dtype=float)

    # -- standardised risk under static regimes ----------------------------------
    def risk(self, regimes: Mapping[str, Regime]) -> pd.DataFrame:
        """Cumulative risk (or end-of-follow-up mean) under each static regime.

        For each person at t = 0 (baseline covariates V), the regime's
        treatment history is generated interval by interval and the history
        columns the MSM reads (``lag1_A``, ``cumsum_A``, ...) are computed
        from it with the same step rules as the g-formula; the MSM's hazard
        :math:`\\hat\\lambda_t` is predicted and
        :math:`\\hat r_g(t) = \\sum_i w_i [1 - \\prod_{k \\le t} (1 - \\hat\\lambda_{ik})] / \\sum_i w_i`
        (frequency weights ``w_i``). For an end-of-follow-up outcome the
        standardised mean :math:`\\sum_i w_i \\hat E[Y \\mid \\bar g, V_i] / \\sum_i w_i`
        at the last interval is returned. Dynamic regimes that read
        time-varying covariates need :class:`CloneCensorWeight`.

        Returns a DataFrame indexed by time, one column per regime.
        """
        pt = self._pt
        cols = _baseline_columns(pt, self.recipe, self.spec.formula)
        first = pt.data[pt.time].to_numpy() == 0
        fw0 = pt.row_weights()[first]
        keep = fw0 > 0
        base = {c: pt.data[c].to_numpy(dtype=float)[first][keep] for c in cols}
        fw0 = fw0[keep]
        n = int(keep.sum())
        K = pt.n_times
        feats = [f for f in pt.history if f.root == pt.treatment]
        beta = np.asarray(self.glm.params)
        survival = pt.outcome_type == "survival"
        out = {}
        for gname, regime in regimes.items():
            state = {f.name: f.init(n) for f in feats}
            prev = np.zeros(n)
            surv = np.ones(n)
            curve = np.empty(K)
            last_mean = np.nan
            for t in range(K):
                vals: dict[str, np.ndarray] = dict(base)
                vals[pt.time] = np.full(n, float(t))
                for f in feats:
                    if not f.uses_current:
                        src = None if f.kind == "lag" else vals[f.source_name]
                        vals[f.name] = f.value(state[f.name], src, t)
                try:
                    a = regime(State(t=np.full(n, t), columns=vals, previous=prev))
                except (KeyError, ValueError) as e:
                    raise ValueError(f"regime {gname!r} cannot be evaluated from treatment history and baseline "
                                     f"covariates alone ({e}); estimate dynamic regimes with "
                                     "gt.CloneCensorWeight") from None
                vals[pt.treatment] = a
                for f in feats:
                    if f.uses_current:
                        src = a if f.source_name == pt.treatment else vals[f.source_name]
                        vals[f.name] = f.value(state[f.name], src, t)
                X = self.recipe.matrix(vals) if self.recipe.variables else np.ones((n, 1))
                eta = X @ beta
                mu = {"binomial": lambda e: 1 / (1 + np.exp(-e)), "poisson": np.exp,
                      "gaussian": lambda e: e}[self.family](eta)
                if survival:
                    surv = surv * (1 - mu)
                    curve[t] = np.sum(fw0 * (1 - surv)) / fw0.sum()
                else:
                    last_mean = np.sum(fw0 * mu) / fw0.sum()
                for f in feats:
                    src = a if f.source_name == pt.treatment else vals[f.source_name]
                    f.update(state[f.name], src, t)
                prev = a
            out[gname] = curve if survival else np.array([last_mean])
        idx = pd.Index(pt.time_values if survival else pt.time_values[-1:], name=pt.time)
        tab = pd.DataFrame(out, index=idx)
        self._risk = tab if self._risk is None else pd.concat(
            [self._risk.drop(columns=[c for c in tab.columns if c in self._risk.columns]), tab], axis=1)
        return tab

    def evalue(self, what: str | None = None, reference: str | None = None, **kw) -> Any:
        """E-value of a coefficient (``msm.evalue("vaso")``) or a risk contrast (``msm.evalue("always", "never",
        t=27, ci=(lo, hi))``); see :func:`gtools.sensitivity.evalue_of`."""
        return evalue_of(self, what, reference, **kw)

    def contrast(self, a: str, b: str) -> pd.DataFrame:
        """Risk difference ``rd`` and ratio ``rr`` of regimes ``a`` vs ``b`` at each time (after :meth:`risk`)."""
        if self._risk is None:
            raise ValueError("call .risk({...}) with the regimes first (or give regimes= to gt.MSM)")
        return _contrast_table(self._risk, a, b)

    def plot(self, ax=None):
        """Standardised risk curves of the regimes computed so far."""
        if self._risk is None:
            raise ValueError("call .risk({...}) with the regimes first")
        return _plot_curves(self._risk, ax, "cumulative risk" if self._pt.outcome_type == "survival" else "mean")

    def __repr__(self) -> str:
        w = "unweighted" if self.weights is None else ("stabilised IPW" if self.weights.stabilized else "IPW")
        terms = ", ".join(f"{k}={v:.4g} (SE {s:.3g})" for k, v, s in zip(self.names, self.params, self.bse))
        return (f"<MSMResult {self.spec.formula!r} ({self.family}, {w}); {self.n_persons} persons, "
                f"{self.n_rows} rows; {terms}>")


def _baseline_columns(pt, recipe, formula: str) -> list[str]:
    """The MSM's variables other than time, treatment and treatment history: must be fixed per person."""
    hist = {f.name for f in pt.history if f.root == pt.treatment}
    other = [v for v in recipe.variables if v not in hist and v not in (pt.time, pt.treatment)]
    for v in other:
        if v in pt.baseline:
            continue
        x = pt.data[v].to_numpy(dtype=float)
        codes = pt.person_index
        same = np.zeros(len(x), dtype=bool)
        same[1:] = codes[1:] == codes[:-1]
        if np.any(same & (x != np.roll(x, 1))):
            raise ValueError(f"MSM {formula!r} reads {v!r}, which varies over time: a marginal structural model "
                             "may condition only on baseline covariates, time and treatment history")
    return other


# -- clone-censor-weight ------------------------------------------------------------------


class CloneCensorWeight:
    """Risk under static or dynamic regimes by cloning, artificial censoring and IP weighting.

    Parameters
    ----------
    regimes : dict of Regime
        E.g. ``{"start_when_sick": gt.regimes.threshold("L2", ">", 4.0, absorbing=True),
        "never": gt.regimes.never()}``; evaluated on the observed rows with
        :func:`gtools.regimes.state_from_panel` (deterministic regimes only).
    treatment_model : gt.Model or str
        :math:`P(A_t = 1 \\mid \\bar A_{t-1}, \\bar L_t, V)` fitted on the observed data.
    censor_model : gt.Model or str, optional
        :math:`P(C_t = 1 \\mid \\bar A_t, \\bar L_t, V)` for the data's own
        censoring; ``None`` assumes it is independent of the outcome (no weights).
    hazard_formula : str
        Right-hand side of the weighted pooled logistic hazard fitted per
        regime, default ``"C(time)"`` (a separate hazard at each interval, which
        is computed in closed form as the weighted event fraction: the
        saturated model's maximum likelihood estimate). It may add baseline
        covariates; the risk is then standardised over persons at t = 0.
    truncate, truncate_values : (float, float), optional
        Truncation of each regime's weights, by percentiles or by values (as in :class:`~gtools.IPTW`).
    absorbing_treatment, at_risk
        Person-time whose observed treatment is fixed by design (as in :class:`~gtools.IPTW`).
    dag : gt.TimeDAG, optional
        Check the treatment model's covariates against this DAG at :meth:`fit` (as in :class:`~gtools.IPTW`).

    Notes
    -----
    Estimand: :math:`r_g(t) = P(Y^{g}_t = 1)`, the cumulative risk by interval
    t had everyone followed regime g (and, with a ``censor_model``, had nobody
    been censored). Procedure (a target-trial emulation with treatment
    decisions at every interval and no grace period):

    1. each person is cloned into every regime; at each observed row the
       regime's treatment :math:`g_t` is evaluated on the observed history;
    2. a clone is artificially censored at the first interval where the
       observed treatment differs from :math:`g_t` (that row, whose outcome
       follows a non-regime treatment, and later rows are dropped);
    3. an adherent clone's row t gets weight
       :math:`W_g(t) = \\prod_{k \\le t} P(A_k = g_k \\mid \\bar A_{k-1}, \\bar L_k, V)^{-1}
       \\prod_{k \\le t} P(C_k = 0 \\mid \\dots)^{-1}` (unstabilised);
    4. a weighted pooled logistic hazard is fitted per regime over the adherent,
       uncensored clone rows; :math:`\\hat r_g(t) = 1 - \\prod_{k\\le t}(1 - \\hat\\lambda_k)`.

    Assumptions: sequential exchangeability for treatment and censoring given
    the measured history (the treatment and censor models' covariates),
    positivity of following each regime at every history the regime visits,
    consistency, correct treatment and censoring models, and a regime that
    depends only on measured history (deterministic). No analytic standard
    errors: use ``gt.bootstrap`` (weights refitted in every replicate).

    References
    ----------
    Cain LE, Robins JM, Lanoy E, et al. (2010). When to start treatment? A
    systematic approach to the comparison of dynamic regimes using
    observational data. *Int J Biostat* 6(2):18. Hernán MA (2018). How to
    estimate the effect of treatment duration on survival outcomes using
    observational data. *BMJ* 360:k182.
    """

    def __init__(self, regimes: Mapping[str, Regime], treatment_model: Model | str,
                 censor_model: Model | str | None = None, hazard_formula: str = "C(time)",
                 truncate: tuple[float, float] | None = None, truncate_values: tuple[float, float] | None = None,
                 absorbing_treatment: bool = False, at_risk=None, dag: Any = None):
        self.regimes = regimes
        self.dag = dag
        self.treatment_model = treatment_model
        self.censor_model = censor_model
        self.hazard_formula = hazard_formula
        self.truncate = truncate
        self.truncate_values = truncate_values
        self.absorbing_treatment = absorbing_treatment
        self.at_risk = at_risk

    def __repr__(self) -> str:
        return (f"gt.CloneCensorWeight(regimes={list(self.regimes)}, treatment_model={self.treatment_model!r}, "
                f"censor_model={self.censor_model!r}, hazard_formula={self.hazard_formula!r})")

    def fit(self, pt, warn: bool = True) -> CCWResult:
        """Clone, censor at deviation, weight and fit the hazard of each regime."""
        if pt.outcome_type != "survival":
            raise ValueError("CloneCensorWeight estimates risks of a survival outcome")
        if not self.regimes:
            raise ValueError("give at least one regime")
        if self.dag is not None:
            require_identified(self.dag, pt, [self.treatment_model], label="CloneCensorWeight")
        A = pt.treatment
        den = as_model(self.treatment_model)
        if den is None or den.response != A:
            raise ValueError(f"treatment_model must be a model for the treatment {A!r}")
        cden = as_model(self.censor_model)
        if cden is not None and (pt.censor is None or cden.response != pt.censor):
            raise ValueError(f"censor_model must be a model for the censor column {pt.censor!r}")
        fw = pt.weights  # None: every row counts once
        fwa = fw if fw is not None else np.ones(1)
        times = np.asarray(pt.data[pt.time].to_numpy(), dtype=np.int64)
        a = _float_column(pt, A)
        codes = pt.person_index
        risk_rows = at_risk_mask(pt, self.at_risk, self.absorbing_treatment or den.absorbing)
        fden = den.fit(pt, rows=risk_rows, warn=warn)
        p1 = fden.predict_table(pt)
        censored = _censored(pt)
        fcd = None
        cw = None  # running products of 1 / P(C = 0) over uncensored rows (shared by every regime)
        if cden is not None:
            fcd = cden.fit(pt, warn=warn)
            cw = fcd.predict_table(pt)
            _wn.inverse(_float_column(pt, pt.censor), ~censored, cw)  # 1 / P(C = 0) on uncensored rows
            _wn.cumprod_by_person(codes, cw)
        y = _float_column(pt, pt.outcome)
        hazard_rows = ~censored & ~np.isnan(y)
        if fw is not None:
            hazard_rows &= fw > 0
        state = state_from_panel(pt)

        hz = self.hazard_formula.replace(" ", "")
        closed_form = hz in ("C(time)", f"C({pt.time})")
        K = pt.n_times
        risk, hazards, weights, tables, trunc = {}, {}, {}, {}, {}
        first = times == 0
        adherent = np.empty(pt.n_rows, dtype=bool)
        low = np.empty(pt.n_rows, dtype=bool)
        for gname, regime in self.regimes.items():
            if regime.needs_natural and not isinstance(regime, Regime):
                raise ValueError(f"regime {gname!r} is not a gtools regime")
            g = np.asarray(regime(state), dtype=float)
            if g.shape != (pt.n_rows,):
                raise ValueError(f"regime {gname!r} returned {g.shape}, expected one treatment per row")
            W = np.empty(pt.n_rows)
            _wn.clone_weights(codes, a, g, p1, risk_rows, W, adherent, low)
            del g
            if warn:
                if fw is not None:
                    low &= fw > 0
                if low.any():
                    ts = sorted({_py(v) for v in pt.time_values[times[low]]})
                    warnings.warn(f"positivity: {fden.spec.label} gives a probability below 0.01 of following "
                                  f"regime {gname!r} on {int(low.sum())} adherent row(s), at times "
                                  f"{', '.join(map(str, ts[:10]))}; their clones carry weights above 100 — "
                                  "consider truncation, a regime closer to practice, or the g-formula",
                                  FitWarning, stacklevel=2)
            if cw is not None:
                W *= cw
            rows = adherent & hazard_rows
            infinite = rows & ~np.isfinite(W)
            if infinite.any():
                raise DataError([Problem("positivity", A, f"regime {gname!r}: infinite weights (adherence "
                                         "probability of exactly 0)", int(infinite.sum()))])
            del infinite
            W, trunc[gname] = truncate_weights(W, fw, rows, self.truncate, self.truncate_values)
            W[~rows] = 0.0
            weights[gname] = W
            sums = _wn.sums_by_time(times, rows, W, fwa, fw is not None, y, K)
            ev, den_t, n_t, e_t = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
            if closed_form:
                with np.errstate(divide="ignore", invalid="ignore"):
                    h = np.where(den_t > 0, ev / den_t, np.nan)
                curve = 1 - np.cumprod(1 - h)
            else:
                h, curve = self._fit_hazard(pt, rows, W, first, K)
            if np.isnan(curve).any():
                gone = [_py(pt.time_values[t]) for t in np.flatnonzero(np.isnan(curve))]
                warnings.warn(f"CCW regime {gname!r}: no adherent clone at risk from time {gone[0]} on; the risk "
                              "curve stops there (NaN) and those times are left out of .estimates",
                              FitWarning, stacklevel=2)
            risk[gname], hazards[gname] = curve, h
            tab = weight_table(W, fw, times, rows, pt.time_values).rename(columns={"at_risk": "adherent"})
            by = tab.drop(index="overall")
            pos = [int(np.flatnonzero(pt.time_values == t)[0]) for t in by.index]
            tab.loc[by.index, "events"] = e_t[pos]
            tab.loc["overall", "events"] = e_t.sum()
            tab.loc[by.index, "adherent"] = n_t[pos]
            tab.loc[by.index, "hazard"] = np.asarray(h)[pos]
            tab.loc[by.index, "risk"] = np.asarray(curve)[pos]
            fin = np.flatnonzero(np.isfinite(curve))
            tab.loc["overall", "risk"] = curve[fin[-1]] if len(fin) else np.nan
            starters = first & adherent
            tab.loc["overall", "persons"] = float(np.count_nonzero(starters) if fw is None else fw[starters].sum())
            tables[gname] = tab
            if warn:
                flag_weights(tab.rename(columns={"adherent": "at_risk"}), False, f"CCW regime {gname!r}")
        idx = pd.Index(pt.time_values, name=pt.time)
        return CCWResult(spec=self, risk=pd.DataFrame(risk, index=idx), hazards=pd.DataFrame(hazards, index=idx),
                         tables=tables, truncation=trunc, models={"treatment": fden, "censoring": fcd},
                         weights={k: pd.Series(v, index=pt.data.index) for k, v in weights.items()}, _pt=pt)

    def _fit_hazard(self, pt, rows, W, first, K):
        m = Model(f"{pt.outcome} ~ {self.hazard_formula}", family="binomial").fit(pt, rows=rows, weights=W)
        cols = [v for v in m.recipe.variables if v != pt.time]
        fw0 = pt.row_weights()[first]
        keep = fw0 > 0
        base = {c: pt.data[c].to_numpy(dtype=float)[first][keep] for c in cols}
        n = int(keep.sum())
        surv = np.ones(n)
        curve, haz = np.empty(K), np.empty(K)
        for t in range(K):
            vals = dict(base)
            vals[pt.time] = np.full(n, float(t))
            h = m.predict(vals) if m.recipe.variables else np.full(n, m.predict_design(np.ones((1, 1)))[0])
            surv = surv * (1 - h)
            haz[t] = np.sum(fw0[keep] * h) / fw0[keep].sum()
            curve[t] = np.sum(fw0[keep] * (1 - surv)) / fw0[keep].sum()
        return haz, curve


@dataclass
class CCWResult:
    """Risk curves under each regime by clone-censor-weight.

    Attributes
    ----------
    risk : pandas.DataFrame
        Cumulative risk, index time, one column per regime.
    hazards : pandas.DataFrame
        The weighted hazard of each interval (averaged over baseline covariates
        when the hazard formula has them).
    tables : dict of DataFrame
        Per regime and time: adherent clones at risk, events, weight
        distribution, ESS, hazard and risk (what :meth:`summary` stacks).
    weights : dict of pandas.Series
        Each regime's clone weights (0 on rows not used), aligned to ``pt.data``.
    truncation : dict
        Per regime, as in :class:`~gtools.WeightsResult`.
    """

    spec: CloneCensorWeight
    risk: pd.DataFrame
    hazards: pd.DataFrame
    tables: dict
    truncation: dict
    models: dict
    weights: dict
    _pt: Any = field(repr=False)

    def contrast(self, a: str, b: str) -> pd.DataFrame:
        """Risk difference ``rd`` and ratio ``rr`` of regime ``a`` vs ``b`` at each time."""
        return _contrast_table(self.risk, a, b)

    def evalue(self, what: str, reference: str, **kw) -> Any:
        """E-value of the risk ratio of regime ``what`` vs ``reference`` (``t=``, ``ci=``; see
        :func:`gtools.sensitivity.evalue_of`)."""
        return evalue_of(self, what, reference, **kw)

    @property
    def estimates(self) -> pd.Series:
        """``risk[g,t=k]`` at every time, ``rd[a-b,t=k]`` for every pair, ``rr`` at the last time."""
        return pd.Series(_risk_estimates(self.risk), dtype=float)

    def summary(self) -> pd.DataFrame:
        """Per regime and time: adherent clones, events, weight distribution, ESS, hazard and risk.

        ``adherent`` counts the clones still following the regime and
        uncensored (frequency-weighted); ``ess`` is the Kish effective sample
        size of their weights and ``ess_ratio = ess / adherent``; a ratio below
        0.25 was a ``FitWarning`` at fit. Standard errors: ``gt.bootstrap``.
        """
        parts = {g: tab for g, tab in self.tables.items()}
        return pd.concat(parts, names=["regime", "time"])

    def plot(self, ax=None):
        """Cumulative risk curves, one per regime."""
        return _plot_curves(self.risk, ax, "cumulative risk")

    def __repr__(self) -> str:
        parts = []
        for g in self.risk.columns:
            s = self.risk[g].dropna()
            parts.append(f"{g}: {s.iloc[-1]:.4f} at t={_fmt_t(s.index[-1])}" if len(s) else f"{g}: none")
        return (f"<CCWResult: {self._pt.n_persons} persons cloned into {len(self.risk.columns)} regimes; "
                f"risk {', '.join(parts)}>")

