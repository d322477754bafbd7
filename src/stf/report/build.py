"""`build_report`: every table, figure and `report.md` of a pipeline run.

In: the model directories (`models/`), the fused results and `flops.json` (`results/`), every
seed's (`stf.paths`), and for the focus maps the interim/split files of params
report.per_class_setting (`data/`).
Out, under `out_dir`: table2.csv, table2_controls.csv, table2_top5.csv, table3.csv,
table4.csv, table5.csv, shift.csv, flops.csv, comparisons.csv, parameters.csv, metrics.json,
headline/<cell>.json, plots/per_class.csv, plots/fractions.csv, plots/loss_terms.csv, figures/*.png and report.md,
which prints the paper's published numbers (`stf.report.paper`) beside ours, the controls, and for
every STF-vs-row comparison the paired interval and test (`stf.report.statistics`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stf.config import Params
from stf.data.actions import action_name
from stf.io import write_json_atomic, write_text_atomic
from stf.paths import BASELINE, CONTROL_ROWS, ENSEMBLE, model_dir, variant_name
from stf.report import paper
from stf.report.figures import (
    curves_figure,
    focus_figure,
    focus_maps,
    fractions_figure,
    loss_terms_figure,
    loss_terms_table,
    per_class_figure,
    pick_samples,
    read_history,
)
from stf.report.tables import (
    ALL_ROWS,
    CELLS,
    CONTROLS,
    METHODS,
    VERSUS,
    ReportInputError,
    Results,
    Table,
    collect,
    comparisons_table,
    flops_table,
    fmt,
    fmt_cell,
    fmt_comparison,
    fractions_table,
    gains,
    headline_metrics,
    metrics_summary,
    parameter_table,
    per_class_table,
    shift_table,
    strongest_control,
    table2,
    table3,
    table4,
    table5,
    trivial_top5_note,
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
    histories = _stf_histories(params, models_dir, figure_setting)
    tables = {
        "table2.csv": table2(res),
        "table2_controls.csv": table2(res, rows=CONTROLS),
        "table2_top5.csv": table2(res, "top5", [s for s in res.settings if s == "kinetics"]),
        "table3.csv": table3(res),
        "table4.csv": table4(res),
        "table5.csv": table5(res),
        "shift.csv": shift_table(res),
        "flops.csv": flops_table(res),
        "comparisons.csv": comparisons_table(res),
        "parameters.csv": parameter_table(params),
        "plots/per_class.csv": per_class,
        "plots/fractions.csv": fractions_table(res),
        "plots/loss_terms.csv": loss_terms_table(histories),
    }
    written = [table.write_csv(out_dir / name) for name, table in tables.items()]
    metrics = out_dir / "metrics.json"
    write_json_atomic(metrics, metrics_summary(res, params.profile, params.sizes.source))
    written.append(metrics)
    written += _write_headline(out_dir / "headline", headline_metrics(res))

    figures = out_dir / "figures"
    seed = params.sizes.seeds[0]
    figs = {
        "per_class": per_class_figure(
            per_class, figures / "per_class.png", f"{figure_setting} joint: per-class top-1, STF - MS-G3D"
        ),
        "fractions": fractions_figure(
            tables["plots/fractions.csv"], figures / "fractions.png", "NTU-60 x-sub joint: top-1 vs training data"
        ),
        "curves": curves_figure(
            read_history(model_dir(models_dir, figure_setting, "joint", BASELINE, seed)),
            {
                f"STF-{v}": read_history(model_dir(models_dir, figure_setting, "joint", variant_name(v), seed))
                for v in params.stf.ensemble
            },
            figures / "curves.png",
            f"{figure_setting} joint: training curves (seed {seed})",
        ),  # fmt: skip
        "loss_terms": loss_terms_figure(
            tables["plots/loss_terms.csv"],
            figures / "loss_terms.png",
            f"{figure_setting} joint: STF loss terms per fine-tuning epoch (mean over seeds)",
        ),  # fmt: skip
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


def _stf_histories(params: Params, models_dir: Path, setting: str) -> dict:
    """history.csv of each STF ensemble member of `setting`'s joint stream, every seed."""
    return {
        f"STF-{v}": [read_history(model_dir(models_dir, setting, "joint", variant_name(v), s))
                     for s in params.sizes.seeds]
        for v in params.stf.ensemble
    }  # fmt: skip


