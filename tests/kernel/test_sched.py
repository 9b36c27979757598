"""The scheduler on scripted CPUs: overlap, priorities, fairness, quotas, isolation, trace."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from llmos.cpu.base import Switch
from llmos.errors import CPUError, QuotaExceeded, StepLimitExceeded, UsageError
from llmos.kernel.boot import Kernel
from llmos.kernel.cycle import turn
from llmos.kernel.proc import ProcState, Quota
from llmos.kernel.sched import Scheduler
from llmos.params import Params
from llmos.peripherals.base import peripheral
from llmos.testing import PerProcessCPU, ScriptedCPU
from llmos.trace import Answered, Decoded, Event, Scheduled


def call(name: str, **args: object) -> dict[str, object]:
    return {"syscall": name, "args": args}


class SwitchingCPU(PerProcessCPU):
    """A PerProcessCPU that also reports context switches, as LlamaCPU does."""

    def __init__(self, scripts: Mapping[int, list[Any]]) -> None:
        super().__init__(scripts)
        self.slot: Hashable = 0
        self.saved: set[Hashable] = set()

    def switch(self, slot: Hashable) -> Switch:
        if slot == self.slot:
            return Switch(slot, slot)
        old, self.slot = self.slot, slot
        self.saved.add(old)
        had = slot in self.saved
        self.saved.discard(slot)
        return Switch(old, slot, saved_bytes=1000, save_seconds=0.001,
                      restored_bytes=1000 if had else 0, restore_seconds=0.001 if had else 0.0,
                      restored_tokens=10 if had else 0, source="memory" if had else "none")

    def forget(self, slot: Hashable) -> None:
        self.saved.discard(slot)


@peripheral
def double(n: int) -> str:
    """Double a number."""
    return str(2 * n)


def _kernel(cpu: Any, *devices: Any, params: Params | None = None) -> Kernel:
    return Kernel(cpu, peripherals=list(devices) or [double()], params=params)


def test_three_processes_answer_with_their_device_waits_overlapped() -> None:
    barrier = threading.Barrier(3, timeout=5)

    @peripheral
    def meet(n: int) -> str:
        """Wait for the others."""
        barrier.wait()  # breaks (a device error) unless all three calls are in flight at once
        return f"met {n}"

    scripts = {pid: [call("meet", n=pid), call("answer", text=f"p{pid} done")]
               for pid in (1, 2, 3)}
    cpu = PerProcessCPU(scripts)
    k = _kernel(cpu, meet())
    procs = [k.spawn() for _ in range(3)]
    replies = k.run_all({p: f"go {p.pid}" for p in procs})
    assert [replies[p].text for p in procs] == ["p1 done", "p2 done", "p3 done"]
    for p in procs:
        assert replies[p].ok and p.state is ProcState.DONE
        assert replies[p].calls[0].status == "ok", replies[p].calls[0].result
        whats = [e.what for e in replies[p].trace if isinstance(e, Scheduled)]
        assert "wait" in whats and "wake" in whats


def test_the_cpu_serves_another_process_while_one_waits() -> None:
    b_decoded = threading.Event()

    @peripheral
    def slow(n: int) -> str:
        """Returns once process 2 has been on the CPU."""
        return "served" if b_decoded.wait(5) else "the CPU was blocked"

    def before(slot: Hashable) -> None:
        if slot == 2:
            b_decoded.set()

    cpu = PerProcessCPU({1: [call("slow", n=1), call("answer", text="a")],
                   2: [call("answer", text="b")]}, before=before)
    k = _kernel(cpu, slow())
    a, b = k.spawn(priority=1), k.spawn()
    replies = k.run_all({a: "one", b: "two"})
    assert replies[a].calls[0].result == "served"
    assert cpu.order == [1, 2, 1]


def test_higher_priority_runs_first_and_equals_take_turns() -> None:
    loop = ["not json"] * 4 + [call("answer", text="x")]
    cpu = PerProcessCPU({1: list(loop), 2: list(loop), 3: list(loop)})
    k = _kernel(cpu, params=Params(max_steps=8))
    low, eq1, eq2 = k.spawn(), k.spawn(priority=5), k.spawn(priority=5)
    sched = Scheduler(cpu, params=replace(k.params, slice_steps=1, aging=100))
    turns = {p: turn(p, "go", params=k.params, policy=k.policy) for p in (low, eq1, eq2)}
    replies = sched.run(turns)
    assert all(r.ok for r in replies.values())
    # the two equals alternate, one step per slice; the low one runs after both are done
    assert cpu.order == [2, 3] * 5 + [1] * 5


def test_aging_keeps_a_low_priority_process_from_starving() -> None:
    busy = ["not json"] * 19 + [call("answer", text="busy")]
    cpu = PerProcessCPU({1: list(busy), 2: list(busy), 3: [call("answer", text="low")]})
    k = _kernel(cpu, params=Params(max_steps=20))
    hi1, hi2, low = k.spawn(priority=2), k.spawn(priority=2), k.spawn(priority=0)
    sched = Scheduler(cpu, params=replace(k.params, slice_steps=1, aging=2))
    replies = sched.run({p: turn(p, "go", params=k.params, policy=k.policy)
                         for p in (hi1, hi2, low)})
    assert replies[low].text == "low"
    # two priority levels at two slices each: it runs within a handful of slices, not after 40
    assert cpu.order.index(3) <= 6
    assert len(cpu.order) == 41


def test_failing_processes_do_not_disturb_the_others() -> None:
    scripts = {
        1: [call("double", n=1), call("double", n=2), call("answer", text="never")],
        2: ['{"syscall": "answer", "args": {"text": "' + "word " * 50 + '"}}'],
        3: [],  # the CPU fails for this one
        4: ["not json"] * 5,
        5: [call("double", n=21), call("answer", text="42")],
    }
    cpu = PerProcessCPU(scripts)
    k = _kernel(cpu, params=Params(max_steps=3))
    calls1 = k.spawn(quota=Quota(max_device_calls=1))
    tokens2 = k.spawn(quota=Quota(max_decoded_tokens=20))
    broken3, steps4, good5 = k.spawn(), k.spawn(), k.spawn()
    procs = [calls1, tokens2, broken3, steps4, good5]
    replies = k.run_all({p: "go" for p in procs})
    assert replies[good5].text == "42" and replies[good5].ok
    assert good5.state is ProcState.DONE
    err1 = replies[calls1].error
    assert isinstance(err1, QuotaExceeded) and err1.quota == "max_device_calls"
    assert "max_device_calls" in str(err1) and "Quota" in str(err1)
    assert len(replies[calls1].calls) == 1  # the second call never reached the device
    err2 = replies[tokens2].error
    assert isinstance(err2, QuotaExceeded) and err2.quota == "max_decoded_tokens"
    assert isinstance(replies[broken3].error, CPUError)
    assert isinstance(replies[steps4].error, StepLimitExceeded)
    for p in (calls1, tokens2, broken3, steps4):
        assert p.state is ProcState.FAILED and not replies[p].ok
        assert any(isinstance(e, Scheduled) and e.what == "failed" for e in replies[p].trace)
        with pytest.raises(type(replies[p].error)):
            replies[p].raise_for_error()


def test_wall_time_quota_names_itself() -> None:
    @peripheral
    def nap(n: int) -> str:
        """Sleep a little."""
        threading.Event().wait(0.3)
        return "rested"

    cpu = PerProcessCPU({1: [call("nap", n=1), call("answer", text="late")],
                   2: [call("answer", text="fine")]})
    k = _kernel(cpu, nap())
    sleepy, quick = k.spawn(quota=Quota(max_seconds=0.1)), k.spawn()
    replies = k.run_all({sleepy: "go", quick: "go"})
    err = replies[sleepy].error
    assert isinstance(err, QuotaExceeded) and err.quota == "max_seconds"
    assert replies[quick].text == "fine"


def test_quota_applies_to_a_single_run_too() -> None:
    k = _kernel(ScriptedCPU([call("double", n=1), call("double", n=2)]))
    with pytest.raises(QuotaExceeded) as info:
        k.run(k.spawn(quota=Quota(max_device_calls=1)), "go")
    assert info.value.quota == "max_device_calls"
    k2 = _kernel(ScriptedCPU([call("double", n=1)] * 5))
    with pytest.raises(StepLimitExceeded, match="max_steps"):
        k2.run(k2.spawn(quota=Quota(max_steps=2)), "go")


def test_bad_quota_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="max_steps"):
        Quota(max_steps=0)


def test_a_busy_process_is_refused_and_nothing_starts() -> None:
    cpu = PerProcessCPU({1: [call("answer", text="a")], 2: [call("answer", text="b")]})
    k = _kernel(cpu)
    a, b = k.spawn(), k.spawn()
    b.acquire()  # as if another thread were running it
    try:
        with pytest.raises(UsageError, match="already running"):
            k.run_all({a: "one", b: "two"})
    finally:
        b.release()
    assert cpu.order == []
    replies = k.run_all({a: "one", b: "two"})  # a was released: both run now
    assert [replies[a].text, replies[b].text] == ["a", "b"]


def test_bad_run_all_usage_is_a_clear_error() -> None:
    k = _kernel(PerProcessCPU({}))
    other = _kernel(PerProcessCPU({})).spawn()
    with pytest.raises(UsageError, match="empty"):
        k.run_all({k.spawn(): " "})
    with pytest.raises(UsageError, match="does not belong"):
        k.run_all({other: "hi"})
    with pytest.raises(UsageError, match="slice_steps"):
        Scheduler(k.cpu, params=Params(slice_steps=0))


def test_switches_and_their_kv_cost_are_in_the_trace() -> None:
    scripts = {pid: [call("double", n=pid), call("answer", text=str(2 * pid))]
               for pid in (1, 2)}
    cpu = SwitchingCPU(scripts)
    k = _kernel(cpu)
    a, b = k.spawn(), k.spawn()
    seen: list[Event] = []
    replies = k.run_all({a: "one", b: "two"}, observe=seen.append)
    switches = [e for e in replies[a].trace if isinstance(e, Scheduled) and e.what == "switch_in"]
    assert switches[0].detail["source"] == "none"  # first time on the CPU: nothing to restore
    restored = [s for s in switches if s.detail["source"] == "memory"]
    assert restored and restored[0].detail["restored_bytes"] == 1000
    assert "restore_ms" in restored[0].detail and "saved_bytes" in restored[0].detail
    assert a.stats.switches == len(switches)
    # the observer saw both processes' events, interleaved as they happened (2 decodes while
    # 1 waits; which device returns first is up to the threads)
    pids = [e.pid for e in seen if isinstance(e, Decoded)]
    assert pids[:2] == [1, 2] and sorted(pids) == [1, 1, 2, 2]
    assert sum(isinstance(e, Answered) for e in seen) == 2


def test_single_run_records_switches_on_a_switching_cpu() -> None:
    cpu = SwitchingCPU({1: [call("answer", text="hi")]})
    k = _kernel(cpu)
    reply = k.run(k.spawn(), "hello")
    assert [e.what for e in reply.trace if isinstance(e, Scheduled)] == ["switch_in"]
