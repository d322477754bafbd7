"""The report's tables: read every `metrics.json` and `scores.parquet` the report needs (one per
row, cell and seed), then build Tables 2-5, the controls, the paired comparisons, the shift
test and FLOPs as `Table`s (CSV and Markdown).

Directory layout read (`stf.paths`; seed 0 has no `s{seed}` level):
  models/{setting}/{stream}[/s{seed}]/{row}/          Table 2 and controls, J and B cells
  results/{setting}[/s{seed}]/{row}/                  Table 2 and controls, J+B cells
  models/ntu60-xsub/joint/p{p}[/s{seed}]/{msg3d,stf}/ Table 4 (p = 100: the main models)
  models/ntu60-xsub/joint[/s{seed}]/stf-{m2,m3,m4}/   Table 5
  models/shift[/s{seed}]/{row}/                       NTU-60 -> NTU-120 linear probe
  results/flops.json                                  `stf flops`
with row in msg3d, stf (the paper's rows) and msg3d-ft, stf-ce, msg3d-ft-x2 (the controls).
Accuracies are percentages, means over the profile's seeds; tables print two decimals.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stf.config import SETTINGS, Params
from stf.io import atomic_path
from stf.paths import BASELINE, CONTROL_ROWS, ENSEMBLE, ROWS, fused_dir, model_dir, shift_dir, variant_name
from stf.report import paper
from stf.report.statistics import Comparison, compare, mean_std

METHODS: dict[str, str] = {BASELINE: ROWS[BASELINE], ENSEMBLE: ROWS[ENSEMBLE]}  # paper rows: directory -> label
CONTROLS: dict[str, str] = {name: ROWS[name] for name in CONTROL_ROWS}  # control rows
ALL_ROWS: dict[str, str] = METHODS | CONTROLS
VERSUS: tuple[str, ...] = (BASELINE, *CONTROL_ROWS)  # the rows STF is compared with
CELLS: tuple[tuple[str, str | None], ...] = (("J", "joint"), ("B", "bone"), ("J+B", None))  # None: fused
MAIN = ("ntu60-xsub", "joint")  # Tables 4 and 5 and the shift test use NTU-60 x-sub joint
METRICS_FILE = "metrics.json"


class ReportInputError(ValueError):
    """A file the report reads is missing or malformed; the message names it."""


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Metrics:
    """One `metrics.json`: top-1/top-5 (percent), per-class top-1 {label: percent}, test samples n."""

    top1: float
    top5: float
    per_class: dict[int, float]
    num_class: int
    source: Path
    n: int = 0


def _percent(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 100.0:
        raise ReportInputError(f"{path}: {key} must be a percentage in [0, 100], got {value!r}")
    return float(value)


def read_metrics(directory: Path) -> Metrics:
    """`<directory>/metrics.json` -> Metrics; ReportInputError names the file when it is unusable."""
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        raise ReportInputError(f"{path}: metrics file not found (has the stage that writes {directory} run?)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in ("top1", "top5", "per_class", "num_class", "n") if k not in data]
    if missing:
        raise ReportInputError(f"{path}: missing keys {missing}")
    if not isinstance(data["per_class"], dict):
        raise ReportInputError(f"{path}: per_class must map labels to percentages")
    try:
        per_class = {int(k): _percent(path, f"per_class[{k}]", v) for k, v in data["per_class"].items()}
    except ValueError as err:
        if isinstance(err, ReportInputError):
            raise
        raise ReportInputError(f"{path}: per_class keys must be integer labels ({err})") from None
    return Metrics(
        top1=_percent(path, "top1", data["top1"]),
        top5=_percent(path, "top5", data["top5"]),
        per_class=per_class,
        num_class=int(data["num_class"]),
        source=path,
        n=int(data["n"]),
    )


def read_flops(path: Path) -> dict[str, dict[str, float]]:
    """`results/flops.json` -> {"msg3d": {"params", "flops"}, "stf": {...}, "msg3d_c3": {...}}
    ("msg3d_c3", MS-G3D at the original's C = 3, is optional)."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: FLOPs file not found (run `stf flops ... --out {path}`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not valid JSON ({err})") from None
    out = {}
    for method in (*METHODS, "msg3d_c3"):
        entry = data.get(method) if isinstance(data, dict) else None
        if entry is None and method == "msg3d_c3":
            continue
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int | float) for k in ("params", "flops")):
            raise ReportInputError(f"{path}: expected {method!r}: {{'params': number, 'flops': number}}")
        if entry["flops"] <= 0:
            raise ReportInputError(f"{path}: {method} flops must be positive, got {entry['flops']}")
        out[method] = {"params": float(entry["params"]), "flops": float(entry["flops"])}
    return out


