"""Prompt-based tool calling: tools listed in the prompt, calls parsed from the reply.

Tool schemas are rendered into the system part of the Alpaca prompt; the model answers a call as::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

and :func:`parse_tool_calls` / :class:`ToolCallStream` turn such a reply into calls, keeping malformed ones
(bad JSON, unknown tool names, arguments that are not an object) as :class:`InvalidToolCall` instead of
raising, so an agent can show the model its mistake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wizardcoder_integrations.chat.grammar import JsonValue, ReplyGrammar
from wizardcoder_integrations.chat.template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from wizardcoder_integrations.chat.types import InvalidToolCall, ParsedToolCall, ToolSpec, new_call_id
from wizardcoder_integrations.errors import ConfigurationError

__all__ = [
    "ParsedReply",
    "StreamPart",
    "ToolCallStream",
    "forced_prefix",
    "normalize_tool_choice",
    "parse_tool_call",
    "parse_tool_calls",
    "render_tools",
    "tool_call_grammar",
    "visible_text",
]

#: ``tool_choice`` values every front door accepts besides a tool's name (after :func:`normalize_tool_choice`).
CHOICES = ("auto", "any", "none")


def normalize_tool_choice(tool_choice: Any, names: Sequence[str]) -> str:
    """Every framework's ``tool_choice`` spelling -> ``"auto"``, ``"any"``, ``"none"`` or a tool name.

    Accepts None/"auto"; True/"any"/"required"; False/"none"; a tool's name; and the dict forms
    ``{"type": "function", "function": {"name": ...}}`` and ``{"name": ...}``. ``"any"`` with a single tool is
    that tool's name, so its forced prefix fixes the name as well.
    """
    choice: Any = tool_choice
    if choice is None or choice == "auto":
        choice = "auto"
    elif choice is True or choice in ("any", "required"):
        choice = "any"
    elif choice is False or choice == "none":
        choice = "none"
    elif isinstance(choice, dict):
        function = choice.get("function")
        choice = function.get("name") if isinstance(function, dict) else choice.get("name")
    if not isinstance(choice, str) or choice not in {*CHOICES, *names}:
        raise ConfigurationError(
            f"Unknown tool_choice {tool_choice!r}: use 'auto', 'any' (or 'required'), 'none', or one of the "
            f"tools' names {list(names)}."
        )
    if choice == "any" and len(names) == 1:
        return names[0]
    return choice


def render_tools(tools: Sequence[ToolSpec], tool_choice: str = "auto") -> str:
    """The system text that lists ``tools`` and says how (and whether) to call them.

    ``tool_choice`` is normalized (:func:`normalize_tool_choice`): ``"auto"``, ``"any"``, ``"none"`` or a name.
    """
    names = [t.name for t in tools]
    lines = ["You have access to the following tools:"]
    for tool in tools:
        schema = json.dumps(tool.parameters, sort_keys=True, separators=(",", ":"))
        lines.append(f"- {tool.name}: {tool.description.strip()}\n  arguments schema: {schema}")
    lines.append(
        f"To call a tool, reply with only\n{TOOL_CALL_OPEN}\n"
        '{"name": "<tool name>", "arguments": {<arguments as JSON>}}\n'
        f"{TOOL_CALL_CLOSE}\nand wait for its result."
    )
    if tool_choice == "any":
        lines.append("You must call one of the tools.")
    elif tool_choice == "none":
        lines.append("Do not call any tool now; answer directly.")
    elif tool_choice in names:
        lines.append(f"You must call the tool {tool_choice}.")
    return "\n".join(lines)


def forced_prefix(tool_choice: Any, tool_names: Sequence[str]) -> str:
    """The start of the response that a forced tool choice (any spelling) fixes, so decoding begins inside it."""
    tool_choice = normalize_tool_choice(tool_choice, tool_names)
    if tool_choice in tool_names:
        return f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(tool_choice)}, "arguments": '
    if tool_choice == "any":
        return f'{TOOL_CALL_OPEN}\n{{"name": "'
    return ""


def tool_call_grammar(tool_choice: Any, tools: Sequence[ToolSpec]) -> ReplyGrammar | None:
    """The grammar of a forced tool call: one call of the chosen tool (or of any tool), arguments valid
    for its schema. ``None`` when the choice forces nothing."""
    tool_choice = normalize_tool_choice(tool_choice, [t.name for t in tools])
    prefix = forced_prefix(tool_choice, [t.name for t in tools])
    if not prefix:
        return None
    chosen = [t for t in tools if t.name == tool_choice] or list(tools)
    end = f"}}\n{TOOL_CALL_CLOSE}"
    return ReplyGrammar(tuple((f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(t.name)}, "arguments": ',
                               JsonValue.of(t.parameters), end) for t in chosen), prefix)


@dataclass(frozen=True)
class ParsedReply:
    """A whole reply split into prose and calls."""

    content: str
    tool_calls: list[ParsedToolCall]
    invalid_tool_calls: list[InvalidToolCall]


_CALL = re.compile(re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(TOOL_CALL_CLOSE) + r"|\Z)",
                   re.DOTALL)


def parse_tool_calls(text: str, known_tools: Sequence[str] | None = None) -> ParsedReply:
    """Split a reply into its prose and its tool calls; malformed calls become :class:`InvalidToolCall`."""
    calls: list[ParsedToolCall] = []
    invalid: list[InvalidToolCall] = []
    for raw in _CALL.findall(text):
        call = parse_tool_call(raw, known_tools)
        if isinstance(call, ParsedToolCall):
            calls.append(call)
        else:
            invalid.append(call)
    content = _CALL.sub("", text).strip() if (calls or invalid) else text
    return ParsedReply(content, calls, invalid)


def parse_tool_call(raw: str, known_tools: Sequence[str] | None = None) -> ParsedToolCall | InvalidToolCall:
    """Parse the JSON between one pair of call tags; a malformed call becomes :class:`InvalidToolCall`.

    With ``known_tools``, a call of any other name is invalid (the model invented a tool).
    """
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


def visible_text(text: str) -> str:
    """The part of a partial reply that is prose for sure: everything before a (possibly partial) call.

    Streaming front doors show this while the model writes, so tool-call markup never reaches the user.
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
                self._in_call, self._held_space = True, ""  # whitespace around a call is dropped
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
