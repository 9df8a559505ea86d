"""The two code tools, defined once and framework-free; LangChain and LlamaIndex wrap them by conversion.

- ``python_sandbox`` runs given Python in the sandbox and reports compactly for a model.
- ``write_and_run_python`` has WizardCoder write code for a task (Alpaca template), runs it in the sandbox
  with the optional tests, and on an error or a failing test shows the model the error and lets it try
  again, up to ``max_rounds``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from wizardcoder_integrations.chat.loop import Attempt, Outcome, Step, adrive, drive, write_run_fix
from wizardcoder_integrations.errors import ToolArgumentsError
from wizardcoder_integrations.sandbox import ExecutionResult, Sandbox

__all__ = [
    "PYTHON_SANDBOX",
    "WRITE_AND_RUN_PYTHON",
    "PythonSandbox",
    "PythonSandboxArgs",
    "Round",
    "ToolDefinition",
    "WriteAndRunArgs",
    "WriteAndRunPython",
    "WriteRunResult",
    "error_summary",
    "format_execution",
    "program_outcome",
    "repair_instruction",
    "task_instruction",
    "with_tests",
]

OUTPUT_CHARS = 2000
"""How much of stdout/stderr a model is shown."""
REPAIR = "The code failed:\n{error}\nFix the code. Reply with the complete corrected code."


class PythonSandboxArgs(BaseModel):
    """Arguments of ``python_sandbox``."""

    code: str = Field(description="Complete Python source to execute. Print what you want to see.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before the run is killed.")


class WriteAndRunArgs(BaseModel):
    """Arguments of ``write_and_run_python``."""

    task: str = Field(description="What the Python code must do, in plain words.")
    tests: str | None = Field(None, description="Optional Python statements (asserts) the code must pass.")
    max_rounds: int = Field(3, ge=1, le=10, description="Tries, each after seeing the previous error.")


@dataclass(frozen=True)
class ToolDefinition:
    """Name, description and argument schema: everything a framework needs to expose a tool."""

    name: str
    description: str
    args_schema: type[BaseModel]

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        """Checked arguments, or a :class:`ToolArgumentsError` that names the tool and the problem."""
        try:
            return self.args_schema.model_validate(arguments)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
            raise ToolArgumentsError(f"Invalid arguments for tool {self.name!r}: {problems}.") from e


PYTHON_SANDBOX = ToolDefinition(
    "python_sandbox",
    "Run Python code in an isolated sandbox (no network, no access to the host's files) and return its exit "
    "code, stdout, stderr and any exception. State does not persist between calls.",
    PythonSandboxArgs,
)
WRITE_AND_RUN_PYTHON = ToolDefinition(
    "write_and_run_python",
    "Have WizardCoder write Python for a task, run it in a sandbox with optional tests, and fix it from the "
    "error until it works. Returns the final code, its output, whether it passed, and the rounds used.",
    WriteAndRunArgs,
)


def _clip(text: str) -> str:
    return text if len(text) <= OUTPUT_CHARS else "…" + text[-OUTPUT_CHARS:]


def format_execution(result: ExecutionResult) -> str:
    """A run, compactly, for a model to read."""
    if result.timed_out:
        status = "timed out"
    elif result.ok:
        status = "ok"
    else:
        status = f"failed (exit code {result.exit_code})"
    parts = [f"status: {status}"]
    if result.stdout:
        parts.append(f"stdout:\n{_clip(result.stdout)}")
    if result.exception_type:
        parts.append(f"error: {result.exception_type}: {result.exception_message or ''}".rstrip())
    elif result.stderr and not result.ok:
        parts.append(f"stderr:\n{_clip(result.stderr)}")
    if result.truncated:
        parts.append("(output was truncated)")
    return "\n".join(parts)


def error_summary(result: ExecutionResult) -> str:
    """What went wrong, deterministically worded (the model is shown it to repair the code)."""
    if result.timed_out:
        return "The program timed out (an infinite loop or very slow code)."
    if result.exception_type:
        return f"{result.exception_type}: {result.exception_message or ''}".rstrip()
    tail = (result.stderr or "").strip().splitlines()[-5:]
    return "\n".join(tail) if tail else f"The program exited with code {result.exit_code}."


def task_instruction(task: str, tests: str | None) -> str:
    """The first-round instruction for ``write_and_run_python``."""
    if tests and tests.strip():
        return f"{task.strip()}\nThe code must pass these tests:\n```python\n{tests.strip()}\n```"
    return task.strip()


def repair_instruction(error: str) -> str:
    return REPAIR.format(error=error)


def program_outcome(result: ExecutionResult) -> Outcome:
    """A sandbox run as the write-run-fix loop sees it: passed, output, and the error the model is shown."""
    output = result.stdout + (result.stderr if not result.ok else "")
    return Outcome(result.ok, output, None if result.ok else error_summary(result))


def with_tests(code: str, tests: str | None) -> str:
    """The program to run: the code, then the tests (if any)."""
    return f"{code}\n\n{tests.strip()}\n" if tests and tests.strip() else code


#: One write-and-run attempt (the shared loop's :class:`~wizardcoder_integrations.chat.loop.Attempt`).
Round = Attempt


@dataclass(frozen=True)
class WriteRunResult:
    task: str
    code: str
    output: str
    passed: bool
    rounds: int
    history: tuple[Round, ...] = field(default=())

    def to_text(self) -> str:
        """Compact report for a model."""
        verdict = "passed" if self.passed else "failed"
        return (f"verdict: {verdict} after {self.rounds} round(s)\ncode:\n```python\n{self.code}```\n"
                f"output:\n{_clip(self.output) or '(none)'}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PythonSandbox:
    """``python_sandbox``: run code, report compactly."""

    definition = PYTHON_SANDBOX

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox if sandbox is not None else Sandbox()

    def run(self, **arguments: Any) -> str:
        args = self.definition.validate(arguments)
        return format_execution(self.sandbox.run(args.code, timeout=args.timeout_s))

    async def arun(self, **arguments: Any) -> str:
        args = self.definition.validate(arguments)
        return format_execution(await self.sandbox.arun(args.code, timeout=args.timeout_s))


class WriteAndRunPython:
    """``write_and_run_python``: write with WizardCoder, run in the sandbox, repair from the error."""

    definition = WRITE_AND_RUN_PYTHON

    def __init__(self, engine: Any, sandbox: Sandbox | None = None, *, max_new_tokens: int = 512,
                 timeout_s: float = 10.0, on_round: Callable[[Round], None] | None = None,
                 sampling: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.on_round = on_round
        self.sampling = {"do_sample": False} if sampling is None else sampling

    def _steps(self, args: WriteAndRunArgs) -> Generator[Step, Any, list[Attempt]]:
        return write_run_fix(task_instruction(args.task, args.tests), args.max_rounds, repair=REPAIR,
                             on_attempt=self.on_round)

    def _result(self, args: WriteAndRunArgs, history: list[Attempt]) -> WriteRunResult:
        last = history[-1]
        return WriteRunResult(args.task, last.code, last.output, last.passed, len(history), tuple(history))

    def run(self, **arguments: Any) -> WriteRunResult:
        args: WriteAndRunArgs = self.definition.validate(arguments)  # type: ignore[assignment]

        def write(prompt: str) -> str:
            return self.engine.generate([prompt], raw=True, max_new_tokens=self.max_new_tokens,
                                        **self.sampling)[0].text

        def run(code: str) -> Outcome:
            return program_outcome(self.sandbox.run(with_tests(code, args.tests), timeout=self.timeout_s))

        return self._result(args, drive(self._steps(args), write, run))

    async def arun(self, **arguments: Any) -> WriteRunResult:
        args: WriteAndRunArgs = self.definition.validate(arguments)  # type: ignore[assignment]

        async def write(prompt: str) -> str:
            [result] = await self.engine.agenerate([prompt], raw=True, max_new_tokens=self.max_new_tokens,
                                                   **self.sampling)
            return result.text

        async def run(code: str) -> Outcome:
            return program_outcome(await self.sandbox.arun(with_tests(code, args.tests), timeout=self.timeout_s))

        return self._result(args, await adrive(self._steps(args), write, run))
