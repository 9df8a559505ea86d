"""``wizardcoder serve`` driven by the official ``openai`` client and by :class:`RemoteEngine`."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import openai
import pytest

from wizardcoder_integrations.chat import ChatMessage, ChatRequest, ToolSpec, parse_tool_calls, render_request
from wizardcoder_integrations.engine import Engine, RemoteEngine, StreamDelta
from wizardcoder_integrations.errors import ConfigurationError, RemoteStreamError
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.scenarios.tool_calls import ORDER_QUESTION, PizzaOrder

from .conftest import Server, start_server

TASKS = CODE_TASKS[:6]


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def remote(server: Server) -> RemoteEngine:
    return RemoteEngine(server.url)


def test_models_and_health(client: openai.OpenAI, server: Server, engine: Engine) -> None:
    [model] = client.models.list().data
    assert model.id == engine.model_name
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_completions_equal_the_in_process_engine(client: openai.OpenAI, engine: Engine) -> None:
    for task in TASKS:
        local = engine.generate([task.instruction], do_sample=False)[0]
        r = client.completions.create(model=engine.model_name, prompt=engine.render(task.instruction),
                                      temperature=0, max_tokens=200)
        assert r.choices[0].text == local.text == task.response
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (local.prompt_tokens, local.completion_tokens)
        assert r.choices[0].finish_reason == "stop"


def test_completions_stream(client: openai.OpenAI, engine: Engine) -> None:
    task = CODE_TASKS[11]
    chunks = list(client.completions.create(model=engine.model_name, prompt=engine.render(task.instruction),
                                            temperature=0, max_tokens=300, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == task.response
    assert len([c for c in chunks if c.choices]) > 5  # really streamed
    local = engine.generate([task.instruction], do_sample=False)[0]
    assert chunks[-1].usage.completion_tokens == local.completion_tokens


def test_chat_completions_and_stream(client: openai.OpenAI, engine: Engine) -> None:
    task = CODE_TASKS[3]
    messages = [{"role": "user", "content": task.instruction}]
    r = client.chat.completions.create(model=engine.model_name, messages=messages, temperature=0)
    assert r.choices[0].message.content == task.response.strip()  # stripped, as the adapters do
    stream = client.chat.completions.create(model=engine.model_name, messages=messages, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == task.response.strip()


def test_stop_strings_server_side(client: openai.OpenAI, engine: Engine) -> None:
    task = CODE_TASKS[9]
    r = client.completions.create(model=engine.model_name, prompt=engine.render(task.instruction), temperature=0,
                                  max_tokens=200, stop=["return a"])
    assert r.choices[0].text == task.response[: task.response.index("return a")]


def test_bad_request_is_a_clear_400(client: openai.OpenAI, engine: Engine) -> None:
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model=engine.model_name, prompt="hi", temperature=-1)


ORDER_SCHEMA = PizzaOrder.model_json_schema()
ORDER_TOOL = {"type": "function", "function": {"name": "order_pizza", "description": "Order a pizza.",
                                                 "parameters": ORDER_SCHEMA}}
ORDER_MESSAGES = [{"role": "user", "content": ORDER_QUESTION}]


def _valid_order(order: dict) -> bool:
    return (set(order) == {"size", "toppings", "paid"} and 20 <= order["size"] <= 40
            and 2 <= len(order["toppings"]) <= 3 and all(len(t) <= 12 for t in order["toppings"])
            and isinstance(order["paid"], bool))


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "order_pizza"}}])
def test_a_forced_tool_call_is_valid_for_its_schema(client: openai.OpenAI, engine: Engine, choice) -> None:
    # the stand-in never learned this tool: the call is decoded inside its schema's grammar
    kwargs = {"model": engine.model_name, "messages": ORDER_MESSAGES, "tools": [ORDER_TOOL], "tool_choice": choice,
              "temperature": 0, "max_tokens": 160}
    message = client.chat.completions.create(**kwargs).choices[0].message
    [call] = message.tool_calls
    assert call.function.name == "order_pizza" and _valid_order(json.loads(call.function.arguments))
    chunks = [c for c in client.chat.completions.create(**kwargs, stream=True) if c.choices]
    [streamed] = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert streamed.function.arguments == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_json_schema_answer_is_valid_and_streams_the_same(client: openai.OpenAI, engine: Engine) -> None:
    kwargs = {"model": engine.model_name, "messages": ORDER_MESSAGES, "temperature": 0, "max_tokens": 160,
              "response_format": {"type": "json_schema", "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}}
    content = client.chat.completions.create(**kwargs).choices[0].message.content
    assert _valid_order(json.loads(content))
    stream = client.chat.completions.create(**kwargs, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == content
    free = client.chat.completions.create(**{**kwargs, "response_format": {"type": "text"}}).choices[0].message
    try:  # unconstrained, the stand-in does not write this JSON
        valid = _valid_order(json.loads(free.content))
    except ValueError:
        valid = False
    assert not valid


@pytest.mark.parametrize(("extra", "match"), [
    ({"tool_choice": "required"}, "needs tools"),
    ({"tools": [ORDER_TOOL], "response_format": {"type": "json_object"}}, "cannot be used in one request"),
    ({"response_format": {"type": "yaml"}}, "Unsupported response_format"),
])
def test_bad_tool_and_format_requests_are_clear_400s(client: openai.OpenAI, engine: Engine, extra, match) -> None:
    with pytest.raises(openai.BadRequestError, match=match):
        client.chat.completions.create(model=engine.model_name, messages=ORDER_MESSAGES, **extra)


def test_remote_engine_equals_in_process(remote: RemoteEngine, engine: Engine) -> None:
    prompts = [t.instruction for t in TASKS]
    local = engine.generate(prompts, do_sample=False)
    far = remote.generate(prompts, do_sample=False)
    assert [r.text for r in far] == [r.text for r in local]
    assert [(r.prompt_tokens, r.completion_tokens) for r in far] == [
        (r.prompt_tokens, r.completion_tokens) for r in local]
    stop = ["a, b"]
    local_stop = engine.generate([CODE_TASKS[9].instruction], do_sample=False, stop=stop)[0]
    far_stop = remote.generate([CODE_TASKS[9].instruction], do_sample=False, stop=stop)[0]
    assert (far_stop.text, far_stop.stop_sequence) == (local_stop.text, local_stop.stop_sequence)
    streamed = [e for e in remote.stream(CODE_TASKS[2].instruction, do_sample=False)]
    assert "".join(e.text for e in streamed if isinstance(e, StreamDelta)) == CODE_TASKS[2].response
    assert remote.count_tokens(CODE_TASKS[2].response) == engine.count_tokens(CODE_TASKS[2].response)
    assert remote.info.context_length == engine.info.context_length


def test_remote_engine_validates_before_sending(remote: RemoteEngine) -> None:
    with pytest.raises(ConfigurationError, match="max_new_tokens"):
        remote.generate(["hi"], max_new_tokens=0)


async def test_200_concurrent_requests_no_crosstalk(remote: RemoteEngine) -> None:
    tasks = [CODE_TASKS[i % len(CODE_TASKS)] for i in range(200)]
    results = await asyncio.gather(*(remote.agenerate([t.instruction], do_sample=False) for t in tasks))
    assert len(results) == 200
    assert [r[0].text for r in results] == [t.response for t in tasks]
    assert all(r[0].finish_reason == "stop" and r[0].completion_tokens > 0 for r in results)


def test_server_killed_mid_stream_gives_a_clear_error(standin, engine: Engine) -> None:
    victim = start_server()
    remote = RemoteEngine(victim.url, max_retries=0)
    seen: list[str] = []
    # the end-of-sequence token is banned, so the reply is still running when the server dies
    never_ends = {"logit_bias": {engine.eos_token_id: -100.0}, "max_new_tokens": 1500, "do_sample": False}
    with pytest.raises(RemoteStreamError, match=r"broke the stream|ended the stream"):
        for event in remote.stream("Tell me a very long story about the sea.", **never_ends):
            if isinstance(event, StreamDelta):
                seen.append(event.text)
                if len(seen) == 3:
                    victim.process.kill()
    assert len(seen) >= 3
    victim.stop()


def test_full_server_answers_429_and_drains_on_sigterm(standin, engine: Engine) -> None:
    srv = start_server("--max-pending", "1")
    # the end-of-sequence token is banned, so the first request is still running when the second arrives
    body = {"prompt": "Tell me a long story about the sea.", "max_tokens": 300, "temperature": 1.5,
            "seed": 4, "repetition_penalty": 1.0, "logit_bias": {str(engine.eos_token_id): -100}}
    outcome: dict[str, object] = {}

    def slow() -> None:
        outcome["response"] = httpx.post(f"{srv.url}/v1/completions", json=body, timeout=120)

    worker = threading.Thread(target=slow)
    worker.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{srv.url}/health").json()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    busy = httpx.post(f"{srv.url}/v1/completions", json=body, timeout=30)
    assert busy.status_code == 429 and "limit 1" in busy.json()["error"]["message"]
    assert busy.headers["retry-after"] == "1"
    # graceful: uvicorn finishes the request in flight, then re-raises SIGTERM as its exit status
    assert srv.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    worker.join(timeout=60)
    response = outcome["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert json.loads(response.text)["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("form", ["tool", "json"])
def test_remote_engine_keeps_the_grammar_through_serve(remote: RemoteEngine, engine: Engine, form: str) -> None:
    ask = [ChatMessage("user", ORDER_QUESTION)]
    request = (ChatRequest(ask, tools=[ToolSpec("order_pizza", "Order a pizza.", ORDER_SCHEMA)],
                           tool_choice="required") if form == "tool" else
               ChatRequest(ask, response_format={"type": "json_schema",
                                                 "json_schema": {"name": "order", "schema": ORDER_SCHEMA}}))
    rendered = render_request(request)
    kwargs = {"grammar": rendered.grammar, "stop": list(rendered.stops), "do_sample": False, "max_new_tokens": 160}
    [local] = engine.generate([rendered.prompt], raw=True, **kwargs)
    [far] = remote.generate([rendered.prompt], raw=True, **kwargs)
    assert remote.grammar_format == "serve" and far.text == local.text
    reply = rendered.prefix + far.text
    order = (parse_tool_calls(reply, ["order_pizza"]).tool_calls[0].arguments if form == "tool"
             else json.loads(reply))
    assert _valid_order(order)
