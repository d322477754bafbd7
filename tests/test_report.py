"""build_report on fabricated metrics files: the tables' exact layout and numbers, the paper's
numbers in report.md, the figures, and errors that name the bad file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stf.config import SETTINGS, Params, parse_params
from stf.report import paper
from stf.report.build import build_report
from stf.report.figures import focus_figure, focus_maps, pick_samples
from stf.report.tables import ReportInputError, read_metrics

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
COLUMNS = [f"{s}:{c}" for s in SETTINGS for c in ("J", "B", "J+B")]


def make_params(seeds: list[int] | None = None, **report) -> Params:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "micro"
    raw["report"] = {**raw["report"], "focus_samples": 0, "resamples": 199, **report}
    if seeds is not None:
        raw["profiles"]["micro"]["seeds"] = seeds
    return parse_params(raw)


N_TEST = 400  # fabricated test samples per cell: accuracies in steps of 0.25 %
ORDER = np.random.default_rng(7).permutation(N_TEST)  # one difficulty order: errors are nested across rows


def acc_msg3d(i: int) -> float:
    return 40.0 + 1.25 * i


def acc_stf(i: int) -> float:
    return acc_msg3d(i) + (i % 3) - 0.5  # gains -0.5, 0.5, 1.5, ...


CONTROL_OFFSET = {"msg3d-ft": 0.25, "stf-ce": 0.5, "msg3d-ft-x2": 0.75}  # over MS-G3D, every cell


def acc_of(method: str, i: int) -> float:
    return acc_stf(i) if method == "stf" else acc_msg3d(i) + CONTROL_OFFSET.get(method, 0.0)


def write_scores_for(directory: Path, top1: float, num_class: int = 60) -> None:
    """scores.parquet of N_TEST samples whose top-1 is exactly `top1` (the hardest samples wrong)."""
    from stf.stages.scores import write_scores

    k = round(top1 * N_TEST / 100)
    labels = np.arange(N_TEST) % num_class
    correct = np.empty(N_TEST, bool)
    correct[ORDER] = np.arange(N_TEST) < k
    pred = np.where(correct, labels, (labels + 1) % num_class)
    probs = np.full((N_TEST, num_class), 0.1 / (num_class - 1), np.float32)
    probs[np.arange(N_TEST), pred] = 0.9
    write_scores(directory, [f"S{i:05d}" for i in range(N_TEST)], labels, np.log(probs), probs)


def write_metrics(directory: Path, top1: float, top5: float | None = None, per_class: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    per_class = per_class if per_class is not None else {"0": top1, "1": min(100.0, top1 + 10)}
    body = {"top1": top1, "top5": top5 if top5 is not None else min(100.0, top1 + 20), "n": N_TEST,
            "num_class": 60, "per_class": per_class}  # fmt: skip
    (directory / "metrics.json").write_text(json.dumps(body))
    write_scores_for(directory, top1)


def write_history(directory: Path, epochs: int, start: float, stf_terms: bool = False) -> None:
    rows = [
        "epoch,lr,train_loss,train_top1,test_top1,seconds" + (",loss_ce,weighted_d,grad_ratio_d" if stf_terms else "")
    ]
    for e in range(1, epochs + 1):
        extra = f",{1.0 / e:.3f},{-0.01 * e:.3f},{0.1 * e:.3f}" if stf_terms else ""
        rows.append(f"{e},0.05,{2.0 / e:.3f},{start + e},{start + e / 2},1.0" + extra)
    (directory / "history.csv").write_text("\n".join(rows) + "\n")


def seed_dir(base: Path, seed: int) -> Path:
    """`stf.paths`: seed 0 has no level, seed s adds `s{s}` before the method directory."""
    return base if seed == 0 else base.parent / f"s{seed}" / base.name


def fabricate(root: Path, seeds: tuple[int, ...] = (0,), seed_step: float = 0.0) -> Path:
    """A fabricated pipeline run: every metrics.json, scores.parquet, history.csv and flops.json the
    report reads, for each seed (seed s adds s * seed_step to every accuracy)."""
    models, results = root / "models", root / "results"
    for seed in seeds:
        up = seed * seed_step

        def put(directory: Path, top1: float, seed: int = seed, up: float = up, **kw) -> None:
            write_metrics(seed_dir(directory, seed), top1 + up, **kw)

        for i, col in enumerate(COLUMNS):
            setting, cell = col.split(":")
            for method in ("msg3d", "stf", "msg3d-ft", "stf-ce", "msg3d-ft-x2"):
                acc = acc_of(method, i)
                if cell == "J+B":
                    directory = results / setting / method
                else:
                    directory = models / setting / ("joint" if cell == "J" else "bone") / method
                per_class = {"0": 50.0, "1": 60.0, "2": 70.0} if method != "stf" else {"0": 55.0, "1": 58.0, "2": 70.0}
                put(directory, acc, top5=acc + 30 if setting == "kinetics" else None, per_class=per_class)
        main = models / "ntu60-xsub" / "joint"
        for p, (base, stf) in {10: (30.0, 31.0), 20: (35.0, 37.5), 25: (38.0, 38.25)}.items():
            put(main / f"p{p}" / "msg3d", base)
            put(main / f"p{p}" / "stf", stf)
        for v, acc in (("m2", 41.0), ("m3", 42.0), ("m4", 43.5)):
            put(main / f"stf-{v}", acc)
        for v in ("dcg", "e"):
            put(main / f"stf-{v}", 44.0)
            write_history(seed_dir(main / f"stf-{v}", seed), 3, 40.0, stf_terms=True)
        write_history(seed_dir(main / "msg3d", seed), 5, 20.0)
        for method, (top1, top5) in {"msg3d": (60.0, 80.0), "stf": (62.25, 81.0), "msg3d-ft": (60.5, 80.0),
                                     "stf-ce": (61.0, 80.0), "msg3d-ft-x2": (61.5, 80.5)}.items():  # fmt: skip
            put(models / "shift" / method, top1, top5=top5)
    results.mkdir(parents=True, exist_ok=True)
    (results / "flops.json").write_text(json.dumps({
        "msg3d": {"params": 3197095, "flops": 65.88e9}, "stf": {"params": 3500000, "flops": 72.468e9},
        "msg3d_c3": {"params": 3194595, "flops": 65.54e9},
    }))  # fmt: skip
    return root


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    return fabricate(tmp_path)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_table2_header_and_rows_are_exact(run: Path) -> None:
    build_report(make_params(), run / "models", run / "results", run / "out")
    text = (run / "out" / "table2.csv").read_text()
    header = text.splitlines()[0]
    assert header == (
        "method,ntu60-xsub:J,ntu60-xsub:B,ntu60-xsub:J+B,ntu60-xview:J,ntu60-xview:B,ntu60-xview:J+B,"
        "ntu120-xsub:J,ntu120-xsub:B,ntu120-xsub:J+B,ntu120-xset:J,ntu120-xset:B,ntu120-xset:J+B,"
        "kinetics:J,kinetics:B,kinetics:J+B"
    )
    rows = read_csv(run / "out" / "table2.csv")[1:]
    assert rows[0] == ["MS-G3D"] + [f"{acc_msg3d(i):.2f}" for i in range(15)]
    assert rows[1] == ["STF"] + [f"{acc_stf(i):.2f}" for i in range(15)]
    assert len(rows) == 2


def test_controls_table_and_paired_comparisons(run: Path) -> None:
    build_report(make_params(), run / "models", run / "results", run / "out")
    text = (run / "out" / "table2_controls.csv").read_text()
    assert text.splitlines()[0] == (run / "out" / "table2.csv").read_text().splitlines()[0]
    rows = read_csv(run / "out" / "table2_controls.csv")[1:]
    assert [r[0] for r in rows] == ["MS-G3D+ft", "STF+ce", "MS-G3D+ft x2"]
    for row, offset in zip(rows, (0.25, 0.5, 0.75), strict=True):
        assert row[1:] == [f"{acc_msg3d(i) + offset:.2f}" for i in range(15)]
    comp = read_csv(run / "out" / "comparisons.csv")
    header, body = comp[0], comp[1:]
    assert header[:4] == ["cell", "versus", "n", "seeds"] and header[-1] == "significant"
    assert len(body) == 15 * 4 + 4  # every cell and the shift test, against MS-G3D and the three controls
    first = dict(zip(header, body[0], strict=True))
    assert (first["cell"], first["versus"], first["n"], first["seeds"]) == ("ntu60-xsub:J", "MS-G3D", "400", "1")
    assert float(first["diff"]) == pytest.approx(acc_stf(0) - acc_msg3d(0))
    assert float(first["ci95_low"]) <= float(first["diff"]) <= float(first["ci95_high"])
    # nested errors: STF - MS-G3D+ft x2 in cell 2 is +0.75 (3 of 400 samples, one way): McNemar p = 0.25
    row = next(dict(zip(header, r, strict=True)) for r in body if r[0] == "ntu60-xsub:J+B" and r[1] == "MS-G3D+ft x2")
    assert float(row["diff"]) == pytest.approx(0.75) and float(row["mcnemar_p"]) == pytest.approx(0.25)
    assert row["significant"] == "no"
    t3 = read_csv(run / "out" / "table3.csv")
    assert t3[3][0] == "gain_over_strongest_control"
    assert t3[3][1:] == [f"{acc_stf(i) - acc_msg3d(i) - 0.75:.2f}" for i in range(15)]


def test_several_seeds_give_means_and_spreads(tmp_path: Path) -> None:
    fabricate(tmp_path, seeds=(0, 1), seed_step=0.5)
    params = make_params(seeds=[0, 1])
    build_report(params, tmp_path / "models", tmp_path / "results", tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "table2.csv")[1:]
    assert rows[0] == ["MS-G3D"] + [f"{acc_msg3d(i) + 0.25:.2f}" for i in range(15)]  # means over the seeds
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"| {acc_msg3d(0) + 0.25:.2f} ± 0.35 |" in md and "2 seeds (0, 1)" in md
    comp = read_csv(tmp_path / "out" / "comparisons.csv")
    first = dict(zip(comp[0], comp[1], strict=True))
    assert first["seeds"] == "2" and len(first["mcnemar_p"].split(";")) == 2
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["seeds"] == [0, 1]
    # a missing seed is an error that names the directory
    (tmp_path / "models" / "ntu60-xview" / "joint" / "s1" / "stf-ce" / "metrics.json").unlink()
    with pytest.raises(ReportInputError, match=r"ntu60-xview/joint/s1/stf-ce/metrics.json: metrics file not found"):
        build_report(params, tmp_path / "models", tmp_path / "results", tmp_path / "out")


def test_scores_that_disagree_with_metrics_are_named(run: Path) -> None:
    directory = run / "models" / "ntu60-xsub" / "bone" / "msg3d-ft"
    write_scores_for(directory, 10.0)
    with pytest.raises(ReportInputError, match=r"bone/msg3d-ft: scores.parquet gives top-1 10.0000 but metrics.json"):
        build_report(make_params(), run / "models", run / "results", run / "out")


def test_gains_ratios_and_kinetics_top5(run: Path) -> None:
    build_report(make_params(), run / "models", run / "results", run / "out")
    t3 = read_csv(run / "out" / "table3.csv")
    assert t3[0] == ["quantity", *COLUMNS]
    gain = dict(zip(COLUMNS, t3[1][1:], strict=True))
    for i, col in enumerate(COLUMNS):
        assert float(gain[col]) == pytest.approx(acc_stf(i) - acc_msg3d(i))
    ratio = dict(zip(COLUMNS, t3[2][1:], strict=True))
    assert ratio["ntu60-xsub:J"] == ""
    expected = (acc_stf(12) - acc_msg3d(12)) / paper.TABLE3_MSG3D_OVER_2SAGCN["J"]
    assert float(ratio["kinetics:J"]) == pytest.approx(expected, abs=0.005)
    top5 = read_csv(run / "out" / "table2_top5.csv")
    assert top5[0] == ["method", "kinetics:J", "kinetics:B", "kinetics:J+B"]
    assert top5[1] == ["MS-G3D"] + [f"{acc_msg3d(i) + 30:.2f}" for i in (12, 13, 14)]


def test_fraction_ablation_shift_and_flops_tables(run: Path) -> None:
    build_report(make_params(), run / "models", run / "results", run / "out")
    t4 = read_csv(run / "out" / "table4.csv")
    assert t4 == [
        ["method", "p10", "p20", "p25", "p100"],
        ["MS-G3D", "30.00", "35.00", "38.00", f"{acc_msg3d(0):.2f}"],
        ["STF", "31.00", "37.50", "38.25", f"{acc_stf(0):.2f}"],
        ["gain", "1.00", "2.50", "0.25", f"{acc_stf(0) - acc_msg3d(0):.2f}"],
    ]
    t5 = read_csv(run / "out" / "table5.csv")
    assert t5[0] == ["model", "name", "losses", "top1", "delta", "delta_control"]
    assert [r[:3] for r in t5[1:]] == [
        ["M1", "msg3d", ""], ["M2", "stf-m2", "c"], ["M3", "stf-m3", "c+d"], ["M4", "stf-m4", "c+d+gk"],
        ["M5", "stf", "d+c+gk & e"], ["MS-G3D+ft", "msg3d-ft", ""], ["STF+ce", "stf-ce", ""],
        ["MS-G3D+ft x2", "msg3d-ft-x2", ""],
    ]  # fmt: skip
    assert [r[4] for r in t5[1:6]] == ["0.00", "1.00", "2.00", "3.50", f"{acc_stf(0) - 40.0:.2f}"]
    # M2..M4 over MS-G3D+ft (40.25), M5 over MS-G3D+ft x2 (40.75); none for M1 and the controls
    assert [r[5] for r in t5[1:]] == ["", "0.75", "1.75", "3.25", f"{acc_stf(0) - 40.75:.2f}", "", "", ""]
    assert read_csv(run / "out" / "shift.csv")[1:] == [
        ["MS-G3D", "60.00", "80.00"], ["STF", "62.25", "81.00"], ["MS-G3D+ft", "60.50", "80.00"],
        ["STF+ce", "61.00", "80.00"], ["MS-G3D+ft x2", "61.50", "80.50"], ["gain", "2.25", "1.00"],
        ["gain_over_strongest_control", "0.75", "0.50"],
    ]  # fmt: skip
    flops = read_csv(run / "out" / "flops.csv")
    assert flops == [["method", "params", "gflops", "ratio"], ["MS-G3D", "3197095", "65.88", "1.000"],
                     ["STF", "3500000", "72.47", "1.100"], ["MS-G3D (C = 3)", "3194595", "65.54", "0.995"]]  # fmt: skip


def test_report_md_prints_the_papers_numbers_beside_ours(run: Path) -> None:
    written = build_report(make_params(), run / "models", run / "results", run / "out")
    md = (run / "out" / "report.md").read_text()
    assert "Profile **micro**" in md and "synthetic" in md
    # Table 2 row of NTU-60 x-sub joint: ours, then the paper's MS-G3D (code) and STF
    row = f"| ntu60-xsub | J | {N_TEST} | {acc_msg3d(0):.2f} | {acc_stf(0):.2f} | -0.50 ["
    assert row in md
    # 5 discordant samples, all one way: McNemar p = 2/32 = 0.06, not significant; 6 (J+B): p = 0.03, marked
    assert "| MS-G3D+ft x2 40.75 | -1.25 [" in md and f"| {acc_msg3d(2):.2f} | {acc_stf(2):.2f} | +1.50* [" in md
    assert "| 88.77 | 91.34 | 2.57 |" in md
    assert "| kinetics | J+B |" in md and "| 37.23 | 39.87 | 2.64 |" in md
    for number in ("72.73", "84.27", "90.65", "82.34", "83.38", "3.8", "touch neck +7.61"):
        assert number in md, number
    # what produced it, and the cost of the visibility channel, measured not quoted
    assert (
        "| λe / λd / λc / λGk | 0.01 / 0.1 / 0.1 / 0.01 |" in md
        and "| focus-distance norm (stf.loss_norm) | rms |" in md
    )
    assert "| seeds | 0 |" in md and "One seed (0)" in md
    assert (
        "C = 4 (the visibility channel) adds 2,500 parameters and 0.34 GFLOPs to the original MS-G3D's "
        "3,194,595 / 65.54 G at C = 3." in md
    )
    assert "## Controls" in md and "MS-G3D+ft x2" in md
    # every figure report.md links exists
    for path in written:
        assert path.exists(), path
    for name in ("per_class.png", "fractions.png", "curves.png", "loss_terms.png"):
        assert f"(figures/{name})" in md
        assert (run / "out" / "figures" / name).read_bytes()[:8] == PNG


def test_metrics_json_and_plot_csvs(run: Path) -> None:
    build_report(make_params(), run / "models", run / "results", run / "out")
    metrics = json.loads((run / "out" / "metrics.json").read_text())
    assert metrics["top1"]["stf"]["kinetics"]["J+B"] == pytest.approx(acc_stf(14))
    assert metrics["gain"]["ntu60-xview"]["B"] == pytest.approx(acc_stf(4) - acc_msg3d(4))
    assert metrics["shift"] == {"msg3d": 60.0, "stf": 62.25, "msg3d-ft": 60.5, "stf-ce": 61.0, "msg3d-ft-x2": 61.5}
    assert metrics["flops"]["ratio"] == pytest.approx(1.1)
    assert metrics["gain_over_strongest_control"]["ntu60-xsub"]["J"] == pytest.approx(acc_stf(0) - acc_msg3d(0) - 0.75)
    assert metrics["seeds"] == [0]
    assert metrics["kinetics_top5"]["msg3d"]["J"] == pytest.approx(acc_msg3d(12) + 30)
    per_class = read_csv(run / "out" / "plots" / "per_class.csv")
    assert per_class == [
        ["label", "name", "msg3d", "stf", "diff"],
        ["0", "drink water", "50.00", "55.00", "5.00"],
        ["1", "eat meal/snack", "60.00", "58.00", "-2.00"],
        ["2", "brushing teeth", "70.00", "70.00", "0.00"],
    ]
    assert read_csv(run / "out" / "plots" / "fractions.csv")[0] == ["fraction", "msg3d", "stf"]


def test_missing_or_bad_metrics_file_is_named(run: Path) -> None:
    (run / "models" / "ntu120-xset" / "bone" / "stf" / "metrics.json").unlink()
    with pytest.raises(ReportInputError, match=r"ntu120-xset/bone/stf/metrics.json: metrics file not found"):
        build_report(make_params(), run / "models", run / "results", run / "out")
    bad = run / "models" / "shift" / "stf"
    write_metrics(bad, 101.0, top5=100.0, per_class={"0": 50.0})
    with pytest.raises(ReportInputError, match=r"shift/stf/metrics.json: top1 must be a percentage"):
        read_metrics(bad)
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"shift/stf/metrics.json: not valid JSON"):
        read_metrics(bad)


def test_pick_samples_takes_one_per_class_first() -> None:
    labels = np.array([3, 3, 1, 0, 1, 0, 2])
    assert pick_samples(labels, 4).tolist() == [3, 2, 6, 0]
    assert pick_samples(labels, 6).tolist() == [3, 2, 6, 0, 1, 4]
    assert len(pick_samples(labels, 50)) == 7


def test_focus_maps_of_a_model_and_their_figure(tmp_path: Path) -> None:
    import torch

    from stf.data.skeletons import layout_for
    from stf.models.msg3d import MSG3D
    from stf.stages.spec import spec_for

    params = make_params()
    torch.manual_seed(0)
    model = MSG3D(spec_for(params, "ntu60", 5, 4)).eval()
    with torch.no_grad():  # a head that predicts class 0 from the summed features: Q is their sum, > 0
        model.fc.weight.zero_()
        model.fc.weight[0] = 1.0
        model.fc.bias.zero_()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 16, 25, 2)).astype(np.float32)  # (N, C, T, V, M)
    x[1, :, :, :, 1] = 0.0  # sample 1 has one person
    q, pred = focus_maps(model, x)
    assert q.shape == (2, 2, 16, 25) and pred.tolist() == [0, 0]
    assert q.min() >= 0.0 and 0.9 < q.max() <= 1.0  # min-max at the last block, then resampled to T
    path = focus_figure(x[1], {"MS-G3D": (q[1], "a"), "STF-e": (q[1], "b")}, layout_for("ntu60").edges,
                        tmp_path / "f.png", "title")  # fmt: skip
    assert path.read_bytes()[:8] == PNG


def test_headline_metrics_one_file_per_table2_cell(run: Path) -> None:
    out = run / "out" / "headline"
    out.mkdir(parents=True)
    (out / "stale-J.json").write_text("{}")  # a cell of an earlier run's settings
    build_report(make_params(), run / "models", run / "results", run / "out")
    table = read_csv(run / "out" / "table2.csv")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c.replace(':', '-')}.json" for c in table[0][1:])
    for i, column in enumerate(table[0][1:], start=1):
        cell = json.loads((out / f"{column.replace(':', '-')}.json").read_text())
        assert cell == {
            "MS-G3D": float(table[1][i]),
            "STF": float(table[2][i]),
            "gain": round(float(table[2][i]) - float(table[1][i]), 2),
        }


def test_trivial_and_saturated_top5_are_said() -> None:
    from stf.report.tables import trivial_top5_note

    assert trivial_top5_note({"kinetics:J": 60}, {"kinetics:J": [80.0, 81.0]}) == ""
    note = trivial_top5_note({"kinetics:J": 4, "kinetics:B": 8}, {"kinetics:J": [100.0], "kinetics:B": [100.0, 100.0]})
    assert "trivial on kinetics:J" in note and "100.00 for every row on kinetics:B (8 classes" in note
