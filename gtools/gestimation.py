r"""G-estimation of structural nested mean models (SNMMs) for an end-of-follow-up outcome.

Model
-----
Intervals :math:`t = 0, \dots, K-1`; :math:`\bar L_t, \bar A_{t-1}` the history
before treatment :math:`A_t \in \{0, 1\}`; :math:`Y` the outcome measured at the
end of follow-up (continuous, or binary on the additive scale). The SNMM posits
the blip

.. math::

    \gamma_t(h_t, a_t; \psi) = E[Y(\bar a_t, 0) - Y(\bar a_{t-1}, 0) \mid H_t = h_t, A_t = a_t]
                              = a_t \, d_t^\top \psi,

the mean effect of one final interval of treatment at :math:`t` followed by no
treatment, with modifiers :math:`d_t = (1, M_{1t}, \dots)` read from the blip
formula (``blip="A + A:L1"`` gives :math:`d_t = (1, L_{1t})`; ``A:lag1_A`` and
``A:time`` are allowed). Every term of the blip contains the treatment once.

Estimating equations
--------------------
With :math:`H_t(\psi) = Y - \sum_{k \ge t} \gamma_k(\psi)` (which, under the
SNMM, has the mean of :math:`Y(\bar A_{t-1}, 0)` given :math:`H_t` whatever
:math:`A_t`), the estimator solves

.. math::

    \sum_i \sum_t \omega_{it} \{A_{it} - p_t(H_{it}; \hat\alpha)\}\, d_{it}
    \{H_{it}(\psi) - m_t(H_{it}; \psi)\} = 0,

with :math:`p_t` the treatment model (propensity), :math:`m_t` the outcome model
for :math:`E[H_t(\psi) \mid H_t]` (zero when no outcome model is given, as in
*What If* ch. 14) and :math:`\omega_{it}` the frequency weight times, under
censoring, the inverse probability of remaining uncensored from :math:`t` to
the end of follow-up. Because :math:`H_t(\psi) = Y - S_t^\top \psi` with
:math:`S_t = \sum_{k \ge t} A_k d_k`, and the outcome model is a linear
regression :math:`m_t = X_t^\top \beta`, the least-squares fit of
:math:`H(\psi)` on :math:`X` is :math:`\hat\beta(\psi) = b_Y - B_S \psi`, where
:math:`b_Y` and :math:`B_S` regress :math:`Y` and each column of :math:`S` on
:math:`X`. With residuals :math:`r_Y, r_S` and :math:`R_t = A_t - p_t`,

.. math::

    \hat\psi = \Big[\sum \omega R\, d\, r_S^\top\Big]^{-1} \sum \omega R\, d\, r_Y,

a closed form (no root search); :math:`(\hat\psi, \hat\beta)` solve the stacked
equations of the outcome regression and of :math:`\psi` jointly.

Double robustness: :math:`\hat\psi` is consistent if the SNMM is right and
either the treatment model or the outcome model (for every :math:`t`) is right
(Robins 1994; Vansteelandt & Joffe 2014). The outcome model is pooled over
intervals with the coefficients the formula gives: add ``time`` or ``C(time)``
terms (and their interactions) to let it vary by interval.

Identifying assumptions: sequential exchangeability given the measured history,
positivity, consistency, a correctly specified blip, and, under censoring,
censoring at random given the measured history with a correct censoring model.

Variance
--------
The sandwich of the stacked estimating equations — the treatment model's
logistic score, the censoring model's score (under censoring), the outcome
regression and :math:`\psi`'s equations — with persons as clusters, so the
estimation of the propensity (and censoring) scores is accounted for. A
treatment model with a scikit-learn ``learner`` has no score equations: its
propensities are then treated as known (use :func:`gtools.bootstrap`).

References
----------
Robins JM (1994). Correcting for non-compliance in randomized trials using
structural nested mean models. *Communications in Statistics* 23:2379-2412.
Vansteelandt S, Joffe M (2014). Structural nested models and g-estimation: the
partially realized promise. *Statistical Science* 29:707-731.
Vansteelandt S, Sjolander A (2016). Revisiting g-estimation of the effect of a
time-varying exposure subject to time-varying confounding. *Epidemiologic
Methods* 5:37-56.
Hernan MA, Robins JM (2020). *Causal Inference: What If*, ch. 14.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gtools.dag import require_identified
from gtools.errors import DataError, FitWarning, Problem
from gtools.formula import Recipe, build_recipe, parse_formula
from gtools.models import FittedModel, Model, check_positivity
from gtools.regimes import Regime, State
from gtools.sensitivity import evalue_of

__all__ = ["GEstimation", "SNMResult"]

SOLVERS = ("closed_form", "gesttools")


def _as_model(m: Model | str | None, family: str, role: str) -> Model | None:
    if m is None or isinstance(m, Model):
        return m
    if isinstance(m, str):
        return Model(m, family=family, name=role)
    if hasattr(m, "predict_proba"):
        raise TypeError(f"{role}: wrap a scikit-learn classifier with its features as "
                        f"gt.Model('A ~ L1 + L2 + ...', learner=clf)")
    raise TypeError(f"{role} must be a gt.Model or a formula string, got {type(m).__name__}")



def _psi_table(names, psi: np.ndarray, se: np.ndarray) -> pd.DataFrame:
    """Estimate, SE, z, two-sided p and Wald 95% CI of the blip parameters."""
    from scipy.stats import norm

    tab = pd.DataFrame({"coef": psi, "se": se}, index=pd.Index(names, name="blip term"))
    with np.errstate(invalid="ignore", divide="ignore"):
        tab["z"] = psi / se
    tab["p"] = 2 * norm.sf(np.abs(tab["z"]))
    tab["ci_lower"] = psi - 1.959963984540054 * se
    tab["ci_upper"] = psi + 1.959963984540054 * se
    return tab


def _fit_nuisance(model, pt, w: np.ndarray, expected: str, role: str):
    """Fit the treatment or censoring model of a g-estimation.

    Returns (fitted model, its design matrix over every row, predicted probabilities, 0/1 indicator
    of the rows that entered the fit); the response must be the table's ``expected`` column.
    """
    mod = _as_model(model, "binomial", f"{role} model")
    if mod.response != expected:
        what = "treatment" if role == "treatment" else "censor column"
        raise ValueError(f"the {role} model's response is {mod.response!r}, but the table's {what} "
                         f"is {expected!r}")
    fitted = mod.fit(pt)
    des = mod.design(pt)
    return fitted, des.X, fitted.predict_design(des.X), (des.usable & (w > 0)).astype(float)


def _examples(pt, mask: np.ndarray, k: int = 5) -> list:
    idx = np.flatnonzero(mask)[:k]
    return [pt.data[pt.id].iloc[i] for i in idx]


def _reverse_cumsum(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """sum_{k >= t} x_k within each person (rows sorted by person, time)."""
    x2 = x.reshape(len(x), -1)
    cs = np.cumsum(x2, axis=0)
    last = np.ones(len(codes), dtype=bool)
    last[:-1] = codes[1:] != codes[:-1]
    tot = cs[last][codes]
    out = tot - cs + x2
    return out.reshape(x.shape)


def _person_sums(G: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, G.shape[1]))
    np.add.at(out, codes, G)
    return out


class GEstimation:
    """G-estimation of a structural nested mean model (see the module docstring).

    Survival outcomes (``pt.outcome_type == "survival"``): :meth:`fit` fits a
    structural nested cumulative failure time model (Picciotto et al. 2012;
    :mod:`gtools._sncftm`) and returns an ``SNCFTMResult``. Estimand: for every
    interval :math:`m` and later :math:`k \\ge m`, among those event-free at
    :math:`m`, :math:`P[D_k(\\bar A_m, 0)=1 \\mid H_m, A_m] / P[D_k(\\bar A_{m-1},
    0)=1 \\mid H_m, A_m] = \\exp(A_m d_m^\\top \\psi)` — the ratio of cumulative
    risks by :math:`k` of one final interval of treatment at :math:`m` (then none)
    versus none from :math:`m` on, with the same ``blip`` syntax (``"A + A:L1"``).
    Estimating equations :math:`\\sum \\omega (A_m - p_m) d_m \\{\\sum_{k \\ge m}
    W_{mk} D_k e^{-\\sum_{j=m}^{\\min(k,T)} \\gamma_j(\\psi)} - b_m\\} = 0`, solved
    by Newton's method; ``censor_model`` gives the censoring weights
    :math:`W_{mk}`, ``outcome_model`` the optional regression :math:`b_m` (doubly
    robust). A competing event is not intervened upon (total effect on the
    cumulative incidence). Assumptions: consistency, sequential exchangeability
    for treatment and censoring, positivity, a correct blip, a correct treatment
    model (or outcome regression) and censoring model, and follow-up to the last
    interval, the event, censoring or a competing event. Sandwich SE of the
    stacked equations (finite-difference bread). ``solver`` and
    ``propensity_terms`` do not apply.

    Parameters
    ----------
    blip : str
        The blip :math:`a_t d_t^\\top \\psi` as a formula over PersonTime and
        history columns whose every term contains the treatment, e.g.
        ``"A + A:L1"`` or ``"A + A:time"``. Parameters are named by term.
    treatment_model : gt.Model or str
        Model for :math:`P(A_t = 1 \\mid H_t)` (a string becomes a binomial
        ``gt.Model``); ``gt.Model(formula, learner=clf)`` for a scikit-learn
        classifier.
    outcome : str, optional
        The outcome column (default ``pt.outcome``).
    outcome_model : gt.Model or str, optional
        Regression of :math:`H_t(\\psi)` on the treatment-free history,
        ``"Y ~ L1 + L2 + W + time"`` (the right-hand side is what is used).
        Makes the estimator doubly robust. Default: none (:math:`m_t = 0`).
    censor_model : gt.Model or str, optional
        Model for :math:`P(C_t = 1 \\mid H_t, A_t)` fitted on every row; needed
        when some persons' outcome is missing because they were censored
        (inverse probability of censoring weights).
    propensity_terms : bool
        Add the fitted propensity times each blip modifier, :math:`p_t d_t`, to
        the outcome model's design (as gesttools does; Vansteelandt &
        Sjolander 2016). With the propensity in the design the estimator equals
        the root of gesttools' regression equations.
    solver : {"closed_form", "gesttools"}
        ``"closed_form"``: the root of the estimating equations (with the
        sandwich variance). ``"gesttools"``: gesttools' ``gestSingle``
        recursion — :math:`\\psi` from the regression of :math:`Y` on the blip
        design, :math:`p d` and the outcome design at the last interval, then
        re-estimated K-1 times, each time adding the previous interval with
        :math:`H` computed from the previous estimate. It reproduces gesttools'
        numbers; it is not the root of the equations (it stops after K-1
        updates), has no sandwich (use :func:`gtools.bootstrap`) and always
        adds the propensity terms.
    dag : gt.TimeDAG, optional
        Check at :meth:`fit` that the treatment model's covariates are a valid
        sequential adjustment set in this DAG (``IdentificationError`` with
        the open path otherwise; :func:`gtools.dag.require_identified`).
    """

    def __init__(
        self,
        blip: str,
        treatment_model: Model | str,
        outcome: str | None = None,
        outcome_model: Model | str | None = None,
        censor_model: Model | str | None = None,
        propensity_terms: bool = False,
        solver: str = "closed_form",
        dag: Any = None,
    ):
        self.dag = dag
        self.blip = blip
        self.treatment_model = treatment_model
        self.outcome = outcome
        self.outcome_model = outcome_model
        self.censor_model = censor_model
        self.propensity_terms = propensity_terms
        self.solver = solver

    def __repr__(self) -> str:
        parts = [f"blip={self.blip!r}", f"treatment_model={self.treatment_model!r}"]
        if self.outcome_model is not None:
            parts.append(f"outcome_model={self.outcome_model!r}")
        if self.censor_model is not None:
            parts.append(f"censor_model={self.censor_model!r}")
        if self.propensity_terms:
            parts.append("propensity_terms=True")
        if self.solver != "closed_form":
            parts.append(f"solver={self.solver!r}")
        return f"gt.GEstimation({', '.join(parts)})"

    # -- fitting -----------------------------------------------------------------
    def fit(self, pt) -> SNMResult:
        """Estimate :math:`\\psi` on a PersonTime; returns an :class:`SNMResult`."""
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if pt.outcome_type == "survival":
            # structural nested cumulative failure time model (gtools/_sncftm.py)
            from gtools._sncftm import fit_sncftm

            return fit_sncftm(self, pt)
        outcome = self.outcome or pt.outcome
        if self.dag is not None:
            require_identified(self.dag, pt, [self.treatment_model], outcome=outcome, label="GEstimation")
        if outcome is None or outcome not in pt.data.columns:
            raise DataError([Problem("missing_column", outcome, f"outcome column {outcome!r} is not in the "
                                     f"table; available: {list(pt.data.columns)}", 0)])
        A_name = pt.treatment
        data = pt.data
        n_rows = pt.n_rows
        codes = pt.person_index
        n_persons = pt.n_persons
        w = pt.row_weights()
        A = data[A_name].to_numpy(dtype=float)
        Y = data[outcome].to_numpy(dtype=float)

        blip = _BlipDesign.build(self.blip, pt)
        B, D = blip.B, blip.D
        q = B.shape[1]

        # treatment model
        tfit, Xa, p, ta = _fit_nuisance(self.treatment_model, pt, w, A_name, "treatment")
        check_positivity(p[ta > 0], data[pt.time].to_numpy()[ta > 0], "the treatment model")
        with_alpha = tfit.learner is None

        # censoring: who has the outcome, and their weights
        observed = ~np.isnan(Y)
        W = np.ones(n_rows)
        cfit = None
        Xc = h = tc = None
        if not observed.all():
            missing_persons = np.unique(codes[~observed])
            if self.censor_model is None:
                raise DataError([Problem(
                    "missing_outcome", outcome,
                    f"the outcome is missing for {len(missing_persons)} person(s) (censored); give "
                    f"censor_model='{pt.censor or 'C'} ~ ...' for inverse probability of censoring weights, "
                    f"or drop them; first ids: {_examples(pt, ~observed)}",
                    int((~observed).sum()), _examples(pt, ~observed))])
            if pt.censor is None:
                raise DataError([Problem("missing_outcome", outcome,
                                         "the outcome is missing but the table has no censor column", 0)])
        if self.censor_model is not None:
            if pt.censor is None:
                raise ValueError("censor_model given but the PersonTime has no censor column")
            cfit, Xc, h, tc = _fit_nuisance(self.censor_model, pt, w, pt.censor, "censoring")
            if cfit.learner is not None:
                raise NotImplementedError("a censoring model with a scikit-learn learner: use a GLM formula")
            W = 1.0 / np.clip(np.exp(_reverse_cumsum(np.log1p(-np.clip(h, 0, 1 - 1e-12)), codes)), 1e-300, None)
            if np.nanmax(np.where(observed, W, 0)) > 50:
                warnings.warn("censoring weights above 50: the censoring model predicts near-certain censoring "
                              "for some uncensored persons; check the censoring model", FitWarning, stacklevel=2)
        e = (observed & (w > 0)).astype(float)

        # outcome design
        X, xnames = None, []
        if self.outcome_model is not None:
            omod = _as_model(self.outcome_model, "gaussian", "outcome model")
            lhs, _, _ = parse_formula(omod.formula)
            if lhs is not None and lhs != outcome:
                raise ValueError(f"the outcome model's response is {lhs!r}, but the outcome is {outcome!r}")
            rhs = omod.formula.split("~", 1)[1] if "~" in omod.formula else omod.formula
            odes = Model("~" + rhs, family="gaussian").design(pt)
            bad = (e > 0) & odes.bad_x
            if bad.any():
                raise DataError([Problem("missing_values", None, f"outcome model: missing values in its "
                                         f"columns on {int(bad.sum())} row(s); first ids: {_examples(pt, bad)}",
                                         int(bad.sum()), _examples(pt, bad))])
            X, xnames = odes.X, list(odes.recipe.names)
        use_pd = self.propensity_terms or self.solver == "gesttools"
        if use_pd:
            PD = p[:, None] * D
            pnames = ["propensity" if n == A_name else n.replace(A_name, "propensity", 1) for n in blip.names]
            X = PD if X is None else np.column_stack([X, PD])
            xnames = xnames + pnames
        if X is not None:
            X = np.where(e[:, None] > 0, X, 0.0)
        Y0 = np.where(e > 0, Y, 0.0)

        S = _reverse_cumsum(B, codes)
        R = A - p
        v = w * e * W
        if self.solver == "gesttools":
            psi, beta = _gesttools_recursion(Y0, B, S, X, v, data[pt.time].to_numpy(), q)
            cov, infl, stack = None, None, None
        else:
            psi, beta = _closed_form(Y0, S, X, R, D, v)
            parts = _Parts(A=A, Y=Y0, B=B, D=D, S=S, W=W, e=e, w=w, Xa=Xa if with_alpha else None, ta=ta,
                           Xc=Xc, C=None if Xc is None else data[pt.censor].to_numpy(dtype=float), tc=tc,
                           X=X, n_pd=q if use_pd else 0, codes=codes, n_persons=n_persons)
            theta = np.concatenate([tfit.params if with_alpha else [], [] if cfit is None else cfit.params,
                                    [] if beta is None else beta, psi])
            stack = (parts, theta, None if with_alpha else p)
            cov, infl = _sandwich(parts, theta, with_alpha, p_fixed=stack[2])
        res = SNMResult(
            spec=self, names=blip.names, psi=psi, cov=cov, influence=None if cov is None else infl,
            n_alpha=len(tfit.params) if with_alpha else 0, n_gamma=0 if cfit is None else len(cfit.params),
            n_beta=0 if beta is None else len(beta), outcome_coef=None if beta is None else
            pd.Series(beta, index=xnames), treatment_fit=tfit, censor_fit=cfit, blip_design=blip,
            _pt=pt, _W=W, _e=e, _stack=stack, n_persons=n_persons, n_rows=n_rows, outcome_name=outcome,
        )
        return res


# -- the blip design -------------------------------------------------------------------


@dataclass
class _BlipDesign:
    recipe: Recipe
    names: list[str]
    treatment: str
    B: np.ndarray  # a_t d_t
    D: np.ndarray  # d_t

    @classmethod
    def build(cls, formula: str, pt) -> _BlipDesign:
        A_name = pt.treatment
        if "~" in formula:
            formula = formula.split("~", 1)[1]
        _, _, terms = parse_formula(formula)
        if not terms:
            raise ValueError(f"the blip {formula!r} has no terms; write e.g. '{A_name} + {A_name}:L1'")
        for t in terms:
            ta = [f for f in t if f.var == A_name]
            if len(ta) != 1 or ta[0].kind != "num":
                label = ":".join(f.label() for f in t)
                raise ValueError(f"every blip term must contain the treatment {A_name!r} once and linearly; "
                                 f"term {label!r} does not (write e.g. '{A_name}:{label}')")
        cols = {c: pt.data[c].to_numpy() for c in pt.data.columns}
        rec = build_recipe(formula + " - 1", _numeric(cols, terms), list(pt.data.columns))
        num = {v: pt.data[v].to_numpy(dtype=float) for v in rec.variables}
        B = rec.matrix(num)
        D = rec.matrix({**num, A_name: np.ones(pt.n_rows)})
        if np.isnan(B).any():
            bad = np.isnan(B).any(axis=1)
            raise DataError([Problem("missing_values", None, f"blip: missing values in its columns on "
                                     f"{int(bad.sum())} row(s); first ids: {_examples(pt, bad)}", int(bad.sum()))])
        return cls(rec, list(rec.names), A_name, B, D)

    def modifiers(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        cols = {v: np.asarray(columns[v], dtype=float) for v in self.recipe.variables if v != self.treatment}
        cols[self.treatment] = np.ones(n)
        return self.recipe.matrix(cols)


def _numeric(cols, terms):
    out = dict(cols)
    for t in terms:
        for f in t:
            if f.var in out and not np.issubdtype(np.asarray(out[f.var]).dtype, np.number):
                out[f.var] = np.asarray(out[f.var], dtype=float)
    return out


# -- estimators ---------------------------------------------------------------------------


def _wls_solve(X: np.ndarray, v: np.ndarray, Ymat: np.ndarray) -> np.ndarray:
    A = (X * v[:, None]).T @ X
    b = (X * v[:, None]).T @ Ymat
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(A) @ b


def _closed_form(Y, S, X, R, D, v):
    if X is not None:
        coef = _wls_solve(X, v, np.column_stack([Y, S]))
        bY, bS = coef[:, 0], coef[:, 1:]
        rY, rS = Y - X @ bY, S - X @ bS
    else:
        rY, rS = Y, S
    G = D * (v * R)[:, None]
    lhs = G.T @ rS
    rhs = G.T @ rY
    try:
        psi = np.linalg.solve(lhs, rhs)
    except np.linalg.LinAlgError:
        raise DataError([Problem("singular", None, "the g-estimating equations are singular: a blip term "
                                 "does not vary among treated person-time, or is collinear with another", 0)]
                        ) from None
    beta = None if X is None else bY - bS @ psi
    return psi, beta


def _gesttools_recursion(Y, B, S, X, v, time, q):
    """gesttools' gestSingle recursion for blip parameters shared over time."""
    times = np.unique(time[v > 0])
    psi = np.zeros(q)
    beta = None
    future = S - B  # sum_{k > t} a_k d_k
    for i, t0 in enumerate(times[::-1]):
        rows = (time >= t0) & (v > 0)
        H = Y - (future @ psi if i > 0 else 0.0)
        Z = np.column_stack([B, X])[rows]
        coef = _wls_solve(Z, v[rows], H[rows][:, None])[:, 0]
        psi, beta = coef[:q], coef[q:]
    return psi, beta


