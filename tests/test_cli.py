"""The `stf` console script: help, one-line errors, no prompts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO
from stf.cli import build_parser, main

SUBCOMMANDS = {
    "synth",
    "fetch",
    "raw",
    "preprocess",
    "import",
    "split",
    "train",
    "finetune",
    "select-lr",
    "evaluate",
    "probe",
    "fuse",
    "predict",
    "export",
    "flops",
    "report",
    "evidence-report",
    "schema",
    "params-set",
    "dvc-yaml",
}


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_every_subcommand_takes_params():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == SUBCOMMANDS
    for name, sp in sub.choices.items():
        assert any("--params" in a.option_strings for a in sp._actions), name


def test_bad_params_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("profile: tiny\nprofiles: {}\nsettings: {}\nbogus: 1\n")
    code = main(["synth", "--params", str(bad), "--dataset", "ntu60", "--out", str(tmp_path / "raw")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("stf: error:") and "bogus" in err[0]
    assert not (tmp_path / "raw").exists()


def finetune_cli(tmp_path, *extra: str) -> int:
    """`stf finetune` on the committed params with paths that do not exist, plus `extra`."""
    return main(
        [
            "finetune", "--params", str(REPO / "params.yaml"), "--setting", "ntu60-xsub", "--stream", "joint",
            "--data", "d.parquet", "--split", "s.parquet", "--init", "m", "--out", str(tmp_path / "o"), *extra,
        ]
    )  # fmt: skip


def test_unknown_variant_is_rejected_before_work(tmp_path, capsys):
    code = finetune_cli(tmp_path, "--variant", "zz")
    assert code == 2
    assert "zz" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "exactly one of --variant"),
        (["--variant", "dcg", "--control", "ft"], "exactly one of --variant"),
        (["--control", "stf-ce", "--member", "1"], "--member > 0"),
    ],
)
def test_finetune_needs_one_variant_or_control(tmp_path, capsys, extra, message):
    code = finetune_cli(tmp_path, *extra)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_required_argument_exits_2_without_prompting():
    proc = subprocess.run(
        [sys.executable, "-m", "stf", "preprocess", "--dataset", "ntu60"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "required" in proc.stderr


def test_schema_subcommand_prints_json(capsys):
    assert main(["schema"]) == 0
    assert '"additionalProperties": false' in capsys.readouterr().out


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


def test_every_option_has_help_and_shows_its_default():
    for name, sp in _subparsers().items():
        text = sp.format_help()
        for action in sp._actions:
            if action.dest == "help":
                continue
            assert action.help, f"stf {name} {action.option_strings or action.dest} has no help text"
            if action.option_strings and not action.required and action.default not in (None, False):
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)
    flops = " ".join(_subparsers()["flops"].format_help().split())
    for needle in ("frames T of the counted input (default: 300)", "persons M", "(default: 2)", "(default: 3)"):
        assert needle in flops
    report = " ".join(_subparsers()["report"].format_help().split())
    assert "root of model directories (default: models)" in report and "(default: results)" in report


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    import stf

    assert capsys.readouterr().out.strip() == f"stf {stf.__version__}"


def test_import_help_says_pickles_are_restricted(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "restricted unpickler" in out
    assert "only numpy arrays, numpy scalars and dtypes, and builtin containers" in out


def _params_with(tmp_path, **data):
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_missing_missing_list_names_the_parameter(tmp_path, fixtures_dir, capsys):
    params = _params_with(tmp_path, ntu60_missing=str(tmp_path / "nope.txt"))
    args = ["--dataset", "ntu60", "--out", str(tmp_path / "o.parquet")]
    code = main(["preprocess", "--params", str(params), "--raw", str(fixtures_dir / "ntu"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "params data.ntu60_missing" in err[0] and "nope.txt" in err[0] and "file not found" in err[0]
    code = main(["import", "--params", str(params), "--format", "pyskl", "--source", "x.pkl", *args,
                 "--missing-list", str(tmp_path / "other.txt")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--missing-list" in err and "other.txt" in err
    assert not (tmp_path / "o.parquet").exists()


def test_import_command_writes_interim_and_splits(tmp_path, fixtures_dir, capsys):
    import json

    import numpy as np

    from stf.data.formats import ntu as ntu_format
    from stf.data.formats.pyskl import write_pyskl
    from stf.data.preprocess import read_interim_meta

    anns = []
    for k, path in enumerate(sorted((fixtures_dir / "ntu").glob("*.skeleton"))[:2], start=1):
        xyz = ntu_format.read_skeleton(path).xyz
        for camera, performer in ((1, 1), (2, 3), (2, 1), (1, 3)):
            anns.append({"frame_dir": f"S001C{camera:03d}P{performer:03d}R001A{k:03d}", "label": k - 1,
                         "keypoint": xyz[:, :1].transpose(1, 0, 2, 3).astype(np.float16)})  # fmt: skip
    names = [a["frame_dir"] for a in anns]
    split = {"xsub_train": [n for n in names if "P001" in n], "xsub_val": [n for n in names if "P003" in n]}
    write_pyskl(tmp_path / "ntu60_3danno.pkl", split, anns)
    out = tmp_path / "interim" / "ntu60.parquet"
    code = main(["import", "--params", str(REPO / "params.yaml"), "--format", "pyskl", "--source",
                 str(tmp_path / "ntu60_3danno.pkl"), "--dataset", "ntu60", "--out", str(out),
                 "--splits-out", str(tmp_path / "splits")])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 8 and summary["splits"]["ntu60-xsub"]["disagree_with_id_rules"] == 0
    meta, info = read_interim_meta(out)
    assert {"sample_id", "label", "n_frames"} <= set(meta.columns) and len(meta) == 8
    assert (tmp_path / "interim" / "ntu60.rejected.csv").is_file()
    assert (tmp_path / "splits" / "ntu60-xsub.parquet").is_file()
