"""run.pt as a typed record: :class:`RunRecord`, the one definition of what a training run leaves behind.

``training`` builds a RunRecord and writes it with :func:`write_run`; every reader gets one from :func:`read_run`
(or :func:`scilt_theory.restore.restore_run`) and uses attributes, never raw keys. On disk it is a plain dictionary
of tensors and JSON-like values (``checkpoint.save_run`` / ``load_run``: atomic writes, ``weights_only`` loads,
format markers), encoded and decoded here through the codec of bounds.json (scilt_theory/codec.py): a malformed
or missing field is one :class:`~scilt_theory.checkpoint.CheckpointError` sentence. Tensors stay tensors.

Older files: a field a file may lack declares its default below, in its help text, and nowhere else (readers
never supply one). The layout in docs/run_record.md is generated from the field help (``python -m
scilt_theory.run_record``; a test fails when it is stale).

Adding a field: declare it here with its help text (and its default, when older files lack it), fill it in
``TrainingRun.run_record`` (scilt_theory/training.py), regenerate docs/run_record.md.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from scilt_theory.checkpoint import FORMAT_VERSION, CheckpointError, load_run, save_run
from scilt_theory.codec import decode, described, layout_text
from scilt_theory.data import DATASETS, DataConfig
from scilt_theory.methods import MethodConfig
from scilt_theory.models import ModelConfig
from scilt_theory.train_config import TrainConfig

__all__ = ["RunRecord", "TrainState", "layout_text_of_run", "read_run", "write_run"]


@dataclass(frozen=True, eq=False)  # holds tensors: no field-wise ==
class TrainState:
    """The training state of a periodic checkpoint (scilt_theory/train_state.py): what --resume continues from."""

    optimizer: dict[str, Any] = described("the optimiser's state_dict")
    scheduler: dict[str, Any] = described("the learning-rate scheduler's state_dict")
    rng: dict[str, Any] = described("every random state at the save: torch (CPU and each CUDA device), numpy, python "
                                    "and the augmentation generator (train_state.capture_rng)")
    progress: dict[str, Any] = described("where training stands (train_state.Progress.to_dict): epoch, batches and "
                                         "optimiser steps done, running sums, history, α per step, the loader's state "
                                         "at the epoch start")

    @property
    def global_step(self) -> int | None:
        """Optimiser steps done when the checkpoint was written."""
        return self.progress.get("global_step")


@dataclass(frozen=True, kw_only=True, eq=False)  # holds tensors: no field-wise ==
class RunRecord:
    """run.pt: one training run (the format markers ``format`` / ``format_version`` are the file's, not fields)."""

    method: str = described("the method trained (scilt_theory/methods.py); absent in files from before methods: "
                            "scilt", "scilt")
    method_config: MethodConfig = described("the method's settings (MethodConfig.to_dict: name, car, h2t); absent in "
                                            "older files: SciLT's defaults", default_factory=MethodConfig)
    method_state: dict[str, Any] = described("the method's learned state (Objective.state_dict; CAR: the EMA of its "
                                             "soft confusion); absent in older files: empty", default_factory=dict)
    model_config: ModelConfig = described("ModelConfig.to_dict() (num_classes is the data set's)")
    data_config: DataConfig = described("the DataConfig that re-creates the split (names the data set and its seed)")
    train_config: TrainConfig = described("the TrainConfig trained with; absent in older files: TrainConfig()",
                                          default_factory=TrainConfig)
    model_state: dict[str, torch.Tensor] = described("trainable parameters (+ fusion, heads), not a frozen backbone "
                                                     "read from a weights file")
    weights_sha256: str | None = described("sha256 of the pretrained weights file, when one was used", None)
    class_names: list[str] = described("class names, in label order")
    class_counts: list[int] = described("training images per class (the whole training split)")
    fit_counts: list[int] = described("training images per class of the part the model was fitted on (without the "
                                      "hold-out part); absent in older files: class_counts", None)
    data_fingerprint: str | None = described("sha256 of the identity and contents of a real data set's images "
                                             "(scilt_theory/data/split.py); null for embedded data", None)
    holdout_indices: list[int] = described("indices into the training split of the held-out part (empty: none)",
                                           default_factory=list)
    versions: dict[str, str] = described("versions of the libraries that shape the numbers "
                                         "(checkpoint.library_versions)", default_factory=dict)
    metrics: dict[str, Any] | None = described("evaluation metrics at the end of training (metrics.json); absent in a "
                                               "periodic checkpoint", None)
    finished: bool = described("false for a periodic checkpoint written during training, refused by every reader "
                               "but --resume; absent in older files: true", True)
    train_state: TrainState | None = described("the training state of a periodic checkpoint; absent in a finished run",
                                               None)

    def __post_init__(self) -> None:
        if self.fit_counts is None:
            object.__setattr__(self, "fit_counts", list(self.class_counts))

    @property
    def checkpoint_step(self) -> int | None:
        """The optimiser step a periodic checkpoint was written after (None for a finished run)."""
        return None if self.train_state is None else self.train_state.global_step

    def to_dict(self) -> dict[str, Any]:
        """The dictionary run.pt holds (tensors kept; entries that are absent stay absent)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("metrics", "train_state"):
                continue
            if isinstance(value, (ModelConfig, MethodConfig)):
                value = value.to_dict()
            elif dataclasses.is_dataclass(value):  # shallow: the tensors are not copied
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "run.pt") -> RunRecord:
        """Read run.pt's dictionary (format markers, if there, are left aside); one CheckpointError sentence for a
        malformed or missing field."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source} does not hold a dictionary")
        data = {k: v for k, v in data.items() if k not in ("format", "format_version")}
        return decode(cls, data, source, CheckpointError, _CONFIG_READERS)


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of a stored config that this version's ``cls`` has (lists back to tuples); a field the run's
    version did not have takes the field's default, one it had but this version dropped is left out."""
    if not isinstance(values, dict):
        raise ValueError(f"must be an object, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}


def _data_config(values: Any) -> DataConfig:
    values = _known(DataConfig, values)
    if values.get("name") not in DATASETS:
        raise CheckpointError(f"the checkpoint names data set {values.get('name')!r}, which this installation "
                              f"does not know (known: {', '.join(sorted(DATASETS))})")
    return DataConfig(**values)


_CONFIG_READERS = {ModelConfig: ModelConfig.from_dict, MethodConfig: MethodConfig.from_dict,
                   DataConfig: _data_config, TrainConfig: lambda values: TrainConfig(**_known(TrainConfig, values))}


def read_run(path: str | os.PathLike, *, allow_unfinished: bool = False,
             map_location: str | torch.device = "cpu") -> RunRecord:
    """Load run.pt safely (:func:`~scilt_theory.checkpoint.load_run`) as a :class:`RunRecord`.

    Raises
    ------
    CheckpointError
        A missing, unreadable, foreign or future file, an unfinished run (unless ``allow_unfinished``), or a
        malformed field, in one sentence.
    """
    return RunRecord.from_dict(load_run(path, map_location=map_location, allow_unfinished=allow_unfinished),
                               source=str(path))


def write_run(path: str | os.PathLike, record: RunRecord) -> Path:
    """Write ``record`` to ``path`` atomically (with the format markers)."""
    return save_run(path, record.to_dict())


def layout_text_of_run() -> str:
    """docs/run_record.md's layout block, generated from the field help above."""
    title = (f"run.pt, format_version {FORMAT_VERSION} (generated from scilt_theory/run_record.py; the configs are "
             f"their to_dict / asdict, documented by the experiments.train options).")
    return layout_text(RunRecord, title, stop=(ModelConfig, DataConfig, TrainConfig, MethodConfig))


if __name__ == "__main__":  # print the block of docs/run_record.md
    print(layout_text_of_run(), end="")
