"""Inverse probability of treatment and censoring weights for longitudinal data.

:class:`IPTW` estimates, for every person-time row of a
:class:`~gtools.PersonTime`, the stabilised weight of a marginal structural
model,

.. math::

    SW_i(t) = \\prod_{k \\le t}
        \\frac{f(A_{ik} \\mid \\bar A_{i,k-1}, V_i)}{f(A_{ik} \\mid \\bar A_{i,k-1}, \\bar L_{ik}, V_i)}
        \\times \\prod_{k \\le t}
        \\frac{P(C_{ik} = 0 \\mid \\bar A_{ik}, V_i)}{P(C_{ik} = 0 \\mid \\bar A_{ik}, \\bar L_{ik}, V_i)},

the product of treatment weights and censoring weights (Robins, Hernán and
Brumback 2000; Hernán and Robins, *What If*, ch. 12 and 21). The denominators
come from ``treatment_model`` and ``censor_model``, the numerators from
``numerator_model`` and ``censor_numerator_model``; unstabilised weights
(numerators 1) with ``stabilized=False``.

Timing conventions (those of :class:`~gtools.PersonTime`):

* ``A_t`` is decided after ``L_t`` is measured, so row ``t``'s treatment factor
  uses the treatment model's prediction on row ``t``;
* ``C_t = 1`` on a row means the person was censored *during* interval ``t``,
  before its outcome was seen: that row never enters an outcome model. The
  weight of an uncensored row ``t`` includes ``P(C_k = 0 | ...)`` for every
  ``k <= t``; on a censored row the censoring factor of its own interval is
  left out (its weight is that of the person-time up to its start), which is
  harmless because the row carries no outcome.

Person-time whose treatment is fixed by design (``absorbing_treatment=True``:
once treated always treated; or any ``at_risk`` rule, e.g. a baseline-only
treatment) contributes a treatment factor of 1, and only rows at risk enter the
treatment models.

Identifying assumptions: sequential exchangeability given the measured history
(no unmeasured confounding of treatment and of censoring), positivity (every
history has a positive probability of each treatment and of remaining
uncensored), consistency, and correctly specified denominator models.

Every sum, mean, percentile and fitted model weights rows by the table's
frequency weights (``pt.row_weights()``), so a bootstrap replicate
``pt.with_person_counts(counts)`` equals a fit on the resampled persons.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gtools import _weights_numba as _wn
from gtools.dag import require_identified
from gtools.errors import DataError, FitWarning, Problem
from gtools.models import FittedModel, Model, _float_column, check_positivity, table_columns

__all__ = ["IPTW", "WeightsResult"]

# diagnostics thresholds (documented in WeightsResult.summary)
MEAN_TOLERANCE = 0.1
ESS_FRACTION = 0.25
MIN_AT_RISK = 30

_ONE = np.ones(1)  # stands for unit frequency weights in the kernels


# -- small shared helpers (also used by gtools.msm) ---------------------------------


def as_model(m: Model | str | None, family: str = "binomial") -> Model | None:
    """A formula string becomes ``Model(formula, family)``; a Model is returned as is."""
    if m is None or isinstance(m, Model):
        return m
    if isinstance(m, str):
        return Model(m, family=family)
    raise TypeError(f"expected a gt.Model or a formula string, got {type(m).__name__}")


def previous_value(pt, col: str) -> np.ndarray:
    """The person's value of ``col`` in the previous interval (0 at t = 0)."""
    v = pt.data[col].to_numpy(dtype=float)
    codes = pt.person_index
    prev = np.zeros(len(v))
    if len(v) > 1:
        same = codes[1:] == codes[:-1]
        prev[1:] = np.where(same, v[:-1], 0.0)
    return prev


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Quantiles of ``x`` under frequency weights ``w`` (inverted CDF: an observed value).

    With integer weights this equals ``np.quantile(np.repeat(x, w), q, method="inverted_cdf")``,
    so a bootstrap replicate weighted by counts gets the resampled data's quantiles.
    """
    keep = w > 0
    x, w = x[keep], w[keep]
    if len(x) == 0:
        return np.full(len(q), np.nan)
    o = np.argsort(x, kind="stable")
    xs, cw = x[o], np.cumsum(w[o])
    total = cw[-1]
    out = []
    for qi in q:
        target = qi * total
        j = int(np.searchsorted(cw, target - 1e-9 * total, side="left"))
        out.append(xs[min(max(j, 0), len(xs) - 1)])
    return np.asarray(out, dtype=float)


def truncate_weights(w: np.ndarray, fw: np.ndarray | None, rows: np.ndarray, truncate, truncate_values):
    """Apply percentile or value truncation to ``w`` on ``rows``, in place; returns (w, info dict).

    Percentiles are of the frequency-weighted (``fw``; None: unweighted) distribution over ``rows``.
    """
    if truncate is not None and truncate_values is not None:
        raise ValueError("give either truncate=(lower_percentile, upper_percentile) or "
                         "truncate_values=(lower, upper), not both")
    if truncate is None and truncate_values is None:
        return w, {"method": None, "lower": None, "upper": None, "n_lower": 0, "n_upper": 0}
    if truncate is not None:
        lo_p, hi_p = (float(v) for v in truncate)
        if not 0 <= lo_p < hi_p <= 100:
            raise ValueError(f"truncate percentiles must satisfy 0 <= lower < upper <= 100, got {truncate}")
        lo, hi = _quantiles(w, fw, rows, [lo_p / 100, hi_p / 100])
        method = f"percentiles ({lo_p:g}, {hi_p:g})"
    else:
        lo, hi = (float(v) for v in truncate_values)
        if not lo < hi:
            raise ValueError(f"truncate_values must satisfy lower < upper, got {truncate_values}")
        method = "values"
    n_lo = int(np.count_nonzero(rows & (w < lo)))
    n_hi = int(np.count_nonzero(rows & (w > hi)))
    np.clip(w, lo, hi, out=w, where=rows)
    return w, {"method": method, "lower": float(lo), "upper": float(hi), "n_lower": n_lo, "n_upper": n_hi}


def _quantiles(w: np.ndarray, fw: np.ndarray | None, mask: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """:func:`weighted_quantile` of ``w[mask]``; unweighted, from one sorted copy of those rows."""
    x = w[mask]
    if fw is not None:
        return weighted_quantile(x, fw[mask], q)
    if len(x) == 0:
        return np.full(len(q), np.nan)
    x.sort()
    n = len(x)
    # inverted CDF: the smallest observation whose cumulative count reaches q n (as weighted_quantile)
    j = np.ceil(np.asarray(q, dtype=float) * n - 1e-9 * n).astype(np.int64) - 1
    return x[np.clip(j, 0, n - 1)].astype(float)


def weight_table(w: np.ndarray, fw: np.ndarray | None, times: np.ndarray, rows: np.ndarray,
                 time_values: np.ndarray) -> pd.DataFrame:
    """Distribution of weights overall and by time: mean, SD, min, p1, p50, p99, max, ESS.

    ``fw`` are frequency weights (None: every row counts once); rows with
    ``fw == 0`` are left out. One pass for the moments; the percentiles sort
    a copy of each group's weights.
    """
    times = np.asarray(times, dtype=np.int64)
    rows = np.asarray(rows, dtype=bool)
    if fw is not None:
        rows = rows & (fw > 0)
    K = int(times.max()) + 1 if len(times) else 0
    fwa, use = (_ONE, False) if fw is None else (np.asarray(fw, dtype=float), True)
    mom = _wn.moments_by_time(w, fwa, use, times, rows, K)
    n = mom[:, 0]
    mean = np.divide(mom[:, 1], n, out=np.zeros(K + 1), where=n > 0)
    ss = mom[:, 5]
    recs, index = [], []
    for t in [K] + list(range(K)):
        if n[t] <= 0:
            continue
        mask = rows if t == K else rows & (times == t)
        p1, p50, p99 = _quantiles(w, fw, mask, [0.01, 0.5, 0.99])
        ess = mom[t, 1] ** 2 / mom[t, 2] if mom[t, 2] > 0 else 0.0
        recs.append(dict(mean=float(mean[t]), sd=float(np.sqrt(ss[t] / max(n[t] - 1, 1))), min=float(mom[t, 3]),
                         p1=p1, p50=p50, p99=p99, max=float(mom[t, 4]), at_risk=float(n[t]), ess=float(ess),
                         ess_ratio=float(ess / n[t])))
        index.append("overall" if t == K else _py(time_values[t]))
    return pd.DataFrame(recs, index=pd.Index(index, dtype=object, name="time"))


def flag_weights(tab: pd.DataFrame, stabilized: bool, label: str) -> list[str]:
    """Warn (FitWarning) about weight means far from 1 or small effective sample sizes, naming times."""
    by = tab.drop(index="overall", errors="ignore")
    msgs = []
    big = by["at_risk"] >= MIN_AT_RISK
    if stabilized:
        off = by.index[big & ((by["mean"] - 1).abs() > MEAN_TOLERANCE)].tolist()
        if off:
            msgs.append(f"mean stabilised weight is outside 1 +/- {MEAN_TOLERANCE} at time(s) {_fmt_times(off)} "
                        "(a misspecified treatment or censoring model, or near-positivity violations)")
    low = by.index[big & (by["ess_ratio"] < ESS_FRACTION)].tolist()
    if low:
        msgs.append(f"effective sample size is below {ESS_FRACTION:.0%} of those at risk at time(s) "
                    f"{_fmt_times(low)}")
    if msgs:
        warnings.warn(f"{label}: " + "; ".join(msgs) + ". IP-weighted intervals can cover far below 95% here: "
                      "consider truncation (truncate=(1, 99)), gt.bootstrap for the intervals, or the "
                      "g-formula (gt.GFormula), which does not divide by small probabilities.",
                      FitWarning, stacklevel=3)
    return msgs


def _fmt_times(ts: list) -> str:
    return ", ".join(str(t) for t in ts[:10]) + (" ..." if len(ts) > 10 else "")


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def at_risk_mask(pt, at_risk, absorbing: bool) -> np.ndarray:
    """Rows whose treatment is not fixed by design (they enter the treatment models)."""
    mask = np.ones(pt.n_rows, dtype=bool)
    if absorbing:
        mask &= previous_value(pt, pt.treatment) == 0
    if at_risk is not None:
        if callable(at_risk):
            m = np.asarray(at_risk(pt.data), dtype=bool)
        elif isinstance(at_risk, str):
            if at_risk not in pt.data.columns:
                raise DataError([Problem("missing_column", at_risk, f"at_risk column {at_risk!r} is not in the "
                                         f"data; available: {list(pt.data.columns)}", 0)])
            m = pt.data[at_risk].to_numpy(dtype=float) == 1
        else:
            m = np.asarray(at_risk, dtype=bool)
        if m.shape != (pt.n_rows,):
            raise ValueError("at_risk must give one value per row of the PersonTime")
        mask &= m
    return mask


def marginal_by_time(y: np.ndarray, fw: np.ndarray | None, times: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """P(y = 1 | time) among ``rows`` (frequency-weighted; ``fw=None``: unweighted), returned for every row."""
    times = np.asarray(times, dtype=np.int64)
    K = int(times.max()) + 1
    p = _wn.rate_by_time(np.asarray(y, dtype=float), _ONE if fw is None else fw, fw is not None, times,
                         np.asarray(rows, dtype=bool), K)
    return p[times]


def _positivity(p: np.ndarray, mask: np.ndarray, times: np.ndarray, time_values: np.ndarray, label: str,
                bounds: tuple[float, float] = (0.01, 0.99)) -> None:
    """:func:`check_positivity` over the rows in ``mask``, without copying the rows that are fine."""
    flag = p < bounds[0]
    flag |= p > bounds[1]
    flag &= mask
    if flag.any():
        check_positivity(p[flag], time_values[times[flag]], label, bounds)


def _check_binary_response(pt, model: Model, role: str) -> None:
    resp = model.response
    if resp not in pt.data.columns:
        raise DataError([Problem("missing_column", resp, f"{role} model response {resp!r} is not in the data; "
                                 f"available: {list(pt.data.columns)}", 0)])


# -- the specification -------------------------------------------------------------------


class IPTW:
    """Stabilised inverse probability of treatment (and censoring) weights.

    Parameters
    ----------
    treatment_model : gt.Model or str
        Denominator model :math:`f(A_t \\mid \\bar A_{t-1}, \\bar L_t, V)`, e.g.
        ``"A ~ L1 + L2 + lag1_A + W + time"`` (binomial by default; a
        scikit-learn classifier through ``gt.Model(..., learner=...)``).
    numerator_model : gt.Model or str, optional
        Numerator :math:`f(A_t \\mid \\bar A_{t-1}, V)`, e.g. ``"A ~ lag1_A + W + time"``.
        Default: the marginal probability of treatment at each time among those
        at risk (the saturated ``A ~ C(time)``). Any covariate in the numerator
        must also appear in the MSM.
    censor_model : gt.Model or str, optional
        Denominator :math:`P(C_t = 1 \\mid \\bar A_t, \\bar L_t, V)`, response the
        PersonTime's censor column. ``None``: no censoring weights.
    censor_numerator_model : gt.Model or str, optional
        Numerator of the censoring weights; default ``P(C_t = 1 | time)``.
    truncate : (float, float), optional
        Truncate the final weights at these *percentiles* of their distribution
        over uncensored person-time, e.g. ``(1, 99)``.
    truncate_values : (float, float), optional
        Truncate the final weights at these *values* instead, e.g. ``(0.1, 10)``.
    stabilized : bool
        ``False`` for unstabilised weights (numerators 1).
    absorbing_treatment : bool
        Treatment stays 1 once started: rows after initiation get treatment
        factor 1 and do not enter the treatment models. A treatment model with
        ``absorbing=True`` implies this.
    at_risk : str, callable or boolean array, optional
        Further restricts the rows whose treatment is random (0/1 column name,
        a function of ``pt.data`` returning a mask, or a mask); other rows get
        treatment factor 1, e.g. ``lambda d: d["time"] == 0`` for a baseline treatment.
    dag : gt.TimeDAG, optional
        If given, :meth:`fit` first checks that the treatment model's covariates
        are a valid sequential adjustment set in this DAG and raises
        ``gtools.IdentificationError`` showing the open path otherwise
        (:func:`gtools.dag.require_identified`).

    Notes
    -----
    Rows whose treatment is at risk contribute
    ``f_num(A_t) / f_den(A_t)`` with ``f(a) = p^a (1-p)^{1-a}``; uncensored rows
    contribute ``P_num(C_t = 0) / P_den(C_t = 0)``; each person's running
    products give the weights. The MSM then uses ``weights * pt.row_weights()``.

    References
    ----------
    Robins JM, Hernán MA, Brumback B (2000). Marginal structural models and
    causal inference in epidemiology. *Epidemiology* 11:550-560.
    Cole SR, Hernán MA (2008). Constructing inverse probability weights for
    marginal structural models. *Am J Epidemiol* 168:656-664.
    """

    def __init__(
        self,
        treatment_model: Model | str,
        numerator_model: Model | str | None = None,
        censor_model: Model | str | None = None,
        censor_numerator_model: Model | str | None = None,
        truncate: tuple[float, float] | None = None,
        truncate_values: tuple[float, float] | None = None,
        stabilized: bool = True,
        absorbing_treatment: bool = False,
        at_risk: str | Callable | np.ndarray | None = None,
        dag: Any = None,
    ):
        self.treatment_model = treatment_model
        self.numerator_model = numerator_model
        self.censor_model = censor_model
        self.censor_numerator_model = censor_numerator_model
        self.truncate = truncate
        self.truncate_values = truncate_values
        self.stabilized = stabilized
        self.absorbing_treatment = absorbing_treatment
        self.at_risk = at_risk
        self.dag = dag

    def __repr__(self) -> str:
        args = [f"treatment_model={self.treatment_model!r}"]
        for k in ("numerator_model", "censor_model", "censor_numerator_model", "truncate", "truncate_values"):
            v = getattr(self, k)
            if v is not None:
                args.append(f"{k}={v!r}")
        if not self.stabilized:
            args.append("stabilized=False")
        if self.absorbing_treatment:
            args.append("absorbing_treatment=True")
        return f"gt.IPTW({', '.join(args)})"

    # -- fitting -----------------------------------------------------------------
    def fit(self, pt, warn: bool = True) -> WeightsResult:
        """Fit the weight models on ``pt`` and return the weights and their diagnostics."""
        if pt.treatment is None:
            raise ValueError("IPTW needs a PersonTime with a treatment column")
        A = pt.treatment
        if self.dag is not None:
            require_identified(self.dag, pt, [self.treatment_model], label="IPTW")
        den = as_model(self.treatment_model)
        if den is None:
            raise ValueError("IPTW needs a treatment_model")
        _check_binary_response(pt, den, "treatment")
        if den.response != A:
            raise ValueError(f"treatment_model's response is {den.response!r}, but the treatment is {A!r}")
        num = as_model(self.numerator_model)
        cden, cnum = as_model(self.censor_model), as_model(self.censor_numerator_model)
        if cden is not None:
            if pt.censor is None:
                raise ValueError("a censor_model was given but the PersonTime has no censor column")
            if cden.response != pt.censor:
                raise ValueError(f"censor_model's response is {cden.response!r}, but the censor column is "
                                 f"{pt.censor!r}")

        risk = at_risk_mask(pt, self.at_risk, self.absorbing_treatment or den.absorbing)
        models: dict[str, FittedModel] = {"treatment": den.fit(pt, rows=risk, warn=warn)}
        if self.stabilized and num is not None:
            models["numerator"] = num.fit(pt, rows=risk, warn=warn)
        if cden is not None:
            models["censoring"] = cden.fit(pt, warn=warn)
            if self.stabilized and cnum is not None:
                models["censoring_numerator"] = cnum.fit(pt, warn=warn)
        stabilized = bool(self.stabilized)
        # one vector for the weights (the product), a few more while a factor is computed
        raw = _treatment_weights(pt, models, risk, stabilized, warn)
        if cden is not None:
            raw *= _censoring_weights(pt, models, stabilized, warn)
        bad = ~np.isfinite(raw)
        if bad.any():
            idx = np.flatnonzero(bad)[:5]
            ex = [(_py(pt.data[pt.id].iloc[i]), _py(pt.data[pt.time].iloc[i])) for i in idx]
            raise DataError([Problem("positivity", A, f"infinite weights on {int(bad.sum())} row(s) (predicted "
                                     f"probabilities of exactly 0 or 1); first: {ex}", int(bad.sum()), ex)])
        del bad
        res = WeightsResult(
            weights=pd.Series(raw, index=pt.data.index, name="weight", copy=False),
            truncation={"method": None, "lower": None, "upper": None, "n_lower": 0, "n_upper": 0},
            models=models,
            stabilized=stabilized,
            at_risk=risk,
            spec=self,
            _pt=pt,
        )
        if self.truncate is not None or self.truncate_values is not None:
            analysis = res.analysis_rows
            # the weights are truncated in place: the untruncated ones are recomputed when asked for
            _, res.truncation = truncate_weights(raw, pt.weights, analysis, self.truncate, self.truncate_values)
        if warn:
            flag_weights(res.summary(), res.stabilized, "IPTW")
        return res


def _factor_in_place(pt, p_den: np.ndarray, a: np.ndarray, mask: np.ndarray, numerator, times: np.ndarray,
                     stabilized: bool) -> np.ndarray:
    """Turn ``p_den`` (P(a = 1) from the denominator model) into f_num(a) / f_den(a) on ``mask``, 1 elsewhere.

    ``numerator`` is a FittedModel (evaluated row by row, no vector) or None for the marginal
    frequency at each time among ``mask``.
    """
    if not stabilized:
        _wn.inverse(a, mask, p_den)
    elif numerator is not None and numerator.learner is None and numerator.family == "binomial":
        from gtools import _colglm as K

        rec = numerator.recipe
        cols, var, _ = table_columns(pt, rec)
        K.ratio(cols, var, np.asarray(rec.fac_kind, dtype=np.int64), rec.packed_param(),
                np.asarray(rec.term_ptr, dtype=np.int64), np.ascontiguousarray(numerator.params, dtype=float),
                K.BINOMIAL, a, mask, p_den)
    elif numerator is not None:
        _wn.treatment_factor(a, p_den, numerator.predict_table(pt), mask, True, p_den)
    else:
        K_ = int(times.max()) + 1
        fw = pt.weights
        rates = _wn.rate_by_time(a, _ONE if fw is None else fw, fw is not None, times, mask, K_)
        _wn.ratio_from_rates(a, times, rates, mask, p_den)
    return p_den


def _treatment_weights(pt, models: dict, risk: np.ndarray, stabilized: bool, warn: bool) -> np.ndarray:
    """Running product, by person, of each row's treatment factor f_num(A_t) / f_den(A_t) (1 off ``risk``)."""
    fden = models["treatment"]
    fw = pt.weights
    times = np.asarray(pt.data[pt.time].to_numpy(), dtype=np.int64)
    a = _float_column(pt, pt.treatment)
    out = fden.predict_table(pt)  # P(A_t = 1 | ...), then the factor, then the running product
    if warn:
        _positivity(out, risk if fw is None else risk & (fw > 0), times, pt.time_values, fden.spec.label)
    _factor_in_place(pt, out, a, risk, models.get("numerator"), times, stabilized)
    _wn.cumprod_by_person(pt.person_index, out)
    return out


