"""Peripherals from OpenAI-style function schemas: decoding, validation, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from llmos import Kernel
from llmos.errors import UsageError
from llmos.peripherals import Functions, Prefixed
from llmos.peripherals.functions import args_model
from llmos.testing import ScriptedCPU, run_syscall
from llmos.trace import Called

ORDER = {
    "type": "function",
    "function": {
        "name": "place_order",
        "description": "Order parts   for delivery.",
        "parameters": {
            "type": "object",
            "$defs": {
                "Line": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
                        "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                    },
                    "required": ["sku", "qty"],
                },
            },
            "properties": {
                "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}, "minItems": 1},
                "speed": {"type": "string", "enum": ["normal", "express"], "default": "normal"},
                "note": {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}]},
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
                    "required": ["city"],
                },
                "tags": {"type": "object", "additionalProperties": {"type": "boolean"}},
                "class": {"const": "retail", "description": "a name pydantic would refuse"},
            },
            "required": ["lines", "address"],
        },
    },
}
LINE = {"sku": "ABC-1", "qty": 2}
GOOD = {"lines": [LINE], "address": {"city": "Lyon"}}


def _handler(calls: list[tuple[str, dict[str, Any]]]) -> Any:
    def handle(name: str, args: dict[str, Any]) -> object:
        calls.append((name, args))
        return {"ok": True, "lines": len(args["lines"])}

    return handle


def test_a_function_becomes_a_syscall_named_exactly_with_its_schema() -> None:
    dev = Functions([ORDER], _handler([]), name="shop")
    (spec,) = dev.syscalls().values()
    assert spec.name == "place_order"
    assert spec.doc == "Order parts for delivery."
    schema = spec.args.model_json_schema()
    assert set(schema["properties"]) == {"lines", "speed", "note", "address", "tags", "class"}
    assert schema["required"] == ["lines", "address"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "args",
    [
        GOOD,
        {**GOOD, "speed": "express", "note": None, "tags": {"gift": True}, "class": "retail"},
        {**GOOD, "address": {"city": "Lyon", "zip": "69001"}, "note": "ring twice"},
    ],
)
def test_valid_arguments_reach_the_handler_by_their_schema_names(args: dict[str, Any]) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    outcome = run_syscall(Functions([ORDER], _handler(calls)), "place_order", args)
    assert outcome.status == "ok", outcome.text
    assert outcome.text == '{"ok": true, "lines": 1}'
    # schema defaults are filled in; left-out optional fields without one stay left out
    assert calls == [("place_order", {"speed": "normal", **args})]


@pytest.mark.parametrize(
    "args",
    [
        {"lines": [LINE]},  # a required field missing
        {**GOOD, "lines": []},  # minItems
        {**GOOD, "lines": [{"sku": "abc", "qty": 2}]},  # pattern (through $ref)
        {**GOOD, "lines": [{"sku": "ABC-1", "qty": 0}]},  # minimum
        {**GOOD, "speed": "overnight"},  # enum
        {**GOOD, "note": "x" * 21},  # maxLength inside anyOf
        {**GOOD, "address": {"zip": "1"}},  # a nested required field
        {**GOOD, "tags": {"gift": "maybe"}},  # additionalProperties' type
        {**GOOD, "class": "wholesale"},  # const
        {**GOOD, "surprise": 1},  # not in the schema
    ],
)
def test_invalid_arguments_never_reach_the_handler(args: dict[str, Any]) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    outcome = run_syscall(Functions([ORDER], _handler(calls)), "place_order", args)
    assert outcome.status == "fault"
    assert calls == []


@pytest.mark.parametrize(
    ("schema", "feature"),
    [
        ({"properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}, "oneOf"),
        ({"properties": {"a": {"type": "array", "uniqueItems": True}}}, "uniqueItems"),
        ({"patternProperties": {"^x": {"type": "string"}}}, "patternProperties"),
        ({"properties": {"a": {"not": {"type": "string"}}}}, "'not'"),
        ({"properties": {"a": {"$ref": "https://example.com/s.json"}}}, "https://example.com"),
        ({"properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points nowhere"),
        (
            {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
             "properties": {"a": {"$ref": "#/$defs/N"}}},
            "recursive",
        ),
        ({"properties": {"a": {"allOf": [{"type": "string"}, {"minLength": 1}]}}}, "allOf"),
        ({"properties": {"a": {"type": "array", "items": [{"type": "string"}]}}}, "tuple"),
        ({"properties": {"a": {"type": "date"}}}, "'date'"),
        ({"type": "array"}, "JSON object schema"),
    ],
)
def test_unsupported_features_are_refused_naming_them(schema: dict[str, Any], feature: str) -> None:
    fn = {"name": "f", "description": "d", "parameters": {"type": "object", **schema}}
    with pytest.raises(UsageError, match="'f'") as info:
        Functions([fn], _handler([]))
    assert feature in str(info.value)


def test_a_ref_used_twice_side_by_side_is_not_recursion() -> None:
    schema = {
        "type": "object",
        "$defs": {"P": {"type": "object", "properties": {"x": {"type": "number"}}}},
        "properties": {"a": {"$ref": "#/$defs/P"}, "b": {"$ref": "#/$defs/P"}},
    }
    model = args_model(schema, "line")
    model.model_validate({"a": {"x": 1}, "b": {"x": 2.5}})


def test_names_and_duplicates_are_checked() -> None:
    with pytest.raises(UsageError):
        Functions([{"name": "bad name!", "parameters": {}}], _handler([]))
    with pytest.raises(UsageError):
        Functions([ORDER, ORDER], _handler([]))
    with pytest.raises(UsageError):
        Functions([], _handler([]))


def test_sensitive_marks_the_named_functions() -> None:
    read = {"name": "read", "parameters": {}}
    write = {"name": "write", "parameters": {}}
    dev = Functions([read, write], _handler([]), sensitive={"write"})
    assert {n: s.sensitive for n, s in dev.syscalls().items()} == {"read": False, "write": True}
    assert all(s.sensitive for s in Functions([read], _handler([]), sensitive=True)
               .syscalls().values())


def test_the_kernel_decodes_under_the_schema_and_calls_the_handler() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    cpu = ScriptedCPU([
        {"syscall": "shop_place_order", "args": GOOD},
        {"syscall": "answer", "args": {"text": "Ordered."}},
    ])
    kernel = Kernel(cpu, peripherals=[Prefixed(Functions([ORDER], _handler(calls)), "shop_")])
    reply = kernel.run(kernel.spawn(), "Order two ABC-1 to Lyon.")
    assert reply.text == "Ordered."
    assert calls == [("place_order", {**GOOD, "speed": "normal"})]
    (called,) = [e for e in reply.trace if isinstance(e, Called)]
    assert called.status == "ok"
    # the decoding grammar is the function's schema (plus the kernel's own answer)
    assert any("shop_place_order" in str(s) for s in cpu.schemas if s is not None)
