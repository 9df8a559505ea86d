"""Sampling settings are checked up front; stop strings are found across token boundaries."""

from __future__ import annotations

import pytest

from wizardcoder_integrations.engine.params import SamplingParams
from wizardcoder_integrations.engine.textstream import TextStream
from wizardcoder_integrations.errors import ConfigurationError


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("temperature", -0.5, "temperature"),
    ("max_new_tokens", 0, "max_new_tokens"),
    ("top_p", 0.0, "top_p"),
    ("top_p", 1.5, "top_p"),
    ("top_k", -1, "top_k"),
    ("repetition_penalty", 0.0, "repetition_penalty"),
    ("stop", [""], "stop"),
])
def test_invalid_values_are_clear_errors(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        SamplingParams.build(**{field: value})


def test_defaults_are_the_cards_and_overridable() -> None:
    p = SamplingParams.build()
    assert (p.temperature, p.top_p, p.top_k, p.repetition_penalty, p.max_new_tokens, p.do_sample) == (
        0.7, 0.95, 40, 1.1, 512, True)
    q = SamplingParams.build(p, temperature=0.0, stop="###", max_new_tokens=7)
    assert (q.temperature, q.stop, q.max_new_tokens, q.greedy) == (0.0, ("###",), 7, True)
    assert SamplingParams.build(p, temperature=None).temperature == 0.7


def _chars(text: str, stop: list[str]) -> tuple[list[str], TextStream]:
    """Feed ``text`` one character per token (ids are code points)."""
    stream = TextStream(lambda ids: "".join(chr(i) for i in ids), stop)
    deltas = [stream.push(ord(c)) for c in text]
    deltas.append(stream.finish())
    return deltas, stream


def test_stop_across_tokens_cuts_before_the_stop() -> None:
    deltas, stream = _chars("abc###def", ["###"])
    assert stream.final_text == "abc" and stream.stop_sequence == "###"
    assert "".join(deltas) == "abc"
    assert all("#" not in d for d in deltas)


def test_partial_stop_is_held_then_released() -> None:
    deltas, stream = _chars("ab##c##", ["###"])
    assert stream.stop_sequence is None
    assert "".join(deltas) == "ab##c##" == stream.final_text
    # "##" was held back until it could no longer start "###"
    assert deltas[2] == "" and deltas[3] == ""


def test_earliest_of_several_stops_wins() -> None:
    _, stream = _chars("x = 1\nEND\nObservation:", ["Observation:", "END"])
    assert stream.final_text == "x = 1\n" and stream.stop_sequence == "END"


def test_multibyte_characters_are_never_split() -> None:
    data = "é✓".encode()
    stream = TextStream(lambda ids: bytes(ids).decode("utf-8", errors="replace"), [])
    deltas = [stream.push(b) for b in data] + [stream.finish()]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == "é✓"
