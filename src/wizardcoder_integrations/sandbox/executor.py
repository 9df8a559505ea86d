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
    StopReason,
    _check_range,
)
from .cgroups import RunCounters, WorkerCgroup, cgroup_support
from .process import SandboxProcess, close_in_background, remove_tree, spawn_in_background
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
from .uids import lease_uid
from .worker import pack_message

if TYPE_CHECKING:
    from .session import SandboxSession

__all__ = ["GRACE_S", "Sandbox", "WeakIsolationWarning"]

WORKER_TASKS = 4
"""Tasks of the sandbox itself in a worker's cgroup (bwrap, idle worker, supervisor, shell) on top of
``max_processes``."""
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


_WARNED: set[str] = set()


def _searchable_by_others(path: str) -> bool:
    """Whether a uid that owns nothing on the host can walk through every directory of ``path``."""
    parts = os.path.realpath(path).split("/")
    for i in range(1, len(parts) + 1):
        try:
            if not os.stat("/".join(parts[:i]) or "/").st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


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
            if message not in _WARNED:  # once per process and message
                _WARNED.add(message)
                warnings.warn(message, WeakIsolationWarning, stacklevel=2)
        self._as_root = os.geteuid() == 0
        self._cgroups = cgroup_support() if self.info.cgroup_version else None
        # tier B as root: a per-run tmpfs in a private mount namespace; without root: a polled cap
        self._tmpfs = self.tier is IsolationTier.A or (self.tier is IsolationTier.B and self._as_root)
        self._reroute = self._unreachable_dirs()
        if self.tier is not IsolationTier.A and self._as_root:
            root = self.config.workdir_root or tempfile.gettempdir()
            if not _searchable_by_others(root):
                raise ConfigurationError(
                    f"sandbox workdir_root {root!r} cannot be walked through by the sandbox uids: make it (and "
                    "its parents) searchable by others (chmod o+x), or choose another workdir_root"
                )
        self._closed = False
        self._pool_lock = threading.Lock()
        self._spares: list[SandboxProcess] = []
        self._closing: list = []  # used workers being closed in the background
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
        uid = gid = self.config.uid_range[0]
        dirs = [*self._layout.stdlib_dirs, *self._packages.parents]
        return sorted({d for d in dirs if not other_can_reach(d, uid, gid)})

    def _job(
        self,
        mode: str,
        *,
        code: str,
        timeout: float,
        memory: int,
        files: dict[str, bytes],
        workdir: str,
        uid: int | None,
    ) -> dict:
        cfg = self.config
        if cfg.cpu_time is not None:
            cpu = math.ceil(cfg.cpu_time)
        else:
            cpu = SESSION_CPU_S if mode == "session" else math.ceil(timeout) + 1
        tier = self.tier
        return {
            "mode": mode,
            "code": code,
            "files": files,
            "timeout": timeout,
            "rlimits": {
                "AS": memory,
                "CPU": [cpu, cpu + 1],  # SIGXCPU first (a named stop), SIGKILL a second later
                "NOFILE": cfg.max_open_files,
                "FSIZE": cfg.disk,
                # with a cgroup, pids.max refuses first (and counts it); the uid's own limit is a backstop
                "NPROC": cfg.max_processes + (2 * WORKER_TASKS if self._cgroups is not None else 0),
                "CORE": 0,
            },
            "drop": [uid, uid] if uid is not None else None,
            "landlock_abi": self.info.landlock_abi if tier is not IsolationTier.UNSAFE else 0,
            "landlock": landlock_lists(self._layout, self._packages),
            "seccomp": True,
            "unix_sockets": tier is IsolationTier.A,
            "packages": self._packages.specs,
            "reroute": self._reroute,
            "workdir": workdir,
            "disk_watch": None if self._tmpfs else [cfg.disk, DEFAULT_MAX_FILES],
            "disk": cfg.disk,
            "disk_full_check": self._tmpfs,
            "notify": self.info.landlock_abi > 0,  # seccomp user notification: any kernel with Landlock has it
            "in_pidns": tier is IsolationTier.A,
            "wipe_workdir": self._tmpfs,
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
                mount_proc=self.info.landlock_abi > 0,
            )
        cfg = self.config
        lease = cgroup = None
        workdir = None
        try:
            if self.tier is not IsolationTier.A:
                if self._tmpfs:  # the mount point of the worker's private tmpfs (empty on the host)
                    workdir = tempfile.mkdtemp(prefix="wci-sandbox-", dir=cfg.workdir_root)
                argv = worker_command(self._layout, "{RESULT_FD}", (workdir, cfg.disk) if workdir else None)
            if self._as_root:
                lease = lease_uid(*cfg.uid_range)
            if self._cgroups is not None:
                cgroup = WorkerCgroup(self._cgroups)
                cgroup.set_limits(memory=cfg.memory, pids=cfg.max_processes + WORKER_TASKS, cpus=cfg.cpus)
            proc = SandboxProcess(argv, env={}, cwd="/", max_output=cfg.max_output, cgroup=cgroup, uid=lease)
            proc.workdir = workdir
        except OSError as exc:
            if workdir is not None:
                remove_tree(workdir)
            if cgroup is not None:
                cgroup.remove()
            if lease is not None:
                lease.release()
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
        proc = self._take_worker()
        uid = proc.uid.uid if proc.uid is not None else None
        host_workdir = None
        try:
            if self.tier is IsolationTier.A:
                workdir = SANDBOX_WORKDIR
            elif proc.workdir is not None:  # tier B as root: the worker's private tmpfs
                workdir = proc.workdir
            else:  # tier B without root: the run's own dir, capped by polling
                host_workdir = tempfile.mkdtemp(prefix="wci-sandbox-", dir=self.config.workdir_root)
                if uid is not None and not self._tmpfs:
                    os.chown(host_workdir, uid, uid)
                os.chmod(host_workdir, 0o700)
                workdir = host_workdir
            job = self._job(mode, code=code, timeout=timeout, memory=memory, files=files, workdir=workdir, uid=uid)
            if proc.cgroup is not None:
                proc.cgroup.set_memory(memory)
        except BaseException:
            proc.close()
            if host_workdir:
                remove_tree(host_workdir)
            raise
        proc.started = proc.runs > 0
        proc.worker_died = proc.output_overflow = False
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
        for future in list(self._closing):  # their cgroups and uids are given back before close() returns
            with contextlib.suppress(Exception):
                future.result(timeout=10)

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
            frame = self._await_frame(proc, started + timeout + GRACE_S)
            stdout, out_trunc = proc.stdout.take()
            stderr, err_trunc = proc.stderr.take()
            proc.runs += 1
            reusable = frame is not None and frame.get("reusable") == "1" and proc.runs < self.config.reuse
            result = self._result(frame, proc, stdout, stderr, out_trunc or err_trunc, time.monotonic() - started)
        finally:
            if not (reusable and self._give_back(proc)):
                with self._pool_lock:
                    self._closing = [f for f in self._closing if not f.done()]
                    self._closing.append(close_in_background(proc))
            if host_workdir:
                remove_tree(host_workdir)
        return result

    @staticmethod
    def _await_frame(proc: SandboxProcess, deadline: float) -> dict[str, str] | None:
        """The supervisor's result frame, or None after the host stopped the run (output, crash, backstop)."""
        frame = proc.pump(deadline, until_frame=True)
        if frame is None and not proc.output_overflow and time.monotonic() < deadline:
            proc.worker_died = True  # the pipes closed early: the worker is gone
        if frame is None:
            proc.kill_run()  # output over the cap, a dead supervisor, or the backstop deadline
            proc.wait(GRACE_S)
        proc.drain_nowait()  # every process of the run is gone: its output is all in the pipes
        return frame

    def _result(
        self,
        frame: dict[str, str] | None,
        proc: SandboxProcess,
        stdout: str,
        stderr: str,
        truncated: bool,
        duration: float,
    ) -> ExecutionResult:
        """The caller's result: the supervisor's frame plus what only the host knows (cgroup, output)."""
        after = proc.cgroup.counters() if proc.cgroup is not None else RunCounters()
        before, proc.before = proc.before, after  # a worker serves one run at a time: this one ends here
        cpu_time = (after.cpu_ns - before.cpu_ns) / 1e9 if proc.cgroup is not None else None
        uid = proc.uid.uid if proc.uid is not None else os.getuid()
        if frame is None:
            if proc.output_overflow:
                reason = StopReason.OUTPUT
            elif not proc.worker_died:
                reason = StopReason.TIMEOUT  # the host's backstop deadline passed
            elif after.oom_kills > before.oom_kills:
                reason = StopReason.MEMORY
            elif proc.started or not stderr.strip():  # a worker that cannot start says why on stderr
                reason = StopReason.SUPERVISOR
            else:
                raise SandboxExecutionError(
                    f"the sandbox worker exited without a result (tier {self.tier.value}); its stderr: "
                    f"{stderr.strip()[-2000:] or '<empty>'}. If bubblewrap failed, check `bwrap --version` and "
                    "user-namespace support, or force tier='B'."
                )
            return ExecutionResult(
                stdout, stderr, -9, reason is StopReason.TIMEOUT, truncated, duration, self.tier,
                stop_reason=reason, uid=uid, cpu_time=cpu_time,
            )  # fmt: skip
        if "setup_failed" in frame:
            raise SandboxExecutionError(
                f"the sandbox could not lock itself down (tier {self.tier.value}): {frame.get('setup_error')}. "
                "Nothing was executed. Check the kernel's Landlock/seccomp support (detect_tier()) and the "
                "sandbox limits (memory too low for the interpreter?)."
            )
        exit_code = int(frame.get("exit_code", -1))
        reason = StopReason(frame["stop_reason"]) if frame.get("stop_reason") else None
        if reason is not StopReason.SYSCALL and (
            after.oom_kills > before.oom_kills
            or (exit_code != 0 and reason is None and after.memory_refused > before.memory_refused)
        ):
            reason = StopReason.MEMORY
        elif reason in (None, StopReason.TIMEOUT) and exit_code != 0 and after.pids_refused > before.pids_refused:
            reason = StopReason.PIDS
        return ExecutionResult(
            stdout=stdout,
            stderr=stderr,
            exit_code=exit_code,
            timed_out=frame.get("timed_out") == "1",
            truncated=truncated,
            duration=duration,
            tier=self.tier,
            exception_type=frame.get("exc_type"),
            exception_message=frame.get("exc_message"),
            traceback=frame.get("traceback"),
            stop_reason=reason,
            syscall=frame.get("syscall"),
            leftover_processes=int(frame.get("leftovers_killed", 0)),
            uid=int(frame["uid"]) if "uid" in frame else uid,
            session_dead=frame.get("dead") == "1",
            cpu_time=cpu_time,
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
