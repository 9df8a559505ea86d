"""Building blocks: the seccomp program, Landlock detection, the worker's wire format."""

from __future__ import annotations

import os

import pytest

from wizardcoder_integrations.sandbox import landlock, seccomp
from wizardcoder_integrations.sandbox.worker import decode_fields, encode_fields

REQUIRED_DENIALS = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "unshare", "setns", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "execve", "execveat", "kexec_load", "init_module", "finit_module", "userfaultfd", "pivot_root", "chroot",
}  # fmt: skip


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_assembles(machine: str) -> None:
    assert set(seccomp.denied_syscalls(machine)) | set(seccomp.FATAL) >= REQUIRED_DENIALS
    for kwargs in ({}, {"supervisor_pid": 1234}, {"allow_unix_sockets": False}):
        program = seccomp.build_filter(machine=machine, **kwargs)  # type: ignore[arg-type]
        assert len(program) % 8 == 0 and 0 < len(program) // 8 <= 4096


def test_seccomp_rejects_unknown_architecture() -> None:
    with pytest.raises(seccomp.SeccompError, match="no seccomp syscall table"):
        seccomp.build_filter(machine="sparc64")


def test_landlock_abi_is_detected() -> None:
    abi = landlock.abi_version()
    assert isinstance(abi, int) and abi >= 0
    if abi == 0:
        pytest.skip("this kernel has no Landlock")
    assert landlock.handled_fs_access(abi) & landlock.FS_READ_FILE


def test_landlock_ruleset_needs_an_existing_workdir() -> None:
    abi = landlock.abi_version()
    if abi == 0:
        pytest.skip("this kernel has no Landlock")
    fd = landlock.build_ruleset(abi=abi, ro_dirs=["/usr"], ro_files=[], rw_dirs=["/tmp"], rw_files=[])
    os.close(fd)
    with pytest.raises(landlock.LandlockError, match="workdir"):
        landlock.build_ruleset(abi=abi, ro_dirs=[], ro_files=[], rw_dirs=["/nonexistent-wci"], rw_files=[])


def test_wire_format_roundtrip_and_rejects_garbage() -> None:
    frame = encode_fields({"a": "x:y", "n": 3, "flag": True, "skip": None, "text": "é\n" * 3})
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert decode_fields(frame[4:]) == {"a": "x:y", "n": "3", "flag": "1", "text": "é\n" * 3}
    for bad in (b"5:abc", b"x:1", b"1:a", b"99999999999999:a"):
        with pytest.raises(ValueError):
            decode_fields(bad)
