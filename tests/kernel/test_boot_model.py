"""The whole slice on the real default model: questions answered through the calculator."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel

from llmos.cpu.llama import LlamaCPU
from llmos.errors import StepLimitExceeded
from llmos.kernel.boot import Kernel
from llmos.params import Params
from llmos.peripherals.calculator import Calculator, EvaluateArgs
from llmos.trace import Answered, Called, Decoded, Faulted

pytestmark = pytest.mark.model


def test_shell_answers_the_product_through_the_calculator() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmos", "run", "--json", "What is 123456789 * 987654321?"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "121932631112635269" in result["answer"]
    calls = [e for e in result["trace"] if e["type"] == "called"]
    assert calls and calls[0]["syscall"] == "calculator.evaluate"
    assert calls[0]["result"] == "121932631112635269"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is 2 to the power of 64?", "18446744073709551616"),
        ("What is 98765 divided by 5?", "19753"),
        ("What is 4096 * 4096?", "16777216"),
    ],
)
def test_arithmetic_questions_go_through_the_calculator(
    cpu: LlamaCPU, question: str, expected: str
) -> None:
    kernel = Kernel(cpu, peripherals=[Calculator()])
    reply = kernel.run(kernel.spawn(), question)
    assert expected in reply.text
    assert any(c.syscall == "calculator.evaluate" and c.result == expected for c in reply.calls)


def test_every_decoded_instruction_is_a_valid_call(cpu: LlamaCPU) -> None:
    kernel = Kernel(cpu, peripherals=[Calculator()])
    questions = ["Hello, who are you?", "What is 12 * 12?", "Name a colour.", "What is 7 - 10?"]
    for question in questions:
        reply = kernel.run(kernel.spawn(), question)
        assert not [e for e in reply.trace if isinstance(e, Faulted)]
        for event in reply.trace:
            if isinstance(event, Decoded):
                call = json.loads(event.text)
                assert set(call) == {"syscall", "args"}
        assert isinstance(reply.trace[-1], Answered)


class _Broken(Calculator):
    """Exact arithmetic (this one is broken)."""

    def call(self, method: str, args: BaseModel) -> str:
        assert isinstance(args, EvaluateArgs)
        raise RuntimeError("the device is on fire")


def test_a_peripheral_that_raises_does_not_crash_the_kernel(cpu: LlamaCPU) -> None:
    kernel = Kernel(cpu, peripherals=[_Broken()], params=Params(max_steps=3))
    proc = kernel.spawn()
    try:
        reply = kernel.run(proc, "What is 123 * 456?")
        trace = reply.trace
    except StepLimitExceeded as exc:  # a documented end: the model kept retrying
        trace = exc.trace
    errors = [e for e in trace if isinstance(e, Called) and e.status == "error"]
    assert errors and "failed" in errors[0].result
    # and the kernel keeps serving
    kernel2 = Kernel(cpu, peripherals=[Calculator()])
    assert "56088" in kernel2.run(kernel2.spawn(), "What is 123 * 456?").text


def test_a_run_whose_budget_is_one_step_answers_on_the_real_model(cpu: LlamaCPU) -> None:
    kernel = Kernel(cpu, params=Params(max_steps=1))  # the calculator is mounted
    reply = kernel.run(kernel.spawn(), "What is 123 * 456?")
    assert reply.text and not reply.calls  # the last step may only answer


def test_an_answer_cut_at_the_token_budget_is_kept_on_the_real_model(cpu: LlamaCPU) -> None:
    kernel = Kernel(cpu, peripherals=[], params=Params(max_call_tokens=8))
    reply = kernel.run(kernel.spawn(), "Tell me the whole history of the Roman Empire.")
    assert reply.text.endswith("…") and len(reply.text) > 1
    assert not [e for e in reply.trace if isinstance(e, Faulted)]


def test_system_2_votes_on_the_real_model(cpu: LlamaCPU) -> None:
    from llmos.trace import Voted

    kernel = Kernel(cpu, params=Params(samples=3))
    reply = kernel.run(kernel.spawn(), "What is 123456789 * 987654321?")
    votes = [e for e in reply.trace if isinstance(e, Voted)]
    assert votes and all(len(v.candidates) == 3 for v in votes)
    assert "121932631112635269" in reply.text
