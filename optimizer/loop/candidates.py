"""Choosing passes from a recorded profile: the candidates of a plan, with the hot time each addresses.

**Credit only what a pass touches.** Every registered pass is dry-run alone on the model, for the
target, with ``--input-shape`` fixed. A pass is credited with the time of the profile rows
attributed to the nodes it would change (``PassRecord.changed_nodes``; for an analysis pass that
changes nothing, such as ``transpose-whitelist``, the nodes named by its ``*_nodes`` finding), and it
is proposed only when some of that time is of a hot op type (one of the profile's ``top`` op
types). A pass that changes something somewhere else gets none of the hot time.

**Rows to nodes.** Profile rows map to ONNX nodes as ``compare`` maps them
(:func:`profiles.attribution.attribute`: exact names, then ATC names such as
``PartitionedCall_AvgPool_45_2``). A profile without per-kernel rows (an op_statistic alone), or
whose rows name no node of the model, is credited by op type instead: a pass changing k of the
model's n nodes of an ONNX op type gets k/n of the time of the kernel types that map to it
(TransposeD -> Transpose); layout kernels are then credited to no pass.

**Layout kernels** (TransData and the rest of ``profiles.hotspots.LAYOUT_OP_TYPES``, ATC's inserted
``trans_*`` rows) are attributed to the node they serve:

1. by name: the row's name holds exactly one node name on ``_`` boundaries
   (``Conv_3_trans_TransData_12`` serves ``Conv_3``);
2. by the graph: otherwise take the nearest other rows before and after it in execution order
   (start time, else file order), mapped to nodes p and n. The row sits on the edge p -> n when n
   reads an output of p directly or through nodes with no row of their own (a Reshape that ATC
   folds away); failing that, on the edge from the graph inputs to n when n reads one, or from p
   to the graph outputs when p writes one. It serves the node on the plain-layout side of the edge
   (ND, NCHW, NHWC, ...): the consumer when it converts *to* a plain layout, the producer when it
   converts *from* one, both when its formats do not say. So ``trans_TransData_12`` between
   ``Conv_3`` and ``Transpose_5`` (NC1HWC0 -> ND) serves the Transpose, and a pass that removes
   that Transpose is credited with the TransData on both sides of it.

**Opset.** When every refusal of a pass names the opset (``--opset N lets it run``, ``--opset N
enables this rewrite``) and the target accepts opset N, the pass is dry-run again through
:func:`optimizer.optimize.optimize` at opset N and, when that credits it, proposed with ``opset=N``.

**Overlap.** An analysis candidate whose nodes a rewriting candidate changes is dropped
(``fuse-depth-to-space`` removes the very Transpose ``transpose-whitelist`` would list).

**Target.** Given, or inferred from the profile by :func:`choose_target`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.manager import FAILED, SKIPPED, PassManager, PassRecord
from optimizer.passapi import PassContext, iter_nodes, model_opset
from optimizer.targets import load_target, target_names
from optimizer.whitelist_shapes import WHITELIST_PASS

OPSET_HINT = re.compile(r"--opset (\d+) (?:lets it run|enables this rewrite)")
PLAIN_FORMATS = frozenset({"ND", "NCHW", "NHWC", "NCDHW", "NDHWC", "HWCN", "CHWN", "NC", "NCL"})
A2_CORE_TYPES = frozenset({"MIX_AIC", "MIX_AIV"})  # the AI Core split into cube and vector: Atlas A2
ASCEND_CORE_TYPES = frozenset({"AI_CORE", "AI_VECTOR_CORE", "AI_CPU", "HCCL", "COMMUNICATION", *A2_CORE_TYPES})
MAX_HOPS = 8  # rowless nodes a layout row may look through to find the node it serves


@dataclass
class Candidate:
    """A pass worth running: the hot time its changed nodes account for, and what it needs."""

    pass_name: str
    op_types: list[str]  # hot op types (profile spelling) this pass's changed nodes account for
    hot_us: float  # time of the profile rows attributed to the nodes it changes (+ their layout kernels)
    hot_share: float  # hot_us as a fraction of the profile's time
    nodes: list[str]  # ONNX nodes it would change (for an analysis pass: those it lists)
    opset: int | None = None  # the opset change it needs (None: none)
    whitelist_shapes: list[list[int]] = field(default_factory=list)  # for transpose-whitelist
    reason: str = ""  # one line: why proposed

    def to_dict(self) -> dict:
        """JSON-ready form (a plan's ``candidates`` entry)."""
        return asdict(self)


@dataclass(frozen=True)
class TargetChoice:
    """The target a plan is made for, and how it was chosen (given, or what in the profile told it)."""

    name: str
    how: str

    def __str__(self) -> str:
        return f"{self.name} ({self.how})"


def choose_candidates(
    profile,
    model_path: Path,
    target: str | None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    top: int = 10,
    pass_options: dict[str, dict[str, str]] | None = None,
) -> tuple[list[Candidate], list[dict], TargetChoice]:
    """The passes worth running on ``model_path`` given ``profile`` (a profiles.model.Profile).

    Returns the candidates by hot time (largest first), the passes considered and rejected as
    ``{"pass", "reason"}``, and the target used. Nothing runs but dry runs of the passes, with
    ``pass_options`` (``--set``: pass -> option -> value).
    """
    from optimizer.modelio import load_model
    from optimizer.shapes import fix_input_shapes
    from profiles.hotspots import hotspots

    if not profile.ops and not profile.stats:
        raise UserError(
            f"{profile.source}: holds no per-op times (a latency summary?); give an op_summary / op_statistic "
            "or an msprof / onnx-opt profile folder"
        )
    choice = choose_target(profile, target)
    shapes = dict(input_shapes or {})
    model = load_model(model_path)
    fix_input_shapes(model, shapes)
    hot = {t.op_type for t in hotspots(profile, top).op_types if t.op_type}
    credit = Credit(profile, model)
    settings = dict(pass_options or {})
    context = _Context(
        profile, credit, hot, load_target(choice.name), Path(model_path), model_opset(model), shapes, choice.name,
        settings,
    )
    found: list[Candidate] = []
    rejected: list[dict] = []
    for name, record in dry_run(model, choice.name, settings).items():
        outcome = _consider(name, record, context)
        if isinstance(outcome, Candidate):
            found.append(outcome)
        else:
            rejected.append({"pass": name, "reason": outcome})
    rewritten = {node for c in found if c.pass_name in context.rewriters for node in c.nodes}
    candidates = []
    for c in found:
        by = [o.pass_name for o in found if o.pass_name in context.rewriters and set(o.nodes) & set(c.nodes)]
        if c.pass_name not in context.rewriters and set(c.nodes) <= rewritten and by:
            rejected.append({"pass": c.pass_name, "reason": f"{', '.join(by)} rewrites the nodes it would list"})
        else:
            candidates.append(c)
    candidates.sort(key=lambda c: (-c.hot_us, c.pass_name))
    rejected.sort(key=lambda r: r["pass"])
    return candidates, rejected, choice


def choose_target(profile, target: str | None) -> TargetChoice:
    """``target`` when given; else what the profile tells, or a :class:`UserError` asking for ``--target``.

    onnxruntime for an onnxruntime profile (its kernels run on ``*ExecutionProvider``);
    ascend910b for Atlas A2 signs (MIX_AIC / MIX_AIV kernels, ``aic_*`` / ``aiv_*`` metric columns);
    ascend310 for CANN 5.0.x's ``AI Core`` spelling of the core type (the target on CANN 5.0.x).
    """
    if target is not None:
        load_target(target)
        return TargetChoice(target, "given with --target")
    cores = {op.core_type for op in profile.ops} | {s.core_type for s in profile.stats}
    cores.discard(None)
    if profile.kind == "onnxruntime" or (cores and all(c.endswith("ExecutionProvider") for c in cores)):
        return TargetChoice("onnxruntime", "the default for an onnxruntime profile")
    if cores & A2_CORE_TYPES:
        kernels = "/".join(sorted(cores & A2_CORE_TYPES))
        return TargetChoice("ascend910b", f"inferred from the profile: {kernels} kernels, which Atlas A2 (910B) runs")
    columns = [*profile.meta.get("columns", []), *(profile.ops[0].extra if profile.ops else {})]
    if any(column.startswith(("aic_", "aiv_")) for column in columns):
        return TargetChoice(
            "ascend910b", "inferred from the profile: aic_/aiv_ columns, the cube/vector split of Atlas A2 (910B)"
        )
    if _raw_text_has(profile, "AI Core"):
        return TargetChoice(
            "ascend310", "inferred from the profile: core type 'AI Core', CANN 5.0.x's spelling (ascend310's CANN)"
        )
    choices = ", ".join(target_names())
    signs = sorted(cores & ASCEND_CORE_TYPES)
    what = f"an Ascend profile ({'/'.join(signs)} kernels) that" if signs else "the profile, which"
    raise UserError(
        f"{profile.source}: cannot tell the target from {what} names no SoC or CANN version; give --target ({choices})"
    )


def dry_run(
    model: ir.Model, target: str, pass_options: dict[str, dict[str, str]] | None = None
) -> dict[str, PassRecord]:
    """The record of every registered pass (but the opt-in ones) run alone on a copy of ``model``."""
    from optimizer.registry import default_passes

    ctx = PassContext(load_target(target), model_opset(model))
    return {
        name: PassManager([name], ctx, options=pass_options).run(model.clone()).records[0]
        for name in default_passes()
    }


def dry_run_at(
    model_path: Path,
    name: str,
    target: str,
    opset: int,
    input_shapes: dict[str, list[int]],
    pass_options: dict[str, dict[str, str]] | None = None,
) -> PassRecord:
    """The record of pass ``name`` run alone at ``opset``, exactly as ``optimize --opset`` runs it."""
    from optimizer.optimize import OptimizeOptions, optimize

    options = OptimizeOptions(
        input=Path(model_path),
        passes=[name],
        target=target,
        opset=opset,
        input_shapes=dict(input_shapes),
        verify=False,
        dry_run=True,
        pass_options={key: value for key, value in (pass_options or {}).items() if key == name},
    )
    return next(record for record in optimize(options).records if record.name == name)


def touched_nodes(record: PassRecord) -> list[str]:
    """The nodes a pass would change; for an analysis pass, those its ``*_nodes`` findings name."""
    nodes = list(record.changed_nodes)
    for key, value in record.findings.items():
        if key.endswith("_nodes") and isinstance(value, (dict, list)):
            nodes += [str(name) for name in value]
    return list(dict.fromkeys(nodes))


class Credit:
    """Profile time of sets of ONNX nodes: by rows (layout rows included) or, without rows, by op type."""

    def __init__(self, profile, model: ir.Model) -> None:
        from profiles.attribution import attribute

        self.profile = profile
        self.op_type_of = {node.name: node.op_type for node in iter_nodes(model) if node.name}
        self.rows: dict[int, set[str]] = {}
        if profile.ops:
            attribution = attribute(profile, list(self.op_type_of.items()))
            if attribution.mapping:
                self.rows = {i: {name} for i, name in attribution.mapping.items()}
                self.rows.update(layout_rows(profile, model, attribution))
        self.by_rows = bool(self.rows)
        self.total_us = sum(op.duration_us for op in profile.ops) if self.by_rows else profile.total_us

    def time_by_type(self, nodes: list[str]) -> dict[str, float]:
        """Time (us) credited to ``nodes``, by the profile's op type."""
        from profiles.hotspots import canonical_op_type

        wanted = set(nodes)
        times: dict[str, float] = {}
        if self.by_rows:
            for i, served in self.rows.items():
                if served & wanted:
                    op = self.profile.ops[i]
                    times[op.op_type or "N/A"] = times.get(op.op_type or "N/A", 0.0) + op.duration_us
            return times
        everywhere = Counter(self.op_type_of.values())
        hit = Counter(self.op_type_of[name] for name in wanted if name in self.op_type_of)
        for stat in self.profile.stats_by_type().values():
            onnx_type = canonical_op_type(stat.op_type)[0]
            if onnx_type and hit[onnx_type]:
                times[stat.op_type] = stat.total_us * hit[onnx_type] / everywhere[onnx_type]
        return times


def layout_rows(profile, model: ir.Model, attribution) -> dict[int, set[str]]:
    """Layout (inserted) rows -> the nodes they serve, by the rules of the module docstring."""
    ops = profile.ops
    timed = all(op.start_us is not None for op in ops)
    order = sorted(range(len(ops)), key=lambda i: (ops[i].start_us, i)) if timed else list(range(len(ops)))
    inserted = set(attribution.inserted)
    nodes = {node.name: node for node in iter_nodes(model) if node.name}
    with_rows = set(attribution.mapping.values())
    served: dict[int, set[str]] = {}
    for k, i in enumerate(order):
        if i not in inserted:
            continue
        named = _names_in(ops[i].name, nodes)
        if len(named) == 1:
            served[i] = named
            continue
        before = _neighbour(order, k, -1, inserted, attribution.mapping)
        after = _neighbour(order, k, 1, inserted, attribution.mapping)
        edge = _edge(nodes.get(before), nodes.get(after), with_rows)
        if edge is not None:
            served[i] = _served_side(ops[i], edge)
    return served


def _names_in(row_name: str, nodes: dict) -> set[str]:
    tokens = row_name.split("_")
    spans = {"_".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)}
    return spans & nodes.keys()


