"""The unit complexities of the bound sample, computed on request and cached: :class:`Complexities` (THEORY §1, §5).

build_context fixes the plan before any estimate runs — which quantities the selected statements may read (both
feature maps on S and on every S_c; the class-weighted targets and the coupled class when a statement ``needs`` them),
the estimator of each (rademacher.select_estimator) and its seed — and splits δ_mc over the Monte Carlo certificates
of that plan (THEORY §5). A quantity is then estimated the first time a statement reads it and cached; one never read
is never computed (its certificate share stays unspent, so the union bound over δ_mc still holds). Seeds: S: seed;
S_c: seed + 1 + c; the i-th weighted target: seed + 1 + K + i; the i-th coupled target (S, then every S_c with
n_c >= 1): seed + 101 + i — the same sign draws whichever quantity is read first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from scilt_theory.erc import ErcSummary

__all__ = ["Complexities"]


class Complexities:
    """Unit-radius complexities R̂ᵛ(W(1)) of ψ₁ and ψ₂ on S, on each S_c, on the class-weighted targets, and of the
    coupled class H_s, each estimated on first use with the method and seed the plan fixed, then cached."""

    def __init__(self, psi1: np.ndarray, psi2: np.ndarray, labels: np.ndarray, num_classes: int, norm: str,
                 n_draws: int, seed: int, delta_per_certificate: float | None, device: Any, *, overall_method: str,
                 class_methods: Mapping[int, str], weighted: Mapping[str, np.ndarray],
                 weighted_methods: Mapping[str, str], coupled_rows: Mapping[str, np.ndarray],
                 coupled_methods: Mapping[str, str], coupled_scale: float | None):
        self._psi = (psi1, psi2)
        self._labels, self._k, self._norm = labels, num_classes, norm
        self._draws, self._seed, self._d_cert, self._device = n_draws, seed, delta_per_certificate, device
        self.overall_method, self.class_methods = overall_method, dict(class_methods)
        self._weighted, self.weighted_methods = dict(weighted), dict(weighted_methods)
        self._coupled_rows, self.coupled_methods = dict(coupled_rows), dict(coupled_methods)
        self._coupled_scale = coupled_scale
        self._cache: dict[str, Any] = {}

    @classmethod
    def given(cls, num_classes: int, overall: tuple[float, float], per_class: Mapping[int, tuple[float, float]]
              ) -> Complexities:
        """Upper unit complexities given as numbers (a caller's own estimates, or a test's): S's, and S_c's for the
        classes in ``per_class`` (the others have no samples)."""
        out = cls(np.zeros((0, 1)), np.zeros((0, 1)), np.zeros(0, dtype=np.int64), num_classes, "row", 0, 0, None,
                  None, overall_method="given", class_methods={c: "given" for c in per_class}, weighted={},
                  weighted_methods={}, coupled_rows={}, coupled_methods={}, coupled_scale=None)
        out._cache["overall"] = tuple(ErcSummary(None, float(u)) for u in overall)
        out._cache.update({f"class:{c}": tuple(ErcSummary(None, float(u)) for u in pair)
                           for c, pair in per_class.items()})
        return out

    @property
    def computed(self) -> tuple[str, ...]:
        """The quantities estimated so far, in the order they were requested."""
        return tuple(self._cache)

    def _cached(self, key: str, compute) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def overall(self) -> tuple[ErcSummary, ErcSummary]:
        """R̂ᵛ_S(W(1)) of (ψ₁, ψ₂), with the same seed so that the MC sum is Lemma 5.1's sum on the same draws."""
        return self._cached("overall", lambda: tuple(
            _unit_erc(psi, self._k, self._norm, self.overall_method, self._draws, self._seed, self._d_cert,
                      self._device) for psi in self._psi))

    def of_class(self, c: int) -> tuple[ErcSummary, ErcSummary] | None:
        """R̂ᵛ_{S_c}(W(1)) of (ψ₁, ψ₂); None for a class without samples in S."""
        if c not in self.class_methods:
            return None
        rows = self._labels == c
        return self._cached(f"class:{c}", lambda: tuple(
            _unit_erc(psi[rows], self._k, self._norm, self.class_methods[c], self._draws, self._seed + 1 + c,
                      self._d_cert, self._device) for psi in self._psi))

    def weighted(self, target: str) -> tuple[ErcSummary, ErcSummary]:
        """The class-weighted unit complexities of ``target`` (balanced | group:<g>) for (ψ₁, ψ₂)."""
        i = list(self._weighted).index(target)
        w = self._weighted[target]
        rows = w > 0
        return self._cached(f"weighted:{target}", lambda: tuple(
            _weighted_unit_erc(psi[rows], w[rows], self._k, self._norm, self.weighted_methods[target], self._draws,
                               self._seed + 1 + self._k + i, self._d_cert, self._device) for psi in self._psi))

    def coupled(self, target: str) -> ErcSummary:
        """R̂ᵛ of the coupled class H_s on the rows of ``target`` (overall | class:<c>)."""
        i = list(self._coupled_rows).index(target)
        rows = self._coupled_rows[target]
        return self._cached(f"coupled:{target}", lambda: _coupled_erc(
            self._psi[0][rows], self._psi[1][rows], self._k, float(self._coupled_scale),
            self.coupled_methods[target], max(self._draws, 1), self._seed + 101 + i, self._d_cert, self._device))

    # read-only views in the shapes BoundContext exposes
    def per_class(self, j: int) -> Sequence[ErcSummary | None]:
        return _PerClass(self, j)

    def weighted_view(self) -> Mapping[str, tuple[ErcSummary, ErcSummary]]:
        return _Lazy(tuple(self._weighted), self.weighted)

    def coupled_view(self) -> Mapping[str, ErcSummary]:
        return _Lazy(tuple(self._coupled_rows), self.coupled)


