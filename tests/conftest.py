"""Shared fixtures: offline always; the tiny stand-in is built once (cached) and loaded once per session."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def standin():
    """The built stand-in (cached across runs under ~/.cache/wizardcoder-integrations)."""
    from wizardcoder_integrations.standin import build_standin

    return build_standin()


@pytest.fixture(scope="session")
def engine(standin):
    """The stand-in's ``main`` branch (4-bit, group 128, no act-order) loaded through the engine."""
    from wizardcoder_integrations.standin import load_standin_engine

    return load_standin_engine("main")


@pytest.fixture(scope="session")
def engine_actorder(standin):
    """The stand-in's act-order branch (4-bit, group 32)."""
    from wizardcoder_integrations.standin import load_standin_engine

    return load_standin_engine("gptq-4bit-32g-actorder_True")


@pytest.fixture
def run_agent():
    """Run a LlamaIndex agent or workflow on one question: ``(result, events, [(tool, kwargs, output), ...])``."""
    from llama_index.core.agent.workflow import ToolCallResult

    async def run(agent, question: str):
        handler = agent.run(user_msg=question)
        events = [event async for event in handler.stream_events()]
        calls = [(e.tool_name, e.tool_kwargs, str(e.tool_output.content)) for e in events
                 if isinstance(e, ToolCallResult)]
        return await handler, events, calls

    return run


# -- the built distributions and a torch-free environment with the wheel installed ------------------------------
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wizardcoder-integrations"
#: The extras the torch-free environment installs: the CLI and LangChain against a server, no torch.
TORCH_FREE_EXTRAS = "remote,langchain"


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class TorchFree:
    """A virtual environment with the fresh wheel and only ``TORCH_FREE_EXTRAS`` installed."""

    bin: Path
    site_packages: Path
    install_s: float
    """Seconds ``pip install 'wheel[remote,langchain]'`` took when the environment was created."""
    venv_bytes: int
    """Size of the bare environment's site-packages (pip, setuptools), before the install."""

    def run(self, command: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run one of the environment's commands (``python``, ``wizardcoder``, ``pip``)."""
        return run(self.bin / command, *args, **kwargs)

    def python(self, code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``code`` (with ``args``) in the environment's Python, without this one's ``WIZARDCODER_*``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIZARDCODER_")}
        return self.run("python", "-c", code, *args, env={**env, **kwargs.pop("env", {})}, **kwargs)

    def site_packages_bytes(self) -> int:
        """Size of site-packages now (``du -sb``)."""
        return _size(self.site_packages)


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and not p.is_symlink())


def run(*cmd: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, capturing its output as text; never raises on a non-zero exit."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs)


def _dependency_key() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[.*?\]", text, re.S | re.M)
    extras = re.search(r"^\[project\.optional-dependencies\].*?(?=^\[)", text, re.S | re.M)
    constraints = (ROOT / "requirements" / "constraints.txt").read_text()
    key = f"{deps and deps.group(0)}{extras and extras.group(0)}{constraints}{TORCH_FREE_EXTRAS}{sys.version}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """The sdist and the wheel built from it (``python -m build``, no isolation: offline), once per session."""
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = out.glob("wizardcoder_integrations-*.whl")
    [sdist] = out.glob("wizardcoder_integrations-*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="session")
def torch_free(dist: Dist) -> TorchFree:
    """A torch-free environment with the session's wheel installed (``[remote,langchain]``).

    The environment is kept under ~/.cache/wizardcoder-integrations, keyed by the dependency lists, so only
    its first creation downloads (from the package registry, through pip's cache); later sessions reinstall
    just the fresh wheel, offline.
    """
    env_dir = CACHE / f"torch-free-{_dependency_key()}"
    python = env_dir / "bin" / "python"
    record = env_dir / "install.json"
    if not record.exists():
        venv.create(env_dir, with_pip=True, clear=True)
        [site] = (env_dir / "lib").glob("python*/site-packages")
        bare = _size(site)
        started = time.monotonic()
        deps = run(python, "-m", "pip", "install", "-q", "-c", ROOT / "requirements" / "constraints.txt",
                   f"{dist.wheel}[{TORCH_FREE_EXTRAS}]")
        assert deps.returncode == 0, deps.stderr[-3000:]
        installed_s = time.monotonic() - started
        record.write_text(json.dumps({"extras": TORCH_FREE_EXTRAS, "install_s": installed_s, "venv_bytes": bare}))
    fresh = run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall", dist.wheel)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    [site] = (env_dir / "lib").glob("python*/site-packages")
    recorded = json.loads(record.read_text())
    return TorchFree(env_dir / "bin", site, recorded["install_s"], recorded["venv_bytes"])
