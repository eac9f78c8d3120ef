"""Causal DAGs over time-indexed variables, declared compactly by edge templates.

A :class:`TimeDAG` is declared by templates such as ``"L[t-1] -> L[t]"`` and
unrolled into a concrete DAG over ``K`` intervals.  The concrete DAG answers
graphical questions -- d-separation, the back-door and front-door criteria and
the sequential back-door criterion for time-varying treatments -- and returns
:class:`IdentificationReport` objects that name every open path that breaks an
identification condition.

References
----------
Pearl J. Causality: Models, Reasoning, and Inference, 2nd ed. Cambridge, 2009.
Pearl J, Robins JM. Probabilistic evaluation of sequential plans from causal
models with hidden variables. Proc. UAI 1995: 444-453.
Robins JM. A new approach to causal inference in mortality studies with a
sustained exposure period. Math Modelling 1986; 7: 1393-1512.
Hernan MA, Robins JM. Causal Inference: What If. Chapman & Hall/CRC, 2020.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gtools.errors import IdentificationError

__all__ = ["IdentificationReport", "TimeDAG", "dag_adjustment", "require_identified"]

# NAME, NAME[t], NAME[t+2], NAME[t-1], NAME[3]
_NODE_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*)\s*"
    r"(?:\[\s*(?:(?P<t>t)\s*(?:(?P<sign>[+-])\s*(?P<off>\d+))?|(?P<abs>-?\d+))\s*\])?\s*$"
)
_CONCRETE_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.]*)(?:\[(?P<time>-?\d+)\])?$")


@dataclass(frozen=True)
class _TNode:
    """A node of an edge template: variable name and its time specification."""

    name: str
    kind: str  # "fixed" (no index), "rel" (t + offset) or "abs" (absolute time)
    value: int = 0  # offset for "rel", time for "abs"

    def at(self, t: int) -> tuple[str, int | None]:
        if self.kind == "fixed":
            return self.name, None
        if self.kind == "rel":
            return self.name, t + self.value
        return self.name, self.value


def _parse_tnode(text: str, template: str) -> _TNode:
    m = _NODE_RE.match(text)
    if m is None:
        raise ValueError(
            f"cannot parse node {text.strip()!r} in template {template!r}; expected NAME, NAME[t], "
            "NAME[t-1], NAME[t+1] or NAME[3]"
        )
    name = m.group("name")
    if m.group("t"):
        off = int(m.group("off") or 0)
        if m.group("sign") == "-":
            off = -off
        return _TNode(name, "rel", off)
    if m.group("abs") is not None:
        return _TNode(name, "abs", int(m.group("abs")))
    return _TNode(name, "fixed")


def _node_name(var: str, time: int | None) -> str:
    return var if time is None else f"{var}[{time}]"


def _as_set(nodes: str | Iterable[str] | None) -> set[str]:
    if nodes is None:
        return set()
    if isinstance(nodes, str):
        return {nodes}
    return set(nodes)


def _fmt_set(nodes: Iterable[str]) -> str:
    return "{" + ", ".join(nodes) + "}"


@dataclass
class IdentificationReport:
    """Result of a graphical identification check.

    Attributes
    ----------
    criterion : str
        Which criterion was checked (e.g. ``"sequential back-door"``).
    ok : bool
        True when the criterion holds for every treatment node.
    failures : list of (str, list of str, str)
        One entry per violation: the treatment node concerned, the offending
        path as a list of nodes (the open path, or the directed path that makes
        an adjustment variable a descendant of treatment) and a reason text
        that shows the path with its arrow directions, e.g.
        ``"open back-door path A[1] <- U -> Y given {A[0], L[0], L[1], W}"``.
    adjustment_sets : dict of str to list of str
        The conditioning set used for each treatment node.
    notes : list of str
        Extra remarks (e.g. when a path enumeration was truncated).
    """

    criterion: str
    ok: bool
    failures: list[tuple[str, list[str], str]] = field(default_factory=list)
    adjustment_sets: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            lines = [f"{self.criterion} criterion holds."]
            for node, adj in self.adjustment_sets.items():
                lines.append(f"  {node}: adjusting for {_fmt_set(adj)}")
        else:
            lines = [f"{self.criterion} criterion fails ({len(self.failures)} problem(s)):"]
            lines += [f"  {node}: {reason}" for node, _path, reason in self.failures]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def raise_if_failed(self) -> IdentificationReport:
        """Raise :class:`gtools.errors.IdentificationError` with the report text if not ok.

        Returns the report itself when the criterion holds, so calls can be chained.
        """
        if not self.ok:
            raise IdentificationError(str(self))
        return self



def _children_and_z_ancestors(zs: set[str], parents: dict[str, set[str]]) -> tuple[dict[str, set[str]], set[str]]:
    """The children map of a DAG given by its parents, and the ancestors of ``zs`` (``zs`` included)."""
    children: dict[str, set[str]] = {n: set() for n in parents}
    for c, ps in parents.items():
        for p in ps:
            children[p].add(c)
    return children, set(zs) | _closure(zs, parents)


def _closure(start: Iterable[str], step: dict[str, set[str]]) -> set[str]:
    """Every node reachable from ``start`` by repeated ``step`` (``start`` itself only if revisited)."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        n = stack.pop()
        for m in step[n]:
            if m not in seen:
                seen.add(m)
                stack.append(m)
    return seen


