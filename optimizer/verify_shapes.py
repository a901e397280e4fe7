"""Concrete input shapes to verify a model with dynamic dims, found by running the original.

Every dynamic dim not given (a symbol, or an unnamed dim) gets a size; dims with the same symbol
share one. Candidates, in order: every dim 1; the sizes the model's own constant shapes imply
(Reshape / Expand / ConstantOfShape shapes lined up with each input, by axis or from the right;
the size a constant Reshape leaves for the dynamic dims of its data; every dim one of those
sizes). The first candidate onnxruntime runs the original with, on seeded random inputs, is
taken; then a second set at other sizes (2, 3, ... where the first had 1; twice the first), so
that a rewrite is checked at two sizes of every dynamic dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.ort_session import native_reason
from optimizer.passapi import const_ints, iter_nodes
from optimizer.shape_inference import infer_value_shapes
from optimizer.shapes import check_shape
from optimizer.verify import check_input_memory, declared_inputs, input_specs, onnxruntime_runner, random_inputs

MAX_TRIES = 12  # onnxruntime runs of the original per shape set
MAX_ELEMENTS = 1 << 24  # a candidate whose inputs hold more elements than this is not tried
# Ops whose constant input (at this index) is a shape or repeat counts the inputs may have to fit.
_SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0, "Tile": 1}

Key = str | tuple[str, int]  # a symbol, or (input, axis) for an unnamed dim
Sizes = dict[Key, int]


@dataclass
class _Dim:
    """A dynamic dim to size: where it first appears."""

    key: Key
    input: str
    axis: int

    def describe(self) -> str:
        where = f"input '{self.input}', axis {self.axis}"
        return f"'{self.key}' ({where})" if isinstance(self.key, str) else f"an unnamed dim ({where})"


def verification_shapes(model: ir.Model, given: dict[str, list[int]], seed: int = 0) -> list[dict[str, list[int]]]:
    """Input shapes to verify ``model`` with: one set for a static model (or when ``given``
    covers every dynamic dim), else two sets where the model runs at two sizes (one when only
    one runs). Each set maps every input to concrete dims.

    Raises :class:`UserError` naming the dynamic dims when no candidate runs, and before running
    anything when even the smallest inputs would not fit in memory.
    """
    templates, dims = _templates(model, given)
    check_input_memory(input_specs(model, _shapes(templates, dict.fromkeys(dims, 1))))  # the smallest candidate
    if not dims:
        return [_shapes(templates, {})]
    tried: list[Sizes] = []
    errors: list[str] = []
    try:
        with onnxruntime_runner(model) as run:
            first = _first_that_runs(_candidates(model, templates, dims), templates, model, run, seed, tried, errors)
            second = first and _first_that_runs(_resized(first), templates, model, run, seed, [first], [])
    except UserError:
        raise
    except Exception as exc:  # the session itself: no input shape can help
        raise UserError(f"onnxruntime cannot load the model: {native_reason(exc)}") from None
    if first is None:
        hint = ";".join(
            f"{name}:{','.join(_placeholder(dim) for dim in template)}"
            for name, template in templates.items()
            if not all(isinstance(dim, int) for dim in template)
        )
        raise UserError(
            "cannot find input shapes the model runs with for "
            + ", ".join(dim.describe() for dim in dims.values())
            + f"; give their sizes with --verify-shape '{hint}' (tried {len(tried)} candidates; "
            + f"with every dim 1: {errors[0] if errors else 'too large'})"
        )
    return [_shapes(templates, first)] + ([_shapes(templates, second)] if second else [])


def _templates(model: ir.Model, given: dict[str, list[int]]) -> tuple[dict[str, list[Any]], dict[Key, _Dim]]:
    """Each input's dims (ints, or the key of a dynamic dim) and the dynamic dims to size."""
    specs = declared_inputs(model)
    names = [spec.name for spec in specs]
    for name in given:
        if name not in names:
            raise UserError(f"--verify-shape names '{name}', which is not an input (inputs: {', '.join(names)})")
    bound: dict[str, int] = {}  # symbols the given shapes pin
    for spec in specs:
        if spec.name in given:
            check_shape(spec.name, spec.shape, given[spec.name], "--verify-shape")
            for declared, size in zip(spec.shape or [], given[spec.name], strict=True):
                if isinstance(declared, str):
                    bound.setdefault(declared, size)
    templates: dict[str, list[Any]] = {}
    dims: dict[Key, _Dim] = {}
    for spec in specs:
        if spec.name in given:
            templates[spec.name] = list(given[spec.name])
            continue
        if spec.shape is None:
            raise UserError(f"input '{spec.name}' has no shape; give it with --verify-shape {spec.name}:...")
        template: list[Any] = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) or (isinstance(dim, str) and dim in bound):
                template.append(dim if isinstance(dim, int) else bound[dim])
                continue
            key: Key = dim if isinstance(dim, str) else (spec.name, axis)
            dims.setdefault(key, _Dim(key, spec.name, axis))
            template.append(key)
        templates[spec.name] = template
    return templates, dims


