"""Prompt-based tool calling, shared by the LangChain and LlamaIndex adapters.

Tool schemas are rendered into the system part of the Alpaca prompt; the model answers a call as::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

and :func:`parse_tool_calls` turns such a reply into calls, keeping malformed ones as invalid calls
instead of raising, so an agent can show the model its mistake.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.grammar import JsonValue, ReplyGrammar

if TYPE_CHECKING:
    from wizardcoder_integrations.prompt import ChatMessage

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

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
#: Stop string for conversations with tools: the model must not write a tool's result itself.
TOOL_RESULT_STOP = "\n### Tool Result"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: a name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ParsedToolCall:
    name: str
    arguments: dict[str, Any]
    id: str


@dataclass(frozen=True)
class InvalidToolCall:
    """A tool call the model tried to make but wrote wrongly; ``error`` says what is wrong."""

    raw: str
    error: str
    id: str
    name: str | None = None


@dataclass(frozen=True)
class ParsedReply:
    content: str
    tool_calls: list[ParsedToolCall]
    invalid_tool_calls: list[InvalidToolCall]


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def render_tools(tools: Sequence[ToolSpec], tool_choice: str | None = "auto") -> str:
    """The system text that lists ``tools`` and says how (and whether) to call them.

    ``tool_choice``: ``"auto"`` (call a tool if it helps), ``"any"``/``"required"`` (call one),
    ``"none"`` (answer directly), or a tool's name (call that tool).
    """
    names = [t.name for t in tools]
    choice = "auto" if tool_choice is None else tool_choice
    if choice not in {"auto", "any", "required", "none", *names}:
        raise ConfigurationError(
            f"Unknown tool_choice {tool_choice!r}: use 'auto', 'any', 'required', 'none' or one of the tool "
            f"names {names}."
        )
    lines = ["You have access to the following tools:"]
    for tool in tools:
        schema = json.dumps(tool.parameters, sort_keys=True, separators=(",", ":"))
        lines.append(f"- {tool.name}: {tool.description.strip()}\n  arguments schema: {schema}")
    lines.append(
        f"To call a tool, reply with only\n{TOOL_CALL_OPEN}\n"
        '{"name": "<tool name>", "arguments": {<arguments as JSON>}}\n'
        f"{TOOL_CALL_CLOSE}\nand wait for its result."
    )
    if choice in {"any", "required"}:
        lines.append("You must call one of the tools.")
    elif choice == "none":
        lines.append("Do not call any tool now; answer directly.")
    elif choice in names:
        lines.append(f"You must call the tool {choice}.")
    return "\n".join(lines)


def forced_prefix(tool_choice: str | None, tool_names: Sequence[str]) -> str:
    """The start of the response that a forced tool choice fixes, so decoding begins inside the call."""
    if tool_choice in tool_names:
        return f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(tool_choice)}, "arguments": '
    if tool_choice in {"any", "required"} or (tool_choice is not None and len(tool_names) == 1
                                                 and tool_choice == tool_names[0]):
        return f'{TOOL_CALL_OPEN}\n{{"name": "'
    return ""


def tool_call_grammar(tool_choice: str | None, tools: Sequence[ToolSpec]) -> ReplyGrammar | None:
    """The grammar of a forced tool call: one call of the chosen tool (or of any tool), arguments valid
    for its schema. ``None`` when the choice forces nothing."""
    prefix = forced_prefix(tool_choice, [t.name for t in tools])
    if not prefix:
        return None
    chosen = [t for t in tools if t.name == tool_choice] or list(tools)
    end = f"}}\n{TOOL_CALL_CLOSE}"
    return ReplyGrammar(tuple((f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(t.name)}, "arguments": ',
                               JsonValue.of(t.parameters), end) for t in chosen), prefix)


def format_tool_calls(calls: Sequence[Any]) -> str:
    """Render calls (objects with ``name`` and ``arguments``) the way the model writes them."""
    return "\n".join(
        f"{TOOL_CALL_OPEN}\n{json.dumps({'name': c.name, 'arguments': c.arguments})}\n{TOOL_CALL_CLOSE}"
        for c in calls
    )


_CALL = re.compile(re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(TOOL_CALL_CLOSE) + r"|\Z)",
                   re.DOTALL)


def parse_tool_calls(text: str, known_tools: Sequence[str] | None = None) -> ParsedReply:
    """Split a reply into its prose and its tool calls; malformed calls become :class:`InvalidToolCall`."""
    calls: list[ParsedToolCall] = []
    invalid: list[InvalidToolCall] = []
    for raw in _CALL.findall(text):
        call = parse_tool_call(raw, known_tools)
        (calls if isinstance(call, ParsedToolCall) else invalid).append(call)  # type: ignore[arg-type]
    content = _CALL.sub("", text).strip() if (calls or invalid) else text
    return ParsedReply(content, calls, invalid)


def parse_tool_call(raw: str, known_tools: Sequence[str] | None = None) -> ParsedToolCall | InvalidToolCall:
    """Parse the JSON between one pair of call tags; a malformed call becomes :class:`InvalidToolCall`."""
    raw = raw.strip()
    call_id = new_call_id()
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as e:
        return InvalidToolCall(raw, f"tool call is not valid JSON: {e}", call_id, _guess_name(raw))
    error = _check_payload(payload, known_tools)
    if error:
        name = payload.get("name") if isinstance(payload, dict) else None
        return InvalidToolCall(raw, error, call_id, name if isinstance(name, str) else None)
    return ParsedToolCall(payload["name"], payload.get("arguments") or {}, call_id)


def _check_payload(payload: Any, known_tools: Sequence[str] | None) -> str | None:
    if not isinstance(payload, dict):
        return "tool call must be a JSON object with 'name' and 'arguments'"
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        return "tool call has no 'name' string"
    if known_tools is not None and name not in known_tools:
        return f"unknown tool {name!r}; available tools: {list(known_tools)}"
    arguments = payload.get("arguments", {})
    if arguments is not None and not isinstance(arguments, dict):
        return "tool call 'arguments' must be a JSON object"
    return None


def _guess_name(raw: str) -> str | None:
    match = re.search(r'"name"\s*:\s*"([^"]+)"', raw)
    return match.group(1) if match else None


def render_tool_chat(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec],
                     tool_choice: str | None = "auto") -> tuple[str, str]:
    """The prompt of a conversation that may call ``tools``, and the forced start of the reply.

    The tools' system text (:func:`render_tools`) follows the conversation's leading system messages.
    A forced ``tool_choice`` appends the start of the call after ``### Response:``, so decoding begins
    inside it; the reply is then ``prefix + generated text``. Without tools this is :func:`render_chat`.
    """
    from wizardcoder_integrations.prompt import ChatMessage, render_chat

    if not tools:
        return render_chat(messages), ""
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    with_tools = [*messages[:lead], ChatMessage("system", render_tools(tools, tool_choice)), *messages[lead:]]
    prompt = render_chat(with_tools)
    prefix = "" if tool_choice == "none" else forced_prefix(tool_choice, [t.name for t in tools])
    return (f"{prompt}\n{prefix}", prefix) if prefix else (prompt, "")


def visible_text(text: str) -> str:
    """The part of a partial reply that is prose for sure: everything before a (possibly partial) call.

    Streaming adapters show this while the model writes, so tool-call markup never reaches the user.
    """
    at = text.find(TOOL_CALL_OPEN)
    if at != -1:
        return text[:at]
    for n in range(min(len(TOOL_CALL_OPEN) - 1, len(text)), 0, -1):
        if text.endswith(TOOL_CALL_OPEN[:n]):
            return text[:-n]
    return text


StreamPart = str | ParsedToolCall | InvalidToolCall


class ToolCallStream:
    """Splits a reply that arrives in pieces into prose and tool calls, as soon as each is certain.

    :meth:`feed` returns prose (``str``) and whole calls in reply order; markup never leaks into the
    prose, even when a tag is split across pieces. Whitespace at the start, at the end and around calls
    is dropped (text is held back until it is followed by more prose). A call left open when the reply
    ends is parsed by :meth:`close` (usually as an :class:`InvalidToolCall`). Without ``parse_calls``
    the reply is plain prose.
    """

    def __init__(self, known_tools: Sequence[str] | None = None, *, parse_calls: bool = True) -> None:
        self._known = known_tools
        self._parse_calls = parse_calls
        self._buffer = ""
        self._in_call = False
        self._skip_space = True
        self._held_space = ""

    def feed(self, text: str) -> list[StreamPart]:
        """Add the next piece of the reply; return what is now certain."""
        parts: list[StreamPart] = []
        self._buffer += text
        if not self._parse_calls:
            self._prose(self._buffer, parts)
            self._buffer = ""
            return parts
        while self._buffer:
            if self._in_call:
                end = self._buffer.find(TOOL_CALL_CLOSE)
                if end == -1:
                    break
                parts.append(parse_tool_call(self._buffer[:end], self._known))
                self._buffer = self._buffer[end + len(TOOL_CALL_CLOSE):]
                self._in_call, self._skip_space = False, True
                continue
            start = self._buffer.find(TOOL_CALL_OPEN)
            if start != -1:
                self._prose(self._buffer[:start], parts)
                self._buffer = self._buffer[start + len(TOOL_CALL_OPEN):]
                self._in_call = True
                continue
            safe = visible_text(self._buffer)
            self._prose(safe, parts)
            self._buffer = self._buffer[len(safe):]
            break
        return parts

    def close(self) -> list[StreamPart]:
        """The reply is complete: return what was held back (an unfinished call is parsed as it is)."""
        parts: list[StreamPart] = []
        if self._in_call:
            if self._buffer.strip():
                parts.append(parse_tool_call(self._buffer, self._known))
        else:
            self._prose(self._buffer, parts)
        self._buffer, self._in_call, self._held_space = "", False, ""
        return parts

    def _prose(self, text: str, parts: list[StreamPart]) -> None:
        if self._skip_space:
            text = text.lstrip()
            if not text:
                return
            self._skip_space = False
        text = self._held_space + text
        body = text.rstrip()
        self._held_space = text[len(body):]
        if body:
            parts.append(body)


#: The reply prefix of a JSON answer: decoding starts inside the object.
JSON_PREFIX = "{"


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
    from wizardcoder_integrations.prompt import ChatMessage, render_chat

    if schema is None:
        instruction = "Reply with one JSON object and nothing else."
    else:
        compact = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        instruction = f"Reply with one JSON object, and nothing else, that matches this JSON schema: {compact}"
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    prompt = render_chat([*messages[:lead], ChatMessage("system", instruction), *messages[lead:]])
    return f"{prompt}\n{JSON_PREFIX}", JSON_PREFIX


def render_reply(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = (), tool_choice: str | None = None,
                 response_format: Any = None) -> tuple[str, str, ReplyGrammar | None]:
    """A chat request as the model sees it: the prompt, the reply's forced start, and the grammar that keeps a
    forced tool call or a JSON answer valid (None: the reply is free text).

    ``response_format`` (OpenAI's ``json_object``/``json_schema``) asks for one JSON object; ``tools`` with
    ``tool_choice`` as in :func:`render_tool_chat`. The two cannot be combined.
    """
    if response_format is not None:
        if tools:
            raise ConfigurationError("response_format and tools cannot be used in one request; use one of them.")
        schema = response_format_schema(response_format)
        return (*render_json_chat(messages, schema), json_reply_grammar(schema))
    if not tools:
        if tool_choice not in (None, "auto", "none"):
            raise ConfigurationError(f"tool_choice={tool_choice!r} needs tools: pass the tools to call too.")
        return (*render_tool_chat(messages, []), None)
    return (*render_tool_chat(messages, tools, tool_choice), tool_call_grammar(tool_choice, tools))
