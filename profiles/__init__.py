"""Profiling data: readers, one Profile model, comparison, hotspots and reports.

Plain data about time: this package imports neither `optimizer` nor `passes`.
"""

from .attribution import Attribution, attribute
from .compare import Comparison, DifferentModelsError, compare_profiles
from .errors import ProfileError
from .hotspots import Hotspots, canonical_op_type, hotspots
from .html_report import write_html
from .latency_json import read_latency_json, write_latency_json
from .model import Latency, OpRecord, OpTypeStat, Profile
from .msprof_writer import write_msprof_csvs
from .read import read_profile
from .renames import match_nodes, read_pass_report
from .runs import Runs, per_inference, runs_of

__all__ = [
    "Attribution", "Comparison", "DifferentModelsError", "Hotspots", "Latency", "OpRecord", "OpTypeStat",
    "Profile", "ProfileError", "Runs", "attribute", "canonical_op_type", "compare_profiles", "hotspots",
    "match_nodes", "per_inference", "read_latency_json", "read_pass_report", "read_profile", "runs_of",
    "write_html", "write_latency_json", "write_msprof_csvs",
]