@dataclass(frozen=True)
class Cell:
    """One row on one cell, over seeds: each seed's metrics and the directory they came from.

    top1/top5/per_class are means over the seeds; top1_std the sample std (0 for one seed)."""

    runs: tuple[Metrics, ...]
    seeds: tuple[int, ...]

    @property
    def dirs(self) -> tuple[Path, ...]:
        return tuple(m.source.parent for m in self.runs)

    @property
    def top1(self) -> float:
        return mean_std([m.top1 for m in self.runs])[0]

    @property
    def top1_std(self) -> float:
        return mean_std([m.top1 for m in self.runs])[1]

    @property
    def top5(self) -> float:
        return mean_std([m.top5 for m in self.runs])[0]

    @property
    def top5_std(self) -> float:
        return mean_std([m.top5 for m in self.runs])[1]

    @property
    def num_class(self) -> int:
        return self.runs[0].num_class

    @property
    def n(self) -> int:
        return self.runs[0].n

    @property
    def per_class(self) -> dict[int, float]:
        """Mean over seeds of each class's top-1, for the classes every seed's file lists."""
        labels = set.intersection(*(set(m.per_class) for m in self.runs))
        return {k: float(np.mean([m.per_class[k] for m in self.runs])) for k in sorted(labels)}


def read_cell(dirs: Sequence[Path], seeds: Sequence[int]) -> Cell:
    return Cell(tuple(read_metrics(d) for d in dirs), tuple(int(s) for s in seeds))


