"""Training: batches, resume after a kill, NaN stop, and the baseline / fine-tune / probe entry points."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import KILLED_WRITER, REPO, ArrayPart, write_interim
from helpers import TINY_SPEC as TINY
from stf.config import Params, SettingSpec, SplitConfig, load_params
from stf.models.msg3d import MSG3D
from stf.stages.evaluate import load_model
from stf.stages.scores import read_scores, score_matrix
from stf.stages.train import InitModelError, finetune, linear_probe, train_baseline
from stf.training import checkpoint, loop
from stf.training.distributed import DistContext
from stf.training.inference import predict_logits
from stf.training.loop import CrossEntropyObjective, NonFiniteLossError, Recipe, epoch_batches, epoch_seed, fit


def tiny_data(n: int, seed: int) -> ArrayPart:
    """x (n, 2, 8, 5, 2): noise plus a class-specific joint that moves; y (n,) in {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.3, size=(n, 2, 8, 5, 2)).astype(np.float32)
    x[np.arange(n), 0, :, y + 1, 0] += np.sin(np.arange(8) / 2.0)[None, :]
    return ArrayPart(x, y)


def tiny_fit(workdir: Path, epochs: int = 3, resume: bool = False, hook=None, objective_cls=CrossEntropyObjective,
             fp: str = "fp", **recipe) -> tuple[loop.FitResult, MSG3D]:  # fmt: skip
    torch.manual_seed(0)
    model = MSG3D(TINY)
    r = Recipe(epochs=epochs, batch_size=8, forward_batch_size=4, lr=0.05, milestones=(2,), eval_batch_size=16)
    r = Recipe(**{**r.__dict__, **recipe})
    res = fit(objective_cls(model), tiny_data(20, 0), tiny_data(9, 1), r, DistContext(), workdir, fp,
              resume=resume, on_epoch_end=hook)  # fmt: skip
    return res, model


class Killed(Exception):
    pass


def test_epoch_batches_shuffle_per_epoch_and_never_drop_everything() -> None:
    b = epoch_batches(20, 8, seed=epoch_seed(0, 0))
    assert [len(x) for x in b] == [8, 8]  # drop_last
    assert len(set(np.concatenate(b))) == 16
    assert all(np.array_equal(p, q) for p, q in zip(b, epoch_batches(20, 8, seed=epoch_seed(0, 0)), strict=True))
    assert not np.array_equal(np.concatenate(b), np.concatenate(epoch_batches(20, 8, seed=epoch_seed(0, 1))))
    small = epoch_batches(5, 8, seed=1)
    assert len(small) == 1 and sorted(small[0]) == list(range(5))
    assert [len(x) for x in epoch_batches(20, 8, seed=1, drop_last=False)] == [8, 8, 4]


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    full, full_model = tiny_fit(tmp_path / "a")

    def kill_after_first(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        tiny_fit(tmp_path / "b", hook=kill_after_first)
    assert checkpoint.load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    resumed, model = tiny_fit(tmp_path / "b", resume=True)
    assert resumed.start_epoch == 1
    for k, v in full_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    np.testing.assert_array_equal(resumed.test_logits, full.test_logits)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in full.history]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history] == strip
    assert [r["lr"] for r in full.history] == pytest.approx([0.05, 0.05, 0.005])  # MultiStepLR at epoch 2


