"""Triton kernels of the fast CUDA path (int4 matmuls, paged decode attention, fused norms/rope/activation).

Imported only by :mod:`wizardcoder_integrations.engine.backends.triton_ops`, so installs without Triton never
import them.
"""

__all__: list[str] = []
