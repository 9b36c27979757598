"""The kernel: boots a CPU, mounts devices, spawns processes and runs them.

``Kernel()`` with no arguments boots the embedded default model on the in-process llama.cpp
CPU and mounts the default devices. ``spawn`` creates a process with a subset of the mounted
devices as its capabilities and a RAM budget; ``run`` answers one message with it.

With a disk (``Kernel(disk=ChromaDisk(path))``), the pager backs every process's RAM: pages
evicted under pressure go to disk and come back on demand, each process gets the ``memory``
device, and ``hibernate``/``resume`` move whole processes through the disk, so a process
outlives the kernel that spawned it. Process ids are unique per disk.

Neighbours: ``llmos.kernel.cycle`` holds the instruction cycle, ``llmos.kernel.sched`` drives
it; ``llmos.kernel.loader`` lays out the header; ``llmos.kernel.memdev`` is the memory device;
``llmos.memory`` holds RAM, pager and disk; ``llmos.peripherals`` the devices.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from llmos.cpu.base import CPU
from llmos.errors import ContextOverflow, UsageError
from llmos.kernel.cycle import Observer, Reply, turn
from llmos.kernel.ground import arg_schema
from llmos.kernel.loader import chat_tools, default_system, render_header, worked_examples
from llmos.kernel.memdev import MemoryDevice
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, ProcStats, Quota
from llmos.kernel.sched import Decoder, Scheduler, drive
from llmos.kernel.syscall import SyscallTable
from llmos.memory.disk import Disk
from llmos.memory.page import Page
from llmos.memory.pager import Pager
from llmos.memory.ram import RAM
from llmos.memory.turns import ChatLayout
from llmos.params import Params
from llmos.peripherals.base import Peripheral
from llmos.trace import Event

__all__ = ["Kernel", "default_peripherals"]

_MIN_JOURNAL_TOKENS = 128  # a process must have room for a message, a call and its result


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
        disk: where evicted pages and snapshots go; None keeps no disk (evicted pages then
            leave only their summary behind).
        peripherals: the mounted devices; None mounts :func:`default_peripherals`.
        params: kernel parameters.
        policy: the security monitor's settings (taint, approvals, egress allowlist).
    """

    def __init__(
        self,
        cpu: CPU | None = None,
        *,
        disk: Disk | None = None,
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
            for spec in dev.syscalls().values():
                arg_schema(spec.args)  # normalised once, here: a bad schema fails at mount
            dev.open()
            self.peripherals[dev.name] = dev
        self.processes: dict[int, Process] = {}
        # the secret that keys spotlight delimiters: nothing a page's author can predict
        key = self.params.spotlight_key
        self._key = key.encode() if key else secrets.token_bytes(16)
        self.pager = Pager(disk, cpu=cpu, params=self.params)
        self._decoder = Decoder(cpu, self.params)  # checks the CPU's optional abilities once
        self._next_pid = 1
        if disk is not None:
            meta = disk.load_snapshot(0) or {}
            self._next_pid = max([int(meta.get("next_pid", 1)), *(i + 1 for i in disk.snapshots())])

    def _new_pid(self) -> int:
        pid = self._next_pid
        if self.disk is not None:  # pids stay unique across kernels sharing this disk
            pid = self.disk.claim_pid(pid)
            self.disk.save_snapshot(0, {"next_pid": pid + 1})  # a hint for the next kernel
        self._next_pid = pid + 1
        return pid

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
        return self._load(
            self._new_pid(), system, peripherals, ram_tokens=ram_tokens, priority=priority,
            quota=quota,
        )

    def _load(
        self,
        pid: int,
        system: str | None,
        peripherals: Sequence[str | Peripheral] | None,
        *,
        ram_tokens: int | None,
        priority: int,
        quota: Quota | None = None,
    ) -> Process:
        # "memory" is the kernel's own device, made per process: not a mounted peripheral
        devices = self._select(
            None if peripherals is None else [p for p in peripherals if p != "memory"]
        )
        default_budget = self.cpu.n_ctx - self.params.max_call_tokens
        budget = ram_tokens or self.params.ram_tokens or default_budget
        if budget + self.params.max_call_tokens > self.cpu.n_ctx:
            raise UsageError(
                f"ram_tokens={budget} plus {self.params.max_call_tokens} tokens for the next "
                f"instruction exceeds the model's context of {self.cpu.n_ctx} tokens",
                code="ram-budget",
            )
        ram, stats = RAM(self.cpu.count_tokens, budget, pid=pid, key=self._key), ProcStats()
        if self.disk is not None and (peripherals is None or "memory" in peripherals):
            devices.append(MemoryDevice(self.disk, ram, stats))
        table = SyscallTable(devices, strict=self.params.strict)
        text = system if system is not None else default_system()
        per_device = self.params.examples_per_device
        dialect = getattr(self.cpu, "dialect", None)  # a chat model's own form, if it has one
        if dialect is not None:
            shots = worked_examples(table, per_device) if per_device >= 0 else []
            layout = ChatLayout(dialect, text, chat_tools(table), shots, key=self._key)
            ram.layout, ram.header = layout, layout.header
        else:
            ram.header = render_header(text, table, per_device=per_device,
                                       examples=None if per_device >= 0 else [])
        proc = Process(
            pid=pid, system=text, table=table, ram=ram, stats=stats, priority=priority,
            quota=quota or Quota(),
        )
        room = budget - proc.ram.fixed_tokens
        if room < _MIN_JOURNAL_TOKENS:
            raise UsageError(
                f"ram_tokens={budget} leaves {room} tokens for the conversation after the "
                f"{proc.ram.fixed_tokens}-token header (program, syscall table, examples); "
                f"give it at least {proc.ram.fixed_tokens + _MIN_JOURNAL_TOKENS}, or mount "
                "fewer devices",
                code="ram-budget",
            )
        self.processes[proc.pid] = proc
        return proc

    def feed(
        self,
        proc: Process,
        text: str,
        *,
        role: Literal["user", "model", "device"] = "user",
        source: str | None = None,
    ) -> list[Event]:
        """Append a page to ``proc`` without a decode step (history loading); the pager applies.

        Args:
            proc: a process spawned by this kernel.
            text: the page's text.
            role: who said it: the user, the model, or a device (a result).
            source: provenance; anything other than ``user``/``model`` (a URL, a file) makes
                the page untrusted, and so does ``role="device"``: a device's output is
                outside text.

        Returns:
            the pager's events (page-outs) this page caused.

        Raises:
            ContextOverflow: the page alone is larger than what RAM can ever hold; nothing is
                appended.
        """
        if not text.strip():
            raise UsageError("feed() got an empty text", code="empty")
        self._own(proc)
        src = source or ("model" if role == "model" else "user")
        kind: Literal["message", "result"] = "result" if role == "device" else "message"
        page = Page(pid=proc.pid, kind=kind, role=role, text=text, source=src,
                    trust="trusted" if src in ("user", "model") and role != "device"
                    else "untrusted")
        proc.acquire()
        try:
            ram = proc.ram
            ram.append(page)
            if page.tokens + ram.fixed_tokens > ram.budget:
                ram.remove([page.id])
                raise ContextOverflow(
                    f"the page takes {page.tokens} tokens but RAM holds {ram.budget} "
                    f"with {ram.fixed_tokens} fixed: split the text, or raise ram_tokens"
                )
            events: list[Event] = []
            self.pager.relieve(ram, proc.stats, events, step=proc.stats.steps)
            return events
        finally:
            proc.release()

    def _own(self, proc: Process) -> None:
        if self.processes.get(proc.pid) is not proc:
            raise UsageError(f"process {proc.pid} does not belong to this kernel", code="no-proc")

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
        self._own(proc)
        t = turn(
            proc, message, params=self.params, policy=self.policy, pager=self.pager,
            observe=observe,
        )
        return drive(t, proc, self._decoder)

    def run_all(
        self,
        messages: Mapping[Process, str],
        *,
        observe: Observer | None = None,
        slice_steps: int | None = None,
    ) -> dict[Process, Reply]:
        """Answer one message per process, time-sharing the CPU; returns every reply.

        While one process waits on a device, the CPU decodes for another; see
        ``llmos.kernel.sched`` for the policy (priorities, aging, round-robin, time slices).

        Args:
            messages: what to say to each process.
            observe: called with each trace event of every process as it happens.
            slice_steps: decode steps a process may take before yielding to another; None
                = ``Params.slice_steps``.

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
            self._own(proc)
        turns = {
            proc: turn(proc, message, params=self.params, policy=self.policy,
                       pager=self.pager, observe=observe)
            for proc, message in messages.items()
        }
        params = self.params
        if slice_steps is not None:
            params = dataclasses.replace(params, slice_steps=slice_steps)
        return Scheduler(self.cpu, params=params).run(turns)

    def hibernate(self, proc: Process) -> None:
        """Write the whole process (RAM pages, counters, configuration) to disk.

        The process can then be brought back by :meth:`resume`, in this kernel or another one
        on the same disk; it is removed from this kernel.
        """
        disk = self._need_disk("hibernate")
        proc.acquire()  # not while it runs
        try:
            devices = [d.name for d in proc.table.peripherals if not isinstance(d, MemoryDevice)]
            disk.save_snapshot(
                proc.pid,
                {
                    "version": 1,
                    "pid": proc.pid,
                    "system": proc.system,
                    "peripherals": devices,
                    "memory": any(isinstance(d, MemoryDevice) for d in proc.table.peripherals),
                    "ram_tokens": proc.ram.budget,
                    "priority": proc.priority,
                    "quota": dataclasses.asdict(proc.quota),
                    "pages": [p.model_dump(mode="json") for p in proc.ram],
                    "stats": proc.stats.as_dict(),
                },
            )
        finally:
            proc.release()
        self.processes.pop(proc.pid, None)
        if self._decoder.slots is not None:  # its saved KV state is no longer needed here
            self._decoder.slots.forget(proc.pid)

    def resume(self, pid: int) -> Process:
        """Bring back a hibernated process; its devices must be mounted on this kernel."""
        disk = self._need_disk("resume")
        snap = disk.load_snapshot(pid)
        if snap is None or snap.get("version") != 1:
            known = ", ".join(str(i) for i in disk.snapshots() if i) or "none"
            raise UsageError(f"no hibernated process {pid} on this disk; hibernated: {known}",
                             code="no-proc")
        names: list[str | Peripheral] = list(snap["peripherals"])
        missing = [n for n in names if n not in self.peripherals]
        if missing:
            raise UsageError(
                f"process {pid} needs the devices {missing} mounted on this kernel to resume",
                code="no-device",
            )
        if snap.get("memory"):
            names.append("memory")
        proc = self._load(pid, snap["system"], names, ram_tokens=snap["ram_tokens"],
                          priority=int(snap["priority"]), quota=Quota(**snap.get("quota", {})))
        for raw in snap["pages"]:
            proc.ram.append(Page.model_validate(raw))
        for key, value in snap["stats"].items():
            if hasattr(proc.stats, key) and key != "hit_rate":
                setattr(proc.stats, key, value)
        self._next_pid = max(self._next_pid, pid + 1)
        disk.refresh()  # its pages may have grown on another host since this disk indexed them
        return proc

    def _need_disk(self, what: str) -> Disk:
        if self.disk is None:
            raise UsageError(
                f"{what} needs a disk: Kernel(disk=ChromaDisk(path))", code="no-disk"
            )
        return self.disk

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
