"""The README's Python API block ("Cite a bound from Python"), run as written on a small run (only the run's path is
replaced), and the API's own checks: settings and options together, the contract statements added to a subset, limits
before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import scilt_theory
from scilt_theory.data import DataConfig
from scilt_theory.models import ModelConfig
from scilt_theory.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def train_tiny_run(out: Path) -> Path:
    """A finished run (tiny ViT on synthetic-lt, with a hold-out) in ``out``; shared with test_newcomer_path."""
    data = DataConfig(name="synthetic-lt", imbalance=8.0, max_per_class=60, test_per_class=8, image_size=16,
                      num_classes=4)
    model = ModelConfig(num_classes=4, img_size=16, patch_size=4, depth=2, adapter="full")
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=2e-3, warmup_epochs=0, out=str(out),
                         quiet=True, holdout_fraction=0.3)
    train(data, model, config)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("api") / "demo")


def readme_api_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Cite a bound from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(run_dir, capsys):
    code = readme_api_block()
    assert "scilt_theory.bounds_report(" in code and ".write(" in code
    namespace: dict = {}
    exec(compile(code.replace("runs/demo", str(run_dir)), "README.md", "exec"), namespace)
    report = namespace["report"]
    assert isinstance(report, scilt_theory.BoundsReport) and report.mode == "certified"
    written = sorted(p.name for p in (run_dir / "bounds_api").iterdir())
    assert "bounds.json" in written and "report.md" in written and "bound_vs_n.png" in written
    printed = capsys.readouterr().out
    assert printed.startswith("1. **Best certificate**")
    # the file opens with the same five lines
    md = (run_dir / "bounds_api" / "report.md").read_text(encoding="utf-8")
    assert "\n".join(report.bottom_line()) in md.split("## Bottom line", 1)[1].split("**Mode:", 1)[0]


def test_a_statement_subset_gets_the_contract_and_says_so(run_dir):
    report = scilt_theory.bounds_report(run_dir / "run.pt", draws=50, statements=("pac_bayes",))
    names = {r.name for r in report.statements}
    assert names == {"pac_bayes", "theorem53", "corollary54"}
    assert report.settings["statements_added"] == ["theorem53", "corollary54"]
    assert "plus theorem53, corollary54, added because" in report.markdown()


def test_limits_are_checked_before_any_work(run_dir, monkeypatch):
    import scilt_theory.bounds_pipeline as pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("the work started")

    monkeypatch.setattr(pipeline, "compute_bounds_report", no_work)
    with pytest.raises(ValueError, match="draws must be at most"):
        scilt_theory.bounds_report(run_dir / "run.pt", draws=10**9)
    with pytest.raises(ValueError, match="margin_grid_size must be at most"):
        scilt_theory.bounds_report(run_dir / "run.pt", margin_grid_size=10**9)
    monkeypatch.setattr("scilt_theory.resources.available_memory_bytes", lambda: 10**6)
    with pytest.raises(ValueError, match="more than the 1 MB available"):
        scilt_theory.bounds_report(run_dir / "run.pt")
    with pytest.raises(ValueError, match="checkpoint not found"):
        scilt_theory.bounds_report(run_dir / "missing.pt")


def test_settings_and_options_combine(run_dir, monkeypatch):
    from scilt_theory.api import prepare

    settings, added, estimate = prepare(run_dir / "run.pt", scilt_theory.BoundsSettings(draws=70),
                                        mode="certified")
    assert settings.draws == 70 and settings.mode == "certified" and added == ()
    assert estimate.n > 0 and estimate.num_classes == 4 and estimate.memory_bytes > 0


def test_the_api_is_lazy_and_documented():
    assert set(scilt_theory.__all__) >= {"bounds_report", "read_report", "BoundsSettings", "BoundsReport"}
    with pytest.raises(AttributeError):
        scilt_theory.nope  # noqa: B018
