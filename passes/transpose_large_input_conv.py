"""``transpose-large-input-conv``: a 2-D Conv on a very wide input, and the H/W-symmetric ops after
it, run on the input with H and W swapped (msit KnowledgeTransposeLargeInputConv).

Ascend's convolution tiles H better than W, so a ``[N, C, H, W]`` input with a huge W (an audio
front end such as aasist's) is faster as ``[N, C, W, H]``. The pass wraps a chain of ops in one
``Transpose(perm=[0, 1, 3, 2])`` before it and one after it, each op rewritten for the swapped
axes. A Conv is a candidate when:

1. it is a 2-D Conv (4-D constant weight) and its input's H and W are static in the model, with
   ``W >= min_width`` and ``W / H >= min_ratio`` (a dynamic W, or a dynamic H while
   ``min_ratio > 0``, is refused: the pass cannot tell whether the swap pays);
2. its weight is a constant (it is stored with its kernel axes swapped).

The chain grows from the Conv while the current tensor has exactly one consumer, in the same
scope, that is no graph output and that is one of:

3. a 2-D Conv reading it as data, with a constant weight: kernel_shape, strides, dilations and
   pads are swapped (``[h0, w0, h1, w1] -> [w0, h0, w1, h1]``), auto_pad and group kept;
4. MaxPool / AveragePool / LpPool with a 2-D kernel (attributes swapped as for Conv; MaxPool
   without a used Indices output), or GlobalAveragePool / GlobalMaxPool / GlobalLpPool;
5. BatchNormalization (no used training outputs) or InstanceNormalization: per channel;
6. an element-wise unary op (Relu, Sigmoid, Clip, LeakyRelu, ...);
7. Add, Sub, Mul, Div, Pow, Max, Min or PRelu whose other operand is the tensor itself or a
   constant of rank <= 4: the constant is stored as 4-D with its last two axes swapped, so it
   broadcasts onto the swapped tensor exactly as before (scalars are kept).

Anything else ends the chain, and the Change says which op and why. A chain that ends in a
global pool needs no Transpose back (``[N, C, 1, 1]`` is its own swap). Transposes, pools'
maxima and every element-wise op are exact; a swapped Conv or AveragePool sums the same products
over the kernel window in another order, which ONNX leaves to the implementation (results agree
to rounding). The new Conv sees ``W / H`` inverted, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Requires,
    Skip,
    const_tensor,
    constant,
    node_label,
    register_pass,
)

SWAP = [0, 1, 3, 2]
UNARY = frozenset(
    {
        "Abs", "Cast", "Ceil", "Celu", "Clip", "Cos", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
        "HardSwish", "Identity", "LeakyRelu", "Log", "Mish", "Neg", "Reciprocal", "Relu", "Round", "Selu",
        "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tanh", "ThresholdedRelu",
    }
)
BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
PER_CHANNEL = frozenset({"BatchNormalization", "InstanceNormalization"})


@register_pass
class TransposeLargeInputConv(NodePass):
    name = "transpose-large-input-conv"
    summary = "Swap H and W around a Conv chain whose input is very wide (Transpose in, swapped kernels, Transpose out)"
    addresses = ("Conv",)
    requires = Requires()  # it writes Transposes and the ops it found: valid at every opset

    @dataclass(frozen=True)
    class Options:
        min_width: int = field(default=2048, metadata={"help": "smallest input W (static) of a Conv to transpose"})
        min_ratio: float = field(default=8.0, metadata={"help": "smallest W / H of that input"})

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes, skipping those this run wrote and knowing the dims of the values it replaced."""
        self._written: set[ir.Node] = set()
        self._dims: dict[ir.Value, list[int | None] | None] = {}
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Wrap the chain that starts at the Conv ``node`` in H/W Transposes, or say why not."""
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or node in self._written:
            return None
        weight = const_tensor(node.inputs[1]) if len(node.inputs) > 1 else None
        kernel = weight.shape if weight is not None else ctx.dims_of(node.inputs[1], model)
        if kernel is None or len(kernel) != 4:
            return None  # not a 2-D Conv, as far as the weight tells
        label = node_label(node)
        x = node.inputs[0]
        dims = self._dims[x] if x in self._dims else ctx.dims_of(x, model)
        height, width = (dims[2], dims[3]) if dims is not None and len(dims) == 4 else (None, None)
        least, ratio = self.options.min_width, self.options.min_ratio
        if width is not None and width < least:
            return None
        if height is not None and width is not None and width < ratio * height:
            return None
        if width is None or (height is None and ratio > 0):
            what = "width" if width is None else "height"
            return Skip(label, ctx.unknown_shape(f"the input's {what} is not static; fix it with --input-shape", model))
        if weight is None:
            return Skip(label, "the Conv's weight is not a constant")
        chain, stop = _chain(node)
        self._dims[chain[-1].outputs[0]] = ctx.dims_of(chain[-1].outputs[0], model)
        new_nodes = _swapped(chain, model, ctx)
        self._written.update(new_nodes)
        _replace(chain, new_nodes)
        self._dims[new_nodes[-1].outputs[0]] = self._dims.pop(chain[-1].outputs[0])
        ops = " -> ".join(n.op_type for n in chain)
        what = f"H and W swapped around {ops} (input W {width}, H {height}); {stop}"
        return Change(what, tuple(map(node_label, chain)))


def _chain(conv: ir.Node) -> tuple[list[ir.Node], str]:
    """The Conv and the symmetric ops after it (rules 3-7), and why the chain ends."""
    chain = [conv]
    while True:
        value = chain[-1].outputs[0]
        users = list(dict.fromkeys(use.node for use in value.uses()))
        if value.is_graph_output() or len(users) != 1:
            why = "is a graph output" if value.is_graph_output() else f"has {len(users)} consumers"
            return chain, f"the chain ends at {node_label(chain[-1])!r}: its output {why}"
        user = users[0]
        problem = "it lies in another scope" if user.graph is not conv.graph else _member_problem(user, value)
        if problem:
            return chain, f"the chain ends before {user.op_type} {node_label(user)!r}: {problem}"
        chain.append(user)


def _member_problem(node: ir.Node, value: ir.Value) -> str | None:
    """Why ``node``, reading the chain's ``value``, cannot join the chain (rules 3-7), or None."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return "not an ONNX op"
    if any(output.uses() or output.is_graph_output() for output in node.outputs[1:]):
        return "a second output is used"
    if op == "Conv":
        weight = const_tensor(node.inputs[1])
        if node.inputs[0] is not value or weight is None or len(weight.shape) != 4:
            return "not a 2-D Conv of the tensor with a constant weight"
        return None
    if op in POOLS:
        return None if len(node.attributes.get_ints("kernel_shape", ())) == 2 else "not a 2-D pool"
    if op in GLOBAL_POOLS or op in UNARY or op in PER_CHANNEL:
        if op == "BatchNormalization" and node.attributes.get_int("training_mode", 0):
            return "training mode"
        return None if node.inputs[0] is value and value not in node.inputs[1:] else "the tensor is not its data"
    if op in BINARY:
        others = [v for v in node.inputs if v is not value]
        if len(node.inputs) != 2 or any(const_tensor(v) is None or len(const_tensor(v).shape) > 4 for v in others):
            return "its other operand is not a constant of rank <= 4"
        return None
    return "not H/W-symmetric"


