"""How much memory does reading a large op_summary take? tracemalloc's peak while `read_profile`
reads a generated op_summary CSV (msprof's C++ assembler header plus A2 metric columns, many
iterations of a few hundred nodes), given as the file and as the folder holding it (the msprof
directory reader), against the file's size.

    .venv/bin/python benchmarks/bench_profile_read.py [--megabytes 50] [--baseline REV]

Each reading runs in a child process. `--baseline REV` also measures the `profiles` package of
git revision REV (extracted with `git archive` into a temporary folder), for a before/after table.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEADER = [
    "Device_id", "Model ID", "Task ID", "Stream ID", "Op Name", "OP Type", "OP State", "Task Type",
    "Task Start Time(us)", "Task Duration(us)", "Task Wait Time(us)", "Block Dim", "Mix Block Dim",
    "HF32 Eligible", "Input Shapes", "Input Data Types", "Input Formats", "Output Shapes",
    "Output Data Types", "Output Formats", "Context ID", "aicore_time(us)", "aic_total_cycles",
    "aic_mac_ratio", "aic_scalar_ratio", "aic_mte1_ratio", "aic_mte2_ratio", "aic_fixpipe_ratio",
    "aiv_time(us)", "aiv_total_cycles", "aiv_vec_ratio", "aiv_scalar_ratio", "aiv_mte2_ratio",
    "aiv_mte3_ratio", "cube_utilization(%)",
]
TYPES = ["Conv2D", "Relu", "Add", "TransData", "MatMulV2", "SoftmaxV2", "TransposeD", "Cast"]
CHILD = """
import sys, tracemalloc
sys.path.insert(0, sys.argv[1])
from profiles.read import read_profile
tracemalloc.start()
profile = read_profile(sys.argv[2])
print(tracemalloc.get_traced_memory()[1], len(profile.ops))
"""


def generate_op_summary(path: Path, megabytes: float, nodes: int = 400, seed: int = 0) -> int:
    """Write an op_summary of about `megabytes` MB: every node once per iteration; returns the iterations."""
    rng = random.Random(seed)
    plan = [(f"{TYPES[i % len(TYPES)]}_{i}", TYPES[i % len(TYPES)], f'"""1,{8 + i % 56},56,56;64,64,3,3"""')
            for i in range(nodes)]
    target, start, iterations = megabytes * 1e6, 1.7e15, 0
    with open(path, "w", newline="") as f:
        f.write(",".join(HEADER) + "\n")
        while f.tell() < target:
            iterations += 1
            for task, (name, op_type, shapes) in enumerate(plan):
                duration = rng.uniform(1, 500)
                start += duration + 1.5
                aic, aiv = (",".join(f"{rng.uniform(0, 1):.6f}" for _ in range(n)) for n in (5, 4))
                f.write(
                    f"0,1,{task},2,{name},{op_type},static,AI_CORE,{start:.3f}\t,{duration:.3f},1.5,8,0,NO,"
                    f"{shapes},FLOAT16;FLOAT16,NC1HWC0;FRACTAL_Z,{shapes},FLOAT16,NC1HWC0,N/A,"
                    f"{duration * 0.9:.3f},{rng.randrange(10**6, 10**8)},{aic},{duration * 0.1:.3f},"
                    f"{rng.randrange(10**5, 10**7)},{aiv},{rng.uniform(0, 100):.3f}\n"
                )
    return iterations


def measure(package_root: Path, csv: Path) -> tuple[int, int]:
    """(tracemalloc peak in bytes, ops read) of `read_profile(csv)` with `profiles` from `package_root`."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(package_root), str(csv)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"reading failed with {package_root}:\n{done.stderr}")
    peak, ops = done.stdout.split()
    return int(peak), int(ops)


def main() -> None:
    """Generate the file, measure each implementation, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--baseline", metavar="REV", help="Also measure the profiles package of this git revision.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-profile-read-") as tmp:
        folder = Path(tmp)
        csv = folder / "op_summary_0_1_1.csv"
        iterations = generate_op_summary(csv, args.megabytes)
        size = csv.stat().st_size
        roots = [("working tree", ROOT)]
        if args.baseline:
            base = folder / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "profiles"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            roots.insert(0, (f"git {args.baseline}", base))
        rows = []
        for label, root in roots:
            for what, target in (("the CSV", csv), ("its folder", folder)):
                peak, ops = measure(root, target)
                rows.append([label, what, f"{size / 1e6:.1f}", str(ops), f"{peak / 1e6:.0f}", f"{peak / size:.2f}"])
    print(f"op_summary: {iterations} iterations of 400 nodes, {len(HEADER)} columns")
    header = ["profiles from", "read_profile of", "file MB", "rows", "peak MB (tracemalloc)", "peak / file"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
