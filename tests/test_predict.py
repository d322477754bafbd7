"""`stf predict`: raw files -> top-5 classes with names, ensembles, bone fusion, focus maps, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO, ntu_spec, save_model_dir
from stf.cli import main
from stf.config import load_params
from stf.data.actions import NTU_ACTIONS
from stf.stages.members import ENSEMBLE_FILE, ModelDirError, member_dirs, write_ensemble_file
from stf.stages.predict import PredictError, predict_files


@pytest.fixture(scope="module")
def real_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's params with the active (tiny) profile marked as real data (real class names)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profiles"][raw["profile"]]["source"] = "real"
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/ntu60-xsub/{joint,bone}/{msg3d,stf-dcg,stf-e,stf} as the pipeline lays them out."""
    root = tmp_path_factory.mktemp("models") / "ntu60-xsub"
    for stream in ("joint", "bone"):
        base = root / stream
        save_model_dir(base / "msg3d", ntu_spec(), "ntu60-xsub", stream, seed=1)
        save_model_dir(base / "stf-dcg", ntu_spec(stf=True), "ntu60-xsub", stream, seed=2, variant="dcg")
        save_model_dir(base / "stf-e", ntu_spec(stf=True), "ntu60-xsub", stream, seed=3, variant="e")
        (base / "stf").mkdir()
        write_ensemble_file(base / "stf", [base / "stf-dcg", base / "stf-e"])
    return root


def ntu_files(fixtures_dir: Path) -> list[Path]:
    return sorted((fixtures_dir / "ntu").glob("*.skeleton"))


def _probs(result: list[dict], k: int = 60) -> np.ndarray:
    out = np.zeros((len(result), k))
    for i, r in enumerate(result):
        for t in r["top5"]:
            out[i, t["index"]] = t["prob"]
    return out


def test_json_lists_top5_with_ntu_names(real_params: Path, models: Path, fixtures_dir: Path, capsys) -> None:
    files = ntu_files(fixtures_dir)
    code = main(["predict", "--params", str(real_params), "--model", str(models / "joint" / "msg3d"), "--json",
                 *map(str, files)])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in out] == [str(f) for f in files]
    for r in out:
        assert set(r) == {"file", "top5"} and len(r["top5"]) == 5
        probs = [t["prob"] for t in r["top5"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(t["name"] == NTU_ACTIONS[t["index"]] for t in r["top5"])


def test_text_output_and_synthetic_names(models: Path, fixtures_dir: Path, capsys) -> None:
    f = ntu_files(fixtures_dir)[0]
    model = models / "joint" / "msg3d"
    assert main(["predict", "--params", str(REPO / "params.yaml"), "--model", str(model), str(f)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(f) and len(lines) == 6
    assert lines[1].lstrip().startswith("1.") and "synthetic class" in lines[1]


def test_ensemble_directory_averages_its_members(real_params: Path, models: Path, fixtures_dir: Path) -> None:
    p = load_params(real_params)
    files = ntu_files(fixtures_dir)[:3]
    joint = models / "joint"
    ens = _probs(predict_files(p, files, joint / "stf"))
    parts = [_probs(predict_files(p, files, joint / v)) for v in ("stf-dcg", "stf-e")]
    # only the top-5 of each are reported: compare where all three report a value
    both = (ens > 0) & (parts[0] > 0) & (parts[1] > 0)
    assert both.any()
    np.testing.assert_allclose(ens[both], ((parts[0] + parts[1]) / 2)[both], rtol=1e-5)
    # a directory made before ensemble.json: the members are found beside it (params stf.ensemble)
    (joint / "stf" / ENSEMBLE_FILE).rename(joint / "manifest.bak")
    try:
        want = [(joint / "stf-dcg").resolve(), (joint / "stf-e").resolve()]
        assert member_dirs(joint / "stf", p.stf.ensemble) == want
        with pytest.raises(ModelDirError, match="stf-zz/model.pt"):
            member_dirs(joint / "stf", ["dcg", "zz"])
    finally:
        (joint / "manifest.bak").rename(joint / "stf" / ENSEMBLE_FILE)


def test_bone_model_is_fused_with_params_weight(real_params: Path, models: Path, fixtures_dir: Path) -> None:
    p = load_params(real_params)
    files = ntu_files(fixtures_dir)[:2]
    from stf.stages.predict import Predictor, prepare_files

    j, b = Predictor(p, models / "joint" / "stf"), Predictor(p, models / "bone" / "stf")
    x = prepare_files(p, files, j)
    want = (j.probs(x) + p.fuse.bone_weight * b.probs(x)) / (1 + p.fuse.bone_weight)
    got = predict_files(p, files, models / "joint" / "stf", bone_model_dir=models / "bone" / "stf")
    for i, r in enumerate(got):
        for t in r["top5"]:
            assert t["prob"] == pytest.approx(float(want[i, t["index"]]), rel=1e-5)
    with pytest.raises(PredictError, match="a bone-stream model, but a joint-stream model is needed"):
        predict_files(p, files, models / "bone" / "stf", bone_model_dir=models / "bone" / "stf")


def test_focus_maps_are_drawn(real_params: Path, models: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    p = load_params(real_params)
    files = ntu_files(fixtures_dir)[:2]
    predict_files(p, files[:1], models / "joint" / "stf", focus_out=tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 1000
    predict_files(p, files, models / "joint" / "msg3d", focus_out=tmp_path / "q.png")
    assert sorted(x.name for x in tmp_path.glob("q-*.png")) == sorted(f"q-{f.stem}.png" for f in files)


def test_layout_mismatch_is_one_line(real_params: Path, models: Path, fixtures_dir: Path, capsys) -> None:
    clip = sorted((fixtures_dir / "kinetics").glob("*.json"))[0]
    code = main(["predict", "--params", str(real_params), "--model", str(models / "joint" / "msg3d"), str(clip)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert err[0].startswith("stf: error:") and clip.name in err[0] and "does not fit" in err[0]
    code = main(["predict", "--params", str(real_params), "--model", str(models), str(ntu_files(fixtures_dir)[0])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "not a model directory" in err[0]


def test_channel_mismatch_names_the_parameter(real_params: Path, tmp_path: Path, fixtures_dir: Path) -> None:
    model = save_model_dir(tmp_path / "m", ntu_spec(in_channels=3), "ntu60-xsub")
    with pytest.raises(PredictError, match="visibility_channel"):
        predict_files(load_params(real_params), ntu_files(fixtures_dir)[:1], model)
