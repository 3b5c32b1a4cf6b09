"""Streamed extraction of the two CLS features and the scores of a trained model.

One forward pass per batch yields φ_{N-1}, φ_N (THEORY §0) and the scores s1 + s2; only the n × d feature
matrices and the n × K scores are kept (allocated once, filled in place), so beyond them the working memory is
one batch's activations, whatever n is (benchmarks/bench_extract.py measures it).

For a frozen backbone, training reads :class:`ViewFeatures` instead of images: the features of all 8 augmented
views (training's flips and 90° rotations) of every training image, extracted once by :func:`extract_view_features`,
one image at a time, so that they are bit for bit the features a training step would compute (:func:`view_features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from scilt_theory.data import row_range
from scilt_theory.data.lazy import LazyImages
from scilt_theory.distributed import DistContext
from scilt_theory.distributed import current as current_context
from scilt_theory.feature_store import FeatureStore
from scilt_theory.models import SciLTModel


@dataclass(frozen=True)
class FeatureSet:
    """Features of one sample as the heads see them.

    phi_penult, phi_final : (n, d) CLS features after the final LayerNorm (not L2-normalised).
    psi_penult, psi_final : (n, d) head inputs ψ_1, ψ_2 (L2-normalised for cosine heads, THEORY §0).
    scores                : (n, K) s1 + s2, the scorer whose bound is computed.
    labels                : (n,) int64.
    """

    phi_penult: torch.Tensor
    phi_final: torch.Tensor
    psi_penult: torch.Tensor
    psi_final: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


@torch.no_grad()
def extract_features(model: SciLTModel, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256,
                     device: torch.device | str = "cpu", progress: bool = True, desc: str = "features",
                     dtype: torch.dtype = torch.float64, store: FeatureStore | None = None) -> FeatureSet:
    """Run the model once over ``images`` in batches and keep features, head inputs and scores (on CPU).

    Features are stored in ``dtype`` (float64 by default) so the Rademacher estimators accumulate exactly. With a
    ``store`` (scilt_theory/feature_store.py) the backbone's φ of the same model and images are read back instead of
    recomputed; the heads still run batch by batch on them, so the result is bit for bit the same.
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    device = torch.device(device)
    model.eval()
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to extract features from")
    store_key = None if store is None else store.key(model, images, "batches", batch_size=batch_size,
                                                      device=device.type, dtype=str(dtype))
    stored = None if store is None else store.load(store_key)
    # Outputs are allocated once at their final size and filled batch by batch: no list of parts and no
    # concatenation, so the working memory beyond the n-row results is one batch's activations.
    out: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=not progress or None):
        if stored is not None:  # φ as the backbone computed them (float32, held exactly in dtype)
            phi1 = stored["phi1"][start:start + batch_size].to(device, torch.float32)
            phi2 = stored["phi2"][start:start + batch_size].to(device, torch.float32)
        else:
            x = images[start:start + batch_size].to(device, non_blocking=True)
            # Features in float32 even on GPU: bf16 would blur the norms the bounds depend on.
            phi1, phi2 = model.features(x)
        res = model.output_from_features(phi1, phi2)
        for key, value in (("phi1", phi1), ("phi2", phi2), ("psi1", res.psi1), ("psi2", res.psi2),
                           ("scores", res.logits)):
            if key not in out:
                out[key] = torch.empty((n, *value.shape[1:]), dtype=dtype)
            out[key][start:start + value.shape[0]].copy_(value.detach())
    if store is not None and stored is None and dtype in (torch.float32, torch.float64):  # both hold φ exactly
        store.save(store_key, {"phi1": out["phi1"], "phi2": out["phi2"]})
    return FeatureSet(phi_penult=out["phi1"], phi_final=out["phi2"], psi_penult=out["psi1"], psi_final=out["psi2"],
                      scores=out["scores"], labels=labels.to(torch.int64).cpu())


def extract_features_distributed(model: SciLTModel, images: torch.Tensor, labels: torch.Tensor, *,
                                 context: DistContext | None = None, **kwargs) -> FeatureSet:
    """:func:`extract_features` with the images shared among the processes of a torchrun launch.

    Each rank extracts its contiguous shard (``DistContext.shard``) and the rows are gathered in rank order, so
    every rank returns the features of all ``images`` in their order: those of one process, up to the floating
    point of different batch compositions. With one process this is :func:`extract_features`.
    """
    ctx = context if context is not None else current_context()
    if not ctx.enabled:
        return extract_features(model, images, labels, **kwargs)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    start, stop = ctx.shard(images.shape[0])
    if stop > start:
        part = extract_features(model, row_range(images, start, stop), labels[start:stop], **kwargs)
    else:  # fewer images than processes: this rank contributes no rows
        dtype = kwargs.get("dtype", torch.float64)
        d, k = model.feature_dim, model.config.num_classes
        empty = torch.empty(0, d, dtype=dtype)
        part = FeatureSet(empty, empty, empty, empty, torch.empty(0, k, dtype=dtype), torch.empty(0, dtype=torch.int64))
    return FeatureSet(phi_penult=ctx.gather_rows(part.phi_penult), phi_final=ctx.gather_rows(part.phi_final),
                      psi_penult=ctx.gather_rows(part.psi_penult), psi_final=ctx.gather_rows(part.psi_final),
                      scores=ctx.gather_rows(part.scores), labels=labels.to(torch.int64).cpu())


