"""``simplify``: fold constants and shape subgraphs with onnxsim, onnxscript's optimizer and
onnx-opt's own folds, everywhere: the main graph, If / Loop / Scan bodies and functions.

Three simplifiers run in turn, each on the smallest result so far, until each has seen the
current model without making it smaller:

1. onnxsim (the main graph's constant and shape subgraphs) on a copy whose IR version is
   lowered to what onnxsim reads (never raised in the written model); its failures, and what
   onnxsim and onnxruntime print to stdout / stderr meanwhile, are kept out of the terminal and
   reported in the note.
2. onnxscript's optimizer (``optimize_ir`` with its default rewrite rules, functions kept):
   folds inside bodies and functions, ``If`` on constant conditions, dead branches.
3. onnx-opt's folds, which neither does (dims from onnx shape inference; inside a function,
   the dims every call site agrees on):
   a. a read of a static dim (``Gather`` / ``Slice`` of ``Shape(x)`` where those dims of ``x``
      are numbers, though others are symbolic) becomes a constant;
   b. common subexpressions are merged across scopes: a node in a body that repeats one of an
      enclosing scope defined before the body's node uses the outer one (never speculative: the
      outer value is computed anyway);
   c. ``Unsqueeze(Squeeze(x, a), a)`` and ``Squeeze(Unsqueeze(x, a), a)`` become ``x`` (the
      first only differs where the Squeeze would have failed at run time);
   d. a Concat of short 1-D pieces followed by ops that only move its elements (torch's
      export of ``F.pad`` with computed pads) becomes one Concat, or one Gather;
   e. outputs of an ``If`` that nothing uses leave both branches, so their nodes die;
   f. dead nodes go, in bodies and functions too.
   Nothing here swaps an If's branches or renames an If, so each If still matches its original
   when verification forces both sides.

A result with fewer nodes (every subgraph counted) is checked and kept: graph inputs and
outputs unchanged (names, types, shapes); functions still called kept; no empty optional input
dropped; opset imports, IR version and metadata kept; valid for the onnx checker and
onnxruntime wherever the original was. The turns stop at a fixed point, so a second run changes
nothing. The note names the simplifiers that made the model smaller. Input shapes are never
changed here (``--input-shape`` is written into the model before the passes). Large weights no
fold needs stay out of onnxsim's copy.

Option ``onnxsim`` (``--set simplify.onnxsim=false``) leaves onnxsim out: on a large model it is
the slow, memory-hungry stage, and the other two still fold.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx_ir as ir

from optimizer.passapi import Change, Pass, PassContext, PassResult, SkipPass, iter_nodes, node_label, register_pass
from passes.simplify.folds import run_folds
from passes.simplify.simplifiers import (
    Reference,
    SimplifierError,
    count_all_nodes,
    run_onnxscript,
    run_onnxsim,
    silenced_output,
)

# Turns of all the simplifiers before giving up on a fixed point.
MAX_ROUNDS = 6


ONNX_OPT_FOLDS = "onnx-opt folds"


@register_pass
class Simplify(Pass):
    name = "simplify"
    summary = "Fold constants, shape subgraphs and constant If nodes everywhere (onnxsim, onnxscript, onnx-opt folds)"
    addresses = ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Constant", "Identity", "If")

    @dataclass(frozen=True)
    class Options:
        onnxsim: bool = field(
            default=True, metadata={"help": "run onnxsim (false: skip it where it is slow or runs out of memory)"}
        )

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Run the simplifiers in turn to a fixed point; report the nodes removed and, in the note,
        which simplifiers ran and the node counts, every subgraph counted."""
        before = count_all_nodes(model)
        with silenced_output():
            outcome = simplify_to_fixed_point(model, Reference(model), ctx, onnxsim=self.options.onnxsim)
        current = outcome.model
        failed = [f"{name} failed: {reason}" for name, reason in outcome.failures.items() if name not in outcome.worked]
        why = f" ({'; '.join(failed)})" if failed else ""
        if current is model:
            how = " and ".join(outcome.worked) + " found nothing to fold"
            return PassResult(model, notes=[f"{how}{why}: {before} nodes, every subgraph counted"])
        how = ", then ".join(outcome.improved) + why
        kept = Counter(_key(node) for node in iter_nodes(current))
        removed = []
        for node in iter_nodes(model):
            if kept[_key(node)]:
                kept[_key(node)] -= 1
            else:
                removed.append(node_label(node))
        changes = [Change("folded or removed", (label,)) for label in removed] or [Change("rewrote nodes")]
        after = count_all_nodes(current)
        return PassResult(current, changes, notes=[f"{how}: {before} -> {after} nodes, every subgraph counted"])


@dataclass
class Outcome:
    """The smallest checked model, the simplifiers that made it smaller (in order, each once),
    those that ran without failing, and why the others failed."""

    model: ir.Model
    improved: list[str] = field(default_factory=list)
    worked: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def stages(ctx: PassContext, *, onnxsim: bool = True) -> tuple[tuple[str, Callable[[ir.Model], ir.Model]], ...]:
    """The simplifiers, in order, each with the name (and version) reported; onnxsim only when
    ``onnxsim``."""
    import onnxscript
    import onnxsim as onnxsim_package

    return (
        *([(f"onnxsim {onnxsim_package.__version__}", run_onnxsim)] if onnxsim else []),
        (f"onnxscript optimizer {onnxscript.__version__}", run_onnxscript),
        (ONNX_OPT_FOLDS, functools.partial(run_folds, ctx=ctx)),
    )


# onnxsim runs its folds and optimisations to a fixed point itself: on its own result it finds nothing.
FIXED_POINT_SIMPLIFIERS = ("onnxsim ",)


def simplify_to_fixed_point(model: ir.Model, reference: Reference, ctx: PassContext, *, onnxsim: bool = True
                            ) -> Outcome:
    """onnxsim (when ``onnxsim``), onnxscript's optimizer and onnx-opt's folds in turn, each on the
    smallest checked result so far, until each has seen the current model without making it
    smaller (none runs twice on the same model), or MAX_ROUNDS turns of all of them. A result is
    checked only when it is smaller, since only then is it kept.

    Raises :class:`SkipPass` when every simplifier fails.
    """
    outcome = Outcome(model)
    simplifiers = stages(ctx, onnxsim=onnxsim)
    idle = 0  # simplifiers in a row that left the current model as small as it was
    for name, simplifier in itertools.islice(itertools.cycle(simplifiers), MAX_ROUNDS * len(simplifiers)):
        if idle == len(simplifiers):
            break
        try:
            candidate = simplifier(outcome.model)
            smaller = count_all_nodes(candidate) < count_all_nodes(outcome.model)
            if smaller:
                reference.check(candidate, name)
        except SimplifierError as exc:
            outcome.failures[name] = str(exc)
            idle += 1
            continue
        if name not in outcome.worked:
            outcome.worked.append(name)
        if not smaller:
            idle += 1
            continue
        outcome.model = candidate  # the others must see it; its maker too, unless it stops at a fixed point
        idle = 1 if name.startswith(FIXED_POINT_SIMPLIFIERS) else 0
        if name not in outcome.improved:
            outcome.improved.append(name)
    if not outcome.worked:
        raise SkipPass("; ".join(f"{name} failed: {reason}" for name, reason in outcome.failures.items()))
    return outcome


def _key(node: ir.Node) -> tuple[str, str]:
    return (node.name or "", node.op_type)
