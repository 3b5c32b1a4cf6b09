"""From what a reader found (every labelled image of a real data set) to a seeded long-tailed split.

The rules, applied in this order and recorded in ``provenance``:

1. ``exclude_classes`` are removed (unknown names are an error). Classes with no training-pool image (e.g. ISIC's
   ``UNK``, which has no training image) are dropped and listed under ``dropped_classes``.
2. Classes are ordered head first by the size of their training pool (the images outside an official test split),
   ties in source order; ``num_classes`` K keeps the K largest.
3. Test split, drawn first with ``np.random.default_rng(seed)``:
   - the data set has an official test split (NIH list files / NIH-CXR-LT test CSV, MedMNIST ``test_*``, an
     imagefolder ``test_root``, ISIC's test ground truth): ``balanced`` draws ``test_per_class`` images of every
     class from it (default: the size of its smallest class), ``natural`` keeps all of it;
   - no official test split: ``balanced`` holds out ``test_per_class`` images of every class (default
     min(100, max(1, ⌊n_min / 5⌋)) with n_min the smallest class), ``natural`` holds out
     min(max(1, ⌊test_fraction · n_c⌋), n_c − 1) of every class c. At least one image per class stays for training.
4. Training profile from what is left (n_c available in class c). A real data set keeps every image unless asked
   otherwise (``natural``, the default); the long-tail subsample is opt-in:
   - ``natural``: every available image; with ``max_per_class`` M the profile is scaled to
     max(1, ⌊n_c · M / n_0⌋), keeping its shape;
   - ``exponential``: n_c = ⌊n_max · IF^(−c/(K−1))⌋ (``longtail_counts``), drawn without replacement; n_max is
     ``max_per_class`` or, by default, the largest head for which every class has enough images.
   What a profile leaves out, a dropped class and a clamped imbalance factor are said in one sentence each in
   ``provenance["notes"]`` (printed by ``experiments.train`` and ``experiments.data``).
5. ``provenance["test_same_distribution"]``: True when the test images were held out of the same pool as the
   training images (a seeded, class-stratified random subset, so class by class both splits are random subsets of
   one pool), False for an official test split (drawn by the data set's makers, e.g. NIH's patient-wise list or
   ISIC's later test set, so not known to follow the training distribution); ``test_distribution_note`` says
   which in one sentence. A reader whose official split is known to be drawn like its pool (``nih-profile``)
   overrides both through ``SourcePool.source``.
6. ``provenance["fingerprint"]``: sha256 of every item's identity (its path relative to the data root, or its .npz
   entry), its class and its content (the sha256 of an image file's bytes, or of an .npz image's array), train
   then test. run.pt records it, so the bounds command can tell that a re-created split holds the same images,
   even after the data moved (``--data-root``), and that no image was changed under the same name. A file's
   sha256 is computed once and cached by path, size and modification time (``CACHE/content-hashes/``, CACHE =
   ``$SCILT_THEORY_CACHE`` or ``~/.cache/scilt-theory``), so rebuilding a split only stats the files.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scilt_theory.checkpoint import atomic_write_text
from scilt_theory.data.config import DataConfig
from scilt_theory.data.dataset import LongTailDataset
from scilt_theory.data.lazy import ArrayStore, FileStore, ImageStore, LazyImages
from scilt_theory.data.longtail import head_first_order, longtail_counts, subsample_per_class
from scilt_theory.local_files import cache_folder, file_sha256

MAX_DEFAULT_TEST_PER_CLASS = 100


@dataclass(frozen=True, eq=False)
class SourcePool:
    """Every labelled image a reader found, before any split.

    store : decodes item i.  labels : int64 (N,) source class of every item.  class_names : source class order.
    official_test : bool (N,) marking the data set's own test split, or None.  source : provenance (files read,
    the label rule).  default_profile : the profile used when ``DataConfig.profile`` is None.
    """

    store: ImageStore
    labels: np.ndarray
    class_names: tuple[str, ...]
    official_test: np.ndarray | None = None
    source: dict[str, Any] = field(default_factory=dict)
    default_profile: str = "natural"


def default_test_per_class(smallest: int) -> int:
    """Balanced hold-out per class without an official test split: min(100, max(1, ⌊n_min / 5⌋))."""
    return min(MAX_DEFAULT_TEST_PER_CLASS, max(1, smallest // 5))


def affordable_head(available: np.ndarray, imbalance: float) -> int:
    """Largest n_max with longtail_counts(n_max, K, IF) ≤ available (class by class); counts grow with n_max."""
    k = len(available)
    lo, hi = 1, int(available[0])
    if np.any(longtail_counts(1, k, imbalance) > available):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.all(longtail_counts(mid, k, imbalance) <= available):
            lo = mid
        else:
            hi = mid - 1
    return lo


def file_digests(paths: list[str], root: str | None = None) -> list[str]:
    """sha256 of every file's bytes, read once: cached by absolute path, size and mtime in
    ``CACHE/content-hashes/<root>.json`` (a file that changed is read again). Unreadable cache: no cache."""
    absolute = [os.path.abspath(p) for p in paths]
    key = hashlib.sha256((root or os.path.commonpath(absolute or ["/"])).encode()).hexdigest()[:24]
    cache_path = cache_folder() / "content-hashes" / f"{key}.json"
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    stats, todo = {}, []
    for path in absolute:
        try:
            st = os.stat(path)
        except OSError:
            stats[path] = None  # unreadable: its decode will say so; no content to hash
            continue
        stats[path] = [st.st_size, st.st_mtime_ns]
        entry = cache.get(path)
        if not (isinstance(entry, list) and len(entry) == 3 and entry[:2] == stats[path]):
            todo.append(path)
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            for path, sha in zip(todo, pool.map(_safe_sha256, todo)):
                if sha is not None:
                    cache[path] = [*stats[path], sha]
        try:
            atomic_write_text(json.dumps(cache), cache_path)
        except OSError:
            pass  # a read-only home: no cache, the hashes are simply computed again next time
    return [cache[p][2] if p in cache and stats.get(p) is not None else "" for p in absolute]


def _safe_sha256(path: str) -> str | None:
    """:func:`file_sha256`, or None for a file that cannot be read (its decode says so)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def content_digests(store: ImageStore, index: np.ndarray) -> list[str] | None:
    """The content of items ``index``: sha256 of an image file's bytes (FileStore), of an .npz image's array
    (ArrayStore); None for a store whose items are made from their identity (generated pixels)."""
    index = np.asarray(index, dtype=np.int64)
    if isinstance(store, FileStore):
        return file_digests([str(store.paths[i]) for i in index.tolist()], store.root)
    if isinstance(store, ArrayStore):
        out = []
        for i in index.tolist():
            key, j = store._locate(i)
            array = np.ascontiguousarray(store._array(key)[j])
            out.append(hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest())
        return out
    return None


