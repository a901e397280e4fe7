"""The Profile model: executed kernels, per-op-type statistics and end-to-end latency."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

MAD_TO_SIGMA = 1.4826  # scales a median absolute deviation to a normal standard deviation


@dataclass(slots=True)
class OpRecord:
    """One executed kernel: a row of op_summary / kernel_details or one onnxruntime node run.

    Shapes are one list of dims per tensor ([] for a scalar), None when the source says N/A.
    `iteration` is the inference (or step) the row belongs to when the source numbers them
    (msprof's Infer ID / Iteration ID, torch_npu's Step Id).
    `extra` keeps, as text, the unmapped columns that identify the task (Device_id, Task ID,
    Stream ID, OP State, ...; see readers.op_summary.KEPT_COLUMNS); performance counters
    are not kept per row (the profile's meta["columns"] names every column of a CSV read alone).
    A reader shares equal lists and dicts between the records of one file: treat them as read-only.
    """

    name: str
    op_type: str | None
    duration_us: float
    core_type: str | None = None
    start_us: float | None = None
    wait_us: float | None = None
    block_dim: int | None = None
    model_id: int | None = None
    iteration: int | None = None
    input_shapes: list[list[int]] | None = None
    output_shapes: list[list[int]] | None = None
    input_dtypes: list[str] = field(default_factory=list)
    output_dtypes: list[str] = field(default_factory=list)
    input_formats: list[str] = field(default_factory=list)
    output_formats: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class OpTypeStat:
    """Time of one op type on one core type; share is the fraction (0..1) of the profile's time."""

    op_type: str | None
    core_type: str | None
    count: int
    total_us: float
    min_us: float
    avg_us: float
    max_us: float
    share: float


@dataclass
class Latency:
    """End-to-end latency in ms, and throughput in items/s when the source gives it.

    With samples, every summary field is computed from them and `spread_ms` is the median
    absolute deviation scaled by 1.4826 (a robust estimate of the samples' standard deviation).
    Without samples the fields are the source's own summary and `spread_ms` is None.
    """

    samples_ms: list[float] = field(default_factory=list)
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    median_ms: float | None = None
    p99_ms: float | None = None
    spread_ms: float | None = None
    throughput: float | None = None

    @classmethod
    def from_samples(cls, samples_ms: list[float], throughput: float | None = None) -> Latency:
        """Summarise a non-empty list of per-run latencies (ms)."""
        a = np.asarray(samples_ms, dtype=float)
        median = float(np.median(a))
        return cls(
            samples_ms=[float(x) for x in a],
            min_ms=float(a.min()),
            max_ms=float(a.max()),
            mean_ms=float(a.mean()),
            median_ms=median,
            p99_ms=float(np.percentile(a, 99)),
            spread_ms=float(MAD_TO_SIGMA * np.median(np.abs(a - median))),
            throughput=throughput,
        )

    @property
    def center_ms(self) -> float | None:
        """The median when known, else the mean."""
        return self.median_ms if self.median_ms is not None else self.mean_ms


def stats_from_ops(ops: list[OpRecord]) -> list[OpTypeStat]:
    """Group kernels by (op type, core type) as msprof's op_statistic does, largest first."""
    groups: dict[tuple[str | None, str | None], list[float]] = {}
    for op in ops:
        groups.setdefault((op.op_type, op.core_type), []).append(op.duration_us)
    grand = sum(sum(d) for d in groups.values())
    stats = [
        OpTypeStat(
            op_type=op_type,
            core_type=core,
            count=len(d),
            total_us=sum(d),
            min_us=min(d),
            avg_us=sum(d) / len(d),
            max_us=max(d),
            share=sum(d) / grand if grand else 0.0,
        )
        for (op_type, core), d in groups.items()
    ]
    return sorted(stats, key=lambda s: (-s.total_us, s.op_type or "", s.core_type or ""))


@dataclass
class Profile:
    """Everything one profiling run says about time.

    `stats` comes from an op_statistic file when there is one; otherwise it is computed from `ops`.
    """

    source: str
    kind: str
    ops: list[OpRecord] = field(default_factory=list)
    stats: list[OpTypeStat] = field(default_factory=list)
    latency: Latency | None = None
    model_name: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stats and self.ops:
            self.stats = stats_from_ops(self.ops)

    @property
    def total_us(self) -> float:
        """Total kernel time of the profile (us)."""
        return sum(s.total_us for s in self.stats)

    def stats_by_type(self) -> dict[str | None, OpTypeStat]:
        """One statistic per op type, core types merged (their names joined by '/')."""
        merged: dict[str | None, OpTypeStat] = {}
        for s in self.stats:
            m = merged.get(s.op_type)
            if m is None:
                merged[s.op_type] = replace(s)
                continue
            cores = sorted({*(m.core_type or "").split("/"), s.core_type or ""} - {""})
            m.core_type = "/".join(cores) or None
            m.count += s.count
            m.total_us += s.total_us
            m.min_us = min(m.min_us, s.min_us)
            m.max_us = max(m.max_us, s.max_us)
            m.avg_us = m.total_us / m.count if m.count else 0.0
            m.share += s.share
        return merged

    def time_by_node(self) -> dict[str, float]:
        """Total time per kernel name (us), summed over repeated runs."""
        times: dict[str, float] = {}
        for op in self.ops:
            times[op.name] = times.get(op.name, 0.0) + op.duration_us
        return times
