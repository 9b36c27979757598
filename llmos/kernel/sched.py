"""The scheduler: drives turns on the CPU, one at a time or time-shared among many.

A turn (``llmos.kernel.cycle``) yields what it needs next; a driver serves it. :func:`drive`
runs one turn to the end in order (``Kernel.run``); a :class:`Scheduler` interleaves many
(``Kernel.run_all``), serving CPU requests on the calling thread (the CPU thread) and device
requests on a thread pool, so the CPU decodes for one process while others wait on their
devices. Both serve CPU requests through one :class:`Decoder`, which switches the process onto
the CPU (when the CPU has the ``Switching`` ability) and decodes (``llmos.kernel.vote``).

Scheduling policy: the ready process with the highest *effective* priority gets the CPU
(its ``priority`` plus one for every ``Params.aging`` slices it was passed over while ready, so
no process starves); equals take turns in arrival order (round-robin). A time slice is
``Params.slice_steps`` decode steps; at its end the process goes to the back of the run queue if
another is ready. A device call ends the slice at once: the process waits off the CPU and is
ready again when the device returns. Each switch onto the CPU restores the process's KV state
(``LlamaCPU.switch``) instead of re-reading its context.

Invariants: every scheduling event is in the trace; only the CPU thread advances turns, so a
process's RAM is never touched by two threads; one process's error ends that process only.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from llmos.cpu.base import CPU, Decoding, Switch, Switching
from llmos.errors import LLMOSError, RunError, UsageError
from llmos.kernel.cycle import NeedCPU, NeedDevice, Reply, Turn
from llmos.kernel.proc import Process, ProcState
from llmos.kernel.syscall import Outcome
from llmos.kernel.vote import sample
from llmos.params import Params
from llmos.trace import Event, Scheduled

__all__ = ["Decoder", "Scheduler", "drive"]


class Decoder:
    """Serves the ``NeedCPU`` requests of turns on one CPU.

    The CPU's optional abilities (:class:`~llmos.cpu.base.Switching`) are checked here, once:
    ``slots`` is the CPU when it keeps per-process KV state, else None.
    """

    def __init__(self, cpu: CPU, params: Params) -> None:
        self.cpu = cpu
        self.params = params
        self.slots: Switching | None = cpu if isinstance(cpu, Switching) else None

    def __call__(self, proc: Process, req: NeedCPU) -> Decoding:
        """Switch ``proc`` onto the CPU (recording what moved), then decode one instruction."""
        if self.slots is not None:
            sw = self.slots.switch(proc.pid)
            if sw.source != "same":
                proc.stats.switches += 1
                req.trace.append(Scheduled(pid=proc.pid, step=req.step, what="switch_in",
                                           detail=_switch_detail(sw)))
        return sample(self.cpu, req, self.params, pid=proc.pid, slot=proc.pid)


def drive(t: Turn, proc: Process, decoder: Decoder) -> Reply:
    """Run one turn to its end: decodes on the CPU, device calls in order on this thread."""
    proc.acquire()
    proc.state = ProcState.RUNNING
    try:
        request = next(t)
        while True:
            if isinstance(request, NeedCPU):
                result: Any = decoder(proc, request)
            else:
                proc.state = ProcState.WAITING
                result = proc.table.dispatch(request.name, request.args,
                                             trusted_args=request.trusted_args)
                proc.stats.device_seconds += result.seconds
                proc.state = ProcState.RUNNING
            request = t.send(result)
    except StopIteration as done:
        proc.state = ProcState.DONE
        reply: Reply = done.value
        return reply
    except BaseException:
        proc.state = ProcState.FAILED
        t.close()
        raise
    finally:
        proc.release()


@dataclass(eq=False)
class _Task:
    """One process's turn inside a scheduler run."""

    proc: Process
    gen: Turn
    seq: int  # arrival order in the run queue: equals run first come, first served
    age: int = 0  # slices given to others while this one was ready
    request: NeedCPU | NeedDevice | None = None  # what it asked for last
    inbox: Any = None  # the value to send it when it next runs
    started: bool = False
    held: bool = False  # preempted before its request was served: serve it, don't advance
    trace: list[Event] = field(default_factory=list)
    reply: Reply | None = None


