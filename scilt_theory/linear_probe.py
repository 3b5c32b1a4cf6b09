"""Linear-probe reference: logistic regression on the CLS features of a frozen backbone (no fine-tuning at all).

What a run of the comparison is measured against when the backbone is not trained: the run's own model config with
``adapter="none"`` (same architecture, weights file, image size, depth), the same data, the same hold-out split and
the same seed (so a random backbone is the run's initialisation: the global RNG is seeded and consumed as
``training.set_up`` does, data first, then the model). The features are the L2-normalised penultimate CLS ψ_1, the
L2-normalised final CLS ψ_2, and both concatenated [ψ_1, ψ_2], of the fit split (no augmentation) and the test split.

On each, scikit-learn's ``LogisticRegression`` (multinomial, lbfgs, ``class_weight="balanced"``) is fitted twice:

* ``cv`` (the main result): C chosen from :data:`C_GRID` by stratified k-fold cross-validation on the fit split,
  scored by balanced accuracy (k = min(5, the smallest class count); with a class of one image no CV is possible
  and C = 1 is used, said in ``cv.note``), then refitted on the whole fit split;
* ``c1``: C = 1, scikit-learn's default, for reference.

Both are evaluated on the test split with the project's own metrics (``metrics.evaluate_predictions``: balanced,
Many/Medium/Few, worst class), exactly as a trained run is.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["C_GRID", "FEATURE_VIEWS", "ProbeInputs", "ProbeSettings", "choose_c", "fit_predict", "probe_features",
           "run_linear_probe"]

#: inverse regularisation strengths tried by the cross-validation
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
#: the three feature sets, in report order
FEATURE_VIEWS: tuple[str, ...] = ("penultimate", "final", "both")


@dataclass(frozen=True)
class ProbeSettings:
    c_grid: tuple[float, ...] = C_GRID
    cv_folds: int = 5
    max_iter: int = 5000


def _classifier(c: float, settings: ProbeSettings):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=float(c), class_weight="balanced", solver="lbfgs", max_iter=settings.max_iter)


def fit_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, c: float,
                settings: ProbeSettings = ProbeSettings()) -> tuple[np.ndarray, dict[str, Any]]:
    """Predicted test labels of the probe fitted at C = ``c``, and whether lbfgs converged."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = _classifier(c, settings).fit(x_fit, y_fit)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model.predict(x_test), {"C": float(c), "converged": converged, "iterations": int(np.max(model.n_iter_))}


def choose_c(x: np.ndarray, y: np.ndarray, seed: int,
             settings: ProbeSettings = ProbeSettings()) -> dict[str, Any]:
    """C of :data:`C_GRID` with the best mean balanced accuracy over stratified folds of (x, y) (the smallest C on
    ties); ``{"C", "folds", "scores": {C: mean}, "note"}``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = min(settings.cv_folds, int(np.bincount(y).min()))
    if folds < 2:
        return {"C": 1.0, "folds": 0, "scores": {},
                "note": "a class has a single fit image, so no stratified CV is possible; C = 1 was used"}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in settings.c_grid:
            scores[float(c)] = float(np.mean(cross_val_score(_classifier(c, settings), x, y, cv=splitter,
                                                             scoring="balanced_accuracy")))
    best = max(scores.values())
    chosen = min(c for c, v in scores.items() if v == best)
    return {"C": chosen, "folds": folds, "scores": {str(c): v for c, v in scores.items()}, "note": None}


class ProbeInputs(NamedTuple):
    data: Any  #: the LongTailDataset
    split: Any  #: training.FitSplit, the run's hold-out split
    views: dict[str, tuple[np.ndarray, np.ndarray]]  #: view -> (x_fit, x_test), float64
    model_config: Any  #: the run's ModelConfig with adapter none and the data set's class count
    model: Any  #: the frozen SciLTModel the features come from


def probe_features(data_config, model_config, train_config, *, data=None,
                   log: Callable[[str], None] | None = None) -> ProbeInputs:
    """The L2-normalised CLS features of fit and test split through the frozen backbone of the run these configs
    describe (see the module docstring)."""
    from scilt_theory.features import extract_features
    from scilt_theory.models import build_model
    from scilt_theory.training import fit_split, load_data, resolve_device, seed_everything

    seed_everything(train_config.seed)  # as training.set_up: seed, data, model
    data, model_config = load_data(data_config, replace(model_config, adapter="none"), data)
    device = resolve_device(train_config.device)
    model = build_model(model_config).to(device)
    split = fit_split(data, train_config)
    from scilt_theory.feature_store import FeatureStore

    store = None if train_config.feature_store is None else FeatureStore(train_config.feature_store)
    kwargs = dict(batch_size=train_config.eval_batch_size, device=device, progress=log is not None,
                  dtype=torch.float64, store=store)
    fit = extract_features(model, split.images, split.labels, desc="probe features (fit)", **kwargs)
    test = extract_features(model, data.test_images, data.test_labels, desc="probe features (test)", **kwargs)

    def normalised(features) -> tuple[np.ndarray, np.ndarray]:
        return (F.normalize(features.phi_penult, dim=1).numpy(), F.normalize(features.phi_final, dim=1).numpy())

    (fit1, fit2), (test1, test2) = normalised(fit), normalised(test)
    views = {"penultimate": (fit1, test1), "final": (fit2, test2),
             "both": (np.concatenate([fit1, fit2], axis=1), np.concatenate([test1, test2], axis=1))}
    return ProbeInputs(data, split, views, model_config, model)


def run_linear_probe(data_config, model_config, train_config, *, data=None,
                     settings: ProbeSettings = ProbeSettings(),
                     log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The three probes (:data:`FEATURE_VIEWS`) at the CV-chosen C and at C = 1, with test metrics; JSON-friendly."""
    from scilt_theory.training import evaluate_test_predictions

    started = time.perf_counter()
    data, split, views, probe_model, _ = probe_features(data_config, model_config, train_config, data=data, log=log)
    y_fit = split.labels.numpy()
    out: dict[str, Any] = {"model_config": probe_model.to_dict(), "seed": int(train_config.seed),
                           "holdout_fraction": float(train_config.holdout_fraction), "n_fit": int(len(y_fit)),
                           "n_test": int(len(data.test_labels)), "settings": asdict(settings), "views": {}}
    for view in FEATURE_VIEWS:
        x_fit, x_test = views[view]
        cv = choose_c(x_fit, y_fit, train_config.seed, settings)
        predictions, fit_info = fit_predict(x_fit, y_fit, x_test, cv["C"], settings)
        c1_predictions, c1_info = fit_predict(x_fit, y_fit, x_test, 1.0, settings)
        out["views"][view] = {
            "dim": int(x_fit.shape[1]),
            "cv": {**cv, **fit_info, "metrics": evaluate_test_predictions(data, predictions)},
            "c1": {**c1_info, "metrics": evaluate_test_predictions(data, c1_predictions)},
        }
        if log is not None:
            m = out["views"][view]
            log(f"linear probe [{view}]: C = {cv['C']:g} (CV) balanced acc "
                f"{100 * m['cv']['metrics']['balanced_accuracy']:.1f}%, C = 1: "
                f"{100 * m['c1']['metrics']['balanced_accuracy']:.1f}%")
    out["seconds"] = time.perf_counter() - started
    return out
