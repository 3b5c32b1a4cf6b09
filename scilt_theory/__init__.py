"""scilt-theory: the SciLT fused ViT on long-tailed scientific images and the bounds of docs/THEORY.md.

The Python API (README "Cite a bound from Python"; names load lazily, so ``import scilt_theory`` stays cheap)::

    import scilt_theory
    report = scilt_theory.bounds_report("runs/demo/run.pt", mode="certified")   # a typed BoundsReport
    report.write("runs/demo/bounds_certified")                                   # bounds.json, report.md, figures

- :func:`bounds_report` (scilt_theory/api.py): the report of a trained run; options are the fields of
  :class:`BoundsSettings`.
- :func:`read_report`: a bounds.json read back, with the same methods (``write``, ``markdown``, ``bottom_line``).
- :class:`BoundsSettings`, :class:`BoundsReport`: the settings and the schema of bounds.json.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BoundsReport", "BoundsSettings", "Report", "bounds_report", "read_report"]

_EXPORTS = {"bounds_report": "scilt_theory.api", "read_report": "scilt_theory.api", "Report": "scilt_theory.api",
            "BoundsSettings": "scilt_theory.bounds_pipeline", "BoundsReport": "scilt_theory.schema"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scilt_theory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
