"""Metrics, scores files, saved models and the softmax-averaged ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from helpers import REPO, ArrayPart, write_interim
from helpers import TINY_SPEC as TINY
from stf.config import SettingSpec, SplitConfig, load_params
from stf.metrics import softmax
from stf.models.msg3d import MSG3D
from stf.stages.evaluate import evaluate_ensemble, load_model
from stf.stages.scores import ScoresError, read_scores, score_matrix, write_scores
from stf.stages.spec import spec_for
from stf.training.checkpoint import save_checkpoint
from stf.training.inference import predict_logits


def test_scores_round_trip(tmp_path: Path) -> None:
    logits = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    write_scores(tmp_path, [f"s{i}" for i in range(5)], np.array([0, 1, 2, 0, 1]), logits, softmax(logits))
    table = pq.read_table(tmp_path / "scores.parquet")
    assert table.schema.field("label").type == pa.int32()
    assert table.schema.field("logits").type == pa.list_(pa.float32())
    df = read_scores(tmp_path)
    assert list(df["sample_id"]) == ["s0", "s1", "s2", "s3", "s4"] and list(df["label"]) == [0, 1, 2, 0, 1]
    np.testing.assert_array_equal(score_matrix(df, "logits"), logits)
    np.testing.assert_allclose(score_matrix(df).sum(1), 1.0, rtol=1e-6)
    assert read_scores(tmp_path / "scores.parquet").shape == (5, 4)  # the file itself works too


def test_bad_scores_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ScoresError, match="none/scores.parquet: scores file not found"):
        read_scores(tmp_path / "none")
    ragged = pa.table(
        {"sample_id": ["a", "b"], "label": [0, 1], "logits": [[0.0, 1.0], [0.0]], "probs": [[0.5, 0.5], [1.0]]}
    )
    (tmp_path / "r").mkdir()
    pq.write_table(ragged, tmp_path / "r" / "scores.parquet")
    with pytest.raises(ScoresError, match="r/scores.parquet: column logits has rows of different lengths"):
        read_scores(tmp_path / "r")
    dup = pa.table({"sample_id": ["a", "a"], "label": [0, 1], "logits": [[0.0], [0.0]], "probs": [[1.0], [1.0]]})
    (tmp_path / "d").mkdir()
    pq.write_table(dup, tmp_path / "d" / "scores.parquet")
    with pytest.raises(ScoresError, match="duplicate sample_id 'a'"):
        read_scores(tmp_path / "d")
    (tmp_path / "m").mkdir()
    pq.write_table(pa.table({"sample_id": ["a"], "label": [0]}), tmp_path / "m" / "scores.parquet")
    with pytest.raises(ScoresError, match=r"missing columns \['logits', 'probs'\]"):
        read_scores(tmp_path / "m")


def _save_model(model_dir: Path, model: MSG3D) -> None:
    save_checkpoint(
        model_dir / "model.pt",
        {"spec": model.spec.to_dict(), "state_dict": model.state_dict(), "meta": {"variant": "test"}},
    )


def test_saved_model_predicts_like_the_original(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MSG3D(TINY)
    model.train()
    x = torch.randn(6, 2, 8, 5, 2)
    model(x)  # move the BatchNorm running stats away from their init
    _save_model(tmp_path, model)
    loaded, payload = load_model(tmp_path)
    assert payload["meta"] == {"variant": "test"} and not loaded.training
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    part = ArrayPart(x.numpy(), np.zeros(6))
    got = predict_logits(loaded, part, batch_size=4)  # two batches, the last one short
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    feats = predict_logits(loaded, part, batch_size=4, features=True)
    assert feats.shape == (6, 4)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.fc(torch.from_numpy(feats)).numpy(), expected, rtol=1e-5, atol=1e-5)
    model.train()
    predict_logits(model, part, batch_size=4)
    assert model.training  # the caller's mode is restored
    with pytest.raises(ScoresError, match="nowhere/model.pt: model file not found"):
        load_model(tmp_path / "nowhere")


def _ntu_files(root: Path) -> tuple[Path, Path]:
    """A 3-class NTU-shaped interim parquet (random skeletons) and its x-sub split."""
    from stf.data.splits import make_split_file

    ids = sorted(f"S001C001P{p:03d}R{r:03d}A{a:03d}" for a in (1, 2, 3) for p in (1, 3) for r in (1, 2, 3))
    x = np.random.default_rng(0).normal(size=(len(ids), 4, 16, 25, 2)).astype(np.float32)  # (N, C, T, V, M)
    info = {"dataset": "ntu60", "layout": "ntu25", "shape": [4, 16, 25, 2], "num_class": 3,
            "channels": ["x", "y", "z", "visibility"]}  # fmt: skip
    rows = [{"sample_id": s, "label": int(s[-3:]) - 1, "setup": 1, "camera": 1, "performer": int(s[9:12]),
             "replication": int(s[13:16]), "part": "", "n_frames": 16, "n_persons": 2} for s in ids]  # fmt: skip
    write_interim(root / "ntu60.parquet", info, rows, x)
    xsub = SettingSpec(dataset="ntu60", benchmark="xsub")
    make_split_file(root / "ntu60.parquet", xsub, SplitConfig(), root / "split.parquet")
    return root / "ntu60.parquet", root / "split.parquet"


def test_ensemble_averages_the_models_probabilities(tmp_path: Path) -> None:
    from stf.data.dataset import load_part

    params = load_params(REPO / "params.yaml").model_copy(update={"profile": "micro"})
    data, split = _ntu_files(tmp_path)
    test = load_part(data, split, "test", "joint")
    probs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = MSG3D(spec_for(params, "ntu60", 3, in_channels=4))
        _save_model(tmp_path / f"m{seed}", model)
        probs.append(softmax(predict_logits(model.eval(), test, 8)))
    out = tmp_path / "ens"
    metrics = evaluate_ensemble(params, "ntu60-xsub", "joint", data, split, [tmp_path / "m1", tmp_path / "m2"], out)
    df = read_scores(out)
    assert list(df["sample_id"]) == list(test.ids)
    np.testing.assert_allclose(score_matrix(df), (probs[0] + probs[1]) / 2, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.exp(score_matrix(df, "logits")), score_matrix(df), rtol=1e-4)
    assert json.loads((out / "metrics.json").read_text()) == metrics and metrics["n"] == len(test.ids)
    # a model of another class count cannot join the ensemble
    torch.manual_seed(0)
    _save_model(tmp_path / "m5", MSG3D(spec_for(params, "ntu60", 5, in_channels=4)))
    with pytest.raises(ScoresError, match=r"m5/model.pt: model has num_class=5 but the data has 3"):
        evaluate_ensemble(params, "ntu60-xsub", "joint", data, split, [tmp_path / "m1", tmp_path / "m5"], out)