class Scheduler:
    """Time-shares one CPU among many turns; device calls run on a thread pool meanwhile.

    Args:
        cpu: the CPU all turns decode on (switched per process if it supports ``switch``).
        params: kernel parameters: each decode's temperature and seed, the time slice
            (``slice_steps``) and ``aging``.
        workers: threads for device calls; None = one per process, at most 16.
    """

    def __init__(self, cpu: CPU, *, params: Params, workers: int | None = None) -> None:
        slice_steps, aging = params.slice_steps, params.aging
        if slice_steps < 1 or aging < 1:
            raise UsageError(
                f"Params.slice_steps and Params.aging must be at least 1, not {slice_steps} "
                f"and {aging}",
                code="args",
            )
        self.decoder = Decoder(cpu, params)
        self.slice_steps = slice_steps
        self.aging = aging
        self.workers = workers
        self._ready: list[_Task] = []
        self._done: queue.SimpleQueue[tuple[_Task, Outcome | BaseException]] = queue.SimpleQueue()
        self._waiting = 0
        self._seq = 0

    def run(self, turns: Mapping[Process, Turn]) -> dict[Process, Reply]:
        """Run every turn to its end; return each process's reply, failed ones included.

        A process that fails (a quota, the step limit, a CPU error) gets a :class:`Reply` with
        ``error`` set and the trace until then; the others carry on undisturbed.

        Raises:
            UsageError: one of the processes is already running (nothing was started).
        """
        tasks = [_Task(proc, gen, seq=i) for i, (proc, gen) in enumerate(turns.items())]
        claimed: list[Process] = []
        try:
            for task in tasks:
                task.proc.acquire()
                claimed.append(task.proc)
        except UsageError:
            for proc in claimed:
                proc.release()
            for task in tasks:
                task.gen.close()
            raise
        self._seq = len(tasks)
        self._ready = list(tasks)
        for task in tasks:
            task.proc.state = ProcState.READY
        pool = ThreadPoolExecutor(
            max_workers=self.workers or min(16, max(1, len(tasks))),
            thread_name_prefix="llmos-io",
        )
        try:
            while self._ready or self._waiting:
                self._wake(block=not self._ready)
                if self._ready:
                    self._slice(self._pick(), pool)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for task in tasks:
                if task.reply is None:  # interrupted: nothing half-done stays runnable
                    task.gen.close()
                    task.proc.state = ProcState.FAILED
                task.proc.release()
        bugs = [t.reply.error.__cause__ for t in tasks
                if t.reply is not None and isinstance(t.reply.error, _Bug)]
        if bugs and isinstance(bugs[0], BaseException):
            raise bugs[0]
        return {task.proc: task.reply for task in tasks if task.reply is not None}

    def _pick(self) -> _Task:
        """The ready task with the highest effective priority; the oldest among equals."""
        best = max(self._ready, key=lambda t: (t.proc.priority + t.age // self.aging, -t.seq))
        self._ready.remove(best)
        for other in self._ready:
            other.age += 1
        best.age = 0
        return best

    def _enqueue(self, task: _Task) -> None:
        task.proc.state = ProcState.READY
        task.seq = self._seq
        self._seq += 1
        self._ready.append(task)

    def _wake(self, *, block: bool) -> None:
        """Make every task whose device call returned ready again (wait for one if ``block``)."""
        while True:
            try:
                task, result = self._done.get(block=block)
            except queue.Empty:
                return
            block = False
            self._waiting -= 1
            if isinstance(result, BaseException):
                self._finish(task, result)
                continue
            task.proc.stats.device_seconds += result.seconds
            step = task.request.step if task.request is not None else 0
            self._note(task, step, "wake", {"status": result.status,
                                            "device_s": round(result.seconds, 3)})
            task.inbox = result
            self._enqueue(task)

    def _slice(self, task: _Task, pool: ThreadPoolExecutor) -> None:
        """Run ``task`` on the CPU until it waits, ends, or uses its slice with others ready."""
        proc = task.proc
        proc.state = ProcState.RUNNING
        steps = 0
        while True:
            if task.held:
                task.held = False
            elif not self._advance(task):
                return
            req = task.request
            if isinstance(req, NeedDevice):
                proc.state = ProcState.WAITING
                self._note(task, req.step, "wait", {"syscall": req.name})
                self._waiting += 1
                pool.submit(self._device, task, req)
                return
            assert req is not None
            if steps >= self.slice_steps:
                self._wake(block=False)
                if self._ready:
                    self._note(task, req.step, "preempt", {"slice_steps": steps})
                    task.held = True
                    self._enqueue(task)
                    return
                steps = 0
            try:
                task.inbox = self.decoder(proc, req)
            except Exception as exc:
                self._finish(task, exc)
                return
            steps += 1

    def _advance(self, task: _Task) -> bool:
        """Send the task its inbox; False when the turn ended (answered or failed)."""
        value, task.inbox = task.inbox, None
        try:
            task.request = task.gen.send(value) if task.started else next(task.gen)
        except StopIteration as done:
            task.started = True
            self._finish(task, done.value)
            return False
        except Exception as exc:
            self._finish(task, exc)
            return False
        task.started = True
        task.trace = task.request.trace
        return True

    def _device(self, task: _Task, req: NeedDevice) -> None:
        """On a pool thread: run one device call and hand the result to the CPU thread."""
        try:
            result: Outcome | BaseException = task.proc.table.dispatch(
                req.name, req.args, trusted_args=req.trusted_args
            )
        except BaseException as exc:
            result = exc
        self._done.put((task, result))

    def _finish(self, task: _Task, result: Reply | BaseException) -> None:
        proc = task.proc
        if isinstance(result, Reply):
            proc.state = ProcState.DONE
            task.reply = result
            return
        proc.state = ProcState.FAILED
        task.gen.close()
        if task.request is None and isinstance(result, RunError):
            task.trace = list(result.trace)  # it failed before its first request
        self._note(task, 0, "failed", {"error": type(result).__name__, "message": str(result)})
        error = result if isinstance(result, LLMOSError) else _Bug(result)
        task.reply = Reply(text="", trace=list(task.trace), pid=proc.pid, error=error)

    def _note(self, task: _Task, step: int, what: str, detail: dict[str, Any]) -> None:
        task.trace.append(Scheduled(pid=task.proc.pid, step=step, what=what, detail=detail))


class _Bug(LLMOSError):
    """Stands for an exception that is a bug, until every other process has finished."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.__cause__ = exc


def _switch_detail(sw: Switch) -> dict[str, Any]:
    return {
        "from": str(sw.from_slot), "source": sw.source, "restored_bytes": sw.restored_bytes,
        "restored_tokens": sw.restored_tokens, "restore_ms": round(sw.restore_seconds * 1e3, 2),
        "saved_bytes": sw.saved_bytes, "save_ms": round(sw.save_seconds * 1e3, 2),
        "spilled_bytes": sw.spilled_bytes,
    }
