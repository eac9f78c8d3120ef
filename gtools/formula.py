"""R-style model formulas compiled to a recipe over named columns.

A formula such as ``"A ~ L1 + L2 + lag1_A + C(time) + L1:A + I(L2**2)"`` is
parsed once into a :class:`Recipe`: for each design column, a product of
factors, where a factor is either a power of a variable (``x``, ``x**2``) or
the indicator that a variable equals one level (``C(time)`` level 3). The
same recipe builds the design matrix of an observed panel (numpy, here) and
the linear predictor inside the g-formula's simulation (numba, in
:mod:`gtools.gformula`), so both see exactly the same model.

Supported syntax: ``+`` between terms, ``:`` interactions, ``*`` (main effects
and interactions), ``C(x)`` categorical (first level is the reference),
``I(x**k)`` powers (also ``I(x^k)``), ``ns(x, df=k)`` natural cubic splines
(see :func:`ns_basis`), ``-1``/``0`` to drop the intercept.

Natural cubic splines
---------------------
``ns(x, df=k)`` (or ``ns(x, k)``) places the boundary knots at the observed
minimum and maximum of ``x`` and ``k - 1`` interior knots at the quantiles
``1/k, ..., (k-1)/k`` of the observed ``x`` (numpy's default, R's type 7),
which is the convention of R's ``splines::ns``. ``ns(x, knots=[a, b])``
gives the interior knots; ``lower=`` / ``upper=`` (or ``boundary=[lo, hi]``,
R's ``Boundary.knots=c(lo, hi)``) move the boundary knots. The knots are
computed once, from the data the recipe is built on, and stored in the
recipe: new data, predictions and the g-formula's simulation all use the
same basis, and beyond the boundary knots the fitted function is linear.
:class:`gtools.Model` builds the recipe over every row of the
:class:`~gtools.PersonTime` with an observed ``x`` (unweighted), before any
``rows=`` selection, so R gives the same knots when it is fitted on the same
rows; bootstrap replicates (frequency weights on the same table) reuse these
knots, i.e. knot placement is treated as fixed, not re-estimated.

The basis is the restricted cubic spline (truncated power) basis of
Durrleman and Simon (1989) with those knots, which spans exactly the natural
cubic spline space of R's ``ns`` (also without an intercept and inside
interactions: every basis function vanishes at the lower boundary knot, as
R's do). Fitted values and predictions therefore equal R's; the
coefficients do not, because R uses a B-spline parameterisation.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gtools.errors import DataError, FitWarning, Problem

__all__ = ["Recipe", "parse_formula", "build_recipe", "ns_basis", "ns_knots"]

POWER, INDICATOR, SPLINE = 0, 1, 2

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_RE_C = re.compile(rf"^C\(\s*({_NAME})\s*\)$")
_RE_I = re.compile(rf"^I\(\s*({_NAME})\s*(?:\*\*|\^)\s*([0-9]+)\s*\)$")
_RE_NAME = re.compile(rf"^{_NAME}$")
_RE_NS = re.compile(rf"^ns\(\s*({_NAME})\s*(?:,(.*))?\)$", re.S)


@dataclass(frozen=True)
class _Spline:
    """Arguments of ``ns()``: ``df`` or interior ``knots``, optional boundary knots."""

    df: int | None = None
    knots: tuple[float, ...] | None = None
    lower: float | None = None
    upper: float | None = None

    def label(self, var: str) -> str:
        parts = [var]
        if self.knots is not None:
            parts.append("knots=[" + ", ".join(repr(float(k)) for k in self.knots) + "]")
        else:
            parts.append(f"df={self.df}")
        if self.lower is not None:
            parts.append(f"lower={float(self.lower)!r}")
        if self.upper is not None:
            parts.append(f"upper={float(self.upper)!r}")
        return "ns(" + ", ".join(parts) + ")"


@dataclass(frozen=True)
class _Factor:
    var: str
    kind: str  # "num", "pow", "cat", "ns"
    power: int = 1
    spline: _Spline | None = None

    def label(self) -> str:
        if self.kind == "cat":
            return f"C({self.var})"
        if self.kind == "pow":
            return f"I({self.var} ** {self.power})"
        if self.kind == "ns":
            return self.spline.label(self.var)
        return self.var


def _split_top(s: str, sep: str) -> list[str]:
    """Split on a separator character outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _split_args(s: str) -> list[str]:
    """Split call arguments on commas outside (), [] and {}."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [a.strip() for a in out]


def _number(text: str, what: str, tok: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{tok}: {what} must be a number, got {text!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{tok}: {what} must be finite, got {text!r}")
    return v


def _numbers(text: str, what: str, tok: str) -> tuple[float, ...]:
    t = text.strip()
    m = re.match(r"^(?:c\((.*)\)|\[(.*)\]|\((.*)\))$", t, re.S)
    inner = next((g for g in m.groups() if g is not None), None) if m else t
    items = [a for a in _split_args(inner)] if inner.strip() else []
    return tuple(_number(a, what, tok) for a in items)


def _parse_ns(var: str, args: str | None, tok: str) -> _Factor:
    """``ns(x, df=k)``, ``ns(x, k)``, ``ns(x, knots=[...])``, with ``lower=``/``upper=``/``boundary=``."""
    kw: dict[str, str] = {}
    positional: list[str] = []
    for a in _split_args(args) if args is not None and args.strip() else []:
        if not a:
            raise ValueError(f"cannot read {tok!r}: empty argument")
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*)\s*=(.*)$", a, re.S)
        if m:
            key = m.group(1)
            if key in kw:
                raise ValueError(f"{tok}: argument {key!r} given twice")
            kw[key] = m.group(2).strip()
        elif kw:
            raise ValueError(f"{tok}: positional argument {a!r} after keyword arguments")
        else:
            positional.append(a)
    if len(positional) > 1:
        raise ValueError(f"{tok}: ns() takes the column and df positionally; name the others "
                         "(knots=[...], lower=, upper=)")
    if positional:
        if "df" in kw:
            raise ValueError(f"{tok}: df given twice")
        kw["df"] = positional[0]
    allowed = {"df", "knots", "lower", "upper", "boundary", "boundary_knots", "Boundary.knots"}
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ValueError(f"{tok}: unknown argument(s) {unknown}; ns() takes df=, knots=[...], lower=, upper=")
    df = knots = lower = upper = None
    if "df" in kw:
        d = _number(kw["df"], "df", tok)
        if d != int(d):
            raise ValueError(f"{tok}: df must be a whole number, got {kw['df']!r}")
        df = int(d)
        if df < 1:
            raise ValueError(f"{tok}: df must be at least 1 (df=1 is a straight line), got {df}")
    if "knots" in kw:
        knots = _numbers(kw["knots"], "knots", tok)
        if any(b <= a for a, b in zip(knots, knots[1:])):
            raise ValueError(f"{tok}: knots must be strictly increasing, got {list(knots)}")
        if df is not None and df != len(knots) + 1:
            raise ValueError(f"{tok}: df={df} disagrees with {len(knots)} interior knot(s) "
                             f"(df = number of interior knots + 1); give one of them")
        df = len(knots) + 1
    if df is None:
        raise ValueError(f"{tok}: give the degrees of freedom (ns(x, df=3)) or the interior knots "
                         "(ns(x, knots=[a, b]))")
    bkeys = [k for k in ("boundary", "boundary_knots", "Boundary.knots") if k in kw]
    if len(bkeys) > 1 or (bkeys and ("lower" in kw or "upper" in kw)):
        raise ValueError(f"{tok}: give the boundary knots once (boundary=[lo, hi] or lower=/upper=)")
    if bkeys:
        b = _numbers(kw[bkeys[0]], "boundary knots", tok)
        if len(b) != 2:
            raise ValueError(f"{tok}: boundary knots must be two numbers [lower, upper], got {list(b)}")
        lower, upper = b
    if "lower" in kw:
        lower = _number(kw["lower"], "lower", tok)
    if "upper" in kw:
        upper = _number(kw["upper"], "upper", tok)
    if lower is not None and upper is not None and not lower < upper:
        raise ValueError(f"{tok}: the lower boundary knot {lower:g} must be below the upper {upper:g}")
    for k in knots or ():
        if (lower is not None and k <= lower) or (upper is not None and k >= upper):
            raise ValueError(f"{tok}: interior knot {k:g} is not strictly between the boundary knots")
    return _Factor(var, "ns", 1, _Spline(df, knots, lower, upper))


def _parse_factor(tok: str, formula: str) -> _Factor:
    tok = tok.strip()
    m = _RE_NS.match(tok)
    if m:
        return _parse_ns(m.group(1), m.group(2), tok)
    m = _RE_C.match(tok)
    if m:
        return _Factor(m.group(1), "cat")
    m = _RE_I.match(tok)
    if m:
        p = int(m.group(2))
        return _Factor(m.group(1), "pow" if p != 1 else "num", p)
    if _RE_NAME.match(tok):
        return _Factor(tok, "num")
    raise ValueError(
        f"cannot read term {tok!r} in formula {formula!r}: gtools formulas take column names, "
        "C(col), I(col**k), ns(col, df=k), ':' and '*' interactions"
    )


def parse_formula(formula: str) -> tuple[str | None, bool, list[tuple[_Factor, ...]]]:
    """Parse ``"y ~ a + b:c"`` into (response, intercept, terms)."""
    if "~" in formula:
        lhs, rhs = formula.split("~", 1)
        lhs = lhs.strip() or None
    else:
        lhs, rhs = None, formula
    intercept = True
    terms: list[tuple[_Factor, ...]] = []
    # handle '-' by turning "a - 1" into tokens with signs (outside parentheses only, so
    # negative numbers inside ns(x, knots=[-1, 2]) stay numbers)
    rhs = _minus_to_plus(rhs)
    for raw in _split_top(rhs, "+"):
        tok = raw.strip()
        if not tok:
            continue
        if tok.startswith("-"):
            if tok[1:].strip() in ("1", "0"):
                intercept = False
                continue
            raise ValueError(f"only '- 1' can be subtracted in formula {formula!r}")
        if tok in ("0",):
            intercept = False
            continue
        if tok == "1":
            continue
        if "*" in tok.replace("**", ""):
            parts = [p for p in re.split(r"(?<!\*)\*(?!\*)", tok)]
            factors = [_parse_factor(p, formula) for p in parts]
            for r in range(1, len(factors) + 1):
                for combo in itertools.combinations(factors, r):
                    terms.append(tuple(combo))
            continue
        terms.append(tuple(_parse_factor(p, formula) for p in _split_top(tok, ":")))
    # drop duplicate terms, keep order
    seen, uniq = set(), []
    for t in terms:
        key = tuple(sorted((f.var, f.kind, f.power, repr(f.spline)) for f in t))
        if key not in seen:
            seen.add(key)
            uniq.append(t)
    return lhs, intercept, uniq


def _minus_to_plus(s: str) -> str:
    out, depth = [], 0
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        out.append("+-" if ch == "-" and depth == 0 else ch)
    return "".join(out)


# -- natural cubic splines ---------------------------------------------------------------------


def ns_knots(x: np.ndarray, df: int | None = None, knots=None, lower: float | None = None,
             upper: float | None = None, name: str = "x") -> np.ndarray:
    """All knots (boundary and interior, increasing) of ``ns(x, ...)``, R's ``splines::ns`` rule.

    Boundary knots are ``lower``/``upper`` when given, else the observed
    minimum and maximum of ``x`` (missing values ignored); without
    ``knots``, the ``df - 1`` interior knots are the quantiles
    ``1/df, ..., (df-1)/df`` of the observed ``x`` inside the boundary knots.

    Raises
    ------
    DataError
        When ``x`` has no observed values, or too few distinct values for
        distinct knots.
    ValueError
        When an interior knot is not strictly between the boundary knots.
    """
    if df is None and knots is None:
        raise ValueError("ns_knots: give df or knots")
    spec = _Spline(df, None if knots is None else tuple(float(k) for k in knots), lower, upper)
    if spec.df is None:
        spec = _Spline(len(spec.knots) + 1, spec.knots, lower, upper)
    return _spline_knots(np.asarray(x, dtype=float), spec, name, spec.label(name))


def _spline_knots(x: np.ndarray, spec: _Spline, var: str, label: str) -> np.ndarray:
    obs = x[~np.isnan(x)]
    if obs.size == 0:
        raise DataError([Problem("missing_values", var, f"{label}: column {var!r} has no observed values "
                                 "to place the spline knots", len(x))])
    xmin, xmax = float(obs.min()), float(obs.max())
    lo = xmin if spec.lower is None else float(spec.lower)
    hi = xmax if spec.upper is None else float(spec.upper)
    if not lo < hi:
        raise DataError([Problem("constant_column", var, f"{label}: column {var!r} is constant ({lo:g}); "
                                 "a spline needs a range of values (or give lower= and upper=)", len(obs))])
    if spec.knots is not None:
        inner = np.asarray(spec.knots, dtype=float)
        if ((inner <= lo) | (inner >= hi)).any():
            raise ValueError(f"{label}: interior knots must lie strictly between the boundary knots "
                             f"[{lo:g}, {hi:g}] (the observed range of {var!r} unless lower=/upper= are given); "
                             f"got {inner.tolist()}")
    else:
        inside = obs[(obs >= lo) & (obs <= hi)]
        probs = np.linspace(0.0, 1.0, spec.df + 1)[1:-1]
        inner = np.quantile(inside, probs) if probs.size else np.zeros(0)
    t = np.concatenate([[lo], inner, [hi]])
    if np.any(np.diff(t) <= 0):
        raise DataError([Problem("spline_knots", var, f"{label}: the quantile knots {t.tolist()} are not "
                                 f"distinct ({var!r} has {np.unique(obs).size} distinct values); use a "
                                 "smaller df or give knots=[...]", len(obs))])
    outside = [float(k) for k in t if k < xmin or k > xmax]
    if outside:
        warnings.warn(f"{label}: knot(s) {outside} lie outside the observed range [{xmin:g}, {xmax:g}] of "
                      f"{var!r}; the basis functions there are not supported by data and their coefficients "
                      "are poorly determined. Move the knots inside the data range.", FitWarning, stacklevel=4)
    return t


def _ns_column(x: np.ndarray, t: np.ndarray, j: int) -> np.ndarray:
    """Basis function ``j`` (0 = linear) of the restricted cubic spline with knots ``t``.

    The operations mirror ``gtools.gformula.engine._ns_value`` one for one,
    so observed designs and the simulation agree to rounding.
    """
    K = len(t)
    t0 = t[0]
    s = t[K - 1] - t0
    u = (x - t0) / s
    if j == 0:
        return u
    kj = (t[j - 1] - t0) / s
    kp = (t[K - 2] - t0) / s
    kl = (t[K - 1] - t0) / s
    a = np.maximum(u - kj, 0.0)
    b = np.maximum(u - kp, 0.0)
    c = np.maximum(u - kl, 0.0)
    return a * a * a - b * b * b * ((kl - kj) / (kl - kp)) + c * c * c * ((kp - kj) / (kl - kp))


def ns_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Natural cubic spline basis at ``x`` for the increasing knots ``knots`` (boundary knots first and last).

    Returns the ``(n, K - 1)`` restricted cubic spline basis (Durrleman and
    Simon 1989; Harrell, *Regression Modeling Strategies*, 2.4.5), with
    :math:`u = (x - t_1)/(t_K - t_1)` and :math:`\\kappa_i = (t_i - t_1)/(t_K - t_1)`:

    .. math::
        N_1 = u, \\quad N_{j+1} = (u-\\kappa_j)_+^3
        - (u-\\kappa_{K-1})_+^3 \\frac{\\kappa_K-\\kappa_j}{\\kappa_K-\\kappa_{K-1}}
        + (u-\\kappa_K)_+^3 \\frac{\\kappa_{K-1}-\\kappa_j}{\\kappa_K-\\kappa_{K-1}},
        \\quad j = 1, \\dots, K-2.

    With a constant these span the natural cubic splines with knots
    ``knots`` (cubic between knots, linear beyond the boundary knots), the
    space of R's ``splines::ns(x, knots=knots[1:-1], Boundary.knots=knots[[0, -1]])``;
    every column is 0 at the lower boundary knot, as R's are.
    """
    t = np.asarray(knots, dtype=float)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("knots must be at least two strictly increasing numbers")
    x = np.asarray(x, dtype=float)
    return np.column_stack([_ns_column(x, t, j) for j in range(t.size - 1)])


