"""The process that runs inside the sandbox (``python -I -S -B -c BOOTSTRAP RESULT_FD``).

The host sends this module, landlock.py and seccomp.py as marshalled code objects on stdin (see
:data:`BOOTSTRAP`), so nothing has to be compiled or even readable inside the sandbox.

Two processes, one concern each:

* the **supervisor** (this script's main process, trusted, runs no user code): reads the job from
  stdin, builds the Landlock ruleset, drops root to an unprivileged uid, writes the input files,
  becomes a child subreaper, forks the child, enforces the wall-clock timeout (and, in tier B, the
  disk cap), then kills and reaps every leftover process and writes one result frame per execution
  to RESULT_FD;
* the **child** (untrusted once user code starts): new session, parent-death signal, closes every
  inherited fd, applies rlimits, no_new_privs, Landlock and seccomp, then executes the code and
  reports the exception (type, message, traceback) over a pipe to the supervisor.

Standard library only; importing this module from the host costs nothing (the wire helpers
:func:`encode_fields`, :func:`decode_fields`, :func:`pack_message` are shared with the host).
"""

from __future__ import annotations

import marshal
import os
import sys
import time

__all__ = ["BOOTSTRAP", "decode_fields", "encode_fields", "pack_message"]

BOOTSTRAP = """\
import marshal, os, sys
def r(n):
    b = b""
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            os._exit(2)
        b += c
    return b
for k, c in marshal.loads(r(int.from_bytes(r(8), "big"))).items():
    m = sys.modules[k] = type(sys)(k)
    exec(c, m.__dict__)
sys.modules["_wci_worker"].main()
"""
"""``python -c`` program of a worker: load ``{name: code object}`` from stdin, run ``main()``."""

REPORT_CAP = 256 * 1024
"""Bytes of the child's report the supervisor keeps (the child is untrusted: it may write garbage)."""
TRACEBACK_CAP = 64 * 1024
"""Characters of a traceback / exception message that are reported."""
DISK_POLL_S = 0.05
"""How often the supervisor measures the workdir when it must enforce the disk cap itself (tier B)."""
SETUP_ERROR_EXIT = 125
"""Exit code of a child that failed to lock itself down (its report says why)."""

_PR_SET_PDEATHSIG = 1
_SIGKILL = 9  # not signal.SIGKILL: importing signal pulls in enum (~4 ms of start-up)
_SIGXCPU = 24
_SIGXFSZ = 25
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
_POLLIN = 1


# --- wire format ---------------------------------------------------------------------------------
# host -> worker: 8-byte big-endian length + marshal (trusted direction only).
# worker -> host and child -> supervisor: 4-byte big-endian length + fields, where fields are
# ``<len>:<key><len>:<value>`` repeated (utf-8). Parsed defensively: the sender may be hostile.


def pack_message(obj: object) -> bytes:
    """Frame a host-to-worker message."""
    data = marshal.dumps(obj)
    return len(data).to_bytes(8, "big") + data


def encode_fields(fields: dict[str, object]) -> bytes:
    """Frame a flat ``{str: str|int|float|bool|None}`` record (None values are dropped)."""
    out = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        kb = key.encode()
        vb = str(value).encode("utf-8", "replace")
        out.append(b"%d:%s%d:%s" % (len(kb), kb, len(vb), vb))
    payload = b"".join(out)
    return len(payload).to_bytes(4, "big") + payload


def decode_fields(payload: bytes) -> dict[str, str]:
    """Parse the payload of one frame; raises ValueError on anything malformed."""
    fields: dict[str, str] = {}
    pos, end = 0, len(payload)
    items: list[str] = []
    while pos < end:
        colon = payload.index(b":", pos, min(end, pos + 12))
        size = int(payload[pos:colon])
        if size < 0 or colon + 1 + size > end:
            raise ValueError("truncated field")
        items.append(payload[colon + 1 : colon + 1 + size].decode("utf-8", "replace"))
        pos = colon + 1 + size
    if len(items) % 2:
        raise ValueError("odd number of items")
    for i in range(0, len(items), 2):
        fields[items[i]] = items[i + 1]
    return fields


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_raw_message(fd: int) -> bytes | None:
    """One host-to-worker frame, header included (None at EOF or on a zero-length frame)."""
    head = _read_exact(fd, 8)
    if not head:
        return None
    size = int.from_bytes(head, "big")
    if size == 0:
        return None
    body = _read_exact(fd, size)
    return None if body is None else head + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# --- helpers -------------------------------------------------------------------------------------


