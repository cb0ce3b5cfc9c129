"""Metric logging on rank 0: a CSV with one column per loss term (+ lr, samples/s), optional TensorBoard."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any


class MetricLogger:
    """Append rows `{step, <terms>...}` to `<log_dir>/metrics.csv` (and TensorBoard events when available).

    The columns are fixed by the first row written; on resume, rows after `resume_step` (logged after the
    last checkpoint by the killed run) are dropped so the file reads as one continuous run.
    Inactive (does nothing) when `enabled` is False, e.g. on ranks other than 0.
    """

    def __init__(self, log_dir: str | Path, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(log_dir) / "metrics.csv"
        self.columns: list[str] | None = None
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            self._truncate(resume_step or 0)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(log_dir) / "tensorboard"), purge_step=resume_step)
            except ImportError:  # the tensorboard package is optional; the CSV always exists
                self.writer = None

    def _truncate(self, resume_step: int) -> None:
        with self.path.open(newline="") as file:
            reader = csv.DictReader(file)
            self.columns = reader.fieldnames
            rows = [row for row in reader if int(row["step"]) <= resume_step]
        with self.path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        extra = set(row) - set(self.columns)
        if extra:
            warnings.warn(f"metrics {sorted(extra)} are not in the CSV header of {self.path}; not written")
        with self.path.open("a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
