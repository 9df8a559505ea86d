"""The package's error hierarchy: every failure says what failed, why, and the fix."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "GenerationError",
    "MissingExtraError",
    "ModelLoadError",
    "SandboxError",
    "WizardCoderError",
]


class WizardCoderError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(WizardCoderError, ValueError):
    """A user-supplied setting is invalid (unknown profile or branch, bad sampling value, ...)."""


class ModelLoadError(WizardCoderError):
    """The model or tokenizer could not be loaded (missing files, no GPU, out of memory, ...)."""


class GenerationError(WizardCoderError):
    """Generation failed or was given an input it cannot process."""


class SandboxError(WizardCoderError):
    """The sandbox could not be set up or refused to run code."""


class MissingExtraError(WizardCoderError, ImportError):
    """An optional dependency group is not installed."""


def missing_extra(extra: str, module: str) -> MissingExtraError:
    """Build the error raised when ``module`` (from the ``extra`` group) cannot be imported."""
    return MissingExtraError(
        f"{module!r} is not installed; it comes with the {extra!r} extra: "
        f"pip install 'wizardcoder-integrations[{extra}]'"
    )
