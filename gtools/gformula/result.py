"""Results of the parametric g-formula: risk curves, contrasts, model checks, individual predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gtools import regimes as _regimes
from gtools.gformula import engine as E

__all__ = ["GFormulaResult", "NaturalCourse", "IndividualRisk"]


def _fmt_t(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:g}"


class GFormulaResult:
    """What :meth:`GFormula.fit` returns.

    Attributes
    ----------
    risk : pandas.DataFrame
        Survival outcome: cumulative risk (cumulative incidence with a
        competing event) by the end of each interval; index time, one column
        per regime.
    mc_se : pandas.DataFrame
        Monte Carlo standard errors of ``risk`` (or of ``mean``).
    mean : pandas.Series
        End-of-follow-up outcome: the mean under each regime (for a survival
        outcome, the risk at the last interval).
    covariate_means : dict of DataFrame
        Simulated means of each covariate and the treatment by time and regime,
        among persons still event-free at the start of the interval.
    models : dict
        The fitted models (``covariates`` list, ``treatment``, ``outcome``,
        ``competing``, ``censor``).
    simulated : DataFrame or None
        Simulated person-time of one regime (``keep_simulated``).
    """

    def __init__(self, spec, pt, plan: E.Plan, fitted: dict, regimes: dict, accumulators: dict,
                 M0, seed_sim, keep_name: str | None):
        self.spec, self.pt, self.plan = spec, pt, plan
        self.models = fitted
        self.regimes = regimes
        self._M0, self._seed_sim = M0, seed_sim
        self.T = fitted["T"]
        self.n_samples = M0.shape[1]
        self.outcome_type = pt.outcome_type
        times = pd.Index(np.asarray(pt.time_values)[: self.T], name=pt.time)
        self.times = times
        self._accs = accumulators
        risk, se, means = {}, {}, {}
        for name, acc in accumulators.items():
            n = acc.n
            if self.outcome_type == "survival":
                r = acc.risk_sum / n
                risk[name] = r
                se[name] = np.sqrt(np.maximum(acc.risk_sq / n - r ** 2, 0.0) / max(n - 1, 1))
            else:
                m = acc.mean_sum / n
                means[name] = m
                se[name] = np.sqrt(max(acc.mean_sq / n - m ** 2, 0.0) / max(n - 1, 1))
        if self.outcome_type == "survival":
            self.risk = pd.DataFrame(risk, index=times)
            self.mc_se = pd.DataFrame(se, index=times)
            self.mean = self.risk.iloc[-1].rename("risk")
        else:
            self.risk = None
            self.mean = pd.Series(means, name="mean")
            self.mc_se = pd.Series(se, name="mc_se")
        self.covariate_means = {
            name: pd.DataFrame(acc.cov_wsum / np.maximum(acc.cov_w, 1e-300)[:, None], index=times,
                               columns=plan.tracked)
            for name, acc in accumulators.items()
        }
        self.simulated = None
        if keep_name is not None:
            self.simulated = _kept_frame(accumulators[keep_name], plan, pt, times)
        self._nc = None

    # -- contrasts and estimates ------------------------------------------------------------------
    @property
    def regime_names(self) -> list[str]:
        return list(self.regimes)

    def contrast(self, a: str, b: str) -> pd.DataFrame:
        """Risk (or mean) difference and ratio of regime ``a`` versus ``b``, by time."""
        for g in (a, b):
            if g not in self.regimes:
                raise KeyError(f"unknown regime {g!r}; regimes: {self.regime_names}")
        if self.outcome_type == "survival":
            ra, rb = self.risk[a], self.risk[b]
            with np.errstate(divide="ignore", invalid="ignore"):
                rr = ra / rb
            return pd.DataFrame({f"risk[{a}]": ra, f"risk[{b}]": rb, "rd": ra - rb, "rr": rr})
        ma, mb = self.mean[a], self.mean[b]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = ma / mb if mb != 0 else np.nan
        return pd.DataFrame({f"mean[{a}]": [ma], f"mean[{b}]": [mb], "diff": [ma - mb], "ratio": [ratio]},
                            index=pd.Index(["end of follow-up"]))

    def evalue(self, a: str, b: str, **kw) -> Any:
        """E-value of the risk ratio of regime ``a`` vs ``b`` at ``t=`` (default the last time; continuous
        outcome: mean difference / SD); ``ci=(lo, hi)`` e.g. from a bootstrap (:func:`gtools.sensitivity.evalue_of`)."""
        from gtools.sensitivity import evalue_of

        return evalue_of(self, a, b, **kw)

    @property
    def estimates(self) -> pd.Series:
        """Named scalars for :func:`gtools.bootstrap`.

        Survival: ``risk[g,t=..]`` for each regime and time, ``rd[a-b,t=..]`` and
        ``rr[a-b,t=..]`` for each pair of regimes in listed order. Binary
        end-of-follow-up: ``risk[g]``, ``rd[a-b]``, ``rr[a-b]``; continuous:
        ``mean[g]``, ``diff[a-b]``.
        """
        names = self.regime_names
        pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
        out: dict[str, float] = {}
        if self.outcome_type == "survival":
            labels = [_fmt_t(t) for t in self.times]
            for g in names:
                for t, v in zip(labels, self.risk[g].to_numpy()):
                    out[f"risk[{g},t={t}]"] = float(v)
            for a, b in pairs:
                ra, rb = self.risk[a].to_numpy(), self.risk[b].to_numpy()
                for k, t in enumerate(labels):
                    out[f"rd[{a}-{b},t={t}]"] = float(ra[k] - rb[k])
                for k, t in enumerate(labels):
                    if rb[k] > 0:
                        out[f"rr[{a}-{b},t={t}]"] = float(ra[k] / rb[k])
        elif self.outcome_type == "binary":
            for g in names:
                out[f"risk[{g}]"] = float(self.mean[g])
            for a, b in pairs:
                out[f"rd[{a}-{b}]"] = float(self.mean[a] - self.mean[b])
                if self.mean[b] > 0:
                    out[f"rr[{a}-{b}]"] = float(self.mean[a] / self.mean[b])
        else:
            for g in names:
                out[f"mean[{g}]"] = float(self.mean[g])
            for a, b in pairs:
                out[f"diff[{a}-{b}]"] = float(self.mean[a] - self.mean[b])
        return pd.Series(out, name="estimate")

    def summary(self) -> pd.DataFrame:
        """One row per regime: risk (or mean) at the end of follow-up, its MC SE, and contrasts with the reference.

        The reference is the natural course when simulated, else the first regime.
        """
        names = self.regime_names
        ref = next((g for g in names if isinstance(self.regimes[g], _regimes._Natural)), names[0])
        if self.outcome_type == "survival":
            last = self.risk.iloc[-1]
            se = self.mc_se.iloc[-1]
            tab = pd.DataFrame({"risk": last, "mc_se": se, f"rd_vs_{ref}": last - last[ref],
                                f"rr_vs_{ref}": last / last[ref] if last[ref] > 0 else np.nan})
        else:
            label = "risk" if self.outcome_type == "binary" else "mean"
            tab = pd.DataFrame({label: self.mean, "mc_se": self.mc_se, f"diff_vs_{ref}": self.mean - self.mean[ref]})
        tab.index.name = "regime"
        return tab

    def __repr__(self) -> str:
        what = (f"cumulative risk by {self.pt.time}={_fmt_t(self.times[-1])}" if self.outcome_type == "survival"
                else f"mean {self.pt.outcome} at end of follow-up")
        head = (f"<GFormulaResult: {self.pt.n_persons} persons, {self.T} intervals, {self.n_samples} simulated "
                f"persons per regime; {what}>")
        return head + "\n" + self.summary().to_string(float_format=lambda x: f"{x:.4f}")

    # -- plots ----------------------------------------------------------------------------------
    def plot(self, bootstrap: Any = None, ax=None):
        """Risk curves by regime (with percentile bands from a bootstrap result when given); returns the axis.

        An end-of-follow-up outcome has no curve: its mean (risk) under each regime is drawn as a point
        with the bootstrap interval when given, else the 95% Monte Carlo interval.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        bands = _bootstrap_bands(bootstrap) if bootstrap is not None else None
        if self.outcome_type != "survival":
            label = "risk" if self.outcome_type == "binary" else "mean"
            names = self.regime_names
            est = self.mean[names].to_numpy(dtype=float)
            keys = [f"{label}[{g}]" for g in names]
            if bands is not None and all(k in bands.index for k in keys):
                lo, hi = bands.loc[keys, "lower"].to_numpy(), bands.loc[keys, "upper"].to_numpy()
            else:
                se = self.mc_se[names].to_numpy(dtype=float)
                lo, hi = est - 1.959963984540054 * se, est + 1.959963984540054 * se
            y = np.arange(len(names))
            ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", capsize=3)
            ax.set_yticks(y, names)
            ax.set_xlabel(f"{label} of {self.pt.outcome} at the end of follow-up")
            ax.set_title("parametric g-formula")
            return ax
        labels = [_fmt_t(t) for t in self.times]
        x = np.asarray(self.times, dtype=float)
        for g in self.regime_names:
            line, = ax.step(x, self.risk[g].to_numpy(), where="post", label=g)
            if bands is not None:
                keys = [f"risk[{g},t={t}]" for t in labels]
                if all(k in bands.index for k in keys):
                    ax.fill_between(x, bands.loc[keys, "lower"], bands.loc[keys, "upper"], step="post",
                                    alpha=0.2, color=line.get_color())
        ax.set_xlabel(self.pt.time)
        ax.set_ylabel("cumulative risk")
        ax.set_title("parametric g-formula")
        ax.legend()
        return ax

    # -- model checks -------------------------------------------------------------------------
    def natural_course(self) -> NaturalCourse:
        """Simulated natural course against the observed data.

        Risk: the simulated natural-course risk against the observed
        Kaplan–Meier risk (lifelines; Aalen–Johansen cumulative incidence with
        a competing event), weighted by the row weights. Covariates: simulated
        means by time (among the event-free) against observed means among
        persons under follow-up (inverse-probability-of-censoring weighted
        when a ``censor_model`` was given). Large discrepancies point at
        misspecified models.
        """
        if self._nc is None:
            name = next((g for g, r in self.regimes.items() if isinstance(r, _regimes._Natural)), None)
            if name is None:
                if self.models["treatment"] is None and self.T > 1:
                    raise ValueError("the natural course needs a treatment_model")
                from gtools.gformula.spec import run_population

                acc = run_population(self.plan, _regimes.natural(), self._M0, self.T, self._seed_sim,
                                     self.spec._engine())
                n = acc.n
                sim_risk = acc.risk_sum / n if self.outcome_type == "survival" else None
                sim_cov = pd.DataFrame(acc.cov_wsum / np.maximum(acc.cov_w, 1e-300)[:, None], index=self.times,
                                       columns=self.plan.tracked)
            else:
                sim_risk = self.risk[name].to_numpy() if self.outcome_type == "survival" else None
                sim_cov = self.covariate_means[name]
            self._nc = _natural_course_table(self, sim_risk, sim_cov)
        return self._nc

    # -- the patient in front of you ---------------------------------------------------------------
    def predict_individual(self, history: pd.DataFrame, regimes: dict | None = None, horizon: Any = None,
                           n_samples: int = 2000, seed: Any = None) -> IndividualRisk:
        """Counterfactual risk curves of given patients from their observed history.

        ``history`` holds each patient's observed person-time rows up to now,
        intervals 0..t* without gaps (columns as in the PersonTime: id, time,
        baseline and time-varying covariates, treatment), alive and
        uncensored at the end of t*. Each patient is copied ``n_samples``
        times and simulated forward from interval t*+1 to ``horizon``
        (default the last interval) under each regime with the fitted models;
        returned is the risk of the outcome from t*+1 to the end of each
        interval, conditional on the history, with its Monte Carlo SE (for an
        end-of-follow-up outcome: the conditional mean).
        """
        from gtools.gformula.spec import seed_sequence

        pt, plan = self.pt, self.plan
        regs = dict(self.regimes) if regimes is None else dict(regimes)
        if isinstance(history, pd.Series):
            history = history.to_frame().T
        need = [pt.id, pt.time] + [c for c in plan.columns if c not in {f.name for f in plan.features}
                                   and c != pt.time]
        missing = [c for c in need if c not in history.columns]
        if missing:
            from gtools.errors import DataError, Problem

            raise DataError([Problem("missing_column", ", ".join(missing),
                                     f"history rows lack column(s) {missing}", 0)])
        tv = np.asarray(pt.time_values, dtype=float)
        h_end = self.T - 1 if horizon is None else int(np.searchsorted(tv, float(horizon)))
        if h_end >= self.T or (horizon is not None and tv[h_end] != float(horizon)):
            raise ValueError(f"horizon {horizon!r} is not a simulated time ({list(tv[: self.T])})")
        ss = seed_sequence(self.spec.seed if seed is None else seed)
        rows_out, se_out = [], []
        for pid, rows in history.groupby(pt.id, sort=False):
            rows = rows.sort_values(pt.time)
            tidx = np.searchsorted(tv, rows[pt.time].to_numpy(dtype=float))
            if not np.array_equal(tidx, np.arange(len(rows))) or not np.array_equal(
                    tv[np.minimum(tidx, len(tv) - 1)], rows[pt.time].to_numpy(dtype=float)):
                raise ValueError(f"patient {pid!r}: history must cover intervals {list(tv[:len(rows)])} without gaps")
            t_star = len(rows) - 1
            if t_star >= h_end:
                raise ValueError(f"patient {pid!r} is already observed up to the horizon")
            M1, states = _observed_state(plan, rows, t_star)
            n = int(n_samples)
            M = np.repeat(M1, n, axis=1)
            res, se = {}, {}
            for name, reg in regs.items():
                st = {k: np.repeat(v, n, axis=0) for k, v in states.items()}
                acc = E.Accumulator(h_end - t_star, plan.tracked)
                E.simulate_block(plan, reg, M.copy(), st, np.full(n, M1[plan.treatment_row, 0]), t_star + 1,
                                 h_end + 1, False, np.random.default_rng(copy_ss(ss)), self.spec._engine(), acc,
                                 t_offset=t_star + 1)
                if self.outcome_type == "survival":
                    r = acc.risk_sum / n
                    res[name] = r
                    se[name] = np.sqrt(np.maximum(acc.risk_sq / n - r ** 2, 0) / max(n - 1, 1))
                else:
                    m = acc.mean_sum / n
                    res[name] = [m]
                    se[name] = [np.sqrt(max(acc.mean_sq / n - m ** 2, 0) / max(n - 1, 1))]
            tv_orig = np.asarray(pt.time_values)
            times = tv_orig[t_star + 1: h_end + 1] if self.outcome_type == "survival" else tv_orig[h_end: h_end + 1]
            idx = pd.MultiIndex.from_arrays([[pid] * len(times), times], names=[pt.id, pt.time])
            rows_out.append(pd.DataFrame(res, index=idx))
            se_out.append(pd.DataFrame(se, index=idx))
        return IndividualRisk(pd.concat(rows_out), pd.concat(se_out), self.outcome_type, pt.time)


