"""BFCL (Berkeley Function Calling Leaderboard v4, AST categories): llmos versus the usual baseline.

Each case offers one to four functions and one user question. Both systems see the same
functions and the same program text, on the same model:

- ``llmos``: every function becomes a peripheral at run time (``llmos.peripherals.Functions``
  over its schema; the syscall's name is the function's name exactly) with one worked example made
  mechanically from the function's own schema (placeholder values, never the case's question
  or answer; the same rule for every case). The kernel runs the question; each device call the
  process makes is one call of the answer, and answering without a call means "no call".
- ``baseline``: ``Llama.create_chat_completion(messages, tools=..., tool_choice="auto")`` with
  the ``chatml-function-calling`` chat handler, greedy.

Scoring follows BFCL's AST rules (re-implemented, nothing copied): the function name matches;
no parameter outside the schema; every expected parameter is present unless its acceptable
values include ``""``; each value equals one acceptable value (strings compared lower-cased
without spaces and ``,./-_*^``; an int is accepted for a float; lists in order; dicts key by
key). ``simple_python`` and ``multiple`` need exactly one call; ``parallel*`` need the same
number of calls as expected, matched in any order; ``irrelevance`` needs no call at all.
A call is *valid* when its name is an offered function and its arguments validate strictly
against the function's schema.

Run: ``python -m benchmarks.bfcl --category simple_python --limit 10 [--samples K] [--json]``
(``--samples K`` turns on System 2 for llmos: K candidates per step, chosen by vote).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

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
from llmos.cpu.base import CPU
from llmos.cpu.llama import LlamaCPU
from llmos.errors import LLMOSError, RunError, UsageError
from llmos.kernel.boot import Kernel
from llmos.kernel.loader import default_system
from llmos.kernel.trap import decode_call
from llmos.params import Params
from llmos.peripherals.base import Example
from llmos.peripherals.functions import Functions, args_model
from llmos.trace import Called, Decoded, Event

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
RESULT = "ok"  # what a simulated function returns: BFCL scores calls, it executes nothing
PARAMS = Params(max_steps=7, max_call_tokens=200)

# ---------------------------------------------------------------- schemas

_TYPES = {"dict": "object", "float": "number", "tuple": "array"}


def json_schema(params: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL parameter schema in standard JSON Schema (``dict``→object, ``float``→number...)."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "type" and isinstance(value, str):
                if value != "any":
                    out["type"] = _TYPES.get(value, value)
            elif key == "properties" and isinstance(value, dict):
                out[key] = {k: walk(v) for k, v in value.items()}
            else:
                out[key] = walk(value)
        return out

    schema: dict[str, Any] = walk(dict(params))
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


# ---------------------------------------------------------------- peripherals


def _placeholder(key: str, prop: Mapping[str, Any], index: int) -> Any:
    """A value for ``key`` from the schema alone: its enum, else a fixed placeholder by type."""
    if prop.get("enum"):
        return prop["enum"][0]
    kind = prop.get("type")
    if kind == "integer":
        return 3 + index
    if kind == "number":
        return 2.5 + index
    if kind == "boolean":
        return True
    if kind == "array":
        given = prop.get("items")
        items: Mapping[str, Any] = given if isinstance(given, dict) else {"type": "string"}
        return [_placeholder(key, items, index), _placeholder(key, items, index + 1)]
    if kind == "object":
        sub = prop.get("properties", {})
        # the required keys; all of them when none is required (an empty {} would teach {})
        need = [k for k in sub if k in set(prop.get("required", []))] or list(sub)
        return {k: _placeholder(k, sub[k], i) for i, k in enumerate(need)}
    return f"sample {key.replace('_', ' ')}"


def _spoken(value: Any) -> str:
    if isinstance(value, list):
        return " and ".join(_spoken(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_spoken(v)}" for k, v in value.items()) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def schema_examples(name: str, description: str, schema: Mapping[str, Any]) -> tuple[Example, ...]:
    """Worked examples for a function, made only from its schema: two calls, then one call.

    The required parameters get placeholder values (:func:`_placeholder`); optional ones are
    left out. The two-call example shows that one request may need several calls; the one-call
    example comes last, nearest the question.
    """
    props = schema.get("properties", {})
    required = [k for k in props if k in set(schema.get("required", []))]
    task = description.strip().split(". ")[0].rstrip(".") or name

    def filled(start: int) -> tuple[dict[str, Any], str]:
        args = {k: _placeholder(k, props[k], start + i) for i, k in enumerate(required)}
        return args, ", ".join(f"{k.replace('_', ' ')} {_spoken(v)}" for k, v in args.items())

    one, one_text = filled(0)
    two, two_text = filled(len(required) + 1)
    single = Example(
        question=f"{task}: {one_text}." if one_text else f"{task}.",
        calls=((name, one, RESULT),),
        answer="Done.",
    )
    if not required:
        return (single,)
    double = Example(
        question=f"{task}: {two_text}; and also {one_text}.",
        calls=((name, two, RESULT), (name, one, RESULT)),
        answer="Done.",
    )
    return (double, single)


def bfcl_function(function: Mapping[str, Any]) -> Functions:
    """One BFCL function as a device: its syscall name is the function's name exactly."""
    name = str(function["name"])
    schema = json_schema(function.get("parameters", {}))
    doc = " ".join(str(function.get("description", name)).split())
    return Functions(
        [{"name": name, "description": doc, "parameters": schema}],
        lambda _name, _args: RESULT,
        name=name,
        examples=schema_examples(name, doc, schema),
        pure=True,  # the stub's result is a constant, no outside text: it stays trusted
    )


