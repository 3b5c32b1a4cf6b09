"""Safe, atomic save and load of ``run.pt``.

A run file is a plain dictionary of tensors and JSON-like values, so it loads with
``torch.load(..., weights_only=True)`` and never executes code from the file. Writes go to a temporary
file in the same directory, are flushed and fsync'ed, then renamed over the target: a crash or a kill
during a save leaves the previous file intact.

What the dictionary holds is defined in one place, :class:`scilt_theory.run_record.RunRecord` (the typed record
every reader gets; its layout, generated from the field help, is docs/run_record.md). This module is the file
layer beneath it: the format markers ``format`` ("scilt-theory/run") and ``format_version`` (refused when newer
than this code knows), and the refusal of an unfinished run (``finished: False``) except where asked for.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

FORMAT = "scilt-theory/run"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A run file that cannot be used; the message is one sentence meant for the user."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a run's numbers (recorded in run.pt)."""
    import platform

    import numpy
    import timm

    versions = {"python": platform.python_version(), "torch": str(torch.__version__), "timm": str(timm.__version__),
                "numpy": str(numpy.__version__)}
    for name in ("peft", "torchvision", "sklearn", "scipy", "cvxpy"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "unknown"))
        except ImportError:  # optional at load time
            versions[name] = "missing"
    return versions


@contextlib.contextmanager
def atomic_files(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary files beside ``paths`` for the block to write; when it ends without an error they are fsync'ed,
    given the usual permissions and renamed over ``paths`` together, with Ctrl-C held back during the renames.

    A crash or kill at any point leaves either the old files or the new ones, never half of one, and never a mix
    of two writes; an error deletes the temporary files. The one atomic writer of the package.
    """
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(Path(name))
        yield temps
        for tmp in temps:
            os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs should read like any file
            _fsync_file(tmp)
        with _signals_deferred():
            for tmp, path in zip(temps, targets):
                os.replace(tmp, path)
        for folder in dict.fromkeys(path.parent for path in targets):
            _fsync_directory(folder)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise


def atomic_replace(path: str | os.PathLike, write: Callable[[IO], None], *, text: bool) -> Path:
    """Write ``path`` through :func:`atomic_files`: ``write`` gets the open temporary file (text or binary)."""
    with atomic_files(path) as (tmp,):
        with open(tmp, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as handle:
            write(handle)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename in the same directory)."""
    return atomic_replace(path, lambda handle: torch.save(obj, handle), text=False)


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically, so a reader never sees half a report."""
    return atomic_replace(path, lambda handle: handle.write(text), text=True)


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: there is no other way)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_run(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Save a run dictionary (adds the format markers) atomically."""
    record = dict(payload)
    record["format"] = FORMAT
    record["format_version"] = FORMAT_VERSION
    return atomic_torch_save(record, path)


def load_run(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
             allow_unfinished: bool = False) -> dict[str, Any]:
    """Load a run file safely (``weights_only=True``) and check that it is ours and not from the future.

    Parameters
    ----------
    allow_unfinished : bool
        Accept a periodic checkpoint of a run that has not finished training (only ``--resume`` wants one).

    Raises
    ------
    CheckpointError
        For a missing, unreadable, truncated, foreign or future-version file, or an unfinished run when
        ``allow_unfinished`` is false, with one clear sentence.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a directory, not a file: {path}")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError,
            AttributeError, TypeError, KeyError, IndexError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in first_line.lower() or "weights_only" in first_line:
            # torch's own advice here is the unsafe load, i.e. to run the file's code: never given
            first_line = "the safe (weights-only) loader cannot read it, and no other loader is ever used"
        raise CheckpointError(f"{path} is not a readable scilt-theory checkpoint (truncated, corrupt, or not a "
                              f"weights-only torch file): {first_line[:200]}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a scilt-theory run (no '{FORMAT}' marker)")
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has run format version {version!r}; this scilt-theory reads up to "
                              f"version {FORMAT_VERSION} — upgrade scilt-theory to read it")
    missing = [key for key in ("model_config", "data_config", "model_state") if key not in record]
    if missing:
        raise CheckpointError(f"{path} is missing required entries: {', '.join(missing)}")
    if not allow_unfinished and record.get("finished", True) is False:
        progress = (record.get("train_state") or {}).get("progress") or {}
        where = f" (stopped after optimiser step {progress['global_step']})" if "global_step" in progress else ""
        raise CheckpointError(f"{path} is an unfinished training run{where}; finish it first with: "
                              f"python -m experiments.train --resume {path}")
    return record


def check_output_dir(path: str | os.PathLike, *, create: bool = False) -> Path:
    """Refuse an output directory that cannot be one: an existing file, a path under a file, or (with
    ``create``) a directory that cannot be created or written. Raises ValueError with one sentence."""
    path = Path(path)
    for existing in (path, *path.parents):
        if not existing.exists():
            continue
        if not existing.is_dir():
            if existing == path:
                raise ValueError(f"output path {path} is an existing file, not a directory; choose another --out")
            raise ValueError(f"output path {path} cannot be created: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"output path {path} is not writable (no write permission in {existing})")
        break
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise ValueError(f"output directory {path} is not writable: {exc.strerror or exc}") from None
    return path


def _created_parents(path: Path) -> list[Path]:
    """The folders ``path.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that exists and is empty: what a failed run created and left
    empty. A folder holding anything is kept."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) and SIGTERM for the few renames that swap two folders, so an interrupt leaves
    either the old folder or the new one in place, never neither."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # no signal masks here (e.g. Windows)
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def foreign_entries(out: Path, owns: Callable[[str, bool], bool]) -> list[str]:
    """Names in the existing folder ``out`` that the command writing it does not own (``owns(name, is_dir)``)."""
    if not out.is_dir():
        return []
    return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in out.iterdir()
                  if not owns(entry.name, entry.is_dir()))


def check_replaceable(out: str | os.PathLike, owns: Callable[[str, bool], bool], what: str) -> Path:
    """Refuse, before any work, an ``out`` folder a run could not replace as a whole: a file, a path under a file,
    or a folder holding something the command does not write (it would be deleted, or clash with a file the run
    writes: a folder named ``statements.png``, a ``run.pt``)."""
    out = check_output_dir(out)
    foreign = foreign_entries(out, owns)
    if foreign:
        names = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ValueError(f"output folder {out} holds {names}, which {'is' if len(foreign) == 1 else 'are'} not part "
                         f"of {what}; each run replaces the whole folder, so choose a new or empty --out")
    return out


@contextlib.contextmanager
def fresh_output_folder(out: str | os.PathLike, owns: Callable[[str, bool], bool], what: str) -> Iterator[Path]:
    """Write a run's files into a fresh temporary folder beside ``out``, then move it into place as a whole.

    The previous folder (if any) is swapped out and deleted only after the new one is complete, with Ctrl-C held
    back during the renames: a folder never mixes the files of two runs, and an interrupt or an error leaves the old
    folder as it was (and no temporary or empty folder behind). ``owns(name, is_dir)`` says which entries of an
    existing ``out`` belong to the command; anything else is refused before the work (:func:`check_replaceable`).
    """
    out = check_replaceable(out, owns, what)
    created = _created_parents(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as exc:
        remove_if_empty(created)
        raise ValueError(f"output directory {out} cannot be created: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; outputs should read like any folder
        yield tmp
        check_replaceable(out, owns, what)  # nothing foreign appeared meanwhile
        with _signals_deferred():
            old = None
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
                os.replace(out, old / out.name)
            os.replace(tmp, out)
            _fsync_directory(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(created)
        raise
