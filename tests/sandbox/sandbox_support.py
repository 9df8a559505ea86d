"""Helpers shared by the sandbox tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field

import pytest

from wizardcoder_integrations.sandbox import (
    DEFAULT_UID_RANGE,
    Sandbox,
    SandboxUnavailableError,
    WeakIsolationWarning,
    landlock,
)

AS_ROOT = os.geteuid() == 0
UID_FIRST, UID_COUNT = DEFAULT_UID_RANGE


def is_sandbox_uid(uid: int | None) -> bool:
    """A uid the sandbox runs code as (one of its range as root, else this process's own)."""
    if not AS_ROOT:
        return uid == os.getuid()
    return uid is not None and UID_FIRST <= uid < UID_FIRST + UID_COUNT


WORKDIR_ROOT = tempfile.mkdtemp(prefix=f"wci-test-workdirs-{os.getpid()}-")
os.chmod(WORKDIR_ROOT, 0o711)  # the sandbox uids walk through it to their own workdir
"""Where this test session's tier B workdirs go (the system temp dir is shared with other processes)."""
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
            return Sandbox(tier=tier, **{"workdir_root": WORKDIR_ROOT, **kwargs})  # type: ignore[arg-type]
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


def _all_proc_info() -> dict[int, tuple[int, int]]:
    """(uid, parent pid) of every live process."""
    infos = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _proc_info(int(entry))) is not None:
            infos[int(entry)] = info
    return infos


def sandbox_uid_processes() -> set[int]:
    """Live processes running as a sandbox uid that do not descend from this test process."""
    me = os.getpid()
    infos = _all_proc_info()
    out = set()
    for pid, (uid, _ppid) in infos.items():
        if not is_sandbox_uid(uid) or pid == me:
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


@dataclass
class Tenant:
    """Another tenant's sandbox session, idle between calls: the target of cross-tenant attacks."""

    session: object
    pid: int
    """Host pid of the tenant's code process."""

    def state(self) -> str:
        """Its nice value, limits and CPU affinity as seen from inside and outside (must never change)."""
        code = (
            "import os, resource\nprint(os.getpriority(os.PRIO_PROCESS, 0), os.sched_getaffinity(0), "
            "[resource.getrlimit(r) for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_AS, resource.RLIMIT_CPU)])"
        )
        result = self.session.run(code)  # type: ignore[attr-defined]
        assert result.ok, result
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{self.pid}/limits") as fh:
            limits = fh.read()
        return f"{result.stdout} nice={fields[16]} {limits}"


def tenant_pid(uid: int) -> int:
    """The code process of a session running as ``uid`` (the one whose parent has the same uid)."""
    infos = _all_proc_info()
    for pid, (puid, ppid) in infos.items():
        if puid == uid and infos.get(ppid, (None, 0))[0] == uid:
            return pid
    raise AssertionError(f"no process of uid {uid} whose parent has the same uid")
