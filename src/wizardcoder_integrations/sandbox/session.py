"""``SandboxSession``: one warm sandboxed worker that keeps its variables between calls."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Self

from .base import (
    MAX_TIMEOUT_S,
    CodeExecutor,
    ExecutionResult,
    SandboxExecutionError,
    SandboxSessionClosedError,
    _check_range,
)
from .process import remove_tree
from .worker import pack_message

if TYPE_CHECKING:
    from .executor import FilesIn, Sandbox

__all__ = ["STARTUP_TIMEOUT_S", "SandboxSession"]

STARTUP_TIMEOUT_S = 30.0
"""How long a session's worker may take to lock itself down and report ready."""


class SandboxSession(CodeExecutor):
    """Stateful execution (a notebook-like kernel) inside the same isolation as :meth:`Sandbox.run`.

    Each call has its own timeout; a call that times out kills the worker and everything it started,
    the result says so (``timed_out`` and ``session_dead``), and later calls raise
    :class:`SandboxSessionClosedError`. Calls are serialized.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timeout: float | None = None,
        memory: int | None = None,
        files_in: FilesIn | None = None,
    ) -> None:
        from .executor import GRACE_S

        self.sandbox = sandbox
        self.timeout = sandbox.config.timeout if timeout is None else timeout
        _check_range("timeout", self.timeout, 0.01, MAX_TIMEOUT_S, " seconds")
        self._grace = GRACE_S
        self._lock = threading.Lock()
        self._dead = False
        self._closed = False
        self._proc = None
        self._host_workdir: str | None = None
        started = time.monotonic()
        self._proc, self._host_workdir = sandbox._launch("session", "", STARTUP_TIMEOUT_S, memory, files_in)
        frame = self._proc.pump(started + STARTUP_TIMEOUT_S, until_frame=True)
        if frame is None or "ready" not in frame:
            self._proc.drain_nowait()
            stderr, _ = self._proc.stderr.take()
            reason = (frame or {}).get("setup_error") or (
                f"no ready signal; stderr: {stderr.strip()[-2000:] or '<empty>'}"
            )
            self._shutdown()
            raise SandboxExecutionError(
                f"the sandbox session could not start (tier {sandbox.tier.value}): {reason}. "
                "Check detect_tier() and the sandbox limits."
            )
        self.uid = int(frame["uid"]) if "uid" in frame else None

    def __enter__(self) -> Self:
        return self

    @property
    def alive(self) -> bool:
        """False once the session is closed or its worker died."""
        return not (self._dead or self._closed)

    def run(self, code: str, *, timeout: float | None = None) -> ExecutionResult:
        """Execute ``code`` in the session's namespace; its stdout/stderr are this call's output only."""
        timeout = self.timeout if timeout is None else timeout
        _check_range("timeout", timeout, 0.01, MAX_TIMEOUT_S, " seconds")
        with self._lock:
            if not self.alive:
                why = "was closed" if self._closed else "died (timeout, crash or exit in an earlier call)"
                raise SandboxSessionClosedError(f"this sandbox session {why}; start a new one with Sandbox.session()")
            started = time.monotonic()
            proc = self._proc
            proc.started = True  # the session's supervisor is up: a missing frame is its failure
            with contextlib.suppress(OSError):  # a dead worker shows up as a missing frame
                proc.send(pack_message({"code": code, "timeout": float(timeout)}))
            frame = self.sandbox._await_frame(proc, started + timeout + self._grace)
            stdout, out_trunc = proc.stdout.take()
            stderr, err_trunc = proc.stderr.take()
            result = self.sandbox._result(
                frame, proc, stdout, stderr, out_trunc or err_trunc, time.monotonic() - started
            )
            if result.uid is None:
                result = dataclasses.replace(result, uid=self.uid)
            if frame is None or result.session_dead:
                self._dead = True
                self._shutdown()
                if not result.session_dead:
                    result = _mark_dead(result)
            return result

    def _shutdown(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            try:
                if proc.popen.poll() is None and proc.popen.stdin and not proc.popen.stdin.closed:
                    proc.send(b"\0" * 8, close=True)
            except OSError:
                pass
            proc.close()
        if self._host_workdir:
            remove_tree(self._host_workdir)
            self._host_workdir = None

    def close(self) -> None:
        """Stop the worker (and everything it started) and delete its workdir; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shutdown()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()


def _mark_dead(result: ExecutionResult) -> ExecutionResult:
    return dataclasses.replace(result, session_dead=True)
