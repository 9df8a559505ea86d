"""langchain-tests' standard integration tests for ChatWizardCoder, run on the tiny GPTQ stand-in.

The stand-in is trained on the exact prompts these tests send (``standin/tool_examples.py``), so with
greedy decoding it calls ``magic_function``, tells the ``Joke``, answers in JSON ... as a real model would.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

pytest.importorskip("langchain_tests", reason="the 'langchain' extra (and langchain-tests) is not installed")

from langchain_tests.integration_tests import ChatModelIntegrationTests

from wizardcoder_integrations.langchain import ChatWizardCoder
from wizardcoder_integrations.standin import STANDIN_REPO, build_standin

pytestmark = pytest.mark.slow


@functools.cache
def _standin_cache() -> str:
    return str(build_standin().hub_cache)


class TestChatWizardCoderIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatWizardCoder]:
        return ChatWizardCoder

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Loaded by name from the stand-in's local hub cache, like a real repository (once per process).
        return {"model": STANDIN_REPO, "cache_dir": _standin_cache(), "local_files_only": True,
                "temperature": 0, "max_tokens": 128}

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
    def supports_anthropic_inputs(self) -> bool:
        # Anthropic-style histories (tool_use, thinking and cache_control blocks) are read for their text.
        return True

    @property
    def model_override_value(self) -> str:
        # Another checkpoint: the stand-in's act-order branch, as a local directory.
        return str(build_standin().snapshot("gptq-4bit-32g-actorder_True"))
