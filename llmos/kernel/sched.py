"""The instruction cycle of a process, and the scheduler that time-shares the CPU among many.

One *turn* answers one message. It is written as a generator that yields what it needs next:
:class:`NeedCPU` (decode one instruction) or :class:`NeedDevice` (run one syscall), and
receives the result. The turn itself never touches the CPU or a device, so a driver decides
where work runs: :func:`drive` runs one turn to the end in order (``Kernel.run``); a
:class:`Scheduler` interleaves many (``Kernel.run_all``), serving CPU requests on the calling
thread (the CPU thread) and device requests on a thread pool, so the CPU decodes for one
process while others wait on their devices.

When a turn starts, the pager pages in what the message needs, ahead of it. One step:

1. the pager fits RAM to the budget;
2. the CPU decodes one syscall under the step's grounded grammar (``llmos.kernel.ground``);
3. the trap parses it (``llmos.kernel.trap``): a malformed call, a call cut short at the token
   limit, or a repeat of a call already made in this turn is a fault the model reads;
4. ``answer`` ends the turn through the egress filter; any other call passes the policy and
   goes to its device; the call and its result are appended to the journal as one group.

Scheduling policy: the ready process with the highest *effective* priority gets the CPU
(its ``priority`` plus one for every ``aging`` slices it was passed over while ready, so no
process starves); equals take turns in arrival order (round-robin). A time slice is
``slice_steps`` decode steps; at its end the process goes to the back of the run queue if
another is ready. A device call ends the slice at once: the process waits off the CPU and is
ready again when the device returns. Each switch onto the CPU restores the process's KV state
(``LlamaCPU.switch``) instead of re-reading its context.

Invariants: the journal is append-only during a turn (prefix-stable, so the CPU reuses its KV
cache); every decoded instruction, call, fault, answer and scheduling event is in the trace;
a turn ends with an answer or a :class:`~llmos.errors.RunError` carrying the trace; only the
CPU thread advances turns, so a process's RAM is never touched by two threads; one process's
error ends that process only.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmos.cpu.base import CPU, Decoding, Switch, Switching
from llmos.errors import Fault, LLMOSError, QuotaExceeded, RunError, StepLimitExceeded, UsageError
from llmos.kernel.ground import step_schema
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, ProcState
from llmos.kernel.syscall import ANSWER, Outcome, format_call
from llmos.kernel.trap import cut_answer, decode_call
from llmos.memory.page import Page
from llmos.memory.pager import PageStats
from llmos.memory.ram import RAM
from llmos.params import Params
from llmos.trace import Answered, Called, Decoded, Event, Faulted, Scheduled, Voted

__all__ = ["Decoder", "NeedCPU", "NeedDevice", "Reply", "Scheduler", "drive", "turn", "vote"]


@dataclass(frozen=True)
class NeedCPU:
    """A turn asks the CPU to decode one instruction (``trace``: the turn's, for the driver)."""

    prompt: str
    schema: Mapping[str, Any] | None
    max_tokens: int
    step: int = 0
    trace: list[Event] = field(default_factory=list, repr=False, compare=False)


@dataclass(frozen=True)
class NeedDevice:
    """A turn asks for one validated, policy-checked syscall to be dispatched."""

    name: str
    args: Mapping[str, Any]
    step: int = 0
    trace: list[Event] = field(default_factory=list, repr=False, compare=False)


@dataclass
class Reply:
    """What ``Kernel.run`` returns: the answer and everything that led to it.

    Attributes:
        text: the answer, after the egress filter ("" when the run failed).
        trace: typed events in order (decodes, calls, faults, pages, scheduling).
        pid: the process that answered.
        error: why the run failed, in ``Kernel.run_all`` only (``Kernel.run`` raises it);
            None when it answered.
    """

    text: str
    trace: list[Event] = field(default_factory=list)
    pid: int = 0
    error: LLMOSError | None = None

    @property
    def calls(self) -> list[Called]:
        """The device calls of this turn, in order."""
        return [e for e in self.trace if isinstance(e, Called)]

    @property
    def ok(self) -> bool:
        """True when the process answered."""
        return self.error is None

    def raise_for_error(self) -> Reply:
        """Raise the run's error if it failed; return the reply otherwise (for chaining)."""
        if self.error is not None:
            raise self.error
        return self


Turn = Generator[NeedCPU | NeedDevice, Any, Reply]


class MMU(Protocol):
    """What the instruction cycle needs from the pager (``llmos.memory.pager.Pager``)."""

    def recall(
        self, ram: RAM, stats: PageStats, message: str, trace: list[Event], *, step: int = 0
    ) -> None:
        """Page in what ``message`` needs, ahead of it in the journal."""
        ...

    def fit(self, ram: RAM, stats: PageStats, trace: list[Event], *, step: int = 0) -> None:
        """Keep RAM under budget before a step."""
        ...

Observer = Callable[[Event], None]


class _Trace(list[Event]):
    """A trace that also tells an observer about each event as it is appended."""

    def __init__(self, observe: Observer | None) -> None:
        super().__init__()
        self._observe = observe

    def append(self, event: Event) -> None:
        super().append(event)
        if self._observe is not None:
            self._observe(event)


def turn(
    proc: Process,
    message: str,
    *,
    params: Params,
    policy: Policy,
    pager: MMU | None = None,
    source: str = "user",
    observe: Observer | None = None,
) -> Turn:
    """Answer ``message`` as ``proc``: the generator a driver or scheduler runs.

    ``observe`` is called with every event as it happens (the shell streams them). The
    process's :class:`~llmos.kernel.proc.Quota` (falling back to ``params``) bounds the turn.
    """
    trace: list[Event] = _Trace(observe)
    q = proc.quota
    max_steps = q.max_steps or params.max_steps
    max_calls = q.max_device_calls or params.max_device_calls
    max_seconds = q.max_seconds or params.max_seconds
    started = time.monotonic()
    decoded = calls = 0
    made: set[str] = set()  # the device calls of this turn, so a repeat can be refused

    def check(name: str, used: float, limit: float | None, unit: str) -> None:
        if limit is not None and used > limit:
            raise QuotaExceeded(
                f"process {proc.pid} needs {used:g} {unit} in this run, over its quota of "
                f"{limit:g}; raise Quota.{name} (Kernel.spawn(..., quota=Quota({name}=...)))"
                + (f" or Params.{name}" if hasattr(params, name) else ""),
                quota=name,
                trace=list(trace),
            )

    if pager is not None:  # what the message needs from disk goes ahead of it
        pager.recall(proc.ram, proc.stats, message, trace, step=proc.stats.steps)
    proc.ram.append(Page(pid=proc.pid, kind="message", role="user", text=message, source=source))
    for step in range(1, max_steps + 1):
        check("max_seconds", round(time.monotonic() - started, 2), max_seconds, "s")
        if pager is not None:
            pager.fit(proc.ram, proc.stats, trace, step=proc.stats.steps)
        proc.ram.check()
        # the last step may only answer: a run that used its budget ends with what it found
        # instead of a call whose result nobody would read
        last = step == max_steps
        schema = (
            step_schema(proc.table.specs, proc.ram.pages, answer_max_chars=params.answer_max_chars,
                        values=params.ground_values, answer_only=last)
            if params.ground
            else None
        )
        request = NeedCPU(proc.ram.render(), schema, params.max_call_tokens, step, trace)
        dec: Decoding = yield request
        _count(proc, dec)
        decoded += dec.decoded_tokens
        trace.append(
            Decoded(
                pid=proc.pid, step=step, text=dec.text, prompt_tokens=dec.prompt_tokens,
                reused_tokens=dec.reused_tokens, prefilled_tokens=dec.prefilled_tokens,
                decoded_tokens=dec.decoded_tokens, forced_tokens=dec.forced_tokens,
                seconds=dec.seconds,
            )
        )
        check("max_decoded_tokens", decoded, q.max_decoded_tokens, "decoded tokens")
        check("max_seconds", round(time.monotonic() - started, 2), max_seconds, "s")
        group = uuid.uuid4().hex[:8]
        cut = cut_answer(dec.text) if dec.stop == "length" else None
        written = dec.text if cut is None else format_call(ANSWER, {"text": cut})
        proc.ram.append(
            Page(pid=proc.pid, kind="call", role="model", text=written, source="model",
                 group=group)
        )
        try:
            if cut is None and dec.stop == "length" and request.schema is not None:
                raise Fault(
                    f"your call was cut off after {dec.decoded_tokens} tokens before it was "
                    "complete; write a shorter call (shorter code, fewer or shorter values)"
                )
            call = decode_call(written)
            args = proc.table.validate(call.name, call.args)
        except Fault as fault:
            proc.stats.faults += 1
            trace.append(Faulted(pid=proc.pid, step=step, message=fault.message, text=dec.text))
            _observe(proc, f"Fault: {fault.message}", "kernel", True, group)
            continue
        if call.name == ANSWER:
            text, filtered = policy.egress(str(args.model_dump()["text"]), proc.ram.pages)
            trace.append(Answered(pid=proc.pid, step=step, text=text, filtered=filtered))
            if pager is not None:  # the answer joined RAM: leave it within budget between turns
                pager.fit(proc.ram, proc.stats, trace, step=proc.stats.steps)
            return Reply(text=text, trace=list(trace), pid=proc.pid)
        if last:  # an ungrounded CPU ignored the answer-only grammar: nothing more may run
            break
        spec = proc.table.specs[call.name]
        dumped = args.model_dump(mode="json", by_alias=True)  # as the model wrote it
        key = json.dumps([call.name, dumped], sort_keys=True)
        if key in made:  # a small model can loop on one call until the step limit
            proc.stats.faults += 1
            message = (
                f"you already called {call.name} with these arguments in this turn and its "
                "result is above; answer the user now, or make a different call"
            )
            trace.append(Faulted(pid=proc.pid, step=step, message=message, text=dec.text))
            _observe(proc, f"Fault: {message}", "kernel", True, group)
            continue
        made.add(key)
        denial = policy.allow_call(spec, dumped, proc.ram.pages)
        if denial:
            proc.stats.faults += 1
            trace.append(
                Called(pid=proc.pid, step=step, syscall=call.name, args=dumped, result=denial,
                       status="denied", source="policy")
            )
            _observe(proc, f"Fault: {denial}", "policy", True, group)
            continue
        check("max_device_calls", calls + 1, max_calls, "device calls")
        calls += 1
        outcome: Outcome = yield NeedDevice(call.name, dumped, step, trace)
        proc.stats.device_calls += 1
        if outcome.status != "ok":
            proc.stats.faults += 1
        trace.append(
            Called(pid=proc.pid, step=step, syscall=call.name, args=dumped, result=outcome.text,
                   status=outcome.status, source=outcome.source, trusted=outcome.trusted,
                   seconds=outcome.seconds)
        )
        shown = outcome.text if outcome.status == "ok" else f"Fault: {outcome.text}"
        _observe(proc, shown, outcome.source, outcome.trusted, group)
    raise StepLimitExceeded(
        f"process {proc.pid} made {max_steps} steps without answering (the last one may "
        "only answer); raise "
        "Params.max_steps or Quota.max_steps, or simplify the task",
        trace=list(trace),
    )


def _observe(proc: Process, text: str, source: str, trusted: bool, group: str) -> None:
    proc.ram.append(
        Page(pid=proc.pid, kind="result", role="device", text=text, source=source,
             trust="trusted" if trusted else "untrusted", group=group)
    )


def _count(proc: Process, dec: Decoding) -> None:
    s = proc.stats
    s.steps += 1
    s.decoded_tokens += dec.decoded_tokens
    s.forced_tokens += dec.forced_tokens
    s.prefilled_tokens += dec.prefilled_tokens
    s.reused_tokens += dec.reused_tokens
    s.cpu_seconds += dec.seconds


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
        return _decode(self.cpu, proc, req, self.params)


def _decode(cpu: CPU, proc: Process, req: NeedCPU, params: Params) -> Decoding:
    """Decode one instruction; with System 2 on, several candidates chosen by vote."""
    first = cpu.complete(
        req.prompt, schema=req.schema, max_tokens=req.max_tokens,
        temperature=params.temperature, seed=params.seed, slot=proc.pid,
    )
    if params.samples <= 1 or req.schema is None:
        return first
    candidates = [first] + [
        cpu.complete(
            req.prompt, schema=req.schema, max_tokens=req.max_tokens,
            temperature=params.sample_temperature, seed=params.seed + i, slot=proc.pid,
        )
        for i in range(1, params.samples)
    ]
    chosen, votes = vote(candidates)
    req.trace.append(Voted(pid=proc.pid, step=req.step, candidates=[c.text for c in candidates],
                           chosen=chosen, votes=votes))
    pick = candidates[chosen]
    # the step cost every candidate (the prompt was prefilled once, for the first): the
    # stats and the trace say so
    return dataclasses.replace(
        pick,
        reused_tokens=first.reused_tokens,
        prefilled_tokens=first.prefilled_tokens,
        decoded_tokens=sum(c.decoded_tokens for c in candidates),
        forced_tokens=sum(c.forced_tokens for c in candidates),
        seconds=sum(c.seconds for c in candidates),
    )


def vote(candidates: Sequence[Decoding]) -> tuple[int, int]:
    """Choose among a step's candidates by agreement; return (index, votes).

    First the syscall most candidates make; then, among those, the arguments most of them
    write (every answer's text differs, so answers vote by name alone). Ties go to the
    earlier candidate (the greedy one comes first). A candidate cut short or malformed has
    no vote.
    """
    keys: list[tuple[str, str] | None] = []
    for c in candidates:
        try:
            call = decode_call(c.text) if c.stop != "length" else None
        except Fault:
            call = None
        if call is None:
            keys.append(None)
        elif call.name == ANSWER:
            keys.append((ANSWER, ""))
        else:
            keys.append((call.name, json.dumps(call.args, sort_keys=True)))
    names = Counter(k[0] for k in keys if k is not None)
    if not names:
        return 0, 0
    top = max(names.values())
    name = next(k[0] for k in keys if k is not None and names[k[0]] == top)
    same = Counter(k for k in keys if k is not None and k[0] == name)
    best = max(same.values())
    index = next(i for i, k in enumerate(keys) if k is not None and k[0] == name
                 and same[k] == best)
    return index, best


def _switch_detail(sw: Switch) -> dict[str, Any]:
    return {
        "from": str(sw.from_slot), "source": sw.source, "restored_bytes": sw.restored_bytes,
        "restored_tokens": sw.restored_tokens, "restore_ms": round(sw.restore_seconds * 1e3, 2),
        "saved_bytes": sw.saved_bytes, "save_ms": round(sw.save_seconds * 1e3, 2),
        "spilled_bytes": sw.spilled_bytes,
    }


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
                result = proc.table.dispatch(request.name, request.args)
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
        params: kernel parameters (temperature and seed of each decode).
        slice_steps: decode steps a process may take before yielding to another ready one.
        aging: slices a ready process may be passed over before its priority rises by one.
        workers: threads for device calls; None = one per process, at most 16.
    """

    def __init__(
        self,
        cpu: CPU,
        *,
        params: Params,
        slice_steps: int = 2,
        aging: int = 3,
        workers: int | None = None,
    ) -> None:
        if slice_steps < 1 or aging < 1:
            raise UsageError(
                f"slice_steps and aging must be at least 1, not {slice_steps} and {aging}",
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
            result: Outcome | BaseException = task.proc.table.dispatch(req.name, req.args)
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
