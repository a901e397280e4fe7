"""The deferred modules of the command line's process load on first use, whatever the first use is."""

import subprocess
import sys

import pytest

FIRST_USES = {
    "a submodule": "import sympy.core.numbers\nimport sympy\nprint(sympy.Integer(2) + 1)",
    "a from-import": "from sympy import Symbol\nprint(Symbol('x') + 1)",
    "an attribute": "import sympy\nprint(sympy.Symbol('x') + 1)",
    "onnx's evaluator": (
        "import numpy as np\nfrom onnx import helper\nfrom onnx.reference import ReferenceEvaluator\n"
        "g = helper.make_graph([helper.make_node('Celu', ['x'], ['y'])], 'g', "
        "[helper.make_tensor_value_info('x', 1, [1])], [helper.make_tensor_value_info('y', 1, [1])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)], ir_version=8)\n"
        "print(ReferenceEvaluator(m).run(None, {'x': np.array([2.0], np.float32)})[0][0])"
    ),
}


# what each prints, and what sys.modules then holds for sympy (onnx's evaluator does not need it)
EXPECTED = {"a submodule": ("3", "module"), "a from-import": ("x + 1", "module"),
            "an attribute": ("x + 1", "module"), "onnx's evaluator": ("2.0", "_StandIn")}


def printed(code: str) -> list[str]:
    """The lines ``code`` prints in a fresh interpreter that defers the modules first."""
    probe = "import sys\nfrom optimizer.deferred_imports import defer_imports\n" + code
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("use", FIRST_USES)
def test_a_deferred_module_loads_on_its_first_use(use):
    lines = printed(
        "defer_imports()\nimport onnx_ir\nassert 'sympy.core' not in sys.modules\n"
        + FIRST_USES[use] + "\nprint(type(sys.modules['sympy']).__name__)"
    )
    assert tuple(lines[-2:]) == EXPECTED[use], lines


def test_modules_imported_before_are_left_as_they_are():
    lines = printed(
        "import sympy\ndefer_imports()\nimport onnx_ir\n"
        "print(type(sys.modules['sympy']).__name__, type(sys.modules['onnx_ir._symbolic_shapes']).__name__)"
    )
    assert lines[-1].split() == ["module", "_StandIn"]  # sympy was in; onnx-ir's module still waits
