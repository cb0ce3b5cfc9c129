"""Training stack for TripoSG: data building (`training.data`), losses, trainers and configs."""
