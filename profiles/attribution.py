"""Mapping profile rows back to ONNX nodes by name, conservatively.

Rules, in order, for each row (kernel) name:
1. a node with exactly that name;
2. an ATC-inserted op (`trans_` prefix, e.g. `trans_TransData_12`, or a layout type such as
   TransData, see profiles.hotspots): no ONNX node, reported as inserted;
3. node names found inside the row name on `_` boundaries (`PartitionedCall_AvgPool_45_2` holds
   `AvgPool_45`); a match inside a longer match is dropped, and the row maps only when exactly
   one node remains, or when exactly one of several has the row's op type (a fused
   `Conv_52_Relu_53` of type Conv2D is the Conv node). Other rows naming several nodes stay
   unmapped, listed as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .hotspots import canonical_op_type
from .model import Profile

INSERTED_PREFIX = "trans_"


@dataclass
class Attribution:
    """Row index (in profile.ops) -> ONNX node name, plus the rows that did not map."""

    mapping: dict[int, str] = field(default_factory=dict)
    inserted: list[int] = field(default_factory=list)
    unmapped: list[int] = field(default_factory=list)
    ambiguous: dict[int, list[str]] = field(default_factory=dict)  # unmapped rows naming several nodes

    @property
    def counts(self) -> dict[str, int]:
        """How many rows were mapped, inserted layout ops, and unmapped."""
        return {"mapped": len(self.mapping), "inserted": len(self.inserted), "unmapped": len(self.unmapped)}


def attribute(profile: Profile, nodes: list[tuple[str, str]]) -> Attribution:
    """Attribute each row of `profile.ops` to one of `nodes`, given as (node name, op type) pairs."""
    op_types = {name: op_type for name, op_type in nodes if name}
    names = frozenset(op_types)
    match = lru_cache(maxsize=None)(lambda row_name: _candidates(row_name, names))
    result = Attribution()
    for i, op in enumerate(profile.ops):
        if op.name in names:
            result.mapping[i] = op.name
            continue
        onnx_type, category = canonical_op_type(op.op_type)
        if op.name.startswith(INSERTED_PREFIX) or category == "layout":
            result.inserted.append(i)
            continue
        found = match(op.name)
        same_type = [n for n in found if op_types[n] == onnx_type]
        if len(found) == 1 or len(same_type) == 1:
            result.mapping[i] = found[0] if len(found) == 1 else same_type[0]
        else:
            result.unmapped.append(i)
            if found:
                result.ambiguous[i] = list(found)
    return result


def _candidates(row_name: str, names: frozenset[str]) -> tuple[str, ...]:
    """Node names occurring in `row_name` between `_` boundaries, minus those inside a longer one."""
    tokens = row_name.split("_")
    spans = [
        (i, j)
        for i in range(len(tokens))
        for j in range(i + 1, len(tokens) + 1)
        if "_".join(tokens[i:j]) in names
    ]
    outer = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    return tuple(sorted({"_".join(tokens[i:j]) for i, j in outer}))