def _shapes(templates: dict[str, list[Any]], sizes: Sizes) -> dict[str, list[int]]:
    return {name: [d if isinstance(d, int) else sizes[d] for d in dims] for name, dims in templates.items()}


def _placeholder(dim: Any) -> str:
    if isinstance(dim, int):
        return str(dim)
    return f"<{dim}>" if isinstance(dim, str) else "<?>"


def _first_that_runs(
    candidates: Iterator[Sizes],
    templates: dict[str, list[Any]],
    model: ir.Model,
    run: Callable[[dict[str, Any]], dict[str, Any]],
    seed: int,
    tried: list[Sizes],
    errors: list[str],
) -> Sizes | None:
    """The first new candidate (at most :data:`MAX_TRIES`) the model runs with; ``tried`` grows."""
    attempts = 0
    for sizes in candidates:
        if attempts == MAX_TRIES:
            break
        if sizes in tried:
            continue
        tried.append(sizes)
        shapes = _shapes(templates, sizes)
        if sum(math.prod(dims) for dims in shapes.values()) > MAX_ELEMENTS:
            continue
        attempts += 1
        feeds = random_inputs(input_specs(model, shapes), seed)
        try:
            run(feeds)
        except Exception as exc:
            errors.append(native_reason(exc))
            continue
        return sizes
    return None


def _candidates(model: ir.Model, templates: dict[str, list[Any]], dims: dict[Key, _Dim]) -> Iterator[Sizes]:
    """Every dim 1, then sizes from the model's constant shapes (computed only when needed)."""
    ones = dict.fromkeys(dims, 1)
    yield ones
    shapes = _constant_shapes(model)
    for op_type, shape in shapes:
        if op_type == "Tile":
            continue
        for template in templates.values():
            aligned = _aligned(template, shape)
            if aligned:
                yield {**ones, **aligned}
    residuals = list(_reshape_residuals(model, templates))
    for keys, residual in residuals:
        root = math.isqrt(residual)
        if len(keys) >= 2 and root * root == residual:  # a square, as of height and width
            yield {**ones, keys[-2]: root, keys[-1]: root}
        yield {**ones, keys[-1]: residual}
    sizes = {size for _, shape in shapes for size in shape} | {residual for _, residual in residuals}
    for size in sorted(size for size in sizes if size > 1):
        yield dict.fromkeys(dims, size)


def _resized(first: Sizes) -> Iterator[Sizes]:
    """Other sizes for a second set: 2, 3, ... where the first had 1; all 2 there; all doubled."""
    ones = [key for key, size in first.items() if size == 1]
    yield {**first, **{key: 2 + index for index, key in enumerate(ones)}}
    yield {**first, **dict.fromkeys(ones, 2)}
    yield {key: 2 * size for key, size in first.items()}


def _aligned(template: list[Any], shape: list[int]) -> Sizes:
    """Sizes for the dynamic dims of ``template`` from ``shape`` lined up by axis, else from the right."""
    offset = len(shape) - len(template)
    sizes: Sizes = {}
    for axis, dim in enumerate(template):
        index = axis + offset
        if not isinstance(dim, int) and 0 <= index < len(shape) and shape[index] > 0:
            sizes.setdefault(dim, shape[index])
    return sizes


def _constant_shapes(model: ir.Model) -> list[tuple[str, list[int]]]:
    """The constant shape (or repeats) inputs of Reshape, Expand, ConstantOfShape and Tile nodes."""
    found = []
    for node in iter_nodes(model):
        index = _SHAPE_INPUTS.get(node.op_type)
        if node.domain == "" and index is not None and index < len(node.inputs):
            values = const_ints(node.inputs[index])
            if values is not None:
                found.append((node.op_type, values))
    return found


def _reshape_residuals(model: ir.Model, templates: dict[str, list[Any]]) -> Iterator[tuple[list[Key], int]]:
    """For each constant Reshape of data whose dims are static or input dims: the size its dynamic
    dims must multiply to (or to a multiple of, with a -1), with those past the first (else all)."""
    keys = {dim for template in templates.values() for dim in template if isinstance(dim, str)}
    shapes = infer_value_shapes(model)
    for node in iter_nodes(model):
        if node.op_type != "Reshape" or node.domain != "" or len(node.inputs) < 2:
            continue
        target = const_ints(node.inputs[1])
        data = shapes.get(node.inputs[0]) if node.inputs[0] is not None else None
        if target is None or data is None or 0 in target:
            continue
        symbols = [dim for dim in data if not isinstance(dim, int)]
        if not symbols or not all(symbol in keys for symbol in symbols):
            continue
        trailing = [dim for dim in data[1:] if not isinstance(dim, int)]  # past a leading batch dim
        needed = math.prod(size for size in target if size > 0)
        static = math.prod(dim for dim in data if isinstance(dim, int))
        if -1 in target:
            yield trailing or symbols, needed // math.gcd(needed, static)
        elif static and needed % static == 0:
            yield trailing or symbols, needed // static
