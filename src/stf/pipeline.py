"""The pipeline, described once: its stages, their jobs, and what every job runs and touches.

A *stage* is one Snakemake rule and one DVC stage group of the same name. Its *jobs* (DVC's
`stage@key` instances) come from params.yaml: one per dataset, benchmark setting, model or
fusion, as the stage says. For every job the description gives the `stf` command, its named
inputs and outputs, its log, the params.yaml keys it reads and the source files of the code it
runs. Nothing about the graph lives anywhere else:

- `workflow/rules/*.smk`: each rule takes its inputs, outputs, log, command and tracked params
  from `Pipeline.job(stage, wildcards)` and `Pipeline.outputs(stage)`;
- `stf dvc-yaml` writes dvc.yaml from `Pipeline.dvc_yaml()` (a test keeps the committed file
  equal to it);
- `stf.stages.runtime` fingerprints resume state with the same code files
  (`stf.sources.code_files`) that make both tools rerun a training job;
- `tests/test_workflow.py` checks the description itself.

A *model id* is `{setting}/{stream}` (settings × streams) or `ntu60-xsub/joint/p{p}` for the
Table 4 training subsets (params split.fractions without 100); its directory is
`models/{model}/`. A new instance dimension (for example a seed) is one more field of the
instances in `_instance_sets` and one more path segment where the paths are made; a new stage
(for example a control model) is one more `Stage` in `_stages`.

How three renderings stay one: a stage's `build(fields)` makes its `Step` from string fields by
formatting only, never by branching on their values. Built with a job's fields it is that job;
built with `{name}` for the wildcard fields it gives Snakemake's output patterns; built with
`${item.name}` and `${profile}` it is the `do:` template of dvc.yaml, and `dvc_yaml()` checks
that this template expands to exactly the jobs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from stf.config import Params
from stf.paths import (
    BASELINE,
    ENSEMBLE,
    FT_X2,
    FT_X2_MEMBERS,
    PAPER_ROWS,
    ROWS,
    control_name,
    fused_dir,
    model_dir,
    model_id,
    shift_dir,
    variant_name,
)
from stf.sources import TRAINING_CODE, code_files

# The paper's protocol: Tables 4 and 5 and the shift test use NTU-60 x-sub, joint stream; the
# shift test trains a linear probe on NTU-120 x-sub.
MAIN_SETTING, MAIN_STREAM = "ntu60-xsub", "joint"
SHIFT_SETTING = "ntu120-xsub"
METHODS = PAPER_ROWS  # model directory names of the paper's rows: the baseline and the STF ensemble
# where `make evidence` and the report find the one-cell evidence of a run (stf.report.evidence)
EVIDENCE_DIR = "results/main-cell"

# params keys read by the model spec (stf.stages.spec.spec_for)
SPEC_KEYS = ("model", "preprocess.persons", "profiles.{profile}.widths")
STF_SPEC_KEYS = ("stf.graph_scales", "stf.beta_hidden", "stf.alpha_hidden", "stf.alpha_time_bins")
# params keys read by the optimisation recipe and the runtime (stf.stages.runtime)
RECIPE_KEYS = (
    "train.momentum",
    "train.nesterov",
    "train.weight_decay",
    "train.lr_gamma",
    "profiles.{profile}.seeds",  # a job without --seed trains with the first (stf.paths)
    "train.amp",
    "train.device",
    "train.num_workers",
    "train.deterministic",
    "profiles.{profile}.batch_size",
    "profiles.{profile}.forward_batch_size",
    "profiles.{profile}.eval_batch_size",
    "profiles.{profile}.threads",
    "profiles.{profile}.grad_probe_batches",
)
# params keys the report and the evidence report read: every number they print and their
# parameter table (stf.report.tables.parameter_table), which names what produced the run
REPORT_KEYS = (
    "profile",
    "profiles.{profile}",
    "synth",
    "preprocess.persons",
    "settings",
    "split",
    "train",
    "stf",
    "fuse",
    "report",
)


class PipelineError(ValueError):
    """The description cannot be built from these params, or a job asked for does not exist."""


# --------------------------------------------------------------------------- the description types

Fields = Mapping[str, str]


@dataclass(frozen=True)
class Out:
    """One output of a job."""

    path: str
    directory: bool = False
    cache: bool = True  # DVC caches it; False: small files committed to git with dvc.lock
    metric: bool = False  # listed by `dvc metrics show`
    plot: Mapping[str, Any] | None = None  # properties of its `dvc plots` entry


@dataclass(frozen=True)
class Step:
    """What a stage's job runs and touches, built from the job's fields."""

    cmd: str
    outputs: Mapping[str, Out]
    inputs: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)  # name -> path(s)
    params: tuple[str, ...] = ()  # dotted params.yaml keys the command reads


@dataclass(frozen=True)
class Stage:
    """One Snakemake rule / DVC stage group and its jobs."""

    name: str
    doc: str  # one line: what the stage does (dvc.yaml `desc`)
    build: Callable[[Fields], Step]
    code: tuple[str, ...]  # entry modules of the code the command runs (code_files)
    log: str  # log file pattern over the wildcards
    instances: tuple[Fields, ...] = ({},)  # the fields of each job
    wildcards: tuple[str, ...] = ()  # the fields that name a job (in its paths and its DVC key)
    over: str | None = None  # name of the instance set (a dvc.yaml var)
    family: str | None = None  # stages whose Snakemake rules one loop makes (`finetune`)


@dataclass(frozen=True)
class Job:
    """One job: a stage applied to one instance, with every path resolved."""

    stage: str
    key: str | None  # DVC's `@` suffix; None for a stage with one job
    wildcards: Mapping[str, str]
    cmd: str
    inputs: Mapping[str, str | tuple[str, ...]]  # named inputs; "code" = the source files
    outputs: Mapping[str, Out]
    log: str
    params: tuple[str, ...]

    @property
    def name(self) -> str:
        """The DVC stage name: `stage@key`, or the stage's name."""
        return f"{self.stage}@{self.key}" if self.key else self.stage

    @property
    def input_paths(self) -> tuple[str, ...]:
        """Every input path (data first, then code), as DVC lists the deps."""
        return tuple(p for v in self.inputs.values() for p in ((v,) if isinstance(v, str) else v))

    @property
    def named_inputs(self) -> dict[str, str | list[str]]:
        """The inputs as Snakemake's `unpack` takes them: name -> a path or a list of paths."""
        return {k: v if isinstance(v, str) else list(v) for k, v in self.inputs.items()}

    @property
    def output_paths(self) -> tuple[str, ...]:
        return tuple(o.path for o in self.outputs.values())


