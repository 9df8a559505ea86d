"""``wizardcoder serve``: an OpenAI-compatible HTTP server over one in-process engine.

Endpoints: ``/v1/completions`` and ``/v1/chat/completions`` (streaming over SSE; in chat, tool calls, and
``tool_choice`` "required"/a function and ``response_format`` decoded under their schema's grammar),
``/v1/models``, ``/tokenize`` (vLLM's shape) and ``/health``. Every request goes through the engine's
dynamic batching; a bounded number of requests may be in flight (429 beyond it); on shutdown the server
stops accepting connections and finishes the requests it has.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wizardcoder_integrations.errors import ConfigurationError, GenerationError, missing_extra
from wizardcoder_integrations.grammar import ReplyGrammar
from wizardcoder_integrations.prompt import ChatMessage, ToolCallRecord
from wizardcoder_integrations.toolcalls import ToolSpec, parse_tool_calls, render_reply

__all__ = ["create_app", "serve"]


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    max_tokens: int | None = Field(None, description="defaults to the engine's (the card's 512)")
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = 1

    def overrides(self) -> dict[str, Any]:
        if self.n != 1:
            raise ConfigurationError("Only n=1 is supported; send several requests instead.")
        top_k = self.top_k if self.top_k is None or self.top_k >= 0 else 0  # vLLM uses -1 for "off"
        return {"max_new_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": top_k, "repetition_penalty": self.repetition_penalty, "stop": self.stop,
                "seed": self.seed, "do_sample": False if self.temperature == 0 else None}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


class CompletionRequest(_Sampling):
    prompt: str | list[str]


class _Function(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"


class _ToolCall(BaseModel):
    id: str | None = None
    type: str = "function"
    function: _Function


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None

    def to_chat(self) -> ChatMessage:
        content = self.content
        if isinstance(content, list):
            parts = [p.get("text", "") for p in content if p.get("type") == "text"]
            if len(parts) != len(content):
                raise ConfigurationError("Only text content parts are supported by WizardCoder.")
            content = "".join(parts)
        calls = tuple(
            ToolCallRecord(c.function.name, c.function.arguments if isinstance(c.function.arguments, dict)
                           else json.loads(c.function.arguments or "{}"), c.id)
            for c in self.tool_calls or ()
        )
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(role, content or "", calls, self.name, self.tool_call_id)  # type: ignore[arg-type]


class ChatRequest(_Sampling):
    messages: list[_Message]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    def render(self) -> tuple[str, str, list[str], ReplyGrammar | None]:
        """The prompt, the reply's forced start, the tool names, and the grammar that keeps a forced tool call
        (``tool_choice`` "required" or a function) or a JSON answer (``response_format``) valid."""
        tools = [_tool_spec(t) for t in self.tools or []]
        choice = self.tool_choice if isinstance(self.tool_choice, str) or self.tool_choice is None else (
            self.tool_choice.get("function", {}).get("name"))
        response_format = None if (self.response_format or {}).get("type") == "text" else self.response_format
        prompt, prefix, grammar = render_reply([m.to_chat() for m in self.messages], tools, choice, response_format)
        return prompt, prefix, [t.name for t in tools], grammar


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def create_app(engine: Any, *, served_model_name: str | None = None, max_pending: int = 256) -> Any:
    """The FastAPI application serving ``engine`` (an :class:`Engine` or anything with its interface)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, StreamingResponse
    except ImportError as e:
        raise missing_extra("serve", "fastapi") from e
    if max_pending < 1:
        raise ConfigurationError("max_pending must be at least 1.")
    name = served_model_name or engine.model_name
    app = FastAPI(title="wizardcoder serve")
    state = {"in_flight": 0}

    def error(status: int, message: str, kind: str) -> Any:
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers=headers)

    @app.middleware("http")
    async def bounded(request: Request, call_next: Any) -> Any:
        if request.url.path not in ("/v1/completions", "/v1/chat/completions"):
            return await call_next(request)
        if state["in_flight"] >= max_pending:
            return error(429, f"The server is full: {state['in_flight']} requests in flight (limit {max_pending}). "
                              "Retry after a moment.", "server_overloaded")
        state["in_flight"] += 1
        try:
            response = await call_next(request)
        except BaseException:
            state["in_flight"] -= 1
            raise
        if isinstance(response, StreamingResponse) or hasattr(response, "body_iterator"):
            inner = response.body_iterator

            async def counted() -> AsyncIterator[bytes]:
                try:
                    async for chunk in inner:
                        yield chunk
                finally:
                    state["in_flight"] -= 1

            response.body_iterator = counted()
        else:
            state["in_flight"] -= 1
        return response

    @app.exception_handler(ConfigurationError)
    async def bad_request(_: Request, exc: ConfigurationError) -> Any:
        return error(400, str(exc), "invalid_request_error")

    @app.exception_handler(GenerationError)
    async def failed(_: Request, exc: GenerationError) -> Any:
        return error(400, str(exc), "invalid_request_error")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "in_flight": state["in_flight"]}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": int(time.time()),
                                            "owned_by": "wizardcoder-integrations",
                                            "max_model_len": engine.info.context_length}]}

    @app.post("/tokenize")
    async def tokenize(body: dict[str, Any]) -> dict[str, Any]:
        text = body.get("prompt")
        if not isinstance(text, str):
            raise ConfigurationError("/tokenize needs a string 'prompt'.")
        special = bool(body.get("add_special_tokens", True))
        tokens = engine.tokenize(text) if special else engine.tokenizer(text, add_special_tokens=False)["input_ids"]
        return {"tokens": list(tokens), "count": len(tokens), "max_model_len": engine.info.context_length}

    async def run(text: str, overrides: dict[str, Any]) -> Any:
        result = None
        async for event in engine.astream(text, raw=True, **overrides):
            result = event
        return result

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> Any:
        overrides = req.overrides()
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        engine.params(**overrides)  # validate before starting
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            if len(prompts) != 1:
                raise ConfigurationError("Streaming takes one prompt per request.")
            return StreamingResponse(_stream_completion(engine, prompts[0], overrides, rid, created, name,
                                                        req.include_usage), media_type="text/event-stream")
        import asyncio

        results = await asyncio.gather(*(run(p, overrides) for p in prompts))
        return {
            "id": rid, "object": "text_completion", "created": created, "model": name,
            "choices": [{"index": i, "text": r.text, "logprobs": None, "finish_reason": _reason(r),
                         "stop_reason": r.stop_sequence} for i, r in enumerate(results)],
            "usage": _usage(*results),
        }

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest) -> Any:
        overrides = req.overrides()
        text, prefix, tool_names, overrides["grammar"] = req.render()
        engine.params(**overrides)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return StreamingResponse(_stream_chat(engine, text, prefix, overrides, rid, created, name,
                                                  req.include_usage, tool_names), media_type="text/event-stream")
        result = await run(text, overrides)
        message, reason = _assistant_message(prefix + result.text, result, tool_names)
        return {"id": rid, "object": "chat.completion", "created": created, "model": name,
                "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
                "usage": _usage(result)}

    return app


