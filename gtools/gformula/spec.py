"""The g-formula specification: fit every model once, then simulate every regime."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gtools import regimes as _regimes
from gtools.dag import require_identified
from gtools.errors import DataError, Problem
from gtools.gformula import engine as E
from gtools.models import Model

__all__ = ["GFormula"]

_COMPETING = ("total", "censor")


def _as_model(m: Model | str, family: str) -> Model:
    if isinstance(m, Model):
        return m
    if isinstance(m, str):
        return Model(m, family=family)
    raise TypeError(f"expected a gt.Model or a formula string, got {m!r}")


def _covariate_family(pt, formula: str) -> str:
    resp = Model(formula).response
    if resp in pt.data.columns:
        v = pt.data[resp].to_numpy(dtype=float)
        v = v[~np.isnan(v)]
        if len(v) and np.all(np.isin(v, (0.0, 1.0))):
            return "binomial"
    return "gaussian"


def seed_sequence(seed) -> np.random.SeedSequence:
    """A SeedSequence from an int, a SeedSequence or a Generator (whose state advances)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63 - 1)))
    return np.random.SeedSequence(seed)


class GFormula:
    r"""Parametric g-formula (g-computation) by Monte Carlo simulation.

    For a regime :math:`g` the g-formula (Robins, 1986) identifies the
    counterfactual risk of the outcome by the end of interval :math:`t`,

    .. math::

        \Pr(Y^g_t = 1) = \sum_{\bar l_t} \sum_{k=0}^{t} h_k(\bar a_k, \bar l_k)
            \prod_{j<k} \{1 - h_j(\bar a_j, \bar l_j)\}
            \prod_{j \le k} f(l_j \mid \bar a_{j-1}, \bar l_{j-1}),

    with :math:`a_j = g(\bar a_{j-1}, \bar l_j)` and :math:`h_k` the discrete
    hazard of the outcome, under consistency, sequential exchangeability
    :math:`Y^g \perp A_k \mid \bar A_{k-1}, \bar L_k` (and the same for
    censoring) and positivity. It is estimated by fitting parametric models
    for every time-varying covariate, the outcome (and the treatment, for the
    natural course) and evaluating the formula by Monte Carlo: baseline rows
    are resampled, covariates drawn from their models interval by interval,
    treatment set by the regime, and each simulated person's risk accumulated
    from the predicted hazards, :math:`r_t = r_{t-1} + S_{t-1} h_t`,
    :math:`S_t = S_{t-1}(1 - h_t)`, never from drawn events. The estimate is
    the mean of :math:`r_t` over simulated persons; its Monte Carlo SE is
    reported beside it (sampling uncertainty: :func:`gtools.bootstrap`).

    Censoring: the estimand is the risk had nobody been censored; every model
    is fitted on uncensored person-time and simulated persons are never
    censored. Competing events (``competing_model``), ``competing="total"``
    (default): the competing event is not prevented and the estimand is the
    cumulative incidence :math:`\sum_{k \le t} S_{k-1}(1 - d_k) h_k` with
    :math:`S_k = S_{k-1}(1-d_k)(1-h_k)` and :math:`d_k` the competing
    hazard (which, in gfoRmula's convention, occurs before the outcome in an
    interval): the total effect of treatment, including effects through the
    competing event. ``competing="censor"`` treats the competing event as
    censoring (abolished, :math:`d_k = 0`): a controlled direct effect-type
    estimand that needs exchangeability for the competing event too.
    End-of-follow-up outcomes (``"binary"``, ``"continuous"``): the estimand
    is :math:`E[Y^g]` at the last interval, the mean of the outcome model's
    prediction over simulated persons.

    Order within an interval: history features that look only at the past;
    each covariate in the listed order (features of it updated right after
    it is drawn); treatment from the regime (natural course: drawn from
    ``treatment_model``) and its features; the competing event and the
    outcome. In the first interval the time-varying covariates and the
    natural treatment are the observed values of the resampled persons; the
    covariate and treatment models are fitted on the later intervals.

    Parameters
    ----------
    covariate_models : sequence of Model or str
        One model per simulated time-varying covariate, in simulation order
        (a formula string gets a binomial family for a 0/1 column, gaussian
        otherwise).
    outcome_model : Model or str
        Pooled-logistic hazard for a survival outcome; the end-of-follow-up
        outcome's model otherwise (fitted on the last interval).
    treatment_model : Model or str, optional
        Needed by the natural course and regimes relative to it.
    censor_model : Model or str, optional
        Censoring model; used only by :meth:`GFormulaResult.natural_course`
        to weight the observed covariate means by inverse probability of
        remaining uncensored.
    competing_model : Model or str, optional
        Hazard of the competing event (survival outcome with a competing role).
    regimes : mapping of name -> Regime
        Default: natural course, always and never treat.
    n_samples : int
        Simulated persons (may exceed the number of persons).
    time_points : int, optional
        Number of intervals to simulate (default: all).
    seed : int or numpy.random.Generator
    keep_simulated : bool or str
        Keep the simulated person-time of the first regime (or the named one)
        as ``result.simulated``.
    competing : {"total", "censor"}
    engine : {"numba", "numpy"}
        ``"numpy"`` is the pure-numpy reference path.
    dag : gt.TimeDAG, optional
        Check at :meth:`fit` that the covariates the models read are a valid
        sequential adjustment set in this DAG (``IdentificationError`` with
        the open path otherwise; :func:`gtools.dag.require_identified`).

    References
    ----------
    Robins JM (1986). A new approach to causal inference in mortality studies
    with a sustained exposure period. Math Modelling 7:1393-1512.
    Taubman SL, Robins JM, Mittleman MA, Hernán MA (2009). Intervening on
    risk factors for coronary heart disease. Int J Epidemiol 38:1599-1611.
    Young JG, Stensrud MJ, Tchetgen Tchetgen EJ, Hernán MA (2020). A causal
    framework for classical statistical estimands in failure-time settings
    with competing events. Stat Med 39:1199-1236.
    Hernán MA, Robins JM (2020). Causal Inference: What If, ch. 13 and 21.
    """

    def __init__(
        self,
        covariate_models: Sequence[Model | str] = (),
        outcome_model: Model | str | None = None,
        treatment_model: Model | str | None = None,
        censor_model: Model | str | None = None,
        competing_model: Model | str | None = None,
        regimes: Mapping[str, Any] | None = None,
        n_samples: int = 10_000,
        time_points: int | None = None,
        seed: int | np.random.Generator | None = 0,
        keep_simulated: bool | str = False,
        competing: str = "total",
        engine: str = "numba",
        dag: Any = None,
    ):
        self.dag = dag
        self.covariate_models = covariate_models
        self.outcome_model = outcome_model
        self.treatment_model = treatment_model
        self.censor_model = censor_model
        self.competing_model = competing_model
        self.regimes = regimes
        self.n_samples = n_samples
        self.time_points = time_points
        self.seed = seed
        self.keep_simulated = keep_simulated
        self.competing = competing
        self.engine = engine

    def __repr__(self) -> str:
        regs = list(self._regimes())
        return (f"GFormula(covariates={[str(getattr(m, 'formula', m)) for m in self.covariate_models]}, "
                f"outcome={getattr(self.outcome_model, 'formula', self.outcome_model)!r}, regimes={regs}, "
                f"n_samples={self.n_samples})")

    def _regimes(self) -> dict[str, Any]:
        if self.regimes is None:
            regs = {"always": _regimes.always(), "never": _regimes.never()}
            if self.treatment_model is not None:
                regs = {"natural": _regimes.natural(), **regs}
            return regs
        if not isinstance(self.regimes, Mapping) or not self.regimes:
            raise TypeError("regimes must be a non-empty mapping of name -> regime")
        return dict(self.regimes)

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, pt) -> GFormulaResult:  # noqa: F821 - forward reference
        """Fit the models on ``pt``, simulate every regime and return a :class:`GFormulaResult`."""
        from gtools.gformula.result import GFormulaResult

        if self.dag is not None:  # every covariate its models read
            require_identified(self.dag, pt, [*self.covariate_models, self.treatment_model, self.outcome_model],
                               label="GFormula")
        fitted = self._fit_models(pt)
        plan = self._plan(pt, fitted)
        ss_base, ss_sim = seed_sequence(self.seed).spawn(2)
        M0 = self._baseline(pt, plan, np.random.default_rng(ss_base))
        regs = self._regimes()
        keep = self.keep_simulated
        keep_name = (next(iter(regs)) if keep is True else keep) if keep else None
        if keep_name is not None and keep_name not in regs:
            raise ValueError(f"keep_simulated={keep_name!r} is not one of the regimes {list(regs)}")
        accs = run_regimes(plan, regs, M0, fitted["T"], ss_sim, self._engine(), keep_name=keep_name)
        return GFormulaResult(spec=self, pt=pt, plan=plan, fitted=fitted, regimes=regs, accumulators=accs,
                              M0=M0, seed_sim=ss_sim, keep_name=keep_name)

    def _engine(self) -> str:
        if self.engine not in ("numba", "numpy"):
            raise ValueError(f"engine must be 'numba' or 'numpy', got {self.engine!r}")
        return self.engine

    def _fit_models(self, pt) -> dict[str, Any]:
        if not hasattr(pt, "data") or not hasattr(pt, "row_weights"):
            raise TypeError(f"GFormula.fit expects a gt.PersonTime, got {type(pt).__name__}")
        if pt.treatment is None:
            raise ValueError("the PersonTime has no treatment column: declare treatment= in from_long")
        if self.outcome_model is None:
            raise ValueError("GFormula needs an outcome_model")
        if self.competing not in _COMPETING:
            raise ValueError(f"competing must be one of {_COMPETING}, got {self.competing!r}")
        K = pt.n_times
        T = K if self.time_points is None else int(self.time_points)
        if not 1 <= T <= K:
            raise ValueError(f"time_points must be between 1 and the number of intervals ({K}), got {T}")
        if pt.outcome_type != "survival" and T != K:
            raise ValueError("an end-of-follow-up outcome is measured after the last interval: leave time_points "
                             "at its default")
        data = pt.data
        tt = data[pt.time].to_numpy()
        in_window = tt < T
        later = in_window & (tt > 0)
        uncens = np.ones(len(data), dtype=bool) if pt.censor is None else data[pt.censor].to_numpy() != 1
        nocomp = np.ones(len(data), dtype=bool) if pt.competing is None else data[pt.competing].to_numpy() != 1

        cov_specs = [_as_model(m, _covariate_family(pt, m) if isinstance(m, str) else "binomial")
                     for m in self.covariate_models]
        responses = [m.response for m in cov_specs]
        dup = sorted({r for r in responses if responses.count(r) > 1})
        if dup:
            raise ValueError(f"more than one covariate model for {dup}")
        if pt.treatment in responses or pt.outcome in responses:
            raise ValueError("covariate_models model time-varying covariates; give the treatment as treatment_model "
                             "and the outcome as outcome_model")
        for r in responses:
            if r in pt.baseline or r == pt.time:
                raise ValueError(f"{r!r} is a baseline covariate or the time: it is not simulated, drop its model")
        if cov_specs and T > 1 and not later.any():
            raise DataError([Problem("empty_table", pt.time, "covariate models are fitted on intervals after the "
                                     "first, and there are none", 0)])
        out_default = "gaussian" if pt.outcome_type == "continuous" else "binomial"
        out_spec = _as_model(self.outcome_model, out_default)
        if out_spec.response != pt.outcome:
            raise ValueError(f"the outcome model's response {out_spec.response!r} is not the PersonTime's outcome "
                             f"{pt.outcome!r}")
        fitted: dict[str, Any] = {"T": T, "covariates": []}
        if T > 1:
            for m in cov_specs:
                fitted["covariates"].append(m.fit(pt, rows=later))
        elif cov_specs:
            fitted["covariates"] = []  # a single interval: covariates are all observed
        trt_spec = None if self.treatment_model is None else _as_model(self.treatment_model, "binomial")
        if trt_spec is not None and trt_spec.response != pt.treatment:
            raise ValueError(f"the treatment model's response {trt_spec.response!r} is not the treatment "
                             f"{pt.treatment!r}")
        fitted["treatment"] = trt_spec.fit(pt, rows=later) if (trt_spec is not None and T > 1) else None
        if pt.outcome_type == "survival":
            fitted["outcome"] = out_spec.fit(pt, rows=in_window & uncens & nocomp)
        else:
            last = pt.last_rows & (tt == K - 1) & uncens
            fitted["outcome"] = out_spec.fit(pt, rows=last)
        fitted["competing"] = None
        if self.competing_model is not None:
            if pt.competing is None or pt.outcome_type != "survival":
                raise ValueError("competing_model needs a survival PersonTime with a competing= column")
            comp_spec = _as_model(self.competing_model, "binomial")
            if comp_spec.response != pt.competing:
                raise ValueError(f"the competing model's response {comp_spec.response!r} is not the competing "
                                 f"event {pt.competing!r}")
            fitted["competing"] = comp_spec.fit(pt, rows=in_window & uncens)
        elif pt.competing is not None and pt.outcome_type == "survival" and self.competing == "total":
            raise ValueError(f"the PersonTime has a competing event ({pt.competing!r}): give competing_model for "
                             "the total effect, or competing='censor' to treat it as censoring")
        fitted["censor"] = None
        if self.censor_model is not None:
            if pt.censor is None:
                raise ValueError("censor_model given but the PersonTime has no censor= column")
            fitted["censor"] = _as_model(self.censor_model, "binomial").fit(pt, rows=in_window)
        return fitted

    # -- the simulation plan ------------------------------------------------------------------------
    def _plan(self, pt, fitted) -> E.Plan:
        T = fitted["T"]
        covs = fitted["covariates"]
        trt = fitted["treatment"]
        out = fitted["outcome"]
        comp = fitted["competing"] if self.competing == "total" else None
        regs = self._regimes()
        a = pt.treatment
        feats_by_name = {f.name: f for f in pt.history}
        cov_names = [m.response for m in covs]
        models = covs + [m for m in (trt, out, comp) if m is not None]
        reads = {v for m in models for v in m.recipe.variables}
        reg_reads = {c for r in regs.values() for c in getattr(r, "reads", ())}
        needed = set()
        for v in reads | reg_reads:
            if v in feats_by_name:
                needed.update(g.name for g in feats_by_name[v].chain())
        features = [f for f in pt.history if f.name in needed]
        simulated = set(cov_names) | {a, pt.time}
        fixed = set(pt.baseline)
        raw = ({v for v in reads | reg_reads if v not in feats_by_name} | {f.root for f in features}
               | set(cov_names) | {a, pt.time})
        unknown_reg = sorted(c for c in reg_reads if c not in pt.data.columns)
        if unknown_reg:
            raise DataError([Problem("missing_column", ", ".join(unknown_reg),
                                     f"a regime reads column(s) {unknown_reg} that are not in the data", 0)])
        if T > 1:
            for v in sorted(raw - simulated - fixed):
                if v == pt.outcome or v in (pt.censor, pt.competing):
                    raise DataError([Problem("missing_column", v, f"{v!r} is an outcome/censoring/competing "
                                             "column: models and history features cannot read it", 0)])
                if v in pt.covariates:
                    raise DataError([Problem("missing_column", v, f"time-varying covariate {v!r} is read by a "
                                             "model or regime but has no covariate model: add one to "
                                             "covariate_models (or declare it baseline if it is fixed)", 0)])
                if _constant_within_persons(pt, v):
                    fixed.add(v)  # fixed at entry, though not declared baseline
                    continue
                raise DataError([Problem("missing_column", v, f"column {v!r} varies over time but is neither a "
                                         "covariate with a model, the treatment, the time nor a history feature; "
                                         "it cannot be simulated", 0)])
        else:
            fixed |= raw - simulated
        # when each column is known within an interval
        start_feats: list = []
        after: dict = {}
        for f in features:
            if not f.uses_current or f.root not in (set(cov_names) | {a}):
                start_feats.append(f)
            else:
                after.setdefault(f.root, []).append(f)
        known = set(fixed) | {pt.time} | {f.name for f in start_feats}
        for m in covs:
            bad = [v for v in m.recipe.variables if v not in known]
            if bad and T > 1:
                raise ValueError(_order_message(m, bad, cov_names, a, feats_by_name))
            known |= {m.response} | {f.name for f in after.get(m.response, ())}
        state_cols = sorted(known)
        if trt is not None:
            bad = [v for v in trt.recipe.variables if v not in known]
            if bad:
                raise ValueError(_order_message(trt, bad, cov_names, a, feats_by_name))
        for name, r in regs.items():
            bad = [c for c in getattr(r, "reads", ()) if c not in known]
            if bad:
                raise ValueError(f"regime {name!r} reads {bad}, which are not known before treatment in an interval "
                                 "(the treatment itself or a history feature of its current value)")
        columns = [pt.time, *sorted(fixed - {pt.time}), *cov_names, a, *[f.name for f in features]]
        columns = list(dict.fromkeys(columns))
        pos = {c: i for i, c in enumerate(columns)}
        cms, n_u, n_z = [], 0, 0
        for m in covs:
            cm = E.CompiledModel.build(m, pos, pos[m.response])
            cms.append(cm)
            if cm.normal_draw:
                n_z += 1
            else:
                n_u += 1
        return E.Plan(
            columns=columns, positions=pos, time_row=pos[pt.time], treatment_row=pos[a], covariates=cms,
            treatment=None if trt is None else E.CompiledModel.build(trt, pos),
            outcome=E.CompiledModel.build(out, pos),
            competing=None if comp is None else E.CompiledModel.build(comp, pos),
            features=features, start_features=start_feats, features_after=after, state_columns=state_cols,
            outcome_type=pt.outcome_type, tracked=cov_names + [a], n_uniform=n_u, n_normal=n_z,
        )

    def _baseline(self, pt, plan: E.Plan, rng: np.random.Generator) -> Baseline:
        """The time slice of ``n_samples`` persons resampled (weights ∝ row weights) from the first interval."""
        key = ("gformula_first", tuple(plan.columns))
        if key not in pt._cache:
            data = pt.data
            first = np.flatnonzero(data[pt.time].to_numpy() == 0)
            M = np.zeros((len(plan.columns), len(first)))
            for i, c in enumerate(plan.columns):
                if c in data.columns and c not in plan_feature_names(plan):
                    M[i] = data[c].to_numpy(dtype=float)[first]
            pt._cache[key] = (first, M)
        first, M = pt._cache[key]
        w = pt.row_weights()[first]
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("row weights must be finite, non-negative and not all zero")
        n = int(self.n_samples)
        if n < 1:
            raise ValueError(f"n_samples must be positive, got {self.n_samples!r}")
        cw = np.cumsum(w)
        pos = np.empty(n, dtype=np.int64)  # np.searchsorted(cw, u * cw[-1], side="right"), by a guide table
        E.search_right(cw, rng.random(n) * cw[-1], np.empty(len(cw), dtype=np.int64), pos)
        idx = np.minimum(pos, len(first) - 1)
        return Baseline(M, idx)


