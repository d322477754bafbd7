"""`build_evidence_report`: can this run tell whether STF helps? One cell (NTU-60 x-sub joint by
default), every seed of the baseline, STF and the three controls, paired on the same test samples.

In: `models/{setting}/{stream}[/s{seed}]/{row}/` (metrics.json, scores.parquet; history.csv of the
STF ensemble members) for row in msg3d, stf, msg3d-ft, stf-ce, msg3d-ft-x2 (`stf.paths`), and
the setting's split file (sample counts). Out, under `out_dir`:

- `summary.json`: {"cell", "seeds", "train_samples", "test_samples",
  "top1": {ROW: {"mean", "std", "runs"}}, "stf_vs": {ROW: {"diff", "ci95", "p"}}} with ROW the
  row labels MS-G3D, STF, MS-G3D+ft, STF+ce, MS-G3D+ft x2 (`stf_vs` has every row but STF);
  diff and ci95 in percentage points, p of the paired permutation test (`stf.report.statistics`);
- `report.md`: parameters, top-1 per seed, the comparisons with McNemar's test per seed, a
  verdict, the loss-term table and curves, the per-class differences on the confusable pairs;
- `comparisons.csv`, `top1.csv`, `pairs.csv`, `loss_terms.csv`, `figures/loss_terms.png`,
  `figures/pairs.png`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stf.config import Params
from stf.data.actions import action_name
from stf.io import write_json_atomic, write_text_atomic
from stf.paths import BASELINE, CONTROL_ROWS, ENSEMBLE, FT, FT_B, ROWS, STF_CE, model_dir, variant_name
from stf.report.figures import loss_terms_figure, loss_terms_table, pairs_figure, read_history
from stf.report.statistics import Comparison
from stf.report.tables import (
    Cell,
    ReportInputError,
    Table,
    compare_cells,
    fmt,
    fmt_cell,
    parameter_table,
    read_cell,
)

log = logging.getLogger(__name__)

EVIDENCE_ROWS: tuple[str, ...] = (BASELINE, ENSEMBLE, *CONTROL_ROWS)  # directory names, summary order
STREAM_CELL = {"joint": "J", "bone": "B"}


def confusable_pairs(
    params: Params,
    dataset: str,
    predictions: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    count: int = 6,
) -> list[tuple[int, int]]:
    """Class pairs to inspect: the synthetic dataset's twin classes (`synth_motion.class_roles`:
    class c is the near-twin of c − 1), or, on real data, the `count` pairs the baseline
    confuses most (predictions (S, N) per seed, labels (N,))."""
    if params.sizes.source == "synthetic":
        from stf.data.synth.motion import class_roles

        k = params.sizes.synth.classes[dataset]
        roles = class_roles(k + 1, params.synth.two_person_fraction, params.synth.confusable_fraction)
        return [(c - 1, c) for c in range(1, k) if roles[c][1]]
    if predictions is None or labels is None:
        return []
    k = int(max(labels.max(), predictions.max())) + 1
    confusion = np.zeros((k, k))
    for pred in predictions:
        np.add.at(confusion, (labels, pred), 1.0)
    both = confusion + confusion.T
    np.fill_diagonal(both, 0.0)
    upper = [(int(a), int(b)) for a, b in zip(*np.triu_indices(k, 1), strict=True) if both[a, b] > 0]
    return sorted(upper, key=lambda ab: -both[ab])[:count]


def _predictions(cell: Cell, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(S, N) predicted classes and (N,) labels in the order of `ids`."""
    from stf.stages.scores import read_scores, score_matrix

    preds, labels = [], None
    for directory in cell.dirs:
        df = read_scores(directory).set_index("sample_id").loc[ids]
        preds.append(score_matrix(df).argmax(axis=1))
        labels = df["label"].to_numpy()
    return np.stack(preds), labels


def _split_counts(split: Path) -> dict[str, int]:
    from stf.data.splits import read_split

    table, _ = read_split(Path(split))
    parts = table["part"].astype(str)
    return {part: int((parts == part).sum()) for part in ("train", "val", "test")}


