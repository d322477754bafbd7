"""Building blocks shared by the MS-G3D layers: temporal convolutions, MS-TCN, G3D windows.

All tensors are per-person feature maps `(N*M, C, T, V)` (written `(N, C, T, V)` below), kept in
`torch.channels_last` memory format (physically (N, T, V, C)) so that the graph aggregation,
whose output feeds a 1x1 conv over (scale, channel), needs no transposing copy.

- `TemporalConv(c_in, c_out, kernel, stride, dilation)`: Conv2d (kernel x 1) with "same"
  padding along T, then BatchNorm2d.
- `MSTCN(c_in, c_out, stride, activation)`: MS-G3D's multi-scale temporal convolution, four
  dilated 3x1 branches (d = 1..4), a max-pool branch and a 1x1 branch, concatenated, plus a
  residual, then ReLU (`activation=False` drops the final ReLU).
- `temporal_windows(x, tau, stride, dilation)`: the G3D sliding windows, channels last,
  (N, T, V, C) -> (N, T', tau, V, C).
- `graph_aggregate(a, x)`: sum_u a[r, u] x[b, u, c], the graph aggregation of every layer.
- `graph_parameters(graph)`: a fixed adjacency stack as a non-persistent buffer plus its
  learnable residual A_res ~ U(-1e-6, 1e-6) of the same shape.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

DILATIONS: tuple[int, ...] = (1, 2, 3, 4)
A_RES_INIT = 1e-6


# oneDNN (torch 2.13 CPU) has a heap-corrupting kernel: `jit_1x1:avx2` backward-weights of a
# 1x1 convolution with a temporal stride > 1 on a channels-last input with 2..7 input channels
# (`free(): invalid next size`, `double free or corruption`, segfaults; chosen on AVX2-only CPUs
# such as AMD EPYC Zen 3, and on AVX-512 CPUs under ONEDNN_MAX_CPU_ISA=AVX2). Measured with
# MALLOC_CHECK_=3 on 16x{C}x16x25 inputs: C = 2..7 crash within 60 steps, C = 1 and C >= 8 give
# the same gradients as torch's native kernels, stride 1 and (3x1) kernels are safe at every C.
# Such a convolution is computed as "take every stride-th frame, then a stride-1 1x1 conv",
# which is the same function (a 1x1 kernel without padding reads exactly those frames) and
# never reaches that kernel. Only narrow CPU profiles (micro widths 4/8/8) have such layers;
# the paper's 96/192/384 and the tiny 8/16/32 keep the strided kernel.
ONEDNN_SAFE_STRIDED_1X1_CHANNELS = 8


class PointwiseConv(nn.Conv2d):
    """1x1 Conv2d with stride (stride, 1) along T: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).

    Same parameters (names, shapes, init) as `nn.Conv2d(c_in, c_out, 1, stride=(stride, 1))`;
    with fewer than ONEDNN_SAFE_STRIDED_1X1_CHANNELS inputs and stride > 1 it subsamples T first
    (see the oneDNN note above), otherwise it is the plain strided convolution.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(c_in, c_out, 1, stride=(stride, 1))
        self.subsample_first = stride > 1 and c_in < ONEDNN_SAFE_STRIDED_1X1_CHANNELS

    def forward(self, x: Tensor) -> Tensor:
        if not self.subsample_first:
            return super().forward(x)
        x = x[:, :, :: self.stride[0]]  # (N, C_in, ceil(T / stride), V): the frames the kernel reads
        return F.conv2d(x, self.weight, self.bias)


def same_padding(kernel: int, dilation: int) -> int:
    """Zero padding that keeps T for a stride-1 (kernel x 1) conv: ((kernel-1)*dilation) // 2."""
    return ((kernel - 1) * dilation) // 2


