"""A ready-made LangChain agent: ``ChatWizardCoder`` with the two code tools, built by ``create_agent``::

    agent = create_code_agent(engine, sandbox=Sandbox())
    agent.invoke({"messages": [("user", "Use Python to find the 20th Fibonacci number.")]})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from wizardcoder_integrations.agents import CODE_AGENT_PROMPT
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.extras import extra_imports

with extra_imports("agents"):
    from langchain.agents import create_agent
    from langchain_core.tools import BaseTool
    from langgraph.graph.state import CompiledStateGraph

from wizardcoder_integrations.langchain import ChatWizardCoder

__all__ = ["CODE_AGENT_PROMPT", "code_tools", "create_code_agent"]


def code_tools(engine: Any, sandbox: Any = None, *, max_new_tokens: int = 512) -> list[BaseTool]:
    """``python_sandbox`` and ``write_and_run_python`` as LangChain tools, sharing one sandbox."""
    from wizardcoder_integrations.sandbox import Sandbox
    from wizardcoder_integrations.tools.langchain import PythonSandboxTool, WriteAndRunPythonTool

    box = sandbox if sandbox is not None else Sandbox()
    return [PythonSandboxTool(sandbox=box),
            WriteAndRunPythonTool(engine=engine, sandbox=box, max_new_tokens=max_new_tokens)]


def create_code_agent(model: Any, *, sandbox: Any = None, tools: Sequence[BaseTool | Callable[..., Any]] = (),
                      include_code_tools: bool = True, system_prompt: str | None = CODE_AGENT_PROMPT,
                      **agent_kwargs: Any) -> CompiledStateGraph:
    """A compiled ``create_agent`` graph: WizardCoder calls the code tools (and ``tools``) until it can answer.

    ``model`` is a ``ChatWizardCoder``, or an ``Engine``, ``RemoteEngine`` or model id (wrapped greedily:
    temperature 0).
    ``sandbox`` runs the code (a default one if None); ``agent_kwargs`` go to ``create_agent``
    (``checkpointer``, ``middleware``, ``response_format`` ...).
    """
    chat = _chat_model(model)
    extra = code_tools(chat.load_engine(), sandbox) if include_code_tools else []
    return create_agent(chat, tools=[*extra, *tools], system_prompt=system_prompt, **agent_kwargs)


def _chat_model(model: Any) -> ChatWizardCoder:
    from wizardcoder_integrations.engine import Engine, RemoteEngine

    if isinstance(model, ChatWizardCoder):
        return model
    if isinstance(model, Engine | RemoteEngine):
        return ChatWizardCoder(engine=model, temperature=0)
    if isinstance(model, str):
        return ChatWizardCoder(model=model, temperature=0)
    raise ConfigurationError(
        f"model must be a ChatWizardCoder, an Engine, a RemoteEngine or a model id, got {type(model).__name__}."
    )
