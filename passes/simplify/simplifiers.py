"""The simplifiers ``simplify`` wraps (onnxsim, onnxscript's optimizer) and what every result is
checked against: inputs, outputs, functions, empty optional inputs, model fields, validity."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir

from optimizer.passapi import iter_nodes, node_label
from optimizer.skeleton import skeleton_proto

ONNX_DOMAINS = frozenset({"", "ai.onnx"})

# onnxsim's own onnx checker accepts IR versions up to this one.
ONNXSIM_IR_VERSION = 10


# Data types added after IR version 10 (FLOAT4E2M1 and later).
_NEWER_DTYPES = frozenset(dtype for dtype in ir.DataType if dtype.value > ir.DataType.INT4.value)


# Initializers from this size on go to onnxsim as typed inputs unless a fold needs their data.
HELD_WEIGHT_BYTES = 1 << 20


# ConstantOfShape is folded (onnxscript keeps it by default) when its output has at most this many elements.
FOLD_CONSTANT_OF_SHAPE_ELEMENTS = 4096


# Ops whose weights onnxsim's optimizer rewrites (fuse_bn_into_conv), so it needs their data.
_FUSED_WITH_BATCH_NORM = frozenset({"Conv", "ConvTranspose"})


class SimplifierError(Exception):
    """A simplifier raised, or returned a model that lost or broke something."""


@contextlib.contextmanager
def silenced_output() -> Iterator[None]:
    """Send whatever is written to file descriptors 1 and 2 (onnxsim's and onnxruntime's C++
    messages included) to the null device while inside; restored on every exit path."""
    saved: list[tuple[int, int]] = []
    try:
        _flush()
        sink = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        sink = None
    try:
        if sink is not None:
            for fd in (1, 2):
                try:
                    copy = os.dup(fd)
                except OSError:
                    continue
                saved.append((fd, copy))
                os.dup2(sink, fd)
        yield
    finally:
        _flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        if sink is not None:
            os.close(sink)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


def run_onnxsim(model: ir.Model) -> ir.Model:
    """onnxsim on a serialised copy (IR version lowered if need be, large weights held back),
    with the model-level fields, functions and held weights put back."""
    import onnxruntime
    import onnxsim

    onnxruntime.set_default_logger_severity(3)  # onnxsim's folding errors come back as the reason
    newer = newer_ir_feature(model)
    if model.ir_version > ONNXSIM_IR_VERSION and newer:
        raise SimplifierError(f"it reads IR version {ONNXSIM_IR_VERSION}; the model needs {model.ir_version} ({newer})")
    held = held_weights(model)
    copy = model.clone()
    move_to_inputs(copy.graph, held)
    ir.external_data.load_to_model(copy)
    proto = ir.serde.serialize_model(copy)
    del copy
    proto.ir_version = min(proto.ir_version, ONNXSIM_IR_VERSION)
    try:
        simplified, _ = onnxsim.simplify(proto, perform_optimization=False)
    except Exception as exc:  # onnxsim raises anything from C++ and onnxruntime
        raise SimplifierError(one_line(exc)) from None
    del proto
    result = ir.serde.deserialize_model(simplified)
    del simplified
    restore_weights(result.graph, {name: model.graph.initializers[name] for name in held})
    restore_model_fields(result, model)
    return result


def run_onnxscript(model: ir.Model) -> ir.Model:
    """onnxscript's optimizer on a clone, functions kept, after onnx shape inference (so values
    in If / Loop bodies have types), folding small ConstantOfShape nodes too."""
    from onnxscript.optimizer import optimize_ir

    result = model.clone()
    try:
        with quiet("onnxscript", "onnx_ir"), _rules_for(result):
            _infer_shapes(result)
            # the whole model was inferred just above: no inference per node as well (a quarter of its time)
            optimize_ir(result, should_fold=_fold_small_constant_of_shape, inline=False, onnx_shape_inference=False)
    except Exception as exc:  # a maintained library, but any op may trip it
        raise SimplifierError(one_line(exc)) from None
    restore_model_fields(result, model)
    return result


@contextlib.contextmanager
def _rules_for(model: ir.Model) -> Iterator[None]:
    """Of onnxscript's default rewrite rules, only those that can match in ``model``.

    Left out are the rules whose pattern has several output nodes (SlicesSplit in 0.7): its
    matcher tries every node of the graph for each candidate, which took 81 s of 85 on a
    10,000-node graph; they rewrite, they do not fold. So are the rules whose pattern has a node
    of an operator the model does not have: onnxscript tries every rule on every node, which
    was most of its time on a CNN. A rule the model gets an operator for on the way is in the next run
    (``simplify`` runs onnxscript again on a model it made smaller). ``optimize_ir`` reads the
    rules from the module when it runs, so they are swapped there for the call.
    """
    from onnxscript import rewriter

    rules = getattr(rewriter, "_DEFAULT_REWRITE_RULES", None)
    if rules is None:  # another onnxscript: its optimizer as it is
        yield
        return
    present = {(_domain(node.domain), node.op_type) for node in iter_nodes(model)}
    rewriter._DEFAULT_REWRITE_RULES = tuple(rule for rule in rules if _may_match(rule, present))
    try:
        yield
    finally:
        rewriter._DEFAULT_REWRITE_RULES = rules


def _may_match(rule: object, present: set[tuple[str, str]]) -> bool:
    """Whether an onnxscript rewrite rule's pattern ends in one node and every node it must
    match (those of alternative inputs aside) is of an operator in ``present`` (True when it
    cannot tell)."""
    pattern = getattr(rule, "_target_pattern", None)
    if getattr(pattern, "has_single_output_node", True) is False:
        return False
    try:
        identifiers = [pattern.node(index).op_identifier() for index in range(pattern.num_nodes())]
    except Exception:  # another onnxscript's internals: keep the rule
        return True
    return all(found is None or (_domain(found[0]), found[1]) in present for found in identifiers)


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _infer_shapes(model: ir.Model) -> None:
    """onnx shape inference on ``model``, unless every value it could type already has its type
    and a static shape (as onnxsim leaves a static model): then it has nothing to add."""
    from onnx_ir.passes.common import ShapeInferencePass

    if not all(_typed_static(value) for graph in graphs_of(model) for value in graph_values(graph)):
        ShapeInferencePass(strict_mode=False)(model)


def _typed_static(value: ir.Value) -> bool:
    shape = value.shape
    return value.type is not None and shape is not None and shape.is_static()


def _fold_small_constant_of_shape(node: ir.Node) -> bool | None:
    if node.op_type != "ConstantOfShape" or node.domain not in ONNX_DOMAINS or not node.inputs:
        return None
    shape = node.inputs[0].const_value if node.inputs[0] is not None else None
    if shape is None:
        return None
    return int(np.prod(shape.numpy(), dtype=np.int64)) <= FOLD_CONSTANT_OF_SHAPE_ELEMENTS or None


class Reference:
    """What a simplified model must keep from the original, and whether the original was valid.

    The original's validity is read only when a result is invalid (a result the checker and
    onnxruntime accept passes whatever the original was), so the original must stay unchanged
    while its reference is in use: the simplifiers work on clones.
    """

    def __init__(self, model: ir.Model) -> None:
        self.inputs = _signature(model.graph.inputs, with_shapes=True)
        self.outputs = _signature(model.graph.outputs, with_shapes=True)
        self.functions = set(model.functions)
        self.empty_inputs = {
            _outputs_key(node): _empty_positions(node) for node in iter_nodes(model) if _empty_positions(node)
        }
        self._original = model
        self._original_valid: tuple[bool, bool] | None = None  # (checker accepts it, onnxruntime does)

    def original_valid(self) -> tuple[bool, bool]:
        """Whether the onnx checker, and whether onnxruntime, accept the original."""
        if self._original_valid is None:
            checker_problem, onnxruntime_problem = validity_problems(self._original)
            self._original_valid = (checker_problem is None, onnxruntime_problem is None)
        return self._original_valid

    def check(self, model: ir.Model, simplifier: str) -> None:
        """Raise :class:`SimplifierError` saying what ``model`` lost or broke."""
        if _signature(model.graph.inputs, with_shapes=True) != self.inputs:
            raise SimplifierError(f"{simplifier} changed the graph inputs")
        if _signature(model.graph.outputs, with_shapes=True) != self.outputs:
            raise SimplifierError(f"{simplifier} changed or lost graph outputs")
        lost = (_calls(model) & self.functions) - set(model.functions)
        missing = sorted(f"{domain}::{name}" for domain, name, _ in lost)
        if missing:
            raise SimplifierError(f"{simplifier} lost functions {', '.join(missing)}")
        for node in iter_nodes(model):
            expected = self.empty_inputs.get(_outputs_key(node))
            if expected and _empty_positions(node) != expected:
                where = f"{node.op_type} {node_label(node)!r}"
                raise SimplifierError(f"{simplifier} dropped an empty optional input of {where}")
        checker_problem, onnxruntime_problem = validity_problems(model)
        if not (checker_problem or onnxruntime_problem):
            return
        checker_ok, onnxruntime_ok = self.original_valid()
        problem = (checker_ok and checker_problem) or (onnxruntime_ok and onnxruntime_problem)
        if problem:
            raise SimplifierError(f"{simplifier} wrote an invalid model ({problem})")


def validity_problems(model: ir.Model) -> tuple[str | None, str | None]:
    """Why the onnx checker, and why an onnxruntime session, reject ``model`` (None when they
    accept it). They see its skeleton (:mod:`optimizer.skeleton`): weights as typed inputs,
    nothing large copied or read."""
    import onnxruntime as ort

    proto = skeleton_proto(model)
    problems = []
    try:
        onnx.checker.check_model(proto)
        problems.append(None)
    except Exception as exc:  # the checker raises several types
        problems.append(one_line(exc))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        problems.append(None)
    except Exception as exc:  # onnxruntime raises its own types
        problems.append(one_line(exc))
    return problems[0], problems[1]


def held_weights(model: ir.Model) -> list[str]:
    """Main-graph initializers of at least HELD_WEIGHT_BYTES that no fold can need: every user
    is in the main graph and has a non-constant input, and none is a BatchNormalization or a
    convolution feeding one (onnxsim fuses those weights)."""
    graph = model.graph
    held = []
    for name, value in graph.initializers.items():
        tensor = value.const_value
        if tensor is None or tensor.nbytes < HELD_WEIGHT_BYTES or value.is_graph_input() or value.is_graph_output():
            continue
        users = [use.node for use in value.uses()]
        if all(user.graph is graph and not _all_constant(user) and not _fused_with_batch_norm(user) for user in users):
            held.append(name)
    return held


def _all_constant(node: ir.Node) -> bool:
    return all(value is None or value.const_value is not None or _is_constant_output(value) for value in node.inputs)


def _is_constant_output(value: ir.Value) -> bool:
    producer = value.producer()
    return producer is not None and producer.op_type == "Constant"


def _fused_with_batch_norm(node: ir.Node) -> bool:
    if node.op_type == "BatchNormalization":
        return True
    return node.op_type in _FUSED_WITH_BATCH_NORM and any(
        use.node.op_type == "BatchNormalization" for output in node.outputs for use in output.uses()
    )


def move_to_inputs(graph: ir.Graph, names: list[str]) -> None:
    """Turn the named initializers of ``graph`` into typed graph inputs without data."""
    for name in names:
        value = graph.initializers[name]
        tensor = value.const_value
        value.dtype, value.shape = tensor.dtype, ir.Shape(tensor.shape)
        graph.inputs.append(value)
        graph.initializers.pop(name)
        value.const_value = None


def restore_weights(graph: ir.Graph, originals: dict[str, ir.Value]) -> None:
    """Turn the graph inputs that stood in for held weights back into initializers."""
    inputs = list(graph.inputs)
    graph.inputs.clear()
    for value in inputs:
        original = originals.get(value.name)
        if original is None:
            graph.inputs.append(value)
        else:
            value.const_value = original.const_value
            graph.register_initializer(value)


def restore_model_fields(result: ir.Model, original: ir.Model) -> None:
    """Give ``result`` the original's IR version, opset imports, metadata, graph output shapes
    (inference may have made a dynamic dim static, or renamed it) and the functions it still calls."""
    result.ir_version = original.ir_version
    originals = {value.name: value for value in original.graph.outputs}
    for value in result.graph.outputs:
        source = originals.get(value.name)
        if source is not None and source.dtype == value.dtype:
            value.shape = None if source.shape is None else source.shape.copy()
    for domain, version in original.opset_imports.items():
        result.opset_imports.setdefault(domain, version)
    for attribute in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(result, attribute, getattr(original, attribute))
    result.metadata_props.clear()
    result.metadata_props.update(original.metadata_props)
    missing = (_calls(result) & set(original.functions)) - set(result.functions)
    while missing:
        for key in sorted(missing):
            result.functions[key] = original.functions[key].clone()
        missing = (_calls(result) & set(original.functions)) - set(result.functions)


def newer_ir_feature(model: ir.Model) -> str | None:
    """What ``model`` uses that needs an IR version above 10, or None."""
    if model.device_configurations:
        return "multi-device configurations"
    for graph in graphs_of(model):
        for value in graph_values(graph):
            if value.dtype in _NEWER_DTYPES:
                return f"data type {value.dtype.name}"
    for node in iter_nodes(model):
        if node.device_configurations:
            return "multi-device configurations"
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.TENSOR and attr.value.dtype in _NEWER_DTYPES:
                return f"data type {attr.value.dtype.name}"
            if attr.type == ir.AttributeType.INT and attr.name in ("to", "dtype", "output_dtype") and (
                attr.value > ir.DataType.INT4.value
            ):
                return f"data type {ir.DataType(attr.value).name}"
    return None


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's whole message on one line, cut at ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def count_all_nodes(model: ir.Model) -> int:
    """Nodes of the model, every subgraph and function counted."""
    return sum(1 for _ in iter_nodes(model))


def graphs_of(model: ir.Model) -> Iterator[ir.Graph | ir.Function]:
    yield from model.graphs()
    for function in model.functions.values():
        yield function
        yield from function.graph.subgraphs()


def graph_values(graph: ir.Graph | ir.Function) -> Iterator[ir.Value]:
    yield from graph.inputs
    yield from graph.outputs
    if isinstance(graph, ir.Graph):
        yield from graph.initializers.values()
    for node in graph:
        yield from node.outputs


def _calls(model: ir.Model) -> set[tuple[str, str, str]]:
    """The (domain, op type, overload) of every node, functions included: what may call a function."""
    return {(node.domain, node.op_type, node.overload) for node in iter_nodes(model)}


def _signature(values, *, with_shapes: bool = False) -> list[tuple]:
    """Names and types (and shapes) of graph inputs or outputs."""
    return [(value.name, value.dtype, _dims(value.shape) if with_shapes else None) for value in values]


def _dims(shape: ir.Shape | None) -> tuple | None:
    return None if shape is None else tuple(dim if isinstance(dim, int) else str(dim) for dim in shape)


def _outputs_key(node: ir.Node) -> tuple:
    return (node.op_type, tuple(value.name for value in node.outputs))


def _empty_positions(node: ir.Node) -> tuple[int, ...]:
    """Positions of the empty optional inputs before the last given one (trailing ones may go)."""
    inputs = list(node.inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    return tuple(index for index, value in enumerate(inputs) if value is None)


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Silence the named loggers' warnings (folding failures they log are expected)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
