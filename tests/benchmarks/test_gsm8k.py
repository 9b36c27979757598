"""GSM8K harness: reference parsing, final-number extraction, sampling, and a real smoke run."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import gsm8k
from benchmarks._common import every_nth, last_json_line


def test_gold_reads_the_line_after_hashes() -> None:
    assert gsm8k.gold("16 - 3 - 4 = <<16-3-4=9>>9\n#### 18") == 18
    assert gsm8k.gold("...\n#### 2,125") == 2125
    assert gsm8k.gold("...\n#### -3") == -3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("She makes 9 * 2 = 18 dollars. The answer is 18.", 18.0),
        ("The answer is $1,250.", 1250.0),
        ("18", 18.0),
        ("It costs 3 dollars, so 12 in total", 12.0),
        ("The answer is 7.5", 7.5),
        ("no number here", None),
    ],
)
def test_final_number(text: str, value: float | None) -> None:
    assert gsm8k.final_number(text) == value


def test_is_correct_is_exact() -> None:
    assert gsm8k.is_correct("The answer is 18.", 18)
    assert not gsm8k.is_correct("The answer is 18.5.", 18)
    assert not gsm8k.is_correct("I don't know", 18)


def test_every_nth_is_a_fixed_spread_sample() -> None:
    items = list(range(100))
    assert every_nth(items, 4) == [0, 25, 50, 75]
    assert every_nth(items, 4, offset=1) == [1, 26, 51, 76]
    assert every_nth(items, None) == items
    assert every_nth(items, 500) == items


def test_last_json_line() -> None:
    assert last_json_line('progress\n{"a": 1}\n\n') == {"a": 1}
    with pytest.raises(ValueError):
        last_json_line("")


@pytest.mark.model
def test_smoke_two_problems_run_end_to_end(cpu: Any, data_dir: Any) -> None:
    result = gsm8k.run(cpu, limit=2)
    assert result["llmos"]["cases"] == result["baseline"]["cases"] == 2
    assert len(result["answers"]) == 2
    assert 0.0 <= result["device_share"] <= 1.0
