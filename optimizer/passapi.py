"""The pass API: what a rewrite pass declares, what it returns, and how it registers.

A pass is a small class with a kebab-case ``name``, a one-line ``summary``, the op types it
``addresses`` (used to choose passes from a profile), what it ``requires``, and a ``run``
method returning a :class:`PassResult`. Most passes look at one node at a time: subclass
:class:`NodePass` and write ``rewrite(node, ctx)``; the walk over the main graph, every
subgraph (If / Loop / Scan bodies) and every function is done for you. Register the class
with :func:`register_pass`, or point an entry point of the group ``onnx_opt.passes`` at it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import onnx_ir as ir

from optimizer.errors import error_line
from optimizer.graph_walk import all_graphs, iter_nodes, subgraphs_of, walk
from optimizer.registry import register_pass
from optimizer.shape_inference import infer_value_shapes, inference_error, not_static
from optimizer.targets import Target

__all__ = [
    "Change",
    "NodePass",
    "Pass",
    "PassContext",
    "PassResult",
    "Requires",
    "Skip",
    "SkipPass",
    "Verdict",
    "all_graphs",
    "const_ints",
    "const_tensor",
    "error_line",
    "iter_nodes",

    "names_in",
    "model_opset",
    "node_label",
    "constant",
    "register_pass",
    "replace_nodes",
    "scope_labels",
    "sole_consumer",
    "subgraphs_of",
    "unique_name",
    "walk",
]


@dataclass(frozen=True)
class Requires:
    """Conditions under which a pass may run; unmet ones skip the pass with the reason.

    ``opsets`` is an inclusive range of the default-domain opset (None = open end), checked
    at the opset the model has when the pass runs and at the one it is saved at;
    ``target_ops`` op types the target must support, ``capabilities`` target capabilities,
    and ``static_shapes`` asks for every graph input to have a static shape (from the model
    or ``--input-shape``).
    """

    opsets: tuple[int | None, int | None] = (None, None)
    target_ops: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    static_shapes: bool = False

    def unmet(self, model: ir.Model, ctx: PassContext) -> str | None:
        """Why this pass cannot run on ``model`` here, or None when it can."""
        low, high = self.opsets
        for opset, when in ((model_opset(model), "has"), (ctx.final_opset, "is saved at")):
            if opset is None:
                continue
            if low is not None and opset < low:
                return f"needs opset >= {low}; the model {when} opset {opset} (--opset {low} lets it run)"
            if high is not None and opset > high:
                return f"needs opset <= {high}; the model {when} opset {opset} (--opset {high} lets it run)"
        missing_ops = [op for op in self.target_ops if not ctx.target.supports_op(op)]
        if missing_ops:
            return f"target {ctx.target.name} does not support {', '.join(missing_ops)}"
        missing = [c for c in self.capabilities if c not in ctx.target.capabilities]
        if missing:
            return f"target {ctx.target.name} lacks {', '.join(missing)}"
        if self.static_shapes:
            return ctx.dynamic_input(model)
        return None


@dataclass
class PassContext:
    """What a pass may know besides the model: the target and the opset the model will be saved at.

    Shapes come from the model alone (fixed input shapes, ``--input-shape``, are written into
    the model before the passes run), so a rewrite stays valid for every input the model accepts.
    """

    target: Target
    final_opset: int | None = None
    explain: bool = False  # set by the manager for the pass --explain names: fill PassResult.verdicts
    _shapes: dict[ir.Value, tuple[Any, ...]] | None = field(default=None, repr=False)
    _types: dict[ir.Value, int] = field(default_factory=dict, repr=False)
    _names: set[str] | None = field(default=None, repr=False)
    _scopes: dict[int, str] | None = field(default=None, repr=False)
    _inference_error: str | None = field(default=None, repr=False)

    def dims_of(self, value: ir.Value | None, model: ir.Model) -> list[int | None] | None:
        """Dims of ``value`` (None for a dynamic dim) in its own scope; None if the rank is unknown.

        Shape inference runs at most once per pass run; a value inside a function gets the
        dims that every call of the function agrees on.
        """
        dims = self.symbolic_dims_of(value, model)
        return None if dims is None else [d if isinstance(d, int) else None for d in dims]

    def symbolic_dims_of(self, value: ir.Value | None, model: ir.Model) -> list[int | str | None] | None:
        """Like :meth:`dims_of`, but a dynamic dim keeps its symbolic name when it has one: two dims
        of one name are equal in every run of the model, though neither is known."""
        if value is None:
            return None
        shape = value.shape
        if shape is not None and shape.is_static():
            return [int(d) for d in shape]
        if self._shapes is None:
            self._shapes = infer_value_shapes(model, self._types)
        dims = self._shapes.get(value)
        if dims is None:
            if shape is None:
                return None
            dims = tuple(d if isinstance(d, int) else d.value for d in shape)
        return [d if isinstance(d, (int, str)) else None for d in dims]

    def dtype_of(self, value: ir.Value | None, model: ir.Model) -> ir.DataType | None:
        """The element type of ``value``: its own, else the one inference found (inside a function:
        the one every call passes in), else None."""
        if value is None or value.dtype is not None:
            return None if value is None else value.dtype
        if self._shapes is None:
            self._shapes = infer_value_shapes(model, self._types)
        dtype = self._types.get(value)
        return None if dtype is None else ir.DataType(dtype)

    def shape_of(self, value: ir.Value | None, model: ir.Model) -> list[int] | None:
        """The fully static shape of ``value``, or None when unknown or partly dynamic."""
        dims = self.dims_of(value, model)
        if dims is None or any(d is None for d in dims):
            return None
        return [int(d) for d in dims]

    def unknown_shape(self, what: str, model: ir.Model) -> str:
        """A Skip reason for a shape :meth:`dims_of` could not give: ``what``, plus the error
        onnx's shape inference met in ``model``, if any (looked for once, only when needed)."""
        if self._inference_error is None:
            self._inference_error = inference_error(model) or ""
        return f"{what} (onnx shape inference: {self._inference_error})" if self._inference_error else what

    def forget(self) -> None:
        """Drop what was learnt about the last model; the manager calls this before every pass."""
        self._shapes = self._names = self._scopes = self._inference_error = None
        self._types = {}

    def fresh_name(self, model: ir.Model, base: str) -> str:
        """A value name not used anywhere in ``model`` (any scope), derived from ``base``."""
        if self._names is None:
            self._names = names_in(all_graphs(model))
        return unique_name(base, self._names)

    def scope_problem(self, model: ir.Model, *nodes: ir.Node) -> str | None:
        """Why ``nodes`` cannot be rewritten together: they lie in different scopes; else None."""
        graphs = {id(node.graph) for node in nodes}
        if len(graphs) <= 1:
            return None
        if self._scopes is None:
            self._scopes = scope_labels(model)
        where = ", ".join(
            f"{node.op_type} {node_label(node)!r} in {self._scopes.get(id(node.graph), 'a subgraph')}" for node in nodes
        )
        return f"the pattern spans scopes ({where}); a rewrite cannot move values across scopes"

    def dynamic_input(self, model: ir.Model) -> str | None:
        """Why the graph inputs are not all static (first dynamic dim), or None."""
        for value in model.graph.inputs:
            reason = None if value.is_initializer() else not_static(value)
            if reason:
                return f"{reason}; fix it with --input-shape"
        return None


