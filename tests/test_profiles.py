"""The Snakemake profiles: the SLURM profile stops before any job until its account is set."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import copy_workflow

BIN = Path(sys.executable).parent
SLURM = Path("workflow") / "profiles" / "slurm" / "config.yaml"


def dry_run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "snakemake"), "--profile", str(SLURM.parent), "-n", "results/report.md"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_slurm_placeholder_account_fails_the_dry_run_saying_to_set_it(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "wf", git=False)
    proc = dry_run(root)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "workflow/profiles/slurm/config.yaml: set default-resources slurm_account to your SLURM account" in out
    assert not re.search(r"^(local)?rule \w+:$", out, re.MULTILINE)  # no job was listed, let alone run


def test_slurm_profile_with_an_account_dry_runs(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "wf", git=False)
    profile = yaml.safe_load((root / SLURM).read_text())
    profile["default-resources"]["slurm_account"] = "proj123"
    (root / SLURM).write_text(yaml.safe_dump(profile, sort_keys=False))
    proc = dry_run(root)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "slurm_account=proj123" in proc.stdout
