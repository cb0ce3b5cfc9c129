#!/usr/bin/env bash
# One short command for a session lent a GPU: issue 26's GPU variant. The release script's loading line and call run
# unchanged on CUDA in fp16 with a CUDA generator, on a tiny folder in the release layout, against the independent
# restatement in tests/official_reference.py: latents bit for bit, the mesh within half a voxel of the dense
# marching cubes at the release's 512 cells per side; then the octree-depth keywords in fp16. About a minute.
#   bash benchmarks/gpu_official_compat.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.cuda.get_device_name())"
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
# -s prints the measured differences; CUDA is checked above, so the selected tests cannot be skipped.
"$python" -m pytest tests/test_official_compat.py -k "cuda" -s -v "$@"