@dataclass
class Recipe:
    """A compiled design: each column is a product of factors over ``variables``.

    Column j is :math:`\\prod_{f \\in F_j} g_f(x_{v_f})` with
    :math:`g_f(x) = x^{p_f}` (power factor), :math:`1\\{x = \\ell_f\\}`
    (indicator factor) or a natural cubic spline basis function of ``x``
    (spline factor, see :func:`ns_basis`); the intercept is the empty product.

    Attributes
    ----------
    variables : list of str
        The columns the recipe reads, in a fixed order.
    names : list of str
        Design column names.
    term_ptr : int array (n_columns + 1)
        Factors of column j are ``term_ptr[j]:term_ptr[j+1]``.
    fac_var, fac_kind : int arrays
        Variable index and kind (0 power, 1 indicator, 2 spline) of each factor.
    fac_param : float array
        The power, the level, or (spline) the offset ``o`` of the factor's
        block in ``knots``.
    levels : dict
        Levels seen for each categorical variable.
    knots : float array
        Spline blocks, one per spline design column:
        ``knots[o] = j`` (basis function, 0 = linear), ``knots[o+1] = K``
        (number of knots), ``knots[o+2 : o+2+K]`` the knots.
    spline_knots : dict
        Knots of each spline term, by its label (e.g. ``"ns(time, df=3)"``).
    """

    variables: list[str]
    names: list[str]
    term_ptr: np.ndarray
    fac_var: np.ndarray
    fac_kind: np.ndarray
    fac_param: np.ndarray
    levels: dict[str, list[float]]
    response: str | None = None
    knots: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spline_knots: dict[str, list[float]] = field(default_factory=dict)

    @property
    def n_columns(self) -> int:
        return len(self.names)

    def packed_param(self) -> np.ndarray:
        """``fac_param`` followed by ``knots``, spline offsets shifted to index into the result.

        This is the one parameter array the g-formula's numba kernels read:
        for a spline factor ``f``, ``packed[f]`` points at its block
        ``[j, K, t_1..t_K]`` inside the same array.
        """
        par = np.array(self.fac_param, dtype=float)
        spl = np.asarray(self.fac_kind) == SPLINE
        par[spl] += len(par)
        return np.concatenate([par, np.asarray(self.knots, dtype=float)])

    def matrix(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Design matrix from columns (arrays of equal length)."""
        n = len(np.asarray(cols[self.variables[0]])) if self.variables else len(next(iter(cols.values())))
        V = {v: np.asarray(cols[v], dtype=float) for v in self.variables}
        X = np.empty((n, self.n_columns))
        for j in range(self.n_columns):
            X[:, j] = self.column(V, j, n)
        return X

    def column(self, cols: Mapping[str, np.ndarray], j: int, n: int | None = None) -> np.ndarray:
        """Design column ``j`` from columns (one vector: for diagnostics that go column by column)."""
        if n is None:
            n = len(np.asarray(cols[self.variables[0]])) if self.variables else len(next(iter(cols.values())))
        col = np.ones(n)
        for f in range(self.term_ptr[j], self.term_ptr[j + 1]):
            x = np.asarray(cols[self.variables[self.fac_var[f]]], dtype=float)
            if self.fac_kind[f] == POWER:
                p = self.fac_param[f]
                col = col * (x if p == 1 else x ** p)
            elif self.fac_kind[f] == SPLINE:
                o = int(self.fac_param[f])
                K = int(self.knots[o + 1])
                col = col * _ns_column(x, self.knots[o + 2:o + 2 + K], int(self.knots[o]))
            else:
                col = col * (x == self.fac_param[f])
        return col

    def remap(self, positions: Mapping[str, int]) -> np.ndarray:
        """Factor variable indices remapped to positions in another column layout."""
        return np.array([positions[self.variables[v]] for v in self.fac_var], dtype=np.int64)


def build_recipe(formula: str, cols: Mapping[str, np.ndarray], available: list[str] | None = None) -> Recipe:
    """Compile a formula against data columns.

    Levels of ``C()`` and the knots of ``ns()`` are read from the data (the
    non-missing values of each column) and stored in the recipe.

    Raises
    ------
    DataError
        When the formula names a column that does not exist (lists the
        available columns).
    """
    lhs, intercept, terms = parse_formula(formula)
    avail = list(cols.keys()) if available is None else available
    wanted = ([lhs] if lhs else []) + [f.var for t in terms for f in t]
    unknown = sorted({v for v in wanted if v not in cols})
    if unknown:
        raise DataError([Problem("missing_column", ", ".join(unknown),
                                 f"formula {formula!r} names column(s) {unknown} that are not in the data; "
                                 f"available: {avail}", 0)])
    variables: list[str] = []
    for t in terms:
        for f in t:
            if f.var not in variables:
                variables.append(f.var)
    levels: dict[str, list[float]] = {}
    for t in terms:
        for f in t:
            if f.kind == "cat" and f.var not in levels:
                v = np.asarray(cols[f.var], dtype=float)
                levels[f.var] = sorted(np.unique(v[~np.isnan(v)]).tolist())
    spline_knots: dict[str, list[float]] = {}
    for t in terms:
        for f in t:
            if f.kind == "ns":
                lab = f.label()
                if lab not in spline_knots:
                    kn = _spline_knots(np.asarray(cols[f.var], dtype=float), f.spline, f.var, lab)
                    spline_knots[lab] = kn.tolist()
    knot_blocks: list[float] = []
    block_at: dict[tuple[str, int], int] = {}

    def block(lab: str, j: int) -> float:
        if (lab, j) not in block_at:
            kn = spline_knots[lab]
            block_at[(lab, j)] = len(knot_blocks)
            knot_blocks.extend([float(j), float(len(kn))] + kn)
        return float(block_at[(lab, j)])

    names: list[str] = []
    ptr, fvar, fkind, fpar = [0], [], [], []

    def push(name: str, factors: list[tuple[int, int, float]]):
        names.append(name)
        for v, k, p in factors:
            fvar.append(v)
            fkind.append(k)
            fpar.append(p)
        ptr.append(len(fvar))

    if intercept:
        push("Intercept", [])
    full_rank_used = intercept
    for t in terms:
        options: list[list[tuple[str, tuple[int, int, float] | None]]] = []
        for f in t:
            vi = variables.index(f.var)
            if f.kind == "cat":
                lv = levels[f.var]
                keep = lv if (not full_rank_used and len(t) == 1) else lv[1:]
                options.append([(f"C({f.var})[T.{_lvl(v)}]", (vi, INDICATOR, float(v))) for v in keep])
            elif f.kind == "pow":
                options.append([(f"I({f.var} ** {f.power})", (vi, POWER, float(f.power)))])
            elif f.kind == "ns":
                lab = f.label()
                options.append([(f"{lab}[{j + 1}]", (vi, SPLINE, block(lab, j)))
                                for j in range(len(spline_knots[lab]) - 1)])
            else:
                options.append([(f.var, (vi, POWER, 1.0))])
        for combo in itertools.product(*options):
            push(":".join(c[0] for c in combo), [c[1] for c in combo])
        if len(t) == 1 and t[0].kind == "cat":
            full_rank_used = True
    return Recipe(
        variables=variables,
        names=names,
        term_ptr=np.array(ptr, dtype=np.int64),
        fac_var=np.array(fvar, dtype=np.int64),
        fac_kind=np.array(fkind, dtype=np.int64),
        fac_param=np.array(fpar, dtype=float),
        levels=levels,
        response=lhs,
        knots=np.array(knot_blocks, dtype=float),
        spline_knots=spline_knots,
    )


def _lvl(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
