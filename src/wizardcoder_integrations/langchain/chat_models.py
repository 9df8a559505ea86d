"""WizardCoder as a LangChain chat model, with prompt-based tool calling and structured output."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict

from wizardcoder_integrations.chat.driver import Call, aevents, events
from wizardcoder_integrations.chat.render import ChatRequest, RenderedRequest, check_tool_names, render_request
from wizardcoder_integrations.chat.reply import ReplyBuilder
from wizardcoder_integrations.chat.settings import SAMPLING_KEYS, stop_strings
from wizardcoder_integrations.chat.template import TOOL_CALL_OPEN
from wizardcoder_integrations.chat.toolcalls import StreamPart, normalize_tool_choice
from wizardcoder_integrations.chat.types import InvalidToolCall, ParsedToolCall
from wizardcoder_integrations.errors import ConfigurationError, GenerationError
from wizardcoder_integrations.langchain._common import PROVIDER, WizardCoderSettings
from wizardcoder_integrations.langchain._messages import to_chat_messages
from wizardcoder_integrations.langchain._tools import to_openai_tools, to_tool_specs

__all__ = ["ChatWizardCoder"]

_CALL_OPTIONS = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "model", "stream")
StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


class ChatWizardCoder(WizardCoderSettings, BaseChatModel):
    """WizardCoder-Python (GPTQ) as a LangChain chat model.

    The history is rendered into the card's Alpaca template (system texts after the preamble, human turns
    as instructions, AI turns as responses, tool results as ``### Tool Result`` blocks). ``bind_tools``
    lists the tools in the prompt and parses ``<tool_call>`` replies into ``AIMessage.tool_calls``; a
    forced ``tool_choice`` pre-fills the start of the call. Weights load once per process, on first use;
    with ``base_url`` an OpenAI-compatible server (vLLM, TGI, ``wizardcoder serve``) generates instead, the
    template and tool calls still handled here::

        chat = ChatWizardCoder(model="TheBloke/WizardCoder-Python-13B-V1.0-GPTQ", temperature=0)
        chat = ChatWizardCoder(base_url="http://gpu-box:8000/v1", temperature=0)
        chat.bind_tools([run_python]).invoke("Compute 2**100 with the tool.")
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not silently ignored

    streaming: bool = False
    """Generate through the streaming path even for ``invoke`` (callbacks see every token)."""

    @property
    def _llm_type(self) -> str:
        return "wizardcoder-chat"

    # -- tokens -------------------------------------------------------------------------------------------
    def get_num_tokens_from_messages(self, messages: list[BaseMessage],
                                     tools: Sequence[Any] | None = None) -> int:
        """Tokens of the whole rendered prompt (template, tools, BOS): what the model reads; with
        ``custom_get_token_ids``, that function's count of the rendered prompt."""
        rendered = render_request(self._chat_request(messages, None, {"tools": tools} if tools else {}))
        if self.custom_get_token_ids is not None:
            return len(self.custom_get_token_ids(rendered.prompt))
        return len(self.load_engine().tokenize(rendered.prompt))

    # -- generation: one streaming primitive, everything else derived ------------------------------------
    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
                ) -> Iterator[ChatGenerationChunk]:
        call, chunks = self._call(messages, stop, kwargs)
        yield from chunks.start()
        for event in events(call):
            yield from chunks.feed(event)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any,
                       ) -> AsyncIterator[ChatGenerationChunk]:
        call, chunks = self._call(messages, stop, kwargs)
        for chunk in chunks.start():
            yield chunk
        async for event in aevents(call):
            for chunk in chunks.feed(event):
                yield chunk

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        chunks = []
        for chunk in self._stream(messages, stop, **kwargs):
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            chunks.append(chunk)
        return _aggregate(chunks)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        chunks = []
        async for chunk in self._astream(messages, stop, **kwargs):
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            chunks.append(chunk)
        return _aggregate(chunks)

    def _call(self, messages: list[BaseMessage], stop: list[str] | None,
              kwargs: dict[str, Any]) -> tuple[Call, _ReplyChunks]:
        """What one call sends the engine, and the converter of its reply into chunks."""
        request = self._chat_request(messages, stop, kwargs)
        rendered = render_request(request)
        model = kwargs.get("model")
        overrides = {**self.sampling(kwargs, rendered.stops), "grammar": rendered.grammar}
        call = Call(self.load_engine(model), rendered.prompt, overrides, timeout=self.timeout,
                    max_retries=self.max_retries)
        return call, _ReplyChunks(ReplyBuilder.for_request(rendered), self.served_model(model))

    def render(self, messages: list[BaseMessage], **kwargs: Any) -> RenderedRequest:
        """What the model is sent for ``messages`` with per-call options (``tools``, ``tool_choice``, ...)."""
        return render_request(self._chat_request(messages, kwargs.pop("stop", None), kwargs))

    def _chat_request(self, messages: list[BaseMessage], stop: list[str] | None,
                      kwargs: dict[str, Any]) -> ChatRequest:
        """The framework-neutral request of one call (LangChain messages, tools and options converted)."""
        unknown = sorted(set(kwargs) - {*_CALL_OPTIONS, *SAMPLING_KEYS})
        if unknown:
            raise ConfigurationError(
                f"Unknown option(s) {unknown} for ChatWizardCoder; per-call options are "
                f"{sorted({*_CALL_OPTIONS, *SAMPLING_KEYS} - {'stream'})}."
            )
        return ChatRequest(to_chat_messages(messages), to_tool_specs(kwargs.get("tools") or []),
                           kwargs.get("tool_choice"), kwargs.get("response_format"), tuple(stop_strings(stop)),
                           parallel_tool_calls=kwargs.get("parallel_tool_calls") is not False)

    # -- tools and structured output ----------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model (their schemas go into the prompt).

        ``tool_choice``: ``"auto"`` (default), ``"any"``/``"required"``/``True`` (must call one),
        ``"none"``, or a tool name (must call that one; the reply starts inside that call).
        ``parallel_tool_calls=False`` keeps only the first call of a reply. ``strict`` is accepted for
        compatibility: arguments are parsed as JSON and checked by the tool (or output parser) itself.
        """
        formatted = to_openai_tools(tools)
        specs = to_tool_specs(formatted)
        check_tool_names(specs)
        names = [spec.name for spec in specs]
        if tool_choice is not None:
            normalize_tool_choice(tool_choice, names)  # fails early on an unknown choice
        options: dict[str, Any] = {"tools": formatted, **kwargs}
        if tool_choice is not None:
            options["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            options["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(**options)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: StructuredMethod = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers parsed into ``schema`` (pydantic class, TypedDict or JSON schema).

        ``method="function_calling"`` forces a call of a tool shaped like ``schema`` (the reply starts
        inside it); ``"json_schema"`` asks for one JSON object matching the schema, ``"json_mode"`` for
        one JSON object (describe the keys in the prompt); both start the reply with ``{``.
        """
        if kwargs:
            raise ConfigurationError(f"Unexpected argument(s) {sorted(kwargs)} for with_structured_output.")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, AIMessage]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = to_openai_tools([schema])[0]["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=trace)
            parser = RunnableLambda(_require_tool_call) | (
                PydanticToolsParser(tools=[schema], first_tool_only=True) if is_pydantic  # type: ignore[list-item]
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True))
        elif method in ("json_schema", "json_mode"):
            response_format: dict[str, Any] = {"type": "json_object"}
            if method == "json_schema":
                spec = to_tool_specs([schema])[0]
                response_format = {"type": "json_schema", "json_schema": {"name": spec.name,
                                                                           "schema": spec.parameters}}
            llm = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise ConfigurationError(
                f"Unknown method {method!r}: use 'function_calling', 'json_schema' or 'json_mode'."
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def _require_tool_call(message: AIMessage) -> AIMessage:
    """Pass a reply on to the tool parser, or raise when its forced call came out malformed."""
    if not message.tool_calls and message.invalid_tool_calls:
        bad = message.invalid_tool_calls[0]
        raise OutputParserException(
            f"The reply's {bad.get('name')!r} call could not be parsed: {bad.get('error')}",
            llm_output=str(bad.get("args")),
        )
    return message


class _ReplyChunks:
    """The chat layer's reply parts -> LangChain chunks: prose as it comes, each tool call once it is closed."""

    def __init__(self, builder: ReplyBuilder, model_name: str) -> None:
        self.builder = builder
        self.model_name = model_name
        self.calls = 0

    def start(self) -> list[ChatGenerationChunk]:
        return self._chunks(self.builder.start())

    def feed(self, event: Any) -> list[ChatGenerationChunk]:
        chunks = self._chunks(self.builder.feed(event))
        reply = self.builder.reply
        if reply is None:
            return chunks
        metadata = {"model_name": self.model_name, "model_provider": PROVIDER,
                    "finish_reason": reply.finish_reason, "stop_sequence": reply.stop_sequence}
        usage = UsageMetadata(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens,
                              total_tokens=reply.usage.total_tokens)
        errors = {c.id: c.error for c in reply.invalid_tool_calls}
        shown = {**metadata, "invalid_tool_call_errors": errors} if errors else metadata
        last = AIMessageChunk(content="", usage_metadata=usage, response_metadata=shown, chunk_position="last")
        return [*chunks, ChatGenerationChunk(message=last, generation_info=dict(metadata))]

    def _chunks(self, parts: list[StreamPart]) -> list[ChatGenerationChunk]:
        chunks = []
        for part in parts:
            if isinstance(part, str):
                chunks.append(ChatGenerationChunk(message=AIMessageChunk(content=part)))
            else:
                chunks.append(ChatGenerationChunk(message=AIMessageChunk(
                    content="", tool_call_chunks=[self._call_chunk(part)])))
                self.calls += 1
        return chunks

    def _call_chunk(self, call: ParsedToolCall | InvalidToolCall) -> Any:
        if isinstance(call, ParsedToolCall):
            args = json.dumps(call.arguments, ensure_ascii=False)
        else:
            # The call as the model wrote it: never valid JSON, so LangChain files it as an invalid call.
            args = f"{TOOL_CALL_OPEN}\n{call.raw}"
        return tool_call_chunk(name=call.name, args=args, id=call.id, index=self.calls)


def _aggregate(chunks: list[ChatGenerationChunk]) -> ChatResult:
    """One result from a reply's chunks; invalid tool calls get the reason they are invalid."""
    if not chunks:
        raise GenerationError("The engine returned no output for this request.")
    result = generate_from_stream(iter(chunks))
    message = result.generations[0].message
    if isinstance(message, AIMessage):
        errors = message.response_metadata.pop("invalid_tool_call_errors", {})
        for call in message.invalid_tool_calls:
            call["error"] = errors.get(call.get("id") or "")
    return result
