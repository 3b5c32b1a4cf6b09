"""Tests of scilt_theory.models: the SciLT fused model of THEORY §1 on tiny timm ViTs (CPU, offline)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import timm
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from scilt_theory.models import MODEL_VARIANTS, ModelConfig, SciLTModel, SciLTOutput, build_model, weights_sha256
from scilt_theory.models.backbone import create_backbone
from scilt_theory.models.registry import register_model_variant

torch.set_num_threads(1)

TINY = dict(num_classes=5, img_size=16, patch_size=4, depth=2)
ADAPTERS = ("lora", "adaptformer", "full", "none")


def make(seed: int = 0, **overrides) -> SciLTModel:
    torch.manual_seed(seed)
    return build_model(ModelConfig(**{**TINY, **overrides}))


def images(batch: int = 4, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def perturb_trainable(model: torch.nn.Module, seed: int = 2, std: float = 0.1) -> None:
    """Move every trainable tensor off its init (LoRA's B and AdaptFormer's up start at 0, which would
    make the gradient of the matrix before them exactly 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(std * torch.randn(param.shape, generator=gen, dtype=param.dtype))


def expected_trainable(model: SciLTModel) -> set[str]:
    adapter = model.config.adapter
    names = {"head1.weight", "head2.weight"} | ({"fusion.logit"} if model.config.fusion == "adaptive" else set())
    for name, _ in model.backbone.named_parameters():
        if (adapter == "full" or (adapter == "lora" and ".lora_" in name)
                or (adapter == "adaptformer" and ".mlp.adapter." in name)):
            names.add("backbone." + name)
    return names


# ---- gradients and freezing -----------------------------------------------------------------------
@pytest.mark.parametrize("head", ["cosine", "linear"])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_gradients_reach_exactly_the_trainable_parameters(adapter, head):
    model = make(adapter=adapter, head=head)
    perturb_trainable(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected_trainable(model)
    assert model.num_trainable_parameters() == sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    y = torch.tensor([0, 1, 2, 3])
    out = model(images())
    (F.cross_entropy(out.s1, y) + F.cross_entropy(out.s2, y)).backward()
    for name, param in model.named_parameters():
        if name in trainable:
            assert param.grad is not None, name
            assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name


def test_lora_adapts_the_named_linear_layers_and_never_the_patch_embedding():
    model = make(adapter="lora")
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    expected = {f"backbone.blocks.{i}.{t}" for i in range(2) for t in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert adapted == expected
    assert not any("lora" in n for n, _ in model.backbone.patch_embed.named_parameters())


def test_lora_guard_at_build_catches_a_patch_embedding_target_that_slipped_past_the_config():
    config = ModelConfig(**TINY, adapter="lora")
    object.__setattr__(config, "lora_targets", ("proj",))  # bypass __post_init__ on purpose
    with pytest.raises(ValueError, match="patch embedding"):
        SciLTModel(config)


def test_lora_targets_that_match_nothing_are_a_value_error():
    with pytest.raises(ValueError, match="match no layer"):
        make(adapter="lora", lora_targets=("no_such_layer",))


# ---- one backbone pass, features as THEORY §0 defines them ----------------------------------------
def test_both_features_come_from_one_backbone_pass():
    model = make(adapter="lora", depth=3)
    calls = {}
    for i, block in enumerate(model.backbone.blocks):
        block.register_forward_hook(lambda m, inp, out, i=i: calls.__setitem__(i, calls.get(i, 0) + 1))
    model(images())
    assert calls == {0: 1, 1: 1, 2: 1}
    calls.clear()
    model.features(images())
    assert calls == {0: 1, 1: 1, 2: 1}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_features_match_timm_pooled_feature_and_the_manual_penultimate(adapter):
    model = make(adapter=adapter, depth=3).eval()
    perturb_trainable(model)  # so that the adapters take part in both computations
    x = images()
    phi_penult, phi_final = model.features(x)
    backbone = model.backbone
    xn = (x - 0.5) / 0.5  # vit_tiny's timm data config: mean = std = 0.5
    assert torch.equal(model.mean.flatten(), torch.full((3,), 0.5))
    assert torch.equal(model.std.flatten(), torch.full((3,), 0.5))
    with torch.no_grad():
        final_ref = backbone.forward_head(backbone.forward_features(xn), pre_logits=True)
        tokens = backbone.norm_pre(backbone.patch_drop(backbone._pos_embed(backbone.patch_embed(xn))))
        for block in backbone.blocks[:-1]:
            tokens = block(tokens)
        penult_ref = backbone.norm(tokens)[:, 0]
    assert phi_penult.shape == phi_final.shape == (4, 192)
    torch.testing.assert_close(phi_final, final_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(phi_penult, penult_ref, rtol=0, atol=1e-6)
    assert not torch.allclose(phi_penult, phi_final, atol=1e-3)  # two different blocks
    assert not torch.allclose(phi_final.norm(dim=1), torch.ones(4), atol=1e-2)  # not L2-normalised


@pytest.mark.parametrize("adapter", ["lora", "adaptformer"])
def test_adapters_at_init_leave_the_backbone_function_unchanged(adapter):
    model = make(seed=7, adapter=adapter, depth=3, lora_dropout=0.0).eval()
    torch.manual_seed(7)
    plain = create_backbone(model.config).eval()  # same seed: the backbone is built first
    x = images()
    with torch.no_grad():
        ref = plain.forward_intermediates((x - 0.5) / 0.5, indices=2, norm=True, output_fmt="NLC",
                                          intermediates_only=True, return_prefix_tokens=True)
        ours = model.features(x)
    torch.testing.assert_close(ours[0], ref[0][1][:, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours[1], ref[1][1][:, 0], rtol=0, atol=1e-6)
    perturb_trainable(model)  # and the adapters really are on the path
    with torch.no_grad():
        assert not torch.allclose(model.features(x)[1], ours[1], atol=1e-4)


# ---- fusion and heads against THEORY §1 -----------------------------------------------------------
@pytest.mark.parametrize("fusion", ["adaptive", "fixed"])
@pytest.mark.parametrize("head", ["cosine", "linear"])
def test_scores_follow_theory_section_1(head, fusion):
    model = make(adapter="none", head=head, fusion=fusion, fixed_alpha=0.3, scale=17.0).double().eval()
    if fusion == "adaptive":
        with torch.no_grad():
            model.fusion.logit.fill_(0.7)
    x = images().double()
    with torch.no_grad():
        out = model(x)
        phi1, phi2 = model.features(x)
    assert isinstance(out, SciLTOutput)
    alpha = torch.sigmoid(torch.tensor(0.7, dtype=torch.float64)) if fusion == "adaptive" else torch.tensor(0.3)
    assert out.alpha.ndim == 0 and math.isclose(float(out.alpha), float(alpha), rel_tol=1e-12)
    w1, w2 = model.head1.weight.detach(), model.head2.weight.detach()
    if head == "cosine":
        psi1, psi2 = phi1 / phi1.norm(dim=1, keepdim=True), phi2 / phi2.norm(dim=1, keepdim=True)
        w1, w2, s = w1 / w1.norm(dim=1, keepdim=True), w2 / w2.norm(dim=1, keepdim=True), 17.0
    else:
        psi1, psi2, s = phi1, phi2, 1.0
    a = float(alpha)
    tol = dict(rtol=0, atol=1e-10)
    torch.testing.assert_close(out.psi1, psi1, **tol)
    torch.testing.assert_close(out.psi2, psi2, **tol)
    torch.testing.assert_close(out.s1, s * (a * psi1 + (1 - a) * psi2) @ w1.T, **tol)
    torch.testing.assert_close(out.s2, s * psi1 @ w2.T, **tol)
    torch.testing.assert_close(out.logits, out.s1 + out.s2, **tol)
    hw1, hw2 = model.head_weights()
    torch.testing.assert_close(hw1.detach(), w1, **tol)
    torch.testing.assert_close(hw2.detach(), w2, **tol)
    U, V = (t.detach() for t in model.decomposition())
    torch.testing.assert_close(U, s * (a * w1 + w2), **tol)
    torch.testing.assert_close(V, s * (1 - a) * w1, **tol)
    torch.testing.assert_close(out.logits, psi1 @ U.T + psi2 @ V.T, rtol=0, atol=1e-5)


_PROPERTY_MODELS: dict[str, SciLTModel] = {}


@settings(derandomize=True, max_examples=25, deadline=None)
@given(head=st.sampled_from(["cosine", "linear"]), logit=st.floats(-6, 6), seed=st.integers(0, 2**16),
       weight_scale=st.floats(1e-2, 1e2))
def test_decomposition_and_cosine_radii_hold_for_any_fusion_and_head_weights(head, logit, seed, weight_scale):
    if head not in _PROPERTY_MODELS:  # built once per head kind; hypothesis varies everything else
        _PROPERTY_MODELS[head] = make(adapter="none", head=head, scale=25.0).double().eval()
    model = _PROPERTY_MODELS[head]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.fusion.logit.fill_(logit)
        for w in (model.head1.weight, model.head2.weight):
            w.copy_(weight_scale * torch.randn(w.shape, generator=gen, dtype=w.dtype))
        out = model(torch.rand(6, 3, 16, 16, generator=gen, dtype=torch.float64))
        U, V = model.decomposition()
    a = 1 / (1 + math.exp(-logit))
    assert math.isclose(float(out.alpha), a, rel_tol=1e-12)
    torch.testing.assert_close(out.logits, out.psi1 @ U.T + out.psi2 @ V.T, rtol=1e-10, atol=1e-9)
    if head == "cosine":
        s = 25.0
        assert out.s1.abs().max() <= s * (1 + 1e-9) and out.s2.abs().max() <= s * (1 + 1e-9)
        assert U.norm(dim=1).max() <= s * (1 + a) * (1 + 1e-9)
        assert V.norm(dim=1).max() <= s * (1 - a) * (1 + 1e-9)


def test_decomposition_holds_in_float32_to_1e_5():
    model = make(adapter="lora").eval()
    perturb_trainable(model)
    with torch.no_grad():
        out = model(images())
        U, V = model.decomposition()
    torch.testing.assert_close(out.logits, out.psi1 @ U.T + out.psi2 @ V.T, rtol=0, atol=1e-5)


def test_adaptive_alpha_is_sigmoid_of_its_initial_logit():
    model = make(adapter="none", alpha_init_logit=-1.3)
    assert math.isclose(float(model.alpha.detach()), 1 / (1 + math.exp(1.3)), rel_tol=1e-6)
    assert model.fusion.logit.requires_grad


def test_fixed_fusion_keeps_alpha_constant_and_has_nothing_to_train():
    model = make(adapter="none", fusion="fixed", fixed_alpha=0.25)
    assert list(model.fusion.parameters()) == []
    assert not any(k.startswith("fusion") for k in model.trainable_state_dict())
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=10.0)
    model(images()).logits.sum().backward()
    optimiser.step()
    assert float(model.alpha) == 0.25


def test_cosine_scores_and_decomposition_rows_are_bounded_by_the_scale():
    model = make(adapter="none", scale=9.0).eval()
    with torch.no_grad():
        model.head1.weight.mul_(50.0)  # huge raw rows: normalisation must remove them
        model.head2.weight.normal_(0, 30.0)
        model.fusion.logit.fill_(-0.4)
        out = model(images(16))
        U, V = model.decomposition()
    a, s = float(out.alpha), 9.0
    assert out.s1.abs().max() <= s * (1 + 1e-6) and out.s2.abs().max() <= s * (1 + 1e-6)
    assert U.norm(dim=1).max() <= s * (1 + a) * (1 + 1e-6)
    assert V.norm(dim=1).max() <= s * (1 - a) * (1 + 1e-6)
    torch.testing.assert_close(V.norm(dim=1), torch.full((5,), s * (1 - a)))  # V's rows sit on the radius


def test_linear_heads_use_scale_one_and_no_normalisation():
    model = make(adapter="none", head="linear", scale=25.0)
    assert model.effective_scale == 1.0
    torch.testing.assert_close(model.head_weights()[0], model.head1.weight)


# ---- checkpoints and determinism ------------------------------------------------------------------
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_trainable_state_dict_round_trip_gives_identical_logits(adapter):
    model = make(seed=0, adapter=adapter).eval()
    perturb_trainable(model)
    state = model.trainable_state_dict()
    assert set(state) == set(model.state_dict())  # no weights file: the (random) backbone is saved too
    fresh = make(seed=1, adapter=adapter).eval()
    x = images()
    with torch.no_grad():
        assert not torch.equal(fresh(x).logits, model(x).logits)
        fresh.load_trainable_state_dict(state)
        assert torch.equal(fresh(x).logits, model(x).logits)


def test_load_trainable_state_dict_is_strict():
    model = make(adapter="lora")
    state = model.trainable_state_dict()
    extra = dict(state, surprise=torch.zeros(1))
    with pytest.raises(ValueError, match="unexpected"):
        model.load_trainable_state_dict(extra)
    missing = dict(state)
    missing.pop("head1.weight")
    with pytest.raises(ValueError, match="missing"):
        model.load_trainable_state_dict(missing)
    wrong_shape = dict(state, **{"head1.weight": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match="does not fit"):
        model.load_trainable_state_dict(wrong_shape)


def test_construction_is_deterministic_given_the_seed():
    a, b = make(seed=3, adapter="adaptformer"), make(seed=3, adapter="adaptformer")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- pretrained weights from a local file ---------------------------------------------------------
def _save_reference_backbone(tmp_path, fmt: str, **config_overrides):
    torch.manual_seed(123)
    reference = create_backbone(ModelConfig(**{**TINY, **config_overrides}))
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    path = tmp_path / f"backbone.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return reference, path


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_weights_file_is_loaded_through_timm_and_its_sha256_recorded(tmp_path, fmt):
    reference, path = _save_reference_backbone(tmp_path, fmt)
    model = make(seed=0, adapter="none", weights=str(path))
    loaded = model.backbone.state_dict()
    assert loaded.keys() == reference.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in reference.state_dict().items())
    assert model.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == weights_sha256(path)
    assert make(adapter="none").weights_sha256 is None


def test_weights_file_with_lora_saves_only_the_trainable_part_and_round_trips(tmp_path):
    reference, path = _save_reference_backbone(tmp_path, "pth")
    model = make(seed=0, adapter="lora", weights=str(path)).eval()
    assert torch.equal(model.backbone.blocks[0].attn.qkv.base_layer.weight, reference.blocks[0].attn.qkv.weight)
    perturb_trainable(model)
    state = model.trainable_state_dict()
    assert set(state) == {n for n, p in model.named_parameters() if p.requires_grad}
    fresh = make(seed=5, adapter="lora", weights=str(path)).eval()
    fresh.load_trainable_state_dict(state)
    with torch.no_grad():
        assert torch.equal(fresh(images()).logits, model(images()).logits)


def test_weights_from_another_resolution_are_resampled_by_timm(tmp_path):
    torch.manual_seed(0)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, depth=2)
    path = tmp_path / "vit224.pth"
    torch.save(reference.state_dict(), path)
    model = make(adapter="none", img_size=32, patch_size=8, weights=str(path))
    assert model.backbone.pos_embed.shape == (1, 1 + 16, 192)
    assert torch.equal(model.backbone.blocks[1].mlp.fc2.weight, reference.blocks[1].mlp.fc2.weight)
    assert torch.equal(model.backbone.cls_token, reference.cls_token)


def test_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth' does not exist"):
        make(weights=str(path))


def test_weights_file_missing_backbone_tensors_is_a_value_error(tmp_path):
    reference, _ = _save_reference_backbone(tmp_path, "pth")
    state = reference.state_dict()
    state.pop("blocks.1.norm1.weight")
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="lacks 1 backbone tensor"):
        make(weights=str(path))


def test_weights_file_of_another_width_is_a_value_error(tmp_path):
    torch.manual_seed(0)
    other = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, img_size=16,
                              patch_size=4, depth=2)
    path = tmp_path / "small.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError, match="could not load pretrained weights"):
        make(weights=str(path))


# ---- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    dict(arch="no_such_vit"), dict(lora_targets=("proj",)), dict(lora_targets=("patch_embed.proj",)),
    dict(lora_targets=()), dict(adapter="prefix"), dict(scale=0.0), dict(scale=-1.0), dict(scale=float("nan")),
    dict(lora_rank=0), dict(lora_alpha=0), dict(lora_dropout=1.0), dict(depth=1), dict(patch_size=5),
    dict(head="mlp"), dict(fusion="attention"), dict(fixed_alpha=1.5), dict(num_classes=1),
    dict(adapter_dim=0), dict(adapter_scale=0.0), dict(drop_path_rate=1.0), dict(weights=""),
    dict(img_size=0), dict(num_classes=True),
])
def test_config_rejects_bad_values_with_a_value_error(bad):
    with pytest.raises(ValueError):
        ModelConfig(**{**TINY, **bad})


