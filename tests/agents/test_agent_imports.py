"""The agent modules import only their own framework, and without its extra say how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def _loaded_after(module: str) -> list[str]:
    out = _run(f"import sys, {module}\n"
               "print(','.join(m for m in ('torch', 'transformers', 'langchain_core', 'llama_index') "
               "if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_agents_package_needs_no_framework() -> None:
    assert _loaded_after("wizardcoder_integrations.agents") == []


@pytest.mark.parametrize(("module", "framework"), [
    ("wizardcoder_integrations.agents.langchain", "langchain_core"),
    ("wizardcoder_integrations.agents.llama_index", "llama_index"),
])
def test_each_agent_module_loads_only_its_framework(module: str, framework: str) -> None:
    pytest.importorskip(framework)
    assert _loaded_after(module) == [framework]


@pytest.mark.parametrize(("module", "blocked", "extra"), [
    ("wizardcoder_integrations.agents.langchain", "langchain", "agents"),
    ("wizardcoder_integrations.agents.langgraph", "langgraph", "agents"),
    ("wizardcoder_integrations.agents.llama_index", "llama_index", "llama-index"),
])
def test_without_the_extra_the_error_names_the_install_line(module: str, blocked: str, extra: str) -> None:
    out = _run(
        "import sys\n"
        f"sys.modules[{blocked!r}] = None\n"
        "from wizardcoder_integrations.errors import MissingExtraError\n"
        "try:\n"
        f"    import {module}\n"
        "except MissingExtraError as e:\n"
        "    print(e)\n"
    )
    assert out.returncode == 0, out.stderr
    assert f"pip install 'wizardcoder-integrations[{extra}]'" in out.stdout