class TemporalConv(nn.Module):
    """Conv2d (kernel x 1, stride, dilation along T) + BatchNorm2d: (N, C_in, T, V) -> (N, C_out, T', V)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        pad = same_padding(kernel, dilation)
        self.conv: nn.Conv2d
        if kernel == 1:
            self.conv = PointwiseConv(c_in, c_out, stride)
        else:
            self.conv = nn.Conv2d(
                c_in, c_out, (kernel, 1), stride=(stride, 1), padding=(pad, 0), dilation=(dilation, 1)
            )
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


def branch_widths(c_out: int, n_branches: int) -> list[int]:
    """Split c_out channels over the branches: equal shares, the remainder to the first ones.

    With MS-G3D's widths (multiples of 6) every branch gets c_out / 6, as in the original;
    narrow CPU profiles (e.g. 8 -> 2,2,1,1,1,1) stay usable. A share of 0 means "no branch".
    """
    base, rem = divmod(c_out, n_branches)
    return [base + (1 if i < rem else 0) for i in range(n_branches)]


class MSTCN(nn.Module):
    """Multi-scale temporal convolution: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).

    Branches (each 1/6 of C_out): 1x1 conv-BN-ReLU then TemporalConv(3, dilation d) for
    d = 1, 2, 3, 4; 1x1 conv-BN-ReLU, MaxPool(3x1, stride, pad 1), BN; strided 1x1 conv-BN.
    Outputs are concatenated, the residual (identity when shapes match, else a strided
    1x1 TemporalConv) is added, then ReLU unless `activation=False`.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, activation: bool = True) -> None:
        super().__init__()
        widths = branch_widths(c_out, len(DILATIONS) + 2)
        branches: list[nn.Module] = []
        for d, w in zip(DILATIONS, widths, strict=False):
            if w:
                branches.append(
                    nn.Sequential(
                        nn.Conv2d(c_in, w, 1),
                        nn.BatchNorm2d(w),
                        nn.ReLU(inplace=True),
                        TemporalConv(w, w, kernel=3, stride=stride, dilation=d),
                    )
                )
        w_pool, w_one = widths[-2], widths[-1]
        if w_pool:
            branches.append(
                nn.Sequential(
                    nn.Conv2d(c_in, w_pool, 1),
                    nn.BatchNorm2d(w_pool),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)),
                    nn.BatchNorm2d(w_pool),
                )
            )
        if w_one:
            branches.append(nn.Sequential(PointwiseConv(c_in, w_one, stride), nn.BatchNorm2d(w_one)))
        self.branches = nn.ModuleList(branches)
        if c_in == c_out and stride == 1:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = TemporalConv(c_in, c_out, kernel=1, stride=stride)
        self.act: nn.Module = nn.ReLU(inplace=True) if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([b(x) for b in self.branches], dim=1)  # (N, C_out, T', V)
        return self.act(out + self.residual(x))


def windows_out_len(t: int, tau: int, stride: int, dilation: int) -> int:
    """Number of G3D windows along T: (T + 2*pad - (tau-1)*dilation - 1) // stride + 1."""
    pad = same_padding(tau, dilation)
    return (t + 2 * pad - (tau - 1) * dilation - 1) // stride + 1


def temporal_windows(x: Tensor, tau: int, stride: int, dilation: int) -> Tensor:
    """Sliding temporal windows of tau frames, channels last: (N, T, V, C) -> (N, T', tau, V, C).

    Window t holds frames t*stride - pad + i*dilation (i = 0..tau-1), zero outside [0, T);
    pad = ((tau-1)*dilation)//2, as nn.Unfold with kernel (tau, 1) in MS-G3D. Built from
    tau strided slices of the padded input instead of im2col.
    """
    t = x.shape[1]
    pad = same_padding(tau, dilation)
    t_out = windows_out_len(t, tau, stride, dilation)
    xp = F.pad(x, (0, 0, 0, 0, pad, pad))  # (N, T + 2*pad, V, C)
    last = stride * (t_out - 1) + 1
    slices = [xp[:, i * dilation : i * dilation + last : stride] for i in range(tau)]  # each (N, T', V, C)
    return torch.stack(slices, dim=2)  # (N, T', tau, V, C)


NARROW = 16  # below this many channels one large GEMM beats a batched GEMM


def graph_aggregate(a: Tensor, x: Tensor) -> Tensor:
    """out[b, r, c] = sum_u a[r, u] x[b, u, c]: a (R, U), x (B, U, C) -> (B, R, C), contiguous.

    `a` is the stacked adjacency (rows = (node, scale) pairs), x a batch of node-by-channel
    matrices (channels last). Wide inputs use one batched GEMM with `a` shared (expanded,
    never copied); narrow ones (the raw input, C = 3) one GEMM over B*C rows. Same FLOPs.
    """
    b, u, c = x.shape
    if c >= NARROW:
        return torch.bmm(a.expand(b, -1, -1), x)  # (B, R, C)
    out = x.transpose(1, 2).reshape(b * c, u) @ a.t()  # (B*C, R)
    return out.view(b, c, -1).transpose(1, 2).contiguous()  # (B, R, C)


def graph_parameters(module: nn.Module, graph: np.ndarray) -> None:
    """Register `graph` (K, n, n) as buffer `A` (not saved: rebuilt from the spec) and `A_res`.

    A_res is MS-G3D's learnable per-scale residual mask, same shape, U(-1e-6, 1e-6).
    """
    a = torch.tensor(np.asarray(graph, dtype=np.float32))
    module.register_buffer("A", a, persistent=False)
    module.A_res = nn.Parameter(torch.empty_like(a).uniform_(-A_RES_INIT, A_RES_INIT))
