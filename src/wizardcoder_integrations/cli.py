"""The ``wizardcoder`` command: thin argument parsing over the engine; formatting lives here only.

Every argument is checked before anything is loaded: a bad one is a usage error (exit status 2). A failure while
running prints one line to stderr and exits non-zero (2 for a bad setting, 1 otherwise); ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.profiles import CARD_DEFAULTS, DEFAULT_MODEL, get_profile

__all__ = ["main"]

DISTRIBUTION = "wizardcoder-integrations"
PACKAGE_LOGGER = "wizardcoder_integrations"
#: Libraries whose loggers ``-v`` turns to debug (``-q`` quiets every logger).
THIRD_PARTY_LOGGERS = ("transformers", "gptqmodel", "logbar", "optimum", "accelerate", "huggingface_hub", "torch",
                       "httpx", "httpcore", "uvicorn", "fastapi")
#: The stand-in's profile (``standin.STANDIN_PROFILE``; that module imports torch).
STANDIN_PROFILE = "WizardCoder-Python-Tiny-Standin"
DEVICE_FORMS = "auto, cpu, cuda or cuda:N (N: the GPU's index, e.g. cuda:1)"
#: The option of each library setting: errors about a setting name the option that sets it.
OPTIONS = {"model": "--model", "revision": "--revision", "profile": "--profile", "device": "--device",
           "standin": "--standin", "base_url": "--base-url", "api_key": "--api-key"}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


# --- argument types: each checks one value while parsing, so argparse reports it as a usage error --------------


def _bounds_text(bounds: dict[str, float]) -> str:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return " and ".join(f"{words[k]} {v:g}" for k in ("gt", "ge", "lt", "le") if (v := bounds.get(k)) is not None)


class _Number:
    """An argparse type: an int or float within bounds, by default the ones SamplingParams sets for ``field``."""

    def __init__(self, kind: type[int] | type[float], field: str | None = None, **bounds: float) -> None:
        self.kind, self.field, self._bounds = kind, field, bounds
        self.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"

    def bounds(self) -> dict[str, float]:
        if self.field is None:
            return self._bounds
        from wizardcoder_integrations.engine.params import SamplingParams  # pydantic only, no torch

        rules = SamplingParams.model_fields[self.field].metadata
        return {k: getattr(r, k) for r in rules for k in ("gt", "ge", "lt", "le") if getattr(r, k, None) is not None}

    def __call__(self, text: str) -> int | float:
        value = self.kind(text)
        bounds = self.bounds()
        ok = math.isfinite(value) and all(
            {"gt": value > v, "ge": value >= v, "lt": value < v, "le": value <= v}[k] for k, v in bounds.items())
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {_bounds_text(bounds) or 'a finite number'}; got {text}")
        return value


def _device(text: str) -> str | None:
    name = text.strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use {DEVICE_FORMS}")
    return None if name == "auto" else name


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL like http://gpu-box:8000/v1")
    return text


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _stop(text: str) -> str:
    if text == "":
        raise argparse.ArgumentTypeError("a stop string must not be empty")
    return text


def _k_values(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"takes comma-separated integers >= 1 like 1,10; got {text!r}")
    return ks


def _output_file(text: str) -> str:
    parent = Path(text).expanduser().parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"the directory {str(parent)!r} does not exist")
    if Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; name a file")
    return text


# --- checks that need several arguments at once --------------------------------------------------------------


def _local_only(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that only apply to loading the model in this process, for ``resolve_backend``."""
    return {"revision": args.revision, "device": args.device, "standin": args.standin or None}


def _check_checkpoint_and_server(args: argparse.Namespace) -> None:
    """The checks loading makes first, made here before anything loads: the server, if one is named
    (``chat.settings.resolve_backend``), else the checkpoint (``engine.source.resolve_source``, as
    ``Engine.load``; the stand-in is its own repository). Both import no torch."""
    if hasattr(args, "base_url"):
        from wizardcoder_integrations.chat.settings import resolve_backend

        base_url, _ = resolve_backend(args.base_url, args.api_key, names=OPTIONS, **_local_only(args))
        if base_url is not None:
            return
    from wizardcoder_integrations.engine.source import resolve_source

    if getattr(args, "standin", False):
        resolve_source(get_profile(STANDIN_PROFILE).gptq_repo or "", args.revision, names=OPTIONS)
    else:
        resolve_source(args.model, args.revision, profile=getattr(args, "profile", None), names=OPTIONS)


