"""The calculator: exact arithmetic by walking a parsed expression tree, never ``eval``.

Concept: the model writes an arithmetic expression; the device parses it with
``ast.parse(mode="eval")`` and walks the tree over an allowlist of node types. Values are
exact rationals (``Fraction``: integers of any size, fractions, decimals as written) until an
operation has no exact result (``sqrt(2)``, ``log``, ``sin``, ``pi``); from then on the value is a
``Decimal`` at a 50-digit working precision, shown with 20 significant digits.

Notation: ``+ - * / // % **``, unary minus, parentheses, ``^`` as a synonym of ``**`` (people
and models write ``2^10`` for a power; bitwise xor has no use here), ``<<``/``>>`` on integers,
``×`` ``÷`` ``−`` as their ASCII forms, ``math.sqrt(...)`` as ``sqrt(...)``. Functions: see
``FUNCTIONS``; constants ``pi`` and ``e``; angles are in radians; ``round`` rounds halves away
from zero (as taught in school, not Python's banker's rounding).

Invariants:
- every input string either yields a result string or raises :class:`~llmos.errors.Fault`
  with a message that says what to write instead; nothing else escapes ``evaluate``;
- work is bounded before it is done: expression length, tree depth and size, literal sizes,
  ``a ** b`` (estimated as bits(a) * b), products, shifts and ``factorial`` are checked
  against ``max_digits`` before computing, so a hostile expression faults in milliseconds;
- numbers are read from the source text by this module (not by Python's parser), so decimals
  are exact and huge literals are not limited by Python's int/str conversion cap.

Neighbours: ``llmos.peripherals.base`` (``Peripheral``, ``grounded``); the kernel constrains
the ``expression`` field to numbers found in trusted pages (``llmos.kernel.ground``).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow, Underflow
from fractions import Fraction

from pydantic import BaseModel

from llmos.errors import Fault
from llmos.peripherals.base import Example, Limits, Peripheral, grounded, syscall

__all__ = ["Calculator", "EvaluateArgs"]

Num = Fraction | Decimal  # Fraction: exact; Decimal: inexact, 50 significant digits

_PREC = 50  # working digits of inexact values
_SHOWN = 20  # significant digits shown for inexact values
_MAX_DEPTH = 100  # nesting of the expression tree
_MAX_NODES = 2000  # size of the expression tree
_BITS_PER_DIGIT = math.log2(10)
_NUMBER = re.compile(  # a decimal literal not glued to a name ('log2') or another number
    r"(?<![A-Za-z0-9_.])(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?"
)
_PLACEHOLDER = "_llmos_n"
_ALIASES = {"^": "**", "×": "*", "÷": "/", "\u2212": "-"}  # U+2212 minus sign

FUNCTIONS = (
    "sqrt", "factorial", "gcd", "lcm", "abs", "round", "floor", "ceil", "min", "max",
    "log", "log10", "log2", "exp", "sin", "cos", "tan",
)
_HELP = (
    "use numbers and + - * / // % ** ( ) and the functions " + ", ".join(FUNCTIONS)
    + ", with the constants pi and e"
)


class EvaluateArgs(BaseModel):
    """Arguments of ``calculator.evaluate``."""

    expression: str = grounded(
        "numbers", description="An arithmetic expression, e.g. '12 * (3 + 4)'"
    )


class Calculator(Peripheral):
    """Exact arithmetic: big integers, fractions, decimals and common math functions."""

    name = "calculator"
    limits = Limits(timeout_s=5.0, max_output_chars=21_000)
    examples: tuple[Example, ...] = (
        Example(
            question="A crate holds 36 bottles. How many bottles are in 125 crates?",
            calls=(("calculator.evaluate", {"expression": "36 * 125"}, "4500"),),
            answer="4500",
        ),
        Example(
            question="What is 7 to the power of 9?",
            calls=(("calculator.evaluate", {"expression": "7 ** 9"}, "40353607"),),
            answer="40353607",
        ),
        Example(
            question="Four friends share a bill of 90 dollars equally. How much does each pay?",
            calls=(("calculator.evaluate", {"expression": "90 / 4"}, "22.5"),),
            answer="22.5",
        ),
    )

    def __init__(self, *, max_digits: int = 10_000, max_chars: int = 10_000) -> None:
        self.max_digits = max_digits
        self.max_chars = max_chars

    @syscall(pure=True)  # exact arithmetic on its argument alone: as trusted as it is
    def evaluate(self, args: EvaluateArgs) -> str:
        """Evaluate an arithmetic expression exactly and return the result."""
        return _Evaluator(self.max_digits).run(args.expression, max_chars=self.max_chars)


class _Evaluator:
    """One evaluation: the literal table, the size bound and the tree walk."""

    def __init__(self, max_digits: int) -> None:
        self.max_digits = max_digits
        self.max_bits = int(max_digits * _BITS_PER_DIGIT) + 1
        self.literals: dict[str, Fraction] = {}
        self.nodes = 0
        self.ctx = Context(prec=_PREC, Emax=max_digits, Emin=-max_digits,
                           traps=[InvalidOperation, DivisionByZero, Overflow, Underflow])

    def run(self, text: str, *, max_chars: int) -> str:
        if not text.strip():
            raise Fault(f"the expression is empty; {_HELP}")
        if len(text) > max_chars:
            raise Fault(f"the expression has {len(text)} characters; the limit is {max_chars}")
        for old, new in _ALIASES.items():
            text = text.replace(old, new)
        if "\x00" in text:
            raise Fault(f"the expression contains a NUL byte; {_HELP}")
        source = _NUMBER.sub(self._literal, text)
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise Fault(f"cannot parse {text.strip()!r} ({exc.msg}); {_HELP}") from None
        except (MemoryError, RecursionError, ValueError):
            raise Fault("the expression is nested too deeply; simplify it") from None
        try:
            value = self.eval(tree.body, 0)
            return self.show(value)
        except (Overflow, Underflow):
            raise Fault(
                f"the result is too large or too small (the range is 10^-{self.max_digits} "
                f"to 10^{self.max_digits}); use smaller numbers"
            ) from None
        except DivisionByZero:
            raise Fault("division by zero; check the divisor") from None
        except InvalidOperation:
            raise Fault("the operation has no real result (e.g. sqrt of a negative)") from None

    # -- literals: read from the source text, exactly and within bounds --------------------

    def _literal(self, match: re.Match[str]) -> str:
        key = f" {_PLACEHOLDER}{len(self.literals)} "
        self.literals[key.strip()] = self._parse_number(match.group(0))
        return key

    def _parse_number(self, token: str) -> Fraction:
        clean = token.replace("_", "")
        mantissa, _, exp_text = clean.lower().partition("e")
        whole, _, frac = mantissa.partition(".")
        exponent = int(exp_text) if exp_text and len(exp_text) < 12 else 0
        size = len(whole) + len(frac) + abs(exponent)
        if (exp_text and len(exp_text) >= 12) or size > self.max_digits:
            raise Fault(f"the number {token[:40]!r} has more than {self.max_digits} digits")
        digits = (whole + frac).lstrip("0") or "0"
        exponent -= len(frac)
        scale: int = 10 ** abs(exponent)
        return Fraction(_int(digits)) * scale if exponent >= 0 else Fraction(_int(digits), scale)

    # -- the tree walk ----------------------------------------------------------------------

    def eval(self, node: ast.expr, depth: int) -> Num:
        self.nodes += 1
        if depth > _MAX_DEPTH or self.nodes > _MAX_NODES:
            raise Fault("the expression is nested too deeply or too long; simplify it")
        if isinstance(node, ast.BinOp):
            return self.binop(node.op, self.eval(node.left, depth + 1),
                              self.eval(node.right, depth + 1))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.eval(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return value
            return -value if isinstance(value, Fraction) else self.ctx.minus(value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Constant):
            raise Fault(f"{node.value!r} is not a number; {_HELP}")
        if isinstance(node, ast.UnaryOp):
            raise Fault(f"{_describe(node.op)} is not supported; {_HELP}")
        raise Fault(f"{_describe(node)} is not supported; {_HELP}")

    def name(self, ident: str) -> Num:
        if ident in self.literals:
            return self.literals[ident]
        if ident == "pi":
            return _pi(self.ctx)
        if ident == "e":
            return self.ctx.exp(Decimal(1))
        if ident in FUNCTIONS:
            raise Fault(f"{ident!r} is a function: call it with parentheses, e.g. {ident}(2)")
        raise Fault(f"unknown name {ident!r}: {_HELP}")

    def call(self, node: ast.Call, depth: int) -> Num:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id == "math":
            fname = func.attr  # 'math.sqrt(2)' is read as 'sqrt(2)'
        elif isinstance(func, ast.Name):
            fname = func.id
        else:
            raise Fault(f"only named functions can be called; {_HELP}")
        if fname.startswith(_PLACEHOLDER):
            raise Fault("a number cannot be called: write '*' for multiplication, e.g. 2*(3+4)")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise Fault(f"{fname}() takes plain arguments, e.g. {fname}(2)")
        impl = _FUNCS.get(fname)
        if impl is None:
            raise Fault(f"unknown function {fname!r}: {_HELP}")
        arity, fn = impl
        args = [self.eval(a, depth + 1) for a in node.args]
        lo, hi = arity
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
            raise Fault(f"{fname}() takes {want} argument(s), got {len(args)}")
        return fn(self, args)

    def binop(self, op: ast.operator, a: Num, b: Num) -> Num:
        if isinstance(op, ast.Add | ast.Sub | ast.Mult):
            if isinstance(a, Fraction) and isinstance(b, Fraction):
                if isinstance(op, ast.Mult):
                    self.check_bits(_bits(a) + _bits(b))
                    return a * b
                return self.fit(a + b if isinstance(op, ast.Add) else a - b)
            x, y = self.dec(a), self.dec(b)
            if isinstance(op, ast.Mult):
                return self.ctx.multiply(x, y)
            return self.ctx.add(x, y) if isinstance(op, ast.Add) else self.ctx.subtract(x, y)
        if isinstance(op, ast.Div | ast.FloorDiv | ast.Mod):
            if b == 0:
                raise Fault("division by zero; check the divisor")
            if isinstance(a, Fraction) and isinstance(b, Fraction):
                if isinstance(op, ast.Div):
                    self.check_bits(_bits(a) + _bits(b))
                    return a / b
                return Fraction(a // b) if isinstance(op, ast.FloorDiv) else a % b
            x, y = self.dec(a), self.dec(b)
            if isinstance(op, ast.Div):
                return self.ctx.divide(x, y)
            q = self.ctx.divide_int(x, y)
            if (x < 0) != (y < 0) and self.ctx.multiply(q, y) != x:
                q = self.ctx.subtract(q, 1)  # floor, as Python's // does, not truncation
            if isinstance(op, ast.FloorDiv):
                return q
            return self.ctx.subtract(x, self.ctx.multiply(q, y))
        if isinstance(op, ast.Pow):
            return self.power(a, b)
        if isinstance(op, ast.LShift | ast.RShift):
            n, k = _as_int(a, "a shifted value"), _as_int(b, "a shift amount")
            if k < 0:
                raise Fault("a shift amount must not be negative")
            if isinstance(op, ast.RShift):
                return Fraction(n >> min(k, n.bit_length() + 1))
            self.check_bits(n.bit_length() + k)
            return Fraction(n << k)
        raise Fault(f"the operator {_describe(op)} is not supported; {_HELP}")

    def power(self, a: Num, b: Num) -> Num:
        if isinstance(b, Fraction) and b.denominator == 1:
            n = b.numerator
            if isinstance(a, Fraction):
                if a == 0 and n < 0:
                    raise Fault("division by zero: 0 raised to a negative power")
                if a in (0, 1) or n == 0:
                    return Fraction(1) if n == 0 else a
                if a == -1:
                    return Fraction(-1 if n % 2 else 1)
                # estimate before computing. a is not 0 or ±1, so its numerator or denominator
                # is at least 2 and a ** n needs at least |n| bits: a huge n faults right here.
                self.check_bits(abs(n))
                per_step = max(math.log2(abs(a.numerator)), math.log2(a.denominator))
                self.check_bits(math.ceil(per_step * abs(n)))
                return a**n
            return self.fit(self.ctx.power(a, n))
        if isinstance(a, Fraction) and isinstance(b, Fraction) and b.denominator <= 64 \
                and a >= 0:
            exact = self.exact_root(a, b.denominator)
            if exact is not None:
                return self.power(exact, Fraction(b.numerator))
        if a < 0:
            raise Fault("a negative number raised to a fractional power has no real result")
        if a == 0:
            if b < 0:
                raise Fault("division by zero: 0 raised to a negative power")
            return Fraction(0)
        return self.fit(self.ctx.power(self.dec(a), self.dec(b)))

    def exact_root(self, a: Fraction, k: int) -> Fraction | None:
        num, den = _iroot(a.numerator, k), _iroot(a.denominator, k)
        if num is None or den is None:
            return None
        return Fraction(num, den)

    # -- bounds and conversions -------------------------------------------------------------

    def check_bits(self, bits: int) -> None:
        if bits > self.max_bits:
            digits = bits * 30103 // 100_000  # log10(2) = 0.30103
            about = str(digits) if digits < 10**12 else f"10^{len(str(digits)) - 1}"
            raise Fault(
                f"the result would have about {about} digits; the limit is {self.max_digits}: "
                "use smaller numbers"
            )

    def fit(self, value: Num) -> Num:
        if isinstance(value, Fraction):
            self.check_bits(_bits(value))
        elif not value.is_finite():
            raise Fault("the result is not a finite number")
        return value

    def dec(self, value: Num) -> Decimal:
        if isinstance(value, Decimal):
            return value
        return self.ctx.divide(Decimal(value.numerator), Decimal(value.denominator))

    def show(self, value: Num) -> str:
        if isinstance(value, Decimal):
            return _show_decimal(value)
        if value.denominator == 1:
            return _int_str(value.numerator)
        den, twos, fives = value.denominator, 0, 0
        while den % 2 == 0:
            den, twos = den // 2, twos + 1
        while den % 5 == 0:
            den, fives = den // 5, fives + 1
        if den == 1:  # terminates: exact decimal with max(twos, fives) places
            places = max(twos, fives)
            scaled = abs(value.numerator) * 10**places // value.denominator
            digits = _int_str(scaled).rjust(places + 1, "0")
            sign = "-" if value < 0 else ""
            return f"{sign}{digits[:-places]}.{digits[-places:]}"
        approx = _show_decimal(self.dec(value))
        return f"{_int_str(value.numerator)}/{_int_str(value.denominator)} ≈ {approx}"


# -- functions ----------------------------------------------------------------------------

_Fn = Callable[[_Evaluator, list[Num]], Num]


def _sqrt(ev: _Evaluator, args: list[Num]) -> Num:
    (x,) = args
    if x < 0:
        raise Fault("sqrt of a negative number has no real result")
    if isinstance(x, Fraction):
        exact = ev.exact_root(x, 2)
        if exact is not None:
            return exact
    return ev.ctx.sqrt(ev.dec(x))


def _factorial(ev: _Evaluator, args: list[Num]) -> Num:
    n = _as_int(args[0], "factorial's argument")
    if n < 0:
        raise Fault("factorial is defined for whole numbers >= 0")
    if n > 10 * ev.max_digits or math.lgamma(n + 1) / math.log(10) > ev.max_digits:
        raise Fault(f"factorial({n}) has more than {ev.max_digits} digits; use a smaller number")
    return Fraction(math.factorial(n))


def _gcd_lcm(fn: Callable[..., int]) -> _Fn:
    def run(ev: _Evaluator, args: list[Num]) -> Num:
        ints = [_as_int(a, f"{fn.__name__}'s arguments") for a in args]
        if fn is math.lcm:
            ev.check_bits(sum(i.bit_length() for i in ints))
        return Fraction(fn(*ints))

    return run


def _round(ev: _Evaluator, args: list[Num]) -> Num:
    places = _as_int(args[1], "round's digits") if len(args) > 1 else 0
    if abs(places) > ev.max_digits:
        raise Fault(f"round() takes at most {ev.max_digits} digits")
    x = args[0] if isinstance(args[0], Fraction) else Fraction(args[0])
    scale = Fraction(10) ** places
    half_up = math.floor(abs(x) * scale + Fraction(1, 2))  # halves away from zero
    return Fraction(half_up if x >= 0 else -half_up) / scale


def _rounding(fn: Callable[[Fraction], int]) -> _Fn:
    def run(ev: _Evaluator, args: list[Num]) -> Num:
        x = args[0]
        return Fraction(fn(x if isinstance(x, Fraction) else Fraction(x)))

    return run


def _extreme(pick: Callable[..., Fraction]) -> _Fn:
    def run(ev: _Evaluator, args: list[Num]) -> Num:
        exact = [a if isinstance(a, Fraction) else Fraction(a) for a in args]
        return args[exact.index(pick(exact))]

    return run


def _log(ev: _Evaluator, args: list[Num], base: int | None = None) -> Num:
    x = args[0]
    b = args[1] if len(args) > 1 else (Fraction(base) if base else None)
    if x <= 0 or (b is not None and (b <= 0 or b == 1)):
        raise Fault("log needs a positive number (and a positive base other than 1)")
    if b is None:
        return ev.ctx.ln(ev.dec(x))
    if isinstance(x, Fraction) and isinstance(b, Fraction):  # exact when x is a power of b
        guess = round(_flog(x) / _flog(b))
        if abs(guess) * _bits(b) <= ev.max_bits and b**guess == x:
            return Fraction(guess)
    return ev.ctx.divide(ev.ctx.ln(ev.dec(x)), ev.ctx.ln(ev.dec(b)))


def _exp(ev: _Evaluator, args: list[Num]) -> Num:
    return ev.fit(ev.ctx.exp(ev.dec(args[0])))


def _trig(kind: str) -> _Fn:
    def run(ev: _Evaluator, args: list[Num]) -> Num:
        x = ev.dec(args[0])
        if x.adjusted() > 100:
            raise Fault(f"{kind}() needs an angle below 10^100 radians")
        s, c = _sin_cos(x)
        if kind == "tan":
            if abs(c) < Decimal(10) ** -(_PREC - 5):
                raise Fault("tan is undefined at this angle (cos is zero)")
            return ev.ctx.divide(s, c)
        result = s if kind == "sin" else c
        return Decimal(0) if abs(result) < Decimal(10) ** -(_PREC - 10) else result  # sin(pi)

    return run


_FUNCS: dict[str, tuple[tuple[int, int], _Fn]] = {
    "sqrt": ((1, 1), _sqrt),
    "factorial": ((1, 1), _factorial),
    "gcd": ((1, 99), _gcd_lcm(math.gcd)),
    "lcm": ((1, 99), _gcd_lcm(math.lcm)),
    "abs": ((1, 1), lambda ev, a: abs(a[0]) if isinstance(a[0], Fraction) else ev.ctx.abs(a[0])),
    "round": ((1, 2), _round),
    "floor": ((1, 1), _rounding(math.floor)),
    "ceil": ((1, 1), _rounding(math.ceil)),
    "min": ((1, 99), _extreme(min)),
    "max": ((1, 99), _extreme(max)),
    "log": ((1, 2), _log),
    "log10": ((1, 1), lambda ev, a: _log(ev, a, 10)),
    "log2": ((1, 1), lambda ev, a: _log(ev, a, 2)),
    "exp": ((1, 1), _exp),
    "sin": ((1, 1), _trig("sin")),
    "cos": ((1, 1), _trig("cos")),
    "tan": ((1, 1), _trig("tan")),
}


# -- helpers ------------------------------------------------------------------------------


def _flog(x: Fraction) -> float:
    return math.log(x.numerator) - math.log(x.denominator)


def _bits(x: Fraction) -> int:
    return x.numerator.bit_length() + x.denominator.bit_length()


def _as_int(x: Num, what: str) -> int:
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    raise Fault(f"{what} must be a whole number")


def _iroot(n: int, k: int) -> int | None:
    """The exact integer k-th root of n >= 0, or None when n is not a k-th power."""
    if n < 2:
        return n
    r = 1 << -(-n.bit_length() // k)  # an upper bound; Newton's method descends from it
    while True:
        s = ((k - 1) * r + n // r ** (k - 1)) // k
        if s >= r:
            break
        r = s
    return r if r**k == n else None


def _int(digits: str) -> int:
    """``int(digits)`` without Python's 4300-digit conversion cap (split in halves)."""
    if len(digits) <= 4000:
        return int(digits)
    half = len(digits) // 2
    scale: int = 10**half
    return _int(digits[:-half]) * scale + _int(digits[-half:])


