"""bounds.json has one definition (scilt_theory/schema.py): round trips, refusals, and the schema block of
docs/bounds.md."""

from __future__ import annotations

import re
from pathlib import Path

from scilt_theory.schema import BoundsReport, schema_text

ROOT = Path(__file__).resolve().parents[1]


def test_docs_schema_block_is_generated_from_the_dataclasses():
    text = (ROOT / "docs" / "bounds.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- schema:begin -->\n```text\n(.*?)```\n<!-- schema:end -->", text, flags=re.S)
    assert block, "docs/bounds.md has no generated schema block"
    assert block.group(1) == schema_text(), "docs/bounds.md's schema block is stale: run python -m scilt_theory.schema"


def test_every_field_of_the_report_is_documented():
    import dataclasses

    from scilt_theory.schema import _hints, _nested

    seen, queue = set(), [BoundsReport]
    while queue:
        cls = queue.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            queue += _nested(_hints(cls)[f.name])
    assert len(seen) >= 10
