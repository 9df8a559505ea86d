"""The card's Alpaca template, chat histories rendered into it, and Python code pulled out of replies."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from wizardcoder_integrations.errors import ConfigurationError

__all__ = [
    "ALPACA_TEMPLATE",
    "PREAMBLE",
    "ChatMessage",
    "extract_code",
    "extract_code_blocks",
    "format_instruction",
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

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call the assistant made: rendered back into later prompts."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation, independent of any framework's message classes."""

    role: Role
    content: str
    tool_calls: tuple[ToolCallRecord, ...] = field(default=())
    name: str | None = None  # tool name, for role="tool"
    tool_call_id: str | None = None


def format_instruction(prompt: str, system: str | None = None) -> str:
    """Wrap one instruction in the card's template; an optional system text follows the preamble."""
    if system is None or not system.strip():
        return ALPACA_TEMPLATE.format(prompt=prompt)
    return render_chat([ChatMessage("system", system), ChatMessage("user", prompt)])


def render_chat(messages: Sequence[ChatMessage]) -> str:
    """Render a conversation into Alpaca blocks, ending where the model must write its next response.

    A single user message renders exactly as :data:`ALPACA_TEMPLATE`. System texts become paragraphs after
    the preamble; user turns are ``### Instruction:`` blocks, assistant turns ``### Response:`` blocks (with
    their tool calls), tool results ``### Tool Result:`` blocks. A trailing assistant message is continued.
    """
    from wizardcoder_integrations.toolcalls import format_tool_calls

    if not messages:
        raise ConfigurationError("Cannot render an empty conversation: pass at least one user message.")
    blocks = [PREAMBLE]
    for message in messages:
        if message.role == "system":
            if message.content.strip():
                blocks.append(message.content.strip())
        elif message.role == "user":
            blocks.append(f"{INSTRUCTION_HEADER}\n{message.content}")
        elif message.role == "assistant":
            body = message.content.strip()
            if message.tool_calls:
                body = "\n".join(part for part in (body, format_tool_calls(message.tool_calls)) if part)
            blocks.append(f"{RESPONSE_HEADER}\n{body}" if body else RESPONSE_HEADER)
        elif message.role == "tool":
            label = f" ({message.name})" if message.name else ""
            blocks.append(f"{TOOL_RESULT_HEADER[:-1]}{label}:\n{message.content}")
        else:  # pragma: no cover - Literal guards this for type-checked callers
            raise ConfigurationError(
                f"Unknown chat role {message.role!r}; use system, user, assistant or tool."
            )
    if messages[-1].role == "assistant":
        return "\n\n".join(blocks)
    if all(m.role == "system" for m in messages):
        raise ConfigurationError("The conversation has only system messages: add a user message.")
    return "\n\n".join([*blocks, RESPONSE_HEADER])


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "pycon"}


def extract_code_blocks(text: str) -> list[str]:
    """Python code blocks in a reply: fenced blocks (an unterminated last fence counts), else bare code."""
    blocks = [
        body.rstrip() + "\n"
        for lang, body in _FENCE.findall(text)
        if lang.lower() in _PYTHON_TAGS and body.strip()
    ]
    if blocks:
        return blocks
    bare = _bare_code(text)
    return [bare] if bare else []


def extract_code(text: str) -> str:
    """All Python code of a reply joined into one program ("" if the reply has none)."""
    return "\n".join(extract_code_blocks(text))


def _bare_code(text: str) -> str | None:
    """The longest run of trailing lines that parses as Python with at least one statement."""
    lines = text.strip("\n").splitlines()
    for start in range(len(lines)):
        candidate = "\n".join(lines[start:]).strip("\n")
        if _is_code(candidate):
            return candidate + "\n"
    return None


def _is_code(candidate: str) -> bool:
    try:
        tree = ast.parse(candidate)
    except (SyntaxError, ValueError):
        return False
    return any(not _is_plain_expression(node) for node in tree.body) or _has_call(tree.body)


def _is_plain_expression(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, (ast.Name, ast.Constant))


def _has_call(body: Iterable[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) for n in body)
