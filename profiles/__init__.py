"""Profiling data: readers, one Profile model, comparison, hotspots and reports.

Plain data about time: this package imports neither `optimizer` nor `passes`.
"""

from .attribution import Attribution, attribute
from .compare import Comparison, compare_profiles
from .errors import ProfileError
from .hotspots import Hotspots, canonical_op_type, hotspots
from .html_report import write_html
from .latency_json import read_latency_json, write_latency_json
from .model import Latency, OpRecord, OpTypeStat, Profile
from .msprof_writer import write_msprof_csvs
from .read import read_profile

__all__ = [
    "Attribution", "Comparison", "Hotspots", "Latency", "OpRecord", "OpTypeStat", "Profile",
    "ProfileError", "attribute", "canonical_op_type", "compare_profiles", "hotspots",
    "read_latency_json", "read_profile", "write_html", "write_latency_json", "write_msprof_csvs",
]