class TimeDAG:
    """A causal DAG over time-indexed variables, declared by edge templates.

    Parameters
    ----------
    templates : iterable of str
        Edge templates.  Grammar: ``"X -> Y"``; chains ``"X -> Y -> Z"``; comma
        lists ``"X, W -> Y"`` (every left node to every right node); a lone node
        ``"X"`` declares an isolated node.  A node is ``NAME`` (time-fixed, e.g.
        baseline ``W`` or end-of-follow-up outcome ``Y``), ``NAME[t]``,
        ``NAME[t-k]`` / ``NAME[t+k]`` (any integer offset ``k``) or ``NAME[j]``
        (an absolute time ``j``).
    unobserved : iterable of str, optional
        Hidden variables.  A bare name (``"U"``) hides all its time instances;
        a concrete node name (``"U[2]"``) hides that instance only.
    K : int, optional
        Number of intervals ``t = 0, ..., K-1``.  If given, the DAG is unrolled
        immediately.  A DAG whose templates use no ``t`` is concrete without
        ``K``; otherwise graph queries need :meth:`unroll` first.

    Notes
    -----
    Unrolling rule.  Every template is instantiated for each ``t = 0..K-1``; an
    instance is kept only if both endpoints have times in their variable's
    range.  A variable's range is ``0 .. K-1 + m`` where ``m`` is the largest
    positive offset with which the variable appears in any template (``m = 0``
    if it never appears with a positive offset).  Hence ``"A[t] -> D[t+1]"``
    creates ``D[1], ..., D[K]`` (the survival outcome after the last interval)
    while ``"L[t-1] -> L[t]"`` creates ``L[0..K-1]`` and drops ``L[-1]``.
    Nodes exist only if some kept edge (or a lone-node template) creates them.
    Absolute times (``NAME[j]``) are always kept.  Unrolled node names are
    ``"L[0]"``, ``"A[2]"``, ``"Y"``.

    The concrete graph is stored as a dict mapping each node to the set of
    its parents.

    Examples
    --------
    >>> dag = TimeDAG(["W -> L[t]", "L[t-1] -> L[t]", "A[t-1] -> L[t]", "L[t] -> A[t]",
    ...                "A[t-1] -> A[t]", "A[t] -> Y", "L[t] -> Y"], K=3)
    >>> dag.check_sequential_exchangeability(["L", "W"]).ok
    True
    """

    def __init__(
        self,
        templates: Iterable[str],
        unobserved: Iterable[str] | None = None,
        K: int | None = None,
    ) -> None:
        if isinstance(templates, str):
            templates = [templates]
        self.templates: list[str] = [str(s) for s in templates]
        self.unobserved: list[str] = list(unobserved or [])
        self.K: int | None = None if K is None else int(K)
        if self.K is not None and self.K < 1:
            raise ValueError(f"K must be a positive number of intervals, got {K}")

        # Parse templates into (parent, child) template-node pairs and lone nodes.
        self._tedges: list[tuple[_TNode, _TNode, str]] = []
        self._tlone: list[tuple[_TNode, str]] = []
        self._var_order: list[str] = []
        max_pos: dict[str, int] = {}
        for tpl in self.templates:
            parts = [p for p in tpl.split("->")]
            groups = [[_parse_tnode(x, tpl) for x in part.split(",")] for part in parts]
            for g in groups:
                for n in g:
                    if n.name not in self._var_order:
                        self._var_order.append(n.name)
                    if n.kind == "rel" and n.value > 0:
                        max_pos[n.name] = max(max_pos.get(n.name, 0), n.value)
            if len(groups) == 1:
                self._tlone.extend((n, tpl) for n in groups[0])
            for left, right in itertools.pairwise(groups):
                for a in left:
                    for b in right:
                        self._tedges.append((a, b, tpl))
        self._max_pos = max_pos
        self._uses_t = any(n.kind == "rel" for a, b, _ in self._tedges for n in (a, b)) or any(
            n.kind == "rel" for n, _ in self._tlone
        )
        # Variables that are time-indexed somewhere vs time-fixed.
        kinds: dict[str, set[str]] = {}
        for a, b, _ in self._tedges:
            for n in (a, b):
                kinds.setdefault(n.name, set()).add("fixed" if n.kind == "fixed" else "timed")
        for n, _ in self._tlone:
            kinds.setdefault(n.name, set()).add("fixed" if n.kind == "fixed" else "timed")
        mixed = [v for v, k in kinds.items() if len(k) > 1]
        if mixed:
            raise ValueError(
                f"variable(s) {mixed} appear both with and without a time index; use one form per variable"
            )
        self._timed_vars = {v for v, k in kinds.items() if "timed" in k}

        self._parents: dict[str, set[str]] | None = None
        self._info: dict[str, tuple[str, int | None]] = {}
        if self.K is not None or not self._uses_t:
            self._build()

    # ------------------------------------------------------------------ building
    def _in_range(self, var: str, time: int | None, from_rel: bool) -> bool:
        if time is None or not from_rel:
            return True
        hi = (self.K if self.K is not None else 1) - 1 + self._max_pos.get(var, 0)
        return 0 <= time <= hi

    def _build(self) -> None:
        parents: dict[str, set[str]] = {}
        info: dict[str, tuple[str, int | None]] = {}
        ts = range(self.K) if (self.K is not None and self._uses_t) else range(1)

        def add(var: str, time: int | None) -> str:
            name = _node_name(var, time)
            parents.setdefault(name, set())
            info[name] = (var, time)
            return name

        for t in ts:
            for a, b, tpl in self._tedges:
                (va, ta), (vb, tb) = a.at(t), b.at(t)
                if not (self._in_range(va, ta, a.kind == "rel") and self._in_range(vb, tb, b.kind == "rel")):
                    continue
                na, nb = add(va, ta), add(vb, tb)
                if na == nb:
                    raise ValueError(f"template {tpl!r} creates a self-loop on {na}")
                parents[nb].add(na)
            for n, _tpl in self._tlone:
                v, tt = n.at(t)
                if self._in_range(v, tt, n.kind == "rel"):
                    add(v, tt)
        self._parents = parents
        self._info = info
        self._children: dict[str, set[str]] = {n: set() for n in parents}
        for child, ps in parents.items():
            for p in ps:
                self._children[p].add(child)
        timed = {n for n, (_, t) in info.items() if t is not None}
        self._final_fixed = {
            n for n, (_, t) in info.items() if t is None and self._closure([n], parents) & timed
        }
        self._topo = self._toposort()
        hidden: set[str] = set()
        for u in self.unobserved:
            if u in parents:
                hidden.add(u)
            elif u in self._var_order:
                hidden.update(n for n, (v, _) in info.items() if v == u)
            else:
                raise ValueError(f"unobserved variable {u!r} does not appear in the templates")
        self._hidden = hidden

    def _toposort(self) -> list[str]:
        assert self._parents is not None
        indeg = {n: len(ps) for n, ps in self._parents.items()}
        queue = deque(sorted((n for n, d in indeg.items() if d == 0), key=self._sort_key))
        order: list[str] = []
        while queue:
            n = queue.popleft()
            order.append(n)
            for c in sorted(self._children[n], key=self._sort_key):
                indeg[c] -= 1
                if indeg[c] == 0:
                    queue.append(c)
        if len(order) != len(self._parents):
            cyc = sorted(n for n, d in indeg.items() if d > 0)
            raise ValueError(f"the unrolled graph has a directed cycle among {cyc}")
        return order

    def _sort_key(self, node: str) -> tuple[float, int, str]:
        var, time = self._info.get(node, (node, None))
        row = self._var_order.index(var) if var in self._var_order else 0
        if time is None:
            final = node in getattr(self, "_final_fixed", ())
            return (math.inf if final else -1.0, row, node)
        return (float(time), row, node)

    def unroll(self, K: int) -> TimeDAG:
        """Return the concrete DAG over intervals ``t = 0..K-1`` (see the class notes for the rule)."""
        return TimeDAG(self.templates, unobserved=self.unobserved, K=K)

    def _require(self) -> dict[str, set[str]]:
        if self._parents is None:
            raise ValueError("this TimeDAG is a template (K=None); call .unroll(K) or pass K= first")
        return self._parents

    def _check_nodes(self, nodes: Iterable[str]) -> None:
        parents = self._require()
        bad = [n for n in nodes if n not in parents]
        if bad:
            raise ValueError(f"unknown node(s) {bad}; nodes are e.g. {self.nodes[:6]}")

    # ----------------------------------------------------------------- structure
    @property
    def is_concrete(self) -> bool:
        """True when the DAG has been unrolled to concrete nodes."""
        return self._parents is not None

    @property
    def nodes(self) -> list[str]:
        """Concrete node names, ordered by time then by variable (time-fixed first)."""
        return sorted(self._require(), key=self._sort_key)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Concrete edges as ``(parent, child)`` pairs."""
        parents = self._require()
        return [(p, c) for c in self.nodes for p in sorted(parents[c], key=self._sort_key)]

    @property
    def parent_map(self) -> dict[str, set[str]]:
        """A copy of the node -> set-of-parents mapping."""
        return {n: set(ps) for n, ps in self._require().items()}

    @property
    def hidden(self) -> set[str]:
        """Concrete nodes that are unobserved."""
        self._require()
        return set(self._hidden)

    @property
    def observed(self) -> list[str]:
        """Concrete nodes that are observed."""
        return [n for n in self.nodes if n not in self._hidden]

    def variable(self, node: str) -> str:
        """Variable name of a concrete node (``"L[2]"`` -> ``"L"``)."""
        self._check_nodes([node])
        return self._info[node][0]

    def time(self, node: str) -> int | None:
        """Time of a concrete node (``None`` for time-fixed nodes)."""
        self._check_nodes([node])
        return self._info[node][1]

    def instances(self, var: str) -> list[str]:
        """Concrete nodes of variable ``var``, ordered by time."""
        self._require()
        return sorted((n for n, (v, _) in self._info.items() if v == var), key=self._sort_key)

    def parents(self, node: str) -> set[str]:
        """Direct causes of ``node``."""
        self._check_nodes([node])
        return set(self._require()[node])

    def children(self, node: str) -> set[str]:
        """Direct effects of ``node``."""
        self._check_nodes([node])
        return set(self._children[node])

    def _closure(self, start: Iterable[str], step: dict[str, set[str]]) -> set[str]:
        return _closure(start, step)

    def ancestors(self, node: str | Iterable[str]) -> set[str]:
        """Proper ancestors of a node (or of a set of nodes); the nodes themselves are excluded
        unless one is an ancestor of another."""
        nodes = _as_set(node)
        self._check_nodes(nodes)
        return self._closure(nodes, self._require())

    def descendants(self, node: str | Iterable[str]) -> set[str]:
        """Proper descendants of a node (or of a set of nodes)."""
        nodes = _as_set(node)
        self._check_nodes(nodes)
        return self._closure(nodes, self._children)

    def _directed_path(self, src: str, dst: str, parents: dict[str, set[str]] | None = None) -> list[str]:
        """A shortest directed path src -> ... -> dst (empty if none)."""
        parents = self._require() if parents is None else parents
        children: dict[str, set[str]] = {n: set() for n in parents}
        for c, ps in parents.items():
            for p in ps:
                children[p].add(c)
        prev: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            n = queue.popleft()
            if n == dst:
                path = [n]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])  # type: ignore[arg-type]
                return path[::-1]
            for c in sorted(children[n], key=self._sort_key):
                if c not in prev:
                    prev[c] = n
                    queue.append(c)
        return []

    def format_path(self, path: list[str], parents: dict[str, set[str]] | None = None) -> str:
        """Render a path with arrow directions, e.g. ``"A[1] <- L[1] <- U -> Y"``."""
        parents = self._require() if parents is None else parents
        out = [path[0]] if path else []
        for a, b in itertools.pairwise(path):
            out.append("->" if a in parents[b] else "<-")
            out.append(b)
        return " ".join(out)

    # ------------------------------------------------------------ d-separation
    def _reachable(self, xs: set[str], zs: set[str], parents: dict[str, set[str]]) -> set[str]:
        """Nodes d-connected to ``xs`` given ``zs`` (Bayes-ball / 'reachable' algorithm).

        Koller & Friedman (2009), Algorithm 3.1.  Returns the set of nodes
        reachable from ``xs`` along active trails given ``zs`` (excluding zs).
        """
        # ancestors of Z, including Z: colliders in this set are active
        children, anc_z = _children_and_z_ancestors(zs, parents)
        UP, DOWN = 0, 1  # UP: arrived from a child; DOWN: arrived from a parent
        visited: set[tuple[str, int]] = set()
        reach: set[str] = set()
        queue = deque((x, UP) for x in xs)
        while queue:
            n, d = queue.popleft()
            if (n, d) in visited:
                continue
            visited.add((n, d))
            if n not in zs:
                reach.add(n)
            if d == UP and n not in zs:
                queue.extend((p, UP) for p in parents[n])
                queue.extend((c, DOWN) for c in children[n])
            elif d == DOWN:
                if n not in zs:
                    queue.extend((c, DOWN) for c in children[n])
                if n in anc_z:
                    queue.extend((p, UP) for p in parents[n])
        return reach

    def _validate_xyz(self, x: set[str], y: set[str], z: set[str]) -> None:
        self._check_nodes(x | y | z)
        if not x or not y:
            raise ValueError("x and y must be non-empty")
        for a, b, la, lb in ((x, y, "x", "y"), (x, z, "x", "z"), (y, z, "y", "z")):
            if a & b:
                raise ValueError(f"{la} and {lb} overlap: {sorted(a & b)}")

    def d_separated(
        self,
        x: str | Iterable[str],
        y: str | Iterable[str],
        z: str | Iterable[str] | None = None,
    ) -> bool:
        """Whether ``x`` and ``y`` are d-separated given ``z``.

        A path is blocked by ``z`` if it contains a non-collider in ``z`` or a
        collider that is not in ``z`` and has no descendant in ``z``;
        ``x ⊥ y | z`` iff every path between them is blocked (Pearl 2009,
        Def. 1.2.3).  Implemented by the linear-time Bayes-ball reachability
        algorithm (Shachter 1998; Koller & Friedman 2009, Alg. 3.1).

        Parameters
        ----------
        x, y, z : str or iterable of str
            Concrete node names (single nodes or sets); must be disjoint.
        """
        xs, ys, zs = _as_set(x), _as_set(y), _as_set(z)
        self._validate_xyz(xs, ys, zs)
        return self._dsep(xs, ys, zs, self._require())

    def _dsep(self, xs: set[str], ys: set[str], zs: set[str], parents: dict[str, set[str]]) -> bool:
        return not (self._reachable(xs, zs, parents) & ys)

    def _open_paths(
        self,
        xs: set[str],
        ys: set[str],
        zs: set[str],
        parents: dict[str, set[str]],
        max_paths: int,
        max_length: int | None,
    ) -> tuple[list[list[str]], bool]:
        children, anc_z = _children_and_z_ancestors(zs, parents)
        found: list[list[str]] = []
        truncated = False
        avoid = xs | ys

        def neighbours(n: str) -> list[str]:
            return sorted(parents[n] | children[n], key=self._sort_key)

        def extend(path: list[str], on_path: set[str]) -> None:
            nonlocal truncated
            if truncated:
                return
            cur = path[-1]
            if max_length is not None and len(path) - 1 >= max_length:
                return
            for nxt in neighbours(cur):
                if nxt in on_path:
                    continue
                if len(path) >= 2:
                    prev = path[-2]
                    collider = prev in parents[cur] and nxt in parents[cur]
                    if collider and cur not in anc_z:
                        continue
                    if not collider and cur in zs:
                        continue
                if nxt in ys:
                    found.append(path + [nxt])
                    if len(found) >= max_paths:
                        truncated = True
                        return
                    continue
                if nxt in avoid:
                    continue
                path.append(nxt)
                on_path.add(nxt)
                extend(path, on_path)
                path.pop()
                on_path.discard(nxt)
                if truncated:
                    return

        for x in sorted(xs, key=self._sort_key):
            extend([x], {x})
            if truncated:
                break
        found.sort(key=len)
        return found, truncated

    def open_paths(
        self,
        x: str | Iterable[str],
        y: str | Iterable[str],
        z: str | Iterable[str] | None = None,
        max_paths: int = 100,
        max_length: int | None = None,
    ) -> list[list[str]]:
        """List the d-connecting (open) paths between ``x`` and ``y`` given ``z``.

        Simple paths in the skeleton are enumerated depth-first from each node
        of ``x`` and kept if every interior node is either a non-collider not in
        ``z`` or a collider that is in ``z`` or has a descendant in ``z``.
        Partial paths that are already blocked are pruned.  Paths whose
        interior passes through another node of ``x`` or ``y`` are skipped (their
        open sub-path is reported instead).

        Parameters
        ----------
        x, y, z : str or iterable of str
            Concrete node names; must be disjoint.
        max_paths : int
            Stop after this many paths (enumeration can be exponential).
        max_length : int, optional
            Ignore paths with more than this many edges.

        Returns
        -------
        list of list of str
            Open paths, shortest first; each starts in ``x`` and ends in ``y``.
            Use :meth:`format_path` to render arrow directions.
        """
        xs, ys, zs = _as_set(x), _as_set(y), _as_set(z)
        self._validate_xyz(xs, ys, zs)
        return self._open_paths(xs, ys, zs, self._require(), max_paths, max_length)[0]

    # -------------------------------------------------------- graph surgery
    def _remove_out(self, parents: dict[str, set[str]], nodes: set[str]) -> dict[str, set[str]]:
        """Copy of the parent map without edges out of ``nodes`` (G with underlined nodes)."""
        return {c: {p for p in ps if p not in nodes} for c, ps in parents.items()}

    def _remove_in(self, parents: dict[str, set[str]], nodes: set[str]) -> dict[str, set[str]]:
        """Copy of the parent map without edges into ``nodes`` (G with overlined nodes)."""
        return {c: (set() if c in nodes else set(ps)) for c, ps in parents.items()}

    def _check_observed(self, nodes: Iterable[str], role: str) -> None:
        bad = sorted(n for n in nodes if n in self._hidden)
        if bad:
            raise ValueError(f"{role} contains unobserved node(s) {bad}; only observed variables can be used")

    def _path_failures(
        self,
        treatment_node: str,
        xs: set[str],
        ys: set[str],
        zs: set[str],
        parents: dict[str, set[str]],
        label: str,
        report: IdentificationReport,
        max_paths: int,
    ) -> None:
        paths, truncated = self._open_paths(xs, ys, zs, parents, max_paths, None)
        given = f" given {_fmt_set(sorted(zs, key=self._sort_key))}" if zs else " given {}"
        for p in paths:
            report.failures.append((treatment_node, p, f"{label} {self.format_path(p, parents)}{given}"))
        if not paths:  # d-connected (Bayes-ball) but no path listed: should not happen; stay honest
            report.failures.append((treatment_node, [], f"{label}: d-connected{given} (path not enumerated)"))
        if truncated:
            report.notes.append(f"{treatment_node}: only the first {max_paths} open paths are listed")

    # ---------------------------------------------------------- back-door
    def check_backdoor(
        self,
        treatment: str | Iterable[str],
        outcome: str | Iterable[str],
        adjustment: str | Iterable[str] | None = None,
        max_paths: int = 20,
    ) -> IdentificationReport:
        """Check Pearl's back-door criterion for a point treatment.

        A set ``Z`` satisfies the back-door criterion relative to ``(X, Y)`` if
        (i) no node in ``Z`` is a descendant of ``X`` and (ii) ``Z`` blocks every
        path between ``X`` and ``Y`` that contains an arrow into ``X``,
        i.e. ``(Y ⊥ X | Z)`` in ``G_{underline X}`` (the graph with arrows out of
        ``X`` removed).  Then ``P(y | do(x)) = sum_z P(y | x, z) P(z)``
        (Pearl 2009, Def. 3.3.1 and Thm 3.3.2).

        Parameters
        ----------
        treatment, outcome : str or iterable of str
            Concrete nodes (a set of treatments is checked jointly).
        adjustment : str or iterable of str, optional
            Concrete observed nodes or variable names (all observed instances).
        max_paths : int
            Cap on the number of open paths listed per treatment node.

        Returns
        -------
        IdentificationReport
        """
        parents = self._require()
        xs, ys = _as_set(treatment), _as_set(outcome)
        zs = self._expand_names(adjustment)
        self._validate_xyz(xs, ys, zs)
        self._check_observed(xs, "treatment")
        self._check_observed(ys, "outcome")
        self._check_observed(zs, "adjustment")
        report = IdentificationReport("back-door", ok=True)
        for x in sorted(xs, key=self._sort_key):
            report.adjustment_sets[x] = sorted(zs, key=self._sort_key)
        desc = self.descendants(xs)
        for zn in sorted(zs & desc, key=self._sort_key):
            x = next(x for x in sorted(xs, key=self._sort_key) if zn in self.descendants(x))
            p = self._directed_path(x, zn)
            report.failures.append(
                (x, p, (f"adjustment node {zn} is a descendant of the treatment ({self.format_path(p)}); "
                 "adjusting for a mediator or a consequence of treatment is not allowed"))
            )
        g = self._remove_out(parents, xs)
        if not self._dsep(xs, ys, zs, g):
            for x in sorted(xs, key=self._sort_key):
                self._path_failures(x, {x}, ys, zs, g, "open back-door path", report, max_paths)
        report.ok = not report.failures
        return report

    def _expand_names(self, names: str | Iterable[str] | None, max_time: int | None = None,
                      use_time: bool = False) -> set[str]:
        """Expand variable names to concrete nodes (optionally only times <= max_time)."""
        self._require()
        out: set[str] = set()
        for item in _as_set(names):
            if item in self._info:
                nodes = [item]
            elif item in self._var_order:
                if item in self.unobserved:
                    raise ValueError(f"adjustment names unobserved variable {item!r}")
                nodes = [n for n in self.instances(item) if n not in self._hidden]
            else:
                raise ValueError(f"unknown variable or node {item!r} in adjustment set")
            for n in nodes:
                t = self._info[n][1]
                if use_time and t is not None and max_time is not None and t > max_time:
                    continue
                out.add(n)
        return out

    # ---------------------------------------------------------- front-door
    def frontdoor(
        self,
        treatment: str,
        outcome: str,
        mediators: str | Iterable[str],
        max_paths: int = 20,
    ) -> IdentificationReport:
        """Check Pearl's front-door criterion.

        A set ``M`` satisfies the front-door criterion relative to ``(X, Y)`` if
        (i) ``M`` intercepts every directed path from ``X`` to ``Y``; (ii) there
        is no unblocked back-door path from ``X`` to ``M``, i.e.
        ``(M ⊥ X)`` in ``G_{underline X}``; (iii) every back-door path from ``M``
        to ``Y`` is blocked by ``X``, i.e. ``(Y ⊥ M | X)`` in ``G_{underline M}``.
        Then ``P(y | do(x)) = sum_m P(m | x) sum_x' P(y | x', m) P(x')``
        (Pearl 2009, Def. 3.3.3 and Thm 3.3.4; positivity is also needed).

        Parameters
        ----------
        treatment, outcome : str
            Concrete nodes.
        mediators : str or iterable of str
            Concrete observed nodes or variable names.
        """
        parents = self._require()
        ms = self._expand_names(mediators)
        self._validate_xyz({treatment}, {outcome}, ms)
        self._check_observed([treatment], "treatment")
        self._check_observed([outcome], "outcome")
        self._check_observed(ms, "mediators")
        report = IdentificationReport("front-door", ok=True)
        report.adjustment_sets[treatment] = sorted(ms, key=self._sort_key)
        # (i) directed paths from X to Y avoiding M
        g_no_m = {c: (set() if c in ms else {p for p in ps if p not in ms}) for c, ps in parents.items()}
        p = self._directed_path(treatment, outcome, g_no_m)
        if p:
            report.failures.append(
                (treatment, p, f"directed path {self.format_path(p)} does not pass through the mediators")
            )
        # (ii) no open back-door path X - M
        g = self._remove_out(parents, {treatment})
        if not self._dsep({treatment}, ms, set(), g):
            self._path_failures(treatment, {treatment}, ms, set(), g,
                                "open back-door path from treatment to mediator", report, max_paths)
        # (iii) back-door paths M - Y blocked by X
        g = self._remove_out(parents, ms)
        if not self._dsep(ms, {outcome}, {treatment}, g):
            self._path_failures(treatment, ms, {outcome}, {treatment}, g,
                                "open back-door path from mediator to outcome", report, max_paths)
        report.ok = not report.failures
        return report

    # ------------------------------------------------- sequential back-door
    def check_sequential_exchangeability(
        self,
        adjustment: str | Iterable[str] | Callable[[int], Iterable[str]],
        treatment: str = "A",
        outcome: str = "Y",
        K: int | None = None,
        condition_on_past_outcome: bool = True,
        max_paths: int = 20,
    ) -> IdentificationReport:
        r"""Check sequential exchangeability with the sequential back-door criterion.

        For treatments ``A[0], ..., A[K-1]`` and outcome ``Y``, the effect of a
        (static or dynamic) treatment plan is identified by the g-formula
        ``E[Y^g] = sum_l E[Y | abar, lbar] prod_t f(l_t | abar_{t-1}, lbar_{t-1})``
        if for every ``t`` (Pearl & Robins 1995, Thm 4; Pearl 2009, Sec. 4.4)

        .. math::

            (Y \perp A_t \mid \bar A_{t-1}, \bar L_t)
            \quad\text{in}\quad G_{\underline{A_t},\, \overline{A_{t+1}}, \ldots, \overline{A_{K-1}}},

        where ``G_{underline A_t, overline A_{t+1..K-1}}`` is the DAG with the
        arrows out of ``A_t`` and the arrows into the future treatments
        removed, and the covariates ``Lbar_t`` are non-descendants of
        ``A_t, ..., A_{K-1}``.  This is the graphical counterpart of Robins'
        sequential exchangeability ``Y^g ⊥ A_t | Abar_{t-1}, Lbar_t``.

        Parameters
        ----------
        adjustment : str, iterable of str, or callable
            Variable names (``["L", "W"]``: for ``A[t]`` the observed instances
            at times ``<= t`` plus time-fixed variables) or explicit node names
            (``"L[1]"``: used for ``A[t]`` when its time is ``<= t``).  Naming an
            unobserved variable raises ``ValueError``.  A callable
            ``adjustment(t)`` returns the names to use for ``A[t]`` (e.g. only
            ``L[t-1]`` for a model that reads ``lag1_L``; see
            :func:`require_identified`).
        treatment : str
            Treatment variable name; its instances are the treatment nodes.
        outcome : str
            Outcome variable name.  A time-fixed outcome ``Y`` is used as is.
            For a time-indexed (survival-style, e.g. ``"A[t] -> D[t+1]"``)
            outcome, the outcome for ``A[t]`` is the set of all its instances
            at times ``> t`` (plus any at time ``t`` that descend from
            ``A[t]``); earlier instances (e.g. survival to ``t``) are added to
            the conditioning set when ``condition_on_past_outcome`` is True,
            as the survival g-formula conditions on being event-free.
        K : int, optional
            Number of intervals; defaults to the DAG's own ``K``.
        condition_on_past_outcome : bool
            See ``outcome``.
        max_paths : int
            Cap on the number of open paths listed per treatment node.

        Returns
        -------
        IdentificationReport
            ``failures`` lists, for each failing ``A[t]``, the open paths from
            ``A[t]`` to the outcome in the mutilated graph and any adjustment
            node that is a descendant of a current or future treatment.
        """
        dag = self
        if K is not None and K != self.K:
            dag = self.unroll(K)
        parents = dag._require()
        if treatment not in dag._var_order:
            raise ValueError(f"unknown treatment variable {treatment!r}")
        if outcome not in dag._var_order:
            raise ValueError(f"unknown outcome variable {outcome!r}")
        a_nodes = [n for n in dag.instances(treatment) if dag._info[n][1] is not None]
        if not a_nodes:
            raise ValueError(f"treatment {treatment!r} has no time-indexed instances")
        dag._check_observed(a_nodes, "treatment")
        y_all = dag.instances(outcome)
        dag._check_observed(y_all, "outcome")
        # validate names (raises for unknown / unobserved names); a callable gives the set for A[t]
        adjust_at = adjustment if callable(adjustment) else (lambda _t: adjustment)
        for n in a_nodes:
            dag._check_observed(dag._expand_names(adjust_at(dag._info[n][1])), "adjustment")

        report = IdentificationReport("sequential back-door", ok=True)
        for a in a_nodes:
            t = dag._info[a][1]
            assert t is not None
            past_a = {n for n in a_nodes if dag._info[n][1] < t}  # type: ignore[operator]
            future_a = {n for n in a_nodes if dag._info[n][1] > t}  # type: ignore[operator]
            cov = dag._expand_names(adjust_at(t), max_time=t, use_time=True) - set(a_nodes)
            desc_a = dag.descendants(a)
            ys: set[str] = set()
            past_y: set[str] = set()
            for y in y_all:
                ty = dag._info[y][1]
                if ty is None or ty > t or (ty == t and y in desc_a):
                    ys.add(y)
                else:
                    past_y.add(y)
            cov -= ys
            if condition_on_past_outcome:
                cov |= past_y
            z = past_a | cov
            report.adjustment_sets[a] = sorted(z, key=dag._sort_key)
            # covariates must be non-descendants of A[t], ..., A[K-1]
            now_and_future = [a] + sorted(future_a, key=dag._sort_key)
            for zn in sorted(cov, key=dag._sort_key):
                for src in now_and_future:
                    if zn in dag.descendants(src):
                        p = dag._directed_path(src, zn)
                        report.failures.append(
                            (a, p, (f"adjustment node {zn} is a descendant of treatment {src} "
                             f"({dag.format_path(p)}); the covariates for {a} must precede "
                             "current and future treatment"))
                        )
                        break
            if not ys:
                continue
            g = dag._remove_in(dag._remove_out(parents, {a}), future_a)
            if not dag._dsep({a}, ys, z, g):
                dag._path_failures(a, {a}, ys, z, g, "open back-door path", report, max_paths)
        report.ok = not report.failures
        return report

    # ------------------------------------------------------------- layout / export
    def _layout(self) -> dict[str, tuple[float, float]]:
        """Positions (x, y): x = time, y = variable row.

        Time-fixed nodes without time-indexed ancestors (baseline) go in a
        column left of time 0, the other time-fixed nodes (e.g. a final
        outcome) in a column right of the last time; each of these columns is
        stacked and centred on the rows of the time-indexed variables.
        """
        self._require()
        times = [t for _, t in self._info.values() if t is not None]
        tmax = max(times) if times else 0
        timed_nodes = {n for n, (_, t) in self._info.items() if t is not None}
        rows = self._row_order([v for v in self._var_order if v in self._timed_vars])
        n_rows = max(len(rows), 1)
        pos: dict[str, tuple[float, float]] = {}
        left: list[str] = []
        right: list[str] = []
        for n in self.nodes:
            var, t = self._info[n]
            if t is None:
                (right if self.ancestors(n) & timed_nodes else left).append(n)
            else:
                pos[n] = (float(t), float(rows[var]))
        for col, x in ((left, -1.0), (right, float(tmax + 1))):
            col.sort(key=lambda n: self._var_order.index(self._info[n][0]))
            offset = (n_rows - len(col)) / 2.0
            for i, n in enumerate(col):
                pos[n] = (x, offset + i)
        return pos

    def _row_order(self, vars_: list[str]) -> dict[str, int]:
        """Rows for time-indexed variables: same-time edges point downwards, ties by first appearance."""
        before: dict[str, set[str]] = {v: set() for v in vars_}
        for a, b, _ in self._tedges:
            if a.kind == b.kind == "rel" and a.value == b.value and a.name != b.name and b.name in before:
                before[b.name].add(a.name)
        order: list[str] = []
        remaining = list(vars_)
        while remaining:
            pick = next((v for v in remaining if before[v] <= set(order)), remaining[0])
            order.append(pick)
            remaining.remove(pick)
        return {v: i for i, v in enumerate(order)}

    def to_networkx(self) -> Any:
        """Return the concrete DAG as a ``networkx.DiGraph``.

        Node attributes: ``variable``, ``time`` (None for time-fixed) and
        ``observed``.  networkx is optional and imported here.
        """
        try:
            import networkx as nx
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError("TimeDAG.to_networkx needs networkx: pip install networkx") from exc
        g = nx.DiGraph()
        for n in self.nodes:
            var, t = self._info[n]
            g.add_node(n, variable=var, time=t, observed=n not in self._hidden)
        g.add_edges_from(self.edges)
        return g

    def plot(self, ax: Any = None) -> Any:
        """Draw the unrolled DAG with matplotlib and return the axis.

        Nodes are laid out by time on the x axis and by variable on the y axis;
        unobserved nodes (and their out-going edges) are drawn dashed.
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.patches import Circle, FancyArrowPatch
        except ImportError as exc:  # pragma: no cover - depends on environment
            raise ImportError("TimeDAG.plot needs matplotlib: pip install matplotlib") from exc
        pos = self._layout()
        if ax is None:
            xs = [p[0] for p in pos.values()] or [0.0]
            ys = [p[1] for p in pos.values()] or [0.0]
            _fig, ax = plt.subplots(figsize=(1.6 * (max(xs) - min(xs) + 2), 1.2 * (max(ys) - min(ys) + 2)))
        r = 0.22
        for p, c in self.edges:
            (x0, y0), (x1, y1) = pos[p], pos[c]
            rad = 0.3 if self._blocked_straight(p, c, pos, r) else 0.0
            ax.add_patch(FancyArrowPatch(
                (x0, -y0), (x1, -y1), arrowstyle="-|>", mutation_scale=12,
                connectionstyle=f"arc3,rad={rad}", shrinkA=16, shrinkB=16,
                linestyle="--" if p in self._hidden else "-", color="0.25", lw=1.0,
            ))
        for n, (x, y) in pos.items():
            hidden = n in self._hidden
            ax.add_patch(Circle((x, -y), r, facecolor="white", edgecolor="0.1",
                                linestyle="--" if hidden else "-", lw=1.2, zorder=3))
            ax.text(x, -y, n, ha="center", va="center", fontsize=8, zorder=4)
        xs = [p[0] for p in pos.values()] or [0.0]
        ys = [-p[1] for p in pos.values()] or [0.0]
        ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
        ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        ax.set_aspect("equal")
        ax.axis("off")
        return ax

    def _blocked_straight(self, p: str, c: str, pos: dict[str, tuple[float, float]], r: float) -> bool:
        """Whether the straight segment p -> c passes through another node's disc."""
        (x0, y0), (x1, y1) = pos[p], pos[c]
        dx, dy = x1 - x0, y1 - y0
        L2 = dx * dx + dy * dy
        if L2 == 0:
            return False
        for n, (x, y) in pos.items():
            if n in (p, c):
                continue
            u = ((x - x0) * dx + (y - y0) * dy) / L2
            if 0 < u < 1:
                px, py = x0 + u * dx, y0 + u * dy
                if math.hypot(x - px, y - py) < 1.2 * r:
                    return True
        return False

    def to_dot(self) -> str:
        """Graphviz DOT text of the concrete DAG (one rank per time; hidden nodes dashed)."""
        pos = self._layout()
        lines = ["digraph TimeDAG {", "  rankdir=LR;", '  node [shape=ellipse, fontname="Helvetica"];']
        for n in self.nodes:
            style = ", style=dashed" if n in self._hidden else ""
            lines.append(f'  "{n}" [label="{n}"{style}];')
        cols: dict[float, list[str]] = {}
        for n in self.nodes:
            cols.setdefault(pos[n][0], []).append(n)
        for x in sorted(cols):
            members = " ".join(f'"{n}";' for n in cols[x])
            lines.append(f"  {{ rank=same; {members} }}")
        for p, c in self.edges:
            style = " [style=dashed]" if p in self._hidden else ""
            lines.append(f'  "{p}" -> "{c}"{style};')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_svg(self, dx: float = 110.0, dy: float = 80.0, radius: float = 24.0) -> str:
        """A self-contained SVG drawing of the layered layout (no graphviz needed).

        Columns are times (time-fixed baseline nodes on the left, time-fixed
        nodes caused by time-varying ones on the right), rows are variables;
        unobserved nodes and their edges are dashed.
        """
        pos = self._layout()
        if not pos:
            return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
        xmin = min(p[0] for p in pos.values())
        ymin = min(p[1] for p in pos.values())
        pix = {n: ((x - xmin) * dx + dx / 2, (y - ymin) * dy + dy / 2) for n, (x, y) in pos.items()}
        width = max(p[0] for p in pix.values()) + dx / 2
        height = max(p[1] for p in pix.values()) + dy / 2
        out = [
            (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
            'font-size="12">'),
            ('<defs><marker id="gtools-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/>'
            "</marker></defs>"),
        ]
        for p, c in self.edges:
            (x0, y0), (x1, y1) = pix[p], pix[c]
            L = math.hypot(x1 - x0, y1 - y0)
            ux, uy = (x1 - x0) / L, (y1 - y0) / L
            dash = ' stroke-dasharray="5,4"' if p in self._hidden else ""
            if self._blocked_straight(p, c, pos, radius / dx):
                # bend: quadratic curve with control point offset perpendicular to the segment
                mx, my = (x0 + x1) / 2 - uy * 0.25 * L, (y0 + y1) / 2 + ux * 0.25 * L
                sx, sy = self._towards(x0, y0, mx, my, radius)
                ex, ey = self._towards(x1, y1, mx, my, radius)
                d = f"M {sx:.1f} {sy:.1f} Q {mx:.1f} {my:.1f} {ex:.1f} {ey:.1f}"
            else:
                sx, sy = x0 + ux * radius, y0 + uy * radius
                ex, ey = x1 - ux * radius, y1 - uy * radius
                d = f"M {sx:.1f} {sy:.1f} L {ex:.1f} {ey:.1f}"
            out.append(f'<path d="{d}" fill="none" stroke="#444" stroke-width="1.2"{dash} '
                       'marker-end="url(#gtools-arrow)"/>')
        for n in self.nodes:
            x, y = pix[n]
            dash = ' stroke-dasharray="4,3"' if n in self._hidden else ""
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.0f}" fill="white" stroke="#111" '
                       f'stroke-width="1.3"{dash}/>')
            out.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" dominant-baseline="central">'
                       f"{html.escape(n)}</text>")
        out.append("</svg>")
        return "\n".join(out) + "\n"

    @staticmethod
    def _towards(x: float, y: float, tx: float, ty: float, dist: float) -> tuple[float, float]:
        L = math.hypot(tx - x, ty - y) or 1.0
        return x + (tx - x) / L * dist, y + (ty - y) / L * dist

    def __repr__(self) -> str:
        hid = f", unobserved={self.unobserved!r}" if self.unobserved else ""
        if self._parents is None:
            return f"TimeDAG({len(self.templates)} templates, K=None{hid})"
        n_e = sum(len(ps) for ps in self._parents.values())
        return (f"TimeDAG({len(self.templates)} templates, K={self.K}, {len(self._parents)} nodes, "
                f"{n_e} edges{hid})")


