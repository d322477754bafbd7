"""The report's figures, drawn with matplotlib's Agg canvas (no pyplot, no global backend).

- `per_class_figure`: per-class top-1 difference STF - MS-G3D (the paper's Figure 3).
- `fractions_figure`: top-1 against the percentage of training data (Table 4).
- `curves_figure`: test top-1 and training loss per epoch of a baseline and its fine-tuned models.
- `loss_terms_figure`: per epoch, each λ-weighted loss term and its gradient norm relative to
  L_ce's, of the fine-tuned STF models (`loss_terms_table` holds the numbers).
- `pairs_figure`: per-class top-1 differences on the confusable class pairs.
- `focus_figure`: a focus map Q drawn on the skeleton, joints coloured by focus, a few frames.
`pick_samples` and `focus_maps` prepare the last one from a trained model directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stf.io import atomic_path
from stf.report.tables import ReportInputError, Table

HISTORY_FILE = "history.csv"


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    return Path(path)


def per_class_figure(table: Table, path: Path, title: str) -> Path:
    """Bars of `diff` per class from a `per_class_table` (columns label,name,msg3d,stf,diff)."""
    names = [row[1] for row in table.rows]
    diff = np.array([float(row[4]) for row in table.rows], dtype=float)
    fig = Figure(figsize=(10, max(2.5, 0.22 * len(names) + 1.2)))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, diff, color=np.where(diff >= 0, "tab:green", "tab:red"))
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("top-1 difference STF - MS-G3D (%)")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def fractions_figure(table: Table, path: Path, title: str) -> Path:
    """Lines of top-1 against the training fraction from a `fractions_table`."""
    p = [int(row[0]) for row in table.rows]
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for col, label in ((1, "MS-G3D"), (2, "STF")):
        ax.plot(p, [float(row[col]) for row in table.rows], marker="o", label=label)
    ax.set_xlabel("training data (%)")
    ax.set_ylabel("top-1 (%)")
    ax.set_xticks(p)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def read_history(model_dir: Path) -> pd.DataFrame:
    """`<model_dir>/history.csv` (columns epoch, train_loss, test_top1, ...)."""
    path = Path(model_dir) / HISTORY_FILE
    if not path.is_file():
        raise ReportInputError(f"{path}: training history not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not a readable CSV ({err})") from None
    missing = {"epoch", "train_loss", "test_top1"} - set(df.columns)
    if missing:
        raise ReportInputError(f"{path}: missing columns {sorted(missing)}")
    return df


def curves_figure(baseline: pd.DataFrame, finetuned: Mapping[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Test top-1 and training loss per epoch; fine-tuned runs continue the baseline's epochs."""
    fig = Figure(figsize=(10, 3.5))
    ax_acc, ax_loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    offset = float(baseline["epoch"].max()) if len(baseline) else 0.0
    runs = [("MS-G3D", baseline, 0.0)] + [(name, df, offset) for name, df in finetuned.items()]
    for name, df, shift in runs:
        epochs = df["epoch"].to_numpy(dtype=float) + shift
        ax_acc.plot(epochs, df["test_top1"].to_numpy(dtype=float), marker=".", label=name)
        ax_loss.plot(epochs, df["train_loss"].to_numpy(dtype=float), marker=".", label=name)
    ax_acc.set_ylabel("test top-1 (%)")
    ax_loss.set_ylabel("training loss")
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


TERM_LABELS = {"ce": "L_ce", "e": "λe·L_e", "d": "λd·L_d", "c": "λc·L_c", "gk": "λGk·L_Gk"}


def loss_terms_table(histories: Mapping[str, Sequence[pd.DataFrame]]) -> Table:
    """Header `model,epoch,term,weighted,grad_ratio`: per model and epoch, the mean over its seeds'
    history.csv files of each loss summand (L_ce, λ·L_k) and of ‖∇ λ·L_k‖ / ‖∇ L_ce‖ (empty for
    L_ce itself and where the run measured no gradients)."""
    from stf.report.tables import fmt

    rows = []
    for name, frames in histories.items():
        df = pd.concat(list(frames)).groupby("epoch", sort=True).mean(numeric_only=True)
        for epoch, rec in df.iterrows():
            for term in TERM_LABELS:
                col = "loss_ce" if term == "ce" else f"weighted_{term}"
                if col not in df.columns:
                    continue
                ratio = rec.get(f"grad_ratio_{term}", np.nan) if term != "ce" else np.nan
                rows.append([name, str(int(epoch)), term, fmt(float(rec[col]), ".6g"), fmt(float(ratio), ".6g")])
    return Table(["model", "epoch", "term", "weighted", "grad_ratio"], rows)


