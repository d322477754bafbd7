"""Joint + bone fusion: a weighted mean of the two streams' softmax probabilities.

`fuse_probs(pj, pb, w)` is the pure rule, (p_joint + w * p_bone) / (1 + w) (the paper,
after Shi et al. 2019, averages probabilities: w = 1). `fuse_files` applies it to two
`scores.parquet` files matched by sample id and writes the same files a model directory
has (scores.parquet with logits = log of the fused probabilities, metrics.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stf.config import FuseConfig
from stf.io import write_json_atomic
from stf.metrics import compute_metrics, log_probs
from stf.stages.scores import METRICS, SCORES, read_scores, score_matrix, write_scores

log = logging.getLogger(__name__)


class FusionError(ValueError):
    """The two score files cannot be fused; the message names both files."""


def fuse_probs(pj: np.ndarray, pb: np.ndarray, w: float) -> np.ndarray:
    """(pj + w * pb) / (1 + w) for (N, K) probability matrices of the same shape; w >= 0."""
    pj, pb = np.asarray(pj, dtype=np.float64), np.asarray(pb, dtype=np.float64)
    if pj.shape != pb.shape or pj.ndim != 2:
        raise ValueError(f"joint and bone probabilities must be (N, K) of one shape, got {pj.shape} and {pb.shape}")
    if not np.isfinite(w) or w < 0:
        raise ValueError(f"bone weight must be finite and >= 0, got {w}")
    return ((pj + w * pb) / (1.0 + w)).astype(np.float32)


def fuse_files(joint_dir: Path, bone_dir: Path, cfg: FuseConfig, out_dir: Path) -> dict:
    """Fuse `<joint_dir>/scores.parquet` and `<bone_dir>/scores.parquet` into `out_dir`.

    Rows are matched by sample_id and written in the joint file's order. Raises
    `FusionError` naming both files when their sample ids, labels or class counts differ.
    Returns the metrics dict (also written to `<out_dir>/metrics.json`).
    """
    jf, bf = Path(joint_dir) / SCORES, Path(bone_dir) / SCORES
    joint, bone = read_scores(joint_dir), read_scores(bone_dir)
    j_ids, b_ids = set(joint["sample_id"]), set(bone["sample_id"])
    if j_ids != b_ids:
        only_j, only_b = sorted(j_ids - b_ids), sorted(b_ids - j_ids)
        raise FusionError(
            f"{jf} and {bf} score different samples: {len(only_j)} only in the joint file "
            f"(e.g. {only_j[:3]}), {len(only_b)} only in the bone file (e.g. {only_b[:3]})"
        )
    bone = bone.set_index("sample_id").loc[joint["sample_id"]].reset_index()  # joint's row order
    differ = joint["label"].to_numpy() != bone["label"].to_numpy()
    if differ.any():
        first = joint["sample_id"][np.flatnonzero(differ)[0]]
        raise FusionError(f"{jf} and {bf} disagree on the label of {int(differ.sum())} samples (e.g. {first!r})")
    pj, pb = score_matrix(joint), score_matrix(bone)
    if pj.shape[1] != pb.shape[1]:
        raise FusionError(f"{jf} has {pj.shape[1]} classes but {bf} has {pb.shape[1]}")
    probs = fuse_probs(pj, pb, cfg.bone_weight)
    labels = joint["label"].to_numpy().astype(np.int64)
    metrics = compute_metrics(probs, labels, probs.shape[1])
    write_scores(out_dir, list(joint["sample_id"]), labels, log_probs(probs), probs)
    write_json_atomic(Path(out_dir) / METRICS, metrics)
    log.info("fused %s + %s (w=%g): top1 %.2f", joint_dir, bone_dir, cfg.bone_weight, metrics["top1"])
    return metrics