def _censoring_weights(pt, models: dict, stabilized: bool, warn: bool) -> np.ndarray:
    """Running product, by person, of P_num(C_t = 0) / P_den(C_t = 0) over uncensored rows (1 on censored)."""
    fcd = models["censoring"]
    fw = pt.weights
    times = np.asarray(pt.data[pt.time].to_numpy(), dtype=np.int64)
    c = _float_column(pt, pt.censor)
    uncensored = c != 1
    out = fcd.predict_table(pt)  # P(C_t = 1 | ...)
    if warn:
        _positivity(out, uncensored if fw is None else uncensored & (fw > 0), times, pt.time_values,
                    fcd.spec.label, bounds=(0.0, 0.99))
    # on uncensored rows c = 0, so f_num(c) / f_den(c) is P_num(C = 0) / P_den(C = 0); the marginal
    # numerator is the censoring frequency at each time over every row
    if stabilized and "censoring_numerator" not in models:
        K_ = int(times.max()) + 1
        rates = _wn.rate_by_time(c, _ONE if fw is None else fw, fw is not None, times,
                                 np.ones(pt.n_rows, dtype=bool), K_)
        _wn.ratio_from_rates(c, times, rates, uncensored, out)
    else:
        _factor_in_place(pt, out, c, uncensored, models.get("censoring_numerator"), times, stabilized)
    _wn.cumprod_by_person(pt.person_index, out)
    return out


