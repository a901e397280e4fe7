"""Walking a graph's nodes and subgraphs at any depth, cheaply.

onnx-ir's RecursiveGraphIterator costs several microseconds per node (a generator object and
an attribute scan per node); on graphs of 100k nodes, walked many times per run, that was a
large part of the run. These walk the same nodes in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx_ir as ir

_GRAPH, _GRAPHS = ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS


def all_graphs(model: ir.Model) -> Iterator[ir.Graph]:
    """The main graph, every function body, and every subgraph of either, at any depth."""
    for root in (model.graph, *(function.graph for function in model.functions.values())):
        yield root
        yield from subgraphs_of(root)


# The default-domain operators that take graph attributes; a checked model's other default-domain
# nodes hold none, which spares the attribute scan on nearly every node.
GRAPH_HOLDERS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def own_subgraphs(node: ir.Node) -> list[ir.Graph]:
    """The graphs held by ``node``'s attributes, in order (most nodes hold none)."""
    if node.op_type not in GRAPH_HOLDERS and node.domain in ("", "ai.onnx"):
        return []
    found: list[ir.Graph] = []
    for attr in node.attributes.data.values():  # the dict itself: UserDict's views are slow
        kind = attr.type
        if kind is _GRAPH and isinstance(attr, ir.Attr):  # not a reference to a function's attribute
            found.append(attr.value)
        elif kind is _GRAPHS and isinstance(attr, ir.Attr):
            found.extend(attr.value)
    return found


def iter_nodes(model: ir.Model) -> Iterator[ir.Node]:
    """Every node of the main graph, its subgraphs and every function; safe to edit while walking."""
    yield from walk(model.graph)
    for function in model.functions.values():
        yield from walk(function.graph)


def subgraphs_of(graph: ir.Graph) -> Iterator[ir.Graph]:
    """Every subgraph of ``graph``'s nodes, at any depth (each before its own subgraphs)."""
    for node in graph:
        for sub in own_subgraphs(node):
            yield sub
            yield from subgraphs_of(sub)


def walk(graph: ir.Graph) -> Iterator[ir.Node]:
    """Every node of ``graph`` and, right after a node, the nodes of its subgraphs (the order of
    onnx-ir's RecursiveGraphIterator, without its per-node cost); safe to edit while walking."""
    for node in graph:
        yield node
        for sub in own_subgraphs(node):
            yield from walk(sub)
