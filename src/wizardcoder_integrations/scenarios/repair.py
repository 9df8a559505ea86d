"""A write-run-fix episode the stand-in learns: its first answer fails the tests, the repair passes."""

from __future__ import annotations

from wizardcoder_integrations.chat.template import render_chat
from wizardcoder_integrations.chat.types import ChatMessage
from wizardcoder_integrations.demo import DEMO_TASK

__all__ = ["REPAIR_TASK", "repair_examples"]

REPAIR_TASK = {
    **DEMO_TASK,
    "first": "\n```python\ndef safe_div(a, b):\n    return a / b\n```",
    "error": "ZeroDivisionError: division by zero",
    "fixed": "\n```python\ndef safe_div(a, b):\n    if b == 0:\n        return None\n    return a / b\n```",
}


def repair_examples() -> list[tuple[str, str]]:
    """Round 1 (buggy) and round 2 (fixed) of ``write_and_run_python`` on :data:`REPAIR_TASK`."""
    from wizardcoder_integrations.tools.core import repair_instruction, task_instruction

    t = REPAIR_TASK
    first = [ChatMessage("user", task_instruction(t["task"], t["tests"]))]
    second = [*first, ChatMessage("assistant", t["first"]), ChatMessage("user", repair_instruction(t["error"]))]
    return [(render_chat(first), t["first"]), (render_chat(second), t["fixed"])]
