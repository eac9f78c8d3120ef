"""Person-level (cluster) nonparametric bootstrap of any gtools estimator.

A replicate draws ``m`` persons with replacement (``m = n`` by default; all of
a person's rows travel together) and refits the estimator specification. The
draw is represented as frequency weights on the same :class:`PersonTime`
(``pt.with_person_counts(counts)``), so design matrices built once on the
full data are reused and a replicate costs model fitting (plus simulation),
not re-parsing.

Reproducibility: replicate b uses its own random stream from
``numpy.random.SeedSequence(seed).spawn(n_boot)[b]``, for the resampling and
for the estimator's own Monte Carlo (its ``seed`` is replaced by that
stream). Replicates are independent of how they are grouped into tasks, so
the result is identical for any ``n_jobs`` and any joblib backend (loky,
threading, dask).

Parallelism goes through joblib: the replicates are split into one chunk per
worker, so the data travel to each worker once, and each replicate returns
only its estimates. On a cluster::

    from dask.distributed import Client
    client = Client(...)
    with joblib.parallel_config(backend="dask"):
        boot = gt.bootstrap(spec, pt, n_boot=1000, n_jobs=-1)
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gtools.errors import FitWarning

__all__ = ["bootstrap", "BootstrapResult", "replicate_counts"]


def replicate_counts(rng: np.random.Generator, n_persons: int, weights: np.ndarray | None = None,
                     m: int | None = None) -> np.ndarray:
    """Multinomial counts of a person-level resample of size ``m`` (default n).

    With ``weights`` (e.g. an already weighted table), persons are drawn with
    probability proportional to them.
    """
    m = n_persons if m is None else int(m)
    idx = rng.choice(n_persons, size=m, replace=True, p=None if weights is None else weights / weights.sum())
    return np.bincount(idx, minlength=n_persons).astype(float)


def _run_chunk(estimator, pt, seeds: Sequence[np.random.SeedSequence], indices: Sequence[int],
               m: int | None) -> list[tuple[int, pd.Series | None, str | None]]:
    out = []
    base_w = None
    if pt.weights is not None:
        base_w = np.bincount(pt.person_index, weights=pt.weights) / np.bincount(pt.person_index)
    for b, ss in zip(indices, seeds):
        rng = np.random.default_rng(ss)
        try:
            counts = replicate_counts(rng, pt.n_persons, base_w, m)
            spec = copy.copy(estimator)
            if hasattr(spec, "seed"):
                spec.seed = rng
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = spec.fit(pt.with_person_counts(counts))
            est = pd.Series(res.estimates, dtype=float)
            out.append((b, est, None))
        except Exception as exc:  # recorded, never dropped silently
            out.append((b, None, f"{type(exc).__name__}: {exc}"))
    return out


@dataclass
class BootstrapResult:
    """Replicates and summaries of a person-level bootstrap.

    Attributes
    ----------
    point : pandas.Series
        Estimates from the full data.
    replicates : pandas.DataFrame
        One row per successful replicate (index: replicate number), one
        column per estimate.
    failures : pandas.DataFrame
        Replicate number and the exception type and message of each failed
        replicate.
    """

    point: pd.Series
    replicates: pd.DataFrame
    failures: pd.DataFrame
    n_boot: int
    alpha: float = 0.05
    ci: str = "percentile"
    m: int | None = None
    n_persons: int = 0
    fitted: Any = field(default=None, repr=False)

    @property
    def se(self) -> pd.Series:
        """Bootstrap standard error (SD of the replicates)."""
        return self.replicates.std(ddof=1)

    def conf_int(self, alpha: float | None = None, method: str | None = None) -> pd.DataFrame:
        """Confidence intervals: ``"percentile"`` or ``"normal"`` (point +/- z SE).

        With an m-out-of-n bootstrap (``m < n``) the percentile interval is
        rescaled: the quantiles of :math:`\\sqrt{m}(\\hat\\theta^*_m - \\hat\\theta)`
        are used for :math:`\\sqrt{n}(\\hat\\theta - \\theta)`.
        """
        from statistics import NormalDist

        alpha = self.alpha if alpha is None else alpha
        method = self.ci if method is None else method
        reps = self.replicates
        if method == "normal":
            z = NormalDist().inv_cdf(1 - alpha / 2)
            lo, hi = self.point - z * self.se, self.point + z * self.se
        elif method == "percentile":
            if self.m is not None and self.m != self.n_persons:
                r = np.sqrt(self.m / self.n_persons)
                dev = (reps - self.point) * r
                lo = self.point - dev.quantile(1 - alpha / 2)
                hi = self.point - dev.quantile(alpha / 2)
            else:
                lo, hi = reps.quantile(alpha / 2), reps.quantile(1 - alpha / 2)
        else:
            raise ValueError(f"ci must be 'percentile' or 'normal', got {method!r}")
        return pd.DataFrame({"lower": lo, "upper": hi})

    def summary(self) -> pd.DataFrame:
        """Point estimate (full data), bootstrap SE, percentile and normal CIs, per estimate."""
        pct = self.conf_int(method="percentile")
        nor = self.conf_int(method="normal")
        lvl = int(round(100 * (1 - self.alpha)))
        tab = pd.DataFrame({
            "estimate": self.point,
            "se": self.se,
            f"{lvl}% lower (percentile)": pct["lower"],
            f"{lvl}% upper (percentile)": pct["upper"],
            f"{lvl}% lower (normal)": nor["lower"],
            f"{lvl}% upper (normal)": nor["upper"],
        })
        tab.attrs["n_boot"] = self.n_boot
        tab.attrs["n_failed"] = len(self.failures)
        return tab

    def __repr__(self) -> str:
        msg = f"<BootstrapResult: {len(self.replicates)} of {self.n_boot} replicates succeeded"
        if len(self.failures):
            top = self.failures["error"].str.split(":").str[0].value_counts()
            msg += "; failures: " + ", ".join(f"{k} x{v}" for k, v in top.items())
        return msg + f"; {len(self.point)} estimates>\n{self.summary().to_string()}"


def bootstrap(
    estimator: Any,
    pt,
    n_boot: int = 200,
    n_jobs: int = 1,
    seed: int | np.random.SeedSequence = 0,
    ci: str = "percentile",
    alpha: float = 0.05,
    progress: bool | None = None,
    m: int | None = None,
) -> BootstrapResult:
    """Bootstrap any estimator by resampling persons with replacement.

    Parameters
    ----------
    estimator
        A specification with ``fit(pt)`` returning a result with ``.estimates``
        (a pandas Series of named scalars): GFormula, MSM, IPTW-based
        estimators, GEstimation, QLearning, ...
    pt : PersonTime
    n_boot : int
        Number of replicates.
    n_jobs : int
        Parallel workers (joblib; -1 = all cores). The result does not depend on it.
    seed : int or SeedSequence
        Root of the replicates' random streams.
    ci : {"percentile", "normal"}
        Default interval of :meth:`BootstrapResult.conf_int`.
    alpha : float
        1 - confidence level.
    progress : bool, optional
        Show a tqdm bar (default: when tqdm is installed and stderr is a terminal).
    m : int, optional
        Resample size for an m-out-of-n bootstrap (e.g. for non-regular
        Q-learning parameters); default n.

    Returns
    -------
    BootstrapResult
        With the full-data estimates, the replicates and any failures; more
        than 5% failed replicates is a :class:`~gtools.FitWarning`.
    """
    from joblib import Parallel, delayed

    if n_boot < 2:
        raise ValueError("n_boot must be at least 2")
    fitted = estimator.fit(pt)
    point = pd.Series(fitted.estimates, dtype=float)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seeds = root.spawn(n_boot)
    workers = _effective_jobs(n_jobs)
    n_chunks = 1 if workers == 1 else min(n_boot, workers * 4 if progress else workers)
    chunks = [list(c) for c in np.array_split(np.arange(n_boot), n_chunks) if len(c)]
    bar = _progress_bar(progress, n_boot)
    if workers == 1:
        results = []
        for c in chunks:
            for b in c:
                results.extend(_run_chunk(estimator, pt, [seeds[b]], [b], m))
                if bar is not None:
                    bar.update(1)
    else:
        par = Parallel(n_jobs=n_jobs, return_as="generator")
        results = []
        for part in par(delayed(_run_chunk)(estimator, pt, [seeds[b] for b in c], c, m) for c in chunks):
            results.extend(part)
            if bar is not None:
                bar.update(len(part))
    if bar is not None:
        bar.close()
    results.sort(key=lambda r: r[0])
    ok = [(b, est) for b, est, err in results if err is None]
    bad = [(b, err) for b, est, err in results if err is not None]
    reps = pd.DataFrame({b: est for b, est in ok}).T if ok else pd.DataFrame(columns=point.index)
    reps = reps.reindex(columns=point.index)
    reps.index.name = "replicate"
    failures = pd.DataFrame(bad, columns=["replicate", "error"])
    if len(bad) > 0.05 * n_boot:
        kinds = failures["error"].str.split(":").str[0].value_counts().to_dict()
        warnings.warn(f"{len(bad)} of {n_boot} bootstrap replicates failed ({kinds}); the intervals rest on the "
                      "rest. See .failures for the messages", FitWarning, stacklevel=2)
    if reps.isna().any().any():
        cols = reps.columns[reps.isna().any()].tolist()
        warnings.warn(f"some replicates lack estimates {cols[:5]} (e.g. a time with no one at risk)",
                      FitWarning, stacklevel=2)
    return BootstrapResult(point=point, replicates=reps.astype(float), failures=failures, n_boot=n_boot,
                           alpha=alpha, ci=ci, m=m, n_persons=pt.n_persons, fitted=fitted)


def _effective_jobs(n_jobs: int) -> int:
    if n_jobs is None or n_jobs == 1:
        return 1
    from joblib import parallel_config  # noqa: F401  (ensures a recent joblib)

    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return int(n_jobs)


def _progress_bar(progress: bool | None, total: int):
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    if progress is None and not sys.stderr.isatty():
        return None
    return tqdm(total=total, desc="bootstrap", unit="rep")
