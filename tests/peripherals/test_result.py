"""A device returns what a Python author would return; the kernel renders it or faults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from llmos import Kernel
from llmos.errors import PeripheralError, UsageError
from llmos.peripherals import Document, Peripheral, peripheral, syscall
from llmos.peripherals.result import check_returns, render
from llmos.testing import ScriptedCPU, run_syscall
from llmos.trace import Called


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"syscall": name, "args": args}


@dataclass
class Stock:
    item: str
    count: int


class Price(BaseModel):
    item: str
    cents: int


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (42, "42"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        ([1, "a", None], '[1, "a", null]'),
        ({"a": [1, {"b": False}]}, '{"a": [1, {"b": false}]}'),
        (Stock("bolt", 3), '{"item": "bolt", "count": 3}'),
        (Price(item="nut", cents=5), '{"item":"nut","cents":5}'),
        ([Stock("bolt", 3), Price(item="nut", cents=5)],
         '[{"item": "bolt", "count": 3}, {"item": "nut", "cents": 5}]'),
        ("é ünïcode", "é ünïcode"),
    ],
)
def test_render_shows_python_values_as_text_or_json(value: object, text: str) -> None:
    assert render(value) == text


def test_render_keeps_a_document_and_refuses_one_inside_json() -> None:
    doc = Document("page", "https://example.com/")
    assert render(doc) is doc
    with pytest.raises(PeripheralError, match="returned alone"):
        render([doc])


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), {1: "int key"}, [1, {2, 3}]])
def test_render_refuses_what_cannot_be_shown(value: object) -> None:
    with pytest.raises(PeripheralError):
        render(value)


@pytest.mark.parametrize(
    "tp",
    [str, int, float, bool, None, type(None), Any, object, list[int], dict[str, list[float]],
     tuple[int, ...], Stock, Price, Document, int | None, "list[Stock]"],
)
def test_renderable_return_types_pass(tp: Any) -> None:
    check_returns(eval(tp) if isinstance(tp, str) else tp, "f")


@pytest.mark.parametrize("tp", [bytes, set[int], dict[int, str], list[Document], list[bytes]])
def test_unrenderable_return_types_are_refused_naming_the_function(tp: Any) -> None:
    with pytest.raises(UsageError, match="'stock'") as info:
        check_returns(tp, "stock")
    assert info.value.code == "syscall-return"


def test_peripheral_returning_int_runs_through_the_kernel() -> None:
    @peripheral
    def stock_level(item: str) -> int:
        """How many of an item are in stock."""
        return {"bolt": 7}.get(item, 0)

    cpu = ScriptedCPU([call("stock_level", item="bolt"), call("answer", text="7 bolts.")])
    kernel = Kernel(cpu, peripherals=[stock_level()])
    reply = kernel.run(kernel.spawn(), "How many bolts?")
    assert reply.text == "7 bolts."
    (called,) = [e for e in reply.trace if isinstance(e, Called)]
    assert called.status == "ok" and called.result == "7"


def test_a_declared_type_that_cannot_be_shown_is_refused_at_declaration() -> None:
    with pytest.raises(UsageError, match="'raw_bytes'"):

        @peripheral
        def raw_bytes(n: int) -> bytes:
            """Some bytes."""
            return b"x" * n


def test_an_unexpected_value_at_run_time_is_a_fault_the_model_reads() -> None:
    @peripheral
    def sneaky(item: str) -> Any:
        """Returns something odd."""
        return {item}

    cpu = ScriptedCPU([call("sneaky", item="a"), call("answer", text="could not")])
    kernel = Kernel(cpu, peripherals=[sneaky()])
    reply = kernel.run(kernel.spawn(), "go")  # no exception out of run()
    (called,) = [e for e in reply.trace if isinstance(e, Called)]
    assert called.status == "error"
    assert "set" in called.result and "cannot be shown" in called.result
    outcome = run_syscall(sneaky(), "sneaky", {"item": "b"})
    assert outcome.status == "error"


def test_a_syscall_method_is_checked_where_it_is_declared() -> None:
    with pytest.raises(UsageError, match=r"Raw\.get"):

        class Raw(Peripheral):
            """Raw."""

            name = "raw"

            @syscall
            def get(self, args: Price) -> bytes:
                """Bytes."""
                return b""
