"""Decoding one image file to a float tensor in [0, 1] and resizing it the way timm's eval transform does.

- Decoding (Pillow): 8-bit modes are divided by 255; 16-bit grey (PNG/TIFF modes ``I;16*``, and ``I`` which older
  Pillow versions use for 16-bit PNGs) by 65535; 32-bit float (``F``) images must already lie in [0, 1]. Grey
  (``L``/``I``/``F``) is replicated to 3 channels; an alpha channel (``LA``/``RGBA``/``PA``) is dropped, not
  composited; palette, CMYK, YCbCr and 1-bit images are converted to RGB (or L) by Pillow first. Pillow reads
  16-bit *colour* PNGs as 8-bit RGB, so their extra precision is lost (grey 16-bit keeps all of it).
- Resizing (timm ``transforms_imagenet_eval`` with crop_mode "center"): the short side goes to
  ⌊image_size / crop_pct⌋ with the given interpolation (antialiased), then a centre crop of image_size × image_size.
  It runs on the float tensor (torchvision's tensor ops), so 16-bit precision survives; values are clipped back to
  [0, 1] (bicubic overshoots). The data stay un-normalised: the model applies its mean/std itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm")
DEFAULT_INTERPOLATION = "bicubic"
DEFAULT_CROP_PCT = 1.0

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class Preprocess:
    """Target size, interpolation and centre-crop fraction (timm eval transform, crop_mode "center")."""

    image_size: int
    interpolation: str = DEFAULT_INTERPOLATION
    crop_pct: float = DEFAULT_CROP_PCT

    @property
    def scale_size(self) -> int:
        """Side the short edge is resized to before the centre crop: ⌊image_size / crop_pct⌋ (timm)."""
        return math.floor(self.image_size / self.crop_pct)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) float in [0, 1] with C in {1, 3} → (3, image_size, image_size) float32 in [0, 1]."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        mode = InterpolationMode(self.interpolation)
        out = TF.resize(image, self.scale_size, interpolation=mode, antialias=mode != InterpolationMode.NEAREST)
        out = TF.center_crop(out, [self.image_size, self.image_size]).clamp_(0.0, 1.0)
        if out.shape[0] == 1:
            out = out.expand(3, -1, -1)
        return out.contiguous().to(torch.float32)


def preprocess_from_config(config) -> Preprocess:
    """The Preprocess of a DataConfig (None fields fall back to bicubic and no crop)."""
    return Preprocess(config.image_size, config.interpolation or DEFAULT_INTERPOLATION,
                      float(config.crop_pct) if config.crop_pct is not None else DEFAULT_CROP_PCT)


def model_preprocessing(arch: str) -> dict[str, object]:
    """``interpolation`` and ``crop_pct`` of timm's data config for ``arch`` (its default pretrained tag).

    Interpolations the tensor path cannot do (e.g. lanczos) fall back to bicubic.
    """
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    data_config = timm.data.resolve_data_config({}, pretrained_cfg=cfg.to_dict() if cfg is not None else {})
    interpolation = data_config.get("interpolation", DEFAULT_INTERPOLATION)
    if interpolation not in ("bicubic", "bilinear", "nearest"):
        interpolation = DEFAULT_INTERPOLATION
    return {"interpolation": interpolation, "crop_pct": float(data_config.get("crop_pct", DEFAULT_CROP_PCT))}


def array_to_tensor(array: np.ndarray, source: str) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8 / uint16 / float array → (C, H, W) float32 in [0, 1] with C in {1, 3}.

    uint8 is divided by 255, uint16 by 65535; floats must lie in [0, 1]. A fourth (alpha) channel is dropped.
    """
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # grey+alpha or RGB+alpha: drop alpha
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"image {source} has shape {array.shape}; expected grey (H, W) or colour (H, W, 3)")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0):
            raise ValueError(f"image {source} holds floating-point values outside [0, 1]")
    else:
        raise ValueError(f"image {source} has pixel type {array.dtype}; expected 8-bit, 16-bit or float in [0, 1]")
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def read_image_array(path: str | Path) -> np.ndarray:
    """Pixels of an image file as uint8 / uint16 / float32 array, (H, W) grey or (H, W, 3|4) colour.

    Raises ``ValueError`` naming the file when it is missing, unreadable or truncated.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in _SIXTEEN_BIT:
                return np.asarray(image).astype(np.uint16)
            if mode == "I":  # 32-bit int container; Pillow < 10 opens 16-bit grey PNGs like this
                array = np.asarray(image)
                if array.size and (array.min() < 0 or array.max() > 65535):
                    raise ValueError(f"image {path} is 32-bit integer with values outside the 16-bit range")
                return array.astype(np.uint16)
            if mode == "F":
                return np.asarray(image, dtype=np.float32)
            if mode in ("L", "RGB", "RGBA", "LA"):
                return np.asarray(image)
            if mode in ("1",):
                return np.asarray(image.convert("L"))
            if mode in ("P", "PA"):
                return np.asarray(image.convert("RGBA"))
            return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, LAB, HSV …
    except FileNotFoundError:
        raise ValueError(f"image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def load_image(path: str | Path, preprocess: Preprocess) -> torch.Tensor:
    """Decode ``path`` and resize/crop it: (3, S, S) float32 in [0, 1]."""
    return preprocess(array_to_tensor(read_image_array(path), str(path)))


def list_images(folder: Path) -> list[Path]:
    """Image files (by suffix, case-insensitive) directly or deeper under ``folder``, sorted; hidden files skipped."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))
