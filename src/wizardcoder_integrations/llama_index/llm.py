"""WizardCoder as a LlamaIndex LLM: the card's template in every path, truly async, prompt-based tool calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing, closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wizardcoder_integrations.errors import ConfigurationError, GenerationError, missing_extra

try:
    from llama_index.core.base.llms.types import (
        ChatMessage,
        ChatResponse,
        ChatResponseAsyncGen,
        ChatResponseGen,
        CompletionResponse,
        CompletionResponseAsyncGen,
        CompletionResponseGen,
        LLMMetadata,
        MessageRole,
        TextBlock,
        ToolCallBlock,
    )
    from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from llama_index.core.llms.function_calling import FunctionCallingLLM
    from llama_index.core.llms.llm import ToolSelection
    from llama_index.core.tools import BaseTool
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise missing_extra("llama-index", getattr(e, "name", None) or "llama-index-core") from e

from wizardcoder_integrations.engine.remote import (
    LOCAL_ONLY_SETTINGS,
    RemoteEngine,
    remote_backend,
    shared_remote_engine,
)
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.grammar import ReplyGrammar
from wizardcoder_integrations.profiles import DEFAULT_MODEL
from wizardcoder_integrations.prompt import ChatMessage as Turn
from wizardcoder_integrations.prompt import ToolCallRecord
from wizardcoder_integrations.toolcalls import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TOOL_RESULT_STOP,
    InvalidToolCall,
    ParsedToolCall,
    ToolCallStream,
    ToolSpec,
    new_call_id,
    render_reply,
)

if TYPE_CHECKING:
    from wizardcoder_integrations.engine import Engine

__all__ = ["WizardCoder"]

#: Per-call generation settings ``complete``/``chat`` accept (``max_tokens`` is an alias of ``max_new_tokens``).
GENERATION_KWARGS = ("temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "do_sample",
                     "stop", "seed")
#: The model must end its turn, never write the next user turn or a tool's result itself.
TURN_STOPS = ("\n### Instruction:", "\n### Response:", TOOL_RESULT_STOP)
#: ReAct prompts ask the model for Thought/Action/Action Input; the agent, not the model, writes observations.
REACT_STOP = "Observation:"

_ROLES = {
    MessageRole.SYSTEM: "system", MessageRole.DEVELOPER: "system", MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant", MessageRole.MODEL: "assistant", MessageRole.CHATBOT: "assistant",
    MessageRole.TOOL: "tool", MessageRole.FUNCTION: "tool",
}


class WizardCoder(FunctionCallingLLM):
    """WizardCoder-Python (GPTQ) for LlamaIndex: query/chat engines and every workflow agent.

    Every path renders the card's Alpaca template through one function, so ``complete``, ``chat``, their
    streaming and async forms send the model identical text. Tools are described in the prompt and parsed
    from the reply, which makes the model usable by ``FunctionAgent`` and ``AgentWorkflow``. Pass
    ``base_url`` to generate on an OpenAI-compatible server (vLLM, TGI, ``wizardcoder serve``), or ``engine``
    (an ``Engine`` or ``RemoteEngine``) to share a model already loaded, e.g. with the LangChain classes;
    otherwise :meth:`Engine.load` loads ``model`` at ``revision`` once per process::

        llm = WizardCoder(base_url="http://gpu-box:8000/v1", temperature=0)
    """

    model: str = Field(default=DEFAULT_MODEL, description=(
        "Hub repository id or local directory of the model; with base_url, the served model's name "
        "(default: the first one the server lists)."))
    base_url: str | None = Field(default=None, description=(
        "OpenAI-compatible server to generate on instead of loading weights, e.g. http://host:8000/v1 "
        "(default: $WIZARDCODER_BASE_URL, else in-process)."))
    api_key: str | None = Field(default=None, exclude=True, repr=False,
                                description="Bearer token for base_url (default: $WIZARDCODER_API_KEY).")
    timeout: float | None = Field(default=None, gt=0.0, description=(
        "With base_url: seconds any one network wait may take (connect, first token, each chunk; default 120)."))
    max_retries: int | None = Field(default=None, ge=0, description=(
        "With base_url: retries of connection errors and 429/5xx answers, with exponential backoff (default 3)."))
    revision: str | None = Field(default=None, description="GPTQ branch of the repository (None: 'main').")
    profile: str | None = Field(default=None, description="Model profile name, when the repo is not known.")
    device: str | None = Field(default=None, description="Torch device ('cuda', 'cpu', ...; None: best).")
    cache_dir: str | None = Field(default=None, description="Hugging Face cache directory.")
    local_files_only: bool | None = Field(default=None, description="Never download; use the cache only.")
    temperature: float | None = Field(default=None, ge=0.0, description="Sampling temperature (0: greedy).")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(default=None, ge=0, description="Sample among the k likeliest tokens (0: all).")
    repetition_penalty: float | None = Field(default=None, gt=0.0, description="CTRL repetition penalty.")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Most tokens one reply may have.")
    do_sample: bool | None = Field(default=None, description="Sample (True) or decode greedily (False).")
    seed: int | None = Field(default=None, description="Seed of each request's own random generator.")
    stop: list[str] = Field(default_factory=list, description="Extra strings that end every reply.")
    stop_on_observation: bool = Field(
        default=True, description="End a ReAct step before the model writes an 'Observation:' itself.")

    _engine: Engine | RemoteEngine = PrivateAttr()

    def __init__(self, *, engine: Engine | RemoteEngine | None = None, **data: Any) -> None:
        base_url, api_key = remote_backend(data.get("base_url"), data.get("api_key"), engine=engine,
                                           **{name: data.get(name) for name in LOCAL_ONLY_SETTINGS})
        data.update(base_url=base_url, api_key=api_key)
        if base_url is None and (data.get("timeout") is not None or data.get("max_retries") is not None):
            fix = "set them on the RemoteEngine you pass" if isinstance(engine, RemoteEngine) else "drop them"
            raise ConfigurationError(f"timeout= and max_retries= apply to a remote server: pass base_url= with "
                                     f"them, or {fix}.")
        if isinstance(engine, RemoteEngine):
            if (served := engine.check_model(data.get("model"))) is not None:
                data["model"] = served
        elif engine is not None:
            if data.get("model") not in (None, engine.model_name):
                raise ConfigurationError(
                    f"model={data['model']!r} but the engine passed holds {engine.model_name!r}: "
                    "drop one of them.")
            data["model"] = engine.model_name
            data.setdefault("revision", engine.info.revision)
        for name in ("messages_to_prompt", "completion_to_prompt", "query_wrapper_prompt"):
            if data.get(name) is not None:
                raise ConfigurationError(
                    f"{name} is not supported: WizardCoder renders the card's Alpaca template itself in every "
                    "path. Use system_prompt, or complete(text, formatted=True) to send text verbatim.")
        super().__init__(**data)
        if engine is None and self.base_url is not None:
            served = self.model if "model" in data else None
            engine = shared_remote_engine(self.base_url, model=served, api_key=self.api_key, profile=self.profile,
                                          timeout=self.timeout, max_retries=self.max_retries)
        elif engine is None:
            from wizardcoder_integrations.engine import Engine

            engine = Engine.load(self.model, self.revision, profile=self.profile, device=self.device,
                                 cache_dir=self.cache_dir, local_files_only=self.local_files_only)
        self._engine = engine
        self._engine.params(**self._defaults())  # engine-side checks of the settings, before any request

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: list[str]) -> list[str]:
        if any(not isinstance(s, str) or s == "" for s in value):
            raise ValueError("stop strings must be non-empty strings")
        return value

    @classmethod
    def class_name(cls) -> str:
        return "WizardCoder"

    @property
    def engine(self) -> Engine | RemoteEngine:
        """The shared engine that generates for this LLM (pass it to other adapters to reuse the model)."""
        return self._engine

    @property
    def served_model(self) -> str:
        """The model name replies report: the server's name for it over HTTP, else ``model``."""
        return self._engine.model_name if isinstance(self._engine, RemoteEngine) else self.model

    @property
    def metadata(self) -> LLMMetadata:
        """Context window and model name from the engine (over HTTP: the server's ``/v1/models``)."""
        info = self._engine.info
        return LLMMetadata(
            context_window=info.context_length,
            num_output=self._engine.params(**self._defaults()).max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=info.model,
            system_role=MessageRole.SYSTEM,
        )

    # -- completion -----------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete one instruction (``formatted=True``: ``prompt`` is sent verbatim)."""
        *_, last = self._completions(*self._prepare_completion(prompt, formatted, kwargs))
        return last.model_copy(update={"delta": None})

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Stream the completion of one instruction; the last chunk carries the token usage."""
        return self._completions(*self._prepare_completion(prompt, formatted, kwargs))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Async :meth:`complete`: the engine batches concurrent calls and never blocks the event loop."""
        last = await _last(self._acompletions(*self._prepare_completion(prompt, formatted, kwargs)))
        return last.model_copy(update={"delta": None})

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        return self._acompletions(*self._prepare_completion(prompt, formatted, kwargs))

    # -- chat -----------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation; with ``tools`` the reply may hold tool calls (``ToolCallBlock``)."""
        *_, last = self._chats(self._prepare_chat(messages, kwargs))
        return last.model_copy(update={"delta": None})

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the reply to a conversation; tool-call markup is never streamed as text."""
        return self._chats(self._prepare_chat(messages, kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        last = await _last(self._achats(self._prepare_chat(messages, kwargs)))
        return last.model_copy(update={"delta": None})

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`; closing the stream cancels the request."""
        return self._achats(self._prepare_chat(messages, kwargs))

    # -- function calling -----------------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments of a conversation that may call ``tools``."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        if tool_choice is None:
            tool_choice = "required" if tool_required else "auto"
        return {"messages": messages, "tools": list(tools), "tool_choice": tool_choice,
                "allow_parallel_tool_calls": allow_parallel_tool_calls, **kwargs}

    def _validate_chat_with_tools_response(self, response: ChatResponse, tools: Sequence[BaseTool],
                                           allow_parallel_tool_calls: bool = False,
                                           **kwargs: Any) -> ChatResponse:
        if not allow_parallel_tool_calls:
            _keep_first_call(response.message)
        return response

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> list[ToolSelection]:
        """The tool calls of a reply, as LlamaIndex's agents run them."""
        calls = [
            ToolSelection(tool_id=b.tool_call_id or new_call_id(), tool_name=b.tool_name,
                          tool_kwargs=_arguments(b.tool_kwargs))
            for b in response.message.blocks if isinstance(b, ToolCallBlock)
        ]
        if not calls and error_on_no_tool_call:
            invalid = response.message.additional_kwargs.get("invalid_tool_calls") or []
            why = f" The model wrote {len(invalid)} malformed call(s): {invalid[0]['error']}." if invalid else ""
            raise ValueError(f"Expected at least one tool call, but got 0 tool calls.{why}")
        return calls

    # -- rendering: one function for every path -------------------------------------------------------
    def render_messages(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None = None,
                        tool_choice: str | dict[str, Any] | None = "auto") -> tuple[str, str]:
        """The exact prompt text the model sees for ``messages`` (and ``tools``), and the reply's forced start.

        ``system_prompt`` is put first unless the conversation already starts with it.
        """
        return self._render_reply(messages, _tool_specs(tools or []), tool_choice)[:2]

    def _render_reply(self, messages: Sequence[ChatMessage], specs: list[ToolSpec],
                      tool_choice: str | dict[str, Any] | None) -> tuple[str, str, ReplyGrammar | None]:
        """As :meth:`render_messages`, plus the grammar that keeps a forced tool call valid."""
        messages = list(messages)
        if self.system_prompt and not (messages and messages[0].role == MessageRole.SYSTEM
                                       and messages[0].content == self.system_prompt):
            messages.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt))
        return render_reply(_to_turns(messages), specs, _tool_choice(tool_choice) if specs else None)

    def _prepare_completion(self, prompt: str, formatted: bool,
                            kwargs: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        if not isinstance(prompt, str):
            raise GenerationError(f"complete() takes the prompt as a string, got {type(prompt).__name__}.")
        if formatted:
            text = prompt
        else:
            text, _ = self.render_messages([ChatMessage(role=MessageRole.USER, content=prompt)])
        return text, self._overrides(text, kwargs, templated=not formatted), not formatted

    def _prepare_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> _ChatRequest:
        if not messages:
            raise GenerationError("chat() needs at least one message.")
        tools, tool_choice = kwargs.pop("tools", None), kwargs.pop("tool_choice", "auto")
        kwargs.pop("allow_parallel_tool_calls", None)  # applied by _validate_chat_with_tools_response
        specs = _tool_specs(tools or [])
        text, prefix, grammar = self._render_reply(messages, specs, tool_choice)
        overrides = {**self._overrides(text, kwargs, templated=True), "grammar": grammar}
        return _ChatRequest(text, prefix, [spec.name for spec in specs] or None, overrides)

    def _defaults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in GENERATION_KWARGS if name != "stop"}

    def _overrides(self, text: str, kwargs: dict[str, Any], *, templated: bool) -> dict[str, Any]:
        """Settings of one request: this LLM's, then the call's, plus the stop strings the prompt needs."""
        if "max_tokens" in kwargs:
            if kwargs.get("max_new_tokens") is not None:
                raise ConfigurationError("Pass max_new_tokens or its alias max_tokens, not both.")
            kwargs["max_new_tokens"] = kwargs.pop("max_tokens")
        unknown = sorted(set(kwargs) - set(GENERATION_KWARGS))
        if unknown:
            raise ConfigurationError(
                f"Unknown generation argument(s) {unknown}; WizardCoder accepts {list(GENERATION_KWARGS)} "
                "(and max_tokens as an alias of max_new_tokens).")
        call_stop = kwargs.pop("stop", None)
        call_stop = [call_stop] if isinstance(call_stop, str) else list(call_stop or [])
        stops = [*self.stop, *call_stop]
        if templated:
            stops.extend(TURN_STOPS)
        if self.stop_on_observation and _is_react_prompt(text):
            stops.append(REACT_STOP)
        overrides = {**self._defaults(), **{k: v for k, v in kwargs.items() if v is not None},
                     "stop": list(dict.fromkeys(stops))}
        self._engine.params(**overrides)  # fail now, with the engine's message, not inside a stream
        return overrides

    # -- the streaming primitive: every method consumes engine.stream / engine.astream ----------------
    def _completions(self, text: str, overrides: dict[str, Any], templated: bool) -> Iterator[CompletionResponse]:
        reply = _Reply("", None, templated=templated)
        with closing(self._engine.stream(text, raw=True, **overrides)) as events:
            for event in events:
                if isinstance(event, GenerationResult):
                    yield reply.completion_end(event, self.served_model)
                elif (delta := reply.add(event)) is not None:
                    yield CompletionResponse(text=reply.shown, delta=delta)

    async def _acompletions(self, text: str, overrides: dict[str, Any],
                            templated: bool) -> AsyncIterator[CompletionResponse]:
        reply = _Reply("", None, templated=templated)
        async with aclosing(self._engine.astream(text, raw=True, **overrides)) as events:
            async for event in events:
                if isinstance(event, GenerationResult):
                    yield reply.completion_end(event, self.served_model)
                elif (delta := reply.add(event)) is not None:
                    yield CompletionResponse(text=reply.shown, delta=delta)

    def _chats(self, request: _ChatRequest) -> Iterator[ChatResponse]:
        reply = _Reply(request.prefix, request.tool_names)
        with closing(self._engine.stream(request.text, raw=True, **request.overrides)) as events:
            for event in events:
                if isinstance(event, GenerationResult):
                    yield reply.chat_end(event, self.served_model)
                elif (delta := reply.add(event)) is not None:
                    yield ChatResponse(message=_assistant(reply.shown), delta=delta)

    async def _achats(self, request: _ChatRequest) -> AsyncIterator[ChatResponse]:
        reply = _Reply(request.prefix, request.tool_names)
        async with aclosing(self._engine.astream(request.text, raw=True, **request.overrides)) as events:
            async for event in events:
                if isinstance(event, GenerationResult):
                    yield reply.chat_end(event, self.served_model)
                elif (delta := reply.add(event)) is not None:
                    yield ChatResponse(message=_assistant(reply.shown), delta=delta)