def read_correct(cell: Cell, ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(sample ids, (S, N) bool top-1 correctness) from each seed's `scores.parquet`, rows in the
    order of `ids` (default: the first seed's file). ReportInputError when a file scores other
    samples than the others or its accuracy differs from its metrics.json."""
    from stf.stages.scores import ScoresError, read_scores, score_matrix

    rows = []
    for metrics in cell.runs:
        directory = metrics.source.parent
        try:
            df = read_scores(directory)
        except ScoresError as err:
            raise ReportInputError(str(err)) from None
        if ids is None:
            ids = list(df["sample_id"])
        if set(df["sample_id"]) != set(ids) or len(df) != len(ids):
            raise ReportInputError(
                f"{directory / 'scores.parquet'}: scores {len(df)} samples, not the {len(ids)} test samples of "
                f"{cell.runs[0].source.parent / 'scores.parquet'}; paired comparisons need the same samples"
            )
        df = df.set_index("sample_id").loc[list(ids)]
        correct = score_matrix(df).argmax(axis=1) == df["label"].to_numpy()
        acc = 100.0 * float(correct.mean())
        if abs(acc - metrics.top1) > 1e-3:
            raise ReportInputError(
                f"{directory}: scores.parquet gives top-1 {acc:.4f} but metrics.json says {metrics.top1:.4f}"
            )
        rows.append(correct)
    return list(ids), np.stack(rows)


def compare_cells(stf: Cell, others: Mapping[str, Cell], params: Params) -> dict[str, Comparison]:
    """STF against each other row on the same test samples (`stf.statistics.compare`)."""
    ids, a = read_correct(stf)
    r = params.report
    out = {}
    for name, cell in others.items():
        _, b = read_correct(cell, ids)
        out[name] = compare(a, b, n_resamples=r.resamples, seed=r.stats_seed)
    return out


@dataclass(frozen=True)
class AblationRow:
    name: str  # M1, M2, ... or the control's label
    model: str  # directory name: msg3d, stf-m2, ..., stf, msg3d-ft, ...
    losses: str  # "c+d", ...; "" for the baseline and the controls
    metrics: Cell
    reference: str | None = None  # the control row it is compared with (directory name)


@dataclass(frozen=True)
class Results:
    """Every metrics file of one pipeline run, as the tables use them.

    cells[row]["<setting>:<cell>"]: Table 2 and controls (row: msg3d, stf, msg3d-ft, stf-ce,
    msg3d-ft-x2); fractions[p][method]: Table 4; ablation: Table 5 rows (M1..M5, then the
    controls); shift[row]; flops[method]; comparisons["<setting>:<cell>"][row] and
    shift_comparisons[row]: STF − row, paired on the test samples.
    """

    settings: tuple[str, ...]
    seeds: tuple[int, ...]
    cells: dict[str, dict[str, Cell]]
    fractions: dict[int, dict[str, Cell]]
    ablation: tuple[AblationRow, ...]
    shift: dict[str, Cell]
    flops: dict[str, dict[str, float]]
    comparisons: dict[str, dict[str, Comparison]]
    shift_comparisons: dict[str, Comparison]
    alpha: float = 0.05

    @property
    def columns(self) -> list[str]:
        return [f"{s}:{c}" for s in self.settings for c, _ in CELLS]


def ordered_settings(params: Params) -> tuple[str, ...]:
    """The params settings in the paper's Table 2 order."""
    return tuple(s for s in SETTINGS if s in params.settings)


def ablation_variants(params: Params) -> list[str]:
    """Table 5's fine-tuned variants: those of params stf.variants outside the ensemble (m2, m3, m4)."""
    return [v for v in params.stf.variants if v not in params.stf.ensemble]


def variant_losses(params: Params, variant: str) -> str:
    return "+".join(params.stf.variants[variant])


def ensemble_losses(params: Params) -> str:
    return " & ".join(variant_losses(params, v) for v in params.stf.ensemble)


def collect(params: Params, models_dir: Path, results_dir: Path) -> Results:
    """Read every metrics and scores file the report needs (ReportInputError on the first unusable one)."""
    models_dir, results_dir = Path(models_dir), Path(results_dir)
    settings = ordered_settings(params)
    seeds = tuple(params.sizes.seeds)

    def cell_dirs(row: str, setting: str, stream: str | None) -> list[Path]:
        if stream is None:
            return [fused_dir(results_dir, setting, row, seed) for seed in seeds]
        return [model_dir(models_dir, setting, stream, row, seed) for seed in seeds]

    cells: dict[str, dict[str, Cell]] = {row: {} for row in ALL_ROWS}
    for row in ALL_ROWS:
        for s in settings:
            for cell, stream in CELLS:
                cells[row][f"{s}:{cell}"] = read_cell(cell_dirs(row, s, stream), seeds)
    setting, stream = MAIN

    def main_cell(name: str, fraction: int = 100) -> Cell:
        return read_cell([model_dir(models_dir, setting, stream, name, s, fraction) for s in seeds], seeds)

    fractions = {p: {m: main_cell(m, p) for m in METHODS} for p in sorted(params.split.fractions)}
    rows = [AblationRow("M1", BASELINE, "", main_cell(BASELINE))]
    for v in ablation_variants(params):
        rows.append(AblationRow(f"M{len(rows) + 1}", variant_name(v), variant_losses(params, v),
                                main_cell(variant_name(v)), reference=CONTROL_ROWS[0]))  # fmt: skip
    rows.append(AblationRow(f"M{len(rows) + 1}", ENSEMBLE, ensemble_losses(params), main_cell(ENSEMBLE),
                            reference=CONTROL_ROWS[2]))  # fmt: skip
    rows += [AblationRow(CONTROLS[c], c, "", main_cell(c)) for c in CONTROL_ROWS]
    shift = {row: read_cell([shift_dir(models_dir, row, s) for s in seeds], seeds) for row in ALL_ROWS}
    flops = read_flops(results_dir / "flops.json")
    comparisons = {
        col: compare_cells(cells[ENSEMBLE][col], {r: cells[r][col] for r in VERSUS}, params)
        for col in [f"{s}:{c}" for s in settings for c, _ in CELLS]
    }
    shift_comparisons = compare_cells(shift[ENSEMBLE], {r: shift[r] for r in VERSUS}, params)
    return Results(settings, seeds, cells, fractions, tuple(rows), shift, flops, comparisons, shift_comparisons,
                   params.report.alpha)  # fmt: skip


# --------------------------------------------------------------------------- tables


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for a table cell; None (not available) is an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec)


def fmt_cell(cell: Cell, metric: str = "top1") -> str:
    """Mean, and `± std` when the cell has more than one seed."""
    mean = getattr(cell, metric)
    if len(cell.runs) < 2:
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(getattr(cell, metric + '_std'))}"


