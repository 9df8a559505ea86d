"""LlamaIndex messages and tools -> the chat layer's types, and a :class:`Reply` -> a LlamaIndex message."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.tools import BaseTool

from wizardcoder_integrations.chat.template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from wizardcoder_integrations.chat.types import ChatMessage as Turn
from wizardcoder_integrations.chat.types import Reply, ToolCallRecord, ToolSpec
from wizardcoder_integrations.errors import ConfigurationError

__all__ = ["arguments", "reply_message", "to_tool_specs", "to_turns"]

_ROLES = {
    MessageRole.SYSTEM: "system", MessageRole.DEVELOPER: "system", MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant", MessageRole.MODEL: "assistant", MessageRole.CHATBOT: "assistant",
    MessageRole.TOOL: "tool", MessageRole.FUNCTION: "tool",
}


def to_turns(messages: Sequence[ChatMessage]) -> list[Turn]:
    """LlamaIndex messages as the chat layer's turns (tool calls, tool names and call ids kept)."""
    turns = []
    for message in messages:
        role = _ROLES.get(message.role)
        if role is None:
            raise ConfigurationError(f"Unknown chat role {message.role!r}: use system, user, assistant or tool.")
        texts: list[str] = []
        calls: list[ToolCallRecord] = []
        for block in message.blocks:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolCallBlock):
                calls.append(ToolCallRecord(block.tool_name, arguments(block.tool_kwargs), block.tool_call_id))
            elif block.block_type not in ("thinking", "cache"):
                raise ConfigurationError(
                    f"WizardCoder reads text only, but a {role} message holds a {block.block_type!r} block. "
                    "Pass its content as text.")
        extra = message.additional_kwargs
        if not calls:
            calls.extend(_openai_calls(extra.get("tool_calls")))
        name = extra.get("name") or extra.get("tool_name")
        turns.append(Turn(role, "\n".join(texts), tuple(calls), name if role == "tool" else None,  # type: ignore[arg-type]
                          extra.get("tool_call_id")))
    return turns


def reply_message(reply: Reply) -> ChatMessage:
    """The assistant message of a reply: its prose, a ``ToolCallBlock`` per call, and the calls OpenAI-style in
    ``additional_kwargs["tool_calls"]`` (where LlamaIndex's streaming structured output looks for them).

    Invalid calls are kept in ``additional_kwargs["invalid_tool_calls"]`` and, as the model wrote them, in a
    second text block, so an agent shows the model its mistake.
    """
    blocks: list[Any] = [TextBlock(text=reply.text)]
    if reply.invalid_tool_calls:
        written = "\n".join(f"{TOOL_CALL_OPEN}\n{c.raw}\n{TOOL_CALL_CLOSE}" for c in reply.invalid_tool_calls)
        blocks.append(TextBlock(text=written))
    blocks += [ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments) for c in reply.tool_calls]
    message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)
    if reply.tool_calls:
        message.additional_kwargs["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for c in reply.tool_calls
        ]
    if reply.invalid_tool_calls:
        message.additional_kwargs["invalid_tool_calls"] = [
            {"id": c.id, "name": c.name, "raw": c.raw, "error": c.error} for c in reply.invalid_tool_calls
        ]
    return message


def to_tool_specs(tools: Sequence[Any]) -> list[ToolSpec]:
    """LlamaIndex tools (or the chat layer's own specs) as the model sees them."""
    specs = []
    for tool in tools:
        if isinstance(tool, ToolSpec):
            specs.append(tool)
        elif isinstance(tool, BaseTool):
            meta = tool.metadata
            specs.append(ToolSpec(meta.get_name(), meta.description, meta.get_parameters_dict()))
        else:
            raise ConfigurationError(
                f"tools must be LlamaIndex tools (FunctionTool, ...) or ToolSpec, got {type(tool).__name__}.")
    return specs


def arguments(value: Any) -> dict[str, Any]:
    """A call's arguments as a dict (a JSON string is parsed; anything unparsable is ``{}``)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


def _openai_calls(raw: Any) -> list[ToolCallRecord]:
    """Tool calls kept OpenAI-style in ``additional_kwargs['tool_calls']`` (other integrations, our replies)."""
    calls = []
    for item in raw or []:
        data = item if isinstance(item, dict) else getattr(item, "model_dump", lambda: {})()
        fn = data.get("function") or data
        if isinstance(fn, dict) and fn.get("name"):
            calls.append(ToolCallRecord(fn["name"], arguments(fn.get("arguments", {})), data.get("id")))
    return calls
