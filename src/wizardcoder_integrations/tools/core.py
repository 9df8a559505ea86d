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

from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.prompt import ChatMessage, extract_code, render_chat
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
    "repair_instruction",
    "task_instruction",
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
        """Checked arguments, or a :class:`ConfigurationError` that names the tool and the problem."""
        try:
            return self.args_schema.model_validate(arguments)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
            raise ConfigurationError(f"Invalid arguments for tool {self.name!r}: {problems}.") from e


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


@dataclass(frozen=True)
class Round:
    """One write-and-run attempt."""

    round: int
    code: str
    output: str
    passed: bool
    error: str | None


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

    def _steps(self, args: WriteAndRunArgs) -> Generator[tuple[str, str], Any, WriteRunResult]:
        """The write-run-fix loop as a coroutine of steps: yields ("write", prompt) and ("run", program), and is
        sent back the reply text and the :class:`ExecutionResult`. One loop, driven sync or async."""
        messages = [ChatMessage("user", task_instruction(args.task, args.tests))]
        history: list[Round] = []
        for n in range(1, args.max_rounds + 1):
            reply = yield ("write", render_chat(messages))
            code = extract_code(reply)
            if code:
                program = f"{code}\n\n{args.tests.strip()}\n" if args.tests and args.tests.strip() else code
                result: ExecutionResult = yield ("run", program)
                output = result.stdout + (result.stderr if not result.ok else "")
                r = Round(n, code, output, result.ok, None if result.ok else error_summary(result))
            else:
                r = Round(n, "", "", False, "The reply contained no Python code. Reply with a ```python block.")
            history.append(r)
            if self.on_round is not None:
                self.on_round(r)
            if r.passed:
                break
            messages += [ChatMessage("assistant", reply), ChatMessage("user", repair_instruction(r.error or ""))]
        last = history[-1]
        return WriteRunResult(args.task, last.code, last.output, last.passed, len(history), tuple(history))

    def run(self, **arguments: Any) -> WriteRunResult:
        steps = self._steps(self.definition.validate(arguments))  # type: ignore[arg-type]
        answer: Any = None
        try:
            while True:
                kind, text = steps.send(answer)
                if kind == "write":
                    answer = self.engine.generate([text], raw=True, max_new_tokens=self.max_new_tokens,
                                                  **self.sampling)[0].text
                else:
                    answer = self.sandbox.run(text, timeout=self.timeout_s)
        except StopIteration as done:
            return done.value

    async def arun(self, **arguments: Any) -> WriteRunResult:
        steps = self._steps(self.definition.validate(arguments))  # type: ignore[arg-type]
        answer: Any = None
        try:
            while True:
                kind, text = steps.send(answer)
                if kind == "write":
                    [result] = await self.engine.agenerate([text], raw=True, max_new_tokens=self.max_new_tokens,
                                                           **self.sampling)
                    answer = result.text
                else:
                    answer = await self.sandbox.arun(text, timeout=self.timeout_s)
        except StopIteration as done:
            return done.value
