"""Latent-cache filling shared between processes (as under `accelerate launch` on several GPUs): two CPU
processes started by torchrun encode disjoint shares and both end with the whole cache."""

from __future__ import annotations

import json

from torchrun_launch import run_torchrun

WORKER = """
import json, sys
from accelerate import PartialState
import training.train_flow as train_flow
from training.latents import LatentStore, vae_fingerprint
from triposg.models import TripoSGVAEModel

corpus, vae_folder, cache = sys.argv[1:4]
encoded = []
build = train_flow.build_latent_store
def counting_build(vae, dataset, num_tokens, folder, **kwargs):
    encoded.extend(dataset[i]["object_id"] + f"@{num_tokens}" for i in range(len(dataset)))
    return build(vae, dataset, num_tokens, folder, **kwargs)
train_flow.build_latent_store = counting_build
vae = TripoSGVAEModel.from_pretrained(vae_folder)
data = train_flow.FlowDataConfig(corpus=corpus, split="train", num_surface=256, token_counts=(16, 8),
                                 latent_cache=cache)
train_flow.fill_latent_cache(vae, data)
cached = {m: LatentStore(cache, vae_fingerprint(vae), m).object_ids() for m in (16, 8)}
rank = PartialState().process_index
with open(f"{cache}-rank{rank}.json", "w") as file:  # one file per process: their stdout interleaves
    json.dump({"rank": rank, "encoded": encoded, "cached": cached}, file)
"""


def test_two_processes_fill_the_cache_in_disjoint_shares(training_corpus, vae_folder, tmp_path):
    script = tmp_path / "fill.py"
    script.write_text(WORKER)
    run_torchrun(script, [str(training_corpus), str(vae_folder), str(tmp_path / "latents")])
    results = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("latents-rank*.json"))]
    assert sorted(r["rank"] for r in results) == [0, 1]
    first, second = (set(r["encoded"]) for r in results)
    assert first and second and not first & second  # each process encoded a share, none twice
    assert len(first | second) == 3 * 2  # three objects at two token counts
    for result in results:  # after the barrier both see the whole cache
        assert all(len(ids) == 3 for ids in result["cached"].values())
