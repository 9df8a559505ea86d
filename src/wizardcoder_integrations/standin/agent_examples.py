"""Agent conversations the stand-in learns (LlamaIndex ReAct/function agents, query engines)."""

from __future__ import annotations

__all__ = ["agent_examples"]


def agent_examples() -> list[tuple[str, str]]:
    """(full prompt text, response text without EOS) pairs."""
    return []
