"""A process: one agent, with its program, capabilities, RAM, quota and counters.

A process is created by ``Kernel.spawn`` and run by ``Kernel.run`` (alone) or
``Kernel.run_all`` (time-shared with others). Its capabilities are the syscall table it was
given (it can decode no other call); its RAM holds the header and the journal; its quota
bounds what one run may spend; its stats count what it cost.

States: ``ready`` → ``running`` → (``waiting`` on a device → ``ready``) … → ``done`` or
``failed``. A process runs one message at a time: a second concurrent ``run`` on the same
process is refused with a :class:`~llmos.errors.UsageError`, never interleaved.

Neighbours: ``llmos.kernel.boot`` creates processes; ``llmos.kernel.cycle`` steps them;
``llmos.memory.ram`` is their RAM.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from llmos.errors import UsageError
from llmos.kernel.syscall import SyscallTable
from llmos.memory.page import Page
from llmos.memory.pager import PageStats
from llmos.memory.ram import RAM
from llmos.params import Params

__all__ = ["ProcState", "ProcStats", "Process", "Quota"]


class ProcState(StrEnum):
    """Where a process is in its life."""

    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Quota:
    """What one run (one message) of a process may spend; None leaves a limit to ``Params``.

    Each field names the ``Params`` knob it overrides for one process (:meth:`limit`).

    Every limit counts from the start of the run, so each message gets a fresh budget. When one
    runs out the run ends with :class:`~llmos.errors.QuotaExceeded` naming it (steps end with
    :class:`~llmos.errors.StepLimitExceeded`, as for ``Params.max_steps``).

    Attributes:
        max_steps: instructions decoded; None = ``Params.max_steps``.
        max_decoded_tokens: tokens sampled by the CPU (forced tokens are free); None =
            ``Params.max_decoded_tokens``.
        max_device_calls: syscalls dispatched to devices; None = ``Params.max_device_calls``.
        max_seconds: wall-clock seconds, time spent ready or waiting included; checked each
            time the process resumes (a device call in flight is bounded by its own
            ``Limits.timeout_s``); None = ``Params.max_seconds``.
    """

    max_steps: int | None = None
    max_decoded_tokens: int | None = None
    max_device_calls: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(
                    f"Quota.{name} must be positive or None (no limit), not {value!r}",
                    code="args",
                )


    def limit(self, name: str, params: Params) -> float | None:
        """The limit ``name`` for this process: its own, else the ``Params`` knob of that name."""
        own: float | None = getattr(self, name)
        return own if own is not None else getattr(params, name)


@dataclass
class ProcStats(PageStats):
    """Counters of one process, across all its runs (the paging counters included)."""

    steps: int = 0
    decoded_tokens: int = 0
    forced_tokens: int = 0
    prefilled_tokens: int = 0
    reused_tokens: int = 0
    device_calls: int = 0
    faults: int = 0
    cpu_seconds: float = 0.0  # wall time of its decodes on the CPU
    device_seconds: float = 0.0  # wall time of its device calls (off the CPU thread)
    switches: int = 0  # context switches onto the CPU that moved KV state

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for traces and JSON)."""
        out: dict[str, Any] = dict(vars(self))
        out["hit_rate"] = self.hit_rate
        return out


@dataclass(eq=False)
class Process:
    """One agent: pid, program, capabilities (its syscall table), RAM and counters.

    Attributes:
        pid: process id, unique within a kernel and its disk.
        system: the program text.
        table: the syscalls this process may call.
        ram: its context window.
        state: where it is in its life.
        stats: its counters.
        priority: higher runs first when several processes are ready.
        quota: what one run may spend (unset limits fall back to ``Params``).
    """

    pid: int
    system: str
    table: SyscallTable
    ram: RAM
    state: ProcState = ProcState.READY
    stats: ProcStats = field(default_factory=ProcStats)
    priority: int = 0
    quota: Quota = field(default_factory=Quota)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pages(self) -> list[Page]:
        """The resident journal pages."""
        return self.ram.pages

    def acquire(self) -> None:
        """Claim the process for one run; refuse a second concurrent run."""
        if not self._lock.acquire(blocking=False):
            raise UsageError(
                f"process {self.pid} is already running; wait for its reply before sending "
                "another message",
                code="busy",
            )

    def release(self) -> None:
        """End the claim taken by ``acquire``."""
        self._lock.release()

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} {self.state.value} pages={len(self.ram)}>"