def copy_ss(ss):
    import copy

    return copy.deepcopy(ss)


def _observed_state(plan: E.Plan, rows: pd.DataFrame, t_star: int):
    """The time slice at t* and the history state after t*, from observed rows, by the step rules."""
    pos = plan.positions
    feat_names = {f.name for f in plan.features}
    M = np.zeros((len(plan.columns), 1))
    states = {f.name: f.init(1) for f in plan.features}
    for s in range(t_star + 1):
        r = rows.iloc[s]
        for c in plan.columns:
            if c not in feat_names:
                M[pos[c], 0] = float(r[c])
        M[plan.time_row, 0] = float(s)
        for f in plan.features:  # inner features first, so sources are current
            M[pos[f.name]] = E._feature_value(f, states[f.name], M, pos, s)
        for f in plan.features:
            f.update(states[f.name], M[pos[f.source_name]], s)
    return M, states


def _kept_frame(acc: E.Accumulator, plan: E.Plan, pt, times) -> pd.DataFrame:
    if not acc.kept:
        return None
    n = len(acc.kept[0]["_t"])
    frames = []
    for rec in acc.kept:
        d = dict(rec)
        t = d.pop("_t")
        frames.append(pd.DataFrame({"sim_id": np.arange(len(t)), **d}))
        frames[-1][pt.time] = np.asarray(times)[t]
    df = pd.concat(frames, ignore_index=True)
    del n
    return df.sort_values(["sim_id", pt.time], kind="stable").reset_index(drop=True)


