"""Classification heads fitted on image embeddings, and their held-out accuracy. Pure numpy.

Every head here is linear on the L2-normalised embedding, so one graph serves them all:
`scores = softmax(weights @ (e / |e|) + bias)`, with the temperature already folded into weights and bias.

- imprinting: weight imprinting as Coral's ImprintingEngine does it: each class's weight is the L2-normalised
  mean of its L2-normalised embeddings, so a logit is a cosine similarity. Coral then multiplies by a scale
  stored in its prototype model (a MUL before the SOFTMAX); here that scale is fitted on held-out logits.
- logistic: multinomial logistic regression (softmax cross-entropy with a small L2 penalty), fitted by
  accelerated gradient descent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HEADS = ("imprinting", "logistic")
CHOICES = ("auto", *HEADS)
FOLDS = 5
L2_PENALTY = 1e-3
STEPS = 500
NORM_EPSILON = 1e-6  # TFLite's L2_NORMALIZATION floors the norm at this


@dataclass(frozen=True, eq=False)
class LinearHead:
    """`scores = softmax(weights @ normalize(embedding) + bias)`; float32, one row of weights per class."""

    kind: str
    weights: np.ndarray  # [classes, dim]
    bias: np.ndarray  # [classes]
    temperature: float = 1.0  # already folded into weights and bias; kept to report it

    @property
    def classes(self) -> int:
        return int(self.weights.shape[0])

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Float embeddings [n, dim] -> probabilities [n, classes], in float32 as the TFLite graph does."""
        logits = normalize(embeddings.astype(np.float32)) @ self.weights.T + self.bias
        return softmax(logits)


@dataclass(frozen=True, eq=False)
class HeldOut:
    """Out-of-fold results of one head: each photo scored by a head fitted without it."""

    kind: str
    folds: int
    accuracy: float
    log_loss: float  # after the temperature fitted on these same out-of-fold logits
    temperature: float
    per_class: tuple[float, ...]  # accuracy of each class
    logits: np.ndarray = field(repr=False)


def normalize(embeddings: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.sum(embeddings * embeddings, axis=-1, keepdims=True))
    return embeddings / np.maximum(norms, embeddings.dtype.type(NORM_EPSILON))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def fit_imprinting(unit: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised mean of each class's L2-normalised embeddings; no bias."""
    means = np.stack([unit[labels == k].mean(axis=0) for k in range(classes)])
    return normalize(means), np.zeros(classes)


def fit_logistic(
    unit: np.ndarray, labels: np.ndarray, classes: int, penalty: float = L2_PENALTY, steps: int = STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on unit-length embeddings: mean cross-entropy + penalty/2 |W|^2
    (bias not penalised), minimised by Nesterov-accelerated gradient descent from zero.

    With fewer photos than dimensions the weights stay in the span of the photos, so the descent runs on
    the photos' coordinates in an orthonormal basis of that span (the same iterates, rotated): each step
    costs photos x photos instead of photos x dimensions."""
    if unit.shape[0] < unit.shape[1]:
        basis, _ = np.linalg.qr(unit.T)  # [dim, photos], orthonormal columns
        weights, bias = _descend(unit @ basis, labels, classes, penalty, steps)
        return weights @ basis.T, bias
    return _descend(unit, labels, classes, penalty, steps)


def _descend(unit, labels, classes, penalty, steps):
    count, dim = unit.shape
    targets = np.eye(classes)[labels]
    # The cross-entropy's curvature is at most 1/2 |x|^2 = 1/2 for unit rows: a safe fixed step.
    step = 1.0 / (0.5 + penalty)
    weights, bias = np.zeros((classes, dim)), np.zeros(classes)
    ahead_w, ahead_b, momentum = weights, bias, 1.0
    for _ in range(steps):
        residual = (softmax(unit @ ahead_w.T + ahead_b) - targets) / count
        new_w = ahead_w - step * (residual.T @ unit + penalty * ahead_w)
        new_b = ahead_b - step * residual.sum(axis=0)
        next_momentum = (1.0 + np.sqrt(1.0 + 4.0 * momentum * momentum)) / 2.0
        blend = (momentum - 1.0) / next_momentum
        ahead_w, ahead_b = new_w + blend * (new_w - weights), new_b + blend * (new_b - bias)
        weights, bias, momentum = new_w, new_b, next_momentum
    return weights, bias


_FITTERS = {"imprinting": fit_imprinting, "logistic": fit_logistic}


def stratified_folds(labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Fold number of each sample: each class's samples shuffled (fixed seed) and dealt round-robin."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=int)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        assignment[rng.permutation(members)] = np.arange(len(members)) % folds
    return assignment


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The factor T minimising the mean cross-entropy of softmax(T * logits): golden-section search on
    log T (the loss is convex in T, so unimodal in log T)."""

    def loss(log_t: float) -> float:
        scaled = logits * np.exp(log_t)
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    low, high = np.log(1e-2), np.log(1e4)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if loss(a) < loss(b):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2.0))


def held_out(kind: str, unit: np.ndarray, labels: np.ndarray, classes: int, folds: int = FOLDS) -> HeldOut:
    """k-fold cross-validation of one head: accuracy, per-class accuracy, calibrated log-loss."""
    assignment = stratified_folds(labels, folds)
    logits = np.zeros((len(labels), classes))
    for fold in range(folds):
        test = assignment == fold
        weights, bias = _FITTERS[kind](unit[~test], labels[~test], classes)
        logits[test] = unit[test] @ weights.T + bias
    temperature = fit_temperature(logits, labels)
    predicted = logits.argmax(axis=1)
    probs = softmax(logits * temperature)
    log_loss = float(-np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-12)).mean())
    per_class = tuple(float((predicted[labels == k] == k).mean()) for k in range(classes))
    return HeldOut(kind, folds, float((predicted == labels).mean()), log_loss, temperature, per_class, logits)


def choose(results: dict[str, HeldOut], wanted: str) -> str:
    """`auto`: the head with the better held-out accuracy; on a tie the better held-out log-loss."""
    if wanted != "auto":
        return wanted
    return min(results, key=lambda kind: (-results[kind].accuracy, results[kind].log_loss))


def fit_head(kind: str, embeddings: np.ndarray, labels: np.ndarray, classes: int, temperature: float):
    """The final head on every photo, its temperature (from held-out logits) folded in."""
    unit = normalize(embeddings.astype(np.float64))
    weights, bias = _FITTERS[kind](unit, labels, classes)
    return LinearHead(
        kind=kind,
        weights=(weights * temperature).astype(np.float32),
        bias=(bias * temperature).astype(np.float32),
        temperature=temperature,
    )
