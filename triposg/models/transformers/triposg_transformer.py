"""Alias module: the released `model_index.json` names `triposg.models.transformers.triposg_transformer`."""

# diffusers looks up the loader base classes (ModelMixin, ...) as attributes of the named module.
from diffusers.models.modeling_utils import ModelMixin

from ..transformer import TripoSGDiTModel, TripoSGDiTModelOutput

__all__ = ["ModelMixin", "TripoSGDiTModel", "TripoSGDiTModelOutput"]
