"""Parameter-efficient tuning of the backbone: peft LoRA, an AdaptFormer parallel adapter, full, or none.

Every adapter starts as the identity update (LoRA's B = 0, AdaptFormer's up-projection = 0), so the
adapted backbone computes exactly the plain backbone's features at initialisation.
"""

from __future__ import annotations

import math

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from scilt_theory.models.config import ModelConfig

__all__ = ["ParallelAdapter", "AdaptFormerMLP", "apply_adapter"]


class ParallelAdapter(nn.Module):
    """AdaptFormer bottleneck: x ↦ s · up(relu(down(x))), with ``up`` zero-initialised (identity at init)."""

    def __init__(self, dim: int, bottleneck: int, scale: float) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.ReLU()
        self.up = nn.Linear(bottleneck, dim)
        self.scale = scale
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))  # AdaptFormer's "lora" init
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return self.scale * self.up(self.act(self.down(x)))


class AdaptFormerMLP(nn.Module):
    """A block's MLP with a parallel adapter: mlp(z) + s · up(relu(down(z))), z the MLP input (= norm2(x)).

    AdaptFormer (Chen et al. 2022) feeds the adapter the block's residual stream; wrapping the MLP feeds it
    ``norm2(x)`` instead (its "layernorm in" option with the block's norm shared), and the sum then goes
    through the block's layer-scale and drop-path like the MLP output does.
    """

    def __init__(self, mlp: nn.Module, dim: int, bottleneck: int, scale: float) -> None:
        super().__init__()
        self.mlp = mlp
        self.adapter = ParallelAdapter(dim, bottleneck, scale)

    def forward(self, x):
        return self.mlp(x) + self.adapter(x)


def apply_adapter(backbone: VisionTransformer, config: ModelConfig) -> None:
    """Freeze ``backbone`` and add the trainable part named by ``config.adapter``, in place.

    full: every backbone parameter trains. none: nothing in the backbone trains. lora: peft LoRA
    (rank ``lora_rank``, scaling ``lora_alpha / lora_rank``) on the Linear layers whose names end with a
    ``lora_targets`` entry; only the LoRA matrices train. adaptformer: :class:`AdaptFormerMLP` around every
    block's MLP; only the adapters train.

    Raises
    ------
    ValueError
        A LoRA target matches nothing, or matches the patch embedding.
    """
    for param in backbone.parameters():
        param.requires_grad_(config.adapter == "full")
    if config.adapter == "lora":
        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets), bias="none")
        try:
            inject_adapter_in_model(lora, backbone)
        except ValueError as err:  # peft: "Target modules ... not found in the base model"
            raise ValueError(f"lora_targets {list(config.lora_targets)} match no layer of {config.arch} "
                             f"(layer names look like 'blocks.0.attn.qkv'): {err}") from err
        adapted = [name for name, module in backbone.named_modules() if isinstance(module, LoraLayer)]
        if any(name.startswith("patch_embed") for name in adapted):
            raise ValueError(f"lora_targets {list(config.lora_targets)} would adapt the patch embedding; "
                             f"target the transformer blocks only.")
        for name, param in backbone.named_parameters():
            param.requires_grad_("lora_" in name)  # peft already does this; keep the rule explicit
    elif config.adapter == "adaptformer":
        for block in backbone.blocks:
            block.mlp = AdaptFormerMLP(block.mlp, backbone.embed_dim, config.adapter_dim, config.adapter_scale)
            # new modules train by default; assigned after the freeze loop, so nothing else changes
