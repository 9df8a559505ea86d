"""``wizardcoder`` arguments: --version, -v/-q, help everywhere, every value checked before any loading, and
one-line errors at run time. No model is loaded here."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from wizardcoder_integrations import cli
from wizardcoder_integrations.errors import ConfigurationError, ModelLoadError


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to load a model."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model was loaded although an argument was invalid")

    import wizardcoder_integrations.demo

    monkeypatch.setattr(cli, "_load_engine", refuse)
    monkeypatch.setattr(wizardcoder_integrations.demo, "pick_engine", refuse)
    monkeypatch.delenv("WIZARDCODER_BASE_URL", raising=False)
    monkeypatch.delenv("WIZARDCODER_API_KEY", raising=False)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wizardcoder {version('wizardcoder-integrations')}"


BAD_ARGUMENTS = [
    (["generate", "hi", "--temperature", "-1"], "--temperature", ">= 0"),
    (["generate", "hi", "--temperature", "nan"], "--temperature", ">= 0"),
    (["generate", "hi", "--temperature", "warm"], "--temperature", "invalid float value"),
    (["generate", "hi", "--top-p", "0"], "--top-p", "> 0 and <= 1"),
    (["generate", "hi", "--top-p", "1.5"], "--top-p", "> 0 and <= 1"),
    (["generate", "hi", "--top-k", "-1"], "--top-k", ">= 0"),
    (["generate", "hi", "--max-tokens", "0"], "--max-tokens", ">= 1"),
    (["generate", "hi", "--repetition-penalty", "0"], "--repetition-penalty", "> 0"),
    (["generate", "hi", "--stop", ""], "--stop", "must not be empty"),
    (["generate", "hi", "--device", "nonsense"], "--device", "auto, cpu, cuda or cuda:N"),
    (["generate", "hi", "--device", "cuda:x"], "--device", "auto, cpu, cuda or cuda:N"),
    (["generate", "hi", "--model", "./no/such/dir"], "--model", "no such directory"),
    (["generate", "hi", "--model", "not-a-repo-id"], "--model", "neither an existing directory nor"),
    (["generate", "hi", "--revision", "gptq-2bit"], "--revision", "Valid branches: main"),
    (["generate", "hi", "--standin", "--revision", "gptq-2bit"], "--revision", "Valid branches: main"),
    (["generate", "hi", "--profile", "WizardCoder-9B"], "--profile", "Known profiles:"),
    (["generate", "hi", "--profile", "WizardCoder-Python-7B-V1.0"], "--profile", "does not match"),
    (["generate", "hi", "--base-url", "gpu-box:8000"], "--base-url", "http(s) URL"),
    (["generate", "hi", "--base-url", "http://gpu-box:8000/v1", "--device", "cpu"], "--device", "cannot be used"),
    (["generate", "hi", "--api-key", "k"], "--api-key", "pass --base-url"),
    (["agent", "task", "--max-rounds", "0"], "--max-rounds", ">= 1 and <= 10"),
    (["chat", "--top-k", "1.5"], "--top-k", "invalid int value"),
    (["demo", "--model", "/no/such/dir"], "--model", "no such directory"),
    (["demo", "--revision", "nope"], "--revision", "Valid branches"),
    (["serve", "--port", "65536"], "--port", ">= 0 and <= 65535"),
    (["serve", "--port", "-1"], "--port", ">= 0 and <= 65535"),
    (["serve", "--max-pending", "0"], "--max-pending", ">= 1"),
    (["serve", "--host", ""], "--host", "must not be empty"),
    (["eval", "humaneval", "--samples", "0"], "--samples", ">= 1"),
    (["eval", "humaneval", "--samples", "2"], "--samples", "--temperature > 0"),
    (["eval", "humaneval", "--k", "1,ten"], "--k", "comma-separated integers >= 1"),
    (["eval", "humaneval", "--k", "1,5", "--samples", "2", "--temperature", "0.2"], "--k", "at most --samples"),
    (["eval", "humaneval", "--workers", "0"], "--workers", ">= 1"),
    (["eval", "humaneval", "--limit", "0"], "--limit", ">= 1"),
    (["eval", "humaneval", "--repair-rounds", "-1"], "--repair-rounds", ">= 0"),
    (["eval", "humaneval", "--max-new-tokens", "0"], "--max-new-tokens", ">= 1"),
    (["eval", "humaneval", "--out", "/no/such/dir/results.jsonl"], "--out", "does not exist"),
    (["-v", "-q", "generate", "hi"], "-q", "not allowed with argument -v"),
]


@pytest.mark.parametrize(("argv", "option", "expected"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _, _ in BAD_ARGUMENTS])
def test_a_bad_value_is_a_usage_error_before_loading(argv: list[str], option: str, expected: str, no_loading: None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert f"argument {option}" in out.err and expected in out.err, out.err
    assert "Traceback" not in out.err


def test_parsing_and_checking_import_no_torch() -> None:
    code = (
        "import sys\n"
        "from wizardcoder_integrations.cli import build_parser, _problem\n"
        "args = build_parser().parse_args(['generate', 'hi', '--temperature', '0.5', '--top-p', '0.9', '--top-k',"
        " '5', '--max-tokens', '9', '--device', 'cuda:1', '--revision', 'gptq-4bit-32g-actorder_True'])\n"
        "assert _problem(args) is None and args.device == 'cuda:1'\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIZARDCODER_")}
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_auto_device_is_the_default_choice() -> None:
    args = cli.build_parser().parse_args(["generate", "hi", "--device", "auto"])
    assert args.device is None


def _parsers(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{name} {choice.dest} has no help"
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}")
    return found


def test_every_option_of_every_command_has_help() -> None:
    parsers = _parsers(cli.build_parser(), "wizardcoder")
    assert {name for name, _ in parsers} >= {"wizardcoder generate", "wizardcoder demo", "wizardcoder eval humaneval"}
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("flag", ["-v", "-q"])
def test_verbosity_flags_go_before_or_after_the_command(flag: str) -> None:
    parser = cli.build_parser()
    expected = 1 if flag == "-v" else -1
    assert parser.parse_args([flag, "generate", "hi"]).verbosity == expected
    assert parser.parse_args(["generate", "hi", flag]).verbosity == expected
    assert parser.parse_args(["generate", "hi"]).verbosity == 0


def test_log_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, dict[str, bool]] = {}

    def record(args: argparse.Namespace) -> None:
        package, transformers = logging.getLogger("wizardcoder_integrations.engine"), logging.getLogger("transformers")
        seen[str(args.verbosity)] = {
            "package info": package.isEnabledFor(logging.INFO),
            "package debug": package.isEnabledFor(logging.DEBUG),
            "package warning": package.isEnabledFor(logging.WARNING),
            "transformers info": transformers.isEnabledFor(logging.INFO),
            "transformers debug": transformers.isEnabledFor(logging.DEBUG),
        }
        raise ConfigurationError("stop here")

    monkeypatch.setattr(cli, "_load_engine", record)
    monkeypatch.delenv("WIZARDCODER_BASE_URL", raising=False)
    before = logging.getLogger("transformers").level
    for flags in (["-q"], [], ["-v"]):
        assert cli.main([*flags, "generate", "hi"]) == 2
    assert seen["-1"] == {"package info": False, "package debug": False, "package warning": True,
                          "transformers info": False, "transformers debug": False}
    assert seen["0"]["package info"] and not seen["0"]["package debug"]
    assert seen["1"]["package debug"] and seen["1"]["transformers debug"]
    assert logging.root.manager.disable == logging.NOTSET and logging.getLogger("transformers").level == before


@pytest.mark.parametrize(("error", "status"), [
    (ModelLoadError("Cannot find the weights.\nDownload them first."), 1),
    (ConfigurationError("Unknown thing."), 2),
    (RuntimeError("boom"), 1),
])
def test_a_runtime_failure_is_one_line(error: Exception, status: int, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    def fail(_args: argparse.Namespace) -> None:
        raise error

    monkeypatch.setattr(cli, "_load_engine", fail)
    monkeypatch.delenv("WIZARDCODER_BASE_URL", raising=False)
    assert cli.main(["generate", "hi"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wizardcoder generate: error: ") and "Traceback" not in err
    assert " ".join(str(error).split()) in err
    assert cli.main(["-v", "generate", "hi"]) == status
    assert "Traceback" in capsys.readouterr().err


def test_stdout_to_stderr_catches_python_and_fd_writes(capfd: pytest.CaptureFixture[str]) -> None:
    with cli.stdout_to_stderr():
        print("from print")
        sys.stdout.flush()
        os.write(1, b"from fd 1\n")
    print("after")
    out = capfd.readouterr()
    assert out.out == "after\n"
    assert "from print" in out.err and "from fd 1" in out.err


def test_the_remote_rules_are_the_chat_layers_in_either_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    from wizardcoder_integrations.chat.settings import resolve_backend

    monkeypatch.delenv("WIZARDCODER_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"^device='cpu' cannot be used with base_url='http://h/v1'") as err:
        resolve_backend("http://h/v1", None, device="cpu")
    assert err.value.setting == "device"
    with pytest.raises(ConfigurationError, match=r"^--device cpu cannot be used with --base-url http://h/v1"):
        resolve_backend("http://h/v1", None, names=cli.OPTIONS, device="cpu")
    with pytest.raises(ConfigurationError, match=r"^api_key= is only used with a remote server") as err:
        resolve_backend(None, "k")
    assert err.value.setting == "api_key"
