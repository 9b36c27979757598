"""The results page's pooled totals and paired sign test."""

from __future__ import annotations

import math

from benchmarks.run import bfcl_totals, sign_test


def test_sign_test_is_exact_and_two_sided() -> None:
    assert math.isclose(sign_test(10, 2), 2 * (1 + 12 + 66) / 2**12)
    assert sign_test(2, 10) == sign_test(10, 2)
    assert sign_test(3, 3) == 1.0 and sign_test(0, 0) == 1.0


def test_totals_pool_cases_and_split_out_irrelevance() -> None:
    results = [
        {"category": "simple_python", "llmos": {"correct": [True, False, True]},
         "baseline": {"correct": [False, False, True]}},
        {"category": "irrelevance", "llmos": {"correct": [True, True]},
         "baseline": {"correct": [False, True]}},
    ]
    totals = bfcl_totals(results)
    assert totals["all"] == {
        "cases": 5, "llmos_correct": 4, "baseline_correct": 2, "only_llmos": 2,
        "only_baseline": 0, "sign_test_p": 0.5,
    }
    assert totals["needs_a_call"]["cases"] == 3 and totals["needs_a_call"]["only_llmos"] == 1
