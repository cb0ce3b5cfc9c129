"""Run a script in several CPU processes started by torchrun, as `accelerate launch` starts them on several GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).parents[1]


def run_torchrun(script: Path, args: list[str], num_processes: int = 2, timeout: float = 180) -> str:
    """Run `script args` in `num_processes` processes (one thread each) from the repository root; returns
    torchrun's stderr. Fails the test when torchrun fails or runs past `timeout` seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes),
         str(script), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPOSITORY)
    try:
        _, stderr = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.terminate()  # SIGTERM lets torchrun stop its workers (own sessions: a SIGKILL would orphan them)
        _, stderr = run.communicate(timeout=60)
        pytest.fail(f"torchrun did not finish in {timeout} s: {stderr[-3000:]}")
    assert run.returncode == 0, stderr[-3000:]
    return stderr
