"""The core imports cheaply, and its public surface is pinned."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import wizardcoder_integrations

EXPECTED_ALL = [
    "ConfigurationError",
    "EngineClosedError",
    "EngineOverloadedError",
    "GenerationError",
    "GenerationTimeoutError",
    "MissingExtraError",
    "ModelLoadError",
    "RemoteError",
    "RemoteRejectedError",
    "RemoteRequestRefused",
    "RemoteStreamError",
    "RemoteTimeoutError",
    "RemoteUnavailableError",
    "SandboxError",
    "ToolArgumentsError",
    "UnsupportedCheckpoint",
    "WizardCoderError",
]


def test_all_is_pinned() -> None:
    assert sorted(wizardcoder_integrations.__all__) == sorted(EXPECTED_ALL)


def test_core_import_pulls_in_no_heavy_or_optional_package() -> None:
    code = (
        "import sys, wizardcoder_integrations, wizardcoder_integrations.chat, "
        "wizardcoder_integrations.profiles, wizardcoder_integrations.engine.protocol\n"
        "heavy = [m for m in ('torch', 'transformers', 'langchain_core', 'llama_index') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


CHAT_ALL = [
    "ALPACA_TEMPLATE", "PREAMBLE", "SAMPLING_KEYS", "TURN_STOPS", "Call", "ChatMessage", "ChatRequest",
    "ChatSettings", "InvalidToolCall", "JsonValue", "ParsedToolCall", "RenderedRequest", "Reply", "ReplyBuilder",
    "ReplyGrammar", "ToolCallRecord", "ToolCallStream", "ToolSpec", "Usage", "aevents", "agenerate_reply", "events",
    "extract_code", "extract_code_blocks", "format_instruction", "generate_reply", "json_reply_grammar",
    "normalize_tool_choice", "parse_tool_calls", "render_chat", "render_json_chat", "render_reply",
    "render_request", "render_tool_chat", "response_format_schema",
]


def test_the_chat_layers_surface_is_pinned() -> None:
    import wizardcoder_integrations.chat as chat

    assert sorted(chat.__all__) == sorted(CHAT_ALL)


def test_every_error_maps_to_an_http_status() -> None:
    from wizardcoder_integrations import errors

    assert errors.ConfigurationError.http_status == errors.UnsupportedCheckpoint.http_status == 400
    assert (errors.EngineOverloadedError.http_status, errors.EngineOverloadedError.retry_after_s) == (503, 1)
    rejected = errors.RemoteRejectedError("busy", 429)
    assert (rejected.http_status, rejected.retryable) == (429, True)
    assert not errors.RemoteRejectedError("bad", 400).retryable
    assert issubclass(errors.GenerationTimeoutError, TimeoutError) and not errors.ToolArgumentsError.retryable


# -- the partner-style import paths ---------------------------------------------------------------------------
def test_langchain_wizardcoder_re_exports_the_langchain_classes_and_tools() -> None:
    pytest.importorskip("langchain_core")
    import langchain_wizardcoder
    from wizardcoder_integrations.langchain import ChatWizardCoder, WizardCoderLLM
    from wizardcoder_integrations.tools.langchain import PythonSandboxTool, WriteAndRunPythonTool

    assert sorted(langchain_wizardcoder.__all__) == [
        "ChatWizardCoder", "PythonSandboxTool", "WizardCoderLLM", "WriteAndRunPythonTool"]
    assert langchain_wizardcoder.ChatWizardCoder is ChatWizardCoder
    assert langchain_wizardcoder.WizardCoderLLM is WizardCoderLLM
    assert langchain_wizardcoder.PythonSandboxTool is PythonSandboxTool
    assert langchain_wizardcoder.WriteAndRunPythonTool is WriteAndRunPythonTool


def test_llama_index_llms_wizardcoder_re_exports_the_llm() -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.llms.wizardcoder import WizardCoder
    from wizardcoder_integrations.llama_index import WizardCoder as Internal

    assert WizardCoder is Internal


def test_the_wheel_ships_the_import_paths_and_none_of_llama_indexs_own_files(tmp_path: Path) -> None:
    """Built offline (no build isolation) from a copy of the tree; installed beside LlamaIndex it adds one portion."""
    root = Path(__file__).resolve().parents[1]
    project = tmp_path / "project"
    shutil.copytree(root / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", *(p.name for p in root.glob("LICENSE*"))):
        shutil.copy(root / name, project / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(project)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("wizardcoder_integrations-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "langchain_wizardcoder/__init__.py" in names
    assert "llama_index/llms/wizardcoder/__init__.py" in names
    assert [n for n in names if n.startswith("llama_index/")] == ["llama_index/llms/wizardcoder/__init__.py"]
    assert "wizardcoder_integrations/llama_index/llm.py" in names

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    assert sorted(p.relative_to(site).as_posix() for p in (site / "llama_index").rglob("*.py")) == [
        "llama_index/llms/wizardcoder/__init__.py"]
    if importlib.util.find_spec("llama_index.core") is None:
        return
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "import llama_index.core, llama_index.llms.wizardcoder as shim\n"
        f"assert shim.__file__.startswith({str(site)!r}), shim.__file__\n"
        "print(len(list(llama_index.__path__)) >= 2)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"  # LlamaIndex's own portion and the wheel's, side by side
