"""Benchmark split rules and nested stratified subsets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers import write_interim
from stf.config import SettingSpec, SplitConfig
from stf.data.splits import SplitError, benchmark_part, make_split_file, stratified_subsets


def ntu_meta(ids: list[str]) -> pd.DataFrame:
    rows = []
    for s in ids:
        rows.append(
            {"sample_id": s, "setup": int(s[1:4]), "camera": int(s[5:8]), "performer": int(s[9:12]),
             "replication": int(s[13:16]), "label": int(s[17:20]) - 1, "part": ""}
        )  # fmt: skip
    return pd.DataFrame(rows)


def part_of(sample_id: str, dataset: str, benchmark: str) -> str:
    return benchmark_part(ntu_meta([sample_id]), SettingSpec(dataset=dataset, benchmark=benchmark))[0]


@pytest.mark.parametrize(
    ("sample_id", "dataset", "benchmark", "part"),
    [
        ("S001C001P001R001A001", "ntu60", "xsub", "train"),
        ("S001C001P003R001A001", "ntu60", "xsub", "test"),
        ("S001C001P038R001A001", "ntu60", "xsub", "train"),
        ("S001C001P040R001A001", "ntu60", "xsub", "test"),
        ("S001C001P045R001A001", "ntu60", "xsub", "test"),
        ("S019C001P045R001A101", "ntu120", "xsub", "train"),
        ("S019C001P103R001A101", "ntu120", "xsub", "train"),
        ("S019C001P104R001A101", "ntu120", "xsub", "test"),
        ("S019C001P003R001A101", "ntu120", "xsub", "test"),
        ("S001C001P001R001A001", "ntu60", "xview", "test"),
        ("S001C002P003R001A001", "ntu60", "xview", "train"),
        ("S001C003P003R001A001", "ntu60", "xview", "train"),
        ("S002C001P003R001A001", "ntu120", "xset", "train"),
        ("S001C001P001R001A001", "ntu120", "xset", "test"),
        ("S032C001P001R001A001", "ntu120", "xset", "train"),
        ("S031C001P001R001A001", "ntu120", "xset", "test"),
    ],
)
def test_benchmark_rules(sample_id, dataset, benchmark, part):
    assert part_of(sample_id, dataset, benchmark) == part


def test_kinetics_val_is_the_test_part():
    meta = pd.DataFrame({"sample_id": ["a", "b"], "part": ["train", "val"]})
    spec = SettingSpec(dataset="kinetics", benchmark="trainval")
    assert benchmark_part(meta, spec).tolist() == ["train", "test"]
    with pytest.raises(SplitError, match="kinetics"):
        benchmark_part(pd.DataFrame({"part": ["train", ""]}), spec)


def test_subsets_keep_each_class_proportion_nested_and_at_least_one():
    rng = np.random.default_rng(3)
    sizes = [200, 57, 9, 3, 1]
    labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    subsets = stratified_subsets(labels, [10, 20, 25, 100], seed=0)
    assert sorted(subsets) == [10, 20, 25, 100]
    assert subsets[100].all()
    for f in (10, 20, 25):
        for c, n in enumerate(sizes):
            got = int(subsets[f][labels == c].sum())
            assert got == max(1, int(np.floor(n * f / 100 + 0.5)))
            assert abs(got - n * f / 100) <= max(0.5, 1 - n * f / 100)
    assert not (subsets[10] & ~subsets[20]).any()
    assert not (subsets[20] & ~subsets[25]).any()
    assert int(subsets[10].sum()) == pytest.approx(0.1 * labels.size, abs=len(sizes))


def test_subsets_are_deterministic_per_seed():
    labels = np.repeat(np.arange(4), 40)
    a = stratified_subsets(labels, [10, 100], seed=5)
    b = stratified_subsets(labels, [10, 100], seed=5)
    c = stratified_subsets(labels, [10, 100], seed=6)
    np.testing.assert_array_equal(a[10], b[10])
    assert (a[10] != c[10]).any()


def test_class_without_training_sample_is_an_error_naming_it():
    labels = np.array([0, 0, 1, 1, 3, 3])
    with pytest.raises(SplitError, match=r"\[2\]"):
        stratified_subsets(labels, [10, 100], seed=0)
    with pytest.raises(SplitError, match=r"\[4\]"):
        stratified_subsets(np.array([0, 1, 2, 3]), [10, 100], seed=0, num_class=5)


def write_ntu_interim(path, ids: list[str], num_class: int) -> None:
    info = {"dataset": "ntu60", "layout": "ntu25", "shape": [1, 2, 25, 1], "num_class": num_class, "channels": ["x"]}
    meta = ntu_meta(ids)
    rows = [
        {**r, "n_frames": 2, "n_persons": 1}
        for r in meta[["sample_id", "label", "setup", "camera", "performer", "replication", "part"]].to_dict("records")
    ]
    write_interim(path, info, rows, np.zeros((len(ids), 1, 2, 25, 1), np.float32))


def xsub_ids(per_class: int, classes: int) -> list[str]:
    ids = []
    for a in range(1, classes + 1):
        for k in range(per_class):
            performer = [1, 3][k % 2]  # alternate train / test subjects
            ids.append(f"S001C001P{performer:03d}R{k + 1:03d}A{a:03d}")
    return sorted(ids)


def test_split_file_columns_and_summary(tmp_path):
    interim = tmp_path / "ntu60.parquet"
    write_ntu_interim(interim, xsub_ids(per_class=20, classes=3), num_class=3)
    out = tmp_path / "splits" / "ntu60-xsub.parquet"
    spec = SettingSpec(dataset="ntu60", benchmark="xsub")
    summary = make_split_file(interim, spec, SplitConfig(fractions=[10, 20, 25, 100], seed=1), out)
    table = pq.read_table(out)
    df = table.to_pandas()
    assert list(df.columns) == ["sample_id", "label", "part", "p10", "p20", "p25", "p100"]
    assert json.loads(table.schema.metadata[b"stf"]) == {
        "setting": "ntu60-xsub", "dataset": "ntu60", "benchmark": "xsub", "seed": 1, "val_percent": 0
    }  # fmt: skip
    assert summary["train"] == 30 and summary["test"] == 30 and summary["val"] == 0 and summary["classes"] == 3
    assert summary["fractions"] == {"p10": 3, "p20": 6, "p25": 9, "p100": 30}
    assert not df.loc[df.part == "test", ["p10", "p20", "p25", "p100"]].to_numpy().any()
    assert (df.loc[df.part == "train", "p100"]).all()
    assert df.sample_id.tolist() == sorted(df.sample_id)
    assert df.groupby("label").p10.sum().tolist() == [1, 1, 1]


def test_validation_part_is_held_out_stratified_and_seeded(tmp_path):
    interim = tmp_path / "ntu60.parquet"
    write_ntu_interim(interim, xsub_ids(per_class=20, classes=3), num_class=3)
    spec = SettingSpec(dataset="ntu60", benchmark="xsub")
    cfg = SplitConfig(fractions=[10, 100], seed=1)
    plain = make_split_file(interim, spec, cfg, tmp_path / "plain.parquet").copy()
    summary = make_split_file(interim, spec, cfg, tmp_path / "a.parquet", val_percent=20)
    df = pq.read_table(tmp_path / "a.parquet").to_pandas()
    base = pq.read_table(tmp_path / "plain.parquet").to_pandas()
    # 20 % of the 30 training samples, 2 per class; the test part is untouched
    assert summary["val"] == 6 and summary["train"] == 24 and summary["test"] == plain["test"]
    assert df.loc[df.part == "val"].groupby("label").size().tolist() == [2, 2, 2]
    assert (df.part == "test").tolist() == (base.part == "test").tolist()
    assert set(df.loc[df.part == "val", "sample_id"]) <= set(base.loc[base.part == "train", "sample_id"])
    # held out of every training subset
    assert not df.loc[df.part == "val", ["p10", "p100"]].to_numpy().any()
    assert df.p100.sum() == 24
    again = make_split_file(interim, spec, cfg, tmp_path / "b.parquet", val_percent=20)
    assert again == summary
    assert pq.read_table(tmp_path / "b.parquet").equals(pq.read_table(tmp_path / "a.parquet"))
    other = make_split_file(
        interim, spec, SplitConfig(fractions=[10, 100], seed=2), tmp_path / "c.parquet", val_percent=20
    )
    moved = pq.read_table(tmp_path / "c.parquet").to_pandas()
    assert set(moved.loc[moved.part == "val", "sample_id"]) != set(df.loc[df.part == "val", "sample_id"])
    assert other["val"] == 6


def test_validation_part_too_small_is_an_error(tmp_path):
    interim = tmp_path / "ntu60.parquet"
    write_ntu_interim(interim, xsub_ids(per_class=4, classes=3), num_class=3)
    spec = SettingSpec(dataset="ntu60", benchmark="xsub")
    with pytest.raises(SplitError, match="ntu60-xsub.*validation part"):
        make_split_file(interim, spec, SplitConfig(fractions=[100]), tmp_path / "s.parquet", val_percent=10)


def test_split_errors_name_setting_and_class(tmp_path):
    interim = tmp_path / "ntu60.parquet"
    ids = xsub_ids(per_class=4, classes=2) + ["S001C001P001R009A003"]  # class 2 only in training
    write_ntu_interim(interim, sorted(ids), num_class=3)
    spec = SettingSpec(dataset="ntu60", benchmark="xsub")
    with pytest.raises(SplitError, match=r"ntu60-xsub.*class 2: 1 train / 0 test"):
        make_split_file(interim, spec, SplitConfig(), tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()
    with pytest.raises(SplitError, match="kinetics"):
        make_split_file(
            interim, SettingSpec(dataset="kinetics", benchmark="trainval"), SplitConfig(), tmp_path / "k.parquet"
        )