class _PerClass(Sequence):
    """ψ_j's per-class complexities as a length-K sequence (None: no samples), each computed when indexed."""

    def __init__(self, owner: Complexities, j: int):
        self._owner, self._j = owner, j

    def __len__(self) -> int:
        return self._owner._k

    def __getitem__(self, c):
        if isinstance(c, slice):
            return [self[i] for i in range(*c.indices(len(self)))]
        if not -len(self) <= c < len(self):
            raise IndexError(c)
        pair = self._owner.of_class(c % len(self))
        return None if pair is None else pair[self._j]


class _Lazy(Mapping):
    """A mapping over keys fixed by the plan whose values are computed when read."""

    def __init__(self, keys: tuple[str, ...], get):
        self._keys, self._get = keys, get

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return self._get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _unit_erc(features: np.ndarray, num_outputs: int, norm: str, method: str, n_draws: int, seed: int,
              delta_cert: float | None, device: Any = None) -> ErcSummary:
    import torch

    from scilt_theory.rademacher import rademacher_linear  # estimator module (THEORY §5)

    if device is not None and method in ("mc", "exact"):  # pure-torch estimators run where the tensor lives
        features = torch.as_tensor(features, device=device)
    kwargs: dict = {"num_outputs": num_outputs, "norm": norm, "method": method, "seed": seed}
    if method == "mc":
        kwargs.update(n_draws=n_draws, delta_mc=delta_cert)
    elif method == "cvxpy":
        kwargs.update(n_draws=n_draws)
    return ErcSummary.from_result(rademacher_linear(features, 1.0, **kwargs))


def _weighted_unit_erc(features: np.ndarray, weights: np.ndarray, num_outputs: int, norm: str, method: str,
                       n_draws: int, seed: int, delta_cert: float | None, device: Any = None) -> ErcSummary:
    """Class-weighted unit complexity E sup_{W ∈ W(1)} Σ_i Σ_c σ_ic w_i ⟨w_c, ψ_i⟩ (the weighted margin form).

    It is n' · R̂ᵛ(W(1)) on the reweighted features w_i ψ_i (n' = their number: rademacher_linear divides by it),
    so every estimator (closed, exact, MC with its certificate) carries over unchanged.
    """
    from dataclasses import replace as _replace

    unit = _unit_erc(weights[:, None] * features, num_outputs, norm, method, n_draws, seed, delta_cert, device)
    m = float(features.shape[0])

    def sc(x: float | None) -> float | None:
        return None if x is None else m * x

    return _replace(unit, value=sc(unit.value), upper=m * unit.upper, stderr=sc(unit.stderr), lower=sc(unit.lower),
                    radius=None)


def _coupled_erc(psi1: np.ndarray, psi2: np.ndarray, num_classes: int, scale: float, method: str, n_draws: int,
                 seed: int, delta_cert: float | None, device: Any = None) -> ErcSummary:
    """R̂ᵛ of the coupled class H_s on exactly these rows (THEORY §2; rademacher.rademacher_coupled_scilt)."""
    import torch

    from scilt_theory.rademacher import rademacher_coupled_scilt

    on = device if device is not None else "cpu"
    res = rademacher_coupled_scilt(torch.as_tensor(psi1, device=on), torch.as_tensor(psi2, device=on), num_classes,
                                   scale, method=method, n_draws=n_draws, seed=seed,
                                   delta_mc=delta_cert if delta_cert is not None else 0.01)
    return ErcSummary(value=res.value, upper=res.upper, stderr=res.stderr, lower=None, method=res.method,
                      n=res.n, num_outputs=num_classes, norm="coupled", radius=scale,
                      n_draws=res.n_draws if res.method == "mc" else None,
                      delta_mc=delta_cert if res.method == "mc" else None)
