"""Where the stand-in and its tokenizer are cached (shared by every checkout, keyed by content)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$WIZARDCODER_STANDIN_CACHE``, else ``$XDG_CACHE_HOME/wizardcoder-integrations`` (``~/.cache/...``)."""
    base = os.environ.get("WIZARDCODER_STANDIN_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wizardcoder-integrations"