def _problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments taken together (each alone was checked while parsing), or None."""
    if hasattr(args, "model"):
        try:
            _check_checkpoint_and_server(args)
        except ConfigurationError as e:
            option = OPTIONS.get(e.setting or "")
            return f"argument {option}: {e}" if option else str(e)
    if getattr(args, "benchmark", None) == "humaneval":
        if max(args.k) > args.samples:
            return f"argument --k: every k must be at most --samples ({args.samples}); got {','.join(map(str, args.k))}"
        if args.samples > 1 and args.temperature == 0:
            return "argument --samples: several samples per problem need --temperature > 0 (greedy repeats itself)"
    return None


# --- logging and output streams ------------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record arrives (so captures and redirects see it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@contextlib.contextmanager
def _logging_for(verbosity: int) -> Iterator[None]:
    """Log to stderr: ``-q`` warnings and errors only, ``-v`` debug from this package and its libraries.

    Levels, handlers and environment are restored afterwards.
    """
    handler = _StderrHandler()
    handler.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"))
    names = (PACKAGE_LOGGER, *THIRD_PARTY_LOGGERS) if verbosity > 0 else (PACKAGE_LOGGER,)
    levels = {name: logging.getLogger(name).level for name in names}
    env = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "warning"} \
        if verbosity < 0 else {"TRANSFORMERS_VERBOSITY": "debug"} if verbosity > 0 else {}
    saved_env = {k: os.environ.get(k) for k in env}
    disabled = logging.root.manager.disable
    # standin.show_build_progress (the demo calls it) adds a second handler unless its logger already has one.
    standin, null = logging.getLogger(f"{PACKAGE_LOGGER}.standin"), logging.NullHandler()
    logging.root.addHandler(handler)
    standin.addHandler(null)
    os.environ.update(env)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity > 0 else logging.INFO)
    if verbosity < 0:
        # Global, so it also holds for loggers that reset their own level when created (gptqmodel's LogBar).
        logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(disabled)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        standin.removeHandler(null)
        logging.root.removeHandler(handler)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to stdout meanwhile to stderr: Python prints, library banners (gptqmodel's
    LogBar writes to stdout) and C-level writes to file descriptor 1."""
    sys.stdout.flush()
    try:
        saved: int | None = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptor 1 (a closed stdout)
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()  # anything buffered for fd 1 meanwhile goes to stderr too
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, ConfigurationError) or type(error).__module__.startswith(PACKAGE_LOGGER):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- the commands ----------------------------------------------------------------------------------------------


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL,
                   help="Hub repo id (owner/name) or local directory of a GPTQ checkpoint (default: %(default)s)")
    g.add_argument("--revision", default=None,
                   help="GPTQ branch of the repo, e.g. gptq-4bit-32g-actorder_True (default: main)")
    g.add_argument("--profile", default=None,
                   help="WizardCoder profile name, e.g. WizardCoder-Python-13B-V1.0, checked against the checkpoint "
                        "(default: from the repo id)")
    g.add_argument("--device", type=_device, default=None,
                   help=f"where to run: {DEVICE_FORMS} (default: auto, the GPU if there is one)")
    g.add_argument("--standin", action="store_true",
                   help="use the tiny offline stand-in model (built and cached on first use); --revision picks its "
                        "branch")


