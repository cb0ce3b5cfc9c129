#!/usr/bin/env bash
# Create .venv and install the pinned requirements (idempotent: reinstalls only when requirements change).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps pyrender==0.1.45
  # Editable install of this repo so scripts and benchmarks import triposg from any folder.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi
# Headless rendering needs Mesa's EGL (or OSMesa); say so early rather than failing in a test.
if ! ldconfig -p 2>/dev/null | grep -q -E "libEGL.so|libOSMesa.so"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libegl1 libgl1-mesa-dri libosmesa6 >/dev/null
  else
    echo "warning: no libEGL/libOSMesa found: install Debian packages libegl1 libgl1-mesa-dri (or libosmesa6)" >&2
  fi
fi
