"""``split-large-kernel-conv``: a Conv whose kernel along some spatial axis exceeds ``max_kernel``
becomes several Convs over pieces of the kernel, each reading its own Slice of the input, summed
with Add, the bias added once (msit KnowledgeSplitLargeKernelConv).

On an axis with kernel k, stride s, dilation d and pads (pb, pe), the Conv reads the padded input
``xp`` (length Lp = L + pb + pe) at ``o*s + j*d`` for tap j < k. The taps j in [a, b) alone are the
Conv with kernel ``W[.., a:b]`` (same stride, dilation and group) over ``xp[a*d : Lp - d*(k-b)]``:
its output o reads ``a*d + o*s + (j-a)*d``, the same positions, and its length
``floor((Lp - d*(k-b) - a*d - d*(b-a-1) - 1) / s) + 1 = floor((Lp - d*(k-1) - 1) / s) + 1`` is the
original's for every L, so no static length is needed. In x's coordinates that window starts at
``a*d - pb`` and ends at ``L + pe - d*(k-b)``: a start before 0 (an end after L) becomes that
many zeros of the piece's own ``pads``, otherwise a Slice cuts it (the end as a negative index
from L), so no Pad node is added. The rewrite is done when:

1. the node is a default-domain Conv with some spatial kernel above ``max_kernel`` (else it is no
   candidate); the weight is a constant and ``kernel_shape``, when given, matches it;
2. ``auto_pad`` is NOTSET or VALID, or SAME_UPPER / SAME_LOWER with static spatial dims, which
   give explicit pads (total ``max(0, (ceil(L/s) - 1)*s + d*(k-1) + 1 - L)``, the odd one at the
   end for SAME_UPPER, at the start for SAME_LOWER);
3. strides, dilations and groups are any: every piece keeps them (a group's taps are split like
   any other's); a kernel is split into ``ceil(k / max_kernel)`` near-equal pieces (larger first,
   so the pieces share few shapes), every long axis at once (a grid of pieces);
4. the bias, if any, is added by the first piece only; the pieces are summed in order by a chain
   of Adds (float sums are reassociated: results differ from the single Conv by rounding only).

Slices use the attribute form before opset 10 and the input form from 10. Every piece has
kernels <= ``max_kernel``, so a second run changes nothing.

The default ``max_kernel`` of 255 is conservative: it is Ascend's AvgPool kernel bound, and, as
far as we know from CANN's Conv2D constraints (not checked against a CANN install here), the
largest filter height / width its Conv2D takes; below it the pass only adds nodes. Lower it
(``--set split-large-kernel-conv.max_kernel=31``) where a profile shows large kernels running
slowly; ``onnx-opt auto`` measures whether the split pays.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    Skip,
    const_tensor,
    constant,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
)

SLICE_INPUTS_OPSET = 10  # Slice takes starts / ends / axes as inputs from here
TO_THE_END = np.iinfo(np.int64).max


@register_pass
class SplitLargeKernelConv(NodePass):
    name = "split-large-kernel-conv"
    summary = "Split a Conv with a kernel above max_kernel into Convs over kernel pieces and input Slices, summed"
    addresses = ("Conv",)

    @dataclass(frozen=True)
    class Options:
        max_kernel: int = field(
            default=255, metadata={"help": "largest kernel along one spatial axis a Conv may keep (CANN Conv2D: 255)"}
        )

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Split ``node`` into pieces, or say why not."""
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            return None
        weight = const_tensor(node.inputs[1])
        limit = self.options.max_kernel
        shape = list(weight.shape) if weight is not None else ctx.dims_of(node.inputs[1], model)
        if not shape or len(shape) < 3 or max((k or 0) for k in shape[2:]) <= limit:
            return None
        label = node_label(node)
        if weight is None:
            return Skip(label, f"the weight (kernel {shape[2:]}) is not a constant, so it cannot be cut into pieces")
        if limit < 1:
            return Skip(label, f"max_kernel must be at least 1, not {limit}")
        w = weight.numpy()
        kernel = list(w.shape[2:])
        rank = len(kernel)
        declared = node.attributes.get_ints("kernel_shape", None)
        if declared is not None and list(declared) != kernel:
            return Skip(label, f"kernel_shape {list(declared)} does not match the weight's {kernel}")
        strides = list(node.attributes.get_ints("strides", None) or [1] * rank)
        dilations = list(node.attributes.get_ints("dilations", None) or [1] * rank)
        auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
        spatial = None
        if auto_pad.startswith("SAME"):
            dims = ctx.dims_of(node.inputs[0], model)
            spatial = dims[2:] if dims is not None and len(dims) == rank + 2 else None
            if spatial is None or None in spatial:
                reason = f"auto_pad={auto_pad} needs static spatial dims to give explicit pads"
                return Skip(label, ctx.unknown_shape(reason, model))
        pads = _explicit_pads(node, kernel, strides, dilations, spatial)
        if isinstance(pads, str):
            return Skip(label, pads)
        pieces = [_pieces(k, limit) for k in kernel]
        base = node.name or node.outputs[0].name
        new_nodes: list[ir.Node] = []
        total = None
        group = node.attributes.get_int("group", 1)
        for index, cell in enumerate(itertools.product(*pieces)):
            window = [
                _window(a, b, k, d, begin, end)
                for (a, b), k, d, begin, end in zip(cell, kernel, dilations, pads[:rank], pads[rank:], strict=True)
            ]
            source = self._slice(node.inputs[0], window, f"{base}/piece{index}", model, ctx, new_nodes)
            taps = tuple(slice(None, None) for _ in range(2)) + tuple(slice(a, b) for a, b in cell)
            piece_weight = constant(ctx.fresh_name(model, f"{base}/piece{index}_weight"), np.ascontiguousarray(w[taps]))
            inputs = [source, piece_weight.outputs[0]]
            if index == 0 and len(node.inputs) > 2 and node.inputs[2] is not None:
                inputs.append(node.inputs[2])
            attributes = {
                "kernel_shape": [b - a for a, b in cell],
                "strides": strides,
                "dilations": dilations,
                "group": group,
                "pads": [begin for _, _, begin, _ in window] + [end for _, _, _, end in window],
            }
            conv = ir.node("Conv", inputs, attributes, name=f"{base}/piece{index}")
            conv.outputs[0].name = ctx.fresh_name(model, conv.name)
            new_nodes += [piece_weight, conv]
            if total is None:
                total = conv.outputs[0]
            else:
                add = ir.node("Add", [total, conv.outputs[0]], name=f"{base}/sum{index}")
                add.outputs[0].name = ctx.fresh_name(model, add.name)
                new_nodes.append(add)
                total = add.outputs[0]
        replace_nodes([node], new_nodes, node.outputs[0], total)
        count = sum(n.op_type == "Conv" for n in new_nodes)
        return Change(f"Conv with kernel {kernel} split into {count} Convs with kernels <= {limit}", (label,))

    def _slice(
        self, x: ir.Value, window: list[tuple[int, int | None, int, int]], base: str, model: ir.Model,
        ctx: PassContext, new_nodes: list[ir.Node],
    ) -> ir.Value:
        """``x`` cut to the piece's window on every axis that needs it (Slice's form by opset)."""
        cuts = [(axis + 2, start, TO_THE_END if end is None else end)
                for axis, (start, end, _, _) in enumerate(window) if start or end is not None]
        if not cuts:
            return x
        axes, starts, ends = ([cut[i] for cut in cuts] for i in range(3))
        if model_opset(model) < SLICE_INPUTS_OPSET:
            node = ir.node("Slice", [x], {"starts": starts, "ends": ends, "axes": axes}, name=f"{base}_slice")
        else:
            operands = []
            for what, numbers in (("starts", starts), ("ends", ends), ("axes", axes)):
                const = constant(ctx.fresh_name(model, f"{base}_{what}"), np.array(numbers, np.int64))
                new_nodes.append(const)
                operands.append(const.outputs[0])
            node = ir.node("Slice", [x, *operands], name=f"{base}_slice")
        node.outputs[0].name = ctx.fresh_name(model, node.name)
        new_nodes.append(node)
        return node.outputs[0]


