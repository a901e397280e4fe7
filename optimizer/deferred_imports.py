"""Defer modules the command line's verbs import but rarely use, until their first attribute is read.

- ``sympy`` (0.45 s): onnx-ir imports it at module level, for symbolic dims, and uses it only
  when one is computed with (``SymbolicDim("N") + 1``); ``onnx_ir._symbolic_shapes`` reads
  ``sympy.Max`` and its kin at import time, so it is deferred too.
- ``onnx.reference.ops`` (0.25 s, every operator of onnx's reference implementation):
  onnxscript's constant folding imports it at module level, and loads an operator from it only
  when it folds a node onnxruntime cannot.

A deferred module is imported as a stand-in that holds its name only; the first attribute
read from it imports the real module (put in ``sys.modules`` and on its parent as an import
does) and is answered from it. ``importlib.util.LazyLoader`` cannot do this: an import statement
reads ``__spec__``, which would load the module at once.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

DEFERRED = frozenset({"sympy", "onnx_ir._symbolic_shapes", "onnx.reference.ops"})


class _StandIn(types.ModuleType):
    """A deferred module: once its import is done, any attribute the import did not set imports
    the real module and is read from it (while the import runs, such attributes are missing)."""

    def __getattr__(self, attr: str):
        if not self.__dict__.get("_deferred_ready"):
            raise AttributeError(attr)
        name = self.__spec__.name
        _FINDER.released.add(name)
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attr)


class _DeferringFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds each deferred module, until it is released, as a stand-in with a plain spec (no
    ``__path__``: importing a submodule of a deferred package reads it, which releases it)."""

    def __init__(self) -> None:
        self.released: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if name not in DEFERRED or name in self.released:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module) -> None:
        """Nothing runs until an attribute is read."""
        module.__dict__["_deferred_ready"] = True


_FINDER = _DeferringFinder()


def defer_imports() -> None:
    """Defer the DEFERRED modules not yet imported (once per process)."""
    if _FINDER in sys.meta_path:
        return
    _FINDER.released.update(name for name in DEFERRED if name in sys.modules)
    sys.meta_path.insert(0, _FINDER)
