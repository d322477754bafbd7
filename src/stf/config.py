"""Typed, validated parameters: the one schema behind `params.yaml`.

`load_params(path)` is the only entry point; `cli.py` calls it and hands typed sections to
the rest of the package. Every model is frozen and rejects unknown keys, so a typo in
`params.yaml` fails before any work starts, with the key named. `params_json_schema()`
is what `workflow/schemas/params.schema.json` holds (Snakemake's `validate` reads it; a
test keeps the committed file in sync).

Sizes that differ between a CPU smoke run and the paper (frames, widths, epochs, how the
raw data is obtained) live in `profiles`; `profile` names the active one. Everything else
is a method or recipe constant and lives in its own section. `Params.sizes` is the active
profile.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DatasetName = Literal["ntu60", "ntu120", "kinetics"]
SettingName = Literal["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "kinetics"]
Stream = Literal["joint", "bone"]
LossName = Literal["e", "d", "c", "gk"]

SETTINGS: tuple[str, ...] = ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "kinetics")
STREAMS: tuple[str, ...] = ("joint", "bone")
DATASETS: tuple[str, ...] = ("ntu60", "ntu120", "kinetics")

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Prob = Annotated[float, Field(ge=0, le=1)]


class ParamsError(ValueError):
    """`params.yaml` is missing, unreadable or invalid; the message names the file and key."""


class _Section(BaseModel):
    # strict: a boolean or a numeric string is no number (an int is still a float); unknown keys are errors
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --------------------------------------------------------------------------- settings


class SettingSpec(_Section):
    dataset: DatasetName
    # xsub / xview (NTU-60), xsub / xset (NTU-120), trainval (Kinetics train/val lists)
    benchmark: Literal["xsub", "xview", "xset", "trainval"]

    @model_validator(mode="after")
    def _benchmark_fits_dataset(self) -> SettingSpec:
        allowed = {"ntu60": {"xsub", "xview"}, "ntu120": {"xsub", "xset"}, "kinetics": {"trainval"}}
        if self.benchmark not in allowed[self.dataset]:
            raise ValueError(f"benchmark {self.benchmark!r} does not exist for dataset {self.dataset!r}")
        return self


# --------------------------------------------------------------------------- raw data


class Archive(_Section):
    path: str  # local path (or URL) of a downloaded archive or folder
    sha256: str | None = None
    size: NonNegInt | None = None


class DataConfig(_Section):
    # archives of the real datasets (after registration); used when the profile's source is "real"
    ntu60: list[Archive] = []
    ntu120: list[Archive] = []
    kinetics: list[Archive] = []
    # official "samples with missing skeletons" lists (header lines tolerated); empty = none
    ntu60_missing: str | None = None
    ntu120_missing: str | None = None


class SynthConfig(_Section):
    seed: NonNegInt = 0
    noise_std: NonNegFloat = 0.01  # sensor noise, metres (NTU) / image fraction (Kinetics)
    max_camera_yaw_deg: NonNegFloat = 45.0
    drop_frame_prob: Prob = 0.02  # frames written with 0 bodies
    two_person_fraction: Prob = 0.15  # share of classes performed by two people
    confusable_fraction: Prob = 0.3  # share of classes built as a near-twin of another class
    kinetics_missing_joint_prob: Prob = 0.05


# --------------------------------------------------------------------------- preprocessing / splits


class PreprocessConfig(_Section):
    max_bodies_read: PosInt = 4  # NTU: bodies read per frame (MS-G3D: 4)
    max_persons_read: PosInt = 5  # Kinetics: persons read per frame before ranking (MS-G3D: 5)
    persons: PosInt = 2  # M kept
    center_joint: dict[Literal["ntu", "kinetics"], NonNegInt] = {"ntu": 1, "kinetics": 1}
    normalise_height: bool = True  # divide by body height (paper, after Si et al. 2018)
    visibility_channel: bool = True  # NTU: add a channel of 1 = visible (paper), C = 4
    msg3d_rotation: bool = False  # MS-G3D's pre_normalization rotations (off for STF)
    pad: Literal["repeat", "zero"] = "repeat"  # applied when batches are read (storage keeps each length)
    # dtype of the stored values: float32, or float16 (half the disk; its error: docs/method.md)
    storage_dtype: Literal["float32", "float16"] = "float32"


class SplitConfig(_Section):
    fractions: list[Annotated[int, Field(gt=0, le=100)]] = [10, 20, 25, 100]
    seed: NonNegInt = 0


# --------------------------------------------------------------------------- model / training


class ModelConfig(_Section):
    gcn_scales: dict[Literal["ntu", "kinetics"], PosInt] = {"ntu": 13, "kinetics": 8}
    g3d_scales: dict[Literal["ntu", "kinetics"], PosInt] = {"ntu": 6, "kinetics": 8}
    window_sizes: list[PosInt] = [3, 5]
    window_dilations: list[PosInt] = [1, 1]


class TrainConfig(_Section):
    lr: dict[DatasetName, PosFloat] = {"ntu60": 0.05, "ntu120": 0.05, "kinetics": 0.05}
    momentum: Prob = 0.9
    nesterov: bool = True
    weight_decay: NonNegFloat = 5e-4
    lr_gamma: PosFloat = 0.1
    amp: bool = False  # CUDA autocast; ignored on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: NonNegInt = 0
    deterministic: bool = True


class Lambdas(_Section):
    e: NonNegFloat = 0.01
    d: NonNegFloat = 0.1
    c: NonNegFloat = 0.1
    gk: NonNegFloat = 0.01


class STFConfig(_Section):
    lambdas: Lambdas = Lambdas()
    # fine-tuning lr of every fine-tuned model (STF variants and the cross-entropy controls),
    # fixed a priori; the paper picks from {1e-3, 5e-4, 1e-4}
    lr: PosFloat = 1e-3
    # candidates of `stf select-lr`, which picks one on the split's validation part (never the test part)
    lr_grid: list[PosFloat] = [1e-3, 5e-4, 1e-4]
    graph_scales: PosInt = 3  # K: scales of eq. 1 that carry G_k
    beta_hidden: PosInt = 16  # channels inside beta (3 conv layers -> T x V embedding)
    alpha_hidden: PosInt = 64  # channels inside alpha (2 conv layers -> K x V x V)
    alpha_time_bins: PosInt = 16  # alpha average-pools beta(X) along T to this many bins (any T works)
    focus_layer: Literal["last"] = "last"  # Grad-CAM at the last block (analytic CAM)
    # ‖·‖ of L_d, L_c, L_Gk per sample: "rms" (Frobenius / sqrt(M·T·V), in [0, 1]) or "frobenius"
    loss_norm: Literal["rms", "frobenius"] = "rms"
    # loss sets of the fine-tuned models; "dcg" and "e" are the paper's two ensembled models,
    # m2..m4 the ablation of Table 5 (m1 = MS-G3D baseline, m5 = the dcg + e ensemble)
    variants: dict[str, list[LossName]] = {
        "dcg": ["d", "c", "gk"],
        "e": ["e"],
        "m2": ["c"],
        "m3": ["c", "d"],
        "m4": ["c", "d", "gk"],
    }
    ensemble: list[str] = ["dcg", "e"]
    probe_lr: PosFloat = 0.05

    @model_validator(mode="after")
    def _ensemble_known(self) -> STFConfig:
        missing = [v for v in self.ensemble if v not in self.variants]
        if missing:
            raise ValueError(f"ensemble names unknown variants {missing}; known: {sorted(self.variants)}")
        # a variant's models live in stf-<name>; "ce" is the STF+ce control's directory (stf-ce)
        bad = [v for v in self.variants if v == "ce" or not v.replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"variant names must be letters/digits/_ and not 'ce' (the STF+ce control), got {bad}")
        if len(self.ensemble) != len(set(self.ensemble)):
            raise ValueError(f"ensemble lists a variant twice: {self.ensemble}")
        return self


class FuseConfig(_Section):
    bone_weight: NonNegFloat = 1.0  # J+B = (p_joint + w * p_bone) / (1 + w); paper: w = 1


class ReportConfig(_Section):
    per_class_setting: SettingName = "ntu60-xsub"
    focus_samples: NonNegInt = 4
    top_k: list[PosInt] = [1, 5]
    # paired comparisons (stf.report.statistics): resamples of the bootstrap interval and of the
    # permutation test, their random seed, and the significance level
    resamples: Annotated[int, Field(ge=99)] = 9999
    stats_seed: NonNegInt = 0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05


# --------------------------------------------------------------------------- profiles


class SynthSizes(_Section):
    classes: dict[DatasetName, PosInt] = {"ntu60": 60, "ntu120": 120, "kinetics": 400}
    samples_per_class: dict[DatasetName, PosInt] = {"ntu60": 10, "ntu120": 10, "kinetics": 10}
    min_frames: PosInt = 32
    max_frames: PosInt = 300


class Profile(_Section):
    source: Literal["synthetic", "real"]
    synth: SynthSizes = SynthSizes()
    frames: PosInt = 300  # T after padding
    widths: list[PosInt] = [96, 192, 384]
    batch_size: PosInt = 32
    forward_batch_size: PosInt = 16
    epochs: dict[DatasetName, PosInt] = {"ntu60": 50, "ntu120": 60, "kinetics": 65}
    lr_steps: dict[DatasetName, list[PosInt]] = {
        "ntu60": [20, 35, 45],
        "ntu120": [20, 35, 50],
        "kinetics": [25, 40, 55],
    }
    finetune_epochs: PosInt = 10
    probe_epochs: PosInt = 10
    eval_batch_size: PosInt = 64
    threads: NonNegInt = 0  # torch CPU threads per job; 0 = torch default
    # every model is trained once per seed (init and shuffle order); seed 0 keeps the plain paths
    seeds: list[NonNegInt] = [0]
    # percent of each class's training samples held out as the split's `val` part (0 = none)
    val_percent: Annotated[int, Field(ge=0, lt=100)] = 0
    # global batches per epoch on which a fine-tuning run also measures each loss term's gradient norm
    grad_probe_batches: NonNegInt = 2

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if len(self.widths) != 3:
            raise ValueError(f"widths must list 3 block widths, got {self.widths}")
        if self.forward_batch_size > self.batch_size:
            raise ValueError("forward_batch_size must not exceed batch_size")
        if self.synth.min_frames > self.synth.max_frames:
            raise ValueError("synth.min_frames must not exceed synth.max_frames")
        for ds, steps in self.lr_steps.items():
            if steps != sorted(steps):
                raise ValueError(f"lr_steps.{ds} must be increasing, got {steps}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must list at least one seed, each once, got {self.seeds}")
        return self


# --------------------------------------------------------------------------- the whole file


class Params(_Section):
    profile: str
    profiles: dict[str, Profile]
    settings: dict[SettingName, SettingSpec]
    streams: list[Stream] = list(STREAMS)
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    stf: STFConfig = STFConfig()
    fuse: FuseConfig = FuseConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        if self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not defined in profiles ({sorted(self.profiles)})")
        if 100 not in self.split.fractions:
            raise ValueError("split.fractions must include 100 (the full training set)")
        if len(self.model.window_sizes) != len(self.model.window_dilations):
            raise ValueError("model.window_sizes and model.window_dilations must have the same length")
        return self

    @property
    def sizes(self) -> Profile:
        """The active profile."""
        return self.profiles[self.profile]

    def setting(self, name: str) -> SettingSpec:
        try:
            return self.settings[name]  # type: ignore[index]
        except KeyError:
            raise ParamsError(f"unknown setting {name!r}; known: {sorted(self.settings)}") from None


def _format_error(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        lines.append(f"{key}: {e['msg']}")
    return f"{path}: invalid params: " + "; ".join(lines)


def parse_params(raw: object, source: Path | str = "<params>") -> Params:
    """Validate an already-loaded mapping; raise `ParamsError` naming every bad key."""
    path = Path(source)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_error(path, err)) from None


def load_raw_params(path: Path | str) -> object:
    """The YAML of a params file, not yet validated."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ParamsError(f"{path}: cannot read params file: {err.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None


def load_params(path: Path | str) -> Params:
    """Read and validate `params.yaml`."""
    return parse_params(load_raw_params(path), path)


def with_overrides(raw: dict, overrides: Mapping[str, str], source: Path | str = "<params>") -> tuple[dict, Params]:
    """A copy of `raw` with each dotted key (`stf.lambdas.e`) set to its value, read as YAML
    (`0.05`, `frobenius`, `[0, 1, 2]`); the key must exist already (a typo is an error, not a new
    key). Returns the new mapping and its validated params (ParamsError on either problem)."""
    out = copy.deepcopy(raw)
    for key, text in overrides.items():
        node, parts = out, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise ParamsError(f"{source}: no key {'.'.join(parts[: i + 1])!r} to set (from {key}={text})")
            if i < len(parts) - 1:
                node = node[part]
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ParamsError(f"{source}: {key}={text}: the value is not valid YAML: {err}") from None
    return out, parse_params(out, source)


def params_json_schema() -> dict:
    """JSON schema of `params.yaml` (draft 2020-12), generated from the models above."""
    schema = Params.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stf params.yaml"
    return schema


def params_json_schema_text() -> str:
    return json.dumps(params_json_schema(), indent=2, sort_keys=True) + "\n"
