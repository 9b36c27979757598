"""The syscall table: name → peripheral method, the only place arguments are validated.

A process's table holds the syscalls of the peripherals it may call (its capabilities) plus
the kernel's own (``answer``). ``dispatch`` validates the raw arguments against the syscall's
pydantic model, runs the method under the peripheral's :class:`Limits` and returns a
:class:`Outcome`. Bad arguments and ``Fault``s become faulted outcomes the model reads; a
peripheral that raises anything else is a device bug, reported as a fault too (the kernel
keeps serving) unless ``strict`` asks for a :class:`PeripheralError`.

Trust follows the data, not the type (DESIGN §6): whatever a device returns, its result *and
its faults* are untrusted (they may quote a page, a header, a redirect's target, a file name).
The one exception is a *pure* syscall (``@syscall(pure=True)``: its result is a function of its
arguments alone), whose output is as trusted as the arguments it was given. A validation fault
quotes what the model wrote, so it is as trusted as the call. The kernel's own messages (a
device that crashed) quote nothing from outside and stay trusted.

Neighbours: ``llmos.peripherals.base`` declares the syscalls; ``llmos.kernel.trap`` parses
the model's text into a name and raw arguments; ``llmos.kernel.ground`` builds the grammar.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from llmos.errors import Fault, PeripheralError, SandboxViolation, UsageError
from llmos.kernel.ground import arg_schema
from llmos.peripherals.base import Document, Peripheral, SyscallSpec
from llmos.peripherals.result import render

__all__ = ["ANSWER", "AnswerArgs", "Outcome", "SyscallTable"]

ANSWER = "answer"


class AnswerArgs(BaseModel):
    """Arguments of the kernel's own ``answer`` syscall."""

    text: str = Field(min_length=1, max_length=2000, description="The final answer for the user.")


_ANSWER_SPEC = SyscallSpec(
    name=ANSWER, method="", args=AnswerArgs, doc="Give the final answer and end the turn."
)


@dataclass(frozen=True)
class Outcome:
    """What one dispatched syscall produced.

    Attributes:
        text: the observation the model reads (a result, or the fault's message).
        status: ``ok``, ``fault`` (bad args or a ``Fault`` raised by the device) or ``error``
            (the device broke its contract; the kernel keeps serving).
        source: provenance of ``text``: the peripheral's name, or a URL/path for a Document.
        trusted: True only for text that came from the user or the program: a pure
            syscall's result on trusted arguments, or a kernel message quoting nothing else.
        seconds: wall time of the call.
    """

    text: str
    status: Literal["ok", "fault", "error"]
    source: str
    trusted: bool = False
    seconds: float = 0.0
    truncated: bool = False


