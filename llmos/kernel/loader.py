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

__all__ = ["chat_tools", "default_system", "render_header", "worked_examples"]


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
        lines.append(format_call(name, args))
        lines.append(f"Result: {result}")
    lines.append(format_call(ANSWER, {"text": example.answer}))
    return "\n".join(lines) + "\n"


def _public(schema: Any) -> Any:
    """A schema without the kernel's own annotations (``x-llmos-...``) and titles."""
    if isinstance(schema, dict):
        # a long pattern is a grammar's shape (balanced code), not something to read
        return {k: _public(v) for k, v in schema.items()
                if not k.startswith("x-llmos") and k != "title"
                and not (k == "pattern" and len(str(v)) > 80)}
    if isinstance(schema, list):
        return [_public(v) for v in schema]
    return schema


def chat_tools(table: SyscallTable) -> list[dict[str, Any]]:
    """The device syscalls as a chat template's tools (``answer`` is the plain reply there)."""
    tools = []
    for spec in table.specs.values():
        if spec.name == ANSWER:
            continue
        tools.append({"type": "function", "function": {
            "name": spec.name,
            "description": spec.doc,
            "parameters": _public(spec.args.model_json_schema()),
        }})
    return tools


def worked_examples(table: SyscallTable, per_device: int) -> list[Example]:
    """The kernel's generic examples, then up to ``per_device`` of each mounted device's."""
    return _examples_for(table, per_device)


def _examples_for(table: SyscallTable, per_device: int) -> list[Example]:
    # the kernel's generic examples come first: the device examples sit right before the
    # conversation, where a base model weighs them most
    chosen: list[Example] = list(_kernel_examples())
    names = set(table.specs)
    for dev in table.peripherals:
        usable = [e for e in dev.examples if all(c[0] in names for c in e.calls)]
        chosen.extend(usable[:per_device])
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
    # devices first, ``answer`` last: the table reads in the order a turn uses it
    specs = sorted(table.specs.values(), key=lambda s: s.name == ANSWER)
    tools = "\n".join(f"- {signature(s)}: {s.doc}{_describe_fields(s)}" for s in specs)
    shown = list(examples) if examples is not None else _examples_for(table, per_device)
    blocks = [system.strip(), "", "Tools:", tools, ""]
    # worked examples are plain transcript separated by blank lines: headings between them
    # measurably weaken how much a base model imitates them
    blocks.extend(render_example(ex) for ex in shown)
    notes = list(pinned)
    if notes:
        blocks.append("Notes:\n" + "".join(f"- {n}\n" for n in notes))
    return "\n".join(blocks)  # ends in a newline; the first message adds the blank line
