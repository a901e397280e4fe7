"""The authoring kit: build a model around a pattern, nest it in each scope, and check a pass in one call.

    from optimizer.testing import check_pass, pattern_model
    model = pattern_model(lambda op, x: op.Neg(op.Neg(x)), {"x": [3]}, opset=13)
    check_pass(MyPass, model, expect_changes=1)
"""

from optimizer.registry import registered
from optimizer.testing.builder import OpBuilder, pattern_model
from optimizer.testing.check import ANY, PassCheck, check_pass
from optimizer.testing.nesting import SCOPES, nest

__all__ = ["ANY", "SCOPES", "OpBuilder", "PassCheck", "check_pass", "nest", "pattern_model", "registered"]