class Baseline:
    """Resampled baseline: the first-interval slice of every person and the resampled indices.

    Blocks of simulated persons are gathered from it one at a time, so memory does not grow with
    ``n_samples``.
    """

    def __init__(self, M: np.ndarray, idx: np.ndarray):
        self.M, self.idx = M, idx
        self.shape = (M.shape[0], len(idx))

    def block(self, sl: slice, out: np.ndarray | None = None) -> np.ndarray:
        """The time slices of simulated persons ``sl`` (into ``out``, C-contiguous, when given)."""
        idx = np.ascontiguousarray(self.idx[sl], dtype=np.int64)
        if out is None:
            out = np.empty((self.M.shape[0], len(idx)))
        E.gather_columns(np.ascontiguousarray(self.M, dtype=float), idx, out)
        return out


def plan_feature_names(plan: E.Plan) -> set[str]:
    return {f.name for f in plan.features}


def _constant_within_persons(pt, col: str) -> bool:
    if col not in pt.data.columns:
        return False
    v = pt.data[col].to_numpy(dtype=float)
    codes = pt.person_index
    same = codes[1:] == codes[:-1]
    return bool(np.all((v[1:] == v[:-1]) | ~same))


def _order_message(m, bad, cov_names, a, feats) -> str:
    why = []
    for v in bad:
        if v == a:
            why.append(f"{v} (the treatment, set after the covariates)")
        elif v in cov_names:
            why.append(f"{v} (a covariate drawn later in the interval: reorder covariate_models or use its lag)")
        elif v in feats:
            why.append(f"{v} (uses the current value of {feats[v].root}, drawn later in the interval)")
        else:
            why.append(v)
    return (f"{m.spec.label} ({m.spec.formula!r}) reads {', '.join(why)}; within an interval a model may read "
            "only what is known before its response is drawn")


