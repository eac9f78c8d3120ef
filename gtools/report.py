"""``gt.report``: the six-step causal workflow in one call, written as a self-contained HTML document.

The six steps (Hernán & Robins, *What If*; Petersen & van der Laan's "roadmap"):

1. draw the causal DAG (:class:`~gtools.TimeDAG`, shown as inline SVG);
2. state the estimand (text, plus the data it is estimated from);
3. check identifiability: for every estimator, are the covariates its models
   read a valid sequential adjustment set in the DAG
   (:func:`gtools.dag.require_identified`)? The open paths are listed;
4. fit the estimator(s): tables, risk curves, weight distribution and balance
   plots (inline base64 PNGs, matplotlib's Agg backend);
5. sensitivity: E-values of the main contrast and refutation checks
   (placebo treatment, data subsets; random common cause and a negative
   control outcome when given) from :mod:`gtools.sensitivity`;
6. validation: the g-formula's natural-course check and the comparison with
   an external trial (:mod:`gtools.validation`).

The document needs no network access or files beside it: every figure is
embedded. Nothing heavy is imported when this module is imported.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "report"]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222;
line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
h3{margin-bottom:.3em} .meta{color:#666;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1em} th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right} th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
.summary{background:#f7f9fc;border:1px solid #c9d6ea;padding:.6em 1.2em;border-radius:6px}
.ok{color:#17692b;font-weight:bold} .fail{color:#a4161a;font-weight:bold} .note{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em} figure{margin:.5em 0} img{max-width:100%}
.svgbox{overflow-x:auto;border:1px solid #eee;padding:.3em}
"""

SECTIONS = ("summary", "dag", "estimand", "identification", "estimators", "sensitivity", "validation")


@dataclass
class Report:
    """What :func:`report` returns: the HTML text, where it was written, and every piece it shows.

    Attributes
    ----------
    html : str
        The document.
    path : pathlib.Path or None
    results : dict
        Estimator name -> fitted result.
    identification : dict
        Estimator name -> :class:`~gtools.dag.IdentificationReport` (empty without a DAG).
    evalues : dict
        Label -> :class:`~gtools.sensitivity.EValue`.
    refutations : pandas.DataFrame
        :func:`gtools.sensitivity.refutation_table` of the checks run.
    natural_course : pandas.DataFrame or None
    external : ExternalComparison or None
    main : dict
        The headline estimate: ``estimator``, ``name``, ``estimate``, ``se``, ``lower``, ``upper``.
    """

    html: str
    path: Path | None
    results: dict
    identification: dict
    evalues: dict
    refutations: Any
    natural_course: Any
    external: Any
    main: dict
    boot: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        where = f" written to {self.path}" if self.path else ""
        return f"<gtools Report: {len(self.results)} estimator(s), {len(self.html) // 1024} KB{where}>"


# ------------------------------------------------------------------- helpers
def _esc(x: Any) -> str:
    return html.escape(str(x))


def _table(df: Any, digits: int = 4, max_rows: int = 60) -> str:
    import pandas as pd

    if df is None:
        return ""
    if isinstance(df, pd.Series):
        df = df.to_frame()
    note = ""
    if len(df) > max_rows:
        note = f'<p class="note">first {max_rows} of {len(df)} rows</p>'
        df = df.iloc[:max_rows]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}g}"
        return str(v)

    return df.to_html(float_format=lambda v: fmt(v), border=0, na_rep="") + note


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<figure><img alt="figure" src="data:image/png;base64,{data}"/></figure>'


def _figure_of(ax: Any) -> Any:
    import numpy as np

    first = ax.ravel()[0] if isinstance(ax, np.ndarray) else (ax[0] if isinstance(ax, (list, tuple)) else ax)
    return first.figure


def _kind(spec: Any) -> str:
    return type(spec).__name__