# ------------------------------------------------------------------ estimator hook
def _formula_columns(formulas: Iterable[Any]) -> list[str]:
    """Every column a set of models reads (responses included), in first-seen order."""
    from collections.abc import Mapping

    from gtools.formula import parse_formula

    out: list[str] = []
    for f in formulas:
        if f is None:
            continue
        if isinstance(f, Mapping):
            out.extend(_formula_columns(f.values()))
            continue
        if isinstance(f, (list, tuple)):
            out.extend(_formula_columns(f))
            continue
        text = getattr(f, "formula", f)
        if not isinstance(text, str):
            continue
        lhs, _, terms = parse_formula(text)
        if lhs is not None:
            out.append(lhs)
        out.extend(fac.var for term in terms for fac in term)
    return list(dict.fromkeys(out))


def dag_adjustment(dag: TimeDAG, pt: Any, formulas: Iterable[Any], treatment: str | None = None,
                   outcome: str | None = None) -> tuple[dict[str, int], dict[str, str]]:
    """Map the PersonTime columns that models read to DAG variables.

    Returns ``(offsets, mapping)``: ``offsets[var] = k`` means the models read
    ``var`` up to ``t - k`` when treatment ``A[t]`` is decided (``k = 0``: the
    current value ``var[t]`` or a cumulative summary through ``t``; ``k = 1``
    for ``lag1_var``; time-fixed variables get 0), and ``mapping`` says, for
    every column, what it was mapped to. The time column, the treatment and
    its history features, and the outcome, censoring and competing columns are
    left out (past treatment is always part of the sequential adjustment set).
    """
    treatment = treatment or pt.treatment
    outcome = outcome or pt.outcome
    skip = {c for c in (pt.time, treatment, outcome, pt.censor, pt.competing) if c}
    feats = {f.name: f for f in getattr(pt, "history", [])}
    offsets: dict[str, int] = {}
    mapping: dict[str, str] = {}
    for col in _formula_columns(formulas):
        if col in skip:
            continue
        if col in feats:
            f = feats[col]
            var = f.root
            off = sum(int(g.k) for g in f.chain() if g.kind == "lag")
        else:
            var, off = col, 0
        if var in skip:
            continue  # treatment history
        if var not in dag._var_order:
            raise ValueError(
                f"column {col!r} read by the models is not a variable of the DAG (variables: {dag._var_order}); "
                "name the DAG's variables like the PersonTime's columns and add it to the DAG"
            )
        offsets[var] = min(off, offsets.get(var, off))
        if var not in dag._timed_vars:
            mapping[col] = var
        else:
            mapping[col] = f"{var}[t]" if off == 0 else f"{var}[t-{off}] and earlier"
    return offsets, mapping