def split_fingerprint(store: ImageStore, train_idx: np.ndarray, train_y: np.ndarray, test_idx: np.ndarray,
                      test_y: np.ndarray) -> str:
    """sha256 of every training and test item's identity (file path relative to the data root, .npz entry, …)
    with its class and its content (:func:`content_digests`), in order: equal fingerprints mean the same images,
    byte for byte, with the same labels on the same sides."""
    digest = hashlib.sha256()
    for part, index, labels in (("train", train_idx, train_y), ("test", test_idx, test_y)):
        digest.update(part.encode())
        contents = content_digests(store, index)
        for position, (i, y) in enumerate(zip(index.tolist(), labels.tolist())):
            content = f"\t{contents[position]}" if contents is not None else ""
            digest.update(f"\n{store.identity(i)}\t{y}{content}".encode())
    return digest.hexdigest()


def _counts_text(values) -> str:
    values = [int(v) for v in values]
    return " / ".join(map(str, values)) if len(values) <= 12 else \
        " / ".join(map(str, values[:6])) + " / … / " + " / ".join(map(str, values[-3:]))


def profile_notes(name: str, profile: str, config: DataConfig, available: np.ndarray, counts: np.ndarray,
                  dropped: list[str]) -> list[str]:
    """One sentence for each thing the split left out or changed without being asked to name it."""
    notes = []
    if dropped:
        notes.append(f"{name}: {len(dropped)} class(es) without any training image dropped: "
                     f"{', '.join(map(repr, dropped))}")
    left = int(available.sum() - counts.sum())
    if profile == "exponential" and left:
        notes.append(f"{name}: the exponential profile (imbalance {config.imbalance:g}) trains on "
                     f"{_counts_text(counts)} of the {_counts_text(available)} images available per class, leaving "
                     f"out {left} of {int(available.sum())}; --profile natural keeps every image")
    elif profile == "natural" and left:
        notes.append(f"{name}: --max-per-class {config.max_per_class} scales the natural profile to "
                     f"{_counts_text(counts)} of {_counts_text(available)} images per class, leaving out {left}")
    if profile == "exponential" and counts.size > 1 and counts[0] / config.imbalance < 1:
        achieved = counts[0] / counts[-1]
        notes.append(f"{name}: imbalance {config.imbalance:g} asks for a tail class of {counts[0]}/"
                     f"{config.imbalance:g} < 1 image; every class keeps at least one, so the imbalance is "
                     f"{achieved:g}")
    return notes


