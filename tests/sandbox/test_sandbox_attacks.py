"""The attack suite: every snippet runs in tier A and tier B, must be contained, must leave the host
unchanged, and the next run must be healthy.

Snippets print ``BLOCKED <what> ...`` for each attempt that failed and ``ESCAPED <what> ...`` for one
that worked; a test passes when nothing escaped and the expected attempts were really made.
"""

# ruff: noqa: E501 - the attack table keeps one snippet line per source line
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sandbox_support import RUNNER_SECRET, WORKDIR_ROOT, Listeners, Tenant, is_sandbox_uid, sandbox_uid_processes

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
    memory: int | None = None
    """Run with this memory limit (small, so that exhausting it is cheap)."""
    eperm: bool = False
    """Every blocked syscall must have failed with EPERM (seccomp's answer), not some other error."""
    check: Callable[[ExecutionResult], None] | None = None


def _timed_out(result: ExecutionResult) -> None:
    assert result.timed_out and result.killed_reason == "timeout", result
    assert result.duration < 1.0 + 4.0, result.duration


def _memory(result: ExecutionResult) -> None:
    assert result.exception_type == "MemoryError" or result.exit_code < 0, result


def _endless_stdout(result: ExecutionResult) -> None:
    assert result.stop_reason == "output" and result.truncated and not result.timed_out, result
    assert len(result.stdout) == DEFAULT_MAX_OUTPUT_BYTES


def _disk(result: ExecutionResult) -> None:
    assert "[Errno 28]" in result.stdout or "[Errno 27]" in result.stdout or result.stop_reason == "disk", result
    assert "ESCAPED" not in result.stdout


def _daemon(result: ExecutionResult) -> None:
    assert not result.timed_out, result
    assert result.leftover_processes >= 1, result


def _env(result: ExecutionResult) -> None:
    assert result.ok, result
    assert RUNNER_SECRET not in result.stdout
    assert "HOME" in result.stdout


def _uid(result: ExecutionResult) -> None:
    assert f"uid {result.uid} groups []" in result.stdout and is_sandbox_uid(result.uid), result.stdout


def _stopped_for(reason: str) -> Callable[[ExecutionResult], None]:
    def check(result: ExecutionResult) -> None:
        assert result.stop_reason == reason and not result.ok, result

    return check


def _not_forged(result: ExecutionResult) -> None:
    assert result.exit_code == 125 and result.stop_reason is None and is_sandbox_uid(result.uid), result
    assert "forged" not in repr(result).replace(result.stdout, ""), result


def _fork_bomb(result: ExecutionResult) -> None:
    assert result.stop_reason in ("pids", "timeout") and not result.ok, result


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
                                    'sys_attempt("kcmp", {nr_kcmp}, 1, 1, 0, 0, 0)', blocked=7, eperm=True),
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

MiB = 1 << 20
ZEROS = 'b"\\0" * 128'
FORGE = """\
def frame(fields):
    payload = b"".join(b"%d:%s%d:%s" % (len(k), k, len(v), v) for k, v in fields.items())
    return len(payload).to_bytes(4, "big") + payload
forged = frame({b"setup_error": b"forged: could not lock down", b"setup_failed": b"1", b"exit_code": b"0",
                b"stop_reason": b"memory", b"uid": b"0", b"timed_out": b"1", b"locked": b"1", b"dead": b"1"})
def forge():
    for fd in range(3, 256):
        try:
            os.write(fd, forged)
        except OSError:
            pass
""".replace("{", "{{").replace("}", "}}")

