"""The core imports cheaply, and its public surface is pinned."""

from __future__ import annotations

import subprocess
import sys

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
