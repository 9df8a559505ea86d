"""What an engine serves, for adapters' metadata (shared by the in-process and remote engines)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EngineInfo"]


@dataclass(frozen=True)
class EngineInfo:
    """What is loaded (or served), for adapters' metadata."""

    model: str
    revision: str | None
    profile: str | None
    device: str
    dtype: str
    context_length: int
    quantization: str | None
