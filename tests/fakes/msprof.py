#!/usr/bin/env python3
"""Fake legacy `msprof.py` entry (tests only; a test links it as
<toolkit>/tools/profiler/profiler_tool/analysis/msprof/msprof.py), after ASCEND_FACTS 1.4:
`python3 msprof.py import -dir X` then `python3 msprof.py export summary -dir X` write
X/device_<N>/summary/op_summary_<N>_1.csv and op_statistic_<N>_1.csv (X/summary/ for a JOB folder),
with the rows the fake msprof kept from the profiled .om (else _fakelib.OPS).
"""

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from _fakelib import record, saved_ops, write_legacy_summary  # noqa: E402


def main(argv: list[str]) -> int:
    record("msprof.py")
    if "-dir" not in argv:
        print("msprof.py: error: the following arguments are required: -dir/--collection-dir")
        return 2
    job = argv[argv.index("-dir") + 1]
    devices = sorted(glob.glob(f"{job}/device_*")) or [job]
    if argv[0] == "import":
        for device in devices:
            os.makedirs(f"{device}/sqlite", exist_ok=True)
        print(f"[INFO] Import {job} finished.")
        return 0
    if argv[:2] == ["export", "summary"]:
        if not os.path.isdir(f"{devices[0]}/sqlite"):
            print(f"[ERROR] {job} has not been imported: run 'msprof.py import -dir {job}' first.")
            return 1
        for device in devices:
            number = int(device.rsplit("_", 1)[1]) if device != job else 0
            write_legacy_summary(f"{device}/summary", number, saved_ops(device))
        print(f"[INFO] Export summary of {job} finished.")
        return 0
    print(f"msprof.py: error: invalid choice: {argv[0]!r}")
    return 2


sys.exit(main(sys.argv[1:]))
