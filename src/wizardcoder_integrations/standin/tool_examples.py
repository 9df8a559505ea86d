"""Tool-calling conversations the stand-in learns (chat model and LangChain agents)."""

from __future__ import annotations

__all__ = ["tool_examples"]


def tool_examples() -> list[tuple[str, str]]:
    """(full prompt text, response text without EOS) pairs."""
    return []
