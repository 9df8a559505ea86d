"""LLaMA's tokenizer through the engine: streamed text, stop strings across pieces and token counts agree
with the non-streamed reply and with the tokenizer, for emoji, CJK, tabs and runs of spaces."""

from __future__ import annotations

import pytest

from wizardcoder_integrations.engine import Engine
from wizardcoder_integrations.engine.results import GenerationResult, StreamDelta
from wizardcoder_integrations.scenarios.tasks import TEXT_TASKS

pytestmark = pytest.mark.slow

GREEDY = {"do_sample": False}
TABLE = TEXT_TASKS[1]  # tabs, runs of spaces, emoji, CJK and kana


def _stream(engine: Engine, prompt: str, **overrides: object) -> tuple[list[StreamDelta], GenerationResult]:
    *deltas, result = list(engine.stream(prompt, **overrides))
    assert isinstance(result, GenerationResult) and all(isinstance(d, StreamDelta) for d in deltas)
    return deltas, result  # type: ignore[return-value]


def _piece_ends(engine: Engine, ids: tuple[int, ...]) -> set[int]:
    """Byte offsets in the reply where a token ends (a byte-fallback piece is one byte; "▁" is a space)."""
    ends, at = set(), 0
    for piece in engine.tokenizer.convert_ids_to_tokens(list(ids)):
        at += 1 if piece.startswith("<0x") and piece.endswith(">") else len(piece.replace("▁", " ").encode())
        ends.add(at)
    return ends


@pytest.mark.parametrize("task", TEXT_TASKS, ids=["emoji", "table"])
def test_streamed_text_is_the_reply_for_hard_text(engine: Engine, task) -> None:
    result = engine.generate([task.instruction], **GREEDY)[0]
    assert result.text == task.response
    deltas, final = _stream(engine, task.instruction, **GREEDY)
    assert "".join(d.text for d in deltas) == result.text == final.text
    assert final.token_ids == result.token_ids
    assert all("\ufffd" not in d.text for d in deltas)  # never half a character
    byte_pieces = [t for t in engine.tokenizer.convert_ids_to_tokens(list(result.token_ids)) if t.startswith("<0x")]
    assert len(byte_pieces) >= 4  # the emoji came as byte-fallback pieces, and still streamed whole


@pytest.mark.parametrize("stop", ["👋", "界 🌏", "\tHello", "    wave", "ello 👋", "ちは  😀", "\t你"])
def test_stop_strings_across_pieces_never_leak(engine: Engine, stop: str) -> None:
    full = engine.generate([TABLE.instruction], **GREEDY)[0]
    assert full.text == TABLE.response
    at = full.text.index(stop)
    start, end = len(full.text[:at].encode()), len(full.text[:at + len(stop)].encode())
    ends = _piece_ends(engine, full.token_ids[:-1])
    assert max(ends) == len(full.text.encode())
    assert start not in ends or any(start < e < end for e in ends), "the stop must span or split pieces"
    expected = full.text[:at]
    result = engine.generate([TABLE.instruction], stop=[stop], **GREEDY)[0]
    assert (result.text, result.stop_sequence, result.finish_reason) == (expected, stop, "stop")
    deltas, final = _stream(engine, TABLE.instruction, stop=[stop], **GREEDY)
    assert "".join(d.text for d in deltas) == expected == final.text


def test_counts_are_the_tokenizers(engine: Engine) -> None:
    tok = engine.tokenizer
    for text in (TABLE.response, "Hello world", "\t  x", "你好，世界 🌏"):
        assert engine.count_tokens(text) == len(tok(text, add_special_tokens=False)["input_ids"])
        assert engine.tokenize(text) == tok(text)["input_ids"] and engine.tokenize(text)[0] == 1
    assert engine.tokenize("Hello world") == [1, 15043, 3186]


def test_langchain_counts_are_the_tokenizers(engine: Engine) -> None:
    pytest.importorskip("langchain_core", reason="the 'langchain' extra is not installed")
    from langchain_core.messages import HumanMessage

    from wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM

    llm = WizardCoderLLM(engine=engine, temperature=0)
    chat = ChatWizardCoder(engine=engine, temperature=0)
    for text in (TABLE.response, "Hello world", "🦙 and 镇", "   indented\n\tcode"):
        expected = len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert llm.get_num_tokens(text) == chat.get_num_tokens(text) == expected
    messages = [HumanMessage(TABLE.instruction)]
    assert chat.get_num_tokens_from_messages(messages) == len(engine.tokenize(chat.render(messages).prompt))
    assert llm.get_num_tokens("Hello world") == 2
