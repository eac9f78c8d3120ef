r"""G-estimation of structural nested cumulative failure time models (SNCFTMs) for discrete-time survival.

:class:`gtools.GEstimation` dispatches here when ``pt.outcome_type == "survival"``.

Model
-----
Intervals :math:`t = 0, \dots, K-1`; in interval :math:`m` the covariates
:math:`L_m`, then the treatment :math:`A_m \in \{0, 1\}`, then the event
indicator :math:`Y_m` (so :math:`A_m` can affect :math:`Y_m`). :math:`D_k =
\sum_{s \le k} Y_s` is the cumulative event indicator by the end of interval
:math:`k`, :math:`T` the event interval, :math:`H_m` the history before
:math:`A_m`. :math:`D_k(\bar a_m, 0)` is the counterfactual under "treatment as
given through :math:`m`, none afterwards". The SNCFTM (Picciotto et al. 2012)
posits, for every :math:`m` and every :math:`k \ge m`, among those event-free
at the start of :math:`m`,

.. math::

    \frac{P[D_k(\bar A_m, 0) = 1 \mid H_m, A_m, D_{m-1} = 0]}
         {P[D_k(\bar A_{m-1}, 0) = 1 \mid H_m, A_m, D_{m-1} = 0]}
    = \exp\{\gamma_m(H_m, A_m; \psi)\}, \qquad
    \gamma_m = A_m\, d_m^\top \psi,

the multiplicative effect on the cumulative risk at every later time of one
final interval of treatment at :math:`m`; :math:`d_m = (1, M_{1m}, \dots)` are
the modifiers of the blip formula (``"A + A:L1"``, ``"A + A:time"``), the same
syntax as for structural nested mean models. :math:`\exp(\psi_0)` is a ratio of
cumulative risks (a risk ratio), not a hazard ratio. In this version the blip
does not depend on :math:`k - m`.

Blipping down
-------------
Let :math:`\Gamma_{m,s}(\psi) = \sum_{j=m}^{s} \gamma_j(\psi)` and

.. math::

    H_{m,k}(\psi) = D_k \exp\{-\Gamma_{m, \min(k, T)}(\psi)\}
                  = \sum_{s=m}^{k} Y_s \prod_{j=m}^{s} e^{-\gamma_j(\psi)} .

Under the model, :math:`E[H_{m,k}(\psi^*) \mid H_m, A_m, D_{m-1}=0] =
P[D_k(\bar A_{m-1}, 0) = 1 \mid H_m, A_m, D_{m-1}=0]` (backward induction from
:math:`D_k(\bar A_k, 0) = D_k`, removing one blip factor per interval). A person
with the event at :math:`T` has no treatment after :math:`T`, so the product
stops there: a failure before :math:`k` keeps :math:`D_k = 1` and only the
blips of the intervals lived through (:math:`m..T`, including the event
interval) are removed. A competing event (death from another cause) ends
follow-up with :math:`D_k = 0` for every later :math:`k`: the estimand is the
total effect on the cumulative incidence, with the competing event not
intervened upon (not treated as censoring).

Estimating equations
--------------------
Under sequential exchangeability :math:`H_{m,k}(\psi^*)` is mean independent
of :math:`A_m` given :math:`H_m` (among those at risk), so with the propensity
:math:`p_m = P(A_m = 1 \mid H_m)`

.. math::

    U(\psi) = \sum_i \sum_m \omega_{i} \{A_{im} - p_m(H_{im}; \hat\alpha)\}\, d_{im}
    \Big\{\sum_{k=m}^{K-1} \frac{1\{C_{i, \le \min(k, T_i)} = 0\}}
    {\prod_{j=m}^{\min(k, T_i)} (1 - h_{ij})} H_{i,m,k}(\psi) - b_m(H_{im})\Big\} = 0,

summing over every row (person :math:`i` at risk in interval :math:`m`),
:math:`\omega` the frequency weight (``pt.row_weights()``), :math:`h_j =
P(C_j = 1 \mid H_j, A_j)` the censoring model (inverse probability of
censoring weights; censoring during :math:`j` hides :math:`Y_j`), and
:math:`b_m` an optional outcome regression. Every :math:`k \ge m` enters with
the same weight :math:`d_m` (Picciotto et al. sum over all :math:`(m, k)`). As
:math:`H_{m,k} = 0` before the event, the inner sum collapses to one term per
row,

.. math::

    V_m(\psi) = E_i\,(K - T_i)\, W_{im}\, \exp(-S_{im}^\top \psi), \qquad
    S_{im} = \sum_{j \ge m} A_{ij} d_{ij}, \quad
    W_{im} = \prod_{j \ge m} (1 - h_{ij})^{-1},

(:math:`E_i` the event indicator, sums over the person's remaining rows), so
the equations cost :math:`O(\text{rows})`. Censored persons and persons
event-free at :math:`K-1` have :math:`V = 0` but still enter through the
residual :math:`A - p` (and through :math:`b_m`). With an ``outcome_model`` the
linear regression :math:`b_m = X_m^\top \beta(\psi)` of :math:`V_m(\psi)` on the
model's design (all rows, frequency-weighted) is subtracted; :math:`\hat\psi` is
then doubly robust: consistent if the treatment model or that regression for
:math:`E[V_m(\psi^*) \mid H_m]` is right. Without it :math:`b_m = 0`.

:math:`U` is smooth and nonlinear in :math:`\psi`; it is solved by Newton's
method with the analytic Jacobian :math:`-\sum \omega (A - p) d\, \{(I - P_X)
(V \odot S)\}^\top` and step halving, starting at :math:`\psi = 0`, with
``scipy.optimize.root`` as the fallback.

Variance: the sandwich of the stacked estimating equations (treatment-model
logistic scores, censoring-model scores, the outcome regression's normal
equations and :math:`U`), persons as clusters, so the estimation of the
nuisance models is accounted for. Its bread (the Jacobian of the stacked
equations) is computed by central finite differences of the stacked estimating
function, not analytically.

Risk under "never treat": :math:`E[H_{0,k}(\psi^*)] = P[D_k(\bar 0) = 1]`, so
:math:`\hat r_{never}(k) = \sum_i \omega_i W_{i0} E_i 1\{T_i \le k\}
e^{-S_{i0}^\top\hat\psi} / \sum_i \omega_i` (no further modelling; with
:math:`\psi = 0` it is the IPCW natural-course risk).

Identifying assumptions: consistency; sequential exchangeability for treatment
(and censoring) given the measured history; positivity; a correctly specified
blip; a correct treatment model (or the outcome regression); a correct
censoring model under censoring; every person followed to :math:`K-1`, the
event, censoring or a competing event (no unexplained end of follow-up).

References
----------
Picciotto S, Hernan MA, Page JH, Young JG, Robins JM (2012). Structural nested
cumulative failure time models to estimate the effects of interventions.
*JASA* 107:886-900.
Young JG, Hernan MA, Picciotto S, Robins JM (2010). Relation between three
classes of structural models for the effect of a time-varying exposure on
survival. *Lifetime Data Analysis* 16:71-84.
Robins JM (1994); Vansteelandt S, Joffe M (2014) (see :mod:`gtools.gestimation`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gtools.errors import DataError, FitWarning, Problem
from gtools.formula import parse_formula
from gtools.models import FittedModel, Model, check_positivity

__all__ = ["fit_sncftm", "SNCFTMResult"]


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _wls_coef(X: np.ndarray, v: np.ndarray, Y: np.ndarray) -> np.ndarray:
    A = (X * v[:, None]).T @ X
    b = (X * v[:, None]).T @ Y
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(A) @ b


@dataclass
class _Stack:
    """The arrays of the stacked estimating equations (everything but theta)."""

    A: np.ndarray
    D: np.ndarray
    S: np.ndarray
    base: np.ndarray  # E (K - T): V = base * W * exp(-S psi)
    w: np.ndarray
    ta: np.ndarray  # rows in the treatment and psi equations
    Xa: np.ndarray | None
    p_fixed: np.ndarray | None
    Xc: np.ndarray | None
    C: np.ndarray | None
    tc: np.ndarray | None
    W_fixed: np.ndarray
    X: np.ndarray | None
    ox: np.ndarray  # rows of the outcome regression
    codes: np.ndarray
    n_persons: int

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        return (0 if self.Xa is None else self.Xa.shape[1], 0 if self.Xc is None else self.Xc.shape[1],
                0 if self.X is None else self.X.shape[1], self.D.shape[1])

    def split(self, theta):
        out, i = [], 0
        for k in self.sizes:
            out.append(theta[i:i + k])
            i += k
        return out

    def censor_weights(self, gamma) -> tuple[np.ndarray | None, np.ndarray]:
        if self.Xc is None:
            return None, self.W_fixed
        h = _expit(self.Xc @ gamma)
        return h, _inverse_survival(h, self.codes)

    def V(self, psi, W) -> np.ndarray:
        return self.base * W * np.exp(-(self.S @ psi))

    def rows(self, theta) -> np.ndarray:
        """Row contributions g_r(theta) to the stacked estimating functions (no frequency weight)."""
        alpha, gamma, beta, psi = self.split(theta)
        p = _expit(self.Xa @ alpha) if self.Xa is not None else self.p_fixed
        h, W = self.censor_weights(gamma)
        V = self.V(psi, W)
        res = V - (self.X @ beta if self.X is not None else 0.0)
        blocks = []
        if self.Xa is not None:
            blocks.append(self.Xa * (self.ta * (self.A - p))[:, None])
        if self.Xc is not None:
            blocks.append(self.Xc * (self.tc * (self.C - h))[:, None])
        if self.X is not None:
            blocks.append(self.X * (self.ox * res)[:, None])
        blocks.append(self.D * (self.ta * (self.A - p) * res)[:, None])
        return np.column_stack(blocks)

    def total(self, theta) -> np.ndarray:
        return self.w @ self.rows(theta)


def _reverse_cumsum(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    from gtools.gestimation import _reverse_cumsum as rc

    return rc(x, codes)


def _inverse_survival(h: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """prod_{j >= t} 1 / (1 - h_j) within each person."""
    return np.exp(-_reverse_cumsum(np.log1p(-np.clip(h, 0, 1 - 1e-12)), codes))


def _numeric_jacobian(f, theta: np.ndarray) -> np.ndarray:
    P = len(theta)
    J = np.zeros((P, P))
    for j in range(P):
        step = 1e-6 * max(1.0, abs(theta[j]))
        tp, tm = theta.copy(), theta.copy()
        tp[j] += step
        tm[j] -= step
        J[:, j] = (f(tp) - f(tm)) / (2 * step)
    return J


def _solve_psi(base, W, S, R, D, v, X, xv, q) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """Newton's method for U(psi) = sum v R D {(I - P_X) V(psi)} = 0."""
    G = D * (v * R)[:, None]  # (rows, q)
    if X is not None:
        XtW = (X * xv[:, None]).T
        XtWX = XtW @ X
        try:
            XtWX_inv = np.linalg.inv(XtWX)
        except np.linalg.LinAlgError:
            XtWX_inv = np.linalg.pinv(XtWX)
        proj = XtWX_inv @ XtW  # beta = proj @ V
        # G^T (I - X proj) = G^T - (G^T X) proj, precomputed
        Gt = G.T - (G.T @ X) @ proj
    else:
        proj = None
        Gt = G.T

    def U(psi):
        return Gt @ (base * W * np.exp(-(S @ psi)))

    def J(psi):
        V = base * W * np.exp(-(S @ psi))
        return -Gt @ (S * V[:, None])

    psi = np.zeros(q)
    u = U(psi)
    scale = max(1.0, float(np.abs(G).sum()))
    converged = False
    it = 0
    while it < 100:
        it += 1
        try:
            step = np.linalg.solve(J(psi), -u)
        except np.linalg.LinAlgError:
            break
        t = 1.0
        norm0 = np.linalg.norm(u)
        while t > 1e-8:
            cand = psi + t * step
            uc = U(cand)
            if np.all(np.isfinite(uc)) and np.linalg.norm(uc) < norm0:
                break
            t /= 2
        else:
            break
        psi, u = cand, uc
        if np.linalg.norm(t * step) < 1e-10 * (1 + np.linalg.norm(psi)) or np.linalg.norm(u) < 1e-13 * scale:
            converged = True
            break
    if not converged:
        from scipy.optimize import root

        sol = root(U, psi, jac=J, method="hybr")
        if sol.success:
            psi, converged = sol.x, True
    beta = None if proj is None else proj @ (base * W * np.exp(-(S @ psi)))
    return psi, beta, it, converged


