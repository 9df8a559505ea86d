"""A seccomp-BPF filter built by hand (struct + a raw syscall): no libseccomp needed.

The filter is a deny list on top of Landlock/namespaces: it only lets AF_UNIX sockets be created and
refuses the syscalls that escape or attack a sandbox (ptrace, process_vm_*, mount, namespaces,
io_uring, bpf, perf_event_open, keyrings, execve, TIOCSTI, kernel modules, ...) and SysV/POSIX message
IPC (whose objects would outlive a run and, without an IPC namespace, are shared with the host). A foreign
architecture (32-bit or x32 syscalls) kills the process.

Standard library only and no package-relative imports: the sandbox worker loads this file by path.
"""

from __future__ import annotations

import errno
import os
import struct

try:
    from . import ffi
except ImportError:  # loaded by the sandbox bootstrap, outside the package
    import _wci_ffi as ffi  # type: ignore[no-redef]

__all__ = [
    "FATAL",
    "SeccompError",
    "build_filter",
    "denied_syscalls",
    "install_filter",
    "read_notification",
    "set_no_new_privs",
    "syscall_name",
]


class SeccompError(OSError):
    """seccomp is missing or the filter was refused."""


# --- classic BPF opcodes -------------------------------------------------------------------------
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_USER_NOTIF = 0x7FC00000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_OFF_NR = 0
_OFF_ARCH = 4


def _arg_lo(i: int) -> int:
    """Offset of the low 32 bits of syscall argument ``i`` in struct seccomp_data (little endian)."""
    return 16 + 8 * i


_AF_UNIX = 1
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_PERSONALITY_QUERY = 0xFFFFFFFF

_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_FILTER_FLAG_NEW_LISTENER = 1 << 3
_NOTIF_SIZE = 80  # struct seccomp_notif: id, pid, flags, struct seccomp_data (64 bytes)
_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)

# --- per-architecture tables (checked against the kernel's unistd headers) ------------------------
_ARCHES: dict[str, dict[str, object]] = {
    "x86_64": {
        "audit": 0xC000003E,
        "seccomp": 317,
        "x32_bit": 0x40000000,
        "nr": {
            "ioctl": 16, "socket": 41, "socketpair": 53, "clone": 56, "clone3": 435,
            "kill": 62, "tkill": 200, "tgkill": 234,
            "pidfd_open": 434, "personality": 135,
            "execve": 59, "execveat": 322, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
            "process_madvise": 440, "kcmp": 312, "pidfd_getfd": 438,
            "mount": 165, "umount2": 166, "mount_setattr": 442, "move_mount": 429, "open_tree": 428,
            "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pivot_root": 155, "chroot": 161,
            "unshare": 272, "setns": 308,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
            "keyctl": 250, "add_key": 248, "request_key": 249,
            "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
            "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
            "quotactl": 179, "quotactl_fd": 443, "syslog": 103, "settimeofday": 164, "clock_settime": 227,
            "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170, "setdomainname": 171,
            "lookup_dcookie": 212, "nfsservctl": 180, "vhangup": 153, "open_by_handle_at": 304,
            "name_to_handle_at": 303, "fanotify_init": 300, "memfd_secret": 447,
            "iopl": 172, "ioperm": 173, "modify_ldt": 154, "uselib": 134,
            "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65, "semctl": 66,
            "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "mq_open": 240,
            "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
            "prlimit64": 302, "setpriority": 141, "sched_setparam": 142, "sched_setscheduler": 144,
            "sched_setaffinity": 203, "sched_setattr": 314, "ioprio_set": 251, "migrate_pages": 256,
            "move_pages": 279, "fallocate": 285,
        },
    },
    "aarch64": {
        "audit": 0xC00000B7,
        "seccomp": 277,
        "x32_bit": None,
        "nr": {
            "ioctl": 29, "socket": 198, "socketpair": 199, "clone": 220, "clone3": 435,
            "kill": 129, "tkill": 130, "tgkill": 131,
            "pidfd_open": 434, "personality": 92,
            "execve": 221, "execveat": 281, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
            "process_madvise": 440, "kcmp": 272, "pidfd_getfd": 438,
            "mount": 40, "umount2": 39, "mount_setattr": 442, "move_mount": 429, "open_tree": 428,
            "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pivot_root": 41, "chroot": 51,
            "unshare": 97, "setns": 268,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
            "keyctl": 219, "add_key": 217, "request_key": 218,
            "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
            "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89,
            "quotactl": 60, "quotactl_fd": 443, "syslog": 116, "settimeofday": 170, "clock_settime": 112,
            "clock_adjtime": 266, "adjtimex": 171, "sethostname": 161, "setdomainname": 162,
            "lookup_dcookie": 18, "nfsservctl": 42, "vhangup": 58, "open_by_handle_at": 265,
            "name_to_handle_at": 264, "fanotify_init": 262, "memfd_secret": 447,
            "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197, "semget": 190, "semop": 193, "semctl": 191,
            "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187, "mq_open": 180,
            "mq_unlink": 181, "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185,
            "prlimit64": 261, "setpriority": 140, "sched_setparam": 118, "sched_setscheduler": 119,
            "sched_setaffinity": 122, "sched_setattr": 274, "ioprio_set": 30, "migrate_pages": 238,
            "move_pages": 239, "fallocate": 47,
        },
    },
}  # fmt: skip

