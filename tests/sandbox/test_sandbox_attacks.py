"""The attack suite: every snippet runs in tier A and tier B, must be contained, must leave the host
unchanged, and the next run must be healthy.

Snippets print ``BLOCKED <what> ...`` for each attempt that failed and ``ESCAPED <what> ...`` for one
that worked; a test passes when nothing escaped and the expected attempts were really made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sandbox_support import AS_ROOT, RUNNER_SECRET, SANDBOX_UID, Listeners, sandbox_uid_processes

from wizardcoder_integrations.sandbox import DEFAULT_MAX_OUTPUT_BYTES, ExecutionResult, Sandbox
from wizardcoder_integrations.sandbox.seccomp import _ARCHES

NR: dict[str, int] = _ARCHES[os.uname().machine]["nr"]  # type: ignore[assignment]

PRELUDE = """\
import os, sys
def attempt(label, fn):
    try:
        r = fn()
    except BaseException as e:
        print("BLOCKED", label, type(e).__name__, str(e)[:120])
    else:
        print("ESCAPED", label, repr(r)[:200])
def sys_attempt(label, nr, *args):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(nr, *args)
    if r < 0:
        print("BLOCKED", label, "errno", ctypes.get_errno())
    else:
        print("ESCAPED", label, r)
"""


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    blocked: int = 1
    """How many ``BLOCKED`` lines prove the attempts were made."""
    timeout: float = 5.0
    eperm: bool = False
    """Every blocked syscall must have failed with EPERM (seccomp's answer), not some other error."""
    check: Callable[[ExecutionResult], None] | None = None


def _timed_out(result: ExecutionResult) -> None:
    assert result.timed_out and result.killed_reason == "timeout", result
    assert result.duration < 1.0 + 4.0, result.duration


def _memory(result: ExecutionResult) -> None:
    assert result.exception_type == "MemoryError" or result.exit_code < 0, result


def _endless_stdout(result: ExecutionResult) -> None:
    assert result.timed_out and result.truncated, result
    assert DEFAULT_MAX_OUTPUT_BYTES - 8192 <= len(result.stdout) <= DEFAULT_MAX_OUTPUT_BYTES


def _disk(result: ExecutionResult) -> None:
    assert "BLOCKED" in result.stdout or result.killed_reason == "disk", result
    assert "ESCAPED" not in result.stdout


def _daemon(result: ExecutionResult) -> None:
    assert not result.timed_out, result
    assert result.leftover_processes >= 1, result


def _env(result: ExecutionResult) -> None:
    assert result.ok, result
    assert RUNNER_SECRET not in result.stdout
    assert "HOME" in result.stdout


def _uid(result: ExecutionResult) -> None:
    assert f"uid {SANDBOX_UID} groups []" in result.stdout or not AS_ROOT, result.stdout


def _fork_bomb(result: ExecutionResult) -> None:
    assert result.timed_out or result.exit_code != 0, result


ATTACKS = [
    Attack("read_host_file", 'attempt("read canary", lambda: open("{canary_file}").read())'),
    Attack("read_etc_passwd", 'attempt("passwd", lambda: open("/etc/passwd").read())\n'
                              'attempt("shadow", lambda: open("/etc/shadow").read())', blocked=2),
    Attack("write_outside", 'attempt("write canary dir", lambda: open("{canary_dir}/pwned.txt", "w").write("x"))\n'
                            'attempt("write /tmp", lambda: open("/tmp/wci-pwned-{token}", "w").write("x"))\n'
                            'attempt("overwrite canary", lambda: open("{canary_file}", "w").write("x"))', blocked=3),
    Attack("symlink_escape", 'os.symlink("{canary_file}", "link")\nattempt("follow", lambda: open("link").read())\n'
                             'os.symlink("/etc/passwd", "pw")\nattempt("follow pw", lambda: open("pw").read())\n'
                             'os.symlink("/", "rootlink")\nattempt("list via link", lambda: os.listdir("rootlink"))',
           blocked=3),
    Attack("hardlink_escape", 'attempt("hardlink", lambda: os.link("{canary_file}", "hl") or open("hl").read())'),
    Attack("list_root", 'attempt("ls /", lambda: os.listdir("/"))\nattempt("ls ..", lambda: os.listdir(".."))',
           blocked=2),
    Attack("list_proc_sys_dev", 'attempt("ls /proc", lambda: os.listdir("/proc"))\n'
                                'attempt("ls /sys", lambda: os.listdir("/sys"))\n'
                                'attempt("ls /dev", lambda: os.listdir("/dev"))\n'
                                'attempt("/proc/kallsyms", lambda: open("/proc/kallsyms").read(64))', blocked=4),
    Attack("tcp_loopback", 'import socket\n'
                           'attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {tcp_port}), timeout=2))'),
    Attack("udp_loopback", 'import socket\n'
                           'def udp():\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
                           '    return s.sendto(b"hello", ("127.0.0.1", {udp_port}))\nattempt("udp", udp)'),
    Attack("raw_and_inet6_sockets", 'import socket\n'
                                    'attempt("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))\n'
                                    'attempt("raw icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))\n'
                                    'attempt("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0))\n'
                                    'sys_attempt("raw socket syscall", {nr_socket}, 2, 3, 1)', blocked=4),
    Attack("abstract_unix_socket", 'import socket\n'
                                   'def go():\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n'
                                   '    s.connect("\\0{abstract}")\n    return s\nattempt("abstract", go)'),
    Attack("runner_env_secrets", 'print(sorted(os.environ.items()))\n'
                                 'try:\n    print(open("/proc/self/environ").read())\nexcept OSError:\n    pass',
           blocked=0, check=_env),
    Attack("proc_environ_outside", 'attempt("host environ", lambda: open("/proc/{host_pid}/environ").read())\n'
                                   'attempt("victim environ", lambda: open("/proc/{victim}/environ").read())\n'
                                   'attempt("pid1 environ", lambda: open("/proc/1/environ").read())\n'
                                   'attempt("parent environ", lambda: open(f"/proc/{{os.getppid()}}/environ").read())',
           blocked=4),
    Attack("kill_same_uid_outside", 'import signal\nattempt("kill victim", lambda: os.kill({victim}, signal.SIGKILL))\n'
                                    'attempt("probe host", lambda: os.kill({host_pid}, 0))\n'
                                    'attempt("kill -1", lambda: os.kill(-1, signal.SIGKILL))', blocked=3),
    Attack("kill_supervisor", 'import signal\nattempt("kill parent", lambda: os.kill(os.getppid(), signal.SIGKILL))\n'
                              'attempt("killpg parent", lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL))',
           blocked=2),
    Attack("ptrace", 'sys_attempt("ptrace victim", {nr_ptrace}, 16, {victim}, 0, 0)\n'
                     'sys_attempt("ptrace parent", {nr_ptrace}, 16, os.getppid(), 0, 0)\n'
                     'sys_attempt("traceme", {nr_ptrace}, 0, 0, 0, 0)', blocked=3, eperm=True),
    Attack("process_vm_readv", 'sys_attempt("vm_readv", {nr_process_vm_readv}, {victim}, 0, 0, 0, 0, 0)\n'
                               'sys_attempt("vm_writev", {nr_process_vm_writev}, os.getppid(), 0, 0, 0, 0, 0)',
           blocked=2, eperm=True),
    Attack("unshare_setns", 'sys_attempt("unshare user", {nr_unshare}, 0x10000000)\n'
                            'sys_attempt("unshare net+mnt", {nr_unshare}, 0x40020000)\n'
                            'sys_attempt("setns", {nr_setns}, 0, 0)\n'
                            'sys_attempt("clone newuser", {nr_clone}, 0x10000000 | 17, 0, 0, 0, 0)',
           blocked=4, eperm=True),
    Attack("mount", 'sys_attempt("mount", {nr_mount}, b"none", b"/tmp", b"tmpfs", 0, 0)\n'
                    'sys_attempt("chroot", {nr_chroot}, b"/")\n'
                    'sys_attempt("pivot_root", {nr_pivot_root}, b".", b".")', blocked=3, eperm=True),
    Attack("kernel_attack_surface", 'sys_attempt("io_uring_setup", {nr_io_uring_setup}, 8, 0)\n'
                                    'sys_attempt("bpf", {nr_bpf}, 0, 0, 0)\n'
                                    'sys_attempt("perf_event_open", {nr_perf_event_open}, 0, 0, -1, -1, 0)\n'
                                    'sys_attempt("keyctl", {nr_keyctl}, 0, 0, 0, 0, 0)\n'
                                    'sys_attempt("add_key", {nr_add_key}, b"user", b"k", b"v", 1, -3)\n'
                                    'sys_attempt("userfaultfd", {nr_userfaultfd}, 0)\n'
                                    'sys_attempt("init_module", {nr_init_module}, 0, 0, b"")', blocked=7, eperm=True),
    Attack("sysv_and_posix_ipc", 'sys_attempt("shmget", {nr_shmget}, 0, 4096, 0o1600)\n'
                                 'sys_attempt("semget", {nr_semget}, 0, 1, 0o1600)\n'
                                 'sys_attempt("msgget", {nr_msgget}, 0, 0o1600)\n'
                                 'sys_attempt("shmat host segment", {nr_shmat}, 0, 0, 0)\n'
                                 'sys_attempt("mq_open", {nr_mq_open}, b"/wci", 0o100 | 2, 0o600, 0)',
           blocked=5, eperm=True),
    Attack("subprocess_exec", 'import subprocess\n'
                              'attempt("subprocess", lambda: subprocess.run(["/bin/sh", "-c", "echo ESCAPED sh"]))\n'
                              'attempt("python", lambda: subprocess.run([sys.executable, "-c", "print(1)"]))\n'
                              'r = os.system("echo ESCAPED system")\n'
                              'print("BLOCKED system" if r else "ESCAPED system")\n'
                              'attempt("execv", lambda: os.execv("/bin/sh", ["sh", "-c", "echo ESCAPED execv"]))',
           blocked=4),
    Attack("fork_bomb", 'while True:\n    try:\n        os.fork()\n    except OSError:\n        pass',
           blocked=0, timeout=2.0, check=_fork_bomb),
    Attack("memory_bomb", 'attempt("16 GiB", lambda: bytearray(16 << 30))\n'
                          'chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))', check=_memory),
    Attack("infinite_loop", "while True:\n    pass", blocked=0, timeout=1.0, check=_timed_out),
    Attack("endless_stdout", 'while True:\n    print("A" * 4096)', blocked=0, timeout=1.0, check=_endless_stdout),
    Attack("disk_fill", 'def fill():\n    i = 0\n    while True:\n'
                        '        with open(f"fill-{{i}}", "wb") as fh:\n            fh.write(os.urandom(1 << 20))\n'
                        '        i += 1\nattempt("fill", fill)\n'
                        'attempt("one big file", lambda: open("big", "wb").write(bytes(200 << 20)))',
           blocked=0, timeout=20.0, check=_disk),
    Attack("sigterm_ignored_thread", 'import signal, threading\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
                                     'def spin():\n    while True:\n        pass\n'
                                     'threading.Thread(target=spin, daemon=False).start()\nprint("thread started")',
           blocked=0, timeout=1.0, check=_timed_out),
    Attack("double_fork_daemon", 'import time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n'
                                 '        while True:\n            try:\n'
                                 '                open("{canary_dir}/daemon-alive", "w").write("x")\n'
                                 '            except OSError:\n                pass\n            time.sleep(0.05)\n'
                                 '    os._exit(0)\nos.wait()\ntime.sleep(0.2)\nprint("BLOCKED parent done")',
           check=_daemon),
    Attack("tty_injection", 'import fcntl, termios\nfor fd in (0, 1, 2):\n'
                            '    attempt(f"TIOCSTI fd {{fd}}", lambda: fcntl.ioctl(fd, termios.TIOCSTI, b"x"))\n'
                            'attempt("open /dev/tty", lambda: open("/dev/tty", "wb"))\n'
                            'sys_attempt("raw TIOCSTI", {nr_ioctl}, 0, 0x5412, b"x")', blocked=5),
    Attack("privilege_regain", 'print("uid", os.getuid(), "groups", os.getgroups())\n'
                               'attempt("setuid 0", lambda: os.setuid(0))\nattempt("setgid 0", lambda: os.setgid(0))\n'
                               'attempt("setgroups", lambda: os.setgroups([0]))', blocked=3, check=_uid),
    Attack("poison_interpreter", 'attempt("append to os.py", lambda: open(os.__file__, "a").write("# pwned"))\n'
                                 'attempt("write into stdlib dir",\n'
                                 '        lambda: open(os.path.dirname(os.__file__) + "/evil.py", "w"))\n'
                                 'attempt("write interpreter", lambda: open(sys.executable, "ab"))', blocked=3),
]  # fmt: skip

assert len(ATTACKS) >= 25


def _snapshot_tmp() -> set[str]:
    tmp = tempfile.gettempdir()
    return {n for n in os.listdir(tmp) if n.startswith(("wci-sandbox-", "wci-pwned-"))}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_contained(
    attack: Attack, sandbox: Sandbox, tier: str, listeners: Listeners, canary: dict[str, str], victim: int
) -> None:
    token = f"{os.getpid()}-{attack.name}"
    fields = {
        "canary_file": canary["file"],
        "canary_dir": canary["dir"],
        "tcp_port": listeners.tcp_port,
        "udp_port": listeners.udp_port,
        "abstract": listeners.abstract_name,
        "victim": victim,
        "host_pid": os.getpid(),
        "token": token,
        **{f"nr_{name}": nr for name, nr in NR.items()},
    }
    code = PRELUDE + attack.code.format(**fields)
    os_py = os.__file__
    os_mtime = os.stat(os_py).st_mtime_ns
    before_procs = sandbox_uid_processes()
    before_tmp = _snapshot_tmp()

    result = sandbox.run(code, timeout=attack.timeout)

    # contained
    assert result.tier.value == tier
    assert "ESCAPED" not in result.stdout, result.stdout
    assert result.stdout.count("BLOCKED") >= attack.blocked, result
    if attack.eperm:
        for line in result.stdout.splitlines():
            if line.startswith("BLOCKED"):
                assert line.endswith("errno 1"), f"not refused by seccomp: {line}"
    for secret in (canary["secret"], RUNNER_SECRET, "VICTIM-ENV-SECRET", "root:x:0:0"):
        assert secret not in result.stdout and secret not in result.stderr
    if attack.check is not None:
        attack.check(result)

    # the host is unchanged
    with open(canary["file"]) as fh:
        assert fh.read() == canary["secret"]
    assert sorted(os.listdir(canary["dir"])) == ["canary.txt"]
    assert not listeners.anything_seen(), listeners
    assert os.stat(os_py).st_mtime_ns == os_mtime
    os.kill(victim, 0)  # still alive
    with open(f"/proc/{victim}/status") as fh:
        assert "State:\tZ" not in fh.read()
    assert sandbox_uid_processes() - before_procs == set(), "a sandboxed process outlived its run"
    assert _snapshot_tmp() - before_tmp == set(), "files left in the host's temp dir"

    # and the next run is healthy
    healthy = sandbox.run("print('healthy')")
    assert healthy.ok and healthy.stdout == "healthy\n", healthy
