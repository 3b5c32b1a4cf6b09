"""run.pt has one typed definition (scilt_theory/run_record.py): older files load with the defaults declared there,
bad fields are refused in one line, its documented layout is generated, and no reader indexes the raw dictionary."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from scilt_theory.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, save_run
from scilt_theory.methods import MethodConfig
from scilt_theory.run_record import RunRecord, TrainState, layout_text_of_run, read_run, write_run
from scilt_theory.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "bounds_v1" / "run.pt"


def _raw() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def test_docs_layout_block_is_generated_from_the_fields():
    text = (ROOT / "docs" / "run_record.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- run-record:begin -->\n```text\n(.*?)```\n<!-- run-record:end -->", text, flags=re.S)
    assert block, "docs/run_record.md has no generated layout block"
    assert block.group(1) == layout_text_of_run(), \
        "docs/run_record.md is stale: regenerate its block with python -m scilt_theory.run_record"
    for cls in (RunRecord, TrainState):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            assert f"  {f.name}: " in block.group(1)


def test_the_stored_fixture_reads_typed_and_writes_back_the_same_dictionary(tmp_path):
    raw = _raw()
    record = read_run(FIXTURE)
    assert record.method == "scilt" and record.train_config.holdout_fraction == 0.3
    assert record.fit_counts == raw["fit_counts"] and record.holdout_indices == raw["holdout_indices"]
    assert record.metrics["balanced_accuracy"] == raw["metrics"]["balanced_accuracy"]
    again = write_run(tmp_path / "run.pt", record)
    stored = torch.load(again, weights_only=True)  # still a weights-only file
    assert stored["format"] == FORMAT and stored["format_version"] == FORMAT_VERSION
    assert "train_state" not in stored  # absent stays absent
    for key, value in raw.items():
        if key == "model_state":
            assert all(torch.equal(value[k], stored[key][k]) for k in value)
        elif key in ("data_config", "train_config"):  # fields added since the fixture hold their defaults
            assert {k: v for k, v in stored[key].items() if k in value} == value
        else:
            assert stored[key] == value, key
    plain = {k: v for k, v in record.to_dict().items() if k != "model_state"}
    assert {k: v for k, v in read_run(again).to_dict().items() if k != "model_state"} == plain  # nothing drifts


def test_an_older_file_takes_the_defaults_declared_on_the_fields(tmp_path):
    old = {k: v for k, v in _raw().items() if k in ("model_config", "data_config", "model_state", "class_names",
                                                   "class_counts")}
    record = read_run(save_run(tmp_path / "old.pt", old))
    assert record.method == "scilt" and record.method_config == MethodConfig() and record.method_state == {}
    assert record.train_config == TrainConfig() and record.finished and record.train_state is None
    assert record.fit_counts == old["class_counts"] and record.holdout_indices == [] and record.versions == {}
    assert record.weights_sha256 is None and record.data_fingerprint is None and record.metrics is None


def test_a_run_trained_on_cuda_reads_back_without_one(tmp_path):
    raw = _raw()
    raw["train_config"] = {**raw["train_config"], "device": "cuda"}
    assert read_run(save_run(tmp_path / "gpu.pt", raw)).train_config.device == "cuda"


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.pop("class_counts"), r"has no 'class_counts' field"),
    (lambda r: r.update(class_counts="many"), r"\.class_counts must be a list"),
    (lambda r: r.update(holdout_indices=[1.5]), r"\.holdout_indices\[0\] must be an integer"),
    (lambda r: r.update(model_state={"w": [1.0]}), r"\.model_state\.w must be a Tensor"),
    (lambda r: r.update(extra={}), r"unknown field\(s\) \['extra'\]"),
    (lambda r: r["train_config"].update(lr=-1.0), r"\.train_config is malformed: lr must be"),
    (lambda r: r["model_config"].update(nope=1), r"\.model_config is malformed: unknown model config keys"),
    (lambda r: r["data_config"].update(name="no-such-data"), r"names data set 'no-such-data'"),
])
def test_a_malformed_or_missing_field_is_one_sentence(tmp_path, change, message):
    raw = _raw()
    change(raw)
    path = save_run(tmp_path / "bad.pt", raw)
    with pytest.raises(CheckpointError, match=message) as info:
        read_run(path)
    assert "\n" not in str(info.value)


def test_a_periodic_checkpoint_carries_its_training_state(tmp_path):
    state = TrainState(optimizer={"state": {}, "param_groups": []}, scheduler={}, rng={"torch": torch.get_rng_state()},
                       progress={"global_step": 12})
    record = dataclasses.replace(read_run(FIXTURE), finished=False, train_state=state, metrics=None)
    path = write_run(tmp_path / "run.pt", record)
    with pytest.raises(CheckpointError, match="unfinished"):
        read_run(path)
    back = read_run(path, allow_unfinished=True)
    assert back.checkpoint_step == 12 and torch.equal(back.train_state.rng["torch"], state.rng["torch"])
    assert "metrics" not in torch.load(path, weights_only=True)


def test_no_reader_indexes_the_raw_dictionary():
    """Above the restore step, run.pt is read only through read_run / restore_run (a RunRecord): the raw loader
    is the file layer's (checkpoint.py) and the record's own (run_record.py)."""
    offenders = []
    for folder in ("scilt_theory", "experiments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name in ("checkpoint.py", "run_record.py"):
                continue
            if re.search(r"\bload_run\(", path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"read run.pt with run_record.read_run, not checkpoint.load_run: {offenders}"
