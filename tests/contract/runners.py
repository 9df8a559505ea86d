"""Front doors as runners of the conversation contract: each takes a :class:`Case`, returns a :class:`Normalized`.

A runner converts the case into its framework's request, runs it, and reads back what a user of that
framework sees. More front doors (``wizardcoder serve`` through the ``openai`` client, LangChain's
``ChatOpenAI``, LlamaIndex's ``OpenAILike``) plug in by adding a runner to ``RUNNERS`` in ``conftest.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from wizardcoder_integrations.chat import ChatRequest, ChatSettings, generate_reply, render_request

from .cases import Case

__all__ = ["ChatLayerRunner", "LangChainRunner", "LlamaIndexRunner", "Normalized", "Runner"]

GREEDY: dict[str, Any] = {"temperature": 0.0, "do_sample": False}


@dataclass(frozen=True)
class Normalized:
    """A reply as any front door shows it: prose, valid calls (name, arguments), invalid calls (name, what the
    model wrote), finish reason, and token usage (prompt, completion)."""

    text: str
    tool_calls: tuple[tuple[str, str], ...]
    invalid_tool_calls: tuple[tuple[str | None, str], ...]
    finish_reason: str
    usage: tuple[int, int]


def _args(arguments: Any) -> str:
    return json.dumps(arguments if isinstance(arguments, dict) else json.loads(arguments), sort_keys=True)


def langchain_messages(case: Case) -> list[Any]:
    """The case's conversation as LangChain messages (shared by the in-process and the ChatOpenAI runner)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    messages: list[Any] = []
    for m in case.messages:
        if m.role == "system":
            messages.append(SystemMessage(m.content))
        elif m.role == "user":
            messages.append(HumanMessage(m.content))
        elif m.role == "assistant":
            calls = [{"name": c.name, "args": c.arguments, "id": c.id, "type": "tool_call"} for c in m.tool_calls]
            messages.append(AIMessage(m.content, tool_calls=calls))
        else:
            messages.append(ToolMessage(m.content, tool_call_id=m.tool_call_id or "", name=m.name))
    return messages


class Runner(Protocol):
    name: str

    def run(self, case: Case) -> Normalized: ...


class ChatLayerRunner:
    """The chat layer itself (``generate_reply``): the reference every front door must match."""

    name = "chat-layer"

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def run(self, case: Case) -> Normalized:
        rendered = render_request(ChatRequest(case.messages, case.tools, case.tool_choice, case.response_format,
                                              case.stop))
        settings = ChatSettings(engine=self.engine, max_tokens=case.max_tokens, **GREEDY)
        reply = generate_reply(self.engine, rendered, settings.sampling())
        return Normalized(reply.text, tuple((c.name, _args(c.arguments)) for c in reply.tool_calls),
                          tuple((c.name, c.raw) for c in reply.invalid_tool_calls), reply.finish_reason,
                          (reply.usage.prompt_tokens, reply.usage.completion_tokens))


class LangChainRunner:
    """``ChatWizardCoder.invoke`` (tools through ``bind_tools``, JSON answers through ``response_format``)."""

    name = "langchain"

    def __init__(self, engine: Any) -> None:
        from wizardcoder_integrations.langchain import ChatWizardCoder

        self.engine = engine
        self.model_class = ChatWizardCoder

    def run(self, case: Case) -> Normalized:

        chat = self.model_class(engine=self.engine, max_tokens=case.max_tokens, **GREEDY)
        messages = langchain_messages(case)
        model: Any = chat
        if case.tools:
            tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                       "parameters": t.parameters}} for t in case.tools]
            model = chat.bind_tools(tools, tool_choice=case.tool_choice)
        elif case.response_format is not None:
            model = chat.bind(response_format=case.response_format)
        reply = model.invoke(messages, stop=list(case.stop) or None)
        usage = reply.usage_metadata
        return Normalized(
            reply.content, tuple((c["name"], _args(c["args"])) for c in reply.tool_calls),
            tuple((c["name"], (c["args"] or "").removeprefix("<tool_call>\n")) for c in reply.invalid_tool_calls),
            reply.response_metadata["finish_reason"], (usage["input_tokens"], usage["output_tokens"]))


class LlamaIndexRunner:
    """LlamaIndex ``WizardCoder.chat`` (tools and ``tool_choice`` in LlamaIndex's spelling: "required")."""

    name = "llama-index"

    def __init__(self, engine: Any) -> None:
        from wizardcoder_integrations.llama_index import WizardCoder

        self.engine = engine
        self.llm_class = WizardCoder

    def run(self, case: Case) -> Normalized:
        from llama_index.core.base.llms.types import ChatMessage, TextBlock, ToolCallBlock

        llm = self.llm_class(engine=self.engine, max_tokens=case.max_tokens, **GREEDY)
        messages = []
        for m in case.messages:
            blocks: list[Any] = [TextBlock(text=m.content)]
            blocks += [ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments)
                       for c in m.tool_calls]
            extra = {k: v for k, v in (("tool_call_id", m.tool_call_id), ("name", m.name)) if v is not None}
            messages.append(ChatMessage(role=m.role, blocks=blocks, additional_kwargs=extra))
        kwargs: dict[str, Any] = {}
        if case.tools:
            kwargs.update(tools=list(case.tools), tool_choice="required" if case.tool_choice == "any"
                          else case.tool_choice)
        if case.response_format is not None:
            kwargs["response_format"] = case.response_format
        if case.stop:
            kwargs["stop"] = list(case.stop)
        response = llm.chat(messages, **kwargs)
        message = response.message
        calls = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
        invalid = message.additional_kwargs.get("invalid_tool_calls") or []
        usage = response.additional_kwargs
        return Normalized(
            message.blocks[0].text, tuple((c.tool_name, _args(c.tool_kwargs)) for c in calls),
            tuple((c["name"], c["raw"]) for c in invalid), response.raw["finish_reason"],
            (usage["prompt_tokens"], usage["completion_tokens"]))
