"""``onnx-opt batch``: optimise and verify many models, on a local process pool or on Ray.

One task function, :func:`run_item`, does one model in a worker: the pool and Ray run the same
function, and the parent alone writes the status file (after each model, atomically) and the
summary. Outputs are written by the worker through :func:`optimizer.modelio.save_model`, which
renames a complete file into place, so an interrupted batch leaves no half-written model.

On Ray every task asks for one CPU, plus the custom resource ``NPU`` when it needs a device (see
:func:`task_resources`), so that device work goes only to hosts started with
``ray start --resources '{"NPU": N}'``; ``auto``'s candidate trials can be dispatched the same way.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from optimizer.errors import UserError, error_line
from optimizer.loop.batch_manifest import BatchItem
from optimizer.loop.batch_status import DONE, FAILED, BatchStatus

Outcome = dict[str, Any]
Finished = Callable[["BatchItem", Outcome], None]  # called in the parent as each model ends
WORKER_EXIT_SECONDS = 30  # how long interrupted workers get to clean up before they are killed


def run_item(item: BatchItem) -> Outcome:
    """Optimise and verify one model: its outcome (status, one-line reason, summary), never raising."""
    from optimizer.optimize import OptimizeOptions, optimize
    from optimizer.targets import parse_passes

    started = time.perf_counter()
    try:
        options = OptimizeOptions(
            input=Path(item.source), output=Path(item.output), passes=parse_passes(item.passes), target=item.target,
            opset=item.opset, input_shapes=item.input_shapes, verify=item.verify, pass_options=item.options,
        )
        Path(item.output).parent.mkdir(parents=True, exist_ok=True)
        report = optimize(options)
    except UserError as exc:
        return _failed(error_line(exc), started)
    except Exception as exc:  # a model that breaks onnx-opt must not stop the batch
        return _failed(f"{type(exc).__name__}: {error_line(exc)}", started)
    verification = report.verification
    summary = {
        "target": report.target,
        "nodes_before": report.nodes_before,
        "nodes_after": report.nodes_after,
        "passes": {record.name: {"status": record.status, "changes": record.changes} for record in report.records},
        "verification": "skipped" if verification is None else ("ok" if verification.ok else "failed"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if not report.written:
        reason = "verification failed: " + "; ".join(report.notes[-1:]) if verification else "nothing written"
        return {"status": FAILED, "reason": reason, **summary}
    if item.soc is not None:
        problem = _convert(item)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        if problem:
            return {"status": FAILED, "reason": problem, **summary}
        summary["om"] = str(Path(item.output).with_suffix(".om"))
    return {"status": DONE, "reason": "", **summary}


def _convert(item: BatchItem) -> str | None:
    """Convert the optimised model with ATC (``item.soc``) beside it; why it failed, or None."""
    from optimizer.toolchain.atc import format_failure
    from optimizer.toolchain.jobs import ConvertJob, convert

    output = Path(item.output)
    try:
        converted = convert(ConvertJob(model=output, soc=item.soc, output=output.with_suffix(".om"),
                                       input_shapes=item.input_shapes))
    except UserError as exc:
        return f"conversion: {error_line(exc)}"
    if converted.error:
        return f"conversion: {converted.error}"
    if not converted.atc.ok:
        return f"conversion: {format_failure(converted.atc, model=str(output), soc=item.soc).splitlines()[0]}"
    return None


def _failed(reason: str, started: float) -> Outcome:
    return {"status": FAILED, "reason": reason, "seconds": round(time.perf_counter() - started, 3)}


def task_resources(item: BatchItem) -> dict[str, float]:
    """The custom Ray resources a task needs: ``{"NPU": 1}`` when it converts with ATC (which needs a
    CANN host), none for optimising alone."""
    return {"NPU": 1} if item.soc is not None else {}


def run_batch(
    items: list[BatchItem],
    status: BatchStatus,
    *,
    workers: int,
    ray_address: str | None = None,
    on_outcome: Callable[[BatchItem, Outcome], None] | None = None,
) -> None:
    """Run every item not done yet, recording each outcome in ``status`` as it arrives.

    ``ray_address`` None runs a local process pool of ``workers``; "" starts a local Ray with that
    many CPUs; anything else joins that Ray cluster.
    """
    todo = [item for item in items if not status.is_done(item)]
    status.mark_pending(items)

    def finished(item: BatchItem, outcome: Outcome) -> None:
        status.record(item, outcome)
        if on_outcome is not None:
            on_outcome(item, outcome)

    if not todo:
        return
    if ray_address is None:
        run_pool(todo, workers, finished)
    else:
        _run_ray(todo, workers, ray_address, finished)


def run_pool(items: list[BatchItem], workers: int, finished: Finished, task: Callable[[BatchItem], Outcome] = run_item
             ) -> None:
    """Run ``task`` on ``items`` on pools of spawned processes. A worker that dies breaks its pool:
    the models that were in flight then run again one by one, so only the one that kills its worker
    fails."""
    queue = list(items)
    while queue:
        for suspect in _run_window(queue, workers, finished, task):
            if _run_window([suspect], 1, finished, task):
                finished(suspect, {"status": FAILED, "reason": "the worker process died while optimising it "
                                   "(a crash, or the memory limit)"})


def _run_window(queue: list[BatchItem], workers: int, finished: Finished, task: Callable[[BatchItem], Outcome]
                ) -> list[BatchItem]:
    """Take items from ``queue`` into one pool, at most ``workers`` in flight; the items in flight
    when the pool broke (a worker died), or [] when every item taken finished."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=min(workers, len(queue)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_signals)
    running: dict[Any, BatchItem] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                item = queue.pop(0)
                running[pool.submit(task, item)] = item
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    pool.shutdown(wait=True, cancel_futures=True)
                    return list(running.values())
                finished(running.pop(future), outcome)
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return []


def _worker_signals() -> None:
    """In a pool worker: Ctrl-C is the parent's to handle; SIGTERM exits through the clean-up code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))


def _stop(pool: Any) -> None:
    """Cancel what has not started, end the workers (SIGTERM: they remove their staging folders) and
    wait for them, killing those that do not exit in time."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + WORKER_EXIT_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()


def _run_ray(items: list[BatchItem], workers: int, address: str,
             finished: Finished) -> None:
    """Run ``items`` as Ray tasks, on a local Ray (``address`` "") or an existing cluster."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'onnx-opt[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            quiet = {"log_to_driver": False, "logging_level": "ERROR"}
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, **quiet)
        except Exception as exc:
            raise UserError(f"--ray: Ray did not start: {error_line(exc)}") from None
    task = ray.remote(run_item)
    pending = {task.options(num_cpus=1, resources=task_resources(item)).remote(item): item for item in items}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the task's worker died, or Ray lost it
                    outcome = {"status": FAILED, "reason": f"the Ray task failed: {error_line(exc)}"}
                finished(item, outcome)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def summary_rows(items: Iterable[BatchItem], status: BatchStatus) -> list[dict[str, Any]]:
    """One JSON-ready row per model: its key, source and recorded outcome (``batch.json``)."""
    rows = []
    for item in items:
        record = status.records.get(item.key, {})
        rows.append({"model": item.key, "source": item.source, "output": item.output,
                     **{k: v for k, v in record.items() if k not in ("source", "fingerprint")}})
    return rows
