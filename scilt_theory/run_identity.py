"""What identifies a training run and its bounds report: the resolved configs, never the spelling of options.

A resumable comparison (experiments/compare.py) reuses a run when the run it would make now has the same identity:
the canonical JSON of its DataConfig, ModelConfig, TrainConfig and MethodConfig (the method and the seed are fields
of these), with the TrainConfig fields that change no number left out (``train_state.RESUME_FREE_FIELDS``: output
folder, quietness, periodic saves, feature store) and file paths made absolute. So ``--out runs/x`` and
``--out runs/x/``, ``--lr 0.001`` and ``--lr 1e-3``, or a recipe and the same values typed as options are one run.
A bounds report is identified the same way by its BoundsSettings (without ``progress`` and ``feature_store``) and
whether it drew its figures.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

__all__ = ["bounds_identity", "run_identity"]

#: fields naming a file or folder: compared as absolute paths, so two spellings of one path are one run
_PATH_FIELDS = {"model": ("weights",), "data": ("data_root", "test_root"), "bounds": ("data_root", "test_root",
                                                                                     "weights")}


def _absolute(values: dict[str, Any], part: str) -> dict[str, Any]:
    for name in _PATH_FIELDS.get(part, ()):
        if values.get(name) is not None:
            values[name] = str(Path(values[name]).expanduser().resolve())
    return values


def _canonical(value: Any) -> Any:
    """JSON's view of ``value`` (tuples become lists, keys sorted): what a stored identity reads back as."""
    return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))


def run_identity(data_config: Any, model_config: Any, train_config: Any, method_config: Any) -> dict[str, Any]:
    """The identity of a training run: its configs as canonical JSON, without what changes no number."""
    from scilt_theory.train_state import RESUME_FREE_FIELDS

    model = _absolute(model_config.to_dict(), "model")
    model.pop("num_classes")  # set from the data set by train(); a placeholder before
    train = {k: v for k, v in dataclasses.asdict(train_config).items() if k not in RESUME_FREE_FIELDS}
    return _canonical({"data": _absolute(dataclasses.asdict(data_config), "data"), "model": model, "train": train,
                       "method": method_config.to_dict()})


def bounds_identity(settings: Any, plots: bool) -> dict[str, Any]:
    """The identity of a bounds report: its settings (without progress bars and the feature store, which change no
    number) and whether it drew its figures."""
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("progress", "feature_store")}
    return _canonical({"settings": _absolute(values, "bounds"), "plots": bool(plots)})
