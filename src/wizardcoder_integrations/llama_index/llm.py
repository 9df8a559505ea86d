"""WizardCoder as a LlamaIndex LLM: a thin converter over the chat layer, truly async, prompt-based tool calls."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.extras import extra_imports

with extra_imports("llama-index", "llama_index.core"):
    from llama_index.core.base.llms.generic_utils import messages_to_prompt as generic_messages_to_prompt
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
    from llama_index.core.bridge.pydantic import Field
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from llama_index.core.llms.function_calling import FunctionCallingLLM
    from llama_index.core.llms.llm import ToolSelection, default_completion_to_prompt
    from llama_index.core.tools import BaseTool

from wizardcoder_integrations.chat.driver import Call, aevents, events
from wizardcoder_integrations.chat.render import ChatRequest, RenderedRequest, render_request
from wizardcoder_integrations.chat.reply import ReplyBuilder, is_final
from wizardcoder_integrations.chat.settings import SAMPLING_KEYS, ChatSettings, stop_strings
from wizardcoder_integrations.chat.types import Reply, new_call_id
from wizardcoder_integrations.engine.protocol import EngineEvent
from wizardcoder_integrations.engine.select import open_engine
from wizardcoder_integrations.llama_index._convert import arguments, reply_message, to_tool_specs, to_turns

__all__ = ["WizardCoder"]

#: Per-call options ``complete``/``chat`` accept: the sampling settings and ``stop``.
CALL_OPTIONS = (*SAMPLING_KEYS, "stop")
#: ReAct prompts ask the model for Thought/Action/Action Input; the agent, not the model, writes observations.
REACT_STOP = "Observation:"


class WizardCoder(ChatSettings, FunctionCallingLLM):
    """WizardCoder-Python (GPTQ) for LlamaIndex: query/chat engines and every workflow agent.

    Settings are the chat layer's (:class:`~wizardcoder_integrations.chat.ChatSettings`: ``max_tokens``,
    ``timeout``, ``max_retries``, ``base_url`` ...), the same as the LangChain classes'. Every path renders
    through the chat layer, so ``complete``, ``chat``, their streaming and async forms send the model identical
    text, and a conversation gets the same reply as through ``ChatWizardCoder`` or ``wizardcoder serve``. Tools
    are described in the prompt and parsed from the reply (``FunctionAgent``, ``AgentWorkflow``)::

        llm = WizardCoder(base_url="http://gpu-box:8000/v1", temperature=0)

    ``completion_to_prompt`` / ``messages_to_prompt`` replace the Alpaca template (as in ``HuggingFaceLLM``):
    their text is sent verbatim and the reply comes back as plain text (no tool calls with ``messages_to_prompt``).
    """

    context_window: int | None = Field(
        default=None, gt=0,
        description="Tokens of prompt plus reply (default and maximum: the model's context length); a longer "
                    "prompt is an error and the reply is cut to fit.")
    stop_on_observation: bool = Field(
        default=True, description="End a ReAct step before the model writes an 'Observation:' itself.")

    def __init__(self, **data: Any) -> None:
        if data.get("query_wrapper_prompt") is not None:
            raise ConfigurationError(
                "query_wrapper_prompt is not supported: use completion_to_prompt to build the prompt text, or "
                "system_prompt.")
        if "max_new_tokens" in data:
            raise ConfigurationError("max_new_tokens is spelt max_tokens here, as in every front door (metadata "
                                     "reports it as num_output).")
        if "num_output" in data:  # LlamaIndex's name for it (LLMMetadata.num_output)
            num_output = data.pop("num_output")
            if data.get("max_tokens") not in (None, num_output):
                raise ConfigurationError(f"num_output={num_output} and max_tokens={data['max_tokens']} disagree: "
                                         "they are the same setting; pass one of them.")
            data["max_tokens"] = num_output
        super().__init__(**data)
        if self.engine is None:
            self.engine = open_engine(self)
        self.engine.params(**self.sampling())  # engine-side checks of the settings, before any request

    @classmethod
    def class_name(cls) -> str:
        return "WizardCoder"

    @property
    def served_model(self) -> str:
        """The model name replies report (over HTTP: the server's name for it)."""
        return self.engine.model_name

    @property
    def metadata(self) -> LLMMetadata:
        """Context window (``context_window``, at most the engine's), ``num_output`` (``max_tokens``, default the
        card's) and model name from the engine (over HTTP: the server's ``/v1/models``)."""
        info = self.engine.info
        return LLMMetadata(
            context_window=min(self.context_window or info.context_length, info.context_length),
            num_output=self.engine.params(**self.sampling()).max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=not self._custom_messages_to_prompt,
            model_name=info.model,
            system_role=MessageRole.SYSTEM,
        )

    # -- completion -----------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete one instruction (``formatted=True``: ``prompt`` is sent verbatim)."""
        *_, last = self._completions(*self._completion_call(prompt, formatted, kwargs))
        return last.model_copy(update={"delta": None})

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Stream the completion of one instruction; the last chunk carries the token usage."""
        return self._completions(*self._completion_call(prompt, formatted, kwargs))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Async :meth:`complete`: the engine batches concurrent calls and never blocks the event loop."""
        last = await _last(self._acompletions(*self._completion_call(prompt, formatted, kwargs)))
        return last.model_copy(update={"delta": None})

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        return self._acompletions(*self._completion_call(prompt, formatted, kwargs))

    # -- chat -----------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation; with ``tools`` the reply may hold tool calls (``ToolCallBlock``), with
        ``response_format`` (OpenAI's ``json_object``/``json_schema``) it is one JSON object."""
        *_, last = self._chats(*self._chat_call(messages, kwargs))
        return last.model_copy(update={"delta": None})

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the reply to a conversation; tool-call markup is never streamed as text."""
        return self._chats(*self._chat_call(messages, kwargs))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        last = await _last(self._achats(*self._chat_call(messages, kwargs)))
        return last.model_copy(update={"delta": None})

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`; closing the stream cancels the request."""
        return self._achats(*self._chat_call(messages, kwargs))

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
                          tool_kwargs=arguments(b.tool_kwargs))
            for b in response.message.blocks if isinstance(b, ToolCallBlock)
        ]
        if not calls and error_on_no_tool_call:
            invalid = response.message.additional_kwargs.get("invalid_tool_calls") or []
            why = f" The model wrote {len(invalid)} malformed call(s): {invalid[0]['error']}." if invalid else ""
            raise ValueError(f"Expected at least one tool call, but got 0 tool calls.{why}")
        return calls

    # -- structured output ----------------------------------------------------------------------------
    def _structured_stream_call(self, output_cls: Any, prompt: Any, llm_kwargs: Any = None, **args: Any) -> Any:
        return self._forced_program(output_cls, prompt).stream_call(llm_kwargs=llm_kwargs, **args)

    async def _structured_astream_call(self, output_cls: Any, prompt: Any, llm_kwargs: Any = None,
                                       **args: Any) -> Any:
        return await self._forced_program(output_cls, prompt).astream_call(llm_kwargs=llm_kwargs, **args)

    def _forced_program(self, output_cls: Any, prompt: Any) -> Any:
        """The program of (a)stream_structured_predict with its call forced, as structured_predict forces it
        (LlamaIndex's streaming program leaves the choice to the model)."""
        from llama_index.core.program.function_program import FunctionCallingProgram

        return FunctionCallingProgram.from_defaults(output_cls=output_cls, prompt=prompt, llm=self,
                                                    tool_choice="required")

    # -- rendering: one function for every path -------------------------------------------------------
    @property
    def _custom_messages_to_prompt(self) -> bool:
        """Whether the caller's ``messages_to_prompt`` replaces the Alpaca template of conversations."""
        return self.messages_to_prompt not in (None, generic_messages_to_prompt)

    def render_messages(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None = None,
                        tool_choice: str | dict[str, Any] | None = "auto") -> tuple[str, str]:
        """The exact prompt text the model sees for ``messages`` (and ``tools``), and the reply's forced start.

        ``system_prompt`` is put first unless the conversation already starts with it.
        """
        if self._custom_messages_to_prompt:
            return self._custom_chat_prompt(messages, tools, None), ""
        rendered = render_request(self._chat_request(messages, tools, tool_choice))
        return rendered.prompt, rendered.prefix

    def _with_system_prompt(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        messages = list(messages)
        if not messages:
            raise ConfigurationError("chat() needs at least one message.")
        if self.system_prompt and not (messages[0].role == MessageRole.SYSTEM
                                       and messages[0].content == self.system_prompt):
            messages.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt))
        return messages

    def _chat_request(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None,
                      tool_choice: Any, response_format: dict[str, Any] | None = None) -> ChatRequest:
        specs = to_tool_specs(tools or [])
        return ChatRequest(to_turns(self._with_system_prompt(messages)), specs, tool_choice if specs else None,
                           response_format)

    def _custom_chat_prompt(self, messages: Sequence[ChatMessage], tools: Sequence[Any] | None,
                            response_format: dict[str, Any] | None) -> str:
        """The caller's ``messages_to_prompt`` text; tool calls and JSON answers need the built-in template."""
        if tools or response_format:
            raise ConfigurationError(
                "Tool calls and response_format need WizardCoder's own template, which messages_to_prompt "
                "replaces: drop messages_to_prompt, or call without tools (e.g. a ReActAgent).")
        return self.messages_to_prompt(self._with_system_prompt(messages))

    def _chat_call(self, messages: Sequence[ChatMessage],
                   kwargs: dict[str, Any]) -> tuple[Call, ReplyBuilder | None]:
        tools, tool_choice = kwargs.pop("tools", None), kwargs.pop("tool_choice", "auto")
        kwargs.pop("allow_parallel_tool_calls", None)  # applied by _validate_chat_with_tools_response
        response_format = kwargs.pop("response_format", None)
        if self._custom_messages_to_prompt:
            return self._call(self._custom_chat_prompt(messages, tools, response_format), kwargs, ()), None
        rendered = render_request(self._chat_request(messages, tools, tool_choice, response_format))
        call = self._call(rendered.prompt, kwargs, rendered.stops)
        call.overrides["grammar"] = rendered.grammar
        return call, ReplyBuilder.for_request(rendered)

    def _completion_call(self, prompt: str, formatted: bool,
                         kwargs: dict[str, Any]) -> tuple[Call, ReplyBuilder | None]:
        """A completion: verbatim text (``formatted``) passes through, as does ``completion_to_prompt(prompt)``
        when that is set; otherwise an instruction is a one-turn chat in the Alpaca template."""
        if not isinstance(prompt, str):
            raise ConfigurationError(f"complete() takes the prompt as a string, got {type(prompt).__name__}.")
        if not formatted and self.completion_to_prompt not in (None, default_completion_to_prompt):
            prompt, formatted = self.completion_to_prompt(prompt), True
        if formatted:
            return self._call(prompt, kwargs, ()), None
        rendered: RenderedRequest = render_request(
            self._chat_request([ChatMessage(role=MessageRole.USER, content=prompt)], None, None))
        return self._call(rendered.prompt, kwargs, rendered.stops), ReplyBuilder.for_request(rendered)

    def _call(self, text: str, kwargs: dict[str, Any], stops: Sequence[str]) -> Call:
        """One request: this LLM's settings, then the call's, plus the stop strings the prompt needs."""
        if "max_new_tokens" in kwargs:
            raise ConfigurationError("max_new_tokens is spelt max_tokens here, as in every front door.")
        unknown = sorted(set(kwargs) - set(CALL_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"Unknown generation argument(s) {unknown}; WizardCoder accepts {list(CALL_OPTIONS)}.")
        call_stop = stop_strings(kwargs.pop("stop", None))
        extra = [REACT_STOP] if self.stop_on_observation and _is_react_prompt(text) else []
        overrides = self.sampling(kwargs, [*call_stop, *stops, *extra])
        params = self.engine.params(**overrides)  # fail now, with the engine's message, not inside a stream
        if self.context_window is not None:
            overrides["max_new_tokens"] = min(params.max_new_tokens, self._room_for_reply(text))
        return Call(self.engine, text, overrides, timeout=self.timeout, max_retries=self.max_retries)

    def _room_for_reply(self, text: str) -> int:
        """Tokens ``context_window`` leaves for the reply to ``text``; none left is a ``ConfigurationError``."""
        assert self.context_window is not None
        used = self.engine.count_tokens(text, add_special_tokens=True)
        if used >= self.context_window:
            raise ConfigurationError(
                f"The prompt is {used} tokens but context_window is {self.context_window}, leaving no room for a "
                "reply: shorten the prompt or raise context_window.")
        return self.context_window - used

    # -- the streaming primitive: every method consumes the chat layer's driver ------------------------
    def _completions(self, call: Call, builder: ReplyBuilder | None) -> Iterator[CompletionResponse]:
        return _responses(call, _Text(builder, self.served_model).completion)

    def _acompletions(self, call: Call, builder: ReplyBuilder | None) -> AsyncIterator[CompletionResponse]:
        return _aresponses(call, _Text(builder, self.served_model).completion)

    def _chats(self, call: Call, builder: ReplyBuilder | None) -> Iterator[ChatResponse]:
        return _responses(call, _Text(builder, self.served_model).chat)

    def _achats(self, call: Call, builder: ReplyBuilder | None) -> AsyncIterator[ChatResponse]:
        return _aresponses(call, _Text(builder, self.served_model).chat)


def _responses(call: Call, convert: Callable[[EngineEvent | None], Any]) -> Iterator[Any]:
    """The responses of one call: ``convert(None)`` first (a forced prefix), then one per engine event."""
    for event in itertools.chain([None], events(call)):
        if (response := convert(event)) is not None:
            yield response


async def _aresponses(call: Call, convert: Callable[[EngineEvent | None], Any]) -> AsyncIterator[Any]:
    """Async :func:`_responses`."""
    if (first := convert(None)) is not None:
        yield first
    async for event in aevents(call):
        if (response := convert(event)) is not None:
            yield response


class _Text:
    """Engine events -> LlamaIndex responses: prose shown so far, then the final response with the usage.

    With a :class:`ReplyBuilder` (every templated path) prose and calls are the chat layer's; without one
    (``formatted=True`` completions, the caller's ``*_to_prompt`` functions) the engine's text passes through.
    """

    def __init__(self, builder: ReplyBuilder | None, model: str) -> None:
        self.builder = builder
        self.model = model
        self.shown = ""

    def _delta(self, event: EngineEvent | None) -> str:
        if self.builder is None:
            return "" if event is None or is_final(event) else event.text
        parts = self.builder.start() if event is None else self.builder.feed(event)
        return "".join(p for p in parts if isinstance(p, str))

    def completion(self, event: EngineEvent | None) -> CompletionResponse | None:
        delta = self._delta(event)
        self.shown += delta
        if event is not None and is_final(event):
            return CompletionResponse(text=self.shown, delta=delta, raw=_raw(event, self.model),
                                      additional_kwargs=_usage(event))
        return CompletionResponse(text=self.shown, delta=delta) if delta else None

    def chat(self, event: EngineEvent | None) -> ChatResponse | None:
        delta = self._delta(event)
        self.shown += delta
        if event is not None and is_final(event) and self.builder is None:
            message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=self.shown)])
            return ChatResponse(message=message, delta=delta, raw=_raw(event, self.model),
                                additional_kwargs=_usage(event))
        if event is not None and is_final(event):
            assert self.builder is not None and self.builder.reply is not None
            reply: Reply = self.builder.reply
            message = reply_message(reply)
            return ChatResponse(message=message, delta=delta + (message.content or "")[len(self.shown):],
                                raw={**_raw(event, self.model), "finish_reason": reply.finish_reason},
                                additional_kwargs=_usage(event))
        if not delta:
            return None
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=self.shown)]),
                            delta=delta)


async def _last(responses: AsyncIterator[Any]) -> Any:
    """The final response of a stream (the one with the whole text and the usage)."""
    last = None
    async for response in responses:
        last = response
    if last is None:  # pragma: no cover - the engine always ends a stream with a result
        raise GenerationError("The engine ended the stream without a result.")
    return last


def _usage(result: Any) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


def _raw(result: Any, model: str) -> dict[str, Any]:
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
    calls = message.additional_kwargs.get("tool_calls")
    if calls:
        message.additional_kwargs["tool_calls"] = calls[:1]

