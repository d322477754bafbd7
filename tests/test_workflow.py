"""Snakemake (Snakefile, workflow/rules/*.smk) and DVC (dvc.yaml) describe the same pipeline:
the same jobs, rule/stage names, commands, inputs, outputs and params keys; the workflow lints;
and after a change of stf.lambdas.e both tools rerun only the e-variant STF models and what
depends on them.

Everything runs on a copy of the workflow files and the `stf` sources in tmp_path (the tools
write .snakemake/, .dvc/tmp/ and, for the rerun test, stand-in outputs there).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow

BIN = Path(sys.executable).parent
PARAMS_FILE = "params.yaml"


def text(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def run(root: Path, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / tool), *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        pytest.fail(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{text(proc)[-5000:]}")
    return proc


# --------------------------------------------------------------------------- Snakemake side


@dataclass
class Job:
    rule: str
    fields: dict[str, str] = field(default_factory=dict)
    command: str = ""

    def paths(self, key: str) -> list[str]:
        value = self.fields.get(key, "")
        return [p.strip() for p in value.split(",") if p.strip()]


def parse_dry_run(text: str) -> list[Job]:
    """Jobs of `snakemake -n -p` output: `rule X:` blocks of `    key: value` lines and the
    `Shell command:` line that follows them."""
    jobs: list[Job] = []
    for line in text.splitlines():
        head = re.fullmatch(r"(?:local)?rule (\w+):", line)
        if head:
            jobs.append(Job(head.group(1)))
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            jobs[-1].fields[key] = value
        elif jobs and line.startswith("Shell command: "):
            jobs[-1].command = line.removeprefix("Shell command: ").strip()
    return jobs


def key_of(outputs) -> tuple[str, ...]:
    return tuple(sorted(outputs))


PARAMS_SCRIPT = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings
root = Path(sys.argv[1])
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile", workdir=root)
    wf.dag(DAGSettings(forceall=True))
    # private API of snakemake 9 (pinned <10): no public call returns the jobs' evaluated params
    workflow = wf._workflow
    workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
    workflow._build_dag()
    out = {"|".join(sorted(job.output)): dict(job.params.items()).get("tracked", {}) for job in workflow.dag.jobs}
print("TRACKED:" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def jobs(workflow: Path) -> dict[tuple[str, ...], Job]:
    proc = run(workflow, "snakemake", "-n", "-F", "-p", "--cores", "1")
    parsed = [j for j in parse_dry_run(text(proc)) if j.rule != "all"]
    assert parsed, text(proc)
    return {key_of(j.paths("output")): j for j in parsed}


@pytest.fixture(scope="module")
def tracked(workflow: Path) -> dict[tuple[str, ...], dict]:
    proc = subprocess.run([sys.executable, "-c", PARAMS_SCRIPT, str(workflow)], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("TRACKED:")), None)
    assert line, proc.stderr[-3000:]
    return {key_of(k.split("|")): v for k, v in json.loads(line.removeprefix("TRACKED:")).items() if k}


# --------------------------------------------------------------------------- DVC side


@dataclass
class Stage:
    name: str
    cmd: str
    deps: set[str]
    params: set[str]
    outs: dict[str, bool]  # path -> cached
    metrics: set[str]


@pytest.fixture(scope="module")
def stages(workflow: Path) -> dict[tuple[str, ...], Stage]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    out = {}
    with Repo(str(workflow)) as repo:
        for st in repo.index.stages:
            params = {p for d in st.deps if isinstance(d, ParamsDependency) for p in d.params}
            deps = {d.def_path for d in st.deps if not isinstance(d, ParamsDependency)}
            outs = {o.def_path: o.use_cache for o in st.outs}
            metrics = {o.def_path for o in st.outs if o.metric}
            out[key_of(outs)] = Stage(st.name, st.cmd, deps, params, outs, metrics)
    return out


def normalise(cmd: str) -> str:
    return " ".join(cmd.split())


# --------------------------------------------------------------------------- the tests


def test_same_jobs_and_rule_names(jobs: dict, stages: dict) -> None:
    only_snakemake = sorted(set(jobs) - set(stages))
    only_dvc = sorted(set(stages) - set(jobs))
    assert not only_snakemake and not only_dvc, f"outputs only in Snakemake: {only_snakemake}; only in DVC: {only_dvc}"
    for outs, job in jobs.items():
        assert stages[outs].name.split("@")[0] == job.rule, outs


def test_pipeline_has_the_papers_experiments(jobs: dict, workflow: Path) -> None:
    params = yaml.safe_load((workflow / PARAMS_FILE).read_text())
    subsets = len([p for p in params["split"]["fractions"] if p != 100])
    models = len(params["settings"]) * len(params["streams"]) + subsets
    counts: dict[str, int] = {}
    for job in jobs.values():
        counts[job.rule] = counts.get(job.rule, 0) + 1
    assert counts == {
        "raw": 3, "preprocess": 3, "split": len(params["settings"]), "train": models,
        "finetune_dcg": models, "finetune_e": models, "finetune_m2": 1, "finetune_m3": 1, "finetune_m4": 1,
        "evaluate": models, "fuse": 2 * len(params["settings"]), "probe_msg3d": 1, "probe_stf": 1,
        "flops": 1, "report": 1,
    }  # fmt: skip


def test_same_commands(jobs: dict, stages: dict) -> None:
    for outs, job in jobs.items():
        log = job.fields.get("log")
        assert log and log.startswith("logs/"), f"rule {job.rule} has no log under logs/"
        assert job.command.endswith(f" 2> {log}"), job.command
        command = job.command.removesuffix(f" 2> {log}")
        assert normalise(command) == normalise(stages[outs].cmd), f"{job.rule} {outs}"
        assert command.startswith("stf "), command


def test_inputs_are_the_dvc_deps(jobs: dict, stages: dict) -> None:
    for outs, job in jobs.items():
        inputs = set(job.paths("input"))
        deps = stages[outs].deps
        assert inputs == deps, (
            f"{stages[outs].name}: inputs only in Snakemake {sorted(inputs - deps)}; "
            f"deps only in dvc.yaml {sorted(deps - inputs)}"
        )


def test_params_keys_agree(tracked: dict, stages: dict) -> None:
    assert set(tracked) == set(stages)
    for outs, values in tracked.items():
        assert set(values) == stages[outs].params, (
            f"{stages[outs].name}: params only in Snakemake {sorted(set(values) - stages[outs].params)}; "
            f"only in dvc.yaml {sorted(stages[outs].params - set(values))}"
        )


def _leaves(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def test_every_param_is_read_by_some_stage(tracked: dict, workflow: Path) -> None:
    """A params.yaml key no stage tracks would change results without rerunning anything."""
    params = yaml.safe_load((workflow / PARAMS_FILE).read_text())
    keys = {k for values in tracked.values() for k in values}
    active = f"profiles.{params['profile']}."
    untracked = [
        leaf
        for leaf in _leaves(params)
        if not any(leaf == k or leaf.startswith(k + ".") for k in keys)
        and leaf != "streams"  # which jobs exist, not what a job computes
        and not (leaf.startswith("profiles.") and not leaf.startswith(active))  # inactive profiles
    ]
    assert not untracked, f"params read by no stage: {untracked}"


def test_every_profile_spells_out_the_tracked_keys(tracked: dict, workflow: Path) -> None:
    """Both tools fail on a tracked key that params.yaml lacks, so switching `profile` must not
    drop one (the stf CLI would fill in defaults; Snakemake and DVC do not)."""
    params = yaml.safe_load((workflow / PARAMS_FILE).read_text())
    active = f"profiles.{params['profile']}."
    suffixes = {k.removeprefix(active) for values in tracked.values() for k in values if k.startswith(active)}
    missing = []
    for name, profile in params["profiles"].items():
        for suffix in sorted(suffixes):
            node = profile
            for part in suffix.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                missing.append(f"profiles.{name}.{suffix}")
    assert not missing, f"params.yaml lacks keys that stages track: {missing}"


def test_code_inputs_follow_the_imports(jobs: dict) -> None:
    by_rule = {job.rule: set(job.paths("input")) for job in jobs.values()}
    assert {"src/stf/cli.py", "src/stf/config.py", "src/stf/data/synth/synthesize.py"} <= by_rule["raw"]
    assert "src/stf/stages/train.py" not in by_rule["raw"]
    # stf.stages.train imports stf.models.msg3d inside a function: still an input
    assert {"src/stf/stages/train.py", "src/stf/models/msg3d.py", "src/stf/method/losses.py"} <= by_rule["finetune_e"]
    assert {"src/stf/report/build.py", "src/stf/report/paper.py", "src/stf/report/figures.py"} <= by_rule["report"]
    assert "src/stf/stages/train.py" not in by_rule["fuse"]


def test_models_cached_and_tables_not(stages: dict) -> None:
    for stage in stages.values():
        for path, cached in stage.outs.items():
            is_table = stage.name in ("report", "flops")
            assert cached == (not is_table), f"{stage.name}: {path} cache={cached}"
    report = next(s for s in stages.values() if s.name == "report")
    assert report.metrics == {"results/metrics.json"}
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    assert {next(iter(p)) for p in plots} <= set(report.outs)


def test_lint_passes(workflow: Path) -> None:
    proc = run(workflow, "snakemake", "--lint", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_invalid_params_are_rejected_before_any_job(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "wf")
    params = yaml.safe_load((root / PARAMS_FILE).read_text())
    params["stf"]["lambdas"]["e"] = -1
    (root / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run(root, "snakemake", "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "Error validating config file" in text(proc)


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
        for out in job.paths("output"):
            path = root / out
            if "." in path.name:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"stand-in for {out}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "stand-in.txt").write_text(f"stand-in for {out}\n")


def dvc_descendants(root: Path, names: set[str]) -> set[str]:
    """Stages downstream of `names` in DVC's pipeline graph."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        by_name = {st.name: st for st in graph.nodes}
        return {st.name for n in names for st in nx.ancestors(graph, by_name[n])}