def _neighbour(order: list[int], k: int, step: int, inserted: set[int], mapping: dict[int, str]) -> str | None:
    """The node of the nearest non-layout row from position ``k`` in direction ``step`` (None: unmapped)."""
    k += step
    while 0 <= k < len(order) and order[k] in inserted:
        k += step
    return mapping.get(order[k]) if 0 <= k < len(order) else None


def _edge(p: ir.Node | None, n: ir.Node | None, with_rows: set[str]) -> tuple[str | None, str | None] | None:
    """The graph edge a layout row between the rows of p and n sits on (None at a graph end), if any."""

    def through(node: ir.Node) -> bool:
        return node.name not in with_rows

    if p is not None and n is not None and _reaches(p, lambda node: node is n, through):
        return p.name, n.name
    if n is not None and _reads_input(n, through):
        return None, n.name
    if p is not None and _reaches(p, None, through):
        return p.name, None
    return None


def _reaches(start: ir.Node, goal, through) -> bool:
    """Whether ``goal`` (or, when None, a graph output) is downstream of ``start`` via rowless nodes."""
    frontier, hops = [start], 0
    while frontier and hops <= MAX_HOPS:
        following = []
        for node in frontier:
            for value in node.outputs:
                if goal is None and value.is_graph_output():
                    return True
                for consumer in value.consumers():
                    if goal is not None and goal(consumer):
                        return True
                    if through(consumer):
                        following.append(consumer)
        frontier, hops = following, hops + 1
    return False


