"""One stand-in for a kill, shared by the resume tests: stop a training run right after an optimiser step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class Interrupted(Exception):
    """Raised right after the chosen optimiser step (and its periodic save, if that step has one)."""


def train_until_saved(run: Callable[[], Any], at_step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Call ``run`` (a training run with ``save_every`` set) and stop it right after optimiser step ``at_step``, as a
    kill would: the last periodic save at or before that step is what is on disk (in process, so the test stays fast
    and deterministic)."""
    import scilt_theory.train_state as ts

    original = ts.PeriodicCheckpointer.maybe_save

    def stop_after(self, model, optimizer, scheduler, progress, aug):
        saved = original(self, model, optimizer, scheduler, progress, aug)
        if progress.global_step == at_step:
            raise Interrupted
        return saved

    monkeypatch.setattr(ts.PeriodicCheckpointer, "maybe_save", stop_after)
    with pytest.raises(Interrupted):
        run()
    monkeypatch.setattr(ts.PeriodicCheckpointer, "maybe_save", original)
