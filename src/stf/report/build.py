"""`build_report`: every table, figure and `report.md` of a pipeline run.

In: the model directories (`models/`), the fused results and `flops.json` (`results/`), and for
the focus maps the interim/split files of params report.per_class_setting (`data/`).
Out, under `out_dir`: table2.csv, table2_top5.csv, table3.csv, table4.csv, table5.csv,
shift.csv, flops.csv, metrics.json, headline/<cell>.json, plots/per_class.csv, plots/fractions.csv, figures/*.png
and report.md, which prints the paper's published numbers (`stf.report.paper`) beside ours.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stf.report import paper
from stf.config import Params
from stf.data.actions import action_name
from stf.io import write_json_atomic, write_text_atomic
from stf.report.figures import (
    curves_figure,
    focus_figure,
    focus_maps,
    fractions_figure,
    per_class_figure,
    pick_samples,
    read_history,
)
from stf.report.tables import (
    CELLS,
    METHODS,
    ReportInputError,
    Results,
    Table,
    collect,
    flops_table,
    fmt,
    fractions_table,
    gains,
    headline_metrics,
    metrics_summary,
    per_class_table,
    shift_table,
    table2,
    table3,
    table4,
    table5,
)

log = logging.getLogger(__name__)

SOURCE_NOTE = {
    "synthetic": (
        "synthetic skeletons written by `stf synth` in the real NTU RGB+D / Kinetics-skeleton file "
        "formats; our accuracies measure the pipeline, not the method on the real benchmarks, and are "
        "not comparable with the paper's"
    ),
    "real": "the real NTU RGB+D 60/120 and Kinetics-skeleton archives named in params.yaml `data`",
}


def build_report(
    params: Params, models_dir: Path, results_dir: Path, out_dir: Path, data_dir: Path | None = None
) -> list[Path]:
    """Write the report files under `out_dir`; returns their paths (figures included).

    `data_dir` holds interim/ and splits/ (default: `data/` beside `models_dir`). Raises
    ReportInputError (a ValueError) naming the first missing or malformed input file.
    """
    models_dir, results_dir, out_dir = Path(models_dir), Path(results_dir), Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else models_dir.parent / "data"
    figure_setting = params.report.per_class_setting
    if figure_setting not in params.settings:
        raise ReportInputError(f"params report.per_class_setting {figure_setting!r} is not one of params settings")
    res = collect(params, models_dir, results_dir)
    dataset = params.setting(figure_setting).dataset

    per_class = per_class_table(res, figure_setting, _class_names(res, figure_setting, dataset))
    tables = {
        "table2.csv": table2(res),
        "table2_top5.csv": table2(res, "top5", [s for s in res.settings if s == "kinetics"]),
        "table3.csv": table3(res),
        "table4.csv": table4(res),
        "table5.csv": table5(res),
        "shift.csv": shift_table(res),
        "flops.csv": flops_table(res),
        "plots/per_class.csv": per_class,
        "plots/fractions.csv": fractions_table(res),
    }
    written = [table.write_csv(out_dir / name) for name, table in tables.items()]
    metrics = out_dir / "metrics.json"
    write_json_atomic(metrics, metrics_summary(res, params.profile, params.sizes.source))
    written.append(metrics)
    written += _write_headline(out_dir / "headline", headline_metrics(res))

    figures = out_dir / "figures"
    main_joint = models_dir / figure_setting / "joint"
    figs = {
        "per_class": per_class_figure(
            per_class, figures / "per_class.png", f"{figure_setting} joint: per-class top-1, STF - MS-G3D"
        ),
        "fractions": fractions_figure(
            tables["plots/fractions.csv"], figures / "fractions.png", "NTU-60 x-sub joint: top-1 vs training data"
        ),
        "curves": curves_figure(
            read_history(main_joint / "msg3d"),
            {f"STF-{v}": read_history(main_joint / f"stf-{v}") for v in params.stf.ensemble},
            figures / "curves.png",
            f"{figure_setting} joint: training curves",
        ),
    }
    focus = _focus_figures(params, models_dir, data_dir, figures)
    written += list(figs.values()) + focus

    report = out_dir / "report.md"
    write_text_atomic(report, render_markdown(params, res, tables, out_dir, figs, focus))
    written.append(report)
    log.info("report: %d files under %s", len(written), out_dir)
    return written


def _write_headline(folder: Path, cells: dict[str, dict[str, float]]) -> list[Path]:
    """`folder/<cell>.json` per Table 2 cell (the files `dvc metrics show` lists); files of
    cells no longer in the table are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{cell}.json" for cell in cells]
    for stale in set(folder.glob("*.json")) - set(paths):
        stale.unlink()
    for path, values in zip(paths, cells.values(), strict=True):
        write_json_atomic(path, values)
    return paths


