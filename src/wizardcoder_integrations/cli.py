"""The ``wizardcoder`` command: thin argument parsing over the engine; formatting lives here only."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from wizardcoder_integrations.errors import WizardCoderError
from wizardcoder_integrations.profiles import CARD_DEFAULTS, DEFAULT_MODEL

__all__ = ["main"]



def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL, help="Hub repo id or local directory (default: %(default)s)")
    g.add_argument("--revision", default=None, help="GPTQ branch of the repo (default: main)")
    g.add_argument("--profile", default=None, help="WizardCoder profile name, checked against the checkpoint")
    g.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: the GPU if there is one)")
    g.add_argument("--standin", action="store_true",
                   help="use the tiny offline stand-in model (built and cached on first use)")


def _add_remote_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("remote server (instead of loading the model here; no torch needed)")
    g.add_argument("--base-url", default=None,
                   help="an OpenAI-compatible server (wizardcoder serve, vLLM, TGI), e.g. http://gpu-box:8000/v1 "
                        "(default: $WIZARDCODER_BASE_URL)")
    g.add_argument("--api-key", default=None, help="its API key (default: $WIZARDCODER_API_KEY)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults from the model card)")
    g.add_argument("--temperature", type=float, default=None, help=f"default {CARD_DEFAULTS['temperature']}")
    g.add_argument("--top-p", type=float, default=None, help=f"default {CARD_DEFAULTS['top_p']}")
    g.add_argument("--top-k", type=int, default=None, help=f"default {CARD_DEFAULTS['top_k']}")
    g.add_argument("--repetition-penalty", type=float, default=None,
                   help=f"default {CARD_DEFAULTS['repetition_penalty']}")
    g.add_argument("--max-tokens", type=int, default=None, help=f"default {CARD_DEFAULTS['max_new_tokens']}")
    g.add_argument("--greedy", action="store_true", help="take the most likely token (no sampling)")
    g.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    g.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
        "repetition_penalty": args.repetition_penalty, "max_new_tokens": args.max_tokens,
        "do_sample": False if args.greedy else None, "seed": args.seed, "stop": args.stop,
    }


def load_engine(args: argparse.Namespace) -> Any:
    """The engine the arguments name: a server (``--base-url`` or ``$WIZARDCODER_BASE_URL``), the stand-in
    (``--standin``) or the model loaded here."""
    if hasattr(args, "base_url"):
        from wizardcoder_integrations.chat.settings import resolve_backend
        from wizardcoder_integrations.engine.remote import shared_remote_engine

        local = {"revision": args.revision, "device": args.device, "standin": args.standin or None,
                 "profile": None}
        base_url, api_key = resolve_backend(args.base_url, args.api_key, **local)
        if base_url is not None:
            model = None if args.model == DEFAULT_MODEL else args.model
            return shared_remote_engine(base_url, model=model, api_key=api_key, profile=args.profile)
    if args.standin:
        from wizardcoder_integrations.standin import load_standin_engine, show_build_progress

        show_build_progress()
        return load_standin_engine(args.revision or "main", device=args.device)
    from wizardcoder_integrations.engine import Engine

    return Engine.load(args.model, args.revision, profile=args.profile, device=args.device)


def cmd_generate(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.engine import GenerationResult

    engine = load_engine(args)
    result = None
    for event in engine.stream(args.instruction, system=args.system, **_sampling(args)):
        if isinstance(event, GenerationResult):
            result = event
        elif not args.json:
            sys.stdout.write(event.text)
            sys.stdout.flush()
    assert result is not None
    if args.json:
        print(json.dumps({**asdict(result), "model": engine.model_name, "revision": engine.info.revision}))
    else:
        print(f"\n\n[{result.finish_reason}; {result.prompt_tokens} prompt + {result.completion_tokens} completion "
              f"tokens; {result.total_s:.2f}s]", file=sys.stderr)
    return 0


def run_agent(engine: Any, task: str, tests: str | None, max_rounds: int,
              sampling: dict[str, Any] | None = None) -> int:
    """Write, run and fix code for ``task``, printing each round as it happens with a progress line."""
    import threading
    import time

    from wizardcoder_integrations.sandbox import Sandbox
    from wizardcoder_integrations.tools.core import Round, WriteAndRunPython

    state = {"round": 1, "started": time.monotonic()}
    stop = threading.Event()

    def spinner() -> None:  # which round, that the model is at work, for how long
        frames = "|/-\\"
        i = 0
        while not stop.wait(0.1):
            elapsed = time.monotonic() - state["started"]
            sys.stderr.write(f"\r{frames[i % 4]} round {state['round']}/{max_rounds}: writing and running "
                             f"({elapsed:.1f}s)   ")
            sys.stderr.flush()
            i += 1
        sys.stderr.write("\r" + " " * 60 + "\r")

    def show(r: Round) -> None:
        sys.stderr.write("\r" + " " * 60 + "\r")
        verdict = "passed" if r.passed else f"failed: {r.error}"
        print(f"--- round {r.round} ---\n```python\n{r.code}```\noutput:\n{r.output or '(none)'}\n"
              f"verdict: {verdict}\n", flush=True)
        state["round"], state["started"] = r.round + 1, time.monotonic()

    with Sandbox() as sandbox:
        print(f"task: {task}" + (f"\ntests:\n{tests}" if tests else "") + f"\nsandbox: tier {sandbox.tier}\n",
              flush=True)
        tool = WriteAndRunPython(engine, sandbox, on_round=show, sampling=sampling)
        thread = threading.Thread(target=spinner, daemon=True)
        thread.start()
        try:
            result = tool.run(task=task, tests=tests, max_rounds=max_rounds)
        finally:
            stop.set()
            thread.join()
    print(f"final verdict: {'passed' if result.passed else 'failed'} after {result.rounds} round(s)")
    return 0 if result.passed else 1


def cmd_agent(args: argparse.Namespace) -> int:
    sampling = {k: v for k, v in _sampling(args).items() if v is not None} or None
    return run_agent(load_engine(args), args.task, args.tests, args.max_rounds, sampling)


def cmd_chat(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.chat import ChatMessage, ChatRequest, ReplyBuilder, render_request
    from wizardcoder_integrations.chat.driver import Call, events

    engine = load_engine(args)
    history: list[ChatMessage] = [ChatMessage("system", args.system)] if args.system else []
    print(f"Chatting with {engine.model_name} (Ctrl-D or /exit to quit, /reset to forget).", file=sys.stderr)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        if line.strip() in ("/exit", "/quit"):
            return 0
        if line.strip() == "/reset":
            history = history[:1] if args.system else []
            continue
        if not line.strip():
            continue
        history.append(ChatMessage("user", line))
        rendered = render_request(ChatRequest(history, stop=tuple(args.stop or ())))
        builder = ReplyBuilder.for_request(rendered)
        for event in events(Call(engine, rendered.prompt, {**_sampling(args), "stop": list(rendered.stops)})):
            for part in builder.feed(event):
                sys.stdout.write(str(part))
                sys.stdout.flush()
        print()
        history.append(ChatMessage("assistant", builder.text))


def cmd_demo(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.demo import DEMO_TASK, pick_engine

    engine, which = pick_engine(args.model, args.revision)
    print(which + "\n", flush=True)
    return run_agent(engine, DEMO_TASK["task"], DEMO_TASK["tests"], max_rounds=3)


def cmd_serve(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.server import serve

    engine = load_engine(args)

    def announce(url: str) -> None:
        print(f"wizardcoder serve: {engine.model_name} at {url}/v1", flush=True)

    serve(engine, host=args.host, port=args.port, served_model_name=args.served_model_name,
          max_pending=args.max_pending, api_key=args.api_key, access_log=args.access_log, announce=announce)
    return 0


def cmd_eval_humaneval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wizardcoder_integrations.eval.humaneval import EvalConfig, run_humaneval
    from wizardcoder_integrations.eval.humaneval_check import sandbox_checker

    try:
        ks = tuple(int(k) for k in args.k.split(","))
    except ValueError:
        print(f"error: --k takes comma-separated integers like 1,10; got {args.k!r}", file=sys.stderr)
        return 2
    config = EvalConfig(samples=args.samples, temperature=args.temperature, k=ks, repair_rounds=args.repair_rounds,
                        workers=args.workers, limit=args.limit, max_new_tokens=args.max_new_tokens)
    engine = load_engine(args)
    bar = _progress_bar()
    with sandbox_checker(workers=config.workers) as check:
        summary = run_humaneval(engine, config, Path(args.out), check=check, progress=bar)
    print(file=sys.stderr)
    print(format_summary(summary))
    return 0


def _progress_bar() -> Any:
    """A one-line progress display on stderr: done/total and the running pass rate."""
    import time

    started = time.monotonic()

    def show(done: int, total: int, rate: float) -> None:
        width = 30
        filled = int(width * done / max(1, total))
        elapsed = time.monotonic() - started
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} pass {rate:6.1%} "
                         f"{elapsed:6.0f}s")
        sys.stderr.flush()

    return show


def format_summary(summary: Any) -> str:
    """The final table: our pass@k beside the card's number."""
    rows = [("model", summary.model), ("problems", str(summary.problems)),
            ("samples per problem", str(summary.samples_per_problem)), ("temperature", str(summary.temperature))]
    rows += [(f"pass@{k}", f"{v:.1f}") for k, v in summary.pass_at_k.items()]
    if summary.pass_at_1_with_repair is not None:
        label = f"pass@1 with {summary.repair_rounds} repair round(s)"
        rows.append((label, f"{summary.pass_at_1_with_repair:.1f}"))
    card = summary.card_pass_at_1
    rows.append(("pass@1 on the model card", "-" if card is None else f"{card:.1f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wizardcoder", description="WizardCoder-Python GPTQ from the terminal.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="answer one instruction, streaming")
    gen.add_argument("instruction", help="what to ask (wrapped in the card's Alpaca template)")
    gen.add_argument("--system", default=None, help="optional system text placed after the preamble")
    gen.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    _add_model_args(gen)
    _add_remote_args(gen)
    _add_sampling_args(gen)
    gen.set_defaults(func=cmd_generate)
    agent = sub.add_parser("agent", help="write, run and fix Python for a task, showing each round")
    agent.add_argument("task", help="what the code must do")
    agent.add_argument("--tests", default=None, help="Python asserts the code must pass")
    agent.add_argument("--max-rounds", type=int, default=3, help="tries, each after seeing the error")
    _add_model_args(agent)
    _add_remote_args(agent)
    _add_sampling_args(agent)
    agent.set_defaults(func=cmd_agent)
    chat = sub.add_parser("chat", help="interactive, streaming chat")
    chat.add_argument("--system", default=None, help="system text for the whole conversation")
    _add_model_args(chat)
    _add_remote_args(chat)
    _add_sampling_args(chat)
    chat.set_defaults(func=cmd_chat)
    demo = sub.add_parser("demo", help="the main job: the real model on a GPU, else the offline stand-in")
    demo.add_argument("--model", default=DEFAULT_MODEL)
    demo.add_argument("--revision", default=None)
    demo.set_defaults(func=cmd_demo)
    srv = sub.add_parser("serve", help="an OpenAI-compatible HTTP server over the in-process engine")
    _add_model_args(srv)
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    srv.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; default: %(default)s)")
    srv.add_argument("--served-model-name", default=None, help="model id clients use (default: the repo id)")
    srv.add_argument("--max-pending", type=int, default=256,
                     help="requests in flight before new ones get HTTP 429 (default: %(default)s)")
    srv.add_argument("--api-key", default=None,
                     help="require 'Authorization: Bearer KEY' on every endpoint but /health and /version "
                          "(default: $WIZARDCODER_API_KEY; none: no key needed)")
    srv.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                     help="log one line per request to stderr (default: off)")
    srv.set_defaults(func=cmd_serve)
    ev = sub.add_parser("eval", help="benchmarks")
    ev_sub = ev.add_subparsers(dest="benchmark", required=True)
    he = ev_sub.add_parser("humaneval", help="HumanEval pass@k, checked in the sandbox, resumable")
    _add_model_args(he)
    _add_remote_args(he)
    he.add_argument("--samples", type=int, default=1, help="samples per problem (default: %(default)s)")
    he.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default: %(default)s)")
    he.add_argument("--k", default="1", help="comma-separated k values for pass@k (default: %(default)s)")
    he.add_argument("--repair-rounds", type=int, default=0,
                    help="extra tries for failing samples, shown the test error (default: %(default)s)")
    he.add_argument("--workers", type=int, default=4, help="sandbox checks in parallel (default: %(default)s)")
    he.add_argument("--limit", type=int, default=None, help="only the first N problems")
    he.add_argument("--max-new-tokens", type=int, default=512)
    he.add_argument("--out", default="humaneval-results.jsonl", help="JSONL results; rerun to resume")
    he.set_defaults(func=cmd_eval_humaneval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WizardCoderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