def _int_str(n: int) -> str:
    """``str(n)`` without Python's 4300-digit conversion cap."""
    if n < 0:
        return "-" + _int_str(-n)
    if n.bit_length() < 13_000:  # under ~3900 digits
        return str(n)
    half = int(n.bit_length() / _BITS_PER_DIGIT / 2)
    high, low = divmod(n, 10**half)
    return _int_str(high) + _int_str(low).rjust(half, "0")


def _show_decimal(x: Decimal) -> str:
    shown = Context(prec=_SHOWN).plus(x).normalize()
    if shown.is_zero():
        return "0"
    if -12 <= shown.adjusted() < _SHOWN:
        return f"{shown:f}"
    return f"{shown:e}".replace("E", "e")


def _pi(ctx: Context) -> Decimal:
    """Pi to ``ctx.prec`` digits (the recipe in the ``decimal`` documentation)."""
    work = Context(prec=ctx.prec + 5)
    three = Decimal(3)
    lasts, t, s, n, na, d, da = Decimal(0), three, three, 1, 0, 0, 24
    while s != lasts:
        lasts = s
        n, na = n + na, na + 8
        d, da = d + da, da + 32
        t = work.divide(work.multiply(t, n), d)
        s = work.add(s, t)
    return ctx.plus(s)


