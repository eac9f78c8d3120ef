"""Monte Carlo engine of the parametric g-formula.

The simulation holds, for a block of simulated persons, only

* ``M``: the current time slice, a ``(n_columns, n)`` float array with one
  row for every column any model or regime reads (baseline covariates, time,
  time-varying covariates, treatment, history features), so each column is
  contiguous in memory; and
* the history state of every :mod:`gtools.history` feature, advanced with
  the features' own ``value`` / ``update`` step rules (the same definitions
  that built the observed history columns).

Each fitted GLM is compiled once to its :class:`~gtools.formula.Recipe`
remapped onto the rows of ``M`` (factor variable, kind, parameter, term
pointers) plus coefficients, family and scale. :func:`_draw_kernel` (numba,
``cache=True, nogil=True``) builds the linear predictor from that recipe and
draws the covariate in one pass; :func:`_mean_kernel` gives predicted means
(hazards). The pure-numpy reference path computes the same quantities with
:meth:`gtools.FittedModel.design` and the same inverse-CDF draws, so both
paths consume the same random numbers and agree to rounding.

Random numbers are drawn in bulk per interval from a generator that is
re-created from the same seed for every regime: all regimes see the same
uniforms and normals (common random numbers). Persons are simulated in
blocks of :data:`BLOCK` so memory does not grow with the number of
simulated persons or intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from gtools.regimes import State

BLOCK = 1 << 16

# family codes shared by both paths
BINOMIAL, GAUSSIAN, TRUNCATED, BOUNDED, POISSON, MULTINOMIAL = 0, 1, 2, 3, 4, 5
FAMILY_CODE = {"binomial": BINOMIAL, "gaussian": GAUSSIAN, "truncated_normal": TRUNCATED,
               "bounded_normal": BOUNDED, "poisson": POISSON, "multinomial": MULTINOMIAL}
_POISSON_NORMAL_ABOVE = 200.0  # beyond this mean the inverse CDF uses the normal approximation


# -- scalar helpers (numba) ------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _ndtr(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@numba.njit(cache=True, nogil=True)
def _ndtri(p):
    """Standard normal quantile: Acklam's rational approximation plus one Halley step."""
    if p <= 0.0:
        return -np.inf
    if p >= 1.0:
        return np.inf
    a0, a1, a2 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a3, a4, a5 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b0, b1, b2 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b3, b4 = 6.680131188771972e01, -1.328068155288572e01
    c0, c1, c2 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c3, c4, c5 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d0, d1, d2, d3 = 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    elif p <= 1.0 - plow:
        q = p - 0.5
        r = q * q
        x = (((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q / (
            ((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1.0)
    else:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1.0)
    e = _ndtr(x) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


@numba.njit(cache=True, nogil=True)
def _truncnorm(mu, sd, lo, hi, u):
    """Inverse-CDF draw from N(mu, sd^2) truncated to [lo, hi]; mirrored so the tails keep precision."""
    a = (lo - mu) / sd
    b = (hi - mu) / sd
    if a > 0.0:  # whole interval in the upper tail: draw in the lower tail and mirror
        pa = _ndtr(-b)
        pb = _ndtr(-a)
        x = -_ndtri(pa + u * (pb - pa))
    else:
        pa = _ndtr(a)
        pb = _ndtr(b)
        x = _ndtri(pa + u * (pb - pa))
    v = mu + sd * x
    if v < lo:
        v = lo
    elif v > hi:
        v = hi
    return v


@numba.njit(cache=True, nogil=True)
def _poisson_inv(mu, u):
    if mu > _POISSON_NORMAL_ABOVE:
        return max(0.0, math.floor(mu + math.sqrt(mu) * _ndtri(u) + 0.5))
    k = 0.0
    p = math.exp(-mu)
    c = p
    while u > c and k < 10000.0:
        k += 1.0
        p = p * mu / k
        c += p
    return k


@numba.njit(cache=True, nogil=True)
def _ns_value(v, param, o):
    """Natural cubic spline basis function at ``v`` from the block ``param[o:]`` = ``[j, K, t_1..t_K]``.

    Same operations as :func:`gtools.formula._ns_column` (restricted cubic spline basis).
    """
    j = int(param[o])
    K = int(param[o + 1])
    t0 = param[o + 2]
    s = param[o + 1 + K] - t0
    u = (v - t0) / s
    if j == 0 or u != u:  # the linear function, or a missing value (stays missing)
        return u
    kj = (param[o + 1 + j] - t0) / s
    kp = (param[o + K] - t0) / s
    kl = (param[o + 1 + K] - t0) / s
    a = u - kj if u > kj else 0.0
    b = u - kp if u > kp else 0.0
    c = u - kl if u > kl else 0.0
    return a * a * a - b * b * b * ((kl - kj) / (kl - kp)) + c * c * c * ((kp - kj) / (kl - kp))


# -- kernels -----------------------------------------------------------------------------------


CHUNK = 512  # persons per strip of the kernels: the linear predictors of a strip stay in L1 cache


@numba.njit(cache=True, nogil=True)
def _linpred_chunk(M, var, kind, param, ptr, beta, i0, m, eta):
    """Linear predictors ``eta[k, r]`` of persons ``i0 + r`` (``r < m``), term by term.

    The loop runs over terms outside and persons inside, so each inner loop
    streams a contiguous stretch of a row of ``M`` into a strip that stays in
    cache (main effects and the intercept, the common case, take the fast
    branches). Each person's sum is accumulated in term order, as
    :meth:`gtools.FittedModel.design` @ params does.
    """
    J = beta.shape[1]
    for k in range(J):
        ek = eta[k]
        for r in range(m):
            ek[r] = 0.0
    for j in range(ptr.shape[0] - 1):
        f0, f1 = ptr[j], ptr[j + 1]
        if f1 == f0:
            for k in range(J):
                b = beta[j, k]
                ek = eta[k]
                for r in range(m):
                    ek[r] += b
        elif f1 == f0 + 1 and kind[f0] == 0 and param[f0] == 1.0:
            row = M[var[f0], i0:i0 + m]  # a slice, so the loop indexes from 0 and vectorises
            for k in range(J):
                b = beta[j, k]
                ek = eta[k]
                for r in range(m):
                    ek[r] += b * row[r]
        else:
            for r in range(m):
                i = i0 + r
                x = 1.0
                for f in range(f0, f1):
                    v = M[var[f], i]
                    if kind[f] == 0:
                        pw = param[f]
                        x *= v if pw == 1.0 else v ** pw
                    elif kind[f] == 2:  # spline basis function; param[f] points at its knot block
                        x *= _ns_value(v, param, int(param[f]))
                    elif v != param[f]:
                        x = 0.0
                for k in range(J):
                    eta[k, r] += beta[j, k] * x


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so k * _LN2_HI is exact (fdlibm's constants)
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low mantissa bits
_C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = (1.0 / math.factorial(k) for k in range(3, 14))


@numba.njit(cache=True, nogil=True)
def _exp_strip(sign, x, m, out, t, tbits, sc, scbits):
    """``out[q] = exp(sign * x[q])`` for ``q < m``, in loops the compiler vectorises.

    Range reduction ``x = k ln 2 + r``, ``|r| <= ln 2 / 2``, with the integer
    ``k`` taken from the bits of ``x log2 e + 1.5 * 2**52``; ``exp(r)`` by its
    Taylor polynomial of degree 13 (truncation below 1e-17 relative, Estrin's scheme), and
    ``2**k`` built from its bits. Accurate to a few units in the last place;
    arguments are clamped to [-708, 709] (``exp`` then under/overflows only
    where a probability is already 0 or 1 to double precision); NaN stays NaN.
    ``t``, ``sc`` are scratch strips and ``tbits``, ``scbits`` their int64 views.
    """
    for q in range(m):
        v = sign * x[q]
        v = v if v > -708.0 else -708.0
        v = v if v < 709.0 else 709.0
        tt = v * _LOG2E + _ROUND
        t[q] = tt
        kf = tt - _ROUND
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        # Estrin's scheme: a shallow dependency chain, so the vector units stay busy
        r2 = r * r
        r4 = r2 * r2
        q0 = (1.0 + r) + r2 * (0.5 + r * _C3)
        q1 = (_C4 + r * _C5) + r2 * (_C6 + r * _C7)
        q2 = (_C8 + r * _C9) + r2 * (_C10 + r * _C11)
        q3 = _C12 + r * _C13
        p = (q0 + r4 * q1) + (r4 * r4) * (q2 + r4 * q3)
        out[q] = p
    for q in range(m):
        scbits[q] = (tbits[q] + 1023) << 52
    for q in range(m):
        xv = x[q]
        out[q] = out[q] * sc[q] if xv == xv else xv


@numba.njit(cache=True, nogil=True)
def _mean_kernel(M, var, kind, param, ptr, beta, family, out):
    """Predicted mean (probability for binomial) of every simulated person; not for multinomial."""
    n = M.shape[1]
    eta = np.empty((1, CHUNK))
    ex = np.empty(CHUNK)
    t = np.empty(CHUNK)
    sc = np.empty(CHUNK)
    tbits = t.view(np.int64)
    scbits = sc.view(np.int64)
    e0 = eta[0]
    for i0 in range(0, n, CHUNK):
        m = min(CHUNK, n - i0)
        _linpred_chunk(M, var, kind, param, ptr, beta, i0, m, eta)
        o = out[i0:i0 + m]
        if family == 0:
            _exp_strip(-1.0, e0, m, ex, t, tbits, sc, scbits)
            for r in range(m):
                o[r] = 1.0 / (1.0 + ex[r])
        elif family == 4:
            for r in range(m):
                o[r] = math.exp(e0[r])
        else:
            for r in range(m):
                o[r] = e0[r]


@numba.njit(cache=True, nogil=True)
def _draw_kernel(M, var, kind, param, ptr, beta, family, scale, lo, hi, absorbing, levels, out_row, r):
    """Draw the response of one model for every simulated person into ``M[out_row]``.

    ``r`` holds the person's random number: a uniform for binomial,
    truncated normal, poisson and multinomial draws, a standard normal for
    gaussian and bounded normal ones. An absorbing response keeps a 1.
    """
    n = M.shape[1]
    J = beta.shape[1]
    eta = np.empty((J, CHUNK))
    ex = np.empty(CHUNK)
    t = np.empty(CHUNK)
    sc = np.empty(CHUNK)
    tbits = t.view(np.int64)
    scbits = sc.view(np.int64)
    e0 = eta[0]
    out = M[out_row]
    for i0 in range(0, n, CHUNK):
        m = min(CHUNK, n - i0)
        _linpred_chunk(M, var, kind, param, ptr, beta, i0, m, eta)
        o = out[i0:i0 + m]  # slices, so the loops index from 0 and vectorise
        rs = r[i0:i0 + m]
        if family == 0:
            _exp_strip(-1.0, e0, m, ex, t, tbits, sc, scbits)
            for q in range(m):
                v = 1.0 if rs[q] < 1.0 / (1.0 + ex[q]) else 0.0
                o[q] = 1.0 if (absorbing and o[q] == 1.0) else v
            continue
        if family == 1 or family == 3:
            for q in range(m):
                v = e0[q] + scale * rs[q]
                if family == 3:
                    v = lo if v < lo else (hi if v > hi else v)
                o[q] = 1.0 if (absorbing and o[q] == 1.0) else v
            continue
        for q in range(m):
            i = i0 + q
            if absorbing and out[i] == 1.0:
                continue
            if family == 5:
                # baseline-category logit: level 0 has linear predictor 0
                mx = 0.0
                for k in range(J):
                    if eta[k, q] > mx:
                        mx = eta[k, q]
                tot = math.exp(-mx)
                for k in range(J):
                    tot += math.exp(eta[k, q] - mx)
                c = math.exp(-mx) / tot
                k = 0
                while k < J and r[i] > c:
                    c += math.exp(eta[k, q] - mx) / tot
                    k += 1
                out[i] = levels[k]
            elif family == 2:
                out[i] = _truncnorm(eta[0, q], scale, lo, hi, r[i])
            else:
                out[i] = _poisson_inv(math.exp(eta[0, q]), r[i])


@numba.njit(cache=True, nogil=True)
def search_right(cw, x, guide, out):
    """``out[i] = numpy.searchsorted(cw, x[i], side="right")`` for a non-decreasing ``cw``, by a guide table.

    ``guide[b]`` is the searchsorted position of the left end of bucket ``b``
    of ``[0, cw[-1])``; each search starts there and steps to the exact
    position (back while ``cw[i-1] > x``, forward while ``cw[i] <= x``), so
    the answer is numpy's whatever the rounding of the bucket index.
    """
    K = cw.shape[0]
    G = guide.shape[0]
    total = cw[K - 1]
    for b in range(G):
        lo_b = total * (b / G)
        lo, hi = 0, K
        while lo < hi:
            mid = (lo + hi) // 2
            if cw[mid] <= lo_b:
                lo = mid + 1
            else:
                hi = mid
        guide[b] = lo
    scale = G / total if total > 0 else 0.0
    for j in range(x.shape[0]):
        v = x[j]
        b = int(v * scale) if v == v else 0
        b = 0 if b < 0 else (G - 1 if b >= G else b)
        i = guide[b]
        while i > 0 and cw[i - 1] > v:
            i -= 1
        while i < K and cw[i] <= v:
            i += 1
        out[j] = i


@numba.njit(cache=True, nogil=True)
def gather_columns(M, idx, out):
    """``out[:, i] = M[:, idx[i]]``: the time slices of resampled persons (``M[:, idx]`` without temporaries)."""
    for r in range(M.shape[0]):
        row = M[r]
        o = out[r]
        for i in range(idx.shape[0]):
            o[i] = row[idx[i]]


@numba.njit(cache=True, nogil=True)
def _dot(w, x):
    """``sum_i w[i] x[i]`` in eight interleaved partial sums (vectorised; no BLAS, whose threads stall on busy
    machines). Both engines use it, so they sum in the same order."""
    n = x.shape[0]
    acc = np.zeros(8)
    m = n - n % 8
    for i in range(0, m, 8):
        ws = w[i:i + 8]
        xs = x[i:i + 8]
        for lane in range(8):
            acc[lane] += ws[lane] * xs[lane]
    s = 0.0
    for i in range(m, n):
        s += w[i] * x[i]
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + s


@numba.njit(cache=True, nogil=True)
def _sum(x):
    n = x.shape[0]
    acc = np.zeros(8)
    m = n - n % 8
    for i in range(0, m, 8):
        xs = x[i:i + 8]
        for lane in range(8):
            acc[lane] += xs[lane]
    s = 0.0
    for i in range(m, n):
        s += x[i]
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + s


@numba.njit(cache=True, nogil=True)
def _weighted_sums(M, rows, w, out):
    """``out[j] += sum_i w[i] * M[rows[j], i]``."""
    for j in range(rows.shape[0]):
        out[j] += _dot(w, M[rows[j]])


@numba.njit(cache=True, nogil=True)
def _hazard_step(surv, cif, h, d, use_d):
    """One interval of the running products: ``cif += S (1-d) h``, ``S *= (1-d)(1-h)``.

    Returns (sum of S before the step, sum of cif, sum of cif^2, sum of S after).
    """
    s0 = 0.0
    c1 = 0.0
    c2 = 0.0
    s1 = 0.0
    for i in range(surv.shape[0]):
        s = surv[i]
        s0 += s
        keep = 1.0 - d[i] if use_d else 1.0
        cif[i] += s * keep * h[i]
        s = s * keep * (1.0 - h[i])
        surv[i] = s
        c1 += cif[i]
        c2 += cif[i] * cif[i]
        s1 += s
    return s0, c1, c2, s1


# -- the numpy reference path ------------------------------------------------------------------


def _ndtri_np(p: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(p)


def _ndtr_np(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


def draw_numpy(family: int, mu: np.ndarray, r: np.ndarray, scale: float, lo: float, hi: float,
               levels: np.ndarray) -> np.ndarray:
    """Draw from predicted means (``(n, J)`` probabilities for multinomial) with the given random numbers."""
    if family == BINOMIAL:
        return (r < mu).astype(float)
    if family == GAUSSIAN:
        return mu + scale * r
    if family == BOUNDED:
        return np.clip(mu + scale * r, lo, hi)
    if family == TRUNCATED:
        a, b = (lo - mu) / scale, (hi - mu) / scale
        upper = a > 0
        pa = np.where(upper, _ndtr_np(-b), _ndtr_np(a))
        pb = np.where(upper, _ndtr_np(-a), _ndtr_np(b))
        x = _ndtri_np(pa + r * (pb - pa))
        return np.clip(mu + scale * np.where(upper, -x, x), lo, hi)
    if family == POISSON:
        out = np.zeros(len(mu))
        big = mu > _POISSON_NORMAL_ABOVE
        out[big] = np.maximum(0.0, np.floor(mu[big] + np.sqrt(mu[big]) * _ndtri_np(r[big]) + 0.5))
        small = ~big
        m, u = mu[small], r[small]
        k = np.zeros(len(m))
        p = np.exp(-m)
        c = p.copy()
        go = u > c
        while go.any():
            k[go] += 1.0
            p[go] = p[go] * m[go] / k[go]
            c[go] += p[go]
            go = go & (u > c) & (k < 10000.0)
        out[small] = k
        return out
    # multinomial: invert the cumulative probabilities
    cum = np.cumsum(mu, axis=1)
    idx = (r[:, None] > cum[:, :-1]).sum(axis=1)
    return np.asarray(levels)[idx]


# -- compiled models -------------------------------------------------------------------------


@dataclass
class CompiledModel:
    """One fitted model laid out over the rows of the time slice ``M``."""

    fitted: Any
    out_row: int  # row of M the response is written to (-1 for hazards)
    var: np.ndarray
    kind: np.ndarray
    param: np.ndarray
    ptr: np.ndarray
    beta: np.ndarray  # (p, m), C-contiguous
    family: int
    scale: float
    lo: float
    hi: float
    absorbing: bool
    levels: np.ndarray
    normal_draw: bool  # True when the random number is a standard normal
    rows_of: dict = field(default_factory=dict)  # variable -> row of M (for the numpy path)

    @classmethod
    def build(cls, fitted, positions: dict[str, int], out_row: int = -1) -> CompiledModel:
        fam = FAMILY_CODE[fitted.family]
        rec = fitted.recipe
        beta = np.asarray(fitted.params, dtype=float)
        beta = np.ascontiguousarray(beta.reshape(len(rec.names), -1))
        lo, hi = fitted.bounds if fitted.bounds is not None else (-np.inf, np.inf)
        levels = np.asarray(fitted.levels if fitted.levels is not None else [0.0], dtype=float)
        return cls(fitted=fitted, out_row=out_row, var=rec.remap(positions), kind=rec.fac_kind.astype(np.int64),
                   param=rec.packed_param(), ptr=rec.term_ptr.astype(np.int64), beta=beta, family=fam,
                   scale=float(fitted.scale), lo=float(lo), hi=float(hi), absorbing=bool(fitted.absorbing),
                   levels=levels, normal_draw=fam in (GAUSSIAN, BOUNDED),
                   rows_of={v: positions[v] for v in rec.variables})

    @property
    def uses_python(self) -> bool:
        return self.fitted.learner is not None

    def _numpy_mean(self, M: np.ndarray) -> np.ndarray:
        X = self.fitted.design({v: M[r] for v, r in self.rows_of.items()}) if self.rows_of else \
            np.ones((M.shape[1], 1))
        return np.asarray(self.fitted.predict_design(X), dtype=float)

    def mean(self, M: np.ndarray, engine: str, out: np.ndarray | None = None) -> np.ndarray:
        """Predicted mean of the response for every simulated person."""
        if engine == "numpy" or self.uses_python:
            return self._numpy_mean(M)
        out = np.empty(M.shape[1]) if out is None else out
        _mean_kernel(M, self.var, self.kind, self.param, self.ptr, self.beta, self.family, out)
        return out

    def draw(self, M: np.ndarray, r: np.ndarray, engine: str) -> None:
        """Draw the response into ``M[out_row]`` (in place)."""
        if engine == "numpy" or self.uses_python:
            mu = self._numpy_mean(M)
            new = draw_numpy(self.family, mu, r, self.scale, self.lo, self.hi, self.levels)
            if self.absorbing:
                new = np.where(M[self.out_row] == 1.0, 1.0, new)
            M[self.out_row] = new
            return
        _draw_kernel(M, self.var, self.kind, self.param, self.ptr, self.beta, self.family, self.scale, self.lo,
                     self.hi, self.absorbing, self.levels, self.out_row, r)


# -- the simulation plan and loop ----------------------------------------------------------------


@dataclass
class Plan:
    """Everything the loop needs, fixed before any regime is simulated."""

    columns: list[str]
    positions: dict[str, int]
    time_row: int
    treatment_row: int
    covariates: list[CompiledModel]  # in simulation order
    treatment: CompiledModel | None
    outcome: CompiledModel
    competing: CompiledModel | None
    features: list  # every history feature the simulation needs, inner first
    start_features: list  # features known at the start of an interval
    features_after: dict[str, list]  # root column -> features computed once it is set
    state_columns: list[str]  # columns a regime may read (known before treatment)
    outcome_type: str  # "survival", "binary", "continuous"
    tracked: list[str]  # columns whose simulated means by time are recorded
    n_uniform: int
    n_normal: int


@dataclass
class Accumulator:
    """Running sums over simulated persons (all blocks) for one regime."""

    T: int
    tracked: list[str]
    n: float = 0.0
    risk_sum: np.ndarray = None
    risk_sq: np.ndarray = None
    surv_sum: np.ndarray = None
    cov_wsum: np.ndarray = None  # (T, n_tracked) sums of S_{t-1} * x
    cov_w: np.ndarray = None  # (T,) sums of S_{t-1}
    mean_sum: float = 0.0
    mean_sq: float = 0.0
    kept: list = field(default_factory=list)

    def __post_init__(self):
        T, k = self.T, len(self.tracked)
        self.risk_sum, self.risk_sq, self.surv_sum = np.zeros(T), np.zeros(T), np.zeros(T)
        self.cov_wsum, self.cov_w = np.zeros((T, k)), np.zeros(T)


def _feature_value(f, state: np.ndarray, M: np.ndarray, positions: dict[str, int], t: int) -> np.ndarray:
    src = None if f.kind == "lag" else M[positions[f.source_name]]
    return f.value(state, src, t)


@dataclass(frozen=True)
class _FeatureStep:
    """A history feature's step rule laid out over the rows of ``M``."""

    feature: Any
    name: str
    row: int  # the feature's row of M
    src_row: int  # its source's row (the feature's own row for lags, whose value ignores it)
    code: int
    k: int
    fill: float
    target: float


def _feature_steps(plan: Plan) -> dict:
    """``start``, ``after`` (column -> steps) and ``all`` feature steps of a plan (built once, kept on it)."""
    cached = plan.__dict__.get("_steps")
    if cached is None:
        from gtools._history_numba import KIND_CODE

        pos = plan.positions

        def step(f) -> _FeatureStep:
            return _FeatureStep(f, f.name, pos[f.name], pos[f.name] if f.kind == "lag" else pos[f.source_name],
                                KIND_CODE[f.kind], int(f.k), float(f.fill), float(f.target))

        cached = {"start": [step(f) for f in plan.start_features],
                  "after": {c: [step(f) for f in fs] for c, fs in plan.features_after.items()},
                  "all": [_FeatureStep(f, f.name, pos[f.name], pos[f.source_name], KIND_CODE[f.kind], int(f.k),
                                       float(f.fill), float(f.target)) for f in plan.features],
                  "tracked": np.array([pos[c] for c in plan.tracked], dtype=np.int64)}
        plan.__dict__["_steps"] = cached
    return cached


class RegimeBlock:
    """One block of simulated persons under one regime, advanced one interval at a time by :meth:`step`.

    ``M`` holds the persons' last known time slice (their observed first
    interval when ``observed_first``) and is updated in place; ``states`` the
    history state after interval ``t_start - 1``; ``previous`` the treatment
    in interval ``t_start - 1``. Results are added to ``acc`` at index
    ``t - t_offset``. All per-person buffers are allocated here, once.
    """

    def __init__(self, plan: Plan, regime, M: np.ndarray, states: dict[str, np.ndarray], previous: np.ndarray,
                 t_start: int, observed_first: bool, engine: str, acc: Accumulator, keep: bool = False,
                 t_offset: int = 0):
        n = M.shape[1]
        self.plan, self.regime, self.M, self.states = plan, regime, M, states
        self.t_start, self.observed_first, self.engine, self.acc = t_start, observed_first, engine, acc
        self.keep, self.t_offset, self.n = keep, t_offset, n
        self.previous = np.array(previous, dtype=float).reshape(n)
        self.natural = np.empty(n)
        self.tvec = np.empty(n, dtype=np.int64)
        self.surv = np.ones(n)  # P(event-free through t-1 | simulated path)
        self.cif = np.zeros(n)
        self.haz = np.empty(n)
        self.comp = np.empty(n)
        self.steps = _feature_steps(plan)
        self.compiled = engine != "numpy"
        self.state_rows = [(c, plan.positions[c]) for c in plan.state_columns]
        acc.n += n

    def _features(self, steps, t: int) -> None:
        M, states = self.M, self.states
        if self.compiled:
            from gtools._history_numba import step_value

            for s in steps:
                step_value(s.code, s.k, s.fill, s.target, states[s.name], M[s.src_row], t, M[s.row])
        else:
            for s in steps:
                f = s.feature
                M[s.row] = f.value(states[s.name], None if f.kind == "lag" else M[s.src_row], t)

    def step(self, t: int, U: np.ndarray, Z: np.ndarray | None) -> None:
        """Simulate interval ``t`` with the uniforms ``U`` (last row: the treatment's) and normals ``Z``."""
        plan, M, engine, acc, n = self.plan, self.M, self.engine, self.acc, self.n
        a_row = plan.treatment_row
        after = self.steps["after"]
        M[plan.time_row] = float(t)
        self._features(self.steps["start"], t)
        first = self.observed_first and t == self.t_start
        iu = iz = 0
        for cm in plan.covariates:
            if cm.normal_draw:
                r = Z[iz]
                iz += 1
            else:
                r = U[iu]
                iu += 1
            if not first:
                cm.draw(M, r, engine)
            fs = after.get(cm.fitted.response)
            if fs:
                self._features(fs, t)
        u_a = U[plan.n_uniform]
        if first:
            natural = self.natural
            np.copyto(natural, M[a_row])  # the observed treatment of the first interval
        elif self.regime.needs_natural:
            if plan.treatment is None:
                raise ValueError(f"regime {self.regime.name!r} needs the natural-course treatment: give "
                                 "treatment_model")
            natural = self.natural
            np.less(u_a, plan.treatment.mean(M, engine, natural), out=natural)
        else:
            natural = None
        self.tvec.fill(t)
        state = State(t=self.tvec, columns={c: M[r] for c, r in self.state_rows}, previous=self.previous,
                      natural=natural, uniform=u_a)
        a = np.asarray(self.regime(state), dtype=float)
        if a.shape != (n,):
            a = np.broadcast_to(a, (n,))
        M[a_row] = a
        np.copyto(self.previous, M[a_row])
        fs = after.get(plan.columns[a_row])
        if fs:
            self._features(fs, t)
        k = t - self.t_offset
        surv, cif = self.surv, self.cif
        # covariate means among those still event-free at the start of the interval
        acc.cov_w[k] += _sum(surv)
        _weighted_sums(M, self.steps["tracked"], surv, acc.cov_wsum[k])
        if plan.outcome_type == "survival":
            h = plan.outcome.mean(M, engine, self.haz)
            d = plan.competing.mean(M, engine, self.comp) if plan.competing is not None else h
            _, c1, c2, s1 = _hazard_step(surv, cif, h, d, plan.competing is not None)
            acc.risk_sum[k] += c1
            acc.risk_sq[k] += c2
            acc.surv_sum[k] += s1
        elif t == self.t_end - 1:
            y = plan.outcome.mean(M, engine, self.haz)
            acc.mean_sum += _sum(y)
            acc.mean_sq += _sum(y * y)
        if self.keep:
            rec = {c: M[plan.positions[c]].copy() for c in plan.columns}
            rec["_t"] = np.full(n, t)
            if plan.outcome_type == "survival":
                rec["hazard"], rec["risk"] = h.copy(), cif.copy()
            elif t == self.t_end - 1:
                rec["predicted_outcome"] = y.copy()
            acc.kept.append(rec)
        states = self.states
        if self.compiled:
            from gtools._history_numba import step_update

            for s in self.steps["all"]:
                step_update(s.code, s.k, s.target, states[s.name], M[s.src_row], t)
        else:
            for s in self.steps["all"]:
                s.feature.update(states[s.name], M[s.src_row], t)


def simulate_intervals(blocks: list[RegimeBlock], t_start: int, t_end: int, rng: np.random.Generator) -> None:
    """Advance every regime's block over intervals ``t_start .. t_end - 1`` on the same random numbers.

    Each interval's uniforms and normals are drawn once, into buffers reused
    across intervals, and every regime is simulated on them (common random
    numbers); the draws are the ones a single regime simulated alone gets
    from the same generator, so a regime's result does not depend on which
    other regimes share the run.
    """
    if not blocks:
        return
    plan, n = blocks[0].plan, blocks[0].n
    U = np.empty((plan.n_uniform + 1, n))  # last row: the treatment's uniform
    Z = np.empty((plan.n_normal, n)) if plan.n_normal else None
    for b in blocks:
        b.t_end = t_end
    for t in range(t_start, t_end):
        rng.random(out=U)
        if Z is not None:
            rng.standard_normal(out=Z)
        for b in blocks:
            b.step(t, U, Z)


def simulate_block(plan: Plan, regime, M: np.ndarray, states: dict[str, np.ndarray], previous: np.ndarray,
                   t_start: int, t_end: int, observed_first: bool, rng: np.random.Generator, engine: str,
                   acc: Accumulator, keep: bool = False, t_offset: int = 0) -> None:
    """Simulate one block of persons under one regime over intervals ``t_start .. t_end - 1``.

    ``M`` holds the persons' last known time slice (their observed first
    interval when ``observed_first``) and is updated in place; ``states`` the
    history state after interval ``t_start - 1``; ``previous`` the treatment
    in interval ``t_start - 1``. Results are added to ``acc`` at index
    ``t - t_offset``.
    """
    blk = RegimeBlock(plan, regime, M, states, previous, t_start, observed_first, engine, acc, keep=keep,
                      t_offset=t_offset)
    simulate_intervals([blk], t_start, t_end, rng)
