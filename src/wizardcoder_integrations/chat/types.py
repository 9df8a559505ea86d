"""Framework-neutral chat types: turns, tools, tool calls, and the assembled reply."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ChatMessage",
    "FinishReason",
    "InvalidToolCall",
    "ParsedToolCall",
    "Reply",
    "Role",
    "ToolCallRecord",
    "ToolSpec",
    "Usage",
    "new_call_id",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call the assistant made earlier in the conversation: rendered back into later prompts."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation, independent of any framework's message classes.

    ``name`` is the tool's name for ``role="tool"``; when it is missing, the name of the call whose
    ``tool_call_id`` the result answers is used (OpenAI clients send tool results without a name).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCallRecord, ...] = field(default=())
    name: str | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: a name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ParsedToolCall:
    """A well-formed call of a known tool, parsed from the reply."""

    name: str
    arguments: dict[str, Any]
    id: str


@dataclass(frozen=True)
class InvalidToolCall:
    """A tool call the model tried to make but wrote wrongly (bad JSON, unknown tool, ...); ``error`` says what."""

    raw: str
    error: str
    id: str
    name: str | None = None


@dataclass(frozen=True)
class Usage:
    """Tokens one request read and wrote (``completion_tokens`` counts the end-of-sequence token)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Reply:
    """A whole chat reply: prose, tool calls (valid and invalid), why it ended, and the tokens it took.

    ``text`` is the prose only (tool-call markup removed, whitespace around it dropped); ``finish_reason``
    is ``"tool_calls"`` when the reply holds valid calls and stopped on its own.
    """

    text: str
    tool_calls: tuple[ParsedToolCall, ...]
    invalid_tool_calls: tuple[InvalidToolCall, ...]
    finish_reason: FinishReason
    stop_sequence: str | None
    usage: Usage


def new_call_id() -> str:
    """A fresh id for a tool call, in OpenAI's spelling."""
    return f"call_{uuid.uuid4().hex[:24]}"
