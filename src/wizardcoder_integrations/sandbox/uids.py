"""A distinct uid per sandbox worker, leased from a configurable range (root hosts only).

Every worker runs as its own uid, so per-uid limits (RLIMIT_NPROC) and same-uid permission checks
(signals, /proc, ptrace) never reach another tenant, the host, or a host process. A lease is an
exclusive ``flock`` on ``<LOCK_DIR>/<uid>``: it is shared by every process on the host that uses the
same lock directory, and the kernel drops it when the holder dies, so a crash leaks nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import tempfile

__all__ = ["LOCK_DIR", "UidLease", "lease_uid"]

LOCK_DIR = "/run/wci-sandbox/uids"
"""Where the uid locks live (falls back to the temp dir when /run is not writable)."""


class UidLease:
    """One uid held for the life of a worker; :meth:`release` (idempotent) gives it back."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _lock_dir() -> str:
    for path in (LOCK_DIR, os.path.join(tempfile.gettempdir(), ".wci-sandbox-uids")):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            return path
        except OSError:
            continue
    raise OSError("no writable directory for sandbox uid locks (tried /run and the temp dir)")


def lease_uid(first: int, count: int) -> UidLease:
    """Lock a free uid in ``[first, first + count)``; OSError when every one is taken."""
    directory = _lock_dir()
    start = random.randrange(count)
    for i in range(count):
        uid = first + (start + i) % count
        fd = os.open(os.path.join(directory, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(uid, fd)
    raise OSError(f"all {count} sandbox uids from {first} are in use; widen SandboxConfig.uid_range")
