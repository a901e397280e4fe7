"""Seeded random ONNX graphs built from the passes' patterns, and the differential check that runs
``optimize`` on them and compares the outputs with onnxruntime.

``generate(seed, focus=...)`` builds a model (numpy ``default_rng``, so a seed is a model) at an
opset in 9-18 out of blocks that keep the element count of a chain:

* ``softmax``: Transpose(p) -> Softmax / LogSoftmax -> Transpose(q); q undoes p or not, positive,
  negative (opset >= 11) or default axis, shapes with trailing 1s (so some sandwiches are legal
  below opset 13), extra consumers of ``t`` or ``s``, ``t`` / ``s`` as graph outputs, the second
  half inside an If branch (a pattern across scopes);
* ``d2s``: DepthToSpace (DCR / CRD / no mode, ``mode`` only from opset 11) or SpaceToDepth;
* ``d2s6d``: Reshape 6-D -> Transpose -> Reshape in the CRD, DCR and SpaceToDepth layouts: exact,
  with 0 / -1 in the shapes, shapes from a shape subgraph, and subtly wrong (another layout's
  perm, H and W swapped, unequal blocks, a last Reshape that is not the layout, allowzero=1,
  shared intermediates), sometimes on double or int64 tensors (Cast in and out);
* ``shape``: Reshape by Shape -> Gather -> Concat (or Shape(start, end) from opset 15) and
  constant subgraphs (Constant -> Mul -> Add) that ``simplify`` folds;
* fillers between them (Relu, Sigmoid, Tanh, Neg, Abs, Identity, Add / Mul by constants, diamonds).

The chain holding the focus blocks lies in the main graph, an If branch, a Loop body or a
model-local function; the batch may be dynamic (``N``). With a ``focus`` pass most graphs hold
candidates for it that are legal (``p_legal``), the rest are near misses.

``check_case(case, configs, workdir, rng)`` runs ``optimizer.optimize.optimize`` (verify off) for
each configuration and classifies each run: ok, refused (a :class:`UserError`), internal (any
other exception, or a pass that failed with one), broken (the written model does not run, lacks
an output, has another opset) or wrong (an output differs: float32 rtol 1e-4, atol 1e-5).
"""

from __future__ import annotations

import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from helpers import make_model
from onnx import TensorProto, helper, numpy_helper

OPSETS = tuple(range(9, 19))
FOCUSES = ("softmax-transpose", "decompose-depth-to-space", "fuse-depth-to-space", "simplify", "transpose-whitelist")
SCOPES = ("main", "if", "loop", "function")
RTOL, ATOL = 1e-4, 1e-5

UNARY = ("Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Identity")
DEFAULT_PERM = object()  # marker: leave the perm attribute out (Transpose reverses the axes)


@dataclass
class V:
    """A value being built: its name, its dims (ints, or ``"N"`` for the dynamic batch), its type."""

    name: str
    shape: list
    dtype: int = TensorProto.FLOAT


