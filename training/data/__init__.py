"""Data building (paper §4): procedural shapes and mesh folders → field data, renders, manifest, datasets."""
