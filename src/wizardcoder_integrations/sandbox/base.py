"""The sandbox's small public vocabulary: limits, config, result, errors and the executor interface."""

from __future__ import annotations

import abc
import asyncio
import enum
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
    "DEFAULT_UID_RANGE",
    "NOBODY",
    "CodeExecutor",
    "ExecutionResult",
    "SandboxConfig",
    "SandboxExecutionError",
    "SandboxSessionClosedError",
    "StopReason",
    "TierName",
]

MiB = 1 << 20

DEFAULT_TIMEOUT_S = 10.0
"""Wall-clock seconds one execution may take before everything it started is killed."""
MAX_TIMEOUT_S = 3600.0
"""Upper bound accepted for ``timeout``."""
DEFAULT_MEMORY_BYTES = 512 * MiB
"""Memory of the whole run (its cgroup: every process, page cache, tmpfs, shared memory, memfd, and the
sandbox's own ~15 MiB) and the address-space limit (RLIMIT_AS) of each of its processes."""
MIN_MEMORY_BYTES = 64 * MiB
"""Below this the interpreter itself cannot start."""
MAX_MEMORY_BYTES = 1 << 40
"""Upper bound accepted for ``memory`` (1 TiB)."""
DEFAULT_DISK_BYTES = 64 * MiB
"""Size of the writable workdir (a size-capped tmpfs; polled only in tier B without root) and RLIMIT_FSIZE."""
MIN_DISK_BYTES = 1 * MiB
"""Smallest accepted workdir."""
MAX_DISK_BYTES = 64 << 30
"""Upper bound accepted for ``disk`` (64 GiB)."""
DEFAULT_MAX_OUTPUT_BYTES = 1 * MiB
"""Bytes of stdout and of stderr kept per execution; the rest is drained and dropped (truncated=True)."""
MIN_MAX_OUTPUT_BYTES = 1024
"""Smallest accepted output cap."""
DEFAULT_MAX_PROCESSES = 64
"""Processes+threads of one run: its cgroup's pids.max and RLIMIT_NPROC of its own uid."""
DEFAULT_MAX_OPEN_FILES = 256
"""RLIMIT_NOFILE of every sandboxed process."""
DEFAULT_MAX_FILES = 20_000
"""Files+directories the workdir may hold in tier B (where no tmpfs caps it)."""
SESSION_CPU_S = 3600
"""RLIMIT_CPU (seconds of CPU in total) of a session's worker; one-shot runs get ceil(timeout) + 1."""
DEFAULT_REUSE = 64
"""Runs per worker by default (see ``SandboxConfig.reuse``)."""
NOBODY = 65534
"""The unprivileged "nobody" uid/gid (never used by the sandbox, which has a uid range of its own)."""
DEFAULT_UID_RANGE = (2_140_000_000, 65_536)
"""(first uid, count): the uids (and equal gids) sandbox workers run as when the host is root."""
DEFAULT_CPUS = 1.0
"""CPU cores' worth of time one run may use at once (its cgroup's CPU quota)."""


class StopReason(enum.StrEnum):
    """Why the sandbox stopped the code (``ExecutionResult.stop_reason``); None = the code ended by itself."""

    TIMEOUT = "timeout"
    """The wall-clock ``timeout`` passed."""
    CPU = "cpu"
    """A process used its CPU-time limit (``cpu_time``)."""
    MEMORY = "memory"
    """The run's memory limit was hit (a MemoryError, or the cgroup's out-of-memory kill)."""
    PIDS = "pids"
    """A fork or thread was refused at the process limit and the code failed or timed out."""
    DISK = "disk"
    """The workdir filled up (its tmpfs, the file-size limit, or tier B's polled cap)."""
    OUTPUT = "output"
    """stdout or stderr went past ``max_output``; the run was killed at once."""
    SYSCALL = "syscall"
    """A forbidden system call that no Python program makes (``ExecutionResult.syscall`` names it)."""
    SUPERVISOR = "supervisor"
    """The sandbox's supervisor died; everything of the run was killed."""
    LEFTOVER = "leftover"
    """Sessions only: a call left threads running; the session was ended so they cannot run on."""


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
    """Default memory limit of a run (whole cgroup, and RLIMIT_AS of each process), bytes."""
    disk: int = DEFAULT_DISK_BYTES
    """Workdir size cap, bytes (also the largest file that can be written)."""
    max_output: int = DEFAULT_MAX_OUTPUT_BYTES
    """Bytes kept of stdout and of stderr per execution."""
    max_processes: int = DEFAULT_MAX_PROCESSES
    """Processes+threads of a run (cgroup pids.max and RLIMIT_NPROC of its uid)."""
    cpu_time: float | None = None
    """CPU seconds each process may use (RLIMIT_CPU); None = ceil(timeout) + 1 (sessions: an hour)."""
    cpus: float = DEFAULT_CPUS
    """CPU cores' worth of time a run may use at once (cgroup quota)."""
    max_open_files: int = DEFAULT_MAX_OPEN_FILES
    """RLIMIT_NOFILE."""
    allowed_packages: tuple[str, ...] = ()
    """Top-level third-party modules the code may import (read-only), dependencies included, e.g. ("numpy",)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the code (nothing is inherited from the host)."""
    uid_range: tuple[int, int] = DEFAULT_UID_RANGE
    """(first, count): when the host is root, each worker runs as its own uid (and gid) from this range."""
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
        first, count = self.uid_range
        _check_range("uid_range first uid", first, 1000, (1 << 32) - 2)
        _check_range("uid_range count", count, 1, (1 << 32) - 2 - first)
        if self.cpu_time is not None:
            _check_range("cpu_time", self.cpu_time, 1, SESSION_CPU_S, " seconds")
        _check_range("cpus", self.cpus, 0.05, 1024)
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
    stop_reason: StopReason | None = None
    """Why the sandbox stopped the code (see :class:`StopReason`); None when it ended by itself."""
    syscall: str | None = None
    """The forbidden system call that stopped the code (stop_reason "syscall"), e.g. "reboot"."""
    leftover_processes: int = 0
    """Processes still alive after the code finished, which the subreaper killed."""
    uid: int | None = None
    """The uid the code ran as."""
    session_dead: bool = False
    """For sessions: the worker is gone (timeout, crash, exit) and the session cannot run more code."""

    cpu_time: float | None = None
    """CPU seconds the whole run used (from its cgroup; None without one)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.stop_reason is None

    @property
    def killed_reason(self) -> str | None:
        """The stop reason as a plain string (older name of :attr:`stop_reason`)."""
        return None if self.stop_reason is None else str(self.stop_reason)


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
