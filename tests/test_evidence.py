"""build_evidence_report on fabricated score files: summary.json's exact structure and numbers,
the verdict, the confusable-pair and loss-term tables, and errors that name the bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from stf.config import Params, parse_params
from stf.report.evidence import build_evidence_report, confusable_pairs
from stf.report.tables import ReportInputError
from stf.stages.scores import write_scores

REPO = Path(__file__).resolve().parents[1]
N = 400
K = 4  # the micro profile's NTU-60 classes
ROWS = {"msg3d": "MS-G3D", "stf": "STF", "msg3d-ft": "MS-G3D+ft", "stf-ce": "STF+ce", "msg3d-ft-x2": "MS-G3D+ft x2"}
ORDER = np.random.default_rng(3).permutation(N)


def make_params(seeds: list[int]) -> Params:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "micro"
    raw["profiles"]["micro"]["seeds"] = seeds
    raw["report"] = {**raw["report"], "resamples": 999}
    return parse_params(raw)


def write_model(directory: Path, correct: int, twin_errors: bool = True) -> None:
    """metrics.json + scores.parquet: the `correct` easiest samples right; a wrong sample is
    predicted as its class's twin (0 <-> 1 for class 0 and 1, else the next class)."""
    directory.mkdir(parents=True, exist_ok=True)
    labels = np.arange(N) % K
    right = np.empty(N, bool)
    right[ORDER] = np.arange(N) < correct
    twin = np.where(labels == 0, 1, np.where(labels == 1, 0, (labels + 1) % K))
    pred = np.where(right, labels, twin if twin_errors else (labels + 2) % K)
    probs = np.full((N, K), 0.1 / (K - 1), np.float32)
    probs[np.arange(N), pred] = 0.9
    write_scores(directory, [f"S{i:04d}" for i in range(N)], labels, np.log(probs), probs)
    per_class = {str(c): 100.0 * float(right[labels == c].mean()) for c in range(K)}
    metrics = {"top1": 100.0 * right.mean(), "top5": 100.0, "n": N, "num_class": K, "per_class": per_class}
    (directory / "metrics.json").write_text(json.dumps(metrics))


def write_history(directory: Path, terms: list[str]) -> None:
    cols = ["epoch", "lr", "train_loss", "train_top1", "test_top1", "seconds", "loss_ce"]
    cols += [f"weighted_{t}" for t in terms] + ["grad_norm_ce"] + [f"grad_ratio_{t}" for t in terms]
    directory.mkdir(parents=True, exist_ok=True)
    lines = [",".join(cols)]
    for e in (1, 2):
        values = (
            [e, 0.001, 1.0, 50.0, 50.0, 1.0, 1.0 / e] + [0.01 * e for _ in terms] + [2.0] + [0.1 * e for _ in terms]
        )
        lines.append(",".join(str(v) for v in values))
    (directory / "history.csv").write_text("\n".join(lines) + "\n")


def fabricate(root: Path, correct: dict[str, list[int]], train: int = 600, test: int = N) -> tuple[Path, Path]:
    """correct[row][i]: correct samples of seed i's model of that row."""
    models = root / "models"
    for row, per_seed in correct.items():
        for seed, k in enumerate(per_seed):
            base = models / "ntu60-xsub" / "joint" / (f"s{seed}" if seed else "")
            write_model(base / row, k)
            write_history(base / "stf-dcg", ["d", "c", "gk"])
            write_history(base / "stf-e", ["e"])
            write_history(base / "msg3d-ft", [])
            write_history(base / "msg3d-ft-b", [])
            write_history(base / "stf-ce", [])
    parts = ["train"] * train + ["val"] * 10 + ["test"] * test
    table = pa.table({"sample_id": [f"X{i}" for i in range(len(parts))], "label": [i % K for i in range(len(parts))],
                      "part": parts}).replace_schema_metadata({b"stf": b'{"dataset": "ntu60"}'})  # fmt: skip
    split = root / "split.parquet"
    pq.write_table(table, split)
    return models, split


