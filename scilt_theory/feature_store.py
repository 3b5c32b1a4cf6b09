"""A content-addressed store of extracted CLS features on disk, for runs that would compute the same numbers.

In the frozen-feature regime every method and every bounds pass of one seed extracts the same backbone features from
the same images; a comparison of 11 methods extracts them 22 times. The store keys a set of features by a sha256 of
everything they are a function of — the backbone's parameters and buffers (adapters included), the model's input
normalisation, the image bytes, the kind of extraction and its parameters (batch size, views, device type, torch
version) — so a key names exactly one set of numbers and a stored set is bit for bit what the extraction would give.
Lazily decoded images (real data sets on disk) are not keyed (hashing them would decode them all): no store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from scilt_theory.checkpoint import atomic_files

__all__ = ["FeatureStore"]


def _update(digest, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


class FeatureStore:
    """Features by content key under ``root`` (one safetensors file per key, written atomically)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(model, images, kind: str, **params) -> str | None:
        """The content key of extracting ``kind`` features of ``images`` with ``model`` (None: not keyable)."""
        from scilt_theory.data.lazy import LazyImages

        if isinstance(images, LazyImages):
            return None
        digest = hashlib.sha256()
        digest.update(json.dumps({"kind": kind, "torch": torch.__version__, **params}, sort_keys=True).encode())
        for name, tensor in sorted(model.backbone.state_dict().items()):
            digest.update(name.encode())
            _update(digest, tensor)
        _update(digest, model.mean)
        _update(digest, model.std)
        _update(digest, images)
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str | None) -> dict[str, torch.Tensor] | None:
        """The stored tensors of ``key``, or None when there are none (or the file is unreadable: recomputed)."""
        if key is None or not self.path(key).is_file():
            return None
        try:
            return load_file(self.path(key))
        except (SafetensorError, OSError, ValueError):
            return None

    def save(self, key: str | None, tensors: dict[str, torch.Tensor]) -> None:
        """Write ``tensors`` under ``key`` atomically (temp file + rename; a crash leaves no half file)."""
        if key is None:
            return
        with atomic_files(self.path(key)) as (tmp,):
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
