"""Checkpoints: plain-data round trip, refusal of code-carrying data, atomic replacement."""

from __future__ import annotations

import collections
import fractions
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stf.training import checkpoint
from stf.training.checkpoint import (
    CheckpointError,
    default_workdir,
    file_digest,
    fingerprint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _state(value: float = 1.0) -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": 3,
        "history": [{"epoch": 1, "loss": value}],
        "meta": {"name": "x", "flag": True, "none": None, "shape": (2, 3)},
        "tensor": torch.full((2,), value),
    }


def test_round_trip_keeps_optimizer_and_scheduler_state(tmp_path: Path) -> None:
    state = _state()
    save_checkpoint(tmp_path / "a.pt", state)
    back = load_checkpoint(tmp_path / "a.pt")
    assert back["epoch"] == 3 and back["meta"]["name"] == "x" and back["meta"]["none"] is None
    for k, v in state["model"].items():
        assert torch.equal(back["model"][k], v)
    # the restored optimiser and scheduler continue exactly like the originals
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(back["model"])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    opt.load_state_dict(back["optimizer"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    sched.load_state_dict(back["scheduler"])
    assert isinstance(sched.milestones, collections.Counter)
    buf = back["optimizer"]["state"][0]["momentum_buffer"]
    assert torch.equal(buf, state["optimizer"]["state"][0]["momentum_buffer"])


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3), Path("x"), torch.nn.Linear(1, 1), {"nested": [1, {"deep": object()}]}, {1.5: "float key"}],
    ids=["numpy", "path", "module", "nested-object", "float-key"],
)
def test_refuses_non_plain_data_without_writing(tmp_path: Path, bad: object) -> None:
    target = tmp_path / "bad.pt"
    with pytest.raises(CheckpointError, match="bad.pt"):
        save_checkpoint(target, {"value": bad})
    assert not target.exists()


def test_refuses_to_load_code_carrying_pickles(tmp_path: Path) -> None:
    target = tmp_path / "evil.pt"
    torch.save({"obj": fractions.Fraction(1, 3)}, target)  # importable, but not plain data
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(target)


def test_truncated_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(good, _state())
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(cut)
    lst = tmp_path / "list.pt"
    torch.save([1, 2], lst)
    with pytest.raises(CheckpointError, match="must hold a dict"):
        load_checkpoint(lst)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    text = tmp_path / "text.pt"
    text.write_bytes(pickle.dumps("hello", protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(text)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "last.pt"
    save_checkpoint(target, _state(1.0))
    real_save = torch.save

    def disk_full(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:50])  # a partly written file, then the error
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(target, _state(2.0))
    monkeypatch.undo()
    back = load_checkpoint(target)
    assert back["history"][0]["loss"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left behind


def test_workdir_is_a_sibling_of_the_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "models" / "ntu60-xsub" / "joint" / "msg3d"
    work = default_workdir(out)
    assert work.parent == out.parent and work.name == "msg3d.work"
    assert out not in work.parents


def test_fingerprint_and_digest_follow_content(tmp_path: Path) -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    f = tmp_path / "data.bin"
    f.write_bytes(b"abc" * 1000)
    d1 = file_digest(f)
    f.write_bytes(b"abd" * 1000)
    assert file_digest(f) != d1


def test_large_files_are_digested_by_size_head_and_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "_DIGEST_FULL_LIMIT", 1000)
    monkeypatch.setattr(checkpoint, "_DIGEST_EDGE", 100)
    f = tmp_path / "big.bin"
    data = bytearray(5000)
    f.write_bytes(bytes(data))
    d0 = file_digest(f)
    data[-1] = 1  # tail changes
    f.write_bytes(bytes(data))
    assert file_digest(f) != d0
    f.write_bytes(bytes(5001))  # size changes
    assert file_digest(f) != d0


def test_rng_state_restores_the_random_stream(tmp_path: Path) -> None:
    torch.manual_seed(5)
    state = rng_state()
    save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    first = torch.rand(4)
    torch.manual_seed(99)
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(4), first)
