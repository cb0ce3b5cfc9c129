"""Alias module: the released `model_index.json` names `triposg.models.autoencoders.autoencoder_kl_triposg`."""

from ..vae import TripoSGVAEModel

# Some released VAE configs carry this older class name in `_class_name`.
Tripo2VAEModel = TripoSGVAEModel

__all__ = ["TripoSGVAEModel", "Tripo2VAEModel"]
