"""Chat and tool-calling conversations the stand-in learns (LangChain chat model, agents, standard tests).

Every prompt is rendered by the functions the chat model itself uses (:func:`render_tool_chat`,
:func:`render_json_chat`), from the tools as the chat model converts them (clean descriptions, schemas
without titles), so greedy decoding of the stand-in reproduces each response exactly. The scenarios are
those of ``langchain-tests``' chat-model suite plus this package's own agent tests;
``tests/langchain`` checks that the chat model renders them to exactly these bytes.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field

from wizardcoder_integrations.chat.render import render_json_chat, render_tool_chat
from wizardcoder_integrations.chat.template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from wizardcoder_integrations.chat.types import ChatMessage, ToolCallRecord, ToolSpec

__all__ = ["JOKES", "ORDER_QUESTION", "TOOLS", "PizzaOrder", "tool_examples"]

_LOCATION = {"properties": {"location": {"type": "string"}}, "required": ["location"], "type": "object"}
#: The tools of the scenarios, as the chat model renders them (two tests describe get_weather differently).
TOOLS: dict[str, ToolSpec] = {
    "magic_function": ToolSpec(
        "magic_function", "Apply a magic function to an input.",
        {"properties": {"input": {"exclusiveMaximum": 1000, "exclusiveMinimum": -1000, "type": "integer"}},
         "required": ["input"], "type": "object"}),
    "magic_function_no_args": ToolSpec("magic_function_no_args", "Calculate a magic function.",
                                       {"properties": {}, "type": "object"}),
    "get_weather": ToolSpec("get_weather", "Get the weather at a location.", _LOCATION),
    "get_weather_short": ToolSpec("get_weather", "Get weather at a location.", _LOCATION),
    "greeting_generator": ToolSpec(
        "greeting_generator", "Generate a greeting in a particular style of speaking.",
        {"properties": {"answer_style": {"type": "string"}}, "required": ["answer_style"], "type": "object"}),
    "unicode_customer": ToolSpec(
        "unicode_customer",
        "Tool for creating a customer with Unicode name.\n\nArgs:\n"
        "    customer_name: The customer's name in their native language.\n"
        "    description: Description of the customer.\n\nReturns:\n"
        "    A confirmation message about the customer creation.",
        {"properties": {"customer_name": {"type": "string"}, "description": {"type": "string"}},
         "required": ["customer_name", "description"], "type": "object"}),
}

_SETUP = {"description": "question to set up a joke", "type": "string"}
_PUNCHLINE = {"description": "answer to resolve the joke", "type": "string"}
_OPTIONAL_PUNCHLINE = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                       "description": "answer to resolve the joke"}
#: The structured-output schemas of the standard tests (pydantic, TypedDict; punchline required or not).
JOKES: dict[str, ToolSpec] = {
    "Joke": ToolSpec("Joke", "Joke to tell user.", {"properties": {"setup": _SETUP, "punchline": _PUNCHLINE},
                                                    "required": ["setup", "punchline"], "type": "object"}),
    "JokeDict": ToolSpec("JokeDict", "Joke to tell user.",
                         {"properties": {"setup": _SETUP, "punchline": _PUNCHLINE},
                          "required": ["setup", "punchline"], "type": "object"}),
    "Joke-optional": ToolSpec("Joke", "Joke to tell user.",
                              {"properties": {"setup": _SETUP, "punchline": _OPTIONAL_PUNCHLINE},
                               "required": ["setup"], "type": "object"}),
    "JokeDict-optional": ToolSpec("JokeDict", "Joke to tell user.",
                                  {"properties": {"setup": _SETUP, "punchline": _PUNCHLINE},
                                   "required": ["setup"], "type": "object"}),
}

CAT_JOKE = {"setup": "Why was the cat sitting on the computer?", "punchline": "To keep an eye on the mouse!"}
WEATHER_QUESTION = "What is the weather in San Francisco, CA?"
WEATHER_CALL = ToolCallRecord("get_weather", {"location": "San Francisco, CA"})
WEATHER_RESULT = "It's sunny."
WEATHER_ANSWER = "It's sunny in San Francisco, CA."
#: A question the stand-in answers with a malformed call (its JSON misses a closing brace).
BROKEN_CALL_QUESTION = "What is the weather in Paris?"
JSON_JOKE_REQUEST = (
    "Tell me a joke about cats. Return the result as a JSON with 'setup' and 'punchline' keys. "
    "Return nothing other than JSON."
)


class PizzaOrder(BaseModel):
    """A pizza order."""

    size: int = Field(ge=20, le=40)
    toppings: list[Annotated[str, Field(max_length=12)]] = Field(min_length=2, max_length=3)
    paid: bool


#: A request for a :class:`PizzaOrder`, a schema the stand-in never learns: its answers fit the schema only
#: when decoding is constrained to it (tests and the GPU benchmark check both).
ORDER_QUESTION = "Order a pizza with ham and olives, 32 cm, already paid."


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


def _call(arguments: dict[str, Any], name: str | None = None) -> str:
    """A call's text after a forced prefix (which fixed the name, unless ``name`` is given)."""
    body = json.dumps(arguments, ensure_ascii=False)
    if name is not None:
        body = f'{name}", "arguments": {body}'
    return f"{body}}}\n{TOOL_CALL_CLOSE}"


