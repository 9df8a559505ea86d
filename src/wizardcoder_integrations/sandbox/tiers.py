"""Which isolation the host can give (tier detection) and how to launch it (bwrap argv, paths).

* tier A: bubblewrap namespaces (mount, pid, net, ipc, uts, cgroup) + Landlock + seccomp + rlimits;
* tier B: no usable user namespaces: Landlock + seccomp + rlimits, with a warning naming what is weaker;
* unsafe: neither Landlock nor namespaces: only with an explicit opt-in.
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import os
import select
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field

from ..errors import ConfigurationError, SandboxError
from . import landlock
from .cgroups import cgroup_support

__all__ = [
    "IsolationTier",
    "PackageMounts",
    "PythonLayout",
    "SandboxUnavailableError",
    "TierInfo",
    "bwrap_argv",
    "detect_tier",
    "python_layout",
    "resolve_packages",
]

SANDBOX_WORKDIR = "/sandbox"
"""The workdir (a size-capped tmpfs) as seen inside tier A."""
PROBE_TIMEOUT_S = 20.0
"""How long the one-time bubblewrap probe may take."""

_SYSTEM_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local/lib", "/lib", "/lib64", "/lib32")
_TOP_LEVEL_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_RO_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/dev/urandom", "/dev/random")
_RW_FILES = ("/dev/null", "/dev/zero", "/dev/full")
_DEV_NODES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")

ENABLE_TIER_A_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow user namespaces: on "
    "Ubuntu >= 23.10 `sysctl kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor profile "
    "granting `userns` to /usr/bin/bwrap; in Docker run with a seccomp profile that allows "
    "clone/unshare/mount (e.g. --security-opt seccomp=unconfined) or run as root with --privileged"
)


class SandboxUnavailableError(SandboxError):
    """The requested isolation tier cannot be provided on this host."""


class IsolationTier(enum.StrEnum):
    """How strongly code is isolated; reported on every result."""

    A = "A"
    """bubblewrap namespaces + Landlock + seccomp + rlimits (+ privilege drop when root)."""
    B = "B"
    """Landlock + seccomp + rlimits (+ privilege drop), no namespaces."""
    UNSAFE = "unsafe"
    """seccomp + rlimits only (explicit opt-in): no filesystem or network isolation."""


@dataclass(frozen=True)
class TierInfo:
    """The result of tier detection: the chosen tier and the facts it was chosen from."""

    tier: IsolationTier
    landlock_abi: int
    bwrap_path: str | None
    bwrap_error: str | None
    seccomp: bool
    as_root: bool
    warnings: tuple[str, ...] = ()
    cgroup_version: int = 0
    """1 or 2: every run is accounted in a cgroup of that version; 0: none could be created (weaker)."""
    cgroup: str = "none"
    """The cgroup facts in words, e.g. "v1 (memory,pids,cpu,cpuacct)" or "none (why)"."""

    @property
    def weakened(self) -> bool:
        """True when a part of this tier is missing on this host (``warnings`` say which)."""
        return bool(self.warnings)

    def describe(self) -> str:
        """One line for logs: tier, Landlock ABI, bubblewrap, seccomp, cgroups, root."""
        bw = self.bwrap_path or "missing"
        if self.bwrap_error:
            bw += f" (unusable: {self.bwrap_error})"
        return (
            f"tier {self.tier.value}{' (weakened)' if self.weakened else ''}: landlock ABI "
            f"{self.landlock_abi or 'none'}, bubblewrap {bw}, seccomp {'yes' if self.seccomp else 'no'}, "
            f"cgroups {self.cgroup}, root {'yes (a uid per worker)' if self.as_root else 'no'}"
        )


# --- paths --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonLayout:
    """Where the interpreter and its standard library live on the host (same paths inside)."""

    executable: str
    stdlib_dirs: tuple[str, ...]
    bind_roots: tuple[str, ...]
    masked_dirs: tuple[str, ...]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.lru_cache(maxsize=1)
def python_layout() -> PythonLayout:
    """The host interpreter (``sys.executable``, resolved) and what it needs read-only."""
    exe = os.path.realpath(sys.executable)
    # The base interpreter's stdlib (a venv's sysconfig paths point into the venv instead).
    stdlib = {os.path.realpath(os.path.dirname(os.__file__))}
    dynload = getattr(select, "__file__", None)
    if dynload:
        stdlib.add(os.path.dirname(os.path.dirname(os.path.realpath(dynload))))
    base = os.path.realpath(sys.base_prefix)
    roots = []
    for root in (base, os.path.dirname(os.path.dirname(exe))):
        if not _under(root, "/usr") and root not in roots:
            roots.append(root)
    masked = set()
    for std in stdlib:
        for name in ("site-packages", "dist-packages"):
            if os.path.isdir(os.path.join(std, name)):
                masked.add(os.path.join(std, name))
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for extra in ("/usr/lib/python3/dist-packages", f"/usr/local/lib/{ver}/dist-packages",
                  f"/usr/local/lib/{ver}/site-packages", f"/usr/lib/{ver}/site-packages"):  # fmt: skip
        if os.path.isdir(extra):
            masked.add(extra)
    return PythonLayout(exe, tuple(sorted(stdlib)), tuple(roots), tuple(sorted(masked)))


@dataclass(frozen=True)
class PackageMounts:
    """Allowed third-party packages: where each top-level module is, and the paths to expose read-only."""

    specs: dict[str, tuple[str, list[str] | None]] = field(default_factory=dict)
    """name -> (origin file, submodule search locations or None for a plain module)."""
    paths: tuple[str, ...] = ()

    @property
    def parents(self) -> list[str]:
        """The directories the packages sit in (their site-packages)."""
        return sorted({os.path.dirname(p) for p in self.paths})

    @property
    def dirs(self) -> list[str]:
        return [p for p in self.paths if os.path.isdir(p)]

    @property
    def files(self) -> list[str]:
        return [p for p in self.paths if not os.path.isdir(p)]


def resolve_packages(names: tuple[str, ...]) -> PackageMounts:
    """Find each allowed top-level module on the host; raises ConfigurationError for unknown names."""
    specs: dict[str, tuple[str, list[str] | None]] = {}
    paths: list[str] = []
    layout = python_layout()
    for name in names:
        if not name.isidentifier() or "." in name:
            raise ConfigurationError(f"allowed package {name!r} is not a top-level module name (like 'numpy')")
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ConfigurationError(
                f"allowed package {name!r} is not installed in {sys.prefix}; install it or remove it "
                "from allowed_packages"
            )
        if spec.origin in ("built-in", "frozen"):
            continue  # part of the interpreter: always importable
        if spec.origin is None:
            raise ConfigurationError(
                f"allowed package {name!r} is a namespace package; allow the concrete packages inside it instead"
            )
        origin = os.path.realpath(spec.origin)
        in_stdlib = any(_under(origin, std) for std in layout.stdlib_dirs)
        if in_stdlib and not any(_under(origin, m) for m in layout.masked_dirs):
            continue  # standard library: always importable
        locations = [os.path.realpath(p) for p in spec.submodule_search_locations or []] or None
        specs[name] = (origin, locations)
        exposed = locations or [origin]
        paths.extend(exposed)
        libs = os.path.join(os.path.dirname(exposed[0]), f"{name}.libs")  # auditwheel's vendored libraries
        if os.path.isdir(libs):
            paths.append(libs)
    return PackageMounts(specs, tuple(dict.fromkeys(paths)))


def worker_dir() -> str:
    """This package's directory (holds worker.py)."""
    return os.path.dirname(os.path.abspath(__file__))


