"""The pipeline description (stf.pipeline) and the two tools that read it.

Most checks are on the description itself: the paper's experiments are all there, every job
runs an `stf` command with a log, the graph is closed, every params key exists and is read,
code inputs follow the imports, tables are not cached. Then: the committed dvc.yaml is what
`stf dvc-yaml` writes; DVC's own reading of it and Snakemake's dry run list the description's
jobs, also after params.yaml gains a setting, a variant and a training fraction; the workflow
lints; a bad params.yaml gets stf's one-line message; after a change of stf.lambdas.e both tools
rerun only the e-variant STF models and what depends on them.

Tools run on a copy of the workflow files and the `stf` sources in tmp_path.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from helpers import REPO, copy_workflow
from stf.config import Params, load_params, parse_params
from stf.pipeline import Job, Pipeline, PipelineError

BIN = Path(sys.executable).parent
PARAMS_FILE = "params.yaml"


def text(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def run(root: Path, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / tool), *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{text(proc)[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO / PARAMS_FILE)


@pytest.fixture(scope="module")
def raw_params() -> dict:
    return yaml.safe_load((REPO / PARAMS_FILE).read_text())


@pytest.fixture(scope="module")
def pipeline(params: Params) -> Pipeline:
    return Pipeline(params)


def counts(pipeline: Pipeline) -> dict[str, int]:
    return dict(Counter(job.stage for job in pipeline.jobs()))


# --------------------------------------------------------------------------- the description


def test_committed_dvc_yaml_is_generated(pipeline: Pipeline) -> None:
    assert (REPO / "dvc.yaml").read_text() == pipeline.dvc_yaml(), "run: make dvc.yaml"


def test_pipeline_has_the_papers_experiments(pipeline: Pipeline, params: Params) -> None:
    subsets = len([p for p in params.split.fractions if p != 100])
    models = len(params.settings) * len(params.streams) + subsets
    assert counts(pipeline) == {
        "raw": 3, "preprocess": 3, "split": len(params.settings), "train": models,
        "finetune_dcg": models, "finetune_e": models, "finetune_m2": 1, "finetune_m3": 1, "finetune_m4": 1,
        "probe_msg3d": 1, "probe_stf": 1, "evaluate": models, "fuse": 2 * len(params.settings),
        "flops": 1, "report": 1,
    }  # fmt: skip
    assert pipeline.job("finetune_e", {"model": "ntu60-xsub/joint/p10"}).name == "finetune_e@ntu60-xsub-joint-p10"
    assert pipeline.job("fuse", {"setting": "kinetics", "method": "stf"}).name == "fuse@kinetics-stf"
    assert pipeline.job("report").name == "report"


def test_every_job_runs_stf_with_its_params_and_a_log(pipeline: Pipeline) -> None:
    logs = [job.log for job in pipeline.jobs()]
    assert len(set(logs)) == len(logs)
    for job in pipeline.jobs():
        assert job.cmd.startswith(f"stf {job.stage.split('_')[0]} --params params.yaml "), job.cmd
        assert job.log.startswith("logs/") and job.log.endswith(".log"), job.log
        # commands name their outputs (`stf report` its folder; preprocess puts the rejected list beside --out)
        assert any(path in job.cmd for path in job.output_paths) or job.stage == "report", job.name


def test_the_graph_is_closed(pipeline: Pipeline) -> None:
    """Every input is a source file or another job's output; every job leads to the report."""
    producers = pipeline.producers()
    for job in pipeline.jobs():
        for name, paths in job.inputs.items():
            for path in (paths,) if isinstance(paths, str) else paths:
                if name == "code":
                    assert (REPO / path).is_file(), path
                else:
                    assert path in producers, f"{job.name}: no job writes its input {path}"
    needed = {job.name for job in pipeline.upstream(pipeline.job("report").output_paths)}
    assert needed == {job.name for job in pipeline.jobs()}


def test_snakemake_patterns_match_the_jobs(pipeline: Pipeline) -> None:
    for name, stage in pipeline.stages.items():
        patterns = pipeline.outputs(name)
        for job in pipeline.jobs(name):
            assert {k: v.format(**job.wildcards) for k, v in patterns.items()} == {
                k: o.path for k, o in job.outputs.items()
            }
            assert pipeline.log(name).format(**job.wildcards) == job.log
            for w, regex in pipeline.wildcard_constraints(name).items():
                assert re.fullmatch(regex, job.wildcards[w])
        assert set(pipeline.wildcard_constraints(name)) == set(stage.wildcards)