# -- sandwich ------------------------------------------------------------------------------


@dataclass
class _Parts:
    A: np.ndarray
    Y: np.ndarray
    B: np.ndarray
    D: np.ndarray
    S: np.ndarray
    W: np.ndarray
    e: np.ndarray
    w: np.ndarray
    Xa: np.ndarray | None
    ta: np.ndarray
    Xc: np.ndarray | None
    C: np.ndarray | None
    tc: np.ndarray | None
    X: np.ndarray | None
    n_pd: int
    codes: np.ndarray
    n_persons: int


def _split(theta, parts: _Parts):
    i = 0
    out = {}
    for key, k in (("alpha", 0 if parts.Xa is None else parts.Xa.shape[1]),
                   ("gamma", 0 if parts.Xc is None else parts.Xc.shape[1]),
                   ("beta", 0 if parts.X is None else parts.X.shape[1]),
                   ("psi", parts.D.shape[1])):
        out[key] = theta[i:i + k]
        i += k
    return out


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _state(theta, parts: _Parts, p_fixed=None):
    """Everything that depends on theta: p, h, W, X, residual."""
    th = _split(theta, parts)
    p = _expit(parts.Xa @ th["alpha"]) if parts.Xa is not None else p_fixed
    if parts.Xc is not None:
        h = _expit(parts.Xc @ th["gamma"])
        W = np.exp(-_reverse_cumsum(np.log1p(-np.clip(h, 0, 1 - 1e-12)), parts.codes))
    else:
        h, W = None, parts.W
    X = parts.X
    if X is not None and parts.n_pd:
        X = X.copy()
        X[:, -parts.n_pd:] = np.where(parts.e[:, None] > 0, p[:, None] * parts.D, 0.0)
    res = parts.Y - parts.S @ th["psi"]
    if X is not None:
        res = res - X @ th["beta"]
    res = res * parts.e
    return th, p, h, W, X, res


