"""Accuracy of an (N, K) score matrix: top-k, per class, the `metrics.json` dict, softmax.

numpy only, on purpose: every training, fine-tuning, evaluation and fusion job scores its
test part with these, and importing scikit-learn (with scipy) for them cost each of those
jobs about 1.3 s of start-up on a 2-core machine. The results are scikit-learn's:
`topk_accuracy` ranks like `sklearn.metrics.top_k_accuracy_score` (a stable sort, reversed,
so of tied scores the higher class index ranks first) and `per_class_accuracy` is the
diagonal of `confusion_matrix` over its row sums; tests/test_metrics.py checks both against
scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_scores(probs: np.ndarray, labels: np.ndarray, num_class: int | None = None) -> None:
    """Raise ValueError unless probs is (N, K) with N > 0 labels in [0, K) (K = `num_class` when given)."""
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (N, K) with N labels, got {probs.shape} and {labels.shape}")
    if probs.shape[0] == 0:
        raise ValueError("no samples to score")
    k = probs.shape[1] if num_class is None else num_class
    if probs.shape[1] != k:
        raise ValueError(f"scores have {probs.shape[1]} columns, expected num_class={k}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in [0, {k}), found [{labels.min()}, {labels.max()}]")


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percent of samples whose label is among the `k` highest scores.

    probs: (N, K) scores (probabilities or logits); labels: (N,) ints in [0, K).
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    check_scores(probs, labels)
    if k >= probs.shape[1]:
        return 100.0
    best = np.argsort(probs, axis=1, kind="stable")[:, ::-1][:, :k]  # (N, k) class indices, best first
    return 100.0 * float((best == labels[:, None]).any(axis=1).mean())


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_class: int) -> np.ndarray:
    """Top-1 accuracy (percent) of each class, (num_class,); NaN for classes absent from `labels`."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    check_scores(probs, labels, num_class)
    hits = np.bincount(labels, weights=probs.argmax(1) == labels, minlength=num_class)  # (K,)
    support = np.bincount(labels, minlength=num_class)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 100.0 * hits / support, np.nan)


def compute_metrics(probs: np.ndarray, labels: np.ndarray, num_class: int) -> dict[str, Any]:
    """The `metrics.json` dict: top1, top5 (percent), n, num_class, per_class {label: percent}.

    `per_class` lists only the classes that occur in `labels` (keys are str(label)).
    """
    pc = per_class_accuracy(probs, labels, num_class)
    return {
        "top1": topk_accuracy(probs, labels, 1),
        "top5": topk_accuracy(probs, labels, 5),
        "n": int(len(labels)),
        "num_class": int(num_class),
        "per_class": {str(c): float(a) for c, a in enumerate(pc) if not np.isnan(a)},
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, float64 inside, float32 out."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def log_probs(probs: np.ndarray) -> np.ndarray:
    """log of (N, K) probabilities, floored at the smallest normal float32."""
    return np.log(np.maximum(probs.astype(np.float64), np.finfo(np.float32).tiny)).astype(np.float32)
