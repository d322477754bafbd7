# Shared by all the .smk files: params validation, the job lists, input functions, the params
# each job reads (`tracked`), and the source files each rule runs (`code`).
#
# dvc.yaml mirrors these rules stage for stage (same names, commands, outputs and params keys);
# tests/test_workflow.py compares the two.
import ast
import functools
from pathlib import Path

from snakemake.utils import validate


validate(config, "../schemas/params.schema.json", set_default=False)

PROFILE = config["profile"]
SETTINGS = list(config["settings"])
STREAMS = list(config["streams"])
# datasets in the order their settings appear (a dataset is prepared once for all its settings)
DATASETS = list(dict.fromkeys(spec["dataset"] for spec in config["settings"].values()))
ENSEMBLE = list(config["stf"]["ensemble"])  # the STF models averaged at test (dcg, e)
ABLATION = [v for v in config["stf"]["variants"] if v not in ENSEMBLE]  # Table 5: m2, m3, m4
METHODS = ["msg3d", "stf"]

# Tables 4 and 5 and the shift test use the paper's setting: NTU-60 x-sub, joint stream.
MAIN = "ntu60-xsub/joint"
SUBSETS = [p for p in config["split"]["fractions"] if p != 100]  # p = 100 is the main model
SHIFT_SETTING = "ntu120-xsub"  # linear-probe target (NTU-60 -> NTU-120)

# --------------------------------------------------------------------------- params each rule reads
# (`{profile}` is the active profile; the same lists, written out, are in dvc.yaml)

# the model spec (stf.models.msg3d.spec_for)
SPEC_KEYS = ["model", "preprocess.persons", "profiles.{profile}.widths"]
STF_SPEC_KEYS = ["stf.graph_scales", "stf.beta_hidden", "stf.alpha_hidden", "stf.alpha_time_bins"]
# the optimisation recipe and the runtime (stf.stages.runtime.recipe_from, configure_torch)
RECIPE_KEYS = [
    "train.momentum",
    "train.nesterov",
    "train.weight_decay",
    "train.lr_gamma",
    "train.seed",
    "train.amp",
    "train.device",
    "train.num_workers",
    "train.deterministic",
    "profiles.{profile}.batch_size",
    "profiles.{profile}.forward_batch_size",
    "profiles.{profile}.eval_batch_size",
    "profiles.{profile}.threads",
]

# CPU threads of a training job: the profile's torch threads (0 = torch's default: all cores;
# Snakemake then reserves 8)
THREADS = config["profiles"][PROFILE]["threads"] or 8

# A model id (wildcard `model`) is `{setting}/{stream}` or, for a Table 4 subset,
# `{setting}/{stream}/p{fraction}`; its directory is models/{model}/.


wildcard_constraints:
    dataset="|".join(DATASETS),
    setting="|".join(SETTINGS),
    method="|".join(METHODS),
    model="(?:{})/(?:{})(?:/p[0-9]+)?".format("|".join(SETTINGS), "|".join(STREAMS)),


def model_fields(model):
    """`ntu60-xsub/joint/p10` -> {setting, dataset, stream, fraction} (fraction 100 without /p)."""
    setting, stream, *rest = model.split("/")
    fraction = int(rest[0][1:]) if rest else 100
    return {
        "setting": setting,
        "dataset": config["settings"][setting]["dataset"],
        "stream": stream,
        "fraction": fraction,
    }


def job_fields(wildcards):
    """The fields a job's params keys and inputs are written in: its wildcards, plus the
    setting/dataset/stream/fraction behind `{model}` and the dataset behind `{setting}`."""
    fields = dict(wildcards.items())
    if "model" in fields:
        fields.update(model_fields(fields["model"]))
    elif "setting" in fields:
        fields["dataset"] = config["settings"][fields["setting"]]["dataset"]
    return fields


def interim(dataset):
    return f"data/interim/{dataset}.parquet"


def split_of(setting):
    return f"data/splits/{setting}.parquet"


def model_data(wildcards):
    """Inputs shared by the rules that train or test one model: its interim data and split."""
    fields = job_fields(wildcards)
    return {"data": interim(fields["dataset"]), "split": split_of(fields["setting"])}


def model_field(name):
    """A `params:` function giving one field of the job's model id (setting, stream, fraction)."""

    def value(wildcards):
        return job_fields(wildcards)[name]

    return value


def lookup(key):
    """The value at dotted `key` of params.yaml; a missing key is an error (DVC fails on it too)."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"params.yaml: no key {key!r} (a rule's params list names it)")
        node = node[part]
    return node


def tracked(*keys):
    """A `params:` function: {key: value} for the params.yaml keys a job reads.

    Keys may contain `{profile}` and the job's fields (`{dataset}`, `{setting}`, ...). Snakemake
    reruns a job when one of these values changes; dvc.yaml lists the same keys per stage.
    """

    def values(wildcards):
        fields = job_fields(wildcards)
        resolved = [key.format(profile=PROFILE, **fields) for key in keys]
        return {key: lookup(key) for key in resolved}

    return values


# --------------------------------------------------------------------------- code inputs
# Snakemake does not notice edits to the code a rule runs, so every rule lists the source files
# of the `stf` modules it imports as inputs: the closure of `stf.*` imports of the rule's entry
# modules, plus the CLI (its own top-level imports only: it imports each stage lazily).


def _module_file(name):
    base = Path("src", *name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _stf_imports(path, top_level_only):
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return frozenset()  # still an input; the job itself reports the error when it imports the file
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "stf")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "stf":
                found.add(node.module)
                # `from stf.data import dataset` imports the module stf.data.dataset
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return frozenset(found)


def code(*entries):
    """Source files (sorted, existing, non-empty) of `entries` and every `stf` module they import."""
    modules = {"stf.cli": True, **{e: False for e in entries}}  # name -> top-level imports only
    files, todo, seen = set(), list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        path = _module_file(name)
        if path is None:
            continue  # `from stf.x import name` where name is not a module
        if path.stat().st_size > 0:  # an empty __init__.py runs nothing (and DVC warns about it)
            files.add(path.as_posix())
            todo.extend(_stf_imports(path, modules.get(name, False)))
    return sorted(files)


def report_inputs(wildcards):
    """Every model and fused result the report reads, and the data its focus maps are drawn on."""
    figure_setting = config["report"]["per_class_setting"]
    main = [f"{s}/{j}" for s in SETTINGS for j in STREAMS]
    return {
        "models": [f"models/{m}/{method}" for m in main for method in METHODS],
        "fused": [f"results/{s}/{method}" for s in SETTINGS for method in METHODS],
        "subsets": [f"models/{MAIN}/p{p}/{method}" for p in SUBSETS for method in METHODS],
        "ablation": [f"models/{MAIN}/stf-{v}" for v in ABLATION],
        "members": [f"models/{figure_setting}/joint/stf-{v}" for v in ENSEMBLE],
        "shift": [f"models/shift/{method}" for method in METHODS],
        "flops": "results/flops.json",
        "data": interim(config["settings"][figure_setting]["dataset"]),
        "split": split_of(figure_setting),
        "code": code("stf.report.build"),
    }