def require_identified(
    dag: TimeDAG,
    pt: Any,
    formulas: Iterable[Any],
    treatment: str | None = None,
    outcome: str | None = None,
    label: str = "the estimator",
    raise_error: bool = True,
) -> IdentificationReport:
    """Check that the covariates an estimator's models read identify the effect; the ``dag=`` hook.

    Each model column is mapped to a DAG variable by name (:func:`dag_adjustment`):
    a current covariate ``L`` to ``L[0..t]``, a history column ``lag1_L`` to
    ``L[0..t-1]`` (``lagk``: ``L[0..t-k]``; cumulative summaries: through ``t``),
    a baseline column to its time-fixed node. For every treatment node
    ``A[t]`` the sequential back-door criterion is checked with past treatment
    plus those nodes (:meth:`TimeDAG.check_sequential_exchangeability`),
    i.e. :math:`Y^g \\perp A_t \\mid \\bar A_{t-1}, \\bar L_{t-k}` graphically.
    The treatment and outcome variables of the DAG must be named like the
    PersonTime's treatment and outcome columns. A template DAG (``K=None``) is
    unrolled to ``pt.n_times`` intervals. The report is cached on the table
    (bootstrap replicates share it).

    Parameters
    ----------
    dag : TimeDAG
    pt : PersonTime
    formulas : iterable of gt.Model, formula strings or dicts of them
        The models whose covariates form the adjustment set.
    treatment, outcome : str, optional
        DAG variable names; default the PersonTime's treatment and outcome.
    label : str
        Who is asking, for the error message.
    raise_error : bool
        Raise :class:`~gtools.errors.IdentificationError` (showing the open
        paths) when the criterion fails; otherwise return the failing report.
    """
    treatment = treatment or pt.treatment
    outcome = outcome or pt.outcome
    cols = tuple(_formula_columns(formulas))
    key = ("require_identified", id(dag), cols, treatment, outcome)
    cache = getattr(pt, "_cache", {})
    if key in cache:
        report, mapping = cache[key]
    else:
        offsets, mapping = dag_adjustment(dag, pt, formulas, treatment, outcome)
        concrete = dag if dag.is_concrete else dag.unroll(int(pt.n_times))
        hidden = concrete.hidden

        def adjust_at(t: int) -> list[str]:
            names: list[str] = []
            for var, off in offsets.items():
                if var not in concrete._timed_vars:
                    names.append(var)
                    continue
                names += [n for n in concrete.instances(var)
                          if n not in hidden and concrete._info[n][1] is not None
                          and concrete._info[n][1] <= t - off]
            return names

        report = concrete.check_sequential_exchangeability(adjust_at, treatment=treatment, outcome=outcome)
        report.notes.insert(0, "model columns -> DAG: " + (", ".join(f"{c} -> {v}" for c, v in mapping.items())
                                                           or "none (past treatment only)"))
        cache[key] = (report, mapping)
    if raise_error and not report.ok:
        shown = ", ".join(mapping) or "no covariates"
        lines = str(report).splitlines()
        n_more = len(report.failures) - 8
        text = "\n".join(lines[:9] + ([f"  ... and {n_more} more (see the report of require_identified(..., "
                                          "raise_error=False))"] if n_more > 0 else []))
        raise IdentificationError(
            f"{label}: by the DAG, the covariates its models read ({shown}) are not a valid sequential "
            f"adjustment set for the effect of {treatment} on {outcome}.\n{text}"
        )
    return report
