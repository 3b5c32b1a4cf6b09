"""Frozen-backbone CLS features of ``scitiles-pop`` draws, extracted once per (split, seed, class) and cached on disk.

The validity experiment (scilt_theory/validity.py) and the scale study (scilt_theory/scale.py) both need the features
φ_{N-1}, φ_N (THEORY §0) of many i.i.d. draws of the stated law P_c (scilt_theory/data/population.py) through the
frozen DINOv2-S/14 at 98 px. The backbone is fixed before any draw, so the features of a draw are a fixed function of
the image; they are computed once and read back by every later run (bit for bit: float32, as the backbone gives them).

Layout under ``root``: ``<split>-seed<seed>/class<c>.safetensors`` holding ``phi1``, ``phi2`` (count, d) float32, the
draws' geometry (count, 4) and a JSON header (law, weights sha256, count). The draws of one stream are nested (a
smaller count is a prefix of a larger one, population.py), so a request for fewer rows than stored reads a prefix, and
a request for more extracts only the new rows. Extraction saves a part file every ``chunk`` rows
(``class<c>.part<k>.safetensors``), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["DEFAULT_ROOT", "FeaturePool", "PoolFeatures", "load_backbone", "pool_features"]

#: where the caches live (runs/ is ignored by git)
DEFAULT_ROOT = Path("runs/feature_pool")
#: the model side and patch of the DINOv2 recipes (scilt_theory/recipes.py: 98 px, 7 × 7 patches of 14 px)
IMAGE_SIZE = 98
ARCH = "vit_small_patch14_dinov2"


@dataclass(frozen=True)
class PoolFeatures:
    """CLS features of draws of every class, concatenated class after class: phi1, phi2 (N, d) float32, labels (N,)."""

    phi1: torch.Tensor
    phi2: torch.Tensor
    labels: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    def psi(self) -> tuple[np.ndarray, np.ndarray]:
        """The cosine heads' inputs ψ = φ/‖φ‖ (THEORY §0), float64."""
        out = []
        for phi in (self.phi1, self.phi2):
            x = phi.double().numpy()
            out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        return out[0], out[1]

    def class_slices(self, num_classes: int) -> list[slice]:
        counts = np.bincount(self.labels.numpy(), minlength=num_classes)
        ends = np.cumsum(counts)
        return [slice(int(e - n), int(e)) for n, e in zip(counts, ends)]


def load_backbone(weights: str | Path | None = None, num_classes: int = 9):
    """The SciLT model with the frozen DINOv2-S/14 backbone at 98 px and no adapter (only ``features`` is used)."""
    from scilt_theory.models import SciLTModel
    from scilt_theory.models.config import ModelConfig

    if weights is None:
        from scilt_theory.pretrained import pretrained_weights

        weights = pretrained_weights()
    config = ModelConfig(num_classes=num_classes, arch=ARCH, img_size=IMAGE_SIZE, patch_size=14, adapter="none",
                         weights=str(weights))
    return SciLTModel(config).eval()