# -- the result ------------------------------------------------------------------------


@dataclass
class WeightsResult:
    """Fitted IP weights and their diagnostics.

    Attributes
    ----------
    weights : pandas.Series
        Final weights (treatment x censoring, truncated if asked), aligned to ``pt.data``.
    treatment_weights, censoring_weights, untruncated : pandas.Series
        The components and the product before truncation.
    truncation : dict
        ``method``, ``lower``, ``upper`` (the bounds used) and ``n_lower``,
        ``n_upper`` (rows truncated at each end).
    models : dict of FittedModel
        ``"treatment"``, ``"numerator"``, ``"censoring"``, ``"censoring_numerator"``
        (those fitted).
    at_risk : numpy.ndarray
        Rows whose treatment entered the treatment models.
    """

    weights: pd.Series
    truncation: dict
    models: dict
    stabilized: bool
    at_risk: np.ndarray
    spec: IPTW
    _pt: Any = field(repr=False)
    _summary: pd.DataFrame | None = field(default=None, repr=False)
    _parts: dict = field(default_factory=dict, repr=False)

    # The components are recomputed from the fitted models when first asked for (and then kept):
    # a fit holds one weight vector, not four.
    def _part(self, name: str) -> np.ndarray:
        if name not in self._parts:
            pt = self._pt
            if name == "treatment":
                self._parts[name] = _treatment_weights(pt, self.models, self.at_risk, self.stabilized, False)
            elif name == "censoring":
                self._parts[name] = (_censoring_weights(pt, self.models, self.stabilized, False)
                                     if "censoring" in self.models else np.ones(pt.n_rows))
            elif self.truncation["method"] is None:
                self._parts[name] = self.weights.to_numpy()
            else:
                self._parts[name] = self._part("treatment") * self._part("censoring")
        return self._parts[name]

    @property
    def treatment_weights(self) -> pd.Series:
        """Running products of the treatment factors (before truncation)."""
        return pd.Series(self._part("treatment"), index=self.weights.index, name="treatment_weight")

    @property
    def censoring_weights(self) -> pd.Series:
        """Running products of the censoring factors (ones without a censoring model)."""
        return pd.Series(self._part("censoring"), index=self.weights.index, name="censoring_weight")

    @property
    def untruncated(self) -> pd.Series:
        """Treatment x censoring weights before truncation."""
        return pd.Series(self._part("untruncated"), index=self.weights.index, name="untruncated_weight")

    @property
    def analysis_rows(self) -> np.ndarray:
        """Uncensored rows with positive frequency weight (those that enter an outcome model)."""
        pt = self._pt
        rows = np.ones(pt.n_rows, dtype=bool)
        if pt.censor is not None:
            rows &= _float_column(pt, pt.censor) != 1
        if pt.weights is not None:
            rows &= pt.weights > 0
        return rows

    @property
    def estimates(self) -> pd.Series:
        """Mean weight and ESS ratio overall (named scalars, for the bootstrap)."""
        s = self.summary().loc["overall"]
        return pd.Series({"weight[mean]": s["mean"], "weight[max]": s["max"], "weight[ess_ratio]": s["ess_ratio"]})

    def summary(self) -> pd.DataFrame:
        """Distribution of the final weights over uncensored person-time, overall and by time.

        Columns: mean, sd, min, p1, p50, p99, max, at_risk (frequency-weighted
        rows), ess (Kish, :math:`(\\sum w)^2/\\sum w^2`) and ess_ratio = ess / at_risk.
        The ``overall`` row pools all person-time (so its ``at_risk`` counts
        person-intervals). A time is flagged (``FitWarning`` at fit) when at
        least 30 are at risk and the mean stabilised weight is outside
        1 ± 0.1, or the ESS is below a quarter of those at risk.
        """
        if self._summary is None:
            pt = self._pt
            times = np.asarray(pt.data[pt.time].to_numpy(), dtype=np.int64)
            self._summary = weight_table(self.weights.to_numpy(), pt.weights, times, self.analysis_rows,
                                         pt.time_values)
        return self._summary

    def balance(self, by_time: bool = True) -> pd.DataFrame:
        """Standardised mean differences between treated and untreated, unweighted and weighted.

        For every column of the treatment model's design (its covariates,
        products and dummies; not the intercept), at each time among the rows
        at risk of treatment:

        .. math:: SMD = (\\bar x_1 - \\bar x_0) / \\sqrt{(s_1^2 + s_0^2)/2},

        with means and variances weighted by the frequency weights
        (unweighted) or by frequency weights x the IP weight through that time
        (weighted; the censoring part through the previous interval, as
        censoring at t happens after treatment at t). The SD in the denominator
        is the unweighted one in both columns, so the two are comparable.
        ``by_time=False`` pools all person-time. Columns constant within a time
        are left out at that time.
        """
        pt = self._pt
        fden = self.models["treatment"]
        design = fden.spec.design(pt)  # read column by column: the design matrix is not built
        names = fden.names
        a = pt.data[pt.treatment].to_numpy(dtype=float)
        fw = pt.row_weights()
        times = pt.data[pt.time].to_numpy().astype(np.int64)
        # censoring weight through t-1 (censoring at t happens after treatment at t)
        cw = self.censoring_weights.to_numpy()
        codes = pt.person_index
        cw_prev = np.ones(pt.n_rows)
        cw_prev[1:] = np.where(codes[1:] == codes[:-1], cw[:-1], 1.0)
        w = self.treatment_weights.to_numpy() * cw_prev
        # truncation applies to the product; carry it over proportionally
        ratio = np.divide(self.weights.to_numpy(), self.untruncated.to_numpy(),
                          out=np.ones(pt.n_rows), where=self.untruncated.to_numpy() > 0)
        w = w * ratio
        rows = self.at_risk & (fw > 0)
        groups = [("all", rows)] if not by_time else [
            (_py(pt.time_values[t]), rows & (times == t)) for t in np.unique(times[rows])]
        splits = []
        for gi, (label, m) in enumerate(groups):
            t1, t0 = m & (a == 1), m & (a == 0)
            if fw[t1].sum() > 0 and fw[t0].sum() > 0:
                splits.append((gi, label, m, t1, t0))
        found = []
        for j, nm in enumerate(names):  # one design column at a time, every time within it
            if nm == "Intercept" or not splits:
                continue
            x = design.column(j)
            for gi, label, m, t1, t0 in splits:
                if np.ptp(x[m]) == 0:
                    continue
                m1u, v1u = _wmv(x[t1], fw[t1])
                m0u, v0u = _wmv(x[t0], fw[t0])
                sd = np.sqrt((v1u + v0u) / 2)
                m1w, _ = _wmv(x[t1], fw[t1] * w[t1])
                m0w, _ = _wmv(x[t0], fw[t0] * w[t0])
                if sd == 0:
                    continue
                found.append(((gi, j), {"time": label, "covariate": nm, "smd_unweighted": (m1u - m0u) / sd,
                                        "smd_weighted": (m1w - m0w) / sd, "mean_treated": m1u,
                                        "mean_untreated": m0u, "n_treated": float(fw[t1].sum()),
                                        "n_untreated": float(fw[t0].sum())}))
        recs = [r for _, r in sorted(found, key=lambda kr: kr[0])]  # by time, then design column
        tab = pd.DataFrame(recs)
        if len(tab):
            tab = tab.set_index(["time", "covariate"])
        return tab

    def plot(self, ax=None):
        """Weight distribution by time (box plot, log scale) and a Love plot of the pooled balance.

        Returns the two matplotlib axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        pt = self._pt
        rows = self.analysis_rows
        times = pt.data[pt.time].to_numpy()[rows]
        w = self.weights.to_numpy()[rows]
        ts = np.unique(times)
        ax[0].boxplot([w[times == t] for t in ts], positions=np.arange(len(ts)), showfliers=True,
                      flierprops={"markersize": 2})
        ax[0].set_yscale("log")
        ax[0].set_xticks(np.arange(len(ts)))
        ax[0].set_xticklabels([str(_py(pt.time_values[t])) for t in ts], rotation=90 if len(ts) > 12 else 0)
        ax[0].axhline(1.0, color="grey", lw=0.8, ls="--")
        ax[0].set_xlabel(pt.time)
        ax[0].set_ylabel("weight (log scale)")
        ax[0].set_title("IP weights by time")
        bal = self.balance(by_time=False)
        if len(bal):
            bal = bal.droplevel("time")
            y = np.arange(len(bal))
            ax[1].scatter(bal["smd_unweighted"].abs(), y, label="unweighted", marker="o")
            ax[1].scatter(bal["smd_weighted"].abs(), y, label="weighted", marker="x")
            ax[1].set_yticks(y)
            ax[1].set_yticklabels(bal.index)
            ax[1].axvline(0.1, color="grey", lw=0.8, ls="--")
            ax[1].legend()
        ax[1].set_xlabel("|standardised mean difference|")
        ax[1].set_title("Balance (Love plot, pooled person-time)")
        return ax

    def __repr__(self) -> str:
        s = self.summary().loc["overall"]
        kind = "stabilised" if self.stabilized else "unstabilised"
        tr = ""
        if self.truncation["method"]:
            tr = (f"; truncated at {self.truncation['method']}: {self.truncation['n_lower']} low, "
                  f"{self.truncation['n_upper']} high")
        return (f"<WeightsResult: {kind}, {self._pt.n_rows} rows; mean {s['mean']:.3f}, max {s['max']:.3g}, "
                f"ESS {s['ess']:.0f} of {s['at_risk']:.0f} person-time{tr}>")


def _wmv(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    sw = w.sum()
    m = float(np.sum(w * x) / sw)
    v = float(np.sum(w * (x - m) ** 2) / sw)
    return m, v