@dataclass(frozen=True)
class _ChatRequest:
    """A rendered chat request: prompt text, forced reply start, tool names (None: no tools), settings."""

    text: str
    prefix: str
    tool_names: list[str] | None
    overrides: dict[str, Any]


class _Reply:
    """One reply being decoded: prose shown so far (tool-call markup held back), then the final response.

    Templated replies go through the shared :class:`ToolCallStream` (whitespace around the reply and its
    calls dropped, exactly as the LangChain adapter does); verbatim completions pass through unchanged.
    """

    def __init__(self, prefix: str, tool_names: list[str] | None, *, templated: bool = True) -> None:
        self.parser = ToolCallStream(None, parse_calls=tool_names is not None) if templated else None
        self.text = ""  # what the engine generated
        self.shown = ""
        self.calls: list[ParsedToolCall] = []
        self.invalid: list[InvalidToolCall] = []
        self._after_call = False
        if prefix:
            self._take(prefix)

    def _take(self, text: str) -> str:
        if self.parser is None:
            return text
        return self._parts(self.parser.feed(text))

    def _parts(self, parts: list[Any]) -> str:
        out = ""
        for part in parts:
            if isinstance(part, str):
                out += ("\n" if self._after_call and (self.shown or out) else "") + part
                self._after_call = False
            else:
                (self.calls if isinstance(part, ParsedToolCall) else self.invalid).append(part)
                self._after_call = True
        return out

    def add(self, event: StreamDelta) -> str | None:
        """Take a stream delta; return the new text to show (None if nothing new is certain yet)."""
        self.text += event.text
        delta = self._take(event.text)
        if not delta:
            return None
        self.shown += delta
        return delta

    def _finish(self, result: GenerationResult) -> str:
        """The rest of the prose once the reply is complete."""
        rest = ""
        if result.text.startswith(self.text) and len(result.text) > len(self.text):  # pragma: no cover
            rest = self._take(result.text[len(self.text):])
        if self.parser is not None:
            rest += self._parts(self.parser.close())
        self.shown += rest
        return rest

    def completion_end(self, result: GenerationResult, model: str) -> CompletionResponse:
        delta = self._finish(result)
        return CompletionResponse(text=self.shown, delta=delta, raw=_raw(result, model),
                                  additional_kwargs=_usage(result))

    def chat_end(self, result: GenerationResult, model: str) -> ChatResponse:
        delta = self._finish(result)
        content = self.shown
        if self.invalid:  # keep what the model wrote, so the agent (and the user) can see the mistake
            written = "\n".join(f"{TOOL_CALL_OPEN}\n{c.raw}\n{TOOL_CALL_CLOSE}" for c in self.invalid)
            content = f"{content}\n{written}" if content else written
            delta += content[len(self.shown):]
        message = _assistant(content, [
            ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments) for c in self.calls
        ])
        if self.invalid:
            message.additional_kwargs["invalid_tool_calls"] = [
                {"id": c.id, "name": c.name, "raw": c.raw, "error": c.error} for c in self.invalid
            ]
        return ChatResponse(message=message, delta=delta, raw=_raw(result, model),
                            additional_kwargs=_usage(result))


