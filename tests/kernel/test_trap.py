"""The trap on its own: model text becomes a call, or a Fault that says how to write one."""

from __future__ import annotations

import pytest

from llmos.errors import Fault
from llmos.kernel.syscall import format_call
from llmos.kernel.trap import Call, cut_answer, decode_call


def test_a_well_formed_call_decodes_with_raw_arguments() -> None:
    assert decode_call('{"syscall": "calculator.evaluate", "args": {"expression": "2 + 2"}}') == (
        Call("calculator.evaluate", {"expression": "2 + 2"})
    )
    assert decode_call('  {"syscall": "answer"}\n') == Call("answer", {})  # args default to {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty instruction"),
        ("   ", "empty instruction"),
        ("{" * 5, "malformed instruction"),
        ('{"syscall": "a", "args": {}} trailing', "text after the JSON object"),
        ("[1, 2]", "is a list, not an object"),
        ('{"args": {}}', 'missing "syscall" name'),
        ('{"syscall": "", "args": {}}', 'missing "syscall" name'),
        ('{"syscall": 3, "args": {}}', 'missing "syscall" name'),
        ('{"syscall": "a", "args": [1]}', '"args" must be an object'),
        ('{"syscall": "a", "args": {}, "why": "x"}', "unexpected keys ['why']"),
        ("[" * 100_000, "too long"),
        ("[" * 50_000 + "]" * 50_000, "too long"),
        ("[" * 30_000 + "]" * 30_000, "malformed instruction"),  # deep nesting: no crash
    ],
)
def test_every_malformed_text_is_a_fault_that_says_what_to_write(text: str, says: str) -> None:
    with pytest.raises(Fault, match=r"\{\"syscall\"") as info:
        decode_call(text)
    assert says in info.value.message


def test_a_cut_answer_keeps_what_it_said_and_nothing_else_is_one() -> None:
    whole = format_call("answer", {"text": "The train leaves at 7:40 from platform"})
    assert cut_answer(whole[: -len('platform"}}')]) == "The train leaves at 7:40 from…"
    escaped = format_call("answer", {"text": "caf\u00e9 ok"})  # ensure_ascii=False: raw é
    assert cut_answer(escaped[: -len('ok"}}')]) == "café…"
    assert cut_answer('{"syscall": "answer", "args": {"text": "na\\u00e') == "na…"  # split escape
    assert cut_answer('{"syscall": "answer", "args": {"text": "\\u00e') is None
    assert cut_answer(format_call("calculator.evaluate", {"expression": "1 +"})[:-3]) is None
    assert cut_answer('{"syscall": "answer", "args": {"text": "   ') is None
