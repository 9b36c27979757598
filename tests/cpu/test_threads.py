"""The default thread count: the idle cores this process may use, never fewer than one."""

from __future__ import annotations

import os

import pytest

from llmos.cpu.models import free_cores


@pytest.mark.parametrize(
    ("cores", "load", "threads"),
    [(2, 0.1, 2), (2, 0.7, 1), (2, 1.0, 1), (2, 9.5, 1), (8, 2.2, 6), (8, 0.0, 8), (1, 0.0, 1)],
)
def test_threads_are_the_idle_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert free_cores() == threads


def test_no_load_average_assumes_half_the_machine_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> tuple[float, float, float]:
        raise OSError("no load average here")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert free_cores() == 2
