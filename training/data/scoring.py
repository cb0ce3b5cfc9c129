"""I Scoring (paper §4.1): predict a 1–5 quality score from rendered normal maps.

The paper has people score ~10K models from four rendered normal-map views, then fits a linear regression
on image features (concatenated CLIP + DINOv2 features) and scores every model with it. This module ships
that path without the human labels:

- `image_features(normal_maps, encoder=None)`: one feature vector per object. With `encoder=None` a cheap
  hand-made descriptor is used (see `normal_map_descriptor`); pass any callable mapping one (H, W, 3) uint8
  normal map to a 1-D vector — e.g. a wrapper returning a DINOv2 or CLIP model's pooled features, or their
  concatenation as in the paper — to use learned features instead.
- `QualityScorer`: ridge regression (closed form, numpy) on standardised features, `fit` / `predict`,
  `fit_from_csv` (a CSV of human scores, `object_id,score`), and `save` / `load` as a plain `.npz`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "THUMBNAIL_SIZE",
    "QualityScorer",
    "image_features",
    "normal_map_descriptor",
]

THUMBNAIL_SIZE = 16  # grey thumbnail side: coarse shape layout
ORIENTATION_BINS = 9  # unsigned gradient orientations over 180°, as in HOG
ORIENTATION_GRID = 2  # orientation histograms on a 2 x 2 grid of image quarters
MAGNITUDE_BINS = 8  # log-spaced gradient-magnitude histogram: smooth surfaces vs noise and faceting
FACING_BINS = 8  # histogram of the camera-facing normal component n_z in [-1, 1]

Encoder = Callable[[np.ndarray], np.ndarray]


def _check_normal_map(normal_map: np.ndarray) -> np.ndarray:
    normal_map = np.asarray(normal_map)
    if normal_map.ndim != 3 or normal_map.shape[-1] != 3 or normal_map.dtype != np.uint8:
        raise ValueError(f"a normal map must be a (H, W, 3) uint8 array, got {normal_map.dtype} {normal_map.shape}")
    return normal_map


def _area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Box-filter a (H, W) float image to (size, size) (crops the few rows/columns that do not divide)."""
    height, width = image.shape
    if height < size or width < size:
        raise ValueError(f"normal maps must be at least {size} x {size} pixels, got {height} x {width}")
    rows, cols = height // size, width // size
    return image[: rows * size, : cols * size].reshape(size, rows, size, cols).mean(axis=(1, 3))


