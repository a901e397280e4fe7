"""Verify a rewritten model against the original: every output, at every input set, on both
sides of every If.

The inputs come from ``--inputs F.npz`` (any size a dynamic dim allows), or are seeded random
data at the shapes :func:`optimizer.verify_shapes.verification_shapes` chooses: the model's own
static shapes, ``--verify-shape``, or sizes derived for its dynamic dims (two sets, so a
rewrite is checked at two sizes of every dynamic dim). None of this changes the model.
Outputs are compared on each set; then :mod:`optimizer.branches` forces each side of every If
(on the first set the original runs it with), so a rewrite in a branch the inputs do not take
is checked too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from optimizer.branches import BranchChecker, BranchVerification
from optimizer.errors import UserError
from optimizer.ort_session import native_reason
from optimizer.verify import (
    MISSING,
    OutputCheck,
    compare_outputs,
    declared_inputs,
    input_specs,
    load_inputs,
    onnxruntime_runner,
    random_inputs,
)
from optimizer.verify_shapes import verification_shapes


@dataclass
class Verification:
    """The verdict over every output at every input set, and over both sides of every If.

    ``inputs`` holds the input shapes of each set (an output check's ``run`` indexes it);
    ``source`` says where the data came from, ``shapes`` how its shapes were chosen.
    """

    ok: bool
    outputs: list[OutputCheck]
    inputs: list[dict[str, list[int]]]
    source: str
    shapes: str
    branches: BranchVerification | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return {
            "ok": self.ok,
            "inputs": self.inputs,
            "source": self.source,
            "shapes": self.shapes,
            "outputs": [asdict(check) for check in self.outputs],
            "branches": None if self.branches is None else self.branches.to_dict(),
        }

    def failures(self) -> list[str]:
        """One line per output (at an input set) or If side that did not match."""
        lines = [describe_check(check, self.inputs) for check in self.outputs if not check.ok]
        if self.branches is not None:
            lines += [check.summary() for check in self.branches.failures()]
        return lines


@dataclass
class Feeds:
    """The input sets to verify with, where they came from and how their shapes were chosen."""

    sets: list[dict[str, Any]]
    source: str
    shapes: str


def choose_feeds(
    model: ir.Model, inputs: Path | None = None, verify_shapes: dict[str, list[int]] | None = None, seed: int = 0
) -> Feeds:
    """Inputs for ``model``: the arrays of ``inputs`` (an ``.npz``), else seeded random data at
    the shapes :func:`verification_shapes` chooses (``verify_shapes`` first)."""
    if inputs is not None:
        return Feeds([load_inputs(inputs, declared_inputs(model))], str(inputs), "from the file")
    given = dict(verify_shapes or {})
    sets = verification_shapes(model, given, seed)
    feeds = [random_inputs(input_specs(model, shapes), seed) for shapes in sets]
    return Feeds(feeds, f"random (seed {seed})", _how(model, given, len(sets)))


def _how(model: ir.Model, given: dict[str, list[int]], count: int) -> str:
    dynamic = [spec.name for spec in declared_inputs(model) if not _static(spec.shape)]
    if not dynamic:
        return "the model's static shapes"
    if all(name in given for name in dynamic):
        return "--verify-shape"
    where = "--verify-shape and " if given else ""
    sizes = "at two sizes" if count > 1 else "at the one size the model runs with"
    return f"{where}derived for the dynamic dims ({sizes}); the model keeps them dynamic"


def _static(shape: list[Any] | None) -> bool:
    return shape is not None and all(isinstance(dim, int) for dim in shape)


class Verifier:
    """Runs the original once per input set, then checks any candidate against it.

    ``reference`` is the original model (in memory, or its file, which onnxruntime then reads
    where it lies); ``original`` its in-memory form, for the forced branch runs; ``threads``
    the intra-op threads of the original's session (onnxruntime's default: one per core).
    """

    def __init__(
        self,
        original: ir.Model,
        feeds: Feeds,
        *,
        reference: ir.Model | Path | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        threads: int | None = None,
    ) -> None:
        self.feeds, self.rtol, self.atol = feeds, rtol, atol
        source = original if reference is None else reference
        try:
            with onnxruntime_runner(source, threads) as run:  # one session for every input set
                self.expected = [run(feed) for feed in feeds.sets]
        except Exception as exc:
            where = f"{reference}: " if isinstance(reference, Path) else ""
            raise UserError(f"{where}onnxruntime cannot run the input model: {native_reason(exc)}") from None
        self.branches = BranchChecker(original, feeds.sets, rtol=rtol, atol=atol)

    def check(self, model: ir.Model, saved: Path | None = None) -> Verification:
        """Compare ``model`` with the original on every input set and both sides of every If;
        ``saved``: ``model``'s file, when it has been written, which onnxruntime then reads."""
        outputs: list[OutputCheck] = []
        runs = self._runs(model if saved is None else saved)
        for run, (expected, (actual, refusal)) in enumerate(zip(self.expected, runs, strict=True)):
            for check in compare_outputs(expected, actual, self.rtol, self.atol):
                check.run = run
                if refusal and check.problem == MISSING:
                    check.problem = f"onnxruntime cannot run the optimised model: {refusal}"
                outputs.append(check)
        branches = self.branches.check(model) if self.branches.sites else None
        ok = all(check.ok for check in outputs) and (branches is None or branches.ok)
        shapes = [{name: list(np.shape(array)) for name, array in feed.items()} for feed in self.feeds.sets]
        return Verification(ok, outputs, shapes, self.feeds.source, self.feeds.shapes, branches)

    def _runs(self, model: ir.Model | Path) -> list[tuple[dict[str, Any], str | None]]:
        """``model``'s outputs on each input set, with why it did not run ({} and the reason)."""
        try:
            with onnxruntime_runner(model) as run:  # one session for every input set
                runs = []
                for feed in self.feeds.sets:
                    try:
                        runs.append((run(feed), None))
                    except Exception as exc:  # this input set does not run: its outputs fail
                        runs.append(({}, native_reason(exc)))
                return runs
        except Exception as exc:  # no session: every output of every set fails
            return [({}, native_reason(exc))] * len(self.feeds.sets)


def describe_check(check: OutputCheck, inputs: list[dict[str, list[int]]] | None = None) -> str:
    """``y (max abs diff 0.3, max rel diff 2)``, with the input shapes when there were several sets."""
    detail = check.problem or f"max abs diff {check.max_abs_diff:.3g}, max rel diff {check.max_rel_diff:.3g}"
    where = ""
    if inputs is not None and len(inputs) > 1:
        where = " at " + "; ".join(f"{name}:{','.join(map(str, dims))}" for name, dims in inputs[check.run].items())
    return f"{check.name}{where} ({detail})"