def fmt_comparison(c: Comparison, alpha: float) -> str:
    """`+1.23 [−0.40, 2.85]` and a `*` when p < alpha."""
    mark = "*" if c.significant(alpha) else ""
    return f"{c.diff:+.2f}{mark} [{c.ci95[0]:.2f}, {c.ci95[1]:.2f}]"


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]

    def write_csv(self, path: Path) -> Path:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(self.header)
            writer.writerows(self.rows)
        return Path(path)

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell or "–" for cell in row) + " |" for row in self.rows]
        return "\n".join(lines)


def table2(
    res: Results, metric: str = "top1", settings: Sequence[str] | None = None, rows: Mapping[str, str] = METHODS
) -> Table:
    """Header `method,<setting>:J,<setting>:B,<setting>:J+B,...`; one row per entry of `rows`
    (default MS-G3D and STF; `CONTROLS` for table2_controls.csv); means over seeds."""
    settings = list(settings if settings is not None else res.settings)
    columns = [f"{s}:{c}" for s in settings for c, _ in CELLS]
    out = [[label] + [fmt(getattr(res.cells[m][col], metric)) for col in columns] for m, label in rows.items()]
    return Table(["method", *columns], out)


def gains(res: Results) -> dict[str, float]:
    """STF - MS-G3D top-1 per Table 2 cell."""
    return {col: res.cells[ENSEMBLE][col].top1 - res.cells[BASELINE][col].top1 for col in res.columns}


def strongest_control(res: Results, col: str) -> str:
    """The control row with the highest mean top-1 in cell `col` (first in order on a tie)."""
    return max(CONTROL_ROWS, key=lambda r: (res.cells[r][col].top1, -CONTROL_ROWS.index(r)))


def table3(res: Results) -> Table:
    """Row `gain`: STF - MS-G3D per cell. Row `gain_ratio`, Kinetics cells only: our gain over the
    paper's gain of MS-G3D over 2s-AGCN (the paper's Table 3 ratio; we do not run 2s-AGCN).
    Row `gain_over_strongest_control`: STF minus the best of the three controls per cell."""
    g = gains(res)
    ratio = []
    for col in res.columns:
        setting, cell = col.split(":")
        ratio.append(fmt(g[col] / paper.TABLE3_MSG3D_OVER_2SAGCN[cell]) if setting == "kinetics" else "")
    control = [fmt(res.cells[ENSEMBLE][c].top1 - res.cells[strongest_control(res, c)][c].top1) for c in res.columns]
    return Table(
        ["quantity", *res.columns],
        [
            ["gain", *(fmt(g[c]) for c in res.columns)],
            ["gain_ratio", *ratio],
            ["gain_over_strongest_control", *control],
        ],
    )


