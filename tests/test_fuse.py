"""Joint + bone fusion of two scores files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stf.config import FuseConfig
from stf.metrics import softmax
from stf.stages.fuse import FusionError, fuse_files, fuse_probs
from stf.stages.scores import read_scores, score_matrix, write_scores


def _probs(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, dtype=np.float32)
    return p / p.sum(1, keepdims=True)


def test_fuse_probs_is_the_weighted_mean() -> None:
    pj = _probs([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    pb = _probs([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    np.testing.assert_allclose(fuse_probs(pj, pb, 1.0), (pj + pb) / 2, rtol=1e-6)
    np.testing.assert_allclose(fuse_probs(pj, pb, 0.0), pj, rtol=1e-6)
    np.testing.assert_allclose(fuse_probs(pj, pb, 3.0), (pj + 3 * pb) / 4, rtol=1e-6)
    np.testing.assert_allclose(fuse_probs(pj, pb, 2.0).sum(1), 1.0, rtol=1e-6)


def test_fuse_probs_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one shape"):
        fuse_probs(np.ones((2, 3)), np.ones((2, 4)), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        fuse_probs(np.ones((2, 3)), np.ones((2, 3)), -1.0)


def _write(d: Path, ids: list[str], labels: list[int], logits: np.ndarray) -> Path:
    write_scores(d, ids, np.asarray(labels), logits, softmax(logits))
    return d


def test_fusion_corrects_samples_one_stream_gets_wrong(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    labels = [0, 1, 2, 1]
    # joint: confidently right on a, b; slightly wrong on c, d.  bone: the opposite
    joint = np.log(_probs([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.4, 0.3, 0.3], [0.4, 0.3, 0.3]]))
    bone = np.log(_probs([[0.3, 0.4, 0.3], [0.4, 0.3, 0.3], [0.05, 0.05, 0.9], [0.05, 0.9, 0.05]]))
    order = [3, 1, 0, 2]  # the bone file lists the samples in another order
    jd = _write(tmp_path / "joint", ids, labels, joint)
    bd = _write(tmp_path / "bone", [ids[i] for i in order], [labels[i] for i in order], bone[order])
    metrics = fuse_files(jd, bd, FuseConfig(bone_weight=1.0), tmp_path / "fused")
    assert metrics["top1"] == 100.0 and metrics["n"] == 4 and metrics["num_class"] == 3
    assert json.loads((tmp_path / "fused" / "metrics.json").read_text()) == metrics
    fused = read_scores(tmp_path / "fused")
    assert list(fused["sample_id"]) == ids  # joint's order
    probs = score_matrix(fused)
    np.testing.assert_allclose(probs, (softmax(joint) + softmax(bone)) / 2, rtol=1e-5)
    np.testing.assert_allclose(np.exp(score_matrix(fused, "logits")), probs, rtol=1e-5)
    # with the bone stream switched off the fusion is the joint stream alone
    only_joint = fuse_files(jd, bd, FuseConfig(bone_weight=0.0), tmp_path / "j")
    assert only_joint["top1"] == 50.0


def test_mismatched_samples_name_both_files(tmp_path: Path) -> None:
    logits = np.zeros((2, 3), np.float32)
    jd = _write(tmp_path / "joint", ["a", "b"], [0, 1], logits)
    bd = _write(tmp_path / "bone", ["a", "c"], [0, 1], logits)
    with pytest.raises(FusionError, match=r"joint/scores.parquet and .*bone/scores.parquet.*'b'.*'c'"):
        fuse_files(jd, bd, FuseConfig(), tmp_path / "out")
    assert not (tmp_path / "out" / "scores.parquet").exists()


def test_disagreeing_labels_and_class_counts_are_errors(tmp_path: Path) -> None:
    jd = _write(tmp_path / "joint", ["a", "b"], [0, 1], np.zeros((2, 3), np.float32))
    bd = _write(tmp_path / "bone", ["a", "b"], [0, 2], np.zeros((2, 3), np.float32))
    with pytest.raises(FusionError, match="label of 1 samples"):
        fuse_files(jd, bd, FuseConfig(), tmp_path / "out")
    bd4 = _write(tmp_path / "bone4", ["a", "b"], [0, 1], np.zeros((2, 4), np.float32))
    with pytest.raises(FusionError, match="3 classes but .*bone4"):
        fuse_files(jd, bd4, FuseConfig(), tmp_path / "out")


def test_missing_scores_file_is_named(tmp_path: Path) -> None:
    jd = _write(tmp_path / "joint", ["a"], [0], np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="nowhere/scores.parquet"):
        fuse_files(jd, tmp_path / "nowhere", FuseConfig(), tmp_path / "out")


@pytest.mark.slow
def test_micro_pipeline_from_raw_files_to_a_fused_result(tmp_path: Path) -> None:
    """synth -> preprocess -> split -> train (J, B) -> finetune (dcg, e) -> ensemble -> J+B fusion."""
    import torch

    from stf.config import load_params
    from stf.data.preprocess import preprocess
    from stf.data.splits import make_split_file
    from stf.data.synth.synthesize import synthesize
    from stf.stages.evaluate import evaluate_ensemble
    from stf.stages.train import finetune, train_baseline

    torch.set_num_threads(1)
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    p = p.model_copy(update={"profile": "micro"})
    synthesize("ntu60", tmp_path / "raw", p.synth, p.sizes.synth)
    data = tmp_path / "ntu60.parquet"
    preprocess("ntu60", tmp_path / "raw", data, p.preprocess, frames=p.sizes.frames, missing_list=None, strict=False)
    split = tmp_path / "split.parquet"
    make_split_file(data, p.setting("ntu60-xsub"), p.split, split)
    models = tmp_path / "models"
    for stream in ("joint", "bone"):
        base = models / stream / "msg3d"
        train_baseline(p, "ntu60-xsub", stream, data, split, base)
        for variant in p.stf.ensemble:
            finetune(p, "ntu60-xsub", stream, variant, data, split, base, models / stream / variant)
        evaluate_ensemble(p, "ntu60-xsub", stream, data, split,
                          [models / stream / v for v in p.stf.ensemble], models / stream / "stf")  # fmt: skip
    metrics = fuse_files(models / "joint" / "stf", models / "bone" / "stf", p.fuse, tmp_path / "fused")
    joint = read_scores(models / "joint" / "stf")
    assert metrics["n"] == len(joint) > 0 and metrics["num_class"] == p.sizes.synth.classes["ntu60"]
    fused = read_scores(tmp_path / "fused")
    expected = (score_matrix(joint) + score_matrix(read_scores(models / "bone" / "stf").set_index("sample_id")
                                                  .loc[joint["sample_id"]].reset_index())) / 2  # fmt: skip
    np.testing.assert_allclose(score_matrix(fused), expected, rtol=1e-5, atol=1e-7)
