"""``pip install 'wizardcoder-integrations[remote,langchain]'`` without torch: the CLI works against a server.

The environment is the session's ``torch_free`` fixture (tests/conftest.py): the freshly built wheel in a
cached virtual environment that has no torch.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

from .conftest import Server

if TYPE_CHECKING:
    from conftest import TorchFree

TASK = CODE_TASKS[3]
pytestmark = pytest.mark.venv


def test_the_environment_has_no_torch(torch_free: TorchFree) -> None:
    probe = torch_free.python("import importlib.util as u; print(u.find_spec('torch'))")
    assert probe.stdout.strip() == "None"


def test_generate_and_chat_on_a_server_without_torch(torch_free: TorchFree, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIZARDCODER_")}
    generated = torch_free.run("wizardcoder", "generate", TASK.instruction, "--base-url", f"{server.url}/v1",
                               "--greedy", "--json", env=env, timeout=300)
    assert generated.returncode == 0, generated.stderr[-3000:]
    result = json.loads(generated.stdout)
    assert result["text"] == TASK.response and result["finish_reason"] == "stop"
    chatted = torch_free.run("wizardcoder", "chat", "--greedy", input=f"{TASK.instruction}\n/exit\n",
                             env={**env, "WIZARDCODER_BASE_URL": f"{server.url}/v1", "WIZARDCODER_API_KEY": "unused"},
                             timeout=300)
    assert chatted.returncode == 0, chatted.stderr[-3000:]
    assert TASK.response.strip() in chatted.stdout
