"""Compatibility names for code that still imports ``wizardcoder_integrations.prompt``; use
:mod:`wizardcoder_integrations.chat` instead."""

from wizardcoder_integrations.chat.code import extract_code, extract_code_blocks
from wizardcoder_integrations.chat.template import (
    ALPACA_TEMPLATE,
    INSTRUCTION_HEADER,
    PREAMBLE,
    RESPONSE_HEADER,
    TOOL_RESULT_HEADER,
    format_instruction,
    render_chat,
)
from wizardcoder_integrations.chat.types import ChatMessage, Role, ToolCallRecord

__all__ = [
    "ALPACA_TEMPLATE",
    "INSTRUCTION_HEADER",
    "PREAMBLE",
    "RESPONSE_HEADER",
    "TOOL_RESULT_HEADER",
    "ChatMessage",
    "Role",
    "ToolCallRecord",
    "extract_code",
    "extract_code_blocks",
    "format_instruction",
    "render_chat",
]