def _adjustment_models(spec: Any) -> list:
    """The models whose covariates an estimator adjusts for (as in each estimator's ``dag=`` hook)."""
    k = _kind(spec)
    if k == "GFormula":
        return [*spec.covariate_models, spec.treatment_model, spec.outcome_model]
    if k == "MSM":
        return [getattr(getattr(spec.weights, "spec", spec.weights), "treatment_model", spec.formula)]
    if k == "QLearning":
        return [spec.treatment_model or spec.q_model]
    return [getattr(spec, "treatment_model", None)]


def _time_label(v: Any) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:g}"


def _main_estimate_name(result: Any, contrast: tuple[str, str] | None) -> str:
    est = result.estimates
    if contrast is not None:
        a, b = contrast
        for prefix in (f"rd[{a}-{b}", f"diff[{a}-{b}"):
            keys = [k for k in est.index if k.startswith(prefix)]
            if keys:
                return keys[-1]
    psi = [k for k in est.index if k.startswith("psi[")]
    if psi:
        return psi[0]
    return str(est.index[0])


def _rr_name(result: Any, contrast: tuple[str, str]) -> str | None:
    a, b = contrast
    keys = [k for k in result.estimates.index if k.startswith(f"rr[{a}-{b}")]
    return keys[-1] if keys else None


def _fit_quiet(spec: Any, pt: Any, caught: list[str], name: str) -> Any:
    from gtools.errors import FitWarning

    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always", FitWarning)
        res = spec.fit(pt)
    caught.extend(f"{name}: {w.message}" for w in ws if issubclass(w.category, FitWarning))
    return res