_SELF_ONLY = ("prlimit64", "sched_setparam", "sched_setscheduler", "sched_setaffinity", "sched_setattr",
              "migrate_pages", "move_pages")  # fmt: skip
"""Syscalls whose first argument is a pid: allowed for pid 0 (the caller) only, so the code can never
change the limits, scheduling, CPU affinity or memory placement of another process."""
FATAL = ("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
         "swapoff", "iopl", "ioperm", "acct", "uselib", "nfsservctl", "lookup_dcookie")  # fmt: skip
"""Syscalls no Python program makes: calling one stops the run (the result names it) instead of failing."""
_SPECIAL = {"ioctl", "socket", "socketpair", "clone", "clone3", "kill", "tkill", "tgkill", "pidfd_open", "personality",
            "setpriority", "ioprio_set", "fallocate", *_SELF_ONLY, *FATAL}  # fmt: skip


def syscall_name(nr: int, arch: int, machine: str | None = None) -> str:
    """The name of syscall ``nr`` of this architecture (or "syscall <nr> of arch 0x..." for a foreign one)."""
    table = _table(machine)
    if arch == table["audit"] and not (table["x32_bit"] and nr & int(table["x32_bit"])):  # type: ignore[call-overload]
        for name, number in table["nr"].items():  # type: ignore[union-attr]
            if number == nr:
                return name
        return f"syscall {nr}"
    return f"syscall {nr} of foreign arch {arch:#x}"


def denied_syscalls(machine: str | None = None) -> list[str]:
    """Names of the syscalls the filter refuses outright (EPERM) on this architecture."""
    table = _table(machine)
    return sorted(name for name in table["nr"] if name not in _SPECIAL)  # type: ignore[union-attr]


def _table(machine: str | None) -> dict[str, object]:
    machine = machine or os.uname().machine
    try:
        return _ARCHES[machine]
    except KeyError:
        raise SeccompError(
            errno.ENOTSUP, f"no seccomp syscall table for architecture {machine!r} (supported: x86_64, aarch64)"
        ) from None


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, 0, 0, k & 0xFFFFFFFF)


def _jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _errno(err: int) -> bytes:
    return _stmt(_RET_K, _RET_ERRNO | (err & 0xFFFF))


def _guarded(nr: int, block: list[bytes]) -> list[bytes]:
    """``if nr == <nr>: <block>`` where every path through block returns."""
    return [_jump(_JEQ_K, nr, 0, len(block)), *block]


