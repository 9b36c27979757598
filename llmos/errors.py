"""Every exception llmos raises, in two families.

Errors are for the program that uses llmos; a :class:`Fault` is for the model.

```
LLMOSError               base class; users may catch only this
├── UsageError           programmer misuse; .code names a section of docs/errors.md
├── CPUError             backend failed; original exception kept as __cause__
│   └── ContextOverflow  prompt cannot fit even after evicting all evictable pages
├── DiskError            vector store failed
├── PeripheralError      peripheral crashed or broke its contract
│   └── SandboxViolation exceeded its Limits (time, output size, denied path or host)
└── RunError             a run could not finish
    ├── StepLimitExceeded    the process used its steps without answering
    └── QuotaExceeded        a per-process quota ran out (names the quota)
Fault(Exception)         raised *for the model*: becomes an observation, never escapes run()
```

Constructing an exception never logs. Messages say what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.trace import Event

__all__ = [
    "CPUError",
    "ContextOverflow",
    "DiskError",
    "Fault",
    "LLMOSError",
    "PeripheralError",
    "QuotaExceeded",
    "RunError",
    "SandboxViolation",
    "StepLimitExceeded",
    "UsageError",
]


class LLMOSError(Exception):
    """Base class of every error llmos raises to the program that uses it."""


class UsageError(LLMOSError):
    """The library was used in a way it does not support.

    Attributes:
        code: a short slug; `docs/errors.md#<code>` explains the fix.
    """

    def __init__(self, message: str, *, code: str = "usage") -> None:
        super().__init__(message)
        self.code = code


class CPUError(LLMOSError):
    """The CPU backend (the model) failed; the original error is the ``__cause__``."""


class ContextOverflow(CPUError):
    """The prompt cannot fit in the context window even after evicting every evictable page."""


class DiskError(LLMOSError):
    """The disk (the vector store) failed or holds something unreadable."""


class PeripheralError(LLMOSError):
    """A peripheral crashed or broke its contract (a bug in the device, not the model's fault)."""


class SandboxViolation(PeripheralError):
    """A peripheral exceeded its declared limits (time, output size, a denied path or host)."""


class RunError(LLMOSError):
    """A run could not finish; ``trace`` holds what happened until then."""

    def __init__(self, message: str, *, trace: list[Event] | None = None) -> None:
        super().__init__(message)
        self.trace: list[Event] = list(trace or [])


class StepLimitExceeded(RunError):
    """The process used all of its steps without calling ``answer``."""


class QuotaExceeded(RunError):
    """A per-process quota (steps, decoded tokens, device calls, wall time) ran out.

    Attributes:
        quota: the name of the quota that ran out, e.g. ``"max_device_calls"``.
    """

    def __init__(self, message: str, *, quota: str, trace: list[Event] | None = None) -> None:
        super().__init__(message, trace=trace)
        self.quota = quota


class Fault(Exception):
    """Raised for the model: the kernel turns it into an observation the model reads.

    A peripheral raises ``Fault("...")`` to say what went wrong and how to do better
    ("division by zero; check the divisor"). It never escapes ``Kernel.run``.
    """

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
