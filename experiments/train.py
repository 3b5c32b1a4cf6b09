"""Train the SciLT fused model: ``python -m experiments.train [options]``.

Writes OUT/run.pt (weights-only loadable), OUT/metrics.json and OUT/metrics.md. Every option below maps to a
field of DataConfig, ModelConfig, TrainConfig, CARConfig (``--car-*``) or H2TConfig (``--h2t-*``); ``--help`` lists
them all with their defaults.
``torchrun --nproc_per_node N -m experiments.train ...`` trains with DistributedDataParallel on N processes
(scilt_theory/distributed.py): same global batches, data order and results as one process; rank 0 writes.

``--method NAME`` picks SciLT (default), one of its ablations or a peer (scilt_theory/methods.py); ``--car-*`` and
``--h2t-*`` set the CAR and H2T / PI-H2T components. An option that contradicts the method (``--heads 2`` with
``--method final_only``) is refused.

``--recipe NAME`` starts from a named recipe of scilt_theory/recipes.py (the demo's ``dinov2-adaptformer``, its
LoRA and frozen-feature variants, ``scratch``): typed overrides of the configs, checked against their fields when the
recipe is defined; any option given beside it overrides the recipe's value and is checked like any other. A DINOv2
recipe loads its named backbone weights (scilt_theory/pretrained.py, fetched and converted on first use) unless
``--weights`` is given. On a data set of one's own (``imagefolder`` and the other real-data readers) with no model
option given, the default is that recipe (the embedded foundation backbone, frozen, with adapters), not a random
ViT; adapters trained on a randomly initialised frozen backbone are warned about.

``--save-every N`` writes the full training state to OUT/run.pt (marked unfinished) every N optimiser steps;
``--resume PATH`` continues such a file exactly where it stopped. With ``--resume`` every setting comes from the
checkpoint; an option given beside it must agree with it (except --out, --quiet, --save-every), and --out
defaults to the checkpoint's directory. Ctrl-C says which checkpoint to resume.

An --out that already holds a run (run.pt) is refused unless ``--overwrite`` is given; then the previous run's
files (run.pt, metrics.json, metrics.md and its bounds folders) are moved aside before training and deleted once
the new run is written, or put back if it fails before its first checkpoint. A failed run leaves no empty folder.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from experiments._cli import (
    OneLineParser,
    UserError,
    add_dataclass_options,
    dataclass_from_args,
    given_options,
    heartbeat,
    run_main,
    set_option_help,
)

#: the largest seed numpy and torch accept
MAX_SEED = 2**32 - 1
#: the files a training run writes into --out (a bounds report folder inside it belongs to the run too)
RUN_FILES = ("run.pt", "metrics.json", "metrics.md")


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
    from scilt_theory.recipes import DEFAULT_RECIPE, RECIPES

    parser.add_argument("--recipe", default=None, choices=list(RECIPES), metavar="NAME",
                        help="start from a named recipe (scilt_theory/recipes.py); options given beside it override "
                             "it: " + "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
                             + f". Default: none, except {DEFAULT_RECIPE} on a real data set (imagefolder, "
                               "nih-cxr-lt, isic2019, bloodmnist) when no model option is given")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already in --out (its run.pt, metrics and bounds folders); without it "
                             "such an --out is refused")
    from scilt_theory.data import DataConfig

    limits = DataConfig.__dataclass_fields__["image_size"].metadata["constraint"]
    set_option_help(parser, "--img-size", f"input image side in pixels (images are square); "
                                          f"{limits.describe()} (default: 32)")
    set_option_help(parser, "--seed", f"seed of initialisation, data order and augmentation; an integer in "
                                      f"[0, {MAX_SEED}] (default: 0)")
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


def _given(argv: list[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in argv)


def chosen_recipe(args: argparse.Namespace) -> tuple[str | None, bool]:
    """(the recipe to start from, whether it was chosen by default): ``--recipe``, else the demo's recipe for a
    real data set when no model option was given (a first run on one's own data), else none."""
    from scilt_theory.models import ModelConfig
    from scilt_theory.recipes import DEFAULT_RECIPE

    if args.resume is not None:
        if args.recipe is not None:
            raise UserError("--recipe starts a new run; --resume takes every setting from its checkpoint")
        return None, False
    if args.recipe is not None:
        return args.recipe, False
    if data_config_names_real(args) and not given_options(ModelConfig, args):
        return DEFAULT_RECIPE, True
    return None, False


def recipe_weights(recipe: str | None, args: argparse.Namespace) -> str | None:
    """The named backbone weights recipe ``recipe`` still has to load (None when it needs none or --weights was
    given)."""
    from scilt_theory.models import ModelConfig
    from scilt_theory.recipes import get_recipe

    if recipe is None or "weights" in given_options(ModelConfig, args):
        return None
    return get_recipe(recipe).weights


def check_numbers(args: argparse.Namespace) -> None:
    """The command's own limits, checked before any config is built (so the message names the limit --help
    states): the seed numpy and torch accept, the image side the data sets make."""
    seed = getattr(args, "TrainConfig.seed", None)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed must be an integer in [0, {MAX_SEED}], got {seed}")
    size = getattr(args, "ModelConfig.img_size", None)
    if size is not None:
        from scilt_theory.data import DataConfig

        limits = DataConfig.__dataclass_fields__["image_size"].metadata["constraint"]
        low, high = limits.low, limits.high
        if not low <= size <= high:
            raise UserError(f"img_size must be an integer in [{low}, {high}], got {size}")
    store = getattr(args, "TrainConfig.feature_store", None)
    if store is not None and Path(store).exists() and not Path(store).is_dir():
        raise UserError(f"--feature-store {store} is an existing file, not a folder; give a folder (it is created "
                        f"when missing)")


def check_data_memory(data_config) -> None:
    """An embedded data set is made in memory: refuse one larger than the machine has (before making it)."""
    from scilt_theory.data import DATASETS
    from scilt_theory.data.longtail import longtail_counts
    from scilt_theory.resources import check_image_memory

    spec = DATASETS.get(data_config.name)
    if spec is None or spec.reads_files or data_config.max_per_class is None and data_config.test_per_class is None:
        return
    k = data_config.num_classes or 10
    train = int(longtail_counts(data_config.max_per_class or 500, k, data_config.imbalance).sum())
    try:
        check_image_memory(name=data_config.name, num_images=train + k * (data_config.test_per_class or 50),
                           image_size=data_config.image_size)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def random_backbone_warning(model_config) -> str | None:
    """A sentence when adapters (or the heads alone) train on a randomly initialised frozen backbone."""
    if model_config.adapter == "full" or model_config.weights is not None:
        return None
    what = "only the heads train" if model_config.adapter == "none" else f"{model_config.adapter} adapters train"
    return (f"warning: {what} on a randomly initialised, frozen {model_config.arch} (no --weights): its features "
            f"are random. For a pretrained backbone use --recipe dinov2-adaptformer (or --weights PATH); to train a "
            f"ViT from scratch use --recipe scratch (--adapter full)")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that already holds a run (finished or not), unless --overwrite."""
    from scilt_theory.checkpoint import CheckpointError, check_output_dir
    from scilt_theory.run_record import read_run

    try:
        check_output_dir(out)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    run = out / "run.pt"
    if overwrite or not (run.exists() or run.is_symlink()):
        return
    try:
        record = read_run(run, allow_unfinished=True)
    except CheckpointError:
        raise UserError(f"{out} already holds a run.pt that is not a readable run; give --overwrite to replace it, "
                        f"or another --out") from None
    if not record.finished:
        raise UserError(f"{out} holds an unfinished run (stopped after optimiser step {record.checkpoint_step}); "
                        f"continue it with python -m experiments.train --resume {run}, or give --overwrite to start "
                        f"over")
    raise UserError(f"{out} already holds a finished run ({run}); give --overwrite to replace it (its metrics and "
                    f"bounds folders go with it), or another --out")


def previous_run_entries(out: Path) -> list[Path]:
    """What of a previous run --overwrite replaces: its files and its bounds folders (a folder with a
    bounds.json); anything else in --out (a feature store, notes) stays."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if (p.name in RUN_FILES and not p.is_dir())
                  or (p.is_dir() and (p / "bounds.json").is_file()))