@dataclass
class Case:
    """One generated model, how to feed it, and what it holds."""

    seed: int
    focus: str | None
    opset: int
    scope: str
    model: onnx.ModelProto
    input_shapes: dict[str, list[int]]
    bool_inputs: list[str]
    blocks: list[str]
    candidates: Counter

    def feeds(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs: normal floats, fair booleans."""
        rng = np.random.default_rng(seed)
        result: dict[str, np.ndarray] = {}
        for name in self.bool_inputs:
            result[name] = np.array(bool(rng.integers(2)))
        for name, shape in self.input_shapes.items():
            result[name] = rng.standard_normal(shape).astype(np.float32)
        return result

    def describe(self) -> str:
        return (
            f"seed {self.seed} focus {self.focus or 'mixed'} opset {self.opset} scope {self.scope}: "
            + ", ".join(self.blocks)
        )


def generate(
    seed: int,
    focus: str | None = None,
    *,
    opset: int | None = None,
    scope: str | None = None,
    p_legal: float | None = None,
) -> Case:
    """The model of ``seed`` (and ``focus``: the same seed with another focus is another model)."""
    salt = 0 if focus is None else FOCUSES.index(focus) + 1
    rng = np.random.default_rng([seed, salt])
    opset = int(opset if opset is not None else rng.choice(OPSETS))
    if scope is None:
        scope = str(rng.choice(SCOPES, p=[0.55, 0.15, 0.15, 0.15]))
    if p_legal is None:
        p_legal = 0.85 if focus else 0.5
    builder = _Builder(rng, opset, focus, p_legal)
    builder.build(scope)
    model = make_model(
        builder.main_nodes,
        builder.inputs,
        builder.outputs,
        initializers=builder.initializers,
        opset=opset,
        ir_version=8,
        functions=builder.functions,
        extra_opsets=[helper.make_opsetid(_DOMAIN, 1)] if builder.functions else (),
        name=f"fuzz_{seed}",
    )
    return Case(
        seed,
        focus,
        opset,
        scope,
        model,
        builder.input_shapes,
        builder.bool_inputs,
        builder.blocks,
        builder.candidates,
    )


_DOMAIN = "fuzz"
_LAYOUTS = {  # layout -> transpose perm (as in passes/depth_to_space.py)
    "CRD": [0, 1, 4, 2, 5, 3],
    "DCR": [0, 3, 4, 1, 5, 2],
    "S2D": [0, 3, 5, 1, 2, 4],
}


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def _inverse(perm: list[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, v in enumerate(perm):
        inv[v] = i
    return inv


class _Builder:
    """Builds the nodes of every scope; ``self.scopes[-1]`` receives new nodes."""

    def __init__(
        self, rng: np.random.Generator, opset: int, focus: str | None, p_legal: float
    ) -> None:
        self.rng, self.opset, self.focus, self.p_legal = rng, opset, focus, p_legal
        self.count = 0
        self.scopes: list[list[onnx.NodeProto]] = [[]]
        self.initializers: list[tuple[str, np.ndarray]] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.input_shapes: dict[str, list[int]] = {}
        self.bool_inputs: list[str] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.functions: list[onnx.FunctionProto] = []
        self.candidates: Counter = Counter()
        self.blocks: list[str] = []
        # transpose-whitelist lists static shapes only: its graphs keep a static batch.
        self.dynamic = bool(rng.random() < 0.15) and focus != "transpose-whitelist"
        self.batch_value = int(rng.choice([1, 2]))
        self.batch = "N" if self.dynamic else self.batch_value
        self.rest = 36 * int(rng.choice([1, 2, 3, 4]))

    # ----- plumbing -------------------------------------------------------------------------
    @property
    def main_nodes(self) -> list[onnx.NodeProto]:
        return self.scopes[0]

    @property
    def in_main(self) -> bool:
        return len(self.scopes) == 1

    def open_scope(self) -> None:
        """Start a subgraph or function body."""
        self.scopes.append([])

    def close_scope(self) -> list[onnx.NodeProto]:
        return self.scopes.pop()

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def node(self, op: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs) -> list[str]:
        outputs = [self.fresh(op.lower()) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.scopes[-1].append(
            helper.make_node(op, inputs, outputs, name=self.fresh(f"{op}_"), domain=domain or None, **attrs)
        )
        return outputs

    def const(self, array: np.ndarray) -> str:
        """A constant: an initializer in the main graph (sometimes), else a Constant node."""
        array = np.asarray(array)
        if self.in_main and self.chance(0.5):
            name = self.fresh("c")
            self.initializers.append((name, array))
            return name
        [name] = self.node("Constant", [], value=numpy_helper.from_array(array, ""))
        return name

    def info(self, value: V) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(value.name, value.dtype, value.shape)

    def concrete(self, shape: list) -> list[int]:
        return [self.batch_value if d == "N" else int(d) for d in shape]

    def add_output(self, value: V) -> None:
        self.outputs.append(self.info(value))

    # ----- shapes ---------------------------------------------------------------------------
    def factor(self, rank: int, need: dict[int, int] | None = None, ones: set[int] | frozenset = frozenset()):
        """A shape [batch, ...] of ``rank`` holding ``self.rest`` elements per batch item, with
        dim i divisible by ``need[i]`` and the dims in ``ones`` equal to 1; None if impossible."""
        need = need or {}
        dims: list = [1] * rank
        dims[0] = self.batch
        total = 1
        for pos, d in need.items():
            dims[pos] *= d
            total *= d
        if self.rest % total:
            return None
        free = [i for i in range(1, rank) if i not in ones]
        left = _primes(self.rest // total)
        if left and not free:
            return None
        for prime in left:
            dims[self.pick(free)] *= prime
        return dims

    def shape_tensor(self, x: V, target: list, *, computed: bool = True) -> str:
        """The shape input of a Reshape of ``x`` to ``target``: literal, with 0 or -1, or computed
        (a shape subgraph reading ``x``, unless not ``computed``)."""
        dynamic = "N" in target
        ways = ["minus", "subgraph"] if computed else ["minus"]
        if not dynamic:
            ways += ["literal", "literal"]
        same = [i for i in range(min(len(x.shape), len(target))) if x.shape[i] == target[i]]
        if same and (not dynamic or target.index("N") in same):
            ways.append("zero")
        way = self.pick(ways)
        if way == "literal":
            return self.const(np.array(target, np.int64))
        if way == "zero":
            zeros = {i for i in same if self.chance(0.5)}
            if dynamic:
                zeros.add(target.index("N"))
            zeros = zeros or {same[0]}
            return self.const(np.array([0 if i in zeros else d for i, d in enumerate(target)], np.int64))
        if way == "minus":
            at = target.index("N") if dynamic else int(self.rng.integers(len(target)))
            return self.const(np.array([-1 if i == at else d for i, d in enumerate(target)], np.int64))
        return self.shape_subgraph(x, target)

    def shape_subgraph(self, x: V, target: list) -> str:
        """Shape -> Gather -> Concat: the first dim of ``target`` read from ``x``'s shape."""
        sources = [i for i, d in enumerate(x.shape) if d == target[0]]
        if not sources:
            return self.const(np.array([-1, *target[1:]], np.int64))
        i = self.pick(sources)
        if not self.dynamic:
            self.candidates["simplify"] += 1
        if self.opset >= 15 and self.chance(0.3):
            [first] = self.node("Shape", [x.name], start=i, end=i + 1)
        else:
            [shape] = self.node("Shape", [x.name])
            if self.chance(0.5):
                [first] = self.node("Gather", [shape, self.const(np.array([i], np.int64))], axis=0)
            else:
                [scalar] = self.node("Gather", [shape, self.const(np.array(i, np.int64))], axis=0)
                if self.opset >= 13:
                    [first] = self.node("Unsqueeze", [scalar, self.const(np.array([0], np.int64))])
                else:
                    [first] = self.node("Unsqueeze", [scalar], axes=[0])
        parts = [first]
        if len(target) > 1:
            parts.append(self.const(np.array(target[1:], np.int64)))
        [shape] = self.node("Concat", parts, axis=0)
        return shape

    def reshape(self, x: V, target: list, *, always: bool = False) -> V:
        """``x`` reshaped to ``target`` (same element count), or ``x`` itself when it has that shape."""
        if list(x.shape) == list(target) and not (always or self.chance(0.1)):
            return x
        [y] = self.node("Reshape", [x.name, self.shape_tensor(x, target)])
        return V(y, list(target), x.dtype)

    # ----- blocks ---------------------------------------------------------------------------
    def filler(self, x: V, kind: str | None = None) -> V:
        kind = kind or self.pick(["unary", "unary", "const", "self", "diamond", "folded"])
        if kind == "unary":
            [y] = self.node(self.pick(UNARY), [x.name])
        elif kind == "const":
            last = x.shape[-1]
            shape = self.pick([[], [last]]) if last != "N" else []
            value = self.rng.standard_normal(shape).astype(np.float32) * 0.5 + (1.0 if self.chance(0.5) else 0.0)
            [y] = self.node(self.pick(["Add", "Mul"]), [x.name, self.const(value)])
        elif kind == "self":
            [y] = self.node("Add", [x.name, x.name])
        elif kind == "diamond":
            [a] = self.node(self.pick(UNARY), [x.name])
            [b] = self.node(self.pick(UNARY), [x.name])
            [y] = self.node("Add", [a, b])
        else:  # a constant subgraph simplify folds
            self.candidates["simplify"] += 1
            a = self.const(np.float32(self.rng.standard_normal()))
            b = self.const(np.float32(self.rng.standard_normal()))
            [c] = self.node("Mul", [a, b])
            [y] = self.node("Add", [x.name, c])
        return V(y, list(x.shape), x.dtype)

    def softmax(self, x: V, legal: bool) -> V:
        rng = self.rng
        rank = int(rng.choice([2, 3, 4, 5], p=[0.1, 0.3, 0.35, 0.25]))
        per_axis = self.opset >= 13
        if not per_axis and (legal or self.chance(0.5)):
            # Below opset 13: every dim after the softmax axis, in t and in x, is 1.
            k = int(rng.integers(1, rank))  # the axis of x
            ones = set(range(k + 1, rank))
            shape = self.factor(rank, ones=ones)
            a = int(rng.integers(k, rank))  # the axis of t
            after = [int(v) for v in rng.permutation(sorted(ones))][: rank - 1 - a]
            rest = [i for i in range(rank) if i != k and i not in after]
            p = [*(int(v) for v in rng.permutation(rest)), k, *after]
        else:
            trailing = int(rng.integers(1, rank - 1)) if rank > 2 and self.chance(0.3) else 0
            shape = self.factor(rank, ones=set(range(rank - trailing, rank)))
            p = [int(v) for v in rng.permutation(rank)]
            a = int(rng.integers(rank))
        x = self.reshape(x, shape)
        defects = ["q", "t-use", "s-use", "s-second"]
        if self.in_main:
            defects += ["t-out", "s-out", "scopes"]
        defect = None if legal else self.pick(defects)
        q = _inverse(p)
        if defect == "q":
            while q == _inverse(p):
                q = [int(v) for v in rng.permutation(rank)]
        default_axis = -1 if per_axis else 1
        axis: int | None = a
        if a % rank == default_axis % rank and self.chance(0.5):
            axis = None
        elif self.opset >= 11 and self.chance(0.3):
            axis = a - rank
        op = self.pick(["Softmax", "Softmax", "LogSoftmax"])
        self.candidates["softmax-transpose"] += 1
        self.candidates["transpose-whitelist"] += 2
        self.blocks.append(f"{op}(p={p}, axis={axis}, q={q}, x={shape}{', ' + defect if defect else ''})")

        def perm(values: list[int]):
            return None if values == list(range(rank))[::-1] and self.chance(0.5) else values

        t_shape = [x.shape[i] for i in p]
        [t] = self.node("Transpose", [x.name], perm=perm(p))
        if defect == "scopes":  # softmax and second transpose inside both branches of an If
            y_shape = [t_shape[i] for i in q]
            outs = []
            for _ in range(2):
                self.open_scope()
                [s] = self.node(op, [t], axis=axis)
                [y] = self.node("Transpose", [s], perm=perm(q))
                outs.append(helper.make_graph(self.close_scope(), self.fresh("branch"), [], [self.info(V(y, y_shape))]))
            [y] = self.node("If", [self.cond()], then_branch=outs[0], else_branch=outs[1])
            return V(y, y_shape)
        [s] = self.node(op, [t], axis=axis)
        [y] = self.node("Transpose", [s], perm=perm(q))
        y_value = V(y, [t_shape[i] for i in q])
        if defect in ("t-use", "s-use", "s-second"):
            source = t if defect == "t-use" else s
            if defect != "s-second":
                [source] = self.node(self.pick(["Relu", "Neg", "Sigmoid"]), [source])
            [other] = self.node("Transpose", [source], perm=perm(q))
            [y] = self.node("Add", [y, other])
            y_value = V(y, y_value.shape)
        elif defect in ("t-out", "s-out"):
            self.add_output(V(t if defect == "t-out" else s, t_shape))
        return y_value

    def cond(self) -> str:
        """An If condition: a graph input (main graph only) or a constant."""
        if self.in_main and self.chance(0.7):
            name = f"cond{len(self.bool_inputs)}"
            self.bool_inputs.append(name)
            self.inputs.append(helper.make_tensor_value_info(name, TensorProto.BOOL, []))
            return name
        [name] = self.node("Constant", [], value=helper.make_tensor("", TensorProto.BOOL, [], [self.chance(0.5)]))
        return name

    def cast_in(self, x: V) -> tuple[V, int | None]:
        """Sometimes move the block to double or int64 (Reshape and Transpose take any type)."""
        if not self.chance(0.12):
            return x, None
        dtype = self.pick([TensorProto.DOUBLE, TensorProto.INT64])
        [y] = self.node("Cast", [x.name], to=dtype)
        self.blocks.append(f"Cast({TensorProto.DataType.Name(dtype)})")
        return V(y, list(x.shape), dtype), dtype

    def cast_out(self, x: V, dtype: int | None) -> V:
        if dtype is None:
            return x
        [y] = self.node("Cast", [x.name], to=TensorProto.FLOAT)
        return V(y, list(x.shape))

    def d2s(self, x: V, legal: bool) -> V:
        b = 2 if self.chance(0.75) else 3
        if self.chance(0.1 if self.focus == "decompose-depth-to-space" else 0.3):
            shape = self.factor(4, {2: b, 3: b})
            x = self.reshape(x, shape)
            n, c, h, w = shape
            [y] = self.node("SpaceToDepth", [x.name], blocksize=b)
            self.blocks.append(f"SpaceToDepth(b={b}, x={shape})")
            return V(y, [n, c * b * b, h // b, w // b])
        shape = self.factor(4, {1: b * b})
        x = self.reshape(x, shape)
        n, c, h, w = shape
        mode = self.pick(["DCR", "CRD", None]) if self.opset >= 11 else None
        dtype = None
        if self.chance(0.1):  # double: DepthToSpace has a double kernel; ints have none in onnxruntime
            [xd] = self.node("Cast", [x.name], to=TensorProto.DOUBLE)
            x, dtype = V(xd, shape, TensorProto.DOUBLE), TensorProto.DOUBLE
        [y] = self.node("DepthToSpace", [x.name], blocksize=b, mode=mode)
        self.candidates["decompose-depth-to-space"] += 1
        self.blocks.append(f"DepthToSpace({mode}, b={b}, x={shape}{', double' if dtype else ''})")
        return self.cast_out(V(y, [n, c // (b * b), h * b, w * b], dtype or TensorProto.FLOAT), dtype)

    def d2s6d(self, x: V, legal: bool) -> V:
        layouts = ["CRD", "DCR", "S2D"] if self.opset >= 11 or not legal else ["DCR", "S2D"]
        layout = self.pick(layouts)
        b = 2 if self.chance(0.75) else 3
        defects = ["perm", "last", "hw", "shared-split", "shared-transposed", "subgraph"]
        if layout != "S2D":
            defects.append("blocks")
        if self.opset >= 14 and not self.dynamic:
            defects.append("allowzero")
        defect = None if legal else self.pick(defects)
        b1, b2 = (2, 3) if defect == "blocks" else (b, b)
        if layout == "S2D":
            shape = self.factor(4, {2: b, 3: b})
        else:
            shape = self.factor(4, {1: b1 * b2})
        if defect == "hw" and shape[2] == shape[3]:
            defect = "last"
        x = self.reshape(x, shape)
        x, dtype = self.cast_in(x)
        n, c, h, w = shape
        if layout == "S2D":
            split = [n, c, h // b, b, w // b, b]
            result = [n, c * b * b, h // b, w // b]
            if defect == "hw":
                split = [n, c, w // b, b, h // b, b]
        elif layout == "DCR":
            split = [n, b1, b2, c // (b1 * b2), h, w]
            result = [n, c // (b1 * b2), h * b1, w * b2]
            if defect == "hw":
                split = [n, b1, b2, c // (b1 * b2), w, h]
        else:
            split = [n, c // (b1 * b2), b1, b2, h, w]
            result = [n, c // (b1 * b2), h * b1, w * b2]
            if defect == "hw":
                split = [n, c // (b1 * b2), b1, b2, w, h]
        perm = _LAYOUTS[layout]
        if defect == "perm":
            perm = _LAYOUTS[self.pick([k for k in _LAYOUTS if k != layout])]
        if defect == "last":
            result = self.pick(
                [[n, result[1], result[3], result[2]], [n, result[1] * result[2], result[3]], [n, -1]]
                if result[2] != result[3]
                else [[n, result[1] * result[2], result[3]], [n, -1], [n, result[1], result[2] * result[3]]]
            )
        allowzero = 1 if defect == "allowzero" else None
        self.candidates["fuse-depth-to-space"] += 1
        self.candidates["transpose-whitelist"] += 1
        self.blocks.append(
            f"6-D {layout}(b={b1}x{b2}, x={shape}, split={split}, perm={perm}, to={result}"
            f"{', ' + defect if defect else ''})"
        )
        if allowzero or (not self.dynamic and self.chance(0.4)):
            split_shape = self.const(np.array(split, np.int64))
        elif defect == "subgraph":
            split_shape = self.shape_subgraph(x, split)
        else:
            split_shape = self.shape_tensor(x, split, computed=defect is not None)
        [s6] = self.node("Reshape", [x.name, split_shape], allowzero=allowzero)
        t_shape = [split[i] for i in perm]
        [t6] = self.node("Transpose", [s6], perm=perm)
        if -1 in result:  # the last Reshape flattens: [n, -1]
            out_shape = [n, int(np.prod([d for d in t_shape[1:]]))]
            last = self.const(np.array([0 if self.dynamic else n, -1], np.int64))
        else:
            out_shape = result
            last = (
                self.const(np.array(result, np.int64))
                if allowzero or (not self.dynamic and self.chance(0.5))
                else self.shape_tensor(V(t6, t_shape), result, computed=defect is not None)
            )
        [y] = self.node("Reshape", [t6, last], allowzero=allowzero)
        y_value = V(y, out_shape, x.dtype)
        if defect in ("shared-split", "shared-transposed"):
            source = s6 if defect == "shared-split" else t6
            back = self.const(np.array([0 if self.dynamic else n, *out_shape[1:]], np.int64))
            [other] = self.node("Reshape", [source, back])
            [y] = self.node("Add", [y, other])
            y_value = V(y, out_shape, x.dtype)
        return self.cast_out(y_value, dtype)

    def shape_block(self, x: V, legal: bool) -> V:
        """A Reshape by a shape subgraph (folded by simplify when the batch is static); with a
        dynamic batch also a constant subgraph, which simplify folds regardless."""
        shape = list(x.shape)
        for _ in range(5):
            if shape != list(x.shape):
                break
            shape = self.factor(int(self.rng.integers(2, 6)))
        self.blocks.append(f"Reshape by shape subgraph to {shape}")
        [y] = self.node("Reshape", [x.name, self.shape_subgraph(x, shape)])
        y_value = V(y, shape)
        if self.dynamic:
            y_value = self.filler(y_value, kind="folded")
        return y_value

    BLOCKS = {"softmax": softmax, "d2s": d2s, "d2s6d": d2s6d, "shape": shape_block}
    FOCUS_BLOCKS = {
        "softmax-transpose": ["softmax"],
        "decompose-depth-to-space": ["d2s"],
        "fuse-depth-to-space": ["d2s6d"],
        "simplify": ["shape"],
        "transpose-whitelist": ["softmax", "d2s6d"],
    }

    def chain(self, x: V) -> V:
        """Blocks (the focus ones first in number) with fillers between them."""
        if self.focus is None:
            kinds = [self.pick(list(self.BLOCKS)) for _ in range(int(self.rng.integers(1, 5)))]
        else:
            focus = self.FOCUS_BLOCKS[self.focus]
            kinds = [self.pick(focus) for _ in range(int(self.rng.integers(1, 3)))]
            kinds += [self.pick(list(self.BLOCKS)) for _ in range(int(self.rng.integers(0, 2)))]
            self.rng.shuffle(kinds)
        for kind in kinds:
            if self.chance(0.4):
                x = self.filler(x)
            x = self.BLOCKS[kind](self, x, self.chance(self.p_legal))
        if self.chance(0.4):
            x = self.filler(x)
        return x

    # ----- scopes ---------------------------------------------------------------------------
    def in_if(self, x: V) -> V:
        self.blocks.append("If{")
        self.open_scope()
        y = self.chain(x)
        then = helper.make_graph(self.close_scope(), self.fresh("then"), [], [self.info(y)])
        self.blocks.append("}else{")
        self.open_scope()
        other = self.chain(x) if self.chance(0.5) else self.filler(x)
        other = self.reshape(other, y.shape, always=False)
        if other.name == x.name:  # a branch cannot output an outer value directly
            [name] = self.node("Identity", [x.name])
            other = V(name, other.shape)
        otherwise = helper.make_graph(self.close_scope(), self.fresh("else"), [], [self.info(other)])
        self.blocks.append("}")
        [out] = self.node("If", [self.cond()], then_branch=then, else_branch=otherwise)
        return V(out, y.shape)

    def in_loop(self, x: V) -> V:
        self.blocks.append("Loop{")
        i, cond_in, carried = self.fresh("i"), self.fresh("cond_in"), V(self.fresh("carried"), list(x.shape))
        self.open_scope()
        y = self.reshape(self.chain(carried), x.shape)
        if y.name == carried.name:
            [name] = self.node("Identity", [y.name])
            y = V(name, y.shape)
        [cond_out] = self.node("Identity", [cond_in])
        body = helper.make_graph(
            self.close_scope(),
            self.fresh("body"),
            [
                helper.make_tensor_value_info(i, TensorProto.INT64, []),
                helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
                self.info(carried),
            ],
            [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []), self.info(y)],
        )
        self.blocks.append("}")
        trips = self.const(np.array(int(self.rng.integers(1, 3)), np.int64))
        [out] = self.node("Loop", [trips, "", x.name], body=body)
        return V(out, list(x.shape))

    def in_function(self, x: V) -> V:
        self.blocks.append("function{")
        source = V(self.fresh("fx"), list(x.shape))
        self.open_scope()
        y = self.chain(source)
        if y.name == source.name:
            [name] = self.node("Identity", [y.name])
            y = V(name, y.shape)
        name = self.fresh("pattern")
        self.functions.append(
            helper.make_function(
                _DOMAIN, name, [source.name], [y.name], self.close_scope(), [helper.make_opsetid("", self.opset)]
            )
        )
        self.blocks.append("}")
        [out] = self.node(name, [x.name], domain=_DOMAIN)
        if self.chance(0.4):  # a second call of the same function
            [other_in] = self.node("Relu", [x.name])
            [other] = self.node(name, [other_in], domain=_DOMAIN)
            [out] = self.node("Add", [out, other])
        return V(out, y.shape)

    def build(self, scope: str) -> None:
        for index in range(2 if self.chance(0.2) else 1):
            if index:
                self.rest = 36 * int(self.rng.choice([1, 2, 3]))
            shape = self.factor(int(self.rng.integers(2, 6)))
            x = V(f"x{index}", shape)
            self.inputs.append(self.info(x))
            self.input_shapes[x.name] = self.concrete(shape)
            if index == 0 and scope != "main":
                if self.chance(0.3):
                    x = self.filler(x)
                y = {"if": self.in_if, "loop": self.in_loop, "function": self.in_function}[scope](x)
                if self.chance(0.3):
                    y = self.filler(y)
            else:
                y = self.chain(x)
            if y.name == x.name:
                [name] = self.node("Identity", [x.name])
                y = V(name, y.shape)
            self.add_output(y)


# ----- the differential check -------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One way to run ``optimize``: a pass alone (on a target that lets it run) or a target's pipeline."""

    label: str
    passes: tuple[str, ...] | None
    target: str


ALONE = (
    Config("simplify", ("simplify",), "onnxruntime"),
    Config("softmax-transpose", ("softmax-transpose",), "onnxruntime"),
    Config("decompose-depth-to-space", ("decompose-depth-to-space",), "onnxruntime"),
    Config("fuse-depth-to-space", ("fuse-depth-to-space",), "onnxruntime"),
    Config("transpose-whitelist", ("transpose-whitelist",), "ascend310p"),
)
PIPELINES = tuple(Config(f"target {t}", None, t) for t in ("onnxruntime", "ascend310", "ascend310p", "ascend910b"))
CONFIGS = ALONE + PIPELINES

OK, REFUSED, INTERNAL, BROKEN, WRONG, INVALID = "ok", "refused", "internal", "broken", "wrong", "invalid"


@dataclass
class Run:
    """The outcome of one ``optimize`` run on one case."""

    seed: int
    focus: str | None
    config: str
    opset_from: int
    opset_to: int | None
    outcome: str
    detail: str = ""
    max_diff: float = 0.0
    changed: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()  # passes the manager dropped because the converter refused their result

    def command(self) -> str:
        """Python that reproduces this run."""
        config = next((c for c in CONFIGS if c.label == self.config), None)
        if config is None:
            return f"generate({self.seed}{', ' + repr(self.focus) if self.focus else ''})"
        focus = f", focus={self.focus!r}" if self.focus else ""
        return (
            f"reproduce({self.seed}{focus}, passes={list(config.passes) if config.passes else None}, "
            f"target={config.target!r}, opset={self.opset_to})"
        )


def opset_choices(target: str, current: int) -> list[int]:
    """The opsets in 9-18 the target accepts, except ``current``."""
    from optimizer.targets import load_target

    low, high = load_target(target).opsets
    return [o for o in OPSETS if low <= o <= high and o != current]


def reason_class(message: str) -> str:
    """A refusal message without names and numbers, so like refusals count together."""
    message = re.sub(r"'[^']*'", "'…'", message)
    message = re.sub(r"\([^()]*\)", "(…)", message)
    message = re.sub(r"\[[^\[\]]*\]", "[…]", message)
    message = re.sub(r"\d+", "N", message)
    message = re.sub(r"\S+\.onnx", "MODEL", message)
    return message[:110]


def compare(reference: dict, outputs: dict) -> tuple[str | None, float]:
    """Why ``outputs`` differ from ``reference`` (None when they match), and the max abs diff."""
    worst = 0.0
    for name, expected in reference.items():
        if name not in outputs:
            return f"output {name} missing", worst
        actual = outputs[name]
        expected, actual = np.asarray(expected), np.asarray(actual)
        if expected.shape != actual.shape:
            return f"output {name} has shape {list(actual.shape)}, expected {list(expected.shape)}", worst
        if expected.size == 0:
            continue
        if np.issubdtype(expected.dtype, np.floating):
            diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
            diff = np.where(np.isnan(expected) & np.isnan(actual), 0.0, diff)
            worst = max(worst, float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))))
            if not np.all(diff <= ATOL + RTOL * np.abs(expected.astype(np.float64))):
                return f"output {name} differs", worst
        elif not np.array_equal(expected, actual):
            return f"output {name} differs", worst
    return None, worst


def plan(case: Case, configs=CONFIGS, *, opset_mode: str = "both", rng: np.random.Generator | None = None):
    """(configuration, opset or None) pairs: ``"both"`` runs each configuration without and with
    an opset change (to a random opset in 9-18 the target accepts), ``"one"`` either, at random."""
    rng = rng if rng is not None else np.random.default_rng([case.seed, 7])
    pairs: list[tuple[Config, int | None]] = []
    for config in configs:
        variants: list[int | None] = [None, int(rng.choice(opset_choices(config.target, case.opset)))]
        if opset_mode == "one":
            variants = [variants[int(rng.integers(2))]]
        pairs += [(config, opset) for opset in variants]
    return pairs


def check_case(case: Case, workdir: Path, pairs, *, feed_seed: int = 0, on_start=None, on_run=None) -> list[Run]:
    """Run ``optimize`` for each (configuration, opset) of ``pairs`` on ``case``; classify each run.

    ``on_start(index, config, opset)`` is called before each run and ``on_run(run)`` after it
    (the fuzz benchmark logs both, so a run that kills the process is known and none is lost)."""
    from optimizer.verify import run_onnxruntime

    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / f"case{case.seed}.onnx"
    onnx.save(case.model, str(source))
    feeds = case.feeds(feed_seed)
    try:
        reference = run_onnxruntime(source, feeds)
    except Exception as exc:  # the generator made a model onnxruntime refuses: a generator bug
        return [Run(case.seed, case.focus, "original", case.opset, None, INVALID, _line(exc))]
    runs = []
    for index, (config, opset) in enumerate(pairs):
        if on_start is not None:
            on_start(index, config, opset)
        runs.append(_run_one(case, config, opset, source, workdir, feeds, reference))
        if on_run is not None:
            on_run(runs[-1])
    return runs


def _run_one(case, config, opset, source, workdir, feeds, reference) -> Run:
    from optimizer.errors import UserError
    from optimizer.optimize import OptimizeOptions, optimize
    from optimizer.verify import run_onnxruntime

    run = Run(case.seed, case.focus, config.label, case.opset, opset, OK)
    output = workdir / f"out{case.seed}.onnx"
    output.unlink(missing_ok=True)
    options = OptimizeOptions(
        input=source,
        output=output,
        passes=list(config.passes) if config.passes is not None else None,
        target=config.target,
        opset=opset,
        verify=False,
    )
    try:
        report = optimize(options)
    except UserError as exc:
        run.outcome, run.detail = REFUSED, str(exc).splitlines()[0]
        return run
    except Exception as exc:
        run.outcome, run.detail = INTERNAL, f"optimize raised {_line(exc)} at {_where(exc)}"
        return run
    run.changed = tuple(r.name for r in report.records if r.changes and r.name != "cleanup")
    failed = [r for r in report.records if r.status == "failed"]
    run.dropped = tuple(r.name for r in failed if (r.reason or "").startswith("UserError"))
    crashed = [r for r in failed if not (r.reason or "").startswith("UserError")]
    if crashed:
        run.outcome = INTERNAL
        run.detail = "; ".join(f"pass {r.name} failed: {r.reason}" for r in crashed)
        return run
    try:
        written = onnx.load(str(output))
        saved = next((o.version for o in written.opset_import if o.domain in ("", "ai.onnx")), None)
        if opset is not None and saved != opset:
            run.outcome, run.detail = BROKEN, f"saved at opset {saved}, asked for {opset}"
            return run
        outputs = run_onnxruntime(output, feeds)
    except Exception as exc:
        run.outcome, run.detail = BROKEN, f"the written model does not run: {_line(exc)}"
        return run
    problem, run.max_diff = compare(reference, outputs)
    if problem:
        run.outcome, run.detail = (BROKEN if "differs" not in problem else WRONG), problem
    return run


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "/optimizer/" in f.filename or "/passes/" in f.filename] or frames
    frame = inside[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


@dataclass
class Tally:
    """Counts over many runs: graphs, runs, refusals by reason class, the bad runs themselves."""

    graphs: int = 0
    runs: int = 0
    outcomes: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    fired: Counter = field(default_factory=Counter)
    bad: list[Run] = field(default_factory=list)

    def add(self, runs: list[Run]) -> None:
        self.graphs += 1
        for run in runs:
            if run.outcome == INVALID:
                self.outcomes[INVALID] += 1
                self.bad.append(run)
                continue
            self.runs += 1
            self.outcomes[run.outcome] += 1
            for name in run.changed:
                self.fired[name] += 1
            for name in run.dropped:
                self.dropped[name] += 1
            if run.outcome == REFUSED:
                self.refusals[reason_class(run.detail)] += 1
            elif run.outcome != OK:
                self.bad.append(run)

    def summary(self) -> str:
        return (
            f"graphs {self.graphs}, runs {self.runs}, refusals {self.outcomes[REFUSED]}, "
            f"wrong outputs {self.outcomes[WRONG]}, broken outputs {self.outcomes[BROKEN]}, "
            f"internal errors {self.outcomes[INTERNAL]}, invalid graphs {self.outcomes[INVALID]}"
        )


def reproduce(seed: int, focus: str | None = None, *, passes=None, target="onnxruntime", opset=None,
              workdir: Path | None = None) -> Run:
    """Re-run one configuration on one generated case (the line :meth:`Run.command` prints)."""
    import tempfile

    passes = tuple(passes) if passes is not None else None
    config = next((c for c in CONFIGS if c.passes == passes and c.target == target), None)
    config = config or Config(f"passes {passes} on {target}", passes, target)
    folder = workdir or Path(tempfile.mkdtemp(prefix="onnx-opt-fuzz-"))
    return check_case(generate(seed, focus), folder, [(config, opset)])[0]