def _class_names(res: Results, setting: str, dataset: str) -> dict[int, str]:
    labels = set(res.cells["msg3d"][f"{setting}:J"].per_class) | set(res.cells["stf"][f"{setting}:J"].per_class)
    return {k: action_name(dataset, k) for k in sorted(labels)}


def _focus_figures(params: Params, models_dir: Path, data_dir: Path, figures: Path) -> list[Path]:
    """One figure per test sample (params report.focus_samples of them): MS-G3D and each ensemble
    model's focus Q on the skeleton, params report.per_class_setting, joint stream."""
    count = params.report.focus_samples
    if count == 0:
        return []
    from stf.data.preprocess import read_interim, read_interim_meta
    from stf.data.skeletons import layout_for
    from stf.data.splits import read_split
    from stf.stages.evaluate import load_model

    setting = params.report.per_class_setting
    dataset = params.setting(setting).dataset
    interim = data_dir / "interim" / f"{dataset}.parquet"
    split = data_dir / "splits" / f"{setting}.parquet"
    meta, _ = read_interim_meta(interim)
    table, _ = read_split(split)
    test_ids = set(table.loc[table["part"] == "test", "sample_id"].astype(str))
    test_rows = np.flatnonzero(meta["sample_id"].astype(str).isin(test_ids).to_numpy())  # interim order
    if len(test_rows) == 0:
        raise ReportInputError(f"{split}: no test samples for the focus maps")
    rows = np.sort(test_rows[pick_samples(meta["label"].to_numpy()[test_rows], count)])
    loaded = read_interim(interim, rows)
    x = loaded.data  # (S, C, T, V, M)
    labels = loaded.meta["label"].to_numpy()
    ids = loaded.meta["sample_id"].astype(str).to_numpy()

    model_dirs = {"MS-G3D": models_dir / setting / "joint" / "msg3d"}
    model_dirs |= {f"STF-{v}": models_dir / setting / "joint" / f"stf-{v}" for v in params.stf.ensemble}
    maps = {}
    for name, directory in model_dirs.items():
        model, _ = load_model(directory)
        maps[name] = focus_maps(model, x)  # Q (S, M, T, V), predicted (S,)
    layout = layout_for(dataset)
    written = []
    for i in range(len(rows)):
        per_model = {name: (q[i], action_name(dataset, int(pred[i]))) for name, (q, pred) in maps.items()}
        title = f"{ids[i]}: {action_name(dataset, int(labels[i]))} (focus Q of each model's predicted class)"
        path = figures / f"focus_{i}.png"
        written.append(focus_figure(x[i], per_model, layout.edges, path, title, y_down=layout.name == "openpose18"))
    return written


# --------------------------------------------------------------------------- report.md

