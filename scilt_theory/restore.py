"""Rebuild a trained model and its data split from a run record (:class:`~scilt_theory.run_record.RunRecord`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from scilt_theory.checkpoint import CheckpointError
from scilt_theory.data import DataConfig, LongTailDataset, build_dataset
from scilt_theory.methods import METHODS
from scilt_theory.models import SciLTModel, build_model
from scilt_theory.run_record import RunRecord, read_run


def data_config_from_record(record: RunRecord, **overrides: Any) -> DataConfig:
    """The run's DataConfig; ``overrides`` (e.g. ``data_root`` when the data moved) replace stored fields."""
    return replace(record.data_config, **{k: v for k, v in overrides.items() if v is not None})


def model_from_record(record: RunRecord, *, device: torch.device | str = "cpu",
                      weights: str | None = None) -> SciLTModel:
    """Build the model the record describes and load its saved (trainable) state.

    The frozen backbone of a run trained from a weights file is rebuilt from that file (or from ``weights``, when
    the file moved); its sha256 must match the one recorded in run.pt.
    """
    if record.method not in METHODS:
        raise CheckpointError(f"the checkpoint was trained with method {record.method!r}, which this installation "
                              f"does not know (known: {', '.join(METHODS)})")
    config = record.model_config
    if weights is not None:
        if config.weights is None:
            raise CheckpointError("the checkpoint was trained without a weights file; --weights does not apply")
        config = replace(config, weights=str(weights))
    if config.weights is not None and not Path(config.weights).expanduser().is_file():
        raise CheckpointError(f"the checkpoint was trained from weights file {config.weights}, which is missing "
                              f"(pass --weights PATH if it moved)")
    torch.manual_seed(0)
    model = build_model(config)
    expected = record.weights_sha256
    if expected is not None and model.weights_sha256 != expected:
        raise CheckpointError(f"weights file {config.weights} has sha256 {model.weights_sha256}, but the checkpoint "
                              f"was trained from {expected}")
    try:
        model.load_trainable_state_dict(record.model_state)
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the checkpoint's weights do not fit its model configuration: {first[:200]}") from None
    return model.to(device).eval()


def restore_run(path: str | Path, *, device: torch.device | str = "cpu", data: LongTailDataset | None = None,
                data_root: str | None = None, test_root: str | None = None, weights: str | None = None
                ) -> tuple[RunRecord, SciLTModel, LongTailDataset]:
    """Load run.pt safely, rebuild its model and re-create the data split it names.

    ``data_root`` / ``test_root`` / ``weights`` replace the stored paths when the files moved; the class counts
    and the weights' sha256 are still checked against the record.
    """
    record = read_run(path)
    model = model_from_record(record, device=device, weights=weights)
    if data is None:
        config = data_config_from_record(record, data_root=data_root, test_root=test_root)
        try:
            data = build_dataset(config)
        except (ValueError, OSError) as exc:
            if config.data_root is None:
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"could not re-create the training data of the checkpoint ({config.name} at "
                                  f"{config.data_root}): {first}; pass --data-root PATH if the data moved") from None
    if data.num_classes != model.config.num_classes:
        raise CheckpointError(f"the data set has {data.num_classes} classes but the checkpoint's model has "
                              f"{model.config.num_classes}")
    if [int(n) for n in data.class_counts] != record.class_counts:
        raise CheckpointError("the re-created training split does not have the class counts recorded in the "
                              "checkpoint (different data set version or seed)")
    recorded = record.data_fingerprint
    if recorded is not None and data.provenance.get("fingerprint") not in (None, recorded):
        raise CheckpointError("the re-created split does not hold the images the checkpoint was trained on (their "
                              "names, labels or contents differ from the fingerprint recorded in run.pt; a run "
                              "trained before the fingerprint covered file contents must be retrained)")
    return record, model, data
