"""``make demo``: WizardCoder writes code for a task, and the code is run.

On a machine with a CUDA GPU and the checkpoint available, the real GPTQ model runs; otherwise the tiny
offline stand-in does, and the demo says so.
"""

from __future__ import annotations

import sys
from typing import Any

from wizardcoder_integrations.errors import ModelLoadError
from wizardcoder_integrations.profiles import DEFAULT_MODEL

__all__ = ["pick_engine", "run_demo"]

TASK = "Write a Python function fizzbuzz(n) that returns the FizzBuzz list from 1 to n."
CHECK = "print(fizzbuzz(15))"


def _say(text: str) -> None:
    print(text, flush=True)


def pick_engine(model: str = DEFAULT_MODEL, revision: str | None = None) -> tuple[Any, str]:
    """The real model when a GPU and its files are there, else the stand-in; plus a line saying which."""
    import torch

    from wizardcoder_integrations.engine import Engine
    from wizardcoder_integrations.standin import load_standin_engine

    if torch.cuda.is_available():
        try:
            engine = Engine.load(model, revision)
            return engine, f"model: {model}@{revision or 'main'} on {torch.cuda.get_device_name()}"
        except ModelLoadError as e:
            reason = f"the real model could not be loaded ({e})"
    else:
        reason = "this machine has no CUDA GPU"
    return load_standin_engine(), (
        f"model: the tiny offline WizardCoder stand-in, because {reason}. It is trained on a few dozen tasks "
        "and quantised in the same GPTQ format; answers for other prompts are not meaningful."
    )


def run_demo(model: str = DEFAULT_MODEL, revision: str | None = None) -> int:
    from wizardcoder_integrations.engine import GenerationResult
    from wizardcoder_integrations.prompt import extract_code

    engine, which = pick_engine(model, revision)
    _say(which)
    _say(f"\n### Instruction:\n{TASK}\n\n### Response:")
    result = None
    for event in engine.stream(TASK, do_sample=False):
        if isinstance(event, GenerationResult):
            result = event
        else:
            sys.stdout.write(event.text)
            sys.stdout.flush()
    assert result is not None
    _say(f"\n\n[{result.finish_reason}; {result.prompt_tokens} prompt + {result.completion_tokens} completion tokens; "
         f"{result.total_s:.2f}s]")
    code = extract_code(result.text)
    if not code:
        _say("verdict: the reply has no code")
        return 1
    return _run(code + "\n" + CHECK)


def _run(program: str) -> int:
    try:
        from wizardcoder_integrations.sandbox import Sandbox
    except ImportError:  # pragma: no cover - the sandbox ships with the package
        _say("verdict: (sandbox unavailable, code not run)")
        return 1
    with Sandbox() as sandbox:
        outcome = sandbox.run(program)
    _say(f"\n### Run ({outcome.tier} sandbox):\n{outcome.stdout}{outcome.stderr}")
    _say(f"verdict: {'passed' if outcome.exit_code == 0 else 'failed'}")
    return 0 if outcome.exit_code == 0 else 1
