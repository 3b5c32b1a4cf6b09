"""The timm ViT backbone: build it (optionally from a local weights file) and read both CLS features.

THEORY §0: one forward pass yields φ_{N-1}(x) (CLS of ``blocks[-2]``) and φ_N(x) (CLS of ``blocks[-1]``),
both after the final LayerNorm ``norm``. timm's ``forward_intermediates`` gives exactly that in one pass.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

# weights_sha256: the sha256 recorded in run.pt next to a file-backed backbone (the project's one sha256 function);
# the pos_embed resampling rule a weights file declares belongs to the named weights (scilt_theory/pretrained.py)
from scilt_theory.local_files import file_sha256 as weights_sha256
from scilt_theory.models.config import ModelConfig
from scilt_theory.pretrained import POS_EMBED_NO_ANTIALIAS, POS_EMBED_RESAMPLE_KEY

__all__ = ["create_backbone", "cls_features", "weights_sha256", "input_normalization", "weights_resample_rule",
           "load_weights_no_antialias", "POS_EMBED_RESAMPLE_KEY", "POS_EMBED_NO_ANTIALIAS"]

_BUILDER_LOGGER = "timm.models._builder"
_MISSING = re.compile(r"^Missing keys \((.*)\) discovered while loading pretrained weights")


class _CaptureMissingKeys(logging.Filter):
    """Catch timm's 'Missing keys (...)' INFO line while letting every other record through unchanged.

    timm loads pretrained weights with ``strict=False`` whenever the classifier is dropped (always here,
    ``num_classes=0``) and only *logs* missing keys; a half-loaded backbone must be an error instead.
    """

    def __init__(self, pass_level: int) -> None:
        super().__init__()
        self.pass_level = pass_level
        self.missing: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        match = _MISSING.match(record.getMessage())
        if match:
            self.missing.extend(k.strip() for k in match.group(1).split(",") if k.strip())
        return record.levelno >= self.pass_level  # INFO stays as quiet as the caller had it


@contextmanager
def _capture_missing_keys() -> Iterator[_CaptureMissingKeys]:
    logger = logging.getLogger(_BUILDER_LOGGER)
    old_level = logger.level
    capture = _CaptureMissingKeys(logger.getEffectiveLevel())
    logger.addFilter(capture)
    logger.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        logger.setLevel(old_level)
        logger.removeFilter(capture)


def weights_resample_rule(path: str | Path) -> str | None:
    """The ``pos_embed`` resampling rule a ``.safetensors`` weights file declares in its metadata, or None.

    Files without the key (every timm checkpoint), and files whose header cannot be read, return None and load
    through timm as before (which reports an unreadable file).

    Raises
    ------
    ValueError
        The file declares a rule this code does not know.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    rule = metadata.get(POS_EMBED_RESAMPLE_KEY)
    if rule is not None and rule != POS_EMBED_NO_ANTIALIAS:
        raise ValueError(f"weights file {str(path)!r} asks for position-embedding resampling {rule!r}; this "
                         f"scilt-theory knows only {POS_EMBED_NO_ANTIALIAS!r}.")
    return rule


def load_weights_no_antialias(model: VisionTransformer, path: str | Path) -> None:
    """Load a timm-layout safetensors file into ``model`` strictly, resampling ``pos_embed`` (and a patch
    embedding of another size) with bicubic interpolation without antialiasing (:data:`POS_EMBED_NO_ANTIALIAS`).

    Raises
    ------
    ValueError
        Tensors of ``model`` are missing from the file, the file has tensors ``model`` lacks, or shapes differ.
    """
    from safetensors.torch import load_file
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = checkpoint_filter_fn(load_file(str(path)), model, interpolation="bicubic", antialias=False)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"pretrained weights file {str(path)!r} lacks {len(missing)} backbone tensor(s) of this "
                         f"model (e.g. {missing[:3]}); it is not a checkpoint of this architecture.")
    unexpected = sorted(set(state) - expected)
    if unexpected:
        raise ValueError(f"pretrained weights file {str(path)!r} has {len(unexpected)} tensor(s) this model lacks "
                         f"(e.g. {unexpected[:3]}); it is a checkpoint of another architecture or depth.")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"could not load pretrained weights from {str(path)!r}: "
                         f"{str(err).strip().splitlines()[-1].strip()}") from err


