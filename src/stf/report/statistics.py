"""Seeds and uncertainty: mean ± std over seeds, and paired comparisons of two methods on the
same test samples (pure functions on arrays; scipy does the resampling and the exact test).

A method's result on one cell is a (S, N) bool matrix `correct[s, i]`: whether the model of
seed s classified test sample i correctly (top-1). Two methods are compared on the same N
samples, sample by sample (paired):

- `diff`: the mean over seeds of accuracy(A) − accuracy(B), in percentage points;
- `ci95`: a paired bootstrap interval of that difference: the N samples are resampled with
  replacement (the same draw for A and B, `scipy.stats.bootstrap(paired=True)`), the
  statistic is the difference of the seed-averaged accuracies, percentile interval;
- `p`: a two-sided paired permutation test of the same statistic: under H0 the two methods'
  seed-averaged correctness of a sample is exchangeable, so each sample's pair is swapped at
  random (`scipy.stats.permutation_test(permutation_type="samples")`). With one seed this is
  McNemar's test by resampling;
- `mcnemar_p`: McNemar's exact test per seed, `scipy.stats.binomtest` on the discordant
  pairs (A right & B wrong vs A wrong & B right), two-sided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


class StatisticsInputError(ValueError):
    """Arrays that cannot be compared (shapes, empty, non-boolean)."""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof = 1); std is 0.0 for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise StatisticsInputError(f"mean_std needs a non-empty list of numbers, got shape {arr.shape}")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def correct_matrix(predictions: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Per-seed predicted classes (each (N,)) and labels (N,) -> (S, N) bool."""
    labels = np.asarray(labels)
    rows = [np.asarray(p) == labels for p in predictions]
    if not rows or any(r.shape != labels.shape for r in rows):
        raise StatisticsInputError(f"every prediction vector must have the labels' shape {labels.shape}")
    return np.stack(rows)


def _as_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 1:
        a = a[None]
    if b.ndim == 1:
        b = b[None]
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise StatisticsInputError(
            f"need (S, N) correctness matrices over the same N > 0 samples, got {a.shape}, {b.shape}"
        )
    if a.dtype != bool or b.dtype != bool:
        raise StatisticsInputError(f"correctness matrices must be boolean, got {a.dtype} and {b.dtype}")
    return a, b


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """McNemar's exact test of two (N,) bool correctness vectors on the same samples.

    Returns (two-sided p, n_ab, n_ba): n_ab samples A gets right and B wrong, n_ba the
    reverse; p = binomtest(n_ab, n_ab + n_ba, 0.5), and 1.0 when there is no discordant pair.
    """
    a, b = _as_pair(a, b)
    if a.shape[0] != 1 or b.shape[0] != 1:
        raise StatisticsInputError("mcnemar_exact compares one seed's vectors, (N,) each")
    n_ab = int(np.sum(a[0] & ~b[0]))
    n_ba = int(np.sum(~a[0] & b[0]))
    if n_ab + n_ba == 0:
        return 1.0, 0, 0
    return float(stats.binomtest(n_ab, n_ab + n_ba, 0.5).pvalue), n_ab, n_ba


def _difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Percentage points between the mean per-sample scores of x and y (vectorised for scipy)."""
    return 100.0 * (np.mean(x, axis=axis) - np.mean(y, axis=axis))


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(A) − accuracy(B) (percentage points, seed-averaged),
    resampling the test samples jointly for A and B. a, b: (S_a, N), (S_b, N) bool."""
    a, b = _as_pair(a, b)
    sa, sb = a.mean(axis=0), b.mean(axis=0)  # (N,) seed-averaged correctness per sample
    if np.array_equal(sa, sb):
        return 0.0, 0.0  # every resample gives 0 (scipy warns about the degenerate distribution)
    res = stats.bootstrap(
        (sa, sb), _difference, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_permutation_p(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided p of the paired permutation test of accuracy(A) − accuracy(B) (seed-averaged):
    each sample's (A, B) pair of seed-averaged correctness is swapped at random."""
    a, b = _as_pair(a, b)
    sa, sb = a.mean(axis=0), b.mean(axis=0)
    if np.array_equal(sa, sb):
        return 1.0
    res = stats.permutation_test(
        (sa, sb), _difference, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
        alternative="two-sided", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(min(1.0, res.pvalue))


@dataclass(frozen=True)
class Comparison:
    """A − B on one cell: see the module docstring. Percentages and percentage points."""

    n: int  # test samples
    seeds: int  # seeds of A (and of B, when equal)
    a_top1: float  # seed-averaged accuracy of A
    b_top1: float
    diff: float
    ci95: tuple[float, float]
    p: float
    mcnemar_p: tuple[float, ...]  # per seed (pairs seeds in order; empty when the counts differ)
    discordant: tuple[tuple[int, int], ...]  # per seed: (A right & B wrong, A wrong & B right)

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p < alpha

    def to_json(self) -> dict:
        return {"diff": self.diff, "ci95": [self.ci95[0], self.ci95[1]], "p": self.p}


def compare(
    a: np.ndarray,
    b: np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Comparison:
    """Paired comparison of method A with method B: a (S_a, N), b (S_b, N) bool, the same test
    samples in the same order. McNemar per seed needs S_a == S_b (seed s of A against seed s of B)."""
    a, b = _as_pair(a, b)
    acc_a, acc_b = 100.0 * a.mean(axis=1), 100.0 * b.mean(axis=1)  # (S,)
    mc: list[tuple[float, int, int]] = []
    if a.shape[0] == b.shape[0]:
        mc = [mcnemar_exact(a[s], b[s]) for s in range(a.shape[0])]
    return Comparison(
        n=int(a.shape[1]),
        seeds=int(a.shape[0]),
        a_top1=float(acc_a.mean()),
        b_top1=float(acc_b.mean()),
        diff=float(acc_a.mean() - acc_b.mean()),
        ci95=paired_bootstrap_ci(a, b, confidence=confidence, n_resamples=n_resamples, seed=seed),
        p=paired_permutation_p(a, b, n_resamples=n_resamples, seed=seed),
        mcnemar_p=tuple(m[0] for m in mc),
        discordant=tuple((m[1], m[2]) for m in mc),
    )
