"""Same params and seed, same numbers: the micro chain from raw files to a fused J+B result,
run twice in separate folders, gives bit-identical scores and metrics (CPU). The report stage
is a pure function of these files, so `results/table2.csv` is reproducible too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import REPO
from stf.config import Params, load_params


def run_chain(p: Params, root: Path) -> Path:
    """synth -> preprocess -> split -> train J/B -> finetune dcg/e -> ensemble -> fuse; the fused dir."""
    from stf.data.preprocess import preprocess
    from stf.data.splits import make_split_file
    from stf.data.synth.synthesize import synthesize
    from stf.stages.evaluate import evaluate_ensemble
    from stf.stages.fuse import fuse_files
    from stf.stages.train import finetune, train_baseline

    synthesize("ntu60", root / "raw", p.synth, p.sizes.synth)
    data = root / "ntu60.parquet"
    preprocess("ntu60", root / "raw", data, p.preprocess, frames=p.sizes.frames, missing_list=None, strict=False)
    split = root / "split.parquet"
    make_split_file(data, p.setting("ntu60-xsub"), p.split, split)
    for stream in ("joint", "bone"):
        base = root / stream / "msg3d"
        train_baseline(p, "ntu60-xsub", stream, data, split, base)
        for variant in p.stf.ensemble:
            finetune(p, "ntu60-xsub", stream, variant, data, split, base, root / stream / variant)
        evaluate_ensemble(p, "ntu60-xsub", stream, data, split, [root / stream / v for v in p.stf.ensemble],
                          root / stream / "stf")  # fmt: skip
    fuse_files(root / "joint" / "stf", root / "bone" / "stf", p.fuse, root / "fused")
    return root / "fused"


@pytest.mark.slow
def test_same_params_and_seed_give_identical_results(tmp_path: Path) -> None:
    from stf.stages.scores import read_scores, score_matrix

    p = load_params(REPO / "params.yaml").model_copy(update={"profile": "micro"})
    a = run_chain(p, tmp_path / "a")
    b = run_chain(p, tmp_path / "b")
    sa, sb = read_scores(a), read_scores(b)
    assert list(sa["sample_id"]) == list(sb["sample_id"])
    np.testing.assert_array_equal(score_matrix(sa), score_matrix(sb))
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    for stream in ("joint", "bone"):
        for name in ("msg3d", *p.stf.ensemble):
            # every column but the wall-clock seconds (fine-tuning: loss terms and gradient ratios too)
            ha = pd.read_csv(tmp_path / "a" / stream / name / "history.csv").drop(columns="seconds")
            hb = pd.read_csv(tmp_path / "b" / stream / name / "history.csv").drop(columns="seconds")
            pd.testing.assert_frame_equal(ha, hb, check_exact=True)