# --------------------------------------------------------------------- report
def report(
    estimators: Any,
    pt: Any,
    path: str | Path | None = "gtools_report.html",
    *,
    dag: Any = None,
    estimand: str | None = None,
    contrast: tuple[str, str] | None = None,
    estimate_name: str | None = None,
    n_boot: int = 0,
    refutations: Sequence[str] = ("placebo", "subset"),
    n_refute: int = 5,
    random_common_cause: Callable[[str | None], Any] | None = None,
    negative_control: tuple[str, Callable[[str], Any]] | None = None,
    external: Mapping[str, Any] | None = None,
    title: str = "Causal analysis report",
    dag_display_K: int = 3,
    seed: int = 0,
    n_jobs: int = 1,
) -> Report:
    """Run the six steps on a specification and write a self-contained HTML report.

    Parameters
    ----------
    estimators : estimator or dict of name -> estimator
        gtools specifications (``GFormula``, ``MSM``, ``IPTW``,
        ``CloneCensorWeight``, ``GEstimation``, ``QLearning``); the first is the
        primary analysis (headline estimate, E-values, refutations).
    pt : PersonTime
    path : str or Path, optional
        Where to write the HTML (``None``: only return it).
    dag : TimeDAG, optional
        The causal DAG; its variables are named like the PersonTime columns.
    estimand : str, optional
        The causal question in words (and notation), shown in step 2.
    contrast : (str, str), optional
        Regimes ``(a, b)`` of the headline contrast, e.g. ``("always", "never")``.
    estimate_name : str, optional
        The ``.estimates`` entry of the primary estimator to report and refute
        (default: the risk/mean difference of ``contrast`` at the last time, or
        the first blip parameter).
    n_boot : int
        Person-level bootstrap replicates of each estimator for CIs and SEs
        (0: none; the E-value then has no CI and refutations use the spread of
        their repeats as tolerance).
    refutations : sequence of {"placebo", "subset"}
        Refutation checks of the primary estimator.
    n_refute : int
        Repeats of each refutation.
    random_common_cause : callable, optional
        Factory ``f(column or None) -> estimator`` for the random-common-cause check.
    negative_control : (str, callable), optional
        ``(column, factory)``: a negative-control outcome and ``factory(column)``.
    external : dict, optional
        ``{"estimate": .., "ci": (lo, hi), "scale": "difference" | "ratio",
        "label": ..., "estimate_name": ..}`` -- an external trial's estimate of
        the contrast named ``estimate_name`` (default: the headline estimate;
        a ratio needs an ``rr[..]`` name).
    title : str
    dag_display_K : int
        Intervals drawn in the DAG figure (the identification check uses all).
    seed, n_jobs
        Seed of the bootstrap and refutations; bootstrap workers.

    Returns
    -------
    Report
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # a script without a display: draw off-screen
        matplotlib.use("Agg")

    from gtools import sensitivity as S
    from gtools import validation as V
    from gtools.bootstrap import bootstrap
    from gtools.dag import require_identified

    specs = dict(estimators) if isinstance(estimators, Mapping) else {_kind(estimators): estimators}
    if not specs:
        raise ValueError("give at least one estimator")
    primary = next(iter(specs))
    warn_msgs: list[str] = []

    # step 3 first (cheap, and it decides what the summary says)
    ident: dict[str, Any] = {}
    if dag is not None:
        for name, spec in specs.items():
            try:
                ident[name] = require_identified(dag, pt, _adjustment_models(spec), label=name, raise_error=False)
            except ValueError as exc:
                ident[name] = exc

    # step 4: fit
    results = {name: _fit_quiet(spec, pt, warn_msgs, name) for name, spec in specs.items()}
    boots: dict[str, Any] = {}
    if n_boot:
        for name, spec in specs.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                boots[name] = bootstrap(spec, pt, n_boot=n_boot, seed=seed, n_jobs=n_jobs)

    res0 = results[primary]
    est_name = estimate_name or _main_estimate_name(res0, contrast)
    main = {"estimator": primary, "name": est_name, "estimate": float(res0.estimates[est_name]),
            "se": math.nan, "lower": math.nan, "upper": math.nan}
    if primary in boots and est_name in boots[primary].point.index:
        b = boots[primary]
        ci = b.conf_int().loc[est_name]
        main.update(se=float(b.se[est_name]), lower=float(ci["lower"]), upper=float(ci["upper"]))

    # step 5: E-values
    evalues: dict[str, Any] = {}
    for name, res in results.items():
        try:
            k = _kind(res)
            if k == "SNMResult":
                evalues[f"{name}: {res.names[0]}"] = res.evalue()
            elif k == "MSMResult":
                evalues[f"{name}: coefficient"] = res.evalue()
            if contrast is not None and k in ("GFormulaResult", "MSMResult", "CCWResult"):
                if k == "MSMResult" and res._risk is None:
                    continue
                rr = _rr_name(res, contrast)
                ci = None
                if name in boots:
                    key = rr if pt.outcome_type != "continuous" else _main_estimate_name(res, contrast)
                    if key is not None and key in boots[name].point.index:
                        c = boots[name].conf_int().loc[key]
                        ci = (float(c["lower"]), float(c["upper"]))
                        pt_est, se = float(boots[name].point[key]), float(boots[name].se[key])
                        if not ci[0] <= pt_est <= ci[1]:  # few replicates: a normal interval instead
                            z = 1.959963984540054
                            ci = ((pt_est - z * se, pt_est + z * se) if pt.outcome_type == "continuous" else
                                  (pt_est * math.exp(-z * se / pt_est), pt_est * math.exp(z * se / pt_est)))
                            warn_msgs.append(f"E-value CI for {name}: the percentile CI does not contain the "
                                             "estimate (few replicates?); a log-normal interval was used")
                evalues[f"{name}: {contrast[0]} vs {contrast[1]}"] = res.evalue(*contrast, ci=ci)
        except (ValueError, KeyError, TypeError) as exc:
            warn_msgs.append(f"E-value for {name}: {exc}")

    # step 5: refutations
    refs = []
    spec0 = specs[primary]
    se0 = None if math.isnan(main["se"]) else main["se"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "placebo" in refutations:
            refs.append(S.placebo_treatment(spec0, pt, est_name, n=n_refute, seed=seed, se=se0))
        if "subset" in refutations:
            refs.append(S.data_subset(spec0, pt, est_name, n=n_refute, seed=seed, se=se0))
        if random_common_cause is not None:
            refs.append(S.random_common_cause(random_common_cause, pt, est_name, n=n_refute, seed=seed, se=se0))
        if negative_control is not None:
            col, factory = negative_control
            refs.append(S.negative_control_outcome(factory, pt, col, est_name, n_boot=max(n_refute, 2), seed=seed))
    ref_table = S.refutation_table(refs)

    # step 6: validation
    nc_tables: dict[str, Any] = {}
    for name, res in results.items():
        if _kind(res) == "GFormulaResult":
            try:
                nc_tables[name] = V.natural_course_check(res)
            except ValueError as exc:
                warn_msgs.append(f"natural course of {name}: {exc}")
    ext = None
    if external is not None:
        ext_name = external.get("estimate_name", est_name)
        if primary in boots and ext_name in boots[primary].point.index:
            b = boots[primary]
            c = b.conf_int().loc[ext_name]
            ext = V.compare_external(float(b.point[ext_name]), (float(c["lower"]), float(c["upper"])),
                                     float(external["estimate"]), tuple(external["ci"]),
                                     scale=external.get("scale", "difference"))
        else:
            warn_msgs.append("external comparison skipped: it needs a CI of the estimate (n_boot > 0)")

    doc = _render(title=title, pt=pt, dag=dag, dag_display_K=dag_display_K, estimand=estimand, specs=specs,
                  results=results, boots=boots, ident=ident, main=main, evalues=evalues, ref_table=ref_table,
                  nc_tables=nc_tables, ext=ext, external=external, warn_msgs=warn_msgs, contrast=contrast,
                  n_boot=n_boot, n_refute=n_refute)
    out_path = None
    if path is not None:
        out_path = Path(path)
        out_path.write_text(doc, encoding="utf-8")
    nc_first = next(iter(nc_tables.values())) if nc_tables else None
    return Report(html=doc, path=out_path, results=results, identification=ident, evalues=evalues,
                  refutations=ref_table, natural_course=nc_first, external=ext, main=main, boot=boots)


# ------------------------------------------------------------------ rendering
def _render(*, title, pt, dag, dag_display_K, estimand, specs, results, boots, ident, main, evalues, ref_table,
            nc_tables, ext, external, warn_msgs, contrast, n_boot, n_refute) -> str:
    import pandas as pd

    from gtools.dag import IdentificationReport

    out: list[str] = []
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    import gtools

    out.append(f"<h1>{_esc(title)}</h1>")
    out.append(f'<p class="meta">gtools {gtools.__version__}, {now}. {_esc(repr(pt))}</p>')

    # -- summary (the first screen)
    ok_all = [r.ok for r in ident.values() if isinstance(r, IdentificationReport)]
    if not ident:
        ident_txt = '<span class="note">no DAG given: identifiability not checked</span>'
    elif all(ok_all) and len(ok_all) == len(ident):
        ident_txt = '<span class="ok">sequential exchangeability holds in the DAG for every estimator</span>'
    else:
        bad = [n for n, r in ident.items() if not (isinstance(r, IdentificationReport) and r.ok)]
        ident_txt = f'<span class="fail">not identified by the DAG for: {_esc(", ".join(bad))}</span>'
    ci_txt = ("" if math.isnan(main["lower"]) else
              f" (95% CI {main['lower']:.4g} to {main['upper']:.4g}; bootstrap SE {main['se']:.3g}, "
              f"{n_boot} replicates)")
    n_pass = int(sum(bool(p) for p in ref_table["passed"])) if len(ref_table) else 0
    ev_first = next(iter(evalues.items()), None)
    items = [
        f"<li><b>Estimand</b>: {_esc(estimand) if estimand else 'not stated'}</li>",
        f"<li><b>Identification</b>: {ident_txt}</li>",
        f"<li><b>Primary estimate</b> ({_esc(main['estimator'])}, <code>{_esc(main['name'])}</code>): "
        f"<b>{main['estimate']:.4g}</b>{ci_txt}</li>",
    ]
    if ev_first is not None:
        ev = ev_first[1]
        ci_ev = "no CI" if ev.ci is None else f"{ev.ci:.2f} for the CI limit"
        items.append(f"<li><b>E-value</b> ({_esc(ev_first[0])}): {ev.point:.2f} for the estimate, {ci_ev}</li>")
    if len(ref_table):
        items.append(f"<li><b>Refutation checks</b>: {n_pass} of {len(ref_table)} passed</li>")
    for name, nc in nc_tables.items():
        flagged = int(nc["flagged"].sum())
        cls = "ok" if flagged == 0 else "fail"
        items.append(f'<li><b>Natural course</b> ({_esc(name)}): <span class="{cls}">{flagged} flagged '
                     f"discrepancies</span> over {len(nc)} quantities</li>")
    if ext is not None:
        cls = "ok" if ext.agree else "fail"
        items.append(f'<li><b>External trial</b> ({_esc(external.get("label", "external estimate"))}): '
                     f'<span class="{cls}">{"agrees" if ext.agree else "disagrees"}</span> '
                     f"(z = {ext.z:.2f})</li>")
    out.append('<section id="summary" class="summary"><h2>Summary</h2><ul>' + "".join(items) + "</ul></section>")

    # -- 1. DAG
    out.append('<section id="dag"><h2>1. Causal DAG</h2>')
    if dag is None:
        out.append('<p class="note">No DAG was given.</p>')
    else:
        shown = dag if dag.is_concrete else dag.unroll(min(int(dag_display_K), int(pt.n_times)))
        out.append(f'<p>Templates: <code>{_esc("; ".join(dag.templates))}</code>'
                   + (f"; unobserved: <code>{_esc(', '.join(dag.unobserved))}</code>" if dag.unobserved else "")
                   + f". Drawn for {shown.K if shown.K else 'its'} interval(s); dashed: unobserved.</p>")
        out.append(f'<div class="svgbox">{shown.to_svg()}</div>')
    out.append("</section>")

    # -- 2. estimand
    out.append('<section id="estimand"><h2>2. Estimand and data</h2>')
    out.append(f"<p>{_esc(estimand) if estimand else 'Not stated.'}</p>")
    desc = pt.describe()
    out.append("<h3>Data</h3>" + _table(desc.overall.rename("value")))
    out.append("<details><summary>by time</summary>" + _table(desc.by_time) + "</details>")
    out.append("</section>")

    # -- 3. identification
    out.append('<section id="identification"><h2>3. Identification</h2>')
    if not ident:
        out.append('<p class="note">No DAG: sequential exchangeability is assumed, not checked.</p>')
    rows = []
    for name, r in ident.items():
        if isinstance(r, IdentificationReport):
            first = [reason for _n, _p, reason in r.failures[:3]]
            rows.append({"estimator": name, "criterion": r.criterion, "holds": "yes" if r.ok else "NO",
                         "problems": len(r.failures), "first open paths": " | ".join(first),
                         "adjustment (model columns -> DAG)": r.notes[0].split(": ", 1)[-1] if r.notes else ""})
        else:
            rows.append({"estimator": name, "criterion": "sequential back-door", "holds": "not checked",
                         "problems": 0, "first open paths": str(r), "adjustment (model columns -> DAG)": ""})
    if rows:
        out.append(_table(pd.DataFrame(rows).set_index("estimator")))
    for name, r in ident.items():
        if isinstance(r, IdentificationReport) and not r.ok:
            text = "\n".join(str(r).splitlines()[:25])
            out.append(f"<h3>{_esc(name)}</h3><pre>{_esc(text)}</pre>")
    out.append("</section>")

    # -- 4. estimators
    out.append('<section id="estimators"><h2>4. Estimators</h2>')
    for name, res in results.items():
        spec = specs[name]
        out.append(f"<h3>{_esc(name)}</h3><p><code>{_esc(repr(spec))}</code></p>")
        try:
            out.append(_table(res.summary()))
        except Exception as exc:  # a summary that cannot be built should not sink the report
            out.append(f'<p class="note">summary unavailable: {_esc(exc)}</p>')
        if name in boots:
            tab = boots[name].summary()
            keys = [k for k in tab.index if contrast is None or any(f"[{g}" in k or f"-{g}" in k for g in contrast)
                    or k.startswith(("psi[", "coef[", "value["))]
            tab = tab.loc[keys] if keys else tab
            if len(tab) > 20:  # the last time of each curve and the contrasts
                last = [k for k in tab.index if ",t=" not in k or k.endswith(f"t={_time_label(pt.time_values[-1])}]")]
                tab = tab.loc[last] if last else tab.iloc[:20]
            out.append(f"<p>Bootstrap ({n_boot} replicates, percentile CIs):</p>" + _table(tab))
        out.extend(_plots(res))
    if warn_msgs:
        out.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{_esc(m)}</li>" for m in warn_msgs[:30]) + "</ul>")
    out.append("</section>")

    # -- 5. sensitivity
    out.append('<section id="sensitivity"><h2>5. Sensitivity analysis</h2><h3>E-values</h3>')
    if evalues:
        ev_rows = []
        for label, ev in evalues.items():
            ev_rows.append({"contrast": label, "scale": ev.scale, "estimate": ev.estimate,
                            "lower": ev.lo, "upper": ev.hi, "approx. RR": ev.estimate_rr,
                            "E-value (estimate)": ev.point, "E-value (CI limit)": ev.ci})
        out.append(_table(pd.DataFrame(ev_rows).set_index("contrast"), digits=3))
        out.append('<p class="note">The E-value is the minimum strength of association, on the risk-ratio scale, '
                   "that an unmeasured confounder would need with both treatment and outcome to explain the "
                   "estimate away (VanderWeele &amp; Ding 2017).</p>")
    else:
        out.append('<p class="note">No E-value computed.</p>')
    out.append(f"<h3>Refutation checks ({n_refute} repeats each)</h3>")
    if len(ref_table):
        out.append(_table(ref_table.set_index("name")))
        out.append('<p class="note">passed: |new - expected| &le; tolerance (2 SE; the bootstrap SE of the '
                   "estimate when available, else 2 SD of the repeats). Falsification heuristics, not proofs.</p>")
    else:
        out.append('<p class="note">None run.</p>')
    out.append("</section>")

    # -- 6. validation
    out.append('<section id="validation"><h2>6. Causal validation</h2>')
    if not nc_tables and ext is None:
        out.append('<p class="note">No g-formula natural course and no external estimate were available.</p>')
    for name, nc in nc_tables.items():
        out.append(f"<h3>Natural course: {_esc(name)}</h3>" + _table(nc))
        try:
            from gtools.validation import natural_course_check  # noqa: F401

            axes = results[name].natural_course().plot()
            out.append(_png(_figure_of(axes)))
        except Exception as exc:
            out.append(f'<p class="note">plot unavailable: {_esc(exc)}</p>')
    if ext is not None:
        out.append(f"<h3>External trial: {_esc(external.get('label', ''))}</h3>" + _table(ext.to_frame()))
        out.append('<p class="note">agree: |z| &le; 1.96, i.e. no evidence at the 5% level that the two estimate '
                   "different quantities (not a test of equivalence).</p>")
    out.append("</section>")

    body = "\n".join(out)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _plots(res: Any) -> list[str]:
    """Risk curves and weight/balance plots of a result, as inline PNGs."""
    k = _kind(res)
    out = []
    try:
        if k == "GFormulaResult" and res.outcome_type == "survival":
            out.append(_png(_figure_of(res.plot())))
        elif k == "MSMResult":
            if res._risk is not None and len(res._risk) > 1:
                out.append(_png(_figure_of(res.plot())))
            if res.weights is not None:
                out.append(_png(_figure_of(res.weights.plot())))
        elif k == "CCWResult":
            out.append(_png(_figure_of(res.plot())))
        elif k == "WeightsResult":
            out.append(_png(_figure_of(res.plot())))
    except Exception as exc:  # plotting is a convenience: keep the report
        out.append(f'<p class="note">plot unavailable: {_esc(exc)}</p>')
    return out
