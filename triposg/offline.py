"""Whether the user asked for offline: nothing is downloaded then (weights, the segmentation model).

`TRIPOSG_OFFLINE=1` is this project's switch; Hugging Face's own `HF_HUB_OFFLINE=1` counts as well, so one
variable keeps a whole offline setup offline. Code that would download checks `offline_requested()` first
and, when offline, fails (or falls back) with a message naming the variable.
"""

from __future__ import annotations

import os

OFFLINE_ENV = "TRIPOSG_OFFLINE"
_TRUE = ("1", "true", "yes", "on")


def offline_requested() -> bool:
    """True when `$TRIPOSG_OFFLINE` or `$HF_HUB_OFFLINE` is set to 1 / true / yes / on."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in (OFFLINE_ENV, "HF_HUB_OFFLINE"))
