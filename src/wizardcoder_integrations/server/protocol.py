"""The OpenAI request bodies serve understands, and their conversion to the chat layer and sampling settings.

Every field of today's OpenAI API is either honoured or refused with a 400 that names it: unknown fields are
refused by validation (``extra="forbid"``); known fields that the model cannot honour are refused by
:meth:`check`. A few fields only identify the caller (``user``, ``safety_identifier``, ``prompt_cache_key``)
and change no reply; they are accepted. docs/remote.md has the table.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wizardcoder_integrations.chat import ChatMessage, ChatRequest, ToolCallRecord, ToolSpec
from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.server.errors import InvalidRequest

__all__ = ["ChatBody", "CompletionBody"]

MAX_N = 16


def engine_supports(field: str) -> bool:
    """Whether the engine's sampling settings have ``field`` (log-probabilities, OpenAI's penalties and logit
    bias come with the batched sampler); a request that needs one the engine lacks is refused by name."""
    return field in SamplingParams.model_fields


def _needs(field: str, param: str) -> None:
    if not engine_supports(field):
        raise InvalidRequest(f"{param} is not supported by this server's engine (it has no {field!r} setting).",
                             param, code="unsupported_parameter")


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = None  # vLLM's extension; -1 or 0 mean "off"
    repetition_penalty: float | None = Field(None, gt=0.0)  # vLLM's extension
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    user: str | None = None

    def check(self) -> None:
        if self.stream_options is not None:
            if not self.stream:
                raise InvalidRequest("stream_options is only allowed with stream=true.", "stream_options")
            for key, value in self.stream_options.items():
                if key == "include_usage" and isinstance(value, bool):
                    continue
                if key == "include_obfuscation" and value is False:
                    continue
                raise InvalidRequest(f"stream_options.{key}={value!r} is not supported; only include_usage "
                                     "(and include_obfuscation=false) are.", f"stream_options.{key}")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def sampling(self, max_tokens: int | None) -> dict[str, Any]:
        """The engine's sampling overrides (None: the engine's default)."""
        top_k = self.top_k if self.top_k is None or self.top_k >= 0 else 0
        out: dict[str, Any] = {
            "max_new_tokens": max_tokens, "temperature": self.temperature, "top_p": self.top_p, "top_k": top_k,
            "repetition_penalty": self.repetition_penalty, "seed": self.seed,
            "do_sample": False if self.temperature == 0 else None,
        }
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value:
                _needs(name, name)
                out[name] = value
        if self.logit_bias:
            _needs("logit_bias", "logit_bias")
            try:
                out["logit_bias"] = {int(k): float(v) for k, v in self.logit_bias.items()}
            except ValueError as e:
                raise InvalidRequest(f"logit_bias keys must be token ids (integers as strings): {e}.",
                                     "logit_bias") from e
        return out

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if any(not s for s in stops):
            raise InvalidRequest("stop strings must be non-empty.", "stop")
        return stops


class CompletionBody(_Common):
    """``POST /v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)
    logprobs: int | None = Field(None, ge=0, le=20)
    reply_grammar: dict[str, Any] | None = None
    """serve's extension: the reply grammar a :class:`RemoteEngine` sends (docs/remote.md)."""

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if not prompts:
            raise InvalidRequest("prompt must not be empty.", "prompt")
        if any(not isinstance(p, str) for p in prompts):
            raise InvalidRequest("Token-id prompts are not supported: send the prompt as text.", "prompt",
                                 code="unsupported_parameter")
        return prompts  # type: ignore[return-value]

    def check(self) -> None:
        super().check()
        if self.suffix:
            raise InvalidRequest("suffix (fill-in-the-middle) is not supported: WizardCoder-Python was not trained "
                                 "for it.", "suffix", code="unsupported_parameter")
        if self.best_of is not None and self.best_of != self.n:
            raise InvalidRequest(f"best_of={self.best_of} with n={self.n} is not supported: only best_of == n "
                                 "(every sample returned).", "best_of", code="unsupported_parameter")
        if self.echo and self.logprobs is not None:
            raise InvalidRequest("echo with logprobs is not supported: the prompt's log-probabilities are not "
                                 "computed.", "echo", code="unsupported_parameter")
        if self.stream and len(self.prompts()) > 1:
            raise InvalidRequest("Streaming takes one prompt per request.", "prompt")

    def overrides(self) -> dict[str, Any]:
        out = {**self.sampling(self.max_tokens), "stop": self.stops() or None}
        if self.logprobs is not None:
            _needs("logprobs", "logprobs")
            out["logprobs"] = self.logprobs
        return out


