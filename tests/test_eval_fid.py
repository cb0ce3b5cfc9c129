"""Fréchet/kernel distances: closed forms, clean-fid's folder pipeline with a test-local extractor,
local Inception weights without any download, and extractor labels."""

import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import fid
from evaluation.fid import (
    INCEPTION_FILENAME,
    INCEPTION_URL,
    INCEPTION_WEIGHTS_ENV,
    MissingInceptionWeightsError,
    compute_feature_fd,
    compute_fid,
    compute_folder_fd,
    dinov2_extractor,
    frechet_distance,
    kernel_distance,
    load_inception_feature_model,
    pixel_extractor,
)

NUM_IMAGES = 12
IMAGE_SIZE = 32


def channel_statistics(images: torch.Tensor) -> torch.Tensor:
    """Test-local clean-fid feature model: (B, 3, 299, 299) in [0, 255] → (B, 6) channel means and stds."""
    flat = images.flatten(2) / 255.0
    return torch.cat([flat.mean(dim=2), flat.std(dim=2)], dim=1)


def write_images(folder, brightness: float, seed: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for index in range(NUM_IMAGES):
        tint = rng.uniform(-30, 30, size=3)  # per-image colour variation gives the features a spread
        pixels = rng.normal(brightness + tint, 20.0, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{index:03d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_images(root / "dark", brightness=90.0, seed=0)
    write_images(root / "bright", brightness=160.0, seed=1)
    return root / "dark", root / "bright"


@pytest.fixture
def no_downloads(monkeypatch):
    """Fail the test if anything tries to download (clean-fid's helpers or urllib directly)."""
    import cleanfid.downloads_helper
    import cleanfid.inception_torchscript

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(cleanfid.downloads_helper, "check_download_inception", refuse)
    monkeypatch.setattr(cleanfid.inception_torchscript, "check_download_inception", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 2.0, size=5), rng.uniform(0.1, 2.0, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_symmetric_form_for_full_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    # Tr((Σ1 Σ2)^½) = Tr((Σ1^½ Σ2 Σ1^½)^½), whose eigenvalues are real and non-negative.
    values, vectors = np.linalg.eigh(sigma1)
    root1 = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    trace_root = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ sigma2 @ root1)))
    expected = np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root
    assert frechet_distance(np.zeros(4), sigma1, np.zeros(4), sigma2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(np.ones(4), sigma1, np.zeros(4), sigma1) == pytest.approx(4.0, abs=1e-9)


def test_frechet_distance_survives_singular_covariances():
    features = np.random.default_rng(2).normal(size=(3, 8))  # 3 samples in 8 dimensions: rank 2
    sigma = np.cov(features, rowvar=False)
    assert frechet_distance(features.mean(0), sigma, features.mean(0), sigma) == pytest.approx(0.0, abs=1e-4)


def test_kernel_distance_equals_clean_fid_on_full_sets():
    from cleanfid.fid import kernel_distance as clean_fid_kernel_distance

    rng = np.random.default_rng(3)
    features_a, features_b = rng.normal(size=(20, 6)), rng.normal(0.5, 1.0, size=(20, 6))
    # With subsets as large as the sets, each subset is a permutation and the estimate is exact.
    ours, spread = kernel_distance(features_a, features_b, num_subsets=3, max_subset_size=20)
    assert ours == pytest.approx(clean_fid_kernel_distance(features_a, features_b, num_subsets=3), rel=1e-9)
    assert np.isnan(spread)  # every subset is the whole set: no spread to report, rather than a false 0
    larger_b = np.concatenate([features_b, rng.normal(0.5, 1.0, size=(10, 6))])
    assert kernel_distance(features_a, larger_b, num_subsets=5, max_subset_size=20)[1] > 0  # b's subsets vary


def test_folder_fd_through_clean_fid_pipeline(folders):
    dark, bright = folders
    same = compute_folder_fd(dark, dark, channel_statistics, "channel-stats", device="cpu")
    different = compute_folder_fd(dark, bright, channel_statistics, "channel-stats", device="cpu")
    assert same["fd_channel_stats"] == pytest.approx(0.0, abs=1e-8)
    # KID's cross term includes i == j pairs, so a set against itself scores slightly below 0.
    assert abs(same["kd_channel_stats"]) < 0.01
    assert different["fd_channel_stats"] > 0.05  # ≈ squared mean shift of 70/255 per channel
    assert different["kd_channel_stats"] > 10 * abs(same["kd_channel_stats"])
    assert different["num_images_a"] == different["num_images_b"] == NUM_IMAGES
    assert different["feature_dim"] == 6 and different["resize"] == "clean"
    assert "fid" not in different and "kid" not in different


def test_folder_fd_equals_clean_fid_compute_fid(folders):
    from cleanfid import fid as clean_fid

    dark, bright = folders
    theirs = clean_fid.compute_fid(
        str(dark), str(bright), mode="clean", custom_feat_extractor=channel_statistics,
        device=torch.device("cpu"), num_workers=0, verbose=False,
    )
    ours = compute_folder_fd(dark, bright, channel_statistics, "channel-stats", device="cpu")
    assert ours["fd_channel_stats"] == pytest.approx(theirs, rel=1e-6)


def test_missing_inception_weights_fail_clearly_without_download(folders, monkeypatch, no_downloads):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(MissingInceptionWeightsError) as error:
        compute_fid(*folders)
    message = str(error.value)
    assert INCEPTION_FILENAME in message and INCEPTION_WEIGHTS_ENV in message and INCEPTION_URL in message

    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(folders[0] / "nowhere.pt"))
    with pytest.raises(MissingInceptionWeightsError, match="does not exist"):
        compute_fid(*folders)


def test_inception_url_is_clean_fids():
    import cleanfid.downloads_helper

    assert INCEPTION_URL == cleanfid.downloads_helper.inception_url


class _PoolLayers(torch.nn.Module):
    """Stands in for Inception's layers: (B, 3, 299, 299) normalised images → (B, 2048)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        means = images.mean(dim=(2, 3))  # (B, 3)
        return torch.cat([means, torch.zeros(images.shape[0], 2045)], dim=1)


class _FakeInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _PoolLayers()

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(images)


@pytest.fixture(scope="module")
def fake_inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "my-inception.pt"  # not the canonical name on purpose
    torch.jit.script(_FakeInception()).save(str(path))
    return path


def test_local_inception_file_loads_through_clean_fid_wrapper(fake_inception_file, no_downloads):
    extract = load_inception_feature_model(fake_inception_file)
    images = torch.full((2, 3, 299, 299), 192.0)
    features = extract(images)
    assert features.shape == (2, 2048)
    # clean-fid's wrapper normalises (x - 128) / 128 before the layers.
    torch.testing.assert_close(features[:, :3], torch.full((2, 3), 0.5))


def test_compute_fid_uses_weights_from_environment(folders, fake_inception_file, monkeypatch, no_downloads):
    seen_dims = []

    def recording_frechet_distance(mu1, sigma1, mu2, sigma2):
        seen_dims.append(len(mu1))  # a 2048-d sqrtm takes tens of seconds on a CI core; skip it here
        return 1.5

    monkeypatch.setattr(fid, "frechet_distance", recording_frechet_distance)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(fake_inception_file))
    result = compute_fid(*folders, device="cpu", kid_subsets=2)
    assert seen_dims == [2048]
    assert result["fid"] == 1.5 and result["kid"] > 0
    assert result["extractor"] == "inception-v3 (clean-fid)"
    assert result["inception_weights"] == str(fake_inception_file)


def test_feature_fd_is_labelled_with_its_extractor(folders):
    dark, bright = folders

    def mean_colour(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1, 3).mean(axis=1) / 255.0  # (B, 3)

    result = compute_feature_fd(dark, bright, mean_colour, "FD-Mean-Colour")
    assert {"fd_mean_colour", "kd_mean_colour", "kd_mean_colour_std"} <= result.keys()
    assert not {"fid", "kid"} & result.keys()
    assert result["extractor"] == "FD-Mean-Colour" and result["fd_mean_colour"] > 0.05

    images = [np.asarray(Image.open(path)) for path in sorted(dark.glob("*.png"))]
    itself = compute_feature_fd(images, np.stack(images), mean_colour, "mean colour", batch_size=5)
    assert itself["fd_mean_colour"] == pytest.approx(0.0, abs=1e-10)

    with pytest.raises(ValueError, match="extractor_name"):
        compute_feature_fd(dark, bright, mean_colour, "FD")


def test_dinov2_extractor_labels_fd_dinov2(folders):
    from transformers import Dinov2Config, Dinov2Model

    from triposg.pipelines.random_init import dinov2_processor

    torch.manual_seed(0)
    encoder = Dinov2Model(Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=28,
        patch_size=14,
    )).eval()
    extract = dinov2_extractor(encoder, dinov2_processor(28))
    batch = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    assert extract(batch).shape == (2, 16)

    result = compute_feature_fd(*folders, extract, "FD-DINOv2", kid_subsets=5)
    assert result["fd_dinov2"] > 0 and result["feature_dim"] == 16
    with pytest.raises(ValueError, match="processor"):
        dinov2_extractor(encoder)


def test_pixel_extractor_compares_downsampled_images(folders):
    extract = pixel_extractor(4)
    batch = np.full((2, IMAGE_SIZE, IMAGE_SIZE, 3), 255, dtype=np.uint8)
    batch[1, :, : IMAGE_SIZE // 2] = 0  # left half black: the box filter keeps the split
    features = extract(batch)
    assert features.shape == (2, 48) and np.allclose(features[0], 1.0)
    assert np.allclose(features[1].reshape(4, 4, 3)[:, :2], -1.0) and np.allclose(features[1].reshape(4, 4, 3)[:, 2:], 1.0)

    same = compute_feature_fd(folders[0], folders[0], extract, "FD-pixels4", kid_subsets=5)
    different = compute_feature_fd(*folders, extract, "FD-pixels4", kid_subsets=5)
    assert same["fd_pixels4"] == pytest.approx(0.0, abs=1e-6)
    assert different["fd_pixels4"] > 1.0 and different["feature_dim"] == 48
    with pytest.raises(ValueError, match="size"):
        pixel_extractor(0)


def test_frechet_distance_of_features_equals_the_matrix_square_root_form_and_its_spread_shrinks_with_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 40)), rng.normal(0.3, 1.5, size=(9, 40))  # fewer samples than dimensions
    direct = fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b))
    assert fid.frechet_distance_of_features(a, b) == pytest.approx(direct, rel=1e-6)
    wide_a, wide_b = rng.normal(size=(60, 5)), rng.normal(0.5, 1.0, size=(60, 5))  # more samples than dimensions
    wide = fid.frechet_distance(*fid.feature_statistics(wide_a), *fid.feature_statistics(wide_b))
    assert fid.frechet_distance_of_features(wide_a, wide_b) == pytest.approx(wide, rel=1e-6)
    few = fid.frechet_distance_spread(rng.normal(size=(10, 8)), rng.normal(0.5, 1, size=(10, 8)), 20)
    many = fid.frechet_distance_spread(rng.normal(size=(400, 8)), rng.normal(0.5, 1, size=(400, 8)), 20)
    assert few > 3 * many > 0
    assert np.isnan(fid.frechet_distance_spread(a, b, num_resamples=1))
