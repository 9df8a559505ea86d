"""The card's template byte for byte, chat rendering, and code extraction."""

from __future__ import annotations

import pytest

from wizardcoder_integrations.chat import (
    ALPACA_TEMPLATE,
    ChatMessage,
    ToolCallRecord,
    extract_code,
    extract_code_blocks,
    format_instruction,
    render_chat,
)
from wizardcoder_integrations.errors import ConfigurationError

CARD_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{prompt}\n\n### Response:"
)


def test_template_is_the_cards_bytes() -> None:
    assert ALPACA_TEMPLATE == CARD_TEMPLATE
    assert format_instruction("Write fizzbuzz.").encode() == CARD_TEMPLATE.format(prompt="Write fizzbuzz.").encode()


def test_single_user_turn_renders_as_the_template() -> None:
    assert render_chat([ChatMessage("user", "hi")]) == CARD_TEMPLATE.format(prompt="hi")


def test_system_and_history() -> None:
    text = render_chat([
        ChatMessage("system", "Answer in Python."),
        ChatMessage("user", "Add two numbers."),
        ChatMessage("assistant", "  def add(a, b): return a + b  "),
        ChatMessage("user", "Now subtract."),
    ])
    assert text == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\nAnswer in Python.\n\n### Instruction:\nAdd two numbers.\n\n### Response:\n"
        "def add(a, b): return a + b\n\n### Instruction:\nNow subtract.\n\n### Response:"
    )
    assert format_instruction("x", system="Be brief.") == render_chat(
        [ChatMessage("system", "Be brief."), ChatMessage("user", "x")])


def test_tool_turns_render_calls_and_results() -> None:
    text = render_chat([
        ChatMessage("user", "Weather?"),
        ChatMessage("assistant", "", tool_calls=(ToolCallRecord("weather", {"city": "Paris"}, "c1"),)),
        ChatMessage("tool", "sunny", name="weather", tool_call_id="c1"),
    ])
    assert '### Response:\n<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert text.endswith("### Tool Result (weather):\nsunny\n\n### Response:")


def test_trailing_assistant_turn_is_continued() -> None:
    text = render_chat([ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello")])
    assert text.endswith("### Response:\nHello")


@pytest.mark.parametrize("messages", [[], [ChatMessage("system", "only system")]])
def test_conversations_without_a_user_turn_are_errors(messages: list[ChatMessage]) -> None:
    with pytest.raises(ConfigurationError, match="user message"):
        render_chat(messages)


def test_extract_fenced_blocks() -> None:
    reply = "Here:\n```python\ndef f():\n    return 1\n```\nand\n```py\nprint(f())\n```\n```bash\nls\n```"
    assert extract_code_blocks(reply) == ["def f():\n    return 1\n", "print(f())\n"]
    assert extract_code(reply) == "def f():\n    return 1\n\nprint(f())\n"


def test_extract_unterminated_fence_and_bare_code() -> None:
    assert extract_code("```python\nx = 1\nprint(x)") == "x = 1\nprint(x)\n"
    assert extract_code("Sure, here it is:\ndef g(x):\n    return x * 2") == "def g(x):\n    return x * 2\n"
    assert extract_code("No code in this answer.") == ""
