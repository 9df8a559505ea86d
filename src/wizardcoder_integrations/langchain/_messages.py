"""LangChain messages -> the package's framework-neutral :class:`ChatMessage` turns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages import (
    ChatMessage as LCChatMessage,
)

from wizardcoder_integrations.chat.types import ChatMessage, ToolCallRecord
from wizardcoder_integrations.errors import ConfigurationError

__all__ = ["to_chat_messages"]

# Content blocks that carry no text for the model (tool calls travel in ``AIMessage.tool_calls``).
_SKIPPED_BLOCKS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "thinking", "reasoning",
                             "redacted_thinking", "server_tool_call", "server_tool_result"})
_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant", "system": "system",
          "developer": "system", "tool": "tool", "function": "tool"}


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    """Convert a LangChain history (a tool result without a name gets its call's name when rendered)."""
    out: list[ChatMessage] = []
    for message in messages:
        text = _text(message)
        if isinstance(message, SystemMessage):
            out.append(ChatMessage("system", text))
        elif isinstance(message, HumanMessage):
            out.append(ChatMessage("user", text))
        elif isinstance(message, AIMessage):
            calls = tuple(ToolCallRecord(c["name"], dict(c["args"]), c.get("id")) for c in message.tool_calls)
            out.append(ChatMessage("assistant", text, calls))
        elif isinstance(message, ToolMessage):
            out.append(ChatMessage("tool", text, name=message.name, tool_call_id=message.tool_call_id))
        elif isinstance(message, FunctionMessage):
            out.append(ChatMessage("tool", text, name=message.name))
        elif isinstance(message, LCChatMessage) and message.role.lower() in _ROLES:
            out.append(ChatMessage(_ROLES[message.role.lower()], text))  # type: ignore[arg-type]
        else:
            raise ConfigurationError(
                f"Cannot render a {type(message).__name__} (role {getattr(message, 'role', message.type)!r}) "
                "for WizardCoder: use system, human, AI or tool messages."
            )
    return out


def _text(message: BaseMessage) -> str:
    content: Any = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") in ("text", "text-plain") and "text" in block:
            parts.append(str(block["text"]))
        elif isinstance(block, dict) and block.get("type") in _SKIPPED_BLOCKS:
            continue
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ConfigurationError(
                f"WizardCoder reads text only, but a {message.type} message has a {kind!r} content block. "
                "Send its content as text instead."
            )
    return "\n".join(parts)
