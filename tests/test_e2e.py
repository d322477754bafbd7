"""The real pipeline end to end on the micro profile: `snakemake results/report.md` in a copy of
the workflow, every report file with the right shape, then nothing left to do for Snakemake and,
after `dvc commit -f --no-relink`, for DVC. about 3.5 minutes on 2 idle cores (81 jobs, each a
Python process that imports torch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from helpers import REPO, copy_workflow, sh

PNG = b"\x89PNG\r\n\x1a\n"


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.slow
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

    # what `make run` does after Snakemake: record the outputs in dvc.lock without relinking
    # them (a relink rewrites the files, and Snakemake would then see newer inputs)
    sh(root, "dvc", "commit", "-f", "-q", "--no-relink")
    status = json.loads(sh(root, "dvc", "status", "--json").stdout)
    assert status == {}, status
    shown = json.loads(sh(root, "dvc", "metrics", "show", "--json").stdout)
    cells = next(iter(shown.values()))["data"]
    assert len(cells) == 15 and {"MS-G3D", "STF", "gain"} == set(next(iter(cells.values()))["data"])
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(sh(root, "snakemake", "-n", "results/report.md"))
