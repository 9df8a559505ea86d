"""Both tools as LlamaIndex FunctionTools, and the round-2 repair through LlamaIndex."""

from __future__ import annotations

from wizardcoder_integrations.scenarios.repair import REPAIR_TASK
from wizardcoder_integrations.tools.llama_index import python_sandbox_tool, write_and_run_python_tool


def test_python_sandbox_function_tool(sandbox) -> None:
    tool = python_sandbox_tool(sandbox)
    assert tool.metadata.name == "python_sandbox"
    assert set(tool.metadata.get_parameters_dict()["properties"]) == {"code", "timeout_s"}
    assert tool.call(code="print(3 * 3)").content == "status: ok\nstdout:\n9\n"


def test_round_two_repair_through_llama_index(engine, sandbox) -> None:
    tool = write_and_run_python_tool(engine, sandbox)
    output = tool.call(task=REPAIR_TASK["task"], tests=REPAIR_TASK["tests"])
    assert output.content.startswith("verdict: passed after 2 round(s)")
    assert output.raw_input["kwargs"]["task"] == REPAIR_TASK["task"]


async def test_round_two_repair_through_llama_index_async(engine, sandbox) -> None:
    tool = write_and_run_python_tool(engine, sandbox)
    output = await tool.acall(task=REPAIR_TASK["task"], tests=REPAIR_TASK["tests"])
    assert output.content.startswith("verdict: passed after 2 round(s)")
