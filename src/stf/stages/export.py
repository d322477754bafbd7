"""`stf export`: a trained model (or ensemble) as an inference graph outside Python.

`export_model(model_dir, ensemble, fmt, frames, out)` writes

- `fmt="onnx"`: an ONNX file (torch.onnx's dynamo exporter, needs the `export` extra:
  onnx, onnxscript; onnxruntime for the self-check);
- `fmt="torchscript"`: a TorchScript file (`torch.jit.trace`), loadable with `torch.jit.load`;

of `InferenceGraph`: input `x` (N, C, T, V, M) float32 with a dynamic batch N, the sample
prepared as for training (joint coordinates: `stf.data.preprocess`), output `logits` (N, K).
A bone-stream model computes its bones inside the graph, so every exported file reads the
prepared joint tensor; an ensemble outputs the log of its members' mean softmax (the "logits"
its `scores.parquet` holds). After writing, the file is run on a random batch of 2 and compared
with torch (max |Δ logit| in the summary; above `TOLERANCE` it is an error).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from stf.data.skeletons import Layout, layout_for
from stf.io import atomic_path
from stf.stages.members import load_members

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-3  # max |Δ logit| between the exported file and torch on the self-check batch
_COORDS = {"ntu25": 3, "openpose18": 2}


class ExportError(ValueError):
    """The model cannot be exported as asked, or the written file disagrees with torch."""


class BoneFeatures(nn.Module):
    """`stf.data.dataset.bone_features` as a module: (N, C, T, V, M) joints -> bones, same shape.

    Every joint v is the first end of exactly one bone pair (v, parent[v]): coordinates become
    x[v] - x[parent[v]], the channels after them min(value[v], value[parent[v]]), and the
    coordinates are zeroed where that minimum's first channel is 0.
    """

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        self.coords = _COORDS[layout.name]
        self.register_buffer("parents", torch.from_numpy(layout.bone_parents), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        cc = self.coords
        par = x.index_select(3, self.parents)  # (N, C, T, V, M): the other end of each joint's bone
        bones = x[:, :cc] - par[:, :cc]  # (N, cc, T, V, M)
        if x.shape[1] == cc:
            return bones
        lo = torch.minimum(x[:, cc:], par[:, cc:])  # (N, C - cc, T, V, M)
        return torch.cat([bones * (lo[:, :1] > 0).to(x.dtype), lo], dim=1)


class InferenceGraph(nn.Module):
    """Prepared joint tensor (N, C, T, V, M) -> logits (N, K) of one model or an ensemble."""

    def __init__(self, models: Sequence[nn.Module], bones: BoneFeatures | None) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)
        self.bones = bones

    def forward(self, x: Tensor) -> Tensor:
        if self.bones is not None:
            x = self.bones(x)
        if len(self.members) == 1:
            return self.members[0](x)
        probs = torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(0)  # (N, K)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


def build_graph(model_dir: Path, ensemble: Sequence[str]) -> tuple[InferenceGraph, dict, dict, int]:
    """The eval-mode `InferenceGraph` of `model_dir` -> (graph, spec, meta, members)."""
    members = load_members(model_dir, ensemble)
    first = members[0]
    layout = _layout_of(first.spec)
    bones = BoneFeatures(layout) if first.stream == "bone" else None
    graph = InferenceGraph([m.model for m in members], bones).eval()
    return graph, first.spec, first.meta, len(members)


def _layout_of(spec: dict) -> Layout:
    v = int(spec["num_point"])
    for dataset in ("ntu60", "kinetics"):
        if layout_for(dataset).num_joints == v:
            return layout_for(dataset)
    raise ExportError(f"no skeleton layout with {v} joints")


@contextlib.contextmanager
def _quiet_onnx() -> Iterator[None]:
    """The ONNX exporter's own progress lines stay; the optimiser's INFO records (about a thousand
    per STF model), torch.onnx's notes on torchvision ops and pytree FutureWarnings do not."""
    names = ("onnx_ir", "onnxscript", "torch.onnx")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def _export_onnx(graph: nn.Module, example: Tensor, path: Path, metadata: dict[str, str]) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401 - the dynamo exporter needs it
    except ImportError as err:
        raise ExportError(f"ONNX export needs the export extra: pip install 'stf[export]' ({err})") from None
    batch = torch.export.Dim("batch")
    with contextlib.redirect_stdout(sys.stderr), _quiet_onnx():  # the exporter reports its steps on stdout
        torch.onnx.export(
            graph, (example,), str(path), input_names=["x"], output_names=["logits"],
            dynamo=True, dynamic_shapes={"x": {0: batch}}, external_data=False,
        )  # fmt: skip
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"x": x})[0]


