"""The model benchmark: its ratios against the tiny baseline, and its smoke mode end to end."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import models as bench
from benchmarks._common import last_json_line


def _row(tps: float, call: float, rss: int) -> dict[str, Any]:
    return {"size_mb": 1, "load_s": 1.0, "decode_tps_1": tps, "decode_tps_2": tps / 2,
            "threads_2_vs_1": 0.5, "call_s": call, "calls_under_3s": 1.0, "rss_mb": rss}


def test_ratios_are_against_the_tiny_model_of_the_same_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = {"tiny": _row(40.0, 1.0, 500), "qwen-0.5b": _row(20.0, 2.5, 1000)}
    monkeypatch.setattr(bench, "_worker", lambda name, *a: dict(rows[name]))
    result = bench.run(["tiny", "qwen-0.5b"], rounds=1, tokens=1, questions=1)
    qwen = result["models"]["qwen-0.5b"]
    assert (qwen["decode_vs_tiny"], qwen["call_vs_tiny"], qwen["rss_vs_tiny"]) == (0.5, 2.5, 2.0)
    assert result["baseline"] == "tiny"
    assert "| qwen-0.5b |" in bench._table(result)


@pytest.mark.model
def test_smoke_runs_the_tiny_model_in_a_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--smoke", "--json"]) == 0
    result = last_json_line(capsys.readouterr().out)
    tiny = result["models"]["tiny"]
    assert tiny["decode_tps_1"] > 0 and tiny["decode_tps_2"] > 0
    assert tiny["calls"] >= 1 and tiny["call_s"] > 0
    assert tiny["rss_mb"] > tiny["rss_base_mb"]  # the model's memory is counted
    assert tiny["threads_auto"] >= 1
