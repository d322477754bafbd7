"""The STF module (paper eq. 1, Fig. 2(d)): an instance-dependent adjacency G_k from the layer input.

One `STFModule` sits in each of the six graph convolutions of MS-G3D (the MS-GCN and the G3D
pathway of each block; not shared). Given the layer input X^l `(N*M, C, T, V)` it returns

- the spatio-temporal embedding beta(X^l) `(N*M, T, V)` in [0, 1] (what L_Gk compares with the
  focus Q), and
- G `(N*M, K, V, V)`: K = `STFSpec.graph_scales` matrices per sample, added to the first K
  adjacency scales of the layer: X' = sum_k W_k X (A_k + G_k).

beta (three conv layers): 1x1 conv C -> h, ReLU, (3x1) temporal conv h -> h, ReLU, 1x1 conv
h -> 1, sigmoid. alpha (two conv layers), made independent of T: the embedding is average-pooled
along T to `time_bins` bins, then a (time_bins x 1) conv turns each joint's temporal profile
into `alpha_hidden` features z_u, ReLU, and a 1x1 conv maps z_u to K*V values: column u of
G_k, i.e. G_k[v, u] = w_kv . z_u + b_kv (how strongly joint u, given when and how much it is
in focus, feeds joint v at scale k). alpha's last layer starts at zero, so G = 0 and a model
loaded from an MS-G3D checkpoint computes exactly the baseline's outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class STFSpecError(ValueError):
    """An STF specification (or its stored dict) with a missing, unknown or invalid field."""


@dataclass(frozen=True)
class STFSpec:
    """Sizes of one STF module; plain data, stored in checkpoints via `to_dict`."""

    graph_scales: int = 3  # K of eq. 1: adjacency scales that carry G_k
    beta_hidden: int = 16  # channels inside beta
    alpha_hidden: int = 64  # channels inside alpha
    time_bins: int = 16  # T is average-pooled to this many bins before alpha

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise STFSpecError(f"STFSpec.{name} must be a positive int, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> STFSpec:
        if not isinstance(d, dict):
            raise STFSpecError(f"STF spec must be a dict, got {type(d).__name__}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise STFSpecError(f"STF spec has unknown keys {sorted(unknown)}")
        return cls(**d)


class STFModule(nn.Module):
    """beta and alpha of one graph convolution: X (N, C, T, V) -> (G (N, K, V, V), beta(X) (N, T, V))."""

    def __init__(self, in_channels: int, num_point: int, spec: STFSpec) -> None:
        super().__init__()
        self.spec = spec
        self.num_point = num_point
        h, a, k = spec.beta_hidden, spec.alpha_hidden, spec.graph_scales
        self.beta = nn.Sequential(
            nn.Conv2d(in_channels, h, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(h, h, (3, 1), padding=(1, 0)),
            nn.ReLU(inplace=True),
            nn.Conv2d(h, 1, 1),
        )
        self.alpha = nn.Sequential(
            nn.Conv2d(1, a, (spec.time_bins, 1)),
            nn.ReLU(inplace=True),
            nn.Conv2d(a, k * num_point, 1),
        )
        nn.init.zeros_(self.alpha[-1].weight)
        nn.init.zeros_(self.alpha[-1].bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, _, _, v = x.shape
        emb = torch.sigmoid(self.beta(x))  # (N, 1, T, V)
        pooled = F.adaptive_avg_pool2d(emb, (self.spec.time_bins, v))  # (N, 1, S, V)
        g = self.alpha(pooled)  # (N, K*V, 1, V): channel k*V + v, position u
        g = g.reshape(n, self.spec.graph_scales, v, v)  # (N, K, V, V), G_k[v, u]
        return g, emb.squeeze(1)  # (N, K, V, V), (N, T, V)


def dynamic_aggregate(g: Tensor, x: Tensor) -> Tensor:
    """The per-sample graph term: out[n, t, v, k, c] = sum_u G_k[n, v, u] x[n, t, u, c].

    g: (N, K, V, V); x: (N, T, V, C) channels last. Returns (N, T, V, K, C), to be added to
    the first K scales of a layer's static aggregation. For a G3D window, tile(G, (tau, tau))
    applied to the window equals G applied to the sum of its tau frames, added to every row.
    """
    n, k, v, _ = g.shape
    t, c = x.shape[1], x.shape[3]
    g_vk = g.transpose(1, 2).reshape(n, 1, v * k, v)  # (N, 1, V*K, V): row v*K + k holds G_k[v, :]
    return torch.matmul(g_vk, x).view(n, t, v, k, c)  # (N, T, V, K, C)
