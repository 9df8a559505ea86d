"""Run untrusted, model-written Python behind a real OS boundary, fast.

Isolation is layered and the strongest available tier is picked at runtime (and reported on every
result): **A** = bubblewrap namespaces + Landlock + seccomp + rlimits, **B** = Landlock + seccomp +
rlimits (no user namespaces), **unsafe** = explicit opt-in only; in every tier each worker gets its own
cgroup (memory, pids, CPU) and, as root, its own uid. See :func:`detect_tier` and docs/sandbox.md.

>>> from wizardcoder_integrations import sandbox
>>> sandbox.run("print(6 * 7)").stdout
'42\\n'
"""

from __future__ import annotations

import threading

from .base import (
    DEFAULT_DISK_BYTES,
    DEFAULT_MAX_OPEN_FILES,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_PROCESSES,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_REUSE,
    DEFAULT_TIMEOUT_S,
    DEFAULT_UID_RANGE,
    NOBODY,
    CodeExecutor,
    ExecutionResult,
    SandboxConfig,
    SandboxExecutionError,
    SandboxSessionClosedError,
    StopReason,
)
from .executor import FilesIn, Sandbox, WeakIsolationWarning
from .session import SandboxSession
from .tiers import IsolationTier, SandboxUnavailableError, TierInfo, detect_tier

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
    "IsolationTier",
    "Sandbox",
    "SandboxConfig",
    "SandboxExecutionError",
    "SandboxSession",
    "SandboxSessionClosedError",
    "SandboxUnavailableError",
    "StopReason",
    "TierInfo",
    "WeakIsolationWarning",
    "arun",
    "detect_tier",
    "run",
]

_DEFAULTS: dict[tuple[str, tuple[str, ...]], Sandbox] = {}
_DEFAULTS_LOCK = threading.Lock()


def _default_sandbox(tier: str, allowed_packages: tuple[str, ...]) -> Sandbox:
    key = (str(tier), tuple(allowed_packages))
    with _DEFAULTS_LOCK:
        if key not in _DEFAULTS:
            _DEFAULTS[key] = Sandbox(SandboxConfig(tier=tier, allowed_packages=tuple(allowed_packages)))  # type: ignore[arg-type]
        return _DEFAULTS[key]


def run(
    code: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory: int = DEFAULT_MEMORY_BYTES,
    files_in: FilesIn | None = None,
    tier: str = "auto",
    allowed_packages: tuple[str, ...] = (),
) -> ExecutionResult:
    """Run ``code`` once in a fresh sandboxed process (a cached default :class:`Sandbox` per tier/packages)."""
    return _default_sandbox(tier, allowed_packages).run(code, timeout=timeout, memory=memory, files_in=files_in)


async def arun(
    code: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory: int = DEFAULT_MEMORY_BYTES,
    files_in: FilesIn | None = None,
    tier: str = "auto",
    allowed_packages: tuple[str, ...] = (),
) -> ExecutionResult:
    """Async :func:`run`: does not block the event loop."""
    sandbox = _default_sandbox(tier, allowed_packages)
    return await sandbox.arun(code, timeout=timeout, memory=memory, files_in=files_in)
