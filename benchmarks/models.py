"""Model benchmark: speed and memory of each packaged model, and 1 against 2 threads.

For each packaged model that is installed, a fresh worker process (so that its peak RSS is its
own) measures:

- ``load_s``: ``LlamaCPU.named(name)`` on an already assembled, stamped file (the cost of every
  start after the first), and ``warmup_s``: the first call, which builds the grammar's tables
  over the model's vocabulary (once per loaded model);
- ``decode_tps_1`` and ``decode_tps_2``: free decoding speed in tokens/s with 1 and with 2
  threads, on the same loaded model, the two thread counts alternated round by round so that
  other load on the machine hits both alike; the prompt is prefilled first, so the time is
  decoding only. ``threads_2_vs_1`` is the ratio of the medians (>1: two threads are faster);
- ``decode_tps_cpu``: the 1-thread decoding speed per CPU-second the worker used: what one core
  of its own would give. On a shared machine wall times stretch with the others' load; CPU
  seconds do not (much), so this is the figure to compare with a quiet machine;
- ``call_s``: the median wall time of one syscall decoded by the kernel (``Decoded.seconds``:
  prefill of what is new plus decoding under the grammar), over every step of a few short
  questions with the calculator mounted, on one thread; ``calls_under_3s`` is the share of
  calls under 3 s, and ``call_cpu_s`` the median CPU seconds per call (per question: the
  process's CPU time over its steps); ``threads_auto`` records what ``free_cores()`` chose;
- ``rss_mb``: the worker's peak resident memory, and ``rss_base_mb``, the same worker's before
  the model was loaded (Python, numpy, llama.cpp's library): the difference is the model's;
- ``load_avg``: the machine's 1-minute load average when the worker ended (absolute times
  on a shared machine mean little without it).

Ratios against a baseline measured in the same run: every model's numbers are divided by those
of the ``tiny`` model (Gemma 3 270M, the former default), e.g. ``call_cpu_vs_tiny`` = this
model's median CPU seconds per call / tiny's (``decode_vs_tiny``, ``decode_cpu_vs_tiny``,
``call_vs_tiny``, ``rss_vs_tiny`` likewise). ``--smoke`` runs the tiny model only, with a
handful of tokens and one question, in seconds.

Run: ``python -m benchmarks.models [--models tiny,qwen-0.5b,qwen-1.5b] [--rounds 3]
[--tokens 64] [--smoke] [--json]``; with ``--json`` the last line is one JSON object
``{"models": {name: {...}}, "baseline": "tiny"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._common import add_smoke_arg, last_json_line, print_json
from llmos.cpu.llama import LlamaCPU
from llmos.cpu.models import MODELS, free_cores, installed
from llmos.errors import RunError
from llmos.kernel.boot import Kernel
from llmos.params import Params
from llmos.peripherals.calculator import Calculator
from llmos.trace import Decoded, Event

BASELINE = "tiny"
STORY = "Write a short story about a lighthouse keeper and a storm.\n\nThe"
QUESTIONS = (
    "What is 1234 * 5678?",
    "What is the square root of 7921?",
    "How many seconds are in 3 days?",
    "What is 15% of 2480?",
)


def _sig(x: float) -> float:
    """``x`` to three significant digits (a slow speed must not round to zero)."""
    return float(f"{x:.3g}")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _threads(cpu: LlamaCPU, n: int) -> None:
    """Give the loaded model ``n`` threads (llama.cpp can change them between calls)."""
    import llama_cpp

    llama_cpp.llama_set_n_threads(cpu.llama.ctx, n, n)


def decode_speed(
    cpu: LlamaCPU, threads: Sequence[int], rounds: int, tokens: int
) -> tuple[dict[int, float], float]:
    """Median free-decoding tokens/s per thread count (alternated each round), and the 1-thread
    speed per CPU-second (what a core of its own would give, whatever else the machine runs)."""
    speeds: dict[int, list[float]] = {n: [] for n in threads}
    per_cpu: list[float] = []
    for _ in range(rounds):
        for n in threads:
            _threads(cpu, n)
            cpu.reset()
            cpu.logits(STORY)  # prefill untimed: what follows times decoding only
            cpu_started = time.process_time()
            out = cpu.complete(STORY, max_tokens=tokens, temperature=0.7, seed=1)
            speeds[n].append(out.decoded_tokens / out.seconds)
            if n == 1:
                per_cpu.append(out.decoded_tokens / (time.process_time() - cpu_started))
    return {n: statistics.median(v) for n, v in speeds.items()}, statistics.median(per_cpu)


def call_times(cpu: LlamaCPU, questions: Sequence[str]) -> tuple[list[float], list[float]]:
    """Wall seconds of every instruction the kernel decoded while answering ``questions``, and
    per question the process's CPU seconds per instruction (device time included, tiny here)."""
    seconds: list[float] = []
    cpu_per_call: list[float] = []

    def observe(event: Event) -> None:
        if isinstance(event, Decoded):
            seconds.append(event.seconds)

    cpu.reset()
    kernel = Kernel(cpu, peripherals=[Calculator()], params=Params(max_steps=4))
    for question in questions:
        before, cpu_started = len(seconds), time.process_time()
        # a run that did not answer still decoded its steps: they count
        with contextlib.suppress(RunError):
            kernel.run(kernel.spawn(), question, observe=observe)
        if len(seconds) > before:
            cpu_per_call.append((time.process_time() - cpu_started) / (len(seconds) - before))
    return seconds, cpu_per_call


