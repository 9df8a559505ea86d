"""Profiles and GPTQ branches are data looked up by exact name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wizardcoder_integrations.engine.source import resolve_source
from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.profiles import CARD_DEFAULTS, DEFAULT_MODEL, PROFILES, get_profile


def test_family_from_the_card() -> None:
    llama = ["WizardCoder-Python-34B-V1.0", "WizardCoder-Python-13B-V1.0", "WizardCoder-Python-7B-V1.0"]
    starcoder = ["WizardCoder-15B-V1.0", "WizardCoder-3B-V1.0", "WizardCoder-1B-V1.0"]
    for name in llama:
        assert (PROFILES[name].architecture, PROFILES[name].eos_token) == ("llama", "</s>")
    for name in starcoder:
        assert (PROFILES[name].architecture, PROFILES[name].eos_token) == ("gpt_bigcode", "<|endoftext|>")
    assert get_profile("WizardCoder-Python-13B-V1.0").humaneval_pass1 == 64.0
    assert CARD_DEFAULTS == {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "repetition_penalty": 1.1,
                             "max_new_tokens": 512, "do_sample": True}


def test_the_six_13b_branches() -> None:
    branches = {b.name: (b.bits, b.group_size, b.desc_act) for b in get_profile("WizardCoder-Python-13B-V1.0").branches}
    assert branches == {
        "main": (4, 128, False),
        "gptq-4bit-32g-actorder_True": (4, 32, True),
        "gptq-4bit-64g-actorder_True": (4, 64, True),
        "gptq-4bit-128g-actorder_True": (4, 128, True),
        "gptq-8bit--1g-actorder_True": (8, -1, True),
        "gptq-8bit-128g-actorder_True": (8, 128, True),
    }


def test_unknown_branch_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_source(DEFAULT_MODEL, "gptq-3bit")
    assert "gptq-3bit" in str(err.value)
    assert "gptq-4bit-32g-actorder_True" in str(err.value) and "main" in str(err.value)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"WizardCoder-Python-13B-V1\.0"):
        get_profile("WizardCoder-13B")


def test_profile_and_repo_must_agree() -> None:
    with pytest.raises(ConfigurationError, match="does not match repository"):
        resolve_source(DEFAULT_MODEL, profile="WizardCoder-Python-7B-V1.0")


def test_not_a_dir_nor_a_repo_id() -> None:
    with pytest.raises(ConfigurationError, match="neither an existing directory nor a Hub repository"):
        resolve_source("./no/such/dir")


def test_defaults_resolve_to_main_of_the_13b_repo() -> None:
    source = resolve_source(DEFAULT_MODEL)
    assert (source.model, source.revision, source.profile.name) == (
        "TheBloke/WizardCoder-Python-13B-V1.0-GPTQ", "main", "WizardCoder-Python-13B-V1.0")


@pytest.mark.parametrize(("model", "revision", "profile", "setting"), [
    ("./no/such/dir", None, None, "model"),
    ("not-a-repo-id", None, None, "model"),
    (DEFAULT_MODEL, "gptq-3bit", None, "revision"),
    (DEFAULT_MODEL, None, "WizardCoder-9B", "profile"),
    (DEFAULT_MODEL, None, "WizardCoder-Python-7B-V1.0", "profile"),
])
def test_each_error_names_its_setting(model: str, revision: str | None, profile: str | None, setting: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        resolve_source(model, revision, profile=profile)
    assert err.value.setting == setting


def test_a_revision_of_a_local_directory_is_spelled_the_callers_way(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"revision='gptq-x' only applies to Hub repositories") as err:
        resolve_source(str(tmp_path), "gptq-x")
    assert err.value.setting == "revision"
    with pytest.raises(ConfigurationError, match=r"--revision gptq-x only applies .* Drop --revision,"):
        resolve_source(str(tmp_path), "gptq-x", names={"revision": "--revision"})


def test_checking_the_checkpoint_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from wizardcoder_integrations.engine.source import resolve_source\n"
        "resolve_source('TheBloke/WizardCoder-Python-13B-V1.0-GPTQ', 'gptq-4bit-32g-actorder_True')\n"
        "print([m for m in ('torch', 'transformers') if m in sys.modules])\n"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"