def _bootstrap_bands(boot) -> pd.DataFrame:
    """Lower/upper limits per estimate name from a bootstrap result (or a DataFrame)."""
    if hasattr(boot, "conf_int"):
        return pd.DataFrame(boot.conf_int())[["lower", "upper"]]
    tab = pd.DataFrame(boot.summary() if hasattr(boot, "summary") else boot)
    low = next((c for c in tab.columns if str(c).lower() in ("ci_lower", "lower", "ci_low", "2.5%")), None)
    up = next((c for c in tab.columns if str(c).lower() in ("ci_upper", "upper", "ci_high", "97.5%")), None)
    if low is None or up is None:
        raise ValueError(f"cannot find confidence limits in the bootstrap summary's columns {list(tab.columns)}")
    return pd.DataFrame({"lower": tab[low], "upper": tab[up]})


# -- natural course ------------------------------------------------------------------------------


@dataclass
class NaturalCourse:
    """Simulated natural course against the observed data.

    ``table``: long DataFrame indexed by (quantity, time) with columns
    ``simulated``, ``observed``, ``difference``, ``std_difference`` and
    ``flagged``; ``quantity`` is ``risk`` or a covariate/treatment name.
    Risk rows are flagged when the simulated risk lies outside the observed
    95% confidence band, covariate rows when the standardised difference
    (difference / observed SD) exceeds 0.1. ``largest``: the five largest
    standardised discrepancies.
    """

    table: pd.DataFrame
    time_name: str

    @property
    def flagged(self) -> pd.DataFrame:
        return self.table[self.table["flagged"]]

    @property
    def largest(self) -> pd.DataFrame:
        t = self.table.dropna(subset=["std_difference"])
        return t.reindex(t["std_difference"].abs().sort_values(ascending=False).index[:5])

    def __repr__(self) -> str:
        nflag = int(self.table["flagged"].sum())
        head = f"<NaturalCourse: {nflag} flagged discrepancies; largest:>"
        return head + "\n" + self.largest.to_string(float_format=lambda x: f"{x:.4f}")

    def plot(self):
        """One panel per quantity: simulated (line) against observed (points, with the risk's band)."""
        import matplotlib.pyplot as plt

        qs = list(dict.fromkeys(self.table.index.get_level_values(0)))
        ncol = min(3, len(qs))
        nrow = -(-len(qs) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
        for ax, q in zip(axes.ravel(), qs):
            sub = self.table.loc[q]
            x = np.asarray(sub.index, dtype=float)
            ax.plot(x, sub["simulated"], "-", label="simulated")
            ax.plot(x, sub["observed"], "o", ms=3, label="observed")
            if q == "risk" and "observed_lower" in sub:
                ax.fill_between(x, sub["observed_lower"], sub["observed_upper"], alpha=0.2, color="C1")
            bad = sub["flagged"].to_numpy(dtype=bool)
            if bad.any():
                ax.plot(x[bad], sub["observed"].to_numpy()[bad], "x", color="red", label="flagged")
            ax.set_title(q)
            ax.set_xlabel(self.time_name)
        for ax in axes.ravel()[len(qs):]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=8)
        fig.suptitle("natural course: simulated vs observed")
        fig.tight_layout()
        return axes


