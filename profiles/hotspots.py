"""Where the time goes: the op types and nodes carrying most of a profile's time.

Each op type is also given as its canonical ONNX op type, so a caller can pick passes that
address it. Ascend kernels with a different name are listed in ONNX_OP_TYPE; any other kernel
type is passed through (most already carry the ONNX name: Relu, Add, Cast). Layout kernels
that ATC inserts have no ONNX op: category "layout", onnx_op_type None.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Profile
from .runs import runs_of

ONNX_OP_TYPE = {
    "TransposeD": "Transpose",
    "Conv2D": "Conv",
    "Conv3D": "Conv",
    "Conv2DTranspose": "ConvTranspose",
    "Conv2DTransposeD": "ConvTranspose",
    "ConcatD": "Concat",
    "ConcatV2D": "Concat",
    "SoftmaxV2": "Softmax",
    "LogSoftmaxV2": "LogSoftmax",
    "MatMulV2": "MatMul",
    "MatMulV3": "MatMul",
    "BatchMatMul": "MatMul",
    "BatchMatMulV2": "MatMul",
    "ReduceSumD": "ReduceSum",
    "ReduceMeanD": "ReduceMean",
    "ReduceMaxD": "ReduceMax",
    "GatherV2": "Gather",
    "GatherV2D": "Gather",
    "SplitD": "Split",
    "SplitVD": "Split",
    "PadD": "Pad",
    "PadV3": "Pad",
    "TileD": "Tile",
    "ExpandD": "Expand",
    "StridedSliceD": "Slice",
    "SliceD": "Slice",
    "AvgPoolV2": "AveragePool",
    "MaxPoolV3": "MaxPool",
    "RealDiv": "Div",
    "ResizeNearestNeighborV2": "Resize",
    "ResizeBilinearV2": "Resize",
    "TopKV2": "TopK",
    "ArgMaxV2": "ArgMax",
    "BNInference": "BatchNormalization",
    "BNInferenceD": "BatchNormalization",
    "LayerNorm": "LayerNormalization",
}
# Layout conversions the converter inserts: ATC's TransData family, onnxruntime's NCHWc reorders.
LAYOUT_OP_TYPES = frozenset({"TransData", "TransDataSpecial", "TensorMove", "ReorderInput", "ReorderOutput"})


@dataclass
class HotOpType:
    """One op type's time; category is "compute", "layout" or "unknown" (no type given)."""

    op_type: str | None
    onnx_op_type: str | None
    category: str
    count: int
    total_us: float
    share: float


@dataclass
class HotNode:
    """One node's (kernel name's) time, summed over its runs."""

    name: str
    op_type: str | None
    onnx_op_type: str | None
    category: str
    count: int
    total_us: float
    share: float


@dataclass
class Hotspots:
    """The `top` op types and nodes by time, largest first.

    Times are per inference when the profile's number of runs is known (`runs`, see
    profiles.runs), else as recorded; `normalisation` says which. Counts are the profile's rows.
    """

    total_us: float
    op_types: list[HotOpType]
    nodes: list[HotNode]
    runs: int | None = None
    normalisation: str = ""


def canonical_op_type(kernel_type: str | None) -> tuple[str | None, str]:
    """Ascend kernel type -> (ONNX op type or None, category)."""
    if kernel_type is None:
        return None, "unknown"
    if kernel_type in LAYOUT_OP_TYPES:
        return None, "layout"
    return ONNX_OP_TYPE.get(kernel_type, kernel_type), "compute"


def hotspots(profile: Profile, top: int = 10) -> Hotspots:
    """The op types and nodes carrying most of `profile`'s time (shares of its total), per inference."""
    runs = runs_of(profile)
    divisor = runs.count or 1
    total = profile.total_us / divisor
    types = [
        HotOpType(s.op_type, *canonical_op_type(s.op_type), s.count, s.total_us / divisor,
                  s.total_us / divisor / total if total else 0.0)
        for s in profile.stats_by_type().values()
    ]
    nodes: dict[str, HotNode] = {}
    for op in profile.ops:
        node = nodes.get(op.name)
        if node is None:
            node = nodes[op.name] = HotNode(op.name, op.op_type, *canonical_op_type(op.op_type), 0, 0.0, 0.0)
        node.count += 1
        node.total_us += op.duration_us / divisor
    node_total = sum(n.total_us for n in nodes.values())
    for node in nodes.values():
        node.share = node.total_us / node_total if node_total else 0.0
    return Hotspots(
        total_us=total,
        op_types=sorted(types, key=lambda t: (-t.total_us, t.op_type or ""))[:top],
        nodes=sorted(nodes.values(), key=lambda n: (-n.total_us, n.name))[:top],
        runs=runs.count,
        normalisation=(f"time per inference over {runs.count} run{'s' * (runs.count != 1)} ({runs.how})" if runs.count
                       else "time as recorded: number of runs unknown"),
    )