def _class_names(res: Results, setting: str, dataset: str) -> dict[int, str]:
    labels = set(res.cells[BASELINE][f"{setting}:J"].per_class) | set(res.cells[ENSEMBLE][f"{setting}:J"].per_class)
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

    seed = params.sizes.seeds[0]
    model_dirs = {"MS-G3D": model_dir(models_dir, setting, "joint", BASELINE, seed)}
    model_dirs |= {
        f"STF-{v}": model_dir(models_dir, setting, "joint", variant_name(v), seed) for v in params.stf.ensemble
    }
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
    """report.md: what produced it, every table with the paper's numbers and the controls beside
    ours, the paired comparisons, the figures."""
    sections = [
        _header(params, tables),
        _table2_section(res, tables),
        _controls_section(res, tables),
        _table4_section(res),
        _table5_section(res),
        _shift_section(res),
        _cost_section(res, tables),
        _figures_section(params, out_dir, figs, focus),
    ]
    return "\n\n".join(sections) + "\n"


def _header(params: Params, tables: dict[str, Table]) -> str:
    return "\n\n".join([
        "# STF on MS-G3D: results",
        f"Profile **{params.profile}**; data: {SOURCE_NOTE[params.sizes.source]}.",
        "### What produced these numbers (parameters.csv)",
        tables["parameters.csv"].to_markdown(),
        f"Columns marked *paper* are the published numbers of {paper.PAPER} "
        'Their MS-G3D is the paper\'s "MS-G3D (code)" row: the authors\' run of the public MS-G3D code, '
        "the baseline STF is built on. Top-1 accuracy in percent; the CSV files beside this report "
        "hold our numbers only.",
        "**Controls.** The paper's STF row is two models fine-tuned from the baseline for extra epochs at a low "
        "lr and ensembled, against one baseline model; three controls separate those effects: **MS-G3D+ft** "
        "(the baseline fine-tuned with cross-entropy alone, STF's fine-tuning recipe, no STF modules), "
        "**STF+ce** (the STF modules added, every λ = 0) and **MS-G3D+ft x2** (the softmax average of two "
        "MS-G3D+ft models with different shuffle seeds, the size of STF's dcg + e ensemble).",
        "**Paired comparisons.** STF − row on the same test samples: the difference of the seed-averaged "
        "top-1, a 95 % paired bootstrap interval over test samples in brackets, and `*` where the paired "
        f"permutation test gives p < {params.report.alpha:g} (comparisons.csv also lists McNemar's exact p per "
        f"seed). {_seeds_note_params(params)}",
    ])  # fmt: skip


def _seeds_note_params(params: Params) -> str:
    seeds = params.sizes.seeds
    if len(seeds) == 1:
        return f"One seed ({seeds[0]}): no spread over seeds is shown; the intervals cover test-sample noise only."
    return (
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): accuracies are means ± sample standard "
        "deviations over the seeds; intervals and tests use the seed-averaged correctness of each test sample."
    )


