"""Peripherals: the devices a process may call, declared as pydantic schemas.

A peripheral is a class with a ``name``, a docstring the model reads, declared ``limits`` and
one or more ``@syscall`` methods. Each syscall takes exactly one pydantic model and returns what
a Python author would return (``str``, numbers, lists and dicts, dataclasses, pydantic models;
see ``llmos.peripherals.result``) or a :class:`Document` (text read from outside, with its
source as provenance). Whatever the type, a device's output enters RAM as *untrusted*: it did
not come from the user or the program. Only a syscall declared ``pure`` (its result is a
function of its arguments alone, like the calculator's) returns trusted text, and only when
every argument came from trusted text. The schema the model decodes under comes from the
argument model only; invalid arguments never reach the method (the kernel's syscall table
validates them and turns errors into a :class:`~llmos.errors.Fault`).

Invariants:
- a syscall's full name is ``"<peripheral>.<method>"``, or just ``"<peripheral>"`` for a
  peripheral built from one function (``@peripheral``), and is unique within a process;
- peripherals hold no global state: paths, hosts and secrets come through ``__init__``;
- cross-cutting behaviour comes from wrappers (``ReadOnly``, ``NeedsApproval``), not flags.

Neighbours: ``llmos.kernel.syscall`` dispatches into these methods under ``limits``;
``llmos.kernel.ground`` reads the ``grounded`` marks when it builds the decoding grammar.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, TypeVar, cast, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, create_model

from llmos.errors import Fault, UsageError
from llmos.peripherals.result import Document, check_returns

__all__ = [
    "Approve",
    "Document",
    "Example",
    "Fault",
    "Limits",
    "Peripheral",
    "SyscallSpec",
    "discover",
    "free_text",
    "grounded",
    "peripheral",
    "quote",
    "syscall",
]

GroundKind = Literal["numbers", "url", "path", "text", "free"]
GROUNDED_KEY = "x-llmos-grounded"

Approve = Callable[[str, Mapping[str, Any]], bool]
"""Asks a person whether a sensitive call may run: ``(syscall name, arguments) -> yes``.

The one approval callback of llmos: ``Policy(approve=...)`` and ``NeedsApproval(ask=...)``."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Limits:
    """What the kernel enforces around every call into a peripheral.

    Attributes:
        timeout_s: wall-clock seconds a call may take before it becomes a fault.
        max_output_chars: longer results are cut and marked as cut (characters, not tokens).
    """

    timeout_s: float = 10.0
    max_output_chars: int = 4000


@dataclass(frozen=True)
class Example:
    """One worked example a peripheral ships for the model: a question and the calls it takes.

    ``calls`` is a list of ``(syscall, args, result)``; the final answer is ``answer``.
    """

    question: str
    calls: tuple[tuple[str, Mapping[str, Any], str], ...]
    answer: str


@dataclass(frozen=True)
class SyscallSpec:
    """One syscall as the kernel sees it: its name, argument model and documentation."""

    name: str
    method: str
    args: type[BaseModel]
    doc: str
    sensitive: bool = False
    pure: bool = False
    returns_document: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


_F = TypeVar("_F", bound=Callable[..., Any])


@overload
def syscall(fn: _F, *, sensitive: bool = False, pure: bool = False) -> _F: ...
@overload
def syscall(
    fn: None = None, *, sensitive: bool = False, pure: bool = False
) -> Callable[[_F], _F]: ...
def syscall(fn: _F | None = None, *, sensitive: bool = False, pure: bool = False) -> Any:
    """Mark a peripheral method as a syscall.

    The method takes ``self`` and one pydantic model and returns ``str``, a number, a bool,
    ``None``, a list or dict of those, a dataclass, a pydantic model or a :class:`Document`.
    Its docstring's first line is shown to the model.

    Args:
        fn: the method (when used as ``@syscall`` without parentheses).
        sensitive: the call writes, executes code or sends data out; while untrusted pages are
            resident, the kernel's policy decides whether it may run.
        pure: the result is a function of the arguments alone (no file, network, clock or
            other outside input), so it is as trusted as they are: trusted when every argument
            came from trusted text, untrusted otherwise. Every other syscall's result, fault
            included, is untrusted. A ``Document`` result is always untrusted.
    """

    def mark(f: _F) -> _F:
        # refuse an unshowable return type now; names not yet defined wait for mount
        with contextlib.suppress(NameError):
            check_returns(get_type_hints(f).get("return"), f.__qualname__)
        f.__llmos_syscall__ = {"sensitive": sensitive, "pure": pure}  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def grounded(kind: GroundKind, default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic ``Field`` whose value must be built from what trusted pages say.

    At decode time the kernel narrows this string field's grammar to values that occur in the
    process's trusted resident pages: ``"numbers"`` allows only numbers that occur there, joined
    by arithmetic operators; ``"url"`` and ``"path"`` allow only URLs or paths written there;
    ``"text"`` allows only words that occur there. It is a reliability lever for small models
    and a security wall: injected text cannot make the model invent a target. With
    ``Params.ground_values`` (the default) every string, integer and number argument is
    grounded this way unless it is declared with :func:`free_text`.
    """
    extra = dict(kwargs.pop("json_schema_extra", None) or {})
    extra[GROUNDED_KEY] = kind
    return Field(default, json_schema_extra=extra, **kwargs)


def free_text(default: Any = ..., **kwargs: Any) -> Any:
    """A pydantic ``Field`` the model writes freely: program code, a file's new content.

    Opts the field out of value grounding (``Params.ground_values``), which otherwise limits a
    string argument to words of the conversation.
    """
    return grounded("free", default, **kwargs)


class Peripheral:
    """Base class of every device.

    Subclasses set ``name`` and define ``@syscall`` methods. ``open`` and ``close`` are no-ops
    unless overridden; the kernel calls them when it mounts and unmounts the device.
    """

    # class attributes that an instance may override (a wrapper, or limits set in __init__)
    name: str = ""
    limits: Limits = Limits()
    examples: tuple[Example, ...] = ()

    def open(self) -> None:
        """Acquire resources (no-op by default)."""

    def close(self) -> None:
        """Release resources (no-op by default)."""

    @property
    def description(self) -> str:
        """The first paragraph of the class docstring, shown to the model."""
        return _first_paragraph(type(self).__doc__ or self.name)

    def syscalls(self) -> dict[str, SyscallSpec]:
        """Every syscall of this device, by full name."""
        if not self.name or not _NAME.match(self.name):
            raise UsageError(
                f"peripheral {type(self).__name__} needs a class attribute `name` made of "
                f"letters, digits, '_', '.', '-' (got {self.name!r})",
                code="peripheral-name",
            )
        specs: dict[str, SyscallSpec] = {}
        for attr, fn in _syscall_methods(type(self)):
            spec = _spec_for(fn, full_name=f"{self.name}.{attr}", method=attr)
            specs[spec.name] = spec
        if not specs:
            raise UsageError(
                f"peripheral {self.name!r} has no @syscall methods", code="peripheral-empty"
            )
        return specs

    def call(self, method: str, args: BaseModel) -> object:
        """Invoke ``method`` with already validated ``args`` (the kernel does the validating).

        The kernel renders the result (``llmos.peripherals.result.render``).
        """
        return getattr(self, method)(args)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _syscall_methods(cls: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if attr in seen:
                continue
            seen.add(attr)
            if callable(value) and hasattr(value, "__llmos_syscall__"):
                yield attr, value


def _first_paragraph(doc: str) -> str:
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _spec_for(fn: Callable[..., Any], *, full_name: str, method: str) -> SyscallSpec:
    hints = get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    if len(params) != 1:
        raise UsageError(
            f"syscall {full_name!r} must take exactly one pydantic model argument "
            f"(it takes {len(params)})",
            code="syscall-signature",
        )
    args = hints.get(params[0].name)
    if not (isinstance(args, type) and issubclass(args, BaseModel)):
        raise UsageError(
            f"syscall {full_name!r}: its argument must be annotated with a pydantic model",
            code="syscall-signature",
        )
    ret = hints.get("return")
    check_returns(ret, full_name)
    mark = getattr(fn, "__llmos_syscall__", {})
    return SyscallSpec(
        name=full_name,
        method=method,
        args=args,
        doc=_first_paragraph(fn.__doc__ or full_name),
        sensitive=bool(mark.get("sensitive", False)),
        pure=bool(mark.get("pure", False)) and ret is not Document,
        returns_document=ret is Document,
    )


class _FunctionPeripheral(Peripheral):
    """A peripheral made from one typed function by :func:`peripheral`."""

    _fn: ClassVar[Callable[..., Any]]
    _args: ClassVar[type[BaseModel]]
    _sensitive: ClassVar[bool] = False
    _pure: ClassVar[bool] = False

    def syscalls(self) -> dict[str, SyscallSpec]:
        return {
            self.name: SyscallSpec(
                name=self.name,
                method="__call_function__",
                args=self._args,
                doc=self.description,
                sensitive=self._sensitive,
                pure=self._pure,
            )
        }

    def call(self, method: str, args: BaseModel) -> object:
        fn = type(self)._fn
        values = {k: getattr(args, k) for k in type(args).model_fields}
        return fn(**values)


def peripheral(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    limits: Limits | None = None,
    sensitive: bool = False,
    pure: bool = False,
) -> Any:
    """Turn a typed function into a peripheral class with one syscall named after it.

    Parameters become the fields of the argument model (their annotations and defaults; use
    ``Annotated[int, Field(description=...)]`` to document one). The docstring's first
    paragraph is what the model reads.

    ```python
    @peripheral
    def weather(city: str) -> str:
        \"\"\"Today's weather in a city.\"\"\"
        return f"Sunny in {city}"

    kernel = Kernel(peripherals=[weather()])
    ```
    """

    def build(f: Callable[..., Any]) -> type[Peripheral]:
        hints = get_type_hints(f, include_extras=True)
        check_returns(hints.get("return"), f.__name__)
        fields: dict[str, Any] = {}
        for p in inspect.signature(f).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise UsageError(
                    f"@peripheral {f.__name__!r}: *args and **kwargs cannot become a schema",
                    code="syscall-signature",
                )
            if p.name not in hints:
                raise UsageError(
                    f"@peripheral {f.__name__!r}: parameter {p.name!r} needs a type annotation",
                    code="syscall-signature",
                )
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (hints[p.name], default)
        words = re.split(r"[^A-Za-z0-9]", f.__name__)
        model_name = "".join(w.title() for w in words) + "Args"
        args = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
        attrs: dict[str, Any] = {
            "name": name or f.__name__,
            "__doc__": f.__doc__ or (name or f.__name__),
            "_fn": staticmethod(f),
            "_args": args,
            "_sensitive": sensitive,
            "_pure": pure,
            "__module__": f.__module__,
        }
        if limits is not None:
            attrs["limits"] = limits
        cls = type(model_name.removesuffix("Args") or "Function", (_FunctionPeripheral,), attrs)
        return cast(type[Peripheral], cls)

    return build(fn) if fn is not None else build


def quote(text: object, limit: int = 120) -> str:
    """Outside text (a header, a redirect's URL, a file name, an error) ready for a message.

    One line (``repr``: newlines, control, bidi and other invisible characters come out as
    escapes), in quotes, at most ``limit`` characters of the original; a longer text is cut and
    its length said. Use it for every piece of a :class:`Fault` that did not come from the
    program or the model's own arguments, so the message cannot start a line of its own or
    grow without bound.
    """
    s = str(text)
    if len(s) <= limit:
        return repr(s)
    return f"{s[:limit]!r}... ({len(s)} characters)"


ENTRY_POINT_GROUP = "llmos.peripherals"


def discover() -> dict[str, type[Peripheral]]:
    """Peripheral classes registered by installed packages under ``llmos.peripherals``.

    A plugin that fails to import is skipped rather than taking the kernel down; its error is
    reported by ``llmos peripherals``.
    """
    found: dict[str, type[Peripheral]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception:  # a broken plugin must not stop the others
            continue
        if isinstance(obj, type) and issubclass(obj, Peripheral):
            found[ep.name] = obj
    return found


def discovery_errors() -> dict[str, str]:
    """Plugins under ``llmos.peripherals`` that failed to load, with the reason."""
    errors: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not (isinstance(obj, type) and issubclass(obj, Peripheral)):
            errors[ep.name] = f"{ep.value} is not a Peripheral subclass"
    return errors