class SyscallTable:
    """The syscalls one process may call, and how to dispatch them.

    Args:
        peripherals: the mounted devices this process may call.
        strict: raise :class:`PeripheralError` when a device breaks its contract instead of
            reporting it to the model as a fault.
    """

    def __init__(self, peripherals: Iterable[Peripheral], *, strict: bool = False) -> None:
        self.strict = strict
        self._specs: dict[str, SyscallSpec] = {ANSWER: _ANSWER_SPEC}
        self._owner: dict[str, Peripheral] = {}
        for dev in peripherals:
            for name, spec in dev.syscalls().items():
                if name in self._specs:
                    raise UsageError(
                        f"two peripherals both define the syscall {name!r}; mount one of them, "
                        "or rename one (each syscall name must be unique in a process)",
                        code="syscall-duplicate",
                    )
                arg_schema(spec.args)  # a schema the grammar cannot use fails here, once
                self._specs[name] = spec
                self._owner[name] = dev

    @property
    def specs(self) -> Mapping[str, SyscallSpec]:
        """Every syscall by name, ``answer`` included."""
        return self._specs

    @property
    def peripherals(self) -> list[Peripheral]:
        """The distinct mounted devices, in mount order."""
        seen: dict[int, Peripheral] = {}
        for dev in self._owner.values():
            seen.setdefault(id(dev), dev)
        return list(seen.values())

    def validate(self, name: str, raw: Mapping[str, Any]) -> BaseModel:
        """Validate raw arguments for ``name``; raise :class:`Fault` the model can act on."""
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self._specs))
            raise Fault(f"unknown syscall {name!r}; the syscalls you can call are: {known}")
        try:
            return spec.args.model_validate(dict(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'args'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise Fault(f"bad arguments for {name!r}: {problems}") from None

    def dispatch(
        self, name: str, raw: Mapping[str, Any] | BaseModel, *, trusted_args: bool = False
    ) -> Outcome:
        """Run one syscall under its peripheral's limits.

        ``raw`` is either the model's raw arguments (validated here) or the syscall's own
        argument model, already validated by :meth:`validate` (the instruction cycle validates
        once, then dispatches the model it got). ``trusted_args``: the arguments came from
        trusted text (the model wrote them before it read anything untrusted in this turn);
        only then can a pure syscall's result be trusted.
        """
        start = time.perf_counter()
        dev = self._owner.get(name)
        source = dev.name if dev is not None else "kernel"
        spec = self._specs.get(name)
        vouched = trusted_args and spec is not None and spec.pure
        if spec is not None and isinstance(raw, spec.args):
            args = raw
        elif isinstance(raw, BaseModel):
            raise UsageError(
                f"{name!r} takes {spec.args.__name__ if spec else 'no'} arguments, "
                f"not a {type(raw).__name__}"
            )
        else:
            try:
                args = self.validate(name, raw)
            except Fault as fault:  # quotes the arguments: as trusted as they are
                return Outcome(fault.message, "fault", source, trusted=trusted_args,
                               seconds=time.perf_counter() - start)
        try:
            if dev is None:  # kernel syscalls are handled by the kernel, not here
                raise UsageError(f"{name!r} is a kernel syscall, not a device call")
            result = _run_limited(dev, self._specs[name].method, args)
        except Fault as fault:
            return Outcome(fault.message, "fault", source, trusted=vouched,
                           seconds=time.perf_counter() - start)
        except SandboxViolation as exc:
            if self.strict:
                raise
            return Outcome(str(exc), "fault", source, trusted=vouched,
                           seconds=time.perf_counter() - start)
        except UsageError:
            raise
        except Exception as exc:
            if self.strict:
                raise PeripheralError(
                    f"peripheral {source!r} crashed in {name!r}: {exc!r}"
                ) from exc
            return Outcome(  # a kernel message: the device's name and a class name from code
                f"the device {source!r} failed ({type(exc).__name__}); try another approach",
                "error",
                source,
                trusted=True,
                seconds=time.perf_counter() - start,
            )
        try:
            text, is_data = _render(result)
        except PeripheralError as exc:  # a value no syscall may return: the model is told
            if self.strict:
                raise
            return Outcome(  # a kernel message: the device's name and a type's name
                f"the device {source!r} returned something that cannot be shown ({exc}); "
                "try another approach",
                "error",
                source,
                trusted=True,
                seconds=time.perf_counter() - start,
            )
        trusted = vouched and not is_data
        if isinstance(result, Document):
            source = result.source
        cap = dev.limits.max_output_chars
        truncated = len(text) > cap
        if truncated:
            text = text[:cap] + f"\n[cut: output exceeded {cap} characters]"
        return Outcome(
            text, "ok", source, trusted=trusted, seconds=time.perf_counter() - start,
            truncated=truncated,
        )


def _render(result: object) -> tuple[str, bool]:
    """The text of a result, and whether it is a ``Document`` (outside text by declaration)."""
    shown = render(result)
    if isinstance(shown, Document):
        return shown.text, True
    return shown, False


# One shared pool for in-process devices: a call that overruns its deadline is abandoned
# (Python cannot kill a thread); devices that run hostile code use a subprocess instead.
_POOL = cf.ThreadPoolExecutor(max_workers=8, thread_name_prefix="llmos-device")


def _run_limited(dev: Peripheral, method: str, args: BaseModel) -> object:
    future = _POOL.submit(dev.call, method, args)
    try:
        return future.result(timeout=dev.limits.timeout_s)
    except cf.TimeoutError:
        future.cancel()
        raise SandboxViolation(
            f"the device {dev.name!r} took longer than {dev.limits.timeout_s:g} s and was "
            "stopped; try a smaller request"
        ) from None


def format_call(name: str, args: Mapping[str, Any]) -> str:
    """The canonical JSON text of a call, as the model writes it in the transcript."""
    return json.dumps({"syscall": name, "args": dict(args)}, ensure_ascii=False)
