"""``wizardcoder serve`` behind the clients people use: the ``openai`` SDK, langchain-openai's ``ChatOpenAI``
(and ``init_chat_model``), LlamaIndex's ``OpenAILike``; and a client that goes away frees its slot."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

pytest.importorskip("langchain_openai")
pytest.importorskip("llama_index.llms.openai_like")

from langchain.agents import create_agent
from langchain.chat_models import init_chat_model
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.llms.openai_like import OpenAILike

from wizardcoder_integrations.engine import Engine
from wizardcoder_integrations.scenarios.llama_index_agents import (
    FUNCTION_QUESTION,
    FUNCTION_SYSTEM_PROMPT,
)
from wizardcoder_integrations.scenarios.llama_index_agents import get_weather as get_city_weather
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.scenarios.tool_calls import (
    ORDER_QUESTION,
    WEATHER_ANSWER,
    WEATHER_QUESTION,
    WEATHER_RESULT,
    PizzaOrder,
)

from .conftest import Server

TASK = CODE_TASKS[3]


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return WEATHER_RESULT


@pytest.fixture(scope="module")
def chat(server: Server, engine: Engine) -> ChatOpenAI:
    return ChatOpenAI(model=engine.model_name, base_url=f"{server.url}/v1", api_key="unused", temperature=0,
                      max_retries=0)


def test_chat_openai_basics_and_max_tokens(chat: ChatOpenAI, server: Server, engine: Engine) -> None:
    assert chat.invoke(TASK.instruction).content == TASK.response.strip()
    short = chat.bind(max_tokens=4).invoke(TASK.instruction)  # sent as max_completion_tokens
    assert short.response_metadata["finish_reason"] == "length" and short.usage_metadata["output_tokens"] == 4
    same = init_chat_model(f"openai:{engine.model_name}", base_url=f"{server.url}/v1", api_key="unused",
                           temperature=0)
    assert same.invoke(TASK.instruction).content == TASK.response.strip()


def test_chat_openai_streams_with_usage(chat: ChatOpenAI) -> None:
    chunks = list(chat.bind(stream_usage=True).stream(TASK.instruction))
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    assert len(chunks) > 3 and whole.content == TASK.response.strip()
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] > 0


def test_chat_openai_bind_tools_and_tool_results(chat: ChatOpenAI) -> None:
    bound = chat.bind_tools([get_weather])
    message = bound.invoke(WEATHER_QUESTION)
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"location": "San Francisco, CA"})]
    result = ToolMessage(WEATHER_RESULT, tool_call_id=message.tool_calls[0]["id"])  # no name: the OpenAI way
    assert bound.invoke([HumanMessage(WEATHER_QUESTION), message, result]).content == WEATHER_ANSWER


def test_chat_openai_structured_output_json_schema(chat: ChatOpenAI) -> None:
    order = chat.with_structured_output(PizzaOrder, method="json_schema").invoke(ORDER_QUESTION)
    assert isinstance(order, PizzaOrder)  # validated by pydantic: the schema's ranges held


def test_create_agent_round_trip(chat: ChatOpenAI) -> None:
    agent = create_agent(chat, tools=[get_weather])
    state = agent.invoke({"messages": [HumanMessage(WEATHER_QUESTION)]})
    kinds = [m.type for m in state["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"] and state["messages"][-1].content == WEATHER_ANSWER


async def test_openai_like_function_agent_round_trip(server: Server, engine: Engine) -> None:
    from llama_index.core.tools import FunctionTool

    llm = OpenAILike(model=engine.model_name, api_base=f"{server.url}/v1", api_key="unused", temperature=0,
                     is_chat_model=True, is_function_calling_model=True, context_window=2048, max_retries=0)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(get_city_weather)], llm=llm,
                          system_prompt=FUNCTION_SYSTEM_PROMPT)
    handler = agent.run(user_msg=FUNCTION_QUESTION)
    calls = [(e.tool_name, e.tool_kwargs) async for e in handler.stream_events() if isinstance(e, ToolCallResult)]
    response = await handler
    # OpenAI-style tool schemas make another prompt than the in-process adapter's, so only the round trip is
    # checked: the call, then an answer built from the tool's result
    assert calls == [("get_weather", {"city": "Paris"})]
    assert "sunny" in str(response) and "22 degrees" in str(response)


def test_openai_sdk_models_and_errors(server: Server, engine: Engine) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert client.models.retrieve(engine.model_name).id == engine.model_name
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="suffix"):
        client.completions.create(model=engine.model_name, prompt="def f(", suffix="return 1")


def _wait_idle(server: Server) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(f"{server.url}/health").json()
        if (health["in_flight"], health["running"]) == (0, 0) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_clients_that_go_away_free_their_slots(server: Server, engine: Engine) -> None:
    never_ends = {"model": engine.model_name, "prompt": "Tell me a long story.", "max_tokens": 1500,
                  "temperature": 0, "logit_bias": {str(engine.eos_token_id): -100}}
    with httpx.stream("POST", f"{server.url}/v1/completions", json={**never_ends, "stream": True},
                      timeout=60) as response:
        lines = response.iter_lines()
        assert [next(lines) for _ in range(3)]
    assert _wait_idle(server) == {**_wait_idle(server), "in_flight": 0, "running": 0}
    with pytest.raises(httpx.ReadTimeout):  # not streaming: the client gives up while the reply runs
        httpx.post(f"{server.url}/v1/completions", json=never_ends, timeout=httpx.Timeout(60, read=1.0))
    health = _wait_idle(server)
    assert (health["in_flight"], health["running"]) == (0, 0)
