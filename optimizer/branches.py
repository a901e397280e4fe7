"""Both sides of every If: force each condition, run original and rewritten, compare the outputs.

One verification run follows one path through the model, so a rewrite inside a branch that the
inputs do not take is never checked. Here each If whose condition is not a constant is forced
onto each side (its condition replaced by a Constant in the If's own graph, the enclosing Ifs
forced onto the path to it), in the original and in the rewritten model, on the same feeds:
the first of the input sets on which the original runs that side (a side can need inputs of
another size than the path the inputs take).

Ifs are matched between the two models by their scope path: the enclosing nodes and attribute
names down to the If (main graph or model-local function), each node by its name, or by its
position among the nodes of its op type in its graph when unnamed or when the name repeats.
An If moved out of its scope (an enclosing If folded away) is matched by its name when that name
is unique in both models.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from optimizer.graph_walk import iter_nodes
from optimizer.ort_session import native_reason
from optimizer.passapi import all_graphs, const_tensor, names_in, unique_name
from optimizer.verify import OutputCheck, compare_outputs, run_onnxruntime

MAX_IFS = 32  # Ifs checked per model (each costs four runs); changed Ifs come first
THEN, ELSE = "then", "else"
MATCHED, DIFFERS, NOT_EXERCISED = "matched", "differs", "not exercised"
MAIN_GRAPH = "main graph"
NO_MATCH = "no matching If in the original"
FOLDED = "folded away: the rewritten model has no matching If"
OVER_CAP = "over the cap of {cap} Ifs checked"
_FORCED_NAME = "onnx_opt_forced_condition"


@dataclass
class SideCheck:
    """One side of one If: matched, differs (with the failing outputs) or not exercised (why)."""

    side: str
    status: str
    taken_by_inputs: bool | None = None  # known for Ifs of the main graph only
    reason: str | None = None
    failures: list[OutputCheck] = field(default_factory=list)

    def summary(self) -> str:
        """``then: exercised by the inputs / forced``, ``else: forced, differs: y (...)``, ..."""
        if self.status == NOT_EXERCISED:
            return f"{self.side}: not exercised ({self.reason})"
        text = f"{self.side}: {'exercised by the inputs / ' if self.taken_by_inputs else ''}forced"
        if self.status == DIFFERS:
            text += ", differs: " + (self.reason or "; ".join(_describe(check) for check in self.failures))
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "side": self.side,
            "status": self.status,
            "taken_by_inputs": self.taken_by_inputs,
            "reason": self.reason,
            "failures": [asdict(check) for check in self.failures],
        }


@dataclass
class BranchCheck:
    """Both sides of one If: its name, position among the Ifs of its graph, scope, whether changed."""

    name: str | None
    position: int
    scope: str
    changed: bool | None
    sides: list[SideCheck]

    @property
    def ok(self) -> bool:
        """No side differs (sides not exercised are reported, not failed)."""
        return all(side.status != DIFFERS for side in self.sides)

    def summary(self) -> str:
        """``If 'sr_check' (main graph): then: exercised by the inputs / forced, else: forced``."""
        label = f"'{self.name}'" if self.name else f"#{self.position} (unnamed)"
        return f"If {label} ({self.scope}): " + ", ".join(side.summary() for side in self.sides)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the summary line."""
        return {
            "name": self.name,
            "position": self.position,
            "scope": self.scope,
            "changed": self.changed,
            "ok": self.ok,
            "sides": [side.to_dict() for side in self.sides],
            "summary": self.summary(),
        }


@dataclass
class BranchVerification:
    """The verdict over every If of both models."""

    checks: list[BranchCheck]

    @property
    def ok(self) -> bool:
        """No exercised side differs."""
        return all(check.ok for check in self.checks)

    def failures(self) -> list[BranchCheck]:
        """The Ifs with a side that differs."""
        return [check for check in self.checks if not check.ok]

    def summary(self) -> list[str]:
        """One line per If."""
        return [check.summary() for check in self.checks]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return {"ok": self.ok, "ifs": [check.to_dict() for check in self.checks]}


@dataclass
class _Site:
    """An If node with its scope path (the key that matches it across models)."""

    key: tuple[str, ...]
    node: ir.Node
    enclosing: list[tuple[ir.Node, str]]  # enclosing nodes, each with the attribute leading inward
    position: int  # among the Ifs of its graph
    scope: str

    def record(self, changed: bool | None, sides: list[SideCheck]) -> BranchCheck:
        return BranchCheck(self.node.name or None, self.position, self.scope, changed, sides)

    @property
    def in_main_graph(self) -> bool:
        return self.key[0] == MAIN_GRAPH and not self.enclosing


