"""The tiny WizardCoder stand-in: built offline, loaded through the same engine path as the real model."""

import logging
import sys

from wizardcoder_integrations.extras import extra_imports

with extra_imports("gptq", server_hint=False):
    from wizardcoder_integrations.standin.build import STANDIN_PROFILE, STANDIN_REPO, Standin, build_standin

__all__ = ["STANDIN_PROFILE", "STANDIN_REPO", "Standin", "build_standin", "load_standin_engine", "show_build_progress"]


def load_standin_engine(branch: str = "main", **kwargs):  # type: ignore[no-untyped-def]
    """Build (cached) and load the stand-in at ``branch`` through :meth:`Engine.load`."""
    from wizardcoder_integrations.engine import Engine

    standin = build_standin()
    return Engine.load(STANDIN_REPO, branch, cache_dir=standin.hub_cache, local_files_only=True, **kwargs)


def show_build_progress() -> None:
    """Show the first build's progress (minutes on a CPU) on stderr: for command-line front doors."""
    logger = logging.getLogger(__name__)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
