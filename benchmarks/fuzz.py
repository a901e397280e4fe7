"""Differential fuzz at scale: many generated graphs, every pass alone and every target pipeline,
each without and with an opset change, ``--no-verify``, outputs compared with onnxruntime.

    .venv/bin/python benchmarks/fuzz.py --graphs 5000 --seed 0 [--focus all|mixed|PASS]
                                        [--opset-mode both|one] [--bad bad.jsonl]

Graph i is ``tests/fuzz_graphs.generate(seed + i, focus)``; with ``--focus all`` the focus cycles
through mixed, mixed, then each pass. The graphs run in a child process, so a run that kills it
(onnxsim's SIGSEGV) is counted as an internal error and the child starts again after it. Prints
a table of graphs, runs, refusals (by reason class), wrong and broken outputs and internal
errors (each with its seed, configuration, opsets, max diff and the line that reproduces it),
and the wall time. Exit status 1 when any run was bad.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from common import markdown_table  # noqa: E402
from fuzz_graphs import (  # noqa: E402
    CONFIGS,
    FOCUSES,
    INTERNAL,
    INVALID,
    Run,
    Tally,
    check_case,
    generate,
    plan,
    reason_class,
)


def focus_of(index: int, focus: str) -> str | None:
    """The focus of graph ``index`` for ``--focus``."""
    if focus == "all":
        cycle = (None, None, *FOCUSES)
        return cycle[index % len(cycle)]
    return None if focus == "mixed" else focus


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=500, help="number of generated graphs")
    parser.add_argument("--seed", type=int, default=0, help="seed of graph 0")
    parser.add_argument("--from-graph", type=int, default=0, metavar="I",
                        help="start at graph I (seed + I; the focus cycle is by graph index)")
    parser.add_argument("--focus", default="all", help="all, mixed, or a pass name (" + ", ".join(FOCUSES) + ")")
    parser.add_argument("--opset-mode", choices=("both", "one"), default="both",
                        help="both: every configuration without and with an opset change; one: either, at random")
    parser.add_argument("--configs", default="", help="comma-separated configuration labels (default: all)")
    parser.add_argument("--bad", type=Path, help="write every bad run as JSON lines to this file")
    parser.add_argument("--progress", type=int, default=100, help="print a line every N graphs (0: never)")
    parser.add_argument("--worker", nargs=2, type=int, metavar=("GRAPH", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.focus not in ("all", "mixed", *FOCUSES):
        parser.error(f"--focus {args.focus}: not all, mixed or one of {', '.join(FOCUSES)}")
    args.config_list = CONFIGS
    if args.configs:
        wanted = args.configs.split(",")
        args.config_list = tuple(c for c in CONFIGS if c.label in wanted)
        if len(args.config_list) != len(wanted):
            parser.error(f"--configs: known labels are {', '.join(c.label for c in CONFIGS)}")
    return args


def case_and_plan(args: argparse.Namespace, index: int):
    seed = args.seed + index
    case = generate(seed, focus_of(index, args.focus))
    pairs = plan(case, args.config_list, opset_mode=args.opset_mode, rng=np.random.default_rng([seed, 7]))
    return case, pairs


def worker(args: argparse.Namespace) -> int:
    """Run graphs from (GRAPH, RUN) on, one JSON line per event on stdout."""
    first_graph, first_run = args.worker

    def say(**event) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    with tempfile.TemporaryDirectory(prefix="onnx-opt-fuzz-") as tmp:
        for index in range(first_graph, args.graphs):
            say(graph=index)
            case, pairs = case_and_plan(args, index)
            skip = first_run if index == first_graph else 0

            def started(k, config, opset, index=index, skip=skip, case=case):
                say(start=[index, k + skip], config=config.label, opset=opset, seed=case.seed, focus=case.focus,
                    opset_from=case.opset)

            runs = check_case(case, Path(tmp), pairs[skip:], on_start=started, on_run=lambda r: say(run=asdict(r)))
            if runs and runs[0].outcome == INVALID:
                say(run=asdict(runs[0]))
            say(done=index)
    return 0


def run_workers(args: argparse.Namespace, tally: Tally, started: float) -> None:
    """Run the graphs in a child process; a run that kills it is an internal error, and the
    child starts again after it."""
    position = (args.from_graph, 0)
    pending: list[Run] = []
    forwarded = list(sys.argv[1:])
    while position[0] < args.graphs:
        command = [sys.executable, str(Path(__file__).resolve()), *forwarded, "--worker", *map(str, position)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        last, current = None, position[0]
        for line in child.stdout:
            event = json.loads(line)
            if "graph" in event:
                current, last = event["graph"], None
            elif "start" in event:
                last = event
            elif "run" in event:
                pending.append(Run(**{k: tuple(v) if isinstance(v, list) else v for k, v in event["run"].items()}))
            elif "done" in event:
                tally.add(pending)
                pending = []
                position = (event["done"] + 1, 0)
                if args.progress and tally.graphs % args.progress == 0:
                    print(f"[{time.perf_counter() - started:7.1f} s] {tally.summary()}", file=sys.stderr, flush=True)
        code = child.wait()
        if code == 0:
            break
        if last is None:  # while generating graph ``current`` or running the original model
            seed = args.seed + current
            pending.append(Run(seed, focus_of(current, args.focus), "original", 0, None, INVALID,
                               f"the process died before the first run (exit status {code}: {_signal_name(code)})"))
            tally.add(pending)
            pending, position = [], (current + 1, 0)
            continue
        index, k = last["start"]
        pending.append(Run(last["seed"], last["focus"], last["config"], last["opset_from"], last["opset"], INTERNAL,
                           f"the process died (exit status {code}: {_signal_name(code)})"))
        position = (index, k + 1)


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name if code < 0 else "error"
    except ValueError:
        return "unknown signal"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    tally = Tally()
    started = time.perf_counter()
    run_workers(args, tally, started)
    wall = time.perf_counter() - started

    print(f"## Fuzz: seeds {args.seed + args.from_graph}..{args.seed + args.graphs - 1}, focus {args.focus}, "
          f"opsets {args.opset_mode}\n")
    outcomes = tally.outcomes
    print(markdown_table(
        ["graphs", "runs", "ok", "refusals", "wrong outputs", "broken outputs", "internal errors", "invalid graphs",
         "wall time"],
        [[str(tally.graphs), str(tally.runs), str(outcomes["ok"]), str(outcomes["refused"]), str(outcomes["wrong"]),
          str(outcomes["broken"]), str(outcomes["internal"]), str(outcomes["invalid"]), f"{wall:.0f} s"]],
    ))
    print("\n### Passes that changed the model (runs)\n")
    print(markdown_table(["pass", "runs changed", "dropped (converter refused its result)"],
                         [[name, str(tally.fired[name]), str(tally.dropped[name])]
                          for name in sorted(set(tally.fired) | set(tally.dropped))]))
    if tally.refusals:
        print("\n### Refusals by reason class\n")
        rows = [[str(count), reason.replace("|", "\\|")] for reason, count in tally.refusals.most_common()]
        print(markdown_table(["refusals", "reason class"], rows))
    if tally.bad:
        print("\n### Bad runs by kind\n")
        kinds = Counter((r.outcome, reason_class(r.detail)) for r in tally.bad)
        print(markdown_table(["runs", "outcome", "detail class"],
                             [[str(n), o, d.replace("|", "\\|")] for (o, d), n in kinds.most_common()]))
        print("\n### Bad runs\n")
        rows = [[r.outcome, str(r.seed), r.focus or "mixed", r.config, f"{r.opset_from}->{r.opset_to or '='}",
                 f"{r.max_diff:.3g}", r.detail[:160].replace("|", "\\|"), f"`{r.command()}`"] for r in tally.bad]
        print(markdown_table(["outcome", "seed", "focus", "config", "opset", "max diff", "detail", "reproduce"], rows))
        print("\n(reproduce in Python: `import sys; sys.path.insert(0, 'tests'); from fuzz_graphs import reproduce`)")
    if args.bad:
        with args.bad.open("w") as out:
            for run in tally.bad:
                out.write(json.dumps({**asdict(run), "reproduce": run.command()}) + "\n")
    return 1 if tally.bad else 0


if __name__ == "__main__":
    sys.exit(main())