def scope_labels(model: ir.Model) -> dict[int, str]:
    """A readable name for every graph of ``model`` (by ``id``): main graph, subgraphs, functions."""
    labels = {id(model.graph): "the main graph"}
    roots: list[tuple[ir.Graph, str]] = [(model.graph, "")]
    for function in model.functions.values():
        label = f"function {function.domain}::{function.name}"
        labels[id(function.graph)] = label
        roots.append((function.graph, f" of {label}"))
    while roots:
        graph, suffix = roots.pop()
        for node in graph:
            for attr in node.attributes.values():
                subgraphs = (
                    attr.as_graphs()
                    if attr.type == ir.AttributeType.GRAPHS
                    else ([attr.as_graph()] if attr.type == ir.AttributeType.GRAPH else [])
                )
                for sub in subgraphs:
                    label = f"{attr.name} of {node.op_type} {node_label(node)!r}{suffix}"
                    labels[id(sub)] = label
                    roots.append((sub, f" in {label}"))
    return labels


def names_in(graphs: Iterable[ir.Graph]) -> set[str]:
    """Every value and node name of ``graphs`` (inputs, initializers, node outputs, nodes)."""
    names: set[str] = set()
    for graph in graphs:
        names.update(value.name for value in graph.inputs if value.name)
        names.update(graph.initializers)
        for node in graph:
            names.update(value.name for value in node.outputs if value.name)
            if node.name:
                names.add(node.name)
    return names


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``, ... the first not in ``taken``; it is added to ``taken``."""
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    taken.add(name)
    return name


class SkipPass(Exception):  # noqa: N818 - it is a signal, not an error
    """Raise from ``run``, before changing the model, to skip the whole pass with a reason (e.g. a
    tool it wraps failed). The manager goes on with the model as it is; any other exception makes
    it run the pipeline again from a fresh model, without the pass."""


@dataclass
class Change:
    """One place a pass changed: what it did and the names of the nodes it rewrote."""

    description: str
    nodes: tuple[str, ...] = ()


@dataclass
class Skip:
    """A candidate the pass looked at and left alone, with the reason."""

    node: str
    reason: str


@dataclass
class Verdict:
    """What ``--explain`` says of one candidate node: ``outcome`` is MATCHED, REFUSED or NO_MATCH."""

    node: str
    op_type: str
    scope: str
    outcome: str
    reason: str = ""

    MATCHED: ClassVar[str] = "matched"
    REFUSED: ClassVar[str] = "refused"
    NO_MATCH: ClassVar[str] = "no match"

    @classmethod
    def of(cls, node: str, op_type: str, scope: str, outcome: Change | Skip | None) -> Verdict:
        """The verdict of a pass that returned ``outcome`` for the node (None: it gave no reason)."""
        if isinstance(outcome, Change):
            return cls(node, op_type, scope, cls.MATCHED, outcome.description)
        if isinstance(outcome, Skip):
            return cls(node, op_type, scope, cls.REFUSED, outcome.reason)
        return cls(node, op_type, scope, cls.NO_MATCH, "the pass gave no reason")


def reported_verdicts(result: PassResult, model: ir.Model) -> list[Verdict]:
    """Verdicts of a pass that collects none itself: its changes and skips, with the op type and
    scope of the first node of that name in ``model`` (the model the pass started from)."""
    scopes = scope_labels(model)
    where: dict[str, tuple[str, str]] = {}
    for node in iter_nodes(model):
        where.setdefault(node_label(node), (node.op_type, scopes.get(id(node.graph), "a subgraph")))
    outcomes = [(label, change) for change in result.changes for label in change.nodes or ("",)]
    outcomes += [(skip.node, skip) for skip in result.skips]
    return [Verdict.of(label, *where.get(label, ("", "")), outcome) for label, outcome in outcomes]


@dataclass
class PassResult:
    """What a pass did: the model (possibly a new object), changes, refusals, findings, notes.

    ``findings`` holds JSON-ready analysis output; an analysis pass, which changes nothing, sets
    ``found`` to how many things it found (``matches`` then counts them instead of the changes).
    """

    model: ir.Model
    changes: list[Change] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    found: int | None = None
    verdicts: list[Verdict] = field(default_factory=list)  # with ctx.explain: one per candidate

    @property
    def matches(self) -> int:
        """Candidates looked at: those changed (or found) plus those refused, counted when read."""
        return (len(self.changes) if self.found is None else self.found) + len(self.skips)

    @property
    def modified(self) -> bool:
        """Whether the pass changed the model."""
        return bool(self.changes)


class Pass:
    """Base class of every pass. Subclasses set the class attributes and implement ``run``.

    A pass with settings declares them as a nested dataclass ``Options`` whose fields all have
    defaults (and a ``help`` in their metadata); ``--set PASS.OPTION=VALUE`` sets them and the
    pass reads ``self.options``.
    """

    @dataclass(frozen=True)
    class Options:
        """No options."""

    name: ClassVar[str]
    summary: ClassVar[str]
    addresses: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[Requires] = Requires()
    after: ClassVar[tuple[str, ...]] = ()
    conflicts: ClassVar[tuple[str, ...]] = ()  # passes that undo what this one does
    runs_last: ClassVar[bool] = False  # an analysis of the model as saved: after every other pass
    kind: ClassVar[str] = "rewrite"  # "rewrite", "analysis" (changes nothing) or "fix" (see opt_in_reason)
    approximate: ClassVar[bool] = False  # changes the outputs by design (see opt_in_reason)

    def __init__(self, options: Any = None) -> None:
        """``options``: an instance of the pass's ``Options`` (None: every default)."""
        if options is not None and not isinstance(options, self.Options):
            raise TypeError(f"{self.name}: options must be a {type(self).__qualname__}.Options, not {options!r}")
        self.options = self.Options() if options is None else options

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Apply the pass to ``model`` (in place or not) and say what it did."""
        raise NotImplementedError

    def needed_for_downgrade(self, model: ir.Model, opset: int) -> bool:
        """Whether ``model`` needs this pass before onnx can convert it down to ``opset``."""
        return False


class NodePass(Pass):
    """A pass that looks at one node at a time, in every graph, subgraph and function."""

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Call :meth:`rewrite` on every node and collect what it returned (with ``ctx.explain``, a
        verdict for every node it changed or refused, and for every node of the model it was given
        of an op type it ``addresses``, or of any type when it names none)."""
        result = PassResult(model)
        scopes: dict[int, str] = {}
        given: set[ir.Node] = set()
        if ctx.explain:
            scopes = scope_labels(model)
            given = {node for node in iter_nodes(model) if not self.addresses or node.op_type in self.addresses}
        for node in iter_nodes(model):
            # taken before the rewrite, which may rename or remove the node
            seen = (node_label(node), node.op_type, scopes.get(id(node.graph), "a subgraph")) if ctx.explain else ()
            outcome = self.rewrite(node, model, ctx)
            if isinstance(outcome, Change):
                result.changes.append(outcome)
            elif isinstance(outcome, Skip):
                result.skips.append(outcome)
            if ctx.explain and (outcome is not None or node in given):
                result.verdicts.append(Verdict.of(*seen, outcome))
        return result

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Rewrite around ``node``: a Change, a Skip (a candidate left alone), or None."""
        raise NotImplementedError


def model_opset(model: ir.Model) -> int:
    """The default-domain (``ai.onnx``) opset version of ``model``."""
    return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))


def node_label(node: ir.Node) -> str:
    """A name for reports: the node's name, or its op type and position when it has none."""
    return node.name or f"<unnamed {node.op_type}>"