@pytest.mark.slow  # runs both tools on 24 jobs: about 40 s on 2 cores, mostly DVC reading YAML
def test_lambda_e_change_reruns_only_e_models_and_their_dependents(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "wf")
    targets = list(TARGETS)
    first = parse_dry_run(text(run(root, "snakemake", "-n", "-F", "--cores", "1", *targets)))
    assert len(first) > 20
    fake_outputs(root, first)
    # both tools record the stand-ins as up to date (Snakemake metadata, dvc.lock)
    run(root, "snakemake", *targets, "--touch", "-F", "--cores", "1")  # targets first (pitfall 2)
    stage_targets = list(TARGETS.values())
    run(root, "dvc", "commit", "-f", "-q", "--with-deps", *stage_targets)
    assert "Nothing to be done" in text(run(root, "snakemake", "-n", "--cores", "1", *targets))
    assert json.loads(run(root, "dvc", "status", "--json", "--with-deps", *stage_targets).stdout) == {}

    params = yaml.safe_load((root / PARAMS_FILE).read_text())
    params["stf"]["lambdas"]["e"] = params["stf"]["lambdas"]["e"] * 5
    (root / PARAMS_FILE).write_text(yaml.safe_dump(params, sort_keys=False))

    rerun = parse_dry_run(text(run(root, "snakemake", "-n", "--cores", "1", *targets)))
    changed = {j.paths("output")[0] for j in rerun if j.fields.get("reason", "").startswith("Params have changed")}
    assert changed == {f"models/ntu60-xsub/{m}/stf-e" for m in ("joint", "bone", "joint/p10")}
    assert sorted(j.rule for j in rerun) == sorted(["finetune_e"] * 3 + ["evaluate"] * 3 + ["fuse", "probe_stf"])
    assert {j.paths("output")[0] for j in rerun if j.rule == "fuse"} == {"results/ntu60-xsub/stf"}

    status = json.loads(run(root, "dvc", "status", "--json", "--with-deps", *stage_targets).stdout)
    assert set(status) == {f"finetune_e@ntu60-xsub-{m}" for m in ("joint", "bone", "joint-p10")}
    for entry in status.values():
        assert entry == [{"changed deps": {PARAMS_FILE: {"stf.lambdas.e": "modified"}}}]
    downstream = dvc_descendants(root, set(status)) - {"report"}  # report is outside the targets
    snakemake_downstream = {
        "evaluate@ntu60-xsub-joint", "evaluate@ntu60-xsub-bone", "evaluate@ntu60-xsub-joint-p10",
        "fuse@ntu60-xsub-stf", "probe_stf",
    }  # fmt: skip
    assert downstream == snakemake_downstream
    assert sum(j.rule != "finetune_e" for j in rerun) == len(snakemake_downstream)
