"""`python -m evaluation arena` and `elo` on folders of meshes with the offline proxy judge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import trimesh
from PIL import Image

from evaluation.__main__ import main


def silhouette_image(path, kind: str) -> None:
    """A front-view-like foreground: a disc (sphere) or a tall rectangle (box) on white."""
    yy, xx = np.mgrid[:128, :128]
    if kind == "sphere":
        inside = (xx - 64) ** 2 + (yy - 64) ** 2 < 40**2
    else:
        inside = (abs(xx - 64) < 20) & (abs(yy - 64) < 50)
    rgb = np.full((128, 128, 3), 255, np.uint8)
    rgb[inside] = (90, 90, 200)
    Image.fromarray(rgb).save(path)


def test_arena_and_elo_commands(tmp_path, capsys):
    images, good, bad = tmp_path / "images", tmp_path / "good", tmp_path / "bad"
    for folder in (images, good, bad):
        folder.mkdir()
    shapes = {"sphere": trimesh.creation.icosphere(subdivisions=2),
              "box": trimesh.creation.box(extents=(0.8, 2.0, 0.8))}
    for name, mesh in shapes.items():
        silhouette_image(images / f"{name}.png", name)
        mesh.export(good / f"{name}.obj")
    shapes["box"].export(bad / "sphere.obj")  # the wrong shape for each image
    shapes["sphere"].export(bad / "box.obj")

    out = tmp_path / "arena"
    code = main(["arena", "--methods", f"good={good}", f"bad={bad}", "--images", str(images), "--judge", "offline",
                 "--views-per-comparison", "1", "--completions", "1", "--criteria", "alignment", "--out", str(out)])
    assert code == 0
    ratings = pd.read_csv(out / "ratings.csv")
    by_method = ratings.set_index("method")["rating"]
    assert by_method["good"] > by_method["bad"]
    assert "good" in capsys.readouterr().out

    code = main(["elo", str(out / "votes.csv"), "--bootstrap", "20", "--out", str(tmp_path / "refit.csv")])
    assert code == 0
    refit = pd.read_csv(tmp_path / "refit.csv").set_index("method")["rating"]
    assert abs(refit["good"] - by_method["good"]) < 1e-3


def test_arena_command_errors_are_clear(tmp_path, capsys):
    code = main(["arena", "--methods", "only=x", "--images", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2 and "at least two methods" in capsys.readouterr().err
