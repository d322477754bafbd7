"""Graph construction: k-hop scales, symmetric normalisation, G3D window graphs."""

from __future__ import annotations

import numpy as np
import pytest

from stf.data.skeletons import NTU25, OPENPOSE18
from stf.models.graph import (
    GraphError,
    adjacency,
    hop_distance,
    k_hop_adjacency,
    multiscale_adjacency,
    multiscale_stack,
    multiscale_window_adjacency,
    normalize_symmetric,
    window_adjacency,
)

CHAIN = [(0, 1), (1, 2)]  # 0 - 1 - 2


def test_chain_adjacency_is_symmetric_binary_without_self_loops():
    a = adjacency(CHAIN, 3)
    np.testing.assert_array_equal(a, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])


def test_chain_k_hop_scales():
    a = adjacency(CHAIN, 3)
    np.testing.assert_array_equal(k_hop_adjacency(a, 0), np.eye(3))
    np.testing.assert_array_equal(k_hop_adjacency(a, 1), [[1, 1, 0], [1, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(k_hop_adjacency(a, 2), [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(k_hop_adjacency(a, 3), np.eye(3))  # nothing is 3 hops away
    np.testing.assert_array_equal(k_hop_adjacency(a, 2, with_self=False), [[0, 0, 1], [0, 0, 0], [1, 0, 0]])


def test_chain_symmetric_normalisation_values():
    n = normalize_symmetric(k_hop_adjacency(adjacency(CHAIN, 3), 1))  # degrees 2, 3, 2
    assert n[0, 0] == pytest.approx(1 / 2)
    assert n[0, 1] == pytest.approx(1 / np.sqrt(2 * 3))
    assert n[1, 1] == pytest.approx(1 / 3)
    np.testing.assert_allclose(n, n.T)
    # D^-1/2 A D^-1/2 (not D^-1 A): rows do not sum to 1, sqrt(degree) is a fixed point
    assert not np.allclose(n.sum(axis=1), 1.0)
    d = np.sqrt([2.0, 3.0, 2.0])
    np.testing.assert_allclose(n @ d, d)


def test_normalisation_leaves_isolated_nodes_zero():
    a = np.zeros((3, 3))
    a[0, 1] = a[1, 0] = 1
    n = normalize_symmetric(a)
    assert np.all(n[2] == 0) and np.all(np.isfinite(n))


@pytest.mark.parametrize(("layout", "diameter"), [(NTU25, 12), (OPENPOSE18, 8)])
def test_skeleton_diameter(layout, diameter):
    d = hop_distance(adjacency(layout.edges, layout.num_joints))
    assert d.min() == 0 and d.max() == diameter  # connected


def test_ntu_thirteen_scales_partition_every_joint_pair():
    a = adjacency(NTU25.edges, 25)
    eye = np.eye(25)
    rings = [k_hop_adjacency(a, k, with_self=False) for k in range(1, 13)]
    total = eye + sum(rings)
    np.testing.assert_array_equal(total, np.ones((25, 25)))  # disjoint and covering
    dist = hop_distance(a)
    for k, ring in enumerate(rings, start=1):
        np.testing.assert_array_equal(ring, (dist == k).astype(float))
    np.testing.assert_array_equal(k_hop_adjacency(a, 13), eye)  # beyond the diameter: only I


def test_multiscale_adjacency_stack():
    stack = multiscale_adjacency(NTU25.edges, 25, 13)
    assert stack.shape == (13, 25, 25) and stack.dtype == np.float32
    np.testing.assert_allclose(stack[0], np.eye(25))
    a = adjacency(NTU25.edges, 25)
    for k in range(13):
        np.testing.assert_allclose(stack[k], stack[k].T, atol=1e-7)
        np.testing.assert_allclose(stack[k], normalize_symmetric(k_hop_adjacency(a, k)), atol=1e-6)
        np.testing.assert_array_equal(stack[k] > 0, k_hop_adjacency(a, k) > 0)


def test_window_adjacency_tiles_a_plus_identity():
    a = adjacency(CHAIN, 3)
    w = window_adjacency(a, 3)
    assert w.shape == (9, 9)
    for i in range(3):
        for j in range(3):
            np.testing.assert_array_equal(w[3 * i : 3 * i + 3, 3 * j : 3 * j + 3], a + np.eye(3))


def test_window_scales_are_symmetric_normalised_k_hops_of_the_window_graph():
    stack = multiscale_window_adjacency(NTU25.edges, 25, 6, 5)
    assert stack.shape == (6, 125, 125)
    w = window_adjacency(adjacency(NTU25.edges, 25), 5)
    np.testing.assert_allclose(stack, multiscale_stack(w, 6))
    np.testing.assert_allclose(stack[0], np.eye(125))
    # scale 1: every joint sees itself and its neighbours in all 5 frames
    np.testing.assert_array_equal(stack[1] > 0, w > 0)
    for k in range(6):
        np.testing.assert_allclose(stack[k], stack[k].T, atol=1e-7)


@pytest.mark.parametrize(
    ("edges", "n", "match"),
    [([(0, 3)], 3, "outside"), ([(1, 1)], 3, "self loop"), ([(-1, 0)], 3, "outside")],
)
def test_bad_edges_are_rejected(edges, n, match):
    with pytest.raises(GraphError, match=match):
        adjacency(edges, n)


def test_bad_arguments_are_value_errors():
    a = adjacency(CHAIN, 3)
    with pytest.raises(ValueError, match="k must be"):
        k_hop_adjacency(a, -1)
    with pytest.raises(ValueError, match="square"):
        normalize_symmetric(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="num_scales"):
        multiscale_stack(a, 0)
    with pytest.raises(ValueError, match="tau"):
        window_adjacency(a, 0)