def _swapped(chain: list[ir.Node], model: ir.Model, ctx: PassContext) -> list[ir.Node]:
    """Transpose -> the chain on swapped axes -> Transpose back."""
    graph = chain[0].graph
    nodes: list[ir.Node] = []

    def add(op_type: str, inputs: list[ir.Value | None], attributes: dict, base: str) -> ir.Value:
        name = ctx.fresh_name(model, base)
        nodes.append(ir.node(op_type, inputs, attributes, name=name, outputs=[ir.Value(name=name)]))
        return nodes[-1].outputs[0]

    def swapped_constant(tensor: ir.TensorProtocol, base: str) -> ir.Value:
        """The constant as 4-D with H and W swapped: an initializer in the main graph, else a Constant."""
        array = tensor.numpy()
        array = np.ascontiguousarray(array.reshape((1,) * (4 - array.ndim) + array.shape).transpose(SWAP))
        name = ctx.fresh_name(model, base)
        if graph is not model.graph:
            nodes.append(constant(name, array))
            return nodes[-1].outputs[0]
        tensor = ir.tensor(array, name=name)
        new = ir.Value(name=name, shape=tensor.shape, type=ir.TensorType(tensor.dtype), const_value=tensor)
        graph.register_initializer(new)
        return new

    first = chain[0]
    incoming = first.inputs[0]
    current = add("Transpose", [incoming], {"perm": SWAP}, f"{node_label(first)}/swap_hw")
    for node in chain:
        base = f"{node_label(node)}/swapped"
        inputs: list[ir.Value | None] = []
        for position, value in enumerate(node.inputs):
            tensor = const_tensor(value) if value is not incoming else None
            if value is incoming:
                inputs.append(current)
            elif node.op_type == "Conv" and position == 1:
                inputs.append(swapped_constant(tensor, f"{base}/weight"))
            elif node.op_type in BINARY and tensor.size > 1:
                inputs.append(swapped_constant(tensor, f"{base}/constant"))
            else:
                inputs.append(value)  # a bias, per-channel parameters, Clip's scalar bounds, a scalar
        current = add(node.op_type, inputs, _swapped_attributes(node), base)
        incoming = node.outputs[0]
    if chain[-1].op_type not in GLOBAL_POOLS:  # swapping [N, C, 1, 1] back changes nothing
        add("Transpose", [current], {"perm": SWAP}, f"{node_label(chain[-1])}/swap_back")
    return nodes


def _swapped_attributes(node: ir.Node) -> dict[str, ir.Attr]:
    """The node's attributes with every H/W pair swapped (kernel_shape, strides, dilations, pads)."""
    attributes = dict(node.attributes)
    for name in ("kernel_shape", "strides", "dilations"):
        if name in attributes:
            attributes[name] = ir.AttrInt64s(name, list(attributes[name].as_ints())[::-1])
    if "pads" in attributes:
        h0, w0, h1, w1 = attributes["pads"].as_ints()
        attributes["pads"] = ir.AttrInt64s("pads", [w0, h0, w1, h1])
    return attributes


def _replace(chain: list[ir.Node], new_nodes: list[ir.Node]) -> None:
    last = chain[-1]
    ir.convenience.replace_nodes_and_values(
        last.graph, last, chain, new_nodes, [last.outputs[0]], [new_nodes[-1].outputs[0]]
    )
