"""The LangGraph write-run-fix graph on the stand-in."""

from __future__ import annotations

from wizardcoder_integrations.agents.langgraph import build_write_run_fix_graph
from wizardcoder_integrations.sandbox import Sandbox
from wizardcoder_integrations.scenarios.repair import REPAIR_TASK


async def test_graph_fixes_the_task_in_round_2(engine) -> None:
    with Sandbox() as sandbox:
        graph = build_write_run_fix_graph(engine, sandbox)
        state = await graph.ainvoke({"task": REPAIR_TASK["task"], "tests": REPAIR_TASK["tests"], "max_rounds": 3})
    assert (state["passed"], state["rounds"]) == (True, 2)
    assert "if b == 0" in state["code"]
    assert [m.role for m in state["messages"]] == ["user", "assistant", "user"]
