"""Small file-system helpers shared by the readers of real data sets: the data root, CSV tables, image indexes.

Every failure names the file or folder and says what was expected, in one sentence.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from pathlib import Path

from scilt_theory.data.config import DataConfig
from scilt_theory.data.images import IMAGE_SUFFIXES


def data_root(config: DataConfig, layout: str) -> Path:
    """``config.data_root`` as an existing path; ``layout`` describes what the reader expects there."""
    if config.data_root is None:
        raise ValueError(f"{config.name} reads a copy on disk: pass --data-root PATH ({layout})")
    root = Path(config.data_root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data root {root} does not exist ({config.name} expects {layout})")
    return root


def find_one(root: Path, patterns: Iterable[str], what: str, layout: str) -> Path | None:
    """The first file matching one of ``patterns`` (glob, tried in order) under ``root``; None if there is none.

    Several different matches of one pattern are an error (which one is meant would be a guess).
    """
    for pattern in patterns:
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        if len(matches) > 1:
            raise ValueError(f"found {len(matches)} {what} files under {root} ({', '.join(m.name for m in matches)}); "
                             f"keep one ({layout})")
        if matches:
            return matches[0]
    return None


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a comma-separated file (optionally .gz); cells stripped of surrounding blanks."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path} is empty; expected a header line and one row per image")
    header, body = rows[0], rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}")
    return header, body


def require_columns(path: Path, header: list[str], columns: Iterable[str], layout: str) -> list[int]:
    """Positions of ``columns`` in ``header``; a missing one is an error naming it."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(map(repr, missing))}; expected {layout}; its "
                         f"header is {', '.join(header[:12])}{' …' if len(header) > 12 else ''}")
    return [header.index(c) for c in columns]


def index_images(folders: Iterable[Path]) -> dict[str, Path]:
    """File name → path of every image file (by suffix) under ``folders``; a name found twice is an error."""
    index: dict[str, Path] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                continue
            if path.name in index and index[path.name] != path:
                raise ValueError(f"image {path.name} is present twice ({index[path.name]} and {path}); keep one copy")
            index[path.name] = path
    return index


def resolve_images(names: list[str], index: dict[str, Path], listed_in: Path, where: str) -> list[Path]:
    """Paths of ``names`` in ``index``; missing images are an error naming how many and the first few."""
    missing = [n for n in names if n not in index]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of the {len(names)} images listed in {listed_in} are missing "
                                f"under {where} (e.g. {', '.join(missing[:3])})")
    return [index[n] for n in names]