async def _last(events: AsyncIterator[Any]) -> Any:
    """The final response of a stream (the one with the whole text and the usage)."""
    last = None
    async for event in events:
        last = event
    if last is None:  # pragma: no cover - the engine always ends a stream with a result
        raise GenerationError("The engine ended the stream without a result.")
    return last


def _assistant(text: str, calls: Sequence[ToolCallBlock] = ()) -> ChatMessage:
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=text), *calls])


def _usage(result: GenerationResult) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.total_tokens}


def _raw(result: GenerationResult, model: str) -> dict[str, Any]:
    """What the engine returned, with usage where LlamaIndex's token counter looks for it."""
    return {
        "model": model,
        "text": result.text,
        "usage": _usage(result),
        "finish_reason": result.finish_reason,
        "stop_sequence": result.stop_sequence,
        "time_to_first_token_s": result.time_to_first_token_s,
        "total_s": result.total_s,
    }


def _is_react_prompt(text: str) -> bool:
    """Whether a prompt is a ReAct agent's: it asks for 'Action Input:' lines answered by 'Observation:'."""
    return "Action Input:" in text and "Observation:" in text


def _to_turns(messages: Sequence[ChatMessage]) -> list[Turn]:
    """LlamaIndex messages as the prompt module's turns (tool calls and tool names kept)."""
    names: dict[str, str] = {}
    turns = []
    for message in messages:
        role = _ROLES.get(message.role)
        if role is None:
            raise GenerationError(f"Unknown chat role {message.role!r}: use system, user, assistant or tool.")
        texts: list[str] = []
        calls: list[ToolCallRecord] = []
        for block in message.blocks:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolCallBlock):
                calls.append(ToolCallRecord(block.tool_name, _arguments(block.tool_kwargs), block.tool_call_id))
            elif block.block_type not in ("thinking", "cache"):
                raise GenerationError(
                    f"WizardCoder reads text only, but a {role} message holds a {block.block_type!r} block. "
                    "Pass its content as text.")
        extra = message.additional_kwargs
        calls.extend(_legacy_calls(extra.get("tool_calls")))
        for call in calls:
            if call.id:
                names[call.id] = call.name
        call_id = extra.get("tool_call_id")
        name = extra.get("name") or extra.get("tool_name") or (names.get(call_id) if call_id else None)
        turns.append(Turn(role, "\n".join(texts), tuple(calls), name if role == "tool" else None,  # type: ignore[arg-type]
                          call_id))
    return turns


