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
``I(x**k)`` powers (also ``I(x^k)``), ``-1``/``0`` to drop the intercept.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gtools.errors import DataError, Problem

__all__ = ["Recipe", "parse_formula", "build_recipe"]

POWER, INDICATOR = 0, 1

_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_RE_C = re.compile(rf"^C\(\s*({_NAME})\s*\)$")
_RE_I = re.compile(rf"^I\(\s*({_NAME})\s*(?:\*\*|\^)\s*([0-9]+)\s*\)$")
_RE_NAME = re.compile(rf"^{_NAME}$")


@dataclass(frozen=True)
class _Factor:
    var: str
    kind: str  # "num", "pow", "cat"
    power: int = 1

    def label(self) -> str:
        if self.kind == "cat":
            return f"C({self.var})"
        if self.kind == "pow":
            return f"I({self.var} ** {self.power})"
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


def _parse_factor(tok: str, formula: str) -> _Factor:
    tok = tok.strip()
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
        "C(col), I(col**k), ':' and '*' interactions"
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
    # handle '-' by turning "a - 1" into tokens with signs
    rhs = rhs.replace("-", "+-")
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
        key = tuple(sorted((f.var, f.kind, f.power) for f in t))
        if key not in seen:
            seen.add(key)
            uniq.append(t)
    return lhs, intercept, uniq


@dataclass
class Recipe:
    """A compiled design: each column is a product of factors over ``variables``.

    Column j is :math:`\\prod_{f \\in F_j} g_f(x_{v_f})` with
    :math:`g_f(x) = x^{p_f}` (power factor) or :math:`1\\{x = \\ell_f\\}`
    (indicator factor); the intercept is the empty product.

    Attributes
    ----------
    variables : list of str
        The columns the recipe reads, in a fixed order.
    names : list of str
        Design column names.
    term_ptr : int array (n_columns + 1)
        Factors of column j are ``term_ptr[j]:term_ptr[j+1]``.
    fac_var, fac_kind : int arrays
        Variable index and kind (0 power, 1 indicator) of each factor.
    fac_param : float array
        The power, or the level.
    levels : dict
        Levels seen for each categorical variable.
    """

    variables: list[str]
    names: list[str]
    term_ptr: np.ndarray
    fac_var: np.ndarray
    fac_kind: np.ndarray
    fac_param: np.ndarray
    levels: dict[str, list[float]]
    response: str | None = None

    @property
    def n_columns(self) -> int:
        return len(self.names)

    def matrix(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Design matrix from columns (arrays of equal length)."""
        n = len(np.asarray(cols[self.variables[0]])) if self.variables else len(next(iter(cols.values())))
        V = [np.asarray(cols[v], dtype=float) for v in self.variables]
        X = np.empty((n, self.n_columns))
        for j in range(self.n_columns):
            col = np.ones(n)
            for f in range(self.term_ptr[j], self.term_ptr[j + 1]):
                x = V[self.fac_var[f]]
                if self.fac_kind[f] == POWER:
                    p = self.fac_param[f]
                    col = col * (x if p == 1 else x ** p)
                else:
                    col = col * (x == self.fac_param[f])
            X[:, j] = col
        return X

    def remap(self, positions: Mapping[str, int]) -> np.ndarray:
        """Factor variable indices remapped to positions in another column layout."""
        return np.array([positions[self.variables[v]] for v in self.fac_var], dtype=np.int64)


def build_recipe(formula: str, cols: Mapping[str, np.ndarray], available: list[str] | None = None) -> Recipe:
    """Compile a formula against data columns (levels of ``C()`` are read from the data).

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
    )


def _lvl(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
