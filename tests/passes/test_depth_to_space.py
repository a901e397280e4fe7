import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model, op_types
from onnx import helper, numpy_helper

from optimizer.testing import check_pass
from optimizer.verify import run_onnxruntime

DECOMPOSE, FUSE = "decompose-depth-to-space", "fuse-depth-to-space"


def d2s_model(mode, blocksize, shape=(1, 18, 5, 7), opset=13):
    n, c, h, w = shape
    out = [n, c // blocksize**2, h * blocksize, w * blocksize]
    attrs = {"blocksize": blocksize} if opset < 11 else {"blocksize": blocksize, "mode": mode}
    node = helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", **attrs)
    return make_model([node], [("x", list(shape))], [("y", out)], opset=opset)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("blocksize", [2, 3])
def test_decompose_then_fuse_round_trips(mode, blocksize):
    model = d2s_model(mode, blocksize, (2, 9 * blocksize * blocksize // (9 if blocksize == 3 else 1) * 2, 5, 7))
    decomposed = check_pass(DECOMPOSE, model, expect_changes=1).model
    assert op_types(decomposed) == ["Constant", "Reshape", "Transpose", "Constant", "Reshape"]
    fused = check_pass(FUSE, decomposed, expect_changes=1).model
    [node] = [n for n in fused.graph if n.op_type != "Constant"]
    assert node.op_type == "DepthToSpace"
    assert node.attributes.get_string("mode") == mode and node.attributes.get_int("blocksize") == blocksize


def test_decompose_keeps_a_dynamic_batch():
    model = d2s_model("CRD", 2, ("batch", 8, 3, 3))
    result = check_pass(DECOMPOSE, model, verify_shapes={"x": [3, 8, 3, 3]}, expect_changes=1)
    shapes = [list(n.attributes["value"].as_tensor().numpy()) for n in result.model.graph if n.op_type == "Constant"]
    assert shapes == [[0, 2, 2, 2, 3, 3], [0, 2, 6, 6]]
    for batch in (1, 4):
        x = np.random.default_rng(batch).standard_normal((batch, 8, 3, 3)).astype(np.float32)
        expected = run_onnxruntime(ir.serde.deserialize_model(model), {"x": x})["y"]
        np.testing.assert_array_equal(run_onnxruntime(result.model, {"x": x})["y"], expected)
    check_pass(FUSE, result.model, verify_shapes={"x": [2, 8, 3, 3]}, expect_changes=1)


def test_decompose_needs_static_channels_and_space_in_the_model_itself():
    model = d2s_model("DCR", 2, (1, 8, "h", 3))
    result = check_pass(DECOMPOSE, model, verify_shapes={"x": [1, 8, 3, 3]}, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == (
        "needs static C, H and W of the input (fix them with simplify and --input-shape)"
    )


def test_simplify_with_input_shapes_fixes_them_and_then_decompose_fires(cli, tmp_path):
    from helpers import save

    source = save(d2s_model("DCR", 2, (1, 8, "h", 3)), tmp_path / "d2s.onnx")
    out = tmp_path / "o.onnx"
    code, _, err = cli("optimize", source, "-o", out, "--passes", f"simplify,{DECOMPOSE}", "--input-shape", "x:1,8,3,3")
    assert code == 0, err
    assert "DepthToSpace" not in op_types(out)


def test_pixelshuffle_from_torch_opset_9_fuses_for_opset_11_targets(torch_model, cli, tmp_path):
    for scale in (2, 3):
        source = torch_model("srnet", 9, scale=scale)
        assert op_types(source).count("Transpose") == 1
        out = tmp_path / f"fused{scale}.onnx"
        code, _, err = cli("optimize", source, "-o", out, "--opset", "11")
        assert code == 0, err
        [node] = [n for n in onnx.load(str(out)).graph.node if n.op_type == "DepthToSpace"]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs == {"blocksize": scale, "mode": b"CRD"}
        assert "Transpose" not in op_types(out)


def test_crd_is_not_fused_at_opset_9(torch_model):
    result = check_pass(FUSE, torch_model("srnet", 9), expect_changes=0, expect_skips=1)
    assert (
        result.record.skips[0]["reason"]
        == "CRD DepthToSpace needs opset >= 11; the model ends at opset 9 (--opset 11 lets it run)"
    )


def test_fuse_refuses_a_target_without_depth_to_space(torch_model):
    model = onnx.version_converter.convert_version(onnx.load(str(torch_model("srnet", 9))), 11)
    result = check_pass(FUSE, model, target="ascend310", expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == "target ascend310 does not support DepthToSpace"
    check_pass(FUSE, model, target="ascend310p", expect_changes=1)


@pytest.mark.parametrize("scale", [2, 3])
def test_depth_to_space_from_torch_opset_11_decomposes_to_the_opset_9_form(torch_model, scale):
    result = check_pass(DECOMPOSE, torch_model("srnet", 11, scale=scale), expect_changes=1)
    [transpose] = [n for n in result.model.graph if n.op_type == "Transpose"]
    assert list(transpose.attributes.get_ints("perm")) == [0, 1, 4, 2, 5, 3]


def test_srnet_opset11_to_opset_9_on_the_command_line(cli, examples, tmp_path):
    out = tmp_path / "out.onnx"
    code, stdout, err = cli("optimize", examples / "srnet_opset11.onnx", "-o", out, "--opset", "9")
    assert code == 0, err
    saved = onnx.load(str(out))
    assert [o.version for o in saved.opset_import if o.domain in ("", "ai.onnx")] == [9]
    assert "DepthToSpace" not in op_types(saved)
    assert "added decompose-depth-to-space" in err and "passed" in stdout
    feeds = {"image": np.random.default_rng(3).standard_normal((1, 3, 114, 114)).astype(np.float32)}
    expected = run_onnxruntime(examples / "srnet_opset11.onnx", feeds)["output"]
    np.testing.assert_allclose(run_onnxruntime(out, feeds)["output"], expected, rtol=1e-5, atol=1e-5)


def test_fuse_leaves_near_misses():
    base = d2s_model("DCR", 2, (1, 8, 3, 3))
    decomposed = check_pass(DECOMPOSE, base, expect_changes=1).model
    proto = ir.serde.serialize_model(decomposed)
    merge = next(n for n in proto.graph.node if n.op_type == "Constant" and "merge" in n.name)
    merge.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([1, 2, 3, 12], np.int64), merge.output[0]))
    proto.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 3
    proto.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 12
    result = check_pass(FUSE, proto, expect_changes=0, expect_skips=1)
    assert "the last Reshape gives [1, 2, 3, 12]" in result.record.skips[0]["reason"]


def space_to_depth_form(shape=(1, 3, 8, 6), b=2):
    n, c, h, w = shape
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["r"], name="r1"),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 3, 5, 1, 2, 4], name="t"),
        helper.make_node("Reshape", ["t", "s2"], ["y"], name="r2"),
    ]
    inits = [
        ("s1", np.array([n, c, h // b, b, w // b, b], np.int64)),
        ("s2", np.array([-1, c * b * b, h // b, w // b], np.int64)),
    ]
    return make_model(nodes, [("x", list(shape))], [("y", [n, c * b * b, h // b, w // b])], initializers=inits)


def test_space_to_depth_fuses():
    result = check_pass(FUSE, space_to_depth_form(), expect_changes=1)
    [node] = list(result.model.graph)
    assert node.op_type == "SpaceToDepth" and node.attributes.get_int("blocksize") == 2


def test_needed_before_a_downgrade_only_when_there_is_a_depth_to_space(torch_model):
    from passes.depth_to_space import DecomposeDepthToSpace

    d2s = ir.serde.deserialize_model(onnx.load(str(torch_model("srnet", 11))))
    plain = ir.serde.deserialize_model(onnx.load(str(torch_model("skunit", 11))))
    assert DecomposeDepthToSpace().needed_for_downgrade(d2s, 9)
    assert not DecomposeDepthToSpace().needed_for_downgrade(d2s, 11)
    assert not DecomposeDepthToSpace().needed_for_downgrade(plain, 9)


def typed_form(dtype, *, in_function=False):
    """Cast -> the DCR Reshape / Transpose / Reshape -> Cast back, in the main graph or a function."""
    n, c, h, w, b = 1, 8, 3, 3, 2
    nodes = [
        helper.make_node("Cast", ["x"], ["xc"], to=dtype, name="cast_in"),
        helper.make_node("Reshape", ["xc", "s1"], ["r"], name="r1"),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 3, 4, 1, 5, 2], name="t"),
        helper.make_node("Reshape", ["t", "s2"], ["yc"], name="r2"),
        helper.make_node("Cast", ["yc"], ["y"], to=onnx.TensorProto.FLOAT, name="cast_out"),
    ]
    shapes = {"s1": [n, b, b, c // 4, h, w], "s2": [n, c // 4, h * b, w * b]}
    out = [n, c // 4, h * b, w * b]
    if not in_function:
        inits = [(name, np.array(v, np.int64)) for name, v in shapes.items()]
        return make_model(nodes, [("x", [n, c, h, w])], [("y", out)], initializers=inits)
    constants = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64), name))
        for name, v in shapes.items()
    ]
    # The Cast is outside: the function's input has no type of its own, it comes from the call.
    # (The value_info gives the call's argument the shape that function shape inference needs.)
    body = [*constants, *nodes[1:4]]
    function = helper.make_function("local", "shuffle", ["xc"], ["yc"], body, [helper.make_opsetid("", 13)])
    main = [nodes[0], helper.make_node("shuffle", ["xc"], ["yc"], domain="local", name="call"), nodes[4]]
    return make_model(
        main,
        [("x", [n, c, h, w])],
        [("y", out)],
        functions=[function],
        extra_opsets=[helper.make_opsetid("local", 1)],
        value_info=[helper.make_tensor_value_info("xc", dtype, [n, c, h, w])],
    )


@pytest.mark.parametrize("in_function", [False, True])
def test_fuse_leaves_integer_tensors_alone(in_function):
    """Regression (fuzz seed 17): an int64 pixel shuffle fused into a DepthToSpace that onnxruntime
    cannot load ("Could not find an implementation for DepthToSpace(13)")."""
    model = typed_form(onnx.TensorProto.INT64, in_function=in_function)
    result = check_pass(FUSE, model, expect_changes=0, expect_skips=1)
    assert "element type is INT64" in result.record.skips[0]["reason"]


@pytest.mark.parametrize("in_function", [False, True])
def test_fuse_takes_double_tensors(in_function):
    result = check_pass(FUSE, typed_form(onnx.TensorProto.DOUBLE, in_function=in_function), expect_changes=1)
    graph = result.model.functions[("local", "shuffle", "")].graph if in_function else result.model.graph
    assert "DepthToSpace" in op_types(graph)


def chain_of_two(form):
    """Relu -> two patterns in a row: the second reads a value the first rewrite creates."""
    relu = helper.make_node("Relu", ["x"], ["x1"], name="relu")
    if form == "d2s":
        nodes = [
            relu,
            helper.make_node("DepthToSpace", ["x1"], ["a"], blocksize=2, mode="DCR", name="d1"),
            helper.make_node("DepthToSpace", ["a"], ["y"], blocksize=2, mode="CRD", name="d2"),
        ]
        return make_model(nodes, [("x", [1, 16, 2, 2])], [("y", [1, 1, 8, 8])])
    nodes, inits = [relu], []
    for i, (src, dst, c, h) in enumerate([("x1", "a", 16, 2), ("a", "y", 4, 4)]):
        nodes += [
            helper.make_node("Reshape", [src, f"s1_{i}"], [f"r{i}"], name=f"r1_{i}"),
            helper.make_node("Transpose", [f"r{i}"], [f"t{i}"], perm=[0, 3, 4, 1, 5, 2], name=f"t_{i}"),
            helper.make_node("Reshape", [f"t{i}", f"s2_{i}"], [dst], name=f"r2_{i}"),
        ]
        inits += [(f"s1_{i}", np.array([1, 2, 2, c // 4, h, h], np.int64)),
                  (f"s2_{i}", np.array([1, c // 4, h * 2, h * 2], np.int64))]
    return make_model(nodes, [("x", [1, 16, 2, 2])], [("y", [1, 1, 8, 8])], initializers=inits)


@pytest.mark.parametrize("name, form", [(DECOMPOSE, "d2s"), (FUSE, "6d")])
def test_a_chain_is_rewritten_in_one_run(name, form):
    """Regression (fuzz, fuse-depth-to-space seeds): shape inference ran before the first rewrite,
    so the second pattern's input (the first one's new output) had no shape, was refused, and
    a second run changed it: the pass was not idempotent."""
    check_pass(name, chain_of_two(form), expect_changes=2)


def test_a_shape_inference_error_is_the_reason_given_not_swallowed():
    """The Skip says why the shape is unknown: the MatMul before the DepthToSpace cannot be inferred."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["r"], name="matmul"),
        helper.make_node("DepthToSpace", ["r"], ["y"], blocksize=2, name="d2s"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.ones((5, 4), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    from optimizer.manager import PassManager
    from optimizer.passapi import PassContext
    from optimizer.targets import load_target

    run = PassManager(["decompose-depth-to-space"], PassContext(load_target("onnxruntime"))).run(
        ir.serde.deserialize_model(model)
    )
    [skip] = run.records[0].skips
    assert skip["reason"].startswith("needs static C, H and W of the input")
    cause = "(onnx shape inference: (op_type:MatMul, node name: matmul): [ShapeInferenceError] Incompatible"
    assert cause in skip["reason"]
