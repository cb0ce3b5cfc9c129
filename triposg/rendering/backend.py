"""The headless OpenGL backend: which platform (EGL, surfaceless EGL, OSMesa), the one GL thread, and the
cached offscreen renderers.

PyOpenGL fixes its platform when it is first imported, so nothing is chosen at import time of this
module. On the first render a backend is picked once per process: an explicit `PYOPENGL_PLATFORM`
is respected; otherwise EGL, EGL with `EGL_PLATFORM=surfaceless`, then OSMesa are each tried in a
short subprocess (a failed platform cannot be swapped out inside a process) and the first that
works is set in `os.environ`. All OpenGL work then runs on one dedicated thread, because a GL context
is bound to the thread that made it current; one `pyrender.OffscreenRenderer` is cached per
resolution on that thread.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class RendererUnavailableError(RuntimeError):
    """No headless OpenGL backend (EGL or OSMesa) could be started on this machine."""


# Each candidate: (name shown to users, environment variables that select it).
_BACKEND_CANDIDATES = (
    ("egl", {"PYOPENGL_PLATFORM": "egl"}),
    ("egl (surfaceless)", {"PYOPENGL_PLATFORM": "egl", "EGL_PLATFORM": "surfaceless"}),
    ("osmesa", {"PYOPENGL_PLATFORM": "osmesa"}),
)
_INSTALL_HINT = (
    "Install the Debian packages libegl1 libgl1-mesa-dri (EGL, preferred; works on CPU via llvmpipe "
    "and on NVIDIA GPUs), or libosmesa6 for OSMesa, together with PyOpenGL>=3.1.7 and pyrender; "
    "or set PYOPENGL_PLATFORM to a platform that works on this machine."
)
# Creates and frees a tiny offscreen context; run in a subprocess per candidate platform.
_PROBE_SCRIPT = """
import numpy as np
if not hasattr(np, "infty"):
    np.infty = np.inf
import pyrender
renderer = pyrender.OffscreenRenderer(8, 8)
renderer.delete()
"""

_backend_lock = threading.Lock()
_backend_name: str | None = None
_gl_executor: ThreadPoolExecutor | None = None
_renderers: dict[tuple[int, int], object] = {}  # (resolution, msaa) -> OffscreenRenderer; GL thread only
# pyrender hard-codes 4x multisampling when it allocates a renderer's framebuffer (on its first render).
# `_multisample_storage` replaces the GL call it uses and reads the sample count set here just before each
# render, so every cached renderer keeps the count it was created with. Touched on the GL thread only.
_msaa_samples = 4
MSAA_CHOICES = (0, 2, 4, 8)


def _probe_backend(env_overrides: dict[str, str]) -> str | None:
    """Try a platform in a subprocess; return None on success, else the last line of its error."""
    env = {**os.environ, **env_overrides}
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _PROBE_SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return "timed out while creating a context"
    if completed.returncode == 0:
        return None
    lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {completed.returncode}"


def _select_backend() -> str:
    """Pick the OpenGL platform once per process and export it in `os.environ` for pyrender."""
    global _backend_name
    with _backend_lock:
        if _backend_name is not None:
            return _backend_name
        if "PYOPENGL_PLATFORM" in os.environ:  # the user's choice wins; failures surface on first use
            _backend_name = os.environ["PYOPENGL_PLATFORM"]
            return _backend_name
        failures = []
        for name, env_overrides in _BACKEND_CANDIDATES:
            error = _probe_backend(env_overrides)
            if error is None:
                os.environ.update(env_overrides)
                _backend_name = name
                return name
            failures.append(f"{name}: {error}")
        raise RendererUnavailableError(
            "No headless OpenGL backend could be started. Tried " + "; ".join(failures) + ". " + _INSTALL_HINT
        )


def import_pyrender():
    # pyrender 0.1.45 still uses `np.infty`, which numpy 2 removed; restore the alias before importing it.
    if not hasattr(np, "infty"):
        np.infty = np.inf
    try:
        import pyrender
    except ImportError as error:
        raise RendererUnavailableError(f"pyrender could not be imported ({error}). {_INSTALL_HINT}") from error
    return pyrender


def renderer_backend() -> str:
    """Select (if needed) and return the OpenGL backend: "egl", "egl (surfaceless)", "osmesa", or the
    user's `PYOPENGL_PLATFORM`. Raises `RendererUnavailableError` if none works."""
    return _select_backend()


def _load_triton_before_mesa() -> None:
    """Import triton (installed with torch on Linux) before the first OpenGL context exists.

    Mesa's llvmpipe and triton each bring their own LLVM; importing triton after a llvmpipe context was
    created crashes the process (segmentation fault), and torch imports triton lazily (e.g. on the first
    `import diffusers`, through torch._dynamo). Loaded in this order, both work.
    """
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def run_on_gl_thread(function, *args):
    """Run `function(*args)` on the single thread that owns every OpenGL context of this process."""
    global _gl_executor
    _select_backend()
    with _backend_lock:
        if _gl_executor is None:
            _load_triton_before_mesa()
            _gl_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triposg-gl")
    return _gl_executor.submit(function, *args).result()


def _multisample_storage(target, samples, internal_format, width, height):
    from OpenGL.GL import glRenderbufferStorageMultisample

    glRenderbufferStorageMultisample(target, _msaa_samples, internal_format, width, height)


def get_renderer(pyrender, resolution: int, msaa: int = 4):
    """The cached offscreen renderer for this resolution and sample count (GL thread only)."""
    global _msaa_samples
    import pyrender.renderer

    pyrender.renderer.glRenderbufferStorageMultisample = _multisample_storage
    _msaa_samples = msaa
    renderer = _renderers.get((resolution, msaa))
    if renderer is None:
        try:
            renderer = pyrender.OffscreenRenderer(resolution, resolution)
        except Exception as error:  # pyrender raises assertions, ctypes and GL errors alike
            raise RendererUnavailableError(
                f"could not create an OpenGL context with backend {_backend_name!r}: "
                f"{type(error).__name__}: {error}. {_INSTALL_HINT}"
            ) from error
        _renderers[(resolution, msaa)] = renderer
    return renderer