def fit_sncftm(spec, pt) -> SNCFTMResult:
    """Fit the SNCFTM of ``spec`` (a :class:`gtools.GEstimation`) on a survival PersonTime."""
    from gtools.gestimation import _as_model, _BlipDesign, _examples, _fit_nuisance, _person_sums

    if spec.solver not in ("closed_form", "newton"):
        raise ValueError(f"solver={spec.solver!r} is for end-of-follow-up outcomes; survival g-estimation "
                         f"(SNCFTM) solves its estimating equations by Newton's method")
    if spec.propensity_terms:
        raise NotImplementedError("propensity_terms=True is not available for survival outcomes (SNCFTM); "
                                  "put the treatment model's covariates in outcome_model instead")
    outcome = spec.outcome or pt.outcome
    if spec.dag is not None:
        from gtools.dag import require_identified

        require_identified(spec.dag, pt, [spec.treatment_model], outcome=outcome, label="GEstimation (SNCFTM)")
    data = pt.data
    if outcome is None or outcome not in data.columns:
        raise DataError([Problem("missing_column", outcome, f"outcome column {outcome!r} is not in the "
                                 f"table; available: {list(data.columns)}", 0)])
    A_name = pt.treatment
    codes = pt.person_index
    n_persons, n_rows = pt.n_persons, pt.n_rows
    w = pt.row_weights()
    A = data[A_name].to_numpy(dtype=float)
    Y = data[outcome].to_numpy(dtype=float)
    tcol = data[pt.time].to_numpy()
    K = pt.n_times
    last = pt.last_rows
    first = np.ones(n_rows, dtype=bool)
    first[1:] = codes[1:] != codes[:-1]

    # how each person's follow-up ended
    ev_p = np.nan_to_num(Y[last]) == 1
    cens_p = (np.nan_to_num(data[pt.censor].to_numpy(dtype=float)[last]) == 1) if pt.censor else \
        np.zeros(n_persons, dtype=bool)
    comp_p = (np.nan_to_num(data[pt.competing].to_numpy(dtype=float)[last]) == 1) if pt.competing else \
        np.zeros(n_persons, dtype=bool)
    T_p = tcol[last].astype(float)
    early = ~ev_p & ~cens_p & ~comp_p & (T_p < K - 1)
    if early.any():
        rows_early = last & early[codes]
        raise DataError([Problem(
            "follow_up_ends_early", pt.time,
            f"survival g-estimation needs every person followed to the last interval ({K - 1}), the event, "
            f"censoring or a competing event; {int(early.sum())} person(s) end earlier with none of these "
            f"(mark their censoring in the censor column, or restrict follow-up to a common horizon); first "
            f"ids: {_examples(pt, rows_early)}", int(early.sum()), _examples(pt, rows_early))])
    if cens_p.any() and spec.censor_model is None:
        rows_c = last & cens_p[codes]
        raise DataError([Problem(
            "missing_outcome", outcome,
            f"{int(cens_p.sum())} person(s) are censored; give censor_model='{pt.censor} ~ ...' for inverse "
            f"probability of censoring weights; first ids: {_examples(pt, rows_c)}",
            int(cens_p.sum()), _examples(pt, rows_c))])

    blip = _BlipDesign.build(spec.blip, pt)
    B, D = blip.B, blip.D
    q = B.shape[1]

    # treatment model
    tfit, Xa, p, ta = _fit_nuisance(spec.treatment_model, pt, w, A_name, "treatment")
    check_positivity(p[ta > 0], tcol[ta > 0], "the treatment model")
    with_alpha = tfit.learner is None
    if with_alpha and tfit.link != "logit":
        raise NotImplementedError("the SNCFTM sandwich assumes a logistic treatment model; use gt.bootstrap")

    # censoring model
    cfit = None
    Xc = Cc = tc = None
    W = np.ones(n_rows)
    if spec.censor_model is not None:
        if pt.censor is None:
            raise ValueError("censor_model given but the PersonTime has no censor column")
        cfit, Xc, h, tc = _fit_nuisance(spec.censor_model, pt, w, pt.censor, "censoring")
        if cfit.learner is not None or cfit.link != "logit":
            raise NotImplementedError("the censoring model must be a logistic GLM formula")
        Cc = np.nan_to_num(data[pt.censor].to_numpy(dtype=float))
        W = _inverse_survival(h, codes)
        Wev = W[ev_p[codes]]
        if len(Wev) and Wev.max() > 50:
            warnings.warn("censoring weights above 50 for persons with the event: the censoring model predicts "
                          "near-certain censoring for some; check the censoring model", FitWarning, stacklevel=3)

    # outcome regression for E[V_m | H_m]
    X, xnames = None, []
    ox = (w > 0).astype(float)
    if spec.outcome_model is not None:
        omod = _as_model(spec.outcome_model, "gaussian", "outcome model")
        formula = omod.formula
        lhs, _, _ = parse_formula(formula)
        if lhs is not None and lhs != outcome:
            raise ValueError(f"the outcome model's response is {lhs!r}, but the outcome is {outcome!r}")
        rhs = formula.split("~", 1)[1] if "~" in formula else formula
        odes = Model("~" + rhs, family="gaussian").design(pt)
        bad = (w > 0) & odes.bad_x
        if bad.any():
            raise DataError([Problem("missing_values", None, f"outcome model: missing values in its columns on "
                                     f"{int(bad.sum())} row(s); first ids: {_examples(pt, bad)}",
                                     int(bad.sum()), _examples(pt, bad))])
        X, xnames = np.where(ox[:, None] > 0, odes.X, 0.0), list(odes.recipe.names)

    S = _reverse_cumsum(B, codes)
    base = (ev_p[codes] * (K - T_p[codes])).astype(float)
    R = np.where(ta > 0, A - p, 0.0)
    psi, beta, n_iter, converged = _solve_psi(base, W, S, R, D, w * ta, X, w * ox, q)
    if not converged or not np.all(np.isfinite(psi)):
        warnings.warn("the SNCFTM estimating equations did not converge (few events among the treated, or a "
                      "blip term with little variation); the estimate is the last Newton iterate",
                      FitWarning, stacklevel=3)
    n_events = float(w[last] @ ev_p)
    if n_events == 0:
        raise DataError([Problem("no_events", outcome, "no events: the SNCFTM is not estimable", 0)])

    stack = _Stack(A=A, D=D, S=S, base=base, w=w, ta=ta, Xa=Xa if with_alpha else None,
                   p_fixed=None if with_alpha else p, Xc=Xc, C=Cc, tc=tc, W_fixed=W, X=X, ox=ox,
                   codes=codes, n_persons=n_persons)
    theta = np.concatenate([tfit.params if with_alpha else [], [] if cfit is None else cfit.params,
                            [] if beta is None else beta, psi])
    Jst = _numeric_jacobian(stack.total, theta)
    Ui = _person_sums(stack.rows(theta), codes, n_persons)
    cnt = w[first]
    try:
        Jinv = np.linalg.inv(Jst)
    except np.linalg.LinAlgError:
        Jinv = np.linalg.pinv(Jst)
    infl = -Ui @ Jinv.T
    cov = (infl * cnt[:, None]).T @ infl

    # risk curves: natural course (IPCW) and never treat (blipped down)
    Wp, Sp, wp = W[first], S[first], w[first]
    ntot = wp.sum()
    times = np.arange(K)
    ev_by = (T_p[None, :] <= times[:, None]) & ev_p[None, :]
    nat = (ev_by * (wp * Wp)[None, :]).sum(axis=1) / ntot
    nev = (ev_by * (wp * Wp * np.exp(-(Sp @ psi)))[None, :]).sum(axis=1) / ntot
    risk = pd.DataFrame({"natural": nat, "never": nev}, index=pd.Index(times, name=pt.time))
    if nev[-1] > 1:
        warnings.warn(f"the cumulative risk under 'never treat' implied by the fitted blips is {nev[-1]:.3g} > 1 "
                      f"at t={K - 1}: the blips (which compound over every treated interval) are probably "
                      f"misspecified, e.g. a modifier with a wide range; try a simpler blip or check positivity",
                      FitWarning, stacklevel=3)

    return SNCFTMResult(spec=spec, names=list(blip.names), psi=psi, cov=cov, sizes=stack.sizes,
                        influence=(infl, cnt), outcome_coef=None if beta is None else pd.Series(beta, index=xnames),
                        treatment_fit=tfit, censor_fit=cfit, risk=risk, n_persons=n_persons, n_rows=n_rows,
                        n_events=n_events, n_iter=n_iter, converged=converged, outcome_name=outcome,
                        _stack=stack, _theta=theta)


