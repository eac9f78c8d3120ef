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

``cols`` is a tuple of the recipe's variables as 1-D float64 arrays (read
only), ``var/kind/param/ptr`` the recipe's encoding as in
:mod:`gtools.gformula.engine` (``param`` from :meth:`Recipe.packed_param`).
Rows with weight 0 are skipped, so a mask is a weight vector.
"""

from __future__ import annotations

import numba
import numpy as np

from gtools.gformula.engine import _ns_value

BINOMIAL, POISSON, GAUSSIAN = 0, 1, 2
CHUNK = 256


@numba.njit(cache=True, nogil=True)
def _fill(cols, var, kind, param, ptr, idx, m, B):
    """Design rows of the table rows ``idx[:m]`` into ``B[:m]`` (one column at a time)."""
    p = ptr.shape[0] - 1
    for j in range(p):
        f0, f1 = ptr[j], ptr[j + 1]
        if f1 == f0:
            for r in range(m):
                B[r, j] = 1.0
            continue
        if f1 == f0 + 1 and kind[f0] == 0 and param[f0] == 1.0:
            c = cols[var[f0]]
            for r in range(m):
                B[r, j] = c[idx[r]]
            continue
        for r in range(m):
            B[r, j] = 1.0
        for f in range(f0, f1):
            c = cols[var[f]]
            k = kind[f]
            par = param[f]
            if k == 0:
                if par == 1.0:
                    for r in range(m):
                        B[r, j] *= c[idx[r]]
                else:
                    for r in range(m):
                        B[r, j] *= c[idx[r]] ** par
            elif k == 1:
                for r in range(m):
                    B[r, j] *= 1.0 if c[idx[r]] == par else 0.0
            else:
                o = int(par)
                for r in range(m):
                    B[r, j] *= _ns_value(c[idx[r]], param, o)


@numba.njit(cache=True, nogil=True)
def _next_strip(w, i, n, idx):
    """Gather up to CHUNK rows with positive weight from row ``i`` on; returns (m, next i)."""
    m = 0
    while i < n and m < idx.shape[0]:
        if w[i] != 0.0:
            idx[m] = i
            m += 1
        i += 1
    return m, i


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
def accumulate(cols, var, kind, param, ptr, y, w, beta, init, family):
    """(deviance, X'WX, X'Wz) of one IRLS step at ``beta``; ``init`` starts from eta = g((w y + 1/2)/(w + 1))."""
    n = y.shape[0]
    p = ptr.shape[0] - 1
    A = np.zeros((p, p))
    b = np.zeros(p)
    dev = 0.0
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, p))
    i = 0
    while i < n:
        m, i = _next_strip(w, i, n, idx)
        if m == 0:
            break
        _fill(cols, var, kind, param, ptr, idx, m, B)
        for r in range(m):
            row = idx[r]
            wi = w[row]
            yi = y[row]
            if init:
                if family == BINOMIAL:
                    mu0 = (wi * yi + 0.5) / (wi + 1.0)
                    eta = np.log(mu0 / (1.0 - mu0))
                elif family == POISSON:
                    eta = np.log(yi + 0.1)
                else:
                    eta = yi
            else:
                eta = 0.0
                for j in range(p):
                    eta += B[r, j] * beta[j]
            mu, v = _mean_var(eta, family)
            dev += wi * _deviance(yi, eta, mu, family)
            z = eta + (yi - mu) / v
            ww = wi * v
            for j in range(p):
                xj = B[r, j] * ww
                b[j] += xj * z
                for k in range(j + 1):
                    A[j, k] += xj * B[r, k]
    for j in range(p):
        for k in range(j + 1, p):
            A[j, k] = A[k, j]
    return dev, A, b


@numba.njit(cache=True, nogil=True)
def predict(cols, var, kind, param, ptr, beta, family, out):
    """``out[i]`` = the mean ``g^{-1}(x_i' beta)`` of every row (the linear predictor for ``family < 0``)."""
    n = out.shape[0]
    p = ptr.shape[0] - 1
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, p))
    for i0 in range(0, n, CHUNK):
        m = min(CHUNK, n - i0)
        for r in range(m):
            idx[r] = i0 + r
        _fill(cols, var, kind, param, ptr, idx, m, B)
        for r in range(m):
            eta = 0.0
            for j in range(p):
                eta += B[r, j] * beta[j]
            if family == BINOMIAL:
                out[i0 + r] = 1.0 / (1.0 + np.exp(-eta))
            elif family == POISSON:
                out[i0 + r] = np.exp(eta)
            else:
                out[i0 + r] = eta


@numba.njit(cache=True, nogil=True)
def max_abs_eta(cols, var, kind, param, ptr, beta, w):
    """max |x_i' beta| over the rows with ``w[i] != 0``."""
    n = w.shape[0]
    p = ptr.shape[0] - 1
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, p))
    big = 0.0
    i = 0
    while i < n:
        m, i = _next_strip(w, i, n, idx)
        if m == 0:
            break
        _fill(cols, var, kind, param, ptr, idx, m, B)
        for r in range(m):
            eta = 0.0
            for j in range(p):
                eta += B[r, j] * beta[j]
            if abs(eta) > big:
                big = abs(eta)
    return big


@numba.njit(cache=True, nogil=True)
def sandwich(cols, var, kind, param, ptr, y, w, beta, groups, n_groups, family):
    """Bread ``H = X' diag(w v) X`` and per-group scores ``U[g] = sum_{r in g} w_r (y_r - mu_r) x_r``.

    Also returns max |eta| over the rows with positive weight (for the separation warning).
    """
    n = y.shape[0]
    p = ptr.shape[0] - 1
    H = np.zeros((p, p))
    U = np.zeros((n_groups, p))
    idx = np.empty(CHUNK, dtype=np.int64)
    B = np.empty((CHUNK, p))
    big = 0.0
    i = 0
    while i < n:
        m, i = _next_strip(w, i, n, idx)
        if m == 0:
            break
        _fill(cols, var, kind, param, ptr, idx, m, B)
        for r in range(m):
            row = idx[r]
            eta = 0.0
            for j in range(p):
                eta += B[r, j] * beta[j]
            if abs(eta) > big:
                big = abs(eta)
            mu, v = _mean_var(eta, family)
            if family == BINOMIAL:  # the exact variance in the bread, as statsmodels
                v = mu * (1.0 - mu)
            elif family == POISSON:
                v = mu
            wi = w[row]
            hw = wi * v
            res = wi * (y[row] - mu)
            g = groups[row]
            for j in range(p):
                xj = B[r, j]
                U[g, j] += res * xj
                for k in range(j + 1):
                    H[j, k] += hw * xj * B[r, k]
    for j in range(p):
        for k in range(j + 1, p):
            H[j, k] = H[k, j]
    return H, U, big
