"""Grounding on its own: the expression pattern, and argument schemas normalised at mount."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from llmos.errors import UsageError
from llmos.kernel.boot import Kernel
from llmos.kernel.ground import arg_schema, expression_pattern
from llmos.kernel.syscall import SyscallTable
from llmos.peripherals.base import Peripheral, syscall
from llmos.testing import ScriptedCPU


@pytest.mark.parametrize(
    "text",
    ["12 * 7", "(12 + 7) / 3", "-12 * 7", "12*7", "3.5 * 12", "1000 // 7", "(12+7)*(12-7)"],
)
def test_the_expression_pattern_takes_arithmetic_over_grounded_numbers(text: str) -> None:
    assert re.fullmatch(expression_pattern(["12", "7", "3.5"]), text)


@pytest.mark.parametrize(
    "text",
    [
        "12",  # no operator: the answer, not a computation
        "13 * 7",  # 13 is not in the pages (nor a constant)
        "12 * 7 + __import__('os')",  # nothing but numbers and operators
        "12 ^ 7",
        " + ".join(["12"] * 12),  # at most nine terms
        "1234 * 7",  # a prefix of a grounded number is not that number
    ],
)
def test_the_expression_pattern_refuses_what_the_pages_do_not_say(text: str) -> None:
    assert not re.fullmatch(expression_pattern(["12", "7", "123"]), text)


def test_small_constants_are_always_available_and_longest_numbers_win() -> None:
    pattern = expression_pattern(["1234"])
    assert re.fullmatch(pattern, "1234 / 100")
    assert re.fullmatch(pattern, "1234 * 2")


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Tree(Peripheral):
    """A device whose argument model contains itself."""

    name = "tree"

    @syscall
    def count(self, args: Node) -> str:
        """Count the nodes."""
        return "1"


def test_a_recursive_argument_model_is_refused_when_it_is_mounted() -> None:
    with pytest.raises(UsageError, match="'Node'") as info:
        Kernel(ScriptedCPU([]), peripherals=[Tree()])
    assert info.value.code == "schema"
    with pytest.raises(UsageError):
        SyscallTable([Tree()])


def test_an_argument_schema_is_normalised_once_and_handed_out_as_a_copy() -> None:
    schema = arg_schema(ArgsWithRef)
    assert "$defs" not in schema and "title" not in schema
    assert schema["properties"]["inner"]["additionalProperties"] is False  # closed, inlined
    schema["properties"].clear()
    assert arg_schema(ArgsWithRef)["properties"]  # the cache is not touched


class Inner(BaseModel):
    x: int


class ArgsWithRef(BaseModel):
    inner: Inner
