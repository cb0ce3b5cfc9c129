"""Experiments: studies that train models and then evaluate them (`ablations`: the paper's ablations in miniature).

They sit above `training` and `evaluation` and import both, so imports run one way: nothing in `triposg`,
`training` or `evaluation` imports this package, and training never has to reach into evaluation.
"""
