"""``wizardcoder generate`` on the stand-in: streamed text, JSON output (alone on stdout), clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


@pytest.mark.parametrize("flags", [[], ["-q"]], ids=["default", "quiet"])
def test_generate_json_stdout_is_the_json_alone(standin, flags: list[str]) -> None:
    """Run as a command: library banners and INFO lines (gptqmodel prints them to stdout) go to stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIZARDCODER_")}
    env["PYTHONUNBUFFERED"] = "1"  # unbuffered writes: nothing may reach stdout after the redirection ends
    run = subprocess.run(
        [sys.executable, "-m", "wizardcoder_integrations.cli", *flags, "generate", CODE_TASKS[0].instruction,
         "--standin", "--greedy", "--json", "--device", "cpu"],
        capture_output=True, text=True, check=False, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    payload = json.loads(run.stdout)
    assert run.stdout == json.dumps(payload) + "\n"
    assert payload["text"] == CODE_TASKS[0].response
