"""Shared fixtures: one real default model per test session, and the public benchmark data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchmarks._common import find_data

if TYPE_CHECKING:
    from llmos.cpu.llama import LlamaCPU

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    """Where the public benchmark and security data lives: $LLMOS_DATA, or ../shared/data."""
    return find_data()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder; tests that need it skip with a reason where it is absent."""
    root = data_root()
    if root is None:
        pytest.skip("benchmark data not found: set LLMOS_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def _session_cpu() -> Iterator[LlamaCPU]:
    from llmos.cpu.llama import LlamaCPU

    machine = LlamaCPU.default()
    yield machine
    machine.close()


@pytest.fixture
def cpu(_session_cpu: LlamaCPU) -> LlamaCPU:
    """The embedded default model, loaded once per session, its KV cache empty for each test.

    llama.cpp's logits depend slightly on how a prompt was split into batches, so greedy
    decoding after a different KV history can choose differently; each test starts from the
    same state, whatever ran before it.
    """
    _session_cpu.reset()
    return _session_cpu


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(argv: list[str], health: str, log: Path, *, env: dict[str, str] | None = None,
           wait_s: float = 240.0) -> subprocess.Popen[bytes]:
    """Start a server on loopback and wait until ``health`` answers 200 (or fail loudly)."""
    import httpx

    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}: {tail}")
        try:
            if httpx.get(health, timeout=2.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    _stop(proc)
    raise RuntimeError(f"{argv[:3]} did not answer {health} in {wait_s:.0f} s: "
                       f"{log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server (llama-cpp-python's) on loopback with the default model: its /v1 url."""
    from llmos.cpu.embedded import default_model_path

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
    proc = _serve(argv, f"http://127.0.0.1:{port}/v1/models", log)
    yield f"http://127.0.0.1:{port}/v1"
    _stop(proc)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server (``chroma run``) on loopback over a fresh folder: its chroma:// url."""
    port = _free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    chroma = Path(sys.executable).with_name("chroma")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    argv = [str(chroma), "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
            "--port", str(port)]
    proc = _serve(argv, f"http://127.0.0.1:{port}/api/v2/heartbeat", folder / "server.log",
                  env=env)
    yield f"chroma://127.0.0.1:{port}"
    _stop(proc)
