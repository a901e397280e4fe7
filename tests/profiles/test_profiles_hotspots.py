"""Hotspots: op types and nodes by share of time, with canonical ONNX op types."""

from __future__ import annotations

import pytest

from profiles import canonical_op_type, hotspots, read_profile


def test_rdn_hotspots(data):
    h = hotspots(read_profile(data / "rdn_before_op_statistic_0_1.csv"), top=3)
    assert [(t.op_type, t.onnx_op_type, t.category) for t in h.op_types] == [
        ("TransData", None, "layout"), ("TransposeD", "Transpose", "compute"), ("Conv2D", "Conv", "compute")]
    assert h.op_types[1].share == pytest.approx(0.442058, abs=1e-6)
    assert h.nodes == []


def test_node_hotspots_from_kernel_details(data):
    p = read_profile(data / "msinsight_torchnpu_level1_rank0_kernel_details_first200.csv")
    h = hotspots(p, top=5)
    assert len(h.nodes) == 5
    times = sorted(p.time_by_node().values(), reverse=True)[:5]
    assert [n.total_us for n in h.nodes] == times
    assert sum(n.share for n in hotspots(p, top=10_000).nodes) == pytest.approx(1.0)
    assert h.op_types[0].share == pytest.approx(h.op_types[0].total_us / p.total_us)


@pytest.mark.parametrize("kernel, expected", [
    ("TransposeD", ("Transpose", "compute")),
    ("Conv2D", ("Conv", "compute")),
    ("ConcatD", ("Concat", "compute")),
    ("SoftmaxV2", ("Softmax", "compute")),
    ("MatMulV2", ("MatMul", "compute")),
    ("DepthToSpace", ("DepthToSpace", "compute")),
    ("ReduceSumD", ("ReduceSum", "compute")),
    ("Transpose", ("Transpose", "compute")),
    ("TransData", (None, "layout")),
    ("TransDataSpecial", (None, "layout")),
    ("TensorMove", (None, "layout")),
    (None, (None, "unknown")),
])
def test_canonical_op_types(kernel, expected):
    assert canonical_op_type(kernel) == expected
