"""``wizardcoder serve`` as a front door of the conversation contract, through three real clients.

Each runner sends a :class:`Case` the way its client library does (OpenAI messages: a tool result carries
``tool_call_id``, and ``name`` only where the case has one) and reads back what that library shows. serve sends
a call the model wrote wrongly as a tool call whose arguments are the raw text after ``<tool_call>\\n``; runners
report those as invalid calls, as the in-process front doors do.
"""

from __future__ import annotations

import json
from typing import Any

from .cases import Case
from .runners import Normalized, _args, langchain_messages

__all__ = ["ChatOpenAIRunner", "OpenAILikeRunner", "OpenAIRunner"]

OPEN = "<tool_call>\n"


def _messages(case: Case) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in case.messages:
        if m.role == "assistant":
            message: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                message["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                    "name": c.name, "arguments": json.dumps(c.arguments)}} for c in m.tool_calls]
            out.append(message)
        elif m.role == "tool":
            out.append({"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id,
                        **({"name": m.name} if m.name else {})})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _tools(case: Case) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in case.tools]


def _choice(case: Case) -> Any:
    if case.tool_choice in (None, "auto", "none"):
        return case.tool_choice
    if case.tool_choice == "any":
        return "required"
    return {"type": "function", "function": {"name": case.tool_choice}}


def _request(case: Case) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": _messages(case), "temperature": 0, "max_tokens": case.max_tokens}
    if case.tools:
        body["tools"] = _tools(case)
        if case.tool_choice is not None:
            body["tool_choice"] = _choice(case)
    if case.response_format is not None:
        body["response_format"] = case.response_format
    if case.stop:
        body["stop"] = list(case.stop)
    return body


def _split(calls: list[tuple[str, str]]) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str | None, str], ...]]:
    valid = tuple((n, _args(a)) for n, a in calls if not a.startswith(OPEN))
    invalid = tuple((n or None, a.removeprefix(OPEN)) for n, a in calls if a.startswith(OPEN))
    return valid, invalid


class OpenAIRunner:
    """The ``openai`` SDK's ``chat.completions.create``."""

    name = "serve-openai"

    def __init__(self, base_url: str, model: str) -> None:
        import openai

        self.client, self.model = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0), model

    def run(self, case: Case) -> Normalized:
        r = self.client.chat.completions.create(model=self.model, **_request(case))
        choice = r.choices[0]
        valid, invalid = _split([(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []])
        return Normalized(choice.message.content or "", valid, invalid, choice.finish_reason,
                          (r.usage.prompt_tokens, r.usage.completion_tokens))


class ChatOpenAIRunner:
    """langchain-openai's ``ChatOpenAI`` (tools through ``bind_tools``, JSON answers through ``response_format``)."""

    name = "serve-chatopenai"

    def __init__(self, base_url: str, model: str) -> None:
        from langchain_openai import ChatOpenAI

        self.base_url, self.model, self.cls = base_url, model, ChatOpenAI

    def run(self, case: Case) -> Normalized:

        chat = self.cls(model=self.model, base_url=self.base_url, api_key="unused", temperature=0,
                        max_tokens=case.max_tokens, max_retries=0)
        messages = langchain_messages(case)
        model: Any = chat
        if case.tools:
            model = chat.bind_tools(_tools(case), tool_choice=_choice(case))
        elif case.response_format is not None:
            model = chat.bind(response_format=case.response_format)
        reply = model.invoke(messages, stop=list(case.stop) or None)
        valid = tuple((c["name"], _args(c["args"])) for c in reply.tool_calls)
        invalid = tuple((c["name"] or None, (c["args"] or "").removeprefix(OPEN)) for c in reply.invalid_tool_calls)
        usage = reply.usage_metadata
        return Normalized(reply.content, valid, invalid, reply.response_metadata["finish_reason"],
                          (usage["input_tokens"], usage["output_tokens"]))


class OpenAILikeRunner:
    """LlamaIndex's ``OpenAILike.chat`` (OpenAI's request fields passed through; the reply read from ``raw``)."""

    name = "serve-openailike"

    def __init__(self, base_url: str, model: str) -> None:
        from llama_index.llms.openai_like import OpenAILike

        self.llm = OpenAILike(model=model, api_base=base_url, api_key="unused", temperature=0, is_chat_model=True,
                              is_function_calling_model=True, context_window=2048, max_retries=0)

    def run(self, case: Case) -> Normalized:
        from llama_index.core.base.llms.types import ChatMessage

        body = _request(case)
        messages = []
        for m in body.pop("messages"):
            extra = {k: m[k] for k in ("tool_calls", "tool_call_id", "name") if k in m}
            messages.append(ChatMessage(role=m["role"], content=m["content"], additional_kwargs=extra))
        body.pop("temperature")
        self.llm.max_tokens = body.pop("max_tokens")
        response = self.llm.chat(messages, **body)
        raw = response.raw
        choice = raw.choices[0]
        valid, invalid = _split([(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []])
        return Normalized(choice.message.content or "", valid, invalid, choice.finish_reason,
                          (raw.usage.prompt_tokens, raw.usage.completion_tokens))
