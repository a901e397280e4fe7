"""Input shapes in ATC's syntax: ``name:1,3,224,224;other:1,10``."""

from __future__ import annotations

from optimizer.errors import UserError


def parse_input_shapes(text: str | None) -> dict[str, list[int]]:
    """Parse ATC's ``--input_shape`` syntax into ``{name: [dims]}``.

    Names may themselves hold ``:`` (``input:0``); the dims follow the last one.
    Dims must be non-negative integers: ranges (``1~8``) and ``-1`` are refused
    because a verification run needs concrete shapes. An empty entry (``a:1;;b:2``, a lone
    ``;``) is refused: it is a typo, not a shape.
    """
    if text is None or not text.strip():
        return {}
    shapes: dict[str, list[int]] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            raise UserError(f"--input-shape: empty entry in '{text}'; give 'name:d0,d1,...' entries separated by ';'")
        name, sep, dims_text = item.rpartition(":")
        name = name.strip()
        if not sep or not name:
            raise UserError(f"--input-shape: '{item}' is not 'name:d0,d1,...' (ATC syntax, e.g. 'image:1,3,224,224')")
        if name in shapes:
            raise UserError(f"--input-shape: input '{name}' is given twice")
        dims: list[int] = []
        for dim in dims_text.split(",") if dims_text.strip() else []:
            dim = dim.strip()
            if not dim.isdigit():
                raise UserError(f"--input-shape: dimension '{dim}' of input '{name}' is not a non-negative integer")
            dims.append(int(dim))
        shapes[name] = dims
    return shapes


def format_input_shapes(shapes: dict[str, list[int]]) -> str:
    """Format ``{name: [dims]}`` in ATC's syntax (the inverse of :func:`parse_input_shapes`)."""
    return ";".join(f"{name}:{','.join(str(d) for d in dims)}" for name, dims in shapes.items())


def fix_input_shapes(model, shapes: dict[str, list[int]]) -> list[str]:
    """Write ``shapes`` into the graph inputs of ``model`` (an onnx-ir model), as ATC fixes them.

    Returns one line per input whose shape changed. An unknown input name, a rank that
    differs, or a dim that contradicts a static one is a :class:`UserError`.
    """
    import onnx_ir as ir

    inputs = {value.name: value for value in model.graph.inputs if not value.is_initializer()}
    changed = []
    for name, dims in shapes.items():
        value = inputs.get(name)
        if value is None:
            raise UserError(f"--input-shape names '{name}', which is not an input (inputs: {', '.join(inputs)})")
        old = value.shape
        check_shape(name, None if old is None else list(old), dims, "--input-shape")
        if old is None or list(old) != list(dims):
            value.shape = ir.Shape(dims)
            changed.append(f"{name}: {_dims_text(old)} -> {dims}")
    return changed


def check_shape(name: str, declared: list | None, dims: list[int], option: str) -> None:
    """Refuse ``dims`` given with ``option`` for input ``name`` when they contradict its declared
    shape (``None`` when the model gives none): another rank, or another size on a static axis."""
    if declared is None:
        return
    if len(declared) != len(dims):
        raise UserError(f"{option} gives input '{name}' rank {len(dims)}; the model has rank {len(declared)}")
    for axis, (have, want) in enumerate(zip(declared, dims, strict=True)):
        if isinstance(have, int) and have != want:
            raise UserError(f"{option} gives input '{name}' dim {want} on axis {axis}; the model fixes {have}")


def _dims_text(shape) -> str:
    return "unknown" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"