def create_backbone(config: ModelConfig) -> VisionTransformer:
    """Create the timm ViT named by ``config`` without its classifier (``num_classes=0``).

    Weights come from ``config.weights`` (a local file, loaded by timm's own builder through
    ``pretrained_cfg_overlay=dict(file=...)``, including its position-embedding / patch-embedding
    resampling when ``img_size`` or ``patch_size`` differ) or are a random initialisation; the hub is
    never contacted. A ``.safetensors`` file whose metadata sets ``pos_embed_resample`` to
    :data:`POS_EMBED_NO_ANTIALIAS` (a DINOv2 backbone converted from ONNX, see
    :mod:`scilt_theory.models.dinov2_onnx`) is loaded by :func:`load_weights_no_antialias` instead, strictly,
    with the resampling of the graph it came from. The model is created with ``global_pool="token"`` so that
    its pooled feature is the CLS token after ``norm``.

    Raises
    ------
    FileNotFoundError
        ``config.weights`` does not name an existing file.
    ValueError
        The architecture is not a timm ``VisionTransformer`` with a class token, or the weights file does
        not fit it.
    """
    kwargs: dict = dict(num_classes=0, img_size=config.img_size, patch_size=config.patch_size,
                        drop_path_rate=config.drop_path_rate, global_pool="token")
    if config.depth is not None:
        kwargs["depth"] = config.depth
    path = rule = None
    if config.weights is not None:
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {str(path)!r} does not exist or is not a file.")
        rule = weights_resample_rule(path)
        if rule is None:
            # file has priority over url / hub id in timm's resolver; source=None rules out an 'hf-hub' source.
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path), source=None))
    not_vit = (f"arch {config.arch!r} is not a timm VisionTransformer with a class token; SciLT reads the CLS "
               f"token of the last two blocks (try vit_tiny_patch16_224).")
    with _capture_missing_keys() as capture:
        try:
            model = timm.create_model(config.arch, **kwargs)
        except (TypeError, AssertionError) as err:  # unknown kwargs (not a ViT) or "Token pooling needs..."
            raise ValueError(not_vit) from err
        except (RuntimeError, KeyError, ValueError, OSError) as err:
            if path is None or rule is not None:
                raise
            raise ValueError(f"could not load pretrained weights from {str(path)!r} into {config.arch} "
                             f"(img_size={config.img_size}, patch_size={config.patch_size}): {err}") from err
    if rule is not None and type(model) is VisionTransformer:
        load_weights_no_antialias(model, path)
    if type(model) is not VisionTransformer or getattr(model, "cls_token", None) is None:
        # subclasses (distilled, hybrid...) change what the pooled feature means; refuse rather than guess
        raise ValueError(not_vit)
    if isinstance(model.norm, nn.Identity) or not isinstance(model.fc_norm, nn.Identity):
        raise ValueError(f"arch {config.arch!r} puts its final norm after pooling (fc_norm); SciLT needs the "
                         f"final LayerNorm on every token.")
    if len(model.blocks) < 2:
        raise ValueError(f"arch {config.arch!r} has {len(model.blocks)} block(s); SciLT needs at least 2.")
    if capture.missing:
        raise ValueError(f"pretrained weights file {str(path)!r} lacks {len(capture.missing)} backbone "
                         f"tensor(s) of {config.arch} (e.g. {capture.missing[:3]}); it is not a checkpoint "
                         f"of this architecture.")
    return model


def input_normalization(backbone: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of the backbone's pretraining data, shaped (1, C, 1, 1), from timm's data config."""
    data_config = timm.data.resolve_data_config({}, model=backbone)
    mean = torch.tensor(data_config["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return mean, std


def cls_features(backbone: VisionTransformer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(φ_{N-1}, φ_N): CLS token of ``blocks[-2]`` and ``blocks[-1]`` after the final norm, in one pass.

    THEORY §0. ``forward_intermediates(indices=2, norm=True, return_prefix_tokens=True)`` returns
    (patch_tokens, prefix_tokens) for the last two blocks, each passed through ``backbone.norm``; the CLS
    token is ``prefix_tokens[:, 0]`` (without ``return_prefix_tokens`` it would be dropped and ``[:, 0]``
    would silently be a patch token). ``x`` must already be normalised. Both outputs are (B, D), not
    L2-normalised.
    """
    (_, prefix_penult), (_, prefix_final) = backbone.forward_intermediates(
        x, indices=2, norm=True, output_fmt="NLC", intermediates_only=True, return_prefix_tokens=True)
    return prefix_penult[:, 0], prefix_final[:, 0]
