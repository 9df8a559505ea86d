"""The framework-neutral chat layer shared by every front door (LangChain, LlamaIndex, serve, the CLI).

- types: :class:`ChatMessage`, :class:`ToolSpec`, :class:`ToolCallRecord`, :class:`ParsedToolCall`,
  :class:`InvalidToolCall`, :class:`Reply`, :class:`Usage`;
- the card's template and turn stops (:mod:`.template`);
- a request rendered for the model: :class:`ChatRequest` -> :func:`render_request` -> :class:`RenderedRequest`
  (prompt, reply prefix, grammar, stops);
- engine events -> a reply: :class:`ReplyBuilder` (text, tool calls, invalid calls, finish reason, usage);
- one settings model (:class:`ChatSettings`) and one sync/async driver with timeout and retry (:mod:`.driver`).

It imports no framework and no torch; engines are used through
:class:`~wizardcoder_integrations.engine.protocol.EngineProtocol`.
"""

from wizardcoder_integrations.chat.code import extract_code, extract_code_blocks
from wizardcoder_integrations.chat.driver import Call, aevents, agenerate_reply, events, generate_reply
from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar
from wizardcoder_integrations.chat.render import (
    ChatRequest,
    RenderedRequest,
    json_reply_grammar,
    render_json_chat,
    render_reply,
    render_request,
    render_tool_chat,
    response_format_schema,
)
from wizardcoder_integrations.chat.reply import ReplyBuilder
from wizardcoder_integrations.chat.settings import SAMPLING_KEYS, ChatSettings
from wizardcoder_integrations.chat.template import (
    ALPACA_TEMPLATE,
    PREAMBLE,
    TURN_STOPS,
    format_instruction,
    render_chat,
)
from wizardcoder_integrations.chat.toolcalls import (
    ToolCallStream,
    normalize_tool_choice,
    parse_tool_calls,
)
from wizardcoder_integrations.chat.types import (
    ChatMessage,
    InvalidToolCall,
    ParsedToolCall,
    Reply,
    ToolCallRecord,
    ToolSpec,
    Usage,
)

__all__ = [
    "ALPACA_TEMPLATE",
    "PREAMBLE",
    "SAMPLING_KEYS",
    "TURN_STOPS",
    "Call",
    "ChatMessage",
    "ChatRequest",
    "ChatSettings",
    "InvalidToolCall",
    "JsonValue",
    "ParsedToolCall",
    "RenderedRequest",
    "Reply",
    "ReplyBuilder",
    "ReplyGrammar",
    "ToolCallRecord",
    "ToolCallStream",
    "ToolSpec",
    "Usage",
    "aevents",
    "agenerate_reply",
    "events",
    "extract_code",
    "extract_code_blocks",
    "format_instruction",
    "generate_reply",
    "json_reply_grammar",
    "normalize_tool_choice",
    "parse_tool_calls",
    "render_chat",
    "render_json_chat",
    "render_reply",
    "render_request",
    "render_tool_chat",
    "response_format_schema",
]
