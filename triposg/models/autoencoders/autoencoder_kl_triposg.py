"""Alias module: the released `model_index.json` names `triposg.models.autoencoders.autoencoder_kl_triposg`."""

# diffusers looks up the loader base classes (ModelMixin, ...) as attributes of the named module.
from diffusers.models.modeling_utils import ModelMixin

from ..vae import TripoSGVAEModel

# Some released VAE configs carry this older class name in `_class_name`.
Tripo2VAEModel = TripoSGVAEModel

__all__ = ["ModelMixin", "Tripo2VAEModel", "TripoSGVAEModel"]
