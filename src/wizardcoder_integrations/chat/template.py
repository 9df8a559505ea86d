"""The WizardCoder card's Alpaca template and turn stops, and conversations rendered into it.

Defined once here; the adapters, ``wizardcoder chat``, ``wizardcoder serve`` and the engine's templated
prompts all render through these functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from wizardcoder_integrations.chat.types import ChatMessage, ToolCallRecord
from wizardcoder_integrations.errors import ConfigurationError

__all__ = [
    "ALPACA_TEMPLATE",
    "INSTRUCTION_HEADER",
    "PREAMBLE",
    "RESPONSE_HEADER",
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "TOOL_RESULT_HEADER",
    "TOOL_RESULT_STOP",
    "TURN_STOPS",
    "format_instruction",
    "format_tool_calls",
    "render_chat",
]

#: The preamble of the WizardCoder card's prompt, byte for byte.
PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
#: The WizardCoder card's prompt template, byte for byte.
ALPACA_TEMPLATE = PREAMBLE + "\n\n### Instruction:\n{prompt}\n\n### Response:"

INSTRUCTION_HEADER = "### Instruction:"
RESPONSE_HEADER = "### Response:"
TOOL_RESULT_HEADER = "### Tool Result:"
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
#: Stop string for conversations with tools: the model must not write a tool's result itself.
TOOL_RESULT_STOP = "\n### Tool Result"
#: A chat reply ends where the model would start the next turn of the transcript itself.
TURN_STOPS = (f"\n{INSTRUCTION_HEADER}", f"\n{RESPONSE_HEADER}", TOOL_RESULT_STOP)


def format_instruction(prompt: str, system: str | None = None) -> str:
    """Wrap one instruction in the card's template; an optional system text follows the preamble."""
    if system is None or not system.strip():
        return ALPACA_TEMPLATE.format(prompt=prompt)
    return render_chat([ChatMessage("system", system), ChatMessage("user", prompt)])


def format_tool_calls(calls: Sequence[ToolCallRecord]) -> str:
    """Render calls (objects with ``name`` and ``arguments``) the way the model writes them."""
    return "\n".join(
        f"{TOOL_CALL_OPEN}\n{json.dumps({'name': c.name, 'arguments': c.arguments})}\n{TOOL_CALL_CLOSE}"
        for c in calls
    )


def render_chat(messages: Sequence[ChatMessage]) -> str:
    """Render a conversation into Alpaca blocks, ending where the model must write its next response.

    A single user message renders exactly as :data:`ALPACA_TEMPLATE`. System texts become paragraphs after
    the preamble; user turns are ``### Instruction:`` blocks, assistant turns ``### Response:`` blocks (with
    their tool calls), tool results ``### Tool Result (name):`` blocks, the name taken from the call the result
    answers when the message carries none. A trailing assistant message is continued.
    """
    if not messages:
        raise ConfigurationError("Cannot render an empty conversation: pass at least one user message.")
    call_names: dict[str, str] = {}
    blocks = [PREAMBLE]
    for message in messages:
        if message.role == "system":
            if message.content.strip():
                blocks.append(message.content.strip())
        elif message.role == "user":
            blocks.append(f"{INSTRUCTION_HEADER}\n{message.content}")
        elif message.role == "assistant":
            call_names.update({c.id: c.name for c in message.tool_calls if c.id})
            body = message.content.strip()
            if message.tool_calls:
                body = "\n".join(part for part in (body, format_tool_calls(message.tool_calls)) if part)
            blocks.append(f"{RESPONSE_HEADER}\n{body}" if body else RESPONSE_HEADER)
        elif message.role == "tool":
            name = message.name or call_names.get(message.tool_call_id or "")
            label = f" ({name})" if name else ""
            blocks.append(f"{TOOL_RESULT_HEADER[:-1]}{label}:\n{message.content}")
        else:
            raise ConfigurationError(
                f"Unknown chat role {message.role!r}; use system, user, assistant or tool."
            )
    if messages[-1].role == "assistant":
        return "\n\n".join(blocks)
    if all(m.role == "system" for m in messages):
        raise ConfigurationError("The conversation has only system messages: add a user message.")
    return "\n\n".join([*blocks, RESPONSE_HEADER])