def comparisons_table(res: Results) -> Table:
    """One row per cell and compared row: test samples, seeds, both accuracies (mean, std), STF − row,
    its 95 % paired bootstrap interval, the permutation p, McNemar's exact p per seed, significance."""
    header = ["cell", "versus", "n", "seeds", "stf_top1", "stf_std", "other_top1", "other_std", "diff",
              "ci95_low", "ci95_high", "p", "mcnemar_p", "significant"]  # fmt: skip
    rows = []
    groups = [(col, res.comparisons[col], res.cells, col) for col in res.columns]
    groups.append(("shift", res.shift_comparisons, None, None))
    for label, comps, cells, col in groups:
        for row, c in comps.items():
            stf = cells[ENSEMBLE][col] if cells is not None else res.shift[ENSEMBLE]
            other = cells[row][col] if cells is not None else res.shift[row]
            rows.append([
                label, ALL_ROWS[row], str(c.n), str(c.seeds), fmt(stf.top1), fmt(stf.top1_std), fmt(other.top1),
                fmt(other.top1_std), fmt(c.diff), fmt(c.ci95[0]), fmt(c.ci95[1]), fmt(c.p, ".4f"),
                ";".join(fmt(p, ".4f") for p in c.mcnemar_p), "yes" if c.significant(res.alpha) else "no",
            ])  # fmt: skip
    return Table(header, rows)


def table4(res: Results) -> Table:
    """Header `method,p10,...,p100`; rows MS-G3D, STF and gain (NTU-60 x-sub joint)."""
    ps = sorted(res.fractions)
    rows = [[label] + [fmt(res.fractions[p][m].top1) for p in ps] for m, label in METHODS.items()]
    rows.append(["gain"] + [fmt(res.fractions[p][ENSEMBLE].top1 - res.fractions[p][BASELINE].top1) for p in ps])
    return Table(["method", *(f"p{p}" for p in ps)], rows)


def _ablation_by_model(res: Results) -> dict[str, AblationRow]:
    return {r.model: r for r in res.ablation}


def table5(res: Results) -> Table:
    """Header `model,name,losses,top1,delta,delta_control`, one row per ablation model (M1..M5)
    and per control; delta: over M1; delta_control: over the matching control (MS-G3D+ft for the
    single fine-tuned models M2..M4, MS-G3D+ft x2 for the ensemble M5)."""
    base = res.ablation[0].metrics.top1
    by_model = _ablation_by_model(res)
    rows = []
    for r in res.ablation:
        ref = fmt(r.metrics.top1 - by_model[r.reference].metrics.top1) if r.reference else ""
        rows.append([r.name, r.model, r.losses, fmt(r.metrics.top1), fmt(r.metrics.top1 - base), ref])
    return Table(["model", "name", "losses", "top1", "delta", "delta_control"], rows)


def shift_table(res: Results) -> Table:
    """Header `method,top1,top5`; rows MS-G3D, STF, the controls, gain (STF − MS-G3D) and
    gain_over_strongest_control (linear probe on NTU-120 x-sub)."""
    rows = [[label, fmt(res.shift[m].top1), fmt(res.shift[m].top5)] for m, label in ALL_ROWS.items()]
    a, b = res.shift[BASELINE], res.shift[ENSEMBLE]
    rows.append(["gain", fmt(b.top1 - a.top1), fmt(b.top5 - a.top5)])
    best = max(CONTROL_ROWS, key=lambda r: (res.shift[r].top1, -CONTROL_ROWS.index(r)))
    rows.append(["gain_over_strongest_control", fmt(b.top1 - res.shift[best].top1), fmt(b.top5 - res.shift[best].top5)])
    return Table(["method", "top1", "top5"], rows)


