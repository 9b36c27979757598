"""The plugin kit end to end: install ``examples/plugin`` and find its device.

The package is pip-installed (no network: ``--no-deps --no-build-isolation``) from a temporary
copy into the running interpreter's environment, then removed again. The test checks what a
user would: ``llmos peripherals`` lists the device, ``discover()`` finds it through the
``llmos.peripherals`` entry point, and ``run_syscall`` calls it under the kernel's validation.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmos.peripherals.base import discover
from llmos.testing import run_syscall

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugin"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    already = _pip("show", "llmos-dice").returncode == 0
    if already:
        pytest.skip("llmos-dice is already installed here; uninstall it to run this test")
    copy = tmp_path_factory.mktemp("plugin") / "llmos-dice"
    shutil.copytree(PLUGIN, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    done = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(copy))
    assert done.returncode == 0, done.stdout + done.stderr
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.modules.pop("llmos_dice", None)
        gone = _pip("uninstall", "--yes", "llmos-dice")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        importlib.invalidate_caches()


def test_installed_plugin_is_listed_by_the_shell(installed: None) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmos", "peripherals"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "dice" in out
    assert "dice.roll(count?: integer, sides?: integer)" in " ".join(out.split())
    assert "failed to load" not in out


def test_installed_plugin_is_discovered_and_callable(installed: None) -> None:
    found = discover()
    assert "dice" in found
    dice = found["dice"](seed=7)  # type: ignore[call-arg]
    outcome = run_syscall(dice, "roll", {"count": 3, "sides": 6})
    # a plugin's plain result is outside text (dice are no function of their arguments)
    assert outcome.status == "ok" and not outcome.trusted
    faces = [int(f) for f in outcome.text.split(";")[0].removeprefix("rolled ").split(", ")]
    assert len(faces) == 3 and all(1 <= f <= 6 for f in faces)
    assert outcome.text.endswith(f"total {sum(faces)}")
    # the same seed rolls the same dice: the device holds no global state
    assert run_syscall(found["dice"](seed=7), "dice.roll", {"count": 3, "sides": 6}).text == (  # type: ignore[call-arg]
        outcome.text
    )
    # invalid arguments never reach the method; the device's own Fault is an observation
    bad = run_syscall(dice, "roll", {"count": 0})
    assert bad.status == "fault" and "count" in bad.text
    big = run_syscall(dice, "roll", {"count": 100, "sides": 1000})
    assert big.status == "fault" and "too many" in big.text
