"""Run the paper's ablations in miniature (§7, Tables 1–4): train matched variants, evaluate, write a CSV.

    python -m experiments.ablations list
    python -m experiments.ablations run experiments/ablations/groups/table3-vae.yaml --corpus data/tiny \
        [--out results/ablations] [--seeds 0 1] [--set train.max_steps=100] [--eval limit=8] \
        [--var NAME=VALUE]
    python -m experiments.ablations report [--out results/ablations]   # REPORT.md: our tables beside the paper's

A group file (`experiments/ablations/groups/*.yaml`) describes variants that differ in one factor:

    kind: vae | flow               # which trainer and which evaluation
    base: training/configs/vae-tiny.yaml
    budget: {max_steps: 300}       # `train.*` settings every variant shares
    seeds: [0]                     # `train.seed` of each run (--seeds replaces the list)
    overrides: {key.sub: value}    # shared by every variant (optional)
    variants: {name: {key.sub: value, ...}}
    evaluate: {split: test, ...}   # `EvaluateConfig` fields
    vars: {name: default}          # `${name}` placeholders, set with --var name=value (optional)
    paper_table: 3                 # the paper's table the group reproduces (optional)
    paper_rows: {name: "Objaverse · OCC"}  # variant → the paper table's row label it stands for (optional)
    paper_note: "..."              # how the variants differ from the paper's rows (optional)

A variant's config is, in order: the base preset, `data.corpus = --corpus`, the budget, the shared
overrides, the variant's overrides, then `--set`; the runner finally sets `train.output_dir` and
`train.seed`. Strings may hold `${corpus}`, `${run:VARIANT}` (that variant's run folder for the same seed;
it must be listed earlier) and `${name}` for a `vars` entry.

For each variant × seed: train into `<out>/runs/<group>/<variant>-s<seed>` (continuing from its latest
checkpoint when interrupted), evaluate on the `--corpus` test split, and store `result.json` there. A run
whose `result.json` says "ok" is skipped on the next invocation (delete its folder, or just `result.json`
to re-evaluate, after changing its settings); a failed one is recorded (status and error in the CSV) and
retried next time. A run whose resolved config, corpus and evaluation settings equal those of a run
finished in any group under `<out>` (groups share variants: Table 1's "skip" run is also the objective
group's rectified-flow run) is not trained again: its result is copied, naming the source in `reused_from`.
After every run `<out>/<group>.csv` is rewritten from all
results: one row per variant × seed and, for variants with several finished seeds, a `mean` row with
`<metric>_std` columns (the layout `evaluation.results.read_results_folder` and the app's Ablations tab read).
Beside it, `<out>/<group>.json` holds what `evaluation.ablation_report` needs to set the table next to the
paper's without importing this package: the paper table and rows, each metric's direction, the command.

Evaluation: VAE groups reconstruct the test objects (`evaluation.vae_recon`: Chamfer, F-score@0.02 and
normal consistency in the [-1, 1] frame); flow groups run the Normal-FID protocol (`evaluation.normal_fid`:
`normal_fid` when local Inception weights exist, `fd_pixels16` over the normal maps downsampled to 16×16
(no weights), `fd_dinov2` over one fixed DINOv2 encoder for every
variant — by default the embedded default model's, so that distances are comparable across variants —
plus Chamfer / F-score / normal consistency against the ground-truth surface).

One concept a module: `group` (a group file, checked, and each variant × seed's training config), `run`
(training and evaluating the runs), `table` (the results folder: the tables, their sidecars, REPORT.md) and
`__main__` (the command line).
"""

from .group import (
    GROUPS_DIR,
    AblationGroup,
    AblationGroupError,
    EvaluateConfig,
    list_groups,
    load_group,
    run_dir,
    variant_config,
)
from .run import run_fingerprint, run_group
from .table import DEFAULT_CORPUS, DEFAULT_OUT, group_command, group_info, write_group_table, write_report

__all__ = ["DEFAULT_CORPUS", "DEFAULT_OUT", "GROUPS_DIR", "AblationGroup", "AblationGroupError", "EvaluateConfig",
           "group_command", "group_info", "list_groups", "load_group", "run_dir", "run_fingerprint", "run_group",
           "variant_config", "write_group_table", "write_report"]