# --------------------------------------------------------------------------- paths and commands


def interim(dataset: str) -> str:
    return f"data/interim/{dataset}.parquet"


def split_file(setting: str) -> str:
    return f"data/splits/{setting}.parquet"


def _keys(templates: Iterable[str], f: Fields) -> tuple[str, ...]:
    """Params keys with `{profile}`, `{setting}`, `{dataset}` ... filled in from the fields."""
    return tuple(t.format(**f) for t in templates)


def stf_command(subcommand: str, **options: str | int | bool | list[str] | tuple[str, ...]) -> str:
    """`stf SUB --params params.yaml --opt value ...`: option names with `-` for `_`, True as a
    bare flag, a list as a repeated option, in the order given."""
    words = ["stf", subcommand, "--params", "params.yaml"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, list | tuple):
            for item in value:
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return " ".join(words)


# --------------------------------------------------------------------------- instances


def _model(params: Params, setting: str, stream: str, fraction: int = 100, seed: int = 0) -> dict[str, str]:
    """The fields of one model id's jobs: `model` (the id, its path under models/, with the
    fraction and seed levels of `stf.paths`) and what the commands take."""
    return {
        "model": model_id(setting, stream, fraction, seed),
        "setting": setting,
        "dataset": params.settings[setting].dataset,  # type: ignore[index]
        "stream": stream,
        "fraction": str(fraction),
        "seed": str(seed),
    }


