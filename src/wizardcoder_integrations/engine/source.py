"""Which checkpoint the caller named: a Hub repository at a GPTQ branch, or a local directory; imports no torch.

:func:`resolve_source` is the one check of ``model`` / ``revision`` / ``profile``: ``Engine.load`` makes it first,
and the command line makes it before loading anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wizardcoder_integrations.errors import ConfigurationError, spell_setting
from wizardcoder_integrations.profiles import (
    DEFAULT_MODEL,
    DEFAULT_REVISION,
    ModelProfile,
    get_profile,
    profile_for_repo,
)

__all__ = ["ModelSource", "resolve_source"]


@dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint comes from: a Hub repository at a revision, or a local directory."""

    model: str
    revision: str | None
    profile: ModelProfile | None
    cache_dir: str | None = None
    local_files_only: bool = False

    @property
    def is_local(self) -> bool:
        return Path(self.model).is_dir()

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        """Identifies the checkpoint: one engine per key (and device, dtype) per process."""
        if self.is_local:
            return (str(Path(self.model).resolve()), None, None)
        return (self.model, self.revision, self.cache_dir)

    def describe(self) -> str:
        return self.model if self.is_local else f"{self.model}@{self.revision}"


def resolve_source(
    model: str,
    revision: str | None = None,
    *,
    profile: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    names: Mapping[str, str] | None = None,
) -> ModelSource:
    """Check what the user named and fill in the defaults; errors list the valid choices.

    Each error is a :class:`ConfigurationError` whose ``setting`` is ``"model"``, ``"revision"`` or ``"profile"``;
    ``names`` spells the settings in its message the caller's way (see :func:`~wizardcoder_integrations.errors.
    spell_setting`; default: as keywords, ``revision='main'``).
    """
    chosen = _named_profile(profile)
    local = Path(model).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    if local.is_dir():
        if revision not in (None, DEFAULT_REVISION):
            raise ConfigurationError(
                f"{spell_setting('revision', revision, names)} only applies to Hub repositories; {model!r} is a "
                f"local directory, which holds one branch. Drop {spell_setting('revision', names=names)}, or point "
                "at the directory of that branch.", setting="revision")
        return ModelSource(str(local), None, chosen, None, True)
    if model.startswith(("/", ".", "~")):
        raise ConfigurationError(
            f"{model!r} is neither an existing directory nor a Hub repository id: there is no such directory "
            f"{str(local.absolute())!r}.", setting="model")
    if model.count("/") != 1:
        raise ConfigurationError(
            f"{model!r} is neither an existing directory nor a Hub repository id like {DEFAULT_MODEL!r}.",
            setting="model")
    repo_profile = profile_for_repo(model)
    if chosen is not None and repo_profile is not None and chosen is not repo_profile:
        raise ConfigurationError(
            f"Profile {chosen.name!r} does not match repository {model!r}, which is {repo_profile.name!r}. "
            f"Use {spell_setting('profile', repo_profile.name, names)} or the repository {chosen.gptq_repo!r}.",
            setting="profile")
    chosen = chosen or repo_profile
    revision = DEFAULT_REVISION if revision is None else revision
    if chosen is not None and chosen.branches:
        try:
            chosen.branch(revision)  # raises with the list of branches
        except ConfigurationError as e:
            raise ConfigurationError(str(e), setting="revision") from None
    return ModelSource(
        model, revision, chosen, None if cache_dir is None else str(cache_dir),
        offline if local_files_only is None else local_files_only,
    )


def _named_profile(name: str | None) -> ModelProfile | None:
    if name is None:
        return None
    try:
        return get_profile(name)
    except ConfigurationError as e:  # lists the known profiles
        raise ConfigurationError(str(e), setting="profile") from None