GROUP_BYTES = 64 << 20  # regimes simulated side by side hold at most about this much per-block memory


def run_regimes(plan: E.Plan, regimes: Mapping[str, Any], M0: Baseline, T: int, ss: np.random.SeedSequence,
                engine: str, keep_name: str | None = None) -> dict[str, E.Accumulator]:
    """Simulate every block of the baseline slice ``M0`` under every regime (common random numbers).

    Block ``b`` draws its random numbers from the ``b``-th child of ``ss``,
    once per interval, and the regimes are simulated side by side on them, so
    each regime's result is the one :func:`run_population` gives it alone.
    Memory: a block's time slice, history state and buffers per regime side
    by side, independent of ``n_samples`` and of the number of intervals;
    when that exceeds :data:`GROUP_BYTES` the regimes run in groups, each
    group re-drawing the same random numbers.
    """
    n = M0.shape[1]
    n_blocks = -(-n // E.BLOCK)
    children = copy.deepcopy(ss).spawn(n_blocks)
    accs = {name: E.Accumulator(T, plan.tracked) for name in regimes}
    names = list(regimes)
    per_regime = 8 * min(n, E.BLOCK) * (M0.shape[0] + sum(f.n_slots for f in plan.features) + 8)
    size = max(1, int(GROUP_BYTES // max(per_regime, 1)))
    for g0 in range(0, len(names), size):
        group = names[g0:g0 + size]
        full: list[np.ndarray] = []  # one time slice per regime for full blocks, reused block after block
        for b, child in enumerate(children):
            sl = slice(b * E.BLOCK, min(n, (b + 1) * E.BLOCK))
            nb = sl.stop - sl.start
            if nb == E.BLOCK:
                if not full:
                    full = [np.empty((M0.shape[0], nb)) for _ in group]
                Ms = full
            else:  # the last, partial block
                full = []
                Ms = [np.empty((M0.shape[0], nb)) for _ in group]
            M0.block(sl, out=Ms[0])
            for M in Ms[1:]:
                np.copyto(M, Ms[0])
            blocks = [E.RegimeBlock(plan, regimes[name], Ms[j], {f.name: f.init(nb) for f in plan.features},
                                    np.zeros(nb), 0, True, engine, accs[name], keep=(name == keep_name))
                      for j, name in enumerate(group)]
            E.simulate_intervals(blocks, 0, T, np.random.default_rng(child))
            del blocks, Ms  # free this block's states before the next block allocates its own
    return accs


def run_population(plan: E.Plan, regime, M0: Baseline, T: int, ss: np.random.SeedSequence, engine: str,
                   keep: bool = False) -> E.Accumulator:
    """Simulate every block of the baseline slice ``M0`` under one regime (common random numbers)."""
    return run_regimes(plan, {"_": regime}, M0, T, ss, engine, keep_name="_" if keep else None)["_"]
