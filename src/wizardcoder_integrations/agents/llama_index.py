"""Ready-made LlamaIndex agents over the ``WizardCoder`` LLM, with code running in the project's sandbox.

- :func:`create_codeact_agent`: a ``CodeActAgent`` whose code runs in a :class:`SandboxKernel`, a sandbox
  session where variables persist between steps, like a notebook kernel.
- :func:`create_react_agent`, :func:`create_function_agent`: agents with the two code tools
  (``python_sandbox``, ``write_and_run_python``) and any others.
- :func:`create_agent_workflow`: an ``AgentWorkflow`` around such a "coder" agent, with optional other agents
  that hand work to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Self

from wizardcoder_integrations.agents import CODE_AGENT_PROMPT
from wizardcoder_integrations.extras import extra_imports
from wizardcoder_integrations.sandbox import ExecutionResult, Sandbox, SandboxSession
from wizardcoder_integrations.tools.core import OUTPUT_CHARS

with extra_imports("llama-index", "llama_index.core"):
    from llama_index.core.agent.workflow import AgentWorkflow, CodeActAgent, FunctionAgent, ReActAgent
    from llama_index.core.tools import BaseTool, FunctionTool

__all__ = [
    "CODER_DESCRIPTION",
    "CODE_AGENT_PROMPT",
    "SandboxKernel",
    "code_tools",
    "create_agent_workflow",
    "create_codeact_agent",
    "create_function_agent",
    "create_react_agent",
    "execution_report",
]

CODER_DESCRIPTION = "Writes and runs Python code in a sandbox to answer questions and solve programming tasks."

Tool = BaseTool | Callable[..., Any]


def execution_report(result: ExecutionResult) -> str:
    """What a CodeAct agent reads after its code ran: what it printed, then errors and the exit code."""
    parts = [result.stdout.rstrip("\n")[-OUTPUT_CHARS:]]
    if result.stderr.strip():
        parts.append(f"stderr:\n{result.stderr.rstrip()[-OUTPUT_CHARS:]}")
    if result.timed_out:
        parts.append(f"timed out after {result.duration:.1f}s")
    elif result.exit_code:
        parts.append(f"exit code {result.exit_code}")
    if result.session_dead:
        parts.append("(the session ended: the next code starts a fresh one, earlier variables are gone)")
    return "\n".join(p for p in parts if p) or "(no output)"


class SandboxKernel:
    """Runs a CodeAct agent's code in a sandbox session: variables persist between steps, like a notebook kernel.

    The session starts on the first call; one that dies (a timeout or a crash) is replaced by a fresh one on
    the next call. ``executed`` records every piece of code run.
    """

    def __init__(self, sandbox: Sandbox | None = None, *, timeout_s: float = 10.0) -> None:
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.timeout_s = timeout_s
        self._owns_sandbox = sandbox is None
        self.executed: list[str] = []
        self._session: SandboxSession | None = None

    async def execute(self, code: str) -> str:
        """Run Python code in the sandbox (variables persist between calls) and return what it printed."""
        return execution_report(await self.arun(code))

    async def arun(self, code: str) -> ExecutionResult:
        """Run ``code`` in the session and return the full result."""
        if self._session is None or not self._session.alive:
            self._session = await asyncio.to_thread(self.sandbox.session, timeout=self.timeout_s)
        self.executed.append(code)
        return await self._session.arun(code)

    def reset(self) -> None:
        """Forget every variable: the next call starts a fresh session."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def close(self) -> None:
        """End the session (and the sandbox, if the kernel made it)."""
        self.reset()
        if self._owns_sandbox:
            self.sandbox.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def code_tools(engine: Any, sandbox: Sandbox | None = None, *, max_new_tokens: int = 512) -> list[FunctionTool]:
    """``python_sandbox`` and ``write_and_run_python`` as LlamaIndex tools, sharing one sandbox."""
    from wizardcoder_integrations.tools.llama_index import python_sandbox_tool, write_and_run_python_tool

    box = sandbox if sandbox is not None else Sandbox()
    return [python_sandbox_tool(box), write_and_run_python_tool(engine, box, max_new_tokens=max_new_tokens)]


def _tools(llm: Any, sandbox: Sandbox | None, tools: Sequence[Tool], include_code_tools: bool) -> list[Tool]:
    return [*(code_tools(llm.engine, sandbox) if include_code_tools else []), *tools]


def create_codeact_agent(llm: Any, kernel: SandboxKernel | None = None, **agent_kwargs: Any) -> CodeActAgent:
    """A ``CodeActAgent`` whose ``<execute>`` blocks run in ``kernel`` (a fresh :class:`SandboxKernel` if None).

    The code runs in the sandbox, so it cannot call host functions: pass no ``tools``.
    """
    kernel = kernel if kernel is not None else SandboxKernel()
    return CodeActAgent(code_execute_fn=kernel.execute, llm=llm, **agent_kwargs)


def create_react_agent(llm: Any, sandbox: Sandbox | None = None, *, tools: Sequence[Tool] = (),
                       include_code_tools: bool = True, **agent_kwargs: Any) -> ReActAgent:
    """A ``ReActAgent`` with the code tools (sharing ``sandbox``) and ``tools``."""
    return ReActAgent(tools=_tools(llm, sandbox, tools, include_code_tools), llm=llm, **agent_kwargs)


def create_function_agent(llm: Any, sandbox: Sandbox | None = None, *, tools: Sequence[Tool] = (),
                          include_code_tools: bool = True, system_prompt: str | None = CODE_AGENT_PROMPT,
                          **agent_kwargs: Any) -> FunctionAgent:
    """A ``FunctionAgent`` (WizardCoder's ``<tool_call>`` format) with the code tools and ``tools``."""
    return FunctionAgent(tools=_tools(llm, sandbox, tools, include_code_tools), llm=llm,
                         system_prompt=system_prompt, **agent_kwargs)


def create_agent_workflow(llm: Any, sandbox: Sandbox | None = None, *, tools: Sequence[Tool] = (),
                          include_code_tools: bool = True, system_prompt: str | None = CODE_AGENT_PROMPT,
                          agents: Sequence[Any] = (), root_agent: str | None = None, name: str = "coder",
                          description: str = CODER_DESCRIPTION, **agent_kwargs: Any) -> AgentWorkflow:
    """An ``AgentWorkflow`` around a function-calling "coder" agent with the code tools and ``tools``.

    ``agents`` join the workflow (e.g. a triage agent that hands coding work to ``name``); the root agent is
    ``root_agent``, else the coder. ``agent_kwargs`` go to the coder (``can_handoff_to`` ...).
    """
    coder = create_function_agent(llm, sandbox, tools=tools, include_code_tools=include_code_tools,
                                  system_prompt=system_prompt, name=name, description=description, **agent_kwargs)
    return AgentWorkflow(agents=[*agents, coder], root_agent=root_agent or name)
