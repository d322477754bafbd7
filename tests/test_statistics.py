"""stf.report.statistics on hand-made correctness matrices with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stf.report.statistics import (
    StatisticsInputError,
    compare,
    correct_matrix,
    mcnemar_exact,
    mean_std,
    paired_bootstrap_ci,
    paired_permutation_p,
)


def test_mean_and_sample_std() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([70.5]) == (70.5, 0.0)
    with pytest.raises(StatisticsInputError):
        mean_std([])


def test_correct_matrix_compares_predictions_with_labels() -> None:
    m = correct_matrix([np.array([0, 1, 2]), np.array([0, 0, 2])], np.array([0, 1, 1]))
    assert m.tolist() == [[True, True, False], [True, False, False]]


def test_mcnemar_exact_is_the_binomial_test_of_the_discordant_pairs() -> None:
    # 10 samples only A gets right, 2 only B, 20 both, 8 neither
    a = np.array([True] * 10 + [False] * 2 + [True] * 20 + [False] * 8)
    b = np.array([False] * 10 + [True] * 2 + [True] * 20 + [False] * 8)
    p, n_ab, n_ba = mcnemar_exact(a, b)
    assert (n_ab, n_ba) == (10, 2)
    # two-sided: 2 * P(X >= 10), X ~ Bin(12, 1/2) = 2 * (66 + 12 + 1) / 4096
    assert p == pytest.approx(158 / 4096)
    assert mcnemar_exact(a, a) == (1.0, 0, 0)


def test_one_seed_permutation_test_equals_exact_mcnemar() -> None:
    # 6 discordant pairs, all for A, 4 concordant: 2**10 arrangements, enumerated exactly
    a = np.array([True] * 6 + [True, True, False, False])
    b = np.array([False] * 6 + [True, True, False, False])
    p_perm = paired_permutation_p(a, b, n_resamples=9999)
    p_mc, _, _ = mcnemar_exact(a, b)
    assert p_perm == pytest.approx(2 / 64) == pytest.approx(p_mc)


def test_identical_methods_give_zero_difference_and_p_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((3, 200)) < 0.7
    c = compare(a, a.copy(), n_resamples=999)
    assert c.diff == 0.0 and c.ci95 == (0.0, 0.0) and c.p == 1.0
    assert c.mcnemar_p == (1.0, 1.0, 1.0) and c.n == 200 and c.seeds == 3


def test_bootstrap_interval_covers_the_difference_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(1000)
    a = truth[None] < np.array([[0.80], [0.78], [0.82]])  # (3, 1000): ~80 % correct
    b = truth[None] < np.array([[0.60], [0.62], [0.61]])  # nested: A right wherever B is
    lo, hi = paired_bootstrap_ci(a, b, n_resamples=2000, seed=5)
    diff = 100 * (a.mean() - b.mean())
    assert lo < diff < hi and lo > 0  # a 19-point gain on 1000 samples is far from 0
    assert hi - lo < 8  # paired on nested errors: a narrow interval (SE about 1.2 points)
    assert paired_bootstrap_ci(a, b, n_resamples=2000, seed=5) == (lo, hi)
    c = compare(a, b, n_resamples=2000, seed=5)
    assert c.significant(0.05) and c.p < 0.001
    assert c.diff == pytest.approx(diff) and c.a_top1 == pytest.approx(100 * a.mean())
    assert all(ba == 0 for _, ba in c.discordant)  # B is never right where A is wrong


def test_small_noisy_difference_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((1, 100)) < 0.6
    b = a.copy()
    b[0, :2] = ~b[0, :2]  # two flipped samples
    c = compare(a, b, n_resamples=999)
    assert not c.significant(0.05) and c.ci95[0] <= 0 <= c.ci95[1]
    assert c.p > 0.2 and not math.isnan(c.p)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(StatisticsInputError, match="same N"):
        compare(np.ones((1, 3), bool), np.ones((1, 4), bool))
    with pytest.raises(StatisticsInputError, match="boolean"):
        compare(np.ones((1, 3)), np.ones((1, 3)))
