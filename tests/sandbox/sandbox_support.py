"""Helpers shared by the sandbox tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field

import pytest

from wizardcoder_integrations.sandbox import NOBODY, Sandbox, SandboxUnavailableError, WeakIsolationWarning, landlock

AS_ROOT = os.geteuid() == 0
SANDBOX_UID = NOBODY if AS_ROOT else os.getuid()
RUNNER_SECRET = f"RUNNER-ENV-SECRET-{os.getpid()}"
os.environ["WCI_SANDBOX_TEST_RUNNER_SECRET"] = RUNNER_SECRET  # present while every worker is spawned


def make_sandbox(tier: str, **kwargs: object) -> Sandbox:
    """A Sandbox of the given tier: bubblewrap missing fails; a kernel without the feature skips."""
    if tier == "A" and shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed (apt-get install bubblewrap): tier A cannot be tested")
    if tier == "B" and landlock.abi_version() == 0:
        pytest.skip("this kernel has no Landlock: tier B is unavailable here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakIsolationWarning)
        try:
            return Sandbox(tier=tier, **kwargs)  # type: ignore[arg-type]
        except SandboxUnavailableError as exc:
            if tier == "A":
                pytest.skip(f"bubblewrap is installed but this kernel/host cannot run it: {exc}")
            raise


def _proc_info(pid: int) -> tuple[int, int] | None:
    """(uid, ppid) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            text = fh.read()
    except OSError:
        return None
    uid = ppid = -1
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("PPid:"):
            ppid = int(line.split()[1])
        elif line.startswith("State:") and line.split()[1] in ("Z", "X"):
            return None
    return uid, ppid


def sandbox_uid_processes() -> set[int]:
    """Live processes running as the sandbox uid that do not descend from this test process."""
    me = os.getpid()
    infos = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc_info(int(entry))
            if info is not None:
                infos[int(entry)] = info
    out = set()
    for pid, (uid, _ppid) in infos.items():
        if uid != SANDBOX_UID or pid == me:
            continue
        cur, hops = pid, 0
        while cur not in (0, 1, me) and hops < 64:
            cur = infos.get(cur, (0, 0))[1]
            hops += 1
        if cur != me:
            out.add(pid)
    return out


@dataclass
class Listeners:
    """TCP and UDP on 127.0.0.1 and an abstract unix socket; each records whatever reaches it."""

    tcp_port: int = 0
    udp_port: int = 0
    abstract_name: str = ""
    tcp_seen: list[str] = field(default_factory=list)
    udp_seen: list[bytes] = field(default_factory=list)
    unix_seen: list[str] = field(default_factory=list)

    def anything_seen(self) -> bool:
        return bool(self.tcp_seen or self.udp_seen or self.unix_seen)