def _estimating_rows(theta, parts: _Parts, p_fixed=None) -> np.ndarray:
    """Row contributions to the stacked estimating functions (unweighted by frequency weights)."""
    th, p, h, W, X, res = _state(theta, parts, p_fixed)
    blocks = []
    if parts.Xa is not None:
        blocks.append(parts.Xa * (parts.ta * (parts.A - p))[:, None])
    if parts.Xc is not None:
        blocks.append(parts.Xc * (parts.tc * (parts.C - h))[:, None])
    if X is not None:
        blocks.append(X * (W * res)[:, None])
    blocks.append(parts.D * (W * (parts.A - p) * res)[:, None])
    return np.column_stack(blocks)


def _jacobian(theta, parts: _Parts, p_fixed=None) -> np.ndarray:
    """d/dtheta of sum_r w_r g_r(theta), analytic."""
    th, p, h, W, X, res = _state(theta, parts, p_fixed)
    w = parts.w
    D, S = parts.D, parts.S
    R = parts.A - p
    na = 0 if parts.Xa is None else parts.Xa.shape[1]
    nc = 0 if parts.Xc is None else parts.Xc.shape[1]
    nb = 0 if X is None else X.shape[1]
    nq = D.shape[1]
    P = na + nc + nb + nq
    J = np.zeros((P, P))
    sa, sc, sb, sp = slice(0, na), slice(na, na + nc), slice(na + nc, na + nc + nb), slice(na + nc + nb, P)
    ew = w * W * parts.e  # outcome-equation weights
    if parts.Xa is not None:
        qa = p * (1 - p)
        J[sa, sa] = -(parts.Xa * (w * parts.ta * qa)[:, None]).T @ parts.Xa
    if parts.Xc is not None:
        J[sc, sc] = -(parts.Xc * (w * parts.tc * h * (1 - h))[:, None]).T @ parts.Xc
        Q = _reverse_cumsum(parts.Xc * h[:, None], parts.codes)  # dW/dgamma = W Q
    # psi equations
    J[sp, sp] = -(D * (ew * R)[:, None]).T @ S
    if X is not None:
        J[sb, sb] = -(X * ew[:, None]).T @ X
        J[sb, sp] = -(X * ew[:, None]).T @ S
        J[sp, sb] = -(D * (ew * R)[:, None]).T @ X
    if parts.Xc is not None:
        J[sp, sc] = (D * (ew * R * res)[:, None]).T @ Q
        if X is not None:
            J[sb, sc] = (X * (ew * res)[:, None]).T @ Q
    if parts.Xa is not None:
        qa = p * (1 - p)
        Xa = parts.Xa
        J[sp, sa] = -(D * (ew * qa * res)[:, None]).T @ Xa
        if parts.n_pd:
            bpd = th["beta"][-parts.n_pd:]
            dres = qa * (D @ bpd)  # d res / d alpha = -dres * Xa
            J[sp, sa] += -(D * (ew * R * dres)[:, None]).T @ Xa
            J[sb, sa] = -(X * (ew * dres)[:, None]).T @ Xa
            J[na + nc + nb - parts.n_pd:na + nc + nb, sa] += (D * (ew * res * qa)[:, None]).T @ Xa
    return J