def loss_terms_figure(table: Table, path: Path, title: str) -> Path:
    """Two panels from a `loss_terms_table`: |λ·L| per epoch (log scale; L_d is negative, so its
    magnitude) and the gradient-norm ratio to L_ce per epoch (log scale), one line per model and term."""
    fig = Figure(figsize=(10, 3.8))
    ax_val, ax_grad = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    series: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for model, epoch, term, weighted, ratio in table.rows:
        series.setdefault((model, term), []).append(
            (int(epoch), abs(float(weighted)) if weighted else np.nan, float(ratio) if ratio else np.nan)
        )
    for (model, term), points in series.items():
        e, v, g = (np.array(x, dtype=float) for x in zip(*points, strict=True))
        label = f"{model}: {TERM_LABELS[term]}"
        ax_val.plot(e, np.where(v > 0, v, np.nan), marker=".", label=label)
        if term != "ce" and np.isfinite(g).any():
            ax_grad.plot(e, np.where(g > 0, g, np.nan), marker=".", label=label)
    ax_val.set_ylabel("|loss term| (λ applied)")
    ax_grad.set_ylabel("‖∇ λ·L‖ / ‖∇ L_ce‖")
    ax_grad.axhline(1.0, color="0.5", linewidth=0.8, linestyle="--")
    for ax in (ax_val, ax_grad):
        ax.set_xlabel("fine-tuning epoch")
        ax.set_yscale("log")
        if ax.get_lines():
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def pairs_figure(table: Table, path: Path, title: str) -> Path:
    """Grouped bars from a table with columns `pair,label,name,...,<diff columns>`: the per-class
    top-1 difference columns whose header starts with `STF - `, one group per class."""
    diff_cols = [i for i, h in enumerate(table.header) if h.startswith("STF - ")]
    names = [f"{row[0]}: {row[2]}" for row in table.rows]
    fig = Figure(figsize=(10, max(2.5, 0.3 * len(names) * max(1, len(diff_cols)) + 1.2)))
    ax = fig.add_subplot()
    y = np.arange(len(names), dtype=float)
    height = 0.8 / max(1, len(diff_cols))
    for j, col in enumerate(diff_cols):
        values = np.array([float(row[col]) if row[col] else np.nan for row in table.rows])
        ax.barh(y + j * height, values, height=height, label=table.header[col])
    ax.set_yticks(y + height * (len(diff_cols) - 1) / 2, names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("per-class top-1 difference (%)")
    if diff_cols:
        ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------- focus maps


def pick_samples(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` samples: the first of each class in class order, then the next ones.

    labels: (N,) in the file's order. Returns sorted-by-choice indices, at most N of them.
    """
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    chosen = set(firsts)
    rest = [i for i in range(len(labels)) if i not in chosen]
    return np.array((firsts + rest)[:count], dtype=np.int64)


@torch.no_grad()
def focus_maps(model: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Focus Q of `model`'s predicted class on the input frames.

    x: (N, C, T, V, M) float32. Returns (Q (N, M, T, V) in [0, 1], predicted class (N,)).
    """
    from stf.method.focus import cam, resample_time

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out = model.forward_features(xt)
    pred = out.logits.argmax(dim=1)  # (N,)
    q = cam(out.last, model.fc.weight, out.logits, pred, persons=xt.shape[-1])  # (N, M, T3, V)
    q = resample_time(q, xt.shape[2])  # (N, M, T, V)
    return q.numpy(), pred.numpy()


def focus_figure(
    x: np.ndarray,
    maps: Mapping[str, tuple[np.ndarray, str]],
    edges: Sequence[tuple[int, int]],
    path: Path,
    title: str,
    frames: int = 4,
    y_down: bool = False,
) -> Path:
    """One sample's skeleton at `frames` evenly spaced frames, once per model, joints coloured by Q.

    x: (C, T, V, M) with channels 0, 1 = the horizontal and vertical coordinates;
    maps: model name -> (Q (M, T, V) in [0, 1], predicted class name). Persons whose
    coordinates are all zero (absent) are not drawn. `y_down`: image coordinates (OpenPose), drawn
    with the vertical axis flipped.
    """
    _, t_len, _, m_len = x.shape
    times = np.linspace(0, t_len - 1, frames).round().astype(int)
    present = [m for m in range(m_len) if np.any(x[:2, :, :, m])]
    xy = x[:2]  # (2, T, V, M)
    fig = Figure(figsize=(2.2 * frames, 2.4 * len(maps) + 0.5))
    for row, (name, (q, predicted)) in enumerate(maps.items()):
        for col, t in enumerate(times):
            ax = fig.add_subplot(len(maps), frames, row * frames + col + 1)
            for m in present:
                for a, b in edges:
                    ax.plot(xy[0, t, [a, b], m], xy[1, t, [a, b], m], color="0.6", linewidth=1)
                points = ax.scatter(xy[0, t, :, m], xy[1, t, :, m], c=q[m, t], cmap="viridis", vmin=0, vmax=1, s=18)
            ax.set_aspect("equal", adjustable="datalim")
            if y_down:
                ax.invert_yaxis()
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{name}\npred: {predicted}", fontsize=7)
            if row == 0:
                ax.set_title(f"frame {t}", fontsize=8)
    if present:
        fig.colorbar(points, ax=fig.axes, shrink=0.6, label="focus Q")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
