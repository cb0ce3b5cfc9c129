"""Metric logging on rank 0: a CSV with one column per loss term (+ lr, samples/s), optional TensorBoard."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from triposg.io import write_bytes_atomic


class MetricLogger:
    """Append rows `{step, <terms>...}` to `<log_dir>/metrics.csv` (and TensorBoard events when available).

    The columns are those of the first row written, widened when a later row brings new terms (e.g. a run
    resumed with another loss term on: earlier rows get empty cells). On resume, rows after `resume_step`
    (logged after the last checkpoint by the killed run) are dropped so the file reads as one continuous run.
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

    def _read(self) -> list[dict[str, str]]:
        with self.path.open(newline="") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            self.columns = list(reader.fieldnames or ["step"])
        return rows

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        write_bytes_atomic(self.path, text.getvalue().encode())

    def _truncate(self, resume_step: int) -> None:
        rows = self._read()
        self._rewrite([row for row in rows if int(row["step"]) <= resume_step])

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        extra = [key for key in row if key not in self.columns]
        if extra:  # new terms: widen the header, earlier rows keep empty cells
            rows = self._read()
            self.columns += extra
            self._rewrite(rows)
        with self.path.open("a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns, restval="")
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
