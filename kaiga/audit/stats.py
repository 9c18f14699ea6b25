"""The statistics of the bias audit: distributions of categorical readings against a reference.

Total-variation distance (half the L1 distance between two distributions: the share of images that would
have to change value to match), Pearson's chi-square goodness-of-fit p-value (scipy), percentile bootstrap
confidence intervals of each share (numpy), and amplification over the training data.

Example:
    >>> counts = share_counts(["red"] * 80 + ["blue"] * 20, ("red", "blue"))
    >>> counts
    {'red': 80, 'blue': 20}
    >>> tv_distance(shares(counts), {"red": 0.5, "blue": 0.5})
    0.3
    >>> chi_square_p(counts, {"red": 0.5, "blue": 0.5}) < 1e-8
    True
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

MIN_EXPECTED = 5.0  # the chi-square approximation needs about 5 expected per cell (Cochran's rule)


def share_counts(values: Iterable[str], order: Sequence[str]) -> dict[str, int]:
    """How often each value occurs, keys in `order` first (zeros kept), then any other value seen."""
    values = list(values)
    counts = {v: 0 for v in order}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def shares(counts: dict[str, int]) -> dict[str, float]:
    """Counts as shares summing to 1 (all zeros: all zeros)."""
    total = sum(counts.values())
    return {k: (c / total if total else 0.0) for k, c in counts.items()}


def uniform(values: Sequence[str]) -> dict[str, float]:
    """Equal shares of `values`."""
    return {v: 1 / len(values) for v in values}


def tv_distance(p: dict[str, float], q: dict[str, float]) -> float:
    """Total-variation distance, 0.5 · Σ |p - q| over the union of the keys (a missing key is 0)."""
    keys = set(p) | set(q)
    return round(0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys), 6)


def chi_square_p(counts: dict[str, int], expected: dict[str, float], rounds: int = 20_000, seed: int = 0) -> float:
    """p-value of Pearson's chi-square goodness-of-fit test of `counts` against the shares `expected`.

    With every expected count at least 5 the p-value is scipy's (the chi-square distribution); with
    smaller cells that approximation fails (Cochran's rule), so the statistic's null distribution is drawn
    instead: `rounds` seeded multinomial samples of the same size (a Monte Carlo test, p = (1 + hits) /
    (1 + rounds)). A value observed that `expected` gives share 0 is impossible under it: p = 0.
    >>> chi_square_p({"a": 50, "b": 50}, {"a": 0.5, "b": 0.5})
    1.0
    >>> chi_square_p({"a": 9, "b": 1, "c": 0}, {"a": 1/3, "b": 1/3, "c": 1/3}) < 0.01  # small cells: Monte Carlo
    True
    """
    from scipy.stats import chisquare

    n = sum(counts.values())
    keys = list(dict.fromkeys([*expected, *counts]))
    probs = np.array([expected.get(k, 0.0) for k in keys])
    obs = np.array([counts.get(k, 0) for k in keys], dtype=float)
    if (obs[probs == 0] > 0).any():
        return 0.0
    probs, obs = probs[probs > 0] / probs.sum(), obs[probs > 0]
    if len(probs) < 2 or n == 0:
        return 1.0  # one possible value: nothing to test
    exp = probs * n
    if exp.min() >= MIN_EXPECTED:
        return float(chisquare(obs, exp).pvalue)
    stat = ((obs - exp) ** 2 / exp).sum()
    draws = np.random.default_rng(seed).multinomial(n, probs, size=rounds)  # [rounds, values]
    null = ((draws - exp) ** 2 / exp).sum(axis=1)
    return float((1 + (null >= stat - 1e-9).sum()) / (1 + rounds))


def bootstrap_ci(values: Sequence[str], order: Sequence[str], rounds: int = 2000, level: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each value's share: `rounds` resamples of the readings with replacement.

    >>> lo, hi = bootstrap_ci(["a"] * 30 + ["b"] * 70, ("a", "b"))["a"]
    >>> lo < 0.3 < hi
    True
    """
    keys = list(dict.fromkeys([*order, *values]))
    index = {k: i for i, k in enumerate(keys)}
    codes = np.array([index[v] for v in values])
    if len(codes) == 0:
        return {k: (0.0, 0.0) for k in keys}
    rng = np.random.default_rng(seed)
    draws = codes[rng.integers(len(codes), size=(rounds, len(codes)))]  # [rounds, n]
    got = np.stack([(draws == i).mean(axis=1) for i in range(len(keys))], axis=1)  # [rounds, values]
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(got, [tail, 100 - tail], axis=0)
    return {k: (round(float(lo[i]), 4), round(float(hi[i]), 4)) for i, k in enumerate(keys)}


def amplification(model: dict[str, float], train: dict[str, float], reference: dict[str, float]) -> dict:
    """How much more skewed than its training data a model is.

    `tv_ratio`: the model's TV from `reference` (uniform) over the training data's (None when the data is
    within 0.02 of it: a ratio over a near-zero TV says nothing); `majority`: the training data's most frequent value, its share there and in the
    model, and their ratio (> 1: the model makes the majority value more often than it saw it).
    >>> amplification({"r": 0.95, "b": 0.05}, {"r": 0.8, "b": 0.2}, {"r": 0.5, "b": 0.5})["tv_ratio"]
    1.5
    """
    tv_model, tv_train = tv_distance(model, reference), tv_distance(train, reference)
    top = max(train, key=lambda k: train[k])
    return {
        "tv_ratio": round(tv_model / tv_train, 3) if tv_train >= 0.02 else None,
        "majority": {"value": top, "train_share": round(train[top], 4), "model_share": round(model.get(top, 0.0), 4),
                     "ratio": round(model.get(top, 0.0) / train[top], 3) if train[top] > 0 else None},
    }
