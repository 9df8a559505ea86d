"""A chat request as the model sees it: prompt, forced reply start, reply grammar and stop strings.

Every front door (LangChain, LlamaIndex, ``wizardcoder serve``, ``wizardcoder chat``) converts its request
into a :class:`ChatRequest` and renders it with :func:`render_request`, so the same conversation is the same
prompt everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar
from wizardcoder_integrations.chat.template import TURN_STOPS, render_chat
from wizardcoder_integrations.chat.toolcalls import (
    forced_prefix,
    normalize_tool_choice,
    render_tools,
    tool_call_grammar,
)
from wizardcoder_integrations.chat.types import ChatMessage, ToolSpec
from wizardcoder_integrations.errors import ConfigurationError

__all__ = [
    "JSON_PREFIX",
    "ChatRequest",
    "RenderedRequest",
    "check_tool_names",
    "json_reply_grammar",
    "render_json_chat",
    "render_reply",
    "render_request",
    "render_tool_chat",
    "response_format_schema",
]

#: The reply prefix of a JSON answer: decoding starts inside the object.
JSON_PREFIX = "{"


@dataclass(frozen=True)
class ChatRequest:
    """One chat call, framework-neutral.

    ``tool_choice`` takes any framework's spelling (see :func:`normalize_tool_choice`); ``response_format`` is
    OpenAI's (``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {"schema": ...}}``;
    ``{"type": "text"}`` means none); ``stop`` are the caller's stop strings (the turn stops are added);
    ``parallel_tool_calls=False`` keeps only the first call of a reply.
    """

    messages: Sequence[ChatMessage]
    tools: Sequence[ToolSpec] = ()
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    stop: Sequence[str] = ()
    parallel_tool_calls: bool = True


@dataclass(frozen=True)
class RenderedRequest:
    """What the engine is sent for a :class:`ChatRequest`, and what the reply parser needs.

    The reply is ``prefix + generated text``; ``tool_names`` is None when the request has no tools (the reply
    is then plain prose, never parsed for calls).
    """

    prompt: str
    prefix: str
    grammar: ReplyGrammar | None
    stops: tuple[str, ...]
    tool_names: tuple[str, ...] | None
    single_call: bool = False


def render_request(request: ChatRequest) -> RenderedRequest:
    """Render ``request``: prompt, reply prefix, grammar, and stop strings (the caller's, then the turn stops)."""
    prompt, prefix, grammar = render_reply(request.messages, request.tools, request.tool_choice,
                                           request.response_format)
    stops = tuple(dict.fromkeys([*request.stop, *TURN_STOPS]))
    names = tuple(t.name for t in request.tools) if request.tools else None
    return RenderedRequest(prompt, prefix, grammar, stops, names, single_call=not request.parallel_tool_calls)


def render_reply(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = (), tool_choice: Any = None,
                 response_format: dict[str, Any] | None = None) -> tuple[str, str, ReplyGrammar | None]:
    """The prompt, the reply's forced start, and the grammar that keeps a forced tool call or a JSON answer
    valid (None: the reply is free text). ``response_format`` and ``tools`` cannot be combined."""
    check_tool_names(tools)
    if response_format is not None and response_format.get("type") == "text":
        response_format = None
    if response_format is not None:
        if tools:
            raise ConfigurationError("response_format and tools cannot be used in one request; use one of them.")
        schema = response_format_schema(response_format)
        return (*render_json_chat(messages, schema), json_reply_grammar(schema))
    if not tools:
        if tool_choice not in (None, "auto", "none", False):
            raise ConfigurationError(f"tool_choice={tool_choice!r} needs tools: pass the tools to call too.")
        return render_chat(messages), "", None
    choice = normalize_tool_choice(tool_choice, [t.name for t in tools])
    prompt, prefix = render_tool_chat(messages, tools, choice)
    return prompt, prefix, tool_call_grammar(choice, tools) if choice != "none" else None


def render_tool_chat(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec],
                     tool_choice: Any = "auto") -> tuple[str, str]:
    """The prompt of a conversation that may call ``tools``, and the forced start of the reply.

    The tools' system text (:func:`render_tools`) follows the conversation's leading system messages.
    A forced ``tool_choice`` appends the start of the call after ``### Response:``, so decoding begins
    inside it; the reply is then ``prefix + generated text``. Without tools this is :func:`render_chat`.
    """
    if not tools:
        return render_chat(messages), ""
    choice = normalize_tool_choice(tool_choice, [t.name for t in tools])
    prompt = render_chat(_after_system(messages, render_tools(tools, choice)))
    prefix = "" if choice == "none" else forced_prefix(choice, [t.name for t in tools])
    return (f"{prompt}\n{prefix}", prefix) if prefix else (prompt, "")


def json_reply_grammar(schema: dict[str, Any] | None = None) -> ReplyGrammar:
    """The grammar of a JSON answer: one object matching ``schema`` (any object if None)."""
    return ReplyGrammar(((JsonValue.of(schema),),), JSON_PREFIX)


def response_format_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema an OpenAI-style ``response_format`` asks for (``None``: any JSON object)."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return None
    if kind == "json_schema":
        inner = response_format.get("json_schema", response_format)
        schema = inner.get("schema") if isinstance(inner, dict) else None
        if isinstance(schema, dict):
            return schema
    raise ConfigurationError(
        f"Unsupported response_format {response_format!r}: use {{'type': 'json_object'}} or "
        "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}."
    )


def render_json_chat(messages: Sequence[ChatMessage], schema: dict[str, Any] | None = None) -> tuple[str, str]:
    """The prompt of a conversation whose answer must be one JSON object, and the reply's forced start.

    The instruction (with ``schema``, if given) follows the leading system messages; the reply is
    ``prefix + generated text``, beginning with ``{``.
    """
    if schema is None:
        instruction = "Reply with one JSON object and nothing else."
    else:
        compact = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        instruction = f"Reply with one JSON object, and nothing else, that matches this JSON schema: {compact}"
    prompt = render_chat(_after_system(messages, instruction))
    return f"{prompt}\n{JSON_PREFIX}", JSON_PREFIX


def _after_system(messages: Sequence[ChatMessage], text: str) -> list[ChatMessage]:
    """``messages`` with a system ``text`` inserted after their leading system messages."""
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    return [*messages[:lead], ChatMessage("system", text), *messages[lead:]]


def check_tool_names(tools: Sequence[ToolSpec]) -> None:
    """Raise ``ConfigurationError`` when two different tools share a name (their calls could not be told apart)."""
    seen: dict[str, ToolSpec] = {}
    for tool in tools:
        if seen.setdefault(tool.name, tool) != tool:
            raise ConfigurationError(
                f"Two different tools are named {tool.name!r}; tool names must be unique so the model's calls "
                "can be told apart."
            )
