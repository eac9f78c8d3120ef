"""Tests for gtools.dag.TimeDAG."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtools.dag import IdentificationReport, TimeDAG
from gtools.errors import IdentificationError

# The standard time-varying confounding DAG (Hernan & Robins, What If, Fig. 19/20).
TVC = [
    "W -> L[t]",
    "L[t-1] -> L[t]",
    "A[t-1] -> L[t]",
    "L[t] -> A[t]",
    "A[t-1] -> A[t]",
    "A[t] -> Y",
    "L[t] -> Y",
]


# ----------------------------------------------------------------- unrolling
def test_unroll_creates_every_interval_and_drops_out_of_range_lags():
    dag = TimeDAG(TVC, K=3)
    assert set(dag.nodes) == {"W", "Y", "L[0]", "L[1]", "L[2]", "A[0]", "A[1]", "A[2]"}
    assert dag.parents("L[0]") == {"W"}  # L[-1] and A[-1] do not exist
    assert dag.parents("L[2]") == {"W", "L[1]", "A[1]"}
    assert dag.parents("Y") == {"L[0]", "L[1]", "L[2]", "A[0]", "A[1]", "A[2]"}
    assert dag.children("A[0]") == {"L[1]", "A[1]", "Y"}
    assert ("L[1]", "A[1]") in dag.edges


def test_template_dag_needs_unroll_before_graph_queries():
    dag = TimeDAG(TVC)
    assert not dag.is_concrete
    with pytest.raises(ValueError, match="unroll"):
        _ = dag.nodes
    concrete = dag.unroll(2)
    assert concrete.is_concrete and concrete.K == 2
    assert "A[1]" in concrete.nodes and "A[2]" not in concrete.nodes


def test_positive_offset_extends_range_to_K_for_survival_outcomes():
    dag = TimeDAG(["L[t] -> A[t]", "A[t] -> D[t+1]", "L[t] -> D[t+1]"], K=3)
    d_nodes = dag.instances("D")
    assert d_nodes == ["D[1]", "D[2]", "D[3]"]  # D[0] is never created by an edge
    assert dag.parents("D[3]") == {"A[2]", "L[2]"}


def test_templates_accept_chains_comma_lists_absolute_times_and_lone_nodes():
    dag = TimeDAG(["X, Z -> M -> Y", "B[0] -> Y", "Q"])
    assert dag.is_concrete
    assert dag.parents("M") == {"X", "Z"}
    assert dag.parents("Y") == {"M", "B[0]"}
    assert "Q" in dag.nodes and dag.parents("Q") == set()
    assert dag.time("B[0]") == 0 and dag.variable("B[0]") == "B" and dag.time("Y") is None


def test_cycle_and_bad_templates_are_rejected():
    with pytest.raises(ValueError, match="cycle"):
        TimeDAG(["A[t] -> L[t]", "L[t] -> A[t]"], K=2)
    with pytest.raises(ValueError, match="self-loop"):
        TimeDAG(["L[t] -> L[t]"], K=2)
    with pytest.raises(ValueError, match="cannot parse"):
        TimeDAG(["L[s] -> A[t]"], K=2)
    with pytest.raises(ValueError, match="both with and without"):
        TimeDAG(["L -> A[t]", "L[t] -> Y"], K=2)
    with pytest.raises(ValueError, match="does not appear"):
        TimeDAG(["A -> Y"], unobserved=["U"])


def test_ancestors_and_descendants_are_proper_and_transitive():
    dag = TimeDAG(TVC, K=2)
    assert dag.ancestors("A[1]") == {"W", "L[0]", "A[0]", "L[1]"}
    assert dag.descendants("A[0]") == {"L[1]", "A[1]", "Y"}
    assert "A[0]" not in dag.descendants("A[0]")
    with pytest.raises(ValueError, match="unknown node"):
        dag.parents("A[7]")


def test_unobserved_names_hide_every_time_instance():
    dag = TimeDAG(TVC + ["U[t] -> L[t]"], unobserved=["U"], K=2)
    assert dag.hidden == {"U[0]", "U[1]"}
    assert "U[0]" not in dag.observed


# -------------------------------------------------------------- d-separation
def test_d_separation_chain_is_blocked_by_the_middle_node():
    dag = TimeDAG(["A -> B -> C"])
    assert not dag.d_separated("A", "C")
    assert dag.d_separated("A", "C", "B")


def test_d_separation_fork_is_blocked_by_the_common_cause():
    dag = TimeDAG(["B -> A", "B -> C"])
    assert not dag.d_separated("A", "C")
    assert dag.d_separated("A", "C", {"B"})


def test_d_separation_collider_is_opened_by_conditioning_on_it():
    dag = TimeDAG(["A -> C", "B -> C"])
    assert dag.d_separated("A", "B")
    assert not dag.d_separated("A", "B", "C")


def test_d_separation_collider_is_opened_by_conditioning_on_its_descendant():
    dag = TimeDAG(["A -> C", "B -> C", "C -> D"])
    assert dag.d_separated("A", "B")
    assert not dag.d_separated("A", "B", "D")
    assert dag.open_paths("A", "B", "D") == [["A", "C", "B"]]


def test_d_separation_rejects_overlapping_sets():
    dag = TimeDAG(["A -> B -> C"])
    with pytest.raises(ValueError, match="overlap"):
        dag.d_separated("A", "C", {"A"})


def test_open_paths_lists_each_d_connecting_path_and_formats_directions():
    dag = TimeDAG(["U -> X", "U -> Y", "X -> M -> Y", "X -> Y"])
    paths = dag.open_paths("X", "Y")
    assert paths[0] == ["X", "Y"]
    assert sorted(map(tuple, paths)) == sorted([("X", "Y"), ("X", "M", "Y"), ("X", "U", "Y")])
    assert dag.format_path(["X", "U", "Y"]) == "X <- U -> Y"
    assert dag.open_paths("X", "Y", {"U", "M"}) == [["X", "Y"]]
    assert len(dag.open_paths("X", "Y", max_paths=1)) == 1


@st.composite
def _random_dags(draw):
    n = draw(st.integers(3, 7))
    names = [f"V{i}" for i in range(n)]
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    edges = [f"{names[i]} -> {names[j]}" for (i, j) in pairs if draw(st.booleans())]
    templates = edges + names  # lone-node templates make sure every node exists
    x, y = draw(st.sampled_from([(a, b) for a, b in itertools.permutations(names, 2)]))
    rest = [v for v in names if v not in (x, y)]
    z = draw(st.sets(st.sampled_from(rest))) if rest else set()
    return templates, x, y, z


@settings(max_examples=60, deadline=None)
@given(_random_dags())
def test_bayes_ball_d_separation_agrees_with_exhaustive_path_enumeration(case):
    templates, x, y, z = case
    dag = TimeDAG(templates)
    open_ = dag.open_paths(x, y, z, max_paths=10_000)
    assert dag.d_separated(x, y, z) == (len(open_) == 0)


# ---------------------------------------------------- sequential back-door
def test_sequential_exchangeability_accepts_time_varying_confounding_with_L_and_W():
    report = TimeDAG(TVC, K=3).check_sequential_exchangeability(["L", "W"])
    assert report.ok, str(report)
    assert report.failures == []
    assert report.adjustment_sets["A[2]"] == ["W", "L[0]", "A[0]", "L[1]", "A[1]", "L[2]"]
    assert report.raise_if_failed() is report
    assert "holds" in str(report)


def test_sequential_exchangeability_holds_with_hidden_cause_of_L_and_Y_where_regression_fails():
    # U -> L[t], U -> Y with U hidden: L[t] is a collider on A[t-1] -> L[t] <- U -> Y, so a
    # single regression of Y on all A[t] and L[t] is biased for the joint effect (conditioning on
    # the collider opens that path, and L[t] is a descendant of A[t-1]).  The sequential criterion
    # asks only, for each t, whether Y is d-separated from A[t] given (Abar[t-1], Lbar[t]) in the
    # graph with arrows out of A[t] and into A[t+1..] removed.  Every remaining path from A[t]
    # starts with an arrow into A[t] from L[t] or A[t-1], both conditioned-on non-colliders, so
    # the criterion HOLDS: the g-formula identifies the effect even though regression does not.
    dag = TimeDAG(TVC + ["U -> L[t]", "U -> Y"], unobserved=["U"], K=3)
    assert dag.check_sequential_exchangeability(["L", "W"]).ok
    # The conventional single-model approach (back-door for the joint treatment with L as a
    # covariate) is rejected because L[1], L[2] are descendants of A[0].
    joint = dag.check_backdoor(["A[0]", "A[1]", "A[2]"], "Y", ["L", "W"])
    assert not joint.ok
    assert any("L[1] is a descendant" in reason for _, _, reason in joint.failures)
    # And conditioning on L[1] does open the collider path from A[0] through U to Y:
    paths = dag.open_paths("A[0]", "Y", {"L[0]", "L[1]", "A[1]", "L[2]", "A[2]", "W"})
    assert ["A[0]", "L[1]", "U", "Y"] in paths


def test_sequential_exchangeability_rejects_hidden_confounder_path_and_names_it():
    dag = TimeDAG(TVC + ["U -> A[t]", "U -> Y"], unobserved=["U"], K=3)
    report = dag.check_sequential_exchangeability(["L", "W"])
    assert not report.ok
    assert {node for node, _, _ in report.failures} == {"A[0]", "A[1]", "A[2]"}
    node, path, reason = report.failures[0]
    assert node == "A[0]" and path == ["A[0]", "U", "Y"]
    assert "A[0] <- U -> Y" in reason
    assert "A[1]: open back-door path A[1] <- U -> Y" in str(report)
    with pytest.raises(IdentificationError, match="A\\[2\\] <- U -> Y"):
        report.raise_if_failed()


def test_sequential_exchangeability_rejects_missing_time_varying_confounder():
    report = TimeDAG(TVC, K=2).check_sequential_exchangeability(["W"])
    assert not report.ok
    assert any(path == ["A[0]", "L[0]", "Y"] for _, path, _ in report.failures)


def test_sequential_exchangeability_rejects_covariate_affected_by_current_treatment():
    dag = TimeDAG(["L[t] -> A[t]", "A[t] -> M[t]", "M[t] -> Y", "A[t] -> Y", "L[t] -> Y"], K=2)
    report = dag.check_sequential_exchangeability(["L", "M"])
    assert not report.ok
    assert any("M[0] is a descendant of treatment A[0]" in r for _, _, r in report.failures)


def test_sequential_exchangeability_rejects_unobserved_adjustment_variable():
    dag = TimeDAG(TVC + ["U -> L[t]", "U -> Y"], unobserved=["U"], K=2)
    with pytest.raises(ValueError, match="unobserved"):
        dag.check_sequential_exchangeability(["L", "U"])
    with pytest.raises(ValueError, match="unknown"):
        dag.check_sequential_exchangeability(["L", "Z"])


def test_sequential_exchangeability_unrolls_template_with_K_argument():
    report = TimeDAG(TVC).check_sequential_exchangeability(["L", "W"], K=4)
    assert list(report.adjustment_sets) == ["A[0]", "A[1]", "A[2]", "A[3]"]
    assert report.ok


def test_sequential_exchangeability_survival_outcome_uses_all_later_events():
    templates = ["L[t-1] -> L[t]", "L[t] -> A[t]", "A[t-1] -> A[t]", "A[t] -> D[t+1]", "L[t] -> D[t+1]",
                 "A[t-1] -> L[t]"]
    ok = TimeDAG(templates, K=3).check_sequential_exchangeability(["L"], outcome="D")
    assert ok.ok
    # a hidden common cause of treatment and a later event breaks it, and the path names D[2]
    bad = TimeDAG(templates + ["U -> A[t]", "U -> D[t+1]"], unobserved=["U"], K=3)
    report = bad.check_sequential_exchangeability(["L"], outcome="D")
    assert not report.ok
    assert any(r.startswith("open back-door path A[1] <- U -> D[2]") for _, _, r in report.failures)


# ------------------------------------------------------------ point treatments
def test_backdoor_accepts_confounder_and_rejects_unadjusted_fork():
    dag = TimeDAG(["C -> X", "C -> Y", "X -> Y"])
    assert dag.check_backdoor("X", "Y", ["C"]).ok
    report = dag.check_backdoor("X", "Y", [])
    assert not report.ok
    assert report.failures[0][1] == ["X", "C", "Y"]
    assert "X <- C -> Y" in str(report)


def test_backdoor_rejects_adjusting_for_a_mediator_with_reason():
    dag = TimeDAG(["C -> X", "C -> Y", "X -> M", "M -> Y"])
    report = dag.check_backdoor("X", "Y", ["C", "M"])
    assert not report.ok
    node, path, reason = report.failures[0]
    assert node == "X" and path == ["X", "M"]
    assert "M is a descendant of the treatment (X -> M)" in reason
    assert "mediator" in reason


def test_backdoor_rejects_conditioning_on_a_collider_m_bias():
    dag = TimeDAG(["U1 -> X", "U1 -> C", "U2 -> C", "U2 -> Y", "X -> Y"], unobserved=["U1", "U2"])
    assert dag.check_backdoor("X", "Y").ok
    report = dag.check_backdoor("X", "Y", ["C"])
    assert not report.ok
    assert "X <- U1 -> C <- U2 -> Y" in str(report)


def test_backdoor_rejects_unobserved_adjustment():
    dag = TimeDAG(["U -> X", "U -> Y", "X -> Y"], unobserved=["U"])
    with pytest.raises(ValueError, match="unobserved"):
        dag.check_backdoor("X", "Y", ["U"])


def test_frontdoor_accepts_classic_smoking_tar_cancer_graph():
    dag = TimeDAG(["U -> X", "U -> Y", "X -> M", "M -> Y"], unobserved=["U"])
    assert not dag.check_backdoor("X", "Y").ok
    assert dag.frontdoor("X", "Y", ["M"]).ok


def test_frontdoor_rejects_direct_path_and_confounded_mediator():
    direct = TimeDAG(["U -> X", "U -> Y", "X -> M", "M -> Y", "X -> Y"], unobserved=["U"])
    report = direct.frontdoor("X", "Y", "M")
    assert not report.ok and "directed path X -> Y" in str(report)
    confounded = TimeDAG(["U -> X", "U -> M", "X -> M", "M -> Y"], unobserved=["U"])
    report = confounded.frontdoor("X", "Y", "M")
    assert not report.ok and "X <- U -> M" in str(report)


# ---------------------------------------------------------------- exports
def test_report_is_a_dataclass_with_bool_and_text():
    report = IdentificationReport("back-door", ok=False, failures=[("X", ["X", "C", "Y"], "open path")])
    assert not report
    assert "X: open path" in str(report)


def test_to_dot_marks_hidden_nodes_dashed_and_ranks_by_time():
    dag = TimeDAG(TVC + ["U -> L[t]", "U -> Y"], unobserved=["U"], K=2)
    dot = dag.to_dot()
    assert dot.startswith("digraph")
    assert '"U" [label="U", style=dashed];' in dot
    assert '"L[0]" -> "A[0]";' in dot
    assert 'rank=same; "L[1]"; "A[1]";' in dot


def test_to_svg_draws_every_node_and_edge():
    dag = TimeDAG(TVC + ["U -> L[t]", "U -> Y"], unobserved=["U"], K=2)
    svg = dag.to_svg()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<circle") == len(dag.nodes)
    assert svg.count("marker-end") == len(dag.edges)
    assert "stroke-dasharray" in svg and ">L[1]</text>" in svg


def test_plot_returns_axis_with_one_label_per_node():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dag = TimeDAG(TVC, K=2)
    ax = dag.plot()
    assert {t.get_text() for t in ax.texts} == set(dag.nodes)
    plt.close(ax.figure)


def test_to_networkx_exports_nodes_edges_and_attributes_or_explains_missing_dependency():
    dag = TimeDAG(TVC + ["U -> Y"], unobserved=["U"], K=2)
    try:
        import networkx  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install networkx"):
            dag.to_networkx()
        return
    g = dag.to_networkx()
    assert set(g.nodes) == set(dag.nodes) and set(g.edges) == set(dag.edges)
    assert g.nodes["U"]["observed"] is False and g.nodes["L[1]"]["time"] == 1


def test_repr_summarises_size():
    assert repr(TimeDAG(TVC)) == "TimeDAG(7 templates, K=None)"
    assert repr(TimeDAG(TVC, K=2)).startswith("TimeDAG(7 templates, K=2, ")
