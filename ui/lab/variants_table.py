"""The variants table the lab's tabs share: its starting rows, its help text, reading it back as
`VariantSpec`s, and filling it with a shipped ablation group."""

from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
import pandas as pd

from evaluation.variants import (
    EXTRACTION_METHODS,
    LOADED_MODEL,
    MODEL_SAMPLER,
    SAMPLERS,
    VARIANT_COLUMNS,
    VariantSpec,
    parse_variant_rows,
    shipped_variant_groups,
    shipped_variant_specs,
)
from triposg.loading import GenerationDefaults

MAX_VARIANTS = 4  # side-by-side slots in the Ablations tab; rows of every variants table

VARIANTS_HELP = (
    f"**model**: `{LOADED_MODEL}` (the model this app runs), `default` (the embedded model), a pipeline folder "
    f"or a hub id; each is loaded once. **sampler**: `{MODEL_SAMPLER}` (the model's own) or one of "
    f"{', '.join(f'`{name}`' for name in SAMPLERS)} — only those matching the objective the model was trained "
    "with (a rectified-flow model predicts a velocity; running it with a DDPM or EDM update is not an "
    "ablation, so it is refused). **extraction**: " + " or ".join(f"`{m}`" for m in EXTRACTION_METHODS) + "."
)


def padded(rows: list[dict]) -> pd.DataFrame:
    """`rows` as a variants table with empty rows up to `MAX_VARIANTS` (a row without a model is skipped)."""
    rows = rows + [{column: "" for column in VARIANT_COLUMNS}] * (MAX_VARIANTS - len(rows))
    return pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))


def default_variants(defaults: GenerationDefaults) -> pd.DataFrame:
    """The starting rows: the loaded model as it ships, and with half the steps."""
    base = VariantSpec(LOADED_MODEL, MODEL_SAMPLER, defaults.num_inference_steps, defaults.guidance_scale,
                       defaults.num_tokens, defaults.octree_resolution)
    fewer_steps = dataclasses.replace(base, num_inference_steps=max(1, base.num_inference_steps // 2))
    return padded([dataclasses.asdict(base), dataclasses.asdict(fewer_steps)])


def read_variants(table: pd.DataFrame | dict | list | None, min_count: int = 2) -> list[VariantSpec]:
    """The variants table (a DataFrame from the UI, or {"headers", "data"} from an API client) as specs;
    `gr.Error` for a bad value."""
    if isinstance(table, dict):
        table = pd.DataFrame(table.get("data") or [], columns=table.get("headers"))
    frame = pd.DataFrame(table if table is not None else [])
    rows = [{key: (None if isinstance(value, float) and np.isnan(value) else value) for key, value in row.items()}
            for row in frame.to_dict("records")]
    try:
        return parse_variant_rows(rows, min_count=min_count, max_count=MAX_VARIANTS)
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None


def shipped_variants_table(group: str | None) -> pd.DataFrame:
    """The variants table filled with a shipped ablation group's variants (up to `MAX_VARIANTS`), each
    with its own sampler and `generation_config.json` settings."""
    paths = shipped_variant_groups().get(group or "")
    if not paths:
        raise gr.Error(f"no shipped ablation variants named {group!r}; the shipped groups are in "
                       "assets/ablation-variants", print_exception=False)
    return padded([dataclasses.asdict(spec) for spec in shipped_variant_specs(paths[:MAX_VARIANTS])])


def variants_input(defaults: GenerationDefaults, label: str) -> gr.Dataframe:
    """The editable variants table (one row per variant; a row without a model is skipped), with its help."""
    table = gr.Dataframe(
        default_variants(defaults), headers=list(VARIANT_COLUMNS), label=label, interactive=True,
        datatype=["str", "str", "number", "number", "number", "number", "str"], column_count=len(VARIANT_COLUMNS),
        wrap=True,
    )
    gr.Markdown(VARIANTS_HELP)
    return table