def _print_notes(data, quiet: bool) -> None:
    if quiet:
        return
    for note in data.provenance.get("notes", []) or []:
        print(f"note: {note}")


def _imbalance_note(data, config) -> str | None:
    """A sentence when the data set's own profile could not reach the imbalance asked for (a tail below one image
    is kept at one), for the embedded data sets whose splits do not write notes."""
    counts = [int(n) for n in data.class_counts]
    if "notes" in data.provenance or len(counts) < 2 or min(counts) < 1:
        return None
    achieved = counts[0] / counts[-1]
    if counts[-1] == 1 and achieved < config.imbalance * 0.999:
        return (f"{data.name}: imbalance {config.imbalance:g} asks for a tail class of {counts[0]}/"
                f"{config.imbalance:g} < 1 image; every class keeps at least one, so the imbalance is {achieved:g}")
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)  # --help, unknown options and bad types end here, before anything else
    check_numbers(args)
    recipe, by_default = chosen_recipe(args)
    from scilt_theory import distributed
    from scilt_theory.training import train

    if args.resume is not None:
        data_config, model_config, train_config, method_config = _configs_for_resume(args)
    else:
        _opt_in_profile(args, argv)  # the recipe's overrides first, the user's options on top; checked without a file
        data_config, model_config, train_config, method_config = configs_from_args(args, recipe=recipe)
    refuse_contradictions(args, method_config.method)
    if args.resume is None:
        check_data_memory(data_config)
    quiet = train_config.quiet
    out = Path(train_config.out)
    if args.resume is None:
        check_out(out, args.overwrite)
    if recipe is not None:
        if not quiet:
            print(f"recipe {recipe}" + (" (the default on a data set of one's own; --recipe scratch or any model "
                                        "option chooses otherwise)" if by_default else ""))
        named = recipe_weights(recipe, args)
        if named is not None:  # now the real backbone file (fetched and converted on first use)
            from scilt_theory.pretrained import pretrained_weights

            model_config = dataclasses.replace(model_config, weights=str(pretrained_weights(named)))
    warning = random_backbone_warning(model_config) if args.resume is None else None
    if warning and not quiet:
        print(warning)
    data = None
    if args.resume is None and data_config_names_real(args):  # lazy readers: cheap to build; say what they left out
        from scilt_theory.data import build_dataset

        data = build_dataset(data_config)
        _print_notes(data, quiet)

    with replacing_run(out, args.resume is None and args.overwrite), heartbeat("train", enabled=not quiet), \
            distributed.launch(train_config.device) as ctx:
        result = train(data_config, model_config, train_config, method=method_config, resume=args.resume, data=data)
    if not quiet and ctx.is_main:
        print_result(result, data_config)
    return 0