def _reads_input(start: ir.Node, through) -> bool:
    """Whether ``start`` reads a graph input directly or through rowless nodes."""
    frontier, hops = [start], 0
    while frontier and hops <= MAX_HOPS:
        following = []
        for node in frontier:
            for value in node.inputs:
                if value is None:
                    continue
                if value.is_graph_input():
                    return True
                producer = value.producer()
                if producer is not None and through(producer):
                    following.append(producer)
        frontier, hops = following, hops + 1
    return False


def _served_side(op, edge: tuple[str | None, str | None]) -> set[str]:
    """The node(s) of ``edge`` a layout row serves: the one on its plain-layout side."""
    source, result = _plain(op.input_formats), _plain(op.output_formats)
    producer, consumer = edge
    if result is True and source is False and consumer:
        return {consumer}
    if source is True and result is False and producer:
        return {producer}
    return {name for name in edge if name}


def _plain(formats: list[str]) -> bool | None:
    """True when every format is a plain layout, False when none is, None when unknown or mixed."""
    kinds = {f.removeprefix("FORMAT_") in PLAIN_FORMATS for f in formats if f}
    return kinds.pop() if len(kinds) == 1 else None


def _raw_text_has(profile, text: str) -> bool:
    """Whether the start of the profile's own files holds ``text`` (readers normalise some spellings)."""
    source = Path(profile.source)
    files = [source / name for name in profile.meta.get("files", [])] if source.is_dir() else [source]
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                if text in handle.read(65536):
                    return True
        except OSError:
            continue
    return False


