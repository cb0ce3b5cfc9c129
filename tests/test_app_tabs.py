"""The Ablations, Normal-FID and Arena tabs: variants load once and run side by side, the paper's tables and
measured CSVs are shown, Normal-FID and the arena run on tiny inputs, and user mistakes get clear errors."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest
import trimesh
from test_app import box_with_alpha

import app
from evaluation.fid import INCEPTION_WEIGHTS_ENV
from evaluation.paper_tables import paper_ablation_tables
from evaluation.results import append_history, bar_chart, bar_columns, describe_results_folder, read_results_folder
from evaluation.variants import PipelineCache, VariantSpec, parse_variant_rows, pipeline_with_sampler
from training.data.build import BuildConfig, run_build
from training.data.fields import FieldConfig
from triposg.loading import GenerationDefaults, load_pipeline
from triposg.pipelines import make_random_pipeline
from triposg.schedulers import TripoSGDDPMScheduler
from ui.generate import EXAMPLES_DIR
from ui.lab.arena import ArenaHandlers
from ui.lab.compare import CompareHandlers
from ui.lab.normal_fid import NormalFidHandlers
from ui.lab import variants_table as variants_table_module
from ui.lab.variants_table import MAX_VARIANTS, read_variants, shipped_variants_table
from ui.widgets import SessionFolders

TINY = GenerationDefaults(num_inference_steps=2, guidance_scale=3.0, num_tokens=16, octree_resolution=32, seed=5)
REQUEST = SimpleNamespace(session_hash="tabs-test")
SEED = 5


def no_progress(*args, **kwargs) -> None:
    """Stands in for gr.Progress outside a running app."""


def variants_table(*models: str, **changes) -> pd.DataFrame:
    rows = [{**VariantSpec(model, num_inference_steps=2, num_tokens=16, octree_resolution=32).__dict__, **changes}
            for model in models]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("variant") / "random-pipeline"
    make_random_pipeline(seed=1).save_pretrained(folder)
    TINY.save(folder)
    return folder


@pytest.fixture(scope="module")
def loads():
    return []


@pytest.fixture(scope="module")
def handlers(tmp_path_factory, loads):
    def counting_loader(model, device):
        loads.append(model)
        return load_pipeline(model, device)

    pipe = make_random_pipeline(seed=0)
    pipelines = PipelineCache(pipe, TINY, device="cpu", loader=counting_loader)
    sessions = SessionFolders(tmp_path_factory.mktemp("sessions"))
    compare = CompareHandlers(pipelines, sessions, tmp_path_factory.mktemp("results") / "ablations")
    arena = ArenaHandlers(pipelines, sessions)
    return SimpleNamespace(compare=compare.compare, normal_fid=NormalFidHandlers(pipelines, sessions).normal_fid,
                           arena=arena.arena, comparison=arena.comparison)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    fields = FieldConfig(num_surface=2048, num_near=256, num_volume=256, num_on_surface=256, udf_resolution=32)
    config = BuildConfig(out=out, num=3, workers=1, num_views=1, render_resolution=64, mesh_resolution=32,
                         fields=fields, split_fractions=(0.0, 0.0, 1.0))
    assert run_build(config)["built"] == 3
    return out


def test_paper_tables_hold_the_published_ablations():
    tables = {table.number: table for table in paper_ablation_tables()}
    assert sorted(tables) == [1, 2, 3, 4]
    table1 = tables[1].frame
    assert table1.set_index("sampler").loc[["DDPM", "EDM"], "normal_fid"].tolist() == [9.63, 9.50]
    assert table1["normal_fid"].min() == 9.47 and tables[2].frame["normal_fid"].min() == 3.36
    assert tables[3].frame["normal_consistency"].max() == 0.958 and tables[4].frame["normal_fid"].tolist() == [
        11.61, 9.47, 5.81]
    for table in tables.values():
        assert bar_chart(table.frame, table.metric, "label") is not None


def test_measured_results_folder_missing_empty_and_filled(tmp_path):
    status, names = describe_results_folder(tmp_path / "missing")
    assert "does not exist" in status and names == []
    (tmp_path / "empty").mkdir()
    assert "holds no CSV" in describe_results_folder(tmp_path / "empty")[0]
    pd.DataFrame({"variant": ["rflow", "ddpm"], "steps": [10, 10], "normal_fid": [9.5, 9.7]}).to_csv(
        tmp_path / "empty" / "sampler.csv", index=False)
    (tmp_path / "empty" / "broken.csv").write_text("")
    status, names = describe_results_folder(tmp_path / "empty")
    assert names == ["sampler"] and "broken.csv" in status
    frame = read_results_folder(tmp_path / "empty")[1].frame
    assert bar_columns(frame) == ("variant", "normal_fid")


def test_history_appends_runs(tmp_path):
    append_history(tmp_path / "h.csv", [{"variant": "a", "fid": 1.0}])
    history = append_history(tmp_path / "h.csv", [{"variant": "b", "fd_dinov2": 2.0}])
    assert history["variant"].tolist() == ["a", "b"] and "fd_dinov2" in history


def test_variant_rows_are_validated():
    rows = variants_table("loaded", "loaded", "").to_dict("records")
    assert len(parse_variant_rows(rows)) == 2  # the blank row is skipped
    with pytest.raises(ValueError, match="choose 2 to 4 variants"):
        parse_variant_rows(rows[:1])
    with pytest.raises(ValueError, match="variant 2: sampler must be"):
        parse_variant_rows([rows[0], {**rows[1], "sampler": "euler-a"}])
    with pytest.raises(ValueError, match="variant 2: octree_resolution must be between 8 and 1024"):
        parse_variant_rows([rows[0], {**rows[1], "octree_resolution": 2048, "extraction": "hierarchical"}])
    assert parse_variant_rows([rows[0], {**rows[1], "octree_resolution": 96, "extraction": "hierarchical"}])
    with pytest.raises(ValueError, match="even resolution"):
        parse_variant_rows([rows[0], {**rows[1], "octree_resolution": 49}])
    with pytest.raises(ValueError, match="variant 1: num_tokens must be between 1 and 4096"):
        parse_variant_rows([{**rows[0], "num_tokens": 10_000}, rows[1]])
    assert parse_variant_rows([rows[0], {**rows[1], "octree_resolution": 48}])[1].extraction == "tracking"
    with pytest.raises(gr.Error, match="variant 2: octree_resolution must be a number"):
        read_variants({"headers": list(rows[0]), "data": [list(rows[0].values()), ["loaded", "model", "x"]]})


def test_samplers_must_match_the_models_objective():
    pipe = make_random_pipeline(seed=0)
    with pytest.raises(ValueError, match="needs a model trained with the DDPM"):
        pipeline_with_sampler(pipe, "DDPM")
    assert pipeline_with_sampler(pipe, "rectified flow").scheduler is not pipe.scheduler
    ddpm = make_random_pipeline(seed=0, scheduler=TripoSGDDPMScheduler())
    assert pipeline_with_sampler(ddpm, "DDIM").scheduler.config.eta == 0.0


def test_compare_runs_variants_side_by_side_and_loads_each_model_once(handlers, saved_model, loads, tmp_path):
    image = str(box_with_alpha(tmp_path / "box.png"))
    table = pd.concat([variants_table("loaded"), variants_table(str(saved_model), extraction="dense")])
    for _ in range(2):
        *meshes, summary, timings = handlers.compare(image, SEED, table, REQUEST, no_progress)
    assert loads == [str(saved_model.resolve())]  # loaded once, reused by the second comparison
    glbs, normals = meshes[:MAX_VARIANTS], meshes[MAX_VARIANTS:]
    assert glbs[2:] == [None, None] and normals[2:] == [None, None]
    for glb, normal in zip(glbs[:2], normals[:2]):
        mesh = trimesh.load(glb, force="mesh")
        assert mesh.is_watertight and abs(mesh.vertices).max() <= 1.01  # a closed surface inside the bounds
        assert normal.shape == (256, 256, 3) and (normal != 255).any()  # the object is visible
    assert timings["sample_s"].gt(0).all() and len(timings) == 2 and "dense 32" in summary


def test_the_loaded_pipeline_is_reused_under_its_source_name(saved_model):
    pipe = make_random_pipeline(seed=0)
    pipelines = PipelineCache(pipe, TINY, loader=pytest.fail, loaded_source=str(saved_model))
    assert pipelines.get(str(saved_model))[0] is pipe and pipelines.get("loaded")[0] is pipe
    with pytest.raises(FileNotFoundError, match="not found"):
        pipelines.get("no/such/folder/here")


def test_compare_errors_name_the_fix(handlers, tmp_path):
    image = str(box_with_alpha(tmp_path / "box.png"))
    with pytest.raises(gr.Error, match=r"variant 2 \(.*nowhere\).*not found"):
        handlers.compare(image, SEED, variants_table("loaded", str(tmp_path / "nowhere")), REQUEST, no_progress)
    with pytest.raises(gr.Error, match="needs a model trained with the EDM"):
        handlers.compare(image, SEED, variants_table("loaded", "loaded", sampler="EDM Heun"), REQUEST, no_progress)
    with pytest.raises(gr.Error, match="Upload an image"):
        handlers.compare(None, SEED, variants_table("loaded", "loaded"), REQUEST, no_progress)


def test_normal_fid_runs_with_history_and_rejects_missing_test_sets(handlers, corpus, monkeypatch, tmp_path):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    table = variants_table("loaded")
    results, chart, history, status = handlers.normal_fid(table, str(corpus), "test", None, 0, SEED, REQUEST,
                                                          no_progress)
    assert results["objects"].tolist() == [3]
    assert all(re.fullmatch(r"[\d.]+ ± [\d.]+", cell) for cell in results["fd_dinov2"])  # the FD with its spread
    # 3 objects are fewer than a KD subset: every subset is the whole set, so the KD has no spread to show
    assert "fd_dinov2_std" not in results and all(re.fullmatch(r"-?[\d.e-]+", cell) for cell in results["kd_dinov2"])
    assert chart is not None and "FID is unavailable" in status and len(history) == 1
    history = handlers.normal_fid(table, str(corpus), "test", None, 2, SEED, REQUEST, no_progress)[2]
    assert len(history) == 2  # the session's runs accumulate
    with pytest.raises(gr.Error, match="Choose a test set"):
        handlers.normal_fid(table, "", "test", None, 0, SEED, REQUEST, no_progress)
    with pytest.raises(gr.Error, match="does not exist"):
        handlers.normal_fid(table, str(tmp_path / "nothing"), "test", None, 0, SEED, REQUEST, no_progress)
    with pytest.raises(gr.Error, match="no usable objects in split 'train'"):
        handlers.normal_fid(table, str(corpus), "train", None, 0, SEED, REQUEST, no_progress)


def test_arena_with_the_offline_judge_rates_variants_and_shows_comparisons(handlers, tmp_path):
    images = [str(box_with_alpha(tmp_path / "box.png")), str(EXAMPLES_DIR / "cone.png")]
    table = variants_table("loaded", "loaded", num_inference_steps=1)
    elo, radar, status, slider, folder = handlers.arena(table, images, 0, "offline", SEED, REQUEST, no_progress)
    assert len(elo) == 2 and "overall" in elo.columns and Path(radar).is_file()
    assert "PROXY" in status and slider["maximum"] >= 0
    cells = elo.drop(columns="method").to_numpy().ravel()
    assert sum("(fixed reference)" in cell for cell in cells) == len(elo.columns) - 1  # the anchor, per criterion
    assert all(re.fullmatch(r"-?\d+ \[-?\d+, -?\d+\]", cell) for cell in cells if "fixed" not in cell)
    assert "fixed reference at 1000" in status
    image, text = handlers.comparison(folder, 0)
    assert Path(image).is_file() and "Judge replies" in text and "Votes" in text
    with pytest.raises(gr.Error, match="judge: the public"):
        handlers.arena(table, images, 0, "anthropic", SEED, REQUEST, no_progress)  # no key in the environment
    assert handlers.comparison(None, 0)[1] == "Run an arena first."


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    demo = app.build_demo(make_random_pipeline(seed=0), TINY, tmp_path_factory.mktemp("api-sessions"),
                          results_dir=tmp_path_factory.mktemp("no-results"))
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield Client(url, verbose=False)
    demo.close()


def test_compare_api_returns_meshes_and_renders(client, tmp_path):
    from gradio_client import handle_file

    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert list(endpoints) == ["/generate", "/cutout", "/compare", "/normal_fid", "/arena"]
    table = variants_table("loaded", "loaded", guidance_scale=1.0)
    result = client.predict(handle_file(str(box_with_alpha(tmp_path / "box.png"))), SEED,
                            {"headers": list(table.columns), "data": table.values.tolist()}, api_name="/compare")
    glbs, normals = result[:MAX_VARIANTS], result[MAX_VARIANTS:2 * MAX_VARIANTS]
    assert all(trimesh.load(glb, force="mesh").is_watertight for glb in glbs[:2]) and glbs[2] is None
    assert Path(normals[0]).is_file() and "cfg 1" in result[-2]
    with pytest.raises(Exception, match="choose 2 to 4 variants"):
        client.predict(handle_file(str(tmp_path / "box.png")), SEED,
                       {"headers": list(table.columns), "data": table.values.tolist()[:1]}, api_name="/compare")


def test_normal_fid_takes_an_uploaded_zip_of_meshes(handlers, monkeypatch, tmp_path):
    import zipfile

    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    archive = tmp_path / "meshes.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("box.ply", trimesh.creation.box((1.0, 1.5, 0.8)).export(file_type="ply"))
        zipped.writestr("ball.ply", trimesh.creation.icosphere(2).export(file_type="ply"))
    results, *_, status = handlers.normal_fid(variants_table("loaded"), "", "test", str(archive), 0, SEED, REQUEST,
                                              no_progress)
    assert results["objects"].tolist() == [2] and "meshes" in status
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zipped:
        zipped.writestr("notes.txt", "no meshes here")
    with pytest.raises(gr.Error, match="no mesh files"):
        handlers.normal_fid(variants_table("loaded"), "", "test", str(tmp_path / "empty.zip"), 0, SEED, REQUEST,
                            no_progress)


def test_normal_fid_and_arena_apis(client, corpus, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)  # the server runs in this process
    one = variants_table("loaded")
    results, _, history, status = client.predict(
        {"headers": list(one.columns), "data": one.values.tolist()}, str(corpus), "test", None, 2, SEED,
        api_name="/normal_fid")
    row = dict(zip(results["headers"], results["data"][0]))
    assert (row["objects"], row["failed"]) == (2, 0) and row["variant"].startswith("1: loaded")
    assert "2 objects" in status and len(history["data"]) == 1
    two = variants_table("loaded", "loaded", num_inference_steps=1)
    elo, radar, status, _ = client.predict(  # the run folder is session state, not an API output
        {"headers": list(two.columns), "data": two.values.tolist()}, [], 2, "offline", SEED, api_name="/arena")
    assert len(elo["data"]) == 2 and Path(radar).is_file() and "PROXY" in status
    with pytest.raises(Exception, match="Choose a test set"):
        client.predict({"headers": list(one.columns), "data": one.values.tolist()}, "", "test", None, 0, SEED,
                       api_name="/normal_fid")


def test_shipped_variant_groups_fill_the_variants_table(tmp_path, monkeypatch):
    import evaluation.variants as variants_module

    for group, variant, steps in [("tokens", "tokens-128", 7), ("tokens", "tokens-32", 5), ("tokens", "tokens-64", 6),
                                  ("skip", "no-skip", 9), ("skip", "notes", None)]:
        folder = tmp_path / group / variant
        folder.mkdir(parents=True)
        if steps is not None:  # a folder without model_index.json is not a variant
            (folder / "model_index.json").write_text("{}")
            GenerationDefaults(num_inference_steps=steps, num_tokens=steps * 8, octree_resolution=64).save(folder)
    groups = variants_module.shipped_variant_groups(tmp_path)
    assert list(groups) == ["skip", "tokens"]
    assert [p.name for p in groups["tokens"]] == ["tokens-32", "tokens-64", "tokens-128"]
    assert [p.name for p in groups["skip"]] == ["no-skip"]

    monkeypatch.chdir(tmp_path)
    specs = variants_module.shipped_variant_specs(groups["tokens"])
    assert [s.model for s in specs] == [str(Path("tokens") / name) for name in ("tokens-32", "tokens-64", "tokens-128")]
    assert [(s.num_inference_steps, s.num_tokens, s.octree_resolution) for s in specs] == [(5, 40, 64), (6, 48, 64),
                                                                                          (7, 56, 64)]
    assert parse_variant_rows([vars(s) for s in specs], min_count=3) == specs  # the table accepts them as they are

    monkeypatch.setattr(variants_table_module, "shipped_variant_groups", lambda: groups)
    table = shipped_variants_table("tokens")
    assert len(table) == MAX_VARIANTS and table["model"].tolist()[-1] == ""
    with pytest.raises(gr.Error, match="no shipped ablation variants named 'nope'"):
        shipped_variants_table("nope")