def _add_remote_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("remote server (instead of loading the model here; no torch needed)")
    g.add_argument("--base-url", type=_url, default=None,
                   help="an OpenAI-compatible server (wizardcoder serve, vLLM, TGI), e.g. http://gpu-box:8000/v1 "
                        "(default: $WIZARDCODER_BASE_URL)")
    g.add_argument("--api-key", default=None, help="its API key (default: $WIZARDCODER_API_KEY)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling (defaults from the model card)")
    g.add_argument("--temperature", type=_Number(float, "temperature"), default=None,
                   help=f"softmax temperature, >= 0; 0 is greedy (default: {CARD_DEFAULTS['temperature']})")
    g.add_argument("--top-p", type=_Number(float, "top_p"), default=None,
                   help=f"nucleus sampling, > 0 and <= 1 (default: {CARD_DEFAULTS['top_p']})")
    g.add_argument("--top-k", type=_Number(int, "top_k"), default=None,
                   help=f"keep the k most likely tokens, >= 0; 0 keeps all (default: {CARD_DEFAULTS['top_k']})")
    g.add_argument("--repetition-penalty", type=_Number(float, "repetition_penalty"), default=None,
                   help=f"divides the logits of tokens already seen, > 0; 1 is none "
                        f"(default: {CARD_DEFAULTS['repetition_penalty']})")
    g.add_argument("--max-tokens", type=_Number(int, "max_new_tokens"), default=None,
                   help=f"most tokens to generate, >= 1 (default: {CARD_DEFAULTS['max_new_tokens']})")
    g.add_argument("--greedy", action="store_true", help="take the most likely token (no sampling)")
    g.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    g.add_argument("--stop", type=_stop, action="append", default=None,
                   help="stop string: the text ends before it (repeatable)")


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k,
        "repetition_penalty": args.repetition_penalty, "max_new_tokens": args.max_tokens,
        "do_sample": False if args.greedy else None, "seed": args.seed, "stop": args.stop,
    }


def load_engine(args: argparse.Namespace) -> Any:
    """The engine the arguments name: a server (``--base-url`` or ``$WIZARDCODER_BASE_URL``), the stand-in
    (``--standin``) or the model loaded here. Whatever loading prints on stdout goes to stderr."""
    with stdout_to_stderr():
        return _load_engine(args)


def _load_engine(args: argparse.Namespace) -> Any:
    if hasattr(args, "base_url"):
        from wizardcoder_integrations.chat.settings import resolve_backend
        from wizardcoder_integrations.engine.remote import shared_remote_engine

        base_url, api_key = resolve_backend(args.base_url, args.api_key, names=OPTIONS, **_local_only(args))
        if base_url is not None:
            model = None if args.model == DEFAULT_MODEL else args.model
            return shared_remote_engine(base_url, model=model, api_key=api_key, profile=args.profile)
    if args.standin:
        from wizardcoder_integrations.standin import load_standin_engine

        return load_standin_engine(args.revision or "main", device=args.device)
    from wizardcoder_integrations.engine import Engine

    return Engine.load(args.model, args.revision, profile=args.profile, device=args.device)


