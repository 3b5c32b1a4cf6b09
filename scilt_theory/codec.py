"""The one codec of the typed files (bounds.json, scilt_theory/schema.py; run.pt, scilt_theory/run_record.py).

A file is a tree of frozen dataclasses whose fields carry their help text (:func:`described`). :func:`to_jsonable`
turns any value into plain JSON (the one JSON sanitiser of the package); :func:`decode` reads a plain tree back
into the declared types and refuses a malformed or missing field with one sentence; :func:`layout_text` writes
the documentation of a file from the field help, so the documented layout cannot drift from the code.

Values the codec does not know as JSON (a tensor of run.pt) are declared by their class and kept as they are.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["decode", "described", "hints", "json_key", "layout_text", "nested", "to_jsonable", "type_text"]


def described(help: str, default: Any = dataclasses.MISSING, json_key: str | None = None,
              default_factory: Any = dataclasses.MISSING) -> Any:
    """A field with its help text (the documentation of its file) and, where it differs, its key in the file."""
    metadata = {"help": help, **({"json": json_key} if json_key else {})}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def json_key(f: dataclasses.Field) -> str:
    return f.metadata.get("json", f.name)


def to_jsonable(value: Any) -> Any:
    """A plain-JSON copy of ``value``: dataclasses and objects with ``to_dict`` become objects, tuples lists, numpy
    and torch numbers and arrays Python numbers and lists, non-finite floats ``None``. Anything else is a TypeError
    (it has no place in a JSON file)."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {json_key(f): to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays, tensors
        value = value.tolist()
        if isinstance(value, list):
            return to_jsonable(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"cannot write a {type(value).__name__} into a JSON file")


_HINTS: dict[type, dict[str, Any]] = {}


def hints(cls: type) -> dict[str, Any]:
    """The resolved field types of dataclass ``cls`` (cached)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def decode(tp: Any, data: Any, where: str, error: type[Exception] = ValueError,
           readers: Mapping[type, Callable[[Any], Any]] | None = None) -> Any:
    """``data`` (a plain tree: a JSON document, or run.pt's dictionary) read as type ``tp``; ``where`` names the
    place in the file for the one-sentence ``error``. Unknown fields of a dataclass are refused; a missing field
    takes its declared default, or is refused when it has none. ``readers`` build the types that read themselves
    (the configs in run.pt: ``ModelConfig.from_dict`` ...); their TypeError / ValueError becomes ``error``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if readers and tp in readers:
        try:
            return readers[tp](data)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, error):
                raise
            raise error(f"{where} is malformed: {exc}") from None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return decode(option, data, where, error, readers)
            except error as exc:
                errors.append(str(exc))
        raise error(errors[0] if errors else f"{where} must not be null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise error(f"{where} must be an object, got {type(data).__name__}")
        field_types = hints(tp)
        known = {json_key(f) for f in dataclasses.fields(tp)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise error(f"{where} has unknown field(s) {unknown[:3]}")
        values = {}
        for f in dataclasses.fields(tp):
            key = json_key(f)
            if key not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise error(f"{where} has no {key!r} field")
                continue
            values[f.name] = decode(field_types[f.name], data[key], f"{where}.{key}", error, readers)
        try:
            return tp(**values)
        except (TypeError, ValueError) as exc:
            raise error(f"{where} is malformed: {exc}") from None
    if origin is list:
        if not isinstance(data, list):
            raise error(f"{where} must be a list, got {type(data).__name__}")
        (item,) = typing.get_args(tp) or (Any,)
        return [decode(item, v, f"{where}[{i}]", error, readers) for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise error(f"{where} must be an object, got {type(data).__name__}")
        _, item = typing.get_args(tp) or (str, Any)
        return {k: decode(item, v, f"{where}.{k}", error, readers) for k, v in data.items()}
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)) or not math.isfinite(data):
            raise error(f"{where} must be a finite number, got {data!r}")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise error(f"{where} must be an integer, got {data!r}")
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise error(f"{where} must be true or false, got {data!r}")
        return data
    if tp is str:
        if not isinstance(data, str):
            raise error(f"{where} must be a string, got {data!r}")
        return data
    if isinstance(tp, type):  # a value kept as it is (a tensor of run.pt)
        if not isinstance(data, tp):
            raise error(f"{where} must be a {tp.__name__}, got {type(data).__name__}")
        return data
    raise TypeError(f"type {tp!r} at {where} has no reader")


# ------------------------------------------------------------------------------------- documentation

def type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else type_text(a) for a in typing.get_args(tp))
    if origin is list:
        return f"[{type_text(typing.get_args(tp)[0])}, ...]"
    if origin is dict:
        return f"{{str: {type_text(typing.get_args(tp)[1])}}}"
    plain = {float: "float", int: "int", str: "str", bool: "bool", Any: "any"}
    if tp in plain:
        return plain[tp]
    return tp.__name__ if isinstance(tp, type) else str(tp)


def nested(tp: Any, *, stop: tuple[type, ...] = ()) -> list[type]:
    """The dataclasses a field of type ``tp`` holds (``stop``: documented elsewhere, not expanded)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return [] if tp in stop else [tp]
    if origin is not None:
        return [c for a in typing.get_args(tp) for c in nested(a, stop=stop)]
    return []


def layout_text(root: type, title: str, *, stop: tuple[type, ...] = ()) -> str:
    """The documentation of a file whose top object is ``root``: every dataclass reachable from it, one line per
    field (key, type, help), breadth first."""
    lines = [title, ""]
    seen: list[type] = []
    queue: list[type] = [root]
    while queue:
        cls = queue.pop(0)
        if cls in seen:
            continue
        seen.append(cls)
        lines.append(f"{cls.__name__}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        field_types = hints(cls)
        for f in dataclasses.fields(cls):
            lines.append(f"  {json_key(f)}: {type_text(field_types[f.name])} -- {f.metadata.get('help', '')}")
            queue += [c for c in nested(field_types[f.name], stop=stop) if c not in seen]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
