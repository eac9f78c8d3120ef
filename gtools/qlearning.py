"""Q-learning and dynamic weighted OLS for multi-stage dynamic treatment regimes.

At each decision point (stage) ``k = 1..K`` a person with history ``H_k``
receives a binary treatment ``A_k``; the outcome ``Y`` (larger is better) is
measured at the end of follow-up, optionally with rewards ``R_k`` observed
after each stage (the target is then ``sum_k R_k + Y``). The optimal regime
``d^opt = (d_1, ..., d_K)`` maximises the value ``V(d) = E[Y(d)]``.

The Q-function at stage k is modelled as

.. math:: Q_k(h_k, a_k) = \\beta_k^\\top x_k(h_k) + a_k\\, \\psi_k^\\top z_k(h_k),

the treatment-free part plus the *blip* ``gamma_k(h, a) = a psi_k' z_k(h)``:
the effect of ``a_k`` against ``a_k = 0`` when the optimal regime is followed
afterwards. In a formula such as ``"Y ~ L1 + L2 + W + A + A:L2"`` every term
containing the treatment column is a blip term, the rest are treatment-free
terms. The rule is ``d_k(h) = 1{psi_k' z_k(h) > 0}``.

Backward induction
------------------
Fit stage K on ``Y~_K = R_K + Y``; then for k = K-1, ..., 1 fit stage k on a
pseudo-outcome ``Y~_k = R_k + ...`` built from the stages already fitted:

* ``pseudo="regret"`` (default; DTRreg): the observed outcome plus the
  estimated regrets of the later stages,
  ``Y~_k = sum_{t >= k} R_t + Y + sum_{j > k} [gamma_j(H_j, d_j(H_j)) - gamma_j(H_j, A_j)]``.
  It keeps the observed residual, so a misspecified treatment-free model at
  a later stage does not propagate into earlier stages' pseudo-outcomes;
* ``pseudo="max_q"``: the classic Q-learning target
  ``Y~_k = R_k + max_a Q_{k+1}(H_{k+1}, a)``, which inherits the fitted
  treatment-free model of stage k+1 (the two coincide when that model is right).

Later-stage histories are the observed ones (``H_j`` includes the observed
``A_k``): that is what makes ``Y~_k`` an estimate of the outcome under the
observed treatments up to k and the optimal regime afterwards.

Estimators of the stage-k parameters
------------------------------------
* ``method="q"``: ordinary least squares of ``Y~_k`` on the full Q-model.
  Consistent for the blip only when the treatment-free model is correct.
* ``method="dwols"`` (Wallace & Moodie 2015): weighted least squares with
  weights ``|A_k - pi_k(H_k)|``, ``pi_k = P(A_k = 1 | H_k)`` from
  ``treatment_model``. The blip parameters are consistent (doubly robust)
  if either the treatment-free model or the treatment model is correct (and
  the blip model is correct).
* ``learner=`` any scikit-learn regressor fitted to the Q-model's design
  matrix (including its treatment terms); blips and rules come from its
  predictions ``Q_k(h, 1) - Q_k(h, 0)``.

Identifying assumptions: sequential exchangeability (no unmeasured
confounding of each ``A_k`` given ``H_k``), positivity, consistency, no
interference; plus correct blip models (and, for ``"q"``, correct
treatment-free models; for ``"dwols"`` either of the two nuisance models).

Inference
---------
Sandwich standard errors for the linear Q-models (``se=``):

* ``"stagewise"`` (default, as DTRreg >= 2.0 reports them): at each stage the
  pseudo-outcome and the weights are treated as fixed; the covariance is
  ``n^{-1} var(M^{-1} U_i)`` with ``U_i = w_i (Y~_i - Q_i) x_i`` and
  ``M = -n^{-1} sum_i w_i x_i x_i'`` (``var`` with divisor n - 1);
* ``"stacked"``: the full M-estimation sandwich stacking every stage's
  estimating equations with the treatment models' logistic scores, so it
  accounts for estimating the weights and, at earlier stages, the
  pseudo-outcome (its derivative with respect to later-stage parameters taken
  with the estimated rules held fixed, which is the almost-everywhere
  derivative).

Stage-1 parameters are non-regular when the later-stage blips are near zero
for a positive fraction of persons (the rule is not differentiable there):
neither sandwich nor the ordinary bootstrap is then valid. The adaptive
m-out-of-n bootstrap of Chakraborty, Laber & Zhao (2013) is: estimate
``p_hat`` (:meth:`DTRResult.nonregularity`), take
``m = n^{(1 + alpha (1 - p_hat)) / (1 + alpha)}`` (:func:`m_out_of_n`) and
run ``gt.bootstrap(spec, pt, n_boot=..., m=m)``; its percentile intervals
are rescaled by ``sqrt(m / n)`` (see :func:`m_out_of_n_ci`).

Values of regimes
-----------------
``value[optimal]``: the plug-in estimate, the mean of the optimal pseudo-
outcome ``Y~_0 + regret_1`` (``"regret"``) or of ``max_a Q_1(H_1, a)``
(``"max_q"``). ``value[optimal,ipw]`` and ``compare()``: the normalised
(Hajek) inverse-probability-weighted value
``sum_i C_i Y_i / prod_k pi_k(A_ik | H_ik) / sum_i C_i / prod_k pi_k(A_ik | H_ik)``,
``C_i = 1{A_ik = d_k(H_ik) for all k}``, with the fitted treatment models.

References
----------
Murphy SA (2003). Optimal dynamic treatment regimes. JRSS-B 65:331-355.
Robins JM (2004). Optimal structural nested models for optimal sequential decisions.
Chakraborty B, Moodie EEM (2013). Statistical Methods for Dynamic Treatment Regimes. Springer.
Wallace MP, Moodie EEM (2015). Doubly-robust dynamic treatment regimen estimation via weighted
least squares. Biometrics 71:636-644.
Wallace MP, Moodie EEM, Stephens DA (2017). Dynamic treatment regimen estimation via regression-based
techniques: introducing R package DTRreg. J Stat Softw 80(2).
Chakraborty B, Laber EB, Zhao Y (2013). Inference for optimal dynamic treatment regimes using an
adaptive m-out-of-n bootstrap scheme. Biometrics 69:714-723.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from gtools.dag import require_identified
from gtools.errors import DataError, FitWarning, Problem
from gtools.formula import build_recipe, parse_formula
from gtools.models import Model, check_positivity

__all__ = ["QLearning", "DTRResult", "m_out_of_n", "m_out_of_n_ci"]

_METHODS = ("q", "dwols")
_PSEUDO = ("regret", "max_q")
_SE = ("stagewise", "stacked", "none")


# -- helpers ---------------------------------------------------------------------------


def m_out_of_n(n: int, alpha: float = 0.1, p_hat: float = 0.0) -> int:
    """Resample size of the adaptive m-out-of-n bootstrap (Chakraborty, Laber & Zhao 2013).

    .. math:: m = \\lfloor n^{(1 + \\alpha (1 - \\hat p)) / (1 + \\alpha)} \\rfloor

    ``p_hat`` is the estimated proportion of persons whose later-stage blip
    is indistinguishable from 0 (:meth:`DTRResult.nonregularity`); with
    ``p_hat = 0`` (regular) ``m = n``, and ``m`` shrinks as ``p_hat`` grows.
    ``alpha > 0`` is a tuning parameter (0.1 in the paper's simulations;
    DTRreg's ``chooseM`` picks it by a double bootstrap).

    Use it as ``gt.bootstrap(spec, pt, n_boot=1000, m=m_out_of_n(pt.n_persons, p_hat=res.nonregularity()))``;
    :meth:`gtools.BootstrapResult.conf_int` then rescales the percentile
    interval (equivalently :func:`m_out_of_n_ci`).
    """
    if n < 1:
        raise ValueError("n must be a positive number of persons")
    if alpha <= 0:
        raise ValueError("alpha must be positive")
    if not 0 <= p_hat <= 1:
        raise ValueError(f"p_hat must be a proportion in [0, 1], got {p_hat}")
    return int(np.floor(float(n) ** ((1.0 + alpha * (1.0 - p_hat)) / (1.0 + alpha))))


def m_out_of_n_ci(estimate: pd.Series | float, replicates: pd.DataFrame | np.ndarray, n: int, m: int,
                  alpha: float = 0.05) -> pd.DataFrame:
    """Percentile interval from m-out-of-n replicates.

    The quantiles of :math:`\\sqrt m(\\hat\\theta^*_m - \\hat\\theta)` stand in for
    those of :math:`\\sqrt n(\\hat\\theta - \\theta)`:
    ``[theta - q_{1-alpha/2} sqrt(m/n), theta - q_{alpha/2} sqrt(m/n)]`` with
    ``q`` the quantiles of ``theta* - theta``.
    """
    reps = pd.DataFrame(replicates)
    est = pd.Series(estimate, index=reps.columns) if np.ndim(estimate) == 0 else pd.Series(estimate)
    dev = (reps - est) * np.sqrt(m / n)
    return pd.DataFrame({"lower": est - dev.quantile(1 - alpha / 2), "upper": est - dev.quantile(alpha / 2)})


def _examples(pt, rows: np.ndarray) -> list:
    idx = np.flatnonzero(rows)[:5]
    d = pt.data
    return [(_py(d[pt.id].iloc[i]), _py(d[pt.time].iloc[i])) for i in idx]


def _py(x):
    return x.item() if isinstance(x, np.generic) else x


def _fmt(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class _QDesign:
    """Design of one Q-model formula over a table: observed, treated and untreated versions."""

    formula: str
    names: list[str]
    blip: np.ndarray  # boolean mask of blip columns
    X: np.ndarray
    X1: np.ndarray
    X0: np.ndarray
    bad: np.ndarray  # rows with a missing design value
    variables: list[str]
    recipe: Any


def _q_design(pt, formula: str, treatment: str) -> _QDesign:
    key = ("qlearning-design", formula, treatment)
    if key in pt._cache:
        return pt._cache[key]
    _, _, terms = parse_formula(formula)
    rhs = formula.split("~", 1)[1] if "~" in formula else formula
    data = pt.data
    cols = {c: data[c].to_numpy() for c in data.columns}
    recipe = build_recipe(rhs, cols, list(data.columns))
    if treatment not in recipe.variables:
        raise ValueError(f"Q-model {formula!r} has no term in the treatment {treatment!r}: add the blip terms, "
                         f"e.g. '... + {treatment} + {treatment}:L1'")
    num = {v: np.asarray(data[v], dtype=float) for v in recipe.variables}
    X = recipe.matrix(num)
    X1 = recipe.matrix({**num, treatment: np.ones(len(data))})
    X0 = recipe.matrix({**num, treatment: np.zeros(len(data))})
    ai = recipe.variables.index(treatment)
    blip = np.array([bool(np.any(recipe.fac_var[recipe.term_ptr[j]:recipe.term_ptr[j + 1]] == ai))
                     for j in range(recipe.n_columns)])
    bad = np.isnan(X).any(axis=1)
    out = _QDesign(formula, list(recipe.names), blip, X, X1, X0, bad, list(recipe.variables), recipe)
    pt._cache[key] = out
    return out


def _stage_formula(formula: str, data: pd.DataFrame, rows: np.ndarray, cache: dict | None = None) -> str:
    """The formula restricted to one stage's rows: constant variables are folded away.

    A variable constant on the stage's rows (the time column at a single
    stage, a lag at the first stage) makes a term either identically 0 (the
    term is dropped) or a rescaled version of the term without that variable
    (which replaces it); duplicates and the empty term (the intercept) are
    removed. The column space at that stage is unchanged, so the fit is the
    same but identified.
    """
    key = ("qlearning-stage-formula", formula, len(rows), int(rows[0]) if len(rows) else -1,
           int(rows.sum()) if len(rows) else 0)
    if cache is not None and key in cache:
        return cache[key]
    out = _fold_constants(formula, data, rows)
    if cache is not None:
        cache[key] = out
    return out


def _fold_constants(formula: str, data: pd.DataFrame, rows: np.ndarray) -> str:
    lhs, intercept, terms = parse_formula(formula)
    const: dict[str, float] = {}
    for t in terms:
        for f in t:
            if f.var in const or f.var not in data.columns:
                continue
            col = data[f.var].to_numpy()
            v = col[rows].astype(float) if np.issubdtype(col.dtype, np.number) else \
                pd.to_numeric(pd.Series(col[rows]), errors="coerce").to_numpy(dtype=float)
            if len(v) and not np.isnan(v).any() and np.all(v == v[0]):
                const[f.var] = float(v[0])
    if not const:
        return formula
    kept: list[str] = []
    for t in terms:
        factors, zero = [], False
        for f in t:
            if f.var in const:
                c = const[f.var]
                if f.kind == "cat":
                    continue  # C(x) with a single level: only its reference level exists here
                if c == 0:
                    zero = True
                continue
            factors.append(f.label())
        if zero or not factors:
            continue
        label = ":".join(factors)
        if label not in kept:
            kept.append(label)
    rhs = " + ".join(kept) if kept else "1"
    if not intercept:
        rhs += " - 1"
    return f"{lhs} ~ {rhs}" if lhs else rhs


def _wls(X: np.ndarray, y: np.ndarray, w: np.ndarray, label: str) -> np.ndarray:
    Xw = X * w[:, None]
    A = Xw.T @ X
    b = Xw.T @ y
    try:
        L = np.linalg.cholesky(A)
        s = np.linalg.svd(A, compute_uv=False)
        if s[-1] <= s[0] * 1e-12:
            raise np.linalg.LinAlgError
        return np.linalg.solve(L.T, np.linalg.solve(L, b))
    except np.linalg.LinAlgError:
        warnings.warn(f"{label}: the design is rank deficient (collinear terms, or a treatment that does not "
                      "vary at this stage); a minimum-norm solution is used — simplify the Q-model",
                      FitWarning, stacklevel=4)
        return np.linalg.pinv(A) @ b


def _blip_name(term: str, treatment: str) -> str:
    """Tailoring part of a blip column name: 'A:L2' -> 'L2', 'A' -> '' (intercept)."""
    parts = [p for p in term.split(":") if p != treatment]
    return ":".join(parts)


# -- per-stage fit -----------------------------------------------------------------------


@dataclass
class _Stage:
    label: Any
    index: int
    rows: np.ndarray  # row indices into pt.data
    persons: np.ndarray  # person codes of those rows
    formula: str
    design: _QDesign
    A: np.ndarray
    fw: np.ndarray  # frequency weights (0 for excluded persons)
    w: np.ndarray  # method weights (1 for Q-learning)
    target: np.ndarray
    theta: np.ndarray | None
    learner: Any
    q1: np.ndarray
    q0: np.ndarray
    blip: np.ndarray
    opt: np.ndarray
    treat_fit: Any = None
    treat_X: np.ndarray | None = None
    p: np.ndarray | None = None
    cov: np.ndarray | None = None
    dtarget: dict = field(default_factory=dict)  # j -> (n_k x p_j) derivative of target wrt theta_j

    @property
    def names(self) -> list[str]:
        return self.design.names


class QLearning:
    """Q-learning / dynamic weighted OLS for the optimal multi-stage treatment regime.

    Parameters
    ----------
    q_model : str or dict
        One formula for every stage (``"Y ~ L1 + L2 + W + A + A:L2"``: terms
        with the treatment are blip terms, the others treatment-free), or a
        dict of formulas keyed by stage (the interval index or the time value,
        or the values of the ``stage`` column). The response name is only a
        label: each stage is fitted to its pseudo-outcome.
    stage : str, optional
        Column marking decision points (rows with a missing value are not
        decision points); default every interval of the PersonTime is a stage.
    method : {"q", "dwols"}
        Ordinary least squares (Q-learning) or dynamic WOLS with weights
        ``|A - P(A = 1 | H)|`` from ``treatment_model`` (doubly robust).
    pseudo : {"regret", "max_q"}
        Pseudo-outcome for earlier stages (see the module docstring).
    treatment_model : str, gt.Model or dict, optional
        Model for ``P(A_k = 1 | H_k)`` (formula strings become binomial
        ``gt.Model``); one for all stages (fitted stage by stage) or a dict by
        stage. Required for ``"dwols"``; with ``"q"`` it is used for the
        inverse-probability-weighted values only.
    learner : scikit-learn regressor, optional
        Fit each Q-function with it (on the Q-model's design matrix) instead of
        least squares; then there are no blip parameters or sandwich SEs.
    reward : str, optional
        Column with the reward observed after each stage's treatment; the
        target is ``sum_k R_k (+ outcome)``. The outcome may then be absent.
    se : {"stagewise", "stacked", "none"}
        Sandwich standard errors of the blip parameters (module docstring).
    regimes : dict, optional
        ``{name: gtools.regimes regime}`` whose IPW values are added to
        ``.estimates`` as ``value[name,ipw]`` (so ``gt.bootstrap`` gives their CIs).
    dag : gt.TimeDAG, optional
        Check at :meth:`fit` that the treatment model's covariates (without a
        treatment model: the Q-model's) are a valid sequential adjustment set
        in this DAG (``IdentificationError`` with the open path otherwise).

    Examples
    --------
    >>> ql = gt.QLearning({0: "Y ~ X1 + A + A:X1", 1: "Y ~ X + A + A:X"}, method="dwols",
    ...                   treatment_model={0: "A ~ X1", 1: "A ~ 1"}).fit(pt)   # doctest: +SKIP
    >>> ql.rules(); ql.summary(); ql.value()                                  # doctest: +SKIP
    """

    def __init__(
        self,
        q_model: str | Mapping[Any, str],
        stage: str | None = None,
        method: str = "q",
        pseudo: str = "regret",
        treatment_model: str | Model | Mapping[Any, str | Model] | None = None,
        learner: Any = None,
        reward: str | None = None,
        se: str = "stagewise",
        regimes: Mapping[str, Any] | None = None,
        dag: Any = None,
    ):
        self.dag = dag
        self.q_model = q_model
        self.stage = stage
        self.method = method
        self.pseudo = pseudo
        self.treatment_model = treatment_model
        self.learner = learner
        self.reward = reward
        self.se = se
        self.regimes = regimes

    def __repr__(self) -> str:
        return (f"QLearning(q_model={self.q_model!r}, method={self.method!r}, pseudo={self.pseudo!r}, "
                f"treatment_model={self.treatment_model!r}, learner={self.learner!r})")

    # -- validation ----------------------------------------------------------------
    def _check(self, pt) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {self.method!r}")
        if self.pseudo not in _PSEUDO:
            raise ValueError(f"pseudo must be one of {_PSEUDO}, got {self.pseudo!r}")
        if self.se not in _SE:
            raise ValueError(f"se must be one of {_SE}, got {self.se!r}")
        if self.method == "dwols" and self.treatment_model is None:
            raise ValueError("method='dwols' needs a treatment_model for the weights |A - P(A=1|H)|")
        if pt.treatment is None:
            raise ValueError("the PersonTime has no treatment column")
        if pt.outcome is None and self.reward is None:
            raise ValueError("Q-learning needs an end-of-follow-up outcome or a reward column")
        if pt.outcome is not None and pt.outcome_type == "survival":
            raise ValueError("Q-learning needs an end-of-follow-up outcome (outcome_type 'continuous' or "
                             "'binary'); for a survival outcome build one (e.g. event by the end of follow-up, "
                             "or restricted survival time) and use it as the outcome, or use per-stage rewards")
        if self.reward is not None and self.reward not in pt.data.columns:
            raise DataError([Problem("missing_column", self.reward, f"reward column {self.reward!r} is not in "
                                     f"the table; available: {list(pt.data.columns)}", 0)])
        if self.stage is not None and self.stage not in pt.data.columns:
            raise DataError([Problem("missing_column", self.stage, f"stage column {self.stage!r} is not in the "
                                     f"table; available: {list(pt.data.columns)}", 0)])

    def _stages(self, pt) -> tuple[np.ndarray, list, np.ndarray]:
        """(stage index of each row or -1, stage labels, sorted stage keys)."""
        d = pt.data
        if self.stage is None:
            idx = d[pt.time].to_numpy(dtype=np.int64)
            keys = np.unique(idx)
            tv = np.asarray(pt.time_values)
            labels = [_py(tv[k]) if k < len(tv) else int(k) for k in keys]
            pos = np.searchsorted(keys, idx)
            return pos, labels, keys
        s = pd.to_numeric(d[self.stage], errors="coerce").to_numpy(dtype=float)
        bad = np.isnan(s) & d[self.stage].notna().to_numpy()
        if bad.any():
            raise DataError([Problem("non_numeric", self.stage, f"stage column {self.stage!r} is not numeric: "
                                     f"{int(bad.sum())} row(s); first: {_examples(pt, bad)}", int(bad.sum()))])
        ok = ~np.isnan(s)
        keys = np.unique(s[ok])
        pos = np.full(len(s), -1, dtype=np.int64)
        pos[ok] = np.searchsorted(keys, s[ok])
        codes = pt.person_index
        pair = pd.Series(codes[ok] * (len(keys) + 1) + pos[ok])
        dup = np.zeros(len(s), dtype=bool)
        dup[np.flatnonzero(ok)[pair.duplicated().to_numpy()]] = True
        if dup.any():
            raise DataError([Problem("duplicate_id_time", self.stage, f"stage column {self.stage!r}: a person has "
                                     f"more than one row at a stage: {int(dup.sum())} row(s); first: "
                                     f"{_examples(pt, dup)}", int(dup.sum()))])
        labels = [int(k) if float(k).is_integer() else float(k) for k in keys]
        return pos, labels, keys

    def _for_stage(self, spec, k: int, label, key, what: str):
        if not isinstance(spec, Mapping):
            return spec
        for cand in (label, key, int(k)):
            for kk in spec:
                try:
                    if kk == cand or float(kk) == float(cand):
                        return spec[kk]
                except (TypeError, ValueError):
                    continue
        raise ValueError(f"{what} has no entry for stage {label!r}; its keys are {list(spec)} and the stages are "
                         "the PersonTime's time values (or the stage column's values)")

    # -- fitting ---------------------------------------------------------------------
    def fit(self, pt) -> DTRResult:
        """Estimate the optimal regime by backward induction; returns a :class:`DTRResult`."""
        self._check(pt)
        if self.dag is not None:  # the treatment model's covariates, else the Q-model's
            require_identified(self.dag, pt, [self.treatment_model or self.q_model], label="QLearning")
        d = pt.data
        A_all = d[pt.treatment].to_numpy(dtype=float)
        row_w = pt.row_weights()
        codes = pt.person_index
        n_persons = pt.n_persons
        pos, labels, keys = self._stages(pt)
        K = len(labels)
        if K == 0:
            raise DataError([Problem("empty_table", self.stage, "no decision points (stage column all missing)", 0)])

        # the final outcome of each person and who can be used
        if pt.outcome is not None:
            y_row = d[pt.outcome].to_numpy(dtype=float)
            y_person = np.full(n_persons, np.nan)
            y_person[codes] = y_row
            last = pt.last_rows
            y_person[codes[last]] = y_row[last]
        else:
            y_person = np.zeros(n_persons)
        usable = ~np.isnan(y_person)
        if self.reward is not None:
            r_row = d[self.reward].to_numpy(dtype=float)
            bad = (pos >= 0) & np.isnan(r_row) & usable[codes]
            if bad.any():
                raise DataError([Problem("missing_values", self.reward, f"reward {self.reward!r} missing on "
                                         f"{int(bad.sum())} decision row(s); first: {_examples(pt, bad)}",
                                         int(bad.sum()))])
            r_row = np.where(pos >= 0, np.nan_to_num(r_row), 0.0)
        else:
            r_row = np.zeros(len(d))
        pw = np.zeros(n_persons)
        np.maximum.at(pw, codes, row_w)  # a person's frequency weight (constant over their rows)
        n_drop = int(((~usable) & (pw > 0)).sum())
        if n_drop:
            warnings.warn(f"Q-learning: {n_drop} person(s) have no outcome (censored or missing) and are left out "
                          "(complete-case analysis, valid if loss to follow-up is unrelated to the outcome given "
                          "the history; otherwise weight for censoring)", FitWarning, stacklevel=2)
        fw_row = np.where(usable[codes], row_w, 0.0)
        if (pw * usable).sum() <= 0:
            raise DataError([Problem("missing_outcome", pt.outcome, "no person with an outcome to fit on", 0)])

        stages: list[_Stage] = []
        for k in range(K):
            rows = np.flatnonzero(pos == k)
            formula = _stage_formula(self._for_stage(self.q_model, k, labels[k], keys[k], "q_model"), d, rows,
                                     pt._cache)
            des = _q_design(pt, formula, pt.treatment)
            bad = des.bad[rows] & (fw_row[rows] > 0)
            if bad.any():
                mask = np.zeros(len(d), dtype=bool)
                mask[rows[bad]] = True
                cols = [v for v in des.variables if np.isnan(d[v].to_numpy(dtype=float)[rows[bad]]).any()]
                raise DataError([Problem("missing_values", ", ".join(cols), f"Q-model {formula!r} at stage "
                                         f"{labels[k]}: missing values in {cols}: {int(bad.sum())} row(s); first: "
                                         f"{_examples(pt, mask)}", int(bad.sum()))])
            stages.append(_Stage(label=labels[k], index=k, rows=rows, persons=codes[rows], formula=formula,
                                 design=des, A=A_all[rows], fw=fw_row[rows], w=np.ones(len(rows)),
                                 target=np.zeros(len(rows)), theta=None, learner=None, q1=np.empty(0),
                                 q0=np.empty(0), blip=np.empty(0), opt=np.empty(0)))

        # treatment models (weights for dWOLS; IPW values)
        if self.treatment_model is not None:
            for st in stages:
                spec = self._for_stage(self.treatment_model, st.index, st.label, keys[st.index], "treatment_model")
                model = Model(spec, family="binomial") if isinstance(spec, str) else spec
                reduced = _stage_formula(model.formula, d, st.rows, pt._cache)
                if reduced != model.formula:
                    model = Model(reduced, family=model.family, bounds=model.bounds, learner=model.learner,
                                  name=model.name or f"treatment model at stage {st.label}")
                if model.response != pt.treatment:
                    raise ValueError(f"treatment model {model.formula!r} must have the treatment "
                                     f"{pt.treatment!r} as its response")
                mask = np.zeros(len(d), dtype=bool)
                mask[st.rows] = True
                fitted = model.fit(pt, rows=mask, weights=np.where(usable[codes], 1.0, 0.0))
                dsg = model.design(pt)
                st.treat_fit = fitted
                st.treat_X = dsg.X[st.rows]
                st.p = np.asarray(fitted.predict_design(st.treat_X), dtype=float)
                check_positivity(st.p[st.fw > 0], np.full(int((st.fw > 0).sum()), st.label),
                                 f"treatment model at stage {st.label}")
                if self.method == "dwols":
                    st.w = np.abs(st.A - st.p)

        # backward induction
        future = y_person.copy()  # person-level: outcome under the optimal regime after the current stage
        future[~usable] = 0.0
        for st in reversed(stages):
            st.target = r_row[st.rows] + future[st.persons]
            des = st.design
            X, X1, X0 = des.X[st.rows], des.X1[st.rows], des.X0[st.rows]
            wt = st.fw * st.w
            use = wt > 0
            if not use.any():
                raise DataError([Problem("empty_table", pt.treatment, f"stage {st.label}: no rows to fit on", 0)])
            if self.learner is not None:
                from sklearn.base import clone

                lrn = clone(self.learner)
                try:
                    lrn.fit(X[use], st.target[use], sample_weight=wt[use])
                except TypeError:
                    rep = np.repeat(np.flatnonzero(use), np.rint(wt[use] / wt[use].min()).astype(int))
                    lrn.fit(X[rep], st.target[rep])
                st.learner = lrn
                st.q1, st.q0 = lrn.predict(X1), lrn.predict(X0)
                st.theta = None
            else:
                if int(use.sum()) < X.shape[1]:
                    raise DataError([Problem("empty_table", pt.treatment, f"stage {st.label}: {int(use.sum())} "
                                             f"row(s) for {X.shape[1]} Q-model terms", int(use.sum()))])
                st.theta = _wls(X[use], st.target[use], wt[use], f"Q-model at stage {st.label}")
                st.q1, st.q0 = X1 @ st.theta, X0 @ st.theta
            st.blip = st.q1 - st.q0
            st.opt = (st.blip > 0).astype(float)
            if self.pseudo == "regret":
                new = st.target + st.blip * (st.opt - st.A)
            else:
                new = np.maximum(st.q1, st.q0)
            future[st.persons] = np.where(st.fw > 0, new, 0.0)

        if self.learner is None and self.se != "none":
            if self.se == "stagewise":
                for st in stages:
                    st.cov = _stagewise_cov(st)
            else:
                _stacked_cov(stages, self.method, self.pseudo, n_persons)
        tot = float((pw * usable).sum())
        opt_value = float(np.sum(pw * usable * future) / tot)
        return DTRResult(spec=self, pt_roles=pt.roles, stages=stages, labels=labels, keys=keys,
                         opt_value=opt_value, y_person=y_person, usable=usable, person_w=pw,
                         reward_total=_person_sum(codes, r_row, n_persons), n_persons=n_persons,
                         treatment=pt.treatment, time_col=pt.time, id_col=pt.id, _pt=pt)


def _person_sum(codes, x, n):
    out = np.zeros(n)
    np.add.at(out, codes, x)
    return out


# -- sandwich covariances ---------------------------------------------------------------------


def _stagewise_cov(st: _Stage) -> np.ndarray:
    """DTRreg's per-stage sandwich: pseudo-outcome and weights held fixed."""
    X = st.design.X[st.rows]
    fw = st.fw
    N = fw.sum()
    resid = st.target - X @ st.theta
    HW = st.w[:, None] * X
    U = resid[:, None] * HW
    M = -(HW * fw[:, None]).T @ X / N
    inf = (np.linalg.pinv(M) @ U.T).T
    mean = (fw[:, None] * inf).sum(axis=0) / N
    dev = inf - mean
    V = (dev * fw[:, None]).T @ dev / (N - 1)
    return V / N


def _stacked_cov(stages: list[_Stage], method: str, pseudo: str, n_persons: int) -> None:
    """Full M-estimation sandwich over every stage's parameters and the treatment models' scores."""
    blocks: list[tuple[str, int, int]] = []  # (kind, stage index, size)
    for st in stages:
        if method == "dwols" and st.treat_fit is not None and st.treat_fit.learner is None:
            blocks.append(("alpha", st.index, st.treat_X.shape[1]))
        blocks.append(("theta", st.index, st.design.X.shape[1]))
    offs, o = {}, 0
    for b in blocks:
        offs[(b[0], b[1])] = (o, o + b[2])
        o += b[2]
    P = o
    pw = np.zeros(n_persons)
    for st in stages:
        pw[st.persons] = st.fw
    N = pw.sum()
    psi = np.zeros((n_persons, P))
    J = np.zeros((P, P))
    # derivative of each stage's target wrt later theta: dtarget_k/dtheta_j (rows of stage k)
    # regret: d target_k / d theta_j = sum over later stages of (X(h_j, opt_j) - X(h_j, A_j)) on the person
    # max_q: d target_k / d theta_{k+1} = X(h_{k+1}, opt_{k+1})
    K = len(stages)
    person_rows = []
    for st in stages:
        m = np.full(n_persons, -1, dtype=np.int64)
        m[st.persons] = np.arange(len(st.persons))
        person_rows.append(m)
    for st in stages:
        k = st.index
        X = st.design.X[st.rows]
        fw = st.fw
        resid = st.target - X @ st.theta
        a0, a1 = offs[("theta", k)]
        psi[st.persons, a0:a1] = (st.w * resid)[:, None] * X
        J[a0:a1, a0:a1] += -((fw * st.w)[:, None] * X).T @ X
        if ("alpha", k) in offs:
            b0, b1 = offs[("alpha", k)]
            Xa, p = st.treat_X, st.p
            psi[st.persons, b0:b1] = (st.A - p)[:, None] * Xa
            J[b0:b1, b0:b1] += -((fw * p * (1 - p))[:, None] * Xa).T @ Xa
            dw = (1 - 2 * st.A) * p * (1 - p)  # d|A - p|/d eta
            J[a0:a1, b0:b1] += ((fw * resid * dw)[:, None] * X).T @ Xa
        later = range(k + 1, K) if pseudo == "regret" else range(k + 1, min(k + 2, K))
        for j in later:
            sj = stages[j]
            idx = person_rows[j][st.persons]
            has = idx >= 0
            if not has.any():
                continue
            Xj = sj.design.X[sj.rows]
            Xopt = np.where(sj.opt[:, None] > 0, sj.design.X1[sj.rows], sj.design.X0[sj.rows])
            D = Xopt - Xj if pseudo == "regret" else Xopt
            Dk = np.zeros((len(st.rows), D.shape[1]))
            Dk[has] = D[idx[has]]
            c0, c1 = offs[("theta", j)]
            J[a0:a1, c0:c1] += ((fw * st.w)[:, None] * X).T @ Dk
    Jm = J / N
    B = (psi * pw[:, None]).T @ psi / N
    Jinv = np.linalg.pinv(Jm)
    V = Jinv @ B @ Jinv.T / N
    for st in stages:
        a0, a1 = offs[("theta", st.index)]
        st.cov = V[a0:a1, a0:a1]


# -- results -------------------------------------------------------------------------------


class DTRResult:
    """The estimated optimal regime: Q-model parameters, rules, values.

    Attributes
    ----------
    params : dict
        Stage label -> Series of the stage's Q-model coefficients (linear
        Q-models; empty with a learner).
    blip : DataFrame
        Blip parameters: stage, term, estimate, se (sandwich), z, p, CI.
    estimates : Series
        ``blip[stage=s,term]``, ``value[optimal]`` (plug-in),
        ``value[optimal,ipw]`` (with a treatment model), ``value[observed]``,
        ``treated[stage=s]`` (share recommended treatment) and
        ``value[name,ipw]`` for the specification's ``regimes``.
    """

    def __init__(self, spec, pt_roles, stages, labels, keys, opt_value, y_person, usable, person_w, reward_total,
                 n_persons, treatment, time_col, id_col, _pt):
        self.spec = spec
        self.roles = pt_roles
        self._stages = stages
        self.stages = list(labels)
        self._keys = keys
        self._opt_value = opt_value
        self._y = y_person
        self._usable = usable
        self._pw = person_w
        self._total = np.where(usable, np.nan_to_num(y_person) + reward_total, np.nan)
        self.n_persons = n_persons
        self.treatment = treatment
        self._time, self._id = time_col, id_col
        self._pt = _pt
        self.method, self.pseudo = spec.method, spec.pseudo
        self._estimates: pd.Series | None = None

    # -- parameters -------------------------------------------------------------------
    @property
    def params(self) -> dict[Any, pd.Series]:
        """Stage label -> Q-model coefficients (treatment-free and blip terms)."""
        return {st.label: pd.Series(st.theta, index=st.names, name=f"stage {st.label}")
                for st in self._stages if st.theta is not None}

    @property
    def blip(self) -> pd.DataFrame:
        """Blip parameters by stage with sandwich SEs (when computed)."""
        rows = []
        z = NormalDist().inv_cdf(0.975)
        for st in self._stages:
            if st.theta is None:
                continue
            idx = np.flatnonzero(st.design.blip)
            se = np.sqrt(np.diag(st.cov))[idx] if st.cov is not None else np.full(len(idx), np.nan)
            for i, s in zip(idx, se):
                est = float(st.theta[i])
                row = {"stage": st.label, "term": st.names[i], "estimate": est, "se": float(s)}
                if st.cov is not None:
                    zz = est / s if s > 0 else np.inf
                    row.update(z=zz, p=2 * (1 - NormalDist().cdf(abs(zz))), ci_lower=est - z * s,
                               ci_upper=est + z * s)
                rows.append(row)
        return pd.DataFrame(rows)

    def cov(self, stage) -> pd.DataFrame:
        """Sandwich covariance of one stage's Q-model coefficients."""
        st = self._stage(stage)
        if st.cov is None:
            raise ValueError("no sandwich covariance (learner, or se='none')")
        return pd.DataFrame(st.cov, index=st.names, columns=st.names)

    def _stage(self, stage) -> _Stage:
        for st in self._stages:
            if st.label == stage:
                return st
        raise KeyError(f"no stage {stage!r}; stages are {self.stages}")

    # -- rules and policy ---------------------------------------------------------------
    def rules(self) -> pd.DataFrame:
        """The estimated decision rule of every stage, as text and as the share it treats."""
        out = []
        for st in self._stages:
            share = float(np.sum(st.fw * st.opt) / max(st.fw.sum(), 1e-300))
            if st.theta is None:
                text = (f"stage {st.label}: treat if Q(h, 1) > Q(h, 0) by "
                        f"{type(st.learner).__name__} on {st.formula.split('~', 1)[-1].strip()}")
            else:
                parts = []
                for i in np.flatnonzero(st.design.blip):
                    c = float(st.theta[i])
                    var = _blip_name(st.names[i], self.treatment)
                    mag = _fmt(abs(c))
                    term = mag if not var else f"{mag}*{var}"
                    if not parts:
                        parts.append(("-" if c < 0 else "") + term)
                    else:
                        parts.append(("- " if c < 0 else "+ ") + term)
                text = f"stage {st.label}: treat if {' '.join(parts)} > 0"
            out.append({"stage": st.label, "rule": text, "n": float(st.fw.sum()), "share treated": share})
        return pd.DataFrame(out).set_index("stage")

    def _blip_on(self, pt) -> tuple[np.ndarray, np.ndarray]:
        """(blip of every row at a fitted stage or NaN, stage position or -1) on another table."""
        spec = self.spec
        pos, labels, keys = spec._stages(pt)
        blip = np.full(pt.n_rows, np.nan)
        stage_pos = np.full(pt.n_rows, -1, dtype=np.int64)
        for k, lab in enumerate(labels):
            rows = np.flatnonzero(pos == k)
            try:
                st = self._stage(lab)
            except KeyError:
                continue
            des = _q_design(pt, st.formula, pt.treatment)
            b = self._q_diff(st, des.X1[rows], des.X0[rows])
            blip[rows] = b
            stage_pos[rows] = st.index
        return blip, stage_pos

    @staticmethod
    def _q_diff(st: _Stage, X1: np.ndarray, X0: np.ndarray) -> np.ndarray:
        if st.theta is None:
            return st.learner.predict(X1) - st.learner.predict(X0)
        return (X1 - X0) @ st.theta

    def policy(self, pt=None, detail: bool = False) -> pd.Series | pd.DataFrame:
        """Recommended treatment of every person-time row of ``pt`` (default: the fitted table).

        At stage k the rule is evaluated on the row's own covariates and history
        columns as observed (e.g. ``lag1_A`` is the treatment actually received),
        i.e. the recommendation for a person whose past is what the data say.
        Rows that are not decision points of a fitted stage get NaN. With
        ``detail=True`` a DataFrame with id, time, stage, blip and recommendation.
        """
        pt = self._pt if pt is None else pt
        blip, spos = self._blip_on(pt)
        rec = np.where(np.isnan(blip), np.nan, (blip > 0).astype(float))
        s = pd.Series(rec, index=pt.data.index, name="recommended")
        if not detail:
            return s
        lab = np.array([self._stages[i].label if i >= 0 else None for i in spos], dtype=object)
        return pd.DataFrame({pt.id: pt.data[pt.id].to_numpy(), pt.time: pt.data[pt.time].to_numpy(), "stage": lab,
                             "blip": blip, "recommended": rec}, index=pt.data.index)

    def as_regime(self, name: str = "optimal"):
        """The estimated optimal regime as a :mod:`gtools.regimes` regime (for the g-formula, IPW, ...).

        At interval t it evaluates the stage-t rule on the state's columns
        (stages are the PersonTime intervals; with a ``stage`` column, the
        stage of interval t must equal t). Intervals past the last fitted stage
        are untreated.
        """
        from gtools.regimes import custom

        stages = {int(st.index if self.spec.stage is None else st.label): st for st in self._stages}
        trt = self.treatment

        def rule(state):
            t = np.asarray(state.t, dtype=int)
            out = np.zeros(state.n)
            for tt in np.unique(t):
                st = stages.get(int(tt))
                if st is None:
                    continue
                sel = t == tt
                cols = {v: np.broadcast_to(np.asarray(state[v], dtype=float), (state.n,))[sel]
                        for v in st.design.variables if v != trt}
                X1 = st.design.recipe.matrix({**cols, trt: np.ones(int(sel.sum()))})
                X0 = st.design.recipe.matrix({**cols, trt: np.zeros(int(sel.sum()))})
                out[sel] = (self._q_diff(st, X1, X0) > 0).astype(float)
            return out

        reads = sorted({v for st in self._stages for v in st.design.variables if v != trt})
        return custom(rule, name=name, reads=reads)

    # -- values ----------------------------------------------------------------------------
    def _ipw(self, follow_rows: list[np.ndarray]) -> tuple[float, float]:
        """Hajek IPW value given, for each stage, the indicator that the stage row follows the regime."""
        if any(st.p is None for st in self._stages):
            raise ValueError("IPW values need a treatment_model (give one to QLearning)")
        n = self.n_persons
        logw = np.zeros(n)
        follow = np.ones(n, dtype=bool)
        for st, f in zip(self._stages, follow_rows):
            pa = np.where(st.A == 1, st.p, 1 - st.p)
            np.add.at(logw, st.persons, -np.log(np.clip(pa, 1e-300, None)))
            bad = np.zeros(n, dtype=bool)
            bad[st.persons[~f.astype(bool)]] = True
            follow &= ~bad
        ok = self._usable & follow & (self._pw > 0)
        W = np.where(ok, np.exp(logw), 0.0) * self._pw
        if W.sum() <= 0:
            warnings.warn("no person followed the regime at every stage: its IPW value is not estimable",
                          FitWarning, stacklevel=3)
            return float("nan"), 0.0
        v = float(np.sum(W * np.nan_to_num(self._total)) / W.sum())
        return v, float(self._pw[ok].sum())

    def value(self) -> pd.DataFrame:
        """Estimated mean outcome under the estimated optimal regime: plug-in and IPW."""
        rows = [{"estimator": f"plug-in ({'Y + regrets' if self.pseudo == 'regret' else 'max Q'})",
                 "value": self._opt_value, "n followed": np.nan}]
        if all(st.p is not None for st in self._stages):
            v, nf = self._ipw([st.opt == st.A for st in self._stages])
            rows.append({"estimator": "IPW (Hajek)", "value": v, "n followed": nf})
        rows.append({"estimator": "observed mean", "value": self._observed(), "n followed": np.nan})
        return pd.DataFrame(rows).set_index("estimator")

    def _observed(self) -> float:
        ok = self._usable & (self._pw > 0)
        return float(np.sum(self._pw[ok] * self._total[ok]) / self._pw[ok].sum())

    def compare(self, regimes: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """IPW value of the estimated optimal regime against other regimes.

        ``regimes`` maps names to :mod:`gtools.regimes` regimes (static,
        threshold, custom, ...), evaluated on the observed rows
        (``gtools.regimes.state_from_panel``); a person counts for a regime if
        their observed treatment agrees with it at every stage.
        """
        from gtools.regimes import state_from_panel

        regimes = dict(regimes or {})
        out = []
        v, nf = self._ipw([st.opt == st.A for st in self._stages])
        out.append({"regime": "optimal (estimated)", "value": v, "n followed": nf})
        if regimes:
            state = state_from_panel(self._pt)
            for name, reg in regimes.items():
                a = np.asarray(reg(state), dtype=float)
                v, nf = self._ipw([a[st.rows] == st.A for st in self._stages])
                out.append({"regime": name, "value": v, "n followed": nf})
        tab = pd.DataFrame(out).set_index("regime")
        tab["difference vs optimal"] = tab["value"] - tab["value"].iloc[0]
        return tab

    def nonregularity(self, stage=None, level: float = 0.001) -> float:
        """Estimated share of persons whose blip is indistinguishable from 0 at ``stage``.

        ``p_hat = P_n 1{ (z' psi_hat)^2 / (z' Sigma_hat z) <= chi2_{1, 1-level} }``
        (Chakraborty, Laber & Zhao 2013), with the stage's sandwich covariance;
        default stage: the second one (whose non-differentiable max makes the
        first stage's parameters non-regular), or the only one. Feeds
        :func:`m_out_of_n`.
        """
        if stage is None:
            st = self._stages[1] if len(self._stages) > 1 else self._stages[0]
        else:
            st = self._stage(stage)
        if st.theta is None or st.cov is None:
            raise ValueError("the non-regularity share needs linear Q-models with sandwich SEs")
        Z = (st.design.X1 - st.design.X0)[st.rows]
        var = np.einsum("ij,jk,ik->i", Z, st.cov, Z)
        stat = (Z @ st.theta) ** 2 / np.maximum(var, 1e-300)
        crit = NormalDist().inv_cdf(1 - level / 2) ** 2
        return float(np.sum(st.fw * (stat <= crit)) / st.fw.sum())

    # -- tables ------------------------------------------------------------------------------
    @property
    def estimates(self) -> pd.Series:
        if self._estimates is None:
            vals: dict[str, float] = {}
            for st in self._stages:
                if st.theta is not None:
                    for i in np.flatnonzero(st.design.blip):
                        vals[f"blip[stage={st.label},{st.names[i]}]"] = float(st.theta[i])
            for st in self._stages:
                vals[f"treated[stage={st.label}]"] = float(np.sum(st.fw * st.opt) / max(st.fw.sum(), 1e-300))
            vals["value[optimal]"] = self._opt_value
            if all(st.p is not None for st in self._stages):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FitWarning)
                    v, _ = self._ipw([st.opt == st.A for st in self._stages])
                if np.isfinite(v):
                    vals["value[optimal,ipw]"] = v
                if self.spec.regimes:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", FitWarning)
                        tab = self.compare(self.spec.regimes)
                    for name in list(self.spec.regimes):
                        if np.isfinite(tab.loc[name, "value"]):
                            vals[f"value[{name},ipw]"] = float(tab.loc[name, "value"])
            vals["value[observed]"] = self._observed()
            self._estimates = pd.Series(vals, dtype=float)
        return self._estimates

    def summary(self) -> pd.DataFrame:
        """Blip parameters (estimate, sandwich SE, z, p, 95% CI) followed by the value estimates."""
        tab = self.blip.copy()
        if len(tab):
            tab.index = [f"blip[stage={s},{t}]" for s, t in zip(tab["stage"], tab["term"])]
            tab = tab.drop(columns=["stage", "term"])
        val = self.value()["value"]
        vt = pd.DataFrame({"estimate": val.to_numpy()}, index=[f"value[{i}]" for i in val.index])
        return pd.concat([tab, vt]) if len(tab) else vt

    def __repr__(self) -> str:
        head = (f"<DTRResult: {'dWOLS' if self.method == 'dwols' else 'Q-learning'}, pseudo-outcome "
                f"{self.pseudo!r}, {len(self._stages)} stage(s), {int(round(self._pw[self._usable].sum()))} persons"
                f"{', learner ' + type(self.spec.learner).__name__ if self.spec.learner is not None else ''}>")
        rules = "\n".join("  " + r for r in self.rules()["rule"])
        with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 120):
            return f"{head}\n{rules}\n{self.summary().to_string()}"