def cmd_generate(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.engine import GenerationResult

    result = None
    # With --json, stdout carries the JSON object alone: everything printed before it goes to stderr.
    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        engine = load_engine(args)
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
        trailer = "" if args.verbosity < 0 else (
            f"\n\n[{result.finish_reason}; {result.prompt_tokens} prompt + {result.completion_tokens} completion "
            f"tokens; {result.total_s:.2f}s]")
        print(trailer, file=sys.stderr)
    return 0


def run_agent(engine: Any, task: str, tests: str | None, max_rounds: int,
              sampling: dict[str, Any] | None = None, *, progress: bool = True) -> int:
    """Write, run and fix code for ``task``, printing each round as it happens (with a progress line on stderr
    unless ``progress`` is false)."""
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
        if progress:
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
        if progress:
            thread.start()
        try:
            result = tool.run(task=task, tests=tests, max_rounds=max_rounds)
        finally:
            stop.set()
            if progress:
                thread.join()
    print(f"final verdict: {'passed' if result.passed else 'failed'} after {result.rounds} round(s)")
    return 0 if result.passed else 1


def cmd_agent(args: argparse.Namespace) -> int:
    sampling = {k: v for k, v in _sampling(args).items() if v is not None} or None
    return run_agent(load_engine(args), args.task, args.tests, args.max_rounds, sampling,
                     progress=args.verbosity >= 0)


def cmd_chat(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.chat import ChatMessage, ChatRequest, ReplyBuilder, render_request
    from wizardcoder_integrations.chat.driver import Call, events

    engine = load_engine(args)
    history: list[ChatMessage] = [ChatMessage("system", args.system)] if args.system else []
    if args.verbosity >= 0:
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

    with stdout_to_stderr():
        engine, which = pick_engine(args.model, args.revision)
    print(which + "\n", flush=True)
    return run_agent(engine, DEMO_TASK["task"], DEMO_TASK["tests"], max_rounds=3, progress=args.verbosity >= 0)


def cmd_serve(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.server import serve

    engine = load_engine(args)

    def announce(url: str) -> None:
        print(f"wizardcoder serve: {engine.model_name} at {url}/v1", flush=True)

    serve(engine, host=args.host, port=args.port, served_model_name=args.served_model_name,
          max_pending=args.max_pending, api_key=args.api_key, access_log=args.access_log, announce=announce)
    return 0


def cmd_eval_humaneval(args: argparse.Namespace) -> int:
    from wizardcoder_integrations.eval.humaneval import EvalConfig, run_humaneval
    from wizardcoder_integrations.eval.humaneval_check import sandbox_checker

    config = EvalConfig(samples=args.samples, temperature=args.temperature, k=args.k,
                        repair_rounds=args.repair_rounds, workers=args.workers, limit=args.limit,
                        max_new_tokens=args.max_new_tokens)
    engine = load_engine(args)
    bar = _progress_bar() if args.verbosity >= 0 else None
    with sandbox_checker(workers=config.workers) as check:
        summary = run_humaneval(engine, config, Path(args.out), check=check, progress=bar)
    if bar is not None:
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


def _verbosity_args(p: argparse.ArgumentParser, default: Any) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=default,
                   help="debug logging from wizardcoder and its libraries (transformers, gptqmodel, ...), and full "
                        "tracebacks on errors")
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=default,
                   help="only warnings and errors on stderr: no info logs or progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``wizardcoder`` parser; every option of every subcommand has a help text."""
    parser = argparse.ArgumentParser(
        prog="wizardcoder", description="WizardCoder-Python GPTQ from the terminal.",
        epilog="Logs and progress go to stderr, answers to stdout. Exit status: 0 success, 1 failure, 2 bad "
               "arguments or settings.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="show the installed version and exit")
    _verbosity_args(parser, 0)
    # -v/-q also after the subcommand; SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_args(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do; wizardcoder COMMAND -h lists its options")

    gen = sub.add_parser("generate", parents=[common], help="answer one instruction, streaming",
                         description="Answer one instruction, streaming the text to stdout.")
    gen.add_argument("instruction", help="what to ask (wrapped in the card's Alpaca template)")
    gen.add_argument("--system", default=None, help="optional system text placed after the preamble")
    gen.add_argument("--json", action="store_true",
                     help="print one JSON object (text, finish reason, token counts, timings) instead of streaming "
                          "text; stdout then holds only that object")
    _add_model_args(gen)
    _add_remote_args(gen)
    _add_sampling_args(gen)
    gen.set_defaults(func=cmd_generate, parser=gen)

    agent = sub.add_parser("agent", parents=[common], help="write, run and fix Python for a task, showing each round",
                           description="Write Python for a task, run it in the sandbox and fix it until it passes.")
    agent.add_argument("task", help="what the code must do")
    agent.add_argument("--tests", default=None, help="Python asserts the code must pass")
    agent.add_argument("--max-rounds", type=_Number(int, ge=1, le=10), default=3,
                       help="tries, each after seeing the error, 1 to 10 (default: %(default)s)")
    _add_model_args(agent)
    _add_remote_args(agent)
    _add_sampling_args(agent)
    agent.set_defaults(func=cmd_agent, parser=agent)

    chat = sub.add_parser("chat", parents=[common], help="interactive, streaming chat",
                          description="Chat in the terminal; /reset forgets, /exit or Ctrl-D quits.")
    chat.add_argument("--system", default=None, help="system text for the whole conversation")
    _add_model_args(chat)
    _add_remote_args(chat)
    _add_sampling_args(chat)
    chat.set_defaults(func=cmd_chat, parser=chat)

    demo = sub.add_parser("demo", parents=[common],
                          help="the main job: the real model on a GPU, else the offline stand-in",
                          description="Write, run and fix code for a small task: the real model when a CUDA GPU and "
                                      "its files are there, else the tiny offline stand-in.")
    demo.add_argument("--model", default=DEFAULT_MODEL,
                      help="Hub repo id or local directory tried on a GPU (default: %(default)s)")
    demo.add_argument("--revision", default=None, help="GPTQ branch of that repo (default: main)")
    demo.set_defaults(func=cmd_demo, parser=demo)

    srv = sub.add_parser("serve", parents=[common], help="an OpenAI-compatible HTTP server over the in-process engine",
                         description="Serve the model over an OpenAI-compatible HTTP API (/v1/completions, "
                                     "/v1/chat/completions).")
    _add_model_args(srv)
    g = srv.add_argument_group("server")
    g.add_argument("--host", type=_text, default="127.0.0.1", help="address to listen on (default: %(default)s)")
    g.add_argument("--port", type=_Number(int, ge=0, le=65535), default=8000,
                   help="port, 0 to 65535; 0 picks a free one (default: %(default)s)")
    g.add_argument("--served-model-name", type=_text, default=None,
                   help="model id clients use (default: the repo id)")
    g.add_argument("--max-pending", type=_Number(int, ge=1), default=256,
                   help="requests in flight before new ones get HTTP 429, >= 1 (default: %(default)s)")
    g.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on every endpoint but /health and /version "
                        "(default: $WIZARDCODER_API_KEY; none: no key needed)")
    g.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                   help="log one line per request to stderr (default: off)")
    srv.set_defaults(func=cmd_serve, parser=srv)

    ev = sub.add_parser("eval", parents=[common], help="benchmarks", description="Run a benchmark.")
    ev_sub = ev.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK",
                              help="which benchmark; wizardcoder eval BENCHMARK -h lists its options")
    he = ev_sub.add_parser("humaneval", parents=[common], help="HumanEval pass@k, checked in the sandbox, resumable",
                           description="HumanEval pass@k, each sample checked in the sandbox; rerun to resume.")
    _add_model_args(he)
    _add_remote_args(he)
    g = he.add_argument_group("benchmark")
    g.add_argument("--samples", type=_Number(int, ge=1), default=1,
                   help="samples per problem, >= 1 (default: %(default)s)")
    g.add_argument("--temperature", type=_Number(float, "temperature"), default=0.0,
                   help=">= 0; 0 is greedy, more than one sample needs > 0 (default: %(default)s)")
    g.add_argument("--k", type=_k_values, default=(1,),
                   help="comma-separated k values for pass@k, each from 1 to --samples (default: 1)")
    g.add_argument("--repair-rounds", type=_Number(int, ge=0), default=0,
                   help="extra tries for failing samples, shown the test error, >= 0 (default: %(default)s)")
    g.add_argument("--workers", type=_Number(int, ge=1), default=4,
                   help="sandbox checks in parallel, >= 1 (default: %(default)s)")
    g.add_argument("--limit", type=_Number(int, ge=1), default=None, help="only the first N problems (default: all)")
    g.add_argument("--max-new-tokens", type=_Number(int, "max_new_tokens"), default=512,
                   help="most tokens per completion, >= 1 (default: %(default)s)")
    g.add_argument("--out", type=_output_file, default="humaneval-results.jsonl",
                   help="JSONL results file; rerun with the same file to resume (default: %(default)s)")
    he.set_defaults(func=cmd_eval_humaneval, parser=he)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status is returned (argparse's 0 or 2 included), never raised."""
    try:
        args = build_parser().parse_args(argv)
        if problem := _problem(args):
            args.parser.error(problem)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    with _logging_for(args.verbosity):
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as e:
            if args.verbosity > 0:
                traceback.print_exc()
            hint = "" if args.verbosity > 0 else " (-v shows the traceback)"
            print(f"wizardcoder {args.command}: error: {_one_line(e)}"
                  + ("" if isinstance(e, ConfigurationError) else hint), file=sys.stderr)
            return 2 if isinstance(e, ConfigurationError) else 1


if __name__ == "__main__":
    raise SystemExit(main())