class FeaturePool:
    """The cache of one (split, seed) stream of ``scitiles-pop`` at 98 px, class by class (see the module docstring).

    ``backbone``: a callable returning the model (built on first need only: reading a complete cache needs none).
    """

    def __init__(self, root: str | Path = DEFAULT_ROOT, split: str = "test", seed: int = 0,
                 backbone: Callable[[], object] | None = None, chunk: int = 1024, batch_size: int = 128,
                 log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.split, self.seed = split, int(seed)
        self.folder = self.root / f"{split}-seed{self.seed}"
        self._backbone_factory = backbone or load_backbone
        self._model = None
        self.chunk, self.batch_size, self.log = int(chunk), int(batch_size), log

    # ---- files ----------------------------------------------------------------------------------------------
    def path(self, c: int) -> Path:
        return self.folder / f"class{c}.safetensors"

    def part_path(self, c: int, k: int) -> Path:
        return self.folder / f"class{c}.part{k}.safetensors"

    def stored_count(self, c: int) -> int:
        p = self.path(c)
        if not p.is_file():
            return 0
        with safe_open(str(p), framework="pt") as handle:
            return int(json.loads(handle.metadata()["info"])["count"])

    def _save(self, path: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
        from scilt_theory.checkpoint import atomic_files

        with atomic_files(path) as (tmp,):
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"info": json.dumps(info)})

    # ---- extraction -----------------------------------------------------------------------------------------
    @property
    def model(self):
        if self._model is None:
            self._model = self._backbone_factory()
        return self._model

    def class_features(self, c: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ_{N-1}, φ_N) of the first ``count`` draws of class c of this stream, float32 (count, d)."""
        have = self.stored_count(c)
        if have >= count:
            data = load_file(str(self.path(c)))
            return data["phi1"][:count], data["phi2"][:count]
        return self._extend(c, count, have)

    def _extend(self, c: int, count: int, have: int) -> tuple[torch.Tensor, torch.Tensor]:
        from scilt_theory.data.config import DataConfig
        from scilt_theory.data.population import law_of, sample_split

        started = time.perf_counter()
        config = DataConfig(name="scitiles-pop", image_size=IMAGE_SIZE, seed=self.seed)
        per_class = [0] * 9
        per_class[c] = count
        images, _, geometry = sample_split(config, self.split, per_class)  # the first `count` draws, nested
        model = self.model
        old = load_file(str(self.path(c))) if have else None
        parts1 = [old["phi1"]] if old else []
        parts2 = [old["phi2"]] if old else []
        k = 0
        start = have
        while start < count:
            stop = min(count, start + self.chunk)
            part = self.part_path(c, start)
            if part.is_file():
                data = load_file(str(part))
            else:
                phi1 = torch.empty(stop - start, model.feature_dim)
                phi2 = torch.empty_like(phi1)
                with torch.inference_mode():
                    for b in range(start, stop, self.batch_size):
                        e = min(stop, b + self.batch_size)
                        f1, f2 = model.features(images[b:e])
                        phi1[b - start:e - start], phi2[b - start:e - start] = f1, f2
                data = {"phi1": phi1, "phi2": phi2}
                self._save(part, data, {"start": start, "stop": stop})
                rate = (time.perf_counter() - started) / max(1, stop - have)
                self.log(f"[feature pool] {self.split}-seed{self.seed} class {c}: {stop}/{count} "
                         f"({1000 * rate:.0f} ms per image so far)")
            parts1.append(data["phi1"])
            parts2.append(data["phi2"])
            start = stop
            k += 1
        phi1, phi2 = torch.cat(parts1), torch.cat(parts2)
        info = {"count": count, "split": self.split, "seed": self.seed, "class": c, "arch": ARCH,
                "image_size": IMAGE_SIZE, "law": law_of(config).sentence(),
                "weights_sha256": getattr(model, "weights_sha256", None), "torch": torch.__version__}
        self._save(self.path(c), {"phi1": phi1, "phi2": phi2, "geometry": torch.as_tensor(geometry)}, info)
        for part in self.folder.glob(f"class{c}.part*.safetensors"):
            part.unlink()
        return phi1, phi2

    def features(self, per_class: Sequence[int]) -> PoolFeatures:
        """The first ``per_class[c]`` draws of every class, concatenated class after class."""
        p1, p2, labels = [], [], []
        for c, count in enumerate(per_class):
            if count <= 0:
                continue
            a, b = self.class_features(c, int(count))
            p1.append(a)
            p2.append(b)
            labels.append(torch.full((int(count),), c, dtype=torch.int64))
        return PoolFeatures(torch.cat(p1), torch.cat(p2), torch.cat(labels))


def pool_features(split: str, seed: int, per_class: Sequence[int], root: str | Path = DEFAULT_ROOT,
                  **kwargs) -> PoolFeatures:
    """:meth:`FeaturePool.features` of the (split, seed) stream (extracting what the cache lacks)."""
    return FeaturePool(root, split, seed, **kwargs).features(per_class)