def _observed_risk(res: GFormulaResult):
    """Weighted observed risk by time: Kaplan–Meier (lifelines) or discrete Aalen–Johansen with competing events."""
    pt = res.pt
    d = pt.data
    last = pt.last_rows
    w = pt.row_weights()[last]
    L = d[pt.time].to_numpy()[last]
    y = np.nan_to_num(d[pt.outcome].to_numpy(dtype=float)[last])
    cens = d[pt.censor].to_numpy()[last] == 1 if pt.censor else np.zeros(len(L), dtype=bool)
    comp = d[pt.competing].to_numpy()[last] == 1 if pt.competing else np.zeros(len(L), dtype=bool)
    keep = w > 0
    T = res.T
    total = pt.competing is not None and res.spec.competing == "total"
    if not total and res.models.get("censor") is None:
        from lifelines import KaplanMeierFitter

        event = (y == 1) & ~cens & ~comp
        dur = np.where(event | (~cens & ~comp), L + 1, L).astype(float)
        km = KaplanMeierFitter()
        km.fit(dur[keep], event[keep], weights=w[keep], timeline=np.arange(0, T + 1, dtype=float))
        sf = km.survival_function_.to_numpy()[:, 0]
        ci = km.confidence_interval_.to_numpy()
        risk = 1 - sf[1:T + 1]
        lo, hi = 1 - ci[1:T + 1, 1], 1 - ci[1:T + 1, 0]
        return risk, lo, hi
    # discrete-time Aalen–Johansen (competing event before the outcome within an interval), with
    # inverse probability of censoring weights when a censoring model was fitted
    tt = d[pt.time].to_numpy()
    rw = pt.row_weights() * _ipcw(res, through_current=True)
    c_all = d[pt.censor].to_numpy() == 1 if pt.censor else np.zeros(len(d), dtype=bool)
    dcomp = (d[pt.competing].to_numpy() == 1) if (pt.competing and total) else np.zeros(len(d), dtype=bool)
    yy = np.nan_to_num(d[pt.outcome].to_numpy(dtype=float)) == 1
    S, cif, out, var = 1.0, 0.0, [], []
    for t in range(T):
        r = (tt == t) & ~c_all
        n_r = rw[r].sum()
        dk = rw[r & dcomp].sum() / n_r if n_r > 0 else 0.0
        r2 = r & ~dcomp
        n2 = rw[r2].sum()
        hk = rw[r2 & yy].sum() / n2 if n2 > 0 else 0.0
        cif += S * (1 - dk) * hk
        S *= (1 - dk) * (1 - hk)
        out.append(cif)
        # binomial approximation for the band: enough to flag gross discrepancies
        var.append(cif * (1 - cif) / max(pt.row_weights()[r].sum(), 1.0))
    risk = np.array(out)
    se = np.sqrt(np.array(var))
    return risk, risk - 1.96 * se, risk + 1.96 * se


