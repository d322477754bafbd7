"""MS-G3D (Liu et al. 2020) with optional STF modules (Ke et al. 2022), one file top to bottom.

Input `(N, C, T, V, M)`; each person is processed separately as `(N*M, C, T, V)`. Inside the
network feature maps use the `torch.channels_last` memory format (physically (N*M, T, V, C)):
the graph aggregations then write their (scale, channel)-stacked output directly in the
layout the following 1x1 conv reads, with no transposing copy. Shapes and values are those
of the original; `last`, `taps` are channels_last tensors (use `reshape`, not `view`, to
merge their C with T or V).

- `MSGCN`: disentangled multi-scale graph conv, sum_u (A_k + A_res_k)[v, u] x[.., u] for
  k = 0..K-1, scales stacked into channels, 1x1 conv, BN, ReLU.
- `G3DPathway`: one G3D window size: sliding windows of tau frames, multi-scale graph conv
  on the tile(A + I, (tau, tau)) graph (1x1 conv + BN, ReLU), window collapse (the
  Conv3d (1, tau, 1) of MS-G3D, written as a (1, tau) conv with dilation V), BN.
- `MultiWindowG3D`: sum of the tau = 3 and tau = 5 pathways.
- `STGCBlock`: ReLU(MS-GCN -> MS-TCN -> MS-TCN (no ReLU)  +  G3D), then MS-TCN.
- `MSG3D`: data BN over M*V*C, 3 blocks (strides 1, 2, 2), mean over T*V then persons, Linear.

With `spec.stf` set, each MS-GCN and each multi-window G3D owns an `STFModule` (attribute
`stf`, so its state-dict keys contain ".stf.") whose G_k is added to the first K scales;
`forward_features` then also returns the six graph-conv outputs (taps) and beta maps.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields

from torch import Tensor, nn
from torch.nn import functional as F

from stf.models.blocks import MSTCN, graph_aggregate, graph_parameters, temporal_windows
from stf.models.graph import adjacency, multiscale_adjacency, multiscale_stack, window_adjacency
from stf.models.stf import STFModule, STFSpec, dynamic_aggregate

log = logging.getLogger(__name__)

BLOCK_STRIDES: tuple[int, int, int] = (1, 2, 2)  # temporal stride of blocks 1, 2, 3
NUM_CLASSES: dict[str, int] = {"ntu60": 60, "ntu120": 120, "kinetics": 400}


class ModelSpecError(ValueError):
    """A model specification (or a checkpoint's stored spec) that cannot build an MS-G3D."""


class ModelInputError(ValueError):
    """An input tensor whose shape does not match the model's spec."""


# --------------------------------------------------------------------------- spec


def _plain(value: object) -> object:
    """`value` with every tuple (at any depth) turned into a list."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the network; plain data (`to_dict`) stored in checkpoints."""

    num_class: int
    num_point: int  # V
    num_person: int  # M
    in_channels: int  # C
    edges: tuple  # 0-based (child, parent) pairs of the skeleton
    widths: tuple[int, int, int] = (96, 192, 384)
    gcn_scales: int = 13
    g3d_scales: int = 6
    window_sizes: tuple[int, ...] = (3, 5)
    window_dilations: tuple[int, ...] = (1, 1)
    stf: STFSpec | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            set_(self, "edges", tuple((int(a), int(b)) for a, b in self.edges))
            for name in ("widths", "window_sizes", "window_dilations"):
                set_(self, name, tuple(int(w) for w in getattr(self, name)))
        except (TypeError, ValueError) as err:
            raise ModelSpecError(f"ModelSpec: malformed field ({err})") from None
        for name in ("num_class", "num_point", "num_person", "in_channels", "gcn_scales", "g3d_scales"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelSpecError(f"ModelSpec.{name} must be a positive int, got {value!r}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ModelSpecError(f"ModelSpec.widths must be 3 positive ints, got {self.widths}")
        if not self.window_sizes or len(self.window_sizes) != len(self.window_dilations):
            raise ModelSpecError(
                f"ModelSpec.window_sizes {self.window_sizes} and window_dilations {self.window_dilations} "
                "must be non-empty and of equal length"
            )
        if min(self.window_sizes) < 1 or min(self.window_dilations) < 1:
            raise ModelSpecError("ModelSpec.window_sizes and window_dilations must be positive")
        for a, b in self.edges:
            if not (0 <= a < self.num_point and 0 <= b < self.num_point):
                raise ModelSpecError(f"ModelSpec.edges: edge {(a, b)} outside [0, {self.num_point})")
        if self.stf is not None:
            if not isinstance(self.stf, STFSpec):
                raise ModelSpecError(f"ModelSpec.stf must be an STFSpec or None, got {type(self.stf).__name__}")
            if self.stf.graph_scales > min(self.gcn_scales, self.g3d_scales):
                raise ModelSpecError(
                    f"ModelSpec.stf.graph_scales={self.stf.graph_scales} exceeds the adjacency scales "
                    f"(gcn {self.gcn_scales}, g3d {self.g3d_scales})"
                )

    def to_dict(self) -> dict:
        """Plain lists/ints/dicts (what `torch.load(weights_only=True)` accepts): `asdict`, with
        every tuple as a list and `stf` as its field dict (or None)."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        if not isinstance(d, dict):
            raise ModelSpecError(f"model spec must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ModelSpecError(f"model spec has unknown keys {sorted(unknown)}")
        kw = dict(d)
        if kw.get("stf") is not None:
            kw["stf"] = STFSpec.from_dict(kw["stf"])
        try:
            return cls(**kw)
        except TypeError as err:
            raise ModelSpecError(f"model spec: {err}") from None


@dataclass
class ForwardOut:
    """What `MSG3D.forward_features` returns."""

    logits: Tensor  # (N, num_class)
    last: Tensor  # (N*M, C3, T3, V): block-3 output before pooling (channels_last memory format)
    # the 6 STF graph-conv outputs (N*M, C, T, V), block1 MS-GCN, block1 G3D, ..., block3 G3D (empty without STF)
    taps: list[Tensor] = field(default_factory=list)
    embeddings: list[Tensor] = field(default_factory=list)  # 6 beta(X) maps (N*M, T_l, V) in [0, 1]


# --------------------------------------------------------------------------- layers


class MSGCN(nn.Module):
    """Disentangled multi-scale graph conv: (N, C_in, T, V) -> (N, C_out, T, V).

    out = ReLU(BN(W [X (A_0 + R_0 + G_0), ..., X (A_{K-1} + R_{K-1})])), A_k the normalised
    k-hop graph (+I), R_k = A_res_k, G_k from the STF module (first `stf.graph_scales` scales).
    """

    def __init__(self, c_in: int, c_out: int, spec: ModelSpec) -> None:
        super().__init__()
        graph_parameters(self, multiscale_adjacency(spec.edges, spec.num_point, spec.gcn_scales))  # (K, V, V)
        self.conv = nn.Conv2d(spec.gcn_scales * c_in, c_out, 1)
        self.bn = nn.BatchNorm2d(c_out)
        self.stf = STFModule(c_in, spec.num_point, spec.stf) if spec.stf is not None else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        n, c, t, v = x.shape
        k = self.A.shape[0]
        xl = x.permute(0, 2, 3, 1).reshape(n * t, v, c)  # (N*T, V, C); a view when x is channels_last
        a = (self.A + self.A_res).transpose(0, 1).reshape(v * k, v)  # (V*K, V): row v*K + k holds A_k[v, :]
        support = graph_aggregate(a, xl).view(n, t, v, k, c)  # (N, T, V, K, C)
        emb = None
        if self.stf is not None:
            g, emb = self.stf(x)  # (N, Ks, V, V), (N, T, V)
            support[:, :, :, : g.shape[1]] += dynamic_aggregate(g, xl.view(n, t, v, c))
        support = support.view(n, t, v, k * c).permute(0, 3, 1, 2)  # (N, K*C, T, V) channels_last, channel k*C + c
        return F.relu(self.bn(self.conv(support))), emb


class G3DPathway(nn.Module):
    """G3D for one window size tau: (N, C_in, T, V) (+ G (N, Ks, V, V)) -> (N, C_out, T', V).

    Windows (N, C_in, T', tau*V) -> multi-scale conv on tile(A + I, (tau, tau)) to C_embed,
    BN, ReLU -> collapse the tau frames with a (1, tau) conv of dilation V (= Conv3d (1, tau, 1))
    -> BN. G (from the block's shared STF module) is tiled (tau, tau) onto the first scales.
    """

    def __init__(self, c_in: int, c_embed: int, c_out: int, tau: int, stride: int, dilation: int, spec: ModelSpec):
        super().__init__()
        self.tau, self.stride, self.dilation = tau, stride, dilation
        v = spec.num_point
        graph = multiscale_stack(window_adjacency(adjacency(spec.edges, v), tau), spec.g3d_scales)
        graph_parameters(self, graph)  # (K, tau*V, tau*V)
        self.conv = nn.Conv2d(spec.g3d_scales * c_in, c_embed, 1)
        self.bn = nn.BatchNorm2d(c_embed)
        self.out_conv = nn.Conv2d(c_embed, c_out, (1, tau), dilation=(1, v))
        self.out_bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, g: Tensor | None = None) -> Tensor:
        n, c, _, v = x.shape
        tau = self.tau
        k = self.A.shape[0]
        w = temporal_windows(x.permute(0, 2, 3, 1), tau, self.stride, self.dilation)  # (N, T', tau, V, C)
        t = w.shape[1]
        a = (self.A + self.A_res).transpose(0, 1).reshape(tau * v * k, tau * v)  # (tau*V*K, tau*V)
        support = graph_aggregate(a, w.reshape(n * t, tau * v, c)).view(n, t, tau, v, k, c)  # (N, T', tau, V, K, C)
        if g is not None:
            # tile(G, (tau, tau)) on a window = G on the sum of its tau frames, added to every frame row
            support[..., : g.shape[1], :] += dynamic_aggregate(g, w.sum(dim=2)).unsqueeze(2)
        support = support.view(n, t, tau * v, k * c).permute(0, 3, 1, 2)  # (N, K*C, T', tau*V) channels_last
        y = F.relu(self.bn(self.conv(support)))  # (N, C_embed, T', tau*V)
        return self.out_bn(self.out_conv(y))  # (N, C_out, T', V)


class MultiWindowG3D(nn.Module):
    """Sum of the G3D pathways (tau = 3, 5): (N, C_in, T, V) -> (N, C_out, T/stride, V).

    With STF, one STF module per block's G3D path, shared by its windows (its G tiled per window).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, first: bool, spec: ModelSpec) -> None:
        super().__init__()
        # block 1 lifts the raw input to C_out inside the graph conv; later blocks change width in the collapse
        c_embed = c_out if first else c_in
        self.windows = nn.ModuleList(
            G3DPathway(c_in, c_embed, c_out, tau, stride, d, spec)
            for tau, d in zip(spec.window_sizes, spec.window_dilations, strict=True)
        )
        self.stf = STFModule(c_in, spec.num_point, spec.stf) if spec.stf is not None else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        g, emb = self.stf(x) if self.stf is not None else (None, None)
        out = self.windows[0](x, g)
        for pathway in self.windows[1:]:
            out = out + pathway(x, g)
        return out, emb


class STGCBlock(nn.Module):
    """One MS-G3D block: (N, C_in, T, V) -> (N, C_out, T/stride, V).

    y = ReLU(MSTCN'(MSTCN(MS-GCN(x))) + G3D(x)); out = MSTCN(y); MSTCN' has no final ReLU.
    The MS-GCN maps C_in -> C_out in block 1, C_in -> C_in later (the first MS-TCN widens).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, first: bool, spec: ModelSpec) -> None:
        super().__init__()
        c_gcn = c_out if first else c_in
        self.msgcn = MSGCN(c_in, c_gcn, spec)
        self.sgcn_tcn = nn.Sequential(MSTCN(c_gcn, c_out, stride=stride), MSTCN(c_out, c_out, activation=False))
        self.gcn3d = MultiWindowG3D(c_in, c_out, stride, first, spec)
        self.tcn = MSTCN(c_out, c_out)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        s, emb_s = self.msgcn(x)  # (N, C_gcn, T, V)
        g3, emb_g = self.gcn3d(x)  # (N, C_out, T', V)
        y = self.tcn(F.relu(self.sgcn_tcn(s) + g3))  # (N, C_out, T', V)
        embs = [e for e in (emb_s, emb_g) if e is not None]
        return y, ([s, g3] if embs else []), embs


# --------------------------------------------------------------------------- network


class MSG3D(nn.Module):
    """MS-G3D (optionally STF-GCN): x (N, C, T, V, M) -> logits (N, num_class)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        c, v, m = spec.in_channels, spec.num_point, spec.num_person
        self.data_bn = nn.BatchNorm1d(m * v * c)
        chans = (c, *spec.widths)
        self.blocks = nn.ModuleList(STGCBlock(chans[i], chans[i + 1], BLOCK_STRIDES[i], i == 0, spec) for i in range(3))
        self.fc = nn.Linear(spec.widths[2], spec.num_class)

    def _check_input(self, x: Tensor) -> None:
        s = self.spec
        if x.dim() != 5:
            raise ModelInputError(f"MSG3D input must be (N, C, T, V, M), got {x.dim()} dims {tuple(x.shape)}")
        _, c, _, v, m = x.shape
        if (c, v, m) != (s.in_channels, s.num_point, s.num_person):
            raise ModelInputError(
                f"MSG3D input (N, C, T, V, M) = {tuple(x.shape)} does not match the spec "
                f"(C={s.in_channels}, V={s.num_point}, M={s.num_person})"
            )

    def forward_features(self, x: Tensor) -> ForwardOut:
        self._check_input(x)
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)  # (N, M*V*C, T)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 4, 2, 3).reshape(n * m, t, v, c)  # (N*M, T, V, C)
        x = x.permute(0, 3, 1, 2)  # (N*M, C, T, V), channels_last memory format
        taps: list[Tensor] = []
        embs: list[Tensor] = []
        for block in self.blocks:
            x, block_taps, block_embs = block(x)
            taps += block_taps
            embs += block_embs
        pooled = x.mean(dim=(2, 3)).view(n, m, -1).mean(1)  # (N*M, C3) -> (N, M, C3) -> (N, C3)
        return ForwardOut(logits=self.fc(pooled), last=x, taps=taps, embeddings=embs)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).logits


__all__ = [
    "BLOCK_STRIDES",
    "NUM_CLASSES",
    "ForwardOut",
    "MSG3D",
    "ModelInputError",
    "ModelSpec",
    "ModelSpecError",
    "STFSpec",
]
