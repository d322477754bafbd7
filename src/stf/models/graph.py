"""Skeleton graphs as adjacency matrices: k-hop scales, symmetric normalisation, G3D windows.

Pure numpy functions; the models turn their float32 results into registered buffers.

- `adjacency(edges, V)`: the binary, symmetric, self-loop-free skeleton graph (V, V).
- `k_hop_adjacency(A, k)`: joints exactly k hops apart, plus I (MS-G3D's disentangled scale);
  k = 0 is I.
- `normalize_symmetric(A)`: D^-1/2 A D^-1/2 with D the row-sum degree (MS-G3D, not pyskl's D^-1 A).
- `multiscale_stack(A, K)`: the K normalised k-hop matrices, (K, n, n), of any binary graph.
- `multiscale_adjacency(edges, V, K)`: that stack for a skeleton, (K, V, V) (the MS-GCN graph).
- `window_adjacency(A, tau)`: the G3D window graph tile(A + I, (tau, tau)), (tau*V, tau*V).
- `multiscale_window_adjacency(edges, V, K, tau)`: the G3D stack, (K, tau*V, tau*V).
- `hop_distance(A)`: shortest-path hop counts (V, V), -1 where unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class GraphError(ValueError):
    """An edge list or adjacency matrix that cannot describe a skeleton graph."""


def adjacency(edges: Iterable[tuple[int, int]], num_nodes: int) -> np.ndarray:
    """Binary symmetric adjacency (V, V) float64 of 0-based `(child, parent)` edges, no self loops.

    Raises `GraphError` for an index outside [0, V) or an edge from a node to itself.
    """
    if num_nodes <= 0:
        raise GraphError(f"graph needs at least one node, got num_nodes={num_nodes}")
    a = np.zeros((num_nodes, num_nodes), dtype=np.float64)
    for edge in edges:
        i, j = (int(e) for e in edge)
        if not (0 <= i < num_nodes and 0 <= j < num_nodes):
            raise GraphError(f"edge {tuple(edge)} has a joint outside [0, {num_nodes}) (edges are 0-based)")
        if i == j:
            raise GraphError(f"edge {tuple(edge)} is a self loop; skeleton edges join two joints")
        a[i, j] = a[j, i] = 1.0
    return a


def _check_square(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise GraphError(f"{what} must be a square matrix, got shape {a.shape}")
    return a


def _reach(a: np.ndarray, k: int) -> np.ndarray:
    """min((A+I)^k, 1): 1 where a node is at most k hops away (boolean products, no overflow)."""
    n = a.shape[0]
    step = (a + np.eye(n)) > 0
    r = np.eye(n, dtype=bool)
    for _ in range(k):
        r = (r.astype(np.int64) @ step.astype(np.int64)) > 0
    return r.astype(np.float64)


def k_hop_adjacency(a: np.ndarray, k: int, with_self: bool = True) -> np.ndarray:
    """Nodes exactly k hops apart: min((A+I)^k, 1) - min((A+I)^(k-1), 1), plus I when `with_self`.

    a: binary (n, n); k >= 0 (k = 0 gives I). Returns (n, n) float64.
    """
    a = _check_square(a, "adjacency")
    if k < 0:
        raise GraphError(f"hop count k must be >= 0, got {k}")
    n = a.shape[0]
    if k == 0:
        return np.eye(n)
    ak = _reach(a, k) - _reach(a, k - 1)
    if with_self:
        ak = ak + np.eye(n)
    return ak


def normalize_symmetric(a: np.ndarray) -> np.ndarray:
    """D^-1/2 A D^-1/2 with D = diag(row sums); rows of zero degree stay zero. (n, n) float64."""
    a = _check_square(a, "adjacency")
    deg = a.sum(axis=1)
    inv_sqrt = np.zeros_like(deg)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def multiscale_stack(a: np.ndarray, num_scales: int) -> np.ndarray:
    """The K normalised disentangled scales of a binary graph: (K, n, n) float32.

    Scale k is normalize_symmetric(k_hop_adjacency(a, k)), k = 0 .. K-1 (scale 0 is I).
    """
    if num_scales < 1:
        raise GraphError(f"num_scales must be >= 1, got {num_scales}")
    return np.stack([normalize_symmetric(k_hop_adjacency(a, k)) for k in range(num_scales)]).astype(np.float32)


def multiscale_adjacency(edges: Iterable[tuple[int, int]], num_nodes: int, num_scales: int) -> np.ndarray:
    """MS-GCN graph of a skeleton: (K, V, V) float32 of normalised k-hop adjacencies (+I)."""
    return multiscale_stack(adjacency(edges, num_nodes), num_scales)


def window_adjacency(a: np.ndarray, tau: int) -> np.ndarray:
    """G3D window graph tile(A + I, (tau, tau)): (tau*V, tau*V) float64.

    Node (i, v) -> index i*V + v (frame offset i of the window, joint v); every joint is joined
    to itself and to its skeleton neighbours in all tau frames.
    """
    a = _check_square(a, "adjacency")
    if tau < 1:
        raise GraphError(f"window size tau must be >= 1, got {tau}")
    return np.tile(a + np.eye(a.shape[0]), (tau, tau))


def multiscale_window_adjacency(
    edges: Iterable[tuple[int, int]], num_nodes: int, num_scales: int, tau: int
) -> np.ndarray:
    """G3D graph of a skeleton: (K, tau*V, tau*V) float32, the scales of the window graph."""
    return multiscale_stack(window_adjacency(adjacency(edges, num_nodes), tau), num_scales)


def hop_distance(a: np.ndarray) -> np.ndarray:
    """Shortest-path hop counts (n, n) int64 of a binary graph; -1 where no path exists."""
    a = _check_square(a, "adjacency")
    n = a.shape[0]
    dist = np.full((n, n), -1, dtype=np.int64)
    reach = np.eye(n, dtype=bool)
    dist[reach] = 0
    step = (a + np.eye(n)) > 0
    for k in range(1, n):
        new = (reach.astype(np.int64) @ step.astype(np.int64)) > 0
        dist[new & ~reach] = k
        if (new == reach).all():
            break
        reach = new
    return dist
