"""The loader: lays out a process image, the header that precedes its journal in RAM.

The header is the program (system text), the syscall table (one line per syscall: name,
arguments, the docstring's first line) and worked examples, rendered as a transcript in the
exact form the model must continue. The default CPU is a small *base* model: it does not follow
instructions, it continues documents, so the examples carry most of the weight. Each mounted
peripheral ships its own examples; the kernel adds a generic one where no tool is needed.

The header is rendered once per process and only changes when the process is reconfigured, so
its KV state is computed once and reused by every step (prefix-stable layout, DESIGN §2).

Neighbours: ``llmos.memory.ram`` holds the header ahead of the journal; ``llmos.kernel.syscall``
supplies the specs; ``llmos.memory.ram.render_page`` renders the journal in the same form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from llmos.kernel.syscall import ANSWER, SyscallTable, format_call
from llmos.peripherals.base import Example, SyscallSpec

__all__ = ["default_system", "render_header"]


@cache
def default_system() -> str:
    """The default program text, shipped as package data."""
    return files("llmos").joinpath("prompts/system.txt").read_text(encoding="utf-8").strip()


@cache
def _kernel_examples() -> tuple[Example, ...]:
    raw = json.loads(files("llmos").joinpath("prompts/examples.json").read_text(encoding="utf-8"))
    return tuple(
        Example(
            question=e["question"],
            calls=tuple((c["syscall"], c["args"], c["result"]) for c in e["calls"]),
            answer=e["answer"],
        )
        for e in raw
    )


def _type_of(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_of(schema.get('items', {}))}]"
    return str(kind)


def signature(spec: SyscallSpec) -> str:
    """``name(field: type, optional?: type)`` for the syscall table."""
    schema = spec.args.model_json_schema()
    required = set(schema.get("required", []))
    parts = []
    for field, prop in schema.get("properties", {}).items():
        mark = "" if field in required else "?"
        parts.append(f"{field}{mark}: {_type_of(prop)}")
    return f"{spec.name}({', '.join(parts)})"


def _describe_fields(spec: SyscallSpec) -> str:
    props = spec.args.model_json_schema().get("properties", {})
    notes = [f"{k}: {v['description']}" for k, v in props.items() if v.get("description")]
    return f" ({'; '.join(notes)})" if notes else ""


def render_example(example: Example) -> str:
    """One worked example as transcript lines, in the journal's own form."""
    lines = [f"User: {example.question}"]
    for name, args, result in example.calls:
        lines.append(f"Call: {format_call(name, args)}")
        lines.append(f"Result: {result}")
    lines.append(f"Call: {format_call(ANSWER, {'text': example.answer})}")
    return "\n".join(lines) + "\n"


def _examples_for(table: SyscallTable, per_device: int) -> list[Example]:
    chosen: list[Example] = []
    names = set(table.specs)
    for dev in table.peripherals:
        usable = [e for e in dev.examples if all(c[0] in names for c in e.calls)]
        chosen.extend(usable[:per_device])
    chosen.extend(_kernel_examples())
    return chosen


def render_header(
    system: str,
    table: SyscallTable,
    *,
    per_device: int = 2,
    examples: Sequence[Example] | None = None,
    pinned: Iterable[str] = (),
) -> str:
    """The whole process header: program, syscall table, worked examples, pinned notes."""
    tools = "\n".join(
        f"- {signature(spec)}: {spec.doc}{_describe_fields(spec)}" for spec in table.specs.values()
    )
    shown = list(examples) if examples is not None else _examples_for(table, per_device)
    blocks = [system.strip(), "", "Tools:", tools, ""]
    for i, ex in enumerate(shown, 1):
        blocks.append(f"### Example {i}")
        blocks.append(render_example(ex))
    notes = [n for n in pinned]
    if notes:
        blocks.append("### Notes")
        blocks.extend(f"- {n}" for n in notes)
        blocks.append("")
    blocks.append("### Conversation")
    return "\n".join(blocks) + "\n"
