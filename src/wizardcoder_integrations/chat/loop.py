"""The one write-run-fix loop: the model writes code, a runner runs it, a failure goes back to the model.

Tools (``write_and_run_python``), agents (the LangGraph graph) and the HumanEval repair rounds all run this
loop; only the instruction, the repair message and the runner differ. :func:`write_run_fix` is the loop as a
generator of steps, so one loop is driven sync (:func:`drive`) or async (:func:`adrive`); the LangGraph graph
uses its pieces (:func:`first_turn`, :func:`repair_turns`) as nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

from wizardcoder_integrations.chat.code import extract_code
from wizardcoder_integrations.chat.template import render_chat
from wizardcoder_integrations.chat.types import ChatMessage

__all__ = ["NO_CODE", "Attempt", "Outcome", "Step", "adrive", "drive", "first_turn", "repair_turns",
           "write_run_fix"]

#: The error of a reply without code (nothing to run).
NO_CODE = "The reply contained no Python code. Reply with a ```python block."

Step = tuple[Literal["write", "run"], str]


@dataclass(frozen=True)
class Outcome:
    """What running one program gave: whether it passed, its output, and the error the model is shown."""

    passed: bool
    output: str
    error: str | None


@dataclass(frozen=True)
class Attempt:
    """One round: the model's reply, the code taken from it, and how running it went."""

    round: int
    reply: str
    code: str
    output: str
    passed: bool
    error: str | None


def first_turn(instruction: str) -> list[ChatMessage]:
    """The conversation of the first round."""
    return [ChatMessage("user", instruction)]


def repair_turns(messages: list[ChatMessage], reply: str, error: str, repair: str) -> list[ChatMessage]:
    """The conversation of the next round: the failed reply, then ``repair`` (a template with ``{error}``)."""
    return [*messages, ChatMessage("assistant", reply), ChatMessage("user", repair.format(error=error))]


def write_run_fix(instruction: str, max_rounds: int, *, repair: str,
                  extract: Callable[[str], str] = extract_code, no_code: str | None = NO_CODE,
                  first: tuple[str, Outcome] | None = None,
                  on_attempt: Callable[[Attempt], None] | None = None,
                  ) -> Generator[Step, Any, list[Attempt]]:
    """The loop as steps: yields ``("write", prompt)`` (send back the reply text) and ``("run", code)`` (send
    back an :class:`Outcome`); returns the attempts, the last one passed or the rounds used up.

    ``extract`` takes the code out of a reply; a reply without code fails with ``no_code`` unless that is None
    (then the empty code is run). ``first`` is a first round already written and run elsewhere (a batch).
    """
    messages = first_turn(instruction)
    attempts: list[Attempt] = []
    for n in range(1, max_rounds + 1):
        if n == 1 and first is not None:
            reply, outcome = first
            code = extract(reply)
        else:
            reply = yield ("write", render_chat(messages))
            code = extract(reply)
            if code or no_code is None:
                outcome = yield ("run", code)
            else:
                outcome = Outcome(False, "", no_code)
        attempt = Attempt(n, reply, code, outcome.output, outcome.passed, outcome.error)
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)
        if attempt.passed:
            break
        messages = repair_turns(messages, reply, outcome.error or "", repair)
    return attempts


def drive(steps: Generator[Step, Any, list[Attempt]], write: Callable[[str], str],
          run: Callable[[str], Outcome]) -> list[Attempt]:
    """Run the loop with a sync ``write(prompt) -> reply`` and ``run(code) -> Outcome``."""
    answer: Any = None
    try:
        while True:
            kind, text = steps.send(answer)
            answer = write(text) if kind == "write" else run(text)
    except StopIteration as done:
        return done.value


async def adrive(steps: Generator[Step, Any, list[Attempt]], write: Callable[[str], Awaitable[str]],
                 run: Callable[[str], Awaitable[Outcome]]) -> list[Attempt]:
    """Run the loop with async ``write`` and ``run``."""
    answer: Any = None
    try:
        while True:
            kind, text = steps.send(answer)
            answer = await (write(text) if kind == "write" else run(text))
    except StopIteration as done:
        return done.value
