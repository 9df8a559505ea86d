"""Landlock (Linux >= 5.13) through raw syscalls: detect the ABI, build a ruleset, restrict the caller.

Standard library only and no package-relative imports: the sandbox worker loads this file by path,
before any third-party code exists, so it must stay importable on its own.
"""

from __future__ import annotations

import errno
import os
import stat
import struct

try:
    from . import ffi
except ImportError:  # loaded by the sandbox bootstrap, outside the package
    import _wci_ffi as ffi  # type: ignore[no-redef]

__all__ = [
    "ACCESS_FS_READ",
    "ACCESS_FS_READ_FILE_ONLY",
    "LandlockError",
    "abi_version",
    "build_ruleset",
    "handled_fs_access",
    "restrict_self",
]

# Syscall numbers are the same on every architecture (allocated after the tables were unified).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1

# Filesystem access rights, with the ABI that introduced each.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5

NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

ACCESS_FS_READ = FS_READ_FILE | FS_READ_DIR
"""Rights granted on read-only directories (no EXECUTE: the sandbox never calls execve)."""
ACCESS_FS_READ_FILE_ONLY = FS_READ_FILE
"""Rights granted on single read-only files."""

_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


class LandlockError(OSError):
    """Landlock is missing, disabled, or refused a rule."""


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unsupported or disabled at boot."""
    res = ffi.syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    if res < 0:
        return 0
    return int(res)


def handled_fs_access(abi: int) -> int:
    """Every filesystem right the given ABI knows about (all of them get handled = denied by default)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def _rw_dir_access(abi: int) -> int:
    """Rights on read-write directories: everything except exec and device nodes."""
    return handled_fs_access(abi) & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV)


def _add_path_rule(ruleset_fd: int, path: str, access: int) -> bool:
    """Allow ``access`` beneath ``path``; returns False (and adds nothing) when the path is missing."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return False
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= _FILE_RIGHTS
        attr = struct.pack("=Qi", access, fd)
        if ffi.syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, attr, 0) < 0:
            err = ffi.errno()
            raise LandlockError(err, f"landlock_add_rule({path!r}) failed: {os.strerror(err)}")
        return True
    finally:
        os.close(fd)


def build_ruleset(
    *,
    abi: int,
    ro_dirs: list[str],
    ro_files: list[str],
    rw_dirs: list[str],
    rw_files: list[str],
) -> int:
    """Create a ruleset that denies every known right except the listed paths; returns its fd.

    Also denies TCP bind/connect (ABI >= 4) and scopes abstract unix sockets and signals to the
    sandbox (ABI >= 6). Missing paths are skipped. The caller applies it with :func:`restrict_self`.
    """
    if abi < 1:
        raise LandlockError(errno.EOPNOTSUPP, "Landlock is not available in this kernel")
    fs = handled_fs_access(abi)
    net = (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("=QQQ", fs, net, scoped)
    elif abi >= 4:
        attr = struct.pack("=QQ", fs, net)
    else:
        attr = struct.pack("=Q", fs)
    ruleset_fd = ffi.syscall(_SYS_CREATE_RULESET, attr, len(attr), 0)
    if ruleset_fd < 0:
        err = ffi.errno()
        raise LandlockError(err, f"landlock_create_ruleset failed: {os.strerror(err)}")
    try:
        for path in ro_dirs:
            _add_path_rule(ruleset_fd, path, ACCESS_FS_READ)
        for path in ro_files:
            _add_path_rule(ruleset_fd, path, ACCESS_FS_READ_FILE_ONLY)
        for path in rw_files:
            _add_path_rule(ruleset_fd, path, FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0))
        for path in rw_dirs:
            if not _add_path_rule(ruleset_fd, path, _rw_dir_access(abi)):
                raise LandlockError(errno.ENOENT, f"sandbox workdir {path!r} does not exist")
    except BaseException:
        os.close(ruleset_fd)
        raise
    return int(ruleset_fd)


def restrict_self(ruleset_fd: int) -> None:
    """Enforce the ruleset on the calling thread (and its future children). Needs no_new_privs."""
    if ffi.syscall(_SYS_RESTRICT_SELF, ruleset_fd, 0) < 0:
        err = ffi.errno()
        raise LandlockError(err, f"landlock_restrict_self failed: {os.strerror(err)}")