def landlock_lists(layout: PythonLayout, packages: PackageMounts) -> dict[str, list[str]]:
    """Paths (identical inside tier A and tier B) the sandboxed code may read or write."""
    ro_dirs = [*layout.stdlib_dirs, *[d for d in _SYSTEM_LIB_DIRS if os.path.isdir(d)], "/usr/share/zoneinfo"]
    ro_dirs += packages.dirs
    return {
        "ro_dirs": ro_dirs,
        "ro_files": [*_RO_FILES, *packages.files],
        "rw_files": list(_RW_FILES),
    }


def other_can_reach(path: str, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` (without supplementary groups) can walk to and list ``path``."""
    parts = os.path.realpath(path).split("/")
    for i in range(1, len(parts) + 1):
        p = "/".join(parts[:i]) or "/"
        try:
            st = os.stat(p)
        except OSError:
            return False
        if st.st_uid == uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid == gid:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        need = 5 if i == len(parts) and stat.S_ISDIR(st.st_mode) else 1
        if stat.S_ISDIR(st.st_mode) and bits & need != need:
            return False
    return True


# --- bubblewrap --------------------------------------------------------------------------------


def sandbox_env(workdir: str, extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of the sandboxed process (nothing is inherited from the host)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.update(extra)
    return env


def bwrap_argv(
    bwrap: str,
    *,
    layout: PythonLayout,
    packages: PackageMounts,
    disk_bytes: int,
    as_root: bool,
    command: list[str],
    mount_proc: bool = True,
) -> list[str]:
    """The full bubblewrap command line for tier A (``command`` runs inside, cwd = /sandbox).

    ``mount_proc``: mount the pid namespace's own /proc for the supervisor (only where Landlock keeps
    the code out of it).
    """
    argv = [bwrap]
    if as_root:
        # Real root gets every namespace except the user namespace: a userns would map the sandbox
        # to kuid 0 (which ignores RLIMIT_NPROC). The worker drops to an unprivileged uid itself,
        # with only the capabilities needed for that.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        argv += ["--unshare-all"]
    # --as-pid-1: the worker is the namespace's init, so its kill(-1) sweep can never hit it.
    argv += ["--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL"]
    if as_root:
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_CHOWN"]
    argv += ["--clearenv"]  # the worker sets the code's environment from its job
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in _TOP_LEVEL_LINKS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for path in _RO_FILES[:2]:
        argv += ["--ro-bind-try", path, path]
    ro_roots = ["/usr", *[t for t in _TOP_LEVEL_LINKS if os.path.isdir(t) and not os.path.islink(t)]]
    made: set[str] = set()

    def parents(path: str) -> list[str]:
        out = []
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in made:
            if any(_under(parent, r) for r in ro_roots):
                break
            out.append(parent)
            parent = os.path.dirname(parent)
        made.update(out)
        return [a for d in reversed(out) for a in ("--perms", "0755", "--dir", d)]

    for root in layout.bind_roots:
        argv += [*parents(root), "--ro-bind", root, root]
        ro_roots.append(root)
    for masked in layout.masked_dirs:
        argv += ["--perms", "0555", "--tmpfs", masked]
    for path in packages.paths:
        argv += [*parents(path), "--ro-bind", path, path]
    # Only the device nodes Python needs (fewer mounts: faster, less to attack).
    # /proc of the sandbox's own pid namespace, for the supervisor (Landlock keeps the code out of it).
    if mount_proc:
        argv += ["--proc", "/proc"]
    argv += ["--perms", "0755", "--dir", "/dev"]
    for dev in _DEV_NODES:
        argv += ["--dev-bind", dev, dev]
    argv += ["--size", str(disk_bytes), "--perms", "0700", "--tmpfs", SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    return [*argv, "--", *command]


def worker_command(layout: PythonLayout, result_fd: int | str, tmpfs: tuple[str, int] | None = None) -> list[str]:
    """``python -I -S -B -c BOOTSTRAP FD [TMPFS]``: isolated mode, no site, no bytecode writes.

    ``tmpfs``: (path, bytes): the worker first mounts a tmpfs of that size on path in a private mount
    namespace of its own (tier B as root), the workdir of every run it serves.
    """
    from .worker import BOOTSTRAP

    extra = [f"{tmpfs[1]}:{tmpfs[0]}"] if tmpfs else []
    return [layout.executable, "-I", "-S", "-B", "-c", BOOTSTRAP, str(result_fd), *extra]


@functools.lru_cache(maxsize=1)
def bootstrap_blob() -> bytes:
    """The first message every worker reads: landlock, seccomp and worker as marshalled code objects."""
    import marshal

    codes = {}
    for name in ("ffi", "landlock", "seccomp", "worker"):
        path = os.path.join(worker_dir(), f"{name}.py")
        with open(path, encoding="utf-8") as fh:
            codes[f"_wci_{name}"] = compile(fh.read(), path, "exec", dont_inherit=True, optimize=2)
    data = marshal.dumps(codes)
    return len(data).to_bytes(8, "big") + data


# --- detection ---------------------------------------------------------------------------------

_PROBES: dict[tuple[str, int], str | None] = {}


def _probe_bwrap(bwrap: str, as_root: bool) -> str | None:
    """Run a no-op interpreter in the tier A configuration; None if it works, else the reason."""
    key = (bwrap, os.geteuid())
    if key in _PROBES:
        return _PROBES[key]
    layout = python_layout()
    argv = bwrap_argv(
        bwrap,
        layout=layout,
        packages=PackageMounts(),
        disk_bytes=1 << 20,
        as_root=as_root,
        command=[layout.executable, "-I", "-S", "-c", "pass"],
    )
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        error = None
        if proc.returncode != 0:
            error = (proc.stderr.decode(errors="replace").strip() or f"exit code {proc.returncode}")[:300]
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = f"{type(exc).__name__}: {exc}"
    _PROBES[key] = error
    return error


def _seccomp_available() -> bool:
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False


def detect_tier(requested: IsolationTier | str = "auto", *, allow_unsafe: bool = False) -> TierInfo:
    """Pick the strongest available tier (or check the requested one); raises SandboxUnavailableError."""
    want = None if requested in ("auto", None) else IsolationTier(requested)
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailableError(
            f"the sandbox needs Linux (Landlock, seccomp, namespaces); this is {sys.platform}. "
            "Run the code inside a Linux VM or container."
        )
    as_root = os.geteuid() == 0
    abi = landlock.abi_version()
    seccomp = _seccomp_available()
    bwrap = shutil.which("bwrap")
    bwrap_error = None if bwrap else "bwrap not found on PATH"
    if bwrap and want in (None, IsolationTier.A):
        bwrap_error = _probe_bwrap(bwrap, as_root)
    elif bwrap:
        bwrap_error = "not probed (tier forced)"
    warnings: list[str] = []
    if not seccomp and want is not IsolationTier.UNSAFE:
        raise SandboxUnavailableError(
            "the kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER); the sandbox needs it for "
            "every tier. Use a kernel with seccomp enabled."
        )

    cgroups = cgroup_support()
    if not cgroups.version:
        warnings.append(
            f"no cgroup can be created ({cgroups.reason}): memory, processes and CPU are limited per process "
            "(rlimits), not per run; page cache, shared memory and memfd are not counted, and a session's "
            "leftover threads are not detected. Run as root, or delegate a cgroup v2 subtree with the memory "
            "and pids controllers to this process (systemd: Delegate=yes)"
        )
    if not as_root:
        warnings.append(
            "not root: every sandbox runs as this process's own uid (per-uid limits and same-uid permission "
            "checks are shared with the host); run as root for a uid per sandbox"
        )

    def info(tier: IsolationTier) -> TierInfo:
        return TierInfo(
            tier, abi, bwrap, bwrap_error, seccomp, as_root, tuple(warnings), cgroups.version, cgroups.describe()
        )

    tier_a_ok = bwrap is not None and bwrap_error is None
    if want is IsolationTier.A or (want is None and tier_a_ok):
        if not tier_a_ok:
            raise SandboxUnavailableError(
                f"tier A (bubblewrap) is not available: {bwrap_error}. To enable it: {ENABLE_TIER_A_HINT}."
            )
        if abi == 0:
            warnings.append(
                "Landlock is unavailable (kernel < 5.13 or not in the `lsm=` boot list): tier A relies on "
                "bubblewrap's mount namespace alone for filesystem isolation, mounts no /proc, and so cannot see "
                "threads a session call leaves running"
            )
        elif abi < 6:
            warnings.append(f"Landlock ABI {abi} < 6: no signal/abstract-socket scoping (namespaces cover it)")
        return info(IsolationTier.A)
    if want is IsolationTier.B or (want is None and abi > 0):
        if abi == 0:
            raise SandboxUnavailableError(
                "tier B needs Landlock, which this kernel lacks (needs Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK "
                "and `landlock` in the lsm= boot parameter). Enable Landlock, or enable tier A: "
                f"{ENABLE_TIER_A_HINT}."
            )
        weaker = (
            "tier B (no namespaces): the sandbox shares the host's process list, network stack and IPC; "
            "only Landlock and seccomp stand between the code and the host (socket() is refused for every "
            "family, AF_UNIX included, since Landlock cannot guard host unix sockets)"
        )
        if abi < 4:
            weaker += f"; Landlock ABI {abi} < 4 cannot restrict TCP (seccomp still allows only AF_UNIX sockets)"
        if abi < 6:
            weaker += (
                f"; Landlock ABI {abi} < 6 cannot scope signals or abstract unix sockets: the code may signal "
                "other processes of its uid and reach abstract sockets"
            )
        if not as_root:
            weaker += "; disk use is capped by polling (fallocate refused), not by a size-limited tmpfs"
        if want is None:
            weaker += f" (bubblewrap: {bwrap_error})"
        warnings.append(f"{weaker}. To enable tier A: {ENABLE_TIER_A_HINT}.")
        return info(IsolationTier.B)
    if want is IsolationTier.UNSAFE or allow_unsafe:
        warnings.append(
            "UNSAFE mode: no Landlock and no namespaces: the code can read every file its uid can and talk to "
            "local sockets; only seccomp, rlimits and the privilege drop apply"
        )
        return info(IsolationTier.UNSAFE)
    raise SandboxUnavailableError(
        "refusing to run untrusted code: this host has neither Landlock (Linux >= 5.13 with landlock in the "
        f"lsm= list) nor usable namespaces for bubblewrap ({bwrap_error}). Fix: {ENABLE_TIER_A_HINT}; or "
        "enable Landlock for tier B; or pass allow_unsafe=True to accept seccomp+rlimits only."
    )
