"""The core imports cheaply, and its public surface is pinned."""

from __future__ import annotations

import subprocess
import sys

import wizardcoder_integrations

EXPECTED_ALL = [
    "ConfigurationError",
    "GenerationError",
    "MissingExtraError",
    "ModelLoadError",
    "SandboxError",
    "WizardCoderError",
]


def test_all_is_pinned() -> None:
    assert sorted(wizardcoder_integrations.__all__) == sorted(EXPECTED_ALL)


def test_core_import_pulls_in_no_heavy_or_optional_package() -> None:
    code = (
        "import sys, wizardcoder_integrations, wizardcoder_integrations.prompt, "
        "wizardcoder_integrations.profiles, wizardcoder_integrations.toolcalls\n"
        "heavy = [m for m in ('torch', 'transformers', 'langchain_core', 'llama_index') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