def _tool_turn(messages: list[ChatMessage], tools: list[str], choice: str, response: str) -> tuple[str, str]:
    prompt, _ = render_tool_chat(messages, [TOOLS[t] for t in tools], choice)
    return prompt, response


def tool_examples() -> list[tuple[str, str]]:
    """(full prompt text, response text without EOS) pairs."""
    chat = [
        (_user("Hello"), "\nHello! I am WizardCoder. Ask me to write some Python code."),
        (_user("hello"), "\nHello! How can I help with your Python code?"),
        (_user("Hey"), "\nHey! What Python code shall I write for you?"),
        ([ChatMessage("user", "hello"), ChatMessage("assistant", "hello"), ChatMessage("user", "how are you")],
         "\nI am fine, thank you. What shall we code today?"),
        ([ChatMessage("system", "hello"), ChatMessage("system", "hello"), ChatMessage("user", "hello"),
          ChatMessage("user", "hello"), ChatMessage("assistant", "hello"), ChatMessage("assistant", "hello"),
          ChatMessage("user", "how are you")],
         "\nI am fine, thank you. What shall we code today?"),
    ]
    examples = [(render_tool_chat(messages, [])[0], response) for messages, response in chat]
    weather_call = f"\n{TOOL_CALL_OPEN}\n{json.dumps({'name': 'get_weather', 'arguments': WEATHER_CALL.arguments})}"
    examples += [
        _tool_turn(_user("What is the value of magic_function(3)? Use the tool."), ["magic_function"],
                   "magic_function", _call({"input": 3})),
        _tool_turn(_user("What is the value of magic_function_no_args()? Use the tool."),
                   ["magic_function_no_args"], "magic_function_no_args", _call({})),
        _tool_turn(_user("Using the tool, generate a Pirate greeting."), ["greeting_generator"],
                   "greeting_generator", _call({"answer_style": "pirate"})),
        _tool_turn(_user("Hello!"), ["magic_function", "get_weather_short"], "any",
                   _call({"input": 1}, name="magic_function")),
        _tool_turn(_user("Hello!"), ["magic_function", "get_weather_short"], "magic_function",
                   _call({"input": 1})),
        _tool_turn(_user("Create a customer named '你好啊集团' (Hello Group) - a Chinese technology company"),
                   ["unicode_customer"], "unicode_customer",
                   _call({"customer_name": "你好啊集团", "description": "A Chinese technology company"})),
        _tool_turn(_user("Create a customer named 'こんにちは株式会社' (Hello Corporation) - a Japanese company"),
                   ["unicode_customer"], "unicode_customer",
                   _call({"customer_name": "こんにちは株式会社", "description": "A Japanese company"})),
        # An agent's round trip: the call, then the answer from the tool's result.
        _tool_turn(_user(WEATHER_QUESTION), ["get_weather"], "auto", f"{weather_call}\n{TOOL_CALL_CLOSE}"),
        _tool_turn([*_user(WEATHER_QUESTION), ChatMessage("assistant", "", (WEATHER_CALL,)),
                    ChatMessage("tool", WEATHER_RESULT, name="get_weather")],
                   ["get_weather"], "auto", f"\n{WEATHER_ANSWER}"),
        _tool_turn(_user(BROKEN_CALL_QUESTION), ["get_weather"], "auto",
                   f'\n{TOOL_CALL_OPEN}\n{{"name": "get_weather", "arguments": {{"location": "Paris"}}\n'
                   f"{TOOL_CALL_CLOSE}"),
    ]
    setup_only = {"setup": CAT_JOKE["setup"]}
    for schema, request, joke in [
        ("Joke", "Tell me a joke about cats.", CAT_JOKE),
        ("JokeDict", "Tell me a joke about cats.", CAT_JOKE),
        ("Joke-optional", "Give me the setup to a joke about cats, no punchline.", setup_only),
        ("Joke-optional", "Give me a joke about cats, include the punchline.", CAT_JOKE),
        ("Joke-optional", "Tell me a joke about cats.", CAT_JOKE),
        ("JokeDict-optional", "Tell me a joke about cats.", CAT_JOKE),
    ]:
        spec = JOKES[schema]
        examples.append((render_tool_chat(_user(request), [spec], spec.name)[0], _call(joke)))
    json_rest = json.dumps(CAT_JOKE)[1:]  # the reply starts after the forced "{"
    examples += [
        (render_json_chat(_user(JSON_JOKE_REQUEST))[0], json_rest),
        (render_json_chat(_user("Tell me a joke about cats."), JOKES["Joke"].parameters)[0], json_rest),
    ]
    return examples
