"""The TripoSG paper's ablation tables (§7, Tables 1–4) as data, to show beside our own measurements.

Numbers from the paper (see `paper-facts.md`). Each table has a `label` column naming the row for bar
charts and the metric columns as the paper prints them; lower is better for Normal-FID and Chamfer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["PaperTable", "paper_ablation_tables"]


@dataclass(frozen=True)
class PaperTable:
    """One ablation table: `frame` holds a `label` column and the paper's columns; `metric` is the column
    a bar chart shows and `lower_is_better` its direction."""

    number: int
    title: str
    frame: pd.DataFrame
    metric: str
    lower_is_better: bool = True
    note: str = ""


def paper_ablation_tables() -> list[PaperTable]:
    """Tables 1–4 of the paper, in order."""
    table1 = pd.DataFrame(
        [("DINOv2", False, "R-Flow", 10.69), ("CLIP-DINOv2", False, "R-Flow", 10.61),
         ("CLIP-DINOv2", True, "DDPM", 9.63), ("CLIP-DINOv2", True, "EDM", 9.50),
         ("CLIP-DINOv2", True, "R-Flow", 9.47)],
        columns=["condition", "skip_connection", "sampler", "normal_fid"],
    )
    table2 = pd.DataFrame(
        [("Objaverse", 512, False, 9.47), ("Objaverse", 2048, False, 8.38), ("Objaverse", 4096, False, 8.12),
         ("Objaverse", 4096, True, 7.94), ("TripoSG", 4096, True, 3.36)],
        columns=["dataset", "num_tokens", "moe", "normal_fid"],
    )
    table3 = pd.DataFrame(
        [("Objaverse", "OCC", False, False, 4.59, 0.999, 0.952), ("Objaverse", "SDF", False, False, 4.60, 0.999, 0.955),
         ("Objaverse", "SDF", True, False, 4.56, 0.999, 0.956), ("Objaverse", "SDF", True, True, 4.57, 0.999, 0.957),
         ("TripoSG", "SDF", True, True, 4.51, 0.999, 0.958)],
        columns=["dataset", "representation", "surface_normal_loss", "eikonal_loss", "chamfer", "f_score",
                 "normal_consistency"],
    )
    table4 = pd.DataFrame(
        [("Objaverse", "800K", False, 11.61), ("Objaverse", "180K", True, 9.47), ("TripoSG", "2M", True, 5.81)],
        columns=["dataset", "size", "data_building_system", "normal_fid"],
    )
    table1.insert(0, "label", [f"{c}{' + skip' if s else ''} · {m}" for c, s, m, _ in table1.itertuples(index=False)])
    table2.insert(0, "label", [f"{d} · {n} tokens{' + MoE' if e else ''}" for d, n, e, _ in table2.itertuples(index=False)])
    table3.insert(0, "label", [f"{d} · {r}{' + L_sn' if n else ''}{' + L_eik' if e else ''}"
                               for d, r, n, e, *_ in table3.itertuples(index=False)])
    table4.insert(0, "label", [f"{d} · {s}{' curated' if c else ' raw'}" for d, s, c, _ in table4.itertuples(index=False)])
    return [
        PaperTable(1, "Flow model improvements: condition, skip connections, sampler (975M, 512 tokens)", table1,
                   "normal_fid"),
        PaperTable(2, "Flow model scaling: latent tokens and MoE", table2, "normal_fid",
                   note="The first row (512 tokens) is the setting of Table 1's last row, 9.47 (§7.1)."),
        PaperTable(3, "VAE: representation, supervision and data (reconstruction)", table3, "chamfer",
                   note="Chamfer as printed in the paper (its scale is not stated); F-score at 0.02."),
        PaperTable(4, "Data quality and quantity", table4, "normal_fid"),
    ]
