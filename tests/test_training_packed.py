"""Packed checkpoints (training.engine.packed): what a run commits to git to resume in a later session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_training_flow import read_log, tiny_args

from training.engine.checkpoint import list_checkpoints
from training.engine.packed import PackedCheckpointError, pack_checkpoint, read_packed, unpack_checkpoint
from training.train_flow import main


def _own(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def six_step_run(training_corpus, vae_folder, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("packed-run")
    main(tiny_args(training_corpus, vae_folder, run, "train.sample_every=0"))
    return run


def test_exact_pack_round_trips_every_tensor_and_random_state(six_step_run, tmp_path):
    checkpoint = list_checkpoints(six_step_run / "checkpoints")[-1]
    packed = pack_checkpoint(checkpoint, tmp_path / "packed", lossy={})
    assert sorted(p.name for p in packed.iterdir()) == ["state.json", "tensors.safetensors"]
    state = read_packed(packed)
    assert state["step"] == 6
    original = _own(checkpoint / "training_state.pt")
    for name, value in torch.load(checkpoint / "model" / "model.pt", weights_only=True).items():
        assert torch.equal(state["model"][name], value), name
    for index, moments in original["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(state["training_state"]["optimizer"]["state"][index][key], value), (index, key)
    assert state["training_state"]["optimizer"]["param_groups"] == original["optimizer"]["param_groups"]
    assert state["training_state"]["scheduler"] == original["scheduler"]
    assert state["training_state"]["extra"] == original["extra"]  # the collate's Python RNG, a nested tuple
    rng = _own(checkpoint / "rng_state_0.pt")
    assert state["rng"]["0"]["python"] == rng["python"]
    assert torch.equal(state["rng"]["0"]["torch"], rng["torch"])
    assert (state["rng"]["0"]["numpy"][1] == rng["numpy"][1]).all()
    assert state["rng"]["0"]["numpy"][1].dtype == rng["numpy"][1].dtype


def test_default_pack_is_smaller_and_lossy_only_where_declared(six_step_run, tmp_path):
    checkpoint = list_checkpoints(six_step_run / "checkpoints")[-1]
    exact = pack_checkpoint(checkpoint, tmp_path / "exact", lossy={})
    small = pack_checkpoint(checkpoint, tmp_path / "small")
    exact_size, small_size = ((p / "tensors.safetensors").stat().st_size for p in (exact, small))
    assert small_size < 0.75 * exact_size
    state, original = read_packed(small), _own(checkpoint / "training_state.pt")
    for name, value in torch.load(checkpoint / "model" / "model.pt", weights_only=True).items():
        assert torch.equal(state["model"][name], value), name  # the trained weights stay float32
    moments = state["training_state"]["optimizer"]["state"][0]
    assert moments["exp_avg"].dtype == torch.float32  # restored to the declared dtype ...
    torch.testing.assert_close(moments["exp_avg"], original["optimizer"]["state"][0]["exp_avg"],
                               rtol=1e-2, atol=1e-8)  # ... within bfloat16's precision
    name = next(iter(original["ema"]["shadow"]))
    torch.testing.assert_close(state["training_state"]["ema"]["shadow"][name], original["ema"]["shadow"][name],
                               rtol=1e-3, atol=1e-4)


def test_resuming_from_an_exact_pack_in_a_new_run_equals_resuming_the_run(
        six_step_run, training_corpus, vae_folder, tmp_path):
    """What a later session does: a fresh run folder, `--resume <packed>`; the result is the same run."""
    checkpoint = list_checkpoints(six_step_run / "checkpoints")[-1]
    packed = pack_checkpoint(checkpoint, tmp_path / "packed", lossy={})
    continued = tmp_path / "continued"
    main(tiny_args(training_corpus, vae_folder, continued, "train.max_steps=8", "train.sample_every=0")
         + ["--resume", str(packed)])
    assert [c.name for c in list_checkpoints(continued / "checkpoints")] == ["checkpoint-00000006",
                                                                            "checkpoint-00000008"]
    assert [int(r["step"]) for r in read_log(continued)] == [8]
    reference = tmp_path / "reference"
    main(tiny_args(training_corpus, vae_folder, reference, "train.max_steps=8", "train.sample_every=0")
         + ["--resume", str(checkpoint)])
    ours = torch.load(continued / "checkpoints" / "checkpoint-00000008" / "model" / "model.pt", weights_only=True)
    theirs = torch.load(reference / "checkpoints" / "checkpoint-00000008" / "model" / "model.pt", weights_only=True)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


def test_resuming_from_an_older_pack_warns_about_the_newer_local_checkpoint(
        six_step_run, training_corpus, vae_folder, tmp_path):
    packed = pack_checkpoint(list_checkpoints(six_step_run / "checkpoints")[-1], tmp_path / "packed")  # step 6
    run = tmp_path / "run"
    args = tiny_args(training_corpus, vae_folder, run, "train.max_steps=8", "train.sample_every=0")
    main(args + ["--resume", str(packed)])  # the run now has checkpoint 8
    with pytest.warns(UserWarning, match=r"newer checkpoint \(checkpoint-00000008\).*--resume latest"):
        main(args + ["--resume", str(packed)])


def test_unpack_keeps_an_existing_local_checkpoint(six_step_run, tmp_path):
    checkpoint = list_checkpoints(six_step_run / "checkpoints")[-1]
    packed = pack_checkpoint(checkpoint, tmp_path / "packed")
    first = unpack_checkpoint(packed, tmp_path / "run" / "checkpoints")
    marker = first / "training_state.pt"
    before = marker.stat().st_mtime_ns
    assert unpack_checkpoint(packed, tmp_path / "run" / "checkpoints") == first
    assert marker.stat().st_mtime_ns == before
    ema = torch.load(first / "model_ema" / "model.pt", weights_only=True)
    model = torch.load(first / "model" / "model.pt", weights_only=True)
    assert ema.keys() == model.keys() and any(not torch.equal(ema[k], model[k]) for k in ema)


def test_bad_packed_folders_are_named(six_step_run, tmp_path):
    with pytest.raises(PackedCheckpointError, match="not a packed checkpoint"):
        read_packed(tmp_path)
    with pytest.raises(PackedCheckpointError, match="not a complete checkpoint"):
        pack_checkpoint(tmp_path, tmp_path / "out")
    packed = pack_checkpoint(list_checkpoints(six_step_run / "checkpoints")[-1], tmp_path / "packed")
    document = json.loads((packed / "state.json").read_text())
    document["format"] = "something-else/9"
    (packed / "state.json").write_text(json.dumps(document))
    with pytest.raises(PackedCheckpointError, match="format"):
        read_packed(packed)


def test_packing_refuses_what_it_cannot_store():
    from training.engine.packed import _encode

    with pytest.raises(PackedCheckpointError, match="cannot pack object"):
        _encode({"a": [object()]}, "", {}, {})
