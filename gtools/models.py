"""Nuisance and outcome models: a formula and a family, fitted once, reused.

``gt.Model("A ~ L1 + L2 + lag1_A + W + C(time)", family="binomial")`` is a
specification. :meth:`Model.fit` builds the design matrix of a
:class:`~gtools.PersonTime` once (cached on the table, so a bootstrap
replicate, which only re-weights persons, reuses it), fits by iteratively
reweighted least squares (or Newton's method for the multinomial family) and
returns a :class:`FittedModel` holding what the g-formula's simulation needs
without re-parsing: the column recipe, the coefficients, the link and the
residual scale. Standard errors and the printed summary come from statsmodels
on the same design, computed lazily.

Families
--------
``binomial`` (logit link), ``gaussian`` (identity; draws are normal with the
residual SD), ``poisson`` (log), ``multinomial`` (baseline-category logit,
> 2 levels; draws sample from the predicted probabilities),
``truncated_normal`` (least-squares mean model, draws from the normal
truncated to ``bounds``), ``bounded_normal`` (as gfoRmula: least-squares
mean model, draws clipped to ``bounds``). ``bounds`` default to the observed
range. ``absorbing=True`` on a binary model: once 1, stays 1 (the model is
fitted on rows where the previous value was 0).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gtools.errors import DataError, FitWarning, Problem
from gtools.formula import INDICATOR, POWER, SPLINE, Recipe, _ns_column, build_recipe
from gtools.formula import parse_formula as _parse_uncached

_parse_cache: dict[str, Any] = {}


def parse_formula(formula: str):
    """Parsed formula, cached (specifications are re-fitted many times in a bootstrap)."""
    if formula not in _parse_cache:
        _parse_cache[formula] = _parse_uncached(formula)
    return _parse_cache[formula]

__all__ = ["Model", "FittedModel", "Design", "check_positivity", "irls"]

FAMILIES = ("binomial", "gaussian", "poisson", "multinomial", "truncated_normal", "bounded_normal")
_ALIASES = {"logit": "binomial", "binary": "binomial", "logistic": "binomial", "normal": "gaussian",
            "linear": "gaussian", "categorical": "multinomial", "bounded normal": "bounded_normal",
            "truncated normal": "truncated_normal", "absorbing": "binomial"}


def _family(name: str) -> str:
    fam = _ALIASES.get(name, name)
    if fam not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {FAMILIES}")
    return fam


class Design:
    """The design of one formula over one PersonTime: built once, reused.

    It holds the recipe, the formula's variables as read-only views of the
    table's float64 and int64 columns (``columns``; other types converted
    once), the response, and the row masks; the GLM kernels of
    :mod:`gtools._colglm` build design rows from the columns strip by strip,
    so fitting and predicting never hold the ``n x p`` matrix. :attr:`X` materialises it (once, on first use) for the code
    paths that need a matrix (other families, learners, summaries).
    """

    def __init__(self, recipe: Recipe, columns: tuple, var: np.ndarray, colmap: dict, y: np.ndarray | None,
                 usable: np.ndarray, bad_x: np.ndarray, n_rows: int):
        self.recipe = recipe
        self.y = y
        # rows where the response and every design column are non-missing: kept only when some are not
        self._usable = None if usable.all() else usable
        self.has_missing_x = bool(bad_x.any())
        self._bad_x = bad_x if self.has_missing_x else None  # kept only when some row has a missing value
        self.n_rows = n_rows
        self._X: np.ndarray | None = None
        self._colmap = colmap
        rec = recipe
        # the recipe as the kernels read it: factor variable (position in ``columns``), kind, packed
        # parameters, column pointers. Factors that cost more than a read (spline basis functions,
        # powers other than 1) are evaluated once, as Recipe.matrix does, and read as extra float
        # columns; plain variables, indicators and their products are read from the table in place.
        var = np.array(var, dtype=np.int64)
        kind = np.array(rec.fac_kind, dtype=np.int64)
        param = rec.packed_param()
        fcols, icols = columns
        n_float = len(fcols)
        extra: list[np.ndarray] = []
        at: dict[tuple, int] = {}
        reads_int = var >= n_float  # factors reading an int64 column: shifted behind the extra columns
        if len(fcols) == 1 and fcols[0] is _NO_COLUMNS:  # only the placeholder: extra columns replace it
            n_float = 0
        for f in range(len(kind)):
            if kind[f] == SPLINE or (kind[f] == POWER and param[f] != 1.0):
                key = (int(rec.fac_var[f]), int(kind[f]), float(rec.fac_param[f]))
                if key not in at:
                    x = np.asarray(colmap[rec.variables[key[0]]], dtype=float)
                    if kind[f] == SPLINE:
                        o = int(rec.fac_param[f])
                        k = int(rec.knots[o + 1])
                        col = _ns_column(x, rec.knots[o + 2:o + 2 + k], int(rec.knots[o]))
                    else:
                        col = x ** param[f]
                    at[key] = n_float + len(extra)
                    extra.append(_readonly(col))
                var[f], kind[f], param[f] = at[key], POWER, 1.0
                reads_int[f] = False
        if extra:
            var[reads_int] += n_float + len(extra) - len(fcols)
            columns = (tuple(fcols[:n_float]) + tuple(extra), icols)
        self.columns = columns
        self.encoding = (var, kind, param, np.asarray(rec.term_ptr, dtype=np.int64))

    def column(self, j: int) -> np.ndarray:
        """Design column ``j`` (from the matrix when it is materialised, else built alone)."""
        if self._X is not None:
            return self._X[:, j]
        if not self.recipe.variables:
            return np.ones(self.n_rows)
        return self.recipe.column(self._colmap, j, self.n_rows)

    @property
    def usable(self) -> np.ndarray:
        """Rows where the response and every design column are non-missing."""
        return self._usable if self._usable is not None else np.ones(self.n_rows, dtype=bool)

    @property
    def bad_x(self) -> np.ndarray:
        """Rows where some design column is missing."""
        return self._bad_x if self._bad_x is not None else np.zeros(self.n_rows, dtype=bool)

    @property
    def X(self) -> np.ndarray:
        """The design matrix (materialised on first use and kept)."""
        if self._X is None:
            rec = self.recipe
            if rec.variables:
                self._X = rec.matrix(self._colmap)
            else:
                self._X = np.ones((self.n_rows, rec.n_columns))
        return self._X


def _float_column(pt, name: str) -> np.ndarray:
    """A read-only float64 view of a table column (a converted copy, cached, when it is not float64)."""
    s = pt.data[name]
    if s.dtype == np.float64:
        a = np.ascontiguousarray(s.to_numpy()).view()
    else:
        key = ("float_column", name)
        if key not in pt._cache:
            pt._cache[key] = np.ascontiguousarray(s.to_numpy(dtype=float))
        a = pt._cache[key].view()
    a.flags.writeable = False
    return a


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a).view()
    a.flags.writeable = False
    return a


_NO_COLUMNS = _readonly(np.zeros(1))
_NO_INT_COLUMNS = _readonly(np.zeros(1, dtype=np.int64))


def table_columns(pt, recipe: Recipe) -> tuple[tuple, np.ndarray, dict[str, np.ndarray]]:
    """The recipe's variables as the kernels of :mod:`gtools._colglm` read them, without copies.

    Returns ``((float64 columns, int64 columns), factor variable indices into that pair, {name: column})``.
    float64 and int64 columns are read-only views of the table; other types are converted once
    (cached on the table).
    """
    fl, it, pos, colmap = [], [], {}, {}
    for v in recipe.variables:
        s = pt.data[v]
        if s.dtype == np.int64:
            colmap[v] = _readonly(s.to_numpy())
            it.append(v)
        else:
            colmap[v] = _float_column(pt, v)
            fl.append(v)
    for i, v in enumerate(fl + it):
        pos[v] = i
    cols = (tuple(colmap[v] for v in fl) or (_NO_COLUMNS,), tuple(colmap[v] for v in it) or (_NO_INT_COLUMNS,))
    if not fl:  # the placeholder takes float position 0: shift the int columns behind it
        pos = {v: i + 1 for v, i in pos.items()}
    var = np.array([pos[recipe.variables[f]] for f in recipe.fac_var], dtype=np.int64)
    return cols, var, colmap


class Model:
    """A model specification: formula + family (+ optional scikit-learn learner).

    Parameters
    ----------
    formula : str
        R-style, over PersonTime and history columns, e.g.
        ``"L2 ~ L1 + lag1_L2 + lag1_A + W + C(time)"``.
    family : str
        ``"binomial"``, ``"gaussian"``, ``"poisson"``, ``"multinomial"``,
        ``"truncated_normal"`` or ``"bounded_normal"``.
    bounds : (float, float), optional
        Range of a truncated/bounded normal covariate; default the observed range.
    learner : scikit-learn estimator, optional
        Fitted on the design matrix instead of a GLM (``predict_proba`` for
        binary models, ``predict`` otherwise); for flexible nuisance models.
    absorbing : bool
        Binary covariate that stays 1 once it is 1.
    name : str, optional
        Used in warnings and tables; default the response.
    """

    def __init__(
        self,
        formula: str,
        family: str = "binomial",
        bounds: tuple[float, float] | None = None,
        learner: Any = None,
        absorbing: bool = False,
        name: str | None = None,
    ):
        self.formula = formula
        self.family = family
        self.bounds = bounds
        self.learner = learner
        self.absorbing = absorbing or family == "absorbing"
        self.name = name

    @property
    def response(self) -> str:
        lhs, _, _ = parse_formula(self.formula)
        if lhs is None:
            raise ValueError(f"model formula {self.formula!r} has no response (left of '~')")
        return lhs

    @property
    def label(self) -> str:
        return self.name or f"model for {self.response}"

    def __repr__(self) -> str:
        extra = f", bounds={self.bounds}" if self.bounds else ""
        extra += ", absorbing=True" if self.absorbing else ""
        extra += f", learner={self.learner!r}" if self.learner is not None else ""
        return f"gt.Model({self.formula!r}, family={self.family!r}{extra})"

    # -- design -------------------------------------------------------------
    def design(self, pt) -> Design:
        """The design of this formula over ``pt`` (cached on the table)."""
        key = ("design", self.formula)
        cache = pt._cache
        if key not in cache:
            data: pd.DataFrame = pt.data
            cols = {c: data[c].to_numpy() for c in data.columns}
            # numeric view; strings in a model column are an error
            recipe = build_recipe(self.formula, _numeric_view(cols, self.formula, pt), list(data.columns))
            _label_categories(recipe, getattr(pt, "categories", {}), self.formula)
            columns, var, colmap = table_columns(pt, recipe)
            # a missing value makes a power or spline column missing; an indicator of a missing value is 0
            bad_x = np.zeros(len(data), dtype=bool)
            for f in range(len(recipe.fac_var)):
                c = colmap[recipe.variables[recipe.fac_var[f]]]
                if recipe.fac_kind[f] != INDICATOR and c.dtype == np.float64:
                    bad_x |= np.isnan(c)
            y = None
            usable = ~bad_x
            if recipe.response is not None:
                y = data[recipe.response].to_numpy(dtype=float)
                usable &= ~np.isnan(y)
            cache[key] = Design(recipe, columns, var, colmap, y, usable, bad_x, len(data))
        return cache[key]

    # -- fitting ------------------------------------------------------------------
    def fit(self, pt, rows: np.ndarray | None = None, weights: np.ndarray | None = None,
            warn: bool = True) -> FittedModel:
        """Fit on the rows of ``pt`` selected by the boolean mask ``rows``.

        Rows whose response is missing are left out (e.g. the outcome on a
        censored row); a missing value in a design column of a selected row
        is a :class:`DataError`. ``weights`` multiply the table's frequency
        weights (the bootstrap's resampling counts).
        """
        fam = _family(self.family)
        d = self.design(pt)
        if d.y is None:
            raise ValueError(f"model formula {self.formula!r} has no response")
        sel = np.ones(pt.n_rows, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        if self.absorbing:
            sel = sel & _previous_is_zero(pt, d.recipe.response)
        bad = (sel & d.bad_x & ~np.isnan(d.y)) if d.has_missing_x else None
        if bad is not None and bad.any():
            cols = [v for v in d.recipe.variables if np.isnan(pt.data[v].to_numpy(dtype=float)[bad]).any()]
            idx = np.flatnonzero(bad)[:5]
            ex = [(pt.data[pt.id].iloc[i], pt.data[pt.time].iloc[i]) for i in idx]
            raise DataError([Problem("missing_values", ", ".join(cols),
                                     f"{self.label}: missing values in model column(s) {cols}: "
                                     f"{int(bad.sum())} row(s); first: "
                                     + ", ".join(f"id={_py(a)!r} time={_py(b)}" for a, b in ex),
                                     int(bad.sum()), ex)])
        # frequency weights of the rows; None when every row counts once (no n-vector then)
        wrow = pt.weights
        if weights is not None:
            wrow = pt.row_weights() * np.asarray(weights, dtype=float)
        use = sel & d.usable
        if wrow is not None:
            use &= wrow > 0
        if not use.any():
            raise DataError([Problem("empty_table", d.recipe.response,
                                     f"{self.label}: no rows to fit on", 0)])
        if fam in ("binomial", "poisson") and self.learner is None:
            # A fit on re-weighted persons (a bootstrap replicate) starts IRLS from the unweighted
            # fit of the same rows, when there was one: fewer iterations, same optimum. Only
            # unweighted fits store a start, so replicates never depend on each other's order.
            start_key = ("irls_start", self.formula, fam, self.absorbing,
                         np.packbits(sel & d.usable).tobytes())  # not hash(): it varies by process
            start = pt._cache.get(start_key) if pt.weights is not None else None
            # a replicate whose rows' unweighted fit was already checked for rank skips that check
            fitted = _fit_columns(self, fam, d, use, wrow, warn=warn, start=start, check_rank=start is None)
            if pt.weights is None and weights is None and fitted.converged:
                pt._cache[start_key] = fitted.params
            return fitted
        if fam in ("gaussian", "truncated_normal", "bounded_normal") and self.learner is None:
            return _fit_columns_linear(self, fam, d, use, wrow, warn=warn)
        w = pt.row_weights() if wrow is None else wrow
        return _fit_arrays(self, fam, d.recipe, d.X[use], d.y[use], w[use], warn=warn)


def _py(x):
    return x.item() if isinstance(x, np.generic) else x


_C_NAME = re.compile(r"C\(([A-Za-z_][A-Za-z0-9_.]*)\)\[T\.([^\]]+)\]")


def _label_categories(recipe: Recipe, categories: Mapping[str, list], formula: str) -> None:
    """Name ``C(sex)[T.1]`` by its level (``C(sex)[T.M]``) for text covariates stored as codes, and refuse
    a text covariate with more than two levels used as a number."""
    if not categories:
        return
    for f in range(len(recipe.fac_var)):
        var = recipe.variables[recipe.fac_var[f]]
        if var in categories and recipe.fac_kind[f] == 0 and len(categories[var]) > 2:
            raise DataError([Problem("non_numeric", var, f"formula {formula!r} uses {var!r} as a number, but it "
                                     f"is a categorical covariate with levels {categories[var]}: write C({var})", 0)])

    def relabel(m: re.Match) -> str:
        var, code = m.group(1), m.group(2)
        levels = categories.get(var)
        try:
            return f"C({var})[T.{levels[int(float(code))]}]" if levels is not None else m.group(0)
        except (ValueError, IndexError):
            return m.group(0)

    recipe.names = [_C_NAME.sub(relabel, n) for n in recipe.names]


def _numeric_view(cols: Mapping[str, np.ndarray], formula: str, pt) -> Mapping[str, np.ndarray]:
    lhs, _, terms = parse_formula(formula)
    out = dict(cols)
    for v in {f.var for t in terms for f in t} | ({lhs} if lhs else set()):
        if v in cols and not np.issubdtype(np.asarray(cols[v]).dtype, np.number) and \
                np.asarray(cols[v]).dtype != bool:
            try:
                out[v] = np.asarray(cols[v], dtype=float)
            except (TypeError, ValueError):
                raise DataError([Problem("non_numeric", v, f"formula {formula!r}: column {v!r} is not "
                                         "numeric; recode it as numbers (use C() for categories)", 0)]) from None
    return out


def _previous_is_zero(pt, col: str) -> np.ndarray:
    """Rows where the person's value of ``col`` in the previous interval was 0 (or t = 0)."""
    v = pt.data[col].to_numpy(dtype=float)
    codes = pt.person_index
    prev = np.zeros(len(v))
    same = np.zeros(len(v), dtype=bool)
    same[1:] = codes[1:] == codes[:-1]
    prev[1:] = np.where(same[1:], v[:-1], 0.0)
    return prev == 0


# -- fitting engines -------------------------------------------------------------------


def irls(X: np.ndarray, y: np.ndarray, w: np.ndarray, family: str, tol: float = 1e-10,
         max_iter: int = 100, start: np.ndarray | None = None) -> tuple[np.ndarray, bool, int]:
    """Weighted GLM by iteratively reweighted least squares (canonical links).

    Each step's normal equations are accumulated in one numba pass over the
    rows. Returns (coefficients, converged, iterations); agrees with
    statsmodels' GLM with ``freq_weights=w`` to about 1e-8.
    """
    from gtools._irls import BINOMIAL, POISSON, accumulate

    fam = BINOMIAL if family == "binomial" else POISSON
    X = np.ascontiguousarray(X, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    w = np.ascontiguousarray(w, dtype=float)
    if fam == BINOMIAL:
        mu0 = (w * y + 0.5) / (w + 1.0)
        eta0 = np.log(mu0 / (1 - mu0))
    else:
        eta0 = np.log(y + 0.1)
    return _irls_loop(lambda beta, init: accumulate(X, y, w, beta, eta0, init, fam), X.shape[1], tol,
                      max_iter, start)


def irls_design(d: Design, rows: np.ndarray, w: np.ndarray | None, family: str, tol: float = 1e-10,
                max_iter: int = 100, start: np.ndarray | None = None) -> tuple[np.ndarray, bool, int]:
    """:func:`irls` on a :class:`Design` without its matrix, over the rows in the mask ``rows``.

    ``w`` are row weights (None: every row weighs 1; rows with weight 0 are
    skipped too). ``family`` is ``"binomial"``, ``"poisson"`` or
    ``"gaussian"`` (one weighted least-squares step).
    """
    from gtools import _colglm as K

    fam = {"binomial": K.BINOMIAL, "poisson": K.POISSON, "gaussian": K.GAUSSIAN}[family]
    var, kind, param, ptr = d.encoding
    cols, y = d.columns, d.y
    use_w = w is not None
    w = np.ascontiguousarray(w, dtype=float) if use_w else _NO_COLUMNS
    rows = np.asarray(rows, dtype=bool)

    def step(beta, init):
        return K.accumulate(cols, var, kind, param, ptr, y, w, use_w, rows, beta, init, fam)

    if fam == K.GAUSSIAN:
        _, A, b = step(np.zeros(len(ptr) - 1), True)
        return _solve_sym(A, b), True, 1
    return _irls_loop(step, len(ptr) - 1, tol, max_iter, start)


def _irls_loop(step, p: int, tol: float, max_iter: int, start) -> tuple[np.ndarray, bool, int]:
    """IRLS iterations; ``step(beta, init)`` returns (deviance, X'WX, X'Wz), ``init`` at the starting values."""
    if start is not None:
        beta = np.asarray(start, dtype=float)
        dev_old, A, b = step(beta, False)
    else:
        beta = np.zeros(p)
        dev_old, A, b = step(beta, True)
        dev_old = np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        beta = _solve_sym(A, b)
        dev, A, b = step(beta, False)
        if abs(dev - dev_old) <= tol * (abs(dev) + 0.1):
            converged = True
            break
        dev_old = dev
    return beta, converged, it


def _solve_sym(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        L = np.linalg.cholesky(A)
        return np.linalg.solve(L.T, np.linalg.solve(L, b))
    except np.linalg.LinAlgError:
        return np.linalg.pinv(A) @ b


def _wls(X: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares by the normal equations (Cholesky), pseudo-inverse if singular."""
    Xw = X * w[:, None]
    return _solve_sym(Xw.T @ X, Xw.T @ z)


def _multinomial_newton(X, yk, w, J, tol=1e-10, max_iter=100):
    """Baseline-category logit by Newton's method; yk in 0..J-1 (0 = reference)."""
    n, p = X.shape
    B = np.zeros((p, J - 1))
    Y = np.zeros((n, J - 1))
    for j in range(1, J):
        Y[:, j - 1] = yk == j
    ll_old = -np.inf
    converged = False
    for _ in range(max_iter):
        eta = X @ B
        m = eta.max(axis=1, keepdims=True).clip(min=0)
        ex = np.exp(eta - m)
        denom = np.exp(-m) + ex.sum(axis=1, keepdims=True)
        P = ex / denom
        ll = float(np.sum(w * (np.sum(Y * eta, axis=1) - (m[:, 0] + np.log(denom[:, 0])))))
        g = (X * w[:, None]).T @ (Y - P)  # p x (J-1)
        H = np.zeros((p * (J - 1), p * (J - 1)))
        for a in range(J - 1):
            for b in range(J - 1):
                c = P[:, a] * ((a == b) - P[:, b]) * w
                H[a * p:(a + 1) * p, b * p:(b + 1) * p] = (X * c[:, None]).T @ X
        step = np.linalg.lstsq(H, g.T.reshape(-1), rcond=None)[0]
        B = B + step.reshape(J - 1, p).T
        if abs(ll - ll_old) <= tol * (abs(ll) + 0.1):
            converged = True
            break
        ll_old = ll
    return B, converged


def _fit_columns(model: Model, fam: str, d: Design, use: np.ndarray, wrow: np.ndarray | None, warn=True,
                 start=None, check_rank: bool = True) -> FittedModel:
    """Binomial or poisson GLM by IRLS on the design's columns, over the rows ``use``.

    ``wrow`` are the rows' frequency weights (None: every row counts once).
    The fitted model keeps the design and the mask, not row copies, for the
    lazy statsmodels summary.
    """
    recipe, y, label = d.recipe, d.y, model.label
    if fam == "binomial":
        bad = use & (y != 0.0) & (y != 1.0)
        if bad.any():
            raise DataError([Problem("outcome_not_binary", recipe.response,
                                     f"{label}: binomial response must be 0/1", int(bad.sum()))])
    params, converged, _ = irls_design(d, use, wrow, fam, start=start)
    if start is not None and not converged:
        params, converged, _ = irls_design(d, use, wrow, fam)
    if warn and check_rank:
        _check_rank_weighted(d, use, wrow, recipe.names, label)
    if warn and fam == "binomial":
        from gtools import _colglm as K

        var, kind, param, ptr = d.encoding
        wa = _NO_COLUMNS if wrow is None else wrow
        if K.max_abs_eta(d.columns, var, kind, param, ptr, params, wa, wrow is not None, use) > 25 \
                or not converged:
            warnings.warn(f"{label}: fitted probabilities of 0 or 1 (possible separation"
                          f"{'' if converged else '; IRLS did not converge'}); check sparse cells or "
                          "simplify the model", FitWarning, stacklevel=3)
    if warn and not converged:
        warnings.warn(f"{label}: the fit did not converge", FitWarning, stacklevel=3)
    n_obs = float(np.count_nonzero(use)) if wrow is None else float(wrow[use].sum())
    return FittedModel(spec=model, family=fam, recipe=recipe, params=params, converged=converged,
                       n_obs=n_obs, _design=d, _packed_rows=np.packbits(use), _wrow=wrow)


def _fit_columns_linear(model: Model, fam: str, d: Design, use: np.ndarray, wrow: np.ndarray | None,
                        warn=True) -> FittedModel:
    """Weighted least squares on the design's columns (gaussian, truncated and bounded normal).

    One pass accumulates X'WX and X'Wy, a second the residual sum of squares;
    the residual SD divides by (sum of weights - rank).
    """
    from gtools import _colglm as K

    recipe, y = d.recipe, d.y
    var, kind, param, ptr = d.encoding
    use_w = wrow is not None
    wa = wrow if use_w else _NO_COLUMNS
    p = len(recipe.names)
    bounds = None
    if fam in ("truncated_normal", "bounded_normal"):
        bounds = tuple(model.bounds) if model.bounds is not None else (
            float(np.min(y, where=use, initial=np.inf)), float(np.max(y, where=use, initial=-np.inf)))
    _, A, b = K.accumulate(d.columns, var, kind, param, ptr, y, wa, use_w, use, np.zeros(p), True, K.GAUSSIAN)
    used = use if not use_w else use & (wrow != 0)
    n_used = int(np.count_nonzero(used))
    rank, singular = _rank_of_cross_product(A)
    if warn and (singular or n_used < p):
        _warn_singular(d, used, recipe.names, model.label)
    params = _solve_sym(A, b)
    rss, _, _ = K.accumulate(d.columns, var, kind, param, ptr, y, wa, use_w, use, params, False, K.GAUSSIAN)
    n_obs = float(n_used) if not use_w else float(wrow[used].sum())
    dof = max(n_obs - rank, 1.0)  # rank, not columns: an empty C(time) level costs no df
    return FittedModel(spec=model, family=fam, recipe=recipe, params=params, scale=float(np.sqrt(rss / dof)),
                       bounds=bounds, n_obs=n_obs, _design=d, _packed_rows=np.packbits(use), _wrow=wrow)


def _rank_of_cross_product(G: np.ndarray) -> tuple[int, bool]:
    """(numerical rank, singular?) of a cross-product matrix X'WX, column-scaled as :func:`_rank` and
    :func:`_check_rank` do (an all-zero column, e.g. an empty ``C(time)`` level, makes it singular)."""
    dg = np.sqrt(np.maximum(np.diag(G), 0.0))
    keep = dg > 0
    if not keep.any():
        return 0, True
    Gs = G[np.ix_(keep, keep)] / np.outer(dg[keep], dg[keep])
    singular = bool(np.linalg.eigvalsh(Gs)[0] <= 1e-11) or not keep.all()
    return int(np.linalg.matrix_rank(Gs, hermitian=True)), singular


def _warn_singular(d: Design, used: np.ndarray, names, label, stacklevel: int = 4) -> None:
    """FitWarning for a singular design, naming the columns constant on the rows used."""
    X = d.X
    const = [names[j] for j in range(len(names)) if names[j] != "Intercept" and np.ptp(X[used, j]) == 0]
    hint = f"; constant column(s): {const}" if const else ""
    warnings.warn(f"{label}: singular design (collinear columns{hint}); coefficients are not identified",
                  FitWarning, stacklevel=stacklevel)


def _fit_arrays(model: Model, fam: str, recipe: Recipe, X, y, w, warn=True) -> FittedModel:
    """Fit on the fitted rows' arrays (gaussian-type, multinomial, learners)."""
    label = model.label
    scale = 1.0
    levels: list[float] | None = None
    converged = True
    learner = None
    bounds = None
    if fam in ("truncated_normal", "bounded_normal"):
        bounds = tuple(model.bounds) if model.bounds is not None else (float(y.min()), float(y.max()))
    if warn and fam in ("gaussian", "truncated_normal", "bounded_normal", "binomial", "poisson"):
        _check_rank(X, recipe.names, label)
    if model.learner is not None:
        from sklearn.base import clone

        learner = clone(model.learner)
        try:
            learner.fit(X, y, sample_weight=w)
        except TypeError:
            rep = np.repeat(np.arange(len(y)), np.rint(w).astype(int))
            learner.fit(X[rep], y[rep])
        params = np.zeros(X.shape[1])
        if fam == "multinomial":
            levels = sorted(np.unique(y).tolist())
    elif fam in ("binomial", "poisson"):
        raise AssertionError("binomial and poisson GLMs are fitted by _fit_columns")
    elif fam == "multinomial":
        levels = sorted(np.unique(y).tolist())
        if len(levels) < 2:
            raise DataError([Problem("missing_values", recipe.response,
                                     f"{label}: multinomial response has a single level", 0)])
        yk = np.searchsorted(levels, y)
        params, converged = _multinomial_newton(X, yk, w, len(levels))
    else:
        params = _wls(X, y, w)
        resid = y - X @ params
        dof = max(w.sum() - _rank(X, w), 1.0)  # rank, not columns: an empty C(time) level costs no df
        scale = float(np.sqrt(np.sum(w * resid ** 2) / dof))
    if warn and not converged:
        warnings.warn(f"{label}: the fit did not converge", FitWarning, stacklevel=3)
    return FittedModel(spec=model, family=fam, recipe=recipe, params=params, scale=scale, bounds=bounds,
                       levels=levels, learner=learner, converged=converged, n_obs=float(w.sum()),
                       _Xfit=X, _yfit=y, _w=w)


def _rank(X: np.ndarray, w: np.ndarray) -> int:
    """Numerical rank of the weighted design, from its column-scaled cross-product."""
    if X.shape[1] == 0:
        return 0
    G = X.T @ (X * w[:, None])
    d = np.sqrt(np.diag(G))
    keep = d > 0
    if not keep.any():
        return 0
    return int(np.linalg.matrix_rank(G[np.ix_(keep, keep)] / np.outer(d[keep], d[keep]), hermitian=True))


def _check_rank_weighted(d: Design, rows: np.ndarray, w: np.ndarray | None, names, label):
    """:func:`_check_rank` on the rows in ``rows`` with non-zero weight, from the design's columns (no matrix)."""
    from gtools import _colglm as K

    # the logit step at beta = 0 gives X' diag(w/4) X over those rows
    var, kind, param, ptr = d.encoding
    p = len(names)
    use_w = w is not None
    # (the response enters only the deviance and the working response, not X' W X)
    _, A, _ = K.accumulate(d.columns, var, kind, param, ptr, d.y, w if use_w else _NO_COLUMNS, use_w, rows,
                           np.zeros(p), False, K.BINOMIAL)
    used = rows if w is None else rows & (w != 0)
    if _rank_of_cross_product(A)[1] or int(np.count_nonzero(used)) < p:
        _warn_singular(d, used, names, label, stacklevel=5)


def _check_rank(X, names, label):
    """Warn when the design is singular: smallest eigenvalue of the column-scaled X'X ~ 0."""
    if X.shape[0] == 0:
        return
    G = X.T @ X
    d = np.sqrt(np.maximum(np.diag(G), 1e-300))
    ev = np.linalg.eigvalsh(G / np.outer(d, d))
    if ev[0] <= 1e-11 or X.shape[0] < X.shape[1]:
        const = [names[j] for j in range(X.shape[1]) if np.ptp(X[:, j]) == 0 and names[j] != "Intercept"]
        hint = f"; constant column(s): {const}" if const else ""
        warnings.warn(f"{label}: singular design (collinear columns{hint}); coefficients are not identified",
                      FitWarning, stacklevel=4)


@dataclass
class FittedModel:
    """A fitted model: what simulation and prediction need, no formula re-parsing.

    Attributes
    ----------
    recipe : Recipe
        Column recipe of the design.
    params : numpy.ndarray
        Coefficients (``(p, J-1)`` for multinomial: one column per non-reference level).
    family : str
    scale : float
        Residual standard deviation of a gaussian-type model (1 otherwise).
    bounds : (float, float) or None
    levels : list of float or None
        Response levels of a multinomial model (the first is the reference).
    """

    spec: Model
    family: str
    recipe: Recipe
    params: np.ndarray
    scale: float = 1.0
    bounds: tuple[float, float] | None = None
    levels: list[float] | None = None
    learner: Any = None
    converged: bool = True
    n_obs: float = 0.0
    _Xfit: np.ndarray | None = field(default=None, repr=False)
    _yfit: np.ndarray | None = field(default=None, repr=False)
    _w: np.ndarray | None = field(default=None, repr=False)
    _design: Design | None = field(default=None, repr=False)
    _packed_rows: np.ndarray | None = field(default=None, repr=False)  # np.packbits of the fitted rows
    _wrow: np.ndarray | None = field(default=None, repr=False)
    _sm: Any = field(default=None, repr=False)

    @property
    def _rows(self) -> np.ndarray:
        """Mask of the fitted rows (kept packed, 1 bit per row)."""
        return np.unpackbits(self._packed_rows, count=self._design.n_rows).astype(bool)

    @property
    def _X(self) -> np.ndarray:
        """The fitted rows of the design (taken from the cached design when it was fitted in place)."""
        return self._Xfit if self._Xfit is not None else self._design.X[self._rows]

    @property
    def _y(self) -> np.ndarray:
        return self._yfit if self._yfit is not None else self._design.y[self._rows]

    @property
    def _fit_weights(self) -> np.ndarray:
        """Frequency weights of the fitted rows."""
        if self._w is not None:
            return self._w
        if self._wrow is not None:
            return self._wrow[self._rows]
        return np.ones(int(np.count_nonzero(self._rows)))

    @property
    def names(self) -> list[str]:
        return self.recipe.names

    @property
    def response(self) -> str:
        return self.recipe.response

    @property
    def link(self) -> str:
        return {"binomial": "logit", "poisson": "log", "multinomial": "mlogit"}.get(self.family, "identity")

    @property
    def absorbing(self) -> bool:
        return bool(self.spec.absorbing)

    @property
    def coef(self) -> pd.Series:
        if self.params.ndim == 1:
            return pd.Series(self.params, index=self.names, name=self.response)
        return pd.DataFrame(self.params, index=self.names, columns=[f"{self.response}={v:g}" for v in
                                                                     self.levels[1:]])

    @property
    def estimates(self) -> pd.Series:
        """Coefficients as named scalars (``coef[A]``), so a Model can be bootstrapped directly."""
        if self.learner is not None:
            raise NotImplementedError("a scikit-learn learner has no coefficients to bootstrap")
        if self.params.ndim == 1:
            return pd.Series(self.params, index=[f"coef[{n}]" for n in self.names])
        idx = [f"coef[{n},{self.response}={v:g}]" for v in self.levels[1:] for n in self.names]
        return pd.Series(self.params.T.ravel(), index=idx)

    def design(self, data: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
        """Design matrix for new rows (same recipe and categorical levels)."""
        if isinstance(data, pd.DataFrame):
            cols = {v: data[v].to_numpy(dtype=float) for v in self.recipe.variables}
        else:
            cols = data
        if not self.recipe.variables:
            n = len(data) if isinstance(data, pd.DataFrame) else len(next(iter(data.values())))
            return np.ones((n, 1))
        return self.recipe.matrix(cols)

    def predict_design(self, X: np.ndarray) -> np.ndarray:
        """Mean of the response (probabilities, an (n, J) matrix for multinomial)."""
        if self.learner is not None:
            if self.family in ("binomial",):
                return self.learner.predict_proba(X)[:, 1]
            if self.family == "multinomial":
                return self.learner.predict_proba(X)
            return self.learner.predict(X)
        eta = X @ self.params
        if self.family == "binomial":
            return 1.0 / (1.0 + np.exp(-eta))
        if self.family == "poisson":
            return np.exp(eta)
        if self.family == "multinomial":
            full = np.column_stack([np.zeros(len(X)), eta])
            full -= full.max(axis=1, keepdims=True)
            e = np.exp(full)
            return e / e.sum(axis=1, keepdims=True)
        return eta

    def predict(self, data) -> np.ndarray:
        """Predicted mean for a DataFrame, a PersonTime or a mapping of columns."""
        if hasattr(data, "data") and hasattr(data, "treatment"):
            return self.predict_table(data)
        return self.predict_design(self.design(data))

    def predict_table(self, pt) -> np.ndarray:
        """Predicted mean for every row of a PersonTime.

        For a GLM this runs from the table's columns without building the
        design matrix (one float64 vector is allocated: the result), through
        the design of the model's formula over ``pt`` cached on the table.
        """
        if self.learner is not None or self.params.ndim != 1:
            return self.predict_design(self.design(pt.data))
        from gtools import _colglm as K

        rec = self.recipe  # the fitted recipe (its levels and knots), over this table's columns
        missing = [v for v in rec.variables if v not in pt.data.columns]
        if missing:
            raise DataError([Problem("missing_column", ", ".join(missing), f"{self.spec.label}: the table has no "
                                     f"column(s) {missing}; available: {list(pt.data.columns)}", 0)])
        cols, var, _ = table_columns(pt, rec)
        fam = {"binomial": K.BINOMIAL, "poisson": K.POISSON}.get(self.family, K.GAUSSIAN)
        out = np.empty(pt.n_rows)
        K.predict(cols, var, np.asarray(rec.fac_kind, dtype=np.int64),
                  rec.packed_param(), np.asarray(rec.term_ptr, dtype=np.int64),
                  np.ascontiguousarray(self.params, dtype=float), fam, out)
        return out

    # -- inference through statsmodels (lazy) -------------------------------
    def _statsmodels(self):
        if self._sm is None:
            import statsmodels.api as sm

            if self.family == "multinomial":
                if not np.allclose(self._fit_weights, 1.0):
                    raise NotImplementedError("standard errors of a weighted multinomial model: use gt.bootstrap")
                yk = np.searchsorted(self.levels, self._y)
                self._sm = sm.MNLogit(yk, pd.DataFrame(self._X, columns=self.names)).fit(disp=0)
            else:
                fam = {"binomial": sm.families.Binomial(), "poisson": sm.families.Poisson()}.get(
                    self.family, sm.families.Gaussian())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._sm = sm.GLM(self._y, pd.DataFrame(self._X, columns=self.names), family=fam,
                                      freq_weights=self._fit_weights).fit()
        return self._sm

    def summary(self) -> pd.DataFrame:
        """Coefficient table (estimate, SE, z, p, 95% CI) from statsmodels on the same design."""
        if self.learner is not None:
            raise NotImplementedError("a scikit-learn learner has no coefficient table")
        res = self._statsmodels()
        ci = np.asarray(res.conf_int())
        tab = pd.DataFrame({"coef": np.asarray(res.params).ravel(), "se": np.asarray(res.bse).ravel(),
                            "z": np.asarray(res.tvalues).ravel(), "p": np.asarray(res.pvalues).ravel()})
        if self.family != "multinomial":
            tab.index = self.names
            tab["ci_lower"], tab["ci_upper"] = ci[:, 0], ci[:, 1]
        return tab

    def cov(self) -> np.ndarray:
        """Model-based covariance of the coefficients (statsmodels)."""
        return np.asarray(self._statsmodels().cov_params())

    def __repr__(self) -> str:
        return f"<FittedModel {self.spec.formula!r} ({self.family}), {self.n_obs:g} obs>"


def check_positivity(p: np.ndarray, times: np.ndarray, label: str, bounds: tuple[float, float] = (0.01, 0.99),
                     warn: bool = True) -> dict[str, Any]:
    """Count predicted treatment probabilities outside ``bounds`` and warn, naming the times.

    Returns a dict with ``n_low``, ``n_high`` and ``times`` (the intervals
    where they occur).
    """
    p = np.asarray(p, dtype=float)
    low, high = p < bounds[0], p > bounds[1]
    out = {"n_low": int(low.sum()), "n_high": int(high.sum()),
           "times": sorted(set(np.asarray(times)[low | high].tolist()))}
    if warn and (out["n_low"] or out["n_high"]):
        ts = out["times"]
        shown = ", ".join(str(_py(t)) for t in ts[:10]) + (" ..." if len(ts) > 10 else "")
        warnings.warn(
            f"positivity: {label} predicts probabilities below {bounds[0]} for {out['n_low']} row(s) and above "
            f"{bounds[1]} for {out['n_high']} row(s), at times {shown}; estimates there rest on model "
            "extrapolation — consider truncation, a simpler regime, or restricting the population",
            FitWarning, stacklevel=3)
    return out
