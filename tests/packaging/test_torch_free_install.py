"""The wheel with only ``[remote,langchain]``: the core and the LangChain adapter import, the CLI answers
``--help``, and every path that needs another extra raises ``MissingExtraError`` with its ``pip install`` line.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import TorchFree

pytestmark = pytest.mark.venv

#: Each path, run in the torch-free environment: what it does, and the extra its error must name.
PATHS = {
    "ChatWizardCoder().invoke": ("from wizardcoder_integrations.langchain import ChatWizardCoder\n"
                                 "ChatWizardCoder().invoke('hi')", "gptq"),
    "WizardCoderLLM().invoke": ("from wizardcoder_integrations.langchain import WizardCoderLLM\n"
                                "WizardCoderLLM().invoke('hi')", "gptq"),
    "Engine": ("from wizardcoder_integrations.engine import Engine", "gptq"),
    "standin": ("import wizardcoder_integrations.standin", "gptq"),
    "llama_index": ("import wizardcoder_integrations.llama_index", "llama-index"),
    "llama_index tools": ("import wizardcoder_integrations.tools.llama_index", "llama-index"),
    "llama_index agents": ("import wizardcoder_integrations.agents.llama_index", "llama-index"),
    "langchain agents": ("import wizardcoder_integrations.agents.langchain", "agents"),
    "langgraph agents": ("import wizardcoder_integrations.agents.langgraph", "agents"),
    "create_app": ("from wizardcoder_integrations.server import create_app\ncreate_app(None)", "serve"),
    "serve": ("from wizardcoder_integrations.server import serve\nserve(None)", "serve"),
    "load_humaneval": ("from wizardcoder_integrations.eval.humaneval_check import load_humaneval\n"
                       "load_humaneval()", "eval"),
}
PROBE = """
import json, sys
from wizardcoder_integrations.errors import MissingExtraError
out = {}
for name, code in json.loads(sys.argv[1]).items():
    try:
        exec(code, {})
        out[name] = "no error"
    except MissingExtraError as e:
        out[name] = str(e)
    except BaseException as e:
        out[name] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcomes(torch_free: TorchFree) -> dict[str, str]:
    probe = torch_free.python(PROBE, json.dumps({k: code for k, (code, _) in PATHS.items()}))
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout)


def test_the_core_and_the_langchain_adapter_import_without_torch(torch_free: TorchFree) -> None:
    probe = torch_free.python(
        "import sys, wizardcoder_integrations, wizardcoder_integrations.chat, wizardcoder_integrations.langchain\n"
        "from wizardcoder_integrations.langchain import ChatWizardCoder\n"
        "ChatWizardCoder(); print(','.join(m for m in ('torch', 'transformers', 'llama_index') if m in sys.modules))")
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip() == ""


@pytest.mark.parametrize("path", PATHS)
def test_a_path_that_needs_a_missing_extra_names_it(outcomes: dict[str, str], path: str) -> None:
    extra = PATHS[path][1]
    message = outcomes[path]
    assert f"pip install 'wizardcoder-integrations[{extra}]'" in message, message
    assert ("or set WIZARDCODER_BASE_URL" in message) == (extra == "gptq" and path != "standin"), message


def test_the_command_line_answers_help(torch_free: TorchFree) -> None:
    helped = torch_free.run("wizardcoder", "--help")
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "generate" in helped.stdout and "serve" in helped.stdout


def test_a_model_command_without_a_server_says_what_to_install(torch_free: TorchFree) -> None:
    failed = torch_free.run("wizardcoder", "generate", "hi",
                            env={k: v for k, v in os.environ.items() if not k.startswith("WIZARDCODER_")})
    assert failed.returncode == 1  # not a usage error (2): the arguments are fine, an extra is missing
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert "pip install 'wizardcoder-integrations[gptq]'" in failed.stderr
    assert "or set WIZARDCODER_BASE_URL" in failed.stderr


def test_install_size_and_time_are_recorded(torch_free: TorchFree, record_property: pytest.RecordProperty) -> None:
    size = torch_free.site_packages_bytes()
    added = size - torch_free.venv_bytes
    mib = 2**20
    record_property("site_packages_mib", round(size / mib, 1))
    record_property("added_mib", round(added / mib, 1))
    record_property("install_s", round(torch_free.install_s, 1))
    print(f"\n[remote,langchain] without torch: site-packages {size / mib:.1f} MiB ({added / mib:.1f} MiB over the "
          f"bare venv's pip and setuptools), pip install {torch_free.install_s:.1f} s")
    assert added < 100 * mib, "the torch-free install grew past 100 MiB: did a heavy dependency slip in?"
