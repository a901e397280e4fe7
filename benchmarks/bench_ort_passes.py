"""Which exact passes do not slow onnxruntime down? Each on a model holding its pattern 8 times.

    .venv/bin/python benchmarks/bench_ort_passes.py [--budget 20] [--passes merge-concats,...]

For each pass: the model before and after (numbers checked with the Verifier first), timed head to
head by the A/B engine (one intra-op thread, thread CPU time, interleaved rounds, paired bootstrap
95% interval of the median ratio after / before). The onnxruntime target's pipeline takes only the
passes whose verdict is ``faster`` or ``same``. The opt-in passes are not timed: they
change the outputs or leave a model onnxruntime cannot run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402
from patterns import CASES, fan  # noqa: E402

from optimizer.loop.timing import time_ab  # noqa: E402
from optimizer.manager import PassManager, count_nodes  # noqa: E402
from optimizer.passapi import PassContext  # noqa: E402
from optimizer.registry import get_pass, opt_in_reason  # noqa: E402
from optimizer.targets import load_target  # noqa: E402
from optimizer.verifier import Verifier, choose_feeds  # noqa: E402

COPIES = 8

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of A/B timing per pass")
    parser.add_argument("--passes", default=",".join(name for name in CASES if not opt_in_reason(get_pass(name))))
    args = parser.parse_args()
    ctx = PassContext(load_target("onnxruntime"))
    rows = []
    for name in args.passes.split(","):
        before = fan(name, COPIES)
        run = PassManager([name], ctx).run(before.clone())
        after, record = run.model, run.records[0]
        feeds = choose_feeds(before, seed=0)
        if not record.changes or not Verifier(before, feeds).check(after).ok:
            rows.append([name, f"{count_nodes(before)}", "-", "-", "-", f"did not apply: {record.status}"])
            continue
        result = time_ab(before, after, feeds.sets[0], budget_s=args.budget, labels=("before", name))
        print(f"{name}: {result.reason}", file=sys.stderr)
        rows.append([name, f"{count_nodes(before)} -> {count_nodes(after)}", f"{result.ratio:.3f}",
                     f"{result.ci[0]:.3f}-{result.ci[1]:.3f}", result.verdict, f"{result.rounds} rounds"])
    print(markdown_table(["pass", "nodes", "ratio after/before", "95% CI", "verdict", "rounds"], rows))


if __name__ == "__main__":
    main()
