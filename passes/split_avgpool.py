"""``split-avgpool``: an AveragePool whose kernel along some axis exceeds ``max_kernel`` (Ascend's
AvgPool takes kernels up to 255; beyond it ATC inserts TransData / Transpose) becomes a chain of
AveragePools whose kernels multiply to the original one (msit KnowledgeAvgPoolSplit).

On an axis of length L with kernel k = f1 * f2 * ... and stride k, window j of the original is
``x[j*k : (j+1)*k]``. Pooling with kernel f1 and stride f1 averages the blocks
``x[i*f1 : (i+1)*f1]``; pooling those with kernel f2 and stride f2 averages f2 whole blocks, and so
on: every window of the chain covers exactly a window of the original and each mean is a mean
of equal-sized means. The output lengths agree too: floor(floor(L / f1) / f2) = floor(L / (f1*f2))
for positive integers, so in floor mode the chain is exact for every L, static or not (for
L < k both fail). The rewrite is done when:

1. the node is a default-domain AveragePool with a ``kernel_shape``, and some kernel exceeds
   ``max_kernel`` (else it is no candidate);
2. on every axis whose kernel exceeds ``max_kernel`` the stride equals the kernel
   (non-overlapping windows); other axes keep their kernel and stride in the first pool of the
   chain and get kernel 1, stride 1 in the later ones;
3. there is no padding: ``pads`` all 0 and ``auto_pad`` NOTSET or VALID (so ``count_include_pad``
   does not matter), and ``dilations`` (opset 19) are all 1;
4. ``ceil_mode`` is 0, or every spatial dim is static and has no partial window
   ((L - k) % s == 0 on every axis), where ceil and floor give the same windows;
5. each kernel to split factors into factors <= ``max_kernel``: greedily the largest divisor
   <= ``max_kernel`` of what is left, so the factors are deterministic, few and descending
   (the first pool shrinks the tensor most). A prime factor above ``max_kernel`` is refused.

Every pool of the chain has kernels <= ``max_kernel``, so a second run changes nothing. The pools
written have only ``kernel_shape`` and ``strides``, which mean the same at every opset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

from optimizer.passapi import Change, NodePass, PassContext, Skip, node_label, register_pass, replace_nodes


@register_pass
class SplitAvgpool(NodePass):
    name = "split-avgpool"
    summary = "Split an AveragePool with a kernel above Ascend's 255 into a chain of pools whose kernels multiply to it"
    addresses = ("AveragePool",)

    @dataclass(frozen=True)
    class Options:
        max_kernel: int = field(
            default=255, metadata={"help": "largest kernel along one axis a pool may keep (Ascend AvgPool: 255)"}
        )

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Split ``node`` into a chain of pools, or say why not."""
        if node.op_type != "AveragePool" or node.domain not in ("", "ai.onnx"):
            return None
        limit = self.options.max_kernel
        kernel = [int(k) for k in node.attributes.get_ints("kernel_shape", ()) or ()]
        if not kernel or max(kernel) <= limit:
            return None
        label = node_label(node)
        if limit < 2:
            return Skip(label, f"max_kernel must be at least 2, not {limit}")
        rank = len(kernel)
        strides = [int(s) for s in node.attributes.get_ints("strides", None) or [1] * rank]
        if len(strides) != rank:
            return Skip(label, f"strides {strides} do not match kernel_shape {kernel}")
        split = [axis for axis in range(rank) if kernel[axis] > limit]
        for axis in split:
            if strides[axis] != kernel[axis]:
                return Skip(
                    label,
                    f"kernel {kernel[axis]} on spatial axis {axis} has stride {strides[axis]}: "
                    "only non-overlapping windows (stride == kernel) split exactly",
                )
        if problem := _padding_problem(node):
            return Skip(label, problem)
        if node.attributes.get_int("ceil_mode", 0):
            dims = ctx.dims_of(node.inputs[0], model)
            spatial = dims[2:] if dims is not None and len(dims) == rank + 2 else None
            if spatial is None or None in spatial:
                reason = "ceil_mode=1 needs static spatial dims to rule out partial windows"
                return Skip(label, ctx.unknown_shape(reason, model))
            partial = [axis for axis in range(rank) if (spatial[axis] - kernel[axis]) % strides[axis]]
            if partial:
                return Skip(label, f"ceil_mode=1 with a partial window on spatial axis {partial[0]} of {spatial}")
        factors = {}
        for axis in split:
            factors[axis] = _factor(kernel[axis], limit)
            if factors[axis] is None:
                return Skip(label, f"kernel {kernel[axis]} has no factorisation into factors <= {limit}")
        base = node.name or node.outputs[0].name
        chain: list[ir.Node] = []
        value = node.inputs[0]
        for step, (sizes, steps) in enumerate(_chain(kernel, strides, factors)):
            attributes = {"kernel_shape": sizes, "strides": steps}
            pool = ir.node("AveragePool", [value], attributes, name=f"{base}/split{step}")
            pool.outputs[0].name = ctx.fresh_name(model, pool.name)
            chain.append(pool)
            value = pool.outputs[0]
        replace_nodes([node], chain, node.outputs[0], value)
        described = ", ".join(f"axis {axis}: {kernel[axis]} = {' * '.join(map(str, factors[axis]))}" for axis in split)
        return Change(f"AveragePool split into {len(chain)} pools ({described})", (label,))


def _chain(kernel: list[int], strides: list[int], factors: dict[int, list[int]]) -> list[tuple[list[int], list[int]]]:
    """Kernel and strides of each pool of the chain: split axes take their factors in turn (then 1),
    the other axes keep their kernel and stride in the first pool and take 1 after it."""
    length = max(len(f) for f in factors.values())
    chain = []
    for step in range(length):
        sizes, steps = [], []
        for axis, (k, s) in enumerate(zip(kernel, strides, strict=True)):
            if axis in factors:
                size = factors[axis][step] if step < len(factors[axis]) else 1
                sizes.append(size)
                steps.append(size)
            else:
                sizes.append(k if step == 0 else 1)
                steps.append(s if step == 0 else 1)
        chain.append((sizes, steps))
    return chain


def _padding_problem(node: ir.Node) -> str | None:
    """Why the pool pads or dilates (rule 3), or None."""
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        return f"auto_pad={auto_pad} pads the input; only unpadded pools split exactly"
    pads = list(node.attributes.get_ints("pads", None) or [])
    if any(pads):
        return f"pads {pads} are not all 0; only unpadded pools split exactly"
    dilations = list(node.attributes.get_ints("dilations", None) or [])
    if any(d != 1 for d in dilations):
        return f"dilations {dilations} are not all 1"
    return None


def _factor(kernel: int, limit: int) -> list[int] | None:
    """``kernel`` as a product of factors <= ``limit``, each the largest divisor of what is left."""
    factors = []
    while kernel > 1:
        divisor = next(d for d in range(min(limit, kernel), 0, -1) if kernel % d == 0)
        if divisor == 1:
            return None
        factors.append(divisor)
        kernel //= divisor
    return factors