def _legacy_calls(raw: Any) -> list[ToolCallRecord]:
    """Tool calls kept OpenAI-style in ``additional_kwargs['tool_calls']`` by other integrations."""
    calls = []
    for item in raw or []:
        data = item if isinstance(item, dict) else getattr(item, "model_dump", lambda: {})()
        fn = data.get("function") or data
        if isinstance(fn, dict) and fn.get("name"):
            calls.append(ToolCallRecord(fn["name"], _arguments(fn.get("arguments", {})), data.get("id")))
    return calls


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


def _tool_specs(tools: Sequence[Any]) -> list[ToolSpec]:
    specs = []
    for tool in tools:
        if isinstance(tool, ToolSpec):
            specs.append(tool)
        elif isinstance(tool, BaseTool):
            meta = tool.metadata
            specs.append(ToolSpec(meta.get_name(), meta.description, meta.get_parameters_dict()))
        else:
            raise ConfigurationError(
                f"tools must be LlamaIndex tools (FunctionTool, ...) or ToolSpec, got {type(tool).__name__}.")
    return specs


def _tool_choice(choice: str | dict[str, Any] | None) -> str:
    """'auto', 'none', 'required'/'any' or a tool name, from LlamaIndex's and OpenAI's spellings."""
    if choice is None:
        return "auto"
    if isinstance(choice, dict):
        fn = choice.get("function") or choice
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
        raise ConfigurationError(f"tool_choice {choice!r} names no tool: use {{'name': '<tool name>'}}.")
    return choice


def _keep_first_call(message: ChatMessage) -> None:
    """Drop every tool call after the first (when the caller asked for one call at a time)."""
    seen = False
    kept = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            if seen:
                continue
            seen = True
        kept.append(block)
    message.blocks = kept