@dataclass
class SNCFTMResult:
    """A fitted structural nested cumulative failure time model (see :mod:`gtools._sncftm`).

    Attributes
    ----------
    params : pandas.Series
        :math:`\\hat\\psi` by blip term (log ratios of cumulative risks).
    risk : pandas.DataFrame
        Cumulative risk by interval, ``natural`` (IPCW natural course) and
        ``never`` (every person's blips removed).
    estimates : pandas.Series
        ``psi[term]`` for every blip term, ``risk[never,t=K-1]``,
        ``risk[natural,t=K-1]`` (what :func:`gtools.bootstrap` resamples).
    outcome_coef : pandas.Series or None
    treatment_fit, censor_fit : FittedModel
    """

    spec: Any
    names: list[str]
    psi: np.ndarray
    cov: np.ndarray
    sizes: tuple[int, int, int, int]
    influence: Any
    outcome_coef: pd.Series | None
    treatment_fit: FittedModel
    censor_fit: FittedModel | None
    risk: pd.DataFrame
    n_persons: int = 0
    n_rows: int = 0
    n_events: float = 0.0
    n_iter: int = 0
    converged: bool = True
    outcome_name: str = ""
    _stack: Any = field(default=None, repr=False)
    _theta: Any = field(default=None, repr=False)

    model = "sncftm"

    @property
    def params(self) -> pd.Series:
        return pd.Series(self.psi, index=self.names, name="psi")

    @property
    def _psi_slice(self) -> slice:
        k = sum(self.sizes[:3])
        return slice(k, k + len(self.psi))

    @property
    def cov_params(self) -> pd.DataFrame:
        s = self._psi_slice
        return pd.DataFrame(self.cov[s, s], index=self.names, columns=self.names)

    @property
    def se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.cov_params.to_numpy())), index=self.names, name="se")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals of psi from the sandwich: ``lower``, ``upper`` per blip term."""
        from scipy.stats import norm

        z = norm.ppf(1 - alpha / 2)
        se = self.se.to_numpy()
        return pd.DataFrame({"lower": self.psi - z * se, "upper": self.psi + z * se}, index=self.names)

    @property
    def estimates(self) -> pd.Series:
        k = int(self.risk.index[-1])
        vals = list(self.psi) + [float(self.risk["never"].iloc[-1]), float(self.risk["natural"].iloc[-1])]
        names = [f"psi[{n}]" for n in self.names] + [f"risk[never,t={k}]", f"risk[natural,t={k}]"]
        return pd.Series(vals, index=names)

    def summary(self) -> pd.DataFrame:
        """psi: estimate, sandwich SE, z, p, 95% CI, and the cumulative risk ratio exp(psi) with its CI."""
        from gtools.gestimation import _psi_table

        tab = _psi_table(self.names, self.psi, self.se.to_numpy())
        tab["exp(coef)"] = np.exp(self.psi)
        tab["exp_ci_lower"] = np.exp(tab["ci_lower"])
        tab["exp_ci_upper"] = np.exp(tab["ci_upper"])
        return tab

    def __repr__(self) -> str:
        head = (f"<SNCFTMResult: structural nested cumulative failure time model of {self.outcome_name!r}, "
                f"blip {self.spec.blip!r} (log cumulative-risk ratio); {self.n_persons} persons, "
                f"{self.n_rows} person-time rows, {self.n_events:g} events; sandwich SE>")
        return head + "\n" + self.summary().to_string(float_format=lambda x: f"{x:.4f}")

    def plot(self, ax=None):
        """Cumulative risk, natural course and never treat, by interval; returns the axis."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        for c in self.risk.columns:
            ax.step(self.risk.index, self.risk[c], where="post", label=c)
        ax.set_xlabel(self.risk.index.name or "time")
        ax.set_ylabel("cumulative risk")
        ax.legend()
        return ax