def _ipcw(res: GFormulaResult, through_current: bool) -> np.ndarray:
    """1 / P(uncensored through t (or t-1)) per row from the censoring model; ones without one."""
    pt = res.pt
    cm = res.models.get("censor")
    if cm is None:
        return np.ones(pt.n_rows)
    p = np.nan_to_num(cm.predict(pt))
    logs = np.log(np.clip(1.0 - p, 1e-12, 1.0))
    cs = pd.Series(logs).groupby(pt.person_index).cumsum().to_numpy()
    if not through_current:
        cs = cs - logs
    return np.exp(-cs)


def _natural_course_table(res: GFormulaResult, sim_risk, sim_cov: pd.DataFrame) -> NaturalCourse:
    pt = res.pt
    d = pt.data
    times = res.times
    T = res.T
    parts = []
    if res.outcome_type == "survival":
        obs, lo, hi = _observed_risk(res)
        diff = sim_risk - obs
        half = np.maximum((hi - lo) / 2, 1e-12)
        parts.append(pd.DataFrame({"quantity": "risk", "time": np.asarray(times), "simulated": sim_risk,
                                   "observed": obs, "observed_lower": lo, "observed_upper": hi,
                                   "difference": diff, "std_difference": diff / (half / 1.96),
                                   "flagged": (sim_risk < lo - 1e-12) | (sim_risk > hi + 1e-12)}))
    tt = d[pt.time].to_numpy()
    w = pt.row_weights().astype(float)
    w = w * _ipcw(res, through_current=False)
    for c in sim_cov.columns:
        x = d[c].to_numpy(dtype=float)
        obs_m, obs_sd = np.full(T, np.nan), np.full(T, np.nan)
        for t in range(T):
            r = (tt == t) & (w > 0)
            if r.any():
                ww = w[r]
                m = np.average(x[r], weights=ww)
                obs_m[t] = m
                obs_sd[t] = np.sqrt(np.average((x[r] - m) ** 2, weights=ww))
        sim = sim_cov[c].to_numpy()
        diff = sim - obs_m
        std = np.where(obs_sd > 0, diff / np.where(obs_sd > 0, obs_sd, 1.0), np.nan)
        parts.append(pd.DataFrame({"quantity": c, "time": np.asarray(times), "simulated": sim, "observed": obs_m,
                                   "difference": diff, "std_difference": std,
                                   "flagged": np.abs(np.nan_to_num(std)) > 0.1}))
    table = pd.concat(parts, ignore_index=True).set_index(["quantity", "time"])
    table["flagged"] = table["flagged"].astype(bool)
    return NaturalCourse(table, pt.time)


