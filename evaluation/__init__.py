"""Evaluation lab: reconstruction metrics, Normal-FID, and a GPTEval3D-style arena with Elo ratings."""
