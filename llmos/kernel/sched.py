"""The instruction cycle of a process, and the driver that runs it on the CPU.

One *turn* answers one message. It is written as a generator that yields what it needs next:
:class:`NeedCPU` (decode one instruction) or :class:`NeedDevice` (run one syscall), and
receives the result. The turn itself never touches the CPU or a device, so a driver decides
where work runs: :func:`drive` runs one turn to the end in order; a scheduler can interleave
many turns, serving CPU requests on the CPU thread and device requests off it.

One step of a turn:

1. the pager fits RAM to the budget (and pages in what the turn needs);
2. the CPU decodes one syscall under the step's grounded grammar (``llmos.kernel.ground``);
3. the trap parses it (``llmos.kernel.trap``) — a malformed call is a fault the model reads;
4. ``answer`` ends the turn through the egress filter; any other call passes the policy and
   goes to its device; the call and its result are appended to the journal as one group.

Invariants: the journal is append-only during a turn (prefix-stable, so the CPU reuses its KV
cache); every decoded instruction, call, fault and answer is in the trace; a turn ends with an
answer or a :class:`~llmos.errors.RunError` carrying the trace.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmos.cpu.base import CPU, Decoding
from llmos.errors import Fault, QuotaExceeded, StepLimitExceeded
from llmos.kernel.ground import step_schema
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process, ProcState
from llmos.kernel.syscall import ANSWER, Outcome
from llmos.kernel.trace import Answered, Called, Decoded, Event, Faulted
from llmos.kernel.trap import decode_call
from llmos.memory.page import Page
from llmos.params import Params

__all__ = ["NeedCPU", "NeedDevice", "Reply", "drive", "turn"]


@dataclass(frozen=True)
class NeedCPU:
    """A turn asks the CPU to decode one instruction."""

    prompt: str
    schema: Mapping[str, Any] | None
    max_tokens: int


@dataclass(frozen=True)
class NeedDevice:
    """A turn asks for one validated, policy-checked syscall to be dispatched."""

    name: str
    args: Mapping[str, Any]


@dataclass
class Reply:
    """What ``Kernel.run`` returns: the answer and everything that led to it.

    Attributes:
        text: the answer, after the egress filter.
        trace: typed events in order (decodes, calls, faults, pages, scheduling).
        pid: the process that answered.
    """

    text: str
    trace: list[Event] = field(default_factory=list)
    pid: int = 0

    @property
    def calls(self) -> list[Called]:
        """The device calls of this turn, in order."""
        return [e for e in self.trace if isinstance(e, Called)]


Turn = Generator[NeedCPU | NeedDevice, Any, Reply]
Fit = Callable[[Process, list[Event]], None]
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
    fit: Fit | None = None,
    source: str = "user",
    observe: Observer | None = None,
) -> Turn:
    """Answer ``message`` as ``proc``: the generator a driver or scheduler runs.

    ``observe`` is called with every event as it happens (the shell streams them).
    """
    trace: list[Event] = _Trace(observe)
    proc.ram.append(Page(pid=proc.pid, kind="message", role="user", text=message, source=source))
    for step in range(1, params.max_steps + 1):
        if fit is not None:
            fit(proc, trace)
        proc.ram.check()
        schema = (
            step_schema(proc.table.specs, proc.ram.pages, answer_max_chars=params.answer_max_chars)
            if params.ground
            else None
        )
        dec: Decoding = yield NeedCPU(proc.ram.render(), schema, params.max_call_tokens)
        _count(proc, dec)
        trace.append(
            Decoded(
                pid=proc.pid, step=step, text=dec.text, prompt_tokens=dec.prompt_tokens,
                reused_tokens=dec.reused_tokens, prefilled_tokens=dec.prefilled_tokens,
                decoded_tokens=dec.decoded_tokens, forced_tokens=dec.forced_tokens,
                seconds=dec.seconds,
            )
        )
        group = uuid.uuid4().hex[:8]
        proc.ram.append(
            Page(pid=proc.pid, kind="call", role="model", text=dec.text, source="model",
                 group=group)
        )
        try:
            call = decode_call(dec.text)
            args = proc.table.validate(call.name, call.args)
        except Fault as fault:
            proc.stats.faults += 1
            trace.append(Faulted(pid=proc.pid, step=step, message=fault.message, text=dec.text))
            _observe(proc, f"Fault: {fault.message}", "kernel", True, group)
            continue
        if call.name == ANSWER:
            text, filtered = policy.egress(str(args.model_dump()["text"]), proc.ram.pages)
            trace.append(Answered(pid=proc.pid, step=step, text=text, filtered=filtered))
            return Reply(text=text, trace=list(trace), pid=proc.pid)
        spec = proc.table.specs[call.name]
        dumped = args.model_dump(mode="json")
        denial = policy.allow_call(spec, dumped, proc.ram.pages)
        if denial:
            proc.stats.faults += 1
            trace.append(
                Called(pid=proc.pid, step=step, syscall=call.name, args=dumped, result=denial,
                       status="denied", source="policy")
            )
            _observe(proc, f"Fault: {denial}", "policy", True, group)
            continue
        quota = params.max_device_calls
        if quota is not None and proc.stats.device_calls >= quota:
            raise QuotaExceeded(
                f"process {proc.pid} made {proc.stats.device_calls} device calls, its quota; "
                "raise Params.max_device_calls",
                quota="max_device_calls",
                trace=list(trace),
            )
        proc.state = ProcState.WAITING
        outcome: Outcome = yield NeedDevice(call.name, dumped)
        proc.state = ProcState.RUNNING
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
        f"process {proc.pid} made {params.max_steps} steps without answering; raise "
        "Params.max_steps, or simplify the task",
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


def drive(t: Turn, proc: Process, cpu: CPU, *, params: Params) -> Reply:
    """Run one turn to its end: decodes on ``cpu``, device calls in order on this thread."""
    proc.acquire()
    proc.state = ProcState.RUNNING
    started = time.monotonic()
    try:
        request = next(t)
        while True:
            if isinstance(request, NeedCPU):
                result: Any = cpu.complete(
                    request.prompt, schema=request.schema, max_tokens=request.max_tokens,
                    temperature=params.temperature, seed=params.seed, slot=proc.pid,
                )
            else:
                result = proc.table.dispatch(request.name, request.args)
            if params.max_seconds is not None and time.monotonic() - started > params.max_seconds:
                t.close()
                raise QuotaExceeded(
                    f"process {proc.pid} ran longer than {params.max_seconds:g} s, its wall-time "
                    "quota; raise Params.max_seconds",
                    quota="max_seconds",
                )
            request = t.send(result)
    except StopIteration as done:
        proc.state = ProcState.DONE
        reply: Reply = done.value
        return reply
    except BaseException:
        proc.state = ProcState.FAILED
        raise
    finally:
        proc.release()
