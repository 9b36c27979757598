"""The calculator: exact results, clear faults, and bounded work on hostile expressions."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos.errors import Fault
from llmos.kernel.syscall import SyscallTable
from llmos.peripherals.base import GROUNDED_KEY, Example
from llmos.peripherals.calculator import Calculator, EvaluateArgs


def calc(expression: str) -> str:
    return Calculator().evaluate(EvaluateArgs(expression=expression))


def fault(expression: str) -> str:
    with pytest.raises(Fault) as info:
        calc(expression)
    return info.value.message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("123456789 * 987654321", "121932631112635269"),
        ("12 * (3 + 4)", "84"),
        ("2 + 3 * 4 ** 2", "50"),
        ("(2 + 3) * 4", "20"),
        ("-2 ** 2", "-4"),
        ("2 ** -1", "0.5"),
        ("2 ** 3 ** 2", "512"),
        ("2 ^ 10", "1024"),
        ("7 - 10", "-3"),
        ("-7 // 2", "-4"),
        ("-7 % 3", "2"),
        ("10.5 % 3", "1.5"),
        ("1 << 10", "1024"),
        ("1024 >> 3", "128"),
        ("3 × 4 ÷ 6 \u2212 1", "1"),
        ("1_000_000 * 3", "3000000"),
        ("2 ** 100", "1267650600228229401496703205376"),
        ("99999999999999999999 + 1", "100000000000000000000"),
    ],
)
def test_integers_and_precedence(expression: str, expected: str) -> None:
    assert calc(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0.1 + 0.2", "0.3"),
        ("1/8", "0.125"),
        ("90 / 4", "22.5"),
        ("1 / 3 * 3", "1"),
        ("1/3", "1/3 ≈ 0.33333333333333333333"),
        ("22/7", "22/7 ≈ 3.1428571428571428571"),
        ("-1/6", "-1/6 ≈ -0.16666666666666666667"),
        ("1.5e-3 * 2", "0.003"),
        ("1e3", "1000"),
        (".5 + 5.", "5.5"),
        ("0.1 * 3", "0.3"),
        ("19.99 * 3", "59.97"),
    ],
)
def test_fractions_and_decimals_are_exact(expression: str, expected: str) -> None:
    assert calc(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sqrt(16)", "4"),
        ("sqrt(1/4)", "0.5"),
        ("sqrt(2)", "1.4142135623730950488"),
        ("math.sqrt(81)", "9"),
        ("8 ** (1/3)", "2"),
        ("2 ** 0.5", "1.4142135623730950488"),
        ("factorial(20)", "2432902008176640000"),
        ("gcd(12, 18, 30)", "6"),
        ("lcm(4, 6)", "12"),
        ("abs(-3.5)", "3.5"),
        ("round(2.5)", "3"),
        ("round(-2.5)", "-3"),
        ("round(3.14159, 2)", "3.14"),
        ("round(2.675, 2)", "2.68"),
        ("floor(-2.5)", "-3"),
        ("ceil(2.1)", "3"),
        ("min(3, 1/2, 2)", "0.5"),
        ("max(1, pi)", "3.1415926535897932385"),
        ("log(100, 10)", "2"),
        ("log10(1000)", "3"),
        ("log2(1024)", "10"),
        ("log(e)", "1"),
        ("exp(1)", "2.7182818284590452354"),
        ("pi", "3.1415926535897932385"),
        ("sin(pi/2)", "1"),
        ("sin(pi)", "0"),
        ("cos(pi)", "-1"),
        ("tan(pi/4)", "1"),
        ("sin(-pi/6)", "-0.5"),
        ("sin(1)", "0.84147098480789650665"),
        ("sin(10**50)", "-0.78967249342931008271"),
        ("sqrt(2) * sqrt(2)", "2"),
    ],
)
def test_functions(expression: str, expected: str) -> None:
    assert calc(expression) == expected


def test_big_results_beyond_pythons_str_limit() -> None:
    out = calc("2 ** 33219")  # 10000 digits: more than Python's 4300-digit str() cap
    assert len(out) == 10_000
    assert out[:20] == str(2**33219 // 10**9980)
    assert out[-20:] == str(2**33219 % 10**20).rjust(20, "0")
    literal = "7" * 5000
    assert calc(f"{literal} + 1") == "7" * 4999 + "8"
    assert calc("factorial(3248)").startswith("1973")


@pytest.mark.parametrize(
    ("expression", "hint"),
    [
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("x + 1", "unknown name 'x': use numbers"),
        ("sqrt(-1)", "no real result"),
        ("(-8) ** (1/3)", "no real result"),
        ("log(0)", "positive"),
        ("factorial(2.5)", "whole number"),
        ("factorial(-1)", ">= 0"),
        ("2(3)", "write '*'"),
        ("sqrt", "call it with parentheses"),
        ("sqrt(1, 2)", "takes 1 argument"),
        ("round(1, x=2)", "plain arguments"),
        ("5!", "cannot parse"),
        ("", "empty"),
        ("1 == 1", "comparison"),
        ("'a'", "not a number"),
        ("[1, 2]", "list"),
        ("~1", "'~'"),
        ("1 & 1", "'&'"),
        ("tan(pi/2)", "undefined"),
        ("__import__('os').system('true')", "only named functions"),
        ("().__class__.__bases__", "not supported"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("1 if 1 else 2", "not supported"),
        ("lambda: 1", "not supported"),
        ("1\x002", "NUL"),
    ],
)
def test_bad_expressions_fault_with_a_hint(expression: str, hint: str) -> None:
    assert hint in fault(expression)


HOSTILE = [
    "9**9**9",
    "10**10**10",
    "2 ** 10**400",
    "(1/3) ** 10**400",
    "1.0000001 ** 10**100",
    "sqrt(2) ** 10**100",
    "factorial(10**6)",
    "factorial(3249)",
    "factorial(10**100)",
    "1 << 10**9",
    "1 << 10**100",
    "10**9999 * 10**9999",
    "1e99999999",
    "1e-99999999",
    "exp(100000)",
    "exp(-100000)",
    "sin(1e200)",
    "lcm(" + ", ".join(str(p) for p in range(10**4, 10**4 + 3000)) + ")",
    "(" * 10_000 + "1" + ")" * 10_000,
    "(" * 3000 + "1" + ")" * 3000,
    "-" * 9000 + "1",
    "abs(" * 1000 + "1" + ")" * 1000,
    "1" * 20_000,
    "1+" * 4000 + "1",
    "2 ** 33300",
    "0.5 ** 40000",
]


@pytest.mark.parametrize("expression", HOSTILE, ids=lambda e: e[:30])
def test_hostile_expressions_fault(expression: str) -> None:
    message = fault(expression)
    assert message and "Traceback" not in message


@pytest.mark.parametrize("expression", HOSTILE[:8], ids=lambda e: e[:30])
def test_hostile_expressions_through_the_syscall_table(expression: str) -> None:
    outcome = SyscallTable([Calculator()]).dispatch(
        "calculator.evaluate", {"expression": expression}
    )
    assert outcome.status == "fault"
    assert "took longer" not in outcome.text  # refused by bounds, not by the kernel's deadline


def test_limits_are_configurable() -> None:
    small = Calculator(max_digits=50, max_chars=20)
    with pytest.raises(Fault, match="limit is 50"):
        small.evaluate(EvaluateArgs(expression="10 ** 60"))
    with pytest.raises(Fault, match="limit is 20"):
        small.evaluate(EvaluateArgs(expression="1 + " * 10 + "1"))


def test_schema_marks_the_expression_grounded_and_examples_are_well_formed() -> None:
    spec = Calculator().syscalls()["calculator.evaluate"]
    schema = spec.args.model_json_schema()
    assert schema["properties"]["expression"][GROUNDED_KEY] == "numbers"
    assert not spec.sensitive
    assert 2 <= len(Calculator.examples) <= 3
    for example in Calculator.examples:
        assert isinstance(example, Example)
        for name, args, result in example.calls:
            assert name == "calculator.evaluate"
            assert calc(args["expression"]) == result  # each shipped example is true
        assert example.answer == example.calls[-1][2]


# -- property: integer expressions agree with Python's own arithmetic ----------------------

# A node is (text, value, largest intermediate bit length); value None means a division by zero.
Node = tuple[str, "int | None", int]

_leaf = st.integers(min_value=-(10**30), max_value=10**30).map(
    lambda n: (f"({n})" if n < 0 else str(n), n, n.bit_length())
)


def _apply(op: str, a: Node, b: Node) -> Node:
    text = f"({a[0]}) {op} ({b[0]})"
    x, y = a[1], b[1]
    if x is None or y is None or (op in ("//", "%") and y == 0):
        return text, None, max(a[2], b[2])
    if op == "**":
        value = x**y
    else:
        value = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__,
                 "//": int.__floordiv__, "%": int.__mod__}[op](x, y)
    return text, value, max(a[2], b[2], value.bit_length())


def _combine(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    def binary(op: str) -> st.SearchStrategy[Node]:
        return st.tuples(children, children).map(lambda ab: _apply(op, ab[0], ab[1]))

    exponent = st.integers(0, 4).map(lambda k: (str(k), k, k.bit_length()))
    power = st.tuples(children, exponent).map(lambda ak: _apply("**", ak[0], ak[1]))
    negate = children.map(lambda a: (f"-({a[0]})", None if a[1] is None else -a[1], a[2]))
    return st.one_of(binary("+"), binary("-"), binary("*"), binary("//"), binary("%"),
                     power, negate)


_trees = st.recursive(_leaf, _combine, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_trees)
def test_integer_expressions_match_python(tree: Node) -> None:
    text, expected, largest = tree
    if largest > 30_000:  # beyond the calculator's size bound: it must refuse, not crash
        with pytest.raises(Fault):
            calc(text)
        return
    if expected is None:
        assert "division by zero" in fault(text)
        return
    assert calc(text) == str(expected)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12).filter(bool))
def test_division_is_exact(a: int, b: int) -> None:
    out = calc(f"{a} / ({b})")
    exact = Fraction(a, b)
    shown = out.split(" ≈ ")[0]
    assert Fraction(shown) == exact
    if " ≈ " in out:
        assert math.isclose(float(out.split(" ≈ ")[1]), a / b, rel_tol=1e-15)