def _instance_sets(params: Params) -> dict[str, tuple[dict[str, str], ...]]:
    """The job lists of the stages, by name (each a dvc.yaml var). Every model-level set has one
    instance per seed of the profile (params profiles.<profile>.seeds)."""
    settings = list(params.settings)
    for needed, why in ((MAIN_SETTING, "Tables 4 and 5 and the shift test"), (SHIFT_SETTING, "the shift test")):
        if needed not in settings:
            raise PipelineError(f"params settings must include {needed!r} ({why} use it)")
    if MAIN_STREAM not in params.streams:
        raise PipelineError(f"params streams must include {MAIN_STREAM!r} (Tables 4 and 5 use it)")
    seeds = list(params.sizes.seeds)
    # datasets in the order their settings appear (a dataset is prepared once for all its settings)
    datasets = dict.fromkeys(params.settings[s].dataset for s in settings)  # type: ignore[index]
    main = [_model(params, s, j, seed=k) for k in seeds for s in settings for j in params.streams]
    subsets = [
        _model(params, MAIN_SETTING, MAIN_STREAM, p, k) for k in seeds for p in params.split.fractions if p != 100
    ]
    fusions = [
        {
            "fusion": str(fused_dir("", s, row, k)),  # `{setting}[/s{seed}]/{row}`, under results/
            "joint": str(model_dir("models", s, "joint", row, k)),
            "bone": str(model_dir("models", s, "bone", row, k)),
        }
        for k in seeds
        for s in settings
        for row in ROWS
    ]
    shifts = [{"shift": str(shift_dir("", "", k)), "main": model_id(MAIN_SETTING, MAIN_STREAM, seed=k),
               "seed": str(k)} for k in seeds]  # fmt: skip
    return {
        "datasets": tuple({"dataset": d} for d in datasets),
        "splits": tuple({"setting": s, "dataset": params.settings[s].dataset} for s in settings),  # type: ignore[index]
        "models": tuple(main + subsets),
        "main_models": tuple(main),
        "ablation_models": tuple(_model(params, MAIN_SETTING, MAIN_STREAM, seed=k) for k in seeds),
        "fusions": tuple(fusions),
        "shifts": tuple(shifts),
    }


# --------------------------------------------------------------------------- the stages


