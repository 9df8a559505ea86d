"""The FastAPI application: OpenAI's chat and completions endpoints over one engine, and how it is run.

Requests are converted by :mod:`.protocol` into the chat layer's request (rendered by the same code as the
LangChain and LlamaIndex adapters) and the engine's sampling settings; replies are assembled by the chat layer's
:class:`ReplyBuilder` and written out as OpenAI JSON or SSE chunks. Rendering and tokenising run in worker
threads, so a huge prompt never stalls other clients; a client that goes away (streaming or not) cancels its
request, which leaves the batch at the next decode step.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (``Request``).
import asyncio
import contextlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from wizardcoder_integrations.chat import InvalidToolCall, ParsedToolCall, ReplyBuilder, render_request
from wizardcoder_integrations.chat.toolcalls import TOOL_CALL_OPEN
from wizardcoder_integrations.engine.remote_grammar import grammar_from_wire
from wizardcoder_integrations.errors import ConfigurationError, WizardCoderError
from wizardcoder_integrations.extras import extra_imports, require
from wizardcoder_integrations.server.errors import (
    InvalidRequest,
    error_body,
    error_response,
    status_of,
    validation_error,
)
from wizardcoder_integrations.server.logprobs import TokenTexts
from wizardcoder_integrations.server.protocol import ChatBody, CompletionBody

__all__ = ["API_KEY_ENV", "OWNER", "create_app", "serve"]

#: The environment variable that holds serve's API key when ``--api-key`` is not given (the same variable the
#: adapters and the CLI send as their key, so one setting serves both ends).
API_KEY_ENV = "WIZARDCODER_API_KEY"
#: ``owned_by`` of serve's models: how a :class:`RemoteEngine` recognises serve when it probes a server.
OWNER = "wizardcoder-integrations"
#: Paths answered without an API key.
OPEN_PATHS = frozenset({"/health", "/version"})


def create_app(engine: Any, *, served_model_name: str | None = None, max_pending: int = 256,
               api_key: str | None = None) -> Any:
    """The FastAPI application serving ``engine``; ``api_key`` (if set) is required as ``Bearer`` on every
    endpoint but ``/health`` and ``/version``."""
    with extra_imports("serve", "fastapi"):
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse, StreamingResponse
        from starlette.exceptions import HTTPException
    if max_pending < 1:
        raise ConfigurationError("max_pending must be at least 1.")
    name = served_model_name or engine.model_name
    app = FastAPI(title="wizardcoder serve")
    state = {"in_flight": 0}
    texts = TokenTexts(getattr(engine, "tokenizer", None))
    if texts.tokenizer is not None:
        texts.longest_token  # noqa: B018  (computed once now, not on the event loop during a request)
    context = engine.info.context_length
    if api_key:
        app.add_middleware(_BearerAuth, key=api_key)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        return validation_error(list(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Any:
        code = "not_found" if exc.status_code == 404 else None
        return error_response(exc.status_code, str(exc.detail), code=code)

    @app.exception_handler(WizardCoderError)
    async def package_error(_: Request, exc: WizardCoderError) -> Any:
        status, retry = status_of(exc)
        return error_response(status, str(exc), param=getattr(exc, "param", None),
                              code=getattr(exc, "code", None), retry_after=retry)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Any:
        return error_response(500, f"Internal error: {exc.__class__.__name__}: {exc}", kind="server_error")

    def model_card() -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": OWNER, "max_model_len": context}

    def check_model(model: str | None) -> None:
        if model is not None and model != name:
            raise InvalidRequest(f"The model {model!r} does not exist on this server; it serves {name!r}.",
                                 "model", code="model_not_found", status=404)

    def admit() -> None:
        if state["in_flight"] >= max_pending:
            raise InvalidRequest(f"The server is full: {state['in_flight']} requests in flight (limit "
                                 f"{max_pending}). Retry after a moment.", None, code="server_overloaded", status=429)
        state["in_flight"] += 1

    def release() -> None:
        state["in_flight"] -= 1

    @app.get("/health")
    async def health() -> dict[str, Any]:
        scheduler = getattr(engine, "scheduler", None)
        return {"status": "ok", "model": name, "in_flight": state["in_flight"],
                "running": None if scheduler is None else scheduler.running}

    @app.get("/version")
    async def version() -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            own = dist_version("wizardcoder-integrations")
        except PackageNotFoundError:
            own = "unknown"
        return {"version": own, "server": "wizardcoder serve"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        check_model(model_id)
        return model_card()

    @app.post("/tokenize")
    async def tokenize(body: dict[str, Any]) -> dict[str, Any]:
        text = body.get("prompt")
        if not isinstance(text, str):
            raise InvalidRequest("/tokenize needs a string 'prompt'.", "prompt")
        special = bool(body.get("add_special_tokens", True))
        tokens = await asyncio.to_thread(engine.tokenize, text, add_special_tokens=special)
        return {"tokens": list(tokens), "count": len(tokens), "max_model_len": context}

    async def prepare(text: str, param: str) -> None:
        if texts.surely_longer(text, context):
            raise InvalidRequest(f"The prompt is over {len(text)} characters, at least {texts.min_tokens(text)} "
                                 f"tokens, but the model's context is {context} tokens. Shorten it.", param,
                                 code="context_length_exceeded")

    def client_closed() -> JSONResponse:
        """The answer to a request whose client went away before it finished (never read; logged as 499)."""
        return JSONResponse(error_body(499, "The client closed the request."), 499)

    async def streamed(request: Request, prompt: str, overrides: dict[str, Any], n: int,
                       chunks: Callable[[AsyncIterator[Any]], AsyncIterator[bytes]]) -> Any:
        """Stream one prompt's reply: its first event is awaited first (a refused request is an HTTP error, not
        a broken stream); the slot is released when the stream ends, fails or the client leaves."""
        try:
            events = await _primed(request, _events(engine, prompt, overrides, n))
        except BaseException:
            release()
            raise
        if events is None:
            release()
            return client_closed()
        return StreamingResponse(_released(_guard(request, chunks(events)), release), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> Any:
        check_model(body.model)
        body.check()
        prompts = body.prompts()
        overrides = body.overrides()
        if body.reply_grammar is not None:
            overrides["grammar"] = grammar_from_wire(body.reply_grammar)
        engine.params(**overrides)  # refuse bad settings before anything runs
        for p in prompts:
            await prepare(p, "prompt")
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        base = {"id": rid, "object": "text_completion", "created": created, "model": name}
        admit()
        if body.stream:
            return await streamed(request, prompts[0], overrides, body.n,
                                  lambda events: _completion_chunks(events, prompts[0], body, base, texts))
        try:
            jobs = [_collect(engine, p, overrides, body.n) for p in prompts]
            results = await _until_disconnect(request, asyncio.gather(*jobs))
        finally:
            release()
        if results is None:
            return client_closed()
        choices = [
            {"index": i * body.n + j, "text": (p if body.echo else "") + r.text,
             "logprobs": _completion_logprobs(r, texts, body.logprobs), "finish_reason": _reason(r),
             "stop_reason": r.stop_sequence}
            for i, (p, batch) in enumerate(zip(prompts, results, strict=True)) for j, r in enumerate(batch)]
        return {**base, "choices": choices, "usage": _usage([r for batch in results for r in batch])}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatBody, request: Request) -> Any:
        check_model(body.model)
        body.check()
        rendered = await asyncio.to_thread(lambda: render_request(body.chat_request()))
        await prepare(rendered.prompt, "messages")
        overrides = {**body.overrides(), "stop": list(rendered.stops), "grammar": rendered.grammar}
        engine.params(**overrides)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name}
        admit()
        if body.stream:
            return await streamed(request, rendered.prompt, overrides, body.n,
                                  lambda events: _chat_chunks(events, rendered, overrides, body, base, texts))
        try:
            replies = await _until_disconnect(request, _chat_replies(engine, rendered, overrides, body.n, texts,
                                                                     body.logprobs))
        finally:
            release()
        if replies is None:
            return client_closed()
        return {**base, "object": "chat.completion", "choices": [c for c, _ in replies],
                "usage": _usage([r for _, r in replies])}

    return app


class _BearerAuth:
    """ASGI middleware: every path but :data:`OPEN_PATHS` needs ``Authorization: Bearer <key>``."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            await self.app(scope, receive, send)
            return
        message = ("Incorrect API key provided." if header else
                   "Missing API key: send it as 'Authorization: Bearer <key>'.")
        response = error_response(401, message, code="invalid_api_key")
        await response(scope, receive, send)


