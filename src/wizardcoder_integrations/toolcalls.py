"""Compatibility names for code that still imports ``wizardcoder_integrations.toolcalls``; use
:mod:`wizardcoder_integrations.chat` instead."""

from wizardcoder_integrations.chat.render import (
    JSON_PREFIX,
    json_reply_grammar,
    render_json_chat,
    render_reply,
    render_tool_chat,
    response_format_schema,
)
from wizardcoder_integrations.chat.template import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TOOL_RESULT_STOP,
    format_tool_calls,
)
from wizardcoder_integrations.chat.toolcalls import (
    ParsedReply,
    ToolCallStream,
    forced_prefix,
    parse_tool_call,
    parse_tool_calls,
    render_tools,
    tool_call_grammar,
    visible_text,
)
from wizardcoder_integrations.chat.types import InvalidToolCall, ParsedToolCall, ToolSpec, new_call_id

__all__ = [
    "JSON_PREFIX",
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "TOOL_RESULT_STOP",
    "InvalidToolCall",
    "ParsedReply",
    "ParsedToolCall",
    "ToolCallStream",
    "ToolSpec",
    "forced_prefix",
    "format_tool_calls",
    "json_reply_grammar",
    "new_call_id",
    "parse_tool_call",
    "parse_tool_calls",
    "render_json_chat",
    "render_reply",
    "render_tool_chat",
    "render_tools",
    "response_format_schema",
    "tool_call_grammar",
    "visible_text",
]
