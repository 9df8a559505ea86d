"""``pip install 'wizardcoder-integrations[remote,langchain]'`` without torch: the CLI works against a server.

The package is built as a wheel and installed into a separate virtual environment that has no torch. That
environment is kept under ~/.cache/wizardcoder-integrations (keyed by the dependency lists in pyproject.toml), so
only the first run downloads the dependencies (from PyPI, through pip's own cache); later runs reinstall just the
freshly built wheel, offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from wizardcoder_integrations.scenarios.tasks import CODE_TASKS

from .conftest import Server

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wizardcoder-integrations"
TASK = CODE_TASKS[3]


def _dependency_key() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[.*?\]", text, re.S | re.M)
    extras = re.search(r"^\[project\.optional-dependencies\].*?(?=^\[)", text, re.S | re.M)
    key = f"{deps and deps.group(0)}{extras and extras.group(0)}{sys.version}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _run(*cmd: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def torch_free(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a torch-free environment with the freshly built wheel installed."""
    wheels = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT)
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("wizardcoder_integrations-*.whl")
    env_dir = CACHE / f"torch-free-{_dependency_key()}"
    python = env_dir / "bin" / "python"
    if not (env_dir / ".complete").exists():
        venv.create(env_dir, with_pip=True, clear=True)
        deps = _run(python, "-m", "pip", "install", "-q", "-c", ROOT / "requirements" / "constraints.txt",
                    f"{wheel}[remote,langchain]")
        assert deps.returncode == 0, deps.stderr[-3000:]
        (env_dir / ".complete").touch()
    fresh = _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall", wheel)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    return env_dir / "bin"


def test_the_environment_has_no_torch(torch_free: Path) -> None:
    probe = _run(torch_free / "python", "-c", "import importlib.util as u; print(u.find_spec('torch'))")
    assert probe.stdout.strip() == "None"


def test_generate_and_chat_on_a_server_without_torch(torch_free: Path, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIZARDCODER_")}
    generated = _run(torch_free / "wizardcoder", "generate", TASK.instruction, "--base-url", f"{server.url}/v1",
                     "--greedy", "--json", env=env, timeout=300)
    assert generated.returncode == 0, generated.stderr[-3000:]
    result = json.loads(generated.stdout)
    assert result["text"] == TASK.response and result["finish_reason"] == "stop"
    chatted = _run(torch_free / "wizardcoder", "chat", "--greedy", input=f"{TASK.instruction}\n/exit\n",
                   env={**env, "WIZARDCODER_BASE_URL": f"{server.url}/v1", "WIZARDCODER_API_KEY": "unused"},
                   timeout=300)
    assert chatted.returncode == 0, chatted.stderr[-3000:]
    assert TASK.response.strip() in chatted.stdout
