"""Streamed extraction of the two CLS features and the scores of a trained model.

One forward pass per batch yields φ_{N-1}, φ_N (THEORY §0) and the scores s1 + s2; only the n × d feature
matrices and the n × K scores are kept (allocated once, filled in place), so beyond them the working memory is
one batch's activations, whatever n is (benchmarks/bench_extract.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from scilt_theory.data import row_range
from scilt_theory.distributed import DistContext
from scilt_theory.distributed import current as current_context
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
                     dtype: torch.dtype = torch.float64) -> FeatureSet:
    """Run the model once over ``images`` in batches and keep features, head inputs and scores (on CPU).

    Features are stored in ``dtype`` (float64 by default) so the Rademacher estimators accumulate exactly.
    """
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    device = torch.device(device)
    model.eval()
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to extract features from")
    # Outputs are allocated once at their final size and filled batch by batch: no list of parts and no
    # concatenation, so the working memory beyond the n-row results is one batch's activations.
    out: dict[str, torch.Tensor] = {}
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=not progress or None):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        # Features in float32 even on GPU: bf16 would blur the norms the bounds depend on.
        phi1, phi2 = model.features(x)
        res = model.output_from_features(phi1, phi2)
        for key, value in (("phi1", phi1), ("phi2", phi2), ("psi1", res.psi1), ("psi2", res.psi2),
                           ("scores", res.logits)):
            if key not in out:
                out[key] = torch.empty((n, *value.shape[1:]), dtype=dtype)
            out[key][start:start + value.shape[0]].copy_(value.detach())
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