def _stages(params: Params) -> list[Stage]:
    """Every stage, in the order the data flows."""
    sets = _instance_sets(params)
    stf = params.stf
    ensemble = list(stf.ensemble)  # the STF models averaged at test (dcg, e)
    stages: list[Stage] = []

    # ------------------------------------------------------------------ data
    def raw(f: Fields) -> Step:
        out = f"data/raw/{f['dataset']}"
        return Step(
            cmd=stf_command("raw", dataset=f["dataset"], out=out),
            outputs={"raw": Out(out, directory=True)},
            params=_keys(("synth", "data.{dataset}", "profiles.{profile}.source", "profiles.{profile}.synth"), f),
        )

    def preprocess(f: Fields) -> Step:
        raw_dir, out = f"data/raw/{f['dataset']}", interim(f["dataset"])
        return Step(
            cmd=stf_command("preprocess", dataset=f["dataset"], raw=raw_dir, out=out),
            inputs={"raw": raw_dir},
            outputs={"data": Out(out), "rejected": Out(f"data/interim/{f['dataset']}.rejected.csv")},
            params=_keys(("preprocess", "profiles.{profile}.frames", "data.ntu60_missing", "data.ntu120_missing"), f),
        )

    def split(f: Fields) -> Step:
        data, out = interim(f["dataset"]), split_file(f["setting"])
        return Step(
            cmd=stf_command("split", setting=f["setting"], data=data, out=out),
            inputs={"data": data},
            outputs={"split": Out(out)},
            params=_keys(("split", "settings.{setting}", "profiles.{profile}.val_percent"), f),
        )

    stages += [
        Stage("raw", "raw files: synthetic, or the real archives unpacked, as the profile's source says",
              raw, ("stf.data.synth.synthesize", "stf.data.fetch"), "logs/raw/{dataset}.log",
              sets["datasets"], ("dataset",), "datasets"),
        Stage("preprocess", "normalise, pad and pack every raw sample into one parquet (+ the rejected files)",
              preprocess, ("stf.data.preprocess",), "logs/preprocess/{dataset}.log",
              sets["datasets"], ("dataset",), "datasets"),
        Stage("split", "train/test split of one benchmark setting, with the stratified training subsets",
              split, ("stf.data.splits",), "logs/split/{setting}.log",
              sets["splits"], ("setting",), "splits"),
    ]  # fmt: skip

    # ------------------------------------------------------------------ training
    def model_data(f: Fields) -> dict[str, str]:
        return {"data": interim(f["dataset"]), "split": split_file(f["setting"])}

    def train(f: Fields) -> Step:
        out = f"models/{f['model']}/{BASELINE}"
        return Step(
            cmd=stf_command(
                "train",
                setting=f["setting"],
                stream=f["stream"],
                **model_data(f),
                fraction=f["fraction"],
                seed=f["seed"],
                out=out,
                resume=True,
            ),  # fmt: skip
            inputs=model_data(f),
            outputs={"model": Out(out, directory=True)},
            params=_keys(
                (
                    "settings.{setting}",
                    *SPEC_KEYS,
                    *RECIPE_KEYS,
                    "train.lr.{dataset}",
                    "profiles.{profile}.epochs.{dataset}",
                    "profiles.{profile}.lr_steps.{dataset}",
                ),
                f,
            ),  # fmt: skip
        )

    stages.append(
        Stage("train", "train the MS-G3D baseline of one model id (setting, stream, fraction, seed)", train,
              TRAINING_CODE, "logs/train/{model}.log", sets["models"], ("model",), "models")
    )  # fmt: skip

    # Every fine-tuning (an STF variant or a cross-entropy control) has STF's recipe: params
    # stf.lr for profiles.<profile>.finetune_epochs epochs from the baseline of the same seed.
    FINETUNE_KEYS = (
        "settings.{setting}",
        *SPEC_KEYS,
        *RECIPE_KEYS,
        "stf.lr",
        "profiles.{profile}.finetune_epochs",
    )

    def finetune(name: str, kind: Mapping[str, str | int], keys: tuple[str, ...]) -> Callable[[Fields], Step]:
        """`kind`: variant=... (an STF variant) or control=... [member=1] (a control)."""

        def build(f: Fields) -> Step:
            init, out = f"models/{f['model']}/{BASELINE}", f"models/{f['model']}/{name}"
            return Step(
                cmd=stf_command(
                    "finetune",
                    setting=f["setting"],
                    stream=f["stream"],
                    **model_data(f),
                    **kind,
                    init=init,
                    fraction=f["fraction"],
                    seed=f["seed"],
                    out=out,
                    resume=True,
                ),  # fmt: skip
                inputs={**model_data(f), "init": init},
                outputs={"model": Out(out, directory=True)},
                params=_keys((*FINETUNE_KEYS, *keys), f),
            )

        return build

    # One stage per STF variant, because each reads its own loss weights: after a change of
    # stf.lambdas.e only finetune_e (and what uses its models) reruns. The ensemble's variants
    # are fine-tuned for every model id, the others (Table 5) for the main model only.
    stf_keys = (*STF_SPEC_KEYS, "stf.focus_layer")
    for variant, losses in stf.variants.items():
        over = "models" if variant in ensemble else "ablation_models"
        keys = (*stf_keys, "stf.loss_norm", f"stf.variants.{variant}", *(f"stf.lambdas.{x}" for x in losses))
        stages.append(
            Stage(f"finetune_{variant}", f"fine-tune STF with the losses {'+'.join(losses)} from the baseline",
                  finetune(variant_name(variant), {"variant": variant}, keys), TRAINING_CODE,
                  f"logs/finetune_{variant}/{{model}}.log", sets[over], ("model",), over, family="finetune")
        )  # fmt: skip
    # The controls (docs/method.md): MS-G3D+ft (cross-entropy alone, no STF modules; two models
    # with different shuffle seeds for the x2 ensemble) and STF+ce (the modules, every λ = 0, so
    # no loss weight or norm is read), for every setting and stream (not the Table 4 subsets).
    controls = {
        "ft": ({"control": "ft"}, (), "MS-G3D+ft: fine-tune the baseline with cross-entropy alone, no STF modules"),
        "ft_b": ({"control": "ft", "member": 1}, (), "the second MS-G3D+ft (another shuffle seed) for MS-G3D+ft x2"),
        "stf_ce": ({"control": "stf-ce"}, stf_keys, "STF+ce: the STF modules added, fine-tuned with every λ = 0"),
    }
    for suffix, (kind, keys, doc) in controls.items():
        name = control_name(str(kind["control"]), int(kind.get("member", 0)))
        stages.append(
            Stage(f"finetune_{suffix}", doc, finetune(name, kind, keys), TRAINING_CODE,
                  f"logs/finetune_{suffix}/{{model}}.log", sets["main_models"], ("model",), "main_models",
                  family="finetune")
        )  # fmt: skip

    # The shift test: a linear probe of the frozen NTU-60 x-sub joint model(s) on NTU-120 x-sub,
    # for every row of Table 2 (ensembles probed as ensembles: two heads, averaged).
    shift_data = {"data": interim(params.settings[SHIFT_SETTING].dataset), "split": split_file(SHIFT_SETTING)}  # type: ignore[index]
    # the model directories each Table 2 row averages (one for a single model)
    row_members = {row: [row] for row in ROWS} | {
        ENSEMBLE: [variant_name(v) for v in ensemble],
        FT_X2: list(FT_X2_MEMBERS),
    }

    def probe(row: str) -> Callable[[Fields], Step]:
        def build(f: Fields) -> Step:
            models = tuple(f"models/{f['main']}/{m}" for m in row_members[row])
            out = f"models/{f['shift']}/{row}"
            return Step(
                cmd=stf_command(
                    "probe",
                    setting=SHIFT_SETTING,
                    stream="joint",
                    **shift_data,
                    model=models,
                    seed=f["seed"],
                    out=out,
                    resume=True,
                ),  # fmt: skip
                inputs={**shift_data, "models": models},
                outputs={"model": Out(out, directory=True)},
                params=_keys(
                    (f"settings.{SHIFT_SETTING}", *RECIPE_KEYS, "stf.probe_lr", "profiles.{profile}.probe_epochs"), f
                ),
            )

        return build

    for row, label in ROWS.items():
        stages.append(
            Stage(f"probe_{row.replace('-', '_')}", f"shift test of {label}: linear probe of the frozen NTU-60 "
                  "x-sub joint model(s) on NTU-120 x-sub", probe(row), TRAINING_CODE,
                  f"logs/probe_{row}/{{shift}}.log", sets["shifts"], ("shift",), "shifts", family="probe")
        )  # fmt: skip

    # ------------------------------------------------------------------ evaluation
    def evaluate(row: str) -> Callable[[Fields], Step]:
        def build(f: Fields) -> Step:
            members = tuple(f"models/{f['model']}/{m}" for m in row_members[row])
            out = f"models/{f['model']}/{row}"
            return Step(
                cmd=stf_command(
                    "evaluate", setting=f["setting"], stream=f["stream"], **model_data(f), model=members, out=out
                ),  # fmt: skip
                inputs={**model_data(f), "models": members},
                outputs={"model": Out(out, directory=True)},
                params=_keys(
                    (
                        "settings.{setting}",
                        "train.device",
                        "train.amp",
                        "profiles.{profile}.eval_batch_size",
                        "profiles.{profile}.threads",
                    ),
                    f,
                ),  # fmt: skip
            )

        return build

    def fuse(f: Fields) -> Step:
        out = f"results/{f['fusion']}"
        return Step(
            cmd=stf_command("fuse", joint=f["joint"], bone=f["bone"], out=out),
            inputs={"joint": f["joint"], "bone": f["bone"]},
            outputs={"fused": Out(out, directory=True)},
            params=("fuse",),
        )

    stages += [
        Stage("evaluate", "STF: softmax average of the ensemble's STF models (params stf.ensemble) on the test part",
              evaluate(ENSEMBLE), ("stf.stages.evaluate",), "logs/evaluate/{model}.log", sets["models"], ("model",),
              "models", family="evaluate"),
        Stage("evaluate_ft_x2", "MS-G3D+ft x2: softmax average of the two MS-G3D+ft models on the test part",
              evaluate(FT_X2), ("stf.stages.evaluate",), "logs/evaluate_ft_x2/{model}.log", sets["main_models"],
              ("model",), "main_models", family="evaluate"),
        Stage("fuse", "J+B: weighted mean of the joint and bone softmax probabilities of one row and seed",
              fuse, ("stf.stages.fuse",), "logs/fuse/{fusion}.log", sets["fusions"], ("fusion",), "fusions"),
    ]  # fmt: skip

    # ------------------------------------------------------------------ report
    def flops(f: Fields) -> Step:
        out = "results/flops.json"
        return Step(
            cmd=stf_command("flops", dataset="ntu60", frames=300, persons=2, in_channels=4, out=out),
            outputs={"flops": Out(out, cache=False)},
            params=("model", *STF_SPEC_KEYS),
        )

    figure_setting = params.report.per_class_setting
    seeds = list(params.sizes.seeds)
    # the model ids of the instance sets: every setting and stream, and the Table 4 subsets
    main_ids = [m["model"] for m in sets["main_models"]]
    subset_ids = [m["model"] for m in sets["models"] if m["fraction"] != "100"]
    ablation = [v for v in stf.variants if v not in ensemble]  # Table 5: m2, m3, m4
    report_inputs = {
        "models": tuple(f"models/{m}/{row}" for m in main_ids for row in ROWS),
        "fused": tuple(str(fused_dir("results", s, row, k)) for k in seeds for s in params.settings for row in ROWS),
        "subsets": tuple(f"models/{m}/{method}" for m in subset_ids for method in METHODS),
        "ablation": tuple(
            str(model_dir("models", MAIN_SETTING, MAIN_STREAM, variant_name(v), k)) for k in seeds for v in ablation
        ),  # fmt: skip
        "members": tuple(
            str(model_dir("models", figure_setting, MAIN_STREAM, variant_name(v), k)) for k in seeds for v in ensemble
        ),  # fmt: skip
        "shift": tuple(str(shift_dir("models", row, k)) for k in seeds for row in ROWS),
        "flops": "results/flops.json",
        "data": interim(params.settings[figure_setting].dataset),  # type: ignore[index]
        "split": split_file(figure_setting),
    }

    def report(f: Fields) -> Step:
        def table(name: str, **kw: Any) -> Out:
            return Out(f"results/{name}", cache=False, **kw)

        return Step(
            cmd=stf_command("report", models="models", results="results", out="results"),
            inputs=report_inputs,
            outputs={
                "report": table("report.md"),
                "table2": table("table2.csv"),
                "table2_top5": table("table2_top5.csv"),
                "table3": table("table3.csv"),
                "table4": table("table4.csv"),
                "table5": table("table5.csv"),
                "shift": table("shift.csv"),
                "flops": table("flops.csv"),
                "controls": table("table2_controls.csv"),
                "comparisons": table("comparisons.csv"),
                "parameters": table("parameters.csv"),
                "summary": table("metrics.json"),
                "headline": table("headline", directory=True, metric=True),
                "per_class": table(
                    "plots/per_class.csv",
                    plot={
                        "x": "diff",
                        "y": "name",
                        "template": "bar_horizontal",
                        "title": "Per-class top-1 difference STF - MS-G3D (%)",
                    },
                ),  # fmt: skip
                "fractions": table(
                    "plots/fractions.csv",
                    plot={"x": "fraction", "y": list(METHODS), "title": "Top-1 (%) vs training fraction"},
                ),
                "loss_terms": table("plots/loss_terms.csv"),
                "figures": table("figures", directory=True),
            },
            params=_keys(REPORT_KEYS, f),
        )

    # The one-cell evidence of this run (NTU-60 x-sub joint: baseline, STF, the controls, every
    # seed, paired tests); `make evidence` runs it on the evidence profile (docs/pipeline.md).
    evidence_inputs = {
        "models": tuple(
            str(model_dir("models", MAIN_SETTING, MAIN_STREAM, name, k))
            for k in seeds
            for name in (*ROWS, *(variant_name(v) for v in ensemble))
        ),  # fmt: skip
        "split": split_file(MAIN_SETTING),
    }

    def evidence(f: Fields) -> Step:
        return Step(
            cmd=stf_command(
                "evidence-report",
                models="models",
                split=split_file(MAIN_SETTING),
                setting=MAIN_SETTING,
                stream=MAIN_STREAM,
                out=EVIDENCE_DIR,
            ),  # fmt: skip
            inputs=evidence_inputs,
            outputs={"evidence": Out(EVIDENCE_DIR, directory=True, cache=False)},
            params=_keys(REPORT_KEYS, f),
        )

    stages += [
        Stage("flops", "parameters and FLOPs of MS-G3D and STF at full width, NTU input (T = 300, M = 2, C = 4)",
              flops, ("stf.stages.flops",), "logs/flops.log"),
        Stage("report", "Tables 2-5 and the controls, the shift test and FLOPs beside the paper's numbers, "
              "paired tests, figures, report.md", report, ("stf.report.build",), "logs/report.log"),
        Stage("evidence", "the main cell's evidence: every row and seed of NTU-60 x-sub joint, paired tests, "
              "loss terms, confusable pairs", evidence, ("stf.report.evidence",), "logs/evidence.log"),
    ]  # fmt: skip
    return stages


