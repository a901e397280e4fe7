"""DepthToSpace both ways (RDN guide): ``decompose-depth-to-space`` for converters and opsets
without it, ``fuse-depth-to-space`` (and SpaceToDepth) where it is supported.

ONNX defines, for ``x = [N, C, H, W]`` and blocksize ``b`` (``c = C / b^2``)::

    DCR: Reshape [N, b, b, c, H, W] -> Transpose [0, 3, 4, 1, 5, 2] -> Reshape [N, c, H*b, W*b]
    CRD: Reshape [N, c, b, b, H, W] -> Transpose [0, 1, 4, 2, 5, 3] -> Reshape [N, c, H*b, W*b]
    SpaceToDepth: Reshape [N, C, H/b, b, W/b, b] -> Transpose [0, 3, 5, 1, 2, 4]
                  -> Reshape [N, C*b*b, H/b, W/b]

PyTorch's PixelShuffle exported at opset 9 is the CRD form; at opset 11 it is DepthToSpace(CRD).
The CRD ``mode`` attribute exists from opset 11 on (before it DepthToSpace is DCR only), so a
CRD DepthToSpace going to opset 9/10 needs the decomposition first.

``decompose-depth-to-space`` replaces a DepthToSpace when C, H and W of its input are static in
the model (the batch may be dynamic) and the blocksize divides C into b*b groups; Reshape and
Transpose take every element type, so the type does not matter.

``fuse-depth-to-space`` replaces Reshape(s1) -> Transpose(perm) -> Reshape(s2) by one node when:

1. ``perm`` is one of the three layouts and the three nodes lie in one scope;
2. neither intermediate has another consumer or is a graph output, and neither Reshape has
   ``allowzero=1``;
3. the input is 4-D with static C, H and W (the batch may be dynamic), and ``s1`` and ``s2`` are
   constants that resolve (0 and -1 included) to exactly the layout's split and result for one
   blocksize b >= 2;
4. for CRD, the model is at opset >= 11 and is not saved below it;
5. the target supports the op;
6. the tensor is float, float16 or double: onnxruntime has no DepthToSpace / SpaceToDepth kernel
   for integer types (int64 fails to load), while the Reshape / Transpose form runs on any type.
   The type is traced back through type-keeping ops, If / Loop outputs and function calls to a
   typed value; when it cannot be found the nodes stay.

Shape inference runs once per pass run, so both passes remember the dims of the outputs they
write for the candidates after them: a chain of DepthToSpace (or of 6-D forms) is rewritten in
one run, and a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Requires,
    Skip,
    const_ints,
    constant,
    iter_nodes,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
    sole_consumer,
)

MODE_OPSET = 11  # DepthToSpace gained the ``mode`` attribute (and CRD) in opset 11
# Element types onnxruntime's DepthToSpace and SpaceToDepth kernels take at every opset (rule 6).
FUSABLE_TYPES = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE})
# Default-domain ops whose first output has the element type of their first input.
_TYPE_KEEPING = frozenset(
    {
        "Abs", "Add", "AveragePool", "BatchNormalization", "Ceil", "Clip", "Concat", "Conv", "ConvTranspose",
        "DepthToSpace", "Div", "Dropout", "Elu", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "Gelu", "Gemm",
        "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
        "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mish",
        "Mul", "Neg", "Pad", "PRelu", "Pow", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceSum", "Relu",
        "Reshape", "Resize", "Round", "Selu", "Sigmoid", "Sign", "Slice", "Softmax", "Softplus", "SpaceToDepth",
        "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile", "Transpose", "Unsqueeze", "Upsample",
    }
)


@dataclass(frozen=True)
class Layout:
    """One of the three Reshape -> Transpose -> Reshape layouts above."""

    op_type: str
    mode: str | None
    perm: tuple[int, ...]

    def split(self, n: int | None, c: int, h: int, w: int, b: int) -> list[int | None]:
        """The 6-D shape after the first Reshape, for input [n, c, h, w]."""
        if self.op_type == "SpaceToDepth":
            return [n, c, h // b, b, w // b, b]
        if self.mode == "DCR":
            return [n, b, b, c // (b * b), h, w]
        return [n, c // (b * b), b, b, h, w]

    def result(self, n: int | None, c: int, h: int, w: int, b: int) -> list[int | None]:
        """The 4-D output shape for input [n, c, h, w]."""
        if self.op_type == "SpaceToDepth":
            return [n, c * b * b, h // b, w // b]
        return [n, c // (b * b), h * b, w * b]


LAYOUTS = (
    Layout("DepthToSpace", "CRD", (0, 1, 4, 2, 5, 3)),
    Layout("DepthToSpace", "DCR", (0, 3, 4, 1, 5, 2)),
    Layout("SpaceToDepth", None, (0, 3, 5, 1, 2, 4)),
)


def _layout_of(node: ir.Node) -> Layout:
    if node.op_type == "SpaceToDepth":
        return LAYOUTS[2]
    mode = node.attributes.get_string("mode", "DCR")
    return LAYOUTS[0] if mode == "CRD" else LAYOUTS[1]


def _static_chw(dims: list[int | None] | None) -> tuple[int | None, int, int, int] | None:
    if dims is None or len(dims) != 4 or any(d is None for d in dims[1:]):
        return None
    return dims[0], int(dims[1]), int(dims[2]), int(dims[3])


def _reshape_target(dims: list[int | None]) -> np.ndarray:
    """Shape tensor for Reshape: a dynamic batch becomes 0 (copy the input's first dim)."""
    return np.array([0 if d is None else d for d in dims], dtype=np.int64)


class _RemembersDims(NodePass):
    """A NodePass that knows the dims of the outputs it wrote in this run (inference predates them)."""

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        self._new_dims: dict[ir.Value, list[int | None]] = {}
        return super().run(model, ctx)

    def dims_of(self, value: ir.Value | None, model: ir.Model, ctx: PassContext) -> list[int | None] | None:
        known = getattr(self, "_new_dims", {}).get(value) if value is not None else None
        return list(known) if known is not None else ctx.dims_of(value, model)

    def remember(self, value: ir.Value, dims: list[int | None]) -> None:
        getattr(self, "_new_dims", {})[value] = list(dims)


@register_pass
class DecomposeDepthToSpace(_RemembersDims):
    name = "decompose-depth-to-space"
    summary = "Rewrite DepthToSpace (DCR or CRD) as Reshape -> Transpose -> Reshape for opset 9/10 or old CANN"
    addresses = ("DepthToSpace",)
    requires = Requires(opsets=(5, None))  # Reshape takes its shape as an input from opset 5
    conflicts = ("fuse-depth-to-space",)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Replace a DepthToSpace whose C, H and W are static (the batch may be dynamic)."""
        if node.op_type != "DepthToSpace" or node.domain not in ("", "ai.onnx"):
            return None
        label = node_label(node)
        b = node.attributes.get_int("blocksize", 0)
        layout = _layout_of(node)
        dims = _static_chw(self.dims_of(node.inputs[0], model, ctx))
        if dims is None:
            reason = "needs static C, H and W of the input (fix them with simplify and --input-shape)"
            return Skip(label, ctx.unknown_shape(reason, model))
        n, c, h, w = dims
        if b < 1 or c % (b * b):
            return Skip(label, f"blocksize {b} does not divide the {c} channels into b*b groups")
        base = node.name or node.outputs[0].name
        split = constant(ctx.fresh_name(model, f"{base}/split_shape"), _reshape_target(layout.split(n, c, h, w, b)))
        merge = constant(ctx.fresh_name(model, f"{base}/merge_shape"), _reshape_target(layout.result(n, c, h, w, b)))
        reshape = ir.node("Reshape", [node.inputs[0], split.outputs[0]], name=f"{base}/split")
        transpose = ir.node("Transpose", [reshape.outputs[0]], {"perm": list(layout.perm)}, name=f"{base}/transpose")
        final = ir.node("Reshape", [transpose.outputs[0], merge.outputs[0]], name=f"{base}/merge")
        for new_node in (reshape, transpose):
            new_node.outputs[0].name = ctx.fresh_name(model, new_node.name)
        replace_nodes([node], [split, reshape, transpose, merge, final], node.outputs[0], final.outputs[0])
        self.remember(final.outputs[0], layout.result(n, c, h, w, b))
        return Change(f"DepthToSpace({layout.mode}, blocksize {b}) -> Reshape, Transpose, Reshape", (label,))

    def needed_for_downgrade(self, model: ir.Model, opset: int) -> bool:
        """A CRD DepthToSpace has no form below opset 11 (DCR, the default, has)."""
        return opset < MODE_OPSET <= model_opset(model) and any(
            node.op_type == "DepthToSpace" and node.attributes.get_string("mode", "DCR") == "CRD"
            for node in iter_nodes(model)
        )


@register_pass
class FuseDepthToSpace(_RemembersDims):
    name = "fuse-depth-to-space"
    summary = "Fuse Reshape -> Transpose -> Reshape into DepthToSpace (CRD/DCR) or SpaceToDepth"
    addresses = ("Transpose", "Reshape")
    requires = Requires(opsets=(5, None))
    conflicts = ("decompose-depth-to-space",)

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes with a fresh memo of element types (rule 6)."""
        self._types = _ElementTypes(model)
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Fuse around a 6-D Transpose whose perm is one of the three layouts."""
        if node.op_type != "Transpose" or node.domain not in ("", "ai.onnx"):
            return None
        perm = tuple(node.attributes.get_ints("perm", ()) or ())
        layout = next((candidate for candidate in LAYOUTS if candidate.perm == perm), None)
        first = node.inputs[0].producer() if node.inputs[0] is not None else None
        users = [use.node for use in node.outputs[0].uses()]
        if (
            layout is None
            or first is None
            or first.op_type != "Reshape"
            or len(users) != 1
            or users[0].op_type != "Reshape"
        ):
            return None
        last = users[0]
        label = node_label(node)
        if scope := ctx.scope_problem(model, first, node, last):
            return Skip(label, scope)
        problem = self._problem(first, node, last, layout, model, ctx)
        if isinstance(problem, str):
            return Skip(label, problem)
        b = problem
        opset = model_opset(model)
        final_opset = ctx.final_opset or opset
        if layout.mode == "CRD" and min(final_opset, opset) < MODE_OPSET:
            return Skip(
                label,
                f"CRD DepthToSpace needs opset >= {MODE_OPSET}; the model ends at opset {final_opset} "
                f"(--opset {MODE_OPSET} lets it run)",
            )
        if not ctx.target.supports_op(layout.op_type):
            return Skip(label, f"target {ctx.target.name} does not support {layout.op_type}")
        types = getattr(self, "_types", None) or _ElementTypes(model)
        dtype = types.of(first.inputs[0])
        if dtype not in FUSABLE_TYPES:
            what = "cannot be traced to a typed value" if dtype is None else f"is {dtype.name}"
            return Skip(
                label,
                f"the tensor's element type {what}; {layout.op_type} is fused for float, float16 and "
                "double only (onnxruntime has no kernel for other types)",
            )
        attributes: dict[str, object] = {"blocksize": b}
        if layout.mode is not None and opset >= MODE_OPSET:
            attributes["mode"] = layout.mode
        fused = ir.node(layout.op_type, [first.inputs[0]], attributes, name=node.name)
        replace_nodes([first, node, last], [fused], last.outputs[0], fused.outputs[0])
        types.known[fused.outputs[0]] = dtype
        n, c, h, w = _static_chw(self.dims_of(fused.inputs[0], model, ctx)) or (None, 0, 0, 0)
        if c:
            self.remember(fused.outputs[0], layout.result(n, c, h, w, b))
        what = f"{layout.op_type}({layout.mode}, blocksize {b})" if layout.mode else f"{layout.op_type}(blocksize {b})"
        return Change(f"Reshape -> Transpose -> Reshape -> {what}", (node_label(first), label, node_label(last)))

    def _problem(
        self, first: ir.Node, node: ir.Node, last: ir.Node, layout: Layout, model: ir.Model, ctx: PassContext
    ) -> str | int:
        """Why the three nodes are not exactly the layout, or the blocksize when they are."""
        if not sole_consumer(first.outputs[0], node) or not sole_consumer(node.outputs[0], last):
            return "an intermediate tensor has another consumer or is a graph output"
        if first.attributes.get_int("allowzero", 0) or last.attributes.get_int("allowzero", 0):
            return "Reshape with allowzero=1 is not handled"
        dims = _static_chw(self.dims_of(first.inputs[0], model, ctx))
        if dims is None:
            return ctx.unknown_shape(
                "needs a 4-D input with static C, H and W (fix them with simplify and --input-shape)", model
            )
        n, c, h, w = dims
        split = _resolve(const_ints(first.inputs[1]), [n, c, h, w])
        if split is None or len(split) != 6:
            return "the first Reshape's shape is not a constant 6-D shape"
        b = split[5] if layout.op_type == "SpaceToDepth" else split[2]
        if not isinstance(b, int) or b < 2 or split != layout.split(n, c, h, w, b):
            return f"the first Reshape gives {split}, not the {layout.mode or layout.op_type} split of {[n, c, h, w]}"
        transposed = [split[i] for i in layout.perm]
        merged = _resolve(const_ints(last.inputs[1]), transposed)
        if merged != layout.result(n, c, h, w, b):
            return f"the last Reshape gives {merged}, not {layout.result(n, c, h, w, b)}"
        return b


def _resolve(shape: list[int] | None, source: list[int | None]) -> list[int | None] | None:
    """What Reshape(shape) makes of a tensor with dims ``source`` (None: dynamic batch, dim 0).

    0 copies the source dim; -1 takes what is left, which with a dynamic batch is only
    resolvable in position 0. None when the shape is not constant or does not fit.
    """
    if shape is None:
        return None
    dims: list[int | None] = [source[i] if v == 0 and i < len(source) else v for i, v in enumerate(shape)]
    if dims.count(-1) > 1 or any(d is not None and d < -1 for d in dims):
        return None
    if any(d is None for d in source[1:]):
        return None
    rest = int(np.prod(source[1:]))
    if -1 in dims:
        index = dims.index(-1)
        others = [d for i, d in enumerate(dims) if i != index]
        if source[0] is None:
            if index != 0 or None in others or int(np.prod(others)) != rest:
                return None
            dims[index] = None
        else:
            if None in others:
                return None
            total = source[0] * rest
            product = int(np.prod(others))
            if product == 0 or total % product:
                return None
            dims[index] = total // product
    return dims


class _ElementTypes:
    """Element types of values without a declared type, traced back to a typed value (rule 6).

    Walks producers through ops that keep their input's type, Cast / Constant / Shape, If and
    Loop outputs (their bodies' outputs), Loop-carried body inputs (the Loop's initial values)
    and function inputs (every call site must agree). Results are memoised, so a pass run stays
    linear in the graph size.
    """

    def __init__(self, model: ir.Model) -> None:
        self.model = model
        self.known: dict[ir.Value, ir.DataType | None] = {}
        self._owners: dict[int, tuple[str, object]] | None = None

    def of(self, value: ir.Value | None) -> ir.DataType | None:
        path: list[ir.Value] = []
        result: ir.DataType | None = None
        while value is not None:
            if value in self.known:
                result = self.known[value]
                break
            path.append(value)
            self.known[value] = None  # a cycle (never valid ONNX) ends as unknown
            if value.dtype is not None:
                result = value.dtype
                break
            step = self._step(value)
            if not isinstance(step, ir.Value):
                result = step
                break
            value = step
        for seen in path:
            self.known[seen] = result
        return result

    def _step(self, value: ir.Value) -> ir.Value | ir.DataType | None:
        """The value whose type ``value`` has, or the type itself, or None when unknown."""
        node = value.producer()
        if node is None:
            return self._graph_input(value)
        if node.domain not in ("", "ai.onnx"):
            return None
        op = node.op_type
        if op == "Cast":
            return ir.DataType(node.attributes.get_int("to", 0))
        if op in ("Shape", "Size"):
            return ir.DataType.INT64
        if op == "Constant":
            attr = node.attributes.get("value")
            if attr is not None and attr.type == ir.AttributeType.TENSOR:
                return attr.as_tensor().dtype
            floats = ("value_float", "value_floats")
            return ir.DataType.FLOAT if any(name in node.attributes for name in floats) else ir.DataType.INT64
        index = value.index()
        if op == "If":
            branch = node.attributes.get("then_branch")
            outputs = branch.as_graph().outputs if branch is not None else []
            return outputs[index] if index is not None and index < len(outputs) else None
        if op == "Loop":
            body = node.attributes.get("body")
            outputs = body.as_graph().outputs if body is not None else []
            return outputs[index + 1] if index is not None and index + 1 < len(outputs) else None
        if op == "Where":
            return node.inputs[1] if len(node.inputs) > 1 else None
        if op in _TYPE_KEEPING and (index == 0 or op == "Split") and node.inputs:
            return node.inputs[0]
        return None

    def _graph_input(self, value: ir.Value) -> ir.Value | ir.DataType | None:
        """A body input of a Loop (its initial value) or a function input (what every call passes)."""
        graph = value.graph
        if graph is None or not value.is_graph_input():
            return None
        owner = self._owner_of(graph)
        if owner is None:
            return None
        position = list(graph.inputs).index(value)
        kind, what = owner
        if kind == "loop":
            loop = what
            return loop.inputs[position] if position >= 2 and position < len(loop.inputs) else None
        found = {self.of(site.inputs[position]) if position < len(site.inputs) else None for site in what}
        return found.pop() if len(found) == 1 else None

    def _owner_of(self, graph: ir.Graph) -> tuple[str, object] | None:
        if self._owners is None:
            owners: dict[int, tuple[str, object]] = {}
            calls: dict[ir.OperatorIdentifier, list[ir.Node]] = {}
            for node in iter_nodes(self.model):
                calls.setdefault(node.op_identifier(), []).append(node)
                if node.op_type == "Loop" and node.domain in ("", "ai.onnx") and "body" in node.attributes:
                    owners[id(node.attributes["body"].as_graph())] = ("loop", node)
            for key, function in self.model.functions.items():
                owners[id(function.graph)] = ("function", calls.get(key, []))
            self._owners = owners
        return self._owners.get(id(graph))
