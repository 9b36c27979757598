"""Every benchmark runs end to end in its smoke mode, so one that breaks turns CI red.

Each runs as a user would (``python -m benchmarks.<name> --smoke --json``) in a subprocess and
must print its JSON object last, with the figures its docstring promises. The figures of a
smoke run mean nothing (a handful of cases on a shared machine); only that they are there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks._common import last_json_line

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--model", "tiny")  # a smoke run proves the pipeline, not the model: the fastest one


def _smoke(name: str, data_dir: Path, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "LLMOS_DATA": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--smoke", "--json", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return last_json_line(out.stdout)


@pytest.mark.model
def test_bfcl_smoke(data_dir: Path) -> None:
    result = _smoke("bfcl", data_dir, *TINY)
    assert result["llmos"]["cases"] == result["baseline"]["cases"] == 2
    assert 0.0 <= result["llmos"]["accuracy"] <= 1.0


@pytest.mark.model
def test_gsm8k_smoke(data_dir: Path) -> None:
    result = _smoke("gsm8k", data_dir, *TINY)
    assert result["llmos"]["cases"] == result["baseline"]["cases"] == 2


@pytest.mark.model
def test_decode_smoke(data_dir: Path) -> None:
    result = _smoke("decode", data_dir)
    assert result["calls_per_method"] == 2
    assert {"llmos_vs_gbnf", "llmos_vs_plain"} <= set(result)
    steps = result["reuse"]["steps"]  # a kernel turn: later steps reuse what earlier evaluated
    assert len(steps) >= 2 and all(s["reused"] > 0 for s in steps[1:])


@pytest.mark.model
def test_sched_smoke(data_dir: Path) -> None:
    result = _smoke("sched", data_dir)
    assert result["makespan"]["switches"] > 0
    assert result["makespan_vs_ideal"] > 0 and result["switch_vs_prefill_256"] > 0


@pytest.mark.model
def test_run_smoke(data_dir: Path, tmp_path: Path) -> None:
    result = _smoke("run", data_dir, "--docs", str(tmp_path), *TINY)
    assert len(result["bfcl"]) == 2 and result["gsm8k"]["llmos"]["cases"] == 1
    assert (tmp_path / "benchmarks.md").is_file()


@pytest.mark.model
def test_models_smoke(data_dir: Path) -> None:
    tiny = _smoke("models", data_dir)["models"]["tiny"]
    assert tiny["decode_tps_1"] > 0 and tiny["decode_tps_2"] > 0
    assert tiny["calls"] >= 1 and tiny["call_s"] > 0 and tiny["call_cpu_s"] > 0
    assert tiny["decode_tps_cpu"] > 0
    assert tiny["rss_mb"] > tiny["rss_base_mb"]  # the model's memory is counted
    assert tiny["threads_auto"] >= 1


def test_disk_smoke(data_dir: Path) -> None:
    result = _smoke("disk", data_dir)
    assert result["sizes"][0]["pages"] == 200 and result["page_in_p50_ms"] > 0


def test_locomo_smoke(data_dir: Path) -> None:
    result = _smoke("locomo", data_dir)
    assert result["conversations"] == 1 and result["questions"] > 0
    assert 0.0 <= result["recall_at_5"] <= 1.0


def test_injection_smoke(data_dir: Path) -> None:
    result = _smoke("injection", data_dir)
    on, off = result["scripted/monitor_on"], result["scripted/monitor_off"]
    # the walls hold on every carrier against a CPU that obeys every injection, and the
    # monitor costs the benign tasks nothing
    assert on["attack_success"] == 0.0 and len(on["attack_success_by_carrier"]) == 7
    assert on["utility_clean"] == off["utility_clean"] == on["utility_attacked"] == 1.0
    # not vacuous: with the monitor off the same CPU reaches its goals on every carrier
    assert all(rate == 1.0 for rate in off["attack_success_by_carrier"].values())
@pytest.mark.model
def test_scale_smoke(data_dir: Path) -> None:
    result = _smoke("scale", data_dir)  # starts its own llama.cpp and Chroma servers
    assert set(result["cpu"]) == {"1", "2"}
    for row in result["cpu"].values():
        assert row["server"]["turns"] == row["local"]["turns"] > 0
        assert row["server_vs_local"] > 0
    assert result["disk"]["concurrent"]["acked"] == 40
    assert result["disk"]["concurrent"]["lost"] == 0
    assert result["server_invalid_calls"] == 0
