"""Numba kernels for IP weights: per-row factors, running products by person, moments by time.

Each works in place or in one pass so a million-row weight computation holds
a few vectors, not a dozen temporaries.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def ip_factor(a, pn, pd_, stabilized):
    """f_num(a) / f_den(a) with ``f(a) = p^a (1-p)^(1-a)`` (numerator 1 when not ``stabilized``); inf when
    the denominator is 0 (reported by the caller)."""
    if a == 1.0:
        num = pn if stabilized else 1.0
        return num / pd_ if pd_ != 0.0 else np.inf
    num = (1.0 - pn) if stabilized else 1.0
    return num / (1.0 - pd_) if pd_ != 1.0 else np.inf


@numba.njit(cache=True, nogil=True)
def treatment_factor(a, p_den, p_num, risk, stabilized, out):
    """``out = f_num(A) / f_den(A)`` on rows at risk (1 elsewhere). ``out`` may be ``p_num`` or ``p_den``."""
    for i in range(a.shape[0]):
        out[i] = ip_factor(a[i], p_num[i], p_den[i], stabilized) if risk[i] else 1.0


@numba.njit(cache=True, nogil=True)
def cumprod_by_person(codes, x):
    """Running product of ``x`` over each person's rows, in place (rows sorted by person, then time)."""
    acc = 1.0
    for i in range(x.shape[0]):
        if i == 0 or codes[i] != codes[i - 1]:
            acc = 1.0
        acc *= x[i]
        x[i] = acc


@numba.njit(cache=True, nogil=True)
def _row_weight(fw, use_fw, rows, i):
    """Frequency weight of row ``i`` (0 when it is not in ``rows``)."""
    if not rows[i]:
        return 0.0
    return fw[i] if use_fw else 1.0


@numba.njit(cache=True, nogil=True)
def moments_by_time(w, fw, use_fw, times, rows, K):
    """Per time (and overall, the last row) over rows with f > 0: sum f, sum f w, sum f w^2, min w, max w,
    and sum f (w - mean)^2 (a second pass, numerically stable), where ``f`` is the frequency weight
    (1 when ``use_fw`` is false). Returns a ``(K + 1, 6)`` array."""
    out = np.zeros((K + 1, 6))
    for t in range(K + 1):
        out[t, 3] = np.inf
        out[t, 4] = -np.inf
    for i in range(w.shape[0]):
        f = _row_weight(fw, use_fw, rows, i)
        if f <= 0.0:
            continue
        x = w[i]
        for t in (times[i], K):
            out[t, 0] += f
            out[t, 1] += f * x
            out[t, 2] += f * x * x
            out[t, 3] = min(out[t, 3], x)
            out[t, 4] = max(out[t, 4], x)
    for i in range(w.shape[0]):
        f = _row_weight(fw, use_fw, rows, i)
        if f <= 0.0:
            continue
        for t in (times[i], K):
            d = w[i] - out[t, 1] / out[t, 0]
            out[t, 5] += f * d * d
    return out


@numba.njit(cache=True, nogil=True)
def rate_by_time(y, fw, use_fw, times, rows, K):
    """Frequency-weighted mean of ``y`` among ``rows`` at each time (0.5 where nobody is at risk)."""
    num = np.zeros(K)
    den = np.zeros(K)
    for i in range(y.shape[0]):
        if rows[i]:
            f = fw[i] if use_fw else 1.0
            num[times[i]] += f * y[i]
            den[times[i]] += f
    out = np.full(K, 0.5)
    for t in range(K):
        if den[t] > 0:
            out[t] = num[t] / den[t]
    return out


@numba.njit(cache=True, nogil=True)
def ratio_from_rates(a, times, rates, mask, out):
    """In place: ``out = f_num(a) / f_den(a)`` on ``mask`` rows (1 elsewhere), numerator ``rates[time]``,
    ``out`` holding the denominator probability."""
    for i in range(out.shape[0]):
        out[i] = ip_factor(a[i], rates[times[i]], out[i], True) if mask[i] else 1.0


@numba.njit(cache=True, nogil=True)
def inverse(a, mask, out):
    """In place: ``out = 1 / f_den(a)`` on ``mask`` rows (1 elsewhere), ``out`` holding the probability."""
    for i in range(out.shape[0]):
        out[i] = ip_factor(a[i], 1.0, out[i], False) if mask[i] else 1.0


@numba.njit(cache=True, nogil=True)
def clone_weights(codes, a, g, p1, risk, W, adherent, low):
    """One regime's clones: ``adherent[i]`` when the person's observed treatment has equalled the regime's
    on every row so far (this one included); ``W[i]`` the running product, over adherent rows at risk, of
    1 / P(A = g) (``p1`` = P(A = 1)); ``low[i]`` when that probability is below 0.01 there."""
    acc = 1.0
    ok = True
    for i in range(a.shape[0]):
        if i == 0 or codes[i] != codes[i - 1]:
            acc = 1.0
            ok = True
        ok = ok and a[i] == g[i]
        adherent[i] = ok
        low[i] = False
        if ok and risk[i]:
            pg = p1[i] if g[i] == 1.0 else 1.0 - p1[i]
            low[i] = pg < 0.01
            acc *= 1.0 / pg if pg != 0.0 else np.inf
        W[i] = acc


@numba.njit(cache=True, nogil=True)
def sums_by_time(times, rows, W, fw, use_fw, y, K):
    """Per time over ``rows``: sum f W y, sum f W, sum f, sum f y (``f`` the frequency weight)."""
    out = np.zeros((K, 4))
    for i in range(times.shape[0]):
        if not rows[i]:
            continue
        f = fw[i] if use_fw else 1.0
        t = times[i]
        out[t, 0] += f * W[i] * y[i]
        out[t, 1] += f * W[i]
        out[t, 2] += f
        out[t, 3] += f * y[i]
    return out
