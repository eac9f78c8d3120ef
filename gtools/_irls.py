"""Numba kernels for the lean GLM fit used on hot paths (bootstrap replicates).

One pass over the rows computes, for the current linear predictor, the
deviance and the weighted normal equations X'WX and X'Wz of the IRLS step.
"""

from __future__ import annotations

import numba
import numpy as np

BINOMIAL, POISSON = 0, 1


@numba.njit(cache=True, nogil=True)
def accumulate(X, y, w, beta, eta0, use_eta0, family):
    """(deviance at the current eta, X'WX, X'Wz) for one IRLS step."""
    n, p = X.shape
    A = np.zeros((p, p))
    b = np.zeros(p)
    dev = 0.0
    xrow = np.empty(p)
    for i in range(n):
        wi = w[i]
        if wi == 0.0:
            continue
        if use_eta0:
            eta = eta0[i]
        else:
            eta = 0.0
            for j in range(p):
                eta += X[i, j] * beta[j]
        yi = y[i]
        if family == BINOMIAL:
            if eta > 0:
                e = np.exp(-eta)
                mu = 1.0 / (1.0 + e)
                dev += 2.0 * wi * (eta + np.log1p(e) - yi * eta)
            else:
                e = np.exp(eta)
                mu = e / (1.0 + e)
                dev += 2.0 * wi * (np.log1p(e) - yi * eta)
            var = mu * (1.0 - mu)
            if var < 1e-12:
                var = 1e-12
        else:
            mu = np.exp(eta)
            if yi > 0:
                dev += 2.0 * wi * (yi * np.log(yi / mu) - (yi - mu))
            else:
                dev += 2.0 * wi * mu
            var = mu if mu > 1e-12 else 1e-12
        z = eta + (yi - mu) / var
        ww = wi * var
        for j in range(p):
            xrow[j] = X[i, j]
        for j in range(p):
            xj = xrow[j] * ww
            b[j] += xj * z
            for k in range(j + 1):
                A[j, k] += xj * xrow[k]
    for j in range(p):
        for k in range(j + 1, p):
            A[j, k] = A[k, j]
    return dev, A, b
