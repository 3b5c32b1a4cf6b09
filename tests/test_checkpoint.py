"""run.pt is written atomically and read only with weights_only=True; bad files are refused clearly."""

from __future__ import annotations

import os

import pytest
import torch

from scilt_theory.checkpoint import FORMAT_VERSION, CheckpointError, load_run, save_run


def _payload():
    return {"model_config": {"num_classes": 3}, "data_config": {"name": "x"},
            "model_state": {"w": torch.arange(6.0).reshape(2, 3)}, "metrics": {"acc": 0.5}}


def test_round_trip_is_weights_only_loadable(tmp_path):
    path = save_run(tmp_path / "run.pt", _payload())
    raw = torch.load(path, weights_only=True)  # must not need pickle of arbitrary objects
    assert raw["format_version"] == FORMAT_VERSION
    record = load_run(path)
    assert torch.equal(record["model_state"]["w"], torch.arange(6.0).reshape(2, 3))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_missing_truncated_foreign_and_future_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_run(tmp_path / "nope.pt")
    good = save_run(tmp_path / "run.pt", _payload())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_run(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_run(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a scilt-theory run"):
        load_run(foreign)
    future = tmp_path / "future.pt"
    record = torch.load(good, weights_only=True)
    record["format_version"] = FORMAT_VERSION + 1
    torch.save(record, future)
    with pytest.raises(CheckpointError, match="upgrade"):
        load_run(future)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_never_executed(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "scilt-theory/run", "x": _Evil()}, evil)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_run(evil)


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = save_run(tmp_path / "run.pt", _payload())
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_run(path, {**_payload(), "metrics": {"acc": 0.9}})
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_unfinished_run_is_refused_unless_asked_for(tmp_path):
    path = save_run(tmp_path / "run.pt", {**_payload(), "finished": False,
                                          "train_state": {"progress": {"global_step": 7}}})
    with pytest.raises(CheckpointError, match=r"unfinished training run \(stopped after optimiser step 7\)"):
        load_run(path)
    assert load_run(path, allow_unfinished=True)["finished"] is False
    legacy = save_run(tmp_path / "old.pt", _payload())  # files without the flag are finished runs
    assert "finished" not in load_run(legacy)


def test_output_dir_checks(tmp_path):
    from scilt_theory.checkpoint import check_output_dir

    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is an existing file"):
        check_output_dir(a_file)
    with pytest.raises(ValueError, match="cannot be created: .* is a file"):
        check_output_dir(a_file / "sub" / "deeper", create=True)
    assert not (tmp_path / "new").exists()
    assert check_output_dir(tmp_path / "new" / "dir", create=True).is_dir()


_SAVER = """
import sys, torch
from scilt_theory.checkpoint import save_run
path, i = sys.argv[1], 0
while True:  # keep replacing run.pt with a ~16 MB record until killed
    i += 1
    save_run(path, {"model_config": {}, "data_config": {}, "model_state": {"w": torch.full((4_000_000,), float(i))},
                    "i": i})
    print(i, flush=True)
"""


def test_sigkill_during_saves_never_leaves_a_broken_file(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    path = tmp_path / "run.pt"
    for kill_after in (1, 2, 3):  # kill at different points of a save cycle
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], cwd=root, stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(root)})
        for _ in range(kill_after):
            assert proc.stdout.readline(), "the saver died"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        record = load_run(path)  # whole, whichever save it is
        assert torch.equal(record["model_state"]["w"], torch.full((4_000_000,), float(record["i"])))
