"""``wizardcoder generate`` on the stand-in: streamed text, JSON output, clear errors."""

from __future__ import annotations

import json

import pytest

from wizardcoder_integrations.cli import main
from wizardcoder_integrations.scenarios.tasks import CODE_TASKS


def test_generate_streams_the_answer(engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", CODE_TASKS[0].instruction, "--standin", "--greedy"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(CODE_TASKS[0].response)
    assert "[stop;" in out.err


def test_generate_json(engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", CODE_TASKS[2].instruction, "--standin", "--greedy", "--json", "--stop", "result *="]) == 0
    payload = json.loads(capsys.readouterr().out)
    response = CODE_TASKS[2].response
    assert payload["text"] == response[: response.index("result *=")]
    assert (payload["finish_reason"], payload["stop_sequence"]) == ("stop", "result *=")
    assert payload["revision"] == "main" and payload["completion_tokens"] == len(payload["token_ids"])


def test_bad_values_exit_2_with_the_reason(engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hi", "--standin", "--temperature", "-1"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_unknown_branch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "hi", "--revision", "gptq-2bit"]) == 2
    assert "Valid branches" in capsys.readouterr().err
