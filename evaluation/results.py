"""Measured results on disk: a folder of ablation CSV files, run histories, and bar charts of a table.

A results folder (default `results/ablations/`) holds one CSV per ablation, one row per variant: a text
column naming the variant (e.g. `variant` or `label`) and numeric metric columns (e.g. `normal_fid`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MeasuredTable",
    "append_history",
    "bar_chart",
    "bar_columns",
    "describe_results_folder",
    "markdown_rows",
    "read_history",
    "read_results_folder",
]

# The measured ablations that ship with the repository (experiments.ablations writes them), found wherever the
# app is started from.
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent.parent / "results" / "ablations"
# Metric columns a bar chart prefers, in this order, when a table has several numeric columns.
PREFERRED_METRICS = ("normal_fid", "fid", "fd_dinov2", "kid", "chamfer", "f_score", "normal_consistency", "elo")
LABEL_COLUMNS = ("label", "variant", "name", "model", "method")


@dataclass(frozen=True)
class MeasuredTable:
    """One CSV of a results folder: its file name without suffix and its rows (or the reason it failed)."""

    name: str
    path: Path
    frame: pd.DataFrame | None
    error: str | None = None


def read_results_folder(folder: str | os.PathLike) -> list[MeasuredTable]:
    """Every `*.csv` directly in `folder`, sorted by name; an unreadable or empty file keeps its error.
    A missing folder gives an empty list."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    tables = []
    for path in sorted(folder.glob("*.csv")):
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
            tables.append(MeasuredTable(path.stem, path, None, f"cannot read {path.name}: {error}"))
            continue
        error = None if len(frame) else f"{path.name} has no rows"
        tables.append(MeasuredTable(path.stem, path, frame if len(frame) else None, error))
    return tables


def describe_results_folder(folder: str | os.PathLike) -> tuple[str, list[str]]:
    """(Markdown status line, names of the readable CSVs) of a results folder; says so when it is missing
    or empty, and names files that cannot be read."""
    folder = Path(folder)
    tables = read_results_folder(folder)
    if not tables:
        state = "does not exist" if not folder.is_dir() else "holds no CSV files"
        return (f"No measured ablation results: `{folder}` {state}. Each ablation run writes one CSV there "
                "(a `variant` column and metric columns such as `normal_fid`)."), []
    problems = [f"`{t.path.name}`: {t.error}" for t in tables if t.error]
    status = f"{len(tables)} result file(s) in `{folder}`." + "".join(f"\n\n{p}" for p in problems)
    return status, [t.name for t in tables if t.frame is not None]


def bar_columns(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """(label column, metric column) for a bar chart of `frame`: a known label column or the first text
    column (None = use the row number), and a preferred metric or the first numeric column (None = none)."""
    numeric = [column for column in frame.columns if pd.api.types.is_numeric_dtype(frame[column])
               and not pd.api.types.is_bool_dtype(frame[column])]
    text = [column for column in frame.columns if column not in numeric]
    label = next((column for column in LABEL_COLUMNS if column in text), text[0] if text else None)
    metric = next((column for column in PREFERRED_METRICS if column in numeric), numeric[0] if numeric else None)
    return label, metric


def bar_chart(frame: pd.DataFrame, metric: str | None = None, label: str | None = None, title: str = "",
              lower_is_better: bool | None = None) -> Figure | None:
    """A horizontal bar chart of `frame[metric]` per row, labelled by `frame[label]`; columns default to
    `bar_columns`. None when the table has no numeric column."""
    from matplotlib.figure import Figure

    default_label, default_metric = bar_columns(frame)
    label, metric = label or default_label, metric or default_metric
    if metric is None or frame.empty:
        return None
    labels = frame[label].astype(str).tolist() if label else [str(i) for i in range(len(frame))]
    values = pd.to_numeric(frame[metric], errors="coerce").fillna(0.0).tolist()
    figure = Figure(figsize=(6.0, 0.45 * len(frame) + 1.2))
    axes = figure.add_subplot()
    positions = list(range(len(frame)))[::-1]  # first row at the top, as in the table
    axes.barh(positions, values, color="#4c72b0")
    axes.set_yticks(positions, labels, fontsize=8)
    for position, value in zip(positions, values):
        axes.annotate(f"{value:.4g}", (value, position), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize=8)
    if lower_is_better is None:
        lower_is_better = metric not in ("f_score", "normal_consistency", "elo")
    axes.set_xlabel(f"{metric} ({'lower' if lower_is_better else 'higher'} is better)")
    axes.set_title(title, fontsize=10)
    axes.margins(x=0.15)
    figure.tight_layout()
    return figure


def append_history(path: str | os.PathLike, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Append `rows` to the CSV history at `path` (created with its folder when missing); returns the
    whole history. New columns are added; earlier rows leave them empty."""
    path = Path(path)
    earlier = read_history(path)
    history = pd.concat([earlier, pd.DataFrame(rows)], ignore_index=True) if len(earlier) else pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    history.to_csv(path, index=False)
    return history


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """The CSV history at `path`, or an empty table."""
    path = Path(path)
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def markdown_rows(header: list[str], rows: list[list[str]], right_aligned: int = 0) -> str:
    """A Markdown table from text cells (pipes escaped); the last `right_aligned` columns align right."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    rule = ["---"] * (len(header) - right_aligned) + ["---:"] * right_aligned
    return "\n".join([line(header), line(rule), *map(line, rows)])
