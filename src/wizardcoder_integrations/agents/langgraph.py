"""A LangGraph write-run-fix graph: WizardCoder writes, the sandbox runs, errors loop back until it passes.

    write -> run -> (passed or out of rounds) -> END
                 \\-> fix -> write
"""

from __future__ import annotations

from typing import Any, TypedDict

from wizardcoder_integrations.chat.code import extract_code
from wizardcoder_integrations.chat.loop import NO_CODE, first_turn, repair_turns
from wizardcoder_integrations.chat.template import render_chat
from wizardcoder_integrations.chat.types import ChatMessage
from wizardcoder_integrations.extras import extra_imports
from wizardcoder_integrations.tools.core import REPAIR, program_outcome, task_instruction, with_tests

with extra_imports("agents"):
    from langgraph.graph import END, START, StateGraph

__all__ = ["WriteRunFixState", "build_write_run_fix_graph"]


class WriteRunFixState(TypedDict, total=False):
    """The graph's state; pass ``task`` (and optionally ``tests``, ``max_rounds``) to ``invoke``."""

    task: str
    tests: str | None
    max_rounds: int
    messages: list[ChatMessage]
    reply: str
    code: str
    output: str
    passed: bool
    error: str | None
    rounds: int


def build_write_run_fix_graph(engine: Any, sandbox: Any = None, *, max_new_tokens: int = 512,
                              timeout_s: float = 10.0, sampling: dict[str, Any] | None = None) -> Any:
    """Compile the graph over ``engine`` (writes) and ``sandbox`` (runs; a default one if None).

    The nodes are the steps of the shared write-run-fix loop (:mod:`wizardcoder_integrations.chat.loop`),
    with the same prompts and repair messages as the ``write_and_run_python`` tool.
    """
    from wizardcoder_integrations.sandbox import Sandbox

    box = sandbox if sandbox is not None else Sandbox()
    knobs = {"do_sample": False} if sampling is None else sampling

    async def write(state: WriteRunFixState) -> WriteRunFixState:
        messages = state.get("messages") or first_turn(task_instruction(state["task"], state.get("tests")))
        [result] = await engine.agenerate([render_chat(messages)], raw=True, max_new_tokens=max_new_tokens, **knobs)
        return {"messages": messages, "reply": result.text, "code": extract_code(result.text),
                "rounds": state.get("rounds", 0) + 1}

    async def run(state: WriteRunFixState) -> WriteRunFixState:
        if not state["code"]:
            return {"passed": False, "output": "", "error": NO_CODE}
        outcome = program_outcome(await box.arun(with_tests(state["code"], state.get("tests")), timeout=timeout_s))
        return {"passed": outcome.passed, "output": outcome.output, "error": outcome.error}

    def fix(state: WriteRunFixState) -> WriteRunFixState:
        return {"messages": repair_turns(state["messages"], state["reply"], state.get("error") or "", REPAIR)}

    def route(state: WriteRunFixState) -> str:
        if state.get("passed") or state.get("rounds", 0) >= state.get("max_rounds", 3):
            return END
        return "fix"

    graph = StateGraph(WriteRunFixState)
    graph.add_node("write", write)
    graph.add_node("run", run)
    graph.add_node("fix", fix)
    graph.add_edge(START, "write")
    graph.add_edge("write", "run")
    graph.add_conditional_edges("run", route, ["fix", END])
    graph.add_edge("fix", "write")
    return graph.compile()
