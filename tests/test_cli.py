"""The `stf` console script: help, one-line errors, no prompts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stf.cli import build_parser, main

from conftest import REPO

SUBCOMMANDS = {
    "synth", "fetch", "raw", "preprocess", "split", "train", "finetune", "select-lr",
    "evaluate", "probe", "fuse", "flops", "report", "evidence-report", "schema",
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


def test_unknown_variant_is_rejected_before_work(tmp_path, capsys):
    code = main([
        "finetune", "--params", str(REPO / "params.yaml"), "--setting", "ntu60-xsub", "--stream", "joint",
        "--data", "d.parquet", "--split", "s.parquet", "--variant", "zz", "--init", "m", "--out", str(tmp_path / "o"),
    ])
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
    code = main([
        "finetune", "--params", str(REPO / "params.yaml"), "--setting", "ntu60-xsub", "--stream", "joint",
        "--data", "d.parquet", "--split", "s.parquet", "--init", "m", "--out", str(tmp_path / "o"), *extra,
    ])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_required_argument_exits_2_without_prompting():
    proc = subprocess.run(
        [sys.executable, "-m", "stf", "preprocess", "--dataset", "ntu60"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 2
    assert "required" in proc.stderr


def test_schema_subcommand_prints_json(capsys):
    assert main(["schema"]) == 0
    assert '"additionalProperties": false' in capsys.readouterr().out