def measure(name: str, *, rounds: int, tokens: int, questions: Sequence[str]) -> dict[str, Any]:
    """Every number for one model, in this process (run it in a fresh one for ``rss_mb``)."""
    base = _rss_mb()
    auto = free_cores()
    started = time.perf_counter()
    cpu = LlamaCPU.named(name, n_threads=auto)
    load = time.perf_counter() - started
    try:
        started = time.perf_counter()
        cpu.complete("Hello", max_tokens=1)  # builds the grammar's vocabulary tables, once
        warmup = time.perf_counter() - started
        speed, tps_cpu = decode_speed(cpu, (1, 2), rounds, tokens)
        _threads(cpu, 1)  # one thread, so that CPU seconds are what one idle core would take
        calls, calls_cpu = call_times(cpu, questions)
    finally:
        cpu.close()
    return {
        "model": MODELS[name].title,
        "size_mb": round(MODELS[name].size / 1e6),
        "load_s": round(load, 2),
        "warmup_s": round(warmup, 2),
        "decode_tps_1": _sig(speed[1]),
        "decode_tps_2": _sig(speed[2]),
        "threads_2_vs_1": _sig(speed[2] / speed[1]),
        "decode_tps_cpu": _sig(tps_cpu),
        "threads_auto": auto,
        "call_s": round(statistics.median(calls), 2),
        "calls": len(calls),
        "calls_under_3s": round(sum(s < 3.0 for s in calls) / len(calls), 2),
        "call_cpu_s": _sig(statistics.median(calls_cpu)),
        "rss_base_mb": round(base),
        "rss_mb": round(_rss_mb()),
        "load_avg": round(os.getloadavg()[0], 1),  # other work on the machine, at the end
    }


def _worker(name: str, rounds: int, tokens: int, questions: int) -> dict[str, Any]:
    """Run :func:`measure` for ``name`` in a fresh Python process and parse its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.models", "--worker", name, "--rounds", str(rounds),
         "--tokens", str(tokens), "--questions", str(questions)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the worker for {name!r} failed: {done.stderr[-2000:]}")
    return last_json_line(done.stdout)


def run(names: Sequence[str], *, rounds: int, tokens: int, questions: int) -> dict[str, Any]:
    """Measure each model in its own worker, then add the ratios against the baseline."""
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = _worker(name, rounds, tokens, questions)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    base = results.get(BASELINE)
    if base is not None:
        for row in results.values():
            row["decode_vs_tiny"] = _sig(row["decode_tps_1"] / base["decode_tps_1"])
            row["decode_cpu_vs_tiny"] = _sig(row["decode_tps_cpu"] / base["decode_tps_cpu"])
            row["call_vs_tiny"] = _sig(row["call_s"] / base["call_s"])
            row["call_cpu_vs_tiny"] = _sig(row["call_cpu_s"] / base["call_cpu_s"])
            row["rss_vs_tiny"] = _sig(row["rss_mb"] / base["rss_mb"])
    return {"baseline": BASELINE if base else None, "models": results}


def _table(result: dict[str, Any]) -> str:
    head = ("model", "size MB", "load s", "tok/s 1T", "tok/s 2T", "2T/1T", "tok/CPU-s",
            "call s (med)", "<3 s", "call CPU-s", "peak RSS MB", "load avg",
            "vs tiny: tok/CPU-s", "call CPU-s", "RSS")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in result["models"].items():
        cells = (name, r["size_mb"], r["load_s"], r["decode_tps_1"], r["decode_tps_2"],
                 r["threads_2_vs_1"], r["decode_tps_cpu"], r["call_s"],
                 f"{r['calls_under_3s']:.0%}", r["call_cpu_s"], r["rss_mb"], r["load_avg"],
                 r.get("decode_cpu_vs_tiny", "-"), r.get("call_cpu_vs_tiny", "-"),
                 r.get("rss_vs_tiny", "-"))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__)
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="decode rounds per thread count")
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per round")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="kernel questions")
    add_smoke_arg(parser)  # the tiny model only, a few tokens, one question
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.worker:
        print_json(measure(ns.worker, rounds=ns.rounds, tokens=ns.tokens,
                           questions=QUESTIONS[: ns.questions]))
        return 0
    if ns.smoke:
        names, ns.rounds, ns.tokens, ns.questions = [BASELINE], 1, 4, 1
    elif ns.models:
        names = [n.strip() for n in ns.models.split(",") if n.strip()]
    else:
        names = [n for n in MODELS if installed(n)]
    missing = [n for n in names if n not in MODELS or not installed(n)]
    if missing:
        parser.error(f"not installed or unknown: {', '.join(missing)} (see `llmos models`)")
    result = run(names, rounds=ns.rounds, tokens=ns.tokens, questions=ns.questions)
    print(_table(result))
    if ns.json:
        print_json(result)
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
