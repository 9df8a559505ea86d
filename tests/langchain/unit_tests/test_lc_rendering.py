"""Prompt rendering, tool conversion and reply parsing of the LangChain chat model (no weights needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated, Any

import pytest

pytest.importorskip("langchain_core", reason="the 'langchain' extra is not installed")

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from wizardcoder_integrations.chat.reply import ReplyBuilder
from wizardcoder_integrations.chat.template import PREAMBLE
from wizardcoder_integrations.chat.toolcalls import ToolCallStream, normalize_tool_choice
from wizardcoder_integrations.chat.types import InvalidToolCall, ParsedToolCall
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM
from wizardcoder_integrations.langchain._tools import to_tool_specs
from wizardcoder_integrations.langchain.chat_models import _ReplyChunks
from wizardcoder_integrations.scenarios.tool_calls import (
    BROKEN_CALL_QUESTION,
    JSON_JOKE_REQUEST,
    WEATHER_QUESTION,
)
from wizardcoder_integrations.standin import STANDIN_REPO
from wizardcoder_integrations.standin.data import training_examples


@pytest.fixture
def chat() -> ChatWizardCoder:
    return ChatWizardCoder(model=STANDIN_REPO, local_files_only=True, temperature=0)


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "It's sunny."


def _render(chat: ChatWizardCoder, messages: list[Any], **kwargs: Any) -> tuple[str, str, list[str] | None]:
    rendered = chat.render(messages, **kwargs)
    return rendered.prompt, rendered.prefix, list(rendered.tool_names) if rendered.tool_names else None


# -- history -> Alpaca prompt ----------------------------------------------------------------------------
def test_a_single_human_message_is_the_cards_template(chat: ChatWizardCoder) -> None:
    prompt, prefix, names = _render(chat, [HumanMessage("Write a function.")])
    assert prompt == f"{PREAMBLE}\n\n### Instruction:\nWrite a function.\n\n### Response:"
    assert (prefix, names) == ("", None)


def test_system_human_ai_and_tool_messages_render_in_order(chat: ChatWizardCoder) -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage([{"type": "text", "text": "Weather?"}]),
        AIMessage("Checking.", tool_calls=[{"name": "get_weather", "args": {"location": "Oslo"}, "id": "c1"}]),
        ToolMessage("Rain.", tool_call_id="c1"),  # no name: taken from the call it answers
        AIMessage("It rains."),
        HumanMessage("Thanks"),
    ]
    prompt, _, _ = _render(chat, messages)
    assert prompt == (
        f"{PREAMBLE}\n\nBe brief.\n\n### Instruction:\nWeather?\n\n### Response:\nChecking.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"location": "Oslo"}}\n</tool_call>\n\n'
        "### Tool Result (get_weather):\nRain.\n\n### Response:\nIt rains.\n\n### Instruction:\nThanks\n\n"
        "### Response:"
    )


def test_tools_follow_the_system_text_and_a_forced_choice_prefills_the_call(chat: ChatWizardCoder) -> None:
    prompt, prefix, names = _render(chat, [SystemMessage("Be brief."), HumanMessage("Hi")],
                                    tools=[get_weather], tool_choice="any")
    assert names == ["get_weather"]
    assert prompt.startswith(f"{PREAMBLE}\n\nBe brief.\n\nYou have access to the following tools:\n- get_weather:")
    # "any" with one tool is that tool: the name is fixed too, decoding starts at the arguments.
    assert prefix == '<tool_call>\n{"name": "get_weather", "arguments": '
    assert prompt.endswith(f"### Response:\n{prefix}")
    _, prefix_none, _ = _render(chat, [HumanMessage("Hi")], tools=[get_weather], tool_choice="none")
    assert prefix_none == ""


def test_json_answers_start_inside_the_object(chat: ChatWizardCoder) -> None:
    prompt, prefix, names = _render(chat, [HumanMessage("Joke")], response_format={"type": "json_object"})
    assert (prefix, names) == ("{", None)
    assert "Reply with one JSON object and nothing else." in prompt and prompt.endswith("### Response:\n{")


def test_non_text_content_is_refused_with_a_clear_error(chat: ChatWizardCoder) -> None:
    image = HumanMessage([{"type": "text", "text": "What is this?"},
                          {"type": "image", "base64": "AAAA", "mime_type": "image/png"}])
    with pytest.raises(ConfigurationError, match="text only"):
        _render(chat, [image])


def test_unknown_call_options_and_bad_settings_are_errors(chat: ChatWizardCoder) -> None:
    with pytest.raises(ConfigurationError, match="Unknown option"):
        _render(chat, [HumanMessage("Hi")], temprature=0.2)
    with pytest.raises(ConfigurationError, match="needs tools"):
        _render(chat, [HumanMessage("Hi")], tool_choice="any")
    with pytest.raises(ValueError, match="temprature: unknown setting"):
        ChatWizardCoder(temprature=0.2)
    with pytest.raises(ValueError, match="api_key= is only used with a remote server"):
        ChatWizardCoder(api_key="x")
    with pytest.raises(ValueError, match="top_p"):
        WizardCoderLLM(top_p=1.5)
    with pytest.raises(ValueError, match="engine must be a loaded"):
        ChatWizardCoder(engine="not an engine")


# -- tools --------------------------------------------------------------------------------------------------
class Person(BaseModel):
    """Record a person.

    Both fields are required.
    """

    name: str = Field(description="full name")
    age: int


class PersonDict(TypedDict):
    """Record a person."""

    name: Annotated[str, ..., "full name"]


def my_adder(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_any_kind_of_tool_becomes_a_clean_spec() -> None:
    schema = {"title": "lookup", "description": "Look a word up.",
              "properties": {"word": {"title": "Word", "type": "string"}}, "required": ["word"]}
    specs = {s.name: s for s in to_tool_specs([get_weather, Person, PersonDict, my_adder, schema])}
    assert set(specs) == {"get_weather", "Person", "PersonDict", "my_adder", "lookup"}
    assert specs["Person"].description == "Record a person.\n\nBoth fields are required."
    assert specs["Person"].parameters == {
        "properties": {"name": {"description": "full name", "type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "type": "object"}
    assert specs["lookup"].parameters["properties"] == {"word": {"type": "string"}}
    assert specs["my_adder"].parameters["required"] == ["a", "b"]


def test_the_same_tool_twice_is_listed_once_but_two_tools_of_one_name_are_an_error() -> None:
    assert len(to_tool_specs([Person, Person.model_json_schema()])) == 1

    class Other(BaseModel):
        """Something else."""

        x: int

    other = {**Other.model_json_schema(), "title": "Person"}
    with pytest.raises(ConfigurationError, match="Two different tools"):
        ChatWizardCoder().bind_tools([Person, other])


@pytest.mark.parametrize(("choice", "expected"), [
    (None, "auto"), ("auto", "auto"), ("any", "any"), ("required", "any"), (True, "any"), ("none", "none"),
    (False, "none"), ("b", "b"), ({"type": "function", "function": {"name": "b"}}, "b"),
    ({"type": "tool", "name": "a"}, "a"),
])
def test_tool_choice_spellings(choice: Any, expected: str) -> None:
    assert normalize_tool_choice(choice, ["a", "b"]) == expected


def test_any_with_one_tool_names_it_and_unknown_choices_fail() -> None:
    assert normalize_tool_choice("any", ["only"]) == "only"
    with pytest.raises(ConfigurationError, match="Unknown tool_choice"):
        normalize_tool_choice("c", ["a", "b"])


def test_bind_tools_checks_the_choice_when_binding(chat: ChatWizardCoder) -> None:
    with pytest.raises(ConfigurationError, match="Unknown tool_choice"):
        chat.bind_tools([get_weather], tool_choice="get_wether")


# -- the stand-in learned exactly what the chat model sends ------------------------------------------------
def _standard_scenarios() -> list[tuple[list[Any], dict[str, Any]]]:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    lc_tests = pytest.importorskip("langchain_tests.integration_tests.chat_models")

    @tool
    def get_weather_short(location: str) -> str:
        """Get weather at a location."""
        return "It's sunny."

    get_weather_short.name = "get_weather"
    greeting = (ChatPromptTemplate.from_messages([("human", "Hello. Please respond in the style of {answer_style}.")])
                | GenericFakeChatModel(messages=iter(["hello matey"])) | StrOutputParser()).as_tool(
        name="greeting_generator", description="Generate a greeting in a particular style of speaking.")
    human = HumanMessage
    call = AIMessage("", tool_calls=[{"name": "get_weather", "args": {"location": "San Francisco, CA"},
                                      "id": "x", "type": "tool_call"}])
    joke, _ = lc_tests._get_joke_class("pydantic")
    joke_dict, _ = lc_tests._get_joke_class("typeddict")
    joke_schema, _ = lc_tests._get_joke_class("json_schema")

    def tools(*ts: Any, choice: Any = None) -> dict[str, Any]:
        return {"tools": list(ts), **({"tool_choice": choice} if choice is not None else {})}

    return [
        ([human("Hello")], {}), ([human("Hey")], {}), ([human("hello", name="example_user")], {}),
        ([human("hello"), AIMessage("hello"), human("how are you")], {}),
        ([SystemMessage("hello"), SystemMessage("hello"), human("hello"), human("hello"), AIMessage("hello"),
          AIMessage("hello"), human("how are you")], {}),
        ([human("What is the value of magic_function(3)? Use the tool.")],
         tools(lc_tests.magic_function, choice="any")),
        ([human("What is the value of magic_function_no_args()? Use the tool.")],
         tools(lc_tests.magic_function_no_args, choice="any")),
        ([human("Using the tool, generate a Pirate greeting.")], tools(greeting, choice="any")),
        ([human("Hello!")], tools(lc_tests.magic_function, get_weather_short, choice="any")),
        ([human("Hello!")], tools(lc_tests.magic_function, get_weather_short, choice="magic_function")),
        ([human("Create a customer named '你好啊集团' (Hello Group) - a Chinese technology company")],
         tools(lc_tests.unicode_customer, choice="any")),
        ([human("Create a customer named 'こんにちは株式会社' (Hello Corporation) - a Japanese company")],
         tools(lc_tests.unicode_customer, choice="any")),
        ([human(WEATHER_QUESTION)], tools(get_weather)),
        ([human(WEATHER_QUESTION), call, ToolMessage("It's sunny.", name="get_weather", tool_call_id="x")],
         tools(get_weather)),
        ([human(BROKEN_CALL_QUESTION)], tools(get_weather)),
        *[([human("Tell me a joke about cats.")], tools(s, choice=n))
          for s, n in [(joke, "Joke"), (joke_dict, "JokeDict"), (joke_schema, "Joke")]],
        ([human(JSON_JOKE_REQUEST)], {"response_format": {"type": "json_object"}}),
    ]


def test_the_standin_was_trained_on_the_exact_prompts_the_chat_model_renders(chat: ChatWizardCoder) -> None:
    trained = {prompt for prompt, _ in training_examples()}  # the recorded data the stand-in learns
    for messages, kwargs in _standard_scenarios():
        if "tools" in kwargs:
            from wizardcoder_integrations.langchain._tools import to_openai_tools

            kwargs = {**kwargs, "tools": to_openai_tools(kwargs["tools"])}
        prompt, _, _ = _render(chat, messages, **kwargs)
        assert prompt in trained, f"not in the recorded training data (run `make standin-data`):\n{prompt}"


# -- replies -> chunks -------------------------------------------------------------------------------------
def test_tool_call_stream_splits_prose_and_calls_across_any_piece_boundaries() -> None:
    reply = ('\nLet me look.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n'
             '<tool_call>\n{"name": "f", "arguments": {"x": 2}\n</tool_call>\nDone.  \n')
    for size in (1, 2, 3, 7, len(reply)):
        stream = ToolCallStream(["f"])
        parts = [p for i in range(0, len(reply), size) for p in stream.feed(reply[i:i + size])]
        parts += stream.close()
        prose = [p for p in parts if isinstance(p, str)]
        calls = [p for p in parts if not isinstance(p, str)]
        assert "".join(prose) == "Let me look.Done.", size  # whitespace around calls is dropped
        builder = ReplyBuilder("", ["f"])
        for i in range(0, len(reply), size):
            builder.feed(StreamDelta(reply[i:i + size], ()))
        builder.feed(GenerationResult(reply, 1, 1, "stop", (), None, 0.0, 0.0))
        assert builder.reply is not None and builder.reply.text == "Let me look.\nDone.", size
        assert isinstance(calls[0], ParsedToolCall) and calls[0].arguments == {"x": 1}
        assert isinstance(calls[1], InvalidToolCall) and "not valid JSON" in calls[1].error


def test_tool_call_stream_keeps_markup_as_prose_without_tools_and_parses_an_unclosed_call() -> None:
    plain = ToolCallStream(None, parse_calls=False)
    assert "".join(str(p) for p in [*plain.feed("a <tool_call> b"), *plain.close()]) == "a <tool_call> b"
    stream = ToolCallStream(["f"])
    parts = [*stream.feed('<tool_call>\n{"name": "f", "arguments": {}}'), *stream.close()]
    assert len(parts) == 1 and isinstance(parts[0], ParsedToolCall)
    partial_tag = ToolCallStream(["f"])
    assert [*partial_tag.feed("x <tool"), *partial_tag.close()] == ["x", " <tool"]


def _events(*texts: str) -> list[Any]:
    from wizardcoder_integrations.engine import GenerationResult, StreamDelta

    return [*(StreamDelta(t, (1,)) for t in texts),
            GenerationResult("".join(texts), 10, 5, "stop", (1,) * 5, None, 0.0, 0.0)]


def _assemble(assembler: _ReplyChunks, events: list[Any]) -> list[Any]:
    return [*assembler.start(), *(c for e in events for c in assembler.feed(e))]


def test_reply_chunks_carry_metadata_once_and_invalid_calls_as_invalid() -> None:
    calls = ('<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'
             '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>')
    assembler = _ReplyChunks(ReplyBuilder("", ["f"]), "m")
    chunks = _assemble(assembler, _events(calls[:20], calls[20:]))
    assert [c.message.usage_metadata is not None for c in chunks].count(True) == 1
    assert chunks[-1].message.chunk_position == "last"
    assert chunks[-1].message.response_metadata["model_name"] == "m"
    full: AIMessageChunk = chunks[0].message
    for c in chunks[1:]:
        full = full + c.message
    assert [c["args"] for c in full.tool_calls] == [{"x": 1}]
    assert [c["name"] for c in full.invalid_tool_calls] == ["g"]
    errors = full.response_metadata["invalid_tool_call_errors"]
    assert "unknown tool 'g'" in errors[full.invalid_tool_calls[0]["id"]]
    assert full.content == "" and full.usage_metadata == {"input_tokens": 10, "output_tokens": 5,
                                                          "total_tokens": 15}


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    call = '<tool_call>\n{"name": "f", "arguments": {"x": %d}}\n</tool_call>'
    assembler = _ReplyChunks(ReplyBuilder("", ["f"], single_call=True), "m")
    chunks = _assemble(assembler, _events(call % 1, call % 2))
    tool_chunks = [tc for c in chunks for tc in c.message.tool_call_chunks]
    assert [json.loads(tc["args"]) for tc in tool_chunks] == [{"x": 1}]


def test_a_forced_prefix_is_part_of_the_reply() -> None:
    assembler = _ReplyChunks(ReplyBuilder('<tool_call>\n{"name": "f", "arguments": ', ["f"]), "m")
    chunks = _assemble(assembler, _events('{"x": 3}}', "\n</tool_call>"))
    assert [tc["args"] for c in chunks for tc in c.message.tool_call_chunks] == ['{"x": 3}']
    json_reply = _assemble(_ReplyChunks(ReplyBuilder("{", None), "m"), _events('"a": 1}'))
    assert "".join(c.message.content for c in json_reply) == '{"a": 1}'


# -- packaging ---------------------------------------------------------------------------------------------
def test_without_langchain_the_import_names_the_extra_to_install() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('langchain_core', 'langchain'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import wizardcoder_integrations.langchain\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError")
    assert "pip install 'wizardcoder-integrations[langchain]'" in out


def test_importing_the_integration_loads_no_weights_and_no_torch() -> None:
    code = ("import sys\nfrom wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM\n"
            "for _ in range(10):\n    ChatWizardCoder(); WizardCoderLLM()\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
