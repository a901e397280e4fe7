"""Attributing profile rows to ONNX nodes by name, conservatively."""

from __future__ import annotations

from profiles import OpRecord, Profile, attribute, read_profile

NODES = [("Conv_52", "Conv"), ("AvgPool_45", "AveragePool"), ("Relu_53", "Relu"), ("Conv_5", "Conv"),
         ("", "Identity")]


def profile(*rows):
    return Profile("p", "op_summary", [OpRecord(name=n, op_type=t, duration_us=1.0) for n, t in rows])


def test_atc_style_names():
    p = profile(
        ("Conv_52", "Conv2D"),                       # 0 exact
        ("trans_TransData_12", "TransData"),         # 1 inserted
        ("PartitionedCall_AvgPool_45_2", "AvgPoolV2"),  # 2 partition prefix and suffix
        ("Conv_5_Conv_52", "Conv2D"),                # 3 two Conv nodes: ambiguous
        ("Conv_5_2", "Conv2D"),                      # 4 suffix on Conv_5 (not Conv_52)
        ("MyConv_52", "Conv2D"),                     # 5 no node on a boundary
        ("trans_Cast_5", "Cast"),                    # 6 inserted even though Cast_5 looks ATC-like
        ("Conv_52", "Conv2D"),                       # 7 a second run of the same node
        ("aclnnMaxPool2dWithMask_TransDataSpecial_TransData", "TransData"),  # 8 layout by type
        ("Conv_52_Relu_53", "Conv2D"),               # 9 fused Conv + Relu: the Conv node by type
        ("Conv_52_Relu_53", "FusedKernel"),          # 10 fused, type not telling: ambiguous
    )
    a = attribute(p, NODES)
    assert a.mapping == {0: "Conv_52", 2: "AvgPool_45", 4: "Conv_5", 7: "Conv_52", 9: "Conv_52"}
    assert a.inserted == [1, 6, 8]
    assert a.unmapped == [3, 5, 10]
    assert a.ambiguous == {3: ["Conv_5", "Conv_52"], 10: ["Conv_52", "Relu_53"]}
    assert a.counts == {"mapped": 5, "inserted": 3, "unmapped": 3}


def test_longer_node_name_wins_over_the_name_inside_it():
    a = attribute(profile(("PartitionedCall_Conv_5_2", "Conv2D")), [("Conv_5", "Conv"), ("Conv_5_2", "Conv")])
    assert a.mapping == {0: "Conv_5_2"}


def test_onnxruntime_rows_map_exactly(ort_profile):
    p = read_profile(ort_profile)
    a = attribute(p, [("MatMul_0", "MatMul"), ("Transpose_1", "Transpose"), ("Relu_2", "Relu")])
    assert a.counts == {"mapped": len(p.ops), "inserted": 0, "unmapped": 0}
    assert a.mapping[1] == "Transpose_1"
