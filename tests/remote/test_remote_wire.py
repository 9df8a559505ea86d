"""What RemoteEngine sends and how it reads answers, against recorded server behaviour (no network): the reply
grammar in each server's form (chosen by one probe), in-stream error frames, Retry-After."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from wizardcoder_integrations.chat import ChatMessage, ChatRequest, ToolSpec, parse_tool_calls, render_request
from wizardcoder_integrations.engine import GenerationResult, RemoteEngine
from wizardcoder_integrations.engine import remote as remote_module
from wizardcoder_integrations.errors import ConfigurationError, RemoteRejectedError, RemoteStreamError

MODEL = "TheBloke/WizardCoder-Python-13B-V1.0-GPTQ"
WEATHER = ToolSpec("get_weather", "Get the weather.", {"type": "object", "properties": {"city": {"type": "string"}},
                                                       "required": ["city"]})
ASK = [ChatMessage("user", "What is the weather in Paris?")]
TOOL = render_request(ChatRequest(ASK, tools=[WEATHER], tool_choice="required"))
ORDER_SCHEMA = {"type": "object", "properties": {"size": {"type": "integer"}}, "required": ["size"]}
JSON = render_request(ChatRequest(ASK, response_format={"type": "json_schema",
                                                         "json_schema": {"name": "o", "schema": ORDER_SCHEMA}}))
CALL_SCHEMA = {"type": "object", "properties": {"name": {"const": "get_weather"}, "arguments": WEATHER.parameters},
               "required": ["name", "arguments"], "additionalProperties": False}


def _sse(*events: Any) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def _chunks(*texts: str, reason: str = "stop") -> list[Any]:
    out: list[Any] = [{"choices": [{"index": 0, "text": t, "finish_reason": None}]} for t in texts]
    out.append({"choices": [{"index": 0, "text": "", "finish_reason": reason}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(texts)}})
    return [*out, "[DONE]"]


class Recorded:
    """A server that answers probes like ``kind`` and completions with ``texts``; it records each body."""

    def __init__(self, kind: str, texts: tuple[str, ...], *, frames: list[Any] | None = None,
                 fail_first: httpx.Response | None = None) -> None:
        self.kind, self.texts, self.frames, self.fail_first = kind, texts, frames, fail_first
        self.bodies: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        owner = {"serve": "wizardcoder-integrations", "tgi": MODEL}.get(self.kind, "vllm")
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": MODEL, "owned_by": owner, "max_model_len": 4096}]})
        if path == "/version" and self.kind.startswith("vllm"):
            return httpx.Response(200, json={"version": "0.12.0" if self.kind == "vllm" else "0.10.2"})
        if path == "/info" and self.kind == "tgi":
            return httpx.Response(200, json={"model_id": MODEL, "max_total_tokens": 4096, "version": "3.3.4"})
        if path == "/tokenize":
            return httpx.Response(200, json={"tokens": [1, 2, 3]})
        if path in ("/v1/completions", "/generate_stream"):
            self.bodies.append((path, json.loads(request.content)))
            if self.fail_first is not None:
                failed, self.fail_first = self.fail_first, None
                return failed
            if path == "/generate_stream":
                events = [{"token": {"id": i, "text": t, "special": False}, "generated_text": None, "details": None}
                          for i, t in enumerate(self.texts)]
                events[-1]["details"] = {"finish_reason": "eos_token", "generated_tokens": len(self.texts)}
                return httpx.Response(200, content=_sse(*events), headers={"content-type": "text/event-stream"})
            frames = self.frames if self.frames is not None else _chunks(*self.texts)
            return httpx.Response(200, content=_sse(*frames), headers={"content-type": "text/event-stream"})
        return httpx.Response(404, json={"error": "not found"})


def _engine(server: Recorded, **kwargs: Any) -> RemoteEngine:
    return RemoteEngine("http://127.0.0.1:1/v1", max_retries=kwargs.pop("max_retries", 0),
                        transport=httpx.MockTransport(server), **kwargs)


def _run(engine: RemoteEngine, rendered: Any) -> GenerationResult:
    [result] = engine.generate([rendered.prompt], raw=True, grammar=rendered.grammar, stop=list(rendered.stops),
                               do_sample=False)
    return result


CALL_TEXT = ('{"name":"get_weather",', '"arguments":{"city":"Paris"}}')


@pytest.mark.parametrize(("kind", "field", "value"), [
    ("vllm", "structured_outputs", {"json": CALL_SCHEMA}),
    ("vllm-old", "guided_json", CALL_SCHEMA),
])
def test_vllm_gets_the_tool_call_as_a_json_schema(kind: str, field: str, value: Any) -> None:
    server = Recorded(kind, CALL_TEXT)
    engine = _engine(server)
    result = _run(engine, TOOL)
    assert engine.grammar_format == ("vllm" if kind == "vllm" else "vllm-guided")
    [(path, body)] = server.bodies
    assert path == "/v1/completions" and body[field] == value
    # the forced prefix moves into the reply: the prompt ends at the call's opening tag
    assert body["prompt"] == TOOL.prompt[: -len(TOOL.prefix)] + "<tool_call>\n"
    [call] = parse_tool_calls(TOOL.prefix + result.text, ["get_weather"]).tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})


def test_tgi_gets_a_json_answer_as_its_grammar() -> None:
    server = Recorded("tgi", ('{"size"', ": 32}"))
    engine = _engine(server)
    result = _run(engine, JSON)
    assert engine.grammar_format == "tgi"
    [(path, body)] = server.bodies
    assert path == "/generate_stream" and body["parameters"]["grammar"] == {"type": "json", "value": ORDER_SCHEMA}
    assert body["inputs"] == JSON.prompt[: -len(JSON.prefix)] and body["parameters"]["do_sample"] is False
    assert JSON.prefix + result.text == '{"size": 32}' and result.finish_reason == "stop"


def test_serve_gets_the_grammar_itself() -> None:
    server = Recorded("serve", ('"get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',))
    engine = _engine(server)
    _run(engine, TOOL)
    [(_, body)] = server.bodies
    assert body["prompt"] == TOOL.prompt and body["reply_grammar"]["prefix"] == TOOL.prefix
    assert body["reply_grammar"]["choices"][0][1] == {"json": json.dumps(WEATHER.parameters, separators=(",", ":"))}


def test_an_unknown_server_refuses_a_grammar_unless_told() -> None:
    server = Recorded("other", ("x",))
    with pytest.raises(ConfigurationError, match="grammar_format"):
        _run(_engine(server), TOOL)
    _run(_engine(server, grammar_format="none"), TOOL)
    assert not {"structured_outputs", "guided_json", "reply_grammar"} & set(server.bodies[-1][1])


def test_an_error_frame_is_a_typed_error_not_a_short_reply() -> None:
    frames = [{"choices": [{"index": 0, "text": "def", "finish_reason": None}]},
              {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}, "[DONE]"]
    engine = _engine(Recorded("vllm", (), frames=frames))
    with pytest.raises(RemoteStreamError, match="CUDA out of memory"):
        engine.generate(["hi"], raw=True)


def test_retry_after_is_honoured_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(remote_module.time, "sleep", waits.append)
    busy = httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {"message": "busy"}})
    server = Recorded("vllm", ("ok",), fail_first=busy)
    assert _engine(server, max_retries=2).generate(["hi"], raw=True)[0].text == "ok"
    assert len(waits) == 1 and 2.0 <= waits[0] <= 2.2
    server = Recorded("vllm", ("ok",), fail_first=httpx.Response(503, json={"error": {"message": "busy"}}))
    _engine(server, max_retries=2, backoff_s=0.5).generate(["hi"], raw=True)
    assert 0.0 <= waits[-1] <= 0.5  # no Retry-After: backoff with full jitter
    refused = Recorded("vllm", ("ok",), fail_first=httpx.Response(400, json={"error": {"message": "bad"}}))
    with pytest.raises(RemoteRejectedError, match="HTTP 400: bad") as caught:
        _engine(refused, max_retries=2).generate(["hi"], raw=True)
    assert caught.value.status == 400
