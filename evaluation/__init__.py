"""Evaluation lab: reconstruction metrics, Normal-FID, and a GPTEval3D-style arena with Elo ratings; model
variants for side-by-side ablations (`variants`), the paper's ablation tables (`paper_tables`) and measured
results on disk (`results`)."""
