"""Serialise a model without its weights: large tensors become external references to a marker.

Before a model goes through an onnx C++ tool that only needs its graph (the version converter,
shape inference), :meth:`Placeholders.swap_out` replaces every external tensor and every
large in-memory tensor (initializers and Constant values, in every graph and function) by an
:class:`onnx_ir.ExternalTensor` whose location names a slot of this object. Nothing is read or
copied. :meth:`Placeholders.swap_in` puts the very same tensor objects back, in the same model
or in the one deserialised from the tool's output (any of its graphs), by slot and never by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx_ir as ir

from optimizer.passapi import all_graphs

MARKER = "onnx-opt-placeholder"
# Tensors with more elements than this are swapped out. Smaller ones stay, so that shape
# inference can still read shape-like constants (and copying them costs nothing).
LARGE_ELEMENTS = 1024


class Placeholders:
    """The tensors swapped out of a model, by slot."""

    def __init__(self) -> None:
        self.tensors: list[ir.TensorProtocol] = []

    def swap_out(self, model: ir.Model) -> None:
        """Replace external and large tensors of ``model`` by placeholders (the model is changed)."""
        for graph in all_graphs(model):
            for value in graph.initializers.values():
                if _swappable(value.const_value):
                    value.const_value = self._placeholder(value.const_value)
            for node in _constants(graph):
                tensor = node.attributes.get_tensor("value")
                if _swappable(tensor):
                    node.attributes["value"] = ir.AttrTensor("value", self._placeholder(tensor))

    def swap_in(self, graphs: Iterable[ir.Graph]) -> None:
        """Put the original tensors back wherever ``graphs`` hold one of this object's placeholders."""
        for graph in graphs:
            for value in graph.initializers.values():
                original = self._original(value.const_value)
                if original is not None:
                    value.const_value = original
            for node in _constants(graph):
                original = self._original(node.attributes.get_tensor("value"))
                if original is not None:
                    node.attributes["value"] = ir.AttrTensor("value", original)

    def _placeholder(self, tensor: ir.TensorProtocol) -> ir.ExternalTensor:
        slot = len(self.tensors)
        self.tensors.append(tensor)
        return ir.ExternalTensor(
            f"{MARKER}/{slot}", 0, tensor.nbytes, tensor.dtype, shape=tensor.shape, name=tensor.name or f"t{slot}"
        )

    def _original(self, tensor: ir.TensorProtocol | None) -> ir.TensorProtocol | None:
        if not isinstance(tensor, ir.ExternalTensor):
            return None
        marker, _, slot = str(tensor.location).partition("/")
        if marker != MARKER or not slot.isdigit() or int(slot) >= len(self.tensors):
            return None
        return self.tensors[int(slot)]


def _swappable(tensor: ir.TensorProtocol | None) -> bool:
    if tensor is None:
        return False
    return isinstance(tensor, ir.ExternalTensor) or tensor.size > LARGE_ELEMENTS


def _constants(graph: ir.Graph) -> Iterator[ir.Node]:
    return (node for node in graph if node.op_type == "Constant" and node.domain == "" and "value" in node.attributes)
