"""Train the SciLT fused model: ``python -m experiments.train [options]``.

Writes OUT/run.pt (weights-only loadable), OUT/metrics.json and OUT/metrics.md. Every option below maps to a
field of DataConfig, ModelConfig, TrainConfig, CARConfig (``--car-*``) or H2TConfig (``--h2t-*``); ``--help`` lists
them all with their defaults.
``torchrun --nproc_per_node N -m experiments.train ...`` trains with DistributedDataParallel on N processes
(scilt_theory/distributed.py): same global batches, data order and results as one process; rank 0 writes.

``--method NAME`` picks SciLT (default), one of its ablations or a peer (scilt_theory/methods.py); ``--car-*`` and
``--h2t-*`` set the CAR and H2T / PI-H2T components. An option that contradicts the method (``--heads 2`` with
``--method final_only``) is refused.

``--save-every N`` writes the full training state to OUT/run.pt (marked unfinished) every N optimiser steps;
``--resume PATH`` continues such a file exactly where it stopped. With ``--resume`` every setting comes from the
checkpoint; an option given beside it must agree with it (except --out, --quiet, --save-every), and --out
defaults to the checkpoint's directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from experiments._cli import (
    OneLineParser,
    UserError,
    add_dataclass_options,
    dataclass_from_args,
    given_options,
    run_main,
)


def build_parser() -> argparse.ArgumentParser:
    from scilt_theory.data import DATASETS, DataConfig
    from scilt_theory.models import ModelConfig
    from scilt_theory.training import TrainConfig

    parser = OneLineParser(
        prog="python -m experiments.train",
        description="Train the SciLT fused model (penultimate + final CLS features, adaptive fusion, two "
                    "logit-adjusted heads) and evaluate it on the balanced test split. "
                    f"Data sets: {', '.join(sorted(DATASETS))}.")
    add_dataclass_options(parser, DataConfig, title="data", skip=("image_size",),
                          rename={"name": "dataset", "seed": "split_seed"})
    add_dataclass_options(parser, ModelConfig, title="model", skip=("num_classes",))
    add_dataclass_options(parser, TrainConfig, title="training")
    from scilt_theory.car import CARConfig
    from scilt_theory.h2t import H2TConfig
    from scilt_theory.methods import METHODS

    group = parser.add_argument_group("method (scilt_theory/methods.py)")
    group.add_argument("--method", default=None, metavar="NAME",
                       help="; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()) + " (default: scilt)")
    add_dataclass_options(parser, CARConfig, title="CAR (methods car, car_final_only)", prefix="car")
    add_dataclass_options(parser, H2TConfig, title="H2T / PI-H2T (methods h2t, pi_h2t)", prefix="h2t")
    parser.add_argument("--resume", metavar="PATH", default=None,
                        help="continue the unfinished run.pt written by --save-every (same settings; see above)")
    return parser


def method_config_from_args(args: argparse.Namespace, saved: dict | None = None):
    """The MethodConfig of --method and the --car-* / --h2t-* options (on top of ``saved``, when resuming)."""
    from scilt_theory.car import CARConfig
    from scilt_theory.h2t import H2TConfig
    from scilt_theory.methods import MethodConfig

    base = MethodConfig.from_dict(saved) if saved is not None else MethodConfig()
    try:
        return MethodConfig(name=args.method or base.name,
                            car=dataclasses.replace(base.car, **given_options(CARConfig, args)),
                            h2t=dataclasses.replace(base.h2t, **given_options(H2TConfig, args)))
    except (TypeError, ValueError) as exc:
        raise UserError(str(exc)) from None


def refuse_contradictions(args: argparse.Namespace, method) -> None:
    """An option given on the command line that the method fixes to another value is a mistake, not a wish."""
    from scilt_theory.models import ModelConfig
    from scilt_theory.training import TrainConfig

    for cls, fixed in ((ModelConfig, method.model), (TrainConfig, method.train)):
        for key, value in given_options(cls, args).items():
            if key in fixed and fixed[key] != value:
                raise UserError(f"--{key.replace('_', '-')} {value} contradicts --method {method.name}, which fixes "
                                f"{key} = {fixed[key]}")


def data_config_names_real(args: argparse.Namespace) -> bool:
    """True when --dataset names a data set whose spec resizes with the model's timm data config (the readers of
    real images); an unknown name is False here and refused later."""
    from scilt_theory.data import DATASETS

    spec = DATASETS.get(getattr(args, "DataConfig.name", None))
    return spec is not None and spec.timm_preprocessing


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from scilt_theory import distributed
    from scilt_theory.training import train

    if args.resume is not None:
        data_config, model_config, train_config, method_config = _configs_for_resume(args)
    else:
        data_config, model_config, train_config, method_config = configs_from_args(args)
    refuse_contradictions(args, method_config.method)
    with distributed.launch(train_config.device) as ctx:  # joins the torchrun process group, if any
        result = train(data_config, model_config, train_config, method=method_config, resume=args.resume)
    m = result.metrics
    ga = m["group_accuracy"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    if not train_config.quiet and ctx.is_main:
        print(f"balanced accuracy {pct(m['balanced_accuracy'])}  many {pct(ga['many'])}  medium {pct(ga['medium'])}  "
              f"few {pct(ga['few'])}  worst class {pct(m['worst_class']['accuracy'])} ({m['worst_class']['name']})")
        print(f"wrote {result.run_path} and metrics.json / metrics.md beside it ({result.seconds:.0f} s)")
    return 0


def configs_from_args(args: argparse.Namespace):
    """(DataConfig, ModelConfig, TrainConfig, MethodConfig) of a fresh run, validated (no data is read)."""
    from scilt_theory.data import DATASETS, DataConfig
    from scilt_theory.models import ModelConfig
    from scilt_theory.training import TrainConfig

    method_config = method_config_from_args(args)
    # num_classes is a placeholder until the data set is built; train() replaces it.
    model_config = dataclass_from_args(ModelConfig, args, num_classes=2)
    # images are made at the model's input size, so there is one size option (--img-size); real images are
    # resized with the interpolation / centre crop of the model's timm data config unless given
    preprocessing = {}
    if data_config_names_real(args):
        from scilt_theory.data.images import model_preprocessing

        preprocessing = {k: v for k, v in model_preprocessing(model_config.arch).items()
                         if getattr(args, f"DataConfig.{k}", None) is None}
        for key in preprocessing:  # an explicit "none" also means the model's value
            vars(args).pop(f"DataConfig.{key}", None)
    data_config = dataclass_from_args(DataConfig, args, image_size=model_config.img_size, **preprocessing)
    train_config = dataclass_from_args(TrainConfig, args)
    if data_config.name not in DATASETS:
        raise UserError(f"unknown data set {data_config.name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return data_config, model_config, train_config, method_config


def _configs_for_resume(args: argparse.Namespace):
    """The checkpoint's own settings with the options given beside --resume on top; train() then refuses any
    that differ from the checkpoint (other than --out, --quiet, --save-every)."""
    from scilt_theory.checkpoint import CheckpointError, load_run
    from scilt_theory.data import DataConfig
    from scilt_theory.models import ModelConfig
    from scilt_theory.training import TrainConfig

    try:
        record = load_run(args.resume, allow_unfinished=True)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None

    def merged(cls, saved, **extra):
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in known}
        values.update(extra)
        values.update(given_options(cls, args))
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise UserError(str(exc)) from None

    model_config = merged(ModelConfig, record["model_config"])
    data_config = merged(DataConfig, record["data_config"], image_size=model_config.img_size)
    train_config = merged(TrainConfig, record.get("train_config", {}), out=str(Path(args.resume).parent),
                          quiet=False)
    saved_method = record.get("method_config") or {"name": record.get("method", "scilt")}
    return data_config, model_config, train_config, method_config_from_args(args, saved_method)


if __name__ == "__main__":
    sys.exit(run_main(main))
