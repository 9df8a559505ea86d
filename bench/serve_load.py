"""A bounded load test of ``wizardcoder serve`` on loopback (the stand-in model, CPU).

At the same time: 200 concurrent streaming completions (greedy; each reply must equal the stand-in's recorded
answer exactly), 20 clients that disconnect after 3 chunks of a reply that would never end (end-of-sequence
banned), and one 5 MB prompt; a poller measures ``/health`` latency throughout. Afterwards every slot must be
free (``in_flight`` and ``running`` back to 0). Writes one JSON to bench/results/ and exits non-zero if a
check fails.

    .venv/bin/python bench/serve_load.py [--streams 200] [--disconnects 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).resolve().parent / "results"


def start_server() -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([sys.executable, "-m", "wizardcoder_integrations.cli", "serve", "--standin",
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("wizardcoder serve:"):
            url = line.rsplit(" at ", 1)[1].strip().removesuffix("/v1")
            for _ in range(400):
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        return process, url
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
    process.kill()
    raise RuntimeError("wizardcoder serve did not start")


async def stream_one(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, str | None]:
    text, reason = "", None
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(event["error"]["message"])
            for choice in event["choices"]:
                text += choice["text"]
                reason = choice.get("finish_reason") or reason
    return text, reason


async def disconnect_one(client: httpx.AsyncClient, body: dict[str, Any]) -> int:
    seen = 0
    async with client.stream("POST", "/v1/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                seen += 1
                if seen == 3:
                    break  # leaving the block closes the connection mid-reply
    return seen


async def huge_prompt(client: httpx.AsyncClient, model: str) -> tuple[int, float]:
    prompt = "def f(x):\n    return x + 1  # a line of code\n" * 110_000  # 5.06 MB
    started = time.perf_counter()
    response = await client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 8})
    return response.status_code, time.perf_counter() - started


async def poll_health(client: httpx.AsyncClient, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        (await client.get("/health")).raise_for_status()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)


async def run(url: str, streams: int, disconnects: int) -> dict[str, Any]:
    from wizardcoder_integrations.chat.template import format_instruction
    from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

    limits = httpx.Limits(max_connections=streams + disconnects + 8, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client, \
            httpx.AsyncClient(base_url=url, timeout=600) as health_client:
        model = (await client.get("/v1/models")).json()["data"][0]["id"]
        eos = (await client.post("/tokenize", json={"prompt": "</s>", "add_special_tokens": False})).json()["tokens"]
        tasks = [CODE_TASKS[i % len(CODE_TASKS)] for i in range(streams)]
        stop, latencies = asyncio.Event(), []
        poller = asyncio.create_task(poll_health(health_client, stop, latencies))
        await asyncio.sleep(0.5)  # a baseline before the load
        started = time.perf_counter()
        stream_jobs = [stream_one(client, {"model": model, "prompt": format_instruction(t.instruction),
                                           "temperature": 0, "max_tokens": 400, "stream": True}) for t in tasks]
        never_ends = {"model": model, "prompt": "Tell me a long story.", "temperature": 0, "max_tokens": 1500,
                      "stream": True, "logit_bias": {str(eos[0]): -100}}
        results = await asyncio.gather(*stream_jobs, *(disconnect_one(client, never_ends) for _ in range(disconnects)),
                                       huge_prompt(client, model), return_exceptions=True)
        load_s = time.perf_counter() - started
        replies = results[:streams]
        dropped = results[streams:streams + disconnects]
        huge = results[-1]
        freed_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            health = (await health_client.get("/health")).json()
            if health["in_flight"] == 0 and health["running"] == 0:
                freed_at = time.perf_counter() - started - load_s
                break
            await asyncio.sleep(0.02)
        stop.set()
        await poller
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    exact = sum(1 for r, t in zip(replies, tasks, strict=True)
                if not isinstance(r, BaseException) and r == (t.response, "stop"))
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return {
        "streams": streams, "streams_exact": exact, "disconnects": disconnects,
        "disconnects_done": sum(1 for d in dropped if d == 3),
        "huge_prompt_status": None if isinstance(huge, BaseException) else huge[0],
        "huge_prompt_answer_s": None if isinstance(huge, BaseException) else round(huge[1], 3),
        "load_s": round(load_s, 2), "slots_freed": freed_at is not None,
        "slots_freed_after_load_s": None if freed_at is None else round(freed_at, 3),
        "health_samples": len(ms), "health_p50_ms": round(statistics.median(ms), 2),
        "health_p99_ms": round(p99, 2), "health_max_ms": round(ms[-1], 2), "errors": errors[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--disconnects", type=int, default=20)
    parser.add_argument("--out", default=None, help="JSON path (default: bench/results/serve-load-<host>-<date>)")
    args = parser.parse_args()
    process, url = start_server()
    try:
        summary = asyncio.run(run(url, args.streams, args.disconnects))
    finally:
        process.terminate()
        process.wait(timeout=60)
    checks = {"every_reply_exact": summary["streams_exact"] == summary["streams"],
              "disconnects_ran": summary["disconnects_done"] == summary["disconnects"],
              "huge_prompt_refused": summary["huge_prompt_status"] == 400,
              "slots_all_freed": summary["slots_freed"], "health_p99_under_100ms": summary["health_p99_ms"] < 100}
    record = {"bench": "serve_load", "date": date.today().isoformat(), "machine": platform.node() or "unknown",
              "cpus": os.cpu_count(), "python": platform.python_version(), "summary": summary, "checks": checks}
    out = Path(args.out) if args.out else RESULTS / f"serve-load-vm-{date.today().isoformat()}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
