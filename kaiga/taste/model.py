"""A Bradley–Terry preference model: a shared taste learned from everyone, and each person's offset from it.

A person prefers image a to image b with probability σ(θ·(f(a) − f(b))), f the judge's reading
(kaiga/taste/features.py). The shared θ₀ is fitted on every person's pairs with a Gaussian prior at 0; a
person's θ = θ₀ + δ is fitted on their own pairs with a Gaussian prior centred on θ₀ (δ shrinks to 0), so with no
ratings a person gets the shared taste and every rating moves them away from it. Both fits are the same convex,
L2-regularised logistic regression on pair differences, solved with Newton's method (152 parameters: the Hessian
is tiny), deterministic. Hand-written because scikit-learn's LogisticRegression cannot centre its penalty on a
prior other than 0 and is not a dependency here.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(40, 3))
    >>> liked = f[:, 0]  # a person who likes feature 0
    >>> better, worse = zip(*[(i, j) for i in range(40) for j in range(40) if liked[i] > liked[j] + 0.5])
    >>> theta = fit(f[list(better)] - f[list(worse)], prior=np.zeros(3), strength=1.0)
    >>> int(np.argmax(theta))
    0
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHARED_STRENGTH = 0.1  # the shared model's prior: everyone's pairs together are many
PERSON_STRENGTH = 1.0  # a person's pull back to the shared taste, in the loss's units (one pair ~ 1)
NEWTON_STEPS = 50


def fit(diffs: np.ndarray, prior: np.ndarray, strength: float, weights: np.ndarray | None = None) -> np.ndarray:
    """θ minimising Σ wₖ·log(1 + exp(−θ·dₖ)) + strength/2·‖θ − prior‖²; `diffs` [K, D] are (preferred − other)."""
    theta = prior.astype(np.float64).copy()
    if len(diffs) == 0:
        return theta
    d = np.asarray(diffs, np.float64)
    w = np.ones(len(d)) if weights is None else np.asarray(weights, np.float64)

    def loss(t: np.ndarray) -> float:
        return float(np.sum(w * np.logaddexp(0.0, -d @ t)) + strength / 2 * np.sum((t - prior) ** 2))

    current = loss(theta)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(np.clip(d @ theta, -50, 50)))  # σ(−θ·d): how wrong each pair is
        grad = -(w * p) @ d + strength * (theta - prior)
        hess = (d * (w * p * (1 - p))[:, None]).T @ d + strength * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-4 and loss(theta - scale * step) > current:  # backtracking: never a worse θ
            scale /= 2
        theta, previous = theta - scale * step, current
        current = loss(theta)
        if previous - current < 1e-9:
            break
    return theta


def pair_differences(features: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[K, D]: f(a) − f(b) for every pair of rated images with score(a) > score(b)."""
    scores = np.asarray(scores, np.float64)
    better, worse = np.nonzero(scores[:, None] > scores[None, :])
    return features[better] - features[worse]


@dataclass
class TasteModel:
    """The shared taste and each person's, over the features named in `names`."""

    names: list[str]
    shared: np.ndarray
    people: dict[str, np.ndarray] = field(default_factory=dict)
    ratings: dict[str, int] = field(default_factory=dict)  # how many judgements each person's taste is fitted on

    @classmethod
    def learn(cls, names: list[str], judged: dict[str, tuple[np.ndarray, np.ndarray]]) -> "TasteModel":
        """From each person's (features [N, D], scores [N]): the shared taste on all their pairs, then theirs."""
        diffs = [pair_differences(f, s) for f, s in judged.values()]
        # every person counts the same in the shared taste, however many pairs they gave
        weights = [np.full(len(d), 1.0 / max(1, len(d))) for d in diffs]
        shared = np.zeros(len(names))
        if diffs:
            shared = fit(np.concatenate(diffs), shared, SHARED_STRENGTH, np.concatenate(weights))
        model = cls(names, shared)
        for (person, (_, s)), d in zip(judged.items(), diffs):
            model.people[person] = fit(d, shared, PERSON_STRENGTH)
            model.ratings[person] = len(s)
        return model

    def of(self, person: str | None) -> np.ndarray:
        """The person's θ; the shared taste for someone who has rated nothing."""
        return self.people.get(person, self.shared) if person else self.shared

    def score(self, features: np.ndarray, person: str | None) -> np.ndarray:
        """[N] how much the person likes each image (only differences mean anything)."""
        return features @ self.of(person)

    def liked(self, person: str | None, k: int = 5) -> list[tuple[str, float]]:
        """The k features the person's taste weighs most over the shared one: what makes them them."""
        offset = self.of(person) - self.shared
        top = np.argsort(-offset)[:k]
        return [(self.names[i], round(float(offset[i]), 2)) for i in top]


def most_telling(features: np.ndarray, k: int, strength: float = PERSON_STRENGTH) -> list[int]:
    """The indices of `k` images whose ratings would tell most about a taste over these features, best first.

    Greedy D-optimal design for the linear model: each pick is the image whose features are least explained by
    those picked before (the largest xᵀA⁻¹x, A = strength·I + the picks' xxᵀ), centred on the mean image since only
    differences are rated. Random images leave rare things unseen (1 in 13 of a car campaign's images is a blue
    car); these cover each direction a taste can lie in before any is seen twice.

    >>> f = np.eye(4)[[0, 0, 0, 1, 0, 2, 0, 0, 3, 0]]  # mostly feature 0, one image each of 1, 2, 3
    >>> sorted(most_telling(f, 3))
    [3, 5, 8]
    """
    x = features - features.mean(0)
    inverse = np.eye(x.shape[1]) / strength
    picked: list[int] = []
    for _ in range(min(k, len(x))):
        gain = np.einsum("nd,de,ne->n", x, inverse, x)
        gain[picked] = -np.inf
        i = int(np.argmax(gain))
        picked.append(i)
        v = inverse @ x[i]
        inverse -= np.outer(v, v) / (1.0 + x[i] @ v)  # Sherman–Morrison: A⁻¹ after adding x xᵀ
    return picked
