"""The status file of ``onnx-opt batch`` (``OUTDIR/batch-status.json``): each model done, failed
(with the one-line reason) or pending, so that a rerun does only what is not done.

It is rewritten atomically after every model, so an interrupted batch leaves it whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optimizer.errors import UserError
from optimizer.loop.batch_manifest import BatchItem

DONE, FAILED, PENDING = "done", "failed", "pending"
STATUS_NAME = "batch-status.json"


class BatchStatus:
    """The recorded outcome of every model of a batch, by key."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.records = records

    @classmethod
    def load(cls, outdir: Path) -> BatchStatus:
        """The status in ``outdir`` (empty when there is none yet)."""
        path = outdir / STATUS_NAME
        if not path.exists():
            return cls(path, {})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data["models"]
            if not isinstance(records, dict):
                raise TypeError("'models' is not a mapping")
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not a batch status file ({exc}): remove it to start the batch over") from None
        return cls(path, records)

    def is_done(self, item: BatchItem) -> bool:
        """Whether ``item`` was done with these settings on this input, and its output is still there."""
        record = self.records.get(item.key)
        return (
            record is not None
            and record.get("status") == DONE
            and record.get("fingerprint") == item.fingerprint()
            and Path(item.output).is_file()
        )

    def mark_pending(self, items: list[BatchItem]) -> None:
        """Record every item that is not done as pending, and save."""
        for item in items:
            if not self.is_done(item):
                self.records[item.key] = {"status": PENDING, "source": item.source}
        self.save()

    def record(self, item: BatchItem, outcome: dict[str, Any]) -> None:
        """Store the outcome of ``item`` (status, reason, summary) and save."""
        self.records[item.key] = {**outcome, "source": item.source, "fingerprint": item.fingerprint()}
        self.save()

    def save(self) -> None:
        """Write the file atomically."""
        from profiles.atomic import write_json_atomic

        write_json_atomic(self.path, {"models": self.records})