def same_distribution_provenance(official: bool) -> dict[str, Any]:
    """``test_same_distribution`` and ``test_distribution_note`` of a split with or without an official test split."""
    if official:
        return {"test_same_distribution": False,
                "test_distribution_note": "the test split is the data set's official one, drawn by its makers apart "
                                          "from the training pool, so it is not known to follow the training "
                                          "distribution class by class"}
    return {"test_same_distribution": True,
            "test_distribution_note": "the test images of every class are a seeded random subset of the same pool "
                                      "the training images are drawn from (without replacement), so class by class "
                                      "both splits follow the pool's distribution"}


def build_longtail(name: str, pool: SourcePool, config: DataConfig) -> LongTailDataset:
    """Apply the module's rules to ``pool``; deterministic given ``config`` (see the module docstring)."""
    names = tuple(pool.class_names)
    labels = np.asarray(pool.labels, dtype=np.int64)
    k_source = len(names)
    official = pool.official_test is not None
    is_test = np.zeros(labels.size, dtype=bool) if pool.official_test is None else np.asarray(pool.official_test)
    unknown = [c for c in config.exclude_classes if c not in names]
    if unknown:
        raise ValueError(f"{name} has no class named {', '.join(map(repr, unknown))}; its classes are "
                         f"{', '.join(names)}")
    keep = np.array([c not in config.exclude_classes for c in names], dtype=bool)
    pool_counts = np.bincount(labels[~is_test], minlength=k_source)
    dropped = [names[c] for c in range(k_source) if keep[c] and pool_counts[c] == 0]
    keep &= pool_counts > 0
    kept = np.flatnonzero(keep)
    order = kept[head_first_order(pool_counts[kept])]
    if config.num_classes is not None:
        if config.num_classes > order.size:
            raise ValueError(f"{name} has {order.size} classes with training images, {config.num_classes} were "
                             f"asked for")
        order = order[:config.num_classes]
    k = order.size
    if k < 2:
        raise ValueError(f"{name} needs at least 2 classes with training images, found {k} "
                         f"({', '.join(names[c] for c in order) or 'none'})")
    relabel = np.full(k_source, -1, dtype=np.int64)
    relabel[order] = np.arange(k)
    y = relabel[labels]
    class_names = tuple(names[c] for c in order)
    rng = np.random.default_rng(config.seed)
    candidates = np.flatnonzero((y >= 0) & ~is_test)
    available_before = np.bincount(y[candidates], minlength=k)

    if official:
        test_candidates = np.flatnonzero((y >= 0) & is_test)
        test_pool = np.bincount(y[test_candidates], minlength=k)
        if config.test_split == "balanced":
            if test_pool.min() == 0:
                raise ValueError(f"class {class_names[int(test_pool.argmin())]!r} of {name} has no image in the "
                                 f"official test split; use --test-split natural or --exclude-classes")
            n_test = config.test_per_class or int(test_pool.min())
            if n_test > test_pool.min():
                raise ValueError(f"the official test split of {name} holds {int(test_pool.min())} images of class "
                                 f"{class_names[int(test_pool.argmin())]!r}, fewer than the {n_test} test images "
                                 f"per class asked for")
            test_idx = test_candidates[subsample_per_class(y[test_candidates], [n_test] * k, rng)]
        else:
            if config.test_per_class is not None:
                raise ValueError("test_per_class applies to a balanced test split; a natural one keeps the whole "
                                 "official test split")
            test_idx = test_candidates
        remaining = candidates
    else:
        test_pool = None
        smallest = int(available_before.min())
        if smallest < 2:
            raise ValueError(f"class {class_names[int(available_before.argmin())]!r} of {name} has a single image, "
                             f"so it cannot give both a training and a test image; exclude it with "
                             f"--exclude-classes")
        if config.test_split == "balanced":
            n_test = config.test_per_class or default_test_per_class(smallest)
            if n_test >= smallest:
                raise ValueError(f"{name} can hold out at most {smallest - 1} test images per class (class "
                                 f"{class_names[int(available_before.argmin())]!r} has {smallest}), {n_test} were "
                                 f"asked for")
            per_class = [n_test] * k
        else:
            if config.test_per_class is not None:
                raise ValueError("test_per_class applies to a balanced test split; a natural one holds out "
                                 "--test-fraction of every class")
            per_class = [min(max(1, int(config.test_fraction * n)), int(n) - 1) for n in available_before]
        test_idx = candidates[subsample_per_class(y[candidates], per_class, rng)]
        remaining = np.setdiff1d(candidates, test_idx)

    available = np.bincount(y[remaining], minlength=k)
    profile = config.profile or pool.default_profile
    if profile == "natural":
        if config.max_per_class is not None:
            if config.max_per_class > available[0]:
                raise ValueError(f"the head class {class_names[0]!r} of {name} has {int(available[0])} training "
                                 f"images, fewer than max_per_class {config.max_per_class}")
            counts = np.maximum(1, np.floor(available * config.max_per_class / available[0] + 1e-9)).astype(np.int64)
        else:
            counts = available.copy()
    else:
        n_max = config.max_per_class or affordable_head(available, config.imbalance)
        counts = longtail_counts(max(n_max, 1), k, config.imbalance)
        short = np.flatnonzero(counts > available)
        if short.size:
            c = int(short[0])
            raise ValueError(f"class {class_names[c]!r} of {name} has {int(available[c])} training images left "
                             f"after the test split, but the exponential profile (n_max {int(counts[0])}, imbalance "
                             f"{config.imbalance:g}) needs {int(counts[c])}; lower --max-per-class or --imbalance, "
                             f"or use --profile natural")
    train_idx = remaining[subsample_per_class(y[remaining], counts, rng)]
    notes = profile_notes(name, profile, config, available, counts, dropped)
    provenance = {"train_index": train_idx, "test_index": test_idx, "profile": profile, "notes": notes,
                  "test_split": config.test_split, "official_test_split": official,
                  "pool_counts": available_before.tolist(), "available_counts": available.tolist(),
                  "test_pool_counts": None if test_pool is None else test_pool.tolist(),
                  "dropped_classes": dropped, "excluded_classes": list(config.exclude_classes),
                  "source_class_names": list(names), **same_distribution_provenance(official),
                  "fingerprint": split_fingerprint(pool.store, train_idx, y[train_idx], test_idx, y[test_idx]),
                  **pool.source}
    import torch

    return LongTailDataset(name, class_names, LazyImages(pool.store, train_idx), torch.from_numpy(y[train_idx]),
                           LazyImages(pool.store, test_idx), torch.from_numpy(y[test_idx]), config, provenance)
