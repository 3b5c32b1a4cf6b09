"""Synthetic fused-model samples shared by the statement tests: unit penultimate features pulled towards their class's
axis, the final features a fixed rotation of them, and the SciLT heads that score them."""

from __future__ import annotations

import numpy as np


def class_features(rng: np.random.Generator, counts, d: int, k: int):
    """labels (counts[c] of class c), unit ψ₁ = normalised(N(0, I) + 2 e_y), ψ₂ = ψ₁ with its coordinates rolled by
    one; draws from ``rng`` so that the caller's later draws follow on the same stream."""
    labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    psi1 = rng.normal(size=(labels.size, d)) + 2 * np.eye(k, d)[labels]
    psi1 /= np.linalg.norm(psi1, axis=1, keepdims=True)
    return labels, psi1, np.roll(psi1, 1, axis=1)


def cosine_model(seed=0, counts=(40, 12, 3), d=4, alpha=0.4, k=3, scale=2.0):
    """Unit features, unit-row heads Ŵ1, Ŵ2, the SciLT decomposition U = s(αŴ1 + Ŵ2), V = s(1 − α)Ŵ1:
    (ψ₁, ψ₂, scores, labels, (U, V))."""
    rng = np.random.default_rng(seed)
    labels, psi1, psi2 = class_features(rng, counts, d, k)
    w1, w2 = (w / np.linalg.norm(w, axis=1, keepdims=True) for w in (rng.normal(size=(k, d)), rng.normal(size=(k, d))))
    u, v = scale * (alpha * w1 + w2), scale * (1 - alpha) * w1
    return psi1, psi2, psi1 @ u.T + psi2 @ v.T, labels, (u, v)
