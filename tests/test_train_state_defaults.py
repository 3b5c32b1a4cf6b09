"""Resuming a checkpoint written before a settings field existed: the missing field takes its default when the record
is read (run_record.py, what the checkpoint ran with), so new fields (e.g. TrainConfig.precision,
DataConfig.crop_size) do not block old runs, while a non-default value given now is still refused."""

from dataclasses import asdict

from scilt_theory.data.config import DataConfig
from scilt_theory.run_record import _CONFIG_READERS
from scilt_theory.train_config import TrainConfig
from scilt_theory.train_state import _differences


def test_a_field_the_checkpoint_did_not_have_takes_its_default_when_read():
    old_train = {k: v for k, v in asdict(TrainConfig()).items() if k != "precision"}
    old_data = {k: v for k, v in asdict(DataConfig(name="scitiles-lt")).items() if k != "crop_size"}
    train = _CONFIG_READERS[TrainConfig](old_train)
    data = _CONFIG_READERS[DataConfig](old_data)
    assert train.precision == "auto" and data.crop_size is None
    assert _differences(asdict(train), asdict(TrainConfig())) == []
    assert _differences(asdict(data), asdict(DataConfig(name="scitiles-lt"))) == []
    now = asdict(TrainConfig(precision="bf16"))
    assert _differences(asdict(train), now) == ["precision 'bf16' (checkpoint: 'auto')"]
    assert _differences(old_train, now) == ["precision 'bf16' (checkpoint: '<absent>')"]
