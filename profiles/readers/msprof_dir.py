"""Reader for msprof output directories of every layout (ASCEND_FACTS 1.1) and plain CSV folders.

Accepted: `JOB*/summary/` (CANN <= 5.0), `PROF_*/device_N/summary/` (5.0-6.x, lowest N),
`PROF_*/mindstudio_profiler_output/` (6.3+), torch_npu's `ASCEND_PROFILER_OUTPUT/`, a parent of
several PROF_ dirs (newest by the timestamp in the name) or JOB dirs (newest by mtime), the CSV
folder itself. Among `op_summary*.csv` / `op_statistic*.csv` / `latency*.json` the newest is the
one with the largest trailing number (a timestamp or an iteration id); `_slice_N_` files of the
newest export are concatenated in slice order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..errors import ProfileError
from ..latency_json import latency_from_json, load_latency_doc
from ..model import Profile
from . import op_statistic, op_summary
from .table import Table, model_name, open_table, require_rows

# msprof's job folder, PROF_<n>_<timestamp>_<id> (group 1: the timestamp); onnx-opt's msprof driver uses it too
PROF_DIR = re.compile(r"^PROF_\d+_(\d+)_[A-Za-z0-9]+$")
TRAILING = re.compile(r"_(\d+)\.\w+$")
SLICE = re.compile(r"_slice_(\d+)_")
SUBDIRS = ("mindstudio_profiler_output", "ASCEND_PROFILER_OUTPUT", "summary")


def read_dir(path: Path) -> Profile:
    """One Profile from the newest op_summary, op_statistic and latency files under `path`."""
    try:
        folder = find_csv_dir(path)
    except OSError as e:
        raise ProfileError(f"{path}: cannot list the directory: {e.strerror or e}") from None
    if folder is None:
        raise ProfileError(
            f"{path}: no profile in this directory; expected op_summary_*.csv / op_statistic_*.csv, "
            "a summary/ or mindstudio_profiler_output/ folder, or PROF_* / JOB* directories"
        )
    groups = _files(folder)
    used = [f for fs in groups.values() for f in fs]
    ops, stats, names, skipped, columns = [], [], [], [], []
    for f in groups["ops"]:
        table = _table(f, op_summary.matches, "an op_summary CSV (op name and duration columns)")
        columns += [column for column in table.header if column not in columns]
        rows = op_summary.read_ops(table)
        require_rows(table, rows)
        ops += rows
        names.append(model_name(table))
        skipped += table.skipped
    for f in groups["stats"]:
        table = _table(f, op_statistic.matches, "an op_statistic CSV (OP Type, Count, Total Time(us))")
        stats = op_statistic.read_stats(table)
        require_rows(table, stats)
        names.append(model_name(table))
        skipped += table.skipped
    latency = None
    for f in groups["latency"]:
        doc = load_latency_doc(f)
        latency = latency_from_json(f, doc)
        names.append(doc.get("model_name"))
    return Profile(
        source=str(path),
        kind="msprof",
        ops=ops,
        stats=stats,
        latency=latency,
        model_name=next((n for n in names if n), None),
        meta={"files": [str(f.relative_to(path)) for f in used], "skipped_rows": skipped, "columns": columns},
    )


def find_csv_dir(path: Path) -> Path | None:
    """The folder that holds the profile files for any accepted layout, or None."""
    if any(_files(path).values()):
        return path
    for sub in SUBDIRS:
        if (path / sub).is_dir() and any(_files(path / sub).values()):
            return path / sub
    devices = sorted(path.glob("device_*/summary"), key=lambda d: _number(d.parent.name))
    found = next((d for d in devices if any(_files(d).values())), None)
    if found:
        return found
    profs = sorted((d for d in path.iterdir() if d.is_dir() and PROF_DIR.match(d.name)),
                   key=lambda d: (int(PROF_DIR.match(d.name).group(1)), d.name), reverse=True)
    jobs = sorted((d for d in path.glob("JOB*") if d.is_dir()),
                  key=lambda d: (d.stat().st_mtime, d.name), reverse=True)
    return next((f for f in map(find_csv_dir, profs + jobs) if f), None)


def _files(folder: Path) -> dict[str, list[Path]]:
    files = [p for p in folder.iterdir() if p.is_file()]

    def named(stem: str, suffix: str = ".csv") -> list[Path]:
        return [p for p in files if p.suffix.lower() == suffix and (p.stem == stem or p.stem.startswith(stem + "_"))]

    return {
        "ops": _newest(named("op_summary") or named("kernel_details")),
        "stats": _newest(named("op_statistic")),
        "latency": _newest(named("latency", ".json")),
    }


def _newest(files: list[Path]) -> list[Path]:
    if not files:
        return []
    by_age = sorted(files, key=lambda p: (_number(p.name), p.name))
    if not SLICE.search(by_age[-1].name):
        return [by_age[-1]]
    slices = {int(SLICE.search(p.name).group(1)): p for p in by_age if SLICE.search(p.name)}
    return [slices[i] for i in sorted(slices)]


def _number(name: str) -> int:
    """The trailing `_<digits>` of a file or device dir name; -1 without one."""
    m = TRAILING.search(name) or re.search(r"_(\d+)$", name)
    return int(m.group(1)) if m else -1


def _table(path: Path, matches: Callable[[list[str]], bool], expected: str) -> Table:
    table = open_table(path)
    if not matches(table.header):
        raise ProfileError(f"{path}: not {expected}")
    return table

