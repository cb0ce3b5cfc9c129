"""Bad photos through every entry point (issue 25): the Python API, the app's cut-out handler and the CLI give each
the right result (the object's box in the upright image) or a clear message naming the fix, never a server path.
Cases the older tests already cover elsewhere (animated GIF, corrupt or text files, a 10000² scan, transparent
images) are not repeated here."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from triposg.geometry import read_glb_metadata
from triposg.loading import GenerationDefaults
from triposg.pipelines import make_random_pipeline
from triposg.preprocessing import ImageError, load_image, preprocess_image, read_image_info
from ui import generate as gen
from ui import widgets

ROOT = Path(__file__).resolve().parent.parent
BOX = (16, 12, 48, 52)  # the object's (x0, y0, x1, y1), exclusive end, in `object_photo`


def object_photo(mode: str = "RGB", box=BOX) -> Image.Image:
    """A 64² blue box on a light grey background."""
    rgb = np.full((64, 64, 3), 235, np.uint8)
    rgb[box[1]:box[3], box[0]:box[2]] = (20, 60, 180)
    return Image.fromarray(rgb).convert(mode)


def write_truncated_jpeg(path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def write_bomb_header(path: Path) -> None:
    """A PNG that claims 30000×20000 pixels and holds none: refused from its header, nothing is allocated."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def write_animated_webp(path: Path) -> None:
    object_photo().save(path, save_all=True, append_images=[Image.new("RGB", (64, 64), (235, 235, 235))],
                        duration=100, lossless=True)


def write_sixteen_bit_png(path: Path) -> None:
    grey = np.full((64, 64), 60000, np.uint16)  # values far above 255: clipping would lose the object
    grey[BOX[1]:BOX[3], BOX[0]:BOX[2]] = 5000
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode == "I;16"


def write_exif_rotated_jpeg(path: Path) -> None:
    """Stored sideways (64 wide, 32 tall) with orientation 6: shown 32 wide, 64 tall, the box turned with it."""
    rgb = np.full((32, 64, 3), 235, np.uint8)
    rgb[4:20, 10:40] = (20, 60, 180)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display: stored (x, y) is shown at (31 - y, x)
    Image.fromarray(rgb).save(path, exif=exif, quality=95)


