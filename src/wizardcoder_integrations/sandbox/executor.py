"""``Sandbox``: runs each piece of code in a fresh, locked-down process (tier A, B or unsafe)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from ..errors import ConfigurationError
from .base import (
    DEFAULT_MAX_FILES,
    MAX_MEMORY_BYTES,
    MAX_TIMEOUT_S,
    MIN_MEMORY_BYTES,
    SESSION_CPU_S,
    CodeExecutor,
    ExecutionResult,
    SandboxConfig,
    SandboxExecutionError,
    _check_range,
)
from .process import SandboxProcess, remove_tree, spawn_in_background
from .tiers import (
    SANDBOX_WORKDIR,
    IsolationTier,
    TierInfo,
    bootstrap_blob,
    bwrap_argv,
    detect_tier,
    landlock_lists,
    other_can_reach,
    python_layout,
    resolve_packages,
    sandbox_env,
    worker_command,
)
from .worker import SETUP_ERROR_EXIT, pack_message

if TYPE_CHECKING:
    from .session import SandboxSession

__all__ = ["GRACE_S", "Sandbox", "WeakIsolationWarning"]

MAX_IDLE_WORKERS = 8
"""Idle workers kept for reuse beyond ``prespawn`` (one per recently concurrent caller)."""
GRACE_S = 3.0
"""Extra seconds the host waits past the timeout before it kills the worker itself (backstop)."""
FilesIn = Mapping[str, str | bytes]


def _close_all(procs: list[SandboxProcess]) -> None:
    for proc in list(procs):
        with contextlib.suppress(Exception):
            proc.close()
    procs.clear()


class WeakIsolationWarning(UserWarning):
    """The sandbox runs with less than tier A isolation (the message says what is weaker and the fix)."""


def _files_to_bytes(files_in: FilesIn | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, data in (files_in or {}).items():
        norm = os.path.normpath(name)
        if os.path.isabs(norm) or norm in (".", "..") or norm.startswith("../") or "\0" in name:
            raise ConfigurationError(f"files_in name {name!r} must be a relative path inside the workdir")
        out[norm] = data.encode() if isinstance(data, str) else bytes(data)
    return out


class Sandbox(CodeExecutor):
    """Runs untrusted Python behind an OS boundary; every :meth:`run` gets a fresh process.

    >>> sb = Sandbox(timeout=5)
    >>> sb.run("print(1 + 1)").stdout
    '2\\n'
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        cfg = config or SandboxConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.info: TierInfo = detect_tier(self.config.tier, allow_unsafe=self.config.allow_unsafe)
        self._layout = python_layout()
        self._packages = resolve_packages(self.config.allowed_packages)
        for message in self.info.warnings:
            warnings.warn(message, WeakIsolationWarning, stacklevel=2)
        self._as_root = os.geteuid() == 0
        self._reroute = self._unreachable_dirs()
        self._closed = False
        self._pool_lock = threading.Lock()
        self._spares: list[SandboxProcess] = []
        self._pending = 0
        weakref.finalize(self, _close_all, self._spares)
        self._refill()

    @property
    def tier(self) -> IsolationTier:
        """The isolation tier every execution of this sandbox gets."""
        return self.info.tier

    def __enter__(self) -> Self:
        return self

    # building a launch ------------------------------------------------------------------------
    def _unreachable_dirs(self) -> list[str]:
        """Dirs the dropped uid cannot walk to in tier B/unsafe (reached through /proc/self/fd instead)."""
        if not self._as_root or self.tier is IsolationTier.A:
            return []
        uid, gid = self.config.drop_uid, self.config.drop_gid
        dirs = [*self._layout.stdlib_dirs, *self._packages.parents]
        return sorted({d for d in dirs if not other_can_reach(d, uid, gid)})

    def _job(self, mode: str, *, code: str, timeout: float, memory: int, files: dict[str, bytes], workdir: str) -> dict:
        cfg = self.config
        cpu = SESSION_CPU_S if mode == "session" else math.ceil(timeout) + 1
        tier = self.tier
        return {
            "mode": mode,
            "code": code,
            "files": files,
            "timeout": timeout,
            "rlimits": {
                "AS": memory,
                "CPU": cpu,
                "NOFILE": cfg.max_open_files,
                "FSIZE": cfg.disk,
                "NPROC": cfg.max_processes,
                "CORE": 0,
            },
            "drop": [cfg.drop_uid, cfg.drop_gid] if self._as_root else None,
            "landlock_abi": self.info.landlock_abi if tier is not IsolationTier.UNSAFE else 0,
            "landlock": landlock_lists(self._layout, self._packages),
            "seccomp": True,
            "unix_sockets": tier is IsolationTier.A,
            "packages": self._packages.specs,
            "reroute": self._reroute,
            "workdir": workdir,
            "disk_watch": None if tier is IsolationTier.A else [cfg.disk, DEFAULT_MAX_FILES],
            "in_pidns": tier is IsolationTier.A,
            "wipe_workdir": tier is IsolationTier.A,
            "env": sandbox_env(workdir, dict(cfg.env)),
        }

    def _spawn(self) -> SandboxProcess:
        """Start a worker (bwrap or bare supervisor) that waits for its job on stdin."""
        if self.tier is IsolationTier.A:
            argv = bwrap_argv(
                self.info.bwrap_path or "bwrap",
                layout=self._layout,
                packages=self._packages,
                disk_bytes=self.config.disk,
                as_root=self._as_root,
                command=worker_command(self._layout, "{RESULT_FD}"),
            )
        else:
            argv = worker_command(self._layout, "{RESULT_FD}")
        try:
            proc = SandboxProcess(argv, env={}, cwd="/", max_output=self.config.max_output)
        except OSError as exc:
            raise SandboxExecutionError(f"could not start the sandbox worker ({argv[0]}): {exc}") from exc
        with contextlib.suppress(OSError):  # died at once: the run reports its stderr
            proc.send(bootstrap_blob())
        return proc

    def _take_worker(self) -> SandboxProcess:
        """A warm worker from the pool (refilled in the background), or a fresh one."""
        chosen = None
        with self._pool_lock:
            while self._spares and chosen is None:
                proc = self._spares.pop()
                if proc.popen.poll() is None:
                    chosen = proc
                else:
                    proc.close()
        if chosen is None:
            chosen = spawn_in_background(self._spawn).result()
        self._refill()
        return chosen

    def _refill(self) -> None:
        with self._pool_lock:
            need = self.config.prespawn - len(self._spares) - self._pending
            if self._closed or need <= 0:
                return
            self._pending += need
        for _ in range(need):
            spawn_in_background(self._spawn).add_done_callback(self._add_spare)

    def _add_spare(self, future) -> None:  # type: ignore[no-untyped-def]
        with self._pool_lock:
            self._pending -= 1
            if future.exception() is None:
                if self._closed:
                    future.result().close()
                else:
                    self._spares.append(future.result())

    def _give_back(self, proc: SandboxProcess) -> bool:
        """Return a worker that ended its run clean to the idle pool; False if the pool is full or closed."""
        with self._pool_lock:
            if self._closed or len(self._spares) >= max(self.config.prespawn, MAX_IDLE_WORKERS):
                return False
            self._spares.append(proc)
            return True

    def _launch(self, mode: str, code: str, timeout: float, memory: int | None, files_in: FilesIn | None):  # type: ignore[no-untyped-def]
        """Take a worker and hand it its job; returns (process, host workdir to delete or None)."""
        if self._closed:
            raise SandboxExecutionError("this Sandbox is closed; create a new one")
        _check_range("timeout", timeout, 0.01, MAX_TIMEOUT_S, " seconds")
        memory = self.config.memory if memory is None else memory
        _check_range("memory", memory, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES, " bytes")
        files = _files_to_bytes(files_in)
        host_workdir = None
        if self.tier is IsolationTier.A:
            workdir = SANDBOX_WORKDIR
        else:
            host_workdir = tempfile.mkdtemp(prefix="wci-sandbox-", dir=self.config.workdir_root)
            if self._as_root:
                os.chown(host_workdir, self.config.drop_uid, self.config.drop_gid)
            os.chmod(host_workdir, 0o700)
            workdir = host_workdir
        job = self._job(mode, code=code, timeout=timeout, memory=memory, files=files, workdir=workdir)
        try:
            proc = self._take_worker()
        except BaseException:
            if host_workdir:
                remove_tree(host_workdir)
            raise
        with contextlib.suppress(OSError):  # the worker died at once; its stderr says why (reported by the caller)
            proc.send(pack_message(job))
        return proc, host_workdir

    def close(self) -> None:
        """Stop the warm workers; later runs raise. Idempotent."""
        with self._pool_lock:
            self._closed = True
            spares, self._spares[:] = list(self._spares), []
        for proc in spares:
            proc.close()

    # running -----------------------------------------------------------------------------------
    def run(
        self,
        code: str,
        *,
        timeout: float | None = None,
        memory: int | None = None,
        files_in: FilesIn | None = None,
    ) -> ExecutionResult:
        """Execute ``code`` in a fresh sandboxed process; ``files_in`` are written into its workdir first."""
        timeout = self.config.timeout if timeout is None else timeout
        started = time.monotonic()
        proc, host_workdir = self._launch("run", code, timeout, memory, files_in)
        reusable = False
        try:
            frame = proc.pump(started + timeout + GRACE_S, until_frame=True)
            if frame is None:
                if proc.popen.poll() is None:
                    proc.kill()  # backstop: the supervisor did not finish in time
                proc.wait(GRACE_S)
            proc.drain_nowait()  # every process of the run is gone: its output is all in the pipes
            stdout, out_trunc = proc.stdout.take()
            stderr, err_trunc = proc.stderr.take()
            proc.runs += 1
            reusable = frame is not None and frame.get("reusable") == "1" and proc.runs < self.config.reuse
        finally:
            if not (reusable and self._give_back(proc)):
                proc.close()
            if host_workdir:
                remove_tree(host_workdir)
        return self._result(frame, stdout, stderr, out_trunc or err_trunc, time.monotonic() - started, proc.killed)

    def _result(
        self, frame: dict[str, str] | None, stdout: str, stderr: str, truncated: bool, duration: float, killed: bool
    ) -> ExecutionResult:
        if frame is None:
            if killed:
                return ExecutionResult(
                    stdout, stderr, -9, True, truncated, duration, self.tier, killed_reason="timeout"
                )
            raise SandboxExecutionError(
                f"the sandbox worker exited without a result (tier {self.tier.value}); its stderr: "
                f"{stderr.strip()[-2000:] or '<empty>'}. If bubblewrap failed, check `bwrap --version` and "
                "user-namespace support, or force tier='B'."
            )
        if "setup_error" in frame and int(frame.get("exit_code", SETUP_ERROR_EXIT)) == SETUP_ERROR_EXIT:
            raise SandboxExecutionError(
                f"the sandbox could not lock itself down (tier {self.tier.value}): {frame['setup_error']}. "
                "Nothing was executed. Check the kernel's Landlock/seccomp support (detect_tier()) and the "
                "sandbox limits (memory too low for the interpreter?)."
            )
        return ExecutionResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=int(frame.get("exit_code", -1)),
            timed_out=frame.get("timed_out") == "1",
            truncated=truncated,
            duration=duration,
            tier=self.tier,
            exception_type=frame.get("exc_type"),
            exception_message=frame.get("exc_message"),
            traceback=frame.get("traceback"),
            killed_reason=frame.get("killed_reason"),
            leftover_processes=int(frame.get("leftovers_killed", 0)),
            uid=int(frame["uid"]) if "uid" in frame else None,
            session_dead=frame.get("dead") == "1",
        )

    def session(
        self, *, timeout: float | None = None, memory: int | None = None, files_in: FilesIn | None = None
    ) -> SandboxSession:
        """A warm worker that keeps variables between :meth:`SandboxSession.run` calls (like a kernel)."""
        from .session import SandboxSession

        return SandboxSession(self, timeout=timeout, memory=memory, files_in=files_in)

    async def arun(
        self,
        code: str,
        *,
        timeout: float | None = None,
        memory: int | None = None,
        files_in: FilesIn | None = None,
    ) -> ExecutionResult:
        """Async :meth:`run` (the blocking wait runs in a thread; the event loop stays free)."""
        import asyncio

        return await asyncio.to_thread(self.run, code, timeout=timeout, memory=memory, files_in=files_in)

    def __repr__(self) -> str:
        with contextlib.suppress(Exception):
            return f"Sandbox({self.info.describe()})"
        return "Sandbox()"
