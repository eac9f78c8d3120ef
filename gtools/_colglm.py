"""Numba kernels that fit and evaluate GLMs straight from a table's columns.

A :class:`~gtools.formula.Recipe` says how each design column is a product of
factors of the table's variables. These kernels never hold the ``n x p``
design matrix: they walk the rows in strips of ``CHUNK``, build the strip's
design rows from the columns (the same operations as
:meth:`~gtools.formula.Recipe.matrix`, so the numbers agree to rounding), and
accumulate what the caller needs: the IRLS normal equations, linear
predictors, or the pieces of a cluster-robust sandwich. Memory is a strip,
not a matrix: a million-row weight model costs a few kilobytes beyond the
table itself.

``cols`` is a pair of tuples holding the recipe's variables as read-only 1-D
float64 and int64 arrays (views of the table, no copies), ``var/kind/param/ptr`` the recipe's encoding as in
:mod:`gtools.gformula.engine` (``param`` from :meth:`Recipe.packed_param`).
The rows used are those in the boolean ``mask`` whose weight ``w`` is not 0;
``use_w=False`` means every row weighs 1 (``w`` is then not read, and may be
a one-element placeholder), so an unweighted fit allocates no weight vector.
"""

from __future__ import annotations

import numba
import numpy as np

from gtools._weights_numba import ip_factor
from gtools.gformula.engine import _ns_value

BINOMIAL, POISSON, GAUSSIAN = 0, 1, 2
CHUNK = 256


@numba.njit(cache=True, nogil=True)
def _factor(c, idx, m, B, j, k, par, param, first):
    """Multiply (``first``: set) design column ``j`` of the strip by one factor of the column ``c``."""
    if k == 0:
        if par == 1.0:
            if first:
                for r in range(m):
                    B[r, j] = c[idx[r]]
            else:
                for r in range(m):
                    B[r, j] *= c[idx[r]]
        else:
            for r in range(m):
                x = float(c[idx[r]]) ** par
                B[r, j] = x if first else B[r, j] * x
    elif k == 1:
        for r in range(m):
            x = 1.0 if c[idx[r]] == par else 0.0
            B[r, j] = x if first else B[r, j] * x
    else:
        o = int(par)
        for r in range(m):
            x = _ns_value(float(c[idx[r]]), param, o)
            B[r, j] = x if first else B[r, j] * x


@numba.njit(cache=True, nogil=True)
def _fill(cols, var, kind, param, ptr, idx, m, B):
    """Design rows of the table rows ``idx[:m]`` into ``B[:m]`` (one column at a time).

    ``cols = (float64 columns, int64 columns)``; factor variable ``v`` is
    ``cols[0][v]`` when ``v < len(cols[0])``, else ``cols[1][v - len(cols[0])]``.
    """
    fcols, icols = cols
    nf = len(fcols)
    p = ptr.shape[0] - 1
    for j in range(p):
        f0, f1 = ptr[j], ptr[j + 1]
        if f1 == f0:
            for r in range(m):
                B[r, j] = 1.0
            continue
        for f in range(f0, f1):
            v = var[f]
            if v < nf:
                _factor(fcols[v], idx, m, B, j, kind[f], param[f], param, f == f0)
            else:
                _factor(icols[v - nf], idx, m, B, j, kind[f], param[f], param, f == f0)


@numba.njit(cache=True, nogil=True)
def _next_strip(w, use_w, mask, i, n, idx):
    """Gather up to CHUNK rows in ``mask`` with non-zero weight from row ``i`` on; returns (m, next i)."""
    m = 0
    while i < n and m < idx.shape[0]:
        if mask[i] and (not use_w or w[i] != 0.0):
            idx[m] = i
            m += 1
        i += 1
    return m, i


@numba.njit(cache=True, nogil=True)
def _symmetrize(A):
    """Copy the lower triangle onto the upper one."""
    for j in range(A.shape[0]):
        for k in range(j + 1, A.shape[0]):
            A[j, k] = A[k, j]


@numba.njit(cache=True, nogil=True)
def _contiguous(i0, n, idx):
    """Rows ``i0 .. i0 + m - 1`` as a strip; returns m."""
    m = min(idx.shape[0], n - i0)
    for r in range(m):
        idx[r] = i0 + r
    return m


@numba.njit(cache=True, nogil=True)
def _etas(cols, var, kind, param, ptr, beta, idx, m, B, eta):
    """Fill the strip's design rows into ``B`` and their linear predictors into ``eta``."""
    _fill(cols, var, kind, param, ptr, idx, m, B)
    p = ptr.shape[0] - 1
    for r in range(m):
        e = 0.0
        for j in range(p):
            e += B[r, j] * beta[j]
        eta[r] = e


@numba.njit(cache=True, nogil=True)
def _mean_var(eta, family):
    if family == BINOMIAL:
        if eta > 0:
            mu = 1.0 / (1.0 + np.exp(-eta))
        else:
            e = np.exp(eta)
            mu = e / (1.0 + e)
        v = mu * (1.0 - mu)
        return mu, (v if v > 1e-12 else 1e-12)
    if family == POISSON:
        mu = np.exp(eta)
        return mu, (mu if mu > 1e-12 else 1e-12)
    return eta, 1.0


@numba.njit(cache=True, nogil=True)
def _deviance(yi, eta, mu, family):
    if family == BINOMIAL:
        if eta > 0:
            return 2.0 * (eta + np.log1p(np.exp(-eta)) - yi * eta)
        return 2.0 * (np.log1p(np.exp(eta)) - yi * eta)
    if family == POISSON:
        if yi > 0:
            return 2.0 * (yi * np.log(yi / mu) - (yi - mu))
        return 2.0 * mu
    return (yi - mu) * (yi - mu)