def flops_table(res: Results) -> Table:
    """Header `method,params,gflops,ratio` (ratio: FLOPs over MS-G3D's), full-width networks; a last
    row `MS-G3D (C = 3)`, the original's input, when flops.json has it."""
    base = res.flops["msg3d"]["flops"]
    labels = dict(METHODS) | ({"msg3d_c3": "MS-G3D (C = 3)"} if "msg3d_c3" in res.flops else {})
    rows = []
    for m, label in labels.items():
        flops = res.flops[m]["flops"]
        rows.append([label, str(int(res.flops[m]["params"])), fmt(flops / 1e9), fmt(flops / base, ".3f")])
    return Table(["method", "params", "gflops", "ratio"], rows)


def per_class_table(res: Results, setting: str, names: dict[int, str]) -> Table:
    """Header `label,name,msg3d,stf,diff`: per-class top-1 of the joint models of `setting` (seed
    means), for the classes both metrics files list (classes present in the test part)."""
    a = res.cells[BASELINE][f"{setting}:J"].per_class
    b = res.cells[ENSEMBLE][f"{setting}:J"].per_class
    rows = [[str(k), names[k], fmt(a[k]), fmt(b[k]), fmt(b[k] - a[k])] for k in sorted(set(a) & set(b))]
    return Table(["label", "name", "msg3d", "stf", "diff"], rows)


def fractions_table(res: Results) -> Table:
    """Header `fraction,msg3d,stf` (the plot behind Table 4)."""
    rows = [[str(p), *(fmt(res.fractions[p][m].top1) for m in METHODS)] for p in sorted(res.fractions)]
    return Table(["fraction", "msg3d", "stf"], rows)


def metrics_summary(res: Results, profile: str, source: str) -> dict:
    """Nested numbers for `results/metrics.json` (`dvc metrics show`), rounded to 4 decimals."""

    def r(x: float) -> float:
        return round(float(x), 4)

    def grid(get) -> dict:
        return {s: {c: r(get(f"{s}:{c}")) for c, _ in CELLS} for s in res.settings}

    out: dict = {"profile": profile, "source": source, "seeds": list(res.seeds)}
    out["top1"] = {m: grid(lambda col, m=m: res.cells[m][col].top1) for m in ALL_ROWS}
    if "kinetics" in res.settings:
        out["kinetics_top5"] = {m: {c: r(res.cells[m][f"kinetics:{c}"].top5) for c, _ in CELLS} for m in METHODS}
    g = gains(res)
    out["gain"] = grid(lambda col: g[col])
    out["gain_over_strongest_control"] = grid(
        lambda col: res.cells[ENSEMBLE][col].top1 - res.cells[strongest_control(res, col)][col].top1
    )
    out["fractions"] = {m: {f"p{p}": r(res.fractions[p][m].top1) for p in sorted(res.fractions)} for m in METHODS}
    out["ablation"] = {row.name: r(row.metrics.top1) for row in res.ablation}
    out["shift"] = {m: r(res.shift[m].top1) for m in ALL_ROWS}
    out["flops"] = {
        "msg3d_gflops": r(res.flops["msg3d"]["flops"] / 1e9),
        "stf_gflops": r(res.flops["stf"]["flops"] / 1e9),
        "ratio": r(res.flops["stf"]["flops"] / res.flops["msg3d"]["flops"]),
    }
    return out


def headline_metrics(res: Results) -> dict[str, dict[str, float]]:
    """One small record per Table 2 cell, keyed `{setting}-{J|B|J+B}`: the top-1 % of each row
    and STF's gain over MS-G3D, rounded as in table2.csv. `stf report` writes each to
    `headline/<key>.json`, so that `dvc metrics show` prints one row per cell."""
    out = {}
    for col in res.columns:
        row = {label: round(float(res.cells[m][col].top1), 2) for m, label in METHODS.items()}
        row["gain"] = round(row["STF"] - row["MS-G3D"], 2)
        out[col.replace(":", "-")] = row
    return out


# --------------------------------------------------------------------------- what produced the numbers


