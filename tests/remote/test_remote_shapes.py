"""RemoteEngine against recorded answers of servers other than ``wizardcoder serve`` (no network)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from wizardcoder_integrations.chat.template import format_instruction
from wizardcoder_integrations.engine import GenerationResult, RemoteEngine, StreamDelta
from wizardcoder_integrations.errors import GenerationError

TGI_MODEL = "TheBloke/WizardCoder-Python-13B-V1.0-GPTQ"


def _sse(*events: Any) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def _tgi(request: httpx.Request, seen: list[dict[str, Any]], models: bool) -> httpx.Response:
    """TGI 2.x: /v1/models (newer) without a context length, /info; /tokenize takes ``inputs``; usage rides on
    the last chunk."""
    body = json.loads(request.content) if request.content else {}
    if request.url.path == "/v1/models" and models:
        return httpx.Response(200, json={"object": "list", "data": [{"id": TGI_MODEL, "object": "model",
                                                                     "created": 0, "owned_by": TGI_MODEL}]})
    if request.url.path == "/info":
        return httpx.Response(200, json={"model_id": TGI_MODEL, "max_total_tokens": 4096})
    if request.url.path == "/tokenize":
        if "inputs" not in body:
            return httpx.Response(422, text="missing field `inputs`")
        return httpx.Response(200, json=[{"id": 1, "text": "<s>", "start": 0, "stop": 0},
                                         {"id": 822, "text": "def", "start": 0, "stop": 3}])
    if request.url.path == "/v1/completions":
        seen.append(body)
        base = {"id": "", "created": 0, "model": TGI_MODEL, "system_fingerprint": "2.4.0-native"}
        chunks = [{**base, "choices": [{"index": 0, "text": t, "logprobs": None, "finish_reason": ""}]}
                  for t in ("def", " add", "(a, b):\n", "    return a + b", "\n### Instruction:")]
        final = {**base, "object": "text_completion", "usage": {"prompt_tokens": 30, "completion_tokens": 9,
                                                                "total_tokens": 39},
                 "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "eos_token"}]}
        return httpx.Response(200, content=_sse(*chunks, final, "[DONE]"),
                              headers={"content-type": "text/event-stream"})
    return httpx.Response(404, json={"error": "not found"})


@pytest.fixture(params=[True, False], ids=["with-v1-models", "info-only"])
def tgi(request: pytest.FixtureRequest) -> tuple[RemoteEngine, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    engine = RemoteEngine("http://127.0.0.1:1/v1", max_retries=0)
    transport = httpx.MockTransport(lambda r: _tgi(r, seen, request.param))
    engine._client = httpx.Client(base_url=engine.root, transport=transport)
    return engine, seen


def test_a_tgi_server_is_described_completed_and_tokenized(tgi: tuple[RemoteEngine, list[dict[str, Any]]]) -> None:
    engine, seen = tgi
    assert engine.model_name == TGI_MODEL and engine.info.context_length == 4096
    assert engine.profile is not None  # the served repo is a known WizardCoder profile
    events = list(engine.stream("Add two numbers.", do_sample=False, stop=["\n### Instruction:"]))
    result = events[-1]
    assert isinstance(result, GenerationResult)
    assert "".join(e.text for e in events if isinstance(e, StreamDelta)) == result.text
    assert result.text == "def add(a, b):\n    return a + b"  # the stop string is cut client-side
    # closed at the stop string, before TGI's usage arrived: counted with TGI's /tokenize, one token a chunk
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (2, 5, "stop")
    assert result.stop_sequence == "\n### Instruction:"
    whole = list(engine.stream("Add two numbers.", do_sample=False))[-1]
    assert (whole.prompt_tokens, whole.completion_tokens) == (30, 9)  # read to the end: the server's usage
    body = seen[0]
    assert body["prompt"] == format_instruction("Add two numbers.") and body["temperature"] == 0.0
    assert body["model"] == TGI_MODEL and body["stream"] is True
    assert engine.tokenize("def") == [1, 822] and engine.count_tokens("def") == 2


def test_a_server_without_models_or_info_is_a_clear_error() -> None:
    engine = RemoteEngine("http://127.0.0.1:1", max_retries=0)
    engine._client = httpx.Client(base_url=engine.root, transport=httpx.MockTransport(
        lambda r: httpx.Response(404, text="nope")))
    with pytest.raises(GenerationError, match="neither /v1/models nor /info"):
        engine.model_name  # noqa: B018


def test_top_k_zero_is_sent_as_vllm_spells_it(tgi: tuple[RemoteEngine, list[dict[str, Any]]]) -> None:
    engine, seen = tgi
    list(engine.stream("hi", top_k=0))
    assert seen[-1]["top_k"] == -1
