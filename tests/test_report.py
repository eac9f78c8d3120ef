"""gt.report renders a self-contained HTML document with every step of the workflow."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

import gtools as gt
from gtools.datasets import sepsis
from gtools.report import SECTIONS

SEPSIS_DAG = [
    "age, comorb -> sofa[t]", "sofa[t-1] -> sofa[t]", "vaso[t-1] -> sofa[t]",
    "sofa[t] -> lactate[t]", "lactate[t-1] -> lactate[t]", "vaso[t-1] -> lactate[t]",
    "sofa[t], lactate[t], vaso[t-1], age, sex -> vaso[t]",
    "sofa[t], lactate[t], vaso[t] -> discharge[t]",
    "sofa[t], lactate[t], vaso[t], vaso[t-1], age, comorb -> death[t]",
]
M = sepsis.SEPSIS_MODELS


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.svgs, self.tables, self.text = [], [], 0, 0, []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        self.svgs += tag == "svg"
        self.tables += tag == "table"
        self._skip += tag in ("style", "svg")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "svg")

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.text.append(data.strip())


@pytest.fixture(scope="module")
def pt():
    df = sepsis.load_sepsis()
    return gt.PersonTime.from_long(df[df["id"] <= 1200], **sepsis.SEPSIS_ROLES).add_history(
        *sepsis.history_features())


@pytest.fixture(scope="module")
def rendered(pt, tmp_path_factory):
    regimes = {"always": gt.regimes.always(), "never": gt.regimes.never()}
    gf = gt.GFormula(covariate_models=[gt.Model(M["sofa"][0], family="gaussian"),
                                       gt.Model(M["lactate"][0], family="gaussian")],
                     treatment_model=M["vaso"][0], outcome_model=M["death"][0],
                     regimes={"natural": gt.regimes.natural(), **regimes}, n_samples=1000, seed=1)
    msm = gt.MSM("death ~ vaso + lag1_vaso + age + day", weights=gt.IPTW(M["vaso"][0]), regimes=regimes)
    path = tmp_path_factory.mktemp("report") / "r.html"
    rep = gt.report({"g-formula": gf, "MSM": msm}, pt, path, dag=gt.TimeDAG(SEPSIS_DAG),
                    estimand="28-day risk difference, always vs never vasopressors", contrast=("always", "never"),
                    n_boot=4, n_refute=2, external={"estimate": -0.28, "ci": (-0.31, -0.25), "label": "trial"})
    return rep, path


def test_report_writes_every_section_with_figures_and_the_dag(rendered):
    rep, path = rendered
    text = path.read_text(encoding="utf-8")
    assert text == rep.html and text.startswith("<!DOCTYPE html>")
    p = _Collect()
    p.feed(text)
    assert set(SECTIONS) <= set(p.ids)
    assert p.svgs == 1  # the DAG, inline
    pngs = [s for s in p.imgs if s.startswith("data:image/png;base64,")]
    assert len(pngs) >= 4 and len(pngs) == len(p.imgs)  # risk curves x2, weights/balance, natural course
    assert p.tables >= 8
    body = " ".join(p.text)
    for phrase in ("1. Causal DAG", "3. Identification", "E-values", "Refutation checks", "placebo treatment",
                   "data subset", "Natural course", "External trial", "sequential exchangeability holds"):
        assert phrase in body, phrase
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_report_returns_the_pieces_it_shows(rendered):
    rep, _ = rendered
    assert rep.main["name"] == "rd[always-never,t=27]" and rep.main["lower"] <= rep.main["upper"]
    assert all(r.ok for r in rep.identification.values())
    assert list(rep.refutations["name"]) == ["placebo treatment", "data subset"]
    assert "g-formula: always vs never" in rep.evalues and "MSM: coefficient" in rep.evalues
    assert rep.natural_course is not None and rep.external is not None
    assert "written to" in repr(rep)


def test_report_shows_the_open_path_when_the_dag_refutes_the_models(pt):
    msm = gt.MSM("death ~ vaso + day", weights=gt.IPTW("vaso ~ sofa + lag1_vaso + age + sex + day"))
    dag = gt.TimeDAG(SEPSIS_DAG)
    rep = gt.report(msm, pt, None, dag=dag, n_refute=2, refutations=("placebo",))
    assert rep.path is None and not rep.identification["MSM"].ok
    assert "not identified by the DAG for: MSM" in rep.html
    assert "vaso[0] &lt;- lactate[0] -&gt; death[0]" in rep.html


def test_report_without_dag_or_bootstrap_still_renders(pt):
    spec = gt.IPTW(M["vaso"][0])
    msm = gt.MSM("death ~ vaso + day", weights=spec)
    rep = gt.report(msm, pt, None, refutations=())
    assert "identifiability not checked" in rep.html and len(rep.refutations) == 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed")
def test_report_screenshot_with_headless_chromium(rendered, tmp_path):  # pragma: no cover - optional
    _, path = rendered
    shot = tmp_path / "shot.png"
    # as root in a sandbox-less container, with no network: the flags a headless run needs here
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
                    path.as_uri()], check=True, timeout=90, capture_output=True)
    assert shot.stat().st_size > 10_000
