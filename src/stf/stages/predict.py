"""`stf predict`: a trained model or ensemble on raw skeleton files -> top-5 classes, focus maps.

`predict_files(params, files, model_dir, bone_model_dir, focus_out)` prepares each raw file
exactly as training data is prepared (`stf.data.preprocess.prepare_raw_file`: NTU `.skeleton`
or Kinetics clip `.json`), runs every member model of `model_dir` (one model, or an STF
ensemble: softmax probabilities averaged, `stf.stages.members`), optionally fuses a bone-stream
model or ensemble as `stf fuse` does ((p_joint + w p_bone) / (1 + w), w = params
fuse.bone_weight), and returns one dict per file:

    {"file": str, "top5": [{"index": int, "name": str, "prob": float}, ...]}

Class names are the real dataset's (NTU-60/120, Kinetics-400) or, when the active profile's
data is synthetic, `stf synth`'s ("synthetic class k"). `focus_out` draws each member's focus Q
(`stf.focus.cam`, the paper's eq. 2 at the last block) of the predicted class on the skeleton.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stf.config import Params
from stf.data.actions import class_names
from stf.data.dataset import bone_features
from stf.data.skeletons import layout_for
from stf.metrics import softmax
from stf.stages.members import Member, load_members

log = logging.getLogger(__name__)

TOP = 5
_FILE_LAYOUT = {".skeleton": "ntu25", ".json": "openpose18"}
_LAYOUT_TEXT = {"ntu25": "NTU-25 3-D (.skeleton)", "openpose18": "OpenPose-18 2-D (Kinetics .json)"}


class PredictError(ValueError):
    """A file or model cannot be used for prediction; the message names it and says why."""


# --------------------------------------------------------------------------- models


class Predictor:
    """The members of one model directory, with what they need to score prepared samples."""

    def __init__(self, params: Params, model_dir: Path, stream: str | None = None) -> None:
        self.dir = Path(model_dir)
        self.members: list[Member] = load_members(self.dir, params.stf.ensemble)
        first = self.members[0]
        setting = first.meta.get("setting")
        if setting not in params.settings:
            raise PredictError(f"{first.path}: trained for setting {setting!r}, which params.settings does not define")
        self.setting = str(setting)
        self.dataset = params.settings[setting].dataset  # type: ignore[index]
        self.layout = layout_for(self.dataset)
        self.stream = first.stream
        if stream is not None and self.stream != stream:
            raise PredictError(f"{self.dir}: a {self.stream}-stream model, but a {stream}-stream model is needed here")
        self.spec = first.spec

    def describe(self) -> str:
        n = len(self.members)
        return f"{self.dir} ({self.setting}, {self.stream}, {n} model{'s' if n > 1 else ''})"

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Prepared joint samples (N, C, T, V, M) -> what the members read (bones for the bone stream)."""
        return bone_features(x, self.layout) if self.stream == "bone" else x

    @torch.no_grad()
    def probs(self, x: np.ndarray) -> np.ndarray:
        """(N, C, T, V, M) prepared joint samples -> (N, K) mean softmax probabilities of the members."""
        xt = torch.from_numpy(np.ascontiguousarray(self.inputs(x), dtype=np.float32))
        total = np.zeros((x.shape[0], int(self.spec["num_class"])), np.float64)
        for m in self.members:
            total += softmax(m.model(xt).numpy())
        return (total / len(self.members)).astype(np.float32)

    @torch.no_grad()
    def focus(self, x: np.ndarray, classes: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Focus Q (N, M, T, V) of `classes` (N,) for each member: [(member name, Q), ...]."""
        from stf.method.focus import cam, resample_time

        xt = torch.from_numpy(np.ascontiguousarray(self.inputs(x), dtype=np.float32))
        cls = torch.from_numpy(np.asarray(classes, dtype=np.int64))
        out = []
        for m in self.members:
            f = m.model.forward_features(xt)
            q = cam(f.last, m.model.fc.weight, f.logits, cls, persons=xt.shape[-1])  # (N, M, T3, V)
            out.append((f"{m.path.name} ({self.stream})", resample_time(q, xt.shape[2]).numpy()))  # (N, M, T, V)
        return out


# --------------------------------------------------------------------------- files


def file_layout(path: Path) -> str:
    """ "ntu25" for `.skeleton`, "openpose18" for `.json`; PredictError for anything else."""
    layout = _FILE_LAYOUT.get(Path(path).suffix.lower())
    if layout is None:
        raise PredictError(f"{path}: not a raw skeleton file (expected an NTU .skeleton or a Kinetics clip .json)")
    return layout


def prepare_files(params: Params, files: Sequence[Path], predictor: Predictor) -> np.ndarray:
    """Raw files -> (N, C, T, V, M) float32 prepared as the training data (params preprocess, profile frames)."""
    from stf.data.preprocess import prepare_raw_file

    spec = predictor.spec
    samples = []
    for path in files:
        path = Path(path)
        layout = file_layout(path)
        if layout != predictor.layout.name:
            raise PredictError(
                f"{path}: an {_LAYOUT_TEXT[layout]} file does not fit {predictor.dir}: that {predictor.dataset} "
                f"model reads {_LAYOUT_TEXT[predictor.layout.name]} input"
            )
        if not path.is_file():
            raise PredictError(f"{path}: file not found")
        _, sample = prepare_raw_file(path, predictor.dataset, params.preprocess, params.sizes.frames)  # (C, T, V, M)
        c, _, v, m = sample.shape
        if (c, v, m) != (spec["in_channels"], spec["num_point"], spec["num_person"]):
            raise PredictError(
                f"{path}: prepared as (C, V, M) = {(c, v, m)} under params.preprocess, but {predictor.dir} reads "
                f"{(spec['in_channels'], spec['num_point'], spec['num_person'])} (check preprocess.visibility_channel "
                "and preprocess.persons against the training run)"
            )
        samples.append(sample)
    return np.stack(samples)  # (N, C, T, V, M)


def _top(probs: np.ndarray, names: list[str], k: int) -> list[dict]:
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [{"index": int(i), "name": names[int(i)], "prob": float(probs[i])} for i in order]


def focus_paths(focus_out: Path, files: Sequence[Path]) -> list[Path]:
    """One PNG per file: `focus_out` itself for one file, `<stem>-<file stem><suffix>` for several."""
    focus_out = Path(focus_out)
    if len(files) == 1:
        return [focus_out]
    suffix = focus_out.suffix or ".png"
    return [focus_out.with_name(f"{focus_out.stem}-{Path(f).stem}{suffix}") for f in files]


def predict_files(
    params: Params,
    files: Sequence[Path],
    model_dir: Path,
    bone_model_dir: Path | None = None,
    focus_out: Path | None = None,
) -> list[dict]:
    """Top-5 classes of each raw file under the model (or ensemble) `model_dir`.

    With `bone_model_dir`, `model_dir` must be the joint stream and the two streams'
    probabilities are fused with params fuse.bone_weight. Returns
    [{"file", "top5": [{"index", "name", "prob"}]}] in the order of `files`.
    """
    if not files:
        raise PredictError("no input files")
    if params.sizes.threads > 0:
        torch.set_num_threads(params.sizes.threads)
    joint = Predictor(params, Path(model_dir), stream="joint" if bone_model_dir is not None else None)
    streams = [joint]
    if bone_model_dir is not None:
        bone = Predictor(params, Path(bone_model_dir), stream="bone")
        if (bone.setting, bone.spec["num_class"]) != (joint.setting, joint.spec["num_class"]):
            raise PredictError(
                f"{bone.dir}: bone model of {bone.setting} ({bone.spec['num_class']} classes) does not pair with "
                f"{joint.dir} ({joint.setting}, {joint.spec['num_class']} classes)"
            )
        streams.append(bone)
    x = prepare_files(params, files, joint)  # (N, C, T, V, M)
    probs = joint.probs(x)
    if len(streams) == 2:
        w = params.fuse.bone_weight
        probs = (probs + w * streams[1].probs(x)) / (1.0 + w)
    names = class_names(joint.dataset, int(joint.spec["num_class"]), params.sizes.source == "synthetic")
    results = [{"file": str(f), "top5": _top(p, names, TOP)} for f, p in zip(files, probs, strict=True)]
    for r in results:
        best = r["top5"][0]
        by = " + ".join(s.describe() for s in streams)
        log.info("%s: %s (%.3f) by %s", r["file"], best["name"], best["prob"], by)
    if focus_out is not None:
        draw_focus(x, probs.argmax(axis=1), streams, names, files, focus_paths(Path(focus_out), files))
    return results


def draw_focus(
    x: np.ndarray,
    pred: np.ndarray,
    streams: Sequence[Predictor],
    names: list[str],
    files: Sequence[Path],
    paths: Sequence[Path],
) -> list[Path]:
    """One PNG per sample: the skeleton at a few frames, joints coloured by each member's Q of `pred`."""
    from stf.report.figures import focus_figure

    maps: list[tuple[str, np.ndarray]] = []
    for s in streams:
        maps += s.focus(x, pred)  # [(name, (N, M, T, V))]
    edges = streams[0].layout.edges
    written = []
    for i, (f, path) in enumerate(zip(files, paths, strict=True)):
        per_model = {name: (q[i], names[int(pred[i])]) for name, q in maps}
        title = f"{Path(f).name}: predicted {names[int(pred[i])]} (focus Q of that class)"
        written.append(focus_figure(x[i], per_model, edges, Path(path), title))
        log.info("focus map: %s", path)
    return written