# ---------------------------------------------------------------- the AST checker


def _norm(text: str) -> str:
    return re.sub(r"[ ,./\-_*^]", "", text.lower())


def _same(value: Any, want: Any) -> bool:
    if isinstance(want, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(want, bool) and value == want
    if isinstance(want, str):
        return isinstance(value, str) and _norm(value) == _norm(want)
    if isinstance(want, int | float):
        return isinstance(value, int | float) and float(value) == float(want)
    if isinstance(want, list):
        return (
            isinstance(value, list)
            and len(value) == len(want)
            and all(_same(v, w) for v, w in zip(value, want, strict=True))
        )
    if isinstance(want, dict):  # each key's value is a list of acceptable values
        if not isinstance(value, dict) or set(value) - set(want):
            return False
        return all(
            _acceptable(value[k], opts) if k in value else "" in opts for k, opts in want.items()
        )
    return bool(value == want)


def _acceptable(value: Any, options: Sequence[Any]) -> bool:
    return any(_same(value, opt) for opt in options)


def _type_ok(value: Any, prop: Mapping[str, Any]) -> bool:
    kind = prop.get("type")
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def call_matches(
    call: tuple[str, Mapping[str, Any]],
    expected: Mapping[str, Mapping[str, Sequence[Any]]],
    schemas: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Does one model call equal one expected call under BFCL's AST rules?"""
    name, args = call
    ((want_name, want_args),) = expected.items()
    if name != want_name or not isinstance(args, dict):
        return False
    props = schemas.get(name, {}).get("properties", {})
    if set(args) - set(want_args):
        return False
    for key, options in want_args.items():
        if key not in args:
            if "" not in options:
                return False
            continue
        if key in props and not _type_ok(args[key], props[key]):
            return False
        if not _acceptable(args[key], options):
            return False
    return True


def case_correct(
    category: str,
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    truth: Sequence[Mapping[str, Mapping[str, Sequence[Any]]]],
    schemas: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Is a case answered correctly? ``irrelevance`` needs no call; the others a full match."""
    if category == "irrelevance":
        return not calls
    if len(calls) != len(truth):
        return False
    used = [False] * len(calls)

    def assign(i: int) -> bool:  # a perfect matching between expected and made calls
        if i == len(truth):
            return True
        for j, call in enumerate(calls):
            if not used[j] and call_matches(call, truth[i], schemas):
                used[j] = True
                if assign(i + 1):
                    return True
                used[j] = False
        return False

    return assign(0)


def call_valid(call: tuple[str, Any], models: Mapping[str, type[BaseModel]]) -> bool:
    """Is the call to an offered function with arguments that validate strictly?"""
    name, args = call
    model = models.get(name)
    if model is None or not isinstance(args, dict):
        return False
    try:
        model.model_validate(args, strict=True)
    except ValidationError:
        return False
    return True


# ---------------------------------------------------------------- the two systems


@dataclass
class Outcome:
    """What one system did on one case."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def _question(case: Mapping[str, Any]) -> tuple[str, str]:
    turn = case["question"][0]
    system = "\n".join(m["content"] for m in turn if m["role"] == "system")
    user = "\n".join(m["content"] for m in turn if m["role"] == "user")
    return system, user


def _kernel_calls(trace: Sequence[Event]) -> list[tuple[str, Any]]:
    """The device calls of a trace, with the arguments exactly as the model wrote them."""
    texts = {e.step: e.text for e in trace if isinstance(e, Decoded)}
    calls: list[tuple[str, Any]] = []
    for e in trace:
        if isinstance(e, Called):
            raw = decode_call(texts[e.step])
            calls.append((raw.name, raw.args))
    return calls


def run_llmos(cpu: CPU, case: Mapping[str, Any], params: Params = PARAMS) -> Outcome:
    """Answer one case with the kernel; its device calls are the answer."""
    devices = [bfcl_function(f) for f in case["function"]]
    system, user = _question(case)
    kernel = Kernel(cpu, peripherals=devices, params=params)
    program = default_system() + (f"\n{system}" if system else "")
    proc = kernel.spawn(program)
    started = time.perf_counter()
    out = Outcome()
    try:
        reply = kernel.run(proc, user)
        out.calls = _kernel_calls(reply.trace)
    except RunError as exc:  # out of steps: the calls it made still count
        out.calls = _kernel_calls(exc.trace)
        out.error = type(exc).__name__
    except LLMOSError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - started
    return out


class _Cut(Exception):
    """The baseline ran past the budget the kernel also has (tokens per call, steps)."""


def _capped(llama: Any) -> Callable[..., Any]:
    """``llama.create_completion`` under the kernel's own budgets, for the baseline handler.

    The handler decodes argument JSON with ``max_tokens=None`` and chains calls until the model
    stops, so one case could run to the end of the context. The caps are the kernel's:
    ``max_call_tokens`` tokens per completion and ``1 + 2 * max_steps`` completions (a
    function choice, then arguments and a follow-up choice per call).
    """
    original = llama.create_completion
    count = 0

    def create_completion(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        if count > 1 + 2 * PARAMS.max_steps:
            raise _Cut(f"more than {PARAMS.max_steps} calls")
        cap = PARAMS.max_call_tokens
        kwargs["max_tokens"] = min(kwargs.get("max_tokens") or cap, cap)
        return original(*args, **kwargs)

    return create_completion


def run_baseline(cpu: LlamaCPU, case: Mapping[str, Any]) -> Outcome:
    """Answer one case the model's own way: its GGUF chat template with ``tools=`` when the
    template supports tools, else llama-cpp-python's ``chatml-function-calling`` handler."""
    if cpu.dialect is not None:
        return run_native(cpu, case)
    system, user = _question(case)
    tools = [
        {
            "type": "function",
            "function": {
                "name": f["name"],
                "description": f.get("description", ""),
                "parameters": json_schema(f.get("parameters", {})),
            },
        }
        for f in case["function"]
    ]
    messages = [
        {"role": "system", "content": default_system() + (f"\n{system}" if system else "")},
        {"role": "user", "content": user},
    ]
    out = Outcome()
    started = time.perf_counter()
    try:
        with borrow_llama(cpu, "chatml-function-calling") as llama:
            llama.create_completion = _capped(llama)  # an instance attribute, removed below
            try:
                resp = llama.create_chat_completion(
                    messages=messages,
                    tools=tools,
                    tool_choice="auto",
                    temperature=0.0,
                    max_tokens=PARAMS.max_call_tokens,
                )
            finally:
                del llama.create_completion
        for tc in resp["choices"][0]["message"].get("tool_calls") or []:
            try:
                args: Any = json.loads(tc["function"]["arguments"])
            except json.JSONDecodeError:
                args = None
            out.calls.append((tc["function"]["name"], args))
    except Exception as exc:  # the baseline may fail in any way; that case scores zero
        out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    out.seconds = time.perf_counter() - started
    return out


def _tools(case: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": f["name"],
                "description": f.get("description", ""),
                "parameters": json_schema(f.get("parameters", {})),
            },
        }
        for f in case["function"]
    ]


def run_native(cpu: LlamaCPU, case: Mapping[str, Any]) -> Outcome:
    """``create_chat_completion(tools=...)`` through the GGUF's own chat template, greedy.

    The reply's calls are read the model's way: every ``<tool_call>{...}</tool_call>`` block,
    or, when it wrote none, a bare or fenced JSON object (or list) of ``{"name", "arguments"}``.
    """
    system, user = _question(case)
    messages = [
        {"role": "system", "content": default_system() + (f"\n{system}" if system else "")},
        {"role": "user", "content": user},
    ]
    out = Outcome()
    started = time.perf_counter()
    try:
        with borrow_llama(cpu) as llama:
            resp = llama.create_chat_completion(
                messages=messages, tools=_tools(case), temperature=0.0,
                max_tokens=PARAMS.max_call_tokens * 2,
            )
        out.calls = native_calls(str(resp["choices"][0]["message"].get("content") or ""))
    except Exception as exc:  # the baseline may fail in any way; that case scores zero
        out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
    out.seconds = time.perf_counter() - started
    return out


_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def native_calls(text: str) -> list[tuple[str, Any]]:
    """The calls in a chat model's reply: tagged blocks, else one bare or fenced JSON value."""
    blocks = _TAGGED.findall(text) or [_FENCE.sub("", text.strip())]
    calls: list[tuple[str, Any]] = []
    for block in blocks:
        try:
            value = json.loads(block)
        except json.JSONDecodeError:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                args = item.get("arguments", item.get("parameters", {}))
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except json.JSONDecodeError:
                        args = None
                calls.append((item["name"], args))
    return calls


# ---------------------------------------------------------------- running a category


def load_category(category: str) -> list[dict[str, Any]]:
    """The cases of a category, each with its ``ground_truth`` (empty for irrelevance)."""
    root = data_dir() / "bfcl"
    cases = read_jsonl(root / f"BFCL_v4_{category}.json")
    if category != "irrelevance":
        truth = {
            a["id"]: a["ground_truth"]
            for a in read_jsonl(root / "possible_answer" / f"BFCL_v4_{category}.json")
        }
        for case in cases:
            case["ground_truth"] = truth[case["id"]]
    else:
        for case in cases:
            case["ground_truth"] = []
    return cases


def _summary(
    category: str, cases: Sequence[Mapping[str, Any]], outs: Sequence[Outcome]
) -> dict[str, Any]:
    correct = calls = valid = unknown = errors = 0
    seconds = 0.0
    marks: list[bool] = []  # per case, for paired comparisons across systems
    for case, out in zip(cases, outs, strict=True):
        models = {
            f["name"]: args_model(json_schema(f.get("parameters", {})), f["name"])
            for f in case["function"]
        }
        schemas = {f["name"]: json_schema(f.get("parameters", {})) for f in case["function"]}
        # a run that ended in an error is wrong, even where "no call" would have been right
        right = not out.error and case_correct(category, out.calls, case["ground_truth"], schemas)
        marks.append(right)
        correct += right
        calls += len(out.calls)
        valid += sum(call_valid(c, models) for c in out.calls)
        unknown += sum(c[0] not in models for c in out.calls)
        errors += bool(out.error)
        seconds += out.seconds
    n = len(cases)
    return {
        "cases": n,
        "accuracy": correct / n if n else 0.0,
        "calls": calls,
        "valid_rate": valid / calls if calls else 1.0,
        "unknown_calls": unknown,
        "errors": errors,
        "seconds": round(seconds, 2),
        "calls_per_s": calls / seconds if seconds else 0.0,
        "correct": marks,
    }


def run_category(
    cpu: CPU,
    category: str,
    *,
    limit: int | None,
    offset: int = 0,
    baseline: bool = True,
    tick: Callable[[], None] | None = None,
    params: Params = PARAMS,
) -> dict[str, Any]:
    """Run a category's sample through llmos (and the baseline); return the metrics."""
    cases = every_nth(load_category(category), limit, offset=offset)
    if baseline and not isinstance(cpu, LlamaCPU):
        raise UsageError("the baseline runs in process: pass --no-baseline with --cpu-url")

    def theirs_one(case: Mapping[str, Any]) -> Outcome:
        assert isinstance(cpu, LlamaCPU)
        return run_baseline(cpu, case)

    mine, theirs = run_both(
        cases, lambda c: run_llmos(cpu, c, params), theirs_one,
        baseline=baseline, tick=tick,
    )
    result: dict[str, Any] = {
        "category": category,
        "model": cpu.name,
        "llmos": _summary(category, cases, mine),
    }
    result["valid_rate"] = result["llmos"]["valid_rate"]
    result["accuracy"] = result["llmos"]["accuracy"]
    if baseline:
        result["baseline"] = _summary(category, cases, theirs)
        result["baseline_accuracy"] = result["baseline"]["accuracy"]
        result["baseline_valid_rate"] = result["baseline"]["valid_rate"]
    if category == "irrelevance":
        result["irrelevance_accuracy"] = result["accuracy"]
        if baseline:
            result["baseline_irrelevance_accuracy"] = result["baseline_accuracy"]
    result["ids"] = [c["id"] for c in cases]
    return result


# every kernel lever the ablation switches off, one at a time: what Params (and the CPU) change
LEVERS: dict[str, dict[str, Any]] = {
    "all on": {},
    "value grounding off": {"ground_values": False},
    "required-number rule off": {"require_numbers": False},
    "worked examples off": {"examples_per_device": -1},
    "loop guard off": {"loop_guard": False},
    "answer-only last step off": {"answer_last": False},
}


def ablate(
    model: Any, categories: Sequence[str], *, limit: int | None, offset: int = 0,
    paths: Sequence[str] = ("plain", "chat"), tick: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (path, lever switched off): pooled accuracy and valid calls on the same cases.

    A path the model has no template for (``chat`` on a base model) is skipped.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            cpu = load_cpu(model, path)
        except LLMOSError:
            continue
        try:
            for lever, change in LEVERS.items():
                cpu.loop_guard = bool(change.get("loop_guard", True))
                params = dataclasses.replace(
                    PARAMS, **{k: v for k, v in change.items() if k != "loop_guard"}
                )
                results = [
                    run_category(cpu, c, limit=limit, offset=offset, baseline=False,
                                 params=params, tick=tick)
                    for c in categories
                ]
                marks = [m for r in results for m in r["llmos"]["correct"]]
                calls = sum(r["llmos"]["calls"] for r in results)
                valid = sum(r["llmos"]["valid_rate"] * r["llmos"]["calls"] for r in results)
                rows.append({
                    "path": path, "lever": lever, "cases": len(marks),
                    "accuracy": sum(marks) / len(marks) if marks else 0.0,
                    "valid_rate": valid / calls if calls else 1.0,
                    "seconds": round(sum(r["llmos"]["seconds"] for r in results), 1),
                    "correct": marks,
                })
        finally:
            cpu.close()
    for row in rows:  # what switching the lever off did, against all levers on, same path
        on = next(r for r in rows if r["path"] == row["path"] and r["lever"] == "all on")
        row["delta"] = row["accuracy"] - on["accuracy"]
    return rows


def print_ablation(rows: Sequence[Mapping[str, Any]]) -> None:
    """The ablation as a table: one row per path and lever."""
    print("| path | lever | cases | accuracy | change | valid calls | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        change = "" if r["lever"] == "all on" else f"{100 * r['delta']:+.0f} pts"
        print(f"| {r['path']} | {r['lever']} | {r['cases']} | {r['accuracy']:.0%} | {change} | "
              f"{r['valid_rate']:.0%} | {r['seconds']} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bfcl", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--category", choices=(*CATEGORIES, "all"), default="simple_python")
    add_common_args(parser, default_limit=10)
    parser.add_argument(
        "--samples", type=int, default=1,
        help="System 2: candidates llmos decodes per step, chosen by vote (default 1: off)",
    )
    parser.add_argument(
        "--cpu-url", metavar="URL",
        help="decode llmos's calls on an OpenAI-compatible server (HTTPCPU); implies "
        "--no-baseline and reports how many server replies were valid for their schema",
    )
    parser.add_argument(
        "--ablate", action="store_true",
        help="one row per kernel lever switched off, for the plain and the chat path "
        "(llmos only; --category all pools the five categories)",
    )
    ns = parser.parse_args(argv)
    if ns.samples < 1:
        parser.error("--samples must be at least 1")
    if ns.ablate:
        cats = CATEGORIES if ns.category == "all" else (ns.category,)
        rows = ablate(ns.model, cats, limit=None if ns.full else ns.limit, offset=ns.offset)
        if not ns.json:
            print_ablation(rows)
        print_json({"ablation": rows, "categories": list(cats)})
        return 0
    if ns.category == "all":
        parser.error("--category all is for --ablate; run one category at a time")
    cpu: CPU
    if ns.cpu_url:
        from llmos.cpu.http import HTTPCPU

        cpu, ns.no_baseline = HTTPCPU(ns.cpu_url), True
    else:
        cpu = load_cpu(ns.model, ns.path)
    try:
        result = run_category(
            cpu,
            ns.category,
            limit=sample_limit(ns),
            offset=ns.offset,
            baseline=not ns.no_baseline,
            params=dataclasses.replace(PARAMS, samples=ns.samples),
        )
        result["samples"] = ns.samples
        if ns.cpu_url:
            calls, invalid = getattr(cpu, "calls", 0), getattr(cpu, "invalid", 0)
            result["server"] = {"calls": calls, "invalid": invalid}
            print(f"server replies valid for their schema: {calls - invalid}/{calls}")
    finally:
        cpu.close()
    if not ns.json:
        for system in ("llmos", "baseline"):
            if system in result:
                s = result[system]
                print(
                    f"{ns.category} {system}: accuracy {s['accuracy']:.0%}, valid calls "
                    f"{s['valid_rate']:.0%} of {s['calls']}, unknown {s['unknown_calls']}, "
                    f"{s['calls_per_s']:.2f} calls/s, {s['seconds']} s"
                )
    print_json(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
