"""An engine that runs the model elsewhere: any OpenAI-compatible completions server (vLLM, TGI, ``wizardcoder
serve``). The Alpaca template and stop strings are applied here, exactly as in-process; the server only
completes raw text. Needs ``httpx`` (the ``remote`` extra), not torch.

The adapters select it with one argument, ``base_url=``; :func:`shared_remote_engine` gives them one engine
(one connection pool) per server, model and key for the whole process.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from wizardcoder_integrations.chat.template import format_instruction
from wizardcoder_integrations.engine.info import EngineInfo
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.remote_grammar import (
    JsonProjection,
    ProjectedText,
    grammar_to_wire,
    json_projection,
)
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.engine.textstream import StopFilter
from wizardcoder_integrations.errors import (
    ConfigurationError,
    EngineClosedError,
    GenerationError,
    RemoteError,
    RemoteRejectedError,
    RemoteRequestRefused,
    RemoteStreamError,
    RemoteTimeoutError,
    RemoteUnavailableError,
)
from wizardcoder_integrations.extras import require
from wizardcoder_integrations.profiles import ModelProfile, get_profile, profile_for_repo

__all__ = ["RemoteEngine", "shared_remote_engine"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A server's ``Retry-After`` is honoured up to this many seconds.
MAX_RETRY_AFTER_S = 60.0
#: ``owned_by`` of ``wizardcoder serve``'s models (how the probe recognises it).
SERVE_OWNER = "wizardcoder-integrations"
GRAMMAR_FORMATS = ("auto", "serve", "vllm", "vllm-guided", "tgi", "none")
DEFAULT_CONTEXT = 16384  # WizardCoder-Python's max_position_embeddings
#: Read by the adapters when ``base_url`` / ``api_key`` are not passed.
#: Adapter settings that only mean something when the weights are loaded in this process.
LOCAL_ONLY_SETTINGS = ("revision", "device", "cache_dir", "local_files_only")

_SHARED: dict[tuple[Any, ...], RemoteEngine] = {}
_SHARED_LOCK = threading.Lock()


def _httpx() -> Any:
    return require("httpx")


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
        grammar_format: str = "auto",
        transport: Any = None,
    ) -> None:
        httpx = _httpx()
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://, got {base_url!r}.")
        if timeout <= 0 or max_retries < 0 or backoff_s < 0:
            raise ConfigurationError("timeout must be > 0, max_retries >= 0 and backoff_s >= 0.")
        if grammar_format not in GRAMMAR_FORMATS:
            raise ConfigurationError(f"grammar_format={grammar_format!r}: use one of {list(GRAMMAR_FORMATS)}.")
        self._grammar_format: str | None = None if grammar_format == "auto" else grammar_format
        self.root = _root(base_url)
        self.requested_model = model
        self._served = model
        self._config: dict[str, Any] = {"api_key": api_key, "profile": profile, "timeout": timeout,
                                        "max_retries": max_retries, "backoff_s": backoff_s,
                                        "max_connections": max_connections, "defaults": defaults,
                                        "grammar_format": grammar_format}
        self._profile: ModelProfile | None = get_profile(profile) if profile is not None else None
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.defaults = defaults if defaults is not None else SamplingParams()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout, connect=min(10.0, timeout))
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._headers = headers
        self._transport = transport  # an httpx transport (tests pass httpx.MockTransport)
        self._client = httpx.Client(base_url=self.root, headers=headers, timeout=self._timeout, limits=self._limits,
                                    transport=transport)
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._models: dict[str, Any] | None = None
        self._tokenize_shape: str | None = None  # "openai" (vLLM, wizardcoder serve), "tgi" or "local"
        self._local_tokenizer: Any = None
        self._lock = threading.RLock()
        self._closed = False

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
        if not isinstance(prompt, str):
            raise ConfigurationError(f"A prompt must be a string, got {type(prompt).__name__}.")
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

    # -- the server's kind and its grammar form -------------------------------------------------------------
    @property
    def grammar_format(self) -> str:
        """How reply grammars are sent: ``serve``, ``vllm`` (0.12+ ``structured_outputs``), ``vllm-guided``
        (``guided_json``), ``tgi`` (``/generate_stream`` with ``grammar``), ``none``, or ``unknown``.

        Unless set with ``grammar_format=``, found by probing the server once: ``/v1/models`` owned by
        ``wizardcoder-integrations`` is serve; a ``/version`` answer ``{"version": "X.Y.Z"}`` is vLLM; an
        ``/info`` answer with ``model_id`` is TGI.
        """
        with self._lock:
            if self._grammar_format is None:
                self._grammar_format = self._probe()
            return self._grammar_format

    def _probe(self) -> str:
        entry = self._model_entry()
        if entry.get("owned_by") == SERVE_OWNER:
            return "serve"
        version = self._request_json("GET", "/version", missing_ok=True)
        if isinstance(version, dict) and isinstance(version.get("version"), str):
            return "vllm" if _version_at_least(version["version"], (0, 12)) else "vllm-guided"
        info = self._request_json("GET", "/info", missing_ok=True)
        if isinstance(info, dict) and "model_id" in info:
            return "tgi"
        return "unknown"

    # -- requests -------------------------------------------------------------------------------------------
    def _plan(self, text: str, params: SamplingParams, stream: bool) -> tuple[str, dict[str, Any], Any]:
        """The path, body and reply projection (None: the reply is the server's text) of one completion."""
        grammar = params.grammar
        form = "plain" if grammar is None else self.grammar_format
        if form == "unknown":
            raise ConfigurationError(
                f"{self.root} is not recognised as wizardcoder serve, vLLM or TGI, so this request's reply grammar "
                "(a forced tool call or a JSON answer) cannot be sent in a form it enforces. Pass "
                "RemoteEngine(..., grammar_format='vllm' | 'vllm-guided' | 'tgi' | 'serve'), or 'none' to send "
                "it unconstrained.")
        projection = json_projection(grammar) if form in ("vllm", "vllm-guided", "tgi") else None
        prompt = projection.prompt(text) if projection is not None else text
        if form == "tgi":
            return "/generate_stream", self._tgi_payload(prompt, params, projection.schema), projection
        payload: dict[str, Any] = {
            "model": self.model_name, "prompt": prompt, "max_tokens": params.max_new_tokens,
            "temperature": 0.0 if params.greedy else params.temperature, "top_p": params.top_p,
            "top_k": params.top_k or -1,  # vLLM spells "no top-k" -1
            "repetition_penalty": params.repetition_penalty, "stream": stream,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(params, name, 0.0):
                payload[name] = getattr(params, name)
        if getattr(params, "logit_bias", ()):
            payload["logit_bias"] = {str(t): b for t, b in params.logit_bias}
        if stream:
            payload["stream_options"] = {"include_usage": True}
        if form == "serve":
            payload["reply_grammar"] = grammar_to_wire(grammar)  # type: ignore[arg-type]
        elif form == "vllm":
            payload["structured_outputs"] = {"json": projection.schema}  # type: ignore[union-attr]
        elif form == "vllm-guided":
            payload["guided_json"] = projection.schema  # type: ignore[union-attr]
        return "/v1/completions", payload, projection

    def _tgi_payload(self, prompt: str, params: SamplingParams, schema: dict[str, Any]) -> dict[str, Any]:
        """TGI's native ``/generate_stream`` body (the only TGI endpoint that takes a grammar for raw text)."""
        parameters: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": not params.greedy,
                                      "repetition_penalty": params.repetition_penalty, "details": True,
                                      "grammar": {"type": "json", "value": schema}}
        if not params.greedy:
            parameters["temperature"] = params.temperature
            if params.top_p < 1.0:
                parameters["top_p"] = params.top_p
            if params.top_k:
                parameters["top_k"] = params.top_k
        if params.stop:
            parameters["stop"] = list(params.stop)
        if params.seed is not None:
            parameters["seed"] = params.seed
        return {"inputs": prompt, "parameters": parameters, "stream": True}

    def _error(self, response: Any) -> RemoteRejectedError:
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            detail = (error.get("message") if isinstance(error, dict) else error) or response.text
        except (ValueError, AttributeError):
            detail = response.text
        message = f"{self.root} answered HTTP {response.status_code}: {detail}"
        if response.status_code in (400, 404, 413, 422):  # the request itself was refused: the caller's mistake
            return RemoteRequestRefused(message, response.status_code)
        return RemoteRejectedError(message, response.status_code)

    def _delay(self, attempt: int, response: Any = None) -> float:
        """Seconds before retry ``attempt + 1``: the server's ``Retry-After`` if it sent one (plus up to 10 %),
        else exponential backoff with full jitter."""
        header = None if response is None else response.headers.get("retry-after")
        if header is not None:
            try:
                wait = float(header)
            except ValueError:
                wait = None
            if wait is not None and wait >= 0:
                return min(wait, MAX_RETRY_AFTER_S) * (1.0 + 0.1 * random.random())
        return random.uniform(0.0, self.backoff_s * 2**attempt)

    def _unavailable(self, path: str, attempts: int, e: Exception) -> RemoteError:
        httpx = _httpx()
        if isinstance(e, httpx.TimeoutException):
            return RemoteTimeoutError(f"{self.root}{path} did not answer in time after {attempts} tries "
                                      f"({e.__class__.__name__}); raise timeout= or check the server.")
        return RemoteUnavailableError(f"Cannot reach {self.root}{path} after {attempts} tries: {e}")

    def _request_json(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                      missing_ok: bool = False) -> Any:
        """The JSON answer of one request, retried with backoff; ``missing_ok``: None for a 404/405/422."""
        httpx = _httpx()
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                response = self._client.request(method, path, json=body)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as e:
                if attempt == self.max_retries:
                    raise self._unavailable(path, attempt + 1, e) from e
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        if missing_ok:
                            return None
                        raise
                if missing_ok and response.status_code in (400, 404, 405, 422):
                    return None
                if response.status_code not in RETRY_STATUSES or attempt == self.max_retries:
                    raise self._error(response)
            time.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    def _broken(self, received: int, e: Exception) -> RemoteStreamError:
        return RemoteStreamError(
            f"The server at {self.root} broke the stream after {received} chunks ({e.__class__.__name__}: {e}). "
            "The completion is incomplete; retry the request.")

    def _ended(self, received: int) -> RemoteStreamError:
        return RemoteStreamError(f"The server at {self.root} ended the stream without [DONE] after {received} "
                                 "chunks; the completion is incomplete.")

    def _events(self, path: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The server's stream chunks (parsed JSON), with retries until the first byte arrives."""
        httpx = _httpx()
        for attempt in range(self.max_retries + 1):
            try:
                with self._client.stream("POST", path, json=payload) as response:
                    if response.status_code >= 400:
                        response.read()
                        if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                            time.sleep(self._delay(attempt, response))
                            continue
                        raise self._error(response)
                    received = 0
                    try:
                        for line in response.iter_lines():
                            event = self._parse(line, received)
                            if event is _DONE:
                                return
                            if event is not None:
                                received += 1
                                yield event
                    except (httpx.HTTPError, RuntimeError) as e:  # RuntimeError: the client was closed
                        self._check_open()
                        raise self._broken(received, e) from e
                    if path == "/generate_stream" and received:
                        return  # TGI's native stream has no [DONE]; its last event carries the details
                    raise self._ended(received)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt == self.max_retries:
                    raise self._unavailable(path, attempt + 1, e) from e
                time.sleep(self._delay(attempt))

    def _parse(self, line: str, received: int) -> Any:
        """One SSE line -> a completions chunk, ``_DONE`` or None; an error frame raises."""
        event = _parse_sse(line)
        if isinstance(event, dict):
            if "error" in event and not event.get("choices"):
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise RemoteStreamError(f"The server at {self.root} reported an error after {received} chunks: "
                                        f"{message}. The completion is incomplete.")
            if "token" in event and "choices" not in event:
                return _tgi_chunk(event)
        return event

    def stream(self, prompt: str, *, raw: bool = False, system: str | None = None,
               **overrides: Any) -> Iterator[StreamDelta | GenerationResult]:
        """Yield text deltas, then the :class:`GenerationResult` (token ids are not sent by servers)."""
        self._check_open()
        params = self.params(**overrides)
        text = self.render(prompt, raw=raw, system=system)
        path, payload, projection = self._plan(text, params, stream=True)
        assembler = _Assembler(params, projection)
        events = self._events(path, payload)
        try:
            for event in events:
                self._check_open()
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
            assembler.estimate_usage(self._prompt_tokens(payload.get("prompt", payload.get("inputs", text))))
        yield assembler.result()

    def generate(self, prompts: Sequence[str], *, raw: bool = False, system: str | None = None,
                 **overrides: Any) -> list[GenerationResult]:
        """Complete every prompt; requests go out concurrently and the server batches them."""
        if isinstance(prompts, str):
            raise ConfigurationError("generate() takes a list of prompts; wrap a single prompt in a list.")
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
                                       limits=self._limits, transport=self._transport)
            self._aclients[loop] = client
        return client

    async def _aevents(self, path: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        httpx = _httpx()
        client = self._aclient()
        for attempt in range(self.max_retries + 1):
            try:
                async with client.stream("POST", path, json=payload) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                            await asyncio.sleep(self._delay(attempt, response))
                            continue
                        raise self._error(response)
                    received = 0
                    try:
                        async for line in response.aiter_lines():
                            event = self._parse(line, received)
                            if event is _DONE:
                                return
                            if event is not None:
                                received += 1
                                yield event
                    except (httpx.HTTPError, RuntimeError) as e:  # RuntimeError: the client was closed
                        self._check_open()
                        raise self._broken(received, e) from e
                    if path == "/generate_stream" and received:
                        return
                    raise self._ended(received)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                if attempt == self.max_retries:
                    raise self._unavailable(path, attempt + 1, e) from e
                await asyncio.sleep(self._delay(attempt))

    async def astream(self, prompt: str, *, raw: bool = False, system: str | None = None,
                      **overrides: Any) -> AsyncIterator[StreamDelta | GenerationResult]:
        self._check_open()
        params = self.params(**overrides)
        text = self.render(prompt, raw=raw, system=system)
        path, payload, projection = await asyncio.to_thread(self._plan, text, params, True)  # may probe
        assembler = _Assembler(params, projection)
        events = self._aevents(path, payload)
        try:
            async for event in events:
                self._check_open()
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
            sent = payload.get("prompt", payload.get("inputs", text))
            assembler.estimate_usage(await asyncio.to_thread(self._prompt_tokens, sent))
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
        """Close the connections; streams still running and later calls fail with ``EngineClosedError``."""
        self._closed = True
        self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError(f"This RemoteEngine for {self.root} was closed; build a new one.")


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


def _version_at_least(version: str, least: tuple[int, ...]) -> bool:
    parts = []
    for piece in version.split(".")[: len(least)]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) >= least


def _tgi_chunk(event: dict[str, Any]) -> dict[str, Any]:
    """One event of TGI's native ``/generate_stream`` as a completions chunk."""
    token = event.get("token") or {}
    details = event.get("details") or None
    reason = None
    if details:
        reason = {"length": "length"}.get(details.get("finish_reason"), "stop")
    chunk: dict[str, Any] = {"choices": [{"text": "" if token.get("special") else token.get("text", ""),
                                          "finish_reason": reason}]}
    return chunk


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

    def __init__(self, params: SamplingParams, projection: JsonProjection | None = None) -> None:
        self.filter = StopFilter(params.stop)
        self.projected = ProjectedText(projection) if projection is not None else None
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
            out += self.filter.push(text if self.projected is None else self.projected.push(text))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if isinstance(choice.get("stop_reason"), str):  # vLLM and `wizardcoder serve` name the stop string
                self.server_stop = choice["stop_reason"]
        return out

    def finish(self) -> str:
        head = self.filter.push(self.projected.finish()) if self.projected is not None else ""
        return head + self.filter.finish()

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
