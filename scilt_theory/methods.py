"""Training methods: SciLT, its ablations and the peers (docs/PEERS.md), each a small registered component.

A :class:`Method` says what differs from SciLT, and nothing else:

* ``model``: ModelConfig fields it fixes (one head, fixed α, ...; see scilt_theory/models/scilt.py);
* ``train``: TrainConfig fields it fixes (``ce``: τ = 0);
* ``car``: add CAR's spectral penalty on the prediction logits (scilt_theory/car.py);
* ``pif``: PI-H2T's permutation-invariant fusion of same-class CLS features during training (reconstructed);
* ``h2t``: after training, H2T's classifier re-training stage on the frozen features (scilt_theory/h2t.py).

The training loop only calls :func:`get_method`, :meth:`Method.configure`, :class:`Objective` and
:meth:`Method.prepare_model`; no method is a branch of the loop. :data:`METHODS` is the registry
(``register_method`` adds one), in the order the comparison table lists them.

The supervised part of every objective is THEORY §1's dual logit-adjusted CE,
``LA-CE(s1) + λ·LA-CE(s2)``, with the second term absent for one-head models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

import torch

from scilt_theory.car import CARConfig, CARRegularizer
from scilt_theory.constraints import InstanceOf, Text, check_fields, option
from scilt_theory.h2t import PIF_NOTE, H2TConfig, build_pif
from scilt_theory.losses import logit_adjusted_cross_entropy

__all__ = ["METHODS", "Method", "MethodConfig", "Objective", "get_method", "register_method", "supervised_loss"]

H2T_NOTE = ("H2T's classifier re-training stage runs after training: backbone frozen, heads and α re-trained on "
            "class-balanced batches whose CLS-feature channels are partly copied from instance-sampled ones "
            "(⌊ρD⌋ channels, one subset per batch); its loss is the dual CE without logit adjustment, because "
            "balanced sampling already removes the prior.")


@dataclass(frozen=True)
class Method:
    """One training method: SciLT plus the few settings and components that make it what it is."""

    name: str
    summary: str
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    car: bool = False
    pif: bool = False
    h2t: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", MappingProxyType(dict(self.model)))
        object.__setattr__(self, "train", MappingProxyType(dict(self.train)))

    @property
    def couples_batch(self) -> bool:
        """True when the objective mixes the samples of a batch (CAR's confusion, PIF's set fusion), so
        splitting a batch over processes would change it."""
        return self.car or self.pif

    @property
    def notes(self) -> list[str]:
        """Sentences a report must carry about this method (reconstructions, extra stages)."""
        out = []
        if self.car:
            out.append("CAR regulariser as in PEERS.md (soft confusion, EMA, frequency weights, spectral norm); "
                       "CAR's own bound was not readable here, so only exact spectral facts are reported.")
        if self.pif:
            out.append(PIF_NOTE)
        if self.h2t:
            out.append(H2T_NOTE)
        return out

    def configure(self, model_config, train_config):
        """(ModelConfig, TrainConfig) with this method's fixed settings applied."""
        return replace(model_config, **self.model), replace(train_config, **self.train)

    def prepare_model(self, model, config: MethodConfig) -> None:
        """Attach the components the model carries in its forward (PI-H2T: PIF during training)."""
        if self.pif:
            kwargs = {"temperature": config.h2t.pif_temperature} if config.h2t.pif == "similarity" else {}
            model.train_feature_fusion = build_pif(config.h2t.pif, **kwargs)


