"""The report's tables: read every `metrics.json` the report needs, then build Tables 2-5, the
shift test and FLOPs as `Table`s (CSV and Markdown).

Directory layout read (see docs/architecture.md):
  models/{setting}/{stream}/{msg3d,stf}/metrics.json      Table 2, J and B cells
  results/{setting}/{msg3d,stf}/metrics.json               Table 2, J+B cells
  models/ntu60-xsub/joint/p{p}/{msg3d,stf}/metrics.json    Table 4 (p = 100: the main models)
  models/ntu60-xsub/joint/stf-{m2,m3,m4}/metrics.json      Table 5
  models/shift/{msg3d,stf}/metrics.json                    NTU-60 -> NTU-120 linear probe
  results/flops.json                                       `stf flops`
Accuracies are percentages; tables print them with two decimals.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stf.report import paper
from stf.config import SETTINGS, Params
from stf.io import atomic_path

METHODS: dict[str, str] = {"msg3d": "MS-G3D", "stf": "STF"}  # directory name -> row label
CELLS: tuple[tuple[str, str | None], ...] = (("J", "joint"), ("B", "bone"), ("J+B", None))  # None: fused
MAIN = ("ntu60-xsub", "joint")  # Tables 4 and 5 and the shift test use NTU-60 x-sub joint
METRICS_FILE = "metrics.json"


class ReportInputError(ValueError):
    """A file the report reads is missing or malformed; the message names it."""


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Metrics:
    """One `metrics.json`: top-1/top-5 (percent) and per-class top-1 {label: percent}."""

    top1: float
    top5: float
    per_class: dict[int, float]
    num_class: int
    source: Path


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
    missing = [k for k in ("top1", "top5", "per_class", "num_class") if k not in data]
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
    )


def read_flops(path: Path) -> dict[str, dict[str, float]]:
    """`results/flops.json` -> {"msg3d": {"params", "flops"}, "stf": {...}}."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: FLOPs file not found (run `stf flops ... --out {path}`)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not valid JSON ({err})") from None
    out = {}
    for method in METHODS:
        entry = data.get(method) if isinstance(data, dict) else None
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int | float) for k in ("params", "flops")):
            raise ReportInputError(f"{path}: expected {method!r}: {{'params': number, 'flops': number}}")
        if entry["flops"] <= 0:
            raise ReportInputError(f"{path}: {method} flops must be positive, got {entry['flops']}")
        out[method] = {"params": float(entry["params"]), "flops": float(entry["flops"])}
    return out


@dataclass(frozen=True)
class AblationRow:
    name: str  # M1, M2, ...
    model: str  # directory name: msg3d, stf-m2, ..., stf
    losses: str  # "c+d", ...; "" for the baseline
    metrics: Metrics


@dataclass(frozen=True)
class Results:
    """Every metrics file of one pipeline run, as the tables use them.

    cells[method]["<setting>:<cell>"]: Table 2 (method: msg3d / stf);
    fractions[p][method]: Table 4; ablation: Table 5 rows; shift[method]; flops[method].
    """

    settings: tuple[str, ...]
    cells: dict[str, dict[str, Metrics]]
    fractions: dict[int, dict[str, Metrics]]
    ablation: tuple[AblationRow, ...]
    shift: dict[str, Metrics]
    flops: dict[str, dict[str, float]]

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
    """Read every metrics file the report needs (ReportInputError on the first unusable one)."""
    models_dir, results_dir = Path(models_dir), Path(results_dir)
    settings = ordered_settings(params)
    cells: dict[str, dict[str, Metrics]] = {m: {} for m in METHODS}
    for method in METHODS:
        for s in settings:
            for cell, stream in CELLS:
                directory = models_dir / s / stream / method if stream else results_dir / s / method
                cells[method][f"{s}:{cell}"] = read_metrics(directory)
    main = models_dir / MAIN[0] / MAIN[1]
    fractions = {}
    for p in sorted(params.split.fractions):
        base = main if p == 100 else main / f"p{p}"
        fractions[p] = {m: read_metrics(base / m) for m in METHODS}
    rows = [AblationRow("M1", "msg3d", "", read_metrics(main / "msg3d"))]
    for v in ablation_variants(params):
        metrics = read_metrics(main / f"stf-{v}")
        rows.append(AblationRow(f"M{len(rows) + 1}", f"stf-{v}", variant_losses(params, v), metrics))
    rows.append(AblationRow(f"M{len(rows) + 1}", "stf", ensemble_losses(params), read_metrics(main / "stf")))
    shift = {m: read_metrics(models_dir / "shift" / m) for m in METHODS}
    flops = read_flops(results_dir / "flops.json")
    return Results(settings, cells, fractions, tuple(rows), shift, flops)