def write_fake_heic(path: Path) -> None:
    path.write_bytes(struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0mif1heic" + b"\0" * 64)


# name → (writer, the object's box in the upright image, or the message naming the fix)
CASES = {
    "truncated.jpg": (write_truncated_jpeg, "truncated.*Re-export it"),
    "one_pixel.jpg": (lambda path: Image.new("RGB", (1, 1), (200, 30, 30)).save(path),
                      "1×1 pixels, too small.*at least"),
    "bomb.png": (write_bomb_header, "too large to decode safely.*resize it to at most 2000 px"),
    "animated.webp": (write_animated_webp, BOX),
    "cmyk.jpg": (lambda path: object_photo("CMYK").save(path, quality=95), BOX),
    "sixteen_bit.png": (write_sixteen_bit_png, BOX),
    "rotated.jpg": (write_exif_rotated_jpeg, (12, 10, 28, 40)),
    "touches_edge.png": (lambda path: object_photo(box=(0, 12, 30, 52)).save(path), (0, 12, 30, 52)),
    "photo.heic": (write_fake_heic, "HEIC/HEIF photo.*pip install pillow-heif.*or export the photo as JPEG"),
}


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    return gen.GenerateHandlers(make_random_pipeline(seed=0), widgets.SessionFolders(tmp_path_factory.mktemp("s")))


@pytest.fixture
def no_heif_plugin(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # as if pillow-heif were not installed


def assert_box(box, expected, tolerance=1):
    """JPEG's ringing may move an edge by a pixel."""
    assert np.abs(np.subtract(box, expected)).max() <= tolerance, (box, expected)


@pytest.mark.parametrize("name", CASES)
def test_bad_photos_through_the_python_api(name, tmp_path, no_heif_plugin):
    write, expected = CASES[name]
    write(tmp_path / name)
    if isinstance(expected, str):
        with pytest.raises(ImageError, match=expected):
            preprocess_image(tmp_path / name)
    else:
        result = preprocess_image(tmp_path / name)
        assert_box(result.bbox, expected)
        assert result.method == "uniform-background"


@pytest.mark.parametrize("name", CASES)
def test_bad_photos_through_the_app(name, handlers, tmp_path, no_heif_plugin):
    write, expected = CASES[name]
    write(tmp_path / name)
    if isinstance(expected, str):
        with pytest.raises(gr.Error, match=expected) as raised:
            handlers.cutout(str(tmp_path / name), "auto", None, 0.9)
        assert str(tmp_path) not in raised.value.message
    else:
        _, status = handlers.cutout(str(tmp_path / name), "auto", None, 0.9)
        x0, x1, y0, y1 = map(int, re.search(r"object in x (\d+)–(\d+), y (\d+)–(\d+)", status).groups())
        assert_box((x0, y0, x1, y1), expected)
        width, height = load_image(tmp_path / name).size
        assert f"{width}×{height}" in status  # the upright size, as the box is given in it


def test_bad_photos_through_the_cli(tmp_path):
    """One run over every case (HEIC aside: CI may have the plugin): the bad ones fail with their message,
    the others are meshed with the object's box recorded, and the run goes on past each failure."""
    model = tmp_path / "model"
    make_random_pipeline(seed=0).save_pretrained(model)
    GenerationDefaults(num_inference_steps=2, guidance_scale=3.0, num_tokens=16, octree_resolution=32).save(model)
    names = [name for name in CASES if name != "photo.heic"]
    for name in names:
        CASES[name][0](tmp_path / name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "triposg", "generate", *(str(tmp_path / n) for n in names),
                             "-o", str(tmp_path / "out"), "--model", str(model)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 1, result.stderr
    for name in names:
        expected = CASES[name][1]
        if isinstance(expected, str):
            assert re.search(f"error: .*{re.escape(name)}: .*{expected}", result.stderr), (name, result.stderr)
        else:
            cutout = read_glb_metadata(tmp_path / "out" / f"{Path(name).stem}.glb")["cutout"]
            assert_box(cutout["bbox"], expected)
    assert "animated (2 frames); only the first frame is used" in result.stdout
    assert "CMYK" in result.stdout


def test_a_lazily_opened_huge_image_is_refused_before_decoding(monkeypatch, tmp_path):
    """Someone who lifted Pillow's own limit and passes the image itself still gets the size check."""
    write_bomb_header(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    lazy = Image.open(tmp_path / "bomb.png")  # header only: nothing is decoded or allocated
    with pytest.raises(ImageError, match="30000×20000 pixels.*resize it"):
        preprocess_image(lazy)


def test_image_info_gives_the_upright_size_and_what_loading_will_do(tmp_path):
    write_exif_rotated_jpeg(tmp_path / "rotated.jpg")
    write_animated_webp(tmp_path / "animated.webp")
    assert read_image_info(tmp_path / "rotated.jpg").size == load_image(tmp_path / "rotated.jpg").size == (32, 64)
    assert read_image_info(tmp_path / "rotated.jpg").notes() == []
    notes = read_image_info(tmp_path / "animated.webp").notes()
    assert notes == ["the image is animated (2 frames); only the first frame is used"]
    assert notes[0].warning  # a frame is dropped: the app shows it as a warning, not as information
    cmyk = Image.new("CMYK", (16, 16))
    cmyk.save(tmp_path / "cmyk.jpg")
    assert [note.warning for note in read_image_info(tmp_path / "cmyk.jpg").notes()] == [False]


def test_heic_goes_to_pillow_heif_when_it_is_installed(monkeypatch, tmp_path):
    """The plugin is optional (its binary wheels are GPLv2): a stand-in checks it is registered only when a HEIC
    file comes, and that the file is then handed to Pillow rather than refused for want of the plugin."""
    registered = []
    monkeypatch.setitem(sys.modules, "pillow_heif", SimpleNamespace(register_heif_opener=lambda: registered.append(1)))
    load_image(object_photo())
    assert not registered
    write_fake_heic(tmp_path / "photo.heic")
    with pytest.raises(ImageError, match="cannot read photo.heic as an image"):  # the stand-in decodes nothing
        load_image(tmp_path / "photo.heic")
    assert registered