def _sandwich(parts: _Parts, theta, with_alpha, p_fixed=None):
    G = _estimating_rows(theta, parts, p_fixed)
    J = _jacobian(theta, parts, p_fixed)
    codes = parts.codes
    first = np.ones(len(codes), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    c = parts.w[first]
    U = _person_sums(G, codes, parts.n_persons)
    try:
        Jinv = np.linalg.inv(J)
    except np.linalg.LinAlgError:
        Jinv = np.linalg.pinv(J)
    infl = -U @ Jinv.T  # each person's influence (sum scale)
    V = (infl * c[:, None]).T @ infl
    return V, (infl, c)


# -- the result --------------------------------------------------------------------------------------


@dataclass
class SNMResult:
    """A fitted structural nested mean model.

    Attributes
    ----------
    params : pandas.Series
        :math:`\\hat\\psi`, named by blip term.
    cov : pandas.DataFrame or None
        Sandwich covariance of :math:`\\hat\\psi` (None for ``solver="gesttools"``).
    estimates : pandas.Series
        ``psi[term]`` for every blip term (what :func:`gtools.bootstrap` resamples).
    outcome_coef : pandas.Series or None
        Coefficients of the outcome model at :math:`\\hat\\psi`.
    treatment_fit, censor_fit : FittedModel
    """

    spec: GEstimation
    names: list[str]
    psi: np.ndarray
    cov: np.ndarray | None
    influence: Any
    n_alpha: int
    n_gamma: int
    n_beta: int
    outcome_coef: pd.Series | None
    treatment_fit: FittedModel
    censor_fit: FittedModel | None
    blip_design: _BlipDesign = field(repr=False)
    _pt: Any = field(repr=False)
    _W: np.ndarray = field(repr=False)
    _e: np.ndarray = field(repr=False)
    _stack: Any = field(default=None, repr=False)
    n_persons: int = 0
    n_rows: int = 0
    outcome_name: str = ""

    @property
    def params(self) -> pd.Series:
        return pd.Series(self.psi, index=self.names, name="psi")

    @property
    def _psi_slice(self) -> slice:
        k = self.n_alpha + self.n_gamma + self.n_beta
        return slice(k, k + len(self.psi))

    @property
    def cov_params(self) -> pd.DataFrame:
        if self.cov is None:
            raise ValueError("solver='gesttools' has no sandwich variance; use gt.bootstrap(spec, pt)")
        s = self._psi_slice
        return pd.DataFrame(self.cov[s, s], index=self.names, columns=self.names)

    @property
    def se(self) -> pd.Series:
        if self.cov is None:
            return pd.Series(np.nan, index=self.names, name="se")
        return pd.Series(np.sqrt(np.diag(self.cov_params.to_numpy())), index=self.names, name="se")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals from the sandwich: ``lower``, ``upper`` per blip term."""
        from scipy.stats import norm

        z = norm.ppf(1 - alpha / 2)
        se = self.cov_params.pipe(lambda c: np.sqrt(np.diag(c.to_numpy())))
        return pd.DataFrame({"lower": self.psi - z * se, "upper": self.psi + z * se}, index=self.names)

    @property
    def estimates(self) -> pd.Series:
        return pd.Series(self.psi, index=[f"psi[{n}]" for n in self.names])

    def evalue(self, term: str | None = None, **kw) -> Any:
        """E-value of a blip parameter as a mean difference, psi / SD(outcome) (:func:`gtools.sensitivity.evalue_of`)."""
        return evalue_of(self, term, **kw)

    def summary(self) -> pd.DataFrame:
        """Table of psi: estimate, sandwich SE, z, p and 95% CI."""
        return _psi_table(self.names, self.psi, self.se.to_numpy())

    def __repr__(self) -> str:
        head = (f"<SNMResult: structural nested mean model of {self.outcome_name!r}, blip "
                f"{self.spec.blip!r}; {self.n_persons} persons, {self.n_rows} person-time rows; "
                + ("sandwich SE>" if self.cov is not None else "solver='gesttools' (no sandwich: bootstrap)>"))
        return head + "\n" + self.summary().to_string(float_format=lambda x: f"{x:.4f}")

    # -- effects implied by the blips ------------------------------------------------
    def _regime_modifiers(self, regime: Regime) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the regime's treatment and the blip modifiers under it (observed covariates)."""
        pt = self._pt
        data = pt.data
        A_name = pt.treatment
        tcol = data[pt.time].to_numpy()
        codes = pt.person_index
        n = pt.n_persons
        feats = [f for f in pt.history if f.root == A_name]
        states = {f.name: f.init(n) for f in feats}
        prev = np.zeros(n)
        a_out = np.zeros(pt.n_rows)
        cols_out: dict[str, np.ndarray] = {f.name: np.zeros(pt.n_rows) for f in feats}
        natural = data[A_name].to_numpy(dtype=float)
        all_cols = {c: data[c].to_numpy() for c in data.columns}
        for t in range(pt.n_times):
            idx = np.flatnonzero(tcol == t)
            if not len(idx):
                continue
            who = codes[idx]
            cols = {c: v[idx] for c, v in all_cols.items()}
            for f in feats:
                if not f.uses_current:
                    cols[f.name] = f.value(states[f.name][who], None, t)
            a = np.asarray(regime(State(t=np.full(len(idx), t), columns=cols, previous=prev[who],
                                        natural=natural[idx])), dtype=float)
            cols[A_name] = a
            for f in feats:
                if f.uses_current:
                    cols[f.name] = f.value(states[f.name][who], cols[f.source_name], t)
            for f in feats:
                st = states[f.name][who]
                f.update(st, cols[f.source_name], t)
                states[f.name][who] = st
                cols_out[f.name][idx] = cols[f.name]
            prev[who] = a
            a_out[idx] = a
        cols_all = {**{c: all_cols[c] for c in self.blip_design.recipe.variables if c in all_cols}, **cols_out}
        D = self.blip_design.modifiers(cols_all, pt.n_rows)
        return a_out, D

    def effect(self, regime_a: Regime, regime_b: Regime, alpha: float = 0.05) -> pd.Series:
        """Mean outcome difference :math:`E[Y^{g_a}] - E[Y^{g_b}]` implied by the fitted blips.

        Computes :math:`n^{-1} \\sum_i \\sum_t \\{a^{g_a}_{it} d_{it}(g_a) - a^{g_b}_{it} d_{it}(g_b)\\}^\\top
        \\hat\\psi`, with each regime's treatment assigned interval by interval
        and the treatment-history features (``lag1_A``, ``cumsum_A``, ...) that
        the blip reads recomputed under the regime, over the persons whose
        outcome is observed (inverse-probability-of-censoring weighted).

        This equals the SNMM's :math:`E[Y^{g_a}] - E[Y^{g_b}]` when the blip
        modifiers are baseline covariates, time and treatment history (and the
        regimes do not read covariates affected by treatment). When a modifier
        is a time-varying covariate affected by earlier treatment, its observed
        values are not its values under the regime and the result is only an
        approximation; use the g-formula for such contrasts.

        Returns ``estimate``, ``se`` (influence-function based, including the
        sandwich uncertainty of psi), ``ci_lower``, ``ci_upper``.
        """
        from scipy.stats import norm

        aa, Da = self._regime_modifiers(regime_a)
        ab, Db = self._regime_modifiers(regime_b)
        contrib = aa[:, None] * Da - ab[:, None] * Db
        pt = self._pt
        codes = pt.person_index
        first = np.ones(len(codes), dtype=bool)
        first[1:] = codes[1:] != codes[:-1]
        ci = _person_sums(contrib, codes, pt.n_persons)
        keep = self._e[first] > 0
        wt = pt.row_weights()[first] * self._W[first] * keep
        tot = wt.sum()
        cbar = (ci * wt[:, None]).sum(axis=0) / tot
        est = float(cbar @ self.psi)
        se = np.nan
        if self.influence is not None:
            infl, cnt = self.influence
            phi = infl[:, self._psi_slice] @ cbar + np.where(keep, self._W[first] * (ci @ self.psi - est), 0.0) / tot
            se = float(np.sqrt(np.sum(cnt * phi ** 2)))
        z = norm.ppf(1 - alpha / 2)
        name = f"{getattr(regime_a, 'name', 'a')}-{getattr(regime_b, 'name', 'b')}"
        return pd.Series({"estimate": est, "se": se, "ci_lower": est - z * se, "ci_upper": est + z * se},
                         name=f"effect[{name}]")