class BranchChecker:
    """Forces the Ifs of ``original`` once per side, then checks any rewritten model against it."""

    def __init__(
        self,
        original: ir.Model,
        feeds: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]],
        *,
        rtol: float | None = None,
        atol: float | None = None,
        cap: int = MAX_IFS,
    ) -> None:
        # forcing a side edits the model: a copy, needed only when there is an If to force
        self.original = original.clone() if any(_is_if(node) for node in iter_nodes(original)) else original
        self.feeds = [feeds] if isinstance(feeds, dict) else list(feeds)
        self.rtol, self.atol, self.cap = rtol, atol, cap
        self.sites = [site for site in _if_sites(self.original) if _constant_condition(site.node) is None]
        self.taken = _taken_sides(self.original, self.sites, self.feeds[0]) if self.sites else {}
        self._references: dict[tuple[tuple[str, ...], bool], tuple[int, dict[str, Any]] | str] = {}

    def check(self, rewritten: ir.Model) -> BranchVerification:
        """Force both sides of every If in both models, compare; per-If, per-side records."""
        rewritten = rewritten.clone()
        new_sites = _if_sites(rewritten)
        by_key = {site.key: site for site in new_sites}
        by_name = _unique_names(new_sites)
        original_names = _unique_names(self.sites)
        pairs: list[tuple[_Site, _Site | None]] = []
        for site in self.sites:
            match = by_key.get(site.key) or (by_name.get(site.node.name) if site.node.name in original_names else None)
            pairs.append((site, match))
        matched = {id(match) for _, match in pairs if match is not None}
        records: dict[int, BranchCheck] = {}
        changed = {id(site): _changed(site, match) for site, match in pairs if match is not None}
        order = sorted((pair for pair in pairs if pair[1] is not None), key=lambda pair: not changed[id(pair[0])])
        for count, (site, match) in enumerate(order):
            if count < self.cap:
                sides = [self._check_side(site, match, rewritten, then) for then in (True, False)]
            else:
                sides = self._not_exercised(site, OVER_CAP.format(cap=self.cap))
            records[id(site)] = site.record(changed[id(site)], sides)
        checks = [records.get(id(site)) or site.record(None, self._not_exercised(site, FOLDED)) for site in self.sites]
        checks += [
            site.record(None, self._not_exercised(site, NO_MATCH))
            for site in new_sites
            if id(site) not in matched and _constant_condition(site.node) is None
        ]
        return BranchVerification(checks)

    def _not_exercised(self, site: _Site, reason: str) -> list[SideCheck]:
        return [SideCheck(side, NOT_EXERCISED, self._taken(site, then), reason) for side, then in _SIDES]

    def _taken(self, site: _Site, then: bool) -> bool | None:
        taken = self.taken.get(site.key)
        return None if taken is None else taken == then

    def _check_side(self, site: _Site, match: _Site, rewritten: ir.Model, then: bool) -> SideCheck:
        side = THEN if then else ELSE
        record = SideCheck(side, NOT_EXERCISED, self._taken(site, then))
        folded = _constant_condition(match.node)
        if folded is not None and folded != then:
            record.reason = f"folded away: the rewritten model's condition is always {folded}"
            return record
        reference = self._reference(site, then)
        if isinstance(reference, str):
            record.reason = f"the original fails to run when forced: {reference}"
            return record
        index, expected = reference
        try:
            with _forced(rewritten, match, then):
                outputs = run_onnxruntime(rewritten, self.feeds[index])
        except Exception as exc:
            record.status = DIFFERS
            record.reason = f"the rewritten model fails to run when forced: {native_reason(exc)}"
            return record
        record.failures = [check for check in compare_outputs(expected, outputs, self.rtol, self.atol) if not check.ok]
        record.status = DIFFERS if record.failures else MATCHED
        return record

    def _reference(self, site: _Site, then: bool) -> tuple[int, dict[str, Any]] | str:
        """The original's outputs with ``site`` forced on the first input set it runs with, and
        that set's index (cached); or the one-line error of the first set."""
        key = (site.key, then)
        if key not in self._references:
            errors = []
            with _forced(self.original, site, then):
                for index, feeds in enumerate(self.feeds):
                    try:
                        self._references[key] = (index, run_onnxruntime(self.original, feeds))
                        break
                    except Exception as exc:
                        errors.append(native_reason(exc))
            if key not in self._references:
                self._references[key] = errors[0]
        return self._references[key]


def check_branches(
    original: ir.Model,
    rewritten: ir.Model,
    feeds: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    cap: int = MAX_IFS,
) -> BranchVerification:
    """Check both sides of every If of ``rewritten`` against ``original`` on ``feeds`` (models untouched)."""
    return BranchChecker(original, feeds, rtol=rtol, atol=atol, cap=cap).check(rewritten)


_SIDES = ((THEN, True), (ELSE, False))


def _is_if(node: ir.Node) -> bool:
    return node.op_type == "If" and node.domain == ""