# -- individual predictions ---------------------------------------------------------------------


@dataclass
class IndividualRisk:
    """Counterfactual risk curves (or end-of-follow-up means) of individual patients.

    ``risk``: index (id, time), one column per regime; ``mc_se`` the Monte
    Carlo SEs of the same shape.
    """

    risk: pd.DataFrame
    mc_se: pd.DataFrame
    outcome_type: str
    time_name: str

    @property
    def estimates(self) -> pd.Series:
        out = {}
        for (pid, t), row in self.risk.iterrows():
            for g, v in row.items():
                out[f"risk[{g},id={pid},t={_fmt_t(t)}]"] = float(v)
        return pd.Series(out, name="estimate")

    def __repr__(self) -> str:
        return "<IndividualRisk>\n" + self.risk.to_string(float_format=lambda x: f"{x:.4f}")

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        ls = ["-", "--", ":", "-."]
        for k, (pid, sub) in enumerate(self.risk.groupby(level=0, sort=False)):
            x = np.asarray(sub.index.get_level_values(1), dtype=float)
            for j, g in enumerate(sub.columns):
                ax.step(x, sub[g].to_numpy(), where="post", color=f"C{j}", ls=ls[k % 4], label=f"{pid}: {g}")
        ax.set_xlabel(self.time_name)
        ax.set_ylabel("risk from now")
        ax.legend(fontsize=8)
        return ax
