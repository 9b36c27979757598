"""Decoding benchmark: one syscall per prompt, three ways, on the embedded default model.

The same few-shot transcript prompts are decoded by

1. ``plain``: llama-cpp-python's high-level completion, greedy, stopped at a newline; a call
   counts only if it parses and validates against the schema;
2. ``gbnf``: the same with llama-cpp-python's GBNF grammar built from the same JSON schema
   (``LlamaGrammar.from_json_schema``);
3. ``llmos``: ``LlamaCPU.complete`` (llguidance mask, fast-forward of forced tokens).

Every method starts each call from the same KV state (untimed setup): *warm*, the few-shot
transcript already evaluated (a kernel's steady state, where the journal is resident: the
headline numbers), and *cold*, an empty cache (every method pays the whole prefill). Methods are
interleaved per prompt so that noise from other load on the machine hits all three alike.
The figure of merit is wall time per *valid* call. The last line with ``--json`` is one JSON
object: ``llmos_vs_gbnf`` and ``llmos_vs_plain`` (>1 means llmos is faster per valid call),
``valid_rate_<method>``, per-method details, and the cold ratios under ``"cold"``.

A second part measures KV prefix reuse across the steps of real kernel runs (``reuse``): two
turns of one process on the default model with the calculator mounted; for every step, the
prompt's tokens, how many were already in the KV cache, and how many had to be prefilled. On a
chat model the context is rendered through its template each step, so this is where a template
that re-rendered earlier turns differently would show (reuse far below the prompt).

Run: ``python -m benchmarks.decode [--repeats 3] [--kv both|warm|cold] [--json] [--smoke]``
(``--smoke``: two questions once, warm only, in seconds; CI runs it, its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from benchmarks._common import add_smoke_arg
from llmos.cpu.llama import LlamaCPU

SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "syscall": {"const": "calculator.evaluate"},
                "args": {
                    "type": "object",
                    "properties": {"expression": {"type": "string", "maxLength": 80}},
                    "required": ["expression"],
                    "additionalProperties": False,
                },
            },
            "required": ["syscall", "args"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "syscall": {"const": "answer"},
                "args": {
                    "type": "object",
                    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 200}},
                    "required": ["text"],
                    "additionalProperties": False,
                },
            },
            "required": ["syscall", "args"],
            "additionalProperties": False,
        },
    ]
}

FEW_SHOT = (
    "Each line is a question and the one call that answers it.\n"
    "Q: What is 12 * 7?\n"
    'CALL: {"syscall": "calculator.evaluate", "args": {"expression": "12 * 7"}}\n'
    "Q: What is the capital of France?\n"
    'CALL: {"syscall": "answer", "args": {"text": "Paris"}}\n'
    "Q: What is 1024 / 8 + 3?\n"
    'CALL: {"syscall": "calculator.evaluate", "args": {"expression": "1024 / 8 + 3"}}\n'
)
QUESTIONS = [
    "What is 345 + 99?",
    "What is 123456789 * 987654321?",
    "What is 2 to the power of 10?",
    "What is 17% of 250?",
]
MAX_TOKENS = 64


def _valid(text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def _methods(cpu: LlamaCPU) -> dict[str, Callable[[str], str]]:
    from llama_cpp.llama_grammar import LlamaGrammar

    llama = cpu.llama
    gbnf = LlamaGrammar.from_json_schema(json.dumps(SCHEMA), verbose=False)

    def plain(prompt: str) -> str:
        out = llama.create_completion(prompt, max_tokens=MAX_TOKENS, temperature=0.0, stop=["\n"])
        return str(out["choices"][0]["text"]).strip()

    def grammar(prompt: str) -> str:
        out = llama.create_completion(
            prompt, max_tokens=MAX_TOKENS, temperature=0.0, stop=["\n"], grammar=gbnf
        )
        return str(out["choices"][0]["text"]).strip()

    def llmos(prompt: str) -> str:
        return cpu.complete(prompt, schema=SCHEMA, max_tokens=MAX_TOKENS).text

    return {"plain": plain, "gbnf": grammar, "llmos": llmos}


def _prepare(cpu: LlamaCPU, name: str, warm: bool) -> None:
    """Give ``name`` the same starting KV state as every other method (untimed).

    Cold: an empty cache. Warm: the few-shot transcript already evaluated, as in a kernel
    whose journal is resident; each method then prefills only the question.
    """
    cpu.llama.reset()
    cpu.reset()  # empties the context and LlamaCPU's record of it
    if not warm:
        return
    if name == "llmos":
        cpu.complete(FEW_SHOT, max_tokens=1)
    else:
        cpu.llama.eval(cpu.llama.tokenize(FEW_SHOT.encode(), special=True))


def reuse(turns: Sequence[str] = ("What is 1234 * 5678?", "And what is 4321 * 8765?")
          ) -> dict[str, Any]:
    """Prefill reuse per step over kernel turns on the default model (one process)."""
    from llmos.kernel.boot import Kernel
    from llmos.peripherals.calculator import Calculator
    from llmos.trace import Decoded

    cpu = LlamaCPU.default()
    kernel = Kernel(cpu, peripherals=[Calculator()])
    proc = kernel.spawn()
    steps: list[dict[str, Any]] = []
    try:
        for message in turns:
            reply = kernel.run(proc, message)
            steps += [
                {"prompt": e.prompt_tokens, "reused": e.reused_tokens,
                 "prefilled": e.prefilled_tokens, "text": e.text}
                for e in reply.trace if isinstance(e, Decoded)
            ]
    finally:
        kernel.close()
        cpu.close()
    later = steps[1:]
    return {
        "path": "chat" if cpu.dialect is not None else "plain",
        "steps": steps,
        "reused_share_after_first": (
            sum(s["reused"] for s in later) / sum(s["prompt"] for s in later) if later else None
        ),
        "prefilled_after_first": sum(s["prefilled"] for s in later),
    }


def run(repeats: int, *, warm: bool, questions: int | None = None) -> dict[str, Any]:
    """Decode every question (the first ``questions``) ``repeats`` times with each method."""
    asked = QUESTIONS[:questions]
    cpu = LlamaCPU.default()
    methods = _methods(cpu)
    for name, fn in methods.items():  # warm up: llguidance vocabulary, grammar compile
        _prepare(cpu, name, warm)
        fn(FEW_SHOT + "Q: What is 1 + 1?\nCALL:")
    times: dict[str, list[float]] = {m: [] for m in methods}
    valid: dict[str, int] = dict.fromkeys(methods, 0)
    samples: dict[str, list[str]] = {m: [] for m in methods}
    for rep in range(repeats):
        for question in asked:
            prompt = f"{FEW_SHOT}Q: {question}\nCALL:"
            for name, fn in methods.items():
                _prepare(cpu, name, warm)
                started = time.perf_counter()
                text = fn(prompt)
                times[name].append(time.perf_counter() - started)
                valid[name] += _valid(text)
                if rep == 0:
                    samples[name].append(text)
    cpu.close()
    summary: dict[str, Any] = {
        "kv": "warm" if warm else "cold",
        "repeats": repeats,
        "calls_per_method": repeats * len(asked),
    }
    per_valid: dict[str, float | None] = {}
    for name in methods:
        n = len(times[name])
        total = sum(times[name])
        per_valid[name] = total / valid[name] if valid[name] else None
        summary[name] = {
            "median_s": round(statistics.median(times[name]), 3),
            "total_s": round(total, 2),
            "valid": valid[name],
            "valid_rate": valid[name] / n,
            "s_per_valid_call": round(total / valid[name], 3) if valid[name] else None,
            "samples": samples[name],
        }
        summary[f"valid_rate_{name}"] = valid[name] / n
    summary["valid_rate"] = {name: summary[f"valid_rate_{name}"] for name in methods}
    for other in ("gbnf", "plain"):
        mine, theirs = per_valid["llmos"], per_valid[other]
        # No valid call at all from the other method: llmos is infinitely faster; report None.
        ratio = theirs / mine if mine and theirs else None
        summary[f"llmos_vs_{other}"] = round(ratio, 2) if ratio else None
        summary[f"llmos_vs_{other}_median"] = round(
            summary[other]["median_s"] / summary["llmos"]["median_s"], 2
        )
    return summary


def main() -> None:
    """Parse arguments, run, print a table and (with --json) one JSON line last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument(
        "--kv",
        choices=["warm", "cold", "both"],
        default="both",
        help="warm: transcript already in the KV cache for every method (a kernel's steady "
        "state; the headline numbers); cold: every call prefills the whole prompt",
    )
    add_smoke_arg(parser)
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.kv = 1, "warm"
    questions = 2 if args.smoke else None
    cold = run(args.repeats, warm=False) if args.kv in ("cold", "both") else None
    summary = run(args.repeats, warm=True, questions=questions) if args.kv != "cold" else cold
    assert summary is not None
    if cold is not None and summary is not cold:
        _print(cold)
        summary["cold"] = {k: v for k, v in cold.items() if k.startswith(("llmos_vs", "valid"))}
    _print(summary)
    summary["reuse"] = reuse(("What is 1234 * 5678?",)) if args.smoke else reuse()
    _print_reuse(summary["reuse"])
    if args.json:
        print(json.dumps(summary))