class _Function(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str | dict[str, Any] = "{}"


class _ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    type: Literal["function"] = "function"
    function: _Function


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    # what an SDK sends back when a client replays the assistant message it received; only empty values pass
    refusal: str | None = None
    annotations: list[Any] | None = None
    audio: Any = None
    function_call: Any = None


class _FunctionDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = "function"
    function: _FunctionDef | None = None


class ChatBody(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[_Message]
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    # refused unless empty: features WizardCoder-Python has no way to honour
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    reasoning_effort: Any = None
    verbosity: Any = None
    web_search_options: Any = None
    functions: Any = None
    function_call: Any = None
    service_tier: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    def check(self) -> None:
        super().check()
        for name in ("audio", "prediction", "reasoning_effort", "verbosity", "web_search_options"):
            if getattr(self, name) is not None:
                raise InvalidRequest(f"{name} is not supported by WizardCoder-Python (a text-only code model).",
                                     name, code="unsupported_parameter")
        if self.functions is not None or self.function_call is not None:
            name = "functions" if self.functions is not None else "function_call"
            raise InvalidRequest(f"{name} (deprecated) is not supported: send tools and tool_choice instead.",
                                 name, code="unsupported_parameter")
        if self.modalities not in (None, ["text"]):
            raise InvalidRequest("Only modalities=['text'] is supported.", "modalities",
                                 code="unsupported_parameter")
        if self.service_tier not in (None, "auto", "default"):
            raise InvalidRequest(f"service_tier={self.service_tier!r} is not supported: this server has one tier "
                                 "('auto' or 'default').", "service_tier", code="unsupported_parameter")
        if self.store:
            raise InvalidRequest("store=true is not supported: this server keeps no completions.", "store",
                                 code="unsupported_parameter")
        if self.metadata:
            raise InvalidRequest("metadata is only used with store=true, which this server does not support.",
                                 "metadata", code="unsupported_parameter")
        strict = [i for i, t in enumerate(self.tools or []) if t.function is not None and t.function.strict]
        if strict and self.tool_choice in (None, "auto"):
            raise InvalidRequest("strict tools need a forced tool_choice ('required' or a function): only forced "
                                 "calls are decoded under their schema's grammar; with 'auto' the model chooses "
                                 "freely between prose and a call.", f"tools[{strict[0]}].function.strict",
                                 code="unsupported_parameter")
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs=true.", "top_logprobs")
        if self.max_tokens is not None and self.max_completion_tokens is not None and (
                self.max_tokens != self.max_completion_tokens):
            raise InvalidRequest("max_tokens and max_completion_tokens disagree: send one of them "
                                 "(max_completion_tokens is the current name).", "max_tokens")

    def overrides(self) -> dict[str, Any]:
        limit = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        out = self.sampling(limit)
        if self.logprobs:
            _needs("logprobs", "logprobs")
            out["logprobs"] = self.top_logprobs or 0
        return out

    def chat_request(self) -> ChatRequest:
        """The framework-neutral request (the same renderer as the LangChain and LlamaIndex adapters)."""
        return ChatRequest(messages=[_chat_message(m, i) for i, m in enumerate(self.messages)],
                           tools=[_tool_spec(t, i) for i, t in enumerate(self.tools or [])],
                           tool_choice=_tool_choice(self.tool_choice),
                           response_format=self.response_format, stop=tuple(self.stops()),
                           parallel_tool_calls=self.parallel_tool_calls is not False)


def _chat_message(m: _Message, i: int) -> ChatMessage:
    at = f"messages[{i}]"
    for name in ("refusal", "annotations", "audio", "function_call"):
        if getattr(m, name):
            raise InvalidRequest(f"{at}.{name} is not supported: WizardCoder reads text turns only.",
                                 f"{at}.{name}", code="unsupported_parameter")
    content = m.content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequest(f"{at}.content[{j}] has type {part.get('type')!r}: WizardCoder reads text "
                                     "parts only.", f"{at}.content[{j}].type", code="unsupported_parameter")
            parts.append(part["text"])
        content = "".join(parts)
    if m.name is not None and m.role != "tool":
        raise InvalidRequest(f"{at}.name is only supported on tool messages (participant names are not part of "
                             "WizardCoder's template).", f"{at}.name", code="unsupported_parameter")
    if m.tool_calls and m.role != "assistant":
        raise InvalidRequest(f"{at}.tool_calls is only allowed on assistant messages.", f"{at}.tool_calls")
    if m.role == "tool" and not m.tool_call_id and not m.name:
        raise InvalidRequest(f"{at} (a tool result) needs tool_call_id.", f"{at}.tool_call_id",
                             code="missing_required_parameter")
    calls = []
    for j, call in enumerate(m.tool_calls or ()):
        arguments: Any = call.function.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                raise InvalidRequest(f"{at}.tool_calls[{j}].function.arguments is not valid JSON ({e}); send the "
                                     "arguments as a JSON object string.",
                                     f"{at}.tool_calls[{j}].function.arguments") from e
        if not isinstance(arguments, dict):
            raise InvalidRequest(f"{at}.tool_calls[{j}].function.arguments must be a JSON object.",
                                 f"{at}.tool_calls[{j}].function.arguments")
        calls.append(ToolCallRecord(call.function.name, arguments, call.id))
    role = "system" if m.role == "developer" else m.role
    return ChatMessage(role, content or "", tuple(calls), m.name, m.tool_call_id)  # type: ignore[arg-type]


def _tool_spec(tool: _Tool, i: int) -> ToolSpec:
    if tool.type != "function" or tool.function is None:
        raise InvalidRequest(f"tools[{i}] has type {tool.type!r}: only function tools are supported.",
                             f"tools[{i}].type", code="unsupported_parameter")
    fn = tool.function
    return ToolSpec(fn.name, fn.description or "", fn.parameters or {"type": "object", "properties": {}})


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if isinstance(choice, dict) and choice.get("type") not in (None, "function"):
        raise InvalidRequest(f"tool_choice of type {choice.get('type')!r} is not supported: use 'auto', 'none', "
                             "'required' or {'type': 'function', 'function': {'name': ...}}.", "tool_choice",
                             code="unsupported_parameter")
    return choice
