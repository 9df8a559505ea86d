"""The only part of the package that imports torch and transformers.

Names resolve lazily, so ``RemoteEngine`` (which talks to a server over HTTP) works without torch installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from wizardcoder_integrations.extras import extra_imports

__all__ = [
    "Engine",
    "EngineInfo",
    "FinishReason",
    "GenerationResult",
    "RemoteEngine",
    "SamplingParams",
    "StreamDelta",
    "TokenLogprob",
]

_WHERE = {
    "Engine": "engine",
    "EngineInfo": "info",
    "FinishReason": "results",
    "GenerationResult": "results",
    "RemoteEngine": "remote",
    "SamplingParams": "params",
    "StreamDelta": "results",
    "TokenLogprob": "results",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with extra_imports("gptq"):  # Engine needs torch; RemoteEngine does not (httpx is checked when it connects)
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