# --------------------------------------------------------------------------- the pipeline


def _wildcards_of(wildcards: Mapping[str, str] | Any) -> dict[str, str]:
    """A plain dict of a mapping or of Snakemake's `Wildcards` (anything with `items()`)."""
    return {str(k): str(v) for k, v in wildcards.items()}


def _marked(f: Fields, marks: Mapping[str, str]) -> dict[str, str]:
    return {k: marks.get(k, f"\0{k}\0") for k in f} | {"profile": marks.get("profile", "\0profile\0")}


class Pipeline:
    """The stages and jobs that `params` gives (see the module docstring)."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.stages: dict[str, Stage] = {}
        for stage in _stages(params):
            if stage.name in self.stages:
                raise PipelineError(f"two stages are named {stage.name!r}")
            self.stages[stage.name] = stage
        self.code: dict[str, tuple[str, ...]] = {name: code_files(*s.code) for name, s in self.stages.items()}
        self._jobs: dict[str, dict[tuple[tuple[str, str], ...], Job]] = {}
        producers: dict[str, str] = {}
        for name, stage in self.stages.items():
            jobs = {}
            for inst in stage.instances:
                job = self._make_job(stage, inst)
                jobs[tuple(sorted(job.wildcards.items()))] = job
                for path in job.output_paths:
                    if path in producers:
                        raise PipelineError(f"{path} is an output of both {producers[path]} and {job.name}")
                    producers[path] = job.name
            self._jobs[name] = jobs

    def _make_job(self, stage: Stage, inst: Fields) -> Job:
        step = stage.build({**inst, "profile": self.params.profile})
        wildcards = {w: inst[w] for w in stage.wildcards}
        key = "-".join(wildcards.values()).replace("/", "-") if wildcards else None
        return Job(
            stage=stage.name,
            key=key,
            wildcards=wildcards,
            cmd=step.cmd,
            inputs={**step.inputs, "code": self.code[stage.name]},
            outputs=step.outputs,
            log=stage.log.format(**wildcards),
            params=step.params,
        )

    # ------------------------------------------------------------------ queries

    def jobs(self, stage: str | None = None) -> list[Job]:
        """Every job (of one stage), in the order of the description."""
        names = [stage] if stage else list(self.stages)
        return [job for name in names for job in self._stage_jobs(name).values()]

    def _stage_jobs(self, stage: str) -> dict[tuple[tuple[str, str], ...], Job]:
        try:
            return self._jobs[stage]
        except KeyError:
            raise PipelineError(f"no stage {stage!r}; the pipeline has {sorted(self.stages)}") from None

    def job(self, stage: str, wildcards: Mapping[str, str] | Any = ()) -> Job:
        """The job of `stage` with these wildcard values (a mapping or Snakemake's `Wildcards`)."""
        wc = _wildcards_of(wildcards) if wildcards else {}
        found = self._stage_jobs(stage).get(tuple(sorted(wc.items())))
        if found is None:
            raise PipelineError(f"stage {stage} has no job for {wc}")
        return found

    def family(self, family: str) -> list[str]:
        """Names of the stages of a family (`finetune`: one per STF variant)."""
        return [name for name, s in self.stages.items() if s.family == family]

    def outputs(self, stage: str, directory: Callable[[str], Any] = str) -> dict[str, Any]:
        """Snakemake output patterns of `stage` ({wildcard} placeholders); `directory` marks the
        folders (pass Snakemake's `directory`)."""
        s = self.stages[stage]
        step = s.build(_marked(s.instances[0], {w: f"{{{w}}}" for w in s.wildcards}))
        patterns = {}
        for name, out in step.outputs.items():
            if "\0" in out.path:
                raise PipelineError(f"stage {stage}: output {name} uses a field that is not a wildcard")
            patterns[name] = directory(out.path) if out.directory else out.path
        return patterns

    def log(self, stage: str) -> str:
        return self.stages[stage].log

    def wildcard_constraints(self, stage: str) -> dict[str, str]:
        """For each wildcard of `stage`, a regex matching exactly its jobs' values."""
        s = self.stages[stage]
        values = {w: sorted({inst[w] for inst in s.instances}) for w in s.wildcards}
        return {w: "|".join(re.escape(v) for v in vs) for w, vs in values.items()}

    def producers(self) -> dict[str, Job]:
        """Output path -> the job that writes it."""
        return {path: job for job in self.jobs() for path in job.output_paths}

    def upstream(self, targets: Iterable[str]) -> list[Job]:
        """The jobs that writing `targets` (output paths) needs, the targets' own jobs included."""
        producers = self.producers()
        needed: dict[str, Job] = {}
        todo = list(targets)
        while todo:
            path = todo.pop()
            job = producers.get(path)
            if job is None or job.name in needed:
                continue
            needed[job.name] = job
            todo.extend(job.input_paths)
        return [job for job in self.jobs() if job.name in needed]

    # ------------------------------------------------------------------ dvc.yaml

    def dvc_yaml(self) -> str:
        """The text of dvc.yaml: one stage group per stage (`foreach` over its instance set, a
        dvc.yaml var), the plots of the outputs that have them."""
        reserved = set(type(self.params).model_fields)
        sets: dict[str, dict[str, dict[str, str]]] = {}
        stages: dict[str, Any] = {}
        plots: list[Any] = []
        for name, stage in self.stages.items():
            jobs = list(self._stage_jobs(name).values())
            if stage.over is None:
                body = self._dvc_stage(stage, {}, "${profile}")
                self._check_template(stage, body, jobs, lambda job: {})
                stages[name] = {"desc": stage.doc, **body}
            else:
                if stage.over in reserved:
                    raise PipelineError(f"instance set {stage.over!r} would shadow the params.yaml key of that name")
                items = {job.key: dict(inst) for job, inst in zip(jobs, stage.instances, strict=True)}
                if sets.setdefault(stage.over, items) != items:
                    raise PipelineError(f"stages over {stage.over!r} disagree on its instances")
                body = self._dvc_stage(stage, {k: f"${{item.{k}}}" for k in stage.instances[0]}, "${profile}")
                self._check_template(stage, body, jobs, lambda job, items=items: items[job.key])
                stages[name] = {"foreach": f"${{{stage.over}}}", "do": {"desc": stage.doc, **body}}
            for out in jobs[0].outputs.values():
                if out.plot is not None:
                    plots.append({out.path: dict(out.plot)})
        doc: dict[str, Any] = {}
        if sets:
            doc["vars"] = [{name: {key: _Flow(item) for key, item in items.items()}} for name, items in sets.items()]
        doc["stages"] = stages
        if plots:
            doc["plots"] = plots
        return DVC_HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)

    def _dvc_stage(self, stage: Stage, item_fields: Mapping[str, str], profile: str) -> dict[str, Any]:
        step = stage.build({**item_fields, "profile": profile})
        inputs = [p for v in step.inputs.values() for p in ((v,) if isinstance(v, str) else v)]

        def entry(out: Out) -> Any:
            return out.path if out.cache else {out.path: _Flow({"cache": False})}

        body: dict[str, Any] = {
            "cmd": step.cmd,
            "deps": inputs + list(self.code[stage.name]),
            "params": list(step.params),
        }
        outs = [entry(o) for o in step.outputs.values() if not o.metric]
        metrics = [entry(o) for o in step.outputs.values() if o.metric]
        if outs:
            body["outs"] = outs
        if metrics:
            body["metrics"] = metrics
        return body

    def _check_template(
        self, stage: Stage, body: dict[str, Any], jobs: list[Job], item_of: Callable[[Job], Mapping[str, str]]
    ) -> None:
        """The DVC template, expanded with each job's item and the profile, is that job."""
        for job in jobs:
            item = item_of(job)

            def expand(text: str, item: Mapping[str, str] = item) -> str:
                text = re.sub(r"\$\{item\.(\w+)\}", lambda m: item[m.group(1)], text)
                return text.replace("${profile}", self.params.profile)

            outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", []) + body.get("metrics", [])]
            got = (expand(body["cmd"]), [expand(d) for d in body["deps"]], [expand(p) for p in body["params"]],
                   [expand(o) for o in outs])  # fmt: skip
            want = (job.cmd, list(job.input_paths), list(job.params), [o.path for o in job.outputs.values()
                    if not o.metric] + [o.path for o in job.outputs.values() if o.metric])  # fmt: skip
            if got != want:
                raise PipelineError(
                    f"stage {stage.name}: its dvc.yaml template does not expand to job {job.name} "
                    "(a build function branches on a field's value)"
                )


DVC_HEADER = """\
# GENERATED from the pipeline description (src/stf/pipeline.py) by
#   stf dvc-yaml --params params.yaml --out dvc.yaml      (or: make dvc.yaml)
# Do not edit: change params.yaml or src/stf/pipeline.py and regenerate; tests/test_workflow.py
# fails when this file differs from what the description gives.
#
# The same stages as the Snakemake rules (workflow/rules/*.smk, which read the same description):
# names (`stage@key` per job), commands, deps (data, then the source files of the code each job
# runs), params keys and outputs. Snakemake runs the jobs (in parallel, on SLURM); DVC records
# lineage, params and experiments (`dvc repro`, `dvc exp run -S stf.lambdas.e=0.05`,
# `dvc params diff`, `dvc metrics show --md`). See docs/pipeline.md.
"""


class _Flow(dict):
    """A mapping written on one line in dvc.yaml."""


class _Dumper(yaml.SafeDumper):
    """Block style, but `_Flow` mappings in flow style; lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_Dumper.add_representer(_Flow, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m.items(), flow_style=True))
