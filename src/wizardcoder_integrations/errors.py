"""The package's error hierarchy: every failure says what failed, why, and the fix.

::

    WizardCoderError
    ├── ConfigurationError        the caller's mistake (bad setting, bad request)        HTTP 400
    │   └── UnsupportedCheckpoint a checkpoint the fast backend cannot run               HTTP 400
    ├── ModelLoadError            weights or tokenizer could not be loaded               HTTP 500
    ├── GenerationError           generation failed                                     HTTP 500
    │   ├── EngineOverloadedError out of GPU memory, queue full: retry later            HTTP 503 + Retry-After
    │   ├── EngineClosedError     the engine was closed; its requests fail with this     HTTP 503
    │   └── GenerationTimeoutError a call ran past its ``timeout``                       HTTP 504
    ├── RemoteError               an OpenAI-compatible server did not answer as asked
    │   ├── RemoteUnavailableError cannot connect                                       HTTP 503 + Retry-After
    │   ├── RemoteRejectedError   the server answered an error status (``status``)       that status
    │   │   └── RemoteRequestRefused  400/404/413/422: the caller's mistake (also a ConfigurationError)
    │   ├── RemoteStreamError     the stream broke off mid-reply                         HTTP 502
    │   └── RemoteTimeoutError    a network wait ran out                                 HTTP 504
    ├── ToolArgumentsError        a tool was called with arguments its schema refuses     HTTP 422
    ├── SandboxError              the sandbox could not be set up or refused to run code HTTP 500
    └── MissingExtraError         an optional dependency group is not installed          HTTP 500

``http_status`` and ``retry_after_s`` are what a server maps an error to; ``retryable`` says whether the same
request may succeed later. The same cause raises the same class from every adapter and engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "ConfigurationError",
    "EngineClosedError",
    "EngineOverloadedError",
    "GenerationError",
    "GenerationTimeoutError",
    "MissingExtraError",
    "ModelLoadError",
    "RemoteError",
    "RemoteRejectedError",
    "RemoteRequestRefused",
    "RemoteStreamError",
    "RemoteTimeoutError",
    "RemoteUnavailableError",
    "SandboxError",
    "ToolArgumentsError",
    "UnsupportedCheckpoint",
    "WizardCoderError",
    "missing_extra",
    "pip_line",
    "spell_setting",
]


class WizardCoderError(Exception):
    """Base class of every error this package raises on purpose."""

    #: The HTTP status a server answers this error with.
    http_status: ClassVar[int] = 500
    #: Whether the same request may succeed if sent again later.
    retryable: ClassVar[bool] = False
    #: Seconds a client should wait before retrying (``Retry-After``); None: do not retry.
    retry_after_s: ClassVar[int | None] = None


class ConfigurationError(WizardCoderError, ValueError):
    """The caller's mistake: an invalid setting or request (unknown profile, bad sampling value, no messages).

    ``setting`` names the setting at fault by its keyword (``"revision"``, ``"base_url"``), where one is: a front
    door with its own names for settings (the command line's options) reports the error against its own name.
    """

    http_status = 400

    def __init__(self, *args: object, setting: str | None = None) -> None:
        super().__init__(*args)
        self.setting = setting


class UnsupportedCheckpoint(ConfigurationError):
    """A checkpoint's layout that the fast backend cannot run (use ``backend="eager"``)."""


class ModelLoadError(WizardCoderError):
    """The model or tokenizer could not be loaded (missing files, no GPU, ...)."""


class GenerationError(WizardCoderError):
    """Generation failed while running (not because of what the caller asked)."""


class EngineOverloadedError(GenerationError):
    """The engine cannot take this request now (out of GPU memory, queue full); retry after a pause."""

    http_status = 503
    retryable = True
    retry_after_s = 1


class EngineClosedError(GenerationError):
    """The engine was closed; queued and running requests fail with this at once."""

    http_status = 503


class GenerationTimeoutError(GenerationError, TimeoutError):
    """A call ran past its ``timeout``; its request was cancelled."""

    http_status = 504


class RemoteError(WizardCoderError):
    """An OpenAI-compatible server (vLLM, TGI, ``wizardcoder serve``) did not answer as asked."""

    http_status = 502


class RemoteUnavailableError(RemoteError):
    """The server cannot be reached (connection refused, DNS failure, reset before an answer)."""

    http_status = 503
    retryable = True
    retry_after_s = 1


class RemoteRejectedError(RemoteError):
    """The server answered an error status; ``status`` is it (429 and 5xx are worth retrying)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def http_status(self) -> int:  # type: ignore[override]
        return self.status

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status == 429 or self.status >= 500


class RemoteRequestRefused(RemoteRejectedError, ConfigurationError):
    """The server refused the request itself (HTTP 400/404/413/422): the caller's mistake, as in-process."""


class RemoteStreamError(RemoteError):
    """A streamed reply broke off before its end (server killed, connection dropped)."""


class RemoteTimeoutError(RemoteError, TimeoutError):
    """A network wait (connect, first token, next chunk) ran past the client's ``timeout``."""

    http_status = 504
    retryable = True


class ToolArgumentsError(WizardCoderError, ValueError):
    """A tool was called with arguments its schema refuses; the message names the tool and the problem."""

    http_status = 422


class SandboxError(WizardCoderError):
    """The sandbox could not be set up or refused to run code."""


class MissingExtraError(WizardCoderError, ImportError):
    """An optional dependency group is not installed."""


#: Extras that load the model in this process; a server (``base_url``) is the alternative to installing them.
ENGINE_EXTRAS = frozenset({"engine", "gptq"})
#: Where the front doors read a server's address when ``base_url`` is not passed.
BASE_URL_ENV = "WIZARDCODER_BASE_URL"


def pip_line(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'wizardcoder-integrations[{extra}]'"


def missing_extra(extra: str, module: str, *, reason: str | None = None,
                  server_hint: bool | None = None) -> MissingExtraError:
    """Build the error raised when ``module`` (from the ``extra`` group) cannot be imported.

    ``reason`` replaces "is not installed" (an import that failed otherwise); ``server_hint`` (default: for the
    engine's extras) adds that setting ``$WIZARDCODER_BASE_URL`` generates on a server instead.
    """
    hint = extra in ENGINE_EXTRAS if server_hint is None else server_hint
    message = (f"{module!r} {reason or 'is not installed'}; it comes with the {extra!r} extra: "
               f"{pip_line(extra)}")
    if hint:
        message += (f" (or set {BASE_URL_ENV}, or pass base_url=, to generate on an OpenAI-compatible server "
                    "such as `wizardcoder serve`, vLLM or TGI instead)")
    return MissingExtraError(message)


_NO_VALUE = object()


def spell_setting(setting: str, value: object = _NO_VALUE, names: Mapping[str, str] | None = None) -> str:
    """How an error message names a setting, with its value if given: as a keyword (``revision='main'``,
    ``api_key=``) or as ``names`` spells it (``{"revision": "--revision"}``: ``--revision main``; a flag's
    ``True`` is the flag alone)."""
    if names is None or setting not in names:
        return f"{setting}=" if value is _NO_VALUE else f"{setting}={value!r}"
    label = names[setting]
    return label if value is _NO_VALUE or value is True else f"{label} {value}"
