"""The pass written in docs/pass-authoring.md works as the guide says."""

import re
from pathlib import Path

from helpers import make_model
from onnx import helper

from optimizer.registry import get_pass
from optimizer.testing import check_pass, registered

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "pass-authoring.md"


def test_the_guides_example_pass_registers_and_rewrites():
    with registered():  # the guide's pass is registered only for this test
        code = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)[0]
        exec(compile(code, str(GUIDE), "exec"), {})
        assert get_pass("fuse-double-neg").addresses == ("Neg",)
        model = make_model(
            [helper.make_node("Neg", ["x"], ["a"], name="n1"), helper.make_node("Neg", ["a"], ["y"], name="n2")],
            [("x", [3])],
            [("y", [3])],
        )
        result = check_pass("fuse-double-neg", model, expect_changes=1)
        assert [n.op_type for n in result.model.graph] == ["Identity"]
        shared = make_model(
            [helper.make_node("Neg", ["x"], ["a"], name="n1"), helper.make_node("Neg", ["a"], ["y"], name="n2")],
            [("x", [3])],
            [("y", [3]), ("a", [3])],
        )
        assert check_pass("fuse-double-neg", shared, expect_changes=0).record.skips[0]["reason"] == (
            "the inner Neg has another consumer"
        )
