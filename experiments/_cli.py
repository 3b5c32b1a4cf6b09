"""Shared command-line plumbing: options from frozen dataclasses, and one-line errors.

Every field of a config dataclass becomes ``--field-name`` with the field's help text and its declared constraint
(scilt_theory/constraints.py: the choices become argparse choices, a range is shown in the help); the dataclass's
own validation decides what is a bad value, so the CLI and the library can never disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from scilt_theory.constraints import Boolean, Choice, NoneOr

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access from any command, ever


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class UserError(Exception):
    """An error the user caused and can fix; printed as one line, exit status 2."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _none_or(convert: Callable[[str], Any], word: str = "none") -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("none", "", word) else convert(text)
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int": int, "float": _finite_float, "str": str, "bool": _parse_bool,
    "int | None": _none_or(int), "float | None": _none_or(_finite_float), "str | None": _none_or(str),
    "Optional[int]": _none_or(int), "Optional[float]": _none_or(_finite_float), "Optional[str]": _none_or(str),
}


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, *, title: str,
                          skip: Iterable[str] = (), rename: dict[str, str] | None = None, prefix: str = "") -> None:
    """Add one option per dataclass field; defaults are left as ``SUPPRESS`` so only given options override.

    ``prefix`` (e.g. "car") names the options ``--car-lam`` … for the fields of a component's config.
    """
    group = parser.add_argument_group(title)
    rename = rename or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        option = "--" + (f"{prefix}-" if prefix else "") + rename.get(f.name, f.name).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        constraint = f.metadata.get("constraint")
        help_text = f.metadata.get("help", "")
        if constraint is not None and not isinstance(constraint, (Boolean, Choice)):
            help_text = f"{help_text}; {constraint.describe()}" if help_text else constraint.describe()
        choices = constraint.values if isinstance(constraint, Choice) and all(
            isinstance(v, str) for v in constraint.values) else None
        if default is None and isinstance(constraint, NoneOr):
            default = constraint.word
        if type_name.startswith("tuple"):
            group.add_argument(option, dest=f"{cls.__name__}.{f.name}", type=str, nargs="+", metavar=f.name.upper(),
                               default=argparse.SUPPRESS, help=f"{help_text} (default: {' '.join(default or ())})")
            continue
        convert = _CONVERTERS.get(type_name)
        if isinstance(constraint, NoneOr) and convert is not None and constraint.word != "none":
            convert = _none_or(_CONVERTERS[type_name.replace(" | None", "")], constraint.word)
        if convert is None:
            raise TypeError(f"no command-line converter for field {f.name} of type {type_name}")
        if type_name == "bool":  # a bare --flag means true; --flag false switches a default-on option off
            group.add_argument(option, dest=f"{cls.__name__}.{f.name}", type=convert, nargs="?", const=True,
                               metavar="true|false", default=argparse.SUPPRESS,
                               help=f"{help_text} (default: {default})")
            continue
        group.add_argument(option, dest=f"{cls.__name__}.{f.name}", type=convert, choices=choices,
                           metavar=f.name.upper() if choices is None else "{" + ",".join(choices) + "}",
                           default=argparse.SUPPRESS, help=f"{help_text} (default: {default})")


def given_options(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line (defaults are SUPPRESS, so only those)."""
    prefix = f"{cls.__name__}."
    return {key[len(prefix):]: tuple(value) if isinstance(value, list) else value
            for key, value in vars(args).items() if key.startswith(prefix)}


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the parsed options that belong to it; validation errors become UserError."""
    values = dict(overrides)
    prefix = f"{cls.__name__}."
    for key, value in vars(args).items():
        if key.startswith(prefix):
            field_name = key[len(prefix):]
            values[field_name] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main, turning user errors into one line on stderr and a non-zero exit."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C; a command may say what was kept and how to go on
        print(f"error: {str(exc).strip() or 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, FloatingPointError) as exc:
        # Library validation speaks in one sentence already; keep it to that line.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file system the user pointed at: missing, a file, full, read-only, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or str(exc).splitlines()[0] or type(exc).__name__}{where}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; use a smaller data set, image size, model or batch size", file=sys.stderr)
        return 2


class Heartbeat:
    """What a long command is doing now (``phase``), for the lines :func:`heartbeat` prints."""

    def __init__(self) -> None:
        self.phase = ""


#: seconds between two progress lines of a long command whose output is not a terminal
HEARTBEAT_SECONDS = 10.0


@contextlib.contextmanager
def heartbeat(prog: str, *, enabled: bool = True, every: float | None = None, estimate: str = "",
              stream: Any = None) -> Iterator[Heartbeat]:
    """While the body runs, print ``[prog] still working: <phase>, <t> s elapsed`` every ``every`` seconds when the
    output is not a terminal (a log file, a pipe, CI), where progress bars stay silent; nothing on a terminal."""
    state = Heartbeat()
    stream = sys.stdout if stream is None else stream
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not enabled or interactive:
        yield state
        return
    every = HEARTBEAT_SECONDS if every is None else every
    started = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            phase = f"{state.phase}, " if state.phase else ""
            try:
                print(f"[{prog}] still working: {phase}{time.monotonic() - started:.0f} s elapsed{estimate}",
                      file=stream, flush=True)
            except (ValueError, OSError):  # the stream was closed under us
                return

    thread = threading.Thread(target=beat, name=f"{prog}-heartbeat", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=1.0)


def set_option_help(parser: argparse.ArgumentParser, option: str, text: str) -> None:
    """Replace the help text of ``option`` (e.g. to state a command's own limit beside a generated option)."""
    for action in parser._actions:
        if option in action.option_strings:
            action.help = text
            return
    raise KeyError(option)