def pair_table(
    pairs: list[tuple[int, int]],
    cells: dict[str, Cell],
    preds: dict[str, np.ndarray],
    labels: np.ndarray,
    control: str,
    dataset: str,
) -> Table:
    """Per class of each confusable pair: its top-1 under MS-G3D, the strongest control and STF
    (seed means), the differences, and how often (percent, seed mean) a sample of the class is
    predicted as its twin."""
    shown = {BASELINE: ROWS[BASELINE], control: ROWS[control], ENSEMBLE: ROWS[ENSEMBLE]}
    header = ["pair", "label", "name", *(f"{lab} top1" for lab in shown.values()),
              f"STF - {ROWS[BASELINE]}", f"STF - {ROWS[control]}",
              *(f"{lab} → twin %" for lab in shown.values())]  # fmt: skip
    rows = []
    for a, b in pairs:
        for cls, twin in ((a, b), (b, a)):
            members = labels == cls
            acc = {r: cells[r].per_class.get(cls) for r in shown}
            as_twin = {
                r: (100.0 * float((preds[r][:, members] == twin).mean()) if members.any() else None) for r in shown
            }
            diff = [
                None if acc[ENSEMBLE] is None or acc[r] is None else acc[ENSEMBLE] - acc[r] for r in (BASELINE, control)
            ]
            rows.append([f"{a}/{b}", str(cls), action_name(dataset, cls), *(fmt(acc[r]) for r in shown),
                         *(fmt(d) for d in diff), *(fmt(as_twin[r]) for r in shown)])  # fmt: skip
    return Table(header, rows)


def _verdict(comps: dict[str, Comparison], best: str, alpha: float) -> str:
    c = comps[best]
    label = ROWS[best]
    interval = f"{c.diff:+.2f} points, 95 % interval [{c.ci95[0]:.2f}, {c.ci95[1]:.2f}], p = {c.p:.3g}"
    if c.diff > 0 and c.significant(alpha):
        return f"STF beats the strongest control, {label}: {interval}."
    if c.diff > 0:
        return (
            f"STF is ahead of the strongest control, {label}, but not significantly ({interval}): "
            "this run cannot tell the STF modules and losses from extra fine-tuning and ensembling."
        )
    if c.significant(alpha):
        return f"STF does not beat the strongest control: {label} is significantly better ({interval})."
    return f"STF does not beat the strongest control, {label} ({interval})."


def build_evidence_report(
    params: Params,
    models_dir: Path,
    split: Path,
    out_dir: Path,
    setting: str = "ntu60-xsub",
    stream: str = "joint",
) -> list[Path]:
    """Write summary.json, report.md, the CSV tables and figures of one cell under `out_dir`;
    returns the paths. ReportInputError (a ValueError) names the first unusable input."""
    models_dir, out_dir = Path(models_dir), Path(out_dir)
    dataset = params.setting(setting).dataset
    seeds = tuple(params.sizes.seeds)
    cell_name = f"{setting}:{STREAM_CELL[stream]}"
    cells = {
        row: read_cell([model_dir(models_dir, setting, stream, row, s) for s in seeds], seeds) for row in EVIDENCE_ROWS
    }
    versus = [r for r in EVIDENCE_ROWS if r != ENSEMBLE]
    comps = compare_cells(cells[ENSEMBLE], {r: cells[r] for r in versus}, params)
    counts = _split_counts(split)
    n_test = comps[BASELINE].n
    if n_test != counts["test"]:
        raise ReportInputError(f"{split}: {counts['test']} test samples, but the scores files hold {n_test}")
    best = max(CONTROL_ROWS, key=lambda r: (cells[r].top1, -CONTROL_ROWS.index(r)))

    summary = {
        "cell": cell_name,
        "seeds": list(seeds),
        "train_samples": counts["train"],
        "test_samples": n_test,
        "top1": {
            ROWS[r]: {"mean": cells[r].top1, "std": cells[r].top1_std, "runs": [m.top1 for m in cells[r].runs]}
            for r in EVIDENCE_ROWS
        },
        "stf_vs": {ROWS[r]: comps[r].to_json() for r in versus},
    }
    written = [out_dir / "summary.json"]
    write_json_atomic(written[0], summary)

    from stf.report.tables import read_correct

    ids, _ = read_correct(cells[ENSEMBLE])
    preds, labels = {}, None
    for r in (BASELINE, best, ENSEMBLE):
        preds[r], labels = _predictions(cells[r], ids)
    pairs = confusable_pairs(params, dataset, preds[BASELINE], labels)
    histories = {
        f"STF-{v}": [read_history(model_dir(models_dir, setting, stream, variant_name(v), s)) for s in seeds]
        for v in params.stf.ensemble
    }
    tables = {
        "top1.csv": Table(
            ["method", "mean", "std", *(f"seed {s}" for s in seeds)],
            [
                [ROWS[r], fmt(cells[r].top1), fmt(cells[r].top1_std), *(fmt(m.top1) for m in cells[r].runs)]
                for r in EVIDENCE_ROWS
            ],
        ),  # fmt: skip
        "comparisons.csv": _comparison_table(comps, cells, params.report.alpha),
        "pairs.csv": pair_table(pairs, cells, preds, labels, best, dataset),
        "loss_terms.csv": loss_terms_table(histories),
        "parameters.csv": parameter_table(params),
    }
    written += [t.write_csv(out_dir / name) for name, t in tables.items()]
    figures = out_dir / "figures"
    figs = {
        "loss_terms": loss_terms_figure(tables["loss_terms.csv"], figures / "loss_terms.png",
                                        f"{cell_name}: STF loss terms per fine-tuning epoch (mean over seeds)"),
        "pairs": pairs_figure(tables["pairs.csv"], figures / "pairs.png",
                              f"{cell_name}: per-class top-1 differences on the confusable pairs"),
    }  # fmt: skip
    written += list(figs.values())
    lrs = {
        label: _finetune_lr(d) for label, d in _finetuned_dirs(params, models_dir, setting, stream, seeds[0]).items()
    }
    md = render_evidence(params, cell_name, counts, cells, comps, best, tables, lrs)
    written.append(out_dir / "report.md")
    write_text_atomic(written[-1], md)
    log.info("evidence report %s: %d files under %s", cell_name, len(written), out_dir)
    return written


