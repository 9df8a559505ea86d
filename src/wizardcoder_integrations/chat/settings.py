"""The one settings model of every front door: which model, where it runs, how to sample, limits.

Each setting has one name and one default here (``None`` means "the engine's default", i.e. the model
card's); the LangChain and LlamaIndex classes inherit these fields, ``wizardcoder serve`` maps its request
fields onto the same per-call names.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from wizardcoder_integrations.errors import BASE_URL_ENV, ConfigurationError, spell_setting
from wizardcoder_integrations.profiles import DEFAULT_MODEL

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_MAX_RETRIES",
    "LOCAL_ONLY_SETTINGS",
    "SAMPLING_KEYS",
    "ChatSettings",
    "resolve_backend",
    "stop_strings",
]

#: Read when ``base_url`` / ``api_key`` are not passed.
API_KEY_ENV = "WIZARDCODER_API_KEY"
#: Settings that only mean something when the weights are loaded in this process.
LOCAL_ONLY_SETTINGS = ("revision", "device", "cache_dir", "local_files_only")
#: Per-call options that override a sampling setting for that call (same names as the fields).
SAMPLING_KEYS = ("temperature", "max_tokens", "top_p", "top_k", "repetition_penalty", "do_sample", "seed")
#: Retries of a failed call when ``max_retries`` is not given (or given as ``None``, as ChatOpenAI takes it).
DEFAULT_MAX_RETRIES = 2
#: The allowed range of each numeric setting: (check, how to say it).
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "temperature": (lambda v: v >= 0, ">= 0 (0 = greedy)"),
    "max_tokens": (lambda v: v >= 1, ">= 1"),
    "top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "top_k": (lambda v: v >= 0, ">= 0 (0 keeps every token)"),
    "repetition_penalty": (lambda v: v > 0, "> 0 (1 = none)"),
    "timeout": (lambda v: v > 0, "> 0 seconds"),
    "max_retries": (lambda v: v >= 0, ">= 0"),
}


class ChatSettings(BaseModel):
    """Settings common to every front door; ``None`` leaves a sampling value at the model card's default."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str = DEFAULT_MODEL
    """Hub repository id (a GPTQ repo such as TheBloke's) or local directory of the checkpoint; with
    ``base_url``, the served model's name."""
    base_url: str | None = None
    """An OpenAI-compatible server to generate on instead of loading weights (vLLM, TGI, ``wizardcoder serve``),
    e.g. ``http://host:8000/v1`` (default: ``$WIZARDCODER_BASE_URL``, else in-process)."""
    api_key: SecretStr | None = Field(default=None, repr=False)
    """Bearer token for ``base_url`` (default: ``$WIZARDCODER_API_KEY``)."""
    revision: str | None = None
    """GPTQ branch of a Hub repository, e.g. ``gptq-4bit-32g-actorder_True`` (default ``main``)."""
    profile: str | None = None
    """Model profile name, for a checkpoint whose repository is not a known one."""
    device: str | None = None
    """Where to run: ``cuda``, ``cuda:1``, ``cpu`` ... (default: the first GPU, else the CPU)."""
    cache_dir: str | None = None
    """Hugging Face cache directory to load from (default: the standard HF cache)."""
    local_files_only: bool | None = None
    """Never download; load only what is in the cache (default: follow ``HF_HUB_OFFLINE``)."""
    engine: Any = Field(default=None, exclude=True, repr=False)
    """An engine (anything implementing :class:`~wizardcoder_integrations.engine.protocol.EngineProtocol`:
    a loaded ``Engine``, a ``RemoteEngine``) to use instead of building one."""
    temperature: float | None = None
    """Sampling temperature; 0 decodes greedily (default: the card's 0.7)."""
    max_tokens: int | None = None
    """Most tokens to generate per reply (default: the card's 512)."""
    top_p: float | None = None
    """Nucleus sampling threshold in (0, 1] (default: the card's 0.95)."""
    top_k: int | None = None
    """Sample only among the ``top_k`` likeliest tokens; 0 keeps all (default: the card's 40)."""
    repetition_penalty: float | None = None
    """Penalty (> 0) on tokens already in the prompt or reply (default: the card's 1.1)."""
    do_sample: bool | None = None
    """Sample (True) or decode greedily (False) (default: the card's True)."""
    seed: int | None = None
    """Seed of each request's own random generator, for reproducible sampling."""
    stop: list[str] | None = None
    """Strings that end every reply (per-call ``stop`` strings are added to these); one string is a list of one."""
    timeout: float | None = None
    """Seconds one call may take, in-process or over HTTP; past it the request is cancelled and a
    ``GenerationTimeoutError`` raised (default: no limit; over HTTP each network wait is bounded by 120 s)."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """Retries of a call that failed before producing any text with a retryable error (out of GPU memory,
    server unreachable, 429/5xx answers), with exponential backoff from 0.5 s; ``None`` means the default (2),
    as in ChatOpenAI."""

    def __init__(self, **data: Any) -> None:
        """Validate the settings; any invalid one is a ``ConfigurationError`` naming the field and the problem."""
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise ConfigurationError(_settings_problems(type(self), e)) from e

    @model_validator(mode="before")
    @classmethod
    def _resolve_backend(cls, data: Any) -> Any:
        """``base_url``/``api_key`` from the environment; ``engine``, ``base_url`` and local settings exclusive."""
        if not isinstance(data, dict):
            return data
        api_key = data.get("api_key")
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        base_url, api_key = resolve_backend(data.get("base_url"), api_key, engine=data.get("engine"),
                                            **{name: data.get(name) for name in LOCAL_ONLY_SETTINGS})
        return {**data, "base_url": base_url, "api_key": api_key}

    @model_validator(mode="after")
    def _model_matches_engine(self) -> ChatSettings:
        """A passed ``engine`` names the model; an explicit ``model=`` must be the same one."""
        if self.engine is None:
            return self
        if not callable(getattr(self.engine, "stream", None)):
            raise ConfigurationError(
                f"engine must be a loaded Engine, a RemoteEngine or another EngineProtocol implementation, got "
                f"{type(self.engine).__name__}; build one with Engine.load(...) or RemoteEngine(base_url), or pass "
                "model=... (in-process) or base_url=... (a server) instead."
            )
        served = self.engine.model_name
        if "model" in self.model_fields_set and not _same_checkpoint(self.model, served):
            raise ConfigurationError(
                f"model={self.model!r} but the engine passed holds {served!r}: drop model=, or pass the engine "
                "of that model."
            )
        self.model = served
        return self

    @field_validator("temperature", "max_tokens", "top_p", "top_k", "repetition_penalty", "timeout",
                     "max_retries")
    @classmethod
    def _check_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        """Each number inside its range (see :data:`RANGES`)."""
        if value is None:
            return value
        check, rule = RANGES[info.field_name or ""]
        if not check(value):
            raise ValueError(f"{info.field_name} must be {rule}, got {value}")
        return value

    @field_validator("max_retries", mode="before")
    @classmethod
    def _default_retries(cls, value: Any) -> Any:
        """``None`` means the default number of retries (LangChain's convention, e.g. ChatOpenAI's)."""
        return DEFAULT_MAX_RETRIES if value is None else value

    @field_validator("stop", mode="before")
    @classmethod
    def _check_stop(cls, value: Any) -> list[str] | None:
        return None if value is None else stop_strings(value)

    # -- per call -------------------------------------------------------------------------------------------
    def sampling(self, call: dict[str, Any] | None = None, stop: str | Sequence[str] | None = None,
                 ) -> dict[str, Any]:
        """Engine overrides of one call: these settings, then the call's (``None`` keeps the default).

        ``max_tokens`` becomes the engine's ``max_new_tokens``; ``stop`` strings are these settings', then the
        call's ``stop`` argument, in order and without repeats.
        """
        call = call or {}
        values = {key: getattr(self, key) for key in SAMPLING_KEYS}
        values.update({key: call[key] for key in SAMPLING_KEYS if call.get(key) is not None})
        overrides = {("max_new_tokens" if key == "max_tokens" else key): value for key, value in values.items()}
        stops = [*(self.stop or []), *stop_strings(stop)]
        overrides["stop"] = list(dict.fromkeys(stops)) or None
        return overrides


def stop_strings(stop: str | Sequence[str] | None) -> list[str]:
    """``stop`` as a list of strings (one string is a list of one); anything else is a ``ConfigurationError``."""
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    elif not isinstance(stop, Sequence):
        raise ConfigurationError(f"stop must be a string or a list of strings, got {type(stop).__name__}")
    if any(not isinstance(s, str) or not s for s in stop):
        raise ConfigurationError(f"stop strings must be non-empty strings, got {list(stop)!r}")
    return list(stop)


def _settings_problems(cls: type[BaseModel], error: ValidationError) -> str:
    """One line naming each invalid setting and why; an unknown one with the close names and the valid ones."""
    problems, unknown = [], False
    for err in error.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            unknown = True
            close = difflib.get_close_matches(name, cls.model_fields, n=1)
            problems.append(f"{name}: unknown setting" + (f" (did you mean {close[0]!r}?)" if close else ""))
        else:
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    valid = f" Valid settings: {', '.join(sorted(cls.model_fields))}." if unknown else ""
    return f"Invalid {cls.__name__} settings: {'; '.join(problems)}.{valid}"


def resolve_backend(base_url: str | None, api_key: str | None, *, engine: Any = None,
                    names: Mapping[str, str] | None = None, **local: Any) -> tuple[str | None, str | None]:
    """The server to use (``None``: in-process) and its API key, or a clear error.

    ``base_url`` falls back to ``$WIZARDCODER_BASE_URL`` and ``api_key`` to ``$WIZARDCODER_API_KEY`` (never to
    ``OPENAI_API_KEY``: that key is not meant for your own servers). An explicit ``engine`` wins over the
    environment; ``local`` holds the settings that only apply to loading weights in-process. An error is a
    :class:`ConfigurationError` whose ``setting`` is the one to change; ``names`` spells the settings in its
    message the caller's way (default: as keywords, ``base_url=``; see :func:`spell_setting`).
    """
    if engine is not None:
        if base_url is not None:
            raise ConfigurationError(
                "Pass base_url= or engine=, not both: base_url= builds a RemoteEngine itself. To configure one "
                "yourself, pass engine=RemoteEngine(base_url, ...) alone.", setting="base_url")
        if api_key is not None:
            raise ConfigurationError("api_key= goes with base_url=; with engine=RemoteEngine(...) pass api_key to "
                                     "the RemoteEngine.", setting="api_key")
        return None, None
    origin = spell_setting("base_url", base_url, names)
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or None
        origin = f"${BASE_URL_ENV}={base_url!r}"
    if base_url is None:
        if api_key is not None:
            raise ConfigurationError(
                f"{spell_setting('api_key', names=names)} is only used with a remote server: pass "
                f"{spell_setting('base_url', names=names)} too, or drop it.", setting="api_key")
        return None, None
    for name, value in local.items():
        if value is None or (name == "revision" and value == "main"):
            continue
        why = (f"the server decides which branch it serves: start it with --revision {value} and drop "
               f"{spell_setting(name, names=names)}" if name == "revision"
               else "it only applies to loading the weights in this process; drop it")
        raise ConfigurationError(f"{spell_setting(name, value, names)} cannot be used with {origin}: {why}.",
                                 setting=name)
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    return base_url, api_key


def _same_checkpoint(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()
