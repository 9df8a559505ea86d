"""Just enough FFI for raw syscalls, built on ``_ctypes`` directly.

``import ctypes`` costs ~4 ms of CPU at every sandbox start (it builds dozens of classes); the
sandbox needs only ``syscall``, ``prctl``, errno and the address of a buffer. Standard library only.
"""

from __future__ import annotations

import _ctypes

__all__ = ["buffer_address", "errno", "prctl", "syscall"]

_RTLD_NOW = 2


class _CLong(_ctypes._SimpleCData):
    _type_ = "l"


class _CChar(_ctypes._SimpleCData):
    _type_ = "c"


class _LibcFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CLong


class _Libc:
    _handle = _ctypes.dlopen(None, _RTLD_NOW)


_syscall = _LibcFunction(("syscall", _Libc()))
_prctl = _LibcFunction(("prctl", _Libc()))


def _arg(value: int | bytes | None) -> object:
    return _CLong(value) if isinstance(value, int) else value


def syscall(number: int, *args: int | bytes | None) -> int:
    """``syscall(number, args...)``: ints are passed as C longs, bytes as pointers; -1 means see errno()."""
    return int(_syscall(_CLong(number), *[_arg(a) for a in args]))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """``prctl(2)``; -1 means see errno()."""
    return int(_prctl(_CLong(option), _CLong(arg2), _CLong(arg3), _CLong(arg4), _CLong(arg5)))


def errno() -> int:
    """errno of the last call made through this module."""
    return int(_ctypes.get_errno())


def buffer_address(data: bytes) -> tuple[object, int]:
    """A C copy of ``data`` and its address; keep the first item alive while the address is used."""
    array_type = type("_CharArray", (_ctypes.Array,), {"_type_": _CChar, "_length_": max(1, len(data))})
    buf = array_type.from_buffer_copy(data.ljust(max(1, len(data)), b"\0"))
    return buf, int(_ctypes.addressof(buf))
