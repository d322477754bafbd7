"""`stf export`: ONNX (run with onnxruntime on the CPU) and TorchScript files vs torch, on the real
fixture files, with a dynamic batch; bone streams and ensembles inside the graph."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, ntu_spec, save_model_dir
from stf.cli import main
from stf.config import PreprocessConfig
from stf.data.dataset import bone_features
from stf.data.preprocess import prepare_raw_file
from stf.data.skeletons import NTU25, OPENPOSE18
from stf.stages.evaluate import load_model
from stf.stages.export import BoneFeatures, ExportError, export_model
from stf.stages.members import write_ensemble_file

FRAMES = 32
ENSEMBLE = ["dcg", "e"]


def fixture_batch(fixtures_dir: Path) -> np.ndarray:
    """The six real NTU files prepared as training data: (6, 4, FRAMES, 25, 2)."""
    files = sorted((fixtures_dir / "ntu").glob("*.skeleton"))
    return np.stack([prepare_raw_file(f, "ntu60", PreprocessConfig(), FRAMES)[1] for f in files])


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("export")
    model = save_model_dir(root / "stf-dcg", ntu_spec(stf=True), "ntu60-xsub", seed=4)
    out = root / "model.onnx"
    summary = export_model(model, ENSEMBLE, "onnx", FRAMES, out)
    return model, out, summary


def test_onnx_matches_torch_on_real_files_at_any_batch(onnx_file: tuple, fixtures_dir: Path) -> None:
    import onnx
    import onnxruntime as ort

    model_dir, path, summary = onnx_file
    assert summary["max_abs_diff"] is not None and summary["max_abs_diff"] <= 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("x", "tensor(float)", [4, FRAMES, 25, 2])
    assert isinstance(inp.shape[0], str) and outp.name == "logits" and outp.shape[1:] == [60]
    model, _ = load_model(model_dir)
    x = fixture_batch(fixtures_dir)  # (6, C, T, V, M)
    for batch in (x, x[:1], x[2:5]):
        got = session.run(["logits"], {"x": batch})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(batch)).numpy()
        assert got.shape == (len(batch), 60)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["stf.setting"] == "ntu60-xsub" and meta["stf.stream"] == "joint"


def test_bone_features_module_equals_the_numpy_function() -> None:
    rng = np.random.default_rng(0)
    for layout, c in ((NTU25, 4), (NTU25, 3), (OPENPOSE18, 3)):
        x = rng.normal(size=(3, c, 7, layout.num_joints, 2)).astype(np.float32)
        if c > 3 or layout is OPENPOSE18:
            x[:, -1] = rng.random(x[:, -1].shape) > 0.3  # a visibility / confidence channel with zeros
        want = bone_features(x, layout)
        got = BoneFeatures(layout)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_torchscript_bone_stream_and_ensemble(tmp_path: Path, fixtures_dir: Path) -> None:
    """A bone model's graph takes the joint tensor; an ensemble's gives log of the mean softmax."""
    base = tmp_path / "ntu60-xsub" / "bone"
    members = [save_model_dir(base / f"stf-{v}", ntu_spec(), "ntu60-xsub", "bone", seed=i)
               for i, v in enumerate(ENSEMBLE)]  # fmt: skip
    (base / "stf").mkdir()
    write_ensemble_file(base / "stf", members)
    s = export_model(base / "stf", ENSEMBLE, "torchscript", FRAMES, tmp_path / "bone.pt")
    assert s["members"] == 2 and s["stream"] == "bone" and s["max_abs_diff"] <= 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still loads
        graph = torch.jit.load(str(tmp_path / "bone.pt"))
    x = fixture_batch(fixtures_dir)
    bones = torch.from_numpy(bone_features(x, NTU25))
    with torch.no_grad():
        probs = torch.stack([load_model(m)[0](bones).softmax(1) for m in members]).mean(0)
        np.testing.assert_allclose(graph(torch.from_numpy(x)).numpy(), probs.log().numpy(), atol=1e-5)
        np.testing.assert_allclose(graph(torch.from_numpy(x[:1])).numpy(), probs[:1].log().numpy(), atol=1e-5)


def test_cli_export_prints_a_summary(tmp_path: Path, capsys) -> None:
    model = save_model_dir(tmp_path / "m", ntu_spec(), "ntu60-xsub")
    out = tmp_path / "m.pt"
    code = main(["export", "--params", str(REPO / "params.yaml"), "--model", str(model), "--format", "torchscript",
                 "--frames", "20", "--out", str(out)])  # fmt: skip
    assert code == 0 and out.is_file()
    summary = json.loads(capsys.readouterr().out)
    assert summary["input"]["shape"] == ["batch", 4, 20, 25, 2] and summary["output"]["shape"] == ["batch", 60]
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(model, ENSEMBLE, "tflite", 20, tmp_path / "x")
