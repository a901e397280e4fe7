"""Passes written as onnxscript rewrite rules: a pattern, a check and a rewrite.

    @register_pass
    class DropDoubleNeg(RulePass):
        name = "drop-double-neg"
        summary = "Neg(Neg(x)) is x"

        def pattern(self, op, x):
            return op.Neg(op.Neg(x))

        def rewrite(self, op, x):
            return op.Identity(x)

``pattern``, ``check`` and ``rewrite`` are those of onnxscript's ``RewriteRuleClassBase``: ``check``
gets the match context and the bindings, and refuses with ``MatchResult().fail(reason)``; during a
run ``self.model`` and ``self.ctx`` are the model and the :class:`~optimizer.passapi.PassContext`
(``self.ctx.dims_of(x, self.model)``, the target, the final opset). Or list several onnxscript rules
in ``rules``. The rules run on every graph of the model (main graph, If / Loop / Scan bodies at any
depth, model-local functions), one graph at a time: onnxscript's matcher refuses a computed value
of another graph, so a match never spans scopes (a pattern variable may bind a value of an
enclosing scope, which the rewrite may read). A rewrite is a Change; a refusal by ``check`` or
``rewrite`` is a Skip with its reason; a pattern that does not fit is neither, and only
``--explain`` shows onnxscript's reason.

onnxscript's own ``RewriteRuleSet.apply_to_model`` (which does walk subgraphs and functions) is
not used: it renames values and nodes all over the model (``NameFixPass``); a rule returning an
existing value (``x``) for a graph output renames that value (a graph input) after the output,
or raises when the output is a subgraph's; it marks constants only in the main graph and
functions; it drops rewrites that add initializers in functions; and its tracer keeps only the
best match of each rule. Here each rule is tried with ``RewriteRule.try_rewrite`` and the
replacement is put in place by :meth:`RulePass._apply`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import onnx_ir as ir
import onnxscript.optimizer
from onnxscript.rewriter import MatchingTracer, MatchResult, MatchStatus, RewriteRule

from optimizer.passapi import (
    Change,
    Pass,
    PassContext,
    PassResult,
    Skip,
    Verdict,
    all_graphs,
    iter_nodes,
    node_label,
    scope_labels,
)

__all__ = ["MatchResult", "RulePass"]

REFUSALS = {MatchStatus.CONDITION_FAILED: "the check failed", MatchStatus.REPLACEMENT_FAILED: "the rewrite declined"}
OUTCOMES = {MatchStatus.SUCCESS: Verdict.MATCHED, MatchStatus.NO_MATCH: Verdict.NO_MATCH}


class RulePass(Pass):
    """A pass made of onnxscript rewrite rules: its own ``pattern`` / ``check`` / ``rewrite``, or ``rules``."""

    rules: ClassVar[tuple[Any, ...]] = ()  # RewriteRule objects or RewriteRuleClassBase subclasses
    model: ir.Model
    ctx: PassContext

    def pattern(self, op, *args, **kwargs):
        """The subgraph to find, built with onnxscript's pattern builder ``op``."""
        raise NotImplementedError

    def check(self, context, **bindings) -> MatchResult | bool:
        """Whether a match may be rewritten; ``MatchResult().fail(reason)`` refuses it."""
        return MatchResult()

    def rewrite(self, op, **bindings):
        """The replacement of a match, built with ``op``: its output value (or values)."""
        raise NotImplementedError

    def rewrite_rules(self) -> list[RewriteRule]:
        """The rules this pass applies, in order: ``rules``, or the one its methods define."""
        if not self.rules:
            return [RewriteRule(self.pattern, self.rewrite, self.check, name=self.name)]
        return [rule.rule() if isinstance(rule, type) else rule for rule in self.rules]

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Try the rules on every node of every graph; the first that applies rewrites it."""
        self.model, self.ctx = model, ctx
        rules, tracer, result = self.rewrite_rules(), _Tracer(), PassResult(model)
        scopes = scope_labels(model) if ctx.explain else {}
        given = set(iter_nodes(model)) if ctx.explain else set()  # the nodes this run did not make
        for graph in list(all_graphs(model)):
            onnxscript.optimizer.basic_constant_propagation(graph)  # the const_value of Constant outputs
            for node in graph:
                label, op_type = node_label(node), node.op_type
                status, reason, seen = self._try(rules, graph, node, tracer)
                if status == MatchStatus.SUCCESS:
                    result.changes.append(Change(reason, seen))
                elif status in REFUSALS:
                    result.skips.append(Skip(label, reason))
                # --explain: every match and refusal; of the nodes it was given, those the pattern's
                # root matched and those of an op type it addresses
                candidate = status != MatchStatus.NO_MATCH or node in given and (seen or op_type in self.addresses)
                if ctx.explain and candidate:
                    outcome = OUTCOMES.get(status, Verdict.REFUSED)
                    result.verdicts.append(Verdict(label, op_type, scopes.get(id(graph), ""), outcome, reason))
        return result

    def _try(
        self, rules: list[RewriteRule], graph: ir.Graph, node: ir.Node, tracer: _Tracer
    ) -> tuple[MatchStatus, str, tuple[str, ...]]:
        """The outcome of the rules on ``node`` (the first rewrite, else the furthest refusal or
        mismatch), its description or reason, and the nodes it matched."""
        best = (MatchStatus.NO_MATCH, "", ())
        for rule in rules:
            delta = rule.try_rewrite(self.model, graph, node, tracer=tracer)
            status, reason, seen = tracer.last.pop(node, best)
            if delta is not None:
                return MatchStatus.SUCCESS, *self._apply(graph, node, delta, rule)
            if (status, len(seen)) > (best[0], len(best[2])):
                best = status, reason or REFUSALS.get(status, ""), seen
        return best

    def _apply(self, graph: ir.Graph, root: ir.Node, delta, rule: RewriteRule) -> tuple[str, tuple[str, ...]]:
        """Put the replacement in place of the match; new values and nodes get names unused in the
        model, and a value that replaces a graph output keeps the output's name."""
        nodes = list(delta.new_nodes)
        for value in delta.new_initializers:  # as Constant nodes: a function cannot hold initializers
            nodes.insert(0, ir.node("Constant", [], {"value": value.const_value}, outputs=[ir.Value(name=value.name)]))
            value.replace_all_uses_with(nodes[0].outputs[0])
        olds, news = list(delta.match.outputs), list(delta.new_outputs)
        made = {value for node in nodes for value in node.outputs}
        for index, (old, new) in enumerate(zip(olds, news, strict=True)):
            if new not in made and old.is_graph_output():  # an existing value: a copy takes the output's name
                nodes.append(ir.node("Identity", [new]))
                news[index] = nodes[-1].outputs[0]
        replaced = dict(zip(news, olds, strict=True))
        for node in nodes:
            node.name = self.ctx.fresh_name(self.model, node.name or f"{root.name or root.op_type}/{node.op_type}")
            for value in node.outputs:
                old = replaced.get(value)
                if old is None:
                    value.name = self.ctx.fresh_name(self.model, value.name or f"{node.name}_out")
                else:  # as onnxscript does
                    value.name = old.name
                    value.type = old.type if old.type is not None else value.type
                    value.shape = old.shape if old.shape is not None else value.shape
        onnxscript.optimizer.basic_constant_propagation(nodes)
        ir.convenience.replace_all_uses_with(olds, news, replace_graph_outputs=True)
        graph.insert_after(root, nodes)
        if rule.remove_nodes:  # else the manager's cleanup removes what became dead
            graph.remove(delta.match.nodes, safe=True)
        matched = list(reversed(delta.match.nodes))
        made_ops = ", ".join(node.op_type for node in nodes) or "their input"
        where = f" (rule {rule})" if self.rules else ""
        description = f"{' -> '.join(node.op_type for node in matched)} became {made_ops}{where}"
        return description, tuple(node_label(node) for node in matched)


class _Tracer(MatchingTracer):
    """Keeps the last outcome of a rule on each node: status, reason, labels of the nodes it
    matched (onnxscript's tracer keeps only the best match of each rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[ir.Node, tuple[MatchStatus, str, tuple[str, ...]]] = {}

    def log(self, rule, container, node, match_result, status) -> None:
        """Called by onnxscript's matcher for every node a rule is tried on."""
        self.last[node] = (status, match_result.reason, tuple(node_label(n) for n in match_result.nodes))
