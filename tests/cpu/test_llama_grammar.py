"""Property: under any syscall-shaped JSON schema, LlamaCPU writes JSON valid for it.

Schemas are generated the way the kernel builds them: objects with string, integer, number,
boolean, enum and array fields, required and optional, nested, and ``anyOf`` unions of
``{"syscall": const, "args": {...}}``. Prompts are short few-shot transcripts. Decoding is
greedy or seeded sampling. Whatever comes out must parse and validate; the only other
permitted outcome is the documented ``CPUError`` for a call cut at ``max_tokens``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmos.cpu.llama import LlamaCPU

jsonschema = pytest.importorskip("jsonschema")

NAMES = st.sampled_from(["path", "query", "n", "limit", "ok", "mode", "tags", "x", "city"])
WORDS = st.sampled_from(["alpha", "beta", "gamma", "red", "blue", "up", "down"])

Schema = dict[str, Any]


def _leaf() -> st.SearchStrategy[Schema]:
    bounded_int = st.tuples(st.integers(-50, 0), st.integers(1, 500)).map(
        lambda r: {"type": "integer", "minimum": r[0], "maximum": r[1]}
    )
    return st.one_of(
        st.integers(1, 12).map(lambda n: {"type": "string", "maxLength": n}),
        st.just({"type": "string", "minLength": 1, "maxLength": 8}),
        bounded_int,
        st.just({"type": "integer"}),
        st.just({"type": "number", "minimum": 0, "maximum": 100}),
        st.just({"type": "boolean"}),
        st.lists(WORDS, min_size=1, max_size=4, unique=True).map(lambda ws: {"enum": ws}),
    )


def _field() -> st.SearchStrategy[Schema]:
    leaf = _leaf()
    array = st.tuples(leaf, st.integers(1, 3)).map(
        lambda t: {"type": "array", "items": t[0], "maxItems": t[1]}
    )
    return st.one_of(leaf, leaf, array)


def _object(fields: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    @st.composite
    def build(draw: st.DrawFn) -> Schema:
        names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
        props = {name: draw(fields) for name in names}
        required = [n for n in names if draw(st.booleans())]
        schema: Schema = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema

    return build()


ARGS = _object(st.one_of(_field(), _field(), _object(_leaf())))


@st.composite
def syscall_union(draw: st.DrawFn) -> Schema:
    """``anyOf`` of ``{"syscall": <const>, "args": {...}}``, as the kernel emits."""
    names = draw(
        st.lists(
            st.sampled_from(["calculator.evaluate", "fs.read", "browser.get", "answer"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    branches = [
        {
            "type": "object",
            "properties": {"syscall": {"const": name}, "args": draw(ARGS)},
            "required": ["syscall", "args"],
            "additionalProperties": False,
        }
        for name in names
    ]
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


SCHEMAS = st.one_of(syscall_union(), syscall_union(), ARGS)
PROMPTS = st.sampled_from(
    [
        'Q: What is 2 + 2?\nCALL: {"syscall": "calculator.evaluate", "args": '
        '{"expression": "2 + 2"}}\nQ: Read notes.txt\nCALL: ',
        "You are a helpful agent. Emit one call.\nCALL: ",
        "Q: weather in Paris?\nCALL:",
        "",
    ]
)


@pytest.mark.model
def test_output_always_parses_and_validates(cpu: LlamaCPU) -> None:
    outcomes: list[str] = []

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run: CI checks a fixed sample
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        schema=SCHEMAS,
        prompt=PROMPTS,
        temperature=st.sampled_from([0.0, 0.0, 0.8]),
        seed=st.integers(0, 1000),
    )
    def check(schema: Schema, prompt: str, temperature: float, seed: int) -> None:
        dec = cpu.complete(
            prompt, schema=schema, max_tokens=48, temperature=temperature, seed=seed
        )
        if dec.stop == "length":  # the one permitted outcome besides a valid value: cut short
            assert dec.decoded_tokens == 48
            outcomes.append("cut")
            return
        value = json.loads(dec.text)
        jsonschema.validate(value, schema)
        assert dec.stop == "grammar"
        assert dec.decoded_tokens <= 48
        assert dec.reused_tokens + dec.prefilled_tokens == dec.prompt_tokens
        outcomes.append("valid")

    check()
    # Bounded schemas should nearly always fit in 48 sampled tokens.
    assert outcomes.count("valid") >= 0.8 * len(outcomes), outcomes
