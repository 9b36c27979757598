"""Results: what a syscall may return, and the text the model reads for it.

A device returns what a Python author would return: ``str``, a number, a ``bool``, ``None``,
lists and dicts of those, a dataclass, a pydantic model, or a :class:`Document` (text read
from outside, with its source). :func:`render` turns any of them into one observation: a
string as it is, everything else as compact JSON (what the model reads in worked examples).

Two checks keep a device's return value from taking the kernel down:
- at declaration, :func:`check_returns` refuses a return annotation that can never be shown
  (``bytes``, a set, a socket...) with a :class:`~llmos.errors.UsageError` naming the function;
- at run time, :func:`render` raises :class:`~llmos.errors.PeripheralError` for a value it
  cannot show; the syscall table turns that into a fault the model reads.

Rendering says nothing about trust: the syscall table decides that from where the text came.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel

from llmos.errors import PeripheralError, UsageError

__all__ = ["Document", "check_returns", "render"]

RETURNS = (
    "str, a number, a bool, None, a list or dict of those, a dataclass, a pydantic model or "
    "a Document"
)


@dataclass(frozen=True)
class Document:
    """Text a peripheral read from outside the process (a web page, a file).

    The kernel stores it in RAM as an *untrusted* page whose provenance is ``source``.
    """

    text: str
    source: str


def render(value: object) -> str | Document:
    """The observation for a syscall's return value: a Document stays one, the rest is text.

    Raises:
        PeripheralError: the value (or something inside it) is none of the types a syscall
            may return.
    """
    if isinstance(value, Document | str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(_plain(value, "the result"), ensure_ascii=False)


def _plain(value: object, where: str) -> Any:
    """``value`` as plain JSON data, or PeripheralError naming what is not."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Document):  # outside text keeps its own page, never inside JSON
        raise PeripheralError(f"{where} holds a Document; a Document must be returned alone")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise PeripheralError(
                    f"{where} is a dict with a {type(key).__name__} key; a syscall may return "
                    f"dicts with str keys only ({RETURNS})"
                )
            out[key] = _plain(v, f"{where}[{key!r}]")
        return out
    raise PeripheralError(f"{where} is a {type(value).__name__}; a syscall may return {RETURNS}")


def check_returns(annotation: Any, where: str) -> None:
    """Refuse a declared return type that :func:`render` could never show.

    ``Any``, ``object`` and a missing annotation pass: the value is checked when it comes.

    Raises:
        UsageError: naming ``where`` (the function) and the type.
    """
    if not _renderable(annotation, top=True):
        raise UsageError(
            f"{where!r} is declared to return {_name(annotation)}, which llmos cannot show to "
            f"the model; return {RETURNS}",
            code="syscall-return",
        )


def _renderable(tp: Any, *, top: bool = False) -> bool:
    """Can values of type ``tp`` be rendered? A Document only as the whole result (``top``)."""
    if tp in (None, type(None), Any, object, str, int, float, bool) or isinstance(tp, TypeVar):
        return True
    if tp is Document:
        return top
    if isinstance(tp, type) and (issubclass(tp, BaseModel) or dataclasses.is_dataclass(tp)):
        return True
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _renderable(args[0], top=top)
    if origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return all(_renderable(a, top=top) for a in args)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return not args or (args[0] in (str, Any) and _renderable(args[1]))
    if isinstance(origin, type) and issubclass(origin, Sequence) and origin not in (str, bytes):
        return all(_renderable(a) for a in args if a is not Ellipsis)
    return tp in (list, dict, tuple)


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)
