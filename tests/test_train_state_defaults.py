"""Resuming a checkpoint written before a settings field existed: the missing field counts as its default (what the
checkpoint ran with), so new fields (e.g. TrainConfig.precision, DataConfig.crop_size) do not block old runs, while a
non-default value given now is still refused."""

from scilt_theory.train_state import _differences, _field_defaults


def test_a_field_the_checkpoint_did_not_have_counts_as_its_default():
    train, data = _field_defaults("train"), _field_defaults("data")
    assert train["precision"] == "auto" and data["crop_size"] is None
    assert _differences({"lr": 0.1}, {"lr": 0.1, "precision": "auto"}, defaults=train) == []
    assert _differences({"name": "scitiles-lt"}, {"name": "scitiles-lt", "crop_size": None}, defaults=data) == []
    assert _differences({}, {"precision": "bf16"}, defaults=train) == ["precision 'bf16' (checkpoint: 'auto')"]
    assert _differences({}, {"precision": "bf16"}) == ["precision 'bf16' (checkpoint: '<absent>')"]
