"""Sensitivity analysis: E-values and refutation checks.

E-values
--------
The E-value (VanderWeele & Ding 2017) is the minimum strength of association,
on the risk-ratio scale, that an unmeasured confounder would need to have with
both the treatment and the outcome, conditional on the measured covariates,
to fully explain away an observed treatment-outcome risk ratio ``RR``:

.. math::

    E = RR + \\sqrt{RR (RR - 1)} \\quad (RR \\ge 1), \\qquad
    E = RR^* + \\sqrt{RR^* (RR^* - 1)},\\ RR^* = 1/RR \\quad (RR < 1).

For a confidence interval, the E-value is computed for the limit closer to
the null; it is 1 if the interval includes 1.  Other effect scales are first
approximated on the risk-ratio scale (odds ratios, hazard ratios, mean
differences; see the individual functions).

Refutation checks
-----------------
:func:`placebo_treatment`, :func:`random_common_cause`, :func:`data_subset`
and :func:`negative_control_outcome` refit an estimator on modified data and
compare the new estimate with what it should be if the analysis is sound.
They are falsification heuristics: passing them does not prove that the
estimate is unbiased, and the pass/fail rule is not a calibrated test.

References
----------
VanderWeele TJ, Ding P. Sensitivity analysis in observational research:
introducing the E-value. Ann Intern Med 2017; 167: 268-274.
Chinn S. A simple method for converting an odds ratio to effect size for use
in meta-analysis. Stat Med 2000; 19: 3127-3131.
Lipsitch M, Tchetgen Tchetgen E, Cohen T. Negative controls: a tool for
detecting confounding and bias in observational studies. Epidemiology 2010;
21: 383-388.
Sharma A, Kiciman E. DoWhy: an end-to-end library for causal inference.
arXiv:2011.04216 (the refutation ideas, not the code).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EValue",
    "RefutationResult",
    "data_subset",
    "evalue_from_estimate",
    "evalue_hr",
    "evalue_md",
    "evalue_of",
    "evalue_or",
    "evalue_rr",
    "negative_control_outcome",
    "placebo_treatment",
    "random_common_cause",
    "refutation_table",
]

_MD_FACTOR = 0.91  # RR ~ exp(0.91 d) for a standardised mean difference d (Chinn 2000)
_Z975 = 1.959963984540054


# =============================================================== E-values
@dataclass
class EValue:
    """E-value for a point estimate and its confidence interval.

    Attributes
    ----------
    point : float
        E-value for the point estimate.
    ci : float or None
        E-value for the confidence limit closer to the null (1 if the interval
        includes the null; None if that limit was not supplied).
    estimate_rr : float
        The point estimate approximated on the risk-ratio scale.
    scale : str
        Scale of the supplied estimate: ``"rr"``, ``"or"``, ``"hr"`` or ``"md"``.
    estimate, lo, hi : float or None
        The supplied estimate and confidence limits, on their own scale.
    rr_lo, rr_hi : float or None
        The confidence limits approximated on the risk-ratio scale.
    """

    point: float
    ci: float | None
    estimate_rr: float
    scale: str
    estimate: float | None = None
    lo: float | None = None
    hi: float | None = None
    rr_lo: float | None = None
    rr_hi: float | None = None

    def __str__(self) -> str:
        names = {"rr": "RR", "or": "OR", "hr": "HR", "md": "mean difference"}
        est = f"{names.get(self.scale, self.scale)} {self.estimate:.3g}" if self.estimate is not None else ""
        if self.lo is not None or self.hi is not None:
            lo = "?" if self.lo is None else f"{self.lo:.3g}"
            hi = "?" if self.hi is None else f"{self.hi:.3g}"
            est += f" (CI {lo} to {hi})"
        ci = "not available" if self.ci is None else f"{self.ci:.2f}"
        conv = "" if self.scale == "rr" else f", approx. RR {self.estimate_rr:.3g}"
        return f"E-value {self.point:.2f} for the estimate, {ci} for the CI limit [{est}{conv}]"

    def to_frame(self) -> pd.DataFrame:
        """Two-row table (``point``, ``ci``) with the estimate, its RR approximation and the E-value."""
        rr_bound: float | None = None
        bound: float | None = None
        if self.estimate_rr >= 1:
            rr_bound, bound = self.rr_lo, self.lo
        else:
            rr_bound, bound = self.rr_hi, self.hi
        return pd.DataFrame(
            {
                "estimate": [self.estimate, bound],
                "rr": [self.estimate_rr, rr_bound],
                "evalue": [self.point, self.ci],
            },
            index=pd.Index(["point", "ci"], name="quantity"),
        )


def _e(rr: float) -> float:
    """E-value of a risk ratio: RR + sqrt(RR (RR - 1)) after inverting protective ratios."""
    if not (rr > 0 and math.isfinite(rr)):
        raise ValueError(f"risk ratio must be positive and finite, got {rr}")
    if rr < 1:
        rr = 1.0 / rr
    return rr + math.sqrt(rr * (rr - 1.0))


def _evalue_from_rr(rr: float, lo: float | None, hi: float | None, scale: str,
                    estimate: float | None, elo: float | None, ehi: float | None) -> EValue:
    for name, v in (("lower limit", lo), ("upper limit", hi)):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be positive and finite on the ratio scale, got {v}")
    if lo is not None and lo > rr * (1 + 1e-12):
        raise ValueError(f"lower limit {lo} exceeds the estimate {rr}")
    if hi is not None and hi < rr * (1 - 1e-12):
        raise ValueError(f"upper limit {hi} is below the estimate {rr}")
    point = _e(rr)
    ci: float | None
    if rr >= 1:
        # harmful (or null) estimate: the lower limit is nearer the null
        ci = None if lo is None else (1.0 if lo <= 1 else _e(lo))
        if rr == 1:
            ci = 1.0
    else:
        ci = None if hi is None else (1.0 if hi >= 1 else _e(hi))
    return EValue(point=point, ci=ci, estimate_rr=rr, scale=scale, estimate=estimate, lo=elo, hi=ehi,
                  rr_lo=lo, rr_hi=hi)


def evalue_rr(rr: float, lo: float | None = None, hi: float | None = None) -> EValue:
    """E-value for a risk ratio (VanderWeele & Ding 2017).

    ``E = RR + sqrt(RR (RR - 1))`` for ``RR >= 1``; for ``RR < 1`` the same
    formula is applied to ``1/RR``.  The CI E-value uses the limit closer to
    the null (``lo`` if ``RR > 1``, ``hi`` if ``RR < 1``) and is 1 when the
    interval includes 1.

    Parameters
    ----------
    rr : float
        Risk ratio (> 0).
    lo, hi : float, optional
        Confidence limits.

    Returns
    -------
    EValue

    Examples
    --------
    >>> round(evalue_rr(3.9, lo=1.8, hi=8.7).point, 2), round(evalue_rr(3.9, lo=1.8).ci, 2)
    (7.26, 3.0)
    """
    return _evalue_from_rr(float(rr), _opt(lo), _opt(hi), "rr", float(rr), _opt(lo), _opt(hi))


def _opt(v: float | None) -> float | None:
    return None if v is None else float(v)


def _or_to_rr(or_: float, rare: bool) -> float:
    if not (or_ > 0 and math.isfinite(or_)):
        raise ValueError(f"odds ratio must be positive and finite, got {or_}")
    return or_ if rare else math.sqrt(or_)


def evalue_or(or_: float, lo: float | None = None, hi: float | None = None, rare: bool = False) -> EValue:
    """E-value for an odds ratio.

    With a rare outcome (< ~15% at the end of follow-up) ``RR ≈ OR``; with a
    common outcome ``RR ≈ sqrt(OR)`` (VanderWeele & Ding 2017, Table;
    VanderWeele 2017, Biometrics 73: 1485).  The approximation is applied to
    the estimate and to both limits, then :func:`evalue_rr` is used.

    Parameters
    ----------
    or_ : float
        Odds ratio (> 0).
    lo, hi : float, optional
        Confidence limits of the odds ratio.
    rare : bool
        Whether the outcome is rare.
    """
    def conv(v):
        return None if v is None else _or_to_rr(float(v), rare)

    return _evalue_from_rr(_or_to_rr(float(or_), rare), conv(lo), conv(hi), "or", float(or_), _opt(lo), _opt(hi))


def _hr_to_rr(hr: float, rare: bool) -> float:
    if not (hr > 0 and math.isfinite(hr)):
        raise ValueError(f"hazard ratio must be positive and finite, got {hr}")
    if rare or hr == 1:
        return hr
    return (1.0 - 0.5 ** math.sqrt(hr)) / (1.0 - 0.5 ** math.sqrt(1.0 / hr))


def evalue_hr(hr: float, lo: float | None = None, hi: float | None = None, rare: bool = False) -> EValue:
    """E-value for a hazard ratio.

    With a rare outcome ``RR ≈ HR``; with a common outcome
    ``RR ≈ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))`` (VanderWeele & Ding
    2017; VanderWeele 2020, Biometrics 76: 1070).  Applied to the estimate and
    the limits, then :func:`evalue_rr` is used.

    Parameters
    ----------
    hr : float
        Hazard ratio (> 0).
    lo, hi : float, optional
        Confidence limits of the hazard ratio.
    rare : bool
        Whether the outcome is rare.
    """
    def conv(v):
        return None if v is None else _hr_to_rr(float(v), rare)

    return _evalue_from_rr(_hr_to_rr(float(hr), rare), conv(lo), conv(hi), "hr", float(hr), _opt(lo), _opt(hi))


def evalue_md(
    d: float,
    se: float | None = None,
    *,
    sd: float,
    lo: float | None = None,
    hi: float | None = None,
) -> EValue:
    """E-value for a difference in means of a continuous outcome.

    The mean difference is standardised, ``delta = d / sd``, and converted
    with ``RR ≈ exp(0.91 delta)`` (VanderWeele & Ding 2017, from Chinn 2000).
    The confidence limits are ``exp(0.91 lo / sd)`` and ``exp(0.91 hi / sd)``
    when ``lo``/``hi`` are given, otherwise ``d ± 1.96 se`` is used, i.e.
    ``exp(0.91 delta ± 1.78 se / sd)``.

    Parameters
    ----------
    d : float
        Mean difference on the outcome's own scale.
    se : float, optional
        Standard error of ``d`` (ignored if ``lo`` or ``hi`` is given).
    sd : float
        Standard deviation of the outcome (pooled, or in the control group);
        pass ``sd=1`` if ``d`` is already standardised.
    lo, hi : float, optional
        Confidence limits of ``d``.
    """
    if not (sd > 0 and math.isfinite(sd)):
        raise ValueError(f"sd must be positive and finite, got {sd}")
    d = float(d)
    if lo is None and hi is None and se is not None:
        if se < 0:
            raise ValueError(f"se must be non-negative, got {se}")
        lo, hi = d - _Z975 * se, d + _Z975 * se
    def conv(v):
        return None if v is None else math.exp(_MD_FACTOR * float(v) / sd)

    return _evalue_from_rr(math.exp(_MD_FACTOR * d / sd), conv(lo), conv(hi), "md", d, _opt(lo), _opt(hi))


def evalue_from_estimate(
    estimate: float,
    lo: float | None,
    hi: float | None,
    scale: str,
    *,
    sd: float | None = None,
    rare: bool = False,
) -> EValue:
    """E-value for an estimate on a named scale; the entry point used by estimators.

    Parameters
    ----------
    estimate, lo, hi : float
        Estimate and confidence limits (limits may be None).
    scale : {"rr", "or", "hr", "md"}
        Risk ratio, odds ratio, hazard ratio or mean difference.
    sd : float, optional
        Outcome standard deviation; required for ``scale="md"``.
    rare : bool
        Rare-outcome approximation for ``"or"`` and ``"hr"``.
    """
    key = scale.lower()
    if key == "rr":
        return evalue_rr(estimate, lo, hi)
    if key == "or":
        return evalue_or(estimate, lo, hi, rare=rare)
    if key == "hr":
        return evalue_hr(estimate, lo, hi, rare=rare)
    if key == "md":
        if sd is None:
            raise ValueError("scale='md' needs the outcome standard deviation: pass sd=")
        return evalue_md(estimate, sd=sd, lo=lo, hi=hi)
    raise ValueError(f"unknown scale {scale!r}; use one of 'rr', 'or', 'hr', 'md'")


# ======================================================== refutation checks
@dataclass
class RefutationResult:
    """Outcome of one refutation check.

    Attributes
    ----------
    name : str
        Which check (``"placebo treatment"``, ...).
    estimate_name : str
        Which entry of ``result.estimates`` was compared.
    original : float
        Estimate on the unmodified data.
    new : float
        Mean of the estimates on the modified data over the repeats.
    new_se : float
        Monte Carlo standard error of ``new``: SD over repeats / sqrt(n)
        (NaN with fewer than two repeats).
    spread : float
        SD of the estimates over the repeats.
    expected : float
        What ``new`` should be if the analysis is sound.
    tolerance : float
        Half-width of the acceptance band: ``2 * se`` if the caller supplied
        the estimator's own standard error ``se``, else ``2 * spread``.
    passed : bool or None
        ``|new - expected| <= tolerance``; None when no tolerance is available.
    n : int
        Number of successful refits.
    values : numpy.ndarray
        The estimate from each refit.
    note : str
        Caveats (e.g. an estimator that ignored an added column).
    """

    name: str
    estimate_name: str
    original: float
    new: float
    new_se: float
    spread: float
    expected: float
    tolerance: float
    passed: bool | None
    n: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    note: str = ""

    def __str__(self) -> str:
        verdict = {True: "passed", False: "FAILED", None: "undetermined"}[self.passed]
        s = (f"{self.name} [{self.estimate_name}]: {verdict}; original {self.original:.4g}, "
             f"new {self.new:.4g} (MC SE {self.new_se:.2g}, spread {self.spread:.2g}, n={self.n}), "
             f"expected {self.expected:.4g} ± {self.tolerance:.2g}")
        return s + (f"; note: {self.note}" if self.note else "")

    def to_frame(self) -> pd.DataFrame:
        """One-row table of the scalar fields."""
        row = {k: getattr(self, k) for k in ("name", "estimate_name", "original", "new", "new_se", "spread",
                                               "expected", "tolerance", "passed", "n", "note")}
        return pd.DataFrame([row])


def refutation_table(results: Sequence[RefutationResult]) -> pd.DataFrame:
    """Stack several :class:`RefutationResult` objects into one table."""
    if not results:
        return pd.DataFrame(columns=["name", "estimate_name", "original", "new", "new_se", "spread",
                                     "expected", "tolerance", "passed", "n", "note"])
    return pd.concat([r.to_frame() for r in results], ignore_index=True)


def _estimate(estimator: Any, pt: Any, estimate_name: str | None) -> tuple[float, str]:
    result = estimator.fit(pt)
    est = getattr(result, "estimates", None)
    if not isinstance(est, pd.Series):
        raise TypeError("estimator.fit(pt) must return an object whose .estimates is a pandas Series")
    if estimate_name is None:
        if len(est) != 1:
            raise ValueError(f"several estimates {list(est.index)}; pass estimate_name=")
        estimate_name = str(est.index[0])
    if estimate_name not in est.index:
        raise KeyError(f"estimate {estimate_name!r} not in {list(est.index)}")
    return float(est[estimate_name]), estimate_name


def _summarise(name: str, estimate_name: str, original: float, values: list[float], expected: float,
               se: float | None, note: str = "") -> RefutationResult:
    arr = np.asarray(values, dtype=float)
    n = len(arr)
    new = float(arr.mean()) if n else math.nan
    spread = float(arr.std(ddof=1)) if n > 1 else math.nan
    new_se = spread / math.sqrt(n) if n > 1 else math.nan
    tol = 2.0 * se if se is not None else 2.0 * spread
    passed: bool | None
    if n == 0 or not math.isfinite(tol):
        passed = None
    else:
        passed = bool(abs(new - expected) <= tol)
    return RefutationResult(name=name, estimate_name=estimate_name, original=original, new=new, new_se=new_se,
                            spread=spread, expected=expected, tolerance=tol, passed=passed, n=n, values=arr,
                            note=note)


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")


def placebo_treatment(
    estimator: Any,
    pt: Any,
    estimate_name: str | None = None,
    n: int = 20,
    seed: int = 0,
    se: float | None = None,
    expected: float = 0.0,
) -> RefutationResult:
    """Placebo-treatment refutation: permuting treatment should remove the effect.

    At each time, the treatment values of the rows at that time are randomly
    permuted across persons, preserving the treatment prevalence at each time
    but breaking every link between treatment and covariates or outcome.  The
    estimator is refitted ``n`` times; on a difference scale the expected
    effect is 0 (pass ``expected=1`` for ratio-scale estimates).  Note that
    permutation also breaks each person's treatment history (e.g. sustained
    treatment patterns), so it is a check of the pipeline, not a null model
    of the actual treatment process.

    Pass/fail rule: ``|mean(new) - expected| <= 2 * se`` where ``se`` is the
    estimator's own standard error of the original estimate if supplied,
    otherwise the SD of the placebo estimates over the repeats (which
    approximates the sampling SD of a single placebo estimate).

    Parameters
    ----------
    estimator : object
        Has ``.fit(pt)`` returning an object with ``.estimates`` (pandas Series).
    pt : PersonTime-like
        Has ``.data``, ``.time``, ``.treatment`` and ``.replace_data(df)``.
    estimate_name : str, optional
        Which estimate to compare (optional if there is only one).
    n : int
        Number of permutations.
    seed : int
        Seed of the random generator.
    se : float, optional
        Standard error of the original estimate.
    expected : float
        Expected placebo effect.
    """
    _check_n(n)
    original, estimate_name = _estimate(estimator, pt, estimate_name)
    rng = np.random.default_rng(seed)
    data = pt.data
    groups = list(data.groupby(pt.time, sort=True).indices.values())
    col = data.columns.get_loc(pt.treatment)
    values = []
    for _ in range(n):
        df = data.copy()
        a = df.iloc[:, col].to_numpy().copy()
        for idx in groups:
            a[idx] = a[rng.permutation(idx)]
        df.iloc[:, col] = a
        values.append(_estimate(estimator, pt.replace_data(df), estimate_name)[0])
    return _summarise("placebo treatment", estimate_name, original, values, expected, se)


def random_common_cause(
    estimator: Any | Callable[[str], Any],
    pt: Any,
    estimate_name: str | None = None,
    n: int = 20,
    seed: int = 0,
    se: float | None = None,
    column: str = "_random_cc",
) -> RefutationResult:
    """Random-common-cause refutation: adjusting for noise should not move the estimate.

    A column ``column`` holding one standard-normal draw per person (constant
    within person) is added to the data, the estimator is refitted with it as
    an extra covariate, and the new estimate is compared with the original
    (expected value = original estimate).

    Because an estimator's model formulas are fixed when it is specified,
    ``estimator`` may be a factory ``estimator(extra_covariate_name)`` that
    returns an estimator including that covariate in its models, and
    ``estimator(None)`` the estimator without it (used for the original
    estimate); this is the informative use.  If a ready estimator (anything with ``.fit``) is given,
    the column is only added to the data and the estimator must pick it up
    by itself; if every refit reproduces the original estimate exactly, the
    column was evidently ignored and ``note`` says the check is uninformative.

    Pass/fail rule: ``|mean(new) - original| <= 2 * se`` with ``se`` the
    estimator's own standard error if supplied, else the SD over repeats.

    Parameters
    ----------
    estimator : object or callable
        Estimator, or factory ``f(column_name or None) -> estimator``.
    pt : PersonTime-like
        Has ``.data``, ``.id`` and ``.replace_data(df)``.
    estimate_name, n, seed, se
        As in :func:`placebo_treatment`.
    column : str
        Name of the added column.
    """
    _check_n(n)
    is_factory = not hasattr(estimator, "fit") and callable(estimator)
    if is_factory:
        try:
            base = estimator(None)
        except Exception as exc:
            raise TypeError(
                "random_common_cause: the factory must return the estimator without the extra covariate "
                "when called with None (factory(None)), and with it when called with the column name"
            ) from exc
        est_obj = estimator(column)
    else:
        base = est_obj = estimator
    original, estimate_name = _estimate(base, pt, estimate_name)
    data = pt.data
    if column in data.columns:
        raise ValueError(f"column {column!r} already exists in the data")
    rng = np.random.default_rng(seed)
    ids = pd.unique(data[pt.id])
    values = []
    for _ in range(n):
        draw = pd.Series(rng.standard_normal(len(ids)), index=ids)
        df = data.copy()
        df[column] = data[pt.id].map(draw).to_numpy()
        values.append(_estimate(est_obj, pt.replace_data(df), estimate_name)[0])
    note = ""
    if not is_factory and np.allclose(values, original, rtol=1e-12, atol=1e-14):
        note = ("every refit equals the original estimate: the estimator ignored the added column; "
                "pass a factory f(column_name) -> estimator to make this check informative")
        warnings.warn(note, UserWarning, stacklevel=2)
    return _summarise("random common cause", estimate_name, original, values, original, se, note)


def data_subset(
    estimator: Any,
    pt: Any,
    estimate_name: str | None = None,
    fraction: float = 0.8,
    n: int = 20,
    seed: int = 0,
    se: float | None = None,
) -> RefutationResult:
    """Data-subset refutation: refitting on random subsets of persons should give similar estimates.

    Each repeat keeps a random ``fraction`` of the persons (all their rows),
    sampled without replacement, and refits; the expected value is the
    original estimate.

    Pass/fail rule: ``|mean(new) - original| <= 2 * se`` with ``se`` the
    estimator's own standard error if supplied, else the SD over repeats.
    (The SD of subset estimates is about ``sqrt((1 - f) / f)`` times the
    estimator's SE, so supplying ``se`` gives the more meaningful band.)

    Parameters
    ----------
    estimator : object
        Has ``.fit(pt)`` returning an object with ``.estimates``.
    pt : PersonTime-like
        Has ``.data``, ``.id`` and ``.replace_data(df)``.
    fraction : float
        Share of persons kept, in (0, 1].
    estimate_name, n, seed, se
        As in :func:`placebo_treatment`.
    """
    _check_n(n)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    original, estimate_name = _estimate(estimator, pt, estimate_name)
    rng = np.random.default_rng(seed)
    data = pt.data
    ids = pd.unique(data[pt.id])
    k = max(1, round(fraction * len(ids)))
    values = []
    for _ in range(n):
        keep = rng.choice(ids, size=k, replace=False)
        df = data[data[pt.id].isin(keep)].copy()
        values.append(_estimate(estimator, pt.replace_data(df), estimate_name)[0])
    return _summarise("data subset", estimate_name, original, values, original, se)


def negative_control_outcome(
    estimator_factory: Callable[[str], Any],
    pt: Any,
    outcome_col: str,
    estimate_name: str | None = None,
    expected: float = 0.0,
    se: float | None = None,
    n_boot: int = 20,
    seed: int = 0,
) -> RefutationResult:
    """Negative-control-outcome refutation: no effect on an outcome treatment cannot affect.

    ``estimator_factory(outcome_col)`` must return an estimator of the same
    contrast with ``outcome_col`` as the outcome -- a variable that shares the
    confounders of the real outcome but cannot be caused by treatment (e.g.
    measured before treatment).  A non-null estimate signals residual
    confounding or another bias (Lipsitch et al. 2010).  ``original`` and
    ``new`` both hold the negative-control estimate.

    Pass/fail rule: ``|estimate - expected| <= 2 * se`` where ``se`` is the
    caller-supplied standard error of the negative-control estimate or, if
    None and ``n_boot > 1``, the SD of the estimate over ``n_boot``
    nonparametric bootstrap resamples of persons (persons drawn with
    replacement and relabelled ``0..N-1``).  With neither, ``passed`` is None.

    Parameters
    ----------
    estimator_factory : callable
        ``f(outcome_col) -> estimator``.
    pt : PersonTime-like
        Has ``.data``, ``.id`` and ``.replace_data(df)``.
    outcome_col : str
        Negative-control outcome column.
    estimate_name : str, optional
        Which estimate to compare.
    expected : float
        Null value (0 on a difference scale, 1 on a ratio scale).
    se : float, optional
        Standard error of the negative-control estimate.
    n_boot : int
        Bootstrap resamples used when ``se`` is None (0 to skip).
    seed : int
        Seed of the bootstrap.
    """
    if outcome_col not in pt.data.columns:
        raise KeyError(f"negative-control outcome {outcome_col!r} is not a column of the data")
    estimator = estimator_factory(outcome_col)
    value, estimate_name = _estimate(estimator, pt, estimate_name)
    boot: list[float] = []
    if se is None and n_boot > 1:
        rng = np.random.default_rng(seed)
        data = pt.data
        ids = pd.unique(data[pt.id])
        pos = data.groupby(pt.id, sort=False).indices
        for _ in range(n_boot):
            draw = rng.choice(len(ids), size=len(ids), replace=True)
            rows = [pos[ids[j]] for j in draw]
            df = data.iloc[np.concatenate(rows)].reset_index(drop=True)
            df[pt.id] = np.repeat(np.arange(len(draw)), [len(r) for r in rows])
            boot.append(_estimate(estimator, pt.replace_data(df), estimate_name)[0])
    tol_se = se
    if tol_se is None and len(boot) > 1:
        tol_se = float(np.std(boot, ddof=1))
    res = _summarise("negative control outcome", estimate_name, value, [value], expected, tol_se)
    res.values = np.asarray(boot if boot else [value], dtype=float)
    if boot:
        res.spread = float(np.std(boot, ddof=1))
        res.note = f"tolerance from {len(boot)} person-level bootstrap resamples"
    elif se is None:
        res.note = "no standard error: pass se= or n_boot > 1 to decide"
    res.n = 1
    return res


# ============================================ E-values of fitted results
def _outcome_sd_and_share(pt: Any, outcome: str | None = None) -> tuple[float, float]:
    """Frequency-weighted SD of the person-level outcome and the share with the event (or mean)."""
    outcome = outcome or pt.outcome
    d = pt.data
    w = pt.row_weights()
    if pt.outcome_type == "survival":
        ev = np.nan_to_num(d[outcome].to_numpy(dtype=float))
        per = np.zeros(pt.n_persons)
        np.maximum.at(per, pt.person_index, ev)
        pw = np.zeros(pt.n_persons)
        np.maximum.at(pw, pt.person_index, w)
        y, ww = per, pw
    else:
        last = pt.last_rows
        y, ww = d[outcome].to_numpy(dtype=float)[last], w[last]
        ok = ~np.isnan(y) & (ww > 0)
        y, ww = y[ok], ww[ok]
    m = float(np.sum(ww * y) / np.sum(ww))
    sd = float(np.sqrt(np.sum(ww * (y - m) ** 2) / max(np.sum(ww) - 1, 1)))
    return sd, m


def _ci_pair(ci: Any) -> tuple[float | None, float | None]:
    if ci is None:
        return None, None
    lo, hi = ci
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def evalue_of(
    result: Any,
    what: str | None = None,
    reference: str | None = None,
    *,
    t: Any = None,
    ci: tuple[float, float] | None = None,
    rare: bool | None = None,
    scale: str | None = None,
) -> EValue:
    """E-value of a fitted gtools result; what ``result.evalue(...)`` calls.

    * :class:`~gtools.msm.MSMResult`, a coefficient (``what`` = term name,
      default the first term that reads the treatment): ``exp(coef)`` with its
      Wald CI, as a hazard ratio for a survival outcome (the pooled-logistic
      odds ratio approximates the discrete-time hazard ratio), an odds ratio
      for a binary outcome, a rate ratio (``"rr"``) for poisson, and a mean
      difference standardised by the outcome SD for gaussian;
    * an MSM, clone-censor-weight or g-formula risk contrast (``what`` and
      ``reference`` regime names): the risk ratio at time ``t`` (default the
      last), or for a continuous end-of-follow-up outcome the mean difference
      over the outcome SD. These estimators have no analytic CI: pass
      ``ci=(lower, upper)`` on the same scale, e.g. bootstrap percentiles of
      ``rr[a-b,t=..]``;
    * :class:`~gtools.gestimation.SNMResult`: the blip parameter ``what``
      (default the treatment's main term) as a mean difference,
      ``psi / SD(Y)`` (VanderWeele & Ding 2017), with its sandwich CI.

    ``rare`` (for odds and hazard ratios) defaults to whether fewer than 15%
    of persons have the event (or the binary outcome).
    """
    from gtools.gestimation import SNMResult
    from gtools.msm import CCWResult, MSMResult

    pt = getattr(result, "_pt", None)
    pt = getattr(result, "pt", None) if pt is None else pt
    if pt is None:
        raise TypeError(f"evalue_of does not know {type(result).__name__}")
    sd, share = _outcome_sd_and_share(pt, getattr(result, "outcome_name", None) or None)
    if rare is None:
        rare = bool(pt.outcome_type != "continuous" and share < 0.15)
    lo, hi = _ci_pair(ci)

    if isinstance(result, SNMResult):
        term = what or result.names[0]
        if term not in result.names:
            raise KeyError(f"no blip term {term!r}; terms: {result.names}")
        psi = float(result.params[term])
        if ci is None and result.cov is not None:
            c = result.conf_int().loc[term]
            lo, hi = float(c["lower"]), float(c["upper"])
        return evalue_md(psi, sd=sd, lo=lo, hi=hi)

    if isinstance(result, MSMResult) and (reference is None):
        trt = pt.treatment
        term = what or next((n for n in result.names if trt in n.split(":") or trt in n), None)
        if term is None or term not in result.names:
            raise KeyError(f"no MSM term {what!r}; terms: {result.names}")
        coef = float(result.params[term])
        c = result.conf_int().loc[term]
        clo, chi = float(c["lower"]), float(c["upper"])
        if result.family == "gaussian":
            return evalue_md(coef, sd=sd, lo=clo, hi=chi)
        key = scale or ("rr" if result.family == "poisson" else "hr" if pt.outcome_type == "survival" else "or")
        return evalue_from_estimate(math.exp(coef), math.exp(clo), math.exp(chi), key, rare=rare)

    # a contrast of two regimes
    if what is None or reference is None:
        raise ValueError("give two regime names: result.evalue('always', 'never')")
    if isinstance(result, (MSMResult, CCWResult)):
        if isinstance(result, MSMResult) and result._risk is None:
            raise ValueError("call .risk({...}) with the regimes first (or give regimes= to gt.MSM)")
        tab = result.contrast(what, reference)
        ra, rb = tab[f"risk[{what}]"], tab[f"risk[{reference}]"]
        if pt.outcome_type == "continuous":
            return evalue_md(float(ra.iloc[-1] - rb.iloc[-1]), sd=sd, lo=lo, hi=hi)
    else:  # GFormulaResult
        if pt.outcome_type == "continuous":
            diff = float(result.mean[what] - result.mean[reference])
            return evalue_md(diff, sd=sd, lo=lo, hi=hi)
        if pt.outcome_type == "survival":
            ra, rb = result.risk[what], result.risk[reference]
        else:
            ra, rb = pd.Series([result.mean[what]]), pd.Series([result.mean[reference]])
    if t is None:
        k = len(ra) - 1
    else:
        pos = [i for i, v in enumerate(ra.index) if v == t or str(v) == str(t)]
        if not pos:
            raise KeyError(f"no time {t!r}; times: {list(ra.index)}")
        k = pos[0]
    a, b = float(ra.iloc[k]), float(rb.iloc[k])
    if not (a > 0 and b > 0):
        raise ValueError(f"risks {a:.4g} and {b:.4g} must be positive for a risk ratio")
    return evalue_from_estimate(a / b, lo, hi, scale or "rr", rare=rare)