@dataclass
class _Context:
    """What every pass is judged against."""

    profile: object
    credit: Credit
    hot: set[str]
    target: object  # optimizer.targets.Target
    model_path: Path
    opset: int
    input_shapes: dict[str, list[int]]
    target_given: str  # as --target gave it: a name or a file
    settings: dict[str, dict[str, str]]  # --set: pass -> option -> value
    rewriters: set[str] = field(default_factory=set)  # candidates that change nodes (not analyses)


def _consider(name: str, record: PassRecord, cx: _Context) -> Candidate | str:
    """A candidate for pass ``name``, or why it is not one."""
    candidate = _credited(name, record, cx, None)
    needed = opset_needed(record)
    if needed is not None and needed != cx.opset:
        low, high = cx.target.opsets
        if not cx.target.accepts_opset(needed):
            return candidate or f"{_refusal(record)}; target {cx.target.name} accepts opsets {low}-{high} only"
        try:
            again = dry_run_at(cx.model_path, name, cx.target_given, needed, cx.input_shapes, cx.settings)
        except UserError as exc:
            return candidate or f"{_refusal(record)}; at --opset {needed}: {exc}"
        better = _credited(name, again, cx, needed)
        if better is not None and (candidate is None or better.hot_us > candidate.hot_us):
            candidate, record = better, again
        elif candidate is None:
            return f"{_refusal(record)}; at --opset {needed}: {_why_not(again, cx)}"
    if candidate is None:
        return _why_not(record, cx)
    if record.changes:
        cx.rewriters.add(name)
    return candidate


