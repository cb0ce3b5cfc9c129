"""Fréchet distances and kernel distances between two image sets (the metric core of Normal-FID).

Normal-FID (paper §5.2.2): FID between the ground-truth normal maps and the normal maps of the generated
shapes rendered from the same view. `compute_fid` computes it exactly as clean-fid does for two folders —
its Inception-v3 TorchScript features (pool3, 2048-d) after its "clean" resizing (PIL bicubic to 299×299 in
float) — plus KID on the same features.

clean-fid downloads its Inception file on first use; this module never lets it. The file
(`inception-2015-12-05.pt`) is taken from the `inception_weights` argument or the environment variable
`TRIPOSG_INCEPTION_WEIGHTS` and handed to clean-fid's own `InceptionV3W` wrapper with `download=False`;
without it a `MissingInceptionWeightsError` names the file, the variable and the download URL.

Any other feature extractor gives a Fréchet distance labelled with its name, never "fid":
`compute_folder_fd` runs a clean-fid-style feature model (what clean-fid calls `custom_feat_extractor`)
through clean-fid's folder and resizing pipeline; `compute_feature_fd` takes images in memory or a folder
and a callable on uint8 batches, e.g. `dinov2_extractor(pipe)` for FD-DINOv2 (Stein et al. 2023), or
`pixel_extractor(16)`: the normal map itself, downsampled, needing no weights at all.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import linalg

INCEPTION_FILENAME = "inception-2015-12-05.pt"
# Where clean-fid itself downloads the file from (cleanfid.downloads_helper.inception_url).
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_WEIGHTS_ENV = "TRIPOSG_INCEPTION_WEIGHTS"
INCEPTION_EXTRACTOR_NAME = "inception-v3 (clean-fid)"
CLEAN_FID_MODE = "clean"  # clean-fid's resizing: PIL bicubic to 299x299 on float pixels, no quantisation

DEFAULT_FD_RESAMPLES = 10  # bootstrap resamples for the FD's spread (each costs one matrix square root)
DEFAULT_KID_SUBSETS = 100  # clean-fid's defaults for KID
DEFAULT_KID_SUBSET_SIZE = 1000

PathLike = str | os.PathLike
# A folder of images, a sequence of PIL images / uint8 (H, W, 3) arrays, or one uint8 (N, H, W, 3) array.
ImageSet = PathLike | Sequence[Image.Image | np.ndarray] | np.ndarray
# uint8 (B, H, W, 3) batch → (B, D) features.
BatchFeatureExtractor = Callable[[np.ndarray], np.ndarray]
# clean-fid's contract: float tensor (B, 3, 299, 299) in [0, 255], already resized → (B, D) tensor.
CleanFidFeatureModel = Callable[[torch.Tensor], torch.Tensor]


class MissingInceptionWeightsError(FileNotFoundError):
    """The Inception TorchScript file clean-fid needs is not available locally."""


# ----------------------------------------------------------------------------------------------
# Distances between feature sets
# ----------------------------------------------------------------------------------------------


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of `features`: (N, D), N >= 2, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors as an (N, D) array, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017):

        FD = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}).

    `mu*`: (D,) means; `sigma*`: (D, D) covariances. The matrix square root is scipy's `sqrtm`; when the
    product is numerically singular and the root is not finite, `eps` is added to both diagonals and the
    root recomputed; a small imaginary part left by rounding is dropped, a large one is an error.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be vectors of one length, got {mu1.shape} and {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"covariances must be ({len(mu1)}, {len(mu1)}), got {sigma1.shape} and {sigma2.shape}")

    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = eps * np.eye(len(mu1))
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest_imaginary = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if largest_imaginary > 1e-3:
            raise ValueError(f"the covariance product has no real square root (imaginary part {largest_imaginary:.3g})")
        covmean = covmean.real

    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def kernel_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    num_subsets: int = DEFAULT_KID_SUBSETS,
    max_subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance (KID when the features are Inception's; Bińkowski et al. 2018), as clean-fid computes it.

    Squared MMD with the cubic polynomial kernel k(x, y) = (x·y / D + 1)^3, averaged over `num_subsets`
    random subsets of m = min(N_a, N_b, `max_subset_size`) vectors from each set:
    MMD² = Σ_{i≠j}[k(x_i,x_j) + k(y_i,y_j)] / (m(m-1)) − 2 Σ_{i,j} k(x_i,y_j) / m².
    `features_*`: (N, D). Unlike clean-fid, the subsets come from a generator seeded by `seed`, so the
    result is reproducible. Returns (mean, standard deviation over subsets); the spread is NaN when both sets
    are no larger than the subsets (every subset is then the whole set, so the subsets cannot tell how much
    the distance would move with other samples — a 0 there would claim a certainty the estimate does not have).
    """
    features_a = np.asarray(features_a, dtype=np.float64)
    features_b = np.asarray(features_b, dtype=np.float64)
    if features_a.ndim != 2 or features_a.shape[1:] != features_b.shape[1:]:
        raise ValueError(f"need two (N, D) feature arrays of one width, got {features_a.shape} and {features_b.shape}")
    subset_size = min(len(features_a), len(features_b), max_subset_size)
    if subset_size < 2:
        raise ValueError("the kernel distance needs at least 2 feature vectors in each set")
    dim = features_a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for index in range(num_subsets):
        x = features_b[rng.choice(len(features_b), subset_size, replace=False)]
        y = features_a[rng.choice(len(features_a), subset_size, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        across = (x @ y.T / dim + 1) ** 3
        values[index] = ((within.sum() - np.trace(within)) / (subset_size * (subset_size - 1))
                         - 2.0 * across.sum() / subset_size**2)
    whole_sets = subset_size == len(features_a) == len(features_b)
    return float(values.mean()), float("nan") if whole_sets else float(values.std())


def frechet_distance_of_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between the Gaussians fitted to (N_a, D) and (N_b, D) features, without a D×D
    matrix square root: with centred features A, B the covariances are AᵀA/(N_a−1) and BᵀB/(N_b−1), and the
    nonzero eigenvalues of their product are those of (ABᵀ)(BAᵀ)/((N_a−1)(N_b−1)), so
    tr √(Σ_a Σ_b) = Σ singular values of ABᵀ / √((N_a−1)(N_b−1)) — an N_a×N_b problem. Equals
    `frechet_distance` of `feature_statistics` (to rounding) and is fast whenever N ≪ D (few objects)."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    centred_a, centred_b = a - mean_a, b - mean_b
    scale_a, scale_b = max(len(a) - 1, 1), max(len(b) - 1, 1)
    trace_a = float(np.sum(centred_a**2)) / scale_a
    trace_b = float(np.sum(centred_b**2)) / scale_b
    cross = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / np.sqrt(scale_a * scale_b)
    diff = mean_a - mean_b
    return float(diff @ diff + trace_a + trace_b - 2.0 * cross)


def frechet_distance_spread(
    features_a: np.ndarray, features_b: np.ndarray, num_resamples: int = DEFAULT_FD_RESAMPLES, seed: int = 0
) -> float:
    """How much the Fréchet distance moves with the sample: the standard deviation of the FD over
    `num_resamples` bootstrap resamples (with replacement) of both `features_*` ((N, D) each). With the few
    dozen objects of a CPU evaluation this spread is large; a table shows it beside the FD. NaN for
    `num_resamples` < 2."""
    if num_resamples < 2:
        return float("nan")
    features_a = np.asarray(features_a, dtype=np.float64)
    features_b = np.asarray(features_b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = [frechet_distance_of_features(features_a[rng.integers(0, len(features_a), len(features_a))],
                                           features_b[rng.integers(0, len(features_b), len(features_b))])
              for _ in range(num_resamples)]
    return float(np.std(values, ddof=1))


# ----------------------------------------------------------------------------------------------
# Normal-FID through clean-fid
# ----------------------------------------------------------------------------------------------


def compute_fid(
    dir_a: PathLike,
    dir_b: PathLike,
    inception_weights: PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    kid_subsets: int = DEFAULT_KID_SUBSETS,
    kid_subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    seed: int = 0,
    verbose: bool = False,
) -> dict:
    """FID and KID between the images of two folders, with clean-fid's Inception features and clean resizing.

    For Normal-FID, `dir_a` holds the ground-truth normal maps and `dir_b` those of the generated shapes
    (the distance is symmetric). Images are found as clean-fid finds them (recursively, by extension).
    `inception_weights`: the local `inception-2015-12-05.pt` (file, or folder holding it); defaults to
    `$TRIPOSG_INCEPTION_WEIGHTS`; nothing is ever downloaded. `device`: CUDA when available by default.
    Returns {"fid", "kid", "kid_std", "extractor": "inception-v3 (clean-fid)", "resize": "clean",
    "inception_weights", "num_images_a", "num_images_b", "feature_dim"}.
    """
    weights = resolve_inception_weights(inception_weights)
    device = _resolve_device(device)
    feature_model = load_inception_feature_model(weights, device)
    result = _folder_distances(
        dir_a, dir_b, feature_model, device=device, batch_size=batch_size, num_workers=num_workers,
        fd_key="fid", kd_key="kid", kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed,
        verbose=verbose,
    )
    labels = {"extractor": INCEPTION_EXTRACTOR_NAME, "resize": CLEAN_FID_MODE, "inception_weights": str(weights)}
    return {**result, **labels}


def compute_folder_fd(
    dir_a: PathLike,
    dir_b: PathLike,
    feature_model: CleanFidFeatureModel,
    extractor_name: str,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    kid_subsets: int = DEFAULT_KID_SUBSETS,
    kid_subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    seed: int = 0,
    verbose: bool = False,
) -> dict:
    """Fréchet and kernel distance between two image folders for any feature model, via clean-fid's pipeline.

    `feature_model` follows clean-fid's `custom_feat_extractor` contract: it receives a float tensor
    (B, 3, 299, 299) with values in [0, 255], already resized the "clean" way, and returns (B, D) features;
    the FD equals `cleanfid.fid.compute_fid(dir_a, dir_b, mode="clean", custom_feat_extractor=feature_model)`.
    Results are labelled with `extractor_name`: e.g. "my-encoder" gives {"fd_my_encoder", "kd_my_encoder",
    "kd_my_encoder_std", "extractor": "my-encoder", "resize": "clean", "num_images_a", "num_images_b",
    "feature_dim"}.
    """
    fd_key, kd_key = _metric_keys(extractor_name)
    result = _folder_distances(
        dir_a, dir_b, feature_model, device=_resolve_device(device), batch_size=batch_size,
        num_workers=num_workers, fd_key=fd_key, kd_key=kd_key, kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size, seed=seed, verbose=verbose,
    )
    return {**result, "extractor": extractor_name, "resize": CLEAN_FID_MODE}


def resolve_inception_weights(inception_weights: PathLike | None = None) -> Path:
    """Path of the local Inception TorchScript file: the argument, else `$TRIPOSG_INCEPTION_WEIGHTS`.

    Either may name the file itself or a folder holding `inception-2015-12-05.pt`. Raises
    `MissingInceptionWeightsError` (with the download URL and where to put the file) when neither is set
    or the path does not exist.
    """
    source = "the inception_weights argument"
    if inception_weights is None:
        inception_weights = os.environ.get(INCEPTION_WEIGHTS_ENV) or None
        source = f"${INCEPTION_WEIGHTS_ENV}"
    if inception_weights is None:
        raise MissingInceptionWeightsError(_missing_weights_message("no Inception weights file was given"))
    path = Path(inception_weights).expanduser()
    if path.is_dir():
        path = path / INCEPTION_FILENAME
    if not path.is_file():
        raise MissingInceptionWeightsError(_missing_weights_message(f"{source} points to {path}, which does not exist"))
    return path


def load_inception_feature_model(weights: PathLike, device: str | torch.device = "cpu") -> CleanFidFeatureModel:
    """clean-fid's own Inception wrapper (`InceptionV3W`, "clean" mode) loaded from a local file, no download.

    The returned callable maps (B, 3, 299, 299) float images in [0, 255] to (B, 2048) pool features.
    `InceptionV3W` looks for the file by its fixed name inside a folder; a file with another name is
    linked (or copied) under that name into a temporary folder just for loading.
    """
    from cleanfid.inception_torchscript import InceptionV3W

    weights = Path(weights)
    try:
        if weights.name == INCEPTION_FILENAME:
            model = InceptionV3W(str(weights.parent), download=False, resize_inside=False)
        else:
            with tempfile.TemporaryDirectory() as folder:
                _link_or_copy(weights.resolve(), Path(folder) / INCEPTION_FILENAME)
                model = InceptionV3W(folder, download=False, resize_inside=False)
    except RuntimeError as error:  # torch.jit.load on something that is not a TorchScript archive
        raise ValueError(f"{weights} is not a loadable TorchScript Inception file ({error}); "
                         f"download the right one from {INCEPTION_URL}") from error
    model = model.to(device).eval()

    def extract(images: torch.Tensor) -> torch.Tensor:
        return model(images)

    return extract


# ----------------------------------------------------------------------------------------------
# Fréchet distance over any named feature extractor
# ----------------------------------------------------------------------------------------------


def compute_feature_fd(
    images_a: ImageSet,
    images_b: ImageSet,
    extractor: BatchFeatureExtractor,
    extractor_name: str,
    *,
    batch_size: int = 32,
    kid_subsets: int = DEFAULT_KID_SUBSETS,
    kid_subset_size: int = DEFAULT_KID_SUBSET_SIZE,
    seed: int = 0,
) -> dict:
    """Fréchet and kernel distance between two image sets in the feature space of a named extractor.

    `images_*`: a folder (images found recursively, sorted), a sequence of PIL images or uint8 (H, W, 3)
    arrays, or a uint8 (N, H, W, 3) array. `extractor`: uint8 (B, H, W, 3) RGB batch → (B, D) features;
    it does its own resizing and normalisation (batches hold consecutive images of one size).
    Labelled by `extractor_name`, never as FID: "FD-DINOv2" or "dinov2" give {"fd_dinov2", "kd_dinov2",
    "kd_dinov2_std", "extractor": extractor_name, "num_images_a", "num_images_b", "feature_dim"}.
    """
    fd_key, kd_key = _metric_keys(extractor_name)
    features_a = _extract_features(_load_images(images_a), extractor, batch_size)
    features_b = _extract_features(_load_images(images_b), extractor, batch_size)
    result = _distances(features_a, features_b, fd_key, kd_key, kid_subsets, kid_subset_size, seed)
    return {**result, "extractor": extractor_name}


def dinov2_extractor(pipe_or_model, processor=None) -> BatchFeatureExtractor:
    """A `compute_feature_fd` extractor from a DINOv2 encoder: the final normalised CLS token per image.

    `pipe_or_model`: a loaded `TripoSGPipeline` (its `image_encoder_dinov2` and `feature_extractor_dinov2`
    are used) or a transformers `Dinov2Model`, in which case `processor` (e.g. a `BitImageProcessor`) is
    required. The CLS token after the last layer norm (`pooler_output`) is the representation FD-DINOv2
    uses. Runs on the encoder's device and dtype; returns float32 (B, hidden size) features.
    """
    model = getattr(pipe_or_model, "image_encoder_dinov2", pipe_or_model)
    if processor is None:
        processor = getattr(pipe_or_model, "feature_extractor_dinov2", None)
    if processor is None:
        raise ValueError("dinov2_extractor needs the image processor that belongs to the encoder: pass a "
                         "pipeline with feature_extractor_dinov2, or processor=")
    parameter = next(model.parameters())

    def extract(images: np.ndarray) -> np.ndarray:
        pixels = processor(images=[Image.fromarray(image) for image in images], return_tensors="pt").pixel_values
        with torch.no_grad():
            output = model(pixels.to(device=parameter.device, dtype=parameter.dtype))
        cls_token = output.pooler_output if output.pooler_output is not None else output.last_hidden_state[:, 0]
        return cls_token.float().cpu().numpy()

    return extract


def pixel_extractor(size: int = 16) -> BatchFeatureExtractor:
    """A `compute_feature_fd` extractor needing no weights: each image box-downsampled to `size`×`size`,
    its RGB values scaled to [-1, 1] and flattened ((B, size·size·3) features).

    For normal maps this compares where the surface faces which way, coarsely: a Fréchet distance any
    installation can compute, where no trained encoder sees normal maps the way Inception does for FID.
    """
    if size < 1:
        raise ValueError(f"pixel_extractor size must be at least 1, got {size}")

    def extract(images: np.ndarray) -> np.ndarray:
        small = [np.asarray(Image.fromarray(image).convert("RGB").resize((size, size), Image.BOX), np.float32)
                 for image in images]
        return (np.stack(small).reshape(len(small), -1) / 127.5 - 1.0).astype(np.float32)

    return extract


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _folder_distances(
    dir_a: PathLike, dir_b: PathLike, feature_model: CleanFidFeatureModel, *, device: torch.device,
    batch_size: int, num_workers: int, fd_key: str, kd_key: str, kid_subsets: int, kid_subset_size: int,
    seed: int, verbose: bool,
) -> dict:
    """Features of both folders from clean-fid's folder pipeline (the one its compute_fid uses), then distances."""
    from cleanfid.fid import get_folder_features

    features = []
    for folder in (dir_a, dir_b):
        _check_image_folder(folder)
        features.append(get_folder_features(
            str(folder), feature_model, num_workers=num_workers, batch_size=batch_size, device=device,
            mode=CLEAN_FID_MODE, description=f"features {Path(folder).name}: ", verbose=verbose,
        ))
    return _distances(features[0], features[1], fd_key, kd_key, kid_subsets, kid_subset_size, seed)


def _distances(
    features_a: np.ndarray, features_b: np.ndarray, fd_key: str, kd_key: str,
    kid_subsets: int, kid_subset_size: int, seed: int,
) -> dict:
    """Fréchet and kernel distance between (N_a, D) and (N_b, D) features, under the given keys."""
    features_a = np.asarray(features_a, dtype=np.float64)
    features_b = np.asarray(features_b, dtype=np.float64)
    fd = frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
    fd_std = frechet_distance_spread(features_a, features_b, seed=seed)
    kd, kd_std = kernel_distance(features_a, features_b, kid_subsets, kid_subset_size, seed)
    return {fd_key: fd, f"{fd_key}_std": fd_std, kd_key: kd, f"{kd_key}_std": kd_std,
            "num_images_a": len(features_a), "num_images_b": len(features_b), "feature_dim": int(features_a.shape[1])}


def _metric_keys(extractor_name: str) -> tuple[str, str]:
    """("fd_<name>", "kd_<name>") from an extractor name: "FD-DINOv2" → ("fd_dinov2", "kd_dinov2")."""
    slug = re.sub(r"[^a-z0-9]+", "_", extractor_name.lower()).strip("_")
    slug = slug.removeprefix("fd_")
    if not slug or slug == "fd":
        raise ValueError(f"extractor_name must name the feature extractor (e.g. 'dinov2'), got {extractor_name!r}")
    return f"fd_{slug}", f"kd_{slug}"


def _check_image_folder(folder: PathLike) -> None:
    from cleanfid.utils import EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    count = sum(1 for path in folder.rglob("*") if path.suffix[1:] in EXTENSIONS and path.is_file())
    if count < 2:
        raise ValueError(f"{folder} holds {count} image(s); a Fréchet distance needs at least 2 per set")


def _load_images(images: ImageSet) -> list[np.ndarray]:
    """Any `ImageSet` → list of uint8 (H, W, 3) RGB arrays."""
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist")
        suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
        paths = sorted(path for path in folder.rglob("*") if path.suffix.lower() in suffixes)
        images = []
        for path in paths:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
    arrays = []
    for image in images:
        if isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"images must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        arrays.append(image)
    if len(arrays) < 2:
        raise ValueError(f"got {len(arrays)} image(s); a Fréchet distance needs at least 2 per set")
    return arrays


def _extract_features(images: list[np.ndarray], extractor: BatchFeatureExtractor, batch_size: int) -> np.ndarray:
    """(N, D) features, calling `extractor` on stacks of up to `batch_size` consecutive same-size images."""
    features, start = [], 0
    while start < len(images):
        stop = start + 1
        while stop < len(images) and stop - start < batch_size and images[stop].shape == images[start].shape:
            stop += 1
        batch = np.stack(images[start:stop])  # (B, H, W, 3)
        batch_features = extractor(batch)
        if isinstance(batch_features, torch.Tensor):
            batch_features = batch_features.detach().float().cpu().numpy()
        batch_features = np.asarray(batch_features)
        if batch_features.ndim != 2 or len(batch_features) != len(batch):
            raise ValueError(f"the extractor must return ({len(batch)}, D) features, got {batch_features.shape}")
        features.append(batch_features)
        start = stop
    return np.concatenate(features)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # A singular product only warns; the caller checks finiteness and retries with an offset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        destination.symlink_to(source)
    except OSError:  # file systems without symlinks
        shutil.copyfile(source, destination)


def _missing_weights_message(reason: str) -> str:
    return (
        f"Normal-FID uses clean-fid's Inception-v3 TorchScript file {INCEPTION_FILENAME}, and {reason}. "
        f"Downloads are never attempted here: on a machine with internet, download it from {INCEPTION_URL} "
        f"(clean-fid may already have cached it as /tmp/{INCEPTION_FILENAME}), then pass its path "
        f"(the file, or the folder holding it) as inception_weights / --inception-weights, or set the "
        f"environment variable {INCEPTION_WEIGHTS_ENV}. Without it, a Fréchet distance over another "
        f"encoder (compute_feature_fd, e.g. FD-DINOv2) is available, labelled as such."
    )
