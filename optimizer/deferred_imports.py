"""Defer sympy in the command line's process: onnx-ir imports it at module level, for symbolic dims.

sympy takes about 0.45 s to import and is used only when a symbolic dimension is computed with
(``SymbolicDim("N") + 1``), which onnx-opt's verbs rarely do. onnx-ir's ``_core`` imports it, and
``_symbolic_shapes`` reads ``sympy.Max`` and its kin at import time, so both are stood in for by a
module that imports the real one at its first attribute lookup. ``importlib.util.LazyLoader``
cannot do this: the import statement reads ``__spec__``, which would load the module at once.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

DEFERRED = ("sympy", "onnx_ir._symbolic_shapes")


class _StandIn(types.ModuleType):
    """Holds a module's spec; any other attribute imports the real module and is read from it."""

    def __getattr__(self, attr: str):
        name = self.__spec__.name
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        return getattr(real, attr)


def defer_sympy() -> None:
    """Stand in for sympy and for onnx-ir's module that reads it, unless either is already in."""
    if any(name in sys.modules for name in ("onnx_ir", *DEFERRED)):
        return
    specs = {"sympy": importlib.util.find_spec("sympy")}
    onnx_ir = importlib.util.find_spec("onnx_ir")  # a top-level spec is found without importing
    if onnx_ir is not None and onnx_ir.submodule_search_locations:
        locations = list(onnx_ir.submodule_search_locations)
        specs["onnx_ir._symbolic_shapes"] = importlib.machinery.PathFinder.find_spec(
            "onnx_ir._symbolic_shapes", locations
        )
    if not all(specs.values()):
        return
    for name, spec in specs.items():
        stand_in = _StandIn(name)
        stand_in.__spec__ = spec
        sys.modules[name] = stand_in