# --------------------------------------------------------------------------- tables


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for a table cell; None (not available) is an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec)


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


def table2(res: Results, metric: str = "top1", settings: Sequence[str] | None = None) -> Table:
    """Header `method,<setting>:J,<setting>:B,<setting>:J+B,...`; rows MS-G3D and STF."""
    settings = list(settings if settings is not None else res.settings)
    columns = [f"{s}:{c}" for s in settings for c, _ in CELLS]
    rows = [[label] + [fmt(getattr(res.cells[m][col], metric)) for col in columns] for m, label in METHODS.items()]
    return Table(["method", *columns], rows)


def gains(res: Results) -> dict[str, float]:
    """STF - MS-G3D top-1 per Table 2 cell."""
    return {col: res.cells["stf"][col].top1 - res.cells["msg3d"][col].top1 for col in res.columns}


def table3(res: Results) -> Table:
    """Row `gain`: STF - MS-G3D per cell. Row `gain_ratio`, Kinetics cells only: our gain over the
    paper's gain of MS-G3D over 2s-AGCN (the paper's Table 3 ratio; we do not run 2s-AGCN)."""
    g = gains(res)
    ratio = []
    for col in res.columns:
        setting, cell = col.split(":")
        ratio.append(fmt(g[col] / paper.TABLE3_MSG3D_OVER_2SAGCN[cell]) if setting == "kinetics" else "")
    return Table(["quantity", *res.columns], [["gain", *(fmt(g[c]) for c in res.columns)], ["gain_ratio", *ratio]])


def table4(res: Results) -> Table:
    """Header `method,p10,...,p100`; rows MS-G3D, STF and gain (NTU-60 x-sub joint)."""
    ps = sorted(res.fractions)
    rows = [[label] + [fmt(res.fractions[p][m].top1) for p in ps] for m, label in METHODS.items()]
    rows.append(["gain"] + [fmt(res.fractions[p]["stf"].top1 - res.fractions[p]["msg3d"].top1) for p in ps])
    return Table(["method", *(f"p{p}" for p in ps)], rows)


def table5(res: Results) -> Table:
    """Header `model,name,losses,top1,delta` (delta: over M1), one row per ablation model."""
    base = res.ablation[0].metrics.top1
    rows = [[r.name, r.model, r.losses, fmt(r.metrics.top1), fmt(r.metrics.top1 - base)] for r in res.ablation]
    return Table(["model", "name", "losses", "top1", "delta"], rows)


def shift_table(res: Results) -> Table:
    """Header `method,top1,top5`; rows MS-G3D, STF and gain (linear probe on NTU-120 x-sub)."""
    rows = [[label, fmt(res.shift[m].top1), fmt(res.shift[m].top5)] for m, label in METHODS.items()]
    a, b = res.shift["msg3d"], res.shift["stf"]
    rows.append(["gain", fmt(b.top1 - a.top1), fmt(b.top5 - a.top5)])
    return Table(["method", "top1", "top5"], rows)


def flops_table(res: Results) -> Table:
    """Header `method,params,gflops,ratio` (ratio: FLOPs over MS-G3D's), full-width networks."""
    base = res.flops["msg3d"]["flops"]
    rows = []
    for m, label in METHODS.items():
        flops = res.flops[m]["flops"]
        rows.append([label, str(int(res.flops[m]["params"])), fmt(flops / 1e9), fmt(flops / base, ".3f")])
    return Table(["method", "params", "gflops", "ratio"], rows)


def per_class_table(res: Results, setting: str, names: dict[int, str]) -> Table:
    """Header `label,name,msg3d,stf,diff`: per-class top-1 of the joint models of `setting`, for
    the classes both metrics files list (classes present in the test part)."""
    a = res.cells["msg3d"][f"{setting}:J"].per_class
    b = res.cells["stf"][f"{setting}:J"].per_class
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

    out: dict = {"profile": profile, "source": source}
    out["top1"] = {m: grid(lambda col, m=m: res.cells[m][col].top1) for m in METHODS}
    if "kinetics" in res.settings:
        out["kinetics_top5"] = {m: {c: r(res.cells[m][f"kinetics:{c}"].top5) for c, _ in CELLS} for m in METHODS}
    g = gains(res)
    out["gain"] = grid(lambda col: g[col])
    out["fractions"] = {m: {f"p{p}": r(res.fractions[p][m].top1) for p in sorted(res.fractions)} for m in METHODS}
    out["ablation"] = {row.name: r(row.metrics.top1) for row in res.ablation}
    out["shift"] = {m: r(res.shift[m].top1) for m in METHODS}
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

