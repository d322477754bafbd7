"""The real pipeline end to end on the micro profile: `snakemake results/report.md` in a copy of
the workflow, every report file with the right shape, then nothing left to do for Snakemake and,
after `make sync` (workflow/sync.sh), for DVC; then a λ change run by `dvc repro`, and after
`make sync` again nothing to do for either tool. About 3.5 minutes on 2 idle cores for the 81
Snakemake jobs (each a Python process that imports torch), plus the 33 stages DVC reruns."""

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
@pytest.mark.timeout(1800)  # the longest test (81 Snakemake jobs, then 33 DVC stages): > 900 s under load
def test_micro_pipeline_builds_the_report_and_leaves_nothing_to_do(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "run", git=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "micro"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # no git repo here: dvclive (inside `stf train`) fails in a git repo without commits; DVC runs without SCM
    sh(root, "dvc", "config", "core.no_scm", "true")

    sh(root, "snakemake", "results/report.md", "--cores", "2")

    out = root / "results"
    settings = ["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "kinetics"]
    t2 = rows(out / "table2.csv")
    assert t2[0] == ["method"] + [f"{s}:{c}" for s in settings for c in ("J", "B", "J+B")]
    assert [r[0] for r in t2[1:]] == ["MS-G3D", "STF"]
    assert all(0.0 <= float(v) <= 100.0 for r in t2[1:] for v in r[1:])
    assert rows(out / "table2_top5.csv")[0] == ["method", "kinetics:J", "kinetics:B", "kinetics:J+B"]
    t3 = rows(out / "table3.csv")
    assert [r[0] for r in t3] == ["quantity", "gain", "gain_ratio"] and len(t3[1]) == 16
    assert rows(out / "table4.csv")[0] == ["method", "p10", "p20", "p25", "p100"]
    assert [r[0] for r in rows(out / "table5.csv")[1:]] == ["M1", "M2", "M3", "M4", "M5"]
    assert [r[0] for r in rows(out / "shift.csv")[1:]] == ["MS-G3D", "STF", "gain"]
    assert [r[0] for r in rows(out / "flops.csv")[1:]] == ["MS-G3D", "STF"]
    per_class = rows(out / "plots" / "per_class.csv")
    assert per_class[0] == ["label", "name", "msg3d", "stf", "diff"] and len(per_class) > 1
    assert len(rows(out / "plots" / "fractions.csv")) == 5
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["top1"]) == {"msg3d", "stf"} and metrics["profile"] == "micro"
    headline = sorted(p.name for p in (out / "headline").iterdir())
    assert headline == sorted(f"{c.replace(':', '-')}.json" for c in t2[0][1:])
    focus = sorted((out / "figures").glob("focus_*.png"))
    assert len(focus) == params["report"]["focus_samples"]
    for png in [out / "figures" / f for f in ("per_class.png", "fractions.png", "curves.png")] + focus:
        assert png.read_bytes()[:8] == PNG, png
    md = (out / "report.md").read_text()
    assert "Profile **micro**" in md and "91.34" in md

    # what `make run` does after Snakemake: `make sync` (workflow/sync.sh) sees that Snakemake ran
    # last and records the outputs in dvc.lock without relinking them
    assert "Snakemake ran last" in sync(root).stdout
    assert_nothing_to_do(root)

    # DVC runs last: a λ change reproduced by `dvc repro`; then `make sync` again
    params["stf"]["lambdas"]["e"] = 0.05
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    refused = sync(root, check=False)  # neither tool has run since the edit: nothing to record yet
    assert refused.returncode == 1 and "both Snakemake and DVC have jobs to run" in refused.stderr
    before = (root / "models/ntu60-xsub/joint/stf-e/model.pt").read_bytes()
    sh(root, "dvc", "repro", "-q")
    assert (root / "models/ntu60-xsub/joint/stf-e/model.pt").read_bytes() != before  # retrained with the new λ
    assert "DVC ran last" in sync(root).stdout
    assert_nothing_to_do(root)
    # the directories Snakemake made and those DVC made hash alike (no .snakemake_timestamp counted)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    model_dirs = {o["path"]: o["nfiles"] for st in lock["stages"].values() for o in st.get("outs", [])
                  if o["path"].startswith("models/ntu60-xsub/joint/")}  # fmt: skip
    assert model_dirs["models/ntu60-xsub/joint/stf-e"] == model_dirs["models/ntu60-xsub/joint/stf-dcg"] == 4


def sync(root: Path, check: bool = True) -> subprocess.CompletedProcess:
    """`make sync` in the copy: workflow/sync.sh with the venv's tools on PATH."""
    proc = subprocess.run(["sh", "workflow/sync.sh", "results/report.md"], cwd=root, env=tool_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"workflow/sync.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def assert_nothing_to_do(root: Path) -> None:
    status = json.loads(sh(root, "dvc", "status", "--json").stdout)
    assert status == {}, status
    shown = json.loads(sh(root, "dvc", "metrics", "show", "--json").stdout)
    cells = next(iter(shown.values()))["data"]
    assert len(cells) == 15 and {"MS-G3D", "STF", "gain"} == set(next(iter(cells.values()))["data"])
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(sh(root, "snakemake", "-n", "results/report.md"))
    dry = sh(root, "snakemake", "-n", "results/report.md")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
