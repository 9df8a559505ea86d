"""A LangGraph write-run-fix graph: WizardCoder writes, the sandbox runs, errors loop back until it passes.

    write -> run -> (passed or out of rounds) -> END
                 \\-> fix -> write
"""

from __future__ import annotations

from typing import Any, TypedDict

from wizardcoder_integrations.errors import missing_extra
from wizardcoder_integrations.prompt import ChatMessage, extract_code, render_chat
from wizardcoder_integrations.tools.core import error_summary, repair_instruction, task_instruction

try:
    from langgraph.graph import END, START, StateGraph
except ImportError as e:  # pragma: no cover - exercised without the extra
    raise missing_extra("langchain", "langgraph") from e

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
    """Compile the graph over ``engine`` (writes) and ``sandbox`` (runs; a default one if None)."""
    from wizardcoder_integrations.sandbox import Sandbox

    box = sandbox if sandbox is not None else Sandbox()
    knobs = {"do_sample": False} if sampling is None else sampling

    async def write(state: WriteRunFixState) -> WriteRunFixState:
        messages = state.get("messages") or [ChatMessage("user", task_instruction(state["task"], state.get("tests")))]
        [result] = await engine.agenerate([render_chat(messages)], raw=True, max_new_tokens=max_new_tokens, **knobs)
        return {"messages": messages, "reply": result.text, "code": extract_code(result.text),
                "rounds": state.get("rounds", 0) + 1}

    async def run(state: WriteRunFixState) -> WriteRunFixState:
        code, tests = state["code"], state.get("tests")
        if not code:
            return {"passed": False, "output": "", "error": "The reply contained no Python code."}
        program = f"{code}\n\n{tests.strip()}\n" if tests and tests.strip() else code
        result = await box.arun(program, timeout=timeout_s)
        output = result.stdout + (result.stderr if not result.ok else "")
        return {"passed": result.ok, "output": output, "error": None if result.ok else error_summary(result)}

    def fix(state: WriteRunFixState) -> WriteRunFixState:
        messages = [*state["messages"], ChatMessage("assistant", state["reply"]),
                    ChatMessage("user", repair_instruction(state.get("error") or ""))]
        return {"messages": messages}

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
