"""Scheduler benchmark on the embedded default model: context-switch cost and I/O overlap.

(a) **Context switch.** A slot reads a context of 512, 1024 and 2048 tokens; another slot takes
the CPU; the first one comes back. We time the restore of its saved KV state
(``llama_state_seq_set_data`` from memory) against a re-prefill of the same context from an
empty cache, and check that the next-token logits after the restore equal those of the
original read. ``switch_vs_prefill_<n>`` is restore time / re-prefill time.

(b) **Makespan.** Four processes each call a device that takes 1 s twice, then answer. They
run once one after another (``Kernel.run`` each) and once together (``Kernel.run_all``). The
ideal lower bound is the larger of the total CPU time of the scheduled run and the longest
single process (its wall time when run alone).

The CPU work in (b) is real: every step prefills the process's real rendered context on the
default model, with real KV switches, and samples as many real tokens as the call has. The
*content* of the calls is fixed (``weather`` for two cities, then ``answer``; see
:class:`FixedCallCPU`), because the 270M base model does not call a made-up device twice
reliably (left free, it ran one call to the 160-token cut), and both runs must do the same work.

Run: ``python -m benchmarks.sched [--json] [--smoke]``; the last line with ``--json`` is one
JSON object with ``switch_vs_prefill_<n>`` per context size, ``makespan_vs_sequential`` and
``makespan_vs_ideal``. ``--smoke`` runs one small size, two processes and short device calls,
in seconds (CI runs it to prove the benchmark works; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from benchmarks._common import add_smoke_arg
from llmos.cpu.base import Switch
from llmos.cpu.llama import LlamaCPU
from llmos.kernel.boot import Kernel
from llmos.kernel.cycle import Reply
from llmos.kernel.proc import Process
from llmos.params import Params
from llmos.peripherals.base import peripheral
from llmos.testing import PerProcessCPU
from llmos.trace import Decoded, Scheduled

SIZES = (512, 1024, 2048)
CITIES = [("Paris", "Rome"), ("Oslo", "Lima"), ("Cairo", "Quito"), ("Tokyo", "Perth")]
DEVICE_SECONDS = 1.0

_STORY = (
    "On day {i} the caravan left the oasis at dawn, carrying {a} sacks of salt, {b} jars of "
    "oil and letters for the northern towns; the guide noted the wind, the dunes and a "
    "well that had run dry since the season before.\n"
)


def _context(cpu: LlamaCPU, n_tokens: int) -> str:
    """A text of exactly ``n_tokens`` tokens with BOS (distinct sentences, no repetition)."""
    text, i = "", 0
    while cpu.count_tokens(text) < n_tokens:
        i += 1
        text += _STORY.format(i=i, a=7 * i % 97, b=13 * i % 89)
    ids = cpu.llama.tokenize(text.encode(), add_bos=False, special=False)[: n_tokens - 1]
    out = cpu.llama.detokenize(ids).decode("utf-8", errors="ignore")
    return str(out)


def bench_switch(cpu: LlamaCPU, repeats: int, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    results: dict[str, Any] = {}
    other = "A short note from another process about bread, cheese and the weather."
    for n in sizes:
        text = _context(cpu, n)
        cpu.reset()
        started = time.perf_counter()
        first = cpu.logits(text, slot="a")  # the original read: a full prefill
        prefill = time.perf_counter() - started
        cpu.logits(other, slot="b")  # "b" takes the CPU; "a" is saved
        restores: list[Switch] = []
        saves: list[Switch] = []  # switching "a" out copies its state out
        for _ in range(repeats):
            restores.append(cpu.switch("a"))
            saves.append(cpu.switch("b"))
        back = cpu.switch("a")
        restores.append(back)
        started = time.perf_counter()
        resumed = cpu.logits(text, slot="a")  # served from the restored state: no evaluation
        resume_eval = time.perf_counter() - started
        restore = statistics.median(s.restore_seconds for s in restores)
        save = statistics.median(s.save_seconds for s in saves)
        diff = float(np.abs(resumed - first).max())
        results[str(n)] = {
            "tokens": back.restored_tokens,
            "state_mb": round(back.restored_bytes / 2**20, 2),
            "restore_ms": round(restore * 1e3, 2),
            "save_ms": round(save * 1e3, 2),
            "resume_eval_ms": round(resume_eval * 1e3, 1),
            "prefill_s": round(prefill, 3),
            "switch_vs_prefill": restore / prefill,
            "same_argmax": int(np.argmax(resumed)) == int(np.argmax(first)),
            "max_abs_logit_diff": diff,
        }
        print(
            f"switch {n:>5} tokens: state {results[str(n)]['state_mb']} MB, restore "
            f"{restore * 1e3:.2f} ms, save {save * 1e3:.2f} ms (+{resume_eval * 1e3:.0f} ms to "
            f"tokenize and read the next logits) vs re-prefill {prefill:.2f} s -> "
            f"{restore / prefill:.5f}; logits max |diff| {diff:.2g}",
            flush=True,
        )
    cpu.reset()
    return results


class FixedCallCPU(PerProcessCPU):
    """The real CPU decodes every instruction; the call text it returns is scripted per process.

    Each step prefills the process's real rendered prompt on the real model (after a real KV
    switch) and samples as many real tokens, one by one, as the scripted call has; then the
    scripted call is returned in place of the sampled text (``PerProcessCPU`` with ``timed``).
    The CPU cost is that of decoding a call of that length (a little more: a grammar would
    fast-forward the forced tokens), and both runs do the same device work whatever the model
    would have written.
    """

    def __init__(self, inner: LlamaCPU, scripts: Mapping[int, list[dict[str, Any]]]) -> None:
        super().__init__(scripts, timed=inner)
        self.inner = inner

    def switch(self, slot: Hashable) -> Switch:
        return self.inner.switch(slot)

    def forget(self, slot: Hashable) -> None:
        self.inner.forget(slot)


def _scripts(pids: list[int], cities: list[tuple[str, str]]) -> dict[int, list[dict[str, Any]]]:
    out = {}
    for pid, (c1, c2) in zip(pids, cities, strict=True):
        out[pid] = [
            {"syscall": "weather", "args": {"city": c1}},
            {"syscall": "weather", "args": {"city": c2}},
            {"syscall": "answer", "args": {"text": f"{c1} and {c2}: 18 C, no rain."}},
        ]
    return out


def _cpu_seconds(reply: Reply) -> float:
    """Time this process held the CPU: its decodes plus the KV restores of its switches."""
    dec = sum(e.seconds for e in reply.trace if isinstance(e, Decoded))
    sw = sum(
        float(e.detail.get("restore_ms", 0.0) + e.detail.get("save_ms", 0.0)) / 1e3
        for e in reply.trace
        if isinstance(e, Scheduled) and e.what == "switch_in"
    )
    return dec + sw


def bench_makespan(
    cpu: LlamaCPU, cities: list[tuple[str, str]] = CITIES, device_seconds: float = DEVICE_SECONDS
) -> dict[str, Any]:
    messages = [f"What is the weather in {a} and in {b} today?" for a, b in cities]
    params = Params(max_steps=4)

    @peripheral
    def weather(city: str) -> str:
        """Today's weather in a city (a slow remote service: about one second)."""
        time.sleep(device_seconds)
        return f"{city}: 18 C, light wind from the west, no rain expected."

    def kernel_and_procs() -> tuple[Kernel, list[Process]]:
        cpu.reset()
        pids = list(range(1, len(cities) + 1))  # a new kernel without a disk counts from 1
        kernel = Kernel(FixedCallCPU(cpu, _scripts(pids, cities)), peripherals=[weather()],
                        params=params)
        procs = [kernel.spawn() for _ in cities]
        assert [p.pid for p in procs] == pids
        return kernel, procs

    k, procs = kernel_and_procs()
    started = time.perf_counter()
    alone: list[float] = []
    seq_replies = []
    for proc, msg in zip(procs, messages, strict=True):
        t0 = time.perf_counter()
        seq_replies.append(k.run(proc, msg))
        alone.append(time.perf_counter() - t0)
    sequential = time.perf_counter() - started
    assert all(len(r.calls) == 2 for r in seq_replies)

    k, procs = kernel_and_procs()
    started = time.perf_counter()
    replies = k.run_all(dict(zip(procs, messages, strict=True)))
    makespan = time.perf_counter() - started
    for r in replies.values():
        r.raise_for_error()
        assert len(r.calls) == 2 and all(c.status == "ok" for c in r.calls)
    cpu_total = sum(_cpu_seconds(r) for r in replies.values())
    ideal = max(cpu_total, max(alone))
    switches = [e for r in replies.values() for e in r.trace
                if isinstance(e, Scheduled) and e.what == "switch_in"]
    restored = [e for e in switches if e.detail["source"] in ("memory", "file")]
    restore_ms = statistics.median(e.detail["restore_ms"] for e in restored) if restored else 0
    print(
        f"makespan: {len(cities)} processes x 2 calls of {device_seconds:g} s: scheduled "
        f"{makespan:.2f} s, "
        f"sequential {sequential:.2f} s, ideal {ideal:.2f} s (CPU total {cpu_total:.2f} s, "
        f"longest single {max(alone):.2f} s) -> {makespan / sequential:.3f} of sequential, "
        f"{makespan / ideal:.3f}x ideal; {len(switches)} switches, {len(restored)} KV restores "
        f"(median {restore_ms:.2f} ms)",
        flush=True,
    )
    print("  (CPU work: the real model prefills each real prompt and samples as many real tokens "
          "as each call has; the calls' content is fixed, see FixedCallCPU)")
    return {
        "makespan_s": makespan,
        "sequential_s": sequential,
        "ideal_s": ideal,
        "cpu_total_s": cpu_total,
        "longest_single_s": max(alone),
        "switches": len(switches),
        "kv_restores": len(restored),
        "call_content": "fixed: real-model prefill + as many sampled tokens, scripted call text",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--repeats", type=int, default=5, help="switches timed per size")
    add_smoke_arg(parser)
    ns = parser.parse_args()
    cpu = LlamaCPU.default()
    try:
        if ns.smoke:
            switch = bench_switch(cpu, 1, sizes=(256,))
            makespan = bench_makespan(cpu, CITIES[:2], device_seconds=0.2)
        else:
            switch = bench_switch(cpu, ns.repeats)
            makespan = bench_makespan(cpu)
    finally:
        cpu.close()
    out = {
        **{f"switch_vs_prefill_{n}": r["switch_vs_prefill"] for n, r in switch.items()},
        "makespan_vs_sequential": makespan["makespan_s"] / makespan["sequential_s"],
        "makespan_vs_ideal": makespan["makespan_s"] / makespan["ideal_s"],
        "targets": {"switch_vs_prefill_2048": 0.01, "makespan_vs_ideal": 1.2},
        "switch": switch,
        "makespan": makespan,
    }
    if ns.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
