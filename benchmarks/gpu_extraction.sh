#!/usr/bin/env bash
# One short command for a session lent a GPU: mesh extraction with a release-width VAE decoder on CUDA, in fp16
# and bf16 (SDPA picks flash attention there), tracking against hierarchical (dense is estimated). A few minutes.
#   bash benchmarks/gpu_extraction.sh [extra arguments for benchmarks/extraction.py]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print(torch.cuda.get_device_name())"
for dtype in float16 bfloat16; do
  echo "== $dtype"
  "$python" benchmarks/extraction.py --field release --device cuda --dtype "$dtype" --resolutions 256 512 \
    --methods tracking hierarchical dense --estimate dense "$@"
done
