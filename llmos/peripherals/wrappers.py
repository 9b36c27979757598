"""Wrappers: cross-cutting behaviour around any peripheral, instead of flags inside it.

Concept: a wrapper takes a peripheral and is itself a peripheral (``name``, ``limits``,
``examples``, ``syscalls()``, ``call()``), so wrappers compose and the kernel cannot tell them
from a device: ``NeedsApproval(Prefixed(FileSystem(root), "docs_"), ask=confirm)``.

- :class:`ReadOnly` exposes only the syscalls not marked ``sensitive`` (no writes, no code
  execution, no egress) and refuses the others even when called directly.
- :class:`Prefixed` renames every syscall (``fs.read`` → ``docs_fs.read``) so two instances of
  one device, e.g. two folders, can be mounted in one process.
- :class:`NeedsApproval` asks ``ask(syscall, args) -> bool`` before each sensitive syscall (or
  every syscall with ``only_sensitive=False``); a refusal is a ``Fault`` the model reads.

Invariants: a wrapper never changes arguments or results; it only hides, renames or gates
syscalls. The inner device's ``method`` names are kept, so ``call`` passes straight through.

Neighbours: ``llmos.peripherals.base`` (the contract); ``llmos.kernel.policy`` asks its own
``approve`` callback (same signature as ``ask``) for sensitive calls while untrusted text is
resident; this wrapper asks always.
"""

from __future__ import annotations

import dataclasses
import re

from pydantic import BaseModel

from llmos.errors import Fault, UsageError
from llmos.peripherals.base import Approve, Example, Limits, Peripheral, SyscallSpec

__all__ = ["NeedsApproval", "Prefixed", "ReadOnly"]

"""An approval callback: ``ask(syscall_name, args) -> bool``; True lets the call run."""

_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")  # as peripheral names


class _Wrapper(Peripheral):
    """A peripheral that forwards to ``inner``; subclasses hide, rename or gate syscalls."""

    def __init__(self, inner: Peripheral) -> None:
        self.inner = inner
        # name, limits and examples are class attributes on devices; a wrapper takes its
        # inner device's values per instance (setattr: they are ClassVars on Peripheral).
        setattr(self, "name", inner.name)  # noqa: B010
        setattr(self, "limits", inner.limits)  # noqa: B010
        setattr(self, "examples", inner.examples)  # noqa: B010

    @property
    def description(self) -> str:
        """The inner device's description."""
        return self.inner.description

    def open(self) -> None:
        """Open the inner device."""
        self.inner.open()

    def close(self) -> None:
        """Close the inner device."""
        self.inner.close()

    def syscalls(self) -> dict[str, SyscallSpec]:
        """The inner device's syscalls (subclasses filter or rename them)."""
        return self.inner.syscalls()

    def call(self, method: str, args: BaseModel) -> object:
        """Forward the call to the inner device."""
        return self.inner.call(method, args)

    def _spec(self, method: str) -> SyscallSpec:
        for spec in self.syscalls().values():
            if spec.method == method:
                return spec
        raise Fault(f"{self.name!r} has no syscall {method!r} here; use one of: "
                    + ", ".join(sorted(self.syscalls())))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.inner!r}>"


class ReadOnly(_Wrapper):
    """Only the syscalls of ``inner`` that are not marked sensitive (no writes, no execution).

    Args:
        inner: the device to wrap.

    Raises:
        UsageError: every syscall of ``inner`` is sensitive, so nothing would be left.
    """

    def __init__(self, inner: Peripheral) -> None:
        super().__init__(inner)
        if not self.syscalls():
            raise UsageError(
                f"ReadOnly({inner.name!r}) would expose no syscall: all of its syscalls are "
                "sensitive; mount it without ReadOnly, or not at all",
                code="wrapper-empty",
            )
        kept = set(self.syscalls())
        setattr(self, "examples", tuple(  # noqa: B010
            ex for ex in inner.examples if all(name in kept for name, _, _ in ex.calls)
        ))

    def syscalls(self) -> dict[str, SyscallSpec]:
        """The inner device's syscalls that are not sensitive."""
        return {n: s for n, s in self.inner.syscalls().items() if not s.sensitive}

    def call(self, method: str, args: BaseModel) -> object:
        """Forward a non-sensitive call; refuse the others."""
        if not any(s.method == method for s in self.syscalls().values()):
            raise Fault(f"{self.name!r} is mounted read-only: {method!r} is not available")
        return self.inner.call(method, args)


class Prefixed(_Wrapper):
    """``inner`` with ``prefix`` in front of its name and of every syscall name.

    ``Prefixed(FileSystem(root), "docs_")`` turns ``fs.read`` into ``docs_fs.read``.

    Args:
        inner: the device to wrap.
        prefix: letters, digits, ``_``, ``.`` or ``-``, starting with a letter or ``_``.
    """

    def __init__(self, inner: Peripheral, prefix: str) -> None:
        super().__init__(inner)
        if not _PREFIX.match(prefix):
            raise UsageError(
                f"the prefix {prefix!r} must start with a letter or '_' and hold only letters, "
                "digits, '_', '.' or '-'",
                code="peripheral-name",
            )
        self.prefix = prefix
        setattr(self, "name", prefix + inner.name)  # noqa: B010
        setattr(self, "examples", tuple(  # noqa: B010
            Example(
                question=ex.question,
                calls=tuple((prefix + name, args, result) for name, args, result in ex.calls),
                answer=ex.answer,
            )
            for ex in inner.examples
        ))

    def syscalls(self) -> dict[str, SyscallSpec]:
        """The inner device's syscalls, each renamed ``prefix + name``."""
        return {
            self.prefix + name: dataclasses.replace(spec, name=self.prefix + name)
            for name, spec in self.inner.syscalls().items()
        }


class NeedsApproval(_Wrapper):
    """``inner`` whose sensitive syscalls (or all of them) run only if ``ask`` says yes.

    Args:
        inner: the device to wrap.
        ask: called as ``ask(syscall_name, args_dict)`` before a gated call; True runs it.
            Without it every gated call is refused. The same callback works as the kernel
            policy's ``approve``.
        only_sensitive: gate only syscalls marked sensitive (default) or every syscall.
        timeout_s: the call's time limit, approval included (a person may need longer than
            the device's own limit); default: the inner device's limit.
    """

    def __init__(
        self,
        inner: Peripheral,
        *,
        ask: Approve | None = None,
        only_sensitive: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(inner)
        self.ask = ask
        self.only_sensitive = only_sensitive
        if timeout_s is not None:
            setattr(self, "limits", Limits(  # noqa: B010
                timeout_s=timeout_s, max_output_chars=inner.limits.max_output_chars
            ))

    def call(self, method: str, args: BaseModel) -> object:
        """Ask for approval if the syscall is gated, then forward the call."""
        spec = self._spec(method)
        if spec.sensitive or not self.only_sensitive:
            approved = self.ask is not None and bool(self.ask(spec.name, args.model_dump()))
            if not approved:
                raise Fault(
                    f"the user did not approve {spec.name!r}; do not retry it: answer with "
                    "what you have, or say what you would need"
                )
        return self.inner.call(method, args)
