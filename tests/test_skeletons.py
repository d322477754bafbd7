"""Joint layouts (NTU-25, OpenPose-18) and action names."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from stf.data.actions import NTU_ACTIONS, action_name, num_classes
from stf.data.skeletons import NTU25, OPENPOSE18, Layout, layout_for


def _diameter(adj: np.ndarray) -> int:
    """Longest shortest path of a connected graph (BFS from every node); -1 if disconnected."""
    v = len(adj)
    longest = 0
    for start in range(v):
        dist = {start: 0}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for nxt in np.flatnonzero(adj[node]).tolist():
                if nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        if len(dist) != v:
            return -1
        longest = max(longest, max(dist.values()))
    return longest


@pytest.mark.parametrize(
    ("layout", "joints", "edges", "diameter", "root"),
    [(NTU25, 25, 24, 12, 20), (OPENPOSE18, 18, 17, 8, 0)],
)
def test_layout_is_a_tree_with_the_msg3d_sizes(
    layout: Layout, joints: int, edges: int, diameter: int, root: int
) -> None:
    a = layout.adjacency()
    assert a.shape == (joints, joints) and a.dtype == np.float32
    assert len(layout.edges) == edges
    assert np.array_equal(a, a.T), "adjacency must be symmetric"
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    assert np.trace(a) == 0, "no self-loops"
    assert a.sum() == 2 * edges
    # MS-G3D's K = 13 (NTU) covers every hop distance; Kinetics K = 8 stops at 7 hops
    assert _diameter(a) == diameter
    # one bone per joint, the root's bone is (root, root) = zero
    assert len(layout.bone_pairs) == joints
    assert (root, root) in layout.bone_pairs
    assert layout.bone_parents[root] == root
    assert len(layout.joint_names) == joints


def test_ntu_edges_and_bones_match_msg3d_one_based_lists() -> None:
    one_based_edges = {(a + 1, b + 1) for a, b in NTU25.edges}
    assert {(1, 2), (2, 21), (22, 23), (23, 8), (24, 25), (25, 12)} <= one_based_edges
    one_based_bones = [(a + 1, b + 1) for a, b in NTU25.bone_pairs]
    assert one_based_bones[21] == (21, 21)  # the MS-G3D list order keeps the root pair 22nd
    assert NTU25.center == 1 and NTU25.joint_names[1] == "spine mid"
    assert NTU25.joint_names[20] == "spine shoulder"
    # spine shoulder joins spine mid, neck and both shoulders
    assert set(np.flatnonzero(NTU25.adjacency()[20]).tolist()) == {1, 2, 4, 8}


def test_openpose_layout_centre_and_neighbours() -> None:
    assert OPENPOSE18.center == 1 and OPENPOSE18.joint_names[1] == "neck"
    assert set(np.flatnonzero(OPENPOSE18.adjacency()[1]).tolist()) == {0, 2, 5}
    assert OPENPOSE18.bone_pairs[0] == (0, 0)


def test_bone_parents_give_msg3d_bones() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 25))  # (C, V)
    bones = x - x[:, NTU25.bone_parents]
    for v1, v2 in NTU25.bone_pairs:
        np.testing.assert_array_equal(bones[:, v1], x[:, v1] - x[:, v2])
    assert np.all(bones[:, 20] == 0)


def test_layout_for_datasets() -> None:
    assert layout_for("ntu60") is NTU25
    assert layout_for("ntu120") is NTU25
    assert layout_for("kinetics") is OPENPOSE18
    with pytest.raises(ValueError, match="unknown dataset"):
        layout_for("ucla")


def test_layout_rejects_inconsistent_definitions() -> None:
    with pytest.raises(ValueError, match="outside"):
        Layout("bad", 3, ((0, 3),), ((0, 0), (1, 0), (2, 1)), 0, ("a", "b", "c"))
    with pytest.raises(ValueError, match="exactly once"):
        Layout("bad", 3, ((1, 0), (2, 1)), ((0, 0), (1, 0), (1, 1)), 0, ("a", "b", "c"))
    with pytest.raises(ValueError, match="joint names"):
        Layout("bad", 3, ((1, 0), (2, 1)), ((0, 0), (1, 0), (2, 1)), 0, ("a", "b"))


def test_ntu_action_names() -> None:
    assert len(NTU_ACTIONS) == 120 and len(set(NTU_ACTIONS)) == 120
    assert NTU_ACTIONS[0] == "drink water"
    assert NTU_ACTIONS[7] == "sitting down"
    assert NTU_ACTIONS[57] == "handshaking"
    assert NTU_ACTIONS[59] == "walking apart from each other"
    assert NTU_ACTIONS[119] == "finger-guessing game (playing rock-paper-scissors)"
    assert all(name == name.strip() and name.isascii() for name in NTU_ACTIONS)


def test_kinetics_names_match_the_real_clips(fixtures_dir) -> None:
    """The 400 names by label_index agree with the label/label_index of every real fixture clip."""
    import json

    from stf.data.actions import KINETICS400_ACTIONS

    assert len(KINETICS400_ACTIONS) == len(set(KINETICS400_ACTIONS)) == 400
    for path in sorted((fixtures_dir / "kinetics").glob("*.json")):
        clip = json.loads(path.read_text())
        assert action_name("kinetics", clip["label_index"]) == clip["label"], path.name


def test_class_names_of_real_and_synthetic_data() -> None:
    from stf.data.actions import class_names

    assert class_names("ntu60", 3, synthetic=False) == ["drink water", "eat meal/snack", "brushing teeth"]
    assert class_names("kinetics", 2, synthetic=True) == ["synthetic class 0", "synthetic class 1"]


def test_action_name_per_dataset() -> None:
    assert action_name("ntu60", 0) == "drink water"
    assert action_name("ntu120", 60) == "put on headphone"
    with pytest.raises(ValueError, match="outside 0..59"):
        action_name("ntu60", 60)
    assert action_name("kinetics", 199, names={199: "synthetic class 199"}) == "synthetic class 199"
    assert num_classes("kinetics") == 400
    with pytest.raises(ValueError, match="unknown dataset"):
        action_name("ucla", 0)