def _if_sites(model: ir.Model) -> list[_Site]:
    sites: list[_Site] = []
    _collect(list(model.graph), (MAIN_GRAPH,), MAIN_GRAPH, [], sites)
    for (domain, name, overload), function in model.functions.items():
        label = f"function '{domain}::{name}{':' + overload if overload else ''}'"
        _collect(list(function), (label,), label, [], sites)
    return sites


def _collect(
    nodes: Sequence[ir.Node], key: tuple[str, ...], scope: str, enclosing: list[tuple[ir.Node, str]], sites: list[_Site]
) -> None:
    ifs = 0
    for node, label in zip(nodes, _labels(nodes), strict=True):
        if _is_if(node):
            sites.append(_Site((*key, label), node, enclosing, ifs, scope))
            ifs += 1
        for attr in node.attributes.values():
            for attr_label, graph in _subgraphs(attr):
                inner = f"{attr_label} of '{label}'"
                _collect(
                    list(graph),
                    (*key, label, attr_label),
                    inner if scope == MAIN_GRAPH else f"{scope} > {inner}",
                    [*enclosing, (node, attr.name)],
                    sites,
                )


def _labels(nodes: Sequence[ir.Node]) -> list[str]:
    """Each node's name, or ``op_type#k`` (k-th of its op type here) when unnamed or not unique."""
    names = Counter(node.name for node in nodes)
    seen: Counter[str] = Counter()
    labels = []
    for node in nodes:
        unique = node.name and names[node.name] == 1
        labels.append(node.name if unique else f"{node.op_type}#{seen[node.op_type]}")
        seen[node.op_type] += 1
    return labels


def _subgraphs(attr: ir.Attr) -> Iterator[tuple[str, ir.Graph]]:
    if attr.type == ir.AttributeType.GRAPH:
        yield attr.name, attr.value
    elif attr.type == ir.AttributeType.GRAPHS:
        for index, graph in enumerate(attr.value):
            yield f"{attr.name}[{index}]", graph


def _unique_names(sites: list[_Site]) -> dict[str, _Site]:
    names = Counter(site.node.name for site in sites)
    return {site.node.name: site for site in sites if site.node.name and names[site.node.name] == 1}


def _constant_condition(node: ir.Node) -> bool | None:
    """The If's condition when it is an initializer or a Constant's output, else None."""
    tensor = const_tensor(node.inputs[0])
    if tensor is None or tensor.size != 1:
        return None
    return bool(tensor.numpy().reshape(()))


def _changed(site: _Site, match: _Site) -> bool:
    def proto(node: ir.Node) -> bytes:
        return ir.serde.serialize_node(node).SerializeToString(deterministic=True)

    return proto(site.node) != proto(match.node)


def _taken_sides(model: ir.Model, sites: list[_Site], feeds: dict[str, np.ndarray]) -> dict[tuple[str, ...], bool]:
    """Which side the feeds take at each If of the main graph (one extra run, on a copy)."""
    main = [site for site in sites if site.in_main_graph]
    if not main:
        return {}
    copy = model.clone()
    copies = {site.key: site for site in _if_sites(copy)}
    conditions = {site.key: copies[site.key].node.inputs[0] for site in main}
    for value in conditions.values():
        if not value.is_graph_input() and not value.is_graph_output():
            copy.graph.outputs.append(value)
    try:
        results = run_onnxruntime(copy, feeds)
    except Exception:  # unknown, not an error: the forced runs report what fails
        return {}
    taken = {}
    for key, value in conditions.items():
        array = feeds.get(value.name) if value.is_graph_input() else results.get(value.name)
        if isinstance(array, np.ndarray) and array.size == 1:
            taken[key] = bool(array.reshape(()))
    return taken


@contextlib.contextmanager
def _forced(model: ir.Model, site: _Site, then: bool) -> Iterator[None]:
    """``site`` (and the Ifs enclosing it, onto the path to it) fed constant conditions; undone after."""
    pins = [(node, attr == "then_branch") for node, attr in site.enclosing if node.op_type == "If"]
    pins.append((site.node, then))
    taken = names_in(all_graphs(model))
    added = []
    try:
        for index, (node, value) in enumerate(pins):
            name = unique_name(f"{_FORCED_NAME}_{index}", taken)
            const = ir.node("Constant", [], {"value": ir.tensor(np.array(value))}, name=name)
            const.outputs[0].name = name
            node.graph.insert_before(node, const)
            added.append((node, const, node.inputs[0]))
            node.replace_input_with(0, const.outputs[0])
        yield
    finally:
        for node, const, condition in reversed(added):
            node.replace_input_with(0, condition)
            node.graph.remove(const, safe=True)


def _describe(check: OutputCheck) -> str:
    detail = check.problem or f"max abs diff {check.max_abs_diff:.3g}, max rel diff {check.max_rel_diff:.3g}"
    return f"{check.name} ({detail})"
