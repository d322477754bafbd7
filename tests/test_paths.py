"""stf.paths: one naming rule for models, ensembles, fusions and probes per seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stf import paths


def test_seed_zero_and_full_data_keep_the_plain_paths() -> None:
    assert paths.model_dir("models", "ntu60-xsub", "joint", "msg3d") == Path("models/ntu60-xsub/joint/msg3d")
    assert paths.fused_dir("results", "kinetics", "stf") == Path("results/kinetics/stf")
    assert paths.shift_dir("models", "msg3d-ft-x2") == Path("models/shift/msg3d-ft-x2")


def test_other_seeds_and_subsets_add_levels() -> None:
    assert paths.model_dir("m", "ntu60-xsub", "joint", "stf-e", seed=2) == Path("m/ntu60-xsub/joint/s2/stf-e")
    assert paths.model_dir("m", "ntu60-xsub", "joint", "msg3d", seed=1, fraction=10) == Path(
        "m/ntu60-xsub/joint/p10/s1/msg3d"
    )
    assert paths.model_id("ntu60-xsub", "bone", 25, 0) == "ntu60-xsub/bone/p25"
    assert paths.fused_dir("r", "ntu120-xset", "stf-ce", seed=3) == Path("r/ntu120-xset/s3/stf-ce")
    assert paths.shift_dir("m", "stf", seed=1) == Path("m/shift/s1/stf")
    with pytest.raises(ValueError, match="seed"):
        paths.model_dir("m", "ntu60-xsub", "joint", "msg3d", seed=-1)


def test_control_names() -> None:
    assert paths.control_name("ft") == paths.FT == "msg3d-ft"
    assert paths.control_name("ft", 1) == "msg3d-ft-b"
    assert paths.control_name("stf-ce") == "stf-ce"
    assert paths.FT_X2_MEMBERS == ("msg3d-ft", "msg3d-ft-b")
    assert paths.variant_name("dcg") == "stf-dcg"
    assert list(paths.ROWS.values()) == ["MS-G3D", "STF", "MS-G3D+ft", "STF+ce", "MS-G3D+ft x2"]
    with pytest.raises(ValueError, match="members 0 and 1"):
        paths.control_name("ft", 2)
    with pytest.raises(ValueError, match="unknown control"):
        paths.control_name("x")