#: name -> Method, in the order of the comparison table
METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS`; a name registered twice is an error."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is already registered.")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


_FINAL_ONLY = {"heads": 1, "fusion": "fixed", "fixed_alpha": 0.0}
for _method in (
    Method("scilt", "SciLT: adaptive fusion of penultimate and final CLS features, two heads, LA-CE on both"),
    Method("final_only", "LIFT-style baseline: final CLS feature only, one cosine head, LA-CE", model=_FINAL_ONLY),
    Method("penultimate_only", "penultimate CLS feature only, one cosine head, LA-CE",
           model={"heads": 1, "fusion": "fixed", "fixed_alpha": 1.0}),
    Method("fused_single_head", "adaptive fusion, classifier 1 only (no dual supervision)",
           model={"heads": 1, "fusion": "adaptive"}),
    Method("dual_no_fusion", "two heads without fusion: classifier 1 on the final, classifier 2 on the "
           "penultimate feature", model={"heads": 2, "fusion": "fixed", "fixed_alpha": 0.0}),
    Method("fixed_alpha", "SciLT with the fusion weight fixed at α = 0.5",
           model={"heads": 2, "fusion": "fixed", "fixed_alpha": 0.5}),
    Method("ce", "SciLT with plain cross-entropy (no logit adjustment, τ = 0)", train={"tau": 0.0}),
    Method("car", "SciLT + CAR spectral regulariser on the prediction logits", car=True),
    Method("car_final_only", "final-only baseline + CAR spectral regulariser", model=_FINAL_ONLY, car=True),
    Method("h2t", "SciLT, then H2T classifier re-training with head-to-tail channel fusion", h2t=True),
    Method("pi_h2t", "SciLT with PIF (reconstructed) during training, then H2T classifier re-training (H2TF)",
           pif=True, h2t=True),
):
    register_method(_method)


@dataclass(frozen=True)
class MethodConfig:
    """Which method, and the settings of the peer components it may use (stored in run.pt)."""

    name: str = option("scilt", "method name (see METHODS)", Text())
    car: CARConfig = option(MISSING, "settings of the CAR component", InstanceOf(CARConfig),
                            default_factory=CARConfig)
    h2t: H2TConfig = option(MISSING, "settings of the H2T / PI-H2T component", InstanceOf(H2TConfig),
                            default_factory=H2TConfig)

    def __post_init__(self) -> None:
        check_fields(self)
        get_method(self.name)  # the registry decides which names exist (a clear error for an unknown one)

    @property
    def method(self) -> Method:
        return get_method(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "car": {f.name: getattr(self.car, f.name) for f in fields(CARConfig)},
                "h2t": {f.name: getattr(self.h2t, f.name) for f in fields(H2TConfig)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MethodConfig:
        """Inverse of :meth:`to_dict`; None (a run from before methods existed) is SciLT with defaults."""
        if not data:
            return cls()
        try:
            return cls(name=data.get("name", "scilt"), car=CARConfig(**data.get("car", {})),
                       h2t=H2TConfig(**data.get("h2t", {})))
        except TypeError as exc:
            raise ValueError(f"the method settings are not valid: {exc}") from None


def supervised_loss(output, targets: torch.Tensor, class_counts: torch.Tensor, *, tau: float,
                    lam: float) -> torch.Tensor:
    """THEORY §1: LA-CE(s1) + λ·LA-CE(s2) (the second term only for two-head models)."""
    loss = logit_adjusted_cross_entropy(output.s1, targets, class_counts, tau=tau)
    if output.s2 is not None and lam:
        loss = loss + lam * logit_adjusted_cross_entropy(output.s2, targets, class_counts, tau=tau)
    return loss


class Objective:
    """The training loss of a method: the supervised loss, plus CAR's penalty when the method uses it.

    Stateful only through CAR's confusion EMA, which :meth:`state_dict` exposes for run.pt and resume.
    """

    def __init__(self, config: MethodConfig, class_counts: torch.Tensor, *, tau: float, lam: float,
                 num_classes: int) -> None:
        self.method = config.method
        self.class_counts = class_counts
        self.tau, self.lam = float(tau), float(lam)
        self.car = CARRegularizer(num_classes, class_counts.detach().cpu(), config.car) if self.method.car else None

    def __call__(self, output, targets: torch.Tensor) -> torch.Tensor:
        loss = supervised_loss(output, targets, self.class_counts, tau=self.tau, lam=self.lam)
        if self.car is not None:
            loss = loss + self.car(output.logits, targets)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"car": self.car.state_dict() if self.car is not None else None}

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        if self.car is not None and state and state.get("car") is not None:
            self.car.load_state_dict(state["car"])
