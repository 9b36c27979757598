"""The instruction cycle: one turn of a process, as a generator of CPU and device requests.

One *turn* answers one message. It yields what it needs next: :class:`NeedCPU` (decode one
instruction) or :class:`NeedDevice` (run one validated syscall), and receives the result. The
turn never touches the CPU or a device itself, so a driver decides where work runs
(``llmos.kernel.sched``: ``drive`` runs one turn in order, a ``Scheduler`` interleaves many).

When a turn starts, the pager pages in what the message needs, ahead of it. One step:

1. the pager fits RAM to the budget;
2. the CPU decodes one syscall under the step's grounded grammar (``llmos.kernel.ground``);
3. the trap (:func:`_trap`, on ``llmos.kernel.trap``) turns the text into a validated call: a
   malformed call, a call cut short at the token limit, or bad arguments is a fault the model
   reads;
4. ``answer`` ends the turn through the egress filter; any other call is screened
   (:func:`_deny`: a repeat of a call already made in this turn, or a policy denial, is a fault)
   and goes to its device with the arguments validated once; the call and its result join the
   journal as one group.

The quota meter (:class:`_Meter`) bounds the turn: steps, decoded tokens, device calls and wall
time, from the process's :class:`~llmos.kernel.proc.Quota`, falling back to ``Params``.

Trust (DESIGN §6): once untrusted text has been in RAM during the turn (``RAM.tainted``, set
when the turn starts if such text is resident, and sticky until it ends), everything the model
writes is untrusted: its calls, the faults that quote them, and the arguments that would make
a pure syscall's result trusted. Kernel messages (a denial, the loop guard) quote nothing from
outside.

Invariants: the journal is append-only during a turn (prefix-stable, so the CPU reuses its KV
cache); every decoded instruction, call, fault and answer is in the trace; a turn ends with an
answer or a :class:`~llmos.errors.RunError` carrying the trace.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from llmos.cpu.base import Decoding
from llmos.cpu.grammar import violation
from llmos.errors import Fault, LLMOSError, QuotaExceeded, StepLimitExceeded
from llmos.kernel.ground import step_schema
from llmos.kernel.policy import Policy
from llmos.kernel.proc import Process
from llmos.kernel.syscall import ANSWER, Outcome, format_call
from llmos.kernel.trap import cut_answer, decode_call, echoes_fault
from llmos.memory.page import Page, Trust
from llmos.memory.pager import PageStats
from llmos.memory.ram import RAM
from llmos.params import Params
from llmos.trace import Answered, Called, Decoded, Event, Faulted

__all__ = ["MMU", "NeedCPU", "NeedDevice", "Observer", "Reply", "Turn", "turn"]


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
    """A turn asks for one policy-checked syscall to be dispatched; ``args`` is validated."""

    name: str
    args: BaseModel
    step: int = 0
    trusted_args: bool = False  # written before the model read untrusted text this turn
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
Observer = Callable[[Event], None]


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
    meter = _Meter(proc, params, trace)
    made: set[str] = set()  # the device calls of this turn, so a repeat can be refused
    if pager is not None:  # what the message needs from disk goes ahead of it
        pager.recall(proc.ram, proc.stats, message, trace, step=proc.stats.steps)
    proc.ram.append(Page(pid=proc.pid, kind="message", role="user", text=message, source=source))
    # taint is sticky for the turn: once the model has read untrusted text, what it writes is
    # untrusted, even after that text leaves RAM (RAM.tainted)
    proc.ram.tainted = any(not p.trusted for p in proc.ram)
    for step in range(1, meter.max_steps + 1):
        meter.clock()
        if pager is not None:
            pager.fit(proc.ram, proc.stats, trace, step=proc.stats.steps)
        proc.ram.check()
        # the last step may only answer: a run that used its budget ends with what it found
        # instead of a call whose result nobody would read
        last = step == meter.max_steps
        schema = (
            step_schema(proc.table.specs, proc.ram.pages, answer_max_chars=params.answer_max_chars,
                        values=params.ground_values, answer_only=last and params.answer_last,
                        program=proc.system, sources=policy.ground_sources,
                        guard_targets=policy.monitor, require_numbers=params.require_numbers)
            if params.ground
            else None
        )
        dec: Decoding = yield NeedCPU(proc.ram.render(), schema, params.max_call_tokens, step,
                                      trace)
        _count(proc, dec)
        trace.append(_decoded(dec, proc.pid, step))
        meter.decoded(dec.decoded_tokens)
        group = uuid.uuid4().hex[:8]
        try:
            name, args = _trap(proc, dec, group, schema)
        except Fault as fault:  # it may quote what the model wrote: as trusted as that
            _fault(proc, trace, step, fault.message, dec.text, group,
                   trusted=not proc.ram.tainted)
            continue
        if name == ANSWER and echoes_fault(str(args.model_dump()["text"]), proc.ram.pages):
            # an error message is not an answer, even on the last step
            _fault(proc, trace, step, "your answer repeats an error message; fix the call that "
                   "failed, or answer the user's question from what you know", dec.text, group,
                   trusted=not proc.ram.tainted)
            continue
        if name == ANSWER:
            text, filtered = policy.egress(str(args.model_dump()["text"]), proc.ram.pages,
                                           program=proc.system)
            trace.append(Answered(pid=proc.pid, step=step, text=text, filtered=filtered))
            if pager is not None:  # the answer joined RAM: leave it within budget between turns
                pager.fit(proc.ram, proc.stats, trace, step=proc.stats.steps)
            return Reply(text=text, trace=list(trace), pid=proc.pid)
        if last and params.answer_last:  # an ungrounded CPU ignored the answer-only grammar
            break
        dumped = args.model_dump(mode="json", by_alias=True)  # as the model wrote it
        if _deny(proc, policy, made, trace, step, name, dumped, dec.text, group):
            continue
        meter.device_call()
        outcome: Outcome = yield NeedDevice(name, args, step, not proc.ram.tainted, trace)
        proc.stats.device_calls += 1
        if outcome.status != "ok":
            proc.stats.faults += 1
        trace.append(
            Called(pid=proc.pid, step=step, syscall=name, args=dumped, result=outcome.text,
                   status=outcome.status, source=outcome.source, trusted=outcome.trusted,
                   seconds=outcome.seconds)
        )
        shown = outcome.text if outcome.status == "ok" else f"Fault: {outcome.text}"
        _observe(proc, shown, outcome.source, outcome.trusted, group)
    raise StepLimitExceeded(
        f"process {proc.pid} made {meter.max_steps} steps without answering (the last one may "
        "only answer); raise Params.max_steps or Quota.max_steps, or simplify the task",
        trace=list(trace),
    )


class _Meter:
    """The quota meter of one turn: what it may spend, counted from its start."""

    def __init__(self, proc: Process, params: Params, trace: list[Event]) -> None:
        q = proc.quota
        self.max_steps = int(q.limit("max_steps", params) or params.max_steps)
        self._max_decoded = q.limit("max_decoded_tokens", params)
        self._max_calls = q.limit("max_device_calls", params)
        self._max_seconds = q.limit("max_seconds", params)
        self._pid, self._trace = proc.pid, trace
        self._started = time.monotonic()
        self._decoded = self._calls = 0

    def clock(self) -> None:
        """Check the wall time used so far."""
        used = round(time.monotonic() - self._started, 2)
        self._check("max_seconds", used, self._max_seconds, "s")

    def decoded(self, tokens: int) -> None:
        """Count the tokens one decode sampled; check them and the wall time."""
        self._decoded += tokens
        self._check("max_decoded_tokens", self._decoded, self._max_decoded, "decoded tokens")
        self.clock()

    def device_call(self) -> None:
        """Count one device call, unless it would go over the quota."""
        self._check("max_device_calls", self._calls + 1, self._max_calls, "device calls")
        self._calls += 1

    def _check(self, name: str, used: float, limit: float | None, unit: str) -> None:
        if limit is not None and used > limit:
            raise QuotaExceeded(
                f"process {self._pid} needs {used:g} {unit} in this run, over its quota of "
                f"{limit:g}; raise Quota.{name} (Kernel.spawn(..., quota=Quota({name}=...))) "
                f"or Params.{name}",
                quota=name,
                trace=list(self._trace),
            )


def _trap(
    proc: Process, dec: Decoding, group: str, schema: Mapping[str, Any] | None
) -> tuple[str, BaseModel]:
    """The decoded text joins the journal as a call; return it parsed and validated.

    An answer cut at the token limit is kept as far as it went; any other cut call, a malformed
    one, one no grammar vouched for that breaks the step's schema (a server that does not
    constrain decoding), or bad arguments raise the :class:`Fault` the model reads next.
    """
    grounded = schema is not None
    cut = cut_answer(dec.text) if dec.stop == "length" else None
    written = dec.text if cut is None else format_call(ANSWER, {"text": cut})
    # what the model writes after it has read untrusted text is untrusted too
    trust: Trust = "untrusted" if proc.ram.tainted else "trusted"
    proc.ram.append(
        Page(pid=proc.pid, kind="call", role="model", text=written, source="model", trust=trust,
             group=group)
    )
    if cut is None and dec.stop == "length" and grounded:
        raise Fault(
            f"your call was cut off after {dec.decoded_tokens} tokens before it was "
            "complete; write a shorter call (shorter code, fewer or shorter values)"
        )
    call = decode_call(written)
    if schema is not None and dec.stop == "eos":
        wrong = violation(written, schema)
        if wrong is not None:
            raise Fault(f"your call does not fit the syscall table ({wrong}); "
                        'write one JSON object: {"syscall": "<name>", "args": {...}}')
    return call.name, proc.table.validate(call.name, call.args)


def _deny(
    proc: Process, policy: Policy, made: set[str], trace: list[Event], step: int, name: str,
    dumped: dict[str, Any], text: str, group: str,
) -> bool:
    """Refuse a repeat of a call made in this turn, or a call the policy denies (True)."""
    key = json.dumps([name, dumped], sort_keys=True)
    if key in made:  # a small model can loop on one call until the step limit
        message = (
            f"you already called {name} with these arguments in this turn and its "
            "result is above; answer the user now, or make a different call"
        )
        _fault(proc, trace, step, message, text, group, trusted=True)
        return True
    made.add(key)
    denial = policy.allow_call(proc.table.specs[name], dumped, tainted=proc.ram.tainted)
    if not denial:
        return False
    proc.stats.faults += 1
    trace.append(
        Called(pid=proc.pid, step=step, syscall=name, args=dumped, result=denial,
               status="denied", source="policy")
    )
    _observe(proc, f"Fault: {denial}", "policy", True, group)
    return True


def _fault(
    proc: Process, trace: list[Event], step: int, message: str, text: str, group: str, *,
    trusted: bool,
) -> None:
    proc.stats.faults += 1
    trace.append(Faulted(pid=proc.pid, step=step, message=message, text=text))
    _observe(proc, f"Fault: {message}", "kernel", trusted, group)


def _observe(proc: Process, text: str, source: str, trusted: bool, group: str) -> None:
    proc.ram.append(
        Page(pid=proc.pid, kind="result", role="device", text=text, source=source,
             trust="trusted" if trusted else "untrusted", group=group)
    )


def _decoded(dec: Decoding, pid: int, step: int) -> Decoded:
    """The trace event of one decode: its text and what it cost."""
    cost = {k: v for k, v in dataclasses.asdict(dec).items() if k in Decoded.model_fields}
    return Decoded(pid=pid, step=step, **cost)


def _count(proc: Process, dec: Decoding) -> None:
    s = proc.stats
    s.steps += 1
    s.decoded_tokens += dec.decoded_tokens
    s.forced_tokens += dec.forced_tokens
    s.prefilled_tokens += dec.prefilled_tokens
    s.reused_tokens += dec.reused_tokens
    s.cpu_seconds += dec.seconds
