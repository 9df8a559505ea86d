"""Both tools as LangChain tools: langchain-tests' standard suites, and the round-2 repair through LangChain."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from wizardcoder_integrations.scenarios.repair import REPAIR_TASK
from wizardcoder_integrations.standin import load_standin_engine
from wizardcoder_integrations.tools.langchain import PythonSandboxTool, WriteAndRunPythonTool


class TestPythonSandboxToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[PythonSandboxTool]:
        return PythonSandboxTool

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"code": "print(2 + 2)"}


class TestPythonSandboxToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[PythonSandboxTool]:
        return PythonSandboxTool

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"code": "print(2 + 2)"}


class _WriteAndRun:
    @property
    def tool_constructor(self) -> type[WriteAndRunPythonTool]:
        return WriteAndRunPythonTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"engine": load_standin_engine()}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"task": REPAIR_TASK["task"], "tests": REPAIR_TASK["tests"]}


class TestWriteAndRunPythonToolUnit(_WriteAndRun, ToolsUnitTests):
    pass


class TestWriteAndRunPythonToolIntegration(_WriteAndRun, ToolsIntegrationTests):
    pass


def test_round_two_repair_through_langchain(engine, sandbox) -> None:
    tool = WriteAndRunPythonTool(engine=engine, sandbox=sandbox)
    report = tool.invoke({"task": REPAIR_TASK["task"], "tests": REPAIR_TASK["tests"]})
    assert report.startswith("verdict: passed after 2 round(s)")


async def test_round_two_repair_through_langchain_async(engine, sandbox) -> None:
    tool = WriteAndRunPythonTool(engine=engine, sandbox=sandbox)
    report = await tool.ainvoke({"task": REPAIR_TASK["task"], "tests": REPAIR_TASK["tests"]})
    assert report.startswith("verdict: passed after 2 round(s)")


def test_bad_arguments_become_a_tool_error_message(sandbox) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        PythonSandboxTool(sandbox=sandbox).invoke({"timeout_s": 1})
