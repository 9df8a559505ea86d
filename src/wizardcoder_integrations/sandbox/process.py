"""Host side of one sandbox process: spawn it, feed it, drain its pipes under caps, kill it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .base import SandboxExecutionError
from .cgroups import RunCounters, WorkerCgroup
from .uids import UidLease
from .worker import decode_fields

__all__ = ["OutputBuffer", "SandboxProcess", "close_in_background", "remove_tree", "spawn_in_background"]

RESULT_FRAME_CAP = 1 << 20
"""Largest result frame the host accepts from the supervisor."""
_READ_CHUNK = 1 << 16
T = TypeVar("T")


_SPAWNER: concurrent.futures.ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def spawn_in_background(fn: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Run ``fn`` (which starts a worker) on one long-lived thread.

    PR_SET_PDEATHSIG and bwrap's --die-with-parent fire when the *thread* that forked the worker
    exits; starting every worker from a thread that lives as long as the process keeps a warm worker
    (or a session) usable from any thread, and still kills it when the process dies.
    """
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wci-sandbox-spawner")
        return _SPAWNER.submit(fn)


_REAPER: concurrent.futures.ThreadPoolExecutor | None = None


def close_in_background(proc: SandboxProcess) -> concurrent.futures.Future[None]:
    """Close a used worker off the caller's path (the run's own processes are already gone)."""
    global _REAPER
    with _SPAWNER_LOCK:
        if _REAPER is None:
            _REAPER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wci-sandbox-reaper")
        return _REAPER.submit(proc.close)


