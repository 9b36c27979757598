"""The model benchmark's ratios against the tiny baseline (its smoke run is in test_smoke)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import models as bench


def _row(tps: float, call: float, rss: int) -> dict[str, Any]:
    return {"size_mb": 1, "load_s": 1.0, "decode_tps_1": tps, "decode_tps_2": tps / 2,
            "threads_2_vs_1": 0.5, "decode_tps_cpu": 2 * tps, "call_s": call,
            "calls_under_3s": 1.0, "call_cpu_s": call / 2, "rss_mb": rss, "load_avg": 1.0}


def test_ratios_are_against_the_tiny_model_of_the_same_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = {"tiny": _row(40.0, 1.0, 500), "qwen-0.5b": _row(20.0, 2.5, 1000)}
    monkeypatch.setattr(bench, "_worker", lambda name, *a: dict(rows[name]))
    result = bench.run(["tiny", "qwen-0.5b"], rounds=1, tokens=1, questions=1)
    qwen = result["models"]["qwen-0.5b"]
    assert (qwen["decode_vs_tiny"], qwen["call_vs_tiny"], qwen["rss_vs_tiny"]) == (0.5, 2.5, 2.0)
    assert (qwen["decode_cpu_vs_tiny"], qwen["call_cpu_vs_tiny"]) == (0.5, 2.5)
    assert result["baseline"] == "tiny"
    assert "| qwen-0.5b |" in bench._table(result)
