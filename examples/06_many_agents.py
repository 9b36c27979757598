"""Three agents with different devices time-share one model; their events interleave.

Shows: spawning processes with different capabilities (devices) and priorities on one kernel,
``Kernel.run_all`` answering all of them together, and the scheduling events in the stream:
a process waits on its device while another decodes (``wait``/``wake``), and each switch onto
the CPU restores that process's KV state instead of re-reading its context (``switch_in``,
with the bytes and milliseconds it cost). A failed process would come back with
``reply.error`` set, without stopping the others.

Run:
    python examples/06_many_agents.py
"""

from __future__ import annotations

import time

from llmos import Kernel
from llmos.kernel import Called, Decoded, Event, Scheduled
from llmos.peripherals.base import peripheral
from llmos.peripherals.calculator import Calculator
from llmos.peripherals.python import Python


@peripheral
def exchange_rate(currency: str) -> str:
    """Today's exchange rate of a currency against the euro (a slow remote service)."""
    time.sleep(1.0)  # the network: the CPU serves the other agents meanwhile
    rates = {"USD": "1.08", "GBP": "0.85", "JPY": "162.4", "CHF": "0.96"}
    return f"1 EUR = {rates.get(currency.upper(), '1.00')} {currency.upper()}"


def show(event: Event) -> None:
    who = f"[agent {event.pid}]"
    if isinstance(event, Scheduled):
        d = event.detail
        if event.what == "switch_in" and d["source"] in ("memory", "file"):
            print(f"{who} on the CPU: KV state restored, {d['restored_tokens']} tokens, "
                  f"{d['restored_bytes'] / 2**20:.1f} MB in {d['restore_ms']:.1f} ms")
        elif event.what == "switch_in":
            print(f"{who} on the CPU (reuses {d['from']}'s shared prefix)")
        else:
            print(f"{who} {event.what} {d}")
    elif isinstance(event, Decoded):
        print(f"{who} decoded {event.text}  ({event.seconds:.2f} s, "
              f"{event.prefilled_tokens} tokens prefilled)")
    elif isinstance(event, Called):
        print(f"{who} {event.syscall} -> {event.result[:60]!r}")


def main() -> None:
    kernel = Kernel(peripherals=[Calculator(), Python(), exchange_rate()])
    asks = {
        kernel.spawn(peripherals=["calculator"], priority=1): "What is 4096 * 512?",
        kernel.spawn(peripherals=["python"]): "Use Python to add up the numbers from 1 to 100.",
        kernel.spawn(peripherals=["exchange_rate"]): "Look up the exchange rate of USD.",
    }
    started = time.perf_counter()
    replies = kernel.run_all(asks, observe=show)
    print(f"\nall three finished in {time.perf_counter() - started:.1f} s")
    for proc, reply in replies.items():
        outcome = reply.text if reply.ok else f"failed: {reply.error}"
        print(f"agent {proc.pid} ({asks[proc]!r}): {outcome}")
        print(f"   {proc.stats.switches} switches, {proc.stats.cpu_seconds:.2f} s on the CPU, "
              f"{proc.stats.device_seconds:.2f} s in devices")
    kernel.close()


if __name__ == "__main__":
    main()
