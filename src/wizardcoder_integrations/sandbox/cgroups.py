"""A cgroup per sandbox worker: whole-run memory (page cache, tmpfs, shmem, memfd), pids and CPU.

cgroup v2 is used where the host process's own cgroup has a writable subtree with the ``memory`` and
``pids`` controllers; otherwise cgroup v1, where writable ``memory`` and ``pids`` hierarchies exist
(plus ``cpu``/``cpuacct`` when present). Each worker gets a fresh cgroup under the host process's own
cgroup (so the host's own limits still bound it), entered before its first instruction; every run the
worker serves is accounted there (the limits are rewritten and the counters read around each run; a
worker serves one run at a time and nothing of a run outlives it). Where no cgroup can be created,
:func:`cgroup_support` says why and the tier reports itself weaker.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shlex
import signal
import time
from dataclasses import dataclass

__all__ = ["CgroupSupport", "RunCounters", "WorkerCgroup", "cgroup_support"]

PREFIX = "wci-sandbox-"
"""Name prefix of every cgroup the sandbox creates (``<prefix><host pid>-<n>``)."""
REMOVE_WAIT_S = 2.0
"""How long removing a cgroup waits for its killed processes to be gone."""
CPU_PERIOD_US = 100_000
"""CFS period of the per-worker CPU quota."""

_V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
_REQUIRED = ("memory", "pids")
_COUNTER = itertools.count()


@dataclass(frozen=True)
class CgroupSupport:
    """What the host offers: cgroup version (0 = none), the parent dirs to create cgroups in, and why not."""

    version: int
    parents: tuple[tuple[str, str], ...] = ()
    """(controller or "unified", directory) pairs under which worker cgroups are created."""
    reason: str | None = None
    """Why no cgroup can be used (version 0)."""

    def describe(self) -> str:
        if not self.version:
            return f"none ({self.reason})"
        controllers = ",".join(c for c, _ in self.parents) if self.version == 1 else "memory,pids,cpu"
        return f"v{self.version} ({controllers})"


@dataclass(frozen=True)
class RunCounters:
    """Counters of one cgroup at one moment; the difference of two brackets one run."""

    oom_kills: int = 0
    memory_refused: int = 0
    """Times the memory limit was hit (a charge refused or reclaimed under the limit)."""
    pids_refused: int = 0
    cpu_ns: int = 0


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _own_paths() -> dict[str, str]:
    """controller ("" for the v2 hierarchy) -> this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _id, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of every cgroup mount."""
    out = []
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
            out.append((rfields[0], fields[3], fields[4], set(rfields[2].split(","))))
    return out


def _join(mount_root: str, mount_point: str, path: str) -> str:
    rel = path[len(mount_root) :] if path.startswith(mount_root) else path
    return os.path.join(mount_point, rel.lstrip("/"))


def _probe_dir(parent: str) -> str | None:
    """None if a child cgroup can be created and removed under ``parent``, else the reason."""
    probe = os.path.join(parent, f"{PREFIX}probe-{os.getpid()}")
    try:
        os.mkdir(probe)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"cannot create a cgroup in {parent}: {exc.strerror}"
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def _v2(mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str]) -> tuple[CgroupSupport | None, str]:
    for fstype, root, point, _opts in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        parent = _join(root, point, own[""])
        try:
            available = set(_read(os.path.join(parent, "cgroup.controllers")).split())
            enabled = set(_read(os.path.join(parent, "cgroup.subtree_control")).split())
        except OSError as exc:
            return None, f"cgroup v2 at {parent} is unreadable ({exc.strerror})"
        missing = [c for c in _REQUIRED if c not in available]
        if missing:
            return None, f"cgroup v2 at {parent} lacks the {', '.join(missing)} controller(s)"
        want = [c for c in (*_REQUIRED, "cpu") if c in available and c not in enabled]
        if want:
            try:
                _write(os.path.join(parent, "cgroup.subtree_control"), " ".join(f"+{c}" for c in want))
            except OSError as exc:
                return None, f"cgroup v2 at {parent} is not delegated (enabling {want} failed: {exc.strerror})"
        reason = _probe_dir(parent)
        if reason:
            return None, reason
        return CgroupSupport(2, (("unified", parent),)), ""
    return None, "no cgroup v2 mount"


def _v1(mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str]) -> tuple[CgroupSupport | None, str]:
    parents: list[tuple[str, str]] = []
    seen_points: set[str] = set()
    for controller in _V1_CONTROLLERS:
        for fstype, root, point, opts in mounts:
            if fstype != "cgroup" or controller not in opts or controller not in own:
                continue
            parent = _join(root, point, own[controller])
            if not os.path.isdir(parent):
                continue
            if point in seen_points:  # co-mounted with an earlier controller (e.g. cpu,cpuacct)
                break
            reason = _probe_dir(parent)
            if reason and controller in _REQUIRED:
                return None, f"cgroup v1 {controller}: {reason}"
            if not reason:
                parents.append((controller, parent))
                seen_points.add(point)
            break
    names = {c for c, _ in parents}
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        return None, f"no writable cgroup v1 {' or '.join(missing)} hierarchy"
    return CgroupSupport(1, tuple(parents)), ""


@functools.lru_cache(maxsize=1)
def cgroup_support() -> CgroupSupport:
    """Find out (once per process) which cgroups this host lets the sandbox create."""
    try:
        own, mounts = _own_paths(), _mounts()
    except OSError as exc:
        return CgroupSupport(0, reason=f"/proc is unreadable ({exc.strerror})")
    reasons = []
    for finder in (_v2, _v1):
        found, reason = finder(mounts, own)
        if found is not None:
            _remove_stale(found)
            return found
        reasons.append(reason)
    return CgroupSupport(0, reason="; ".join(reasons))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(support: CgroupSupport) -> None:
    """Kill and remove the cgroups a crashed host process left behind (its pid is in their name)."""
    for _name, parent in support.parents:
        with contextlib.suppress(OSError):
            for entry in os.listdir(parent):
                if not entry.startswith(PREFIX):
                    continue
                owner = entry[len(PREFIX) :].split("-")[0]
                if owner.isdigit() and (int(owner) == os.getpid() or _pid_alive(int(owner))):
                    continue
                _kill_dir(os.path.join(parent, entry))
                _rmdir(os.path.join(parent, entry))


def _procs(directory: str) -> list[int]:
    try:
        return [int(p) for p in _read(os.path.join(directory, "cgroup.procs")).split()]
    except OSError:
        return []


def _kill_dir(directory: str) -> None:
    kill_file = os.path.join(directory, "cgroup.kill")
    if os.path.exists(kill_file):
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
            return
    for _ in range(100):  # forks racing the sweep are bounded by pids.max
        pids = _procs(directory)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.001)


def _rmdir(directory: str) -> bool:
    deadline = time.monotonic() + REMOVE_WAIT_S
    while True:
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            _kill_dir(directory)
            time.sleep(0.005)


class WorkerCgroup:
    """The cgroup of one worker (bwrap or bare supervisor) and everything it forks."""

    def __init__(self, support: CgroupSupport) -> None:
        self.version = support.version
        name = f"{PREFIX}{os.getpid()}-{next(_COUNTER)}"
        self.dirs: dict[str, str] = {}
        try:
            for controller, parent in support.parents:
                path = os.path.join(parent, name)
                os.mkdir(path)
                self.dirs[controller] = path
        except OSError:
            self.remove()
            raise
        self.memory = self.dirs.get("unified") or self.dirs["memory"]
        self.pids = self.dirs.get("unified") or self.dirs["pids"]
        self.cpu = self.dirs.get("unified") or self.dirs.get("cpu")
        self.cpuacct = self.dirs.get("unified") or self.dirs.get("cpuacct") or self.dirs.get("cpu")
        self._memory_limit = -1

    # entering -----------------------------------------------------------------------------------
    def wrap(self, argv: list[str], sh: str = "/bin/sh") -> list[str]:
        """``argv`` behind a shell that moves itself into this cgroup first (every descendant inherits it)."""
        moves = " && ".join(f"echo $$ > {shlex.quote(os.path.join(d, 'cgroup.procs'))}" for d in self.dirs.values())
        return [sh, "-c", f'{moves} && exec "$@"', "wci-sandbox", *argv]

    # limits -------------------------------------------------------------------------------------
    def set_limits(self, *, memory: int, pids: int, cpus: float) -> None:
        """The whole worker's memory (no swap), task count and CPU share (cpus = cores' worth)."""
        self.set_memory(memory)
        quota = max(1000, int(cpus * CPU_PERIOD_US))
        if self.version == 2:
            _write(os.path.join(self.pids, "pids.max"), str(pids))
            with contextlib.suppress(OSError):
                _write(os.path.join(self.memory, "memory.swap.max"), "0")
            with contextlib.suppress(OSError):
                _write(os.path.join(self.memory, "cpu.max"), f"{quota} {CPU_PERIOD_US}")
            return
        _write(os.path.join(self.pids, "pids.max"), str(pids))
        if self.cpu and os.path.exists(os.path.join(self.cpu, "cpu.cfs_quota_us")):
            with contextlib.suppress(OSError):
                _write(os.path.join(self.cpu, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
                _write(os.path.join(self.cpu, "cpu.cfs_quota_us"), str(quota))

    def set_memory(self, memory: int) -> None:
        """Memory limit of the whole cgroup (rewritten before each run that asks for another value)."""
        if memory == self._memory_limit:
            return
        if self.version == 2:
            _write(os.path.join(self.memory, "memory.max"), str(memory))
        else:
            limit = os.path.join(self.memory, "memory.limit_in_bytes")
            memsw = os.path.join(self.memory, "memory.memsw.limit_in_bytes")
            has_memsw = os.path.exists(memsw)
            # memsw >= limit at every step: raise memsw first when growing, lower limit first when shrinking
            order = [limit, memsw] if memory < self._memory_limit or self._memory_limit < 0 else [memsw, limit]
            for path in order:
                if path is memsw and not has_memsw:
                    continue
                try:
                    _write(path, str(memory))
                except OSError:
                    if path is limit:
                        raise
            if has_memsw:  # the first write of memsw may have failed while limit was still larger
                with contextlib.suppress(OSError):
                    _write(memsw, str(memory))
        self._memory_limit = memory

    # reading ------------------------------------------------------------------------------------
    def counters(self) -> RunCounters:
        """Out-of-memory kills, memory-limit hits, refused forks and CPU time of the cgroup so far."""
        oom = mem = refused = cpu = 0
        with contextlib.suppress(OSError, ValueError):
            if self.version == 2:
                events = _read(os.path.join(self.memory, "memory.events"))
                oom, mem = _key(events, "oom_kill"), _key(events, "max")
            else:
                oom = _key(_read(os.path.join(self.memory, "memory.oom_control")), "oom_kill")
                mem = int(_read(os.path.join(self.memory, "memory.failcnt")))
        with contextlib.suppress(OSError, ValueError):
            refused = _key(_read(os.path.join(self.pids, "pids.events")), "max")
        if self.cpuacct:
            with contextlib.suppress(OSError, ValueError):
                if self.version == 2:
                    cpu = _key(_read(os.path.join(self.cpuacct, "cpu.stat")), "usage_usec") * 1000
                else:
                    cpu = int(_read(os.path.join(self.cpuacct, "cpuacct.usage")))
        return RunCounters(oom, mem, refused, cpu)

    # ending -------------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL every process in the cgroup (daemons, orphans of a crashed supervisor, ...)."""
        _kill_dir(self.pids)

    def remove(self) -> bool:
        """Kill what is left and remove the cgroup dirs; True when all are gone."""
        ok = True
        for path in self.dirs.values():
            ok = _rmdir(path) and ok
        return ok


def _key(text: str, key: str) -> int:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return 0