def _lookup(raw: dict, key: str) -> object:
    node: object = raw
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"params.yaml has no key {key}"
        node = node[part]
    return node


def test_tracked_params_exist_in_every_profile(raw_params: dict) -> None:
    """Both tools fail on a tracked key that params.yaml lacks, so switching `profile` must not
    drop one (the stf CLI would fill in defaults; Snakemake and DVC do not)."""
    for name in raw_params["profiles"]:
        pipeline = Pipeline(parse_params({**raw_params, "profile": name}))
        for job in pipeline.jobs():
            for key in job.params:
                _lookup(raw_params, key)


def _leaves(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def test_every_param_is_read_by_some_stage(pipeline: Pipeline, raw_params: dict) -> None:
    """A params.yaml key no stage tracks would change results without rerunning anything."""
    keys = {k for job in pipeline.jobs() for k in job.params}
    active = f"profiles.{raw_params['profile']}."
    untracked = [
        leaf
        for leaf in _leaves(raw_params)
        if not any(leaf == k or leaf.startswith(k + ".") for k in keys)
        and leaf != "streams"  # which jobs exist, not what a job computes
        and not (leaf.startswith("profiles.") and not leaf.startswith(active))  # inactive profiles
    ]
    assert not untracked, f"params read by no stage: {untracked}"


def test_a_lambda_is_read_only_by_the_variants_that_use_it(pipeline: Pipeline, params: Params) -> None:
    for variant, losses in params.stf.variants.items():
        for job in pipeline.jobs(f"finetune_{variant}"):
            assert {k for k in job.params if k.startswith("stf.lambdas.")} == {f"stf.lambdas.{x}" for x in losses}
    other = [job for job in pipeline.jobs() if not job.stage.startswith("finetune_")]
    assert not [job.name for job in other if any(k.startswith("stf.lambdas") for k in job.params)]


def test_code_inputs_follow_the_imports(pipeline: Pipeline) -> None:
    code = pipeline.code
    assert {"src/stf/cli.py", "src/stf/config.py", "src/stf/data/synth/synthesize.py"} <= set(code["raw"])
    assert "src/stf/stages/train.py" not in code["raw"]
    # stf.stages.train imports stf.models.msg3d inside a function: still an input
    assert {"src/stf/stages/train.py", "src/stf/models/msg3d.py", "src/stf/method/losses.py"} <= set(code["finetune_e"])
    assert {"src/stf/report/build.py", "src/stf/report/paper.py", "src/stf/report/figures.py"} <= set(code["report"])
    assert "src/stf/stages/train.py" not in code["fuse"]
    # the description itself runs in no job: editing it reruns nothing
    assert not [stage for stage, files in code.items() if "src/stf/pipeline.py" in files]
    for job in pipeline.jobs():
        assert job.inputs["code"] == code[job.stage]


def test_models_cached_and_tables_not(pipeline: Pipeline) -> None:
    for job in pipeline.jobs():
        for out in job.outputs.values():
            assert out.cache == (job.stage not in ("report", "flops")), f"{job.name}: {out.path}"
    report = pipeline.job("report")
    assert [o.path for o in report.outputs.values() if o.metric] == ["results/headline"]
    assert {o.path for o in report.outputs.values() if o.plot} == {
        "results/plots/per_class.csv",
        "results/plots/fractions.csv",
    }


def test_a_dvc_template_must_expand_to_the_jobs(monkeypatch: pytest.MonkeyPatch, params: Params) -> None:
    """dvc.yaml's `do:` templates are the builders run on `${item.*}` fields; a builder that
    branches on a field's value would give DVC other jobs than Snakemake, and is refused."""
    import dataclasses

    import stf.pipeline as pl

    real = pl._stages

    def branching(p: Params) -> list:
        stages = real(p)
        i = next(i for i, s in enumerate(stages) if s.name == "split")
        build = stages[i].build

        def odd(f):  # the kinetics split gets an extra flag: not expressible as a template
            step = build(f)
            return dataclasses.replace(step, cmd=step.cmd + (" --strict" if f["setting"] == "kinetics" else ""))

        stages[i] = dataclasses.replace(stages[i], build=odd)
        return stages

    monkeypatch.setattr(pl, "_stages", branching)
    with pytest.raises(PipelineError, match="split: its dvc.yaml template does not expand to job split@kinetics"):
        Pipeline(params).dvc_yaml()


def test_unknown_jobs_are_named(pipeline: Pipeline) -> None:
    with pytest.raises(PipelineError, match=r"stage finetune_m2 has no job for \{'model': 'kinetics/bone'\}"):
        pipeline.job("finetune_m2", {"model": "kinetics/bone"})
    with pytest.raises(PipelineError, match="no stage 'finetune_zz'"):
        pipeline.jobs("finetune_zz")


# --------------------------------------------------------------------------- the tools


def dvc_stages(root: Path) -> dict[str, dict]:
    """DVC's own reading of root/dvc.yaml: per stage name its cmd, deps, params and outs."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    out = {}
    with Repo(str(root)) as repo:
        for st in repo.index.stages:
            out[st.name] = {
                "cmd": st.cmd,
                "deps": [d.def_path for d in st.deps if not isinstance(d, ParamsDependency)],
                "params": sorted(p for d in st.deps if isinstance(d, ParamsDependency) for p in d.params),
                "outs": sorted((o.def_path, o.use_cache, bool(o.metric)) for o in st.outs),
            }
    return out


def described(job: Job) -> dict:
    return {
        "cmd": job.cmd,
        "deps": list(job.input_paths),
        "params": sorted(job.params),
        "outs": sorted((o.path, o.cache, o.metric) for o in job.outputs.values()),
    }


def snakemake_job_counts(root: Path, *targets: str) -> dict[str, int]:
    """The `Job stats` table of a quiet dry run (`rule  count` lines), without `all` and `total`."""
    out = text(run(root, "snakemake", "--dry-run", "--quiet", "rules", "--cores", "1", *targets))
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in rows if rule not in ("all", "total")}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def test_dvc_reads_the_description(workflow: Path, pipeline: Pipeline) -> None:
    assert dvc_stages(workflow) == {job.name: described(job) for job in pipeline.jobs()}


def test_snakemake_runs_the_description(workflow: Path, pipeline: Pipeline) -> None:
    assert snakemake_job_counts(workflow, "--forceall") == counts(pipeline)


def test_new_setting_variant_and_fraction_need_only_params_yaml(tmp_path: Path, raw_params: dict) -> None:
    """Edit params.yaml, regenerate dvc.yaml with `stf dvc-yaml`: both tools list the new jobs."""
    root = copy_workflow(tmp_path / "wf")

    def write(params: dict) -> Pipeline:
        (root / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))
        run(root, "stf", "dvc-yaml", "--params", PARAMS_FILE, "--out", "dvc.yaml")
        pipeline = Pipeline(parse_params(params))
        names = run(root, "dvc", "stage", "list", "--name-only").stdout.split()
        assert sorted(names) == sorted(job.name for job in pipeline.jobs())
        assert snakemake_job_counts(root, "--forceall") == counts(pipeline)
        return pipeline

    before = dict(raw_params, settings={k: v for k, v in raw_params["settings"].items() if k != "ntu120-xset"})
    old = {job.name for job in write(before).jobs()}
    after = dict(raw_params)
    after["stf"] = dict(raw_params["stf"], variants={**raw_params["stf"]["variants"], "m9": ["e", "d"]})
    after["split"] = dict(raw_params["split"], fractions=[*raw_params["split"]["fractions"], 50])
    new = {job.name for job in write(after).jobs()} - old
    models = ["ntu120-xset-joint", "ntu120-xset-bone", "ntu60-xsub-joint-p50"]
    assert new == {
        "split@ntu120-xset", "fuse@ntu120-xset-msg3d", "fuse@ntu120-xset-stf", "finetune_m9@ntu60-xsub-joint",
        *(f"{stage}@{m}" for m in models for stage in ("train", "finetune_dcg", "finetune_e", "evaluate")),
    }  # fmt: skip


def test_lint_passes(workflow: Path) -> None:
    proc = run(workflow, "snakemake", "--lint", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_invalid_params_get_stfs_one_line_message(tmp_path: Path, raw_params: dict) -> None:
    root = copy_workflow(tmp_path / "wf")
    bad = dict(raw_params, stf=dict(raw_params["stf"], lambdas=dict(raw_params["stf"]["lambdas"], e=-1)))
    (root / PARAMS_FILE).write_text(yaml.safe_dump(bad, sort_keys=False))
    proc = run(root, "snakemake", "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    lines = text(proc).splitlines()
    assert "stf: error: params.yaml: invalid params: stf.lambdas.e: Input should be greater than or equal to 0" in lines
    assert len(lines) < 6 and "schema" not in text(proc).lower(), text(proc)


# --------------------------------------------------------------------------- rerun after a λ change

# the subgraph checked: NTU-60 x-sub both streams, a Table 4 subset, the ablation and the shift test
TARGETS = {
    "results/ntu60-xsub/msg3d": "fuse@ntu60-xsub-msg3d",
    "results/ntu60-xsub/stf": "fuse@ntu60-xsub-stf",
    "models/ntu60-xsub/joint/p10/stf": "evaluate@ntu60-xsub-joint-p10",
    "models/ntu60-xsub/joint/stf-m2": "finetune_m2@ntu60-xsub-joint",
    "models/ntu60-xsub/joint/stf-m4": "finetune_m4@ntu60-xsub-joint",
    "models/shift/msg3d": "probe_msg3d",
    "models/shift/stf": "probe_stf",
}


def fake_outputs(root: Path, jobs: list[Job]) -> None:
    """Stand-in outputs (a small file; a folder with one for directory outputs)."""
    for job in jobs:
        for out in job.outputs.values():
            path = root / out.path
            if out.directory:
                path.mkdir(parents=True, exist_ok=True)
                (path / "stand-in.txt").write_text(f"stand-in for {out.path}\n")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"stand-in for {out.path}\n")


def dvc_descendants(root: Path, names: set[str]) -> set[str]:
    """Stages downstream of `names` in DVC's pipeline graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        by_name = {st.name: st for st in graph.nodes}
        return {st.name for n in names for st in nx.ancestors(graph, by_name[n])}


@pytest.mark.slow  # runs both tools on 24 jobs: about 40 s on 2 cores, mostly DVC reading YAML
def test_lambda_e_change_reruns_only_e_models_and_their_dependents(tmp_path: Path, pipeline: Pipeline) -> None:
    root = copy_workflow(tmp_path / "wf")
    targets = list(TARGETS)
    upstream = pipeline.upstream(targets)
    assert {job.name for job in upstream} >= set(TARGETS.values()) and len(upstream) > 20
    fake_outputs(root, upstream)
    # both tools record the stand-ins as up to date (Snakemake metadata, dvc.lock)
    run(root, "snakemake", *targets, "--touch", "-F", "--cores", "1")  # targets first (pitfall 2)
    stage_targets = list(TARGETS.values())
    run(root, "dvc", "commit", "-f", "-q", "--with-deps", *stage_targets)
    assert "Nothing to be done" in text(run(root, "snakemake", "-n", "--cores", "1", *targets))
    assert json.loads(run(root, "dvc", "status", "--json", "--with-deps", *stage_targets).stdout) == {}

    params = yaml.safe_load((root / PARAMS_FILE).read_text())
    params["stf"]["lambdas"]["e"] = params["stf"]["lambdas"]["e"] * 5
    (root / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))

    # the subgraph has 3 finetune_e jobs (joint, bone, joint/p10); only the params trigger
    # reruns them, the rest follow from their new outputs
    rerun = {"finetune_e": 3, "evaluate": 3, "fuse": 1, "probe_stf": 1}
    assert snakemake_job_counts(root, *targets) == rerun
    assert snakemake_job_counts(root, *targets, "--rerun-triggers", "params") == rerun

    status = json.loads(run(root, "dvc", "status", "--json", "--with-deps", *stage_targets).stdout)
    assert set(status) == {f"finetune_e@ntu60-xsub-{m}" for m in ("joint", "bone", "joint-p10")}
    for entry in status.values():
        assert entry == [{"changed deps": {PARAMS_FILE: {"stf.lambdas.e": "modified"}}}]
    downstream = dvc_descendants(root, set(status)) - {"report"}  # report is outside the targets
    assert downstream == {
        "evaluate@ntu60-xsub-joint", "evaluate@ntu60-xsub-bone", "evaluate@ntu60-xsub-joint-p10",
        "fuse@ntu60-xsub-stf", "probe_stf",
    }  # fmt: skip
