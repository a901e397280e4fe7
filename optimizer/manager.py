"""The pass manager: runs a pipeline of registered passes, records what each did, cleans up."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass, TopologicalSortPass

from optimizer.errors import UserError, error_line
from optimizer.gc_pause import paused_gc
from optimizer.graph_walk import own_subgraphs
from optimizer.modelio import check_model
from optimizer.pass_options import build_options, option_values
from optimizer.passapi import Pass, PassContext, PassResult, SkipPass, iter_nodes, reported_verdicts
from optimizer.registry import get_pass

CHANGED, UNCHANGED, SKIPPED, FAILED, DROPPED = "changed", "unchanged", "skipped", "failed", "dropped"


@dataclass
class PassRecord:
    """What one pass did over the whole run (summed over fixed-point rounds)."""

    name: str
    status: str = UNCHANGED
    matches: int = 0
    changes: int = 0
    seconds: float = 0.0
    nodes_before: int = 0
    nodes_after: int = 0
    changed_nodes: list[str] = field(default_factory=list)
    skips: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    explained: list[dict[str, str]] | None = None  # --explain: a verdict per candidate (first round)
    options: dict[str, Any] = field(default_factory=dict)  # the pass's effective options

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return dict(self.__dict__, seconds=round(self.seconds, 6))


@dataclass
class RunResult:
    """The model after the pipeline, a record per pass, and the number of rounds run."""

    model: ir.Model
    records: list[PassRecord]
    rounds: int
    skeleton: onnx.ModelProto | None = None  # the model's, as the checker saw it at the end (for the save)


def check_conflicts(names: list[str]) -> None:
    """Refuse a pipeline holding two passes that undo each other (declared in ``conflicts``)."""
    for name in names:
        for other in get_pass(name).conflicts:
            if other in names:
                raise UserError(f"passes {name} and {other} undo each other: run one of them (they would oscillate)")


def order_pipeline(names: list[str]) -> list[str]:
    """Keep the given order except where a pass's declared ``after`` asks for another pass first,
    or a pass that ``runs_last`` (an analysis of the model as saved) would see a model that a
    later pass still changes.

    A cycle among the ``after`` constraints is a :class:`UserError` naming the passes.
    """
    last = {name for name in names if get_pass(name).runs_last}
    edges = []
    for name in names:
        befores = list(get_pass(name).after)
        if name in last:
            befores += [other for other in names if other not in last]
        edges += [(before, name) for before in befores if before in names and before != name]
    position = {name: index for index, name in enumerate(names)}
    if all(position[before] < position[after] for before, after in edges):
        return list(names)  # what the sort below returns for an order that already holds
    import networkx as nx  # only when there is something to reorder (0.15 s of imports)

    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    graph.add_edges_from(edges)
    try:
        return list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = " -> ".join(edge[0] for edge in nx.find_cycle(graph))
        raise UserError(f"passes must each run after the other: {cycle}") from None


def count_nodes(model: ir.Model) -> int:
    """Number of nodes in the model, subgraphs and functions included."""
    return sum(1 for _ in iter_nodes(model))


class PassManager:
    """Run passes in order over a model, optionally repeating until nothing changes.

    A pass that raises, or leaves a model the onnx checker rejects, is recorded as failed and
    the pipeline goes on without it. ``finalize`` is what happens to the model after the
    pipeline (the opset conversion down to the saved opset): a pass whose result it cannot
    take, where it took the model the pass started from, fails too, so every kept rewrite is
    legal at the opset the model is saved at. While the model cannot be finalized yet (a pass
    later in the pipeline prepares it, as ``decompose-depth-to-space`` does for opset 9),
    passes are not blamed for that.

    The passes first run on the model itself, one after the other, and the checker and
    ``finalize`` see only the end result: no copy, no check per pass. Only when a pass raises
    (``SkipPass`` promises an untouched model and does not count) or the end result is
    refused does the pipeline run again, carefully: from a fresh start model, each pass on a
    clone of the last good model, checked on its own (``--explain`` always runs so).
    """

    def __init__(
        self,
        names: list[str],
        ctx: PassContext,
        *,
        fixed_point: bool = False,
        max_rounds: int = 10,
        progress: Callable[[str], None] | None = None,
        finalize: Callable[[ir.Model], ir.Model] | None = None,
        options: Mapping[str, Any] | None = None,
        explain: str | None = None,
    ) -> None:
        check_conflicts(names)
        self.names = order_pipeline(names)
        if explain is not None:
            get_pass(explain)  # an unknown name is the usual error
            if explain not in self.names:
                raise UserError(f"--explain {explain}: not in the pipeline; add it with --passes +{explain}")
        self.explain = explain  # the pass whose verdicts are collected
        given = options or {}
        self.passes: dict[str, Pass] = {name: make_pass(name, given.get(name)) for name in self.names}
        self.ctx = ctx
        self.max_rounds = max_rounds if fixed_point else 1
        self.progress = progress or (lambda message: None)
        self.finalize = finalize
        self._finalizable = True  # whether the current model survives ``finalize``
        self._nodes = 0  # nodes of the current model

    def options(self) -> dict[str, dict[str, Any]]:
        """The effective options of every pass in the pipeline, as JSON-ready data."""
        return {name: option_values(pass_.options) for name, pass_ in self.passes.items()}

    def run(self, model: ir.Model, restart: Callable[[], ir.Model] | None = None) -> RunResult:
        """Run the pipeline, then remove dead nodes and sort the graph if anything changed.

        ``model`` is used up. ``restart`` makes the model again, as it was given, for the careful
        run (see the class); without it ``model`` is cloned first. The cyclic garbage collector
        is paused meanwhile (:func:`optimizer.gc_pause.paused_gc`).
        """
        with paused_gc():
            if self.explain is not None:
                return self._run(model, careful=True)
            if restart is None:
                snapshot = model.clone()
                restart = lambda: snapshot  # noqa: E731 - the careful run is made at most once
            try:
                return self._run(model, careful=False)
            except _CarefulRun:
                return self._run(restart(), careful=True)

    def _run(self, model: ir.Model, *, careful: bool) -> RunResult:
        self._finalizable = self._finalizes(model) if careful else True
        self._nodes = count_nodes(model)  # of the current model
        records = {name: PassRecord(name, options=values) for name, values in self.options().items()}
        rounds = 0
        seen = {fingerprint(model): 0} if self.max_rounds > 1 else {}
        changed_in: list[list[str]] = []
        while rounds < self.max_rounds:
            rounds += 1
            changed_in.append([])
            for name in self.names:
                record = records[name]
                if record.status in (FAILED, SKIPPED):
                    continue
                self.progress(f"{name}" + (f" (round {rounds})" if rounds > 1 else ""))
                model, modified = self._run_one(self.passes[name], model, record, first=rounds == 1, careful=careful)
                if modified:
                    changed_in[-1].append(name)
            if not changed_in[-1]:
                break
            if self.max_rounds == 1:
                continue
            state = fingerprint(model)
            culprits = sorted({name for names in changed_in[seen.get(state, rounds) :] for name in names})
            if len(culprits) > 1:
                raise UserError(
                    f"passes {', '.join(culprits)} undo each other: round {rounds} brought the model back to "
                    f"its state after round {seen[state]}; run fewer of them"
                )
            seen[state] = rounds
        result = list(records.values())
        skeleton = None
        if any(record.changes for record in result):
            result.append(cleanup(model))
            if not careful:
                skeleton = self._accept(model)
        return RunResult(model, result, rounds, skeleton)

    def _accept(self, model: ir.Model) -> onnx.ModelProto:
        """The skeleton the checker took; raise :class:`_CarefulRun` unless the checker and
        ``finalize`` take the end result."""
        try:
            skeleton = check_model(model)
            if self.finalize is not None:
                self.finalize(model.clone())
        except Exception as exc:  # whichever pass caused it, the careful run finds it
            raise _CarefulRun from exc
        return skeleton

    def _run_one(self, pass_: Pass, model: ir.Model, record: PassRecord, *, first: bool, careful: bool
                 ) -> tuple[ir.Model, bool]:
        """Run ``pass_``: carefully on a clone of ``model`` whose result is checked (``model`` is
        kept when either fails), else on ``model`` itself, where a pass that raises (not
        ``SkipPass``) raises :class:`_CarefulRun`."""
        nodes_before = self._nodes
        if first:
            record.nodes_before = nodes_before
        reason = pass_.requires.unmet(model, self.ctx)
        if reason is not None:
            record.status, record.reason, record.nodes_after = SKIPPED, reason, nodes_before
            return model, False
        self.ctx.forget()
        self.ctx.explain = careful and first and pass_.name == self.explain
        started = time.perf_counter()
        try:
            result = pass_.run(model.clone() if careful else model, self.ctx)
            if result.modified:
                sort_graphs(result.model)
                if careful:
                    check_model(result.model)
                    if self._finalizable and self.finalize is not None:
                        self.finalize(result.model.clone())
        except SkipPass as exc:
            record.seconds += time.perf_counter() - started
            record.status, record.reason, record.nodes_after = SKIPPED, str(exc), nodes_before
            return model, False
        except Exception as exc:  # a broken pass must not stop the pipeline
            if not careful:  # the model may be half rewritten
                raise _CarefulRun from exc
            record.seconds += time.perf_counter() - started
            record.status, record.reason = FAILED, f"{type(exc).__name__}: {error_line(exc)}"
            record.nodes_after = nodes_before
            return model, False
        record.seconds += time.perf_counter() - started
        if self.ctx.explain:
            record.explained = [asdict(verdict) for verdict in result.verdicts or reported_verdicts(result, model)]
        _merge(record, result)
        if result.modified:
            self._nodes = count_nodes(result.model)
        record.nodes_after = self._nodes
        if result.modified and not self._finalizable:
            self._finalizable = self._finalizes(result.model)
        return result.model, result.modified

    def _finalizes(self, model: ir.Model) -> bool:
        """Whether ``finalize`` takes ``model`` (always, without one)."""
        if self.finalize is None:
            return True
        try:
            self.finalize(model.clone())
        except Exception:  # whatever it raises, the model cannot be finalized yet
            return False
        return True


class _CarefulRun(Exception):  # noqa: N818 - a signal inside the manager
    """The in-place run cannot tell which pass broke the model: run the pipeline again, carefully."""


def make_pass(name: str, options: Any = None) -> Pass:
    """An instance of pass ``name`` with ``options``: its ``Options``, a mapping of option values
    (strings read as the options' types), or None for the defaults."""
    cls = get_pass(name)
    if isinstance(options, Mapping):
        options = build_options(cls, options)
    return cls(options)


def sort_graphs(model: ir.Model) -> None:
    """Sort every graph and function of ``model`` topologically, unless they already are (a
    check costs a fraction of onnx-ir's sort, and most passes insert nodes in order)."""
    if not is_sorted(model):
        TopologicalSortPass()(model)


def is_sorted(model: ir.Model) -> bool:
    """Whether every node of every scope comes after the producers of its inputs (a subgraph's
    nodes count as coming just before the node that holds the subgraph)."""
    seen: set[ir.Node] = set()

    def sorted_graph(graph: ir.Graph) -> bool:
        for node in graph:
            for value in node.inputs:
                producer = None if value is None else value.producer()
                if producer is not None and producer not in seen:
                    return False
            if not all(sorted_graph(sub) for sub in own_subgraphs(node)):
                return False
            seen.add(node)
        return True

    return sorted_graph(model.graph) and all(sorted_graph(function.graph) for function in model.functions.values())


def fingerprint(model: ir.Model) -> tuple:
    """What the model computes with, regardless of names: input shapes, sorted ops and their attributes."""
    shapes = tuple(str(value.shape) for value in model.graph.inputs)
    return shapes, tuple(sorted((node.domain, node.op_type, _plain_attributes(node)) for node in iter_nodes(model)))


def _plain_attributes(node: ir.Node) -> str:
    subgraphs = (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
    return repr(sorted((name, str(attr.value)) for name, attr in node.attributes.items() if attr.type not in subgraphs))


def _merge(record: PassRecord, result: PassResult) -> None:
    record.changes += len(result.changes)
    record.matches = record.changes + (result.matches - len(result.changes))
    record.changed_nodes.extend(name for change in result.changes for name in change.nodes)
    record.skips = [{"node": skip.node, "reason": skip.reason} for skip in result.skips]
    record.notes = list(dict.fromkeys(record.notes + result.notes))
    record.findings = result.findings
    if record.changes:
        record.status = CHANGED


def nothing_unused(model: ir.Model) -> bool:
    """Whether onnx-ir's RemoveUnusedNodesPass would leave ``model`` as it is, told without the
    schema it reads for every node: every output of every node (in every scope) is used or an
    output of its graph, no node ends in an empty input, there is no BatchNormalization (whose
    ``training_mode`` it may drop), and every main-graph initializer is used, an input or an output."""
    for node in iter_nodes(model):
        if node.op_type == "BatchNormalization" or (node.inputs and node.inputs[-1] is None):
            return False
        for output in node.outputs:
            if not output.uses() and not output.is_graph_output():
                return False
    return all(
        value.uses() or value.is_graph_input() or value.is_graph_output() for value in model.graph.initializers.values()
    )


def cleanup(model: ir.Model) -> PassRecord:
    """Remove dead nodes and initializers and sort topologically; recorded as a pass."""
    record = PassRecord("cleanup", nodes_before=count_nodes(model))
    started = time.perf_counter()
    initializers = len(model.graph.initializers)
    if not nothing_unused(model):
        RemoveUnusedNodesPass()(model)
    sort_graphs(model)
    record.nodes_after = count_nodes(model)
    record.changes = record.matches = (
        record.nodes_before - record.nodes_after + initializers - len(model.graph.initializers)
    )
    record.status = CHANGED if record.changes else UNCHANGED
    record.seconds = time.perf_counter() - started
    return record