def _table2_section(res: Results, tables: dict[str, Table]) -> str:
    g = gains(res)
    rows = []
    for col in res.columns:
        setting, cell = col.split(":")
        p_base, p_stf = (paper.TABLE2[PAPER_ROW[m]].get(col) for m in METHODS)
        comp = res.comparisons[col]
        best = strongest_control(res, col)
        ours = [fmt_cell(res.cells[m][col]) for m in METHODS]
        rows.append([
            setting, cell, str(comp[BASELINE].n), *ours, fmt_comparison(comp[BASELINE], res.alpha),
            f"{CONTROLS[best]} {fmt_cell(res.cells[best][col])}", fmt_comparison(comp[best], res.alpha),
            fmt(p_base), fmt(p_stf), fmt(_diff(p_stf, p_base)),
        ])  # fmt: skip
    header = ["setting", "input", "n test", "MS-G3D", "STF", "STF - MS-G3D [95 % CI]", "strongest control",
              "STF - control [95 % CI]", "MS-G3D *paper*", "STF *paper*", "gain *paper*"]  # fmt: skip
    parts = [
        "## Table 2: top-1 accuracy (table2.csv), the gain STF - MS-G3D (table3.csv) and STF against the "
        "strongest control",
        Table(header, rows).to_markdown(),
    ]
    if "kinetics" in res.settings:
        ratio_rows = []
        for cell, _ in CELLS:
            ours, base = g[f"kinetics:{cell}"], paper.TABLE3_MSG3D_OVER_2SAGCN[cell]
            ratio_rows.append([cell, fmt(ours), fmt(ours / base), fmt(base), fmt(paper.TABLE3_STF_OVER_MSG3D[cell]),
                               fmt(paper.TABLE3_RATIO[cell], ".1f")])  # fmt: skip
        header = ["input", "gain", "ratio", "MS-G3D - 2s-AGCN *paper*", "gain *paper*", "ratio *paper*"]
        note = trivial_top5_note({f"kinetics:{c}": res.cells[BASELINE][f"kinetics:{c}"].num_class for c, _ in CELLS})
        parts += [
            "### Kinetics top-5 (table2_top5.csv)",
            tables["table2_top5.csv"].to_markdown(),
            "The paper reports no top-5 accuracy." + (f" {note}" if note else ""),
            "### Table 3: Kinetics gain, as a multiple of MS-G3D's gain over 2s-AGCN",
            "The paper divides STF's gain over MS-G3D by MS-G3D's gain over 2s-AGCN (its Table 3). "
            "We do not run 2s-AGCN, so our ratio divides our gain by the paper's MS-G3D - 2s-AGCN gain.",
            Table(header, ratio_rows).to_markdown(),
        ]
    return "\n\n".join(parts)


def _controls_section(res: Results, tables: dict[str, Table]) -> str:
    rows = []
    for col in res.columns:
        comp = res.comparisons[col]
        rows.append([col, *(fmt_cell(res.cells[c][col]) for c in CONTROL_ROWS),
                     *(fmt_comparison(comp[c], res.alpha) for c in CONTROL_ROWS)])  # fmt: skip
    header = ["cell", *CONTROLS.values(), *(f"STF - {label}" for label in CONTROLS.values())]
    significant = [
        f"{col} vs {ALL_ROWS[r]}"
        for col in res.columns
        for r in VERSUS
        if res.comparisons[col][r].significant(res.alpha)
    ]
    summary = (
        f"Significant (p < {res.alpha:g}): {', '.join(significant)}." if significant
        else f"No STF-vs-row difference is significant at p < {res.alpha:g}."
    )  # fmt: skip
    return "\n\n".join([
        "## Controls: top-1 (table2_controls.csv) and STF against each (comparisons.csv)",
        Table(header, rows).to_markdown(),
        summary,
    ])  # fmt: skip


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
    by_model = {r.model: r for r in res.ablation}
    rows = []
    for row in res.ablation:
        p_top1 = paper.TABLE5.get(row.name)
        ref = by_model[row.reference] if row.reference else None
        ours = [fmt_cell(row.metrics), fmt(row.metrics.top1 - base),
                f"{fmt(row.metrics.top1 - ref.metrics.top1)} ({ref.name})" if ref else ""]  # fmt: skip
        theirs = [paper.TABLE5_LOSSES.get(row.name, ""), fmt(p_top1), fmt(_diff(p_top1, paper.TABLE5["M1"]))]
        losses = row.losses or ("(cross-entropy)" if row.model == BASELINE else "(control, cross-entropy)")
        rows.append([row.name, row.model, losses, *ours, *theirs])
    header = ["model", "directory", "losses", "top-1", "delta", "delta over control", "losses *paper*",
              "top-1 *paper*", "delta *paper*"]  # fmt: skip
    return "\n\n".join([
        "## Table 5: ablation, NTU-60 x-sub joint (table5.csv)",
        Table(header, rows).to_markdown(),
        "Losses name params stf.variants (c = L_c, d = L_d, gk = L_Gk, e = L_e); M5 is the STF ensemble, "
        "one model per `&`-separated loss set. The single fine-tuned models M2-M4 are compared with "
        "MS-G3D+ft (same recipe, no STF losses), the ensemble M5 with MS-G3D+ft x2.",
    ])  # fmt: skip


