"""``make demo``: WizardCoder writes code for a task, the sandbox runs it, and errors go back until it passes.

On a machine with a CUDA GPU and the checkpoint available, the real GPTQ model runs; otherwise the tiny
offline stand-in does, and the demo says so.
"""

from __future__ import annotations

from typing import Any

from wizardcoder_integrations.errors import ModelLoadError
from wizardcoder_integrations.extras import extra_imports
from wizardcoder_integrations.profiles import DEFAULT_MODEL

__all__ = ["DEMO_TASK", "pick_engine"]

#: The demo's task: the stand-in was trained on it, including a first answer that fails the tests.
DEMO_TASK = {
    "task": "Write a Python function safe_div(a, b) that returns a / b, or None when b is 0.",
    "tests": "assert safe_div(6, 3) == 2\nassert safe_div(1, 0) is None",
}


def pick_engine(model: str = DEFAULT_MODEL, revision: str | None = None) -> tuple[Any, str]:
    """The real model when a GPU and its files are there, else the stand-in; plus a line saying which."""
    with extra_imports("gptq"):
        import torch

        from wizardcoder_integrations.engine import Engine
        from wizardcoder_integrations.standin import load_standin_engine, show_build_progress

    if torch.cuda.is_available():
        try:
            engine = Engine.load(model, revision)
            return engine, f"model: {model}@{revision or 'main'} on {torch.cuda.get_device_name()}"
        except ModelLoadError as e:
            reason = f"the real model could not be loaded ({e})"
    else:
        reason = "this machine has no CUDA GPU"
    show_build_progress()
    return load_standin_engine(), (
        f"model: the tiny offline WizardCoder stand-in, because {reason}. It is trained on a few dozen tasks and "
        "quantised in the same GPTQ format; its answers to other prompts are not meaningful."
    )
