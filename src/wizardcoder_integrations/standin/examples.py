"""Every (prompt, response) pair the stand-in is trained on, rendered exactly as the engine renders them."""

from __future__ import annotations

from wizardcoder_integrations.prompt import format_instruction
from wizardcoder_integrations.standin.agent_examples import agent_examples
from wizardcoder_integrations.standin.eval_examples import eval_examples
from wizardcoder_integrations.standin.repair_examples import repair_examples
from wizardcoder_integrations.standin.tasks import CODE_TASKS
from wizardcoder_integrations.standin.tool_examples import tool_examples

__all__ = ["training_examples"]


def training_examples() -> list[tuple[str, str]]:
    """(full prompt text, response text without EOS) pairs; the builder appends ``</s>``."""
    code = [(format_instruction(t.instruction), t.response) for t in CODE_TASKS]
    return [*code, *repair_examples(), *eval_examples(), *tool_examples(), *agent_examples()]
