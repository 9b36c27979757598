"""GSM8K with tools: a kernel with calculator and python versus the model answering directly.

A fixed sample of the test split (every n-th problem) is answered twice on the same model:

- ``llmos``: a kernel process with the ``calculator`` and ``python`` devices and its default
  program and worked examples (none of them from GSM8K); the answer is the process's answer.
- ``baseline``: a plain few-shot prompt (three short problems written for this script, not
  taken from GSM8K), greedy decoding, one line of reasoning that ends in "The answer is N.".

Both are scored by exact match of the final integer: the number after "The answer is" if the
text has one, else the last number in the text (thousands separators removed). For llmos the
share of answers that used a device (at least one successful device call) is reported too.

Run: ``python -m benchmarks.gsm8k --limit 20 [--json]``
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks._common import (
    add_common_args,
    borrow_llama,
    data_dir,
    every_nth,
    load_cpu,
    print_json,
    read_jsonl,
    run_both,
    sample_limit,
)
from llmos.cpu.llama import LlamaCPU
from llmos.errors import LLMOSError, RunError
from llmos.kernel.boot import Kernel
from llmos.peripherals.calculator import Calculator
from llmos.peripherals.python import Python
from llmos.trace import Called

FEW_SHOT = """\
Question: A shop sells pencils for 3 dollars each. Tom buys 4 pencils and pays with a 20 dollar \
bill. How much change does he get?
Answer: 4 pencils cost 4 * 3 = 12 dollars, so the change is 20 - 12 = 8. The answer is 8.

Question: A farm has 15 cows and twice as many sheep. How many animals does it have in all?
Answer: There are 15 * 2 = 30 sheep, so 15 + 30 = 45 animals. The answer is 45.

Question: Mia reads 12 pages a day. How many days does she need for a book of 96 pages?
Answer: She needs 96 / 12 = 8 days. The answer is 8.

"""
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_STATED = re.compile(r"answer is\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


def gold(answer: str) -> int:
    """The reference integer after ``####`` in a GSM8K solution."""
    return int(answer.rsplit("####", 1)[1].strip().replace(",", ""))


def final_number(text: str) -> float | None:
    """The stated final number of a free-text answer, or None when it has none."""
    stated = _STATED.findall(text)
    found = stated or _NUMBER.findall(text)
    if not found:
        return None
    value = found[-1].replace(",", "").rstrip(".")
    try:
        return float(value)
    except ValueError:
        return None


def is_correct(text: str, reference: int) -> bool:
    """Exact match of the final number against the reference integer."""
    value = final_number(text)
    return value is not None and value == reference


@dataclass
class Outcome:
    """One system's answer to one problem."""

    text: str
    correct: bool
    used_device: bool
    seconds: float
    error: str = ""


def run_llmos(cpu: LlamaCPU, problem: Mapping[str, Any]) -> Outcome:
    """Answer one problem with a kernel process that may call the calculator and python."""
    kernel = Kernel(cpu, peripherals=[Calculator(), Python()])
    proc = kernel.spawn()
    started = time.perf_counter()
    text, error, used = "", "", False
    try:
        reply = kernel.run(proc, problem["question"])
        text = reply.text
        used = any(c.status == "ok" for c in reply.calls)
    except RunError as exc:
        error = type(exc).__name__
        used = any(isinstance(e, Called) and e.status == "ok" for e in exc.trace)
    except LLMOSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        kernel.close()
    seconds = time.perf_counter() - started
    return Outcome(text, is_correct(text, gold(problem["answer"])), used, seconds, error)


def run_baseline(cpu: LlamaCPU, problem: Mapping[str, Any]) -> Outcome:
    """Answer one problem directly: few-shot prompt, greedy, one line."""
    prompt = f"{FEW_SHOT}Question: {problem['question']}\nAnswer:"
    started = time.perf_counter()
    with borrow_llama(cpu) as llama:
        out = llama.create_completion(
            prompt, max_tokens=160, temperature=0.0, stop=["\n", "Question:"]
        )
    text = str(out["choices"][0]["text"]).strip()
    seconds = time.perf_counter() - started
    return Outcome(text, is_correct(text, gold(problem["answer"])), False, seconds)


def _summary(outs: Sequence[Outcome]) -> dict[str, Any]:
    n = len(outs)
    seconds = sum(o.seconds for o in outs)
    return {
        "cases": n,
        "accuracy": sum(o.correct for o in outs) / n if n else 0.0,
        "device_share": sum(o.used_device for o in outs) / n if n else 0.0,
        "errors": sum(bool(o.error) for o in outs),
        "seconds": round(seconds, 2),
        "seconds_per_case": seconds / n if n else 0.0,
    }


def run(
    cpu: LlamaCPU,
    *,
    limit: int | None,
    offset: int = 0,
    baseline: bool = True,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the sample through llmos (and the baseline); return the metrics."""
    problems = every_nth(read_jsonl(data_dir() / "gsm8k" / "test.jsonl"), limit, offset=offset)
    mine, theirs = run_both(
        problems, lambda p: run_llmos(cpu, p), lambda p: run_baseline(cpu, p),
        baseline=baseline, tick=tick,
    )
    result: dict[str, Any] = {"model": cpu.name, "llmos": _summary(mine)}
    result["accuracy"] = result["llmos"]["accuracy"]
    result["device_share"] = result["llmos"]["device_share"]
    if baseline:
        result["baseline"] = _summary(theirs)
        result["baseline_accuracy"] = result["baseline"]["accuracy"]
    result["answers"] = [
        {"gold": gold(p["answer"]), "llmos": m.text} for p, m in zip(problems, mine, strict=True)
    ]
    for row, t in zip(result["answers"], theirs, strict=False):
        row["baseline"] = t.text
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.gsm8k``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gsm8k", description="GSM8K with tools"
    )
    add_common_args(parser, default_limit=20)
    ns = parser.parse_args(argv)
    cpu = load_cpu(ns.model, ns.path)
    try:
        result = run(
            cpu, limit=sample_limit(ns), offset=ns.offset, baseline=not ns.no_baseline
        )
    finally:
        cpu.close()
    if not ns.json:
        for system, s in ((k, result[k]) for k in ("llmos", "baseline") if k in result):
            print(f"gsm8k {system}: accuracy {s['accuracy']:.0%} of {s['cases']}, device used "
                  f"{s['device_share']:.0%}, {s['seconds_per_case']:.1f} s/case")
    print_json(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
