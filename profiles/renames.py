"""Matching the nodes a pass renamed or replaced to their originals, through the pass report.

`onnx-opt optimize --report` writes one record per pass whose `changed_nodes` lists, change after
change, the nodes each change rewrote: fuse-depth-to-space lists Reshape, Transpose, Reshape
and names the fused DepthToSpace after the Transpose; softmax-transpose keeps the Softmax's name;
decompose-depth-to-space turns node X into X/split, X/transpose, X/merge. So, for each pass:

1. a changed node that AFTER has (under its own name, or as names derived from it, `X/...`, that
   BEFORE lacks) is an *anchor*: the node that stands for its change in AFTER;
2. every other changed node that BEFORE has (it is gone from AFTER) joins the nearest anchor in
   the `changed_nodes` list (ties: the earlier one), since the nodes of one change are listed
   together;
3. each anchor with its members is one group: its time before is that of the members and the
   anchor in BEFORE, its time after that of the anchor's names in AFTER.

A changed node kept under its name with no member (changed in place) is no group: it compares as
an ordinary row. Each name joins at most one group, first pass first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ProfileError


@dataclass
class NodeGroup:
    """Nodes of BEFORE (`before`) replaced by nodes of AFTER (`after`) in one change of `pass_name`."""

    key: str
    pass_name: str
    before: list[str]
    after: list[str]


def read_pass_report(path: str | Path) -> list[tuple[str, list[str]]]:
    """(pass name, changed node names) of each pass record of an `optimize --report` JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProfileError(f"{path}: cannot read the pass report: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProfileError(f"{path}: not JSON; expected the report of `onnx-opt optimize --report`") from None
    passes = data.get("passes") if isinstance(data, dict) else None
    if not isinstance(passes, list) or not all(isinstance(p, dict) and "name" in p for p in passes):
        raise ProfileError(f"{path}: no \"passes\" list of records; expected the report of `onnx-opt optimize "
                           "--report`")
    return [(str(p["name"]), [str(n) for n in p.get("changed_nodes") or []]) for p in passes]


def match_nodes(before: set[str], after: set[str], passes: list[tuple[str, list[str]]]) -> list[NodeGroup]:
    """The groups of the module docstring, for node names `before` and `after` of two profiles."""
    used: set[str] = set()
    groups = []
    for pass_name, changed in passes:
        names = [n for n in dict.fromkeys(changed) if n not in used]
        derived = {n: sorted(a for a in after - before - used if a.startswith(n + "/")) for n in names}
        outcome = {n: ([n] if n in after else []) + derived[n] for n in names}
        anchors = [i for i, n in enumerate(names) if outcome[n]]
        if not anchors:
            continue
        members: dict[int, list[str]] = {i: [] for i in anchors}
        for i, name in enumerate(names):
            if not outcome[name] and name in before:
                members[min(anchors, key=lambda a: (abs(a - i), a))].append(name)
        for i in anchors:
            anchor = names[i]
            group_before = sorted(members[i] + ([anchor] if anchor in before else []))
            if not members[i] and outcome[anchor] == [anchor]:
                continue  # changed in place
            groups.append(NodeGroup(anchor, pass_name, group_before, sorted(outcome[anchor])))
            used.update(group_before, outcome[anchor])
    return groups