def test_resume_with_other_params_starts_fresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fresh, fresh_model = tiny_fit(tmp_path / "a", epochs=2)
    tiny_fit(tmp_path / "b", epochs=1, fp="old")
    with caplog.at_level(logging.WARNING):
        again, model = tiny_fit(tmp_path / "b", epochs=2, resume=True, fp="new")
    assert "fingerprint differs" in caplog.text and again.start_epoch == 0
    for k, v in fresh_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_finished_run_resumes_without_training(tmp_path: Path) -> None:
    done, _ = tiny_fit(tmp_path / "a", epochs=2)
    again, _ = tiny_fit(tmp_path / "a", epochs=2, resume=True)
    assert again.start_epoch == 2 and len(again.history) == 2
    np.testing.assert_array_equal(again.test_logits, done.test_logits)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    poison = {"on": False}

    class Poisoned(CrossEntropyObjective):
        def forward(self, x, y):
            loss, logits, parts = super().forward(x, y)
            return (loss * float("nan") if poison["on"] else loss), logits, parts

    def arm(epoch: int, row: dict) -> None:
        poison["on"] = True

    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1.*last.pt \(epoch 1\)"):
        tiny_fit(tmp_path, hook=arm, objective_cls=Poisoned)
    state = checkpoint.load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_failed_checkpoint_write_leaves_previous_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save, calls = torch.save, {"n": 0}

    def flaky(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", flaky)
    with pytest.raises(OSError):
        tiny_fit(tmp_path)
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_world_larger_than_a_batch_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    r = Recipe(epochs=1, batch_size=1, forward_batch_size=1, lr=0.1)
    with pytest.raises(ValueError, match="2 ranks"):
        fit(CrossEntropyObjective(MSG3D(TINY)), tiny_data(4, 0), tiny_data(3, 1), r,
            DistContext(world_size=2), tmp_path, "fp")  # fmt: skip


# --------------------------------------------------------------------------- entry points on files


def micro_params(**sizes) -> Params:
    p = load_params(REPO / "params.yaml")
    four = {
        "epochs": {"ntu60": 4, "ntu120": 4, "kinetics": 4},
        "lr_steps": {"ntu60": [3], "ntu120": [3], "kinetics": [3]},
    }
    prof = p.profiles["micro"].model_copy(update={**four, **sizes})
    return p.model_copy(update={"profile": "micro", "profiles": {**p.profiles, "micro": prof}})


def write_ntu_files(root: Path, per_class: int = 16, classes: int = 3, frames: int = 16) -> tuple[Path, Path]:
    """An interim parquet of NTU-shaped samples (class c moves joint 4c) + its x-sub split."""
    from stf.data.splits import make_split_file

    rng = np.random.default_rng(0)
    ids = sorted(f"S001C001P{p:03d}R{r:03d}A{a:03d}" for a in range(1, classes + 1)
                 for p in (1, 3) for r in range(1, per_class // 2 + 1))  # fmt: skip  # P001 train, P003 test
    x = rng.normal(0, 0.2, size=(len(ids), 4, frames, 25, 2)).astype(np.float32)  # (N, C, T, V, M)
    x[:, 3] = 1.0
    x[..., 1] = 0.0  # one person
    labels = [int(s[-3:]) - 1 for s in ids]
    for i, c in enumerate(labels):
        x[i, c % 3, :, 4 * c, 0] += np.sin(np.arange(frames) / 2.0)
    info = {"dataset": "ntu60", "layout": "ntu25", "shape": [4, frames, 25, 2], "num_class": classes,
            "channels": ["x", "y", "z", "visibility"]}  # fmt: skip
    rows = [{"sample_id": s, "label": c, "setup": 1, "camera": 1, "performer": int(s[9:12]),
             "replication": int(s[13:16]), "part": "", "n_frames": frames, "n_persons": 1}
            for s, c in zip(ids, labels, strict=True)]  # fmt: skip
    interim = write_interim(root / "ntu60.parquet", info, rows, x)
    split = root / "ntu60-xsub.parquet"
    make_split_file(interim, SettingSpec(dataset="ntu60", benchmark="xsub"), SplitConfig(fractions=[50, 100]), split)
    return interim, split


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train")
    data, split = write_ntu_files(root)
    params = micro_params()
    out = root / "models" / "msg3d"
    metrics = train_baseline(params, "ntu60-xsub", "joint", data, split, out)
    return {"root": root, "data": data, "split": split, "params": params, "out": out, "metrics": metrics}


def test_baseline_writes_a_complete_model_directory(baseline: dict) -> None:
    out, params = baseline["out"], baseline["params"]
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "metrics.json", "model.pt", "scores.parquet"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == baseline["metrics"]
    assert metrics["n"] == 24 and metrics["num_class"] == 3 and set(metrics["per_class"]) == {"0", "1", "2"}
    hist = pd.read_csv(out / "history.csv")
    # learnable toy data: the training loss falls and training accuracy leaves chance (33 %) behind
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0] and hist["train_top1"].iloc[-1] > 60.0
    assert list(hist.columns) == ["epoch", "lr", "train_loss", "train_top1", "test_top1", "seconds", "loss_ce"]
    assert hist["epoch"].tolist() == [1, 2, 3, 4] and hist["lr"].iloc[0] == params.train.lr["ntu60"]
    np.testing.assert_allclose(hist["loss_ce"], hist["train_loss"])
    assert hist["test_top1"].iloc[-1] == pytest.approx(metrics["top1"])
    # model.pt rebuilds the network that produced scores.parquet
    model, payload = load_model(out)
    assert payload["meta"]["variant"] == "msg3d" and payload["meta"]["setting"] == "ntu60-xsub"
    assert payload["meta"]["seed"] == params.sizes.seeds[0] == 0
    scores = read_scores(out)
    from stf.data.dataset import load_part

    test = load_part(baseline["data"], baseline["split"], "test", "joint")
    assert list(scores["sample_id"]) == list(test.ids)
    np.testing.assert_allclose(predict_logits(model, test, 32), score_matrix(scores, "logits"), rtol=1e-4, atol=1e-5)
    # dvclive logs live beside the output, never inside it; the finished run left no resume state,
    # so a forced rerun trains again instead of reloading the last epoch
    work = out.with_name("msg3d.work")
    assert (work / "dvclive" / "metrics.json").is_file() and not (work / "last.pt").exists()
    assert not list(baseline["root"].rglob("dvc.yaml"))


def test_killed_baseline_resumes_to_the_uninterrupted_model(baseline: dict, tmp_path: Path) -> None:
    out = tmp_path / "msg3d"

    def kill(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    args = (baseline["params"], "ntu60-xsub", "joint", baseline["data"], baseline["split"], out)
    with pytest.raises(KeyboardInterrupt):
        train_baseline(*args, on_epoch_end=kill)
    work = tmp_path / "msg3d.work"
    assert not (out / "model.pt").exists() and (work / "last.pt").is_file()
    # then a SIGKILL in the middle of the next last.pt write leaves its temporary file behind
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(work / "last.pt")], capture_output=True)
    assert killed.returncode == -signal.SIGKILL and len(list(work.glob(".last.pt.*.tmp"))) == 1
    metrics = train_baseline(*args, resume=True)
    assert not list(work.glob(".last.pt.*")) and not (work / "last.pt").exists()  # swept; finished
    assert metrics == baseline["metrics"]
    resumed, uninterrupted = load_model(out)[1]["state_dict"], load_model(baseline["out"])[1]["state_dict"]
    for k, v in uninterrupted.items():
        assert torch.equal(resumed[k], v), k
    cols = ["epoch", "lr", "train_loss", "train_top1", "test_top1"]
    history = pd.read_csv(out / "history.csv")[cols]
    pd.testing.assert_frame_equal(history, pd.read_csv(baseline["out"] / "history.csv")[cols])


def test_finetune_starts_from_the_baseline_and_logs_stf_terms(baseline: dict, tmp_path: Path) -> None:
    params = micro_params(finetune_epochs=1)
    out = tmp_path / "stf-dcg"
    metrics = finetune(params, "ntu60-xsub", "joint", "dcg", baseline["data"], baseline["split"], baseline["out"], out)
    hist = pd.read_csv(out / "history.csv")
    base = ["epoch", "lr", "train_loss", "train_top1", "test_top1", "seconds"]
    terms = ["loss_c", "loss_ce", "loss_d", "loss_gk", "weighted_c", "weighted_d", "weighted_gk"]
    grads = ["grad_norm_ce", "grad_ratio_c", "grad_ratio_d", "grad_ratio_gk"]
    assert list(hist.columns) == base + terms + grads and len(hist) == 1
    assert hist["lr"].iloc[0] == params.stf.lr
    lam = params.stf.lambdas
    row = hist.iloc[0]
    assert row["weighted_d"] == pytest.approx(lam.d * row["loss_d"]) and row["weighted_gk"] == pytest.approx(
        lam.gk * row["loss_gk"]
    )
    assert row["train_loss"] == pytest.approx(
        row["loss_ce"] + row["weighted_c"] + row["weighted_d"] + row["weighted_gk"]
    )
    assert row["grad_norm_ce"] > 0 and row["grad_ratio_d"] > 0 and row["grad_ratio_gk"] > 0
    model, payload = load_model(out)
    assert payload["meta"]["variant"] == "dcg" and payload["meta"]["losses"] == ["d", "c", "gk"]
    assert any(".stf." in k for k in payload["state_dict"])
    assert 0.0 <= metrics["top1"] <= 100.0
    # backbone weights came from the baseline: 1 epoch at lr 1e-3 keeps them close, a fresh init would not
    base = load_model(baseline["out"])[1]["state_dict"]
    w = "blocks.0.msgcn.conv.weight"
    assert (payload["state_dict"][w] - base[w]).abs().max() < 0.05 * base[w].abs().max()


def test_finetune_refuses_a_baseline_of_another_shape(baseline: dict, tmp_path: Path) -> None:
    wider = micro_params(widths=[4, 8, 16])
    with pytest.raises(InitModelError, match=r"model.pt.*widths"):
        finetune(wider, "ntu60-xsub", "joint", "e", baseline["data"], baseline["split"], baseline["out"], tmp_path)
    with pytest.raises(InitModelError, match="baseline model not found"):
        finetune(wider, "ntu60-xsub", "joint", "e", baseline["data"], baseline["split"], tmp_path, tmp_path / "x")


def test_linear_probe_trains_only_a_new_head(baseline: dict, tmp_path: Path) -> None:
    params = micro_params(probe_epochs=3)
    before = (baseline["out"] / "model.pt").read_bytes()
    out = tmp_path / "probe"
    metrics = linear_probe(params, "ntu60-xsub", "joint", baseline["data"], baseline["split"],
                           [baseline["out"], baseline["out"]], out)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "metrics.json", "scores.parquet"]
    assert not (tmp_path / "probe.work" / "last.pt").exists()  # finished: nothing left to resume
    assert (baseline["out"] / "model.pt").read_bytes() == before  # the source model is untouched
    hist = pd.read_csv(out / "history.csv")
    assert hist["epoch"].tolist() == [1, 2, 3] and (hist["lr"] == params.stf.probe_lr).all()
    assert metrics["n"] == 24 and metrics["top1"] == pytest.approx(hist["test_top1"].iloc[-1])
    probs = score_matrix(read_scores(out))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_torchrun_two_ranks_train_the_same_model(baseline: dict, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m stf train` (gloo, forward batch 4 per rank) equals one process
    with forward batch 4 and the same global batch 8."""
    import os
    import subprocess
    import sys

    import yaml

    params = micro_params(forward_batch_size=4)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(), sort_keys=False))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "stf", "train", "--params", str(params_file), "--setting", "ntu60-xsub", "--stream", "joint",
           "--data", str(baseline["data"]), "--split", str(baseline["split"]), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    single = train_baseline(params, "ntu60-xsub", "joint", baseline["data"], baseline["split"], tmp_path / "one")
    ddp_state = load_model(out)[1]["state_dict"]
    for k, v in load_model(tmp_path / "one")[1]["state_dict"].items():
        torch.testing.assert_close(ddp_state[k], v, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    assert json.loads((out / "metrics.json").read_text())["top1"] == pytest.approx(single["top1"])
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "metrics.json", "model.pt", "scores.parquet"]


def test_resume_fingerprint_follows_params_inputs_and_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stf.stages import runtime

    data = tmp_path / "data.parquet"
    data.write_bytes(b"one")
    p = micro_params()
    fp = runtime.run_fingerprint("baseline", p, {"data": data}, setting="ntu60-xsub")
    assert runtime.run_fingerprint("baseline", micro_params(threads=2), {"data": data}, setting="ntu60-xsub") == fp
    lr = {"ntu60": 0.1, "ntu120": 0.05, "kinetics": 0.05}
    other_lr = p.model_copy(update={"train": p.train.model_copy(update={"lr": lr})})
    assert runtime.run_fingerprint("baseline", other_lr, {"data": data}, setting="ntu60-xsub") != fp
    assert runtime.run_fingerprint("baseline", p, {"data": data}, setting="ntu60-xview") != fp
    data.write_bytes(b"two")
    assert runtime.run_fingerprint("baseline", p, {"data": data}, setting="ntu60-xsub") != fp
    data.write_bytes(b"one")
    monkeypatch.setattr(runtime, "code_digest", lambda: "edited")
    assert runtime.run_fingerprint("baseline", p, {"data": data}, setting="ntu60-xsub") != fp


# --------------------------------------------------------------------------- loss terms, controls, seeds


def test_gradient_probe_logs_term_ratios_without_changing_training(tmp_path: Path) -> None:
    from stf.config import Lambdas
    from stf.training.loop import STFObjective, gradient_norms

    def objective(lambdas: Lambdas):
        return lambda model: STFObjective(model, lambdas, ["d", "e"])

    lam = Lambdas(e=0.01, d=0.1)
    plain, m0 = tiny_fit(tmp_path / "a", epochs=2, objective_cls=objective(lam))
    probed, m1 = tiny_fit(tmp_path / "b", epochs=2, objective_cls=objective(lam), grad_probe_batches=2)
    for k, v in m0.state_dict().items():  # the probe's extra pass changes no weight and no BN statistic
        assert torch.equal(m1.state_dict()[k], v), k
    assert "grad_ratio_d" not in plain.history[0]
    row = probed.history[-1]
    assert row["grad_norm_ce"] > 0 and row["grad_ratio_d"] > 0 and row["grad_ratio_e"] > 0
    assert row["weighted_e"] == pytest.approx(lam.e * row["loss_e"])
    # a ratio is ‖∇ λ L‖ / ‖∇ L_ce‖: linear in λ
    data = tiny_data(6, 2)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    base = gradient_norms(objective(lam)(m1), x, y)
    double = gradient_norms(objective(Lambdas(e=0.02, d=0.3))(m1), x, y)
    assert double["grad_norm_ce"] == pytest.approx(base["grad_norm_ce"], rel=1e-6)
    assert double["grad_ratio_e"] == pytest.approx(2 * base["grad_ratio_e"], rel=1e-4)
    assert double["grad_ratio_d"] == pytest.approx(3 * base["grad_ratio_d"], rel=1e-4)


def test_controls_share_the_recipe_and_differ_in_network_and_loss(baseline: dict, tmp_path: Path) -> None:
    params = micro_params(finetune_epochs=1)
    args = (params, "ntu60-xsub", "joint", None, baseline["data"], baseline["split"], baseline["out"])
    ft = finetune(*args, tmp_path / "msg3d-ft", control="ft")
    ft_b = finetune(*args, tmp_path / "msg3d-ft-b", control="ft", member=1)
    ce = finetune(*args, tmp_path / "stf-ce", control="stf-ce")
    base_state = load_model(baseline["out"])[1]["state_dict"]
    states = {}
    for name in ("msg3d-ft", "msg3d-ft-b", "stf-ce"):
        _, payload = load_model(tmp_path / name)
        meta, states[name] = payload["meta"], payload["state_dict"]
        assert meta["losses"] == [] and meta["lr"] == params.stf.lr and meta["epochs"] == 1
        hist = pd.read_csv(tmp_path / name / "history.csv")
        assert list(hist.columns) == ["epoch", "lr", "train_loss", "train_top1", "test_top1", "seconds", "loss_ce"]
        assert hist["lr"].iloc[0] == params.stf.lr
    # MS-G3D+ft: the baseline's network, every weight of it, moved by the fine-tuning
    assert set(states["msg3d-ft"]) == set(base_state)
    assert not torch.equal(states["msg3d-ft"]["fc.weight"], base_state["fc.weight"])
    # the second member: same start, another shuffle order -> other weights
    assert load_model(tmp_path / "msg3d-ft-b")[1]["meta"]["run_seed"] != 0
    assert not torch.equal(states["msg3d-ft-b"]["fc.weight"], states["msg3d-ft"]["fc.weight"])
    # STF+ce: the STF network (new modules) trained on cross-entropy alone
    assert set(states["stf-ce"]) > set(base_state) and any(".stf." in k for k in states["stf-ce"])
    assert all(0.0 <= m["top1"] <= 100.0 for m in (ft, ft_b, ce))


def test_seeds_change_initialisation_and_shuffle(baseline: dict, tmp_path: Path) -> None:
    params = baseline["params"]
    train_baseline(params, "ntu60-xsub", "joint", baseline["data"], baseline["split"], tmp_path / "s1", seed=1)
    _, payload = load_model(tmp_path / "s1")
    assert payload["meta"]["seed"] == 1
    seed0 = load_model(baseline["out"])[1]["state_dict"]
    assert not torch.equal(payload["state_dict"]["fc.weight"], seed0["fc.weight"])


def test_select_lr_chooses_on_the_validation_part(
    baseline: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stf.data.splits import make_split_file
    from stf.stages import train as train_module
    from stf.stages.train import read_selection, select_lr

    split = tmp_path / "val-split.parquet"
    summary = make_split_file(baseline["data"], SettingSpec(dataset="ntu60", benchmark="xsub"),
                              SplitConfig(fractions=[100]), split, val_percent=25)  # fmt: skip
    assert summary["val"] == 6
    p = micro_params(finetune_epochs=1)
    p = p.model_copy(update={"stf": p.stf.model_copy(update={"lr_grid": [1e-3, 5e-2]})})
    parts: list[str] = []
    load = train_module.load_part

    def recording(data, split_, part, stream, fraction=100):
        parts.append(part)
        return load(data, split_, part, stream, fraction)

    monkeypatch.setattr(train_module, "load_part", recording)
    out = tmp_path / "select"
    result = select_lr(p, "ntu60-xsub", "joint", None, baseline["data"], split, baseline["out"], out, control="ft")
    assert "test" not in parts and parts.count("val") == 2
    assert set(result["val_top1"]) == {"0.001", "0.05"} and result["n_val"] == 6
    best = max(result["val_top1"].values())
    assert result["val_top1"][f"{result['lr']:g}"] == best
    assert read_selection(out) == result["lr"] == json.loads((out / "selection.json").read_text())["lr"]
    assert json.loads((out / "lr0.05" / "metrics.json").read_text())["n"] == 6
    with pytest.raises(ValueError, match="no val samples"):
        finetune(p, "ntu60-xsub", "joint", "e", baseline["data"], baseline["split"], baseline["out"],
                 tmp_path / "x", eval_part="val")  # fmt: skip