# -- running requests --------------------------------------------------------------------------------------------
async def _disconnected(request: Any) -> None:
    """Returns when the client has gone away (ASGI ``http.disconnect``)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _until_disconnect(request: Any, work: Any) -> Any:
    """The result of ``work``, or None if the client disconnects first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        return None
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _guard(request: Any, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` until they end or the client disconnects; either way (or if the response is cancelled) the
    generation is closed, which cancels its engine request.

    One task produces the chunks and one watches the connection; both feed one queue, so each chunk costs a
    queue hand-over, not a task.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    end = object()

    async def produce() -> None:
        try:
            async for chunk in chunks:
                queue.put_nowait(chunk)
        except Exception as e:  # the chunk generators write errors as frames; anything else is reported here
            queue.put_nowait(e)
        finally:
            queue.put_nowait(end)

    async def watch() -> None:
        await _disconnected(request)
        queue.put_nowait(end)

    producer, watcher = asyncio.ensure_future(produce()), asyncio.ensure_future(watch())
    try:
        while True:
            item = await queue.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        watcher.cancel()
        producer.cancel()  # a client gone mid-reply: the engine request is cancelled with the generator


async def _primed(request: Any, events: AsyncIterator[Any]) -> AsyncIterator[Any] | None:
    """``events`` with its first item already taken, so a request the engine refuses (a prompt longer than the
    context) is an HTTP error, not a stream that starts and fails; None if the client left meanwhile."""
    try:
        first = await _until_disconnect(request, events.__anext__())
    except StopAsyncIteration:
        first = None
    if first is None:
        await events.aclose()  # type: ignore[attr-defined]
        return None

    async def chained() -> AsyncIterator[Any]:
        try:
            yield first
            async for item in events:
                yield item
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    return chained()


async def _released(chunks: AsyncIterator[bytes], release: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        release()
        await chunks.aclose()  # type: ignore[attr-defined]


async def _events(engine: Any, text: str, overrides: dict[str, Any], n: int) -> AsyncIterator[tuple[int, Any]]:
    """``(choice index, engine event)`` of ``n`` completions of ``text`` (seeded ones get seed, seed+1, ...)."""
    if n == 1:
        async for event in engine.astream(text, raw=True, **overrides):
            yield 0, event
        return
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    async def pump(i: int) -> None:
        seed = overrides.get("seed")
        try:
            async for event in engine.astream(text, raw=True, **{**overrides,
                                                                  "seed": None if seed is None else seed + i}):
                queue.put_nowait((i, event))
        except BaseException as e:
            queue.put_nowait((i, e))
            raise
        finally:
            queue.put_nowait((i, done))

    tasks = [asyncio.ensure_future(pump(i)) for i in range(n)]
    try:
        finished = 0
        while finished < n:
            i, event = await queue.get()
            if event is done:
                finished += 1
            elif isinstance(event, BaseException):
                raise event
            else:
                yield i, event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _final(event: Any) -> bool:
    return getattr(event, "finish_reason", None) is not None


async def _collect(engine: Any, text: str, overrides: dict[str, Any], n: int) -> list[Any]:
    results: list[Any] = [None] * n
    async for i, event in _events(engine, text, overrides, n):
        if _final(event):
            results[i] = event
    return results


def _reason(result: Any) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(results: list[Any]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def _error_frame(exc: BaseException) -> bytes:
    """An error after the stream started: an OpenAI-shaped error frame (vLLM's convention), then ``[DONE]``."""
    status, _ = status_of(exc)
    body = error_body(status, str(exc) if isinstance(exc, WizardCoderError) else
                      f"Internal error: {exc.__class__.__name__}: {exc}", code=getattr(exc, "code", None))
    return _sse(body)


def _logprobs_of(event: Any) -> tuple[Any, ...]:
    return tuple(getattr(event, "logprobs", None) or ())


# -- completions -------------------------------------------------------------------------------------------------
def _completion_logprobs(result: Any, texts: TokenTexts, k: int | None) -> dict[str, Any] | None:
    if k is None:
        return None
    return texts.completion(tuple(getattr(result, "logprobs", None) or ()), k)


async def _completion_chunks(events: AsyncIterator[tuple[int, Any]], prompt: str, body: CompletionBody,
                             base: dict[str, Any], texts: TokenTexts) -> AsyncIterator[bytes]:
    results = []
    try:
        if body.echo:
            for i in range(body.n):
                yield _sse({**base, "choices": [{"index": i, "text": prompt, "logprobs": None,
                                                 "finish_reason": None}]})
        async for i, event in events:
            if _final(event):
                results.append(event)
                yield _sse({**base, "choices": [{"index": i, "text": "", "logprobs": None,
                                                 "finish_reason": _reason(event),
                                                 "stop_reason": event.stop_sequence}]})
            elif event.text or _logprobs_of(event):
                logprobs = None if body.logprobs is None else texts.completion(_logprobs_of(event), body.logprobs)
                yield _sse({**base, "choices": [{"index": i, "text": event.text, "logprobs": logprobs,
                                                 "finish_reason": None}]})
        if body.include_usage:
            yield _sse({**base, "choices": [], "usage": _usage(results)})
    except Exception as e:
        yield _error_frame(e)
    yield _sse("[DONE]")


# -- chat ----------------------------------------------------------------------------------------------------------
def _call_json(call: ParsedToolCall | InvalidToolCall, index: int) -> dict[str, Any]:
    if isinstance(call, ParsedToolCall):
        arguments = json.dumps(call.arguments, ensure_ascii=False)
    else:  # as the model wrote it: never valid JSON, so clients see a call that failed to parse
        arguments = f"{TOOL_CALL_OPEN}\n{call.raw}"
    return {"index": index, "id": call.id, "type": "function",
            "function": {"name": call.name or "", "arguments": arguments}}


async def _chat_replies(engine: Any, rendered: Any, overrides: dict[str, Any], n: int, texts: TokenTexts,
                        logprobs: bool | None) -> list[tuple[dict[str, Any], Any]]:
    builders = [ReplyBuilder.for_request(rendered) for _ in range(n)]
    calls: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    finals: list[Any] = [None] * n

    def take(i: int, parts: list[Any]) -> None:
        for part in parts:
            if not isinstance(part, str):
                calls[i].append(_call_json(part, len(calls[i])))

    for i, b in enumerate(builders):
        take(i, b.start())
    async for i, event in _events(engine, rendered.prompt, overrides, n):
        take(i, builders[i].feed(event))
        if _final(event):
            finals[i] = event
    out = []
    for i, (b, result) in enumerate(zip(builders, finals, strict=True)):
        reply = b.reply
        assert reply is not None
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or (None if calls[i] else "")}
        if calls[i]:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls[i]]
        lp = texts.chat(tuple(getattr(result, "logprobs", None) or ()),
                        overrides.get("logprobs") or 0) if logprobs else None
        out.append(({"index": i, "message": message, "finish_reason": _chat_reason(reply, len(calls[i])),
                     "logprobs": lp}, result))
    return out


def _chat_reason(reply: Any, calls: int) -> str:
    """The chat layer's finish reason ("tool_calls" when the reply holds valid calls), in OpenAI's words."""
    return reply.finish_reason if reply.finish_reason in ("stop", "length", "tool_calls") else "stop"


async def _chat_chunks(events: AsyncIterator[tuple[int, Any]], rendered: Any, overrides: dict[str, Any],
                       body: ChatBody, base: dict[str, Any], texts: TokenTexts) -> AsyncIterator[bytes]:
    n = body.n
    builders = [ReplyBuilder.for_request(rendered) for _ in range(n)]
    counts = [0] * n
    results = []
    k = overrides.get("logprobs") or 0

    def chunk(i: int, delta: dict[str, Any], reason: str | None = None, logprobs: Any = None) -> bytes:
        return _sse({**base, "choices": [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": reason}]})

    def parts_to_chunks(i: int, parts: list[Any], logprobs: Any) -> list[bytes]:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(chunk(i, {"content": part}, logprobs=logprobs))
            else:
                out.append(chunk(i, {"tool_calls": [_call_json(part, counts[i])]}, logprobs=logprobs))
                counts[i] += 1
            logprobs = None
        if logprobs is not None:  # tokens whose text is held back for now (or is no text): still reported
            out.append(chunk(i, {}, logprobs=logprobs))
        return out

    try:
        for i in range(n):
            yield chunk(i, {"role": "assistant", "content": ""})
            for c in parts_to_chunks(i, builders[i].start(), None):
                yield c
        async for i, event in events:
            lp = texts.chat(_logprobs_of(event), k) if body.logprobs and _logprobs_of(event) else None
            for c in parts_to_chunks(i, builders[i].feed(event), lp):
                yield c
            if _final(event):
                results.append(event)
                reply = builders[i].reply
                yield chunk(i, {}, _chat_reason(reply, counts[i]))
        if body.include_usage:
            yield _sse({**base, "choices": [], "usage": _usage(results)})
    except Exception as e:
        yield _error_frame(e)
    yield _sse("[DONE]")


# -- running the server ------------------------------------------------------------------------------------------
def serve(engine: Any, *, host: str = "127.0.0.1", port: int = 8000, served_model_name: str | None = None,
          max_pending: int = 256, api_key: str | None = None, access_log: bool = False,
          graceful_timeout_s: float = 30.0, announce: Any = None) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests finish before it exits.

    ``api_key`` falls back to ``$WIZARDCODER_API_KEY``; ``access_log`` logs one line per request to stderr.
    """
    import socket

    uvicorn = require("uvicorn")
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    app = create_app(engine, served_model_name=served_model_name, max_pending=max_pending, api_key=api_key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log,
                            timeout_graceful_shutdown=int(graceful_timeout_s), lifespan="off")
    server = uvicorn.Server(config)
    if announce is not None:
        announce(f"http://{host}:{bound}")
    server.run(sockets=[sock])
