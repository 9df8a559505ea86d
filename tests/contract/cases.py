"""The conversation contract's cases: what the stand-in learned (tool_examples, agent_examples) plus variants.

Each :class:`Case` is framework-neutral (the chat layer's types); runners convert it to their front door's
request. Tool choices are spelt neutrally ("auto", "any", "none" or a name); each runner uses its framework's
own spelling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from wizardcoder_integrations.chat.types import ChatMessage, ToolCallRecord, ToolSpec
from wizardcoder_integrations.scenarios import llama_index_agents as agents
from wizardcoder_integrations.scenarios import tool_calls as learned

__all__ = ["CASES", "SCRIPTED_CASES", "Case"]


@dataclass(frozen=True)
class Case:
    """One conversation and its request options; ``expect`` names what the reply must show (beyond identity)."""

    id: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    response_format: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int = 64
    expect: dict[str, Any] = field(default_factory=dict)


def _user(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage("user", text),)


CITY_WEATHER = ToolSpec("get_weather", "Return today's weather in a city.",
                        {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"})
WEATHER_CALL = ToolCallRecord("get_weather", {"location": "San Francisco, CA"}, "call_weather_1")
T = learned.TOOLS

_CHATS: list[tuple[str, tuple[ChatMessage, ...], str]] = [
    ("hello", _user("Hello"), "Hello! I am WizardCoder"),
    ("hello-lower", _user("hello"), "How can I help"),
    ("hey", _user("Hey"), "What Python code"),
    ("multi-turn", (ChatMessage("user", "hello"), ChatMessage("assistant", "hello"),
                    ChatMessage("user", "how are you")), "I am fine"),
    ("multi-system", (ChatMessage("system", "hello"), ChatMessage("system", "hello"), ChatMessage("user", "hello"),
                      ChatMessage("user", "hello"), ChatMessage("assistant", "hello"),
                      ChatMessage("assistant", "hello"), ChatMessage("user", "how are you")), "I am fine"),
]


def _chat_cases() -> list[Case]:
    cases = []
    for name, messages, says in _CHATS:
        cases += [
            Case(f"chat-{name}", messages, expect={"text_contains": says, "finish_reason": "stop"}),
            Case(f"chat-{name}-stop", messages, stop=("!", "."), expect={"finish_reason": "stop"}),
            Case(f"chat-{name}-length", messages, max_tokens=3, expect={"finish_reason": "length"}),
            Case(f"chat-{name}-system", (ChatMessage("system", "You are a helpful Python assistant."), *messages)),
        ]
    cases.append(Case("chat-system-prompt-code", (ChatMessage("system", agents.SYSTEM_PROMPT),
                                                  ChatMessage("user", agents.SYSTEM_PROMPT_INSTRUCTION)),
                      max_tokens=48))
    return cases


def _call_args(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": [(name, arguments)]}


def _tool_cases() -> list[Case]:
    weather_turns = (*_user(learned.WEATHER_QUESTION), ChatMessage("assistant", "", (WEATHER_CALL,)))
    cases = [
        Case("forced-magic", _user("What is the value of magic_function(3)? Use the tool."),
             (T["magic_function"],), "magic_function", expect=_call_args("magic_function", {"input": 3})),
        Case("forced-magic-any", _user("What is the value of magic_function(3)? Use the tool."),
             (T["magic_function"],), "any", expect=_call_args("magic_function", {"input": 3})),
        Case("forced-no-args", _user("What is the value of magic_function_no_args()? Use the tool."),
             (T["magic_function_no_args"],), "magic_function_no_args",
             expect=_call_args("magic_function_no_args", {})),
        Case("forced-greeting", _user("Using the tool, generate a Pirate greeting."), (T["greeting_generator"],),
             "greeting_generator", expect=_call_args("greeting_generator", {"answer_style": "pirate"})),
        Case("any-of-two", _user("Hello!"), (T["magic_function"], T["get_weather_short"]), "any",
             expect=_call_args("magic_function", {"input": 1})),
        Case("forced-one-of-two", _user("Hello!"), (T["magic_function"], T["get_weather_short"]), "magic_function",
             expect=_call_args("magic_function", {"input": 1})),
        Case("forced-unicode-zh", _user("Create a customer named '你好啊集团' (Hello Group) - a Chinese technology "
                                        "company"), (T["unicode_customer"],), "unicode_customer"),
        Case("forced-unicode-ja", _user("Create a customer named 'こんにちは株式会社' (Hello Corporation) - a Japanese "
                                        "company"), (T["unicode_customer"],), "unicode_customer"),
        Case("auto-call", _user(learned.WEATHER_QUESTION), (T["get_weather"],), "auto",
             expect={**_call_args("get_weather", {"location": "San Francisco, CA"}), "finish_reason": "tool_calls"}),
        Case("auto-default-choice", _user(learned.WEATHER_QUESTION), (T["get_weather"],), None,
             expect=_call_args("get_weather", {"location": "San Francisco, CA"})),
        Case("auto-call-system", (ChatMessage("system", "You are a weather bot."), *_user(learned.WEATHER_QUESTION)),
             (T["get_weather"],), "auto"),
        Case("tool-result-named", (*weather_turns, ChatMessage("tool", learned.WEATHER_RESULT, name="get_weather",
                                                               tool_call_id=WEATHER_CALL.id)),
             (T["get_weather"],), "auto", expect={"text": learned.WEATHER_ANSWER, "finish_reason": "stop"}),
        Case("tool-result-nameless", (*weather_turns, ChatMessage("tool", learned.WEATHER_RESULT,
                                                                  tool_call_id=WEATHER_CALL.id)),
             (T["get_weather"],), "auto", expect={"text": learned.WEATHER_ANSWER, "finish_reason": "stop"}),
        Case("tool-choice-none", _user(learned.WEATHER_QUESTION), (T["get_weather"],), "none"),
        Case("broken-call", _user(learned.BROKEN_CALL_QUESTION), (T["get_weather"],), "auto",
             expect={"invalid_names": ["get_weather"]}),
        Case("unknown-tool-name", _user(learned.WEATHER_QUESTION), (replace(T["get_weather"], name="weather"),),
             "auto", expect={"invalid_names": ["get_weather"]}),
        Case("unknown-tool-in-history", (*weather_turns, ChatMessage("tool", learned.WEATHER_RESULT,
                                                                     tool_call_id=WEATHER_CALL.id)),
             (T["magic_function"],), "auto"),
        Case("invalid-arguments-in-history",
             (*_user(learned.WEATHER_QUESTION),
              ChatMessage("assistant", "", (ToolCallRecord("get_weather", {"city": 7}, "call_bad_1"),)),
              ChatMessage("tool", "Invalid arguments for tool 'get_weather': location: Field required.",
                          tool_call_id="call_bad_1")),
             (T["get_weather"],), "auto"),
        Case("function-agent-question", (ChatMessage("system", agents.FUNCTION_SYSTEM_PROMPT),
                                         *_user(agents.FUNCTION_QUESTION)), (CITY_WEATHER,), "auto"),
    ]
    for schema, request in [("Joke", "Tell me a joke about cats."), ("JokeDict", "Tell me a joke about cats."),
                            ("Joke-optional", "Give me the setup to a joke about cats, no punchline."),
                            ("JokeDict-optional", "Tell me a joke about cats.")]:
        spec = learned.JOKES[schema]
        cases.append(Case(f"structured-{schema}", _user(request), (spec,), spec.name,
                          expect={"tool_names": [spec.name]}))
    return cases


def _json_cases() -> list[Case]:
    joke_schema = learned.JOKES["Joke"].parameters
    schema_format = {"type": "json_schema", "json_schema": {"name": "Joke", "schema": joke_schema}}
    cat = json.dumps(learned.CAT_JOKE)
    return [
        Case("json-object", _user(learned.JSON_JOKE_REQUEST), response_format={"type": "json_object"},
             expect={"text": cat}),
        Case("json-schema", _user("Tell me a joke about cats."), response_format=schema_format,
             expect={"text": cat}),
        Case("json-schema-system", (ChatMessage("system", "Be funny."), *_user("Tell me a joke about cats.")),
             response_format=schema_format, expect={"json": True}),
        Case("json-schema-order", _user(learned.ORDER_QUESTION), response_format={
            "type": "json_schema", "json_schema": {"name": "PizzaOrder",
                                                   "schema": learned.PizzaOrder.model_json_schema()}},
             max_tokens=96, expect={"json": True}),
    ]


CASES: list[Case] = [*_chat_cases(), *_tool_cases(), *_json_cases()]
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


_CALL = '<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'
_PARIS = _CALL.format(name="get_weather", args='{"location": "Paris"}')
_OSLO = _CALL.format(name="get_weather", args='{"location": "Oslo"}')
_WEATHER_TOOLS = (T["get_weather"],)
_SCRIPTED: list[tuple[Case, str]] = [
    (Case("scripted-unknown-tool", _user("Weather in Paris?"), _WEATHER_TOOLS, "auto",
          expect={"invalid_names": ["get_forecast"]}),
     _CALL.format(name="get_forecast", args='{"location": "Paris"}')),
    (Case("scripted-arguments-not-an-object", _user("Weather in Paris?"), _WEATHER_TOOLS, "auto",
          expect={"invalid_names": ["get_weather"]}), _CALL.format(name="get_weather", args='"Paris"')),
    (Case("scripted-two-calls-with-prose", _user("Weather in Paris and Oslo?"), _WEATHER_TOOLS, "auto",
          expect={"text": "Let me check.", "tool_names": ["get_weather", "get_weather"],
                  "finish_reason": "tool_calls"}), f"Let me check.\n{_PARIS}\n{_OSLO}"),
    (Case("scripted-prose-around-a-call", _user("Weather in Paris?"), _WEATHER_TOOLS, "auto",
          expect={"text": "Checking.\nDone."}), f"Checking.\n{_PARIS}\nDone."),
    (Case("scripted-unfinished-call", _user("Weather in Paris?"), _WEATHER_TOOLS, "auto",
          expect={"invalid_names": ["get_weather"]}), '<tool_call>\n{"name": "get_weather", "arguments": {'),
    (Case("scripted-call-without-tools", _user("Weather in Paris?")), _PARIS),
]
#: Replies no model is asked to learn, replayed by a scripted engine (one token per character): (case, reply).
SCRIPTED_CASES = [(replace(case, max_tokens=512), reply) for case, reply in _SCRIPTED]
