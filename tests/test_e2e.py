"""The real pipeline end to end on the micro profile: `snakemake` (rule all: the report and the
main cell's evidence) in a copy of the workflow, every report file with the right shape, then
nothing left to do for Snakemake and, after `make sync` (workflow/sync.sh), for DVC; then a
change of one variant's losses run by `dvc repro`, and after `make sync` again nothing to do for
either tool.

To fit the suite's budget the copy keeps the two settings the pipeline cannot do without
(NTU-60 x-sub for Tables 4 and 5, NTU-120 x-sub for the shift test) and both streams: every stage
of the description runs (training, the five fine-tunings, the controls, all probes, both
ensembles, fusion, report, evidence), on 6 Table 2 cells instead of 15 and with one Table 4
subset (p10) instead of three. The full 5-setting
graph is checked by tests/test_workflow.py (description, dvc.yaml, Snakemake's dry run)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, copy_workflow, sh, tool_env

PNG = b"\x89PNG\r\n\x1a\n"


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the longest test (64 Snakemake jobs, then 3 DVC stages)
def test_micro_pipeline_builds_the_report_and_leaves_nothing_to_do(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "run", git=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "micro"
    settings = ["ntu60-xsub", "ntu120-xsub"]
    params["settings"] = {s: params["settings"][s] for s in settings}
    params["report"]["per_class_setting"] = "ntu60-xsub"
    params["split"]["fractions"] = fractions = [10, 100]  # Table 4 with one subset: 4 jobs instead of 12
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # dvc.yaml of these params: the one `make dvc.yaml` writes
    sh(root, "stf", "dvc-yaml", "--params", "params.yaml", "--out", "dvc.yaml")
    # no git repo here: dvclive (inside `stf train`) fails in a git repo without commits; DVC runs without SCM
    sh(root, "dvc", "config", "core.no_scm", "true")

    sh(root, "snakemake", "--cores", "2")

    out = root / "results"
    cells = [f"{s}:{c}" for s in settings for c in ("J", "B", "J+B")]
    t2 = rows(out / "table2.csv")
    assert t2[0] == ["method", *cells]
    assert [r[0] for r in t2[1:]] == ["MS-G3D", "STF"]
    assert all(0.0 <= float(v) <= 100.0 for r in t2[1:] for v in r[1:])
    controls = rows(out / "table2_controls.csv")
    assert controls[0] == ["method", *cells] and [r[0] for r in controls[1:]] == ["MS-G3D+ft", "STF+ce", "MS-G3D+ft x2"]
    assert all(0.0 <= float(v) <= 100.0 for r in controls[1:] for v in r[1:])
    assert len(rows(out / "comparisons.csv")) > 1 and len(rows(out / "parameters.csv")) > 10
    t3 = rows(out / "table3.csv")
    assert [r[0] for r in t3] == ["quantity", "gain", "gain_ratio", "gain_over_strongest_control"]
    assert len(t3[1]) == 1 + len(cells)
    assert rows(out / "table4.csv")[0] == ["method", *(f"p{p}" for p in fractions)]
    assert [r[0] for r in rows(out / "table5.csv")[1:]][:5] == ["M1", "M2", "M3", "M4", "M5"]
    assert [r[0] for r in rows(out / "shift.csv")[1:]][:2] == ["MS-G3D", "STF"]
    assert [r[0] for r in rows(out / "flops.csv")[1:]] == ["MS-G3D", "STF", "MS-G3D (C = 3)"]
    per_class = rows(out / "plots" / "per_class.csv")
    assert per_class[0] == ["label", "name", "msg3d", "stf", "diff"] and len(per_class) > 1
    assert len(rows(out / "plots" / "fractions.csv")) == 1 + len(fractions)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["top1"]) == {"msg3d", "stf", "msg3d-ft", "stf-ce", "msg3d-ft-x2"}
    assert metrics["profile"] == "micro"
    headline = sorted(p.name for p in (out / "headline").glob("*.json"))
    assert headline == sorted(f"{c.replace(':', '-')}.json" for c in t2[0][1:])
    focus = sorted((out / "figures").glob("focus_*.png"))
    assert len(focus) == params["report"]["focus_samples"]
    for png in [out / "figures" / f for f in ("per_class.png", "fractions.png", "curves.png")] + focus:
        assert png.read_bytes()[:8] == PNG, png
    md = (out / "report.md").read_text()
    assert "Profile **micro**" in md and "91.34" in md
    evidence = json.loads((out / "main-cell" / "summary.json").read_text())
    rows_ = ["MS-G3D", "STF", "MS-G3D+ft", "STF+ce", "MS-G3D+ft x2"]
    assert evidence["cell"] == "ntu60-xsub:J" and set(evidence["top1"]) == set(rows_)
    assert set(evidence["stf_vs"]) == set(rows_) - {"STF"}

    # what `make run` does after Snakemake: `make sync` (workflow/sync.sh) sees that Snakemake ran
    # last and records the outputs in dvc.lock without relinking them
    assert "Snakemake ran last" in sync(root).stdout
    assert_nothing_to_do(root)

    # DVC runs last: a change of one variant's loss set (m2, a Table 5 model), reproduced by
    # `dvc repro`; then `make sync` again. (Which jobs a λ change reruns is checked on the full
    # graph by tests/test_workflow.py; here one model, the report and the evidence rerun.)
    params["stf"]["variants"]["m2"] = ["c", "gk"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    refused = sync(root, check=False)  # neither tool has run since the edit: nothing to record yet
    assert refused.returncode == 1 and "both Snakemake and DVC have jobs to run" in refused.stderr
    before = (root / "models/ntu60-xsub/joint/stf-m2/model.pt").read_bytes()
    sh(root, "dvc", "repro", "-q")
    assert (root / "models/ntu60-xsub/joint/stf-m2/model.pt").read_bytes() != before  # retrained with c + gk
    assert "DVC ran last" in sync(root).stdout
    assert_nothing_to_do(root)
    # the directories Snakemake made and those DVC made hash alike (no .snakemake_timestamp counted)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    model_dirs = {o["path"]: o["nfiles"] for st in lock["stages"].values() for o in st.get("outs", [])
                  if o["path"].startswith("models/ntu60-xsub/joint/")}  # fmt: skip
    assert model_dirs["models/ntu60-xsub/joint/stf-m2"] == model_dirs["models/ntu60-xsub/joint/stf-m4"] == 4


def sync(root: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`make sync` in the copy: workflow/sync.sh with the venv's tools on PATH."""
    proc = subprocess.run(["sh", "workflow/sync.sh"], cwd=root, env=tool_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"workflow/sync.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def assert_nothing_to_do(root: Path) -> None:
    status = json.loads(sh(root, "dvc", "status", "--json").stdout)
    assert status == {}, status
    shown = json.loads(sh(root, "dvc", "metrics", "show", "--json").stdout)
    cells = next(iter(shown.values()))["data"]
    assert len(cells) == 6 and {"MS-G3D", "STF", "gain"} == set(next(iter(cells.values()))["data"])
    dry = sh(root, "snakemake", "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