def _print_reuse(r: dict[str, Any]) -> None:
    print(f"-- KV prefix reuse across kernel steps ({r['path']} path)")
    for i, s in enumerate(r["steps"], 1):
        print(f"step {i}: prompt {s['prompt']}, reused {s['reused']}, prefilled {s['prefilled']}")
    share = r["reused_share_after_first"]
    if share is not None:
        print(f"after the first step: {share:.0%} of prompt tokens reused, "
              f"{r['prefilled_after_first']} prefilled in all")


def _print(summary: dict[str, Any]) -> None:
    print(f"-- KV {summary['kv']}: {summary['calls_per_method']} calls per method")
    print(f"{'method':8} {'median s':>9} {'s/valid call':>13} {'valid':>8}")
    for name in ("plain", "gbnf", "llmos"):
        row = summary[name]
        per = row["s_per_valid_call"]
        print(
            f"{name:8} {row['median_s']:9.3f} {per if per is not None else float('nan'):13.3f} "
            f"{row['valid']:>3}/{summary['calls_per_method']:<4}"
        )
        print(f"         first outputs: {row['samples'][:2]}")
    print(
        f"llmos vs gbnf: {summary['llmos_vs_gbnf']}x per valid call "
        f"({summary['llmos_vs_gbnf_median']}x by median)"
    )
    print(
        f"llmos vs plain: {summary['llmos_vs_plain']}x per valid call "
        f"({summary['llmos_vs_plain_median']}x by median)"
    )


if __name__ == "__main__":
    main()