PAPER_ROW = {"msg3d": "MS-G3D (code)", "stf": "STF"}  # our method -> the paper's row label


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _rel(path: Path, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()


def render_markdown(
    params: Params, res: Results, tables: dict[str, Table], out_dir: Path, figs: dict[str, Path], focus: list[Path]
) -> str:
    """report.md: run facts, every table with the paper's numbers beside ours, the figures."""
    sections = [
        _header(params),
        _table2_section(res, tables),
        _table4_section(res),
        _table5_section(res),
        _shift_section(res),
        _cost_section(tables),
        _figures_section(params, out_dir, figs, focus),
    ]
    return "\n\n".join(sections) + "\n"


def _header(params: Params) -> str:
    sizes = params.sizes
    epochs = ", ".join(f"{d} {e}" for d, e in sizes.epochs.items())
    return (
        "# STF on MS-G3D: results\n\n"
        f"Profile **{params.profile}**; data: {SOURCE_NOTE[sizes.source]}.\n"
        f"T = {sizes.frames} frames, block widths {'/'.join(map(str, sizes.widths))}, baseline epochs {epochs}, "
        f"STF fine-tuning {sizes.finetune_epochs} epochs, linear probe {sizes.probe_epochs} epochs.\n\n"
        f"Columns marked *paper* are the published numbers of {paper.PAPER} "
        'Their MS-G3D is the paper\'s "MS-G3D (code)" row: the authors\' run of the public MS-G3D code, '
        "the baseline STF is built on. Top-1 accuracy in percent; the CSV files beside this report "
        "hold our numbers only."
    )


def _table2_section(res: Results, tables: dict[str, Table]) -> str:
    g = gains(res)
    rows = []
    for col in res.columns:
        setting, cell = col.split(":")
        p_base, p_stf = (paper.TABLE2[PAPER_ROW[m]].get(col) for m in METHODS)
        ours = [fmt(res.cells[m][col].top1) for m in METHODS]
        rows.append([setting, cell, *ours, fmt(g[col]), fmt(p_base), fmt(p_stf), fmt(_diff(p_stf, p_base))])
    header = ["setting", "input", "MS-G3D", "STF", "gain", "MS-G3D *paper*", "STF *paper*", "gain *paper*"]
    parts = [
        "## Table 2: top-1 accuracy (table2.csv) and the gain STF - MS-G3D (table3.csv)",
        Table(header, rows).to_markdown(),
    ]
    if "kinetics" in res.settings:
        ratio_rows = []
        for cell, _ in CELLS:
            ours, base = g[f"kinetics:{cell}"], paper.TABLE3_MSG3D_OVER_2SAGCN[cell]
            ratio_rows.append([cell, fmt(ours), fmt(ours / base), fmt(base), fmt(paper.TABLE3_STF_OVER_MSG3D[cell]),
                               fmt(paper.TABLE3_RATIO[cell], ".1f")])  # fmt: skip
        header = ["input", "gain", "ratio", "MS-G3D - 2s-AGCN *paper*", "gain *paper*", "ratio *paper*"]
        parts += [
            "### Kinetics top-5 (table2_top5.csv)",
            tables["table2_top5.csv"].to_markdown(),
            "The paper reports no top-5 accuracy.",
            "### Table 3: Kinetics gain, as a multiple of MS-G3D's gain over 2s-AGCN",
            "The paper divides STF's gain over MS-G3D by MS-G3D's gain over 2s-AGCN (its Table 3). "
            "We do not run 2s-AGCN, so our ratio divides our gain by the paper's MS-G3D - 2s-AGCN gain.",
            Table(header, ratio_rows).to_markdown(),
        ]
    return "\n\n".join(parts)


def _table4_section(res: Results) -> str:
    rows = []
    for p in sorted(res.fractions):
        base, stf = (res.fractions[p][m].top1 for m in METHODS)
        p_base, p_stf = (paper.TABLE4[PAPER_ROW[m]].get(p) for m in METHODS)
        rows.append([f"{p}", fmt(base), fmt(stf), fmt(stf - base), fmt(p_base), fmt(p_stf), fmt(_diff(p_stf, p_base))])
    header = ["p", "MS-G3D", "STF", "gain", "MS-G3D *paper*", "STF *paper*", "gain *paper*"]
    k25 = {m: paper.KINETICS_25[PAPER_ROW[m]] for m in METHODS}
    return "\n\n".join([
        "## Table 4: NTU-60 x-sub joint, p% of the training data (table4.csv)",
        Table(header, rows).to_markdown(),
        f"The paper also reports 25% of Kinetics: MS-G3D J {k25['msg3d']['J']:.2f} / B {k25['msg3d']['B']:.2f}, "
        f"STF J {k25['stf']['J']:.2f} / B {k25['stf']['B']:.2f} (not run here).",
    ])  # fmt: skip


def _table5_section(res: Results) -> str:
    base = res.ablation[0].metrics.top1
    rows = []
    for row in res.ablation:
        p_top1 = paper.TABLE5.get(row.name)
        ours = [fmt(row.metrics.top1), fmt(row.metrics.top1 - base)]
        theirs = [paper.TABLE5_LOSSES.get(row.name, ""), fmt(p_top1), fmt(_diff(p_top1, paper.TABLE5["M1"]))]
        rows.append([row.name, row.model, row.losses or "(cross-entropy)", *ours, *theirs])
    header = ["model", "directory", "losses", "top-1", "delta", "losses *paper*", "top-1 *paper*", "delta *paper*"]
    return "\n\n".join([
        "## Table 5: ablation, NTU-60 x-sub joint (table5.csv)",
        Table(header, rows).to_markdown(),
        "Losses name params stf.variants (c = L_c, d = L_d, gk = L_Gk, e = L_e); the last row is the "
        "STF ensemble, one model per `&`-separated loss set.",
    ])  # fmt: skip


def _shift_section(res: Results) -> str:
    rows = [[label, fmt(res.shift[m].top1), fmt(paper.SHIFT[PAPER_ROW[m]])] for m, label in METHODS.items()]
    ours_gain = res.shift["stf"].top1 - res.shift["msg3d"].top1
    rows.append(["gain", fmt(ours_gain), fmt(paper.SHIFT["STF"] - paper.SHIFT["MS-G3D (code)"])])
    return "\n\n".join([
        "## Data shift: NTU-60 x-sub joint features, linear probe on NTU-120 x-sub (shift.csv)",
        Table(["method", "top-1", "top-1 *paper*"], rows).to_markdown(),
    ])  # fmt: skip


def _cost_section(tables: dict[str, Table]) -> str:
    return "\n\n".join([
        "## Cost: parameters and FLOPs at the paper's size (flops.csv)",
        "Full-width networks (96/192/384), one NTU sample of T = 300 frames, M = 2, C = 4.",
        tables["flops.csv"].to_markdown(),
        f"The paper: STF uses about {paper.FLOPS_RATIO - 1:.0%} more FLOPs than MS-G3D (ratio "
        f"{paper.FLOPS_RATIO:.2f}); it gives no absolute numbers.",
    ])  # fmt: skip


def _figures_section(params: Params, out_dir: Path, figs: dict[str, Path], focus: list[Path]) -> str:
    quoted = ", ".join(f"{name} {gain:+.2f}" for name, gain in paper.FIGURE3_QUOTED.values())
    setting = params.report.per_class_setting
    parts = [
        "## Figures",
        f"Per-class top-1 difference STF - MS-G3D, {setting} joint (the paper's Figure 3; "
        f"plots/per_class.csv). The paper quotes, for NTU-60 x-sub: {quoted}.",
        f"![per-class difference]({_rel(figs['per_class'], out_dir)})",
        "Top-1 against the training fraction (Table 4; plots/fractions.csv):",
        f"![fractions]({_rel(figs['fractions'], out_dir)})",
        f"Training curves of the {setting} joint models (fine-tuning continues the baseline's epochs):",
        f"![curves]({_rel(figs['curves'], out_dir)})",
    ]
    if focus:
        parts.append(
            f"Focus maps Q (eq. 2, at the last block, of each model's predicted class) on {len(focus)} "
            f"{setting} test samples, resampled to the input frames; joints coloured by Q:"
        )
        parts += [f"![focus {i}]({_rel(path, out_dir)})" for i, path in enumerate(focus)]
    return "\n\n".join(parts)
