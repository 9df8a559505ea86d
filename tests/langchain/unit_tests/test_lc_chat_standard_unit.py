"""langchain-tests' standard unit tests for ChatWizardCoder (construction, binding, tracing params)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_tests", reason="the 'langchain' extra (and langchain-tests) is not installed")

from langchain_tests.unit_tests import ChatModelUnitTests

from wizardcoder_integrations.langchain import ChatWizardCoder
from wizardcoder_integrations.standin import STANDIN_REPO


class TestChatWizardCoderUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatWizardCoder]:
        return ChatWizardCoder

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Construction never loads weights, so the unit tests need no built stand-in.
        return {"model": STANDIN_REPO, "local_files_only": True, "temperature": 0}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        params = super().standard_chat_model_params
        # A local model has no API key, and an unknown setting is an error rather than silently ignored.
        params.pop("api_key")
        return params

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # With $WIZARDCODER_BASE_URL set the model talks to that server; nothing is contacted at construction.
        return (
            {"WIZARDCODER_BASE_URL": "http://127.0.0.1:9/v1", "WIZARDCODER_API_KEY": "env-secret"},
            {"model": "served-wizardcoder"},
            {"base_url": "http://127.0.0.1:9/v1", "api_key": "env-secret", "model": "served-wizardcoder"},
        )
