"""The LlamaIndex adapter imports without torch, and without its extra it says how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("llama_index.core")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_importing_the_adapter_loads_no_model_runtime():
    out = _run(
        "import sys\n"
        "from wizardcoder_integrations.llama_index import WizardCoder\n"
        "from llama_index.core.llms.function_calling import FunctionCallingLLM\n"
        "assert issubclass(WizardCoder, FunctionCallingLLM)\n"
        "print(','.join(m for m in ('torch', 'transformers', 'langchain_core') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_without_the_extra_the_error_names_the_install_line():
    out = _run(
        "import sys\n"
        "sys.modules['llama_index'] = None\n"
        "from wizardcoder_integrations.errors import MissingExtraError\n"
        "try:\n"
        "    import wizardcoder_integrations.llama_index\n"
        "except MissingExtraError as e:\n"
        "    print(e)\n"
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'wizardcoder-integrations[llama-index]'" in out.stdout