def opset_needed(record: PassRecord) -> int | None:
    """The opset named by every refusal of the pass (the largest), or None when some other reason stops it."""
    refusals = [record.reason] if record.status == SKIPPED else [skip["reason"] for skip in record.skips]
    if record.status == FAILED or not refusals:
        return None
    found = [OPSET_HINT.search(reason or "") for reason in refusals]
    return max(int(m.group(1)) for m in found) if all(found) else None


def _credited(name: str, record: PassRecord, cx: _Context, opset: int | None) -> Candidate | None:
    """The candidate when the pass's nodes carry hot time, else None."""
    nodes = touched_nodes(record)
    times = cx.credit.time_by_type(nodes)
    hot_types = sorted((t for t, us in times.items() if t in cx.hot and us > 0), key=lambda t: (-times[t], t))
    if not hot_types:
        return None
    hot_us = sum(times.values())
    total = cx.credit.total_us or 1.0
    shapes: list[list[int]] = []
    if name == WHITELIST_PASS:
        shapes = [list(s) for s in record.findings.get("transpose_shapes", [])]
        for op in cx.profile.ops:
            if op.op_type == "TransposeD" and op.input_shapes and op.input_shapes[0] not in shapes:
                shapes.append(list(op.input_shapes[0]))
    verb = "changes" if record.changes else "lists"
    carried = ", ".join(f"{t} {times[t] / total:.1%}" for t in hot_types)
    how = "" if cx.credit.by_rows else " (by op type: no row names a node)"
    reason = f"{verb} {len(nodes)} node{'s' if len(nodes) > 1 else ''}: {carried} of the time{how}"
    if opset is not None:
        low, high = cx.target.opsets
        reason += f"; at --opset {opset} ({cx.target.name} accepts {low}-{high})"
    return Candidate(name, hot_types, hot_us, hot_us / total, nodes, opset, shapes, reason)


def _refusal(record: PassRecord) -> str:
    return record.reason or (record.skips[0]["reason"] if record.skips else "refused")


def _why_not(record: PassRecord, cx: _Context) -> str:
    """Why a pass is not a candidate, in one line."""
    if record.status == SKIPPED:
        return f"skipped: {record.reason}"
    if record.status == FAILED:
        return f"failed in the dry run: {record.reason}"
    nodes = touched_nodes(record)
    if not nodes:
        left = f"; left {record.skips[0]['node']}: {record.skips[0]['reason']}" if record.skips else ""
        return f"changes nothing in this model{left}"
    kinds = Counter(cx.credit.op_type_of.get(node, "new") for node in nodes)
    return "changes no node of a hot op type (it would change " + ", ".join(f"{k} x{v}" for k, v in kinds.items()) + ")"