def _finetuned_dirs(params: Params, models_dir: Path, setting: str, stream: str, seed: int) -> dict[str, Path]:
    """Report label -> directory of every fine-tuned model of the cell (one seed)."""
    names = {f"STF-{v}": variant_name(v) for v in params.stf.ensemble}
    names |= {ROWS[FT]: FT, f"{ROWS[FT]} (b)": FT_B, ROWS[STF_CE]: STF_CE}
    return {label: model_dir(models_dir, setting, stream, name, seed) for label, name in names.items()}


def _finetune_lr(directory: Path) -> str:
    """The lr(s) a fine-tuning run used, from its history.csv."""
    df = read_history(directory)
    return ", ".join(f"{v:g}" for v in dict.fromkeys(df["lr"].tolist())) if "lr" in df.columns else "?"


def _comparison_table(comps: dict[str, Comparison], cells: dict[str, Cell], alpha: float) -> Table:
    header = ["versus", "n", "seeds", "stf_top1", "other_top1", "diff", "ci95_low", "ci95_high", "p",
              "mcnemar_p", "discordant", "significant"]  # fmt: skip
    rows = []
    for r, c in comps.items():
        rows.append([
            ROWS[r], str(c.n), str(c.seeds), fmt(c.a_top1), fmt(c.b_top1), fmt(c.diff), fmt(c.ci95[0]),
            fmt(c.ci95[1]), fmt(c.p, ".4f"), ";".join(fmt(p, ".4f") for p in c.mcnemar_p),
            ";".join(f"{ab}/{ba}" for ab, ba in c.discordant), "yes" if c.significant(alpha) else "no",
        ])  # fmt: skip
    return Table(header, rows)


