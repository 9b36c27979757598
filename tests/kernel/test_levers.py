"""Kernel levers that the BFCL ablation switches off, and the rule that a fault is no answer."""

from __future__ import annotations

import pytest

from llmos.errors import StepLimitExceeded
from llmos.kernel.boot import Kernel
from llmos.kernel.trap import echoes_fault
from llmos.memory.page import Page
from llmos.params import Params
from llmos.peripherals.base import Fault, peripheral
from llmos.testing import ScriptedCPU
from llmos.trace import Faulted


@peripheral
def double(n: int) -> str:
    """Double a number."""
    return str(2 * n)


@peripheral
def parse(text: str) -> str:
    """Parse some text."""
    raise Fault("SyntaxError: unmatched '}' (line 4)")


def call(name: str, **args: object) -> dict[str, object]:
    return {"syscall": name, "args": args}


def _offered(cpu: ScriptedCPU) -> list[str]:
    schema = cpu.schemas[0]
    assert schema is not None
    return [b["properties"]["syscall"]["const"] for b in schema["anyOf"]]


def test_the_required_number_rule_can_be_switched_off() -> None:
    on = ScriptedCPU([call("answer", text="no number")])
    kernel = Kernel(on, peripherals=[double()])
    kernel.run(kernel.spawn(), "hi")
    assert _offered(on) == ["answer"]  # nothing in RAM can fill n
    off = ScriptedCPU([call("answer", text="no number")])
    k = Kernel(off, peripherals=[double()], params=Params(require_numbers=False))
    k.run(k.spawn(), "hi")
    assert sorted(_offered(off)) == ["answer", "double"]


def test_without_the_answer_only_last_step_a_run_may_call_to_the_end() -> None:
    cpu = ScriptedCPU([call("double", n=i) for i in range(1, 5)])
    k = Kernel(cpu, peripherals=[double()], params=Params(max_steps=3, answer_last=False))
    with pytest.raises(StepLimitExceeded) as info:
        k.run(k.spawn(), "double 1, 2 and 3")
    assert len([e for e in info.value.trace if e.type == "called"]) == 3


def test_an_answer_that_repeats_a_fault_is_refused_even_on_the_last_step() -> None:
    cpu = ScriptedCPU([call("parse", text="x"),
                       call("answer", text="Fault: SyntaxError: unmatched '}' (line 4)")])
    k = Kernel(cpu, peripherals=[parse()], params=Params(max_steps=2, ground=False))
    with pytest.raises(StepLimitExceeded) as info:
        k.run(k.spawn(), "parse x")
    assert any(isinstance(e, Faulted) and "repeats an error" in e.message
               for e in info.value.trace)


def test_echoes_fault_reads_the_faults_in_ram() -> None:
    pages = [Page(kind="result", role="device", text="Fault: SyntaxError: unmatched '}' (line 4)")]
    assert echoes_fault("fault: something", [])
    assert echoes_fault("The error is SyntaxError: unmatched '}' (line 4).", pages)
    assert not echoes_fault("The answer is 14.", pages)
