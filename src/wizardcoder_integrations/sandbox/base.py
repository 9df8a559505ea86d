"""The sandbox's small public vocabulary: limits, config, result, errors and the executor interface."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from ..errors import ConfigurationError, SandboxError
from .tiers import IsolationTier

__all__ = [
    "DEFAULT_DISK_BYTES",
    "DEFAULT_MAX_OPEN_FILES",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_MAX_PROCESSES",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_REUSE",
    "DEFAULT_TIMEOUT_S",
    "NOBODY",
    "CodeExecutor",
    "ExecutionResult",
    "SandboxConfig",
    "SandboxExecutionError",
    "SandboxSessionClosedError",
    "TierName",
]

MiB = 1 << 20

DEFAULT_TIMEOUT_S = 10.0
"""Wall-clock seconds one execution may take before everything it started is killed."""
MAX_TIMEOUT_S = 3600.0
"""Upper bound accepted for ``timeout``."""
DEFAULT_MEMORY_BYTES = 512 * MiB
"""Address-space limit (RLIMIT_AS) of every sandboxed process."""
MIN_MEMORY_BYTES = 64 * MiB
"""Below this the interpreter itself cannot start."""
MAX_MEMORY_BYTES = 1 << 40
"""Upper bound accepted for ``memory`` (1 TiB)."""
DEFAULT_DISK_BYTES = 64 * MiB
"""Size of the writable workdir (tmpfs size in tier A; polled cap in tier B) and the RLIMIT_FSIZE."""
MIN_DISK_BYTES = 1 * MiB
"""Smallest accepted workdir."""
MAX_DISK_BYTES = 64 << 30
"""Upper bound accepted for ``disk`` (64 GiB)."""
DEFAULT_MAX_OUTPUT_BYTES = 1 * MiB
"""Bytes of stdout and of stderr kept per execution; the rest is drained and dropped (truncated=True)."""
MIN_MAX_OUTPUT_BYTES = 1024
"""Smallest accepted output cap."""
DEFAULT_MAX_PROCESSES = 64
"""RLIMIT_NPROC: processes+threads of the sandbox uid (counts every sandbox sharing that uid)."""
DEFAULT_MAX_OPEN_FILES = 256
"""RLIMIT_NOFILE of every sandboxed process."""
DEFAULT_MAX_FILES = 20_000
"""Files+directories the workdir may hold in tier B (where no tmpfs caps it)."""
SESSION_CPU_S = 3600
"""RLIMIT_CPU (seconds of CPU in total) of a session's worker; one-shot runs get ceil(timeout) + 1."""
DEFAULT_REUSE = 64
"""Runs per worker by default (see ``SandboxConfig.reuse``)."""
NOBODY = 65534
"""The unprivileged uid/gid the sandbox drops to when the host runs it as root."""

TierName = Literal["auto", "A", "B", "unsafe"]


def _check_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigurationError(f"sandbox {name}={value!r} is out of range: it must be in [{low}, {high}]{unit}")


