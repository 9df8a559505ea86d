"""The engine a front door's :class:`~wizardcoder_integrations.chat.ChatSettings` ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wizardcoder_integrations.errors import ConfigurationError
from wizardcoder_integrations.extras import extra_imports

if TYPE_CHECKING:
    from wizardcoder_integrations.chat.settings import ChatSettings
    from wizardcoder_integrations.engine.protocol import EngineProtocol

__all__ = ["open_engine"]


def open_engine(settings: ChatSettings, model: str | None = None) -> EngineProtocol:
    """The engine of ``model`` (default: the settings' own), built once per process and shared.

    ``settings.engine`` is used as given; with ``base_url`` a ``RemoteEngine`` shared by every front door using
    the same server, model and key (retries are the driver's, so the engine makes none itself); otherwise the
    weights load in this process (:meth:`Engine.load`, one holder per call).
    """
    if settings.engine is not None:
        if model is not None and model != settings.model:
            raise ConfigurationError(
                f"model={model!r} per call, but this object was given an engine of {settings.model!r}: build "
                "another object for that model.")
        return settings.engine
    if settings.base_url is not None:
        from wizardcoder_integrations.engine.remote import shared_remote_engine

        served = model if model is not None else (settings.model if "model" in settings.model_fields_set
                                                  else None)
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        return shared_remote_engine(settings.base_url, model=served, api_key=key, profile=settings.profile,
                                    timeout=settings.timeout, max_retries=0)
    with extra_imports("gptq"):
        from wizardcoder_integrations.engine.engine import Engine

    return Engine.load(settings.model if model is None else model, settings.revision if model is None else None,
                       profile=settings.profile, device=settings.device, cache_dir=settings.cache_dir,
                       local_files_only=settings.local_files_only)
