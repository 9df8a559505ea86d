"""Programmatic dependent launch (Hopper and newer): a kernel launched with ``launch_pdl=True`` may start while
the kernel before it is still running. Each such kernel calls :func:`gdc_launch_dependents` (so the next one can
be scheduled early) and :func:`gdc_wait` before it touches memory the kernels before it write; what it reads
that nothing writes (weights) it may request earlier.
"""

from __future__ import annotations

import triton

try:
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:  # older Triton: the kernels still compile; triton_ops launches them without PDL there

    @triton.jit
    def gdc_launch_dependents() -> None:
        pass

    @triton.jit
    def gdc_wait() -> None:
        pass


__all__ = ["gdc_launch_dependents", "gdc_wait"]
