"""The two code tools as LlamaIndex ``FunctionTool``s (sync and async), and as a tool spec."""

from __future__ import annotations

from typing import Any

from wizardcoder_integrations.extras import extra_imports
from wizardcoder_integrations.tools.core import (
    PYTHON_SANDBOX,
    WRITE_AND_RUN_PYTHON,
    PythonSandbox,
    WriteAndRunPython,
)

with extra_imports("llama-index", "llama_index.core"):
    from llama_index.core.tools import FunctionTool

__all__ = ["python_sandbox_tool", "write_and_run_python_tool"]


def python_sandbox_tool(sandbox: Any = None) -> FunctionTool:
    """``python_sandbox`` for LlamaIndex agents."""
    core = PythonSandbox(sandbox)

    def python_sandbox(code: str, timeout_s: float = 10.0) -> str:
        return core.run(code=code, timeout_s=timeout_s)

    async def apython_sandbox(code: str, timeout_s: float = 10.0) -> str:
        return await core.arun(code=code, timeout_s=timeout_s)

    return FunctionTool.from_defaults(fn=python_sandbox, async_fn=apython_sandbox, name=PYTHON_SANDBOX.name,
                                      description=PYTHON_SANDBOX.description,
                                      fn_schema=PYTHON_SANDBOX.args_schema)


def write_and_run_python_tool(engine: Any, sandbox: Any = None, *, max_new_tokens: int = 512) -> FunctionTool:
    """``write_and_run_python`` for LlamaIndex agents (WizardCoder writes, the sandbox runs)."""
    core = WriteAndRunPython(engine, sandbox, max_new_tokens=max_new_tokens)

    def write_and_run_python(task: str, tests: str | None = None, max_rounds: int = 3) -> str:
        return core.run(task=task, tests=tests, max_rounds=max_rounds).to_text()

    async def awrite_and_run_python(task: str, tests: str | None = None, max_rounds: int = 3) -> str:
        return (await core.arun(task=task, tests=tests, max_rounds=max_rounds)).to_text()

    return FunctionTool.from_defaults(fn=write_and_run_python, async_fn=awrite_and_run_python,
                                      name=WRITE_AND_RUN_PYTHON.name, description=WRITE_AND_RUN_PYTHON.description,
                                      fn_schema=WRITE_AND_RUN_PYTHON.args_schema)