@pytest.mark.parametrize("arch,match", [
    ("resnet18", "not a timm VisionTransformer"),
    ("vit_medium_patch16_gap_256", "not a timm VisionTransformer with a class token"),
])
def test_build_rejects_architectures_that_are_not_cls_token_vits(arch, match):
    with pytest.raises(ValueError, match=match):
        make(arch=arch)


def test_build_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown model variant"):
        make(variant="nope")


def test_config_round_trips_through_json_and_documents_every_field():
    config = ModelConfig(**TINY, adapter="adaptformer", weights="/some/file.safetensors", fusion="fixed")
    data = json.loads(json.dumps(config.to_dict()))
    assert ModelConfig.from_dict(data) == config
    assert isinstance(ModelConfig.from_dict(data).lora_targets, tuple)
    assert all(f.metadata.get("help") for f in dataclasses.fields(ModelConfig))
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**data, "colour": "red"})


def test_registry_dispatches_on_the_variant_name():
    assert "scilt" in MODEL_VARIANTS

    @register_model_variant("test_only_variant")
    def _builder(config):
        model = SciLTModel(config)
        model.built_by = "test"
        return model

    try:
        assert make(variant="test_only_variant").built_by == "test"
        with pytest.raises(ValueError, match="already registered"):
            register_model_variant("test_only_variant")(_builder)
    finally:
        MODEL_VARIANTS.pop("test_only_variant")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_model_runs_on_cuda_and_agrees_with_cpu():
    model = make(adapter="lora").eval()
    perturb_trainable(model)
    x = images()
    with torch.no_grad():
        cpu = model(x)
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # compare in fp32
        try:
            gpu = model.to("cuda")(x.to("cuda"))
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert gpu.logits.device.type == "cuda" and gpu.alpha.device.type == "cuda"
    torch.testing.assert_close(gpu.logits.cpu(), cpu.logits, rtol=1e-4, atol=1e-4)