class OutputBuffer:
    """Keeps the first ``limit`` bytes of a stream and counts (but drops) the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def take(self) -> tuple[str, bool]:
        """(decoded text, truncated) and reset."""
        text = self.data.decode("utf-8", "replace")
        truncated = self.dropped > 0
        self.data = bytearray()
        self.dropped = 0
        return text, truncated


class SandboxProcess:
    """A launched worker (bwrap or bare supervisor) with its stdout/stderr/result pipes, its cgroup and uid.

    The result pipe is written only by the supervisor (the code never holds it); the host reads
    every result field there, or makes the result itself when the worker died or was killed.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None,
        cwd: str | None,
        max_output: int,
        cgroup: WorkerCgroup | None = None,
        uid: UidLease | None = None,
    ) -> None:
        self.cgroup = cgroup
        self.uid = uid
        if cgroup is not None:
            argv = cgroup.wrap(argv, shutil.which("sh") or "/bin/sh")
        result_r, result_w = os.pipe()
        try:
            self.popen = subprocess.Popen(
                [a.replace("{RESULT_FD}", str(result_w)) for a in argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(result_w,),
                env=env if env is not None else {},
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(result_r)
            raise
        finally:
            os.close(result_w)
        self.result_r = result_r
        self.stdout = OutputBuffer(max_output)
        self.stderr = OutputBuffer(max_output)
        self.frames = bytearray()
        self.selector = selectors.DefaultSelector()
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._open: dict[int, OutputBuffer | None] = {
            self.popen.stdout.fileno(): self.stdout,
            self.popen.stderr.fileno(): self.stderr,
            result_r: None,
        }
        for fd in self._open:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)
        self.pidfd = os.pidfd_open(self.popen.pid)
        self.selector.register(self.pidfd, selectors.EVENT_READ)
        self.killed = False
        self.worker_died = False
        """The worker exited while a result was awaited (a supervisor failure, unless a frame came)."""
        self.started = False
        """The worker has shown it works (it served a run, or its session is up): losing it now is a
        supervisor failure, not a failure to start."""
        self.output_overflow = False
        self.workdir: str | None = None
        """Tier B as root: the host dir the worker mounted its private workdir tmpfs on (removed on close)."""
        self.before = RunCounters()
        """The cgroup's counters when the current run started."""
        self.runs = 0

    # input --------------------------------------------------------------------------------------
    def send(self, data: bytes, *, close: bool = False) -> None:
        """Write to the worker's stdin (BrokenPipeError if it is gone)."""
        assert self.popen.stdin is not None
        self.popen.stdin.write(data)
        self.popen.stdin.flush()
        if close:
            self.popen.stdin.close()

    # output -------------------------------------------------------------------------------------
    def _read(self, fd: int) -> bool:
        """Read what is there; False at EOF."""
        while True:
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self.selector.unregister(fd)
                del self._open[fd]
                return False
            buf = self._open[fd]
            if buf is None:
                if len(self.frames) + len(chunk) <= RESULT_FRAME_CAP * 4:
                    self.frames += chunk
            else:
                buf.feed(chunk)

    def pop_frame(self) -> dict[str, str] | None:
        """Next complete result frame, if any (ValueError when it is malformed)."""
        if len(self.frames) < 4:
            return None
        size = int.from_bytes(self.frames[:4], "big")
        if size > RESULT_FRAME_CAP:
            raise ValueError(f"result frame of {size} bytes is over the cap")
        if len(self.frames) < 4 + size:
            return None
        payload = bytes(self.frames[4 : 4 + size])
        del self.frames[: 4 + size]
        return decode_fields(payload)

    def pump(self, deadline: float, *, until_frame: bool) -> dict[str, str] | None:
        """Drain pipes until a result frame is complete (``until_frame``) or every pipe is at EOF.

        Returns the frame, or None when the deadline passed / the pipes closed without one.
        A malformed frame raises SandboxExecutionError.
        """
        try:
            return self._pump(deadline, until_frame)
        except ValueError as exc:
            raise SandboxExecutionError(f"the sandbox worker sent a malformed result ({exc}); rerun the code") from exc

    def _pump(self, deadline: float, until_frame: bool) -> dict[str, str] | None:
        while True:
            if until_frame:
                frame = self.pop_frame()
                if frame is not None:
                    self.drain_nowait()
                    return frame
            if self.stdout.dropped or self.stderr.dropped:
                self.output_overflow = True
                return None
            if self.worker_died or not self._open:
                return None if until_frame else self.pop_frame()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            for key, _ev in self.selector.select(remaining):
                if key.fd != self.pidfd and key.fd not in self._open:
                    continue  # closed while handling an earlier event of this batch
                if key.fd == self.pidfd:
                    self.selector.unregister(self.pidfd)
                    for fd in list(self._open):  # what the worker wrote before it died
                        self._read(fd)
                    self.worker_died = True
                else:
                    self._read(key.fd)  # type: ignore[arg-type]

    def drain_nowait(self) -> None:
        """Take whatever stdout/stderr hold right now (output written before the last frame)."""
        for fd in list(self._open):
            if fd != self.result_r:
                self._read(fd)

    def kill_run(self) -> None:
        """Kill the worker and every process of its cgroup (orphans of a dead supervisor included)."""
        self.kill()
        if self.cgroup is not None:
            self.cgroup.kill()

    # lifecycle ----------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the worker's whole process group (in tier A that tears down the pid namespace)."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Kill if still running, reap, remove the cgroup, give back the uid, close every pipe."""
        if self.popen.poll() is None:
            if self.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    self.popen.stdin.close()
            if self.wait(0.5) is None:
                self.kill()
                self.popen.wait()
        if self.cgroup is not None:
            self.cgroup.kill()
            self.cgroup.remove()
            self.cgroup = None
        if self.uid is not None:
            self.uid.release()
            self.uid = None
        if self.workdir is not None:
            remove_tree(self.workdir)
            self.workdir = None
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.pidfd)
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = -1
        for fd in list(self._open):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)
        self._open.clear()
        self.selector.close()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            os.close(self.result_r)
        self.result_r = -1


def remove_tree(path: str) -> None:
    """rm -rf that also copes with directories the sandboxed code made unreadable."""

    def onerror(func, target, _exc):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            parent = os.path.dirname(target)
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, stat.S_IRWXU)
            func(target)

    shutil.rmtree(path, onerror=onerror)