def _listing(values: Mapping[str, object]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def parameter_table(params: Params) -> Table:
    """Every parameter that changes a number of the report, one row each (`parameter,value`), so
    that two runs' reports can be told apart."""
    s, st, t = params.sizes, params.stf, params.train
    lam = st.lambdas
    rows = [
        ("profile", f"{params.profile} ({s.source} data)"),
        ("seeds", ", ".join(map(str, s.seeds))),
        (
            "synthetic classes / samples per class",
            _listing({d: f"{s.synth.classes[d]}/{s.synth.samples_per_class[d]}" for d in s.synth.classes})
            if s.source == "synthetic"
            else "(real data)",
        ),
        (
            "synthetic frames (min-max), noise, confusable / two-person share",
            f"{s.synth.min_frames}-{s.synth.max_frames}, {params.synth.noise_std:g}, "
            f"{params.synth.confusable_fraction:g} / {params.synth.two_person_fraction:g} "
            f"(synth.seed {params.synth.seed})"
            if s.source == "synthetic"
            else "(real data)",
        ),
        (
            "T (frames), persons, block widths",
            f"{s.frames}, {params.preprocess.persons}, {'/'.join(map(str, s.widths))}",
        ),
        ("validation part (% of training, split.seed)", f"{s.val_percent} ({params.split.seed})"),
        ("batch / forward chunk", f"{s.batch_size} / {s.forward_batch_size}"),
        (
            "baseline lr, epochs, lr steps",
            "; ".join(f"{d} {t.lr[d]:g}, {s.epochs[d]}, {s.lr_steps[d]}" for d in s.epochs),
        ),
        (
            "SGD momentum / Nesterov / weight decay / lr decay",
            f"{t.momentum:g} / {t.nesterov} / {t.weight_decay:g} / {t.lr_gamma:g}",
        ),
        (
            "fine-tuning (STF and controls): lr, epochs",
            f"{st.lr:g} (fixed; select-lr grid {st.lr_grid}), {s.finetune_epochs}",
        ),
        ("λe / λd / λc / λGk", f"{lam.e:g} / {lam.d:g} / {lam.c:g} / {lam.gk:g}"),
        ("focus-distance norm (stf.loss_norm)", st.loss_norm),
        (
            "STF ensemble; variants",
            f"{' + '.join(st.ensemble)}; " + _listing({k: "+".join(v) for k, v in st.variants.items()}),
        ),
        (
            "STF module: K, β hidden, α hidden, α time bins",
            f"{st.graph_scales}, {st.beta_hidden}, {st.alpha_hidden}, {st.alpha_time_bins}",
        ),
        ("linear probe: lr, epochs", f"{st.probe_lr:g}, {s.probe_epochs}"),
        ("J+B bone weight", f"{params.fuse.bone_weight:g}"),
        (
            "statistics: resamples, seed, α",
            f"{params.report.resamples}, {params.report.stats_seed}, {params.report.alpha:g}",
        ),
    ]
    return Table(["parameter", "value"], [[k, str(v)] for k, v in rows])


def trivial_top5_note(num_classes: Mapping[str, int], top5: Mapping[str, Sequence[float]] | None = None) -> str:
    """A sentence for cells whose top-5 cannot separate the methods, else "": trivial by
    construction (5 classes or fewer), or saturated (every row at 100 % in `top5[cell]`)."""
    trivial = [name for name, k in num_classes.items() if k <= 5]
    saturated = [
        name for name, values in (top5 or {}).items() if name not in trivial and all(v >= 100.0 for v in values)
    ]
    notes = []
    if trivial:
        notes.append(
            f"Top-5 is trivial on {', '.join(trivial)}: with 5 classes or fewer every label is among the 5 "
            "highest scores, so it reads 100.00 whatever the model does."
        )
    if saturated:
        ks = sorted({num_classes[n] for n in saturated})
        notes.append(
            f"Top-5 is 100.00 for every row on {', '.join(saturated)} ({'/'.join(map(str, ks))} classes, so 5 "
            "guesses cover most of them): it cannot separate the methods here."
        )
    return " ".join(notes)
