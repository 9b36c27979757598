"""The scale benchmark runs end to end in its smoke mode (real servers, real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._common import last_json_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.model
def test_scale_smoke() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--smoke", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = last_json_line(out.stdout)
    assert set(result["cpu"]) == {"1", "2"}
    for row in result["cpu"].values():
        assert row["server"]["turns"] == row["local"]["turns"] > 0
        assert row["server_vs_local"] > 0
    disk = result["disk"]
    assert disk["concurrent"]["acked"] == 40 and disk["concurrent"]["lost"] == 0
    assert result["server_invalid_calls"] == 0