def const_tensor(value: ir.Value | None) -> ir.TensorProtocol | None:
    """The tensor of a constant (initializer that is not an input, or Constant node), else None.

    Unlike ``ir.convenience.get_const_tensor`` it never renames the tensor: the tensors of a
    cloned model are those of the original, which must not change.
    """
    if value is None or value.is_graph_input():
        return None
    if value.const_value is not None:
        return value.const_value
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and producer.domain == "":
        attr = producer.attributes.get("value")
        if attr is not None and not attr.is_ref():
            return attr.as_tensor()
    return ir.convenience.get_const_tensor(value)  # value_ints and the like: a new tensor each time


def const_ints(value: ir.Value | None) -> list[int] | None:
    """The integers held by a constant (initializer or Constant node), or None."""
    tensor = const_tensor(value)
    if tensor is None:
        return None
    array = tensor.numpy()
    if not np.issubdtype(array.dtype, np.integer):
        return None
    return [int(v) for v in array.reshape(-1)]


def replace_nodes(
    old_nodes: list[ir.Node], new_nodes: list[ir.Node], old_output: ir.Value, new_output: ir.Value
) -> None:
    """Swap ``old_nodes`` (in graph order) for ``new_nodes``; ``new_output`` takes over
    ``old_output``'s users, name, type and shape (graph outputs included)."""
    ir.convenience.replace_nodes_and_values(
        old_nodes[-1].graph, old_nodes[-1], old_nodes, new_nodes, [old_output], [new_output]
    )


def constant(name: str, array: np.ndarray) -> ir.Node:
    """A Constant node holding ``array`` whose output is called ``name`` (valid in any opset)."""
    return ir.node("Constant", [], {"value": ir.tensor(array, name=name)}, name=name, outputs=[ir.Value(name=name)])


def sole_consumer(value: ir.Value, node: ir.Node) -> bool:
    """Whether ``node`` is the only user of ``value`` and ``value`` is not a graph output."""
    users = {use.node for use in value.uses()}
    return users == {node} and not value.is_graph_output()
