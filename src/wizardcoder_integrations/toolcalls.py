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
from typing import Any

from wizardcoder_integrations.errors import ConfigurationError

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "InvalidToolCall",
    "ParsedReply",
    "ParsedToolCall",
    "ToolSpec",
    "forced_prefix",
    "format_tool_calls",
    "parse_tool_calls",
    "render_tools",
]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


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
        call_id = new_call_id()
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as e:
            invalid.append(InvalidToolCall(raw, f"tool call is not valid JSON: {e}", call_id,
                                           _guess_name(raw)))
            continue
        error = _check_payload(payload, known_tools)
        if error:
            name = payload.get("name") if isinstance(payload, dict) else None
            invalid.append(InvalidToolCall(raw, error, call_id, name if isinstance(name, str) else None))
        else:
            calls.append(ParsedToolCall(payload["name"], payload.get("arguments") or {}, call_id))
    content = _CALL.sub("", text).strip() if (calls or invalid) else text
    return ParsedReply(content, calls, invalid)


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
