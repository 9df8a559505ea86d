"""GPTQ quantisation (Frantar et al.) and TheBloke's on-disk packing, for the stand-in's linear layers.

Packing follows the AutoGPTQ v1 format TheBloke published: ``qweight`` int32 [in*bits/32, out] (input rows
packed low bits first), ``qzeros`` int32 [groups, out*bits/32] holding zero-point minus one, ``scales``
fp16 [groups, out], ``g_idx`` int32 [in] (the group of every input column; permuted under act-order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["QuantizedLinear", "gptq_quantize", "pack_columns", "pack_rows"]


@dataclass
class QuantizedLinear:
    qweight: torch.Tensor  # int32 [in * bits / 32, out]
    qzeros: torch.Tensor  # int32 [groups, out * bits / 32]
    scales: torch.Tensor  # fp16 [groups, out]
    g_idx: torch.Tensor  # int32 [in]
    dequantized: torch.Tensor  # fp32 [out, in], what the packed tensors decode to


def _sym_params(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric scale and zero for each row of w [out, n]: scale [out], zero [out]."""
    maxq = 2**bits - 1
    xmax = torch.maximum(w.min(dim=1).values.abs(), w.max(dim=1).values).clamp(min=1e-8)
    scale = (2 * xmax / maxq).half().float()  # stored as fp16: quantise against what is stored
    zero = torch.full_like(scale, (maxq + 1) // 2)
    return scale, zero


def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, *, bits: int, group_size: int,
                  act_order: bool, damp: float = 0.01, block: int = 128) -> QuantizedLinear:
    """Quantise weight [out, in] against the input Hessian [in, in] (2/n X^T X of calibration inputs)."""
    maxq = 2**bits - 1
    W = weight.detach().float().clone()
    H = hessian.detach().float().clone()
    out_f, in_f = W.shape
    gs = in_f if group_size == -1 else group_size
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = torch.argsort(torch.diag(H), descending=True) if act_order else torch.arange(in_f)
    W, H = W[:, perm], H[perm][:, perm]
    H += damp * torch.mean(torch.diag(H)) * torch.eye(in_f)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    qint = torch.zeros_like(W, dtype=torch.int64)
    n_groups = in_f // gs
    scales = torch.zeros(n_groups, out_f)
    zeros = torch.zeros(n_groups, out_f, dtype=torch.int64)
    scale = zero = None
    for i1 in range(0, in_f, block):
        i2 = min(i1 + block, in_f)
        W1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros(out_f, i2 - i1), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if col % gs == 0:
                scale, zero = _sym_params(torch.cat([W1[:, i:], W[:, i2:]], dim=1)[:, :gs], bits)
                scales[col // gs], zeros[col // gs] = scale, zero
            w, d = W1[:, i], Hinv1[i, i]
            q = torch.clamp(torch.round(w / scale) + zero, 0, maxq)
            qint[:, col] = q.long()
            Q[:, col] = scale * (q - zero)
            err = (w - Q[:, col]) / d
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    inv = torch.argsort(perm)
    g_idx = (torch.arange(in_f) // gs)[inv].to(torch.int32)  # group of each original input column
    q_orig = qint[:, inv]  # [out, in]
    deq = scales[g_idx.long()].t() * (q_orig - zeros[g_idx.long()].t())
    return QuantizedLinear(
        qweight=pack_rows(q_orig.t().contiguous(), bits),
        qzeros=pack_columns(zeros - 1, bits),
        scales=scales.half(),
        g_idx=g_idx,
        dequantized=deq,
    )


def pack_rows(q: torch.Tensor, bits: int) -> torch.Tensor:
    """q [in, out] ints -> int32 [in * bits / 32, out], 32/bits consecutive rows per word."""
    per = 32 // bits
    a = q.numpy().astype(np.uint32).reshape(-1, per, q.shape[1])
    packed = np.zeros((a.shape[0], a.shape[2]), dtype=np.uint32)
    for k in range(per):
        packed |= a[:, k, :] << np.uint32(bits * k)
    return torch.from_numpy(packed.view(np.int32))


def pack_columns(z: torch.Tensor, bits: int) -> torch.Tensor:
    """z [groups, out] ints -> int32 [groups, out * bits / 32], 32/bits consecutive columns per word."""
    per = 32 // bits
    a = z.numpy().astype(np.uint32).reshape(z.shape[0], -1, per)
    packed = np.zeros((a.shape[0], a.shape[1]), dtype=np.uint32)
    for k in range(per):
        packed |= a[:, :, k] << np.uint32(bits * k)
    return torch.from_numpy(packed.view(np.int32))
