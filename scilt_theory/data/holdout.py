"""The stratified, seeded hold-out of training images (``--holdout-fraction``), keeping groups whole.

``experiments.train --holdout-fraction f`` fits the model on part of the training split and keeps the rest for
``experiments.bounds --mode certified``, which evaluates the bound there. That bound needs the held-out images to
be independent of what the model was fitted on, so images that share a group (``LongTailDataset.train_groups``:
for scitiles-lt the source block, whose crops overlap) must not feed both parts.

Per class c with n_c training images, k_c = min(⌊f · n_c⌋, n_c − 1):

- **without groups** (every image its own group): the class's images are permuted with a generator seeded by
  ``seed + 7919`` and the first k_c are held out. This is exactly the function ``scilt_theory.training`` used
  before groups existed (same indices for the same seed), so recorded ``holdout_indices`` stay valid.
- **with groups**: the class's groups (sorted by id) are permuted with the same generator and held out whole, in
  that order, until k_c images are held out. When the next group is larger than what is still needed, a seeded
  subset of it completes the k_c and its other images are **dropped**: in neither part, so no group feeds both
  and the held-out count stays exactly k_c. The last group of the permutation is never held out, so at least one
  image of every class stays for fitting; only when the other groups of a class hold fewer than k_c images are
  fewer held out (all of them). With singleton groups this is the group-free rule, draw for draw.

``holdout_parts`` returns all three index sets; ``holdout_split`` the (fit, held-out) pair.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

SEED_OFFSET = 7919  # the hold-out's generator is seeded by seed + 7919 (kept from the first release)


class Holdout(NamedTuple):
    """Sorted int64 indices into the training split: fitted on, held out, and dropped (neither)."""

    fit: torch.Tensor
    held: torch.Tensor
    dropped: torch.Tensor


def holdout_parts(labels: torch.Tensor, fraction: float, seed: int,
                  groups: torch.Tensor | None = None) -> Holdout:
    """Split the indices of ``labels`` into (fit, held, dropped) by the module's rule; seeded and deterministic."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {tuple(labels.shape)}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the hold-out fraction must lie in [0, 1), got {fraction}")
    n = labels.numel()
    if groups is None:
        groups = torch.arange(n)
    else:
        groups = torch.as_tensor(groups)
        if groups.shape != labels.shape or groups.dtype.is_floating_point or groups.dtype == torch.bool:
            raise ValueError(f"groups must hold one integer group id per label ({n}), got {groups.dtype} "
                             f"{tuple(groups.shape)}")
        pairs = torch.unique(torch.stack([groups.to(torch.int64), labels.to(torch.int64)]), dim=1)
        if pairs.shape[1] != torch.unique(groups).numel():
            raise ValueError("a group holds images of more than one class; groups must lie within a class (the "
                             "hold-out is stratified by class, so such a group could feed both parts)")
    generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
    fit, held, dropped = [], [], []
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero(as_tuple=True)[0]
        k = min(int(fraction * idx.numel()), idx.numel() - 1)
        _, inverse, sizes = torch.unique(groups[idx], return_inverse=True, return_counts=True)
        members = torch.split(idx[torch.argsort(inverse, stable=True)], sizes.tolist())  # group g's images
        order = torch.randperm(len(members), generator=generator).tolist()
        taken, position = 0, 0
        while taken < k and position < len(order) - 1:  # never the last group of the permutation
            group = members[order[position]]
            position += 1
            if taken + group.numel() <= k:
                held.append(group)
                taken += group.numel()
            else:  # a seeded part completes k; the rest of this group feeds neither part
                group = group[torch.randperm(group.numel(), generator=generator)]
                held.append(group[:k - taken])
                dropped.append(group[k - taken:])
                taken = k
        fit.extend(members[g] for g in order[position:])

    def sorted_cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.sort(torch.cat(parts)).values if parts else torch.zeros(0, dtype=torch.int64)

    return Holdout(sorted_cat(fit), sorted_cat(held), sorted_cat(dropped))


def holdout_split(labels: torch.Tensor, fraction: float, seed: int,
                  groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified split of sample indices into (fit, holdout): ⌊fraction·n_c⌋ of each class held out, but at
    least one image of every class stays in the fit part; with ``groups``, whole groups are held out and the
    remainder of a partly needed group is dropped from both parts (see the module docstring). Seeded, so the
    bounds command can re-create it."""
    parts = holdout_parts(labels, fraction, seed, groups)
    return parts.fit, parts.held