def _load_sibling(name: str):  # type: ignore[no-untyped-def]
    """ffi / landlock / seccomp, as delivered by the bootstrap (see :func:`tiers.bootstrap_blob`)."""
    return sys.modules[f"_wci_{name}"]


def _processes() -> dict[int, tuple[bytes, int]]:
    """Every process's (state, parent pid), from one scan of /proc (the supervisor is never Landlocked)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 1:
            found[int(entry)] = (rest[0], int(rest[1]))
    return found


def _children_of(ppid: int) -> list[int]:
    """Pids whose parent is ``ppid``."""
    return [pid for pid, (_, parent) in _processes().items() if parent == ppid]


def _children(pid: int) -> list[int] | None:
    """Live children of ``pid`` from /proc/<pid>/task/*/children (None if the kernel lacks that file)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(k) for k in fh.read().split())
        except FileNotFoundError:
            if tid == str(pid) and not os.path.exists(f"/proc/{pid}/task/{tid}/children"):
                return None
        except OSError:
            continue
    return kids


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (zombies included), from /proc (which the supervisor can read)."""
    found, frontier = [], [root]
    while frontier:
        kids = _children(frontier.pop())
        if kids is None:  # no children files: scan every process once
            return _descendants_by_scan(root)
        found.extend(kids)
        frontier.extend(kids)
    return found


def _descendants_by_scan(root: int) -> list[int]:
    parents = {pid: parent for pid, (state, parent) in _processes().items() if state not in (b"Z", b"X")}
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                found.append(pid)
                frontier.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def _sweep_except(keep: int) -> int:
    """Kill every descendant of ours but ``keep`` (a session's child, between calls); returns how many."""
    killed: set[int] = set()
    for _ in range(100):
        victims = [p for p in _descendants(os.getpid()) if p != keep and _alive(p)]
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, _SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.001)
    while True:  # reap the orphans re-parented to us (the child reaps its own children, or not)
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0 or pid == keep:
            break
    return len(killed)


def _threads(pid: int) -> int:
    """Threads of ``pid`` (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _sweep(in_pidns: bool) -> int:
    """Kill and reap every remaining descendant (they are all re-parented to us, the subreaper).

    In a private pid namespace (tier A) kill(-1) reaches exactly the sandbox's processes (bwrap's
    init is exempt); otherwise the children are found in /proc.
    """
    if in_pidns:
        killed = 0
        while True:
            try:  # noqa: SIM105 - contextlib would cost start-up time
                os.kill(-1, _SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return killed
            killed += 1
    me, killed = os.getpid(), 0
    for _ in range(10_000):
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid:
            continue
        kids = _children_of(me)
        for kid in kids:
            try:
                os.kill(kid, _SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        if kids:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return killed
        else:
            time.sleep(0.001)
    return killed


def _disk_usage(root: str, limit_files: int) -> tuple[int, int]:
    """(bytes allocated, entries) beneath ``root``; stops counting past ``limit_files`` entries."""
    total, count, stack = 0, 0, [root]
    while stack and count <= limit_files:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    count += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total, count


def _wipe(root: str) -> bool:
    """Empty the workdir for the next run (we own everything in it); True when nothing is left."""
    for _ in range(3):
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for name in filenames:
                try:  # noqa: SIM105 - contextlib would cost start-up time
                    os.unlink(os.path.join(dirpath, name))
                except OSError:
                    pass
            for name in dirnames:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.islink(path):
                        os.unlink(path)
                    else:
                        os.rmdir(path)
                except OSError:
                    pass
        try:
            if not os.listdir(root):
                return True
        except OSError:
            return False
        for dirpath, dirnames, _files in os.walk(root):  # unreadable dirs: give ourselves access, retry
            for name in dirnames:
                try:  # noqa: SIM105 - contextlib would cost start-up time
                    os.chmod(os.path.join(dirpath, name), 0o700)
                except OSError:
                    pass
    return False


def _exit_code(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return -1


def _safe_relpath(rel: str) -> str:
    norm = os.path.normpath(rel)
    if os.path.isabs(norm) or norm == ".." or norm.startswith("../") or norm in ("", "."):
        raise ValueError(f"input file name {rel!r} must be a relative path inside the workdir")
    return norm


# --- the child -----------------------------------------------------------------------------------


def _lock_down(job: dict, ruleset_fd: int | None, supervisor: int, keep: list[int], lock_sock: int) -> None:
    """Everything between fork and the first line of user code. Raises on any failure."""
    import resource

    os.setsid()
    _load_sibling("ffi").prctl(_PR_SET_PDEATHSIG, _SIGKILL)
    if os.getppid() != supervisor:
        os._exit(SETUP_ERROR_EXIT)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    extra = [fd for fd in (ruleset_fd, lock_sock) if fd is not None]
    keep_set = sorted({0, 1, 2, *keep, *extra})
    low = 0
    for fd in keep_set:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)
    try:  # the code's processes, not the supervisor, are what the run's out-of-memory killer picks
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    for name, value in job["rlimits"].items():
        res = getattr(resource, "RLIMIT_" + name)
        resource.setrlimit(res, tuple(value) if isinstance(value, list) else (value, value))
    seccomp = _load_sibling("seccomp")
    seccomp.set_no_new_privs()
    if ruleset_fd is not None:
        landlock = _load_sibling("landlock")
        landlock.restrict_self(ruleset_fd)
        os.close(ruleset_fd)
    listener = None
    if job["seccomp"]:
        listener = seccomp.install_filter(job["_seccomp_filter"], listener=job["notify"]) or None
    _setup_imports(job)
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(job["workdir"])
    _report_locked(lock_sock, listener)


def _report_locked(sock_fd: int, listener: int | None) -> None:
    """Tell the supervisor the lock-down is complete (and hand it the seccomp listener), keeping no copy.

    This channel is closed before the first line of user code, so the code can never claim a setup
    error or answer a seccomp notification.
    """
    import _socket

    sock = _socket.socket(fileno=sock_fd)
    try:
        if listener is None:
            sock.sendall(b"L")
        else:
            sock.sendmsg([b"L"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, listener.to_bytes(4, sys.byteorder))])
    finally:
        sock.close()
        if listener is not None:
            os.close(listener)


def _setup_imports(job: dict) -> None:
    """sys.path: the stdlib (through /proc/self/fd when the uid cannot walk to it) + allowed packages."""
    reroute: dict[str, int] = job.get("_reroute_fds", {})

    def fix(path: str) -> str:
        for prefix, fd in reroute.items():
            if path == prefix or path.startswith(prefix + "/"):
                return f"/proc/self/fd/{fd}" + path[len(prefix) :]
        return path

    if reroute:
        sys.path[:] = [fix(p) for p in sys.path]
        for module in list(sys.modules.values()):
            pkg_path = getattr(module, "__path__", None)
            if isinstance(pkg_path, list):
                pkg_path[:] = [fix(p) for p in pkg_path]
        sys.path_importer_cache.clear()
    allowed = {
        name: (fix(origin), [fix(p) for p in locations] if locations else None)
        for name, (origin, locations) in job["packages"].items()
    }
    if allowed:
        spec_from_file_location = sys.modules["_frozen_importlib_external"].spec_from_file_location

        class AllowedPackages:
            """Finds the allowed top-level packages at their known location (no directory listing needed)."""

            @staticmethod
            def find_spec(name, path=None, target=None):  # type: ignore[no-untyped-def]
                if path is None and name in allowed:
                    origin, locations = allowed[name]
                    return spec_from_file_location(name, origin, submodule_search_locations=locations)
                return None

        sys.meta_path.insert(len(sys.meta_path) - 1, AllowedPackages)  # type: ignore[arg-type]


def _format_exception(exc: BaseException, code: str) -> tuple[str, str, str]:
    import linecache
    import traceback

    linecache.cache["<sandbox>"] = (len(code), None, code.splitlines(True), "<sandbox>")
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<sandbox>":
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable exception>"
    return type(exc).__qualname__, message[:TRACEBACK_CAP], text[-TRACEBACK_CAP:]


def _execute(code: str, namespace: dict) -> tuple[int, dict[str, object]]:
    """Run one piece of user code; returns (exit code, report fields). Never raises."""
    report: dict[str, object] = {}
    exit_code = 0
    try:
        exec(compile(code, "<sandbox>", "exec"), namespace)
    except SystemExit as exc:
        if exc.code is None:
            exit_code = 0
        elif isinstance(exc.code, int):
            exit_code = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            exit_code = 1
        report["system_exit"] = exit_code
    except BaseException as exc:
        exit_code = 1
        try:
            etype, message, text = _format_exception(exc, code)
            report.update(exc_type=etype, exc_message=message, traceback=text)
            sys.stderr.write(text)
        except BaseException:
            report.update(exc_type=type(exc).__name__, exc_message="", traceback="")
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost start-up time
            stream.flush()
        except BaseException:
            pass
    report["exit_code"] = exit_code
    return exit_code, report


def _main_namespace() -> dict:
    """A fresh ``__main__`` module for the user code (the worker script stops being ``__main__``)."""
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    return module.__dict__


def _child_run(job: dict, report_w: int) -> None:
    me = os.getpid()
    namespace = _main_namespace()
    exit_code, report = _execute(job["code"], namespace)
    if "threading" in sys.modules:  # like the interpreter: wait for non-daemon threads
        try:  # noqa: SIM105 - contextlib would cost start-up time
            sys.modules["threading"]._shutdown()  # type: ignore[attr-defined]
        except BaseException:
            pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost start-up time
            stream.flush()
        except BaseException:
            pass
    if os.getpid() == me:  # a forked copy of the user code must not report
        try:  # noqa: SIM105 - contextlib would cost start-up time
            _write_all(report_w, encode_fields(report))
        except OSError:
            pass
    os._exit(exit_code)


def _child_session(req_r: int, report_w: int) -> None:
    me = os.getpid()
    namespace = _main_namespace()
    while True:
        raw = _read_raw_message(req_r)
        if raw is None or os.getpid() != me:
            os._exit(0)
        request = marshal.loads(raw[8:])
        _code, report = _execute(request["code"], namespace)
        if os.getpid() != me:
            os._exit(0)
        report["nonce"] = request["nonce"]
        _write_all(report_w, encode_fields(report))


def _child_main(
    job: dict, ruleset_fd: int | None, supervisor: int, report_w: int, req_r: int | None, lock_sock: int
) -> None:
    try:
        keep = [report_w, *job.get("_reroute_fds", {}).values()]
        if req_r is not None:
            keep.append(req_r)
        _lock_down(job, ruleset_fd, supervisor, keep, lock_sock)
        # From here on the code is untrusted: the supervisor ignores any setup error it claims.
    except BaseException as exc:
        try:
            _write_all(report_w, encode_fields({"setup_error": f"{type(exc).__name__}: {exc}"}))
        finally:
            os._exit(SETUP_ERROR_EXIT)
    if req_r is None:
        _child_run(job, report_w)
    else:
        _child_session(req_r, report_w)
    os._exit(0)


# --- the supervisor ------------------------------------------------------------------------------


class _Reports:
    """Reassembles the child's length-prefixed report frames (defensively: the child is untrusted)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        if len(self.buf) + len(data) > REPORT_CAP + 4:
            self.dropped += len(data)
            return
        self.buf += data

    def pop(self) -> dict[str, str] | None:
        if len(self.buf) < 4:
            return None
        size = int.from_bytes(self.buf[:4], "big")
        if size > REPORT_CAP:
            self.buf.clear()
            return {"report_error": "oversized report from the sandboxed process"}
        if len(self.buf) < 4 + size:
            return None
        payload = bytes(self.buf[4 : 4 + size])
        del self.buf[: 4 + size]
        try:
            return decode_fields(payload)
        except ValueError:
            return {"report_error": "malformed report from the sandboxed process"}


_CHILD_KEYS = ("exc_type", "exc_message", "traceback", "system_exit", "report_error")
"""What the supervisor takes from the child's report once user code may run (never setup errors,
exit codes of a one-shot run, stop reasons or anything else the caller must be able to trust)."""


class Supervisor:
    """Owns one child (one run, or one session) and everything it spawns."""

    def __init__(self, job: dict, result_fd: int) -> None:
        self.job = job
        self.result_fd = result_fd
        self.child = 0
        self.pidfd = -1
        self.report_r = -1
        self.req_w = -1
        self.lock_sock = -1
        """The child's lock-down channel: one b"L" (with the seccomp listener) before any user code."""
        self.listener = -1
        self.locked = False
        self.setup_error: str | None = None
        self.syscall: str | None = None
        self.nonce: str | None = None
        """A session call's random tag: a report counts only when the session loop echoes it."""
        self.rusage = None
        self.reports = _Reports()

    # setup (still privileged) ----------------------------------------------------------------
    def prepare(self) -> int | None:
        job = self.job
        ffi = _load_sibling("ffi")
        job["_reroute_fds"] = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in job["reroute"]}
        for fd in job["_reroute_fds"].values():
            os.set_inheritable(fd, True)
        ruleset_fd = None
        if job["landlock_abi"]:
            landlock = _load_sibling("landlock")
            ll = job["landlock"]
            ruleset_fd = landlock.build_ruleset(
                abi=job["landlock_abi"],
                ro_dirs=ll["ro_dirs"],
                ro_files=ll["ro_files"],
                rw_dirs=[job["workdir"]],
                rw_files=ll["rw_files"],
            )
        drop = job["drop"]
        if drop and os.geteuid() == 0:
            uid, gid = drop
            os.chown(job["workdir"], uid, gid)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
                raise OSError("privilege drop did not take effect")
            try:
                os.setuid(0)
            except PermissionError:
                pass
            else:
                raise OSError("privilege drop is reversible (setuid(0) succeeded)")
        # Credentials changed: the parent-death signal was reset, set it (again) now.
        ffi.prctl(_PR_SET_PDEATHSIG, _SIGKILL)
        if os.getppid() == 1 and not job["in_pidns"]:
            os._exit(1)
        for rel, data in job["files"].items():
            path = os.path.join(job["workdir"], _safe_relpath(rel))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
        if ffi.prctl(_PR_SET_CHILD_SUBREAPER, 1) != 0:
            raise OSError("prctl(PR_SET_CHILD_SUBREAPER) failed")
        return ruleset_fd

    def spawn(self, ruleset_fd: int | None, session: bool) -> None:
        report_r, report_w = os.pipe()
        req_r = None
        if session:
            req_r, self.req_w = os.pipe()
        import _socket

        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.lock_sock, child_sock = ours.detach(), theirs.detach()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os.close(self.lock_sock)
            _child_main(self.job, ruleset_fd, os.getppid(), report_w, req_r, child_sock)
        self.child = pid
        self.start = time.monotonic()
        os.close(report_w)
        os.close(child_sock)
        os.set_blocking(self.lock_sock, False)
        if req_r is not None:
            os.close(req_r)
        if ruleset_fd is not None:
            os.close(ruleset_fd)
        self.report_r = report_r
        os.set_blocking(report_r, False)
        self.pidfd = os.pidfd_open(pid)

    # waiting ------------------------------------------------------------------------------------
    def _take_lock_message(self) -> None:
        """Read the child's lock-down message if it is there (locked, and the listener); EOF = never locked."""
        import _socket

        sock = _socket.socket(fileno=self.lock_sock)
        try:
            msg, ancdata, _flags, _addr = sock.recvmsg(1, _socket.CMSG_SPACE(4))
        except BlockingIOError:
            sock.detach()
            return
        except OSError:
            msg, ancdata = b"", []
        sock.close()
        self.lock_sock = -1
        self.locked = msg == b"L"
        for level, kind, data in ancdata:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
                self.listener = int.from_bytes(data[:4], sys.byteorder)
                os.set_blocking(self.listener, False)

    def _forbidden(self) -> bool:
        """A notification: the code made a fatal syscall; remember its name (True) or ignore a stale one."""
        seccomp = _load_sibling("seccomp")
        try:
            _pid, nr, arch = seccomp.read_notification(self.listener)
        except OSError:
            return False
        self.syscall = seccomp.syscall_name(nr, arch)
        return True

    def _pop_report(self) -> dict[str, str] | None:
        """The next child report that counts: the lock-down marker and setup errors are consumed here."""
        if not self.locked and self.lock_sock >= 0:
            self._take_lock_message()  # sent before any frame the code could write
        while True:
            report = self.reports.pop()
            if report is None:
                return None
            if not self.locked and "setup_error" in report:
                self.setup_error = report["setup_error"][:TRACEBACK_CAP]
                continue
            if self.nonce is not None and report.get("nonce") != self.nonce:
                continue  # written by the code, not by the session loop for this call
            return {k: report[k] for k in (*_CHILD_KEYS, "exit_code") if k in report}

    def wait(
        self, timeout: float, want_report: bool, until_locked: bool = False
    ) -> tuple[str, dict[str, str], int | None]:
        """Wait for a report (session) or the child's exit; returns (event, report, exit status).

        event: "report", "locked" (``until_locked``), "exit", "timeout", "disk" (tier B's polled cap)
        or "syscall" (a fatal one).
        """
        import select

        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        poller.register(self.report_r, select.POLLIN)
        if self.lock_sock >= 0:
            poller.register(self.lock_sock, select.POLLIN)
        if self.listener >= 0:
            poller.register(self.listener, select.POLLIN)
        deadline = time.monotonic() + timeout
        disk_cap = self.job["disk_watch"]
        next_disk = time.monotonic() + DISK_POLL_S
        report: dict[str, str] | None = None
        while True:
            if want_report or until_locked:
                report = self._pop_report()
                if report is not None and want_report:
                    return "report", report, None
                if until_locked and self.locked:
                    return "locked", {}, None
            now = time.monotonic()
            if now >= deadline:
                return "timeout", {}, None
            wait_s = deadline - now
            if disk_cap:
                wait_s = min(wait_s, max(0.0, next_disk - now))
            for fd, _ev in poller.poll(wait_s * 1000):
                if fd == self.report_r:
                    self._drain_report()
                elif fd == self.lock_sock:
                    poller.unregister(fd)
                    self._take_lock_message()
                    if self.listener >= 0:
                        poller.register(self.listener, select.POLLIN)
                elif fd == self.listener:
                    if self._forbidden():
                        return "syscall", {}, None
                elif fd == self.pidfd:
                    self._drain_report()
                    _pid, status, self.rusage = os.wait4(self.child, 0)
                    self._drain_report()
                    return "exit", self._last_report(), status
            if disk_cap and time.monotonic() >= next_disk:
                used, count = _disk_usage(self.job["workdir"], disk_cap[1])
                if used > disk_cap[0] or count > disk_cap[1]:
                    return "disk", {}, None
                next_disk = time.monotonic() + DISK_POLL_S

    def _last_report(self) -> dict[str, str]:
        last: dict[str, str] = {}
        while True:
            report = self._pop_report()
            if report is None:
                return last
            last = report

    def _drain_report(self) -> None:
        while True:
            try:
                data = os.read(self.report_r, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            self.reports.feed(data)

    def kill_all(self) -> tuple[int | None, int]:
        """SIGKILL the child's group and the child, reap it, sweep leftovers; (status, leftovers)."""
        status = None
        for target in (-self.child, self.child):
            try:  # noqa: SIM105 - contextlib would cost start-up time
                os.kill(target, _SIGKILL)
            except ProcessLookupError:
                pass
        try:  # noqa: SIM105 - contextlib would cost start-up time
            _pid, status, self.rusage = os.wait4(self.child, 0)
        except ChildProcessError:
            pass
        return status, _sweep(self.job["in_pidns"])

    def emit(self, fields: dict[str, object]) -> None:
        _write_all(self.result_fd, encode_fields(fields))

    # stop reasons -------------------------------------------------------------------------------
    def stop_reason(self, event: str, status: int | None, report: dict[str, str]) -> str | None:
        """Why the code stopped, from what the supervisor saw (the host adds cgroup and output facts)."""
        if event == "syscall":
            return "syscall"
        if event in ("timeout", "disk"):
            return event
        code = _exit_code(status) if status is not None else None
        if code == -_SIGXCPU:
            return "cpu"
        if code == -_SIGXFSZ:
            return "disk"
        if code == -_SIGKILL and self.rusage is not None:
            used = self.rusage.ru_utime + self.rusage.ru_stime
            if used >= self.job["rlimits"]["CPU"][0]:
                return "cpu"
        message = report.get("exc_message", "")
        if report.get("exc_type") == "MemoryError" or message.startswith("[Errno 12]"):  # ENOMEM
            return "memory"
        if message.startswith(("[Errno 27]", "[Errno 28]", "[Errno 122]")):  # EFBIG, ENOSPC, EDQUOT
            return "disk"
        if message.startswith("[Errno 11]") or message == "can't start new thread":  # EAGAIN from fork/clone
            return "pids"
        if code not in (0, None) and self._workdir_full():
            return "disk"
        return None

    def _workdir_full(self) -> bool:
        if not self.job["disk_full_check"]:
            return False
        try:
            st = os.statvfs(self.job["workdir"])
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < 64 * 1024 or st.f_favail == 0

    # modes --------------------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Wait for the child, clean up, emit the result; True if this worker may serve another run."""
        event, report, status = self.wait(self.job["timeout"], want_report=False)
        fields: dict[str, object] = {}
        if event != "exit":
            killed_status, leftovers = self.kill_all()
            status = killed_status if killed_status is not None else status
        else:
            try:  # noqa: SIM105 - contextlib would cost start-up time
                os.killpg(self.child, _SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            leftovers = _sweep(self.job["in_pidns"])
        self._drain_report()
        report = {**report, **self._last_report()}
        if not self.locked:
            error = self.setup_error or "the sandboxed process ended before it locked itself down"
            fields.update(setup_error=error)
            if event == "exit" and status is not None and _exit_code(status) == SETUP_ERROR_EXIT:
                fields["setup_failed"] = 1
        fields.update({k: report[k] for k in _CHILD_KEYS if k in report})
        fields.update(
            exit_code=_exit_code(status) if status is not None else -9,
            timed_out=event == "timeout",
            stop_reason=self.stop_reason(event, status, report),
            syscall=self.syscall,
            leftovers_killed=leftovers,
            duration=f"{time.monotonic() - self.start:.6f}",
            uid=os.getuid(),
        )
        reusable = not self.job["wipe_workdir"] or _wipe(self.job["workdir"])
        fields["reusable"] = reusable
        self.emit(fields)
        return reusable

    def run_session(self) -> None:
        event, report, status = self.wait(self.job["timeout"], want_report=False, until_locked=True)
        if not self.locked:
            self.kill_all()
            error = self.setup_error or f"the session process did not start ({event})"
            self.emit({"setup_error": error, "setup_failed": 1, "dead": 1, "exit_code": SETUP_ERROR_EXIT})
            return
        self.emit({"ready": 1, "uid": os.getuid()})
        while True:
            raw = _read_raw_message(0)
            if raw is None:
                self.kill_all()
                return
            request = marshal.loads(raw[8:])
            started = time.monotonic()
            self._drain_report()  # whatever the previous call wrote after its report is not this call's
            self.reports.buf.clear()
            self.nonce = request["nonce"] = os.urandom(12).hex()
            try:  # noqa: SIM105 - contextlib would cost start-up time
                _write_all(self.req_w, pack_message(request))
            except OSError:
                pass
            event, report, status = self.wait(request["timeout"], want_report=True)
            fields: dict[str, object] = {}
            if event == "report":
                fields.update({k: report[k] for k in _CHILD_KEYS if k in report})
                fields["exit_code"] = report.get("exit_code", "1")
                # Between calls nothing of the code runs: its processes are killed now, and threads
                # left running (they would run, and could write, during the next call) end the session.
                fields["leftovers_killed"] = _sweep_except(self.child)
                if _threads(self.child) > 1:
                    time.sleep(0.02)  # a joined thread may still be exiting
                    if _threads(self.child) > 1:
                        fields.update(stop_reason="leftover")
                        event = "leftover"
            if event != "report":
                if event == "exit":
                    fields.update({k: report[k] for k in _CHILD_KEYS if k in report})
                killed_status, leftovers = self.kill_all()
                status = status if status is not None else killed_status
                fields.setdefault("stop_reason", self.stop_reason(event, status, report))
                fields.update(
                    dead=1,
                    timed_out=event == "timeout",
                    syscall=self.syscall,
                    exit_code=_exit_code(status) if status is not None and event != "leftover" else -9,
                    leftovers_killed=leftovers + int(fields.get("leftovers_killed", 0)),  # type: ignore[call-overload]
                )
            fields["duration"] = f"{time.monotonic() - started:.6f}"
            self.emit(fields)
            if "dead" in fields:
                return


def _mount_workdir(path: str, size: int) -> None:
    """Tier B as root: a private mount namespace with a size-capped tmpfs on the workdir.

    Done once by the worker before any job: the mount exists only in the namespace of the worker and
    its runs, so it vanishes with their last process, whatever happens to the host or a supervisor.
    Each run's supervisor makes it its uid's and wipes it afterwards (as in tier A).
    """
    ffi = _load_sibling("ffi")
    nrs = _load_sibling("seccomp")._table(None)["nr"]
    if ffi.syscall(nrs["unshare"], _CLONE_NEWNS) != 0:
        raise OSError(ffi.errno(), f"unshare(CLONE_NEWNS) failed: {os.strerror(ffi.errno())}")
    if ffi.syscall(nrs["mount"], None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(ffi.errno(), f"making / private failed: {os.strerror(ffi.errno())}")
    options = f"size={size},mode=0700".encode()
    if ffi.syscall(nrs["mount"], b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
        raise OSError(ffi.errno(), f"mounting the workdir tmpfs failed: {os.strerror(ffi.errno())}")


def _serve_one(result_fd: int) -> None:
    """One run or session (a fresh fork of the idle worker, which never sees job data); never returns."""
    seccomp = _load_sibling("seccomp")
    raw = _read_raw_message(0)
    if raw is None:
        os._exit(2)
    job = marshal.loads(raw[8:])
    job["_seccomp_filter"] = seccomp.build_filter(
        supervisor_pid=os.getpid(),
        allow_unix_sockets=job["unix_sockets"],
        notify=job["notify"],
        refuse_fallocate=bool(job["disk_watch"]),
    )
    sup = Supervisor(job, result_fd)
    session = job["mode"] == "session"
    try:
        ruleset_fd = sup.prepare()
        sup.spawn(ruleset_fd, session)
    except BaseException as exc:
        sup.emit({"setup_error": f"supervisor: {type(exc).__name__}: {exc}", "setup_failed": 1,
                  "exit_code": SETUP_ERROR_EXIT})  # fmt: skip
        os._exit(1)
    if session:
        sup.run_session()
        os._exit(1)
    os._exit(0 if sup.run_once() else 1)


def main() -> None:
    """Entry point of a worker (argv[1] is the result fd).

    The worker idles until a job arrives on stdin, then forks a per-run supervisor that reads the job
    (so the idle worker's memory never holds any job's code or files) and waits for it. A run that
    ends clean (every process reaped, workdir wiped) lets the worker serve the next job; anything
    else ends the worker. In tier A the worker is the pid namespace's init (bwrap --as-pid-1).
    """
    # Everything that does not depend on the job happens before the first one arrives: imports
    # (while the interpreter's files are surely reachable, before any privilege drop).
    import _socket  # noqa: F401
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import select

    _load_sibling("seccomp")
    _load_sibling("landlock")
    _load_sibling("ffi").prctl(_PR_SET_PDEATHSIG, _SIGKILL)
    result_fd = int(sys.argv[1])
    if len(sys.argv) > 2:  # "<bytes>:<path>": this worker's workdir tmpfs (tier B as root)
        size, _sep, path = sys.argv[2].partition(":")
        _mount_workdir(path, int(size))
    poller = select.poll()
    poller.register(0, select.POLLIN)
    while True:
        events = poller.poll()
        if not any(ev & select.POLLIN for _fd, ev in events):
            os._exit(0)  # the host closed stdin: no more jobs
        pid = os.fork()
        if pid == 0:
            try:
                _serve_one(result_fd)
            finally:
                os._exit(1)
        _pid, status = os.waitpid(pid, 0)
        while True:  # as a pid namespace's init, reap whatever was re-parented to us
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if status != 0:
            os._exit(0)


if __name__ == "__main__":
    main()
