"""Client-side cost of reading a completion stream: the remote engine's SSE reading (httpx ``iter_lines``)
against ``httpx-sse`` and the ``openai`` SDK's stream, on the same recorded stream (in memory, no network).

    .venv/bin/python bench/remote_client.py [--chunks 20000] [--repeats 5]

Writes bench/results/remote-client-<host>-<date>.json: microseconds per chunk for each reader.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "TheBloke/WizardCoder-Python-13B-V1.0-GPTQ"


def recorded_stream(chunks: int) -> bytes:
    """A vLLM-style completions stream: one chunk per token, usage on the last, then [DONE]."""
    base = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": MODEL}
    lines = [json.dumps({**base, "choices": [{"index": 0, "text": " tok", "logprobs": None, "finish_reason": None,
                                              "stop_reason": None}]}) for _ in range(chunks)]
    lines.append(json.dumps({**base, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop",
                                                  "stop_reason": None}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": chunks + 10}}))
    lines.append("[DONE]")
    return "".join(f"data: {line}\n\n" for line in lines).encode()


def transport(body: bytes) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": MODEL, "owned_by": "vllm", "max_model_len": 4096}]})
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handle)


def read_remote_engine(body: bytes) -> int:
    from wizardcoder_integrations.engine import RemoteEngine

    engine = RemoteEngine("http://bench/v1", transport=transport(body), max_retries=0)
    return len(engine.generate(["x"], raw=True, max_new_tokens=4096)[0].text)


def read_remote_engine_sse(body: bytes) -> int:
    """Only the remote engine's SSE reading (no stop filter or result assembly): the part httpx-sse would replace."""
    from wizardcoder_integrations.engine import RemoteEngine

    engine = RemoteEngine("http://bench/v1", transport=transport(body), max_retries=0)
    text = ""
    for event in engine._events("/v1/completions", {}):
        for choice in event["choices"]:
            text += choice["text"]
    return len(text)


def read_httpx_sse(body: bytes) -> int:
    from httpx_sse import connect_sse

    text = ""
    with httpx.Client(transport=transport(body)) as client, \
            connect_sse(client, "POST", "http://bench/v1/completions", json={}) as source:
        for event in source.iter_sse():
            if event.data == "[DONE]":
                break
            data = json.loads(event.data)
            for choice in data["choices"]:
                text += choice["text"]
    return len(text)


def read_openai(body: bytes) -> int:
    import openai

    client = openai.OpenAI(base_url="http://bench/v1", api_key="x", http_client=httpx.Client(transport=transport(body)),
                           max_retries=0)
    text = ""
    for chunk in client.completions.create(model=MODEL, prompt="x", stream=True):
        for choice in chunk.choices:
            text += choice.text
    return len(text)


def measure(reader: Any, body: bytes, chunks: int, repeats: int) -> dict[str, float]:
    reader(body)  # warm-up (imports)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        reader(body)
        times.append(time.perf_counter() - started)
    return {"us_per_chunk_median": round(statistics.median(times) / chunks * 1e6, 2),
            "us_per_chunk_min": round(min(times) / chunks * 1e6, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    body = recorded_stream(args.chunks)
    readers = {"remote_engine generate (SSE + stops + result)": read_remote_engine,
               "remote_engine SSE reading (httpx iter_lines)": read_remote_engine_sse, "httpx-sse": read_httpx_sse,
               "openai SDK": read_openai}
    summary = {}
    for name, reader in readers.items():
        try:
            summary[name] = measure(reader, body, args.chunks, args.repeats)
        except ImportError as e:
            summary[name] = {"skipped": str(e)}
    record = {"bench": "remote_client", "date": date.today().isoformat(), "machine": platform.node() or "unknown",
              "cpus": os.cpu_count(), "chunks": args.chunks, "repeats": args.repeats, "summary": summary}
    out = RESULTS / f"remote-client-vm-{date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