def build_filter(
    *,
    supervisor_pid: int | None = None,
    allow_unix_sockets: bool = True,
    notify: bool = False,
    refuse_fallocate: bool = False,
    machine: str | None = None,
) -> bytes:
    """Assemble the BPF program (a string of struct sock_filter) for this architecture.

    ``supervisor_pid``: the sandbox supervisor, which the sandboxed code may not signal even where
    Landlock's signal scoping (ABI 6) is missing. ``kill(-1, ...)`` is refused too.
    ``allow_unix_sockets``: let socket(AF_UNIX) through (tier A, where the mount and network
    namespaces hide every host socket). Without namespaces (tier B) it is refused as well, since
    Landlock cannot stop connect() to a host's pathname unix socket; socketpair(AF_UNIX) always works.
    ``notify``: a :data:`FATAL` syscall or a foreign architecture is handed to the supervisor's listener
    (which names it and stops the run) instead of killing the process unexplained.
    ``refuse_fallocate``: fallocate fails with EOPNOTSUPP (where no size-capped filesystem holds the
    workdir, so a polled cap cannot be outrun by preallocation).
    prlimit64, sched_set*, migrate_pages, move_pages work on pid 0 (the caller) only; setpriority and
    ioprio_set only on the calling process itself (PRIO_PROCESS / IOPRIO_WHO_PROCESS, who 0).
    """
    table = _table(machine)
    nrs: dict[str, int] = table["nr"]  # type: ignore[assignment]
    eperm = _errno(errno.EPERM)
    allow = _stmt(_RET_K, _RET_ALLOW)
    fatal = _stmt(_RET_K, _RET_USER_NOTIF if notify else _RET_KILL_PROCESS)
    prog: list[bytes] = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, int(table["audit"]), 1, 0),  # type: ignore[call-overload]
        fatal,
        _stmt(_LD_W_ABS, _OFF_NR),
    ]
    if table["x32_bit"]:
        prog += [_jump(_JGE_K, int(table["x32_bit"]), 0, 1), fatal]  # type: ignore[call-overload]
    for name in denied_syscalls(machine):
        prog += _guarded(nrs[name], [eperm])
    for name in FATAL:
        if name in nrs:
            prog += _guarded(nrs[name], [fatal])
    pid_zero = [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, 0, 0, 1), allow, eperm]
    for name in _SELF_ONLY:
        prog += _guarded(nrs[name], pid_zero)
    # setpriority(which, who, prio) / ioprio_set(which, who, prio): this process only (who 0)
    for name, which in (("setpriority", 0), ("ioprio_set", 1)):
        prog += _guarded(
            nrs[name],
            [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, which, 0, 3), _stmt(_LD_W_ABS, _arg_lo(1)),
             _jump(_JEQ_K, 0, 0, 1), allow, eperm],
        )  # fmt: skip
    prog += _guarded(nrs["fallocate"], [_errno(errno.EOPNOTSUPP) if refuse_fallocate else allow])
    # clone3 hides its flags in memory: make libc fall back to clone(), whose flags we can inspect.
    prog += _guarded(nrs["clone3"], [_errno(errno.ENOSYS)])
    prog += _guarded(nrs["clone"], [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JSET_K, _CLONE_NS_FLAGS, 0, 1), eperm, allow])
    unix_only = [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, _AF_UNIX, 0, 1), allow, _errno(errno.EACCES)]
    prog += _guarded(nrs["socket"], unix_only if allow_unix_sockets else [_errno(errno.EACCES)])
    prog += _guarded(nrs["socketpair"], unix_only)
    prog += _guarded(
        nrs["ioctl"],
        [
            _stmt(_LD_W_ABS, _arg_lo(1)),
            _jump(_JEQ_K, _TIOCSTI, 0, 1),
            eperm,
            _jump(_JEQ_K, _TIOCLINUX, 0, 1),
            eperm,
            allow,
        ],
    )
    prog += _guarded(
        nrs["personality"],
        [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, _PERSONALITY_QUERY, 0, 1), allow, eperm],
    )
    if supervisor_pid:
        kill_block = [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, 0xFFFFFFFF, 0, 1), eperm]
        for target in (supervisor_pid, -supervisor_pid):
            kill_block += [_jump(_JEQ_K, target, 0, 1), eperm]
        kill_block.append(allow)
        prog += _guarded(nrs["kill"], kill_block)
        for name in ("tkill", "tgkill", "pidfd_open"):
            only_not_supervisor = [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, supervisor_pid, 0, 1), eperm, allow]
            prog += _guarded(nrs[name], only_not_supervisor)
    else:
        prog += _guarded(nrs["kill"], [_stmt(_LD_W_ABS, _arg_lo(0)), _jump(_JEQ_K, 0xFFFFFFFF, 0, 1), eperm, allow])
    prog.append(allow)
    if len(prog) > 4096:
        raise SeccompError(errno.E2BIG, f"seccomp program too long ({len(prog)} instructions)")
    return b"".join(prog)


def set_no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): execve can never grant privileges again (needed by seccomp/Landlock)."""
    if ffi.prctl(_PR_SET_NO_NEW_PRIVS, 1) != 0:
        err = ffi.errno()
        raise SeccompError(err, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(err)}")


def install_filter(program: bytes, machine: str | None = None, *, listener: bool = False) -> int:
    """Load ``program`` with seccomp(SECCOMP_SET_MODE_FILTER); no_new_privs must already be set.

    ``listener``: also create the user-notification fd (returned; 0 otherwise) that receives the
    syscalls the filter hands to the supervisor.
    """
    table = _table(machine)
    keepalive, address = ffi.buffer_address(program)
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, address)
    flags = _FILTER_FLAG_NEW_LISTENER if listener else 0
    res = ffi.syscall(int(table["seccomp"]), _SECCOMP_SET_MODE_FILTER, flags, fprog)  # type: ignore[call-overload]
    del keepalive
    if res < 0:
        err = ffi.errno()
        raise SeccompError(err, f"seccomp(SECCOMP_SET_MODE_FILTER) failed: {os.strerror(err)}")
    return res


def read_notification(listener: int) -> tuple[int, int, int]:
    """(pid, syscall nr, audit arch) of the next pending notification on ``listener`` (OSError if none)."""
    import fcntl

    buf = bytearray(_NOTIF_SIZE)
    fcntl.ioctl(listener, _IOCTL_NOTIF_RECV, buf)
    _id, pid, _flags, nr, arch = struct.unpack_from("=QIIiI", buf)
    return pid, nr, arch