# ---- frozen backbone: the features of every augmented view, extracted once ------------------------------------
#: Training's augmentation group (training.augment_batch): view k is a horizontal flip when k & 4, then a rotation
#: by (k & 3) · 90°. Eight views, so the features of all of them can be computed once for a frozen backbone.
NUM_VIEWS = 8


def apply_view(images: torch.Tensor, k: int) -> torch.Tensor:
    """View ``k`` (0 ≤ k < 8) of square images (…, H, W): flip the last axis when k & 4, then rot90 by k & 3."""
    if k & 4:
        images = images.flip(-1)
    return torch.rot90(images, k & 3, dims=(-2, -1))


def image_views(image: torch.Tensor, num_views: int) -> torch.Tensor:
    """(num_views, C, H, W): views 0 … num_views − 1 of one (C, H, W) image (view 0 is the image itself)."""
    return torch.stack([apply_view(image, k) for k in range(num_views)])


def backbone_is_frozen(model: SciLTModel) -> bool:
    """True when the backbone is a fixed function of the image during training: no backbone parameter trains and
    no stochastic layer is active (drop path rate 0, every dropout probability 0). Only then may its features be
    computed once instead of at every step."""
    if any(p.requires_grad for p in model.backbone.parameters()):
        return False
    if model.config.drop_path_rate:
        return False
    return not any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.backbone.modules())


@torch.no_grad()
def view_features(model: SciLTModel, image: torch.Tensor, num_views: int,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(φ_{N-1}, φ_N) of views 0 … num_views − 1 of ONE image, each (num_views, D) float32 on CPU.

    This is the unit of frozen-feature extraction: one backbone pass (eval mode, float32) over exactly this image's
    views, stacked in view order. An image's features therefore never depend on which other images share a batch
    (floating-point results of a batched forward can), so features computed once for the whole training set and
    features computed for the images of one training batch are the same numbers, bit for bit.
    """
    backbone = model.backbone
    was_training = backbone.training
    backbone.eval()
    try:
        phi1, phi2 = model.features(image_views(image, num_views).to(device, non_blocking=True))
    finally:
        backbone.train(was_training)
    return phi1.float().cpu(), phi2.float().cpu()


@dataclass(frozen=True)
class ViewFeatures:
    """Features of every view of every image: ``phi_penult``, ``phi_final`` (n, V, D), not L2-normalised."""

    phi_penult: torch.Tensor
    phi_final: torch.Tensor

    @property
    def num_views(self) -> int:
        return int(self.phi_penult.shape[1])

    @property
    def nbytes(self) -> int:
        return self.phi_penult.numel() * self.phi_penult.element_size() * 2

    def to(self, device: torch.device | str) -> ViewFeatures:
        return ViewFeatures(self.phi_penult.to(device), self.phi_final.to(device))

    def select(self, index: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ_{N-1}, φ_N) of image ``index[i]`` in view ``views[i]``, each (B, D)."""
        index = index.to(self.phi_penult.device)
        views = views.to(self.phi_penult.device)
        return self.phi_penult[index, views], self.phi_final[index, views]


def batch_view_features(model: SciLTModel, images: torch.Tensor, views: torch.Tensor, num_views: int,
                        device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(φ_{N-1}, φ_N), each (B, D) on CPU, of image i in view ``views[i]``, computed as :class:`ViewFeatures`
    computes them (each image's ``num_views`` views in one pass of their own, then the drawn one picked)."""
    phi1, phi2 = [], []
    for image, view in zip(images, views.tolist()):
        a, b = view_features(model, image, num_views, device)
        phi1.append(a[view])
        phi2.append(b[view])
    if not phi1:
        empty = torch.empty(0, model.feature_dim)
        return empty, empty.clone()
    return torch.stack(phi1), torch.stack(phi2)


def extract_view_features(model: SciLTModel, images: torch.Tensor, num_views: int, *,
                          device: torch.device | str = "cpu", batch_size: int = 256, progress: bool = True,
                          desc: str = "feature cache", context: DistContext | None = None,
                          store: FeatureStore | None = None) -> ViewFeatures:
    """:class:`ViewFeatures` of ``images`` (a tensor or LazyImages, decoded ``batch_size`` at a time), one
    :func:`view_features` pass per image. Under torchrun each process extracts its contiguous shard and the rows
    are gathered in rank order: the same numbers as one process (an image's features depend on it alone). With a
    ``store`` the views of the same model and images are read back instead of recomputed (bit for bit the same)."""
    ctx = context if context is not None else current_context()
    key = None if store is None or ctx.enabled else store.key(model, images, "views", num_views=num_views,
                                                               device=torch.device(device).type)
    stored = None if store is None else store.load(key)
    if stored is not None:
        return ViewFeatures(stored["phi1"], stored["phi2"])
    start, stop = ctx.shard(images.shape[0])
    d = model.feature_dim
    phi1 = torch.empty(stop - start, num_views, d)
    phi2 = torch.empty(stop - start, num_views, d)
    for lo in tqdm(range(start, stop, batch_size), desc=desc, leave=False, disable=not progress or None):
        hi = min(lo + batch_size, stop)
        chunk = row_range(images, lo, hi)
        chunk = chunk.load() if isinstance(chunk, LazyImages) else chunk
        for j, image in enumerate(chunk):
            phi1[lo - start + j], phi2[lo - start + j] = view_features(model, image, num_views, device)
    features = ViewFeatures(ctx.gather_rows(phi1), ctx.gather_rows(phi2))
    if store is not None:
        store.save(key, {"phi1": features.phi_penult, "phi2": features.phi_final})
    return features
