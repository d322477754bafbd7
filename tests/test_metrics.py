"""Accuracy of score matrices (`stf.metrics`), checked against scikit-learn, which the jobs no
longer import for it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, top_k_accuracy_score

from stf.metrics import compute_metrics, per_class_accuracy, topk_accuracy


def test_topk_accuracy_counts_labels_among_the_best_k() -> None:
    probs = np.array(
        [
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05],  # label 0: rank 1
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05],  # label 2: rank 3
            [0.01, 0.02, 0.03, 0.04, 0.1, 0.8],  # label 0: rank 6
            [0.1, 0.1, 0.5, 0.2, 0.05, 0.05],  # label 3: rank 2
        ]
    )
    labels = np.array([0, 2, 0, 3])
    assert topk_accuracy(probs, labels, 1) == 25.0
    assert topk_accuracy(probs, labels, 2) == 50.0
    assert topk_accuracy(probs, labels, 5) == 75.0
    assert topk_accuracy(probs, labels, 6) == 100.0
    binary = np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4]])
    assert topk_accuracy(binary, np.array([1, 1, 0]), 1) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 6\)"):
        topk_accuracy(probs, np.array([0, 1, 2, 6]), 1)


def test_per_class_accuracy_and_metrics() -> None:
    probs = np.eye(4)[[0, 1, 1, 3, 3]]  # predictions 0, 1, 1, 3, 3
    labels = np.array([0, 1, 0, 3, 1])
    pc = per_class_accuracy(probs, labels, 4)
    np.testing.assert_allclose(pc[[0, 1, 3]], [50.0, 50.0, 100.0])
    assert np.isnan(pc[2])  # no test sample of class 2
    m = compute_metrics(probs, labels, 4)
    assert m["top1"] == 60.0 and m["n"] == 5 and m["num_class"] == 4
    assert m["per_class"] == {"0": 50.0, "1": 50.0, "3": 100.0}
    json.dumps(m, allow_nan=False)  # valid JSON


@pytest.mark.parametrize("num_class", [3, 7, 60])
def test_topk_and_per_class_equal_scikit_learn_with_ties(num_class: int) -> None:
    """Random scores rounded to one decimal (many ties): top-k and per-class accuracy are
    scikit-learn's exactly, ties included."""
    rng = np.random.default_rng(num_class)
    scores = np.round(rng.random((500, num_class)), 1)
    labels = rng.integers(0, num_class, 500)
    for k in (1, 2, 5):
        if k >= num_class:
            continue
        want = 100.0 * top_k_accuracy_score(labels, scores, k=k, labels=np.arange(num_class))
        assert topk_accuracy(scores, labels, k) == pytest.approx(want, abs=1e-12)
    cm = confusion_matrix(labels, scores.argmax(1), labels=np.arange(num_class))
    with np.errstate(invalid="ignore"):
        want_pc = 100.0 * np.diag(cm) / cm.sum(1)
    np.testing.assert_allclose(per_class_accuracy(scores, labels, num_class), want_pc)
