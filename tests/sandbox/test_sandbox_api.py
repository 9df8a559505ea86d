"""The Sandbox API: results, limits, files, packages, config checks, async, tier selection."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from sandbox_support import AS_ROOT, is_sandbox_uid, make_sandbox

from wizardcoder_integrations import sandbox as sandbox_module
from wizardcoder_integrations.errors import ConfigurationError, SandboxError
from wizardcoder_integrations.sandbox import (
    IsolationTier,
    Sandbox,
    SandboxConfig,
    SandboxExecutionError,
    SandboxUnavailableError,
    WeakIsolationWarning,
    cgroups,
    detect_tier,
    executor,
    tiers,
)

MiB = 1 << 20


def test_print_and_result_fields(sandbox: Sandbox, tier: str) -> None:
    result = sandbox.run("print(1 + 1)")
    assert result.ok and result.stdout == "2\n" and result.stderr == ""
    assert result.exit_code == 0 and not result.timed_out and not result.truncated
    assert result.tier is IsolationTier(tier) and result.tier is sandbox.tier
    assert 0 < result.duration < 5
    assert is_sandbox_uid(result.uid)


def test_exception_is_reported_with_user_frames_only(sandbox: Sandbox) -> None:
    result = sandbox.run("def f(x):\n    return 1 / x\n\nf(0)\n")
    assert not result.ok and result.exit_code == 1
    assert result.exception_type == "ZeroDivisionError"
    assert result.exception_message == "division by zero"
    assert result.traceback is not None
    assert 'File "<sandbox>", line 4, in <module>' in result.traceback
    assert 'File "<sandbox>", line 2, in f' in result.traceback and "return 1 / x" in result.traceback
    assert "worker" not in result.traceback
    assert result.traceback in result.stderr


def test_syntax_error(sandbox: Sandbox) -> None:
    result = sandbox.run("def broken(:\n    pass")
    assert result.exception_type == "SyntaxError" and result.exit_code == 1


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [("import sys; sys.exit(3)", 3, ""), ("raise SystemExit('bye')", 1, "bye\n"), ("import os; os._exit(7)", 7, ""),
     ("import sys; sys.exit()", 0, "")],
)  # fmt: skip
def test_exit_codes(sandbox: Sandbox, code: str, exit_code: int, stderr: str) -> None:
    result = sandbox.run(code)
    assert result.exit_code == exit_code and result.stderr == stderr and result.exception_type is None


def test_killed_by_signal_is_negative(sandbox: Sandbox) -> None:
    result = sandbox.run("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert result.exit_code == -11


def test_stdin_is_empty_and_unicode_survives(sandbox: Sandbox) -> None:
    result = sandbox.run("print('héllo ✓ 漢字')\ntry:\n    input()\nexcept EOFError:\n    print('eof')")
    assert result.stdout == "héllo ✓ 漢字\neof\n"


def test_files_in_and_fresh_private_workdir(sandbox: Sandbox) -> None:
    files = {"data/input.txt": "hello", "blob.bin": b"\x00\x01\xff"}
    code = (
        "import os\nprint(open('data/input.txt').read(), open('blob.bin', 'rb').read())\n"
        "print(sorted(os.listdir('.')))\nopen('left-behind.txt', 'w').write('x')\n"
        "print(os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR'])"
    )
    result = sandbox.run(code, files_in=files)
    assert result.stdout == "hello b'\\x00\\x01\\xff'\n['blob.bin', 'data']\nTrue\n", result
    again = sandbox.run("import os\nprint(os.listdir('.'))")
    assert again.stdout == "[]\n"


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b", ".", ""])
def test_files_in_rejects_paths_outside_the_workdir(name: str) -> None:
    sb = make_sandbox("B", prespawn=0)
    with pytest.raises(ConfigurationError, match="relative path inside the workdir"):
        sb.run("pass", files_in={name: "x"})


def test_timeout_override(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.run("while True:\n    pass", timeout=0.5)
    assert result.timed_out and result.killed_reason == "timeout" and result.exit_code == -9
    assert time.monotonic() - started < 0.5 + 3.0


def test_memory_limit(sandbox: Sandbox) -> None:
    result = sandbox.run("x = bytearray(300 << 20)\nprint('allocated')", memory=128 * MiB)
    assert result.exception_type == "MemoryError", result
    assert sandbox.run("x = bytearray(100 << 20)\nprint('ok')", memory=384 * MiB).stdout == "ok\n"
    with pytest.raises(ConfigurationError, match="memory"):
        sandbox.run("pass", memory=1024)


def test_output_cap_stops_the_run(tier: str) -> None:
    sb = make_sandbox(tier, max_output=1024, prespawn=0)
    result = sb.run(
        "import sys, time\nsys.stderr.write('e' * 500)\nsys.stderr.flush()\nprint('x' * 100_000)\ntime.sleep(30)"
    )
    assert result.stop_reason == "output" and result.truncated and not result.ok
    assert result.stdout == "x" * 1024 and result.stderr == "e" * 500
    assert result.duration < 30
    assert sb.run("print('x' * 1000)").ok
    sb.close()


def test_threads_and_forks_work_and_are_reaped(sandbox: Sandbox) -> None:
    code = (
        "import os, threading\nout = []\nt = threading.Thread(target=lambda: out.append('thread'))\n"
        "t.start(); t.join()\npid = os.fork()\nif pid == 0:\n    print('child', flush=True)\n    os._exit(0)\n"
        "os.waitpid(pid, 0)\nprint(out[0])"
    )
    result = sandbox.run(code)
    assert result.stdout == "child\nthread\n" and result.leftover_processes == 0


def test_environment_is_clean_and_configurable(tier: str) -> None:
    sb = make_sandbox(tier, env={"FOO": "bar"}, prespawn=0)
    result = sb.run("import os\nprint(sorted(os.environ))\nprint(os.environ['FOO'])")
    names = eval(result.stdout.splitlines()[0])
    assert "FOO" in names and not any("SECRET" in n for n in names) and "PYTHONPATH" not in names
    assert result.stdout.splitlines()[1] == "bar"


def test_privilege_drop(sandbox: Sandbox) -> None:
    if not AS_ROOT:
        pytest.skip("the privilege drop only happens when the host runs the sandbox as root")
    code = (
        "import os\nprint(os.getresuid(), os.getresgid(), os.getgroups())\n"
        "for call in (lambda: os.setuid(0), lambda: os.setresuid(0, 0, 0), lambda: os.setgroups([0])):\n"
        "    try:\n        call()\n        print('regained')\n    except PermissionError:\n        print('denied')"
    )
    result = sandbox.run(code)
    ids = f"({result.uid}, {result.uid}, {result.uid})"
    assert result.stdout.splitlines() == [f"{ids} {ids} []", "denied", "denied", "denied"], result


def test_no_new_privs_seccomp_and_landlock_are_active(sandbox: Sandbox) -> None:
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None)\n"
        "print('nnp', libc.prctl(39, 0, 0, 0, 0), 'seccomp', libc.prctl(21, 0, 0, 0, 0))\n"
        "try:\n    open('/usr/bin/env', 'rb')\nexcept PermissionError:\n    print('landlock denies /usr/bin')"
    )
    assert sandbox.run(code).stdout == "nnp 1 seccomp 2\nlandlock denies /usr/bin\n"


def test_allowed_packages(tier: str) -> None:
    sb = make_sandbox(tier, allowed_packages=("numpy",), prespawn=0)
    result = sb.run("import numpy as np\nprint(int(np.arange(10).sum()))")
    assert result.stdout == "45\n", result
    plain = make_sandbox(tier, prespawn=0)
    site = os.path.dirname(os.path.dirname(__import__("numpy").__file__))
    hack = plain.run(f"import sys\nsys.path.append({site!r})\nimport numpy")
    assert hack.exception_type == "ModuleNotFoundError", hack
    with pytest.raises(ConfigurationError, match="not installed"):
        Sandbox(tier=tier, allowed_packages=("no_such_package_xyz",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"timeout": 0}, "timeout"), ({"timeout": 10_000}, "timeout"), ({"memory": 1}, "memory"),
     ({"disk": 10}, "disk"), ({"max_output": 1}, "max_output"), ({"max_processes": 0}, "max_processes"),
     ({"tier": "C"}, "tier"), ({"tier": "unsafe"}, "allow_unsafe"), ({"allowed_packages": "numpy"}, "allowed_packages"),
     ({"env": {"A=B": "c"}}, "env"), ({"uid_range": (0, 10)}, "uid_range"), ({"prespawn": -1}, "prespawn")],
)  # fmt: skip
def test_config_is_range_checked(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SandboxConfig(**kwargs)


def test_errors_are_sandbox_errors() -> None:
    assert issubclass(SandboxUnavailableError, SandboxError)
    assert issubclass(SandboxExecutionError, SandboxError)


def test_closed_sandbox_refuses(tier: str) -> None:
    with make_sandbox(tier) as sb:
        assert sb.run("print(1)").ok
    with pytest.raises(SandboxExecutionError, match="closed"):
        sb.run("print(1)")


def test_concurrent_runs(sandbox: Sandbox) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: sandbox.run(f"print({i} * 2)"), range(8)))
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(8)]


async def test_arun_does_not_block_the_event_loop(sandbox: Sandbox) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(sandbox.arun("import time; time.sleep(0.5); print('slept')") for _ in range(2)))
    task.cancel()
    assert [r.stdout for r in results] == ["slept\n", "slept\n"]
    assert ticks >= 20


async def test_module_level_run_and_arun() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakIsolationWarning)
        result = sandbox_module.run("print(6 * 7)", timeout=5)
        assert result.stdout == "42\n" and result.tier is detect_tier().tier
        assert (await sandbox_module.arun("print('async')")).stdout == "async\n"


def test_detect_tier_reports_the_host() -> None:
    info = detect_tier()
    assert info.tier in (IsolationTier.A, IsolationTier.B)
    assert info.seccomp and info.as_root == AS_ROOT
    assert f"tier {info.tier.value}" in info.describe()
    if info.tier is IsolationTier.B:
        assert info.warnings and "bubblewrap" in info.warnings[0]


def test_tier_b_warns_what_is_weaker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "_WARNED", set())
    with pytest.warns(WeakIsolationWarning, match=r"tier B .*To enable tier A: install bubblewrap"):
        make_sandbox_b_with_warning()


def test_no_cgroup_is_reported_and_warned_once(monkeypatch: pytest.MonkeyPatch, tier: str) -> None:
    missing = cgroups.CgroupSupport(0, reason="test: no writable hierarchy")
    monkeypatch.setattr(tiers, "cgroup_support", lambda: missing)
    monkeypatch.setattr(executor, "_WARNED", set())
    # tier B's own warning is test_tier_b_warns_what_is_weaker's subject
    with pytest.warns(WeakIsolationWarning, match=r"no cgroup can be created \(test: no writable hierarchy\)"), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"tier B \(no namespaces\)", WeakIsolationWarning)
        sb = Sandbox(tier=tier, prespawn=0)  # type: ignore[arg-type]
    assert sb.info.cgroup_version == 0 and sb.info.weakened
    assert "cgroups none (test: no writable hierarchy)" in sb.info.describe()
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeakIsolationWarning)
        again = Sandbox(tier=tier, prespawn=0)  # type: ignore[arg-type]
    result = again.run("print('still runs')")
    assert result.ok and result.cpu_time is None
    sb.close()
    again.close()


def make_sandbox_b_with_warning() -> Sandbox:
    if tiers.landlock.abi_version() == 0:
        pytest.skip("no Landlock: tier B is unavailable")
    return Sandbox(tier="B", prespawn=0)


def test_refuses_without_landlock_and_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiers.landlock, "abi_version", lambda: 0)
    monkeypatch.setattr(tiers.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailableError, match=r"neither Landlock .* allow_unsafe=True"):
        detect_tier()
    with pytest.raises(SandboxUnavailableError, match=r"tier A .*bwrap not found.*apt-get install bubblewrap"):
        detect_tier("A")
    with pytest.raises(SandboxUnavailableError, match=r"tier B needs Landlock"):
        detect_tier("B")
    info = detect_tier(allow_unsafe=True)
    assert info.tier is IsolationTier.UNSAFE and "UNSAFE" in info.warnings[0]


def test_unsafe_mode_is_opt_in_and_keeps_seccomp() -> None:
    with pytest.warns(WeakIsolationWarning, match="UNSAFE"):
        sb = Sandbox(tier="unsafe", allow_unsafe=True, prespawn=0)
    result = sb.run("import socket\ntry:\n    socket.socket()\nexcept PermissionError:\n    print('no inet')")
    assert result.tier is IsolationTier.UNSAFE and result.stdout == "no inet\n"


def test_bwrap_command_line() -> None:
    layout = tiers.python_layout()
    argv = tiers.bwrap_argv(
        "bwrap", layout=layout, packages=tiers.PackageMounts(), disk_bytes=8 * MiB, as_root=False, command=["x"]
    )
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--dev-bind"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    size = argv.index("--size")
    assert argv[size + 1] == str(8 * MiB) and argv[size + 4 : size + 6] == ["--tmpfs", tiers.SANDBOX_WORKDIR]
    assert "--share-net" not in argv and argv[-2:] == ["--", "x"]
    assert argv[argv.index("--proc") + 1] == "/proc"  # the pid namespace's own, for the supervisor
    root = tiers.bwrap_argv(
        "bwrap", layout=layout, packages=tiers.PackageMounts(), disk_bytes=8 * MiB, as_root=True, command=["x"]
    )
    assert "--unshare-net" in root and "--unshare-pid" in root and "--unshare-user" not in root
    assert [root[i + 1] for i, a in enumerate(root) if a == "--cap-add"] == ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"]


def test_reused_worker_starts_clean(tier: str) -> None:
    sb = make_sandbox(tier, reuse=10, prespawn=1)
    try:
        dirty = (
            "import os, time\nopen('left.txt', 'w').write('x')\nos.makedirs('a/b/c')\nos.chmod('a/b', 0)\n"
            "global_marker = 1\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\nprint('dirty')"
        )
        first = sb.run(dirty)
        assert first.stdout == "dirty\n" and first.leftover_processes >= 1
        assert 1 in [p.runs for p in sb._spares]  # the same worker went back to the pool
        second = sb.run("import os\nprint(os.listdir('.'), 'global_marker' in globals())")
        assert second.stdout == "[] False\n" and second.leftover_processes == 0
        assert 2 in [p.runs for p in sb._spares]
    finally:
        sb.close()


def test_worker_retires_after_its_last_run(tier: str) -> None:
    sb = make_sandbox(tier, reuse=1, prespawn=0)
    try:
        assert sb.run("pass").ok
        assert sb._spares == []  # reuse=1: a fresh worker for every run
    finally:
        sb.close()


def test_locked_directories_are_wiped_before_reuse() -> None:
    sb = make_sandbox("A", reuse=10, prespawn=0)
    try:
        nested = (
            "import os\nos.makedirs('x/y/z/w/v/u')\nopen('x/y/z/w/v/u/f', 'w').write('secret')\n"
            "for p in ('x/y/z/w/v/u', 'x/y/z/w/v', 'x/y/z/w', 'x/y/z', 'x/y', 'x'):\n    os.chmod(p, 0)"
        )
        assert sb.run(nested).ok
        assert [p.runs for p in sb._spares] == [1]
        assert sb.run("import os\nprint(os.listdir('.'))").stdout == "[]\n"
    finally:
        sb.close()


def test_tier_b_workdir_root_must_be_searchable_by_the_sandbox_uids(tmp_path) -> None:
    if not AS_ROOT or tiers.landlock.abi_version() == 0:
        pytest.skip("needs root (a uid per sandbox) and Landlock (tier B)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="chmod o\\+x"):
        make_sandbox("B", prespawn=0, workdir_root=str(private))
