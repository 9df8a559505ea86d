"""The LangChain and LlamaIndex classes with just ``base_url=``: the same replies as in-process, every path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool

from wizardcoder_integrations.engine import Engine, RemoteEngine
from wizardcoder_integrations.errors import ConfigurationError, RemoteError
from wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM
from wizardcoder_integrations.llama_index import WizardCoder
from wizardcoder_integrations.scenarios.llama_index_agents import (
    FUNCTION_QUESTION,
    FUNCTION_SYSTEM_PROMPT,
    LLM_SETTINGS,
)
from wizardcoder_integrations.scenarios.llama_index_agents import get_weather as get_city_weather
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.scenarios.tool_calls import WEATHER_ANSWER, WEATHER_QUESTION, WEATHER_RESULT

from .conftest import Server, start_server

TASKS = [CODE_TASKS[0], CODE_TASKS[3], CODE_TASKS[11]]
GREEDY: dict[str, Any] = {"temperature": 0}


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return WEATHER_RESULT


@pytest.fixture(scope="module")
def url(server: Server) -> str:
    return f"{server.url}/v1"


@pytest.fixture(scope="module")
def chats(url: str, engine: Engine) -> tuple[ChatWizardCoder, ChatWizardCoder]:
    return ChatWizardCoder(engine=engine, **GREEDY), ChatWizardCoder(base_url=url, **GREEDY)


@pytest.fixture(scope="module")
def llms(url: str, engine: Engine) -> tuple[WizardCoderLLM, WizardCoderLLM]:
    return WizardCoderLLM(engine=engine, **GREEDY), WizardCoderLLM(base_url=url, **GREEDY)


@pytest.fixture(scope="module")
def indexes(url: str, engine: Engine) -> tuple[WizardCoder, WizardCoder]:
    return WizardCoder(engine=engine, **LLM_SETTINGS), WizardCoder(base_url=url, **LLM_SETTINGS)


def _join(chunks: Any) -> AIMessageChunk:
    chunks = list(chunks)
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


async def _ajoin(stream: Any) -> AIMessageChunk:
    return _join([c async for c in stream])


def _calls(message: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["args"]) for c in message.tool_calls]


# -- LangChain chat model ----------------------------------------------------------------------------------
def test_chat_model_over_http_equals_in_process(chats: tuple[ChatWizardCoder, ChatWizardCoder]) -> None:
    local, remote = chats
    assert isinstance(remote.load_engine(), RemoteEngine) and not isinstance(local.load_engine(), RemoteEngine)
    for task in TASKS:
        here, there = local.invoke(task.instruction), remote.invoke(task.instruction)
        assert there.content == here.content == task.response.strip()
        assert there.usage_metadata == here.usage_metadata and there.usage_metadata["output_tokens"] > 0
        for key in ("model_name", "finish_reason", "stop_sequence", "model_provider"):
            assert there.response_metadata[key] == here.response_metadata[key]
        streamed = list(remote.stream(task.instruction))
        assert len(streamed) > 3 and _join(streamed).content == here.content
        assert _join(streamed).usage_metadata == here.usage_metadata


def test_chat_model_async_and_batch_over_http(chats: tuple[ChatWizardCoder, ChatWizardCoder]) -> None:
    local, remote = chats
    prompts = [t.instruction for t in TASKS]
    expected = [m.content for m in local.batch(prompts)]

    async def run() -> tuple[list[Any], list[Any]]:
        invoked = await asyncio.gather(*(remote.ainvoke(p) for p in prompts))
        streamed = await asyncio.gather(*(_ajoin(remote.astream(p)) for p in prompts))
        return invoked, streamed

    invoked, streamed = asyncio.run(run())
    assert [m.content for m in invoked] == [m.content for m in streamed] == expected
    assert [m.content for m in remote.batch(prompts)] == expected


def test_tool_calls_over_http(chats: tuple[ChatWizardCoder, ChatWizardCoder]) -> None:
    local, remote = chats
    expected = [("get_weather", {"location": "San Francisco, CA"})]
    here = local.bind_tools([get_weather]).invoke(WEATHER_QUESTION)
    bound = remote.bind_tools([get_weather])
    there = bound.invoke(WEATHER_QUESTION)
    assert _calls(there) == _calls(here) == expected and there.tool_calls[0]["id"]
    assert there.usage_metadata == here.usage_metadata
    chunks = list(bound.stream(WEATHER_QUESTION))
    assert _calls(_join(chunks)) == expected and all("tool_call" not in str(c.content) for c in chunks)
    assert _calls(asyncio.run(bound.ainvoke(WEATHER_QUESTION))) == expected
    # the tool result goes back and the answer comes, as in-process
    result = ToolMessage(WEATHER_RESULT, tool_call_id=there.tool_calls[0]["id"])
    history = [HumanMessage(WEATHER_QUESTION), there, result]
    assert bound.invoke(history).content == local.bind_tools([get_weather]).invoke(history).content == WEATHER_ANSWER


def test_chat_token_counts_and_tracing_over_http(chats: tuple[ChatWizardCoder, ChatWizardCoder],
                                                 engine: Engine) -> None:
    local, remote = chats
    text = TASKS[0].response
    assert remote.get_token_ids(text) == local.get_token_ids(text)
    assert remote.get_num_tokens(text) == local.get_num_tokens(text)
    messages = [HumanMessage(TASKS[0].instruction)]
    assert remote.get_num_tokens_from_messages(messages) == local.get_num_tokens_from_messages(messages)
    here, there = local._get_ls_params(stop=["x"]), remote._get_ls_params(stop=["x"])
    assert there == here and there["ls_model_name"] == engine.model_name
    assert remote._identifying_params["base_url"] == remote.base_url


# -- LangChain text model ----------------------------------------------------------------------------------
def test_text_model_over_http_equals_in_process(llms: tuple[WizardCoderLLM, WizardCoderLLM]) -> None:
    local, remote = llms
    prompts = [t.instruction for t in TASKS]
    here, there = local.generate(prompts), remote.generate(prompts)
    assert [g[0].text for g in there.generations] == [g[0].text for g in here.generations] == [
        t.response for t in TASKS]
    assert there.llm_output == here.llm_output and there.llm_output["token_usage"]["completion_tokens"] > 0
    assert [g[0].generation_info for g in there.generations] == [g[0].generation_info for g in here.generations]
    assert "".join(remote.stream(TASKS[2].instruction)) == TASKS[2].response
    assert asyncio.run(remote.ainvoke(TASKS[1].instruction)) == TASKS[1].response
    assert asyncio.run(remote.agenerate(prompts)).llm_output == here.llm_output
    assert remote.get_num_tokens(TASKS[0].response) == local.get_num_tokens(TASKS[0].response)
    assert remote._get_ls_params() == local._get_ls_params()


def test_adapters_share_one_remote_engine_per_server(url: str, llms: Any, chats: Any, indexes: Any) -> None:
    engine = llms[1].load_engine()
    assert isinstance(engine, RemoteEngine)
    assert chats[1].load_engine() is engine and indexes[1].engine is engine
    assert WizardCoderLLM(base_url=url.removesuffix("/v1")).load_engine() is engine
    assert WizardCoderLLM(base_url=url, api_key="k").load_engine() is not engine
    assert WizardCoderLLM(base_url=url, timeout=5, max_retries=0).load_engine().max_retries == 0


def test_a_remote_engine_can_be_passed_directly(url: str, engine: Engine) -> None:
    remote = RemoteEngine(url)
    chat = ChatWizardCoder(engine=remote, **GREEDY)
    assert chat.invoke(TASKS[0].instruction).content == TASKS[0].response.strip()
    index = WizardCoder(engine=remote, **LLM_SETTINGS)
    assert index.complete(TASKS[0].instruction).text == TASKS[0].response.strip()
    named = WizardCoderLLM(engine=RemoteEngine(url, model=engine.model_name), **GREEDY)
    assert named.model == engine.model_name and named.invoke(TASKS[1].instruction) == TASKS[1].response


async def test_200_concurrent_chat_calls_over_http(chats: tuple[ChatWizardCoder, ChatWizardCoder]) -> None:
    _, remote = chats
    tasks = [CODE_TASKS[i % len(CODE_TASKS)] for i in range(200)]
    replies = await remote.abatch([t.instruction for t in tasks], config={"max_concurrency": 200})
    assert [r.content for r in replies] == [t.response.strip() for t in tasks]
    assert all(r.usage_metadata["output_tokens"] > 0 for r in replies)


# -- LlamaIndex --------------------------------------------------------------------------------------------
def test_llama_index_over_http_equals_in_process(indexes: tuple[WizardCoder, WizardCoder]) -> None:
    local, remote = indexes
    assert remote.metadata == local.metadata
    for task in TASKS:
        here, there = local.complete(task.instruction), remote.complete(task.instruction)
        assert there.text == here.text == task.response.strip()
        assert there.additional_kwargs == here.additional_kwargs  # token usage
        assert there.raw["model"] == here.raw["model"]
        assert list(remote.stream_complete(task.instruction))[-1].text == here.text
    messages = [ChatMessage(role="user", content=TASKS[1].instruction)]
    here, there = local.chat(messages), remote.chat(messages)
    assert there.message.content == here.message.content and there.additional_kwargs == here.additional_kwargs
    assert "".join(c.delta or "" for c in remote.stream_chat(messages)) == here.message.content


def test_llama_index_async_and_tools_over_http(indexes: tuple[WizardCoder, WizardCoder]) -> None:
    local, remote = indexes
    weather = FunctionTool.from_defaults(get_city_weather)
    history = [ChatMessage(role="system", content=FUNCTION_SYSTEM_PROMPT)]

    def call(llm: WizardCoder) -> Any:
        response = llm.chat_with_tools([weather], user_msg=FUNCTION_QUESTION, chat_history=history)
        return [(c.tool_name, c.tool_kwargs) for c in llm.get_tool_calls_from_response(response)]

    assert call(remote) == call(local) == [("get_weather", {"city": "Paris"})]

    async def run() -> tuple[Any, Any, Any]:
        completed = await remote.acomplete(TASKS[2].instruction)
        chunks = [c async for c in await remote.astream_chat([ChatMessage(role="user",
                                                                          content=TASKS[0].instruction)])]
        tool_chunks = [c async for c in await remote.astream_chat_with_tools(
            [weather], user_msg=FUNCTION_QUESTION, chat_history=history)]
        return completed, chunks, tool_chunks

    completed, chunks, tool_chunks = asyncio.run(run())
    assert completed.text == local.complete(TASKS[2].instruction).text
    assert chunks[-1].message.content == TASKS[0].response.strip()
    assert all("<tool" not in (c.delta or "") for c in tool_chunks)
    assert [c.tool_kwargs for c in remote.get_tool_calls_from_response(tool_chunks[-1])] == [{"city": "Paris"}]


# -- failures and bad settings -----------------------------------------------------------------------------
def test_a_server_killed_mid_stream_is_a_clear_error_in_the_adapters(standin: Any, engine: Engine) -> None:
    from wizardcoder_integrations.engine import SamplingParams

    victim = start_server()
    try:
        # the end-of-sequence token is banned, so the reply is still running when the server dies
        never_ends = SamplingParams(logit_bias={engine.eos_token_id: -100.0}, max_new_tokens=1500, do_sample=False)
        remote = RemoteEngine(victim.url, max_retries=0, defaults=never_ends)
        chat = ChatWizardCoder(engine=remote, max_retries=0, max_tokens=1500)
        seen: list[str] = []
        with pytest.raises(RemoteError, match=r"broke the stream|ended the stream"):
            for chunk in chat.stream("Tell me a very long story about the sea."):
                seen.append(str(chunk.content))
                if len(seen) == 3:
                    victim.process.kill()
        assert len(seen) >= 3
    finally:
        victim.stop()
    with pytest.raises(RemoteError, match="Cannot reach"):
        WizardCoderLLM(base_url=f"{victim.url}/v1", max_retries=1).invoke("hi")


@pytest.mark.parametrize("kwargs, message", [
    ({"engine": "not an engine"}, "engine must be a loaded"),
    ({"base_url": "http://127.0.0.1:9/v1", "engine": RemoteEngine("http://127.0.0.1:9")}, "base_url= or engine="),
    ({"base_url": "http://127.0.0.1:9/v1", "revision": "gptq-4bit-32g-actorder_True"}, "--revision"),
    ({"base_url": "http://127.0.0.1:9/v1", "device": "cpu"}, "loading the weights in this process"),
    ({"api_key": "k"}, "pass base_url= too"),
    ({"base_url": "127.0.0.1:9"}, "http:// or https://"),
    ({"engine": RemoteEngine("http://127.0.0.1:9", model="a"), "model": "b"}, "the engine passed holds 'a'"),
])
def test_bad_combinations_say_what_to_do(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigurationError, ValueError), match=message):
        ChatWizardCoder(**kwargs).load_engine()


def test_llama_index_bad_combinations_say_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="--revision"):
        WizardCoder(base_url="http://127.0.0.1:9/v1", revision="gptq-4bit-32g-actorder_True")
    with pytest.raises(ConfigurationError, match="base_url= or engine="):
        WizardCoder(base_url="http://127.0.0.1:9/v1", engine=RemoteEngine("http://127.0.0.1:9"))


@pytest.fixture
def env_server(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[str]:
    monkeypatch.setenv("WIZARDCODER_BASE_URL", url)
    monkeypatch.setenv("WIZARDCODER_API_KEY", "secret-key")
    yield url


def test_environment_selects_the_server_and_key(env_server: str, engine: Engine) -> None:
    llm = WizardCoderLLM(**GREEDY)
    assert llm.base_url == env_server and llm.invoke(TASKS[0].instruction) == TASKS[0].response
    remote = llm.load_engine()
    assert isinstance(remote, RemoteEngine) and remote._headers["Authorization"] == "Bearer secret-key"
    assert "secret-key" not in repr(llm) and "secret-key" not in str(llm.model_dump())
    index = WizardCoder(**LLM_SETTINGS)
    assert index.engine is remote and "secret-key" not in str(index.to_dict())
    assert WizardCoderLLM(engine=engine).load_engine() is engine  # an explicit engine wins over the environment
    with pytest.raises((ConfigurationError, ValueError), match=r"\$WIZARDCODER_BASE_URL"):
        ChatWizardCoder(device="cpu")