def test_summary_json_has_exactly_the_interface(tmp_path: Path) -> None:
    correct = {"msg3d": [240, 244], "stf": [300, 296], "msg3d-ft": [250, 252], "stf-ce": [248, 250],
               "msg3d-ft-x2": [262, 258]}  # fmt: skip
    models, split = fabricate(tmp_path, correct)
    written = build_evidence_report(make_params([0, 1]), models, split, tmp_path / "out")
    assert all(p.exists() for p in written)
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(s) == {"cell", "seeds", "train_samples", "test_samples", "top1", "stf_vs"}
    assert s["cell"] == "ntu60-xsub:J" and s["seeds"] == [0, 1]
    assert s["train_samples"] == 600 and s["test_samples"] == N
    assert set(s["top1"]) == set(ROWS.values()) and set(s["stf_vs"]) == set(ROWS.values()) - {"STF"}
    for row, label in ROWS.items():
        entry = s["top1"][label]
        assert set(entry) == {"mean", "std", "runs"}
        runs = [100.0 * k / N for k in correct[row]]
        assert entry["runs"] == pytest.approx(runs) and entry["mean"] == pytest.approx(np.mean(runs))
        assert entry["std"] == pytest.approx(np.std(runs, ddof=1))
    for label, vs in s["stf_vs"].items():
        assert set(vs) == {"diff", "ci95", "p"} and len(vs["ci95"]) == 2
        row = next(r for r, lab in ROWS.items() if lab == label)
        expected = 100.0 * (np.mean(correct["stf"]) - np.mean(correct[row])) / N
        assert vs["diff"] == pytest.approx(expected)
        assert vs["ci95"][0] <= vs["diff"] <= vs["ci95"][1] and 0 < vs["p"] <= 1
    # 11 points over the best control on 400 nested samples: far from noise
    assert s["stf_vs"]["MS-G3D+ft x2"]["p"] < 0.01 and s["stf_vs"]["MS-G3D+ft x2"]["ci95"][0] > 5
    md = (tmp_path / "out" / "report.md").read_text()
    assert "STF beats the strongest control, MS-G3D+ft x2" in md
    assert "| λe / λd / λc / λGk |" in md and "400 test samples" in md
    assert "Fine-tuning lr used" in md and "STF-dcg 0.001" in md
    # loss terms of both ensemble members, last epoch, with their gradient ratios
    assert "| STF-dcg | 2 | d | 0.02 | 0.2 |" in md and "| STF-e | 2 | e | 0.02 | 0.2 |" in md
    # confusable pairs of the micro synthetic classes, and how often a class is taken for its twin
    pairs = confusable_pairs(make_params([0]), "ntu60")
    assert pairs == [(0, 1)]
    table = (tmp_path / "out" / "pairs.csv").read_text().splitlines()
    assert table[0].startswith("pair,label,name,MS-G3D top1,MS-G3D+ft x2 top1,STF top1,STF - MS-G3D,STF - MS-G3D+ft x2")
    assert len(table) == 3 and table[1].startswith("0/1,0,") and table[2].startswith("0/1,1,")
    twin_rate = float(table[1].split(",")[-1])  # STF: class-0 samples predicted as class 1
    assert twin_rate == pytest.approx(
        100.0 * np.mean([np.mean(~_right(k)[np.arange(N) % K == 0]) for k in correct["stf"]])
    )


def _right(k: int) -> np.ndarray:
    right = np.empty(N, bool)
    right[ORDER] = np.arange(N) < k
    return right


def test_a_control_that_wins_is_said_plainly(tmp_path: Path) -> None:
    correct = {"msg3d": [240], "stf": [250], "msg3d-ft": [251], "stf-ce": [249], "msg3d-ft-x2": [270]}
    models, split = fabricate(tmp_path, correct)
    build_evidence_report(make_params([0]), models, split, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "STF does not beat the strongest control: MS-G3D+ft x2 is significantly better" in md
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["stf_vs"]["MS-G3D+ft x2"]["diff"] == pytest.approx(-5.0)
    assert s["top1"]["STF"]["std"] == 0.0 and s["top1"]["STF"]["runs"] == [62.5]


def test_inputs_that_do_not_fit_are_named(tmp_path: Path) -> None:
    correct = {r: [250] for r in ROWS}
    models, split = fabricate(tmp_path, correct, test=N + 1)
    with pytest.raises(ReportInputError, match=r"split.parquet: 401 test samples, but the scores files hold 400"):
        build_evidence_report(make_params([0]), models, split, tmp_path / "out")
    with pytest.raises(ReportInputError, match=r"joint/s1/msg3d/metrics.json: metrics file not found"):
        build_evidence_report(make_params([0, 1]), models, split, tmp_path / "out")
