"""build_report on fabricated metrics files: the tables' exact layout and numbers, the paper's
numbers in report.md, the figures, and errors that name the bad file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stf.report import paper
from stf.config import SETTINGS, Params, parse_params
from stf.report.build import build_report
from stf.report.figures import focus_figure, focus_maps, pick_samples
from stf.report.tables import ReportInputError, read_metrics

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
COLUMNS = [f"{s}:{c}" for s in SETTINGS for c in ("J", "B", "J+B")]


def make_params(**report) -> Params:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "micro"
    raw["report"] = {**raw["report"], "focus_samples": 0, **report}
    return parse_params(raw)


def acc_msg3d(i: int) -> float:
    return 40.0 + 1.25 * i


def acc_stf(i: int) -> float:
    return acc_msg3d(i) + (i % 3) - 0.5  # gains -0.5, 0.5, 1.5, ...


def write_metrics(directory: Path, top1: float, top5: float | None = None, per_class: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    per_class = per_class if per_class is not None else {"0": top1, "1": min(100.0, top1 + 10)}
    body = {"top1": top1, "top5": top5 if top5 is not None else min(100.0, top1 + 20), "n": 10,
            "num_class": 60, "per_class": per_class}  # fmt: skip
    (directory / "metrics.json").write_text(json.dumps(body))


def write_history(directory: Path, epochs: int, start: float) -> None:
    rows = ["epoch,lr,train_loss,train_top1,test_top1,seconds"]
    rows += [f"{e},0.05,{2.0 / e:.3f},{start + e},{start + e / 2},1.0" for e in range(1, epochs + 1)]
    (directory / "history.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """A fabricated pipeline run: every metrics.json, history.csv and flops.json the report reads."""
    models, results = tmp_path / "models", tmp_path / "results"
    for i, col in enumerate(COLUMNS):
        setting, cell = col.split(":")
        for method, acc in (("msg3d", acc_msg3d(i)), ("stf", acc_stf(i))):
            if cell == "J+B":
                directory = results / setting / method
            else:
                directory = models / setting / ("joint" if cell == "J" else "bone") / method
            per_class = {"0": 50.0, "1": 60.0, "2": 70.0} if method == "msg3d" else {"0": 55.0, "1": 58.0, "2": 70.0}
            write_metrics(directory, acc, top5=acc + 30 if setting == "kinetics" else None, per_class=per_class)
    main = models / "ntu60-xsub" / "joint"
    for p, (base, stf) in {10: (30.0, 31.0), 20: (35.0, 37.5), 25: (38.0, 38.25)}.items():
        write_metrics(main / f"p{p}" / "msg3d", base)
        write_metrics(main / f"p{p}" / "stf", stf)
    for v, acc in (("m2", 41.0), ("m3", 42.0), ("m4", 43.5)):
        write_metrics(main / v.join(["stf-", ""]), acc)
    for v in ("dcg", "e"):
        write_metrics(main / f"stf-{v}", 44.0)
        write_history(main / f"stf-{v}", 3, 40.0)
    write_history(main / "msg3d", 5, 20.0)
    write_metrics(models / "shift" / "msg3d", 60.0, top5=80.0)
    write_metrics(models / "shift" / "stf", 62.25, top5=81.0)
    results.mkdir(parents=True, exist_ok=True)
    (results / "flops.json").write_text(
        json.dumps({"msg3d": {"params": 3194595, "flops": 65.5e9}, "stf": {"params": 3500000, "flops": 72.05e9}})
    )
    return tmp_path


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
    assert t5[0] == ["model", "name", "losses", "top1", "delta"]
    assert [r[:3] for r in t5[1:]] == [
        ["M1", "msg3d", ""], ["M2", "stf-m2", "c"], ["M3", "stf-m3", "c+d"], ["M4", "stf-m4", "c+d+gk"],
        ["M5", "stf", "d+c+gk & e"],
    ]  # fmt: skip
    assert [r[4] for r in t5[1:]] == ["0.00", "1.00", "2.00", "3.50", f"{acc_stf(0) - 40.0:.2f}"]
    assert read_csv(run / "out" / "shift.csv")[1:] == [
        ["MS-G3D", "60.00", "80.00"], ["STF", "62.25", "81.00"], ["gain", "2.25", "1.00"]
    ]  # fmt: skip
    flops = read_csv(run / "out" / "flops.csv")
    assert flops == [["method", "params", "gflops", "ratio"], ["MS-G3D", "3194595", "65.50", "1.000"],
                     ["STF", "3500000", "72.05", "1.100"]]  # fmt: skip


def test_report_md_prints_the_papers_numbers_beside_ours(run: Path) -> None:
    written = build_report(make_params(), run / "models", run / "results", run / "out")
    md = (run / "out" / "report.md").read_text()
    assert "Profile **micro**" in md and "synthetic" in md
    # Table 2 row of NTU-60 x-sub joint: ours, then the paper's MS-G3D (code) and STF
    assert f"| ntu60-xsub | J | {acc_msg3d(0):.2f} | {acc_stf(0):.2f} | -0.50 | 88.77 | 91.34 | 2.57 |" in md
    assert "| kinetics | J+B |" in md and "| 37.23 | 39.87 | 2.64 |" in md
    for number in ("72.73", "84.27", "90.65", "82.34", "83.38", "3.8", "touch neck +7.61"):
        assert number in md, number
    # every figure report.md links exists
    for path in written:
        assert path.exists(), path
    for name in ("per_class.png", "fractions.png", "curves.png"):
        assert f"(figures/{name})" in md
        assert (run / "out" / "figures" / name).read_bytes()[:8] == PNG


def test_metrics_json_and_plot_csvs(run: Path) -> None:
    build_report(make_params(), run / "models", run / "results", run / "out")
    metrics = json.loads((run / "out" / "metrics.json").read_text())
    assert metrics["top1"]["stf"]["kinetics"]["J+B"] == pytest.approx(acc_stf(14))
    assert metrics["gain"]["ntu60-xview"]["B"] == pytest.approx(acc_stf(4) - acc_msg3d(4))
    assert metrics["shift"] == {"msg3d": 60.0, "stf": 62.25}
    assert metrics["flops"]["ratio"] == pytest.approx(1.1)
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
    from stf.models.msg3d import MSG3D, spec_for

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