def _shift_section(res: Results) -> str:
    rows = []
    for m, label in ALL_ROWS.items():
        comp = res.shift_comparisons.get(m)
        rows.append([label, fmt_cell(res.shift[m]), fmt_comparison(comp, res.alpha) if comp else "",
                     fmt(paper.SHIFT.get(PAPER_ROW.get(m, ""))) if m in PAPER_ROW else ""])  # fmt: skip
    n = res.shift_comparisons[BASELINE].n
    return "\n\n".join([
        "## Data shift: NTU-60 x-sub joint features, linear probe on NTU-120 x-sub (shift.csv)",
        Table(["method", "top-1", "STF - row [95 % CI]", "top-1 *paper*"], rows).to_markdown(),
        f"{n} NTU-120 x-sub test samples. STF and MS-G3D+ft x2 average two probe heads (one per source "
        "model); the other rows have one. The paper's gain: "
        f"{paper.SHIFT['STF'] - paper.SHIFT['MS-G3D (code)']:+.2f}.",
    ])  # fmt: skip


def _cost_section(res: Results, tables: dict[str, Table]) -> str:
    parts = [
        "## Cost: parameters and FLOPs at the paper's size (flops.csv)",
        "Full-width networks (96/192/384), one NTU sample of T = 300 frames, M = 2, C = 4.",
        tables["flops.csv"].to_markdown(),
    ]
    if "msg3d_c3" in res.flops:
        c3, c4 = res.flops["msg3d_c3"], res.flops["msg3d"]
        parts.append(
            f"C = 4 (the visibility channel) adds {int(c4['params'] - c3['params']):,} parameters and "
            f"{(c4['flops'] - c3['flops']) / 1e9:.2f} GFLOPs to the original MS-G3D's "
            f"{int(c3['params']):,} / {c3['flops'] / 1e9:.2f} G at C = 3."
        )
    parts.append(
        f"The paper: STF uses about {paper.FLOPS_RATIO - 1:.0%} more FLOPs than MS-G3D (ratio "
        f"{paper.FLOPS_RATIO:.2f}); it gives no absolute numbers."
    )
    return "\n\n".join(parts)


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
        f"Loss terms of the {setting} joint STF models per fine-tuning epoch (plots/loss_terms.csv): each "
        "λ-weighted term beside L_ce, and the norm of its gradient over the network's parameters relative to "
        "L_ce's (measured on the first batches of each epoch), which says whether a λ makes its term matter:",
        f"![loss terms]({_rel(figs['loss_terms'], out_dir)})",
    ]
    if focus:
        parts.append(
            f"Focus maps Q (eq. 2, at the last block, of each model's predicted class) on {len(focus)} "
            f"{setting} test samples, resampled to the input frames; joints coloured by Q:"
        )
        parts += [f"![focus {i}]({_rel(path, out_dir)})" for i, path in enumerate(focus)]
    return "\n\n".join(parts)