def _pieces(k: int, limit: int) -> list[tuple[int, int]]:
    """[a, b) ranges splitting k taps into ceil(k / limit) near-equal pieces, larger first."""
    count = -(-k // limit)
    sizes = [k // count + (1 if i < k % count else 0) for i in range(count)]
    starts = np.cumsum([0, *sizes[:-1]])
    return [(int(a), int(a) + size) for a, size in zip(starts, sizes, strict=True)]


def _window(a: int, b: int, k: int, d: int, begin: int, end: int) -> tuple[int, int | None, int, int]:
    """(slice start, slice end or None for L, pad before, pad after) of the piece [a, b) on one axis."""
    first = a * d - begin  # in x's coordinates: where the piece's window starts
    last = end - d * (k - b)  # how far past L it ends
    start, pad_begin = (first, 0) if first > 0 else (0, -first)
    stop, pad_end = (last, 0) if last < 0 else (None, last)
    return start, stop, pad_begin, pad_end


def _explicit_pads(
    node: ir.Node, kernel: list[int], strides: list[int], dilations: list[int], spatial: list[int] | None
) -> list[int] | str:
    """The Conv's pads as [begins..., ends...] (rule 2; ``spatial``: the static dims, for SAME_*), or
    why they do not fit."""
    rank = len(kernel)
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return [0] * 2 * rank
    if auto_pad == "NOTSET":
        pads = list(node.attributes.get_ints("pads", None) or [0] * 2 * rank)
        return pads if len(pads) == 2 * rank else f"pads {pads} do not fit a rank-{rank} kernel"
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER") or spatial is None:
        return f"auto_pad={auto_pad} is not an ONNX value"
    begins, ends = [], []
    for length, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max(0, (-(-length // s) - 1) * s + d * (k - 1) + 1 - length)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends
