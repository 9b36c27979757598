"""The python peripheral's worker: one process, one program, one JSON reply.

The kernel starts this file as ``python -I -B _pyworker.py <config-json>`` with an empty
environment, an empty temporary working directory, no inherited descriptors and its own
session. Before it reads a byte of untrusted code the worker walls itself in:

1. it leaves the host's network (a new network namespace holding only a downed loopback) and,
   when it runs as root, drops to ``nobody`` so that process limits and file permissions bite;
2. it sets its rlimits, soft = hard: CPU seconds, address space, open files, file size 0,
   core 0, and no new processes or threads;
3. only then it reads the code from stdin, compiles it with RestrictedPython (a program too
   large or too deep to compile fails here, not in the kernel), runs it, and writes one JSON
   object to stdout: ``{"status": "ok", "output", "value"}`` or ``{"status": "error",
   "kind", "message", "output"}``. Text fields are capped at ``max_output_chars``.

Inside, the program sees RestrictedPython's guarded builtins plus a few pure ones, imports
only read-only copies of allowlisted pure modules (public, non-module names only), and every
attribute read goes through :func:`_guarded_getattr` (no ``_`` names, no frame/code/generator
internals, no ``format``/``format_map`` on any object, never a module, frame, code object or
traceback), and ``setattr``/``delattr`` refuse ``_`` names on every object. Attribute names
given as strings must be plain ``str`` (a subclass could lie to the checks).

This file must not import ``llmos``: it runs in a bare interpreter, and it is the only code
that shares a process with untrusted input. Neighbour: ``llmos.peripherals.python`` (the
kernel side: spawning, deadline, reply parsing).
"""

from __future__ import annotations

import ast
import builtins as _builtins
import collections
import contextlib
import ctypes
import datetime
import decimal
import fractions
import importlib
import itertools
import json
import math
import operator
import os
import random
import re
import resource
import statistics
import string
import sys
import types
from collections.abc import Callable
from typing import Any

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_delattr,
    guarded_iter_unpack_sequence,
    guarded_setattr,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

# Helpers C code imports lazily through the caller's __import__ (datetime's strptime and
# strftime), with an empty *list* as fromlist: sandboxed `import x` / `from x import y` pass
# None / a tuple, so `import time` stays refused (and modules are opaque to _guarded_getattr).
_INTERNAL = {name: importlib.import_module(name) for name in ("_strptime", "time")}
# Modules the allowlisted ones import lazily (Counter.most_common needs heapq, re needs
# unicodedata for \N{...}): after the uid drop the interpreter may not be able to read its
# own library, so load them while it still can.
for _lazy in ("heapq", "copy", "unicodedata", "time", "warnings"):
    importlib.import_module(_lazy)

FILENAME = "<code>"
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4

MODULES: dict[str, types.ModuleType] = {
    m.__name__: m
    for m in (math, statistics, fractions, decimal, itertools, json, re, datetime,
              collections, random)
}
# Public names that would hand sandboxed code a C-level getattr or a host handle.
_DENIED_NAMES = frozenset({"attrgetter", "methodcaller", "SystemRandom"})
_DENIED_ATTRS = INSPECT_ATTRIBUTES
# Methods that read attributes named inside a string (``'{0.__class__}'.format(x)``): denied
# by name on every object, since wrappers (UserString) and subclasses hand out the real ones.
_FORMAT_NAMES = frozenset({"format", "format_map", "vformat"})
_OPAQUE = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)


class _Refused(Exception):
    """Sandboxed code asked for something the walls do not allow."""


class _Denied(AttributeError):
    """An attribute the sandbox never hands out."""


class _OutputFull(BaseException):
    """The program printed more than the cap (a BaseException so a bare except rarely eats it)."""


# --- walls ------------------------------------------------------------------------------


def _wall_in(cfg: dict[str, Any]) -> dict[str, bool]:
    """Leave the network, drop root, set rlimits; report which walls hold."""
    libc = ctypes.CDLL(None, use_errno=True)
    walls = {"network": False, "user": os.geteuid() != 0, "nproc": False}
    if cfg.get("isolate_network", True):
        flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
        walls["network"] = libc.unshare(flags) == 0
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.setgroups([])
            os.setgid(65534)  # nobody / nogroup
            os.setuid(65534)
            walls["user"] = True
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    cpu = max(1, math.ceil(float(cfg["cpu_s"])))
    mem = int(cfg["memory_mb"]) * 1024 * 1024
    for res, value in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_NOFILE, 16),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),  # no fork, no threads; root ignores it (hence the uid drop)
    ):
        resource.setrlimit(res, (value, value))
    walls["nproc"] = os.geteuid() != 0
    return walls


# --- what sandboxed code sees --------------------------------------------------------------


class _Module:
    """A read-only copy of an allowlisted module's public, non-module names."""

    def __init__(self, module: types.ModuleType) -> None:
        names = getattr(module, "__all__", None) or [n for n in dir(module) if n[:1] != "_"]
        public = {
            n: getattr(module, n)
            for n in names
            if n[:1] != "_" and n not in _DENIED_NAMES and hasattr(module, n)
            and not isinstance(getattr(module, n), types.ModuleType)
        }
        object.__setattr__(self, "_name", module.__name__)
        object.__setattr__(self, "_public", public)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_public")[name]
        except KeyError:
            raise AttributeError(f"module {self._name!r} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError(f"module {self._name!r} is read-only")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"module {self._name!r} is read-only")

    def __dir__(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_public"))

    def __repr__(self) -> str:
        return f"<module {self._name!r}>"


def _plain_name(name: object) -> str:
    """An attribute name as sandboxed code gave it, refused unless it is a plain ``str``."""
    if type(name) is not str:  # a str subclass could lie in startswith() or __eq__
        raise TypeError("attribute names must be plain strings")
    return name


def _guarded_getattr(obj: object, name: object, *default: object) -> Any:
    """Every attribute read of sandboxed code, and its ``getattr``."""
    name = _plain_name(name)
    if (
        name.startswith("_")
        or name in _DENIED_ATTRS
        or (name == "mro" and isinstance(obj, type))
        or (name == "obj" and isinstance(obj, BaseException))  # AttributeError.obj
    ):
        raise _Denied(f"access to the attribute {name!r} is not allowed in the sandbox")
    if name in _FORMAT_NAMES:  # on every object: UserString, a str subclass, a Formatter...
        raise _Denied(
            f"the {name!r} method is not allowed in the sandbox (format strings can read "
            "attributes); use f-strings or %"
        )
    if isinstance(obj, string.Formatter) or (
        isinstance(obj, type) and issubclass(obj, string.Formatter)
    ):
        raise _Denied("string.Formatter is not allowed in the sandbox")
    if isinstance(obj, _OPAQUE):
        raise _Denied("attributes of modules, frames and code are not allowed in the sandbox")
    try:
        value = getattr(obj, name)
    except AttributeError:
        if default:
            return default[0]
        # A fresh error: the original's .obj could carry the object it failed on.
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}") from None
    if isinstance(value, _OPAQUE):
        raise _Denied(f"the attribute {name!r} is not allowed in the sandbox")
    return value


def _guarded_setattr(obj: object, name: object, value: object) -> None:
    """``setattr`` of sandboxed code: no private or dunder names on any object (a dunder set
    by string installs a hook C code calls, e.g. ``__exit__`` gets a traceback, or swaps
    ``__class__``); the write guard then decides which objects are writable."""
    name = _plain_name(name)
    if name.startswith("_"):
        raise _Denied(f"setting the attribute {name!r} is not allowed in the sandbox")
    guarded_setattr(obj, name, value)  # type: ignore[no-untyped-call]


def _guarded_delattr(obj: object, name: object) -> None:
    """``delattr`` of sandboxed code: no private or dunder names on any object."""
    name = _plain_name(name)
    if name.startswith("_"):
        raise _Denied(f"deleting the attribute {name!r} is not allowed in the sandbox")
    guarded_delattr(obj, name)  # type: ignore[no-untyped-call]


def _guarded_hasattr(obj: object, name: object) -> bool:
    try:
        _guarded_getattr(obj, name)
    except _Denied:
        raise
    except AttributeError:
        return False
    return True


def _sandbox_class(name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any) -> type:
    ns["_guarded_writes"] = True  # instances of the program's own classes are writable
    return type(name, bases, ns, **kw)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    return _INPLACE[op](x, y)


def _apply(f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    return f(*a, **kw)


def _importer(modules: dict[str, _Module]) -> Callable[..., _Module]:
    allowed = ", ".join(sorted(modules))

    def _import(name: str, globals: object = None, locals: object = None,
                fromlist: object = (), level: int = 0) -> _Module:
        if level != 0:
            raise ImportError("relative imports are not allowed in the sandbox")
        if name in _INTERNAL and type(fromlist) is list and not fromlist:  # C code, lazily
            return _INTERNAL[name]  # type: ignore[return-value]
        if name not in modules:
            raise ImportError(f"import of {name!r} is not allowed; you can import: {allowed}")
        return modules[name]

    return _import


class _Sink:
    """Where every print of one run goes, capped (functions get their own collectors)."""

    def __init__(self, cap: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.cap = cap
        self.full = False

    def write(self, text: str) -> None:
        if self.full or self.size + len(text) > self.cap:
            self.full = True
            raise _OutputFull
        self.parts.append(text)
        self.size += len(text)


def _collector(sink: _Sink) -> type[PrintCollector]:
    class Collector(PrintCollector):
        def __init__(self, _getattr_: object = None) -> None:
            self._getattr_ = _getattr_
            self.txt = sink.parts

        def write(self, text: str) -> None:
            sink.write(str(text))

    return Collector


_EXTRA_BUILTINS = (
    "all", "any", "bin", "bytes", "dict", "enumerate", "filter", "format", "frozenset",
    "iter", "list", "map", "max", "min", "next", "reversed", "set", "sorted", "sum",
    "tuple", "zip", "classmethod", "staticmethod", "property", "object", "bytearray",
)


def _globals(cfg: dict[str, Any], sink: _Sink) -> dict[str, Any]:
    random.seed(cfg.get("seed", 0))
    modules = {name: _Module(mod) for name, mod in MODULES.items()}
    builtins = dict(safe_builtins)
    builtins.update({n: getattr(_builtins, n) for n in _EXTRA_BUILTINS})
    builtins.update(__import__=_importer(modules), getattr=_guarded_getattr,
                    hasattr=_guarded_hasattr, setattr=_guarded_setattr,
                    delattr=_guarded_delattr, _getattr_=_guarded_getattr)
    collector = _collector(sink)
    return {
        "__builtins__": builtins,
        "__name__": "sandbox",
        "__metaclass__": _sandbox_class,
        "_getattr_": _guarded_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,  # dicts, lists, the program's own classes; else TypeError
        "_inplacevar_": _inplacevar,
        "_apply_": _apply,
        "_print_": collector,
        "_print": collector(),
    }


# --- compile, run, reply ------------------------------------------------------------------


def _compile(code: str) -> tuple[types.CodeType, types.CodeType | None]:
    """The program without its last expression, and that expression (a REPL's echo)."""
    tree = ast.parse(code, FILENAME, "exec")
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(body=tree.body[-1].value)
        del tree.body[-1]
    body = compile_restricted_exec(tree, FILENAME)
    if body.errors or body.code is None:
        raise _Refused("; ".join(body.errors))
    if last is None:
        return body.code, None
    tail = compile_restricted_eval(last, FILENAME)
    if tail.errors or tail.code is None:
        raise _Refused("; ".join(tail.errors))
    return body.code, tail.code


def _line(exc: BaseException) -> str:
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except BaseException:
        text = ""
    name = next(c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_"))
    return f"{name}: {text}" if text else name


def _run(code: str, cfg: dict[str, Any]) -> dict[str, Any]:
    cap = int(cfg["max_output_chars"])
    try:
        body, tail = _compile(code)
    except SyntaxError as exc:
        return _error("syntax", f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})")
    except _Refused as exc:
        return _error("refused", f"the sandbox refused this code: {exc}")
    except (RecursionError, MemoryError) as exc:
        return _error("compile", f"the code is too large or too deeply nested to compile "
                                 f"({type(exc).__name__})")
    sink = _Sink(cap)
    env = _globals(cfg, sink)
    reserve: bytearray | None = bytearray(4 * 1024 * 1024)  # freed to report a MemoryError
    value_text: str | None = None
    try:
        exec(body, env)
        if tail is not None:
            value = eval(tail, env)
            if value is not None:
                value_text = repr(value)
    except _OutputFull:
        pass
    except MemoryError:
        reserve = None
        env.clear()
        return _error("memory", "", output="".join(sink.parts))
    except RecursionError as exc:
        return _error("recursion", f"RecursionError{_line(exc)}", output="".join(sink.parts))
    except ImportError as exc:
        return _error("import", f"ImportError: {exc}{_line(exc)}", output="".join(sink.parts))
    except BaseException as exc:
        return _error("runtime", _describe(exc)[:500] + _line(exc), output="".join(sink.parts))
    del reserve
    output = "".join(sink.parts)
    if sink.full:
        return _error("output", "", output=output)
    truncated = value_text is not None and len(value_text) > cap
    if value_text is not None and truncated:
        value_text = value_text[:cap]
    return {"status": "ok", "output": output, "value": value_text, "truncated": truncated}


def _error(kind: str, message: str, *, output: str = "") -> dict[str, Any]:
    return {"status": "error", "kind": kind, "message": message, "output": output}


def main() -> None:
    """Wall in, read the program from stdin, run it, write one JSON reply, exit."""
    cfg = json.loads(sys.argv[1])
    walls = _wall_in(cfg)
    raw = sys.stdin.buffer.read(int(cfg["max_code_chars"]) * 4 + 1)
    sys.stdin.close()
    try:
        reply = _run(raw.decode("utf-8", "replace"), cfg)
    except MemoryError:
        reply = _error("memory", "")
    reply["walls"] = walls
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: nothing the program left behind runs after this


if __name__ == "__main__":
    main()
