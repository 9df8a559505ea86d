"""The WizardCoder family as data: architectures, stop tokens, GPTQ branches and the card's defaults.

Everything a user can name (a profile, a GPTQ repository, a branch) is looked up here by exact name;
an unknown name is a :class:`ConfigurationError` that lists the valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wizardcoder_integrations.errors import ConfigurationError

__all__ = [
    "CARD_DEFAULTS",
    "DEFAULT_MODEL",
    "DEFAULT_REVISION",
    "PROFILES",
    "GPTQBranch",
    "ModelProfile",
    "get_profile",
    "profile_for_repo",
]

#: Sampling defaults from the WizardCoder model card.
CARD_DEFAULTS: dict[str, Any] = {
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 40,
    "repetition_penalty": 1.1,
    "max_new_tokens": 512,
    "do_sample": True,
}

DEFAULT_MODEL = "TheBloke/WizardCoder-Python-13B-V1.0-GPTQ"
DEFAULT_REVISION = "main"


@dataclass(frozen=True)
class GPTQBranch:
    """One quantisation of a GPTQ repository, published as a git branch."""

    name: str
    bits: int
    group_size: int  # -1 = one group per column ("--1g")
    desc_act: bool
    size_gb: float | None = None

    def describe(self) -> str:
        group = "no grouping" if self.group_size == -1 else f"group size {self.group_size}"
        order = "act-order" if self.desc_act else "no act-order"
        size = f", {self.size_gb:.2f} GB" if self.size_gb is not None else ""
        return f"{self.name} ({self.bits}-bit, {group}, {order}{size})"


@dataclass(frozen=True)
class ModelProfile:
    """A WizardCoder variant: how to prompt it, where it stops, and what its checkpoint looks like."""

    name: str
    architecture: str  # transformers' config.model_type
    eos_token: str
    humaneval_pass1: float | None
    gptq_repo: str | None
    branches: tuple[GPTQBranch, ...] = ()
    #: config.json values a checkpoint of this profile must have (checked on load).
    expected_config: dict[str, Any] = field(default_factory=dict)
    hidden_size: int | None = None

    @property
    def stop(self) -> tuple[str, ...]:
        return (self.eos_token,)

    def branch(self, name: str) -> GPTQBranch:
        """The branch called ``name``; a clear error naming the valid ones otherwise."""
        for branch in self.branches:
            if branch.name == name:
                return branch
        valid = ", ".join(b.name for b in self.branches) or "(none: this profile has no GPTQ repository)"
        raise ConfigurationError(
            f"Unknown GPTQ branch {name!r} for {self.gptq_repo or self.name}. Valid branches: {valid}."
        )


_LLAMA_13B_BRANCHES = (
    GPTQBranch("main", 4, 128, False, 7.26),
    GPTQBranch("gptq-4bit-32g-actorder_True", 4, 32, True, 8.00),
    GPTQBranch("gptq-4bit-64g-actorder_True", 4, 64, True, 7.51),
    GPTQBranch("gptq-4bit-128g-actorder_True", 4, 128, True, 7.26),
    GPTQBranch("gptq-8bit--1g-actorder_True", 8, -1, True, 13.36),
    GPTQBranch("gptq-8bit-128g-actorder_True", 8, 128, True, 13.65),
)
_MAIN_ONLY = (GPTQBranch("main", 4, 128, False),)

_profiles = [
    ModelProfile(
        "WizardCoder-Python-34B-V1.0", "llama", "</s>", 73.2, "TheBloke/WizardCoder-Python-34B-V1.0-GPTQ",
        _MAIN_ONLY, {"hidden_size": 8192, "num_hidden_layers": 48},
    ),
    ModelProfile(
        "WizardCoder-Python-13B-V1.0", "llama", "</s>", 64.0, DEFAULT_MODEL, _LLAMA_13B_BRANCHES,
        {"hidden_size": 5120, "num_hidden_layers": 40, "vocab_size": 32001},
    ),
    ModelProfile(
        "WizardCoder-Python-7B-V1.0", "llama", "</s>", 55.5, "TheBloke/WizardCoder-Python-7B-V1.0-GPTQ",
        _MAIN_ONLY, {"hidden_size": 4096, "num_hidden_layers": 32},
    ),
    ModelProfile(
        "WizardCoder-15B-V1.0", "gpt_bigcode", "<|endoftext|>", 59.8, "TheBloke/WizardCoder-15B-1.0-GPTQ",
        _MAIN_ONLY, {"n_embd": 6144},
    ),
    ModelProfile("WizardCoder-3B-V1.0", "gpt_bigcode", "<|endoftext|>", 34.8, None, (), {"n_embd": 2816}),
    ModelProfile("WizardCoder-1B-V1.0", "gpt_bigcode", "<|endoftext|>", 23.8, None, (), {"n_embd": 2048}),
    # The offline stand-in the project builds itself (see ``standin.py``): same template, same stop token,
    # same on-disk GPTQ format and branch naming as the 13B repository, at a size that trains on a CPU.
    ModelProfile(
        "WizardCoder-Python-Tiny-Standin", "llama", "</s>", None,
        "wizardcoder-integrations/WizardCoder-Python-Tiny-Standin-GPTQ",
        (GPTQBranch("main", 4, 128, False), GPTQBranch("gptq-4bit-32g-actorder_True", 4, 32, True)),
        {"hidden_size": 128, "num_hidden_layers": 2},
    ),
]

#: Every known profile by exact name.
PROFILES: dict[str, ModelProfile] = {p.name: p for p in _profiles}


def get_profile(name: str) -> ModelProfile:
    """Look up a profile by exact name (``WizardCoder-Python-13B-V1.0``, ...)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigurationError(
            f"Unknown WizardCoder profile {name!r}. Known profiles: {', '.join(PROFILES)}."
        ) from None


def profile_for_repo(repo_id: str) -> ModelProfile | None:
    """The profile whose GPTQ repository is ``repo_id`` (exact match), or ``None``."""
    for profile in _profiles:
        if profile.gptq_repo == repo_id:
            return profile
    return None
