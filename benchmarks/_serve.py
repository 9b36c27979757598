"""Start a real llama.cpp server or Chroma server on loopback, wait for health, stop it.

Used by ``benchmarks/scale.py`` and by the test fixtures, so both run against the same real
servers the way a user starts them (``python -m llama_cpp.server``, ``chroma run``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serve(argv: list[str], health: str, log: Path, *, env: dict[str, str] | None = None,
           wait_s: float = 240.0) -> Iterator[None]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{argv[:3]} exited with {proc.returncode}: {tail}")
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:3]} did not answer {health} in {wait_s:.0f} s")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@contextmanager
def llama_server(model: Path, folder: Path, *, n_ctx: int = 2048, threads: int = 1
                 ) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with ``model``; yields its ``/v1`` url."""
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
            "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads)]
    with _serve(argv, f"http://127.0.0.1:{port}/v1/models", folder / "llama-server.log"):
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def chroma_server(folder: Path) -> Iterator[str]:
    """``chroma run`` over ``folder``/data, telemetry off; yields its ``chroma://`` url."""
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    argv = [str(chroma), "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
            "--port", str(port)]
    with _serve(argv, f"http://127.0.0.1:{port}/api/v2/heartbeat", folder / "chroma.log",
                env=env):
        yield f"chroma://127.0.0.1:{port}"
