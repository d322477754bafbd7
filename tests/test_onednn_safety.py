"""The models never reach oneDNN's heap-corrupting AVX2 1x1 strided kernel (issue 8).

Each case runs benchmarks/onednn_probe.py in a fresh process with `ONEDNN_MAX_CPU_ISA=AVX2`
(the kernels an AVX2-only CPU such as AMD EPYC Zen 3 gets; on an AVX-512 CPU the cap selects
the same ones) and `MALLOC_CHECK_=3` (glibc aborts at the first inconsistent free): some tens of
forward + backward passes of a micro-width model, every parameter gradient compared with
torch's native kernels (`torch.backends.mkldnn` disabled). Before the fix in
`stf.models.blocks.PointwiseConv` every case aborted within 30 steps. So this test does not
depend on the CPU it runs on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[1] / "benchmarks" / "onednn_probe.py"


@pytest.mark.parametrize("stf", [False, True], ids=["msg3d", "stf"])
@pytest.mark.parametrize("dataset", ["ntu60", "kinetics"])  # C = 4 (x, y, z, visibility) and C = 3
def test_micro_models_are_safe_under_avx2_kernels(dataset: str, stf: bool) -> None:
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "MALLOC_CHECK_": "3", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-W", "ignore", str(PROBE), "--dataset", dataset, "--widths", "4", "8", "8",
           "--frames", "16", "--batch", "8", "--iterations", "30"] + (["--stf"] if stf else [])  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"probe exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["iterations"] == 30
    assert result["worst_relative_grad_diff"] < 1e-3
