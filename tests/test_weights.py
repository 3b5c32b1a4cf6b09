"""``--weights PATH``: timm checkpoints (plain, {"model": …}, {"state_dict": …}, safetensors), the OpenAI-CLIP and
IN21K layouts as timm converts them, position-embedding resampling, and the sha256 check of the bounds command."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from scilt_theory.models import ModelConfig
from scilt_theory.models.backbone import create_backbone

TINY = dict(num_classes=3, arch="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, adapter="none")


def reference(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_backbone(ModelConfig(**{**TINY, **overrides}))


def assert_same_backbone(loaded: torch.nn.Module, ref: torch.nn.Module) -> None:
    a, b = loaded.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "module-prefix", "safetensors"])
def test_timm_checkpoint_layouts_load_exactly(tmp_path, wrap):
    ref = reference()
    state = {k: v.clone().contiguous() for k, v in ref.state_dict().items()}
    path = tmp_path / ("w.safetensors" if wrap == "safetensors" else "w.pth")
    if wrap == "safetensors":
        save_file(state, str(path))
    elif wrap == "plain":
        torch.save(state, path)
    elif wrap == "module-prefix":  # a DDP-saved checkpoint
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    else:
        torch.save({wrap: state, "optimizer": {}, "epoch": 3}, path)
    assert_same_backbone(create_backbone(ModelConfig(**TINY, weights=str(path))), ref)


def test_in21k_layout_with_its_21843_class_head_loads_the_backbone(tmp_path):
    torch.manual_seed(1)
    in21k = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=21843, depth=2, img_size=32,
                              patch_size=8)
    path = tmp_path / "vit_in21k.safetensors"
    save_file({k: v.contiguous() for k, v in in21k.state_dict().items()}, str(path))
    loaded = create_backbone(ModelConfig(**TINY, weights=str(path)))
    expected = {k: v for k, v in in21k.state_dict().items() if not k.startswith("head.")}
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


def to_openai_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ViT keys → the OpenAI CLIP visual-tower names (the inverse of timm's _convert_openai_clip)."""
    out = {}
    for key, value in state.items():
        name = key
        for timm_name, clip_name in (("patch_embed.proj", "conv1"), ("norm_pre", "ln_pre"),
                                     ("blocks.", "transformer.resblocks."), ("norm1", "ln_1"), ("norm2", "ln_2"),
                                     ("attn.qkv.", "attn.in_proj_"), ("attn.proj", "attn.out_proj"),
                                     ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            name = name.replace(timm_name, clip_name)
        if name in ("norm.weight", "norm.bias"):
            name = name.replace("norm", "ln_post")
        if name == "cls_token":
            name, value = "class_embedding", value[0, 0]
        elif name == "pos_embed":
            name, value = "positional_embedding", value[0]
        out["visual." + name] = value.clone()
    return out


def test_openai_clip_layout_is_converted_by_timm(tmp_path):
    clip = dict(TINY, arch="vit_xsmall_patch16_clip_224")  # a pre-norm CLIP tower (ln_pre, no patch bias)
    ref = reference(2, arch=clip["arch"])
    state = to_openai_clip(ref.state_dict())
    assert "visual.class_embedding" in state and "visual.transformer.resblocks.1.attn.in_proj_weight" in state
    width = ref.cls_token.shape[-1]
    state["visual.proj"] = torch.randn(width, 16)                # CLIP's projection: becomes timm's head, dropped
    state["token_embedding.weight"] = torch.randn(10, 8)         # the text tower is ignored
    state["transformer.resblocks.0.ln_1.weight"] = torch.randn(8)
    path = tmp_path / "clip_visual.pth"
    torch.save(state, path)
    assert_same_backbone(create_backbone(ModelConfig(**clip, weights=str(path))), ref)


@pytest.mark.parametrize("img_size", [16, 48])
def test_position_embeddings_are_resampled_like_timm_when_the_image_size_differs(tmp_path, img_size):
    ref = reference(3)  # saved at 32 px with 8 px patches: a 4 × 4 grid
    path = tmp_path / "vit32.pth"
    torch.save(ref.state_dict(), path)
    loaded = create_backbone(ModelConfig(**{**TINY, "img_size": img_size}, weights=str(path)))
    grid = img_size // 8
    assert loaded.pos_embed.shape == (1, 1 + grid * grid, ref.pos_embed.shape[-1])
    expected = resample_abs_pos_embed(ref.pos_embed, new_size=(grid, grid), old_size=(4, 4), num_prefix_tokens=1,
                                      interpolation="bicubic", antialias=True)
    torch.testing.assert_close(loaded.pos_embed, expected, rtol=0, atol=0)
    assert torch.equal(loaded.pos_embed[:, :1], ref.pos_embed[:, :1])  # the class token's embedding is kept
    assert torch.equal(loaded.blocks[1].attn.qkv.weight, ref.blocks[1].attn.qkv.weight)


# --- the sha256 of the weights travels with run.pt and is checked by the bounds command ---------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from scilt_theory.data import DataConfig
    from scilt_theory.training import TrainConfig, train

    root = tmp_path_factory.mktemp("weights_run")
    torch.manual_seed(0)
    backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, depth=2, img_size=32,
                                 patch_size=8)
    weights = root / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(weights))
    data = DataConfig(name="synthetic-lt", num_classes=3, imbalance=4.0, max_per_class=24, test_per_class=4,
                      image_size=16)
    model = ModelConfig(num_classes=3, img_size=16, patch_size=8, depth=2, adapter="lora", weights=str(weights))
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, warmup_epochs=0,
                         out=str(root / "run"), quiet=True)
    return train(data, model, config).run_path, weights


def run_bounds(capsys, *args) -> tuple[int, str]:
    from experiments import bounds as bounds_cli
    from experiments._cli import run_main

    capsys.readouterr()
    code = run_main(bounds_cli.main, ["--draws", "30", "--no-plots", "--quiet", *args])
    return code, capsys.readouterr().err


def test_bounds_command_checks_the_weights_sha256(trained, tmp_path, capsys):
    import hashlib

    run_path, weights = trained
    record = torch.load(run_path, weights_only=True)
    assert record["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["model_config"]["weights"] == str(weights)
    assert run_bounds(capsys, "--ckpt", str(run_path))[0] == 0
    json.loads((run_path.parent / "bounds" / "bounds.json").read_text())

    moved = tmp_path / "moved.safetensors"
    moved.write_bytes(weights.read_bytes())
    original = weights.read_bytes()
    weights.unlink()
    code, err = run_bounds(capsys, "--ckpt", str(run_path))
    assert code == 2 and err.startswith("error: ") and "which is missing (pass --weights PATH" in err
    assert len(err.strip().splitlines()) == 1
    assert run_bounds(capsys, "--ckpt", str(run_path), "--weights", str(moved), "--out", str(tmp_path / "b"))[0] == 0

    from safetensors.torch import load_file

    tensors = load_file(str(moved))
    tensors["cls_token"] = tensors["cls_token"] + 1e-3
    changed = tmp_path / "changed.safetensors"
    save_file(tensors, str(changed))
    code, err = run_bounds(capsys, "--ckpt", str(run_path), "--weights", str(changed))
    assert code == 2 and "has sha256" in err and record["weights_sha256"] in err
    weights.write_bytes(original)
