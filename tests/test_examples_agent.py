"""The numbered examples do their job on the default model (not only exit cleanly).

Each test runs one short scenario of an example in process, on the session's default model
(``agent_cpu``), and checks what a user would look at: the device the model chose, that it
ran, and that the answer carries the device's result. The web reader's scenario is in
``tests/peripherals/test_devices_model.py`` (it shares the loopback site there).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from llmos.kernel.boot import Kernel
from llmos.peripherals.base import peripheral
from llmos.peripherals.calculator import Calculator
from llmos.peripherals.filesystem import FileSystem
from llmos.peripherals.python import Python

pytestmark = pytest.mark.model


@pytest.mark.xfail(
    strict=True,
    reason="measured on the chat path with Qwen2.5-Coder 0.5B: python.run ran, but the model "
    "answered 338350 (the sum of squares, the shape of the python device's worked example), "
    "not 5050; without worked examples it kept calling python.run until the step limit",
)
def test_python_analyst_computes_with_a_program(agent_cpu: Any) -> None:  # examples/03
    kernel = Kernel(agent_cpu, peripherals=[Python()])
    reply = kernel.run(kernel.spawn(), "What is the sum of the numbers from 1 to 100?")
    runs = [c for c in reply.calls if c.syscall == "python.run"]
    assert runs and runs[-1].status == "ok", reply.trace
    assert "5050" in reply.text


@pytest.mark.xfail(strict=False, reason="not yet measured on the chat path (the shared "
                   "machine was too loaded to run it); see the issue's closing note")
def test_files_reads_and_writes_inside_the_jail(agent_cpu: Any, tmp_path: Path) -> None:  # 05
    (tmp_path / "trip.txt").write_text("Train to Lyon leaves on Friday at 7:40 from platform 4.\n")
    kernel = Kernel(agent_cpu, peripherals=[FileSystem(tmp_path)])
    read = kernel.run(kernel.spawn(), "When is the train in trip.txt?")
    assert any(c.syscall == "fs.read" and c.status == "ok" for c in read.calls), read.trace
    assert "7:40" in read.text
    kernel.run(kernel.spawn(), "Save the line 'water the plants' in todo.txt")
    todo = tmp_path / "todo.txt"
    assert todo.exists() and "water the plants" in todo.read_text()


@peripheral
def exchange_rate(currency: str) -> str:
    """Today's exchange rate of a currency against the euro (a slow remote service)."""
    time.sleep(0.2)
    return f"1 EUR = {'1.08' if currency.upper() == 'USD' else '1.00'} {currency.upper()}"


@pytest.mark.xfail(strict=False, reason="not yet measured on the chat path (the shared "
                   "machine was too loaded to run it); see the issue's closing note")
def test_many_agents_each_do_their_job(agent_cpu: Any) -> None:  # examples/06
    kernel = Kernel(agent_cpu, peripherals=[Calculator(), Python(), exchange_rate()])
    asks = {
        kernel.spawn(peripherals=["calculator"], priority=1): ("What is 4096 * 512?", "2097152"),
        kernel.spawn(peripherals=["python"]): (
            "Use Python to add up the numbers from 1 to 100.", "5050"),
        kernel.spawn(peripherals=["exchange_rate"]): ("Look up the exchange rate of USD.", "1.08"),
    }
    replies = kernel.run_all({proc: ask for proc, (ask, _) in asks.items()})
    for proc, reply in replies.items():
        assert reply.ok, reply.error
        assert reply.calls and reply.calls[0].status == "ok", reply.trace
        assert asks[proc][1] in reply.text.replace(",", "")