RUN_WIDE_ATTACKS = [
    # memory is counted per run, not per process: page cache, shared memory and memfd included
    Attack("multi_process_memory", 'import time\nkids = []\nfor i in range(4):\n    pid = os.fork()\n'
                                   '    if pid == 0:\n        block = bytearray(60 << 20)\n        time.sleep(2)\n'
                                   '        os._exit(0)\n    kids.append(pid)\nfor pid in kids:\n    os.waitpid(pid, 0)',
           blocked=0, memory=128 * MiB, check=_stopped_for("memory")),
    Attack("memfd_memory", 'fds = []\nfor i in range(6):\n    fd = os.memfd_create(f"m{{i}}")\n    fds.append(fd)\n'
                           '    for _ in range(40):\n        os.write(fd, bytes(1 << 20))',
           blocked=0, memory=128 * MiB, check=_stopped_for("memory")),
    Attack("shared_anonymous_memory", 'import mmap, time\nfor i in range(4):\n    if os.fork() == 0:\n'
                                      '        m = mmap.mmap(-1, 50 << 20, mmap.MAP_SHARED)\n'
                                      '        for off in range(0, 50 << 20, 4096):\n            m[off] = 1\n'
                                      '        time.sleep(2)\n        os._exit(0)\ntime.sleep(2.5)',
           blocked=0, memory=128 * MiB, check=_stopped_for("memory")),
    # the disk cap is a size-limited filesystem: preallocation cannot outrun it
    Attack("fallocate_disk", 'def prealloc(name, size):\n    fd = os.open(name, os.O_CREAT | os.O_WRONLY)\n'
                             '    os.posix_fallocate(fd, 0, size)\nattempt("fallocate 1 TiB", lambda: prealloc("a", 1 << 40))\n'
                             'attempt("fallocate 4 x 60 MiB", lambda: [prealloc(f"b{{i}}", 60 << 20) for i in range(4)])\n'
                             'fd = os.open("c", os.O_CREAT | os.O_WRONLY)\n'
                             'sys_attempt("fallocate keep-size 1 GiB", {nr_fallocate}, fd, 1, 0, 1 << 30)', blocked=3),
    Attack("sparse_file_disk", 'def sparse():\n    with open("sparse", "wb") as fh:\n        fh.seek(1 << 40)\n'
                               '        fh.write(b"x")\nattempt("write at 1 TiB", sparse)\n'
                               'attempt("truncate to 1 TiB", lambda: os.truncate("sparse", 1 << 40))', blocked=2),
    # nothing of the code can change or starve another process: other tenants, host, the supervisor
    Attack("prlimit_others", f'sys_attempt("prlimit victim", {{nr_prlimit64}}, {{victim}}, 7, {ZEROS}, 0)\n'
                             f'sys_attempt("prlimit host", {{nr_prlimit64}}, {{host_pid}}, 9, {ZEROS}, 0)\n'
                             f'sys_attempt("prlimit tenant", {{nr_prlimit64}}, {{tenant}}, 6, {ZEROS}, 0)\n'
                             f'sys_attempt("prlimit pid 1", {{nr_prlimit64}}, 1, 7, {ZEROS}, 0)', blocked=4, eperm=True),
    Attack("renice_others", 'sys_attempt("renice victim", {nr_setpriority}, 0, {victim}, 19)\n'
                            'sys_attempt("renice tenant", {nr_setpriority}, 0, {tenant}, 19)\n'
                            'sys_attempt("renice own pgrp", {nr_setpriority}, 1, 0, 19)\n'
                            'sys_attempt("renice own uid", {nr_setpriority}, 2, 0, 19)', blocked=4, eperm=True),
    Attack("sched_others", f'sys_attempt("affinity victim", {{nr_sched_setaffinity}}, {{victim}}, 8, {ZEROS})\n'
                           f'sys_attempt("affinity tenant", {{nr_sched_setaffinity}}, {{tenant}}, 8, {ZEROS})\n'
                           f'sys_attempt("scheduler victim", {{nr_sched_setscheduler}}, {{victim}}, 5, {ZEROS})\n'
                           f'sys_attempt("param host", {{nr_sched_setparam}}, {{host_pid}}, {ZEROS})\n'
                           f'sys_attempt("setattr victim", {{nr_sched_setattr}}, {{victim}}, {ZEROS}, 0)',
           blocked=5, eperm=True),
    Attack("ioprio_others", 'sys_attempt("ioprio victim", {nr_ioprio_set}, 1, {victim}, 3 << 13)\n'
                            'sys_attempt("ioprio tenant", {nr_ioprio_set}, 1, {tenant}, 3 << 13)\n'
                            'sys_attempt("ioprio own pgrp", {nr_ioprio_set}, 2, 0, 3 << 13)\n'
                            'sys_attempt("ioprio own uid", {nr_ioprio_set}, 3, 0, 3 << 13)', blocked=4, eperm=True),
    Attack("memory_placement_others", f'sys_attempt("migrate victim", {{nr_migrate_pages}}, {{victim}}, 64, {ZEROS}, {ZEROS})\n'
                                      'sys_attempt("move_pages tenant", {nr_move_pages}, {tenant}, 0, 0, 0, 0, 0)',
           blocked=2, eperm=True),
    Attack("cross_tenant_signals", 'import signal\nattempt("kill tenant", lambda: os.kill({tenant}, signal.SIGKILL))\n'
                                   'attempt("stop tenant", lambda: os.kill({tenant}, signal.SIGSTOP))\n'
                                   'attempt("tenant environ", lambda: open("/proc/{tenant}/environ").read())\n'
                                   'attempt("tenant status", lambda: open("/proc/{tenant}/status").read())', blocked=4),
    Attack("thread_bomb_pids", 'import threading, time\nthreads = []\ntry:\n    while True:\n'
                               '        t = threading.Thread(target=time.sleep, args=(3,), daemon=True)\n        t.start()\n'
                               '        threads.append(t)\nexcept RuntimeError as e:\n'
                               '    print("BLOCKED thread", len(threads), e)\n    raise',
           check=_stopped_for("pids")),
    Attack("supervisor_limits", f'sup = os.getppid()\n'
                                f'sys_attempt("prlimit supervisor AS", {{nr_prlimit64}}, sup, 9, {ZEROS}, 0)\n'
                                f'sys_attempt("prlimit supervisor NOFILE", {{nr_prlimit64}}, sup, 7, {ZEROS}, 0)\n'
                                f'sys_attempt("prlimit supervisor CPU", {{nr_prlimit64}}, sup, 0, {ZEROS}, 0)\n'
                                'sys_attempt("renice supervisor", {nr_setpriority}, 0, sup, 19)\n'
                                f'sys_attempt("pin supervisor", {{nr_sched_setaffinity}}, sup, 8, {ZEROS})\n'
                                'sys_attempt("ioprio supervisor", {nr_ioprio_set}, 1, sup, 3 << 13)', blocked=6, eperm=True),
    Attack("supervisor_proc_and_signals", 'import signal\nsup = os.getppid()\n'
                                          'attempt("stop supervisor", lambda: os.kill(sup, signal.SIGSTOP))\n'
                                          'attempt("oom_score_adj", lambda: open(f"/proc/{{sup}}/oom_score_adj", "w").write("1000"))\n'
                                          'attempt("supervisor mem", lambda: open(f"/proc/{{sup}}/mem", "rb"))\n'
                                          'attempt("supervisor fds", lambda: os.listdir(f"/proc/{{sup}}/fd"))', blocked=4),
    Attack("forged_setup_error", FORGE + 'forge()\nprint("BLOCKED nothing to check inside", flush=True)\nos._exit(125)',
           check=_not_forged),
    Attack("forged_result_from_child_process", FORGE + 'import time\nif os.fork() == 0:\n    forge()\n    os._exit(0)\n'
                                               'time.sleep(0.1)\nforge()\nprint("BLOCKED parent", flush=True)\nos._exit(125)',
           check=_not_forged),
    Attack("forbidden_syscall_named", 'sys_attempt("reboot", {nr_reboot}, 0xfee1dead, 672274793, 0x4321fedc, 0)\n'
                                      'print("ESCAPED still running")', blocked=0,
           check=lambda r: _named_syscall(r, "reboot")),
]  # fmt: skip


