"""Profiling data: readers, one Profile model, comparison, hotspots and reports.

Plain data about time: this package imports neither `optimizer` nor `passes`.
"""

import importlib

# Imported now: the function has its module's name, which the module's first import would rebind.
from .hotspots import hotspots as hotspots

# Where each public name lives: a name's module is imported when the name is first read, so that
# importing one module of the package (``profiles.atomic``, on every save) loads only that one.
_HOMES = {
    "Attribution": "attribution", "attribute": "attribution",
    "Comparison": "compare", "DifferentModelsError": "compare", "compare_profiles": "compare",
    "ProfileError": "errors",
    "Hotspots": "hotspots", "canonical_op_type": "hotspots",
    "write_html": "html_report",
    "read_latency_json": "latency_json", "write_latency_json": "latency_json",
    "Latency": "model", "OpRecord": "model", "OpTypeStat": "model", "Profile": "model",
    "write_msprof_csvs": "msprof_writer",
    "read_profile": "read",
    "match_nodes": "renames", "read_pass_report": "renames",
    "Runs": "runs", "per_inference": "runs", "runs_of": "runs",
}

__all__ = sorted([*_HOMES, "hotspots"])


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
