"""An engine that runs the model elsewhere: any OpenAI-compatible completions server (vLLM, TGI, ``wizardcoder
serve``). The Alpaca template and stop strings are applied here, exactly as in-process; the server only
completes raw text. Needs ``httpx`` (the ``remote`` extra), not torch.

The adapters select it with one argument, ``base_url=``; :func:`shared_remote_engine` gives them one engine
(one connection pool) per server, model and key for the whole process.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wizardcoder_integrations.engine.info import EngineInfo
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.engine.textstream import StopFilter
from wizardcoder_integrations.errors import ConfigurationError, GenerationError, missing_extra
from wizardcoder_integrations.profiles import ModelProfile, get_profile, profile_for_repo
from wizardcoder_integrations.prompt import format_instruction

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "RemoteEngine", "remote_backend", "shared_remote_engine"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_CONTEXT = 16384  # WizardCoder-Python's max_position_embeddings
#: Read by the adapters when ``base_url`` / ``api_key`` are not passed.
BASE_URL_ENV = "WIZARDCODER_BASE_URL"
API_KEY_ENV = "WIZARDCODER_API_KEY"
#: Adapter settings that only mean something when the weights are loaded in this process.
LOCAL_ONLY_SETTINGS = ("revision", "device", "cache_dir", "local_files_only")

_SHARED: dict[tuple[Any, ...], RemoteEngine] = {}
_SHARED_LOCK = threading.Lock()


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as e:
        raise missing_extra("remote", "httpx") from e
    return httpx


class RemoteEngine:
    """Same interface as :class:`~wizardcoder_integrations.engine.Engine`, over HTTP.

    ``base_url`` is the server's root (``http://host:8000`` or ``http://host:8000/v1``); ``model`` is the
    served model name (default: the first one ``/v1/models`` lists).
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        profile: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_connections: int = 256,
        defaults: SamplingParams | None = None,
    ) -> None:
        httpx = _httpx()
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://, got {base_url!r}.")
        if timeout <= 0 or max_retries < 0 or backoff_s < 0:
            raise ConfigurationError("timeout must be > 0, max_retries >= 0 and backoff_s >= 0.")
        self.root = _root(base_url)
        self.requested_model = model
        self._served = model
        self._config: dict[str, Any] = {"api_key": api_key, "profile": profile, "timeout": timeout,
                                        "max_retries": max_retries, "backoff_s": backoff_s,
                                        "max_connections": max_connections, "defaults": defaults}
        self._profile: ModelProfile | None = get_profile(profile) if profile is not None else None
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.defaults = defaults if defaults is not None else SamplingParams()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._headers = headers
        self._client = httpx.Client(base_url=self.root, headers=headers, timeout=self._timeout, limits=self._limits)
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._models: dict[str, Any] | None = None
        self._tokenize_shape: str | None = None  # "openai" (vLLM, wizardcoder serve), "tgi" or "local"
        self._local_tokenizer: Any = None
        self._lock = threading.Lock()

    def check_model(self, model: str | None) -> str | None:
        """For an adapter built on this engine: ``model`` (if given) must be the one the engine asks for, which
        is returned (None: the server's first)."""
        if model is not None and model != self.requested_model:
            raise ConfigurationError(
                f"model={model!r} but the RemoteEngine passed asks for {self.requested_model!r}: drop model=, or "
                "build the engine with RemoteEngine(base_url, model=...).")
        return self.requested_model

    def for_model(self, model: str) -> RemoteEngine:
        """The shared engine of another model on the same server, with the same settings."""
        if model == self.requested_model:
            return self
        return shared_remote_engine(self.root, model=model, **self._config)

    # -- description ----------------------------------------------------------------------------------------
    def _model_entry(self) -> dict[str, Any]:
        with self._lock:
            if self._models is None:
                self._models = self._list_models()
        entries = self._models.get("data") or []
        if self._served is None:
            if not entries:
                raise GenerationError(f"{self.root}/v1/models lists no model; pass model= explicitly.")
            self._served = entries[0]["id"]
        return next((e for e in entries if e.get("id") == self._served), {})

    def _list_models(self) -> dict[str, Any]:
        """``/v1/models``; a server without it (older TGI) is described by TGI's ``/info``."""
        models = self._request_json("GET", "/v1/models", missing_ok=True)
        if isinstance(models, dict) and "data" not in models and "id" in models:
            models = {"data": [models]}  # one model object instead of a list
        info = None
        if models is None or not any(e.get("max_model_len") or e.get("context_length") for e in models["data"]):
            info = self._request_json("GET", "/info", missing_ok=True)  # TGI: the context length is here
        if isinstance(info, dict) and "model_id" in info:
            entries = (models or {}).get("data") or [{"id": info["model_id"]}]
            return {"data": [{**e, "max_model_len": info.get("max_total_tokens")} for e in entries]}
        if models is None:
            raise GenerationError(f"{self.root} has neither /v1/models nor /info; is it an OpenAI-compatible "
                                  "server? Pass its root URL, e.g. http://host:8000/v1.")
        return models

    @property
    def model_name(self) -> str:
        if self._served is None:
            self._model_entry()
        assert self._served is not None
        return self._served

    @property
    def profile(self) -> ModelProfile | None:
        """The named profile, else the one whose GPTQ repository is the served model's name."""
        return self._profile if self._profile is not None else profile_for_repo(self.model_name)

    @property
    def info(self) -> EngineInfo:
        entry = self._model_entry()
        context = entry.get("max_model_len") or entry.get("context_length") or DEFAULT_CONTEXT
        profile = self.profile
        return EngineInfo(model=self.model_name, revision=None, profile=profile.name if profile else None,
                          device=f"remote:{self.root}", dtype="server", context_length=int(context),
                          quantization=None)

    # -- tokens ---------------------------------------------------------------------------------------------
    def render(self, prompt: str, *, raw: bool = False, system: str | None = None) -> str:
        return prompt if raw else format_instruction(prompt, system)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` (with BOS unless ``add_special_tokens=False``), as the served model reads it.

        Asks the server's ``/tokenize`` (vLLM and ``wizardcoder serve`` shape, then TGI's); a server without
        one falls back to the served model's own tokenizer loaded locally with ``transformers`` (from the
        Hugging Face cache or Hub). If neither is available, a :class:`GenerationError` says so.
        """
        shape = self._tokenize_shape
        if shape in (None, "openai"):
            data = self._request_json("POST", "/tokenize", {"model": self.model_name, "prompt": text,
                                                            "add_special_tokens": add_special_tokens},
                                      missing_ok=True)
            if isinstance(data, dict) and "tokens" in data:
                self._tokenize_shape = "openai"
                return [int(t) for t in data["tokens"]]
        if shape in (None, "tgi"):
            data = self._request_json("POST", "/tokenize", {"inputs": text, "add_special_tokens": add_special_tokens},
                                      missing_ok=True)
            if isinstance(data, list):
                self._tokenize_shape = "tgi"
                return [int(t["id"]) for t in data]
        self._tokenize_shape = "local"
        tokenizer = self._tokenizer()
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def count_tokens(self, text: str, *, add_special_tokens: bool = False) -> int:
        return len(self.tokenize(text, add_special_tokens=add_special_tokens))

    def _prompt_tokens(self, text: str) -> int:
        """Tokens of a prompt, for a reply whose usage the server did not send (0 if it cannot be counted)."""
        try:
            return len(self.tokenize(text))
        except GenerationError:
            return 0

    def _tokenizer(self) -> Any:
        """The served model's tokenizer, loaded here (only for servers without a tokenize endpoint)."""
        if self._local_tokenizer is None:
            try:
                from transformers import AutoTokenizer

                self._local_tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            except Exception as e:  # ImportError, or a model name that is not a Hub repo
                raise GenerationError(
                    f"{self.root} has no /tokenize endpoint and the tokenizer of {self.model_name!r} cannot be "
                    f"loaded locally ({e.__class__.__name__}: {e}); token counts need one of the two."
                ) from e
        return self._local_tokenizer

    def params(self, **overrides: Any) -> SamplingParams:
        return SamplingParams.build(self.defaults, **overrides)

    # -- requests -------------------------------------------------------------------------------------------
    def _payload(self, text: str, params: SamplingParams, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model_name, "prompt": text, "max_tokens": params.max_new_tokens,
            "temperature": 0.0 if params.greedy else params.temperature, "top_p": params.top_p,
            "top_k": params.top_k or -1,  # vLLM spells "no top-k" -1
            "repetition_penalty": params.repetition_penalty, "stream": stream,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _error(self, response: Any) -> GenerationError:
        try:
            detail = response.json().get("error", {}).get("message") or response.text
        except (ValueError, AttributeError):
            detail = response.text
        return GenerationError(f"{self.root} answered HTTP {response.status_code}: {detail}")

    def _request_json(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                      missing_ok: bool = False) -> Any:
        """The JSON answer of one request, retried with backoff; ``missing_ok``: None for a 404/405/422."""
        httpx = _httpx()
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client.request(method, path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as e:
                if attempt == self.max_retries:
                    raise GenerationError(f"Cannot reach {self.root}{path} after {attempt + 1} tries: {e}") from e
            else:
                if response.status_code < 400:
                    return response.json()
                if missing_ok and response.status_code in (400, 404, 405, 422):
                    return None
                if response.status_code not in RETRY_STATUSES or attempt == self.max_retries:
                    raise self._error(response)
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _events(self, text: str, params: SamplingParams) -> Iterator[dict[str, Any]]:
        """The server's stream chunks (parsed JSON), with retries until the first byte arrives."""
        httpx = _httpx()
        payload = self._payload(text, params, stream=True)
        for attempt in range(self.max_retries + 1):
            try:
                with self._client.stream("POST", "/v1/completions", json=payload) as response:
                    if response.status_code >= 400:
                        response.read()
                        if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                            time.sleep(self.backoff_s * 2**attempt)
                            continue
                        raise self._error(response)
                    received = 0
                    try:
                        for line in response.iter_lines():
                            event = _parse_sse(line)
                            if event is _DONE:
                                return
                            if event is not None:
                                received += 1
                                yield event
                    except httpx.HTTPError as e:
                        raise GenerationError(
                            f"The server at {self.root} broke the stream after {received} chunks "
                            f"({e.__class__.__name__}: {e}). The completion is incomplete; retry the request."
                        ) from e
                    raise GenerationError(f"The server at {self.root} ended the stream without [DONE] after "
                                          f"{received} chunks; the completion is incomplete.")
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt == self.max_retries:
                    raise GenerationError(f"Cannot reach {self.root} after {attempt + 1} tries: {e}") from e
                time.sleep(self.backoff_s * 2**attempt)

    def stream(self, prompt: str, *, raw: bool = False, system: str | None = None,
               **overrides: Any) -> Iterator[StreamDelta | GenerationResult]:
        """Yield text deltas, then the :class:`GenerationResult` (token ids are not sent by servers)."""
        params = self.params(**overrides)
        assembler = _Assembler(params)
        text = self.render(prompt, raw=raw, system=system)
        events = self._events(text, params)
        try:
            for event in events:
                delta = assembler.push(event)
                if delta:
                    yield StreamDelta(delta, ())
                if assembler.stopped:
                    break
        finally:
            events.close()  # closes the HTTP response: the server stops generating
        tail = assembler.finish()
        if tail:
            yield StreamDelta(tail, ())
        if not assembler.usage:
            assembler.estimate_usage(self._prompt_tokens(text))
        yield assembler.result()

    def generate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                 **overrides: Any) -> list[GenerationResult]:
        """Complete every prompt; requests go out concurrently and the server batches them."""
        if isinstance(prompts, str):
            raise GenerationError("generate() takes a list of prompts; wrap a single prompt in a list.")
        self.params(**overrides)  # validate before sending anything

        def one(p: str) -> GenerationResult:
            return _last(self.stream(p, raw=raw, system=system, **overrides))

        if len(prompts) == 1:
            return [one(prompts[0])]
        with ThreadPoolExecutor(max_workers=min(32, len(prompts))) as pool:
            return list(pool.map(one, prompts))

    # -- async ----------------------------------------------------------------------------------------------
    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            httpx = _httpx()
            client = httpx.AsyncClient(base_url=self.root, headers=self._headers, timeout=self._timeout,
                                       limits=self._limits)
            self._aclients[loop] = client
        return client

    async def _aevents(self, text: str, params: SamplingParams) -> AsyncIterator[dict[str, Any]]:
        httpx = _httpx()
        client = self._aclient()
        payload = self._payload(text, params, stream=True)
        for attempt in range(self.max_retries + 1):
            try:
                async with client.stream("POST", "/v1/completions", json=payload) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                            await asyncio.sleep(self.backoff_s * 2**attempt)
                            continue
                        raise self._error(response)
                    received = 0
                    try:
                        async for line in response.aiter_lines():
                            event = _parse_sse(line)
                            if event is _DONE:
                                return
                            if event is not None:
                                received += 1
                                yield event
                    except httpx.HTTPError as e:
                        raise GenerationError(
                            f"The server at {self.root} broke the stream after {received} chunks "
                            f"({e.__class__.__name__}: {e}). The completion is incomplete; retry the request."
                        ) from e
                    raise GenerationError(f"The server at {self.root} ended the stream without [DONE] after "
                                          f"{received} chunks; the completion is incomplete.")
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt == self.max_retries:
                    raise GenerationError(f"Cannot reach {self.root} after {attempt + 1} tries: {e}") from e
                await asyncio.sleep(self.backoff_s * 2**attempt)

    async def astream(self, prompt: str, *, raw: bool = False, system: str | None = None,
                      **overrides: Any) -> AsyncIterator[StreamDelta | GenerationResult]:
        params = self.params(**overrides)
        assembler = _Assembler(params)
        text = self.render(prompt, raw=raw, system=system)
        events = self._aevents(text, params)
        try:
            async for event in events:
                delta = assembler.push(event)
                if delta:
                    yield StreamDelta(delta, ())
                if assembler.stopped:
                    break
        finally:
            await events.aclose()
        tail = assembler.finish()
        if tail:
            yield StreamDelta(tail, ())
        if not assembler.usage:
            assembler.estimate_usage(await asyncio.to_thread(self._prompt_tokens, text))
        yield assembler.result()

    async def agenerate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                        **overrides: Any) -> list[GenerationResult]:
        async def one(p: str) -> GenerationResult:
            result = None
            async for event in self.astream(p, raw=raw, system=system, **overrides):
                result = event
            assert isinstance(result, GenerationResult)
            return result

        return list(await asyncio.gather(*(one(p) for p in prompts)))

    def close(self) -> None:
        self._client.close()


def shared_remote_engine(base_url: str, *, model: str | None = None, api_key: str | None = None,
                         profile: str | None = None, timeout: float | None = None, max_retries: int | None = None,
                         **options: Any) -> RemoteEngine:
    """The process-wide :class:`RemoteEngine` of one server, model and key (and timeout/retry settings).

    Adapters built with the same ``base_url`` share it, so they share one connection pool.
    """
    kwargs: dict[str, Any] = {"model": model, "api_key": api_key, "profile": profile, **options}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if max_retries is not None:
        kwargs["max_retries"] = max_retries
    key = (_root(base_url), *sorted((k, repr(v)) for k, v in kwargs.items()))
    with _SHARED_LOCK:
        engine = _SHARED.get(key)
        if engine is None:
            engine = _SHARED[key] = RemoteEngine(base_url, **kwargs)
        return engine


def remote_backend(base_url: str | None, api_key: str | None, *, engine: Any = None,
                   **local: Any) -> tuple[str | None, str | None]:
    """The server an adapter should use (``None``: in-process) and its API key, or a clear error.

    ``base_url`` falls back to ``$WIZARDCODER_BASE_URL`` and ``api_key`` to ``$WIZARDCODER_API_KEY`` (never to
    ``OPENAI_API_KEY``: that key is not meant for your own servers). An explicit ``engine`` wins over the
    environment; ``local`` holds the adapter's settings that only apply to loading weights in-process.
    """
    if engine is not None:
        if base_url is not None:
            raise ConfigurationError(
                "Pass base_url= or engine=, not both: base_url= builds a RemoteEngine itself. To configure one "
                "yourself, pass engine=RemoteEngine(base_url, ...) alone.")
        if api_key is not None:
            raise ConfigurationError("api_key= goes with base_url=; with engine=RemoteEngine(...) pass api_key to "
                                     "the RemoteEngine.")
        return None, None
    origin = "base_url"
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or None
        origin = f"${BASE_URL_ENV}"
    if base_url is None:
        if api_key is not None:
            raise ConfigurationError("api_key= is only used with a remote server: pass base_url= too, or drop it.")
        return None, None
    for name, value in local.items():
        if value is None or (name == "revision" and value == "main"):
            continue
        why = (f"the server decides which branch it serves: start it with --revision {value} and drop revision="
               if name == "revision" else "it only applies to loading the weights in this process; drop it")
        raise ConfigurationError(f"{name}={value!r} cannot be used with {origin}={base_url!r}: {why}.")
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    return base_url, api_key


def _root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


_DONE = object()


def _parse_sse(line: str) -> Any:
    """One SSE line -> parsed JSON, ``_DONE``, or None for comments/blank lines."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return _DONE
    return json.loads(data)


class _Assembler:
    """Turns completion chunks into stop-filtered text and a final result."""

    def __init__(self, params: SamplingParams) -> None:
        self.filter = StopFilter(params.stop)
        self.started = time.perf_counter()
        self.first: float | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {}
        self.chunks = 0  # chunks with text: one generated token each on vLLM and TGI
        self.server_stop: str | None = None

    @property
    def stopped(self) -> bool:
        return self.filter.stopped

    def push(self, event: dict[str, Any]) -> str:
        if event.get("usage"):
            self.usage = event["usage"]
        out = ""
        for choice in event.get("choices") or []:
            text = choice.get("text") or ""
            if text:
                self.chunks += 1
                if self.first is None:
                    self.first = time.perf_counter()
            out += self.filter.push(text)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if isinstance(choice.get("stop_reason"), str):  # vLLM and `wizardcoder serve` name the stop string
                self.server_stop = choice["stop_reason"]
        return out

    def finish(self) -> str:
        return self.filter.finish()

    def estimate_usage(self, prompt_tokens: int) -> None:
        """Usage when the server sent none (or the stream was closed at a stop string before it came): the
        prompt's tokens as counted by :meth:`RemoteEngine.tokenize`, one completion token per text chunk."""
        self.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": self.chunks}

    def result(self) -> GenerationResult:
        now = time.perf_counter()
        reason = "stop" if self.filter.stopped else (self.finish_reason or "stop")
        return GenerationResult(
            text=self.filter.final_text,
            prompt_tokens=int(self.usage.get("prompt_tokens", 0)),
            completion_tokens=int(self.usage.get("completion_tokens", 0)),
            finish_reason="length" if reason == "length" else "stop",
            token_ids=(),
            stop_sequence=self.filter.stop_sequence or self.server_stop,
            time_to_first_token_s=(self.first or now) - self.started,
            total_s=now - self.started,
        )


def _last(events: Iterator[StreamDelta | GenerationResult]) -> GenerationResult:
    result = None
    for event in events:
        result = event
    assert isinstance(result, GenerationResult)
    return result
