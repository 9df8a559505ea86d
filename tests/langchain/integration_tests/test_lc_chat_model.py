"""ChatWizardCoder on the stand-in: agents, tool calls in every path, usage, structured output, limits."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import pytest

pytest.importorskip("langchain", reason="the 'langchain' extra is not installed")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field, field_validator

from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.langchain import ChatWizardCoder
from wizardcoder_integrations.standin import STANDIN_REPO, build_standin
from wizardcoder_integrations.standin.tasks import CODE_TASKS
from wizardcoder_integrations.standin.tool_examples import (
    BROKEN_CALL_QUESTION,
    CAT_JOKE,
    WEATHER_ANSWER,
    WEATHER_QUESTION,
)

pytestmark = pytest.mark.slow

WEATHER_CALLS: list[str] = []


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    WEATHER_CALLS.append(location)
    return "It's sunny."


class Joke(BaseModel):
    """Joke to tell user."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


def _join(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


async def _achunks(runnable: Any, request: Any) -> list[Any]:
    return [c async for c in runnable.astream(request)]


# -- agents ------------------------------------------------------------------------------------------------
def test_create_agent_completes_a_tool_round_trip(chat: ChatWizardCoder) -> None:
    WEATHER_CALLS.clear()
    agent = create_agent(chat, tools=[get_weather])
    state = agent.invoke({"messages": [HumanMessage(WEATHER_QUESTION)]})
    _, call, result, answer = state["messages"]
    assert isinstance(call, AIMessage) and [c["name"] for c in call.tool_calls] == ["get_weather"]
    assert call.tool_calls[0]["args"] == {"location": "San Francisco, CA"} and call.tool_calls[0]["id"]
    assert isinstance(result, ToolMessage) and result.content == "It's sunny."
    assert result.tool_call_id == call.tool_calls[0]["id"]
    assert isinstance(answer, AIMessage) and answer.content == WEATHER_ANSWER and not answer.tool_calls
    assert WEATHER_CALLS == ["San Francisco, CA"]


def test_create_agent_streams_and_runs_async(chat: ChatWizardCoder) -> None:
    agent = create_agent(chat, tools=[get_weather])
    state = asyncio.run(agent.ainvoke({"messages": [HumanMessage(WEATHER_QUESTION)]}))
    assert state["messages"][-1].content == WEATHER_ANSWER
    tokens = [msg.content for msg, _ in agent.stream({"messages": [HumanMessage(WEATHER_QUESTION)]},
                                                       stream_mode="messages") if isinstance(msg, AIMessageChunk)]
    assert "".join(tokens) == WEATHER_ANSWER  # tool-call markup never reaches the streamed text


def test_a_malformed_tool_call_becomes_an_invalid_call_not_a_crash(chat: ChatWizardCoder) -> None:
    WEATHER_CALLS.clear()
    state = create_agent(chat, tools=[get_weather]).invoke({"messages": [HumanMessage(BROKEN_CALL_QUESTION)]})
    last = state["messages"][-1]
    assert isinstance(last, AIMessage) and last.tool_calls == []
    [invalid] = last.invalid_tool_calls
    assert invalid["name"] == "get_weather" and invalid["id"] and "not valid JSON" in invalid["error"]
    assert WEATHER_CALLS == []
    streamed = _join(list(chat.bind_tools([get_weather]).stream(BROKEN_CALL_QUESTION)))
    assert streamed.tool_calls == [] and [c["name"] for c in streamed.invalid_tool_calls] == ["get_weather"]


# -- every path agrees -------------------------------------------------------------------------------------
def test_tool_calls_agree_across_invoke_stream_batch_and_async(chat: ChatWizardCoder) -> None:
    bound = chat.bind_tools([get_weather])
    invoked = bound.invoke(WEATHER_QUESTION)
    chunks = list(bound.stream(WEATHER_QUESTION))
    streamed = _join(chunks)
    [batched, _] = bound.batch([WEATHER_QUESTION, WEATHER_QUESTION])
    ainvoked = asyncio.run(bound.ainvoke(WEATHER_QUESTION))
    astreamed = _join(asyncio.run(_achunks(bound, WEATHER_QUESTION)))
    for message in (invoked, streamed, batched, ainvoked, astreamed):
        assert message.content == ""
        assert [(c["name"], c["args"]) for c in message.tool_calls] == [
            ("get_weather", {"location": "San Francisco, CA"})]
    assert all("tool_call" not in str(c.content) for c in chunks)
    assert invoked.tool_calls[0]["id"] != ainvoked.tool_calls[0]["id"]


def test_usage_and_metadata_are_on_every_reply_and_on_exactly_one_chunk(chat: ChatWizardCoder,
                                                                          engine: Any) -> None:
    task = CODE_TASKS[0]
    reply = chat.invoke(task.instruction)
    assert reply.content == task.response.strip()
    prompt_tokens = len(engine.tokenize(chat.render([HumanMessage(task.instruction)]).prompt))
    assert reply.usage_metadata == {"input_tokens": prompt_tokens,
                                    "output_tokens": chat.get_num_tokens(task.response) + 1,
                                    "total_tokens": prompt_tokens + chat.get_num_tokens(task.response) + 1}
    assert chat.get_num_tokens_from_messages([HumanMessage(task.instruction)]) == prompt_tokens
    assert reply.response_metadata["model_name"] == STANDIN_REPO
    assert reply.response_metadata["finish_reason"] == "stop"
    for chunks in (list(chat.stream(task.instruction)), asyncio.run(_achunks(chat, task.instruction))):
        with_usage = [c for c in chunks if c.usage_metadata]
        with_name = [c for c in chunks if c.response_metadata.get("model_name")]
        assert len(with_usage) == len(with_name) == 1
        full = _join(chunks)
        assert full.content == reply.content and full.usage_metadata == reply.usage_metadata
        assert full.response_metadata["finish_reason"] == "stop"


def test_stop_and_per_call_settings(chat: ChatWizardCoder) -> None:
    task = CODE_TASKS[9]
    cut = task.response[: task.response.index("    return")].strip()
    assert chat.invoke(task.instruction, stop=["    return"]).content == cut
    assert _join(list(chat.stream(task.instruction, stop=["    return"]))).content == cut
    short = chat.invoke(task.instruction, max_tokens=2)
    assert short.usage_metadata["output_tokens"] == 2  # type: ignore[index]
    assert short.response_metadata["finish_reason"] == "length"
    with pytest.raises(ConfigurationError, match="Unknown option"):
        chat.invoke("Hello", max_new_tokens=2)


# -- structured output -------------------------------------------------------------------------------------
def test_structured_output_by_json_schema_and_with_the_raw_reply(chat: ChatWizardCoder) -> None:
    assert chat.with_structured_output(Joke, method="json_schema").invoke("Tell me a joke about cats.") == Joke(
        **CAT_JOKE)
    out = chat.with_structured_output(Joke, include_raw=True).invoke("Tell me a joke about cats.")
    assert out["parsed"] == Joke(**CAT_JOKE) and out["parsing_error"] is None
    assert isinstance(out["raw"], AIMessage) and out["raw"].tool_calls[0]["name"] == "Joke"


class Limerick(BaseModel):
    """A five-line poem."""

    lines: list[Annotated[str, Field(max_length=16)]] = Field(min_length=5, max_length=5)


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_forced_replies_are_decoded_inside_their_schema(chat: ChatWizardCoder, method: str) -> None:
    # The stand-in never learned this schema: unconstrained, it writes broken JSON; the grammar keeps every
    # token inside "an object with exactly five strings".
    out = chat.with_structured_output(Limerick, method=method, include_raw=True).invoke("Tell me a joke about cats.")
    assert out["parsing_error"] is None, out["raw"]
    assert isinstance(out["parsed"], Limerick) and len(out["parsed"].lines) == 5
    free = chat.invoke("Tell me a joke about cats. Reply with one JSON object with five lines.")
    with pytest.raises(ValueError):
        Limerick.model_validate_json(free.content)


def test_a_reply_that_does_not_fit_the_schema_is_reported_with_include_raw(chat: ChatWizardCoder) -> None:
    class Rhyme(Limerick):
        @field_validator("lines")
        @classmethod
        def _rhymes(cls, lines: list[str]) -> list[str]:  # a rule no JSON schema (so no grammar) can express
            if len({line.rstrip(".!?")[-2:] for line in lines}) > 2:
                raise ValueError("the lines do not rhyme")
            return lines

    out = chat.with_structured_output(Rhyme, include_raw=True).invoke("Tell me a joke about cats.")
    assert out["parsed"] is None and isinstance(out["raw"], AIMessage)
    assert "do not rhyme" in str(out["parsing_error"])


# -- construction, engines, limits -------------------------------------------------------------------------
def test_constructing_many_times_loads_weights_once(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from wizardcoder_integrations.engine import Engine

    loads: list[Any] = []
    real = Engine.__init__
    monkeypatch.setattr(Engine, "__init__", lambda self, *a, **k: loads.append(a) or real(self, *a, **k))
    params = {"model": STANDIN_REPO, "cache_dir": str(build_standin().hub_cache), "local_files_only": True}
    models = [ChatWizardCoder(**params, temperature=0, max_tokens=8) for _ in range(10)]
    assert all(m.load_engine() is engine for m in models)
    assert models[0].invoke("Hello").content
    assert loads == []


def test_an_engine_can_be_passed_in_but_must_match_the_model(engine: Any) -> None:
    assert ChatWizardCoder(engine=engine).model == STANDIN_REPO
    with pytest.raises(ValueError, match="drop model="):
        ChatWizardCoder(engine=engine, model="TheBloke/WizardCoder-Python-13B-V1.0-GPTQ")


def test_timeout_cancels_and_the_engine_keeps_working(engine: Any, chat: ChatWizardCoder) -> None:
    hasty = ChatWizardCoder(engine=engine, temperature=0, timeout=1e-9)
    with pytest.raises(GenerationError, match="timeout"):
        hasty.invoke(CODE_TASKS[0].instruction)
    with pytest.raises(TimeoutError):
        asyncio.run(hasty.ainvoke(CODE_TASKS[0].instruction))
    assert chat.invoke(CODE_TASKS[0].instruction).content == CODE_TASKS[0].response.strip()