@numba.njit(cache=True, nogil=True)
def accumulate(cols, var, kind, param, ptr, y, w, use_w, mask, beta, init, family):
    """(deviance, X'WX, X'Wz) of one IRLS step at ``beta``; ``init`` starts from eta = g((w y + 1/2)/(w + 1))."""
    n = y.shape[0]
    p = ptr.shape[0] - 1
    A = np.zeros((p, p))
    b = np.zeros(p)
    dev = 0.0
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, p))
    etas = np.empty(CHUNK)
    i = 0
    while i < n:
        m, i = _next_strip(w, use_w, mask, i, n, idx)
        if m == 0:
            break
        _etas(cols, var, kind, param, ptr, beta, idx, m, B, etas)
        for r in range(m):
            row = idx[r]
            wi = w[row] if use_w else 1.0
            yi = y[row]
            eta = etas[r]
            if init:
                if family == BINOMIAL:
                    mu0 = (wi * yi + 0.5) / (wi + 1.0)
                    eta = np.log(mu0 / (1.0 - mu0))
                elif family == POISSON:
                    eta = np.log(yi + 0.1)
                else:
                    eta = yi
            mu, v = _mean_var(eta, family)
            dev += wi * _deviance(yi, eta, mu, family)
            z = eta + (yi - mu) / v
            ww = wi * v
            for j in range(p):
                xj = B[r, j] * ww
                b[j] += xj * z
                for k in range(j + 1):
                    A[j, k] += xj * B[r, k]
    _symmetrize(A)
    return dev, A, b


@numba.njit(cache=True, nogil=True)
def predict(cols, var, kind, param, ptr, beta, family, out):
    """``out[i]`` = the mean ``g^{-1}(x_i' beta)`` of every row (the linear predictor for GAUSSIAN)."""
    n = out.shape[0]
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, ptr.shape[0] - 1))
    eta = np.empty(CHUNK)
    for i0 in range(0, n, CHUNK):
        m = _contiguous(i0, n, idx)
        _etas(cols, var, kind, param, ptr, beta, idx, m, B, eta)
        for r in range(m):
            if family == BINOMIAL:
                out[i0 + r] = 1.0 / (1.0 + np.exp(-eta[r]))
            elif family == POISSON:
                out[i0 + r] = np.exp(eta[r])
            else:
                out[i0 + r] = eta[r]


@numba.njit(cache=True, nogil=True)
def max_abs_eta(cols, var, kind, param, ptr, beta, w, use_w, mask):
    """max |x_i' beta| over the rows in ``mask`` with ``w[i] != 0``."""
    n = mask.shape[0]
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, ptr.shape[0] - 1))
    eta = np.empty(CHUNK)
    big = 0.0
    i = 0
    while i < n:
        m, i = _next_strip(w, use_w, mask, i, n, idx)
        if m == 0:
            break
        _etas(cols, var, kind, param, ptr, beta, idx, m, B, eta)
        for r in range(m):
            if abs(eta[r]) > big:
                big = abs(eta[r])
    return big


@numba.njit(cache=True, nogil=True)
def sandwich(cols, var, kind, param, ptr, y, w, use_w, mask, beta, groups, n_groups, family):
    """Bread ``H = X' diag(w v) X`` and per-group scores ``U[g] = sum_{r in g} w_r (y_r - mu_r) x_r``.

    Also returns max |eta| over the rows with positive weight (for the separation warning).
    """
    n = y.shape[0]
    p = ptr.shape[0] - 1
    H = np.zeros((p, p))
    U = np.zeros((n_groups, p))
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, p))
    etas = np.empty(CHUNK)
    big = 0.0
    i = 0
    while i < n:
        m, i = _next_strip(w, use_w, mask, i, n, idx)
        if m == 0:
            break
        _etas(cols, var, kind, param, ptr, beta, idx, m, B, etas)
        for r in range(m):
            row = idx[r]
            eta = etas[r]
            if abs(eta) > big:
                big = abs(eta)
            mu, v = _mean_var(eta, family)
            if family == BINOMIAL:  # the exact variance in the bread, as statsmodels
                v = mu * (1.0 - mu)
            elif family == POISSON:
                v = mu
            wi = w[row] if use_w else 1.0
            hw = wi * v
            res = wi * (y[row] - mu)
            g = groups[row]
            for j in range(p):
                xj = B[r, j]
                U[g, j] += res * xj
                for k in range(j + 1):
                    H[j, k] += hw * xj * B[r, k]
    _symmetrize(H)
    return H, U, big


@numba.njit(cache=True, nogil=True)
def ratio(cols, var, kind, param, ptr, beta, family, a, mask, out):
    """In place, per row: ``out = f_num(a) / f_den(a)`` on ``mask`` rows (1 elsewhere), where ``out`` holds
    the denominator probability and this model gives the numerator; ``f(a) = p^a (1-p)^(1-a)``.

    A zero denominator gives inf (reported by the caller).
    """
    n = out.shape[0]
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, ptr.shape[0] - 1))
    eta = np.empty(CHUNK)
    for i0 in range(0, n, CHUNK):
        m = _contiguous(i0, n, idx)
        _etas(cols, var, kind, param, ptr, beta, idx, m, B, eta)
        for r in range(m):
            i = i0 + r
            pn = 1.0 / (1.0 + np.exp(-eta[r])) if family == BINOMIAL else eta[r]
            out[i] = ip_factor(a[i], pn, out[i], True) if mask[i] else 1.0