@contextlib.contextmanager
def replacing_run(out: Path, overwrite: bool) -> Iterator[None]:
    """Around training into ``out``: with ``overwrite`` the previous run's files are moved aside first and deleted
    once the new run is written; if training fails they are put back (unless the new run already wrote a checkpoint
    to resume) and the folders it created are removed again when left empty. Ctrl-C says what to resume."""
    from scilt_theory.checkpoint import remove_if_empty

    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first: removed again if left empty
    moved = _move_previous(out) if overwrite else None
    try:
        yield
    except KeyboardInterrupt:
        _restore_previous(out, moved)
        remove_if_empty(created)
        raise KeyboardInterrupt(_interrupted(out / "run.pt")) from None
    except BaseException:
        _restore_previous(out, moved)
        remove_if_empty(created)
        raise
    if moved is not None:
        shutil.rmtree(moved, ignore_errors=True)


def print_result(result, data_config) -> None:
    """The lines a training run ends with: an imbalance note, the test accuracies, what was written."""
    m = result.metrics
    ga = m["group_accuracy"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    note = _imbalance_note(result.data, data_config)
    if note:
        print(f"note: {note}")
    print(f"balanced accuracy {pct(m['balanced_accuracy'])}  many {pct(ga['many'])}  medium {pct(ga['medium'])}  "
          f"few {pct(ga['few'])}  worst class {pct(m['worst_class']['accuracy'])} ({m['worst_class']['name']})")
    print(f"wrote {result.run_path} and metrics.json / metrics.md beside it ({result.seconds:.0f} s)")


def _opt_in_profile(args: argparse.Namespace, argv: list[str]) -> None:
    """On a real data set, which keeps every image by default, an --imbalance given on the command line asks for
    the long-tail subsample: the exponential profile, unless --profile says otherwise."""
    if data_config_names_real(args) and _given(argv, "--imbalance") and getattr(args, "DataConfig.profile",
                                                                                   None) is None:
        setattr(args, "DataConfig.profile", "exponential")


def _move_previous(out: Path) -> Path | None:
    """--overwrite: move the previous run's files and bounds folders into a hidden folder beside them (deleted
    once the new run is written, put back if it fails before writing anything)."""
    entries = previous_run_entries(out)
    if not entries:
        return None
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.previous.", dir=out.parent))
    for entry in entries:
        entry.rename(aside / entry.name)
    return aside


def _restore_previous(out: Path, aside: Path | None) -> None:
    """Put the previous run back, unless the new one has already written its own run.pt (a checkpoint to resume)."""
    if aside is None:
        return
    if (out / "run.pt").exists():
        shutil.rmtree(aside, ignore_errors=True)
        return
    for entry in aside.iterdir():
        target = out / entry.name
        if not target.exists():
            entry.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def _interrupted(run: Path) -> str:
    """The one line of a Ctrl-C: which checkpoint is kept and how to continue it."""
    from scilt_theory.checkpoint import CheckpointError
    from scilt_theory.run_record import read_run

    try:
        record = read_run(run, allow_unfinished=True)
    except CheckpointError:
        return ("interrupted before the first periodic checkpoint, so there is nothing to resume; give --save-every "
                "N to make a run resumable")
    if record.finished:
        return f"interrupted after training finished; {run} is complete"
    return (f"interrupted; the last periodic checkpoint {run} (optimiser step {record.checkpoint_step}) is kept: "
            f"continue it with python -m experiments.train --resume {run}")


#: the weights path a recipe's configs carry until the named file is fetched (no file is read before then)
PENDING_WEIGHTS = "<named weights, fetched before training>"


def configs_from_args(args: argparse.Namespace, recipe: str | None = None, weights: str | Path | None = None):
    """(DataConfig, ModelConfig, TrainConfig, MethodConfig) of a fresh run, validated (no data is read): the
    overrides of ``recipe`` (scilt_theory/recipes.py) first, the options given on top. A recipe's named backbone
    weights become ``weights`` (a path; :data:`PENDING_WEIGHTS` when not given) unless --weights was given."""
    from scilt_theory.data import DATASETS, DataConfig
    from scilt_theory.models import ModelConfig
    from scilt_theory.recipes import get_recipe
    from scilt_theory.training import TrainConfig

    chosen = get_recipe(recipe) if recipe is not None else None
    base = {part: chosen.overrides(part) if chosen else {} for part in ("model", "train", "data")}
    if recipe_weights(recipe, args) is not None:
        base["model"]["weights"] = str(weights) if weights is not None else PENDING_WEIGHTS
    method_config = method_config_from_args(args)
    # num_classes is a placeholder until the data set is built; train() replaces it.
    model_config = dataclass_from_args(ModelConfig, args, num_classes=2, **base["model"])
    # images are made at the model's input size, so there is one size option (--img-size); real images are
    # resized with the interpolation / centre crop of the model's timm data config unless given
    preprocessing = {}
    if data_config_names_real(args):
        from scilt_theory.data.images import model_preprocessing

        preprocessing = {k: v for k, v in model_preprocessing(model_config.arch).items()
                         if getattr(args, f"DataConfig.{k}", None) is None}
        for key in preprocessing:  # an explicit "none" also means the model's value
            vars(args).pop(f"DataConfig.{key}", None)
    data_config = dataclass_from_args(DataConfig, args, **{**base["data"], "image_size": model_config.img_size,
                                                           **preprocessing})
    train_config = dataclass_from_args(TrainConfig, args, **base["train"])
    if data_config.name not in DATASETS:
        raise UserError(f"unknown data set {data_config.name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return data_config, model_config, train_config, method_config


def resolve_configs(argv: list[str], *, weights: str | Path | None = None):
    """(DataConfig, ModelConfig, TrainConfig, MethodConfig) that ``python -m experiments.train ARGV`` would train,
    checked like the command checks them (no data or weights file is read). A recipe's named weights become
    ``weights`` (:data:`PENDING_WEIGHTS` when not given). ``--resume`` is not resolved here."""
    args = build_parser().parse_args(argv)
    check_numbers(args)
    recipe, _ = chosen_recipe(args)
    _opt_in_profile(args, argv)
    configs = configs_from_args(args, recipe=recipe, weights=weights)
    refuse_contradictions(args, configs[3].method)
    return configs


def _configs_for_resume(args: argparse.Namespace):
    """The checkpoint's own settings with the options given beside --resume on top; train() then refuses any
    that differ from the checkpoint (other than --out, --quiet, --save-every)."""
    from scilt_theory.checkpoint import CheckpointError
    from scilt_theory.data import DataConfig
    from scilt_theory.models import ModelConfig
    from scilt_theory.run_record import read_run
    from scilt_theory.training import TrainConfig

    try:
        record = read_run(args.resume, allow_unfinished=True)
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

    model_config = merged(ModelConfig, dataclasses.asdict(record.model_config))
    data_config = merged(DataConfig, dataclasses.asdict(record.data_config), image_size=model_config.img_size)
    train_config = merged(TrainConfig, dataclasses.asdict(record.train_config), out=str(Path(args.resume).parent),
                          quiet=False)
    saved_method = record.method_config.to_dict()
    return data_config, model_config, train_config, method_config_from_args(args, saved_method)


if __name__ == "__main__":
    sys.exit(run_main(main))
