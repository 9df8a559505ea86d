"""serve's OpenAI surface, in-process (ASGI): every field honoured or refused by name, OpenAI-shaped errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from wizardcoder_integrations.engine import Engine
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS
from wizardcoder_integrations.scenarios.tool_calls import WEATHER_ANSWER, WEATHER_QUESTION, WEATHER_RESULT
from wizardcoder_integrations.server import create_app

TASK = CODE_TASKS[3]
USER = [{"role": "user", "content": TASK.instruction}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather at a location.",
    "parameters": {"properties": {"location": {"type": "string"}}, "required": ["location"], "type": "object"}}}


@pytest.fixture(scope="module")
def app(engine: Engine) -> Any:
    return create_app(engine)


async def _post(app: Any, path: str, body: Any, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        if isinstance(body, bytes):
            return await client.post(path, content=body, headers={"content-type": "application/json", **headers})
        return await client.post(path, json=body, headers=headers)


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_unknown_model_is_404_and_models_can_be_fetched_by_id(app: Any, engine: Engine) -> None:
    error = _error(await _post(app, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        card = (await client.get(f"/v1/models/{engine.model_name}")).json()
        assert card["id"] == engine.model_name and card["object"] == "model"
        assert _error(await client.get("/v1/models/gpt-4o"), 404)["code"] == "model_not_found"
        assert _error(await client.get("/v1/nothing"), 404)["code"] == "not_found"


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"messages": USER, "frobnicate": 1}, "frobnicate", "unknown_parameter"),
    ({"messages": "hi"}, "messages", "invalid_value"),
    ({}, "messages", "missing_required_parameter"),
    ({"messages": USER, "temperature": -1}, "temperature", "invalid_value"),
    ({"messages": USER, "audio": {"voice": "alloy"}}, "audio", "unsupported_parameter"),
    ({"messages": USER, "functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
    ({"messages": USER, "store": True}, "store", "unsupported_parameter"),
    ({"messages": USER, "top_logprobs": 2}, "top_logprobs", "invalid_value"),
    ({"messages": USER, "stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ({"messages": USER, "max_tokens": 5, "max_completion_tokens": 6}, "max_tokens", "invalid_value"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type", "unsupported_parameter"),
    ({"messages": [*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}}]}]},
     "messages[1].tool_calls[0].function.arguments", "invalid_value"),
    ({"messages": USER, "tools": [{**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}]},
     "tools[0].function.strict", "unsupported_parameter"),
])
async def test_chat_fields_refused_by_name(app: Any, body: dict[str, Any], param: str, code: str) -> None:
    error = _error(await _post(app, "/v1/chat/completions", body), 400)
    assert (error["param"], error["code"]) == (param, code)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "x", "suffix": "y"}, "suffix"),
    ({"prompt": "x", "best_of": 3}, "best_of"),
    ({"prompt": "x", "echo": True, "logprobs": 1}, "echo"),
    ({"prompt": [1, 2, 3]}, "prompt"),
    ({"prompt": "x", "n": 99}, "n"),
])
async def test_completion_fields_refused_by_name(app: Any, body: dict[str, Any], param: str) -> None:
    assert _error(await _post(app, "/v1/completions", body), 400)["param"] == param


async def test_invalid_json_and_a_huge_prompt_are_400s(app: Any) -> None:
    assert _error(await _post(app, "/v1/completions", b"{not json"), 400)["code"] == "invalid_json"
    huge = {"prompt": "def f():\n    return 1\n" * 250_000}  # 5.5 MB: refused without tokenising it
    assert _error(await _post(app, "/v1/completions", huge), 400)["code"] == "context_length_exceeded"


async def test_api_key(engine: Engine) -> None:
    app = create_app(engine, api_key="s3cret")
    assert _error(await _post(app, "/v1/completions", {"prompt": "x"}), 401)["code"] == "invalid_api_key"
    assert _error(await _post(app, "/v1/completions", {"prompt": "x"}, authorization="Bearer nope"), 401)
    ok = await _post(app, "/v1/completions", {"prompt": "x", "max_tokens": 1}, authorization="Bearer s3cret")
    assert ok.status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
        assert (await client.get("/health")).status_code == 200


async def test_max_completion_tokens_and_leading_newline(app: Any, engine: Engine) -> None:
    r = (await _post(app, "/v1/chat/completions", {"messages": USER, "temperature": 0,
                                                   "max_completion_tokens": 4})).json()
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 4
    full = (await _post(app, "/v1/chat/completions", {"messages": USER, "temperature": 0})).json()
    assert full["choices"][0]["message"]["content"] == TASK.response.strip()  # as the adapters: no leading newline


async def test_tool_results_by_id_alone_render_like_named_ones(app: Any) -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"location": "San Francisco, CA"})}}
    history = [{"role": "user", "content": WEATHER_QUESTION}, {"role": "assistant", "content": None,
                                                                "tool_calls": [call]}]
    answers = []
    for result in ({"role": "tool", "tool_call_id": "call_1", "content": WEATHER_RESULT},
                   {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": WEATHER_RESULT}):
        body = {"messages": [*history, result], "tools": [WEATHER_TOOL], "temperature": 0}
        answers.append((await _post(app, "/v1/chat/completions", body)).json()["choices"][0]["message"]["content"])
    assert answers == [WEATHER_ANSWER, WEATHER_ANSWER]


async def test_logprobs_logit_bias_seed_n_and_echo(app: Any, engine: Engine) -> None:
    prompt = engine.render(TASK.instruction)
    base = {"prompt": prompt, "temperature": 0, "max_tokens": 6}
    plain = (await _post(app, "/v1/completions", base)).json()["choices"][0]
    scored = (await _post(app, "/v1/completions", {**base, "logprobs": 2})).json()["choices"][0]
    assert scored["text"] == plain["text"]
    lp = scored["logprobs"]
    assert "".join(lp["tokens"]) == plain["text"] and len(lp["token_logprobs"]) == 6
    assert all(len(top) == 2 and v <= 0 for top, v in zip(lp["top_logprobs"], lp["token_logprobs"], strict=True))
    first = engine.generate([prompt], raw=True, do_sample=False, max_new_tokens=1)[0].token_ids[0]
    banned = (await _post(app, "/v1/completions", {**base, "logprobs": 0, "logit_bias": {str(first): -100}})).json()
    assert banned["choices"][0]["logprobs"]["tokens"][0] != lp["tokens"][0]
    sampled = {**base, "temperature": 1.0, "seed": 7, "n": 2, "presence_penalty": 0.5, "frequency_penalty": 0.5}
    a = (await _post(app, "/v1/completions", sampled)).json()
    b = (await _post(app, "/v1/completions", sampled)).json()
    assert [c["index"] for c in a["choices"]] == [0, 1]
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    echoed = (await _post(app, "/v1/completions", {**base, "echo": True})).json()["choices"][0]
    assert echoed["text"] == prompt + plain["text"]
    chat = (await _post(app, "/v1/chat/completions", {"messages": USER, "temperature": 0, "max_tokens": 5,
                                                      "logprobs": True, "top_logprobs": 3})).json()
    content = chat["choices"][0]["logprobs"]["content"]
    assert len(content) == 5 and all(len(e["top_logprobs"]) == 3 and e["bytes"] for e in content)


async def test_stream_usage_and_parallel_tool_calls(app: Any) -> None:
    body = {"messages": USER, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    lines = (await _post(app, "/v1/chat/completions", body)).text.split("\n\n")
    frames = [json.loads(f[6:]) for f in lines if f.startswith("data: {")]
    assert lines[-2] == "data: [DONE]" and frames[-1]["choices"] == [] and frames[-1]["usage"]["completion_tokens"]
    assert "".join(f["choices"][0]["delta"].get("content", "") for f in frames if f["choices"]) == TASK.response.strip()
    forced = {"messages": [{"role": "user", "content": WEATHER_QUESTION}], "tools": [WEATHER_TOOL],
              "tool_choice": "required", "parallel_tool_calls": False, "temperature": 0, "max_tokens": 60}
    message = (await _post(app, "/v1/chat/completions", forced)).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls" and len(message["message"]["tool_calls"]) == 1
