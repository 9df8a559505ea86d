"""The ready-made LangChain agent on the stand-in: a full tool round trip, and its default tools and prompt.

The stand-in answers only the conversations it was trained on; its tool round trip is the weather question
with ``get_weather`` alone and no system prompt, so the round trip turns the code tools and prompt off.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain", reason="the 'langchain' extra is not installed")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from wizardcoder_integrations.agents import CODE_AGENT_PROMPT
from wizardcoder_integrations.agents.langchain import code_tools, create_code_agent
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.langchain import ChatWizardCoder
from wizardcoder_integrations.sandbox import Sandbox
from wizardcoder_integrations.scenarios.tool_calls import WEATHER_ANSWER, WEATHER_QUESTION

pytestmark = pytest.mark.slow

CALLS: list[str] = []


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    CALLS.append(location)
    return "It's sunny."


class _Prompts(BaseCallbackHandler):
    """Records what the chat model is sent: messages and the tools bound to it."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.tools: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.messages = messages[0]
        self.tools = [t["function"]["name"] for t in kwargs["invocation_params"].get("tools", [])]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


@pytest.mark.parametrize("model", ["engine", "chat"])
def test_round_trip_from_an_engine_or_a_chat_model(engine: Any, model: str) -> None:
    CALLS.clear()
    given = engine if model == "engine" else ChatWizardCoder(engine=engine, temperature=0)
    agent = create_code_agent(given, tools=[get_weather], include_code_tools=False, system_prompt=None)
    _, call, result, answer = agent.invoke({"messages": [HumanMessage(WEATHER_QUESTION)]})["messages"]
    assert isinstance(call, AIMessage) and call.tool_calls[0]["args"] == {"location": "San Francisco, CA"}
    assert isinstance(result, ToolMessage) and result.content == "It's sunny."
    assert isinstance(answer, AIMessage) and answer.content == WEATHER_ANSWER
    assert CALLS == ["San Francisco, CA"]


def test_default_agent_sends_the_prompt_and_both_code_tools(engine: Any, sandbox: Sandbox) -> None:
    prompts = _Prompts()
    short = ChatWizardCoder(engine=engine, temperature=0, max_tokens=1)  # one token: the agent stops at once
    agent = create_code_agent(short, sandbox=sandbox, tools=[get_weather])
    agent.invoke({"messages": [HumanMessage("Use Python to add 2 and 3.")]}, {"callbacks": [prompts]})
    assert isinstance(prompts.messages[0], SystemMessage) and prompts.messages[0].content == CODE_AGENT_PROMPT
    assert prompts.tools == ["python_sandbox", "write_and_run_python", "get_weather"]
    tools = agent.nodes["tools"].bound.tools_by_name
    assert tools["python_sandbox"].invoke({"code": "print(6 * 7)"}) == "status: ok\nstdout:\n42\n"


def test_code_tools_share_one_sandbox_and_the_engine(engine: Any, sandbox: Sandbox) -> None:
    run, write = code_tools(engine, sandbox)
    assert run.sandbox is write.sandbox is sandbox and write.engine is engine
    run, write = code_tools(engine)
    assert isinstance(run.sandbox, Sandbox) and run.sandbox is write.sandbox


def test_anything_else_as_model_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="ChatWizardCoder, an Engine, a RemoteEngine or a model id"):
        create_code_agent(object())
