"""Alias module: the released `model_index.json` names `triposg.models.transformers.triposg_transformer`."""

from ..transformer import TripoSGDiTModel, TripoSGDiTModelOutput

__all__ = ["TripoSGDiTModel", "TripoSGDiTModelOutput"]