def _named_syscall(result: ExecutionResult, name: str) -> None:
    assert result.stop_reason == "syscall" and result.syscall == name and result.exit_code < 0, result


ATTACKS += RUN_WIDE_ATTACKS
assert len(RUN_WIDE_ATTACKS) >= 15 and len(ATTACKS) >= 47


def _snapshot_tmp() -> set[str]:
    """This session's workdirs and anything the code managed to write into the temp dir."""
    ours = set(os.listdir(WORKDIR_ROOT))
    return ours | {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"wci-pwned-{os.getpid()}")}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_contained(
    attack: Attack,
    sandbox: Sandbox,
    tier: str,
    listeners: Listeners,
    canary: dict[str, str],
    victim: int,
    tenant: Tenant,
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
        "tenant": tenant.pid,
        **{f"nr_{name}": nr for name, nr in NR.items()},
    }
    code = PRELUDE + attack.code.format(**fields)
    os_py = os.__file__
    os_mtime = os.stat(os_py).st_mtime_ns
    before_procs = sandbox_uid_processes()
    before_tmp = _snapshot_tmp()

    tenant_before = tenant.state()
    result = sandbox.run(code, timeout=attack.timeout, memory=attack.memory)

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
    assert tenant.state() == tenant_before, "another tenant was changed"

    # and the next run is healthy
    healthy = sandbox.run("print('healthy')")
    assert healthy.ok and healthy.stdout == "healthy\n", healthy
