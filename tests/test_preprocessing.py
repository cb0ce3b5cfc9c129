"""Image preprocessing: alpha / plain-background segmentation, crop and pad, and clear errors on bad input."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from triposg.preprocessing import ImageError, load_image, preprocess_image, read_image_info


def disc(size=120, center=(50, 70), radius=30):
    yy, xx = np.mgrid[:size, :size]
    return (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius**2


def measured_ratio(mask_image: Image.Image) -> float:
    mask = np.asarray(mask_image) > 127
    ys, xs = np.nonzero(mask)
    return max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / mask.shape[0]


def test_alpha_channel_is_used_and_foreground_fills_the_ratio():
    inside = disc()
    rgba = np.zeros((120, 120, 4), np.uint8)
    rgba[..., :3] = (0, 255, 0)  # garbage colour under transparent pixels must not leak
    rgba[inside] = (200, 30, 30, 255)
    result = preprocess_image(Image.fromarray(rgba, "RGBA"), foreground_ratio=0.9)
    assert result.method == "alpha"
    assert result.image.mode == "RGB" and result.image.width == result.image.height
    assert measured_ratio(result.mask) == pytest.approx(0.9, abs=0.03)
    pixels = np.asarray(result.image)
    assert (pixels[0, 0] == 255).all() and (pixels[-1, -1] == 255).all()  # white background
    center = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert tuple(center) == (200, 30, 30)
    assert result.bbox == (20, 40, 81, 101)


@pytest.mark.parametrize("background", [(170, 210, 240), (128, 128, 128), (0, 0, 0), (255, 255, 255)])
def test_plain_background_is_segmented(background):
    inside = disc()
    rgb = np.empty((120, 120, 3), np.uint8)
    rgb[:] = background
    rgb[inside] = (220, 120, 20)
    result = preprocess_image(Image.fromarray(rgb), foreground_ratio=0.8)
    assert result.method == "uniform-background"
    x0, y0, x1, y1 = result.bbox
    recovered = np.zeros_like(inside)
    # Map the output mask back into the input frame to compare with the truth.
    side = result.mask.width
    long_side = max(x1 - x0, y1 - y0)
    top, left = (side - (y1 - y0)) // 2, (side - (x1 - x0)) // 2
    out_mask = np.asarray(result.mask) > 127
    recovered[y0:y1, x0:x1] = out_mask[top:top + y1 - y0, left:left + x1 - x0]
    iou = (recovered & inside).sum() / (recovered | inside).sum()
    assert iou > 0.95
    assert long_side / side == pytest.approx(0.8, abs=0.02)


def test_noisy_plain_background_and_holes():
    rng = np.random.default_rng(0)
    inside = disc()
    rgb = np.clip(rng.normal(200, 4, (120, 120, 3)), 0, 255).astype(np.uint8)
    rgb[inside] = (40, 60, 160)
    rgb[65:75, 45:55] = 200  # a background-coloured patch inside the object is a hole to fill
    result = preprocess_image(Image.fromarray(rgb))
    mask = np.asarray(result.mask) > 127
    assert mask[mask.shape[0] // 2, mask.shape[1] // 2]
    assert result.method == "uniform-background"


def test_forcing_the_plain_method_on_a_cluttered_background_is_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ImageError, match="not plain.*grabcut"):
        preprocess_image(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), background="uniform")


def test_blank_image_has_no_foreground():
    with pytest.raises(ImageError, match="no foreground"):
        preprocess_image(Image.new("RGB", (64, 64), (30, 30, 30)))
    with pytest.raises(ImageError, match="no foreground"):
        preprocess_image(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), background="alpha")


def test_forcing_rembg_without_a_model_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("TRIPOSG_REMBG_MODEL", raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))  # an empty rembg model folder
    monkeypatch.setenv("TRIPOSG_OFFLINE", "1")
    with pytest.raises(ImageError, match="TRIPOSG_REMBG_MODEL"):
        preprocess_image(Image.new("RGB", (32, 32)), background="rembg")


def test_corrupt_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 40), (255, 0, 0)).save(good)
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="corrupt"):
        load_image(tmp_path / "corrupt.png")
    with pytest.raises(ImageError, match="corrupt"):
        load_image(tmp_path / "truncated.png")
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    assert load_image(good).size == (40, 40)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (no pixel data): must be rejected before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_a_10000_pixel_square_is_refused_from_its_header_with_its_size(tmp_path):
    (tmp_path / "scan.png").write_bytes(png_header_only(10_000, 10_000))
    for read in (load_image, read_image_info):
        with pytest.raises(ImageError, match="10000×10000 pixels.*resize it"):
            read(tmp_path / "scan.png")


def test_huge_images_are_rejected_and_large_ones_capped(tmp_path):
    (tmp_path / "huge.png").write_bytes(png_header_only(60000, 60000))
    with pytest.raises(ImageError, match="large|pixels"):
        load_image(tmp_path / "huge.png")
    assert max(load_image(Image.new("RGB", (4000, 1000))).size) == 2000
    with pytest.raises(ImageError, match="zero size"):
        load_image(np.zeros((0, 5, 3), np.uint8))


@pytest.mark.parametrize("mode", ["P", "LA", "L", "I;16", "CMYK", "1", "F"])
def test_odd_modes_become_rgb_or_rgba(mode):
    base = Image.new("RGB", (32, 32), (250, 250, 250))
    base.paste((10, 10, 200), (8, 8, 24, 24))
    image = base.convert(mode) if mode not in ("I;16", "F") else base.convert("L").convert(mode)
    loaded = load_image(image)
    assert loaded.mode in ("RGB", "RGBA")
    result = preprocess_image(image)
    assert result.image.size[0] == result.image.size[1]


def test_tiny_images_are_a_clear_error():
    for size in ((1, 1), (3, 40)):
        with pytest.raises(ImageError, match="too small"):
            preprocess_image(Image.new("RGB", size, (200, 30, 30)))


def test_fully_transparent_image_is_a_clear_error():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[disc(64, (32, 32), 20)] = (200, 30, 30, 0)  # a leftover colour under alpha 0 is no object
    with pytest.raises(ImageError, match="fully transparent"):
        preprocess_image(Image.fromarray(rgba, "RGBA"))


def test_image_info_reads_frames_and_stored_mode(tmp_path):
    frames = [Image.new("RGB", (32, 32), color) for color in ("red", "green", "blue")]
    frames[0].save(tmp_path / "spin.gif", save_all=True, append_images=frames[1:])
    Image.new("CMYK", (48, 24), (0, 200, 0, 0)).save(tmp_path / "print.jpg")
    gif, jpeg = read_image_info(tmp_path / "spin.gif"), read_image_info(tmp_path / "print.jpg")
    assert (gif.format, gif.num_frames, gif.size) == ("GIF", 3, (32, 32))
    assert (jpeg.format, jpeg.mode, jpeg.num_frames) == ("JPEG", "CMYK", 1)
    assert load_image(tmp_path / "spin.gif").size == (32, 32)  # the first frame
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        read_image_info(tmp_path / "notes.txt")


def test_arrays_are_accepted():
    rgba = np.zeros((50, 50, 4), np.float32)
    rgba[10:40, 15:35] = (0.2, 0.4, 0.8, 1.0)
    assert preprocess_image(rgba).method == "alpha"
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 7), np.uint8))


def antialiased_disc(size=120, center=(60, 60), radius=30, supersample=4):
    """(H, W) float coverage of a disc, so its edge pixels are true mixtures with the background."""
    n = size * supersample
    yy, xx = (np.mgrid[:n, :n] + 0.5) / supersample
    inside = (xx - center[0]) ** 2 + (yy - center[1]) ** 2 <= radius**2
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def test_plain_background_edges_leave_no_dark_fringe():
    coverage = antialiased_disc()[..., None]
    foreground = np.array([220.0, 120.0, 20.0])
    rgb = (coverage * foreground + (1.0 - coverage) * 0.0 + 0.5).astype(np.uint8)  # on black
    result = preprocess_image(Image.fromarray(rgb))
    assert result.method == "uniform-background"
    pixels = np.asarray(result.image).astype(np.float32)
    # Every pixel is a mix of the object colour and white: no channel may drop below the object's own.
    assert (pixels >= foreground - 6).all()


def test_stray_specks_in_alpha_do_not_stretch_the_crop():
    rgba = np.zeros((120, 120, 4), np.uint8)
    rgba[disc()] = (200, 30, 30, 255)
    rgba[2, 117] = (0, 0, 0, 255)  # one opaque speck far from the object
    result = preprocess_image(Image.fromarray(rgba, "RGBA"))
    assert result.bbox == (20, 40, 81, 101)


def test_achieved_ratio_and_output_size():
    rgba = np.zeros((120, 120, 4), np.uint8)
    rgba[disc()] = (200, 30, 30, 255)
    result = preprocess_image(Image.fromarray(rgba, "RGBA"), foreground_ratio=0.9, output_size=64)
    assert result.image.size == (64, 64) and result.mask.size == (64, 64)
    assert result.foreground_ratio == pytest.approx(61 / 68)  # 61 px long side in a 68 px square
    with pytest.raises(ValueError, match="foreground_ratio"):
        preprocess_image(Image.fromarray(rgba, "RGBA"), foreground_ratio=1.5)


def test_transparent_palette_and_la_images_use_their_alpha():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 20:44] = (255, 255, 255, 255)
    la = Image.fromarray(rgba, "RGBA").convert("LA")
    palette = Image.fromarray(rgba, "RGBA").convert("P")  # PIL keeps the transparent index
    for image in (la, palette):
        assert load_image(image).mode == "RGBA"
        assert preprocess_image(image).method == "alpha"


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(tmp_path / "sideways.jpg", exif=exif)
    assert load_image(tmp_path / "sideways.jpg").size == (20, 40)


def test_array_value_ranges_are_checked():
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 200.0, np.float32))
    with pytest.raises(ImageError, match="uint8"):
        load_image(np.full((4, 4, 3), 1000, np.int64))
    assert load_image(np.full((4, 4), 65535, np.uint16)).getpixel((0, 0)) == (255, 255, 255)


def test_explicit_missing_rembg_model_is_an_error(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        preprocess_image(Image.new("RGB", (32, 32)), rembg_model_path=tmp_path / "missing.onnx")


def test_rembg_runs_from_a_local_model_file_with_one_cached_session(tmp_path, monkeypatch):
    """rembg itself is optional; a stand-in module checks how we call it (local file, no download, cache)."""
    import sys
    import types

    from triposg.preprocessing import segmentation

    sessions = []

    def new_session(name, **kwargs):
        sessions.append((name, kwargs))
        return object()

    def remove(image, session, only_mask):
        assert only_mask
        return Image.fromarray((disc() * 255).astype(np.uint8), "L")

    monkeypatch.setitem(sys.modules, "rembg", types.SimpleNamespace(new_session=new_session, remove=remove))
    segmentation._rembg_session.cache_clear()
    model = tmp_path / "u2net.onnx"
    model.write_bytes(b"onnx")
    monkeypatch.setenv("TRIPOSG_REMBG_MODEL", str(model))
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8))
    first = preprocess_image(photo)
    second = preprocess_image(photo, background="rembg")
    segmentation._rembg_session.cache_clear()
    assert first.method == second.method == "rembg"
    assert first.bbox == (20, 40, 81, 101)
    assert sessions == [("u2net_custom", {"model_path": str(model)})]  # created once, from the local file
