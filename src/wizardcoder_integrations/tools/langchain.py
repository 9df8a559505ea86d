"""The two code tools as LangChain tools (``BaseTool`` with an args schema, sync and async)."""

from __future__ import annotations

from typing import Any

from wizardcoder_integrations.extras import extra_imports
from wizardcoder_integrations.tools.core import (
    PYTHON_SANDBOX,
    WRITE_AND_RUN_PYTHON,
    PythonSandbox,
    PythonSandboxArgs,
    WriteAndRunArgs,
    WriteAndRunPython,
)

with extra_imports("langchain", "langchain_core"):
    from langchain_core.tools import BaseTool, ToolException

from pydantic import ConfigDict, Field

from wizardcoder_integrations.errors import SandboxError, ToolArgumentsError

__all__ = ["PythonSandboxTool", "WriteAndRunPythonTool"]


class PythonSandboxTool(BaseTool):
    """Run Python in the project's OS sandbox and return exit status, stdout, stderr and any exception."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = PYTHON_SANDBOX.name
    description: str = PYTHON_SANDBOX.description
    args_schema: type[PythonSandboxArgs] = PythonSandboxArgs
    handle_tool_error: bool = True
    sandbox: Any = Field(default=None, exclude=True, description="A Sandbox; a default one is made if None.")

    def _core(self) -> PythonSandbox:
        core = self.__dict__.get("_core_tool")
        if core is None:
            core = PythonSandbox(self.sandbox)
            self.__dict__["_core_tool"] = core
        return core

    def _run(self, code: str, timeout_s: float = 10.0, run_manager: Any = None) -> str:
        try:
            return self._core().run(code=code, timeout_s=timeout_s)
        except (ToolArgumentsError, SandboxError) as e:
            raise ToolException(str(e)) from e

    async def _arun(self, code: str, timeout_s: float = 10.0, run_manager: Any = None) -> str:
        try:
            return await self._core().arun(code=code, timeout_s=timeout_s)
        except (ToolArgumentsError, SandboxError) as e:
            raise ToolException(str(e)) from e


class WriteAndRunPythonTool(BaseTool):
    """WizardCoder writes Python for a task, it runs in the sandbox, and errors go back to it until it works."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = WRITE_AND_RUN_PYTHON.name
    description: str = WRITE_AND_RUN_PYTHON.description
    args_schema: type[WriteAndRunArgs] = WriteAndRunArgs
    handle_tool_error: bool = True
    engine: Any = Field(exclude=True, description="The WizardCoder engine that writes the code.")
    sandbox: Any = Field(default=None, exclude=True, description="A Sandbox; a default one is made if None.")
    max_new_tokens: int = Field(512, ge=1, description="Most tokens per written answer.")

    def _core(self) -> WriteAndRunPython:
        core = self.__dict__.get("_core_tool")
        if core is None:
            core = WriteAndRunPython(self.engine, self.sandbox, max_new_tokens=self.max_new_tokens)
            self.__dict__["_core_tool"] = core
        return core

    def _run(self, task: str, tests: str | None = None, max_rounds: int = 3, run_manager: Any = None) -> str:
        try:
            return self._core().run(task=task, tests=tests, max_rounds=max_rounds).to_text()
        except (ToolArgumentsError, SandboxError) as e:
            raise ToolException(str(e)) from e

    async def _arun(self, task: str, tests: str | None = None, max_rounds: int = 3,
                    run_manager: Any = None) -> str:
        try:
            return (await self._core().arun(task=task, tests=tests, max_rounds=max_rounds)).to_text()
        except (ToolArgumentsError, SandboxError) as e:
            raise ToolException(str(e)) from e
