"""A process: one agent, with its program, capabilities, RAM and counters.

A process is created by ``Kernel.spawn`` and run by ``Kernel.run``. Its capabilities are the
syscall table it was given (it can decode no other call); its RAM holds the header and the
journal; its stats count what it cost.

States: ``ready`` → ``running`` → (``waiting`` on a device → ``ready``) … → ``done`` or
``failed``. A process runs one message at a time: a second concurrent ``run`` on the same
process is refused with a :class:`~llmos.errors.UsageError`, never interleaved.

Neighbours: ``llmos.kernel.boot`` creates processes; ``llmos.kernel.sched`` steps them;
``llmos.memory.ram`` is their RAM.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from llmos.errors import UsageError
from llmos.kernel.syscall import SyscallTable
from llmos.memory.page import Page
from llmos.memory.ram import RAM

__all__ = ["ProcState", "ProcStats", "Process"]


class ProcState(StrEnum):
    """Where a process is in its life."""

    READY = "ready"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass
class ProcStats:
    """Counters of one process, across all its runs."""

    steps: int = 0
    decoded_tokens: int = 0
    forced_tokens: int = 0
    prefilled_tokens: int = 0
    reused_tokens: int = 0
    device_calls: int = 0
    faults: int = 0
    page_outs: int = 0
    page_ins: int = 0
    page_faults: int = 0
    recalls: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of explicit recalls served from RAM rather than disk (1.0 when none)."""
        return 1.0 - self.page_faults / self.recalls if self.recalls else 1.0

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
    """

    pid: int
    system: str
    table: SyscallTable
    ram: RAM
    state: ProcState = ProcState.READY
    stats: ProcStats = field(default_factory=ProcStats)
    priority: int = 0
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