def normal_map_descriptor(normal_map: np.ndarray, background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Cheap per-view features of one (H, W, 3) uint8 normal map (encoding of `triposg.rendering`).

    Layout, 315 values in total:
        [0:256]    16 x 16 grey thumbnail (mean of the three channels, 0..1): where the shape is and its
                   coarse shading;
        [256:292]  gradient-orientation histograms of the grey image on a 2 x 2 grid, 9 unsigned bins each,
                   magnitude-weighted and normalised per cell: edge structure (clean straight edges vs clutter);
        [292:300]  histogram of log gradient magnitudes inside the object: smooth surfaces vs noise/faceting;
        [300:308]  histogram of the camera-facing component n_z: back faces (n_z < 0) reveal flipped normals
                   and open meshes;
        [308:314]  mean and standard deviation of the decoded normals (x, y, z) on the object;
        [314]      opaque fraction of the image.
    """
    normal_map = _check_normal_map(normal_map)
    foreground = np.any(normal_map != np.asarray(background, dtype=np.uint8), axis=-1)  # (H, W)
    grey = normal_map.astype(np.float32).mean(axis=-1) / 255.0
    thumbnail = _area_resize(grey, THUMBNAIL_SIZE).ravel()

    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    orientation = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned, [0, pi)
    bins = np.minimum((orientation / np.pi * ORIENTATION_BINS).astype(int), ORIENTATION_BINS - 1)
    height, width = grey.shape
    histograms = []
    for row_cells in np.array_split(np.arange(height), ORIENTATION_GRID):
        for col_cells in np.array_split(np.arange(width), ORIENTATION_GRID):
            cell = np.ix_(row_cells, col_cells)
            histogram = np.bincount(bins[cell].ravel(), weights=magnitude[cell].ravel(), minlength=ORIENTATION_BINS)
            histograms.append(histogram / (histogram.sum() + 1e-6))
    orientation_histograms = np.concatenate(histograms)

    # Gradients inside the object only (eroded by the gradient stencil) so the silhouette does not dominate.
    interior = foreground.copy()
    interior[1:, :] &= foreground[:-1, :]
    interior[:-1, :] &= foreground[1:, :]
    interior[:, 1:] &= foreground[:, :-1]
    interior[:, :-1] &= foreground[:, 1:]
    log_magnitude = np.log10(magnitude[interior] + 1e-4)
    magnitude_histogram = np.histogram(log_magnitude, bins=MAGNITUDE_BINS, range=(-4.0, 0.0))[0].astype(np.float64)
    magnitude_histogram /= max(magnitude_histogram.sum(), 1.0)

    normals = normal_map[foreground].astype(np.float64) / 255.0 * 2.0 - 1.0  # (P, 3)
    if len(normals) == 0:
        normals = np.zeros((1, 3))
    facing_histogram = np.histogram(normals[:, 2], bins=FACING_BINS, range=(-1.0, 1.0))[0].astype(np.float64)
    facing_histogram /= max(facing_histogram.sum(), 1.0)
    statistics = np.concatenate([normals.mean(axis=0), normals.std(axis=0), [foreground.mean()]])
    return np.concatenate(
        [thumbnail, orientation_histograms, magnitude_histogram, facing_histogram, statistics]
    ).astype(np.float32)


def image_features(
    normal_maps: Sequence[np.ndarray],
    encoder: Encoder | None = None,
    reduce: Literal["concat", "mean"] = "concat",
) -> np.ndarray:
    """One object's (F,) feature vector from its rendered normal maps (the paper uses four views).

    Args:
        normal_maps: (H, W, 3) uint8 normal maps, always in the same view order for every object.
        encoder: maps one normal map to a 1-D feature vector; None = `normal_map_descriptor`.
        reduce: "concat" joins the per-view vectors in order (as the paper concatenates features; the
            number and order of views must then be the same for all objects), "mean" averages them
            (independent of the number of views).
    """
    if len(normal_maps) == 0:
        raise ValueError("normal_maps is empty: render at least one normal-map view")
    describe = encoder or normal_map_descriptor
    per_view = [np.asarray(describe(_check_normal_map(view)), dtype=np.float32).ravel() for view in normal_maps]
    if len({len(vector) for vector in per_view}) != 1:
        raise ValueError("the encoder returned vectors of different lengths for different views")
    stacked = np.stack(per_view)  # (V, F_view)
    if reduce == "concat":
        return stacked.ravel()
    if reduce == "mean":
        return stacked.mean(axis=0)
    raise ValueError(f"reduce must be 'concat' or 'mean', got {reduce!r}")


class QualityScorer:
    """Ridge regression from image features to quality scores (paper §4.1: "linear regression").

    Features are standardised with the training mean and standard deviation; the intercept is not
    penalised. `alpha` is the ridge penalty in standardised units (the sum of squared errors plus
    `alpha * |w|²`). Predictions are clipped to `score_range` (the human scale, 1–5) unless it is None.
    """

    def __init__(self, alpha: float = 1.0, score_range: tuple[float, float] | None = (1.0, 5.0)) -> None:
        if not alpha >= 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        if score_range is not None and not score_range[0] < score_range[1]:
            raise ValueError(f"score_range must be (low, high) with low < high, got {score_range}")
        self.alpha = float(alpha)
        self.score_range = None if score_range is None else (float(score_range[0]), float(score_range[1]))
        self.weights: np.ndarray | None = None  # (F,) on standardised features
        self.intercept = 0.0
        self.feature_mean: np.ndarray | None = None  # (F,)
        self.feature_scale: np.ndarray | None = None  # (F,)

    @property
    def is_fitted(self) -> bool:
        return self.weights is not None

    @property
    def num_features(self) -> int | None:
        return None if self.weights is None else len(self.weights)

    def fit(self, features: np.ndarray, scores: np.ndarray) -> QualityScorer:
        """Fit on (N, F) features and (N,) scores; returns self."""
        features = np.asarray(features, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if features.ndim != 2 or len(features) != len(scores):
            raise ValueError(f"expected (N, F) features and (N,) scores, got {features.shape} and {scores.shape}")
        if len(scores) < 2:
            raise ValueError("need at least two scored objects to fit")
        if not (np.all(np.isfinite(features)) and np.all(np.isfinite(scores))):
            raise ValueError("features and scores must be finite")
        self.feature_mean = features.mean(axis=0)
        scale = features.std(axis=0)
        self.feature_scale = np.where(scale > 1e-12, scale, 1.0)  # constant features stay constant (zero)
        design = (features - self.feature_mean) / self.feature_scale  # (N, F), centred
        self.intercept = float(scores.mean())
        target = scores - self.intercept
        num_samples, num_features = design.shape
        # Closed form in whichever space is smaller; both equal (X^T X + aI)^-1 X^T y.
        if num_features <= num_samples:
            gram = design.T @ design + self.alpha * np.eye(num_features)
            self.weights = _solve_symmetric(gram, design.T @ target)
        else:
            gram = design @ design.T + self.alpha * np.eye(num_samples)
            self.weights = design.T @ _solve_symmetric(gram, target)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scores for (N, F) features, shape (N,); a single (F,) vector gives shape (1,)."""
        if not self.is_fitted:
            raise RuntimeError("QualityScorer is not fitted: call fit / fit_from_csv or load a saved scorer")
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"expected features with {self.num_features} columns (as in training), got shape {features.shape}"
            )
        predictions = ((features - self.feature_mean) / self.feature_scale) @ self.weights + self.intercept
        if self.score_range is not None:
            predictions = np.clip(predictions, *self.score_range)
        return predictions

    def r2(self, features: np.ndarray, scores: np.ndarray) -> float:
        """Coefficient of determination of the predictions on (N, F) features against (N,) scores."""
        scores = np.asarray(scores, dtype=np.float64).ravel()
        residual = float(np.sum((scores - self.predict(features)) ** 2))
        total = float(np.sum((scores - scores.mean()) ** 2))
        return 1.0 - residual / total if total > 0 else math.nan

    def fit_from_csv(self, csv_path: str | Path, features_by_id: Mapping[str, np.ndarray]) -> QualityScorer:
        """Fit on human scores from a CSV with columns `object_id,score` (other columns are ignored).

        Several rows for one object (several raters) are averaged. Every scored id must have features in
        `features_by_id` (object id -> (F,) vector); objects without a score are simply not used.
        """
        import pandas as pd

        table = pd.read_csv(csv_path, dtype={"object_id": str})
        missing = {"object_id", "score"} - set(table.columns)
        if missing:
            raise ValueError(
                f"{csv_path} lacks the column(s) {sorted(missing)}; expected a header 'object_id,score'"
                f" (found {list(table.columns)})"
            )
        scores = pd.to_numeric(table["score"], errors="coerce")
        if scores.isna().any():
            bad_rows = table.index[scores.isna()].tolist()[:5]
            raise ValueError(f"{csv_path}: non-numeric or empty score in data rows {bad_rows}")
        mean_scores = scores.groupby(table["object_id"].str.strip()).mean()
        unknown = [object_id for object_id in mean_scores.index if object_id not in features_by_id]
        if unknown:
            raise ValueError(
                f"{csv_path}: {len(unknown)} scored object id(s) have no features, e.g. {unknown[:5]};"
                " compute image_features for them or remove them from the CSV"
            )
        features = np.stack(
            [np.asarray(features_by_id[object_id], dtype=np.float64) for object_id in mean_scores.index]
        )
        return self.fit(features, mean_scores.to_numpy())

    def save(self, path: str | Path) -> Path:
        """Write the fitted scorer to an `.npz` file (plain arrays, no pickle)."""
        if not self.is_fitted:
            raise RuntimeError("cannot save an unfitted QualityScorer")
        import io

        from triposg.io import write_bytes_atomic

        buffer = io.BytesIO()
        np.savez(
            buffer,
            weights=self.weights,
            intercept=np.float64(self.intercept),
            feature_mean=self.feature_mean,
            feature_scale=self.feature_scale,
            alpha=np.float64(self.alpha),
            score_range=np.array(self.score_range if self.score_range is not None else [], dtype=np.float64),
        )
        return write_bytes_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> QualityScorer:
        """Read a scorer written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            missing = {"weights", "intercept", "feature_mean", "feature_scale", "alpha", "score_range"} - set(
                data.files
            )
            if missing:
                raise ValueError(f"{path} is not a QualityScorer file (missing {sorted(missing)})")
            score_range = data["score_range"]
            scorer = cls(alpha=float(data["alpha"]), score_range=tuple(score_range) if len(score_range) else None)
            scorer.weights = data["weights"].astype(np.float64)
            scorer.intercept = float(data["intercept"])
            scorer.feature_mean = data["feature_mean"].astype(np.float64)
            scorer.feature_scale = data["feature_scale"].astype(np.float64)
        return scorer


def _solve_symmetric(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve a symmetric positive (semi-)definite system; least squares if it is singular (alpha = 0)."""
    try:
        return np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(matrix, rhs, rcond=None)[0]