def _reason(result: Any) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(*results: Any) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_spec(tool: dict[str, Any]) -> ToolSpec:
    fn = tool.get("function", tool)
    if "name" not in fn:
        raise ConfigurationError("Each tool needs a function name.")
    return ToolSpec(fn["name"], fn.get("description", ""), fn.get("parameters") or {"type": "object",
                                                                                   "properties": {}})


def _assistant_message(text: str, result: Any, tool_names: list[str]) -> tuple[dict[str, Any], str]:
    """The chat message of a reply (``text``: forced start + generated text); tool calls parsed out."""
    if not tool_names:
        return {"role": "assistant", "content": text}, _reason(result)
    parsed = parse_tool_calls(text, tool_names)
    if not parsed.tool_calls:
        return {"role": "assistant", "content": text}, _reason(result)
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
             for c in parsed.tool_calls]
    return {"role": "assistant", "content": parsed.content or None, "tool_calls": calls}, "tool_calls"


async def _stream_completion(engine: Any, text: str, overrides: dict[str, Any], rid: str, created: int, name: str,
                             include_usage: bool) -> AsyncIterator[bytes]:
    from wizardcoder_integrations.engine.results import GenerationResult

    base = {"id": rid, "object": "text_completion", "created": created, "model": name}
    try:
        async for event in engine.astream(text, raw=True, **overrides):
            if isinstance(event, GenerationResult):
                yield _sse({**base, "choices": [{"index": 0, "text": "", "logprobs": None,
                                                 "finish_reason": _reason(event), "stop_reason": event.stop_sequence}]})
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": _usage(event)})
            elif event.text:
                yield _sse({**base, "choices": [{"index": 0, "text": event.text, "logprobs": None,
                                                 "finish_reason": None}]})
    except (GenerationError, ConfigurationError) as e:
        yield _sse({"error": {"message": str(e), "type": "generation_error"}})
        return
    yield _sse("[DONE]")


async def _stream_chat(engine: Any, text: str, prefix: str, overrides: dict[str, Any], rid: str, created: int,
                       name: str, include_usage: bool, tool_names: list[str]) -> AsyncIterator[bytes]:
    from wizardcoder_integrations.engine.results import GenerationResult

    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name}
    yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}]})
    if prefix and not tool_names:  # the forced start of a JSON answer
        yield _sse({**base, "choices": [{"index": 0, "delta": {"content": prefix}, "finish_reason": None}]})
    try:
        async for event in engine.astream(text, raw=True, **overrides):
            if isinstance(event, GenerationResult):
                message, reason = _assistant_message(prefix + event.text, event, tool_names)
                if "tool_calls" in message:
                    calls = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
                    yield _sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": calls},
                                                     "finish_reason": None}]})
                elif tool_names:  # held back while it might have been a tool call
                    yield _sse({**base, "choices": [{"index": 0, "delta": {"content": message["content"]},
                                                     "finish_reason": None}]})
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": _usage(event)})
            elif event.text and not tool_names:
                yield _sse({**base, "choices": [{"index": 0, "delta": {"content": event.text},
                                                 "finish_reason": None}]})
    except (GenerationError, ConfigurationError) as e:
        yield _sse({"error": {"message": str(e), "type": "generation_error"}})
        return
    yield _sse("[DONE]")


def serve(engine: Any, *, host: str = "127.0.0.1", port: int = 8000, served_model_name: str | None = None,
          max_pending: int = 256, graceful_timeout_s: float = 30.0, announce: Any = None) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests finish before it exits."""
    import socket

    try:
        import uvicorn
    except ImportError as e:
        raise missing_extra("serve", "uvicorn") from e
    app = create_app(engine, served_model_name=served_model_name, max_pending=max_pending)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=int(graceful_timeout_s),
                            lifespan="off")
    server = uvicorn.Server(config)
    if announce is not None:
        announce(f"http://{host}:{bound}")
    server.run(sockets=[sock])