def _quiet_jit() -> contextlib.AbstractContextManager:
    """Silence what torch.jit says about every trace: TracerWarnings on the shape checks (C, V, M
    and channel counts are fixed in the graph, N stays dynamic) and its deprecation notice."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore", torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=DeprecationWarning)
    return stack


def _export_torchscript(graph: nn.Module, example: Tensor, path: Path) -> None:
    with torch.no_grad(), _quiet_jit():
        traced = torch.jit.trace(graph, (example,), check_trace=False)  # the file is checked after loading
    traced.save(str(path))


def _run_torchscript(path: Path, x: Tensor) -> np.ndarray:
    with torch.no_grad(), _quiet_jit():
        return torch.jit.load(str(path))(x).numpy()


def export_model(model_dir: Path, ensemble: Sequence[str], fmt: str, frames: int, out: Path, *, seed: int = 0) -> dict:
    """Write the inference graph of `model_dir` as `fmt` to `out`; returns a summary.

    Summary: {format, out, input: {name, shape ["batch", C, T, V, M]}, output: {name, shape
    ["batch", K]}, members, stream, setting, max_abs_diff (file vs torch on a random batch of 2;
    None for ONNX when onnxruntime is not installed)}.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {list(FORMATS)}")
    if frames <= 0:
        raise ExportError(f"frames must be positive, got {frames}")
    out = Path(out)
    graph, spec, meta, n_members = build_graph(Path(model_dir), ensemble)
    c, v, m, k = (int(spec[key]) for key in ("in_channels", "num_point", "num_person", "num_class"))
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(2, c, frames, v, m, generator=gen)  # (N, C, T, V, M)
    with torch.no_grad():
        expected = graph(example).numpy()
    metadata = {
        "stf.setting": str(meta.get("setting")),
        "stf.stream": str(meta.get("stream")),
        "stf.members": str(n_members),
        "stf.input": f"x: (N, C={c}, T={frames}, V={v}, M={m}) float32, prepared joint tensor",
        "stf.output": f"logits: (N, {k})" + (" = log of the members' mean softmax" if n_members > 1 else ""),
    }
    diff: float | None
    with atomic_path(out, suffix=out.suffix) as tmp:
        if fmt == "onnx":
            _export_onnx(graph, example, tmp, metadata)
            try:
                got = _run_onnx(tmp, example.numpy())
            except ImportError:
                log.warning("onnxruntime is not installed: %s was not checked against torch", out)
                got = None
        else:
            _export_torchscript(graph, example, tmp)
            got = _run_torchscript(tmp, example)
        diff = None if got is None else float(np.abs(got - expected).max())
        if diff is not None and not diff <= TOLERANCE:
            raise ExportError(
                f"{out}: the exported graph differs from torch by {diff:.3g} (> {TOLERANCE}); not written"
            )
    summary = {
        "format": fmt,
        "out": str(out),
        "input": {"name": "x", "shape": ["batch", c, frames, v, m], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", k]},
        "members": n_members,
        "setting": meta.get("setting"),
        "stream": meta.get("stream"),
        "max_abs_diff": diff,
    }
    log.info("export %s: %s", fmt, summary)
    return summary
