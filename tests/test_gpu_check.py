"""The GPU check script (`benchmarks/gpu_check.sh`) runs end to end in its CPU dry mode:
every step with tiny sizes, the short paper epoch through `stf train`, a complete JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_measurement(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--skip-tests", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["device"] == "cpu"
    for model in ("msg3d", "stf-dcg", "stf-e"):
        for precision in ("fp32", "bf16"):
            run = result["train"][model][precision]
            assert run["samples_per_s"] > 0 and run["loss_finite"], (model, precision)
    assert set(result["eval"]) == {"fp32", "bf16"} and all(r["samples_per_s"] > 0 for r in result["eval"].values())
    epoch = result["paper_epoch"]
    assert epoch["rc"] == 0 and epoch["history_row"]["epoch"] == 1 and epoch["train_samples"] == 16
