"""BFCL harness: schema conversion, run-time peripherals, the AST checker, and a real smoke run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from benchmarks import bfcl
from llmos.kernel.syscall import SyscallTable

FUNCTION: dict[str, Any] = {
    "name": "geo.distance",
    "description": "Distance between two cities. Uses the road network.",
    "parameters": {
        "type": "dict",
        "properties": {
            "start": {"type": "string", "description": "Start city."},
            "end": {"type": "string"},
            "unit": {"type": "string", "enum": ["km", "mi"], "default": "km"},
            "scale": {"type": "float"},
            "stops": {"type": "tuple", "items": {"type": "integer"}},
            "opts": {"type": "dict", "properties": {"fast": {"type": "boolean"}},
                     "required": ["fast"]},
            "extra": {"type": "any"},
        },
        "required": ["start", "end", "opts"],
    },
}
SCHEMAS = {"geo.distance": bfcl.json_schema(FUNCTION["parameters"])}
TRUTH = {"geo.distance": {"start": ["Paris"], "end": ["New York", "NYC"], "unit": ["km", ""]}}


def test_schema_conversion_maps_bfcl_type_names() -> None:
    schema = SCHEMAS["geo.distance"]
    props = schema["properties"]
    assert schema["type"] == "object"
    assert props["scale"]["type"] == "number"
    assert props["stops"]["type"] == "array"
    assert props["opts"]["type"] == "object"
    assert "type" not in props["extra"]  # any: no constraint
    json.dumps(schema)  # plain JSON, usable as an OpenAI-style tool spec


def test_args_model_validates_like_the_schema() -> None:
    model = bfcl.args_model(SCHEMAS["geo.distance"], "geo.distance")
    ok = {"start": "a", "end": "b", "opts": {"fast": True}, "stops": [1, 2], "scale": 2}
    model.model_validate(ok, strict=True)
    for bad in (
        {"start": "a", "end": "b"},  # a required field missing
        {**ok, "unit": "miles"},  # outside the enum
        {**ok, "surprise": 1},  # not in the schema
        {**ok, "scale": "2"},  # a string for a number
    ):
        with pytest.raises(ValidationError):
            model.model_validate(bad, strict=True)


def test_peripheral_keeps_the_exact_name_and_gives_schema_only_examples() -> None:
    dev = bfcl.bfcl_function(FUNCTION)
    table = SyscallTable([dev])
    assert "geo.distance" in table.specs
    outcome = table.dispatch("geo.distance", {"start": "a", "end": "b", "opts": {"fast": True}})
    assert outcome.status == "ok"
    assert table.dispatch("geo.distance", {"start": "a"}).status == "fault"
    # examples come from the schema alone: required params filled, optional ones left out
    for ex in dev.examples:
        for name, args, _ in ex.calls:
            assert name == "geo.distance"
            assert set(args) == {"start", "end", "opts"}
            dev.syscalls()["geo.distance"].args.model_validate(args, strict=True)
    assert [len(ex.calls) for ex in dev.examples] == [2, 1]


@pytest.mark.parametrize(
    ("args", "ok"),
    [
        ({"start": "paris", "end": "New-York"}, True),  # case, spaces and '-' ignored
        ({"start": "Paris", "end": "NYC", "unit": "km"}, True),
        ({"start": "Paris", "end": "NYC", "unit": "mi"}, False),
        ({"start": "Paris"}, False),  # a required value missing
        ({"start": "Paris", "end": "NYC", "scale": 1.0}, False),  # not in the answer
        ({"start": "Lyon", "end": "NYC"}, False),
    ],
)
def test_call_matches_strings_and_optionals(args: dict[str, Any], ok: bool) -> None:
    assert bfcl.call_matches(("geo.distance", args), TRUTH, SCHEMAS) is ok


def test_call_matches_numbers_lists_dicts_and_types() -> None:
    schemas = {"f": {"properties": {"n": {"type": "integer"}, "x": {"type": "number"}}}}
    truth = {"f": {"n": [5], "x": [2.0], "l": [[1, 2]], "d": [{"k": ["v"], "o": ["", 1]}]}}
    good = {"n": 5, "x": 2, "l": [1, 2], "d": {"k": "V"}}
    assert bfcl.call_matches(("f", good), truth, schemas)
    assert not bfcl.call_matches(("g", good), truth, schemas)  # wrong function
    assert not bfcl.call_matches(("f", {**good, "n": 5.0}), truth, schemas)  # float for int
    assert not bfcl.call_matches(("f", {**good, "n": True}), truth, schemas)  # bool is not 5
    assert not bfcl.call_matches(("f", {**good, "l": [2, 1]}), truth, schemas)  # order counts
    assert not bfcl.call_matches(("f", {**good, "d": {"k": "v", "z": 1}}), truth, schemas)
    assert not bfcl.call_matches(("f", None), truth, schemas)  # unparseable arguments


def test_case_correct_counts_and_order() -> None:
    truth = [{"f": {"a": [1]}}, {"f": {"a": [2]}}]
    s: dict[str, Any] = {}
    assert bfcl.case_correct("parallel", [("f", {"a": 2}), ("f", {"a": 1})], truth, s)
    assert not bfcl.case_correct("parallel", [("f", {"a": 1})], truth, s)
    assert not bfcl.case_correct("parallel", [("f", {"a": 1}), ("f", {"a": 1})], truth, s)
    assert not bfcl.case_correct("simple_python", [("f", {"a": 1})] * 2, truth[:1], s)
    assert bfcl.case_correct("irrelevance", [], [], s)
    assert not bfcl.case_correct("irrelevance", [("f", {"a": 1})], [], s)


def test_call_valid_needs_an_offered_name_and_strict_args() -> None:
    models = {"geo.distance": bfcl.args_model(SCHEMAS["geo.distance"], "geo.distance")}
    good = {"start": "a", "end": "b", "opts": {"fast": False}}
    assert bfcl.call_valid(("geo.distance", good), models)
    assert not bfcl.call_valid(("geo_distance", good), models)
    assert not bfcl.call_valid(("geo.distance", None), models)


def test_every_category_loads_and_every_schema_builds(data_dir: Any) -> None:
    for category in bfcl.CATEGORIES:
        cases = bfcl.load_category(category)
        assert cases
        for case in cases:
            for function in case["function"]:
                dev = bfcl.bfcl_function(function)
                model = dev.syscalls()[function["name"]].args
                for ex in dev.examples:
                    for _, args, _ in ex.calls:
                        model.model_validate(args, strict=True)


@pytest.mark.model
def test_smoke_two_cases_run_end_to_end(cpu: Any, data_dir: Any) -> None:
    result = bfcl.run_category(cpu, "simple_python", limit=2)
    assert result["llmos"]["cases"] == result["baseline"]["cases"] == 2
    assert result["valid_rate"] == 1.0  # the kernel only lets valid calls through
    assert result["llmos"]["unknown_calls"] == 0
    for key in ("accuracy", "baseline_accuracy"):
        assert 0.0 <= result[key] <= 1.0