def _sin_cos(x: Decimal) -> tuple[Decimal, Decimal]:
    """sin and cos of x radians by Taylor series after reducing x modulo 2*pi."""
    work = Context(prec=_PREC + max(x.adjusted(), 0) + 10)
    two_pi = work.multiply(2, _pi(work))
    x = work.remainder_near(x, two_pi)
    sums = []
    for start, term in ((1, x), (0, Decimal(1))):  # sin, then cos
        total, i, sign = term, start, 1
        while abs(term) > Decimal(10) ** -(_PREC + 5):
            term = work.divide(work.multiply(work.multiply(term, x), x), (i + 1) * (i + 2))
            i, sign = i + 2, -sign
            total = work.add(total, term) if sign > 0 else work.subtract(total, term)
        sums.append(Context(prec=_PREC).plus(total))
    return sums[0], sums[1]


def _describe(node: ast.AST) -> str:
    names = {
        "BitXor": "'^'", "BitAnd": "'&'", "BitOr": "'|'", "MatMult": "'@'", "Invert": "'~'",
        "Compare": "a comparison", "BoolOp": "'and'/'or'", "Not": "'not'",
        "Attribute": "an attribute ('.')", "Subscript": "indexing ('[...]')",
        "Lambda": "lambda", "IfExp": "'if'", "Tuple": "a tuple", "List": "a list",
    }
    kind = type(node).__name__
    return names.get(kind, f"{kind!r}")
