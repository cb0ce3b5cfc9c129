"""TripoSG: image-to-3D shape generation with a rectified-flow transformer over an SDF VAE."""