def render_evidence(
    params: Params,
    cell_name: str,
    counts: dict[str, int],
    cells: dict[str, Cell],
    comps: dict[str, Comparison],
    best: str,
    tables: dict[str, Table],
    lrs: dict[str, str],
) -> str:
    alpha = params.report.alpha
    n = comps[BASELINE].n
    seeds = params.sizes.seeds
    top_rows = [[ROWS[r], fmt_cell(cells[r]), *(fmt(m.top1) for m in cells[r].runs)] for r in EVIDENCE_ROWS]
    comp_rows = []
    for r, c in comps.items():
        mark = "yes" if c.significant(alpha) else "no"
        mc = ", ".join(f"{p:.3g} ({ab}/{ba})" for p, (ab, ba) in zip(c.mcnemar_p, c.discordant, strict=True))
        comp_rows.append([ROWS[r], fmt_cell(cells[r]), f"{c.diff:+.2f}", f"[{c.ci95[0]:.2f}, {c.ci95[1]:.2f}]",
                          f"{c.p:.3g}", mark, mc])  # fmt: skip
    gain_base, gain_best = comps[BASELINE], comps[best]
    loss_final = _final_terms(tables["loss_terms.csv"])
    pairs = tables["pairs.csv"]
    parts = [
        f"# Evidence: does STF help on {cell_name}?",
        f"Profile **{params.profile}** ({params.sizes.source} data). {counts['train']} training samples"
        + (f" ({counts['val']} more held out as the validation part)" if counts["val"] else "")
        + f", {n} test samples; {len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}); "
        "every model of every row is trained once per seed, and all rows are scored on the same test samples.",
        "## What produced these numbers (parameters.csv)",
        tables["parameters.csv"].to_markdown(),
        "Fine-tuning lr used (history.csv, seed "
        + str(seeds[0])
        + "): "
        + "; ".join(f"{k} {v}" for k, v in lrs.items())
        + ". The lr is fixed a priori in params.yaml and "
        "nothing is chosen on the test part (docs/method.md).",
        "## Top-1 (top1.csv)",
        Table(["method", "top-1 (mean ± std)", *(f"seed {s}" for s in seeds)], top_rows).to_markdown(),
        "## STF against each row, paired on the test samples (comparisons.csv)",
        "diff: STF − row, seed-averaged top-1 in points; interval: paired bootstrap over the test samples "
        f"(95 %, {params.report.resamples} resamples); p: paired permutation test of the same difference; "
        f"significant: p < {alpha:g}; McNemar: exact test per seed (discordant pairs STF-only/row-only correct).",
        Table(
            ["row", "row top-1", "diff", "95 % interval", "p", "significant", "McNemar p per seed (pairs)"], comp_rows
        ).to_markdown(),  # fmt: skip
        "## Verdict",
        f"Gain over the baseline MS-G3D: {gain_base.diff:+.2f} [{gain_base.ci95[0]:.2f}, {gain_base.ci95[1]:.2f}] "
        f"(p = {gain_base.p:.3g}); gain over the strongest control, {ROWS[best]}: {gain_best.diff:+.2f} "
        f"[{gain_best.ci95[0]:.2f}, {gain_best.ci95[1]:.2f}] (p = {gain_best.p:.3g}).",
        _verdict(comps, best, alpha),
        "## Loss terms (loss_terms.csv)",
        "Each λ-weighted term of eq. 6 beside L_ce per fine-tuning epoch, and the norm of its gradient over "
        "the network's parameters relative to L_ce's (measured on the first batches of each epoch; mean over "
        "seeds). A ratio far below 1 means the term barely moves the weights at this λ.",
        loss_final,
        "![loss terms](figures/loss_terms.png)",
        "## Confusable pairs (pairs.csv)",
        (
            "The synthetic dataset's near-twin classes (the twin moves the reach target one joint along the skeleton); "
            if params.sizes.source == "synthetic"
            else "The class pairs the baseline confuses most; "
        )
        + "per class: top-1 under MS-G3D, the strongest control and STF, and how often its samples are "
        "predicted as the twin (the confusion L_d is meant to reduce).",
        pairs.to_markdown() if pairs.rows else "(no confusable pairs in this dataset)",
        "![pairs](figures/pairs.png)",
    ]
    return "\n\n".join(parts) + "\n"


def _final_terms(table: Table) -> str:
    """Markdown of the last epoch's rows of a loss-terms table."""
    if not table.rows:
        return "(no loss terms logged)"
    last = {}
    for row in table.rows:
        last[row[0]] = max(last.get(row[0], 0), int(row[1]))
    rows = [[m, e, term, w, g] for m, e, term, w, g in table.rows if int(e) == last[m]]
    return (
        "Last epoch:\n\n"
        + Table(["model", "epoch", "term", "value (λ applied)", "grad norm / L_ce's"], rows).to_markdown()
    )
