"""The kernel: boots a CPU, mounts devices, spawns processes and runs them.

``Kernel()`` with no arguments boots the embedded default model on the in-process llama.cpp
CPU and mounts the default devices. ``spawn`` creates a process with a subset of the mounted
devices as its capabilities and a RAM budget; ``run`` answers one message with it.

Neighbours: ``llmos.kernel.sched`` holds the instruction cycle; ``llmos.kernel.loader`` lays
out the header; ``llmos.memory`` holds RAM, pager and disk; ``llmos.peripherals`` the devices.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

from llmos.cpu.base import CPU
from llmos.errors import UsageError
from llmos.kernel.loader import default_system, render_header
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, Quota
from llmos.kernel.sched import Observer, Reply, Scheduler, drive, turn
from llmos.kernel.syscall import SyscallTable
from llmos.memory.ram import RAM
from llmos.params import Params
from llmos.peripherals.base import Peripheral

__all__ = ["Kernel", "default_peripherals"]


def default_peripherals() -> list[Peripheral]:
    """The devices a kernel mounts when none are given: the calculator.

    Other devices are mounted when asked for (``Kernel(peripherals=[Calculator(), Python()])``
    or ``llmos run --peripherals calculator,python``): the browser and the file system reach
    outside the process, and two devices that overlap (calculator and Python) make the choice
    harder for a small model, whose calculator arguments are grounded and so more reliable.
    """
    from llmos.peripherals.calculator import Calculator

    return [Calculator()]


class Kernel:
    """An operating system for agents on one CPU.

    Args:
        cpu: the model backend; None boots the embedded default model (``LlamaCPU.default()``).
        disk: where evicted pages and snapshots go; None keeps no disk.
        peripherals: the mounted devices; None mounts :func:`default_peripherals`.
        params: kernel parameters.
        policy: the security monitor's settings (taint, approvals, egress allowlist).
    """

    def __init__(
        self,
        cpu: CPU | None = None,
        *,
        disk: object | None = None,
        peripherals: Iterable[Peripheral] | None = None,
        params: Params | None = None,
        policy: Policy | None = None,
    ) -> None:
        if cpu is None:
            from llmos.cpu.llama import LlamaCPU

            cpu = LlamaCPU.default()
        self.cpu: CPU = cpu
        self.disk = disk
        self.params = params or Params()
        self.policy = policy or Policy()
        devices = list(default_peripherals() if peripherals is None else peripherals)
        self.peripherals: dict[str, Peripheral] = {}
        for dev in devices:
            if not isinstance(dev, Peripheral):
                raise UsageError(
                    f"{dev!r} is not a Peripheral instance; did you pass the class instead of "
                    "an instance (Calculator instead of Calculator())?",
                    code="not-a-peripheral",
                )
            if dev.name in self.peripherals:
                raise UsageError(
                    f"two peripherals are named {dev.name!r}", code="syscall-duplicate"
                )
            dev.open()
            self.peripherals[dev.name] = dev
        self._pids = itertools.count(1)
        self.processes: dict[int, Process] = {}

    def spawn(
        self,
        system: str | None = None,
        *,
        peripherals: Sequence[str | Peripheral] | None = None,
        ram_tokens: int | None = None,
        priority: int = 0,
        quota: Quota | None = None,
    ) -> Process:
        """Create a process.

        Args:
            system: its program text; None uses the default.
            peripherals: the devices it may call, by name or instance (its capabilities);
                None gives it every mounted device.
            ram_tokens: its RAM budget in tokens; None derives it from the model's context.
            priority: higher runs first when several processes are ready.
            quota: what one run may spend (steps, decoded tokens, device calls, seconds);
                None leaves every limit to ``Params``.
        """
        devices = self._select(peripherals)
        table = SyscallTable(devices, strict=self.params.strict)
        default_budget = self.cpu.n_ctx - self.params.max_call_tokens
        budget = ram_tokens or self.params.ram_tokens or default_budget
        if budget + self.params.max_call_tokens > self.cpu.n_ctx:
            raise UsageError(
                f"ram_tokens={budget} plus {self.params.max_call_tokens} tokens for the next "
                f"instruction exceeds the model's context of {self.cpu.n_ctx} tokens",
                code="ram-budget",
            )
        text = system if system is not None else default_system()
        header = render_header(text, table, per_device=self.params.examples_per_device)
        proc = Process(
            pid=next(self._pids),
            system=text,
            table=table,
            ram=RAM(self.cpu.count_tokens, budget, header),
            priority=priority,
            quota=quota or Quota(),
        )
        proc.ram.check()
        self.processes[proc.pid] = proc
        return proc

    def run(self, proc: Process, message: str, *, observe: Observer | None = None) -> Reply:
        """Answer one message with ``proc``; returns the answer and its trace.

        Args:
            proc: a process spawned by this kernel.
            message: what the user says.
            observe: called with each trace event as it happens (to stream progress).

        Raises:
            StepLimitExceeded: the process used ``Params.max_steps`` without answering.
            ContextOverflow: the context cannot fit even after evicting what can be evicted.
        """
        if not message.strip():
            raise UsageError("the message is empty; say what the process should do", code="empty")
        if proc.pid not in self.processes:
            raise UsageError(f"process {proc.pid} does not belong to this kernel", code="no-proc")
        t = turn(proc, message, params=self.params, policy=self.policy, observe=observe)
        return drive(t, proc, self.cpu, params=self.params)

    def run_all(
        self,
        messages: Mapping[Process, str],
        *,
        observe: Observer | None = None,
        slice_steps: int = 2,
    ) -> dict[Process, Reply]:
        """Answer one message per process, time-sharing the CPU; returns every reply.

        While one process waits on a device, the CPU decodes for another; see
        ``llmos.kernel.sched`` for the policy (priorities, aging, round-robin, time slices).

        Args:
            messages: what to say to each process.
            observe: called with each trace event of every process as it happens.
            slice_steps: decode steps a process may take before yielding to another.

        Returns:
            each process's :class:`Reply`. A process that fails (a quota, the step limit, a
            CPU error) does not stop the others: its reply has ``error`` set (``ok`` is False;
            ``reply.raise_for_error()`` raises it) and the trace until then.

        Raises:
            UsageError: an empty message, a process of another kernel, or one already running.
        """
        for proc, message in messages.items():
            if not message.strip():
                raise UsageError(
                    f"the message for process {proc.pid} is empty; say what it should do",
                    code="empty",
                )
            if self.processes.get(proc.pid) is not proc:
                raise UsageError(
                    f"process {proc.pid} does not belong to this kernel", code="no-proc"
                )
        turns = {
            proc: turn(proc, message, params=self.params, policy=self.policy,
                       observe=observe)
            for proc, message in messages.items()
        }
        return Scheduler(self.cpu, params=self.params, slice_steps=slice_steps).run(turns)

    def close(self) -> None:
        """Unmount every device."""
        for dev in self.peripherals.values():
            dev.close()

    def _select(self, wanted: Sequence[str | Peripheral] | None) -> list[Peripheral]:
        if wanted is None:
            return list(self.peripherals.values())
        chosen: list[Peripheral] = []
        for item in wanted:
            if isinstance(item, Peripheral):
                chosen.append(item)
            elif item in self.peripherals:
                chosen.append(self.peripherals[item])
            else:
                known = ", ".join(sorted(self.peripherals)) or "none"
                raise UsageError(
                    f"no mounted peripheral named {item!r}; mounted: {known}", code="no-device"
                )
        return chosen