@dataclass(frozen=True)
class SandboxConfig:
    """Limits and policy of a :class:`~wizardcoder_integrations.sandbox.Sandbox` (all range-checked)."""

    tier: IsolationTier | TierName = "auto"
    """"auto" = strongest available; "A"/"B" force a tier (error if unavailable); "unsafe" needs allow_unsafe."""
    timeout: float = DEFAULT_TIMEOUT_S
    """Default wall-clock limit per execution, seconds."""
    memory: int = DEFAULT_MEMORY_BYTES
    """Default address-space limit per process, bytes."""
    disk: int = DEFAULT_DISK_BYTES
    """Workdir size cap, bytes (also the largest file that can be written)."""
    max_output: int = DEFAULT_MAX_OUTPUT_BYTES
    """Bytes kept of stdout and of stderr per execution."""
    max_processes: int = DEFAULT_MAX_PROCESSES
    """RLIMIT_NPROC for the sandbox uid."""
    max_open_files: int = DEFAULT_MAX_OPEN_FILES
    """RLIMIT_NOFILE."""
    allowed_packages: tuple[str, ...] = ()
    """Top-level third-party modules the code may import (read-only), dependencies included, e.g. ("numpy",)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the code (nothing is inherited from the host)."""
    drop_uid: int = NOBODY
    """uid to run as when the host is root."""
    drop_gid: int = NOBODY
    """gid to run as when the host is root."""
    allow_unsafe: bool = False
    """Accept the unsafe tier (seccomp + rlimits only) when neither Landlock nor namespaces exist."""
    workdir_root: str | None = None
    """Where tier B creates per-run workdirs (default: the system temp dir)."""
    prespawn: int = 1
    """Idle workers kept started ahead of time (0 = start one on demand)."""
    reuse: int = DEFAULT_REUSE
    """Runs one worker serves one after another, each in a fresh process forked from the idle worker
    (which never holds job data), with every process killed and the workdir wiped in between;
    1 = a new worker (new bubblewrap namespaces) for every run. Sessions always get their own worker."""

    def __post_init__(self) -> None:
        if self.tier not in ("auto", *IsolationTier.__members__.values(), "A", "B", "unsafe"):
            raise ConfigurationError(f"sandbox tier={self.tier!r} is unknown: use 'auto', 'A', 'B' or 'unsafe'")
        if self.tier in (IsolationTier.UNSAFE, "unsafe") and not self.allow_unsafe:
            raise ConfigurationError("sandbox tier='unsafe' also needs allow_unsafe=True (it has no FS isolation)")
        _check_range("timeout", self.timeout, 0.01, MAX_TIMEOUT_S, " seconds")
        _check_range("memory", self.memory, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES, " bytes")
        _check_range("disk", self.disk, MIN_DISK_BYTES, MAX_DISK_BYTES, " bytes")
        _check_range("max_output", self.max_output, MIN_MAX_OUTPUT_BYTES, 1 << 31, " bytes")
        _check_range("max_processes", self.max_processes, 4, 1 << 16)
        _check_range("max_open_files", self.max_open_files, 16, 1 << 20)
        _check_range("prespawn", self.prespawn, 0, 64)
        _check_range("reuse", self.reuse, 1, 1_000_000)
        _check_range("drop_uid", self.drop_uid, 1, (1 << 32) - 2)
        _check_range("drop_gid", self.drop_gid, 1, (1 << 32) - 2)
        if isinstance(self.allowed_packages, str):
            raise ConfigurationError("allowed_packages must be a sequence of names, e.g. ('numpy',), not a string")
        object.__setattr__(self, "allowed_packages", tuple(self.allowed_packages))
        for key, value in self.env.items():
            if not isinstance(key, str) or not isinstance(value, str) or "=" in key or "\0" in key + value:
                raise ConfigurationError(f"sandbox env entry {key!r} is invalid: keys/values must be plain strings")


@dataclass(frozen=True)
class ExecutionResult:
    """What one execution did. ``ok`` is True when it exited 0 within its limits."""

    stdout: str
    stderr: str
    exit_code: int
    """Exit status; negative = killed by that signal (e.g. -9)."""
    timed_out: bool
    truncated: bool
    """stdout or stderr went over ``max_output`` (the rest was drained and dropped)."""
    duration: float
    """Wall-clock seconds, as seen by the caller."""
    tier: IsolationTier
    exception_type: str | None = None
    """Class name of the exception that ended the code, e.g. "ZeroDivisionError"."""
    exception_message: str | None = None
    traceback: str | None = None
    """The formatted traceback, user frames only."""
    killed_reason: str | None = None
    """"timeout" or "disk" when the sandbox killed the code."""
    leftover_processes: int = 0
    """Processes still alive after the code finished, which the subreaper killed."""
    uid: int | None = None
    """The uid the code ran as."""
    session_dead: bool = False
    """For sessions: the worker is gone (timeout, crash, exit) and the session cannot run more code."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class SandboxExecutionError(SandboxError):
    """The sandbox itself failed (could not lock down, lost its worker, ...), not the user code."""


class SandboxSessionClosedError(SandboxError):
    """The session is closed or its worker died; start a new session."""


class CodeExecutor(abc.ABC):
    """Minimal executor interface (cf. smolagents' PythonExecutor): run code, get a result, close."""

    @abc.abstractmethod
    def run(self, code: str, *, timeout: float | None = None) -> ExecutionResult:
        """Execute ``code`` and return what happened; raises only when the sandbox itself fails."""

    async def arun(self, code: str, *, timeout: float | None = None) -> ExecutionResult:
        """Async :meth:`run`: the blocking wait happens in a worker thread, not on the event loop."""
        return await asyncio.to_thread(self.run, code, timeout=timeout)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes and files; idempotent."""

    def __enter__(self) -> CodeExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
